/* SQL for the packet_captures table (see db/capture.h). */
#include "db/capture.h"

#include <stdlib.h>
#include <string.h>

#include "common/strutil.h"
#include "db/rows.h"

#define CAPTURE_COLUMNS                                                                            \
    "id, watcher_id, name, sub_key, region, target, properties_json, provisioning_state,"          \
    " capture_status, stop_reason, capture_errors_json, unfinished, capture_start_ms,"             \
    " create_operation_id, created_ms, updated_ms, agent_id, stop_operation_id"

void db_capture_clear(struct db_capture *cap)
{
    if (!cap)
        return;
    free(cap->properties_json);
    free(cap->sessions);
    memset(cap, 0, sizeof(*cap));
}

static enum cp_err read_row(sqlite3_stmt *st, void *out)
{
    struct db_capture *cap = out;
    cap->id = sqlite3_column_int64(st, 0);
    cap->watcher_id = sqlite3_column_int64(st, 1);
    db_column_copy(st, 2, cap->name, sizeof(cap->name));
    db_column_copy(st, 3, cap->sub_key, sizeof(cap->sub_key));
    db_column_copy(st, 4, cap->region, sizeof(cap->region));
    db_column_copy(st, 5, cap->target, sizeof(cap->target));
    db_column_copy(st, 7, cap->provisioning_state, sizeof(cap->provisioning_state));
    db_column_copy(st, 8, cap->capture_status, sizeof(cap->capture_status));
    db_column_copy(st, 9, cap->stop_reason, sizeof(cap->stop_reason));
    db_column_copy(st, 10, cap->capture_errors_json, sizeof(cap->capture_errors_json));
    cap->unfinished = sqlite3_column_int(st, 11);
    cap->capture_start_ms = sqlite3_column_int64(st, 12);
    db_column_copy(st, 13, cap->create_operation_id, sizeof(cap->create_operation_id));
    cap->created_ms = sqlite3_column_int64(st, 14);
    cap->updated_ms = sqlite3_column_int64(st, 15);
    db_column_copy(st, 16, cap->agent_id, sizeof(cap->agent_id));
    db_column_copy(st, 17, cap->stop_operation_id, sizeof(cap->stop_operation_id));
    const char *props = (const char *)sqlite3_column_text(st, 6);
    cap->properties_json = strdup(props ? props : "{}");
    return cap->properties_json ? CP_OK : CP_ENOMEM;
}

static enum cp_err get_one(sqlite3_stmt *st, struct db_capture *out)
{
    return db_row_one(st, read_row, out);
}

enum cp_err db_capture_get(struct db_conn *c, int64_t watcher_id, const char *name_key,
                           struct db_capture *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " CAPTURE_COLUMNS " FROM packet_captures"
                                       " WHERE watcher_id = ?1 AND name_key = ?2");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, watcher_id);
    if (db_bind_text(st, 2, name_key))
        return CP_ENOMEM;
    return get_one(st, out);
}

enum cp_err db_capture_get_by_id(struct db_conn *c, int64_t id, struct db_capture *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st =
        db_conn_stmt(c, "SELECT " CAPTURE_COLUMNS " FROM packet_captures WHERE id = ?1");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, id);
    return get_one(st, out);
}

enum cp_err db_capture_get_by_create_op(struct db_conn *c, const char *op_id,
                                        struct db_capture *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " CAPTURE_COLUMNS " FROM packet_captures"
                                       " WHERE create_operation_id = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, op_id))
        return CP_ENOMEM;
    return get_one(st, out);
}

/* Adds delta to the unfinished count of (sub_key, region), making its row if needed. */
static enum cp_err quota_add(struct db_conn *c, const char *sub_key, const char *region, int delta)
{
    sqlite3_stmt *st = db_conn_stmt(
        c, "INSERT INTO capture_quota (sub_key, region, unfinished) VALUES (?1, ?2, ?3)"
           " ON CONFLICT (sub_key, region)"
           " DO UPDATE SET unfinished = capture_quota.unfinished + excluded.unfinished");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, sub_key) || db_bind_text(st, 2, region))
        return CP_ENOMEM;
    sqlite3_bind_int(st, 3, delta);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

