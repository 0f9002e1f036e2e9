/*
 * Reconciliation on an agent's hello: sessions the store has running that the agent no longer
 * holds end Error/AgentStopped; sessions the agent runs that the server has stopped, deleted or
 * never knew are listed in the welcome's stop.
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

/* --- reconciliation --- */

struct reconcile_job {
    const char *agent_id;
    const char **held; /* running + finished, sorted */
    size_t n_held;
    const char *const *running;
    size_t n_running;
    char (*stop)[DB_SESSION_ID_MAX];
    size_t n_max, n_stop;
    struct core_sessions_acc live; /* the agent's sessions not ended */
    struct db_command *owed;       /* stops owed to it (no spec) */
    size_t n_owed, cap_owed;
    int64_t watchers[64];
    int n_watchers, all_watchers;
};

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int held(const struct reconcile_job *job, const char *id)
{
    return job->n_held && bsearch(&id, job->held, job->n_held, sizeof(*job->held), cmp_str) != NULL;
}

static enum cp_err collect_owed_stop(const struct db_command *cmd, void *arg)
{
    struct reconcile_job *job = arg;
    if (strcmp(cmd->kind, "stop") != 0)
        return CP_OK;
    if (job->n_owed == job->cap_owed) {
        size_t cap = job->cap_owed ? job->cap_owed * 2 : 8;
        void *more = realloc(job->owed, cap * sizeof(*job->owed));
        if (!more)
            return CP_ENOMEM;
        job->owed = more;
        job->cap_owed = cap;
    }
    job->owed[job->n_owed] = *cmd;
    job->owed[job->n_owed++].spec_json = NULL;
    return CP_OK;
}

static void note_watcher(struct reconcile_job *job, int64_t w)
{
    for (int i = 0; i < job->n_watchers; i++)
        if (job->watchers[i] == w)
            return;
    if (job->n_watchers < (int)(sizeof(job->watchers) / sizeof(w)))
        job->watchers[job->n_watchers++] = w;
    else
        job->all_watchers = 1;
}

static enum cp_err reconcile_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct reconcile_job *job = arg;
    int64_t now = timefmt_now_ms();
    job->live.n = 0;
    job->n_owed = 0;
    job->n_stop = 0;
    job->n_watchers = 0;
    enum cp_err err =
        db_session_list_live_by_agent(c, job->agent_id, core_collect_session, &job->live);
    if (err == CP_OK)
        err = db_outbox_list_owed(c, job->agent_id, collect_owed_stop, job);
    /* Running here, unknown there: the agent lost it (restarted without its state, say). */
    for (size_t i = 0; err == CP_OK && i < job->live.n; i++) {
        struct db_session *s = &job->live.v[i];
        if (strcmp(s->status, "Running") != 0 || held(job, s->id))
            continue;
        log_info("component=sessions event=reconciled_lost session=%s agent=%s", s->id,
                 job->agent_id);
        err = db_outbox_ack_session(c, s->id, job->agent_id, NULL, now);
        if (err == CP_OK)
            err = core_end_session(
                c, s, NULL, "AgentStopped",
                "The agent no longer holds this session: it did not list it when it "
                "reconnected (restarted without its state?).",
                now);
        int64_t w = 0;
        if (err == CP_OK)
            err = core_capture_aggregate(c, s->capture_id, now, NULL, NULL, &w);
        if (w)
            note_watcher(job, w);
    }
    /* A stop for what the agent does not hold has nothing left to do. */
    for (size_t i = 0; err == CP_OK && i < job->n_owed; i++)
        if (!held(job, job->owed[i].session_id))
            err = db_outbox_ack(c, job->owed[i].id, now, NULL);
    /* Running there, not here: stopped, deleted or never known here. */
    for (size_t i = 0; err == CP_OK && i < job->n_running; i++) {
        struct db_session s;
        enum cp_err found = db_session_get(c, job->running[i], &s);
        if (found != CP_OK && found != CP_ENOTFOUND) {
            err = found;
            break;
        }
        int alive = found == CP_OK && strcmp(s.agent_id, job->agent_id) == 0 &&
                    (strcmp(s.status, "Running") == 0 || strcmp(s.status, "NotStarted") == 0);
        if (!alive && job->n_stop < job->n_max)
            str_copy(job->stop[job->n_stop++], DB_SESSION_ID_MAX, job->running[i]);
    }
    return err;
}

enum cp_err core_agent_reconcile(struct core *core, const char *agent_id,
                                 const char *const *running, size_t n_running,
                                 const char *const *finished, size_t n_finished,
                                 char (*stop)[DB_SESSION_ID_MAX], size_t n_max, size_t *n_stop,
                                 struct cp_error *e)
{
    *n_stop = 0;
    struct reconcile_job job;
    memset(&job, 0, sizeof(job));
    job.agent_id = agent_id;
    job.running = running;
    job.n_running = n_running;
    job.stop = stop;
    job.n_max = n_max;
    job.held = malloc((n_running + n_finished + 1) * sizeof(*job.held));
    if (!job.held)
        return CP_ENOMEM;
    for (size_t i = 0; i < n_running; i++)
        job.held[job.n_held++] = running[i];
    for (size_t i = 0; i < n_finished; i++)
        job.held[job.n_held++] = finished[i];
    qsort(job.held, job.n_held, sizeof(*job.held), cmp_str);
    enum cp_err err = db_store_write(core->store, reconcile_run, &job, e);
    if (err == CP_OK) {
        *n_stop = job.n_stop;
        for (int i = 0; i < job.n_watchers; i++)
            core_cache_changed(core->cache, job.watchers[i]);
        if (job.all_watchers)
            for (int64_t slot = 0; slot < CORE_CACHE_SLOTS; slot++)
                core_cache_changed(core->cache, slot);
    }
    free(job.held);
    free(job.live.v);
    free(job.owed);
    return err;
}
