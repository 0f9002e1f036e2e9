/* Network watcher rules: one per subscription and region, ARM conditional requests, delete
 * with its captures. */
#include <stdlib.h>
#include <string.h>

#include "common/strutil.h"
#include "common/timefmt.h"
#include "core/core_int.h"
#include "core/ids.h"

struct watcher_put_job {
    const struct core_watcher_ref *ref;
    const char *region;
    const char *tags_json;
    const struct core_precond *pre;
    struct db_watcher *out;
    int created;
};

static enum cp_err precond_failed(struct cp_error *e, const char *what)
{
    return cp_fail(e, CP_EPRECOND, "PreconditionFailed", "",
                   "The condition specified by %s was not met.", what);
}

/* The ARM table for PUT/PATCH/DELETE: If-Match on an absent resource or with another etag
 * fails; If-None-Match: * fails on a present one. */
static enum cp_err check_precond(const struct core_precond *pre, const struct db_watcher *w,
                                 struct cp_error *e)
{
    if (!pre)
        return CP_OK;
    if (pre->if_match && (!w || !core_etag_listed(pre->if_match, w->etag)))
        return precond_failed(e, "If-Match");
    if (pre->if_none_match && w && core_etag_listed(pre->if_none_match, w->etag))
        return precond_failed(e, "If-None-Match");
    return CP_OK;
}

static enum cp_err watcher_put_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct watcher_put_job *job = arg;
    struct core_keys k;
    if (core_keys_of(job->ref, &k) != CP_OK)
        return cp_fail(e, CP_EINVAL, "InvalidResourceName", "", "A name is too long.");
    struct db_watcher cur;
    enum cp_err err = db_watcher_get(c, k.sub, k.rg, k.name, &cur);
    if (err != CP_OK && err != CP_ENOTFOUND)
        return err;
    int exists = err == CP_OK;
    int64_t now = timefmt_now_ms();

    err = check_precond(job->pre, exists ? &cur : NULL, e);
    if (err != CP_OK)
        goto cleanup;

    if (exists) {
        if (strcmp(cur.region, job->region) != 0) {
            err = cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "location",
                          "The location of network watcher '%s' is '%s' and cannot be changed.",
                          cur.name, cur.region);
            goto cleanup;
        }
        char *tags = strdup(job->tags_json);
        if (!tags) {
            err = CP_ENOMEM;
            goto cleanup;
        }
        free(cur.tags_json);
        cur.tags_json = tags;
        /* The last casing the caller used is the one returned (ARM rule). */
        str_copy(cur.rg, sizeof(cur.rg), job->ref->rg);
        str_copy(cur.name, sizeof(cur.name), job->ref->name);
        int64_t seen = cur.version;
        core_guid(cur.etag);
        cur.version++;
        cur.updated_ms = now;
        err = db_watcher_update(c, &cur, seen);
        if (err != CP_OK)
            goto cleanup;
        *job->out = cur;
        job->created = 0;
        return CP_OK;
    }

    struct db_watcher other;
    err = db_watcher_get_by_region(c, k.sub, job->region, &other);
    db_watcher_clear(&other);
    if (err == CP_OK)
        return cp_fail(e, CP_EINVAL, "NetworkWatcherCountLimitReached", "",
                       "Cannot create more than 1 network watchers for this subscription in this "
                       "region.");
    if (err != CP_ENOTFOUND)
        return err;

    struct db_watcher w;
    memset(&w, 0, sizeof(w));
    str_copy(w.sub, sizeof(w.sub), job->ref->sub);
    str_copy(w.rg, sizeof(w.rg), job->ref->rg);
    str_copy(w.name, sizeof(w.name), job->ref->name);
    str_copy(w.region, sizeof(w.region), job->region);
    core_guid(w.etag);
    w.version = 1;
    w.created_ms = w.updated_ms = now;
    if (!(w.tags_json = strdup(job->tags_json)))
        return CP_ENOMEM;
    err = db_watcher_insert(c, &w);
    if (err != CP_OK) {
        db_watcher_clear(&w);
        return err;
    }
    *job->out = w;
    job->created = 1;
    return CP_OK;

cleanup:
    if (exists)
        db_watcher_clear(&cur);
    return err;
}

enum cp_err core_watcher_put(struct core *core, const struct core_watcher_ref *ref,
                             const char *region, const char *tags_json,
                             const struct core_precond *pre, struct db_watcher *out, int *created,
                             struct cp_error *e)
{
    struct watcher_put_job job = {ref, region, tags_json, pre, out, 0};
    memset(out, 0, sizeof(*out));
    enum cp_err err = db_store_write(core->store, watcher_put_run, &job, e);
    if (err != CP_OK) {
        db_watcher_clear(out);
        return err;
    }
    core_cache_changed(core->cache, out->id);
    *created = job.created;
    return CP_OK;
}

