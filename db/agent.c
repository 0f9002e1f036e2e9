/* SQL for the agents table (see db/agent.h). */
#include "db/agent.h"

#include <stdlib.h>
#include <string.h>

#include "common/strutil.h"
#include "db/rows.h"

#define AGENT_COLUMNS                                                                              \
    "id, resource_id, instance_id, created_ms, revoked_ms, connected, connected_ms,"               \
    " last_seen_ms, agent_version, os, hostname, addresses_json, last_applied_seq"

void db_agent_clear(struct db_agent *a)
{
    if (!a)
        return;
    free(a->addresses_json);
    memset(a, 0, sizeof(*a));
}

static enum cp_err read_row(sqlite3_stmt *st, void *out)
{
    struct db_agent *a = out;
    db_column_copy(st, 0, a->id, sizeof(a->id));
    db_column_copy(st, 1, a->resource_id, sizeof(a->resource_id));
    db_column_copy(st, 2, a->instance_id, sizeof(a->instance_id));
    a->created_ms = sqlite3_column_int64(st, 3);
    a->revoked = sqlite3_column_type(st, 4) != SQLITE_NULL;
    a->revoked_ms = sqlite3_column_int64(st, 4);
    a->connected = sqlite3_column_int(st, 5) != 0;
    a->connected_ms = sqlite3_column_int64(st, 6);
    a->last_seen_ms = sqlite3_column_int64(st, 7);
    db_column_copy(st, 8, a->agent_version, sizeof(a->agent_version));
    db_column_copy(st, 9, a->os, sizeof(a->os));
    db_column_copy(st, 10, a->hostname, sizeof(a->hostname));
    const char *addrs = (const char *)sqlite3_column_text(st, 11);
    a->last_applied_seq = sqlite3_column_int64(st, 12);
    a->addresses_json = strdup(addrs ? addrs : "[]");
    return a->addresses_json ? CP_OK : CP_ENOMEM;
}

/* out was zeroed before any early return, so a caller may always clear it. */
static enum cp_err get_one(sqlite3_stmt *st, struct db_agent *out)
{
    enum cp_err err = db_row_one(st, read_row, out);
    if (err != CP_OK)
        db_agent_clear(out);
    return err;
}

/* "" is stored as NULL (nothing known yet). */
static enum cp_err bind_opt(sqlite3_stmt *st, int idx, const char *s)
{
    return db_bind_text(st, idx, s && *s ? s : NULL);
}

/* Steps an UPDATE of one agent: CP_OK when it changed a row, CP_ENOTFOUND when none. */
static enum cp_err step_update(struct db_conn *c, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_err(rc);
    return sqlite3_changes(db_conn_handle(c)) == 1 ? CP_OK : CP_ENOTFOUND;
}

enum cp_err db_agent_insert(struct db_conn *c, const struct db_agent *a, const char *sub_key,
                            const char *token_hash)
{
    char resource_key[DB_AGENT_RESOURCE_MAX], instance_key[DB_AGENT_INSTANCE_MAX];
    if (str_lower_copy(resource_key, sizeof(resource_key), a->resource_id) ||
        str_lower_copy(instance_key, sizeof(instance_key), a->instance_id))
        return CP_EINVAL;
    sqlite3_stmt *st = db_conn_stmt(
        c, "INSERT INTO agents (id, resource_id, resource_key, sub_key, instance_id, instance_key,"
           " token_hash, created_ms, connected, addresses_json, last_applied_seq)"
           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, '[]', 0)");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, a->id) || db_bind_text(st, 2, a->resource_id) ||
        db_bind_text(st, 3, resource_key) || db_bind_text(st, 4, sub_key) ||
        bind_opt(st, 5, a->instance_id) || db_bind_text(st, 6, instance_key) ||
        db_bind_text(st, 7, token_hash))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 8, a->created_ms);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

enum cp_err db_agent_get(struct db_conn *c, const char *id, struct db_agent *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " AGENT_COLUMNS " FROM agents WHERE id = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    return get_one(st, out);
}

enum cp_err db_agent_get_active(struct db_conn *c, const char *resource_key,
                                const char *instance_key, struct db_agent *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " AGENT_COLUMNS " FROM agents"
                                       " WHERE resource_key = ?1 AND instance_key = ?2"
                                       " AND revoked_ms IS NULL");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, resource_key) || db_bind_text(st, 2, instance_key))
        return CP_ENOMEM;
    return get_one(st, out);
}

enum cp_err db_agent_get_by_token_hash(struct db_conn *c, const char *token_hash,
                                       struct db_agent *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st =
        db_conn_stmt(c, "SELECT " AGENT_COLUMNS " FROM agents WHERE token_hash = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, token_hash))
        return CP_ENOMEM;
    return get_one(st, out);
}

enum cp_err db_agent_revoke(struct db_conn *c, const char *id, int64_t now_ms)
{
    /* connected stays as it is: a live channel is closed by the server's revocation sweep,
     * whose disconnect then clears it. */
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE agents SET revoked_ms = ?2"
                                       " WHERE id = ?1 AND revoked_ms IS NULL");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 2, now_ms);
    return step_update(c, st);
}

