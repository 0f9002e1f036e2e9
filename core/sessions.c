/*
 * Captures run by agents: one session per machine (a VM, or each selected scale-set instance),
 * the commands owed to agents (the outbox), the agents' reports, the timers, and the rule that
 * turns a capture's sessions into the capture's own state (docs/api.md "Sessions").
 *
 * Every report is applied in one store job together with the agent's report sequence number,
 * so a report repeated after a reconnect is applied once; a command is written in the job of
 * the request that owes it and settled in the job that applies its effect. The agent may speak
 * only for its own sessions and commands.
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

#define SWEEP_BATCH     64                   /* sessions ended per timer pass */
#define PRUNE_AFTER_MS  (24LL * 3600 * 1000) /* acked commands kept this long */
#define PRUNE_BATCH     512
#define ERRORS_DISTINCT 8

/* --- owed commands --- */

void core_cmd_ids_free(struct core_cmd_ids *l)
{
    free(l->ids);
    memset(l, 0, sizeof(*l));
}

static enum cp_err cmd_ids_add(struct core_cmd_ids *l, const char *id)
{
    if (!l)
        return CP_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        void *more = realloc(l->ids, cap * sizeof(*l->ids));
        if (!more)
            return CP_ENOMEM;
        l->ids = more;
        l->cap = cap;
    }
    str_copy(l->ids[l->n++], DB_COMMAND_ID_MAX, id);
    return CP_OK;
}

void core_cmd_ids_send(struct core *core, struct core_cmd_ids *l)
{
    for (size_t i = 0; i < l->n; i++)
        core_dispatch_push_command(core->dispatch, l->ids[i]);
    core_cmd_ids_free(l);
}

/* Writes a command owed to agent_id about session_id (reason: stops only), with id as its
 * commandId (NULL: a fresh GUID). */
static enum cp_err owe_as(struct db_conn *c, const char *id, const char *agent_id,
                          const char *session_id, const char *kind, const char *reason, int64_t now,
                          struct core_cmd_ids *out)
{
    struct db_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    if (id)
        str_copy(cmd.id, sizeof(cmd.id), id);
    else
        core_guid(cmd.id);
    str_copy(cmd.agent_id, sizeof(cmd.agent_id), agent_id);
    str_copy(cmd.session_id, sizeof(cmd.session_id), session_id);
    str_copy(cmd.kind, sizeof(cmd.kind), kind);
    str_copy(cmd.stop_reason, sizeof(cmd.stop_reason), reason ? reason : "");
    str_copy(cmd.state, sizeof(cmd.state), "pending");
    cmd.created_ms = now;
    enum cp_err err = db_outbox_insert(c, &cmd);
    if (err == CP_OK)
        err = cmd_ids_add(out, cmd.id);
    return err;
}

static enum cp_err owe(struct db_conn *c, const char *agent_id, const char *session_id,
                       const char *kind, const char *reason, int64_t now, struct core_cmd_ids *out)
{
    return owe_as(c, NULL, agent_id, session_id, kind, reason, now, out);
}

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
        err = owe_as(c, vm ? s.id : NULL, agent_id, s.id, "start", NULL, now, NULL);
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

struct sessions_acc {
    struct db_session *v;
    size_t n, cap;
};

static enum cp_err collect_session(const struct db_session *s, void *arg)
{
    struct sessions_acc *acc = arg;
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
    struct sessions_acc acc = {NULL, 0, 0};
    enum cp_err err = db_session_list_by_capture(c, cap->id, collect_session, &acc);
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

static enum cp_err end_session(struct db_conn *c, struct db_session *s, const char *reason,
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
    struct sessions_acc acc = {NULL, 0, 0};
    *running = 0;
    enum cp_err err = db_session_list_by_capture(c, cap->id, collect_session, &acc);
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
            err = owe_as(c, vm ? op_id : NULL, s->agent_id, s->id, "stop",
                         is_delete ? "SessionDeleted" : "Manual", now_ms, owed);
        if (err == CP_OK && pending && !is_delete)
            err = end_session(c, s, "Manual", NULL, NULL, now_ms);
        if (!pending)
            (*running)++;
    }
    free(acc.v);
    return err;
}

/* --- reports --- */

static enum cp_err not_yours(struct cp_error *e, const char *what, const char *id)
{
    return cp_fail(e, CP_EFORBIDDEN, "NotYourSession", "",
                   "%s %.40s is not assigned to this agent.", what, id);
}

/* Raises the agent's seq; *go = 0 when the report was applied before. */
static enum cp_err advance(struct db_conn *c, struct core_report *job, int *go)
{
    *go = 1;
    if (job->seq <= 0)
        return CP_OK;
    return db_agent_advance_seq(c, job->agent_id, job->seq, go);
}

