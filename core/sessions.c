/*
 * Captures run by agents: which agent serves a target, the commands to (re)send, and the
 * agent's reports (start acknowledged, capture ended), each applied in one store job together
 * with the agent's report sequence number, so a report repeated after a reconnect is applied
 * once. The agent may speak only for captures assigned to it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/strutil.h"
#include "common/timefmt.h"
#include "core/core_int.h"
#include "db/agent.h"

enum cp_err core_assign_agent(struct db_conn *c, struct db_capture *cap)
{
    char key[DB_TARGET_MAX];
    if (str_lower_copy(key, sizeof(key), cap->target) != 0)
        return CP_OK;
    struct db_agent a;
    enum cp_err err = db_agent_get_active(c, key, "", &a);
    if (err == CP_ENOTFOUND)
        return CP_OK; /* no agent registered: the dispatcher fails the create */
    if (err != CP_OK)
        return err;
    str_copy(cap->agent_id, sizeof(cap->agent_id), a.id);
    db_agent_clear(&a);
    return db_capture_set_agent(c, cap->id, cap->agent_id, "");
}

struct pending_job {
    const char *agent_id;
    db_capture_each_fn each;
    void *arg;
};

static enum cp_err pending_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct pending_job *job = arg;
    return db_capture_list_pending(c, job->agent_id, job->each, job->arg);
}

enum cp_err core_capture_pending(struct core *core, const char *agent_id, db_capture_each_fn each,
                                 void *arg, struct cp_error *e)
{
    struct pending_job job = {agent_id, each, arg};
    return db_store_read(core->store, pending_run, &job, e);
}

/* Ends an operation (ignoring one that already ended). */
static enum cp_err finish_op(struct db_conn *c, const char *id, const char *status,
                             const char *code, const char *message, int result_status,
                             const char *result_json, int64_t now)
{
    struct db_operation op;
    memset(&op, 0, sizeof(op));
    str_copy(op.id, sizeof(op.id), id);
    str_copy(op.status, sizeof(op.status), status);
    str_copy(op.error_code, sizeof(op.error_code), code ? code : "");
    str_copy(op.error_message, sizeof(op.error_message), message ? message : "");
    op.result_status = result_status;
    op.result_json = (char *)(uintptr_t)result_json;
    op.end_ms = now;
    enum cp_err err = db_operation_finish(c, &op);
    return err == CP_ENOTFOUND ? CP_OK : err;
}

struct report_job {
    const char *agent_id;
    const char *capture_guid;
    int ok;
    const char *code;
    const char *message;
    const char *stop_reason;
    int64_t at_ms;
    int64_t seq;
    int ended; /* 0: ack of a start; 1: capture ended */
    int applied;
    int64_t watcher_id;
};

static enum cp_err apply_ack(struct db_conn *c, struct report_job *job, struct db_capture *cap,
                             int64_t now)
{
    if (strcmp(cap->provisioning_state, "Updating") != 0)
        return CP_OK; /* already settled (e.g. the dispatch deadline passed) */
    if (job->ok) {
        str_copy(cap->provisioning_state, sizeof(cap->provisioning_state), "Succeeded");
        str_copy(cap->capture_status, sizeof(cap->capture_status), "Running");
        cap->capture_start_ms = job->at_ms > 0 ? job->at_ms : now;
    } else {
        str_copy(cap->provisioning_state, sizeof(cap->provisioning_state), "Failed");
        cap->unfinished = 0;
    }
    cap->updated_ms = now;
    enum cp_err err = db_capture_update_state(c, cap);
    if (err == CP_OK)
        err = job->ok
                  ? finish_op(c, cap->create_operation_id, "Succeeded", NULL, NULL, 200, NULL, now)
                  : finish_op(c, cap->create_operation_id, "Failed",
                              job->code ? job->code : "CaptureFailed",
                              job->message && job->message[0]
                                  ? job->message
                                  : "The agent could not start the capture.",
                              409, NULL, now);
    return err;
}

static enum cp_err apply_end(struct db_conn *c, struct report_job *job, struct db_capture *cap,
                             int64_t now)
{
    if (job->stop_reason) {
        str_copy(cap->capture_status, sizeof(cap->capture_status), "Stopped");
        str_copy(cap->stop_reason, sizeof(cap->stop_reason), job->stop_reason);
    } else {
        str_copy(cap->capture_status, sizeof(cap->capture_status), "Error");
        snprintf(cap->capture_errors_json, sizeof(cap->capture_errors_json), "[\"%s\"]",
                 job->code ? job->code : "InternalError");
    }
    if (strcmp(cap->provisioning_state, "Updating") == 0) {
        /* Ended before its ack arrived: the start did happen. */
        str_copy(cap->provisioning_state, sizeof(cap->provisioning_state), "Succeeded");
        if (finish_op(c, cap->create_operation_id, "Succeeded", NULL, NULL, 200, NULL, now))
            return CP_EIO;
    }
    cap->unfinished = 0;
    cap->updated_ms = now;
    enum cp_err err = db_capture_update_state(c, cap);
    if (err == CP_OK && cap->stop_operation_id[0]) {
        err = finish_op(c, cap->stop_operation_id, "Succeeded", NULL, NULL, 200, "null", now);
        if (err == CP_OK)
            err = db_capture_set_agent(c, cap->id, cap->agent_id, "");
    }
    return err;
}

