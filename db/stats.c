/* The counts behind stats.h. */
#include "db/stats.h"

#include <sqlite3.h>

/* Steps st, handing each row's (text, text-or-empty, count) to each. */
static enum cp_err each_group(sqlite3_stmt *st, int has_label2, db_stats_fn each, void *arg)
{
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *l1 = (const char *)sqlite3_column_text(st, 0);
        const char *l2 = has_label2 ? (const char *)sqlite3_column_text(st, 1) : "";
        each(l1 ? l1 : "", l2 ? l2 : "", sqlite3_column_int64(st, has_label2 ? 2 : 1), arg);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

enum cp_err db_stats_live_sessions(struct db_conn *c, db_stats_fn each, void *arg)
{
    /* Two counts, each a range over its partial index (capture_sessions_start_due and
     * capture_sessions_backstop_due hold exactly these rows): without the range the planner
     * scans capture_sessions_by_agent, every session ever. Every NotStarted session has a
     * created_ms and every Running one a backstop_ms (the backstop sweep relies on it too). */
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT 'NotStarted', count(*) FROM capture_sessions"
                                       " WHERE status = 'NotStarted' AND created_ms >= 0"
                                       " UNION ALL"
                                       " SELECT 'Running', count(*) FROM capture_sessions"
                                       " WHERE status = 'Running' AND backstop_ms >= 0");
    if (!st)
        return CP_EIO;
    return each_group(st, 0, each, arg);
}

enum cp_err db_stats_owed_commands(struct db_conn *c, db_stats_fn each, void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT kind, state, count(*) FROM agent_outbox"
                                       " WHERE state <> 'acked' GROUP BY 1, 2 ORDER BY 1, 2");
    if (!st)
        return CP_EIO;
    return each_group(st, 1, each, arg);
}

enum cp_err db_stats_agents(struct db_conn *c, db_stats_fn each, void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(
        c,
        "SELECT 'connected', count(*) FROM agents WHERE revoked_ms IS NULL AND connected = 1"
        " UNION ALL"
        " SELECT 'disconnected', count(*) FROM agents WHERE revoked_ms IS NULL AND connected = 0");
    if (!st)
        return CP_EIO;
    return each_group(st, 0, each, arg);
}
