/*
 * Captures run by agents: one session per machine (a VM, or each selected scale-set instance),
 * assigned in the create's job; the rule that turns a capture's sessions into the capture's own
 * state (docs/api.md "Sessions"); and the stop or delete of a capture's sessions.
 *
 * The agents' reports are applied in core/reports.c, the outbox is core/outbox.c, the timers
 * core/session_timers.c, a hello's reconciliation core/reconcile.c and what is shown while an
 * agent is away core/presence.c.
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

#define ERRORS_DISTINCT 8 /* distinct packetCaptureError values kept */

/* --- assignment (in the create's job) --- */

static int listed(const char *instance, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(instance, list[i]) == 0)
            return 1;
    return 0;
}

/* Inserts a session of cap and its start command, and attaches it to cap (the create's reply
 * shows it without reading it back). The one session of a VM capture is known by the create
 * operation's id, as its captureId and its start's commandId (what agents were given before
 * sessions existed); a scale set's sessions get fresh GUIDs. */
static enum cp_err add_session(struct db_conn *c, struct db_capture *cap, const char *agent_id,
                               const char *instance_id, int64_t time_limit_ms, int64_t now)
{
    struct db_session s;
    memset(&s, 0, sizeof(s));
    int vm = !instance_id[0];
    if (vm)
        str_copy(s.id, sizeof(s.id), cap->create_operation_id);
    else
        core_guid(s.id);
    s.capture_id = cap->id;
    str_copy(s.agent_id, sizeof(s.agent_id), agent_id);
    str_copy(s.instance_id, sizeof(s.instance_id), instance_id);
    str_copy(s.status, sizeof(s.status), "NotStarted");
    s.time_limit_ms = time_limit_ms > 0 ? time_limit_ms : CORE_SESSION_LIMIT_MAX_MS;
    s.created_ms = now;
    enum cp_err err = db_session_insert(c, &s);
    if (err == CP_OK)
        err = core_owe_as(c, vm ? s.id : NULL, agent_id, s.id, "start", NULL, now, NULL);
    if (err != CP_OK)
        return err;
    struct db_session *more = realloc(cap->sessions, (cap->n_sessions + 1) * sizeof(*more));
    if (!more)
        return CP_ENOMEM;
    s.watcher_id = cap->watcher_id;
    more[cap->n_sessions++] = s;
    cap->sessions = more;
    return CP_OK;
}

struct pick {
    struct db_conn *c;
    struct db_capture *cap;
    const struct core_capture_run *req;
    int64_t now;
    size_t registered, selected;
};

static enum cp_err pick_instance(const char *agent_id, const char *instance_id, void *arg)
{
    struct pick *p = arg;
    p->registered++;
    if ((p->req->n_include && !listed(instance_id, p->req->include, p->req->n_include)) ||
        listed(instance_id, p->req->exclude, p->req->n_exclude))
        return CP_OK;
    if (++p->selected > CORE_MAX_SESSIONS_PER_CAPTURE)
        return CP_ETOOBIG;
    return add_session(p->c, p->cap, agent_id, instance_id, p->req->time_limit_ms, p->now);
}

enum cp_err core_assign_sessions(struct db_conn *c, struct db_capture *cap,
                                 const struct core_capture_run *req, int64_t now_ms,
                                 struct cp_error *e)
{
    char key[DB_TARGET_MAX];
    if (str_lower_copy(key, sizeof(key), cap->target) != 0)
        return CP_OK;
    if (!req->scale_set) {
        struct db_agent a;
        enum cp_err err = db_agent_get_active(c, key, "", &a);
        if (err == CP_ENOTFOUND)
            return CP_OK; /* no agent registered: the dispatcher fails the create */
        if (err == CP_OK)
            err = add_session(c, cap, a.id, "", req->time_limit_ms, now_ms);
        db_agent_clear(&a);
        return err;
    }
    struct pick p = {c, cap, req, now_ms, 0, 0};
    enum cp_err err = db_agent_list_instances(c, key, pick_instance, &p);
    if (err == CP_ETOOBIG)
        return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "properties.scope",
                       "The scope selects more than %d instances; a capture runs on at most %d. "
                       "Narrow it with properties.scope.include.",
                       CORE_MAX_SESSIONS_PER_CAPTURE, CORE_MAX_SESSIONS_PER_CAPTURE);
    /* None selected: like a VM without an agent, the dispatcher fails the create
     * (AgentNotConnected), after the 201: the request itself was valid. */
    return err;
}

/* --- the capture's state from its sessions --- */

