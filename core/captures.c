/* Packet-capture session rules: create-only names, the per-region limit, dispatch through the
 * agent port, stop and delete, each recorded with its long-running operation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strutil.h"
#include "common/timefmt.h"
#include "core/core_int.h"

static enum cp_err capture_not_found(struct cp_error *e, const struct db_watcher *w,
                                     const char *name)
{
    char rid[DB_TARGET_MAX];
    core_resource_id(w, name, rid, sizeof(rid));
    return cp_fail(e, CP_ENOTFOUND, "NotFound", "", "Resource %s not found.", rid);
}

/* Finds the watcher (into w) and its capture `name` (into cap). */
static enum cp_err find_capture(struct db_conn *c, const struct core_watcher_ref *parent,
                                const char *name, struct db_watcher *w, struct db_capture *cap,
                                struct cp_error *e)
{
    memset(cap, 0, sizeof(*cap));
    enum cp_err err = core_find_watcher(c, parent, w, e);
    if (err != CP_OK)
        return err;
    char name_key[81];
    if (str_lower_copy(name_key, sizeof(name_key), name))
        err = CP_ENOTFOUND;
    else
        err = db_capture_get(c, w->id, name_key, cap);
    if (err == CP_ENOTFOUND)
        err = capture_not_found(e, w, name);
    if (err != CP_OK)
        db_watcher_clear(w);
    return err;
}

struct capture_create_job {
    const struct core_watcher_ref *parent;
    const struct core_capture_new *req;
    const struct core_capture_run *run;
    const struct core_precond *pre;
    struct db_capture *out;
    struct db_watcher *watcher;
    struct db_operation op;
};

static enum cp_err capture_create_checks(struct db_conn *c, struct capture_create_job *job,
                                         const char *name_key, struct cp_error *e)
{
    struct db_watcher *w = job->watcher;
    struct db_capture existing;
    enum cp_err err = db_capture_get(c, w->id, name_key, &existing);
    db_capture_clear(&existing);
    if (err == CP_OK) {
        if (job->pre && job->pre->if_none_match)
            return cp_fail(e, CP_EPRECOND, "PreconditionFailed", "",
                           "The condition specified by If-None-Match was not met.");
        return cp_fail(e, CP_EEXIST, "PacketCaptureAlreadyExists", "",
                       "A packet capture named '%s' already exists in network watcher '%s'. "
                       "Packet captures cannot be updated: delete it first or use another name.",
                       job->req->name, w->name);
    }
    if (err != CP_ENOTFOUND)
        return err;
    if (job->pre && job->pre->if_match)
        return cp_fail(e, CP_EPRECOND, "PreconditionFailed", "",
                       "The condition specified by If-Match was not met.");

    char sub_key[64];
    str_lower_copy(sub_key, sizeof(sub_key), w->sub);
    int64_t unfinished = 0;
    err = db_capture_count_unfinished(c, sub_key, w->region, &unfinished);
    if (err != CP_OK)
        return err;
    if (unfinished >= CORE_MAX_UNFINISHED_CAPTURES)
        return cp_fail(e, CP_EINVAL, "PacketCaptureCountLimitReached", "",
                       "Cannot run more than %d packet capture sessions for this subscription in "
                       "region '%s'. Stop or delete some first.",
                       CORE_MAX_UNFINISHED_CAPTURES, w->region);
    return CP_OK;
}

static enum cp_err capture_create_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct capture_create_job *job = arg;
    struct db_watcher *w = job->watcher;
    enum cp_err err = core_find_watcher(c, job->parent, w, e);
    if (err != CP_OK)
        return err;
    char name_key[81];
    if (str_lower_copy(name_key, sizeof(name_key), job->req->name))
        err = cp_fail(e, CP_EINVAL, "InvalidResourceName", "", "The name is too long.");
    if (err == CP_OK)
        err = capture_create_checks(c, job, name_key, e);
    if (err != CP_OK)
        goto fail;

    int64_t now = timefmt_now_ms();
    char rid[DB_TARGET_MAX];
    core_resource_id(w, job->req->name, rid, sizeof(rid));
    core_operation_init(&job->op, w, "capture.create", rid, job->req->api_version, now);

    struct db_capture *cap = job->out;
    memset(cap, 0, sizeof(*cap));
    cap->watcher_id = w->id;
    str_copy(cap->name, sizeof(cap->name), job->req->name);
    str_lower_copy(cap->sub_key, sizeof(cap->sub_key), w->sub);
    str_copy(cap->region, sizeof(cap->region), w->region);
    if (str_copy(cap->target, sizeof(cap->target), job->req->target)) {
        err = cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "properties.target",
                      "The target resource id is too long.");
        goto fail;
    }
    str_copy(cap->provisioning_state, sizeof(cap->provisioning_state), "Updating");
    str_copy(cap->capture_status, sizeof(cap->capture_status), "NotStarted");
    str_copy(cap->capture_errors_json, sizeof(cap->capture_errors_json), "[]");
    cap->unfinished = 1;
    str_copy(cap->create_operation_id, sizeof(cap->create_operation_id), job->op.id);
    cap->created_ms = cap->updated_ms = now;
    if (!(cap->properties_json = strdup(job->req->properties_json))) {
        err = CP_ENOMEM;
        goto fail;
    }
    err = db_capture_insert(c, cap);
    if (err == CP_OK)
        err = core_assign_sessions(c, cap, job->run, now, e);
    if (err == CP_OK)
        err = db_operation_insert(c, &job->op);
    if (err == CP_OK)
        err = core_touch_watcher(c, w, now);
    if (err == CP_OK)
        return CP_OK;
    db_capture_clear(cap);