static enum cp_err apply_ack(struct db_conn *c, struct core_report *job, int64_t now,
                             struct cp_error *e)
{
    struct db_command cmd;
    enum cp_err err = db_outbox_get(c, job->id, &cmd);
    if (err == CP_OK && strcmp(cmd.agent_id, job->agent_id) != 0)
        err = not_yours(e, "Command", job->id);
    int go = 0;
    if (err == CP_OK || err == CP_ENOTFOUND) {
        /* An unknown command (pruned long ago) is acknowledged without effect. */
        enum cp_err found = err;
        err = advance(c, job, &go);
        if (found == CP_ENOTFOUND)
            go = 0;
    }
    /* A start is settled by its ack; a stop only by the session's end (an agent that acked it
     * and then lost it, say by restarting, must get it again). */
    if (err == CP_OK && go) {
        job->applied = 1;
        if (strcmp(cmd.kind, "start") == 0)
            err = db_outbox_ack(c, cmd.id, now, NULL);
    }
    struct db_session s;
    if (err == CP_OK && go && strcmp(cmd.kind, "start") == 0) {
        err = db_session_get(c, cmd.session_id, &s);
        if (err == CP_ENOTFOUND) {
            err = CP_OK; /* deleted meanwhile: its stop is owed already */
        } else if (err == CP_OK && strcmp(s.status, "NotStarted") == 0) {
            if (job->ok) {
                str_copy(s.status, sizeof(s.status), "Running");
                s.started_ms = job->at_ms > 0 ? job->at_ms : now;
                if (!s.dispatched_ms)
                    s.dispatched_ms = now;
                /* The backstop counts on the server's clock from when it learnt of the start. */
                s.backstop_ms = now + s.time_limit_ms;
                err = db_session_update_state(c, &s);
            } else {
                err = end_session(c, &s, NULL, job->code ? job->code : "CaptureFailed",
                                  job->message && job->message[0]
                                      ? job->message
                                      : "The agent could not start the capture.",
                                  now);
            }
            if (err == CP_OK)
                err = core_capture_aggregate(c, s.capture_id, now, NULL, NULL, &job->watcher_id);
        }
    }
    db_command_clear(&cmd);
    return err;
}

static enum cp_err apply_session_report(struct db_conn *c, struct core_report *job, int64_t now,
                                        struct cp_error *e)
{
    struct db_session s;
    enum cp_err err = db_session_get(c, job->id, &s);
    if (err == CP_OK && strcmp(s.agent_id, job->agent_id) != 0)
        return not_yours(e, "Capture", job->id);
    if (err != CP_OK && err != CP_ENOTFOUND)
        return err;
    int found = err == CP_OK, go = 0;
    err = advance(c, job, &go);
    if (err != CP_OK || !go)
        return err;
    job->applied = 1;
    if (job->kind == CORE_REPORT_PROGRESS) {
        if (!found)
            return CP_OK;
        job->watcher_id = s.watcher_id;
        return db_session_set_progress(c, s.id, job->packets, job->bytes, job->drops, job->files,
                                       job->first_packet_ms, now);
    }
    /* The session ended: nothing is owed for it any more (a capture deleted meanwhile too). */
    err = db_outbox_ack_session(c, job->id, job->agent_id, NULL, now);
    if (err != CP_OK || !found)
        return err;
    if (strcmp(s.status, "NotStarted") != 0 && strcmp(s.status, "Running") != 0)
        return CP_OK; /* ended already (a timer, a stop before start) */
    if (!s.started_ms)
        s.started_ms = now; /* ended before its ack arrived: the start did happen */
    err = end_session(c, &s, job->stop_reason, job->code, job->message, now);
    if (err == CP_OK)
        err = core_capture_aggregate(c, s.capture_id, now, NULL, NULL, &job->watcher_id);
    return err;
}

struct report_batch {
    struct core_report *r;
    size_t n;
};

static enum cp_err report_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct report_batch *b = arg;
    int64_t now = timefmt_now_ms();
    for (size_t i = 0; i < b->n; i++) {
        struct core_report *r = &b->r[i];
        r->applied = 0;
        r->watcher_id = 0;
        r->err = r->kind == CORE_REPORT_ACK ? apply_ack(c, r, now, &r->e)
                                            : apply_session_report(c, r, now, &r->e);
        /* A refusal is found before anything is written, so the others can go on. Any other
         * failure may leave half a report written: the job fails and the store undoes it all. */
        if (r->err != CP_OK && r->err != CP_EFORBIDDEN) {
            if (e)
                *e = r->e;
            return r->err;
        }
    }
    return CP_OK;
}

enum cp_err core_reports_apply(struct core *core, struct core_report *r, size_t n)
{
    struct report_batch b = {r, n};
    struct cp_error e = {{0}, {0}, {0}};
    for (size_t i = 0; i < n; i++)
        memset(&r[i].e, 0, sizeof(r[i].e));
    enum cp_err err = n ? db_store_write(core->store, report_run, &b, &e) : CP_OK;
    for (size_t i = 0; i < n; i++) {
        if (err != CP_OK) {
            r[i].err = err;
            r[i].e = e;
            r[i].applied = 0;
        } else if (r[i].err == CP_OK && r[i].watcher_id) {
            core_cache_changed(core->cache, r[i].watcher_id);
        }
    }
    return err;
}