enum cp_err core_collect_session(const struct db_session *s, void *arg)
{
    struct core_sessions_acc *acc = arg;
    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? acc->cap * 2 : 4;
        void *more = realloc(acc->v, cap * sizeof(*acc->v));
        if (!more)
            return CP_ENOMEM;
        acc->v = more;
        acc->cap = cap;
    }
    acc->v[acc->n++] = *s;
    return CP_OK;
}

enum cp_err core_attach_sessions(struct db_conn *c, struct db_capture *cap)
{
    struct core_sessions_acc acc = {NULL, 0, 0};
    enum cp_err err = db_session_list_by_capture(c, cap->id, core_collect_session, &acc);
    free(cap->sessions);
    cap->sessions = err == CP_OK ? acc.v : NULL;
    cap->n_sessions = err == CP_OK ? acc.n : 0;
    if (err != CP_OK)
        free(acc.v);
    return err;
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

/* What a capture's sessions add up to. */
struct tally {
    size_t n, pending, running, stopped, failed;
    int started_any;
    int64_t first_start;
    const struct db_session *last_stop; /* the Stopped session that ended last */
    int reasons_differ;
    const char *reason; /* the first Stopped session's reason */
    const struct db_session *first_error;
    const char *errors[ERRORS_DISTINCT];
    size_t n_errors;
};

static void tally_add(struct tally *t, const struct db_session *s)
{
    t->n++;
    if (s->started_ms > 0) {
        t->started_any = 1;
        if (!t->first_start || s->started_ms < t->first_start)
            t->first_start = s->started_ms;
    }
    if (strcmp(s->status, "NotStarted") == 0) {
        t->pending++;
    } else if (strcmp(s->status, "Running") == 0) {
        t->running++;
    } else if (strcmp(s->status, "Stopped") == 0) {
        t->stopped++;
        if (!t->reason)
            t->reason = s->stop_reason;
        else if (strcmp(t->reason, s->stop_reason) != 0)
            t->reasons_differ = 1;
        if (!t->last_stop || s->ended_ms >= t->last_stop->ended_ms)
            t->last_stop = s;
    } else {
        t->failed++;
        if (!t->first_error)
            t->first_error = s;
        int seen = 0;
        for (size_t i = 0; i < t->n_errors; i++)
            seen |= strcmp(t->errors[i], s->error_code) == 0;
        if (!seen && s->error_code[0] && t->n_errors < ERRORS_DISTINCT)
            t->errors[t->n_errors++] = s->error_code;
    }
}

/* The errors as a JSON array of PcError words (stored as such; the words need no escaping). */
static void errors_json(const struct tally *t, char *out, size_t n)
{
    size_t len = (size_t)snprintf(out, n, "[");
    for (size_t i = 0; i < t->n_errors && len < n; i++)
        len += (size_t)snprintf(out + len, n - len, "%s\"%s\"", i ? "," : "", t->errors[i]);
    if (len < n)
        snprintf(out + len, n - len, "]");
    if (len + 1 >= n)
        snprintf(out, n, "[\"InternalError\"]");
}

enum cp_err core_capture_aggregate(struct db_conn *c, int64_t capture_id, int64_t now_ms,
                                   const char *fail_code, const char *fail_message,
                                   int64_t *watcher_id)
{
    if (watcher_id)
        *watcher_id = 0;
    struct db_capture cap;
    enum cp_err err = db_capture_get_by_id(c, capture_id, &cap);
    if (err == CP_ENOTFOUND)
        return CP_OK;
    if (err == CP_OK)
        err = core_attach_sessions(c, &cap);
    if (err != CP_OK || cap.n_sessions == 0)
        goto out;
    struct tally t;
    memset(&t, 0, sizeof(t));
    for (size_t i = 0; i < cap.n_sessions; i++)
        tally_add(&t, &cap.sessions[i]);

    struct db_capture next = cap;
    int create_done = 0, create_failed = 0;
    if (strcmp(cap.provisioning_state, "Updating") == 0) {
        if (t.started_any)
            create_done = 1;
        else if (!t.pending)
            create_failed = 1;
    }
    if (create_done)
        str_copy(next.provisioning_state, sizeof(next.provisioning_state), "Succeeded");
    if (create_failed)
        str_copy(next.provisioning_state, sizeof(next.provisioning_state), "Failed");
    const char *status;
    if (t.running)
        status = "Running";
    else if (t.pending || (!t.started_any && !t.stopped))
        status = "NotStarted";
    else if (t.failed == t.n)
        status = "Error";
    else
        status = "Stopped";
    str_copy(next.capture_status, sizeof(next.capture_status), status);
    next.stop_reason[0] = '\0';
    if (strcmp(status, "Stopped") == 0 && t.last_stop)
        str_copy(next.stop_reason, sizeof(next.stop_reason),
                 t.reasons_differ ? t.last_stop->stop_reason : t.reason);
    if (t.started_any)
        errors_json(&t, next.capture_errors_json, sizeof(next.capture_errors_json));
    next.capture_start_ms = t.first_start;
    int ended = !t.pending && !t.running;
    next.unfinished = !ended && strcmp(next.provisioning_state, "Failed") != 0;

    int changed = strcmp(next.provisioning_state, cap.provisioning_state) ||
                  strcmp(next.capture_status, cap.capture_status) ||
                  strcmp(next.stop_reason, cap.stop_reason) ||
                  strcmp(next.capture_errors_json, cap.capture_errors_json) ||
                  next.capture_start_ms != cap.capture_start_ms ||
                  next.unfinished != cap.unfinished;
    if (changed) {
        next.updated_ms = now_ms;
        err = db_capture_update_state(c, &next);
        if (err == CP_OK) {
            struct db_watcher w = {.id = cap.watcher_id};
            err = core_touch_watcher(c, &w, now_ms);
        }
    }
    if (err == CP_OK && create_done)
        err = finish_op(c, cap.create_operation_id, "Succeeded", NULL, NULL, 200, NULL, now_ms);
    if (err == CP_OK && create_failed) {
        const struct db_session *fe = t.first_error;
        const char *code = fail_code                 ? fail_code
                           : fe && fe->error_code[0] ? fe->error_code
                           : t.stopped               ? "Canceled"
                                                     : "CaptureFailed";
        const char *msg = fail_message                 ? fail_message
                          : fe && fe->error_message[0] ? fe->error_message
                          : t.stopped ? "The capture was stopped before its agent started it."
                                      : "The agent could not start the capture.";
        err = finish_op(c, cap.create_operation_id, "Failed", code, msg, 409, NULL, now_ms);
    }
    if (err == CP_OK && ended && cap.stop_operation_id[0]) {
        err = finish_op(c, cap.stop_operation_id, "Succeeded", NULL, NULL, 200, "null", now_ms);
        if (err == CP_OK)
            err = db_capture_set_agent(c, cap.id, "", "");
    }
    if (err == CP_OK && watcher_id)
        *watcher_id = cap.watcher_id;
out:
    db_capture_clear(&cap);
    return err;
}

/* --- stop and delete (in the request's job) --- */

enum cp_err core_end_session(struct db_conn *c, struct db_session *s, const char *reason,
                             const char *code, const char *message, int64_t now)
{
    str_copy(s->status, sizeof(s->status), reason ? "Stopped" : "Error");
    str_copy(s->stop_reason, sizeof(s->stop_reason), reason ? reason : "");
    str_copy(s->error_code, sizeof(s->error_code), reason ? "" : code ? code : "InternalError");
    str_copy(s->error_message, sizeof(s->error_message), reason || !message ? "" : message);
    s->ended_ms = now;
    s->backstop_ms = 0;
    return db_session_update_state(c, s);
}

enum cp_err core_sessions_stop(struct db_conn *c, const struct db_capture *cap, int is_delete,
                               const char *op_id, int64_t now_ms, struct core_cmd_ids *owed,
                               int *running)
{
    struct core_sessions_acc acc = {NULL, 0, 0};
    *running = 0;
    enum cp_err err = db_session_list_by_capture(c, cap->id, core_collect_session, &acc);
    for (size_t i = 0; err == CP_OK && i < acc.n; i++) {
        struct db_session *s = &acc.v[i];
        int pending = strcmp(s->status, "NotStarted") == 0;
        if (!pending && strcmp(s->status, "Running") != 0)
            continue;
        err = db_outbox_ack_session(c, s->id, NULL, "start", now_ms);
        /* Owed even for a start never acked: it may have reached the agent. */
        /* A VM's one stop is known by the operation's id (as before sessions existed). */
        int vm = acc.n == 1 && !s->instance_id[0];
        if (err == CP_OK && (!pending || s->dispatched_ms))
            err = core_owe_as(c, vm ? op_id : NULL, s->agent_id, s->id, "stop",
                              is_delete ? "SessionDeleted" : "Manual", now_ms, owed);
        if (err == CP_OK && pending && !is_delete)
            err = core_end_session(c, s, "Manual", NULL, NULL, now_ms);
        if (!pending)
            (*running)++;
    }
    free(acc.v);
    return err;
}
