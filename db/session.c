/* SQL for the capture_sessions table (see db/session.h). */
#include "db/session.h"

#include <string.h>

#include "db/rows.h"

#define SESSION_SELECT                                                                             \
    "SELECT s.id, s.capture_id, s.agent_id, s.instance_id, s.status, s.stop_reason,"               \
    " s.error_code, s.error_message, s.packets, s.bytes, s.drops, s.files, s.time_limit_ms,"       \
    " s.created_ms, s.dispatched_ms, s.started_ms, s.first_packet_ms, s.ended_ms,"                 \
    " s.progress_ms, s.backstop_ms, p.watcher_id, COALESCE(a.connected, 0), s.uploaded_bytes"      \
    " FROM capture_sessions s JOIN packet_captures p ON p.id = s.capture_id"                       \
    " LEFT JOIN agents a ON a.id = s.agent_id"

static enum cp_err read_row(sqlite3_stmt *st, void *out)
{
    struct db_session *s = out;
    db_column_copy(st, 0, s->id, sizeof(s->id));
    s->capture_id = sqlite3_column_int64(st, 1);
    db_column_copy(st, 2, s->agent_id, sizeof(s->agent_id));
    db_column_copy(st, 3, s->instance_id, sizeof(s->instance_id));
    db_column_copy(st, 4, s->status, sizeof(s->status));
    db_column_copy(st, 5, s->stop_reason, sizeof(s->stop_reason));
    db_column_copy(st, 6, s->error_code, sizeof(s->error_code));
    db_column_copy(st, 7, s->error_message, sizeof(s->error_message));
    s->packets = sqlite3_column_int64(st, 8);
    s->bytes = sqlite3_column_int64(st, 9);
    s->drops = sqlite3_column_int64(st, 10);
    s->files = sqlite3_column_int64(st, 11);
    s->time_limit_ms = sqlite3_column_int64(st, 12);
    s->created_ms = sqlite3_column_int64(st, 13);
    s->dispatched_ms = sqlite3_column_int64(st, 14);
    s->started_ms = sqlite3_column_int64(st, 15);
    s->first_packet_ms = sqlite3_column_int64(st, 16);
    s->ended_ms = sqlite3_column_int64(st, 17);
    s->progress_ms = sqlite3_column_int64(st, 18);
    s->backstop_ms = sqlite3_column_int64(st, 19);
    s->watcher_id = sqlite3_column_int64(st, 20);
    s->agent_connected = sqlite3_column_int(st, 21);
    s->uploaded_bytes = sqlite3_column_int64(st, 22);
    return CP_OK;
}

enum cp_err db_session_insert(struct db_conn *c, const struct db_session *s)
{
    sqlite3_stmt *st = db_conn_stmt(
        c, "INSERT INTO capture_sessions (id, capture_id, agent_id, instance_id, status,"
           " stop_reason, error_code, error_message, time_limit_ms, created_ms, dispatched_ms,"
           " started_ms, ended_ms, backstop_ms) VALUES (?1, ?2, ?3, ?4, ?5, NULLIF(?6, ''),"
           " NULLIF(?7, ''), NULLIF(?8, ''), ?9, ?10, NULLIF(?11, 0), NULLIF(?12, 0),"
           " NULLIF(?13, 0), NULLIF(?14, 0))");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, s->id) || db_bind_text(st, 3, s->agent_id) ||
        db_bind_text(st, 4, s->instance_id) || db_bind_text(st, 5, s->status) ||
        db_bind_text(st, 6, s->stop_reason) || db_bind_text(st, 7, s->error_code) ||
        db_bind_text(st, 8, s->error_message))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 2, s->capture_id);
    sqlite3_bind_int64(st, 9, s->time_limit_ms);
    sqlite3_bind_int64(st, 10, s->created_ms);
    sqlite3_bind_int64(st, 11, s->dispatched_ms);
    sqlite3_bind_int64(st, 12, s->started_ms);
    sqlite3_bind_int64(st, 13, s->ended_ms);
    sqlite3_bind_int64(st, 14, s->backstop_ms);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

enum cp_err db_session_get(struct db_conn *c, const char *id, struct db_session *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_conn_stmt(c, SESSION_SELECT " WHERE s.id = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    return db_row_one(st, read_row, out);
}

static enum cp_err step_changed(struct db_conn *c, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_err(rc);
    return sqlite3_changes(db_conn_handle(c)) >= 1 ? CP_OK : CP_ENOTFOUND;
}

enum cp_err db_session_update_state(struct db_conn *c, const struct db_session *s)
{
    sqlite3_stmt *st =
        db_conn_stmt(c, "UPDATE capture_sessions SET status = ?2, stop_reason = NULLIF(?3, ''),"
                        " error_code = NULLIF(?4, ''), error_message = NULLIF(?5, ''),"
                        " dispatched_ms = NULLIF(?6, 0), started_ms = NULLIF(?7, 0),"
                        " ended_ms = NULLIF(?8, 0), backstop_ms = NULLIF(?9, 0) WHERE id = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, s->id) || db_bind_text(st, 2, s->status) ||
        db_bind_text(st, 3, s->stop_reason) || db_bind_text(st, 4, s->error_code) ||
        db_bind_text(st, 5, s->error_message))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 6, s->dispatched_ms);
    sqlite3_bind_int64(st, 7, s->started_ms);
    sqlite3_bind_int64(st, 8, s->ended_ms);
    sqlite3_bind_int64(st, 9, s->backstop_ms);
    return step_changed(c, st);
}