fail:
    db_watcher_clear(w);
    return err;
}

enum cp_err core_capture_create(struct core *core, const struct core_watcher_ref *parent,
                                const struct core_capture_new *req, const struct core_precond *pre,
                                struct db_capture *out, struct db_watcher *watcher, char *op_id,
                                size_t op_id_size, struct cp_error *e)
{
    return core_capture_create_on(core, parent, req, NULL, pre, out, watcher, op_id, op_id_size, e);
}

enum cp_err core_capture_create_on(struct core *core, const struct core_watcher_ref *parent,
                                   const struct core_capture_new *req,
                                   const struct core_capture_run *run,
                                   const struct core_precond *pre, struct db_capture *out,
                                   struct db_watcher *watcher, char *op_id, size_t op_id_size,
                                   struct cp_error *e)
{
    static const struct core_capture_run vm = {0, NULL, 0, NULL, 0, 0};
    struct capture_create_job job = {.parent = parent,
                                     .req = req,
                                     .run = run ? run : &vm,
                                     .pre = pre,
                                     .out = out,
                                     .watcher = watcher};
    memset(out, 0, sizeof(*out));
    memset(watcher, 0, sizeof(*watcher));
    enum cp_err err = db_store_write(core->store, capture_create_run, &job, e);
    if (err != CP_OK)
        return err;
    str_copy(op_id, op_id_size, job.op.id);
    core_cache_changed(core->cache, watcher->id);
    /* Durable now; the agent side happens after the caller has its answer. */
    core_dispatch_push(core->dispatch, job.op.id);
    return CP_OK;
}

struct capture_get_job {
    const struct core_watcher_ref *parent;
    const char *name;
    struct db_capture *out;
    struct db_watcher *watcher;
};

static enum cp_err capture_get_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct capture_get_job *job = arg;
    enum cp_err err = find_capture(c, job->parent, job->name, job->watcher, job->out, e);
    if (err == CP_OK && (err = core_attach_sessions(c, job->out)) != CP_OK) {
        db_capture_clear(job->out);
        db_watcher_clear(job->watcher);
    }
    return err;
}

/* "sub/rg/watcher/capture", lower case: the cache key. Returns -1 when it does not fit. */
static int cache_key(const struct core_watcher_ref *parent, const char *name, char *out, size_t n)
{
    int len = snprintf(out, n, "%s/%s/%s/%s", parent->sub, parent->rg, parent->name, name);
    if (len < 0 || (size_t)len >= n)
        return -1;
    for (char *p = out; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return 0;
}

enum cp_err core_capture_get(struct core *core, const struct core_watcher_ref *parent,
                             const char *name, struct db_capture *out, struct db_watcher *watcher,
                             struct cp_error *e)
{
    char key[CORE_CACHE_KEY_MAX];
    int cacheable = cache_key(parent, name, key, sizeof(key)) == 0;
    if (cacheable && core_cache_get(core->cache, key, out, watcher))
        return CP_OK;
    uint64_t token = core_cache_token(core->cache);
    struct capture_get_job job = {parent, name, out, watcher};
    enum cp_err err = db_store_read(core->store, capture_get_run, &job, e);
    if (err == CP_OK && cacheable)
        core_cache_put(core->cache, key, token, out, watcher);
    return err;
}

static enum cp_err filters_add(const char *id, const char *expression, void *arg)
{
    struct core_session_filters *f = arg;
    void *more = realloc(f->v, (f->n + 1) * sizeof(*f->v));
    if (!more)
        return CP_ENOMEM;
    f->v = more;
    struct core_session_filter *x = &f->v[f->n];
    str_copy(x->session_id, sizeof(x->session_id), id);
    if (!(x->expression = strdup(expression)))
        return CP_ENOMEM;
    f->n++;
    return CP_OK;
}

struct capture_filters_job {
    int64_t capture_id;
    struct core_session_filters *out;
};

static enum cp_err capture_filters_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct capture_filters_job *job = arg;
    return db_session_filters_by_capture(c, job->capture_id, filters_add, job->out);
}