enum cp_err db_agent_set_hello(struct db_conn *c, const char *id, const char *agent_version,
                               const char *os, const char *hostname, const char *addresses_json,
                               int64_t now_ms)
{
    sqlite3_stmt *st = db_conn_stmt(
        c, "UPDATE agents SET agent_version = ?2, os = ?3, hostname = ?4, addresses_json = ?5,"
           " connected = 1, connected_ms = ?6, last_seen_ms = ?6"
           " WHERE id = ?1 AND revoked_ms IS NULL");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id) || bind_opt(st, 2, agent_version) || bind_opt(st, 3, os) ||
        bind_opt(st, 4, hostname) ||
        db_bind_text(st, 5, addresses_json && *addresses_json ? addresses_json : "[]"))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 6, now_ms);
    return step_update(c, st);
}

enum cp_err db_agent_set_seen(struct db_conn *c, const char *id, int64_t now_ms)
{
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE agents SET last_seen_ms = ?2"
                                       " WHERE id = ?1 AND revoked_ms IS NULL");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 2, now_ms);
    return step_update(c, st);
}

enum cp_err db_agent_set_disconnected(struct db_conn *c, const char *id)
{
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE agents SET connected = 0 WHERE id = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    return step_update(c, st);
}

enum cp_err db_agent_set_all_disconnected(struct db_conn *c)
{
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE agents SET connected = 0 WHERE connected = 1");
    if (!st)
        return CP_EIO;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

enum cp_err db_agent_advance_seq(struct db_conn *c, const char *id, int64_t seq, int *advanced)
{
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE agents SET last_applied_seq = ?2"
                                       " WHERE id = ?1 AND revoked_ms IS NULL"
                                       " AND last_applied_seq < ?2");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 2, seq);
    enum cp_err err = step_update(c, st);
    if (err == CP_OK) {
        *advanced = 1;
        return CP_OK;
    }
    if (err != CP_ENOTFOUND)
        return err;
    /* No row changed: already applied, or no such active agent. */
    struct db_agent a;
    err = db_agent_get(c, id, &a);
    if (err == CP_OK && a.revoked)
        err = CP_ENOTFOUND;
    db_agent_clear(&a);
    if (err == CP_OK)
        *advanced = 0;
    return err;
}

struct list_visit {
    db_agent_each_fn each;
    void *arg;
};

static enum cp_err visit_row(void *row, void *arg)
{
    struct list_visit *v = arg;
    return v->each(row, v->arg);
}

static void clear_row(void *row)
{
    db_agent_clear(row);
}

enum cp_err db_agent_list(struct db_conn *c, const char *sub_key, db_agent_each_fn each, void *arg)
{
    /* Two statements rather than "?1 IS NULL OR ...", so that the subscription's goes through
     * agents_by_sub. */
    sqlite3_stmt *st =
        sub_key ? db_conn_stmt(c, "SELECT " AGENT_COLUMNS " FROM agents WHERE sub_key = ?1"
                                  " ORDER BY created_ms, id")
                : db_conn_stmt(c, "SELECT " AGENT_COLUMNS " FROM agents ORDER BY created_ms, id");
    if (!st)
        return CP_EIO;
    if (sub_key && db_bind_text(st, 1, sub_key))
        return CP_ENOMEM;
    struct list_visit v = {each, arg};
    struct db_agent a;
    return db_row_each(st, read_row, &a, sizeof(a), visit_row, &v, clear_row);
}

enum cp_err db_agent_list_revoked_connected(struct db_conn *c, db_agent_each_fn each, void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " AGENT_COLUMNS " FROM agents"
                                       " WHERE connected = 1 AND revoked_ms IS NOT NULL");
    if (!st)
        return CP_EIO;
    struct list_visit v = {each, arg};
    struct db_agent a;
    return db_row_each(st, read_row, &a, sizeof(a), visit_row, &v, clear_row);
}

enum cp_err db_agent_list_instances(struct db_conn *c, const char *resource_key,
                                    db_agent_instance_fn each, void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT id, instance_id FROM agents WHERE resource_key = ?1"
                                       " AND revoked_ms IS NULL ORDER BY instance_key");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, resource_key))
        return CP_ENOMEM;
    enum cp_err err = CP_OK;
    int rc = SQLITE_DONE;
    while (err == CP_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *inst = (const char *)sqlite3_column_text(st, 1);
        err = each(id ? id : "", inst ? inst : "", arg);
    }
    if (err == CP_OK && rc != SQLITE_DONE)
        err = db_err(rc);
    sqlite3_reset(st);
    return err;
}
