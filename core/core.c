/* The core object, etag matching and helpers shared by core/'s files. */
#include "core/core_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/strutil.h"
#include "core/ids.h"

enum cp_err core_new(struct db_store *store, const struct core_agent_port *agents,
                     struct core **out)
{
    struct core *core = calloc(1, sizeof(*core));
    if (!core)
        return CP_ENOMEM;
    core->store = store;
    core->agents = agents;
    if (!(core->cache = core_cache_new())) {
        free(core);
        return CP_ENOMEM;
    }
    enum cp_err err = core_dispatch_start(core, &core->dispatch);
    if (err != CP_OK) {
        core_cache_free(core->cache);
        free(core);
        return err;
    }
    *out = core;
    return CP_OK;
}

void core_free(struct core *core)
{
    if (!core)
        return;
    core_dispatch_stop(core->dispatch);
    core_cache_free(core->cache);
    free(core);
}

void core_drain(struct core *core)
{
    core_dispatch_drain(core->dispatch);
}

struct db_store *core_store(struct core *core)
{
    return core->store;
}

int core_etag_listed(const char *header, const char *etag)
{
    if (!header)
        return 0;
    const char *p = header;
    size_t elen = strlen(etag);
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (!*p)
            break;
        if (*p == '*')
            return 1;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        int quoted = *p == '"';
        if (quoted)
            p++;
        const char *start = p;
        while (*p && *p != (quoted ? '"' : ',') && *p != ' ')
            p++;
        if ((size_t)(p - start) == elen && strncasecmp(start, etag, elen) == 0)
            return 1;
        while (*p && *p != ',')
            p++;
    }
    return 0;
}

enum cp_err core_keys_of(const struct core_watcher_ref *ref, struct core_keys *k)
{
    if (str_lower_copy(k->sub, sizeof(k->sub), ref->sub) ||
        str_lower_copy(k->rg, sizeof(k->rg), ref->rg) ||
        str_lower_copy(k->name, sizeof(k->name), ref->name ? ref->name : ""))
        return CP_EINVAL;
    return CP_OK;
}

enum cp_err core_find_watcher(struct db_conn *c, const struct core_watcher_ref *ref,
                              struct db_watcher *out, struct cp_error *e)
{
    struct core_keys k;
    if (core_keys_of(ref, &k) != CP_OK)
        return cp_fail(e, CP_EINVAL, "InvalidResourceName", "", "A name is too long.");
    enum cp_err err = db_watcher_get(c, k.sub, k.rg, k.name, out);
    if (err == CP_ENOTFOUND)
        return cp_fail(e, CP_ENOTFOUND, "ResourceNotFound", "",
                       "The Resource 'Microsoft.Network/networkWatchers/%s' under resource group "
                       "'%s' was not found.",
                       ref->name, ref->rg);
    return err;
}

void core_resource_id(const struct db_watcher *w, const char *capture, char *out, size_t n)
{
    int len = snprintf(out, n,
                       "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/"
                       "networkWatchers/%s",
                       w->sub, w->rg, w->name);
    if (capture && len > 0 && (size_t)len < n)
        snprintf(out + len, n - (size_t)len, "/packetCaptures/%s", capture);
}

void core_operation_init(struct db_operation *op, const struct db_watcher *w, const char *kind,
                         const char *resource_id, const char *api_version, int64_t now_ms)
{
    memset(op, 0, sizeof(*op));
    core_guid(op->id);
    str_lower_copy(op->sub_key, sizeof(op->sub_key), w->sub);
    str_copy(op->region, sizeof(op->region), w->region);
    str_copy(op->kind, sizeof(op->kind), kind);
    str_copy(op->resource_id, sizeof(op->resource_id), resource_id);
    str_copy(op->status, sizeof(op->status), "InProgress");
    str_copy(op->api_version, sizeof(op->api_version), api_version);
    op->start_ms = now_ms;
}

enum cp_err core_touch_watcher(struct db_conn *c, struct db_watcher *w, int64_t now_ms)
{
    core_guid(w->etag);
    w->version++;
    w->updated_ms = now_ms;
    return db_watcher_touch(c, w->id, w->etag, now_ms);
}

struct count_job {
    db_capture_count_fn each;
    void *arg;
};

static enum cp_err count_job_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct count_job *job = arg;
    return db_capture_count_by_state(c, job->each, job->arg);
}

enum cp_err core_capture_counts(struct core *core, db_capture_count_fn each, void *arg)
{
    struct count_job job = {each, arg};
    return db_store_read(core->store, count_job_run, &job, NULL);
}

struct stats_job {
    enum core_agent_stat which;
    db_stats_fn each;
    void *arg;
};

static enum cp_err stats_job_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct stats_job *job = arg;
    switch (job->which) {
    case CORE_STAT_SESSIONS:
        return db_stats_live_sessions(c, job->each, job->arg);
    case CORE_STAT_COMMANDS:
        return db_stats_owed_commands(c, job->each, job->arg);
    case CORE_STAT_AGENTS:
        return db_stats_agents(c, job->each, job->arg);
    }
    return CP_EINVAL;
}

enum cp_err core_agent_stats(struct core *core, enum core_agent_stat which, db_stats_fn each,
                             void *arg)
{
    struct stats_job job = {which, each, arg};
    return db_store_read(core->store, stats_job_run, &job, NULL);
}