/* Moves the count of capture id's (sub_key, region) by the change of its unfinished flag to
 * unfinished (0 when the row is about to be deleted); run before the row changes, which it
 * reads. Nothing when the flag stays or the capture does not exist. */
static enum cp_err quota_move(struct db_conn *c, int64_t id, int unfinished)
{
    /* The WHERE before ON CONFLICT is what SQLite's parser needs in INSERT ... SELECT. */
    sqlite3_stmt *st = db_conn_stmt(
        c, "INSERT INTO capture_quota (sub_key, region, unfinished)"
           " SELECT sub_key, region, ?2 - unfinished FROM packet_captures"
           " WHERE id = ?1 AND unfinished <> ?2"
           " ON CONFLICT (sub_key, region)"
           " DO UPDATE SET unfinished = capture_quota.unfinished + excluded.unfinished");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int(st, 2, unfinished ? 1 : 0);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

enum cp_err db_capture_insert(struct db_conn *c, struct db_capture *cap)
{
    char name_key[81];
    if (str_lower_copy(name_key, sizeof(name_key), cap->name))
        return CP_EINVAL;
    sqlite3_stmt *st = db_conn_stmt(
        c, "INSERT INTO packet_captures (watcher_id, name_key, name, sub_key, region, target,"
           " properties_json, provisioning_state, capture_status, stop_reason,"
           " capture_errors_json, unfinished, capture_start_ms, create_operation_id,"
           " created_ms, updated_ms)"
           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULLIF(?10, ''), ?11, ?12,"
           " NULLIF(?13, 0), ?14, ?15, ?16) RETURNING id");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, cap->watcher_id);
    if (db_bind_text(st, 2, name_key) || db_bind_text(st, 3, cap->name) ||
        db_bind_text(st, 4, cap->sub_key) || db_bind_text(st, 5, cap->region) ||
        db_bind_text(st, 6, cap->target) || db_bind_text(st, 7, cap->properties_json) ||
        db_bind_text(st, 8, cap->provisioning_state) || db_bind_text(st, 9, cap->capture_status) ||
        db_bind_text(st, 10, cap->stop_reason) || db_bind_text(st, 11, cap->capture_errors_json) ||
        db_bind_text(st, 14, cap->create_operation_id))
        return CP_ENOMEM;
    sqlite3_bind_int(st, 12, cap->unfinished);
    sqlite3_bind_int64(st, 13, cap->capture_start_ms);
    sqlite3_bind_int64(st, 15, cap->created_ms);
    sqlite3_bind_int64(st, 16, cap->updated_ms);
    int rc = sqlite3_step(st);
    enum cp_err err = CP_OK;
    if (rc == SQLITE_ROW)
        cap->id = sqlite3_column_int64(st, 0);
    else
        err = db_err(rc);
    sqlite3_reset(st);
    if (err == CP_OK && cap->unfinished)
        err = quota_add(c, cap->sub_key, cap->region, 1);
    return err;
}

enum cp_err db_capture_update_state(struct db_conn *c, const struct db_capture *cap)
{
    enum cp_err err = quota_move(c, cap->id, cap->unfinished);
    if (err != CP_OK)
        return err;
    sqlite3_stmt *st =
        db_conn_stmt(c, "UPDATE packet_captures SET provisioning_state = ?1, capture_status = ?2,"
                        " stop_reason = NULLIF(?3, ''), capture_errors_json = ?4, unfinished = ?5,"
                        " capture_start_ms = NULLIF(?6, 0), updated_ms = ?7 WHERE id = ?8");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, cap->provisioning_state) || db_bind_text(st, 2, cap->capture_status) ||
        db_bind_text(st, 3, cap->stop_reason) || db_bind_text(st, 4, cap->capture_errors_json))
        return CP_ENOMEM;
    sqlite3_bind_int(st, 5, cap->unfinished);
    sqlite3_bind_int64(st, 6, cap->capture_start_ms);
    sqlite3_bind_int64(st, 7, cap->updated_ms);
    sqlite3_bind_int64(st, 8, cap->id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_err(rc);
    return sqlite3_changes(db_conn_handle(c)) == 1 ? CP_OK : CP_ENOTFOUND;
}