enum cp_err db_session_set_progress(struct db_conn *c, const char *id, int64_t packets,
                                    int64_t bytes, int64_t drops, int64_t files,
                                    int64_t first_packet_ms, int64_t uploaded_bytes, int64_t now_ms)
{
    sqlite3_stmt *st = db_conn_stmt(
        c, "UPDATE capture_sessions SET packets = ?2, bytes = ?3, drops = ?4, files = ?5,"
           " first_packet_ms = COALESCE(first_packet_ms, NULLIF(?6, 0)), progress_ms = ?7,"
           " uploaded_bytes = ?8 WHERE id = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 2, packets);
    sqlite3_bind_int64(st, 3, bytes);
    sqlite3_bind_int64(st, 4, drops);
    sqlite3_bind_int64(st, 5, files);
    sqlite3_bind_int64(st, 6, first_packet_ms);
    sqlite3_bind_int64(st, 7, now_ms);
    sqlite3_bind_int64(st, 8, uploaded_bytes);
    return step_changed(c, st);
}

enum cp_err db_session_set_dispatched(struct db_conn *c, const char *id, int64_t now_ms)
{
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE capture_sessions SET dispatched_ms = ?2"
                                       " WHERE id = ?1 AND dispatched_ms IS NULL");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 2, now_ms);
    enum cp_err err = step_changed(c, st);
    return err == CP_ENOTFOUND ? CP_OK : err;
}

struct visit {
    db_session_each_fn each;
    void *arg;
};

static enum cp_err visit_row(void *row, void *arg)
{
    struct visit *v = arg;
    return v->each(row, v->arg);
}

static void clear_row(void *row)
{
    (void)row; /* nothing owned */
}

static enum cp_err each_row(sqlite3_stmt *st, db_session_each_fn each, void *arg)
{
    struct visit v = {each, arg};
    struct db_session s;
    return db_row_each(st, read_row, &s, sizeof(s), visit_row, &v, clear_row);
}

enum cp_err db_session_set_filter(struct db_conn *c, const char *id, const char *expression)
{
    sqlite3_stmt *st =
        db_conn_stmt(c, "UPDATE capture_sessions SET filter_expression = ?2 WHERE id = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id) || db_bind_text(st, 2, expression))
        return CP_ENOMEM;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_err(rc);
    return sqlite3_changes(db_conn_handle(c)) ? CP_OK : CP_ENOTFOUND;
}

enum cp_err db_session_filters_by_capture(struct db_conn *c, int64_t capture_id,
                                          db_session_filter_fn each, void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT id, filter_expression FROM capture_sessions"
                                       " WHERE capture_id = ?1 AND filter_expression IS NOT NULL"
                                       " ORDER BY instance_id, id");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, capture_id);
    enum cp_err err = CP_OK;
    int rc = SQLITE_DONE;
    /* Column texts stay valid until the next step: each() sees them before that. */
    while (err == CP_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *id = (const char *)sqlite3_column_text(st, 0);
        const char *expr = (const char *)sqlite3_column_text(st, 1);
        if (!id || !expr)
            err = CP_ENOMEM; /* NULLs are filtered out: only a failed conversion is left */
        else
            err = each(id, expr, arg);
    }
    if (err == CP_OK && rc != SQLITE_DONE)
        err = db_err(rc);
    sqlite3_reset(st);
    return err;
}

enum cp_err db_session_list_by_capture(struct db_conn *c, int64_t capture_id,
                                       db_session_each_fn each, void *arg)
{
    sqlite3_stmt *st =
        db_conn_stmt(c, SESSION_SELECT " WHERE s.capture_id = ?1 ORDER BY s.instance_id, s.id");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, capture_id);
    return each_row(st, each, arg);
}

enum cp_err db_session_list_by_watcher(struct db_conn *c, int64_t watcher_id,
                                       db_session_each_fn each, void *arg)
{
    sqlite3_stmt *st =
        db_conn_stmt(c, SESSION_SELECT " WHERE p.watcher_id = ?1"
                                       " ORDER BY s.capture_id, s.instance_id, s.id");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, watcher_id);
    return each_row(st, each, arg);
}

enum cp_err db_session_list_live_by_agent(struct db_conn *c, const char *agent_id,
                                          db_session_each_fn each, void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, SESSION_SELECT " WHERE s.agent_id = ?1 AND s.status IN"
                                                      " ('NotStarted', 'Running') ORDER BY s.id");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, agent_id))
        return CP_ENOMEM;
    return each_row(st, each, arg);
}

enum cp_err db_session_list_start_due(struct db_conn *c, int64_t before_ms, db_session_each_fn each,
                                      void *arg)
{
    sqlite3_stmt *st =
        db_conn_stmt(c, SESSION_SELECT " WHERE s.status = 'NotStarted'"
                                       " AND s.created_ms < ?1 ORDER BY s.created_ms");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, before_ms);
    return each_row(st, each, arg);
}

enum cp_err db_session_list_backstop_due(struct db_conn *c, int64_t before_ms,
                                         db_session_each_fn each, void *arg)
{
    sqlite3_stmt *st =
        db_conn_stmt(c, SESSION_SELECT " WHERE s.status = 'Running' AND s.backstop_ms < ?1"
                                       " ORDER BY s.backstop_ms");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, before_ms);
    return each_row(st, each, arg);
}
