/* SQL for the network_watchers table (see db/watcher.h). */
#include "db/watcher.h"

#include <stdlib.h>
#include <string.h>

#include "common/strutil.h"
#include "db/rows.h"

#define WATCHER_COLUMNS                                                                            \
    "id, sub, rg, name, region, etag, version, created_ms, updated_ms, tags_json"

void db_watcher_clear(struct db_watcher *w)
{
    if (!w)
        return;
    free(w->tags_json);
    memset(w, 0, sizeof(*w));
}

static enum cp_err read_row(sqlite3_stmt *st, void *out)
{
    struct db_watcher *w = out;
    w->id = sqlite3_column_int64(st, 0);
    db_column_copy(st, 1, w->sub, sizeof(w->sub));
    db_column_copy(st, 2, w->rg, sizeof(w->rg));
    db_column_copy(st, 3, w->name, sizeof(w->name));
    db_column_copy(st, 4, w->region, sizeof(w->region));
    db_column_copy(st, 5, w->etag, sizeof(w->etag));
    w->version = sqlite3_column_int64(st, 6);
    w->created_ms = sqlite3_column_int64(st, 7);
    w->updated_ms = sqlite3_column_int64(st, 8);
    const char *tags = (const char *)sqlite3_column_text(st, 9);
    w->tags_json = strdup(tags ? tags : "{}");
    return w->tags_json ? CP_OK : CP_ENOMEM;
}

static enum cp_err get_one(sqlite3_stmt *st, struct db_watcher *out)
{
    memset(out, 0, sizeof(*out));
    return db_row_one(st, read_row, out);
}

enum cp_err db_watcher_get(struct db_conn *c, const char *sub_key, const char *rg_key,
                           const char *name_key, struct db_watcher *out)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " WATCHER_COLUMNS " FROM network_watchers"
                                       " WHERE sub_key = ?1 AND rg_key = ?2 AND name_key = ?3");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, sub_key) || db_bind_text(st, 2, rg_key) ||
        db_bind_text(st, 3, name_key))
        return CP_ENOMEM;
    return get_one(st, out);
}

enum cp_err db_watcher_get_by_region(struct db_conn *c, const char *sub_key, const char *region,
                                     struct db_watcher *out)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " WATCHER_COLUMNS " FROM network_watchers"
                                       " WHERE sub_key = ?1 AND region = ?2");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, sub_key) || db_bind_text(st, 2, region))
        return CP_ENOMEM;
    return get_one(st, out);
}

enum cp_err db_watcher_insert(struct db_conn *c, struct db_watcher *w)
{
    char sub_key[64], rg_key[91], name_key[81];
    if (str_lower_copy(sub_key, sizeof(sub_key), w->sub) ||
        str_lower_copy(rg_key, sizeof(rg_key), w->rg) ||
        str_lower_copy(name_key, sizeof(name_key), w->name))
        return CP_EINVAL;
    sqlite3_stmt *st = db_conn_stmt(
        c, "INSERT INTO network_watchers (sub_key, rg_key, name_key, sub, rg, name, region,"
           " tags_json, etag, version, created_ms, updated_ms)"
           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) RETURNING id");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, sub_key) || db_bind_text(st, 2, rg_key) ||
        db_bind_text(st, 3, name_key) || db_bind_text(st, 4, w->sub) ||
        db_bind_text(st, 5, w->rg) || db_bind_text(st, 6, w->name) ||
        db_bind_text(st, 7, w->region) || db_bind_text(st, 8, w->tags_json) ||
        db_bind_text(st, 9, w->etag))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 10, w->version);
    sqlite3_bind_int64(st, 11, w->created_ms);
    sqlite3_bind_int64(st, 12, w->updated_ms);
    int rc = sqlite3_step(st);
    enum cp_err err = CP_OK;
    if (rc == SQLITE_ROW)
        w->id = sqlite3_column_int64(st, 0);
    else
        err = db_err(rc);
    sqlite3_reset(st);
    return err;
}

enum cp_err db_watcher_update(struct db_conn *c, const struct db_watcher *w,
                              int64_t expected_version)
{
    sqlite3_stmt *st =
        db_conn_stmt(c, "UPDATE network_watchers SET rg = ?1, name = ?2, tags_json = ?3,"
                        " etag = ?4, version = ?5, updated_ms = ?6 WHERE id = ?7 AND version = ?8");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, w->rg) || db_bind_text(st, 2, w->name) ||
        db_bind_text(st, 3, w->tags_json) || db_bind_text(st, 4, w->etag))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 5, w->version);
    sqlite3_bind_int64(st, 6, w->updated_ms);
    sqlite3_bind_int64(st, 7, w->id);
    sqlite3_bind_int64(st, 8, expected_version);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_err(rc);
    return sqlite3_changes(db_conn_handle(c)) == 1 ? CP_OK : CP_ECONFLICT;
}

enum cp_err db_watcher_touch(struct db_conn *c, int64_t id, const char *etag, int64_t now_ms)
{
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE network_watchers SET etag = ?1,"
                                       " version = version + 1, updated_ms = ?2 WHERE id = ?3");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, etag))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 2, now_ms);
    sqlite3_bind_int64(st, 3, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_err(rc);
    return sqlite3_changes(db_conn_handle(c)) == 1 ? CP_OK : CP_ENOTFOUND;
}

enum cp_err db_watcher_delete(struct db_conn *c, int64_t id)
{
    /* The delete cascades to the watcher's captures: take its unfinished ones off the count
     * first (migration 0005; a watcher's captures share its subscription and region). */
    sqlite3_stmt *q = db_conn_stmt(
        c, "UPDATE capture_quota SET unfinished = unfinished - (SELECT count(*)"
           " FROM packet_captures p WHERE p.watcher_id = ?1 AND p.unfinished = 1"
           " AND p.sub_key = capture_quota.sub_key AND p.region = capture_quota.region)"
           " WHERE EXISTS (SELECT 1 FROM packet_captures p WHERE p.watcher_id = ?1"
           " AND p.unfinished = 1 AND p.sub_key = capture_quota.sub_key"
           " AND p.region = capture_quota.region)");
    if (!q)
        return CP_EIO;
    sqlite3_bind_int64(q, 1, id);
    int qrc = sqlite3_step(q);
    sqlite3_reset(q);
    if (qrc != SQLITE_DONE)
        return db_err(qrc);
    sqlite3_stmt *st = db_conn_stmt(c, "DELETE FROM network_watchers WHERE id = ?1");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

struct list_visit {
    db_watcher_each_fn each;
    void *arg;
};

static enum cp_err visit_row(void *row, void *arg)
{
    struct list_visit *v = arg;
    return v->each(row, v->arg);
}

static void clear_row(void *row)
{
    db_watcher_clear(row);
}

enum cp_err db_watcher_list(struct db_conn *c, const char *sub_key, const char *rg_key,
                            db_watcher_each_fn each, void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " WATCHER_COLUMNS " FROM network_watchers"
                                       " WHERE sub_key = ?1 AND (?2 IS NULL OR rg_key = ?2)"
                                       " ORDER BY rg_key, name_key");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, sub_key) || db_bind_text(st, 2, rg_key))
        return CP_ENOMEM;
    struct list_visit v = {each, arg};
    struct db_watcher w;
    return db_row_each(st, read_row, &w, sizeof(w), visit_row, &v, clear_row);
}