enum cp_err db_capture_delete(struct db_conn *c, int64_t id)
{
    enum cp_err err = quota_move(c, id, 0);
    if (err != CP_OK)
        return err;
    sqlite3_stmt *st = db_conn_stmt(c, "DELETE FROM packet_captures WHERE id = ?1");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

enum cp_err db_capture_count_unfinished(struct db_conn *c, const char *sub_key, const char *region,
                                        int64_t *out)
{
    /* The counter row (migration 0005), not a count: O(1) for every create. */
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT unfinished FROM capture_quota"
                                       " WHERE sub_key = ?1 AND region = ?2");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, sub_key) || db_bind_text(st, 2, region))
        return CP_ENOMEM;
    int rc = sqlite3_step(st);
    enum cp_err err = CP_OK;
    *out = 0; /* no row: none yet */
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else if (rc != SQLITE_DONE)
        err = db_err(rc);
    sqlite3_reset(st);
    return err;
}

struct list_visit {
    db_capture_each_fn each;
    void *arg;
};

static enum cp_err visit_row(void *row, void *arg)
{
    struct list_visit *v = arg;
    return v->each(row, v->arg);
}

static void clear_row(void *row)
{
    db_capture_clear(row);
}

enum cp_err db_capture_list(struct db_conn *c, int64_t watcher_id, db_capture_each_fn each,
                            void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " CAPTURE_COLUMNS " FROM packet_captures"
                                       " WHERE watcher_id = ?1 ORDER BY name_key");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, watcher_id);
    struct list_visit v = {each, arg};
    struct db_capture cap;
    return db_row_each(st, read_row, &cap, sizeof(cap), visit_row, &v, clear_row);
}

enum cp_err db_capture_count_by_state(struct db_conn *c, db_capture_count_fn each, void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT provisioning_state, capture_status, count(*)"
                                       " FROM packet_captures GROUP BY 1, 2");
    if (!st)
        return CP_EIO;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        each((const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
             sqlite3_column_int64(st, 2), arg);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

enum cp_err db_capture_set_agent(struct db_conn *c, int64_t id, const char *agent_id,
                                 const char *stop_operation_id)
{
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE packet_captures SET agent_id = NULLIF(?2, ''),"
                                       " stop_operation_id = NULLIF(?3, '') WHERE id = ?1");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, id);
    if (db_bind_text(st, 2, agent_id) || db_bind_text(st, 3, stop_operation_id))
        return CP_ENOMEM;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

enum cp_err db_capture_list_pending(struct db_conn *c, const char *agent_id,
                                    db_capture_each_fn each, void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " CAPTURE_COLUMNS " FROM packet_captures"
                                       " WHERE agent_id = ?1 AND (provisioning_state = 'Updating'"
                                       " OR stop_operation_id IS NOT NULL) ORDER BY id");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, agent_id))
        return CP_ENOMEM;
    struct list_visit v = {each, arg};
    struct db_capture cap;
    return db_row_each(st, read_row, &cap, sizeof(cap), visit_row, &v, clear_row);
}

enum cp_err db_capture_list_overdue(struct db_conn *c, int64_t before_ms, db_capture_each_fn each,
                                    void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT " CAPTURE_COLUMNS " FROM packet_captures"
                                       " WHERE agent_id IS NOT NULL AND provisioning_state ="
                                       " 'Updating' AND created_ms < ?1 ORDER BY id");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, before_ms);
    struct list_visit v = {each, arg};
    struct db_capture cap;
    return db_row_each(st, read_row, &cap, sizeof(cap), visit_row, &v, clear_row);
}
