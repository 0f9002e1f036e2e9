/* SQL for the agent_outbox table (see db/outbox.h). */
#include "db/outbox.h"

#include <stdlib.h>
#include <string.h>

#include "db/rows.h"

#define COMMAND_SELECT                                                                             \
    "SELECT o.id, o.agent_id, o.session_id, o.kind, o.stop_reason, o.state, o.created_ms,"         \
    " o.sent_ms, o.acked_ms, CASE o.kind WHEN 'start' THEN p.name END,"                            \
    " CASE o.kind WHEN 'start' THEN p.properties_json END"                                         \
    " FROM agent_outbox o LEFT JOIN capture_sessions s ON s.id = o.session_id"                     \
    " LEFT JOIN packet_captures p ON p.id = s.capture_id"

void db_command_clear(struct db_command *cmd)
{
    if (!cmd)
        return;
    free(cmd->spec_json);
    memset(cmd, 0, sizeof(*cmd));
}

static enum cp_err read_row(sqlite3_stmt *st, void *out)
{
    struct db_command *cmd = out;
    db_column_copy(st, 0, cmd->id, sizeof(cmd->id));
    db_column_copy(st, 1, cmd->agent_id, sizeof(cmd->agent_id));
    db_column_copy(st, 2, cmd->session_id, sizeof(cmd->session_id));
    db_column_copy(st, 3, cmd->kind, sizeof(cmd->kind));
    db_column_copy(st, 4, cmd->stop_reason, sizeof(cmd->stop_reason));
    db_column_copy(st, 5, cmd->state, sizeof(cmd->state));
    cmd->created_ms = sqlite3_column_int64(st, 6);
    cmd->sent_ms = sqlite3_column_int64(st, 7);
    cmd->acked_ms = sqlite3_column_int64(st, 8);
    db_column_copy(st, 9, cmd->name, sizeof(cmd->name));
    const char *spec = (const char *)sqlite3_column_text(st, 10);
    cmd->spec_json = NULL;
    if (spec && !(cmd->spec_json = strdup(spec)))
        return CP_ENOMEM;
    return CP_OK;
}

enum cp_err db_outbox_insert(struct db_conn *c, const struct db_command *cmd)
{
    sqlite3_stmt *st = db_conn_stmt(
        c, "INSERT INTO agent_outbox (id, agent_id, session_id, kind, stop_reason, state,"
           " created_ms, sent_ms, acked_ms) VALUES (?1, ?2, ?3, ?4, NULLIF(?5, ''), ?6, ?7,"
           " NULLIF(?8, 0), NULLIF(?9, 0))");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, cmd->id) || db_bind_text(st, 2, cmd->agent_id) ||
        db_bind_text(st, 3, cmd->session_id) || db_bind_text(st, 4, cmd->kind) ||
        db_bind_text(st, 5, cmd->stop_reason) || db_bind_text(st, 6, cmd->state))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 7, cmd->created_ms);
    sqlite3_bind_int64(st, 8, cmd->sent_ms);
    sqlite3_bind_int64(st, 9, cmd->acked_ms);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

enum cp_err db_outbox_get(struct db_conn *c, const char *id, struct db_command *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_conn_stmt(c, COMMAND_SELECT " WHERE o.id = ?1");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    return db_row_one(st, read_row, out);
}

static enum cp_err step_count(struct db_conn *c, sqlite3_stmt *st, int *changed)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_err(rc);
    if (changed)
        *changed = sqlite3_changes(db_conn_handle(c));
    return CP_OK;
}

enum cp_err db_outbox_mark_sent(struct db_conn *c, const char *id, int64_t now_ms)
{
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE agent_outbox SET state = 'sent', sent_ms = ?2"
                                       " WHERE id = ?1 AND state <> 'acked'");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 2, now_ms);
    return step_count(c, st, NULL);
}

enum cp_err db_outbox_ack(struct db_conn *c, const char *id, int64_t now_ms, int *changed)
{
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE agent_outbox SET state = 'acked', acked_ms = ?2"
                                       " WHERE id = ?1 AND state <> 'acked'");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 2, now_ms);
    return step_count(c, st, changed);
}

enum cp_err db_outbox_ack_session(struct db_conn *c, const char *session_id, const char *agent_id,
                                  const char *kind, int64_t now_ms)
{
    sqlite3_stmt *st = db_conn_stmt(c, "UPDATE agent_outbox SET state = 'acked', acked_ms = ?2"
                                       " WHERE session_id = ?1 AND state <> 'acked'"
                                       " AND (?3 IS NULL OR kind = ?3)"
                                       " AND (?4 IS NULL OR agent_id = ?4)");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, session_id) || db_bind_text(st, 3, kind) ||
        db_bind_text(st, 4, agent_id))
        return CP_ENOMEM;
    sqlite3_bind_int64(st, 2, now_ms);
    return step_count(c, st, NULL);
}

struct visit {
    db_command_each_fn each;
    void *arg;
};

static enum cp_err visit_row(void *row, void *arg)
{
    struct visit *v = arg;
    return v->each(row, v->arg);
}

static void clear_row(void *row)
{
    db_command_clear(row);
}

static enum cp_err each_row(sqlite3_stmt *st, db_command_each_fn each, void *arg)
{
    struct visit v = {each, arg};
    struct db_command cmd;
    return db_row_each(st, read_row, &cmd, sizeof(cmd), visit_row, &v, clear_row);
}

enum cp_err db_outbox_list_owed(struct db_conn *c, const char *agent_id, db_command_each_fn each,
                                void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, COMMAND_SELECT " WHERE o.agent_id = ?1 AND o.state <>"
                                                      " 'acked' ORDER BY o.created_ms, o.id");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, agent_id))
        return CP_ENOMEM;
    return each_row(st, each, arg);
}

enum cp_err db_outbox_list_owed_by_capture(struct db_conn *c, int64_t capture_id,
                                           db_command_each_fn each, void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, COMMAND_SELECT " WHERE s.capture_id = ?1 AND o.state <>"
                                                      " 'acked' ORDER BY o.created_ms, o.id");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, capture_id);
    return each_row(st, each, arg);
}

enum cp_err db_outbox_prune(struct db_conn *c, int64_t before_ms, int limit, int *deleted)
{
    sqlite3_stmt *st = db_conn_stmt(c, "DELETE FROM agent_outbox WHERE id IN (SELECT id FROM"
                                       " agent_outbox WHERE state = 'acked' AND acked_ms < ?1"
                                       " ORDER BY acked_ms LIMIT ?2)");
    if (!st)
        return CP_EIO;
    sqlite3_bind_int64(st, 1, before_ms);
    sqlite3_bind_int(st, 2, limit);
    return step_count(c, st, deleted);
}