static enum cp_err report(struct core *core, struct core_report *r, int *applied,
                          struct cp_error *e)
{
    enum cp_err err = core_reports_apply(core, r, 1);
    if (err == CP_OK)
        err = r->err; /* committed, but this one may have been refused */
    if (e && err != CP_OK)
        *e = r->e;
    if (applied)
        *applied = err == CP_OK && r->applied;
    return err;
}

enum cp_err core_capture_acked(struct core *core, const char *agent_id, const char *command_id,
                               int ok, const char *code, const char *message, int64_t at_ms,
                               int64_t seq, int *applied, struct cp_error *e)
{
    struct core_report r = {.agent_id = agent_id,
                            .id = command_id,
                            .kind = CORE_REPORT_ACK,
                            .ok = ok,
                            .code = code,
                            .message = message,
                            .at_ms = at_ms,
                            .seq = seq};
    return report(core, &r, applied, e);
}

enum cp_err core_capture_ended(struct core *core, const char *agent_id, const char *session_id,
                               const char *stop_reason, const char *error_code, const char *message,
                               int64_t seq, int *applied, struct cp_error *e)
{
    struct core_report r = {.agent_id = agent_id,
                            .id = session_id,
                            .kind = CORE_REPORT_END,
                            .code = error_code,
                            .message = message,
                            .stop_reason = stop_reason,
                            .seq = seq};
    return report(core, &r, applied, e);
}

enum cp_err core_capture_progress(struct core *core, const char *agent_id, const char *session_id,
                                  int64_t packets, int64_t bytes, int64_t drops, int64_t files,
                                  int64_t first_packet_ms, int64_t seq, struct cp_error *e)
{
    struct core_report r = {.agent_id = agent_id,
                            .id = session_id,
                            .kind = CORE_REPORT_PROGRESS,
                            .seq = seq,
                            .packets = packets,
                            .bytes = bytes,
                            .drops = drops,
                            .files = files,
                            .first_packet_ms = first_packet_ms};
    return report(core, &r, NULL, e);
}

/* --- the outbox, seen from the channel --- */

struct owed_job {
    const char *agent_id;
    db_command_each_fn each;
    void *arg;
};

static enum cp_err owed_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct owed_job *job = arg;
    return db_outbox_list_owed(c, job->agent_id, job->each, job->arg);
}

enum cp_err core_agent_owed(struct core *core, const char *agent_id, db_command_each_fn each,
                            void *arg, struct cp_error *e)
{
    struct owed_job job = {agent_id, each, arg};
    return db_store_read(core->store, owed_run, &job, e);
}

struct sent_job {
    const char (*ids)[DB_COMMAND_ID_MAX];
    size_t n;
};

static enum cp_err sent_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct sent_job *job = arg;
    int64_t now = timefmt_now_ms();
    enum cp_err err = CP_OK;
    for (size_t i = 0; err == CP_OK && i < job->n; i++) {
        struct db_command cmd;
        err = db_outbox_get(c, job->ids[i], &cmd);
        if (err == CP_ENOTFOUND) {
            err = CP_OK;
            continue;
        }
        if (err == CP_OK)
            err = db_outbox_mark_sent(c, cmd.id, now);
        if (err == CP_OK && strcmp(cmd.kind, "start") == 0)
            err = db_session_set_dispatched(c, cmd.session_id, now);
        db_command_clear(&cmd);
    }
    return err;
}

enum cp_err core_commands_sent(struct core *core, const char (*ids)[DB_COMMAND_ID_MAX], size_t n,
                               struct cp_error *e)
{
    if (n == 0)
        return CP_OK;
    struct sent_job job = {ids, n};
    return db_store_write(core->store, sent_run, &job, e);
}

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
        err = owe(c, s->agent_id, s->id, "stop", "AgentStopped", job->now, &job->owed);
    if (err == CP_OK)
        err = end_session(c, s, NULL, "AgentStopped", message, job->now);
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

/* --- reconciliation --- */

struct reconcile_job {
    const char *agent_id;
    const char **held; /* running + finished, sorted */
    size_t n_held;
    const char *const *running;
    size_t n_running;
    char (*stop)[DB_SESSION_ID_MAX];
    size_t n_max, n_stop;
    struct sessions_acc live; /* the agent's sessions not ended */
    struct db_command *owed;  /* stops owed to it (no spec) */
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
    enum cp_err err = db_session_list_live_by_agent(c, job->agent_id, collect_session, &job->live);
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
            err = end_session(c, s, NULL, "AgentStopped",
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