enum cp_err core_capture_filters(struct core *core, int64_t capture_id,
                                 struct core_session_filters *out, struct cp_error *e)
{
    memset(out, 0, sizeof(*out));
    struct capture_filters_job job = {capture_id, out};
    return db_store_read(core->store, capture_filters_run, &job, e);
}

void core_session_filters_clear(struct core_session_filters *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n; i++)
        free(f->v[i].expression);
    free(f->v);
    memset(f, 0, sizeof(*f));
}

const char *core_session_filter_of(const struct core_session_filters *f, const char *id)
{
    for (size_t i = 0; f && i < f->n; i++)
        if (strcmp(f->v[i].session_id, id) == 0)
            return f->v[i].expression;
    return NULL;
}

struct capture_list_job {
    const struct core_watcher_ref *parent;
    struct db_watcher *watcher;
    db_capture_each_fn each;
    void *arg;
    struct db_session *sessions; /* the watcher's, by capture id */
    size_t n_sessions, cap_sessions;
};

static enum cp_err list_collect_session(const struct db_session *s, void *arg)
{
    struct capture_list_job *job = arg;
    if (job->n_sessions == job->cap_sessions) {
        size_t cap = job->cap_sessions ? job->cap_sessions * 2 : 16;
        void *more = realloc(job->sessions, cap * sizeof(*job->sessions));
        if (!more)
            return CP_ENOMEM;
        job->sessions = more;
        job->cap_sessions = cap;
    }
    job->sessions[job->n_sessions++] = *s;
    return CP_OK;
}

/* Hands each capture on with its sessions (borrowed from the job's array for the call). */
static enum cp_err list_visit(const struct db_capture *cap, void *arg)
{
    struct capture_list_job *job = arg;
    size_t lo = 0, hi = job->n_sessions;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (job->sessions[mid].capture_id < cap->id)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < job->n_sessions && job->sessions[end].capture_id == cap->id)
        end++;
    struct db_capture view = *cap;
    view.sessions = end > lo ? &job->sessions[lo] : NULL;
    view.n_sessions = end - lo;
    return job->each(&view, job->arg);
}

static enum cp_err capture_list_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct capture_list_job *job = arg;
    enum cp_err err = core_find_watcher(c, job->parent, job->watcher, e);
    if (err == CP_OK)
        err = db_session_list_by_watcher(c, job->watcher->id, list_collect_session, job);
    if (err == CP_OK)
        err = db_capture_list(c, job->watcher->id, list_visit, job);
    return err;
}

enum cp_err core_capture_list(struct core *core, const struct core_watcher_ref *parent,
                              struct db_watcher *watcher, db_capture_each_fn each, void *arg,
                              struct cp_error *e)
{
    struct capture_list_job job = {parent, watcher, each, arg, NULL, 0, 0};
    memset(watcher, 0, sizeof(*watcher));
    enum cp_err err = db_store_read(core->store, capture_list_run, &job, e);
    free(job.sessions);
    return err;
}

struct capture_end_job {
    const struct core_watcher_ref *parent;
    const char *name;
    const struct core_precond *pre;
    const char *api_version;
    struct db_operation *op;
    int is_delete;
    int64_t watcher_id;       /* set when the job changed something */
    struct core_cmd_ids owed; /* stops owed to agents, sent after the commit */
};

/* Stop and delete. A capture whose sessions still run gets a stop owed to each of their agents;
 * a stop then waits for the last session to end (its Location answers 202 until then), while a
 * delete removes the capture at once (the stops outlive it). Anything else has nothing to stop:
 * stop succeeds at once (200 null), delete removes the row (204). */