struct watcher_get_job {
    const struct core_watcher_ref *ref;
    struct db_watcher *out;
};

static enum cp_err watcher_get_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct watcher_get_job *job = arg;
    return core_find_watcher(c, job->ref, job->out, e);
}

enum cp_err core_watcher_get(struct core *core, const struct core_watcher_ref *ref,
                             struct db_watcher *out, struct cp_error *e)
{
    struct watcher_get_job job = {ref, out};
    return db_store_read(core->store, watcher_get_run, &job, e);
}

struct watcher_patch_job {
    const struct core_watcher_ref *ref;
    const char *tags_json;
    const struct core_precond *pre;
    struct db_watcher *out;
};

static enum cp_err watcher_patch_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct watcher_patch_job *job = arg;
    struct db_watcher w;
    enum cp_err err = core_find_watcher(c, job->ref, &w, e);
    if (err != CP_OK)
        return err;
    err = check_precond(job->pre, &w, e);
    char *tags = err == CP_OK ? strdup(job->tags_json) : NULL;
    if (err == CP_OK && !tags)
        err = CP_ENOMEM;
    if (err != CP_OK) {
        db_watcher_clear(&w);
        return err;
    }
    free(w.tags_json);
    w.tags_json = tags;
    int64_t seen = w.version;
    core_guid(w.etag);
    w.version++;
    w.updated_ms = timefmt_now_ms();
    err = db_watcher_update(c, &w, seen);
    if (err != CP_OK) {
        db_watcher_clear(&w);
        return err;
    }
    *job->out = w;
    return CP_OK;
}

enum cp_err core_watcher_patch_tags(struct core *core, const struct core_watcher_ref *ref,
                                    const char *tags_json, const struct core_precond *pre,
                                    struct db_watcher *out, struct cp_error *e)
{
    struct watcher_patch_job job = {ref, tags_json, pre, out};
    memset(out, 0, sizeof(*out));
    enum cp_err err = db_store_write(core->store, watcher_patch_run, &job, e);
    if (err == CP_OK)
        core_cache_changed(core->cache, out->id);
    return err;
}

struct watcher_delete_job {
    const struct core_watcher_ref *ref;
    const struct core_precond *pre;
    const char *api_version;
    struct db_operation *op;
    int64_t watcher_id; /* the deleted watcher */
};

static enum cp_err watcher_delete_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct watcher_delete_job *job = arg;
    struct db_watcher w;
    enum cp_err err = core_find_watcher(c, job->ref, &w, e);
    if (err == CP_ENOTFOUND && job->pre && job->pre->if_match)
        return precond_failed(e, "If-Match");
    if (err != CP_OK)
        return err;
    err = check_precond(job->pre, &w, e);
    if (err == CP_OK) {
        char rid[DB_TARGET_MAX];
        core_resource_id(&w, NULL, rid, sizeof(rid));
        int64_t now = timefmt_now_ms();
        core_operation_init(job->op, &w, "watcher.delete", rid, job->api_version, now);
        /* No capture runs yet (no agents), so the watcher and its captures go at once and the
         * operation is recorded as already Succeeded. */
        str_copy(job->op->status, sizeof(job->op->status), "Succeeded");
        job->op->result_status = 204;
        job->op->end_ms = now;
        err = db_watcher_delete(c, w.id);
        job->watcher_id = w.id;
        if (err == CP_OK)
            err = db_operation_insert(c, job->op);
    }
    db_watcher_clear(&w);
    return err;
}

enum cp_err core_watcher_delete(struct core *core, const struct core_watcher_ref *ref,
                                const struct core_precond *pre, const char *api_version,
                                struct db_operation *op, struct cp_error *e)
{
    struct watcher_delete_job job = {ref, pre, api_version, op, 0};
    memset(op, 0, sizeof(*op));
    enum cp_err err = db_store_write(core->store, watcher_delete_run, &job, e);
    if (err == CP_OK)
        core_cache_changed(core->cache, job.watcher_id);
    return err;
}

struct watcher_list_job {
    const char *sub;
    const char *rg;
    db_watcher_each_fn each;
    void *arg;
};

static enum cp_err watcher_list_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct watcher_list_job *job = arg;
    char sub_key[64], rg_key[91];
    if (str_lower_copy(sub_key, sizeof(sub_key), job->sub) ||
        (job->rg && str_lower_copy(rg_key, sizeof(rg_key), job->rg)))
        return CP_EINVAL;
    return db_watcher_list(c, sub_key, job->rg ? rg_key : NULL, job->each, job->arg);
}

enum cp_err core_watcher_list(struct core *core, const char *sub, const char *rg,
                              db_watcher_each_fn each, void *arg, struct cp_error *e)
{
    struct watcher_list_job job = {sub, rg, each, arg};
    return db_store_read(core->store, watcher_list_run, &job, e);
}