static enum cp_err report_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct report_job *job = arg;
    struct db_capture cap;
    enum cp_err err = db_capture_get_by_create_op(c, job->capture_guid, &cap);
    if (err == CP_ENOTFOUND || (err == CP_OK && strcmp(cap.agent_id, job->agent_id) != 0)) {
        db_capture_clear(&cap);
        /* A capture deleted since is not an error for its own agent; anything else is not
         * this agent's to report on. */
        return err == CP_ENOTFOUND
                   ? CP_OK
                   : cp_fail(e, CP_EFORBIDDEN, "NotYourSession", "",
                             "Capture %.40s is not assigned to this agent.", job->capture_guid);
    }
    if (err != CP_OK)
        return err;
    int advanced = 1;
    if (job->seq > 0)
        err = db_agent_advance_seq(c, job->agent_id, job->seq, &advanced);
    if (err == CP_OK && advanced) {
        int64_t now = timefmt_now_ms();
        err = job->ended ? apply_end(c, job, &cap, now) : apply_ack(c, job, &cap, now);
        if (err == CP_OK) {
            struct db_watcher w = {.id = cap.watcher_id};
            err = core_touch_watcher(c, &w, now);
        }
        job->applied = 1;
        job->watcher_id = cap.watcher_id;
    }
    db_capture_clear(&cap);
    return err;
}

static enum cp_err report(struct core *core, struct report_job *job, int *applied,
                          struct cp_error *e)
{
    enum cp_err err = db_store_write(core->store, report_run, job, e);
    if (err == CP_OK && job->applied)
        core_cache_changed(core->cache, job->watcher_id);
    if (applied)
        *applied = err == CP_OK && job->applied;
    return err;
}

enum cp_err core_capture_acked(struct core *core, const char *agent_id, const char *capture_guid,
                               int ok, const char *code, const char *message, int64_t at_ms,
                               int64_t seq, int *applied, struct cp_error *e)
{
    struct report_job job = {agent_id, capture_guid, ok, code, message, NULL, at_ms, seq, 0, 0, 0};
    return report(core, &job, applied, e);
}

enum cp_err core_capture_ended(struct core *core, const char *agent_id, const char *capture_guid,
                               const char *stop_reason, const char *error_code, const char *message,
                               int64_t seq, int *applied, struct cp_error *e)
{
    struct report_job job = {agent_id, capture_guid, 1, error_code, message, stop_reason,
                             0,        seq,          1, 0,          0};
    return report(core, &job, applied, e);
}

#define EXPIRE_BATCH 64 /* overdue creates ended per pass; the sweep comes back for more */

struct expire_job {
    int64_t now;
    int64_t deadline_ms;
    struct db_capture rows[EXPIRE_BATCH]; /* copies without properties_json */
    int n;
};

/* Collects first and updates after the walk: a table should not change under its own SELECT. */
static enum cp_err expire_collect(const struct db_capture *row, void *arg)
{
    struct expire_job *job = arg;
    if (job->n >= EXPIRE_BATCH)
        return CP_OK;
    job->rows[job->n] = *row;
    job->rows[job->n].properties_json = NULL;
    job->n++;
    return CP_OK;
}

static enum cp_err expire_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct expire_job *job = arg;
    job->n = 0;
    enum cp_err err = db_capture_list_overdue(c, job->now - job->deadline_ms, expire_collect, job);
    for (int i = 0; err == CP_OK && i < job->n; i++) {
        struct db_capture *cap = &job->rows[i];
        str_copy(cap->provisioning_state, sizeof(cap->provisioning_state), "Failed");
        cap->unfinished = 0;
        cap->updated_ms = job->now;
        err = db_capture_update_state(c, cap);
        char msg[CP_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg),
                 "The agent serving target '%.300s' did not start the capture within %lld s "
                 "(not connected, or not answering).",
                 cap->target, (long long)(job->deadline_ms / 1000));
        if (err == CP_OK)
            err = finish_op(c, cap->create_operation_id, "Failed", "AgentNotConnected", msg, 409,
                            NULL, job->now);
        if (err == CP_OK) {
            struct db_watcher w = {.id = cap->watcher_id};
            err = core_touch_watcher(c, &w, job->now);
        }
    }
    return err;
}

enum cp_err core_capture_expire(struct core *core, int64_t deadline_ms, struct cp_error *e)
{
    struct expire_job *job = calloc(1, sizeof(*job));
    if (!job)
        return CP_ENOMEM;
    job->now = timefmt_now_ms();
    job->deadline_ms = deadline_ms;
    enum cp_err err = db_store_write(core->store, expire_run, job, e);
    for (int i = 0; err == CP_OK && i < job->n; i++)
        core_cache_changed(core->cache, job->rows[i].watcher_id);
    free(job);
    return err;
}
