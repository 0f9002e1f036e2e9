/*
 * The session timers, swept every few seconds: a start no agent acknowledged by the dispatch
 * deadline fails, and a running session past its time limit plus the backstop grace ends
 * Error/AgentStopped with a stop owed to its agent. Due times are columns of the session rows,
 * so they survive a restart. The same pass prunes commands acknowledged over a day ago.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/strutil.h"
#include "common/timefmt.h"
#include "core/core_int.h"
#include "core/ids.h"
#include "db/agent.h"

#define SWEEP_BATCH    64                   /* sessions ended per timer pass */
#define PRUNE_AFTER_MS (24LL * 3600 * 1000) /* acked commands kept this long */
#define PRUNE_BATCH    512

/* --- timers --- */

struct sweep_job {
    int64_t now, deadline_ms, grace_ms;
    struct db_session rows[SWEEP_BATCH];
    int n;
    int64_t watchers[2 * SWEEP_BATCH];
    int n_watchers;
    struct core_cmd_ids owed;
};

/* Collects first and updates after the walk: a table should not change under its own SELECT. */
static enum cp_err sweep_collect(const struct db_session *s, void *arg)
{
    struct sweep_job *job = arg;
    if (job->n < SWEEP_BATCH)
        job->rows[job->n++] = *s;
    return CP_OK;
}

static enum cp_err sweep_end(struct db_conn *c, struct sweep_job *job, struct db_session *s,
                             const char *message, const char *fail_code, const char *fail_msg)
{
    /* Its start may have reached the agent (or it runs there, silent): owe a stop. */
    enum cp_err err = db_outbox_ack_session(c, s->id, NULL, "start", job->now);
    if (err == CP_OK && (s->dispatched_ms || s->started_ms))
        err = core_owe(c, s->agent_id, s->id, "stop", "AgentStopped", job->now, &job->owed);
    if (err == CP_OK)
        err = core_end_session(c, s, NULL, "AgentStopped", message, job->now);
    int64_t w = 0;
    if (err == CP_OK)
        err = core_capture_aggregate(c, s->capture_id, job->now, fail_code, fail_msg, &w);
    if (err == CP_OK && w && job->n_watchers < (int)(sizeof(job->watchers) / sizeof(w)))
        job->watchers[job->n_watchers++] = w;
    return err;
}

static enum cp_err sweep_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct sweep_job *job = arg;
    job->n = 0;
    enum cp_err err = db_session_list_start_due(c, job->now - job->deadline_ms, sweep_collect, job);
    for (int i = 0; err == CP_OK && i < job->n; i++) {
        char msg[CP_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg),
                 "The agent did not start the capture within %lld s (not connected, or not "
                 "answering).",
                 (long long)(job->deadline_ms / 1000));
        struct db_capture cap;
        char fail[CP_ERROR_MESSAGE_MAX] = "";
        if (db_capture_get_by_id(c, job->rows[i].capture_id, &cap) == CP_OK)
            snprintf(fail, sizeof(fail),
                     "The agent serving target '%.300s' did not start the capture within %lld s "
                     "(not connected, or not answering).",
                     cap.target, (long long)(job->deadline_ms / 1000));
        db_capture_clear(&cap);
        err = sweep_end(c, job, &job->rows[i], msg, "AgentNotConnected", fail[0] ? fail : msg);
    }
    job->n = 0;
    if (err == CP_OK)
        err = db_session_list_backstop_due(c, job->now - job->grace_ms, sweep_collect, job);
    for (int i = 0; err == CP_OK && i < job->n; i++) {
        char msg[CP_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg),
                 "The agent reported no end within the session's time limit plus %lld s; the "
                 "server ended the session (the agent no longer answers for it).",
                 (long long)(job->grace_ms / 1000));
        log_info("component=sessions event=backstop session=%s agent=%s", job->rows[i].id,
                 job->rows[i].agent_id);
        err = sweep_end(c, job, &job->rows[i], msg, NULL, NULL);
    }
    int pruned = 0;
    if (err == CP_OK)
        err = db_outbox_prune(c, job->now - PRUNE_AFTER_MS, PRUNE_BATCH, &pruned);
    return err;
}

enum cp_err core_sessions_sweep(struct core *core, int64_t deadline_ms, int64_t grace_ms,
                                struct cp_error *e)
{
    struct sweep_job *job = calloc(1, sizeof(*job));
    if (!job)
        return CP_ENOMEM;
    job->now = timefmt_now_ms();
    job->deadline_ms = deadline_ms;
    job->grace_ms = grace_ms;
    enum cp_err err = db_store_write(core->store, sweep_run, job, e);
    if (err == CP_OK) {
        for (int i = 0; i < job->n_watchers; i++)
            core_cache_changed(core->cache, job->watchers[i]);
        core_cmd_ids_send(core, &job->owed);
    }
    core_cmd_ids_free(&job->owed);
    free(job);
    return err;
}
