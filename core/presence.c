/*
 * What a capture shows while its agent is away: a running session whose agent is not connected
 * is shown Unknown, and a change of an agent's connection invalidates the cached captures of
 * its sessions.
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

/* --- presence --- */

const char *core_session_shown_status(const struct db_session *s)
{
    return strcmp(s->status, "Running") == 0 && !s->agent_connected ? "Unknown" : s->status;
}

const char *core_capture_shown_status(const struct db_capture *cap)
{
    if (strcmp(cap->capture_status, "Running") != 0 || cap->n_sessions == 0)
        return cap->capture_status;
    for (size_t i = 0; i < cap->n_sessions; i++)
        if (strcmp(cap->sessions[i].status, "Running") == 0 && cap->sessions[i].agent_connected)
            return "Running";
    return "Unknown";
}

struct presence_job {
    const char *agent_id;
    int64_t watchers[64];
    int n;
    int all; /* too many to list: drop every cached entry's validity */
};

static enum cp_err presence_collect(const struct db_session *s, void *arg)
{
    struct presence_job *job = arg;
    for (int i = 0; i < job->n; i++)
        if (job->watchers[i] == s->watcher_id)
            return CP_OK;
    if (job->n < (int)(sizeof(job->watchers) / sizeof(job->watchers[0])))
        job->watchers[job->n++] = s->watcher_id;
    else
        job->all = 1;
    return CP_OK;
}

static enum cp_err presence_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct presence_job *job = arg;
    return db_session_list_live_by_agent(c, job->agent_id, presence_collect, job);
}

void core_agent_presence_changed(struct core *core, const char *agent_id)
{
    struct presence_job job;
    memset(&job, 0, sizeof(job));
    job.agent_id = agent_id;
    if (db_store_read(core->store, presence_run, &job, NULL) != CP_OK)
        job.all = 1;
    for (int i = 0; i < job.n; i++)
        core_cache_changed(core->cache, job.watchers[i]);
    if (job.all)
        for (int64_t slot = 0; slot < CORE_CACHE_SLOTS; slot++)
            core_cache_changed(core->cache, slot);
}