static enum cp_err capture_end_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct capture_end_job *job = arg;
    struct db_watcher w;
    struct db_capture cap;
    enum cp_err err = find_capture(c, job->parent, job->name, &w, &cap, e);
    if (err == CP_ENOTFOUND && job->is_delete && job->pre && job->pre->if_match &&
        strcmp(e->code, "NotFound") == 0)
        return cp_fail(e, CP_EPRECOND, "PreconditionFailed", "",
                       "The condition specified by If-Match was not met.");
    if (err != CP_OK)
        return err;
    if (job->is_delete && job->pre && job->pre->if_match &&
        !core_etag_listed(job->pre->if_match, w.etag)) {
        err = cp_fail(e, CP_EPRECOND, "PreconditionFailed", "",
                      "The condition specified by If-Match was not met.");
        goto cleanup;
    }
    int64_t now = timefmt_now_ms();
    if (!job->is_delete && cap.stop_operation_id[0]) {
        /* A stop already waits for the agents: this request follows the same operation. */
        char sub_key[64];
        str_lower_copy(sub_key, sizeof(sub_key), w.sub);
        err = db_operation_get(c, cap.stop_operation_id, sub_key, job->op);
        goto cleanup;
    }
    char rid[DB_TARGET_MAX];
    core_resource_id(&w, cap.name, rid, sizeof(rid));
    core_operation_init(job->op, &w, job->is_delete ? "capture.delete" : "capture.stop", rid,
                        job->api_version, now);
    int running = 0;
    err = core_sessions_stop(c, &cap, job->is_delete, job->op->id, now, &job->owed, &running);
    if (err != CP_OK)
        goto cleanup;
    if (!job->is_delete && running) {
        /* The agents stop it; the last session's end ends this operation. */
        err = db_capture_set_agent(c, cap.id, "", job->op->id);
        if (err == CP_OK)
            err = db_operation_insert(c, job->op);
        if (err == CP_OK)
            err = core_capture_aggregate(c, cap.id, now, NULL, NULL, NULL);
        if (err == CP_OK)
            err = core_touch_watcher(c, &w, now);
        if (err == CP_OK)
            job->watcher_id = w.id;
        goto cleanup;
    }
    str_copy(job->op->status, sizeof(job->op->status), "Succeeded");
    job->op->end_ms = now;
    if (job->is_delete) {
        job->op->result_status = 204;
        err = db_capture_delete(c, cap.id);
    } else {
        job->op->result_status = 200;
        if (!(job->op->result_json = strdup("null")))
            err = CP_ENOMEM;
        if (err == CP_OK)
            err = core_capture_aggregate(c, cap.id, now, NULL, NULL, NULL);
    }
    if (err == CP_OK)
        err = db_operation_insert(c, job->op);
    if (err == CP_OK)
        err = core_touch_watcher(c, &w, now);
    if (err == CP_OK)
        job->watcher_id = w.id;
cleanup:
    db_capture_clear(&cap);
    db_watcher_clear(&w);
    return err;
}

static enum cp_err capture_end(struct core *core, struct capture_end_job *job, struct cp_error *e)
{
    memset(job->op, 0, sizeof(*job->op));
    memset(&job->owed, 0, sizeof(job->owed));
    enum cp_err err = db_store_write(core->store, capture_end_run, job, e);
    if (err != CP_OK) {
        db_operation_clear(job->op);
        core_cmd_ids_free(&job->owed);
        return err;
    }
    if (job->watcher_id)
        core_cache_changed(core->cache, job->watcher_id);
    core_cmd_ids_send(core, &job->owed);
    return CP_OK;
}

enum cp_err core_capture_delete(struct core *core, const struct core_watcher_ref *parent,
                                const char *name, const struct core_precond *pre,
                                const char *api_version, struct db_operation *op,
                                struct cp_error *e)
{
    struct capture_end_job job = {.parent = parent,
                                  .name = name,
                                  .pre = pre,
                                  .api_version = api_version,
                                  .op = op,
                                  .is_delete = 1};
    return capture_end(core, &job, e);
}

enum cp_err core_capture_stop(struct core *core, const struct core_watcher_ref *parent,
                              const char *name, const char *api_version, struct db_operation *op,
                              struct cp_error *e)
{
    struct capture_end_job job = {
        .parent = parent, .name = name, .api_version = api_version, .op = op};
    return capture_end(core, &job, e);
}

struct operation_get_job {
    const char *sub;
    const char *id;
    struct db_operation *out;
};

static enum cp_err operation_get_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct operation_get_job *job = arg;
    char sub_key[64], id_key[DB_OP_ID_MAX];
    if (str_lower_copy(sub_key, sizeof(sub_key), job->sub) ||
        str_lower_copy(id_key, sizeof(id_key), job->id))
        return cp_fail(e, CP_ENOTFOUND, "NotFound", "", "Operation %.64s not found.", job->id);
    enum cp_err err = db_operation_get(c, id_key, sub_key, job->out);
    if (err == CP_ENOTFOUND)
        return cp_fail(e, CP_ENOTFOUND, "NotFound", "", "Operation %s not found.", job->id);
    return err;
}

enum cp_err core_operation_get(struct core *core, const char *sub, const char *id,
                               struct db_operation *out, struct cp_error *e)
{
    struct operation_get_job job = {sub, id, out};
    return db_store_read(core->store, operation_get_run, &job, e);
}
