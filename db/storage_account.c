/* SQL for the storage_accounts table (see db/storage_account.h). */
#include "db/storage_account.h"

#include <string.h>

#include "db/rows.h"

#define ACCOUNT_COLUMNS "resource_id, account_name, blob_endpoint, created_ms"

static int fits(const char *s, size_t max)
{
    return s && s[0] && strlen(s) < max;
}

enum cp_err db_storage_account_put(struct db_conn *c, const char *resource_key,
                                   const struct db_storage_account *a, const char *shared_key,
                                   int *replaced)
{
    if (!fits(resource_key, DB_STORAGE_ID_MAX) || !fits(a->resource_id, DB_STORAGE_ID_MAX) ||
        !fits(a->account_name, DB_STORAGE_ACCOUNT_MAX) ||
        !fits(a->blob_endpoint, DB_STORAGE_ENDPOINT_MAX) || !fits(shared_key, DB_STORAGE_KEY_MAX))
        return CP_EINVAL;
    /* Two statements rather than an upsert so that the caller learns which one happened. */
    sqlite3_stmt *del = db_conn_stmt(c, "DELETE FROM storage_accounts WHERE resource_key = ?1");
    if (!del)
        return CP_EIO;
    if (db_bind_text(del, 1, resource_key))
        return CP_ENOMEM;
    enum cp_err err = db_err(sqlite3_step(del));
    sqlite3_reset(del);
    if (err != CP_OK)
        return err;
    int was = sqlite3_changes(db_conn_handle(c)) > 0;
    sqlite3_stmt *ins = db_conn_stmt(
        c, "INSERT INTO storage_accounts (resource_key, " ACCOUNT_COLUMNS ", shared_key)"
           " VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
    if (!ins)
        return CP_EIO;
    if (db_bind_text(ins, 1, resource_key) || db_bind_text(ins, 2, a->resource_id) ||
        db_bind_text(ins, 3, a->account_name) || db_bind_text(ins, 4, a->blob_endpoint) ||
        sqlite3_bind_int64(ins, 5, a->created_ms) != SQLITE_OK || db_bind_text(ins, 6, shared_key))
        return CP_ENOMEM;
    err = db_err(sqlite3_step(ins));
    sqlite3_reset(ins);
    /* The bound copy of the key lives in the statement until its bindings are cleared. */
    sqlite3_clear_bindings(ins);
    if (err == CP_OK && replaced)
        *replaced = was;
    return err;
}

enum cp_err db_storage_account_delete(struct db_conn *c, const char *resource_key)
{
    sqlite3_stmt *st = db_conn_stmt(c, "DELETE FROM storage_accounts WHERE resource_key = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, resource_key))
        return CP_ENOMEM;
    enum cp_err err = db_err(sqlite3_step(st));
    sqlite3_reset(st);
    if (err == CP_OK && sqlite3_changes(db_conn_handle(c)) == 0)
        err = CP_ENOTFOUND;
    return err;
}

static enum cp_err read_row(sqlite3_stmt *st, void *out)
{
    struct db_storage_account *a = out;
    db_column_copy(st, 0, a->resource_id, sizeof(a->resource_id));
    db_column_copy(st, 1, a->account_name, sizeof(a->account_name));
    db_column_copy(st, 2, a->blob_endpoint, sizeof(a->blob_endpoint));
    a->created_ms = sqlite3_column_int64(st, 3);
    return CP_OK;
}

enum cp_err db_storage_account_get(struct db_conn *c, const char *resource_key,
                                   struct db_storage_account *out)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " ACCOUNT_COLUMNS " FROM storage_accounts"
                                       " WHERE resource_key = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, resource_key))
        return CP_ENOMEM;
    memset(out, 0, sizeof(*out));
    return db_row_one(st, read_row, out);
}

static enum cp_err read_key(sqlite3_stmt *st, void *out)
{
    char **key = out;
    const unsigned char *v = sqlite3_column_text(st, 0);
    int n = sqlite3_column_bytes(st, 0);
    if (!v || n <= 0 || n >= DB_STORAGE_KEY_MAX)
        return CP_EIO;
    memcpy(*key, v, (size_t)n);
    (*key)[n] = '\0';
    return CP_OK;
}

enum cp_err db_storage_account_key(struct db_conn *c, const char *resource_key, char *key,
                                   size_t keysz)
{
    if (keysz < DB_STORAGE_KEY_MAX)
        return CP_EINVAL;
    sqlite3_stmt *st =
        db_conn_stmt(c, "SELECT shared_key FROM storage_accounts WHERE resource_key = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, resource_key))
        return CP_ENOMEM;
    return db_row_one(st, read_key, &key);
}

struct each_ctx {
    db_storage_account_each_fn each;
    void *arg;
};

static enum cp_err visit(void *row, void *arg)
{
    struct each_ctx *x = arg;
    return x->each(row, x->arg);
}

static void clear_row(void *row)
{
    memset(row, 0, sizeof(struct db_storage_account));
}

enum cp_err db_storage_account_list(struct db_conn *c, db_storage_account_each_fn each, void *arg)
{
    sqlite3_stmt *st =
        db_conn_stmt(c, "SELECT " ACCOUNT_COLUMNS " FROM storage_accounts ORDER BY resource_key");
    if (!st)
        return CP_EIO;
    struct db_storage_account row;
    struct each_ctx x = {each, arg};
    return db_row_each(st, read_row, &row, sizeof(row), visit, &x, clear_row);
}
