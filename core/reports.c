/*
 * The agents' reports (ack, progress, completed, error), each applied in one store job together
 * with the agent's report sequence number, so a report repeated after a reconnect is applied
 * once. An agent may speak only for its own sessions and commands (NotYourSession otherwise).
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
        /* What the capture runs, whatever happened to it since (it may have ended before this
         * ack arrived): the agent's exact expression, shown as filterExpression. */
        if (err == CP_OK && job->ok && job->filter)
            err = db_session_set_filter(c, s.id, job->filter);
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
                err = core_end_session(c, &s, NULL, job->code ? job->code : "CaptureFailed",
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
                                       job->first_packet_ms, job->uploaded_bytes, now);
    }
    /* The session ended: nothing is owed for it any more (a capture deleted meanwhile too). */
    err = db_outbox_ack_session(c, job->id, job->agent_id, NULL, now);
    if (err != CP_OK || !found)
        return err;
    if (strcmp(s.status, "NotStarted") != 0 && strcmp(s.status, "Running") != 0)
        return CP_OK; /* ended already (a timer, a stop before start) */
    if (!s.started_ms)
        s.started_ms = now; /* ended before its ack arrived: the start did happen */
    err = core_end_session(c, &s, job->stop_reason, job->code, job->message, now);
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
