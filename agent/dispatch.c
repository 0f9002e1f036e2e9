/* The command dispatcher behind agent/dispatch.h. */
#include "agent/dispatch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "agent/capture.h"
#include "common/bpf_expr.h"
#include "common/capture_path.h"
#include "common/log.h"
#include "proto/proto.h"

#define DISPATCH_ROOT_PREFIX CAPTURE_ROOT_LINUX "/"
#define DISPATCH_MAX_FILTERS 64 /* more than api/ accepts */
#define DISPATCH_EVENTS      32

/* One report sent (ack, completed, error), kept so it can be sent again with the same seq. */
struct dispatch_report {
    uint64_t seq;
    char *json;
    struct dispatch_report *next;
};

enum dispatch_state {
    DISPATCH_REFUSED, /* the start was refused: only its ack is kept */
    DISPATCH_RUNNING,
    DISPATCH_FINISHED,
};

struct dispatch_session {
    char command_id[PROTO_ID_SIZE]; /* the start */
    char capture_id[PROTO_ID_SIZE];
    enum dispatch_state state;
    struct capture *cap;                 /* RUNNING only */
    const struct dispatch_report *ack;   /* the start's ack */
    const struct dispatch_report *final; /* FINISHED: completed or error (NULL: unsent) */
    int final_replied;                   /* the server has answered final: no longer held */
    enum proto_stop_reason stop_reason;  /* asked for by a stop (welcome.stop: Manual) */
    char stop_command_id[PROTO_ID_SIZE]; /* the last stop acked, "" = none */
    const struct dispatch_report *stop_ack;
    struct dispatch_session *next;
};

struct dispatch {
    const char *root;
    struct agent_state *state;
    char ifbuf[1024]; /* the interface list, split in place */
    const char *ifaces[CAPTURE_MAX_INTERFACES];
    size_t n_ifaces;
    int epfd; /* the done fds of running captures; the channel's wake_fd */
    struct dispatch_session *sessions;
    struct dispatch_report *reports, *last_report; /* in seq order */
};

static int64_t epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

/* ---- reports ----------------------------------------------------------------------------- */

static void send_json(struct channel *ch, const struct dispatch_report *r)
{
    enum cp_err err = channel_send(ch, r->json, strlen(r->json));
    /* Not fatal: the report is kept and sent again after the next welcome. */
    if (err != CP_OK)
        log_warnx("event=report_not_sent seq=%" PRIu64 " reason=%s", r->seq, cp_err_name(err));
}

/* Gives m the next seq, encodes it, keeps it and sends it. NULL when the state could not be
 * written or m would not encode (logged; nothing sent: a seq the server never sees is harmless,
 * a report without a durable seq is not). */
static const struct dispatch_report *report(struct dispatch *d, struct channel *ch,
                                            struct proto_msg *m)
{
    uint64_t seq;
    struct cp_error e = {{0}, {0}, {0}};
    if (agent_state_take_seq(d->state, &seq, &e) != CP_OK) {
        log_error("event=state_write_failed detail=\"%s\"", e.message);
        return NULL;
    }
    switch (m->type) {
    case PROTO_ACK:
        m->ack.seq = (int64_t)seq;
        break;
    case PROTO_COMPLETED:
        m->completed.seq = (int64_t)seq;
        break;
    case PROTO_ERROR:
        m->error.seq = (int64_t)seq;
        break;
    default:
        return NULL;
    }
    struct dispatch_report *r = calloc(1, sizeof(*r));
    char *json = proto_encode(m);
    if (!r || !json) {
        log_error("event=report_unencodable type=%s seq=%" PRIu64, proto_type_name(m->type), seq);
        free(r);
        free(json);
        return NULL;
    }
    r->seq = seq;
    r->json = json;
    if (d->last_report)
        d->last_report->next = r;
    else
        d->reports = r;
    d->last_report = r;
    send_json(ch, r);
    return r;
}

static const struct dispatch_report *send_ack(struct dispatch *d, struct channel *ch,
                                              const char *command_id, int64_t at, const char *code,
                                              const char *message)
{
    struct proto_msg m = {.type = PROTO_ACK};
    snprintf(m.ack.command_id, sizeof(m.ack.command_id), "%s", command_id);
    m.ack.ok = code == NULL;
    m.ack.at = at;
    if (code) {
        enum proto_pc_error pc = PROTO_PC_INTERNAL_ERROR;
        (void)proto_pc_error_parse(code, &pc); /* an engine code outside PcError: Internal */
        m.ack.code = pc;
        snprintf(m.ack.message, sizeof(m.ack.message), "%s", message ? message : "");
    }
    log_info("event=command_ack commandId=%s ok=%s code=%s", command_id, code ? "no" : "yes",
             or_dash(code));
    return report(d, ch, &m);
}

/* ---- sessions ---------------------------------------------------------------------------- */

static struct dispatch_session *by_command(struct dispatch *d, const char *command_id)
{
    for (struct dispatch_session *s = d->sessions; s; s = s->next) {
        if (strcmp(s->command_id, command_id) == 0 || strcmp(s->stop_command_id, command_id) == 0)
            return s;
    }
    return NULL;
}

/* The session a capture id names; a refused start never made one. */
static struct dispatch_session *by_capture(struct dispatch *d, const char *capture_id)
{
    for (struct dispatch_session *s = d->sessions; s; s = s->next) {
        if (s->state != DISPATCH_REFUSED && strcmp(s->capture_id, capture_id) == 0)
            return s;
    }
    return NULL;
}

static struct dispatch_session *session_add(struct dispatch *d, const struct proto_start *st)
{
    struct dispatch_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    snprintf(s->command_id, sizeof(s->command_id), "%s", st->command_id);
    snprintf(s->capture_id, sizeof(s->capture_id), "%s", st->capture_id);
    s->next = d->sessions;
    d->sessions = s;
    return s;
}

size_t dispatch_running(const struct dispatch *d)
{
    size_t n = 0;
    for (const struct dispatch_session *s = d->sessions; s; s = s->next)
        n += s->state == DISPATCH_RUNNING;
    return n;
}

/* ---- start: spec to capture_params -------------------------------------------------------- */

/* Reads an optional non-negative integer member (absent = 0) no larger than max. */
static int spec_uint(json_t *spec, const char *key, uint64_t max, uint64_t *out, struct cp_error *e)
{
    json_t *v = json_object_get(spec, key);
    *out = 0;
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max) {
        cp_fail(e, CP_EINVAL, "CaptureFailed", key, "%s must be an integer from 0 to %" PRIu64, key,
                max);
        return -1;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* The filters as one pcap expression (*out malloc'ed; NULL with no filters). */
static int spec_filter(json_t *spec, char **out, struct cp_error *e)
{
    json_t *fs = json_object_get(spec, "filters");
    size_t n = json_array_size(fs);
    *out = NULL;
    if (n == 0)
        return 0;
    if (n > DISPATCH_MAX_FILTERS) {
        cp_fail(e, CP_EINVAL, "CaptureFailed", "filters", "at most %d filters",
                DISPATCH_MAX_FILTERS);
        return -1;
    }
    struct bpf_filter_spec *specs = calloc(n, sizeof(*specs));
    struct nf_ip_set *local = calloc(1, sizeof(*local));
    int rc = -1;
    if (!specs || !local) {
        cp_fail(e, CP_ENOMEM, "InternalError", "", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(fs, i);
        if (bpf_filter_spec_parse(json_string_value(json_object_get(f, "protocol")),
                                  json_string_value(json_object_get(f, "localIPAddress")),
                                  json_string_value(json_object_get(f, "remoteIPAddress")),
                                  json_string_value(json_object_get(f, "localPort")),
                                  json_string_value(json_object_get(f, "remotePort")), i, &specs[i],
                                  e) != CP_OK)
            goto refused;
    }
    /* The machine's addresses now: what "local" means for this session (common/bpf_expr.h). */
    if (capture_local_addrs(local, e) != CP_OK || bpf_expr_build(specs, n, local, out, e) != CP_OK)
        goto refused;
    rc = 0;
    goto out;
refused:
    /* The builders' codes are API validation codes; for the agent a bad filter fails the
     * capture. */
    if (strcmp(e->code, "InternalError") != 0)
        snprintf(e->code, sizeof(e->code), "%s", "CaptureFailed");
out:
    free(specs);
    free(local);
    return rc;
}

/* The local file of the spec, relative to the capture root. Refusals fill e with the PcError. */
static int spec_file(json_t *spec, const char **rel, struct cp_error *e)
{
    json_t *sl = json_object_get(spec, "storageLocation");
    const char *path = json_string_value(json_object_get(sl, "filePath"));
    if (!path)
        path = json_string_value(json_object_get(sl, "localPath"));
    if (!path) {
        cp_fail(e, CP_EINVAL, "StorageFailed", "storageLocation",
                "blob upload is not supported yet: give storageLocation.filePath or localPath");
        return -1;
    }
    size_t plen = strlen(DISPATCH_ROOT_PREFIX);
    if (strncmp(path, DISPATCH_ROOT_PREFIX, plen) != 0 || !path[plen]) {
        cp_fail(e, CP_EINVAL, "CaptureFailed", "storageLocation",
                "the local path '%.256s' is not under " DISPATCH_ROOT_PREFIX
                " (this is a Linux agent: Windows paths cannot be written)",
                path);
        return -1;
    }
    *rel = path + plen;
    return 0;
}

/* Starts the capture a start asks for; 0 with *cap running, or -1 with e filled. */
static int start_capture(struct dispatch *d, const struct proto_start *st, struct capture **cap,
                         struct cp_error *e)
{
    json_error_t jerr;
    json_t *spec = json_loads(st->spec, 0, &jerr);
    char *filter = NULL;
    uint64_t snaplen, bytes, secs;
    const char *rel = NULL;
    int rc = -1;
    if (!json_is_object(spec)) {
        cp_fail(e, CP_EINVAL, "InternalError", "spec", "the spec is not a JSON object");
    } else if (json_object_get(spec, "continuousCapture")) {
        cp_fail(e, CP_EINVAL, "CaptureFailed", "continuousCapture",
                "continuous capture is not supported yet");
    } else if (spec_file(spec, &rel, e) == 0 &&
               spec_uint(spec, "bytesToCapturePerPacket", UINT32_MAX, &snaplen, e) == 0 &&
               spec_uint(spec, "totalBytesPerSession", UINT64_MAX >> 1, &bytes, e) == 0 &&
               spec_uint(spec, "timeLimitInSeconds", UINT32_MAX, &secs, e) == 0 &&
               spec_filter(spec, &filter, e) == 0) {
        struct capture_params p = {.root_dir = d->root,
                                   .file_path = rel,
                                   .snaplen = (uint32_t)snaplen,
                                   .byte_limit = bytes,
                                   .time_limit_s = (uint32_t)secs,
                                   .interfaces = d->n_ifaces ? d->ifaces : NULL,
                                   .n_interfaces = d->n_ifaces,
                                   .filter = filter};
        if (capture_start(&p, cap, e) == CP_OK)
            rc = 0;
        else if (!e->code[0])
            snprintf(e->code, sizeof(e->code), "%s", "InternalError");
    }
    free(filter);
    json_decref(spec);
    return rc;
}

static void on_start(struct dispatch *d, struct channel *ch, const struct proto_start *st)
{
    struct dispatch_session *s = by_command(d, st->command_id);
    if (s && strcmp(s->command_id, st->command_id) == 0) {
        /* A resend (after a reconnect): the first answer stands. */
        log_info("event=command_repeat type=start commandId=%s captureId=%s", st->command_id,
                 st->capture_id);
        if (s->ack)
            send_json(ch, s->ack);
        return;
    }
    struct cp_error e = {{0}, {0}, {0}};
    struct capture *cap = NULL;
    if (by_capture(d, st->capture_id))
        cp_fail(&e, CP_EEXIST, "CaptureFailed", "captureId",
                "capture %s already exists on this agent", st->capture_id);
    else if (start_capture(d, st, &cap, &e) == 0)
        e.code[0] = '\0';
    int64_t at = epoch_ms();
    s = session_add(d, st);
    if (!s) {
        /* No record, so a resend starts over: the capture must not keep running unowned. */
        capture_free(cap);
        (void)send_ack(d, ch, st->command_id, 0, "InternalError", "out of memory");
        return;
    }
    if (!cap) {
        s->state = DISPATCH_REFUSED;
        log_warnx("event=capture_refused captureId=%s name=%s code=%s detail=\"%s\"",
                  st->capture_id, st->name, e.code, e.message);
        s->ack = send_ack(d, ch, st->command_id, 0, e.code, e.message);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, capture_done_fd(cap), &ev) != 0) {
        /* Without the watch its end would never be reported: refuse rather than lose it. */
        log_error("event=epoll_add_failed errno=%d", errno);
        capture_free(cap);
        s->state = DISPATCH_REFUSED;
        s->ack =
            send_ack(d, ch, st->command_id, 0, "InternalError", "cannot watch the capture's end");
        return;
    }
    s->cap = cap;
    s->state = DISPATCH_RUNNING;
    log_info("event=capture_started captureId=%s name=%s", st->capture_id, st->name);
    s->ack = send_ack(d, ch, st->command_id, at, NULL, NULL);
}

/* ---- completion -------------------------------------------------------------------------- */

/* The session's capture has ended: report it, free the capture. */
static void finish(struct dispatch *d, struct channel *ch, struct dispatch_session *s)
{
    (void)epoll_ctl(d->epfd, EPOLL_CTL_DEL, capture_done_fd(s->cap), NULL);
    capture_wait(s->cap);
    const struct capture_result *r = capture_result(s->cap);
    struct proto_msg m = {.type = PROTO_NONE};
    struct proto_file *files = NULL;
    size_t n = 0;
    if (r->error == CAPTURE_ERR_NONE) {
        m.type = PROTO_COMPLETED;
        snprintf(m.completed.capture_id, sizeof(m.completed.capture_id), "%s", s->capture_id);
        m.completed.stop_reason = PROTO_STOP_MANUAL;
        (void)proto_stop_reason_parse(capture_stop_reason_name(r->reason),
                                      &m.completed.stop_reason);
        /* Stopped on the server's word: the reason it gave (Manual, SessionDeleted). */
        if (r->reason == CAPTURE_STOP_MANUAL && s->stop_reason != PROTO_STOP_NONE)
            m.completed.stop_reason = s->stop_reason;
        /* A ring with more files than a message lists reports the newest. */
        size_t first = r->n_files > PROTO_MAX_FILES ? r->n_files - PROTO_MAX_FILES : 0;
        files = calloc(r->n_files - first + 1, sizeof(*files));
        for (size_t i = first; files && i < r->n_files; i++) {
            size_t len = strlen(DISPATCH_ROOT_PREFIX) + strlen(r->files[i].path) + 1;
            char *path = malloc(len);
            if (!path)
                break;
            snprintf(path, len, "%s%s", DISPATCH_ROOT_PREFIX, r->files[i].path);
            files[n].path = path;
            files[n].bytes = (int64_t)r->files[i].size;
            snprintf(files[n].sha256, sizeof(files[n].sha256), "%s", r->files[i].sha256);
            n++;
        }
        m.completed.files = files;
        m.completed.n_files = n;
        log_info("event=capture_completed captureId=%s stopReason=%s files=%zu packets=%" PRIu64
                 " bytes=%" PRIu64 " drops=%" PRIu64,
                 s->capture_id, capture_stop_reason_name(r->reason), r->n_files, r->stats.packets,
                 r->stats.bytes, r->stats.drops);
    } else {
        m.type = PROTO_ERROR;
        snprintf(m.error.capture_id, sizeof(m.error.capture_id), "%s", s->capture_id);
        m.error.code = PROTO_PC_INTERNAL_ERROR;
        (void)proto_pc_error_parse(capture_error_name(r->error), &m.error.code);
        snprintf(m.error.message, sizeof(m.error.message), "%s", r->message);
        log_warnx("event=capture_failed captureId=%s code=%s detail=\"%s\"", s->capture_id,
                  capture_error_name(r->error), r->message);
    }
    s->final = report(d, ch, &m);
    for (size_t i = 0; i < n; i++)
        free(files[i].path);
    free(files);
    capture_free(s->cap);
    s->cap = NULL;
    s->state = DISPATCH_FINISHED;
}

static void on_wake(void *ctx, struct channel *ch)
{
    struct dispatch *d = ctx;
    struct epoll_event evs[DISPATCH_EVENTS];
    int n = epoll_wait(d->epfd, evs, DISPATCH_EVENTS, 0);
    for (int i = 0; i < n; i++)
        finish(d, ch, evs[i].data.ptr);
}

/* ---- stop, welcome, reply ---------------------------------------------------------------- */

static void on_stop(struct dispatch *d, struct channel *ch, const struct proto_stop *st)
{
    struct dispatch_session *s = by_command(d, st->command_id);
    if (s && strcmp(s->stop_command_id, st->command_id) == 0) {
        log_info("event=command_repeat type=stop commandId=%s captureId=%s", st->command_id,
                 st->capture_id);
        if (s->stop_ack)
            send_json(ch, s->stop_ack);
        return;
    }
    s = by_capture(d, st->capture_id);
    if (!s) {
        log_warnx("event=stop_unknown_capture commandId=%s captureId=%s", st->command_id,
                  st->capture_id);
        return;
    }
    log_info("event=capture_stop captureId=%s reason=%s running=%s", st->capture_id,
             or_dash(proto_stop_reason_name(st->reason)),
             s->state == DISPATCH_RUNNING ? "yes" : "no");
    if (s->state == DISPATCH_RUNNING) {
        if (s->stop_reason == PROTO_STOP_NONE)
            s->stop_reason = st->reason;
        capture_stop(s->cap); /* its end is reported by on_wake */
    }
    snprintf(s->stop_command_id, sizeof(s->stop_command_id), "%s", st->command_id);
    s->stop_ack = send_ack(d, ch, st->command_id, epoch_ms(), NULL, NULL);
    /* Already ended: the server may not have its final report yet; the same seq again is
     * applied at most once. */
    if (s->state == DISPATCH_FINISHED && s->final)
        send_json(ch, s->final);
}

static void on_welcome(void *ctx, struct channel *ch, json_t *welcome)
{
    struct dispatch *d = ctx;
    /* Reports the server has applied (the channel has just recorded lastAppliedSeq): a session
     * whose final report is among them is no longer held. */
    uint64_t from = agent_state_unacked_from(d->state);
    for (struct dispatch_session *s = d->sessions; s; s = s->next) {
        if (s->final && s->final->seq < from)
            s->final_replied = 1;
    }
    size_t i;
    json_t *id;
    json_array_foreach(json_object_get(welcome, "stop"), i, id)
    {
        /* Sessions the server has stopped or deleted while we were apart. The welcome does not
         * say which, so the session ends as a stop command would: Manual. */
        struct dispatch_session *s = by_capture(d, or_dash(json_string_value(id)));
        log_info("event=welcome_stop captureId=%.40s held=%s", or_dash(json_string_value(id)),
                 !s                             ? "no"
                 : s->state == DISPATCH_RUNNING ? "running"
                                                : "finished");
        if (s && s->state == DISPATCH_RUNNING) {
            if (s->stop_reason == PROTO_STOP_NONE)
                s->stop_reason = PROTO_STOP_MANUAL;
            capture_stop(s->cap); /* its end is reported by on_wake */
        }
    }
    /* Reports the server has not applied (it told us lastAppliedSeq) go again, in order. */
    for (const struct dispatch_report *r = d->reports; r; r = r->next) {
        if (r->seq >= from)
            send_json(ch, r);
    }
}

/* A reply: the final report it answers settles its session, unless the server could not store
 * it (then it goes again after the next welcome). A refusal for a session that is not ours
 * settles it too: sending it again would change nothing. */
static void on_reply(struct dispatch *d, const struct proto_reply *r)
{
    log_debug("event=report_reply seq=%lld ok=%s code=%s", (long long)r->seq, r->ok ? "yes" : "no",
              or_dash(r->code));
    if (!r->ok)
        log_warnx("event=report_refused seq=%lld code=%s detail=\"%s\"", (long long)r->seq, r->code,
                  r->message);
    if (!r->ok && strcmp(r->code, PROTO_REPLY_NOT_YOUR_SESSION) != 0)
        return;
    for (struct dispatch_session *s = d->sessions; s; s = s->next) {
        if (s->final && (int64_t)s->final->seq == r->seq)
            s->final_replied = 1;
    }
}

/* channel_handler.hello_sessions: running captures, then ended ones whose final report the
 * server has not answered yet. */
static size_t hello_sessions(void *ctx, struct proto_session *out, size_t max)
{
    struct dispatch *d = ctx;
    size_t n = 0;
    for (const struct dispatch_session *s = d->sessions; s && n < max; s = s->next) {
        enum proto_session_state st = PROTO_SESSION_NONE;
        if (s->state == DISPATCH_RUNNING)
            st = PROTO_SESSION_RUNNING;
        else if (s->state == DISPATCH_FINISHED && !s->final_replied)
            st = PROTO_SESSION_FINISHED;
        if (st == PROTO_SESSION_NONE)
            continue;
        snprintf(out[n].capture_id, sizeof(out[n].capture_id), "%s", s->capture_id);
        out[n].state = st;
        n++;
    }
    return n;
}

static void on_message(void *ctx, struct channel *ch, const char *type, json_t *msg)
{
    struct dispatch *d = ctx;
    char *text = json_dumps(msg, JSON_COMPACT);
    struct proto_msg m = {.type = PROTO_NONE};
    struct cp_error e = {{0}, {0}, {0}};
    if (!text || proto_decode(text, strlen(text), &m, &e) != CP_OK) {
        log_warnx("event=command_invalid type=%.32s detail=\"%s\"", type,
                  text ? e.message : "out of memory");
        free(text);
        return;
    }
    free(text);
    switch (m.type) {
    case PROTO_START:
        on_start(d, ch, &m.start);
        break;
    case PROTO_STOP:
        on_stop(d, ch, &m.stop);
        break;
    case PROTO_REPLY:
        on_reply(d, &m.reply);
        break;
    default:
        log_warnx("event=message_unexpected type=%.32s", type);
        break;
    }
    proto_msg_clear(&m);
}

/* ---- life -------------------------------------------------------------------------------- */

enum cp_err dispatch_new(const struct dispatch_options *o, struct dispatch **out,
                         struct cp_error *e)
{
    struct dispatch *d = calloc(1, sizeof(*d));
    if (!d)
        return cp_fail(e, CP_ENOMEM, "", "", "out of memory");
    d->root = o->capture_root;
    d->state = o->state;
    const char *list = o->interfaces ? o->interfaces : "";
    if (strlen(list) >= sizeof(d->ifbuf)) {
        free(d);
        return cp_fail(e, CP_EINVAL, "", "interfaces", "interfaces: the list is too long");
    }
    memcpy(d->ifbuf, list, strlen(list) + 1);
    for (char *p = d->ifbuf; *p;) {
        char *end = p + strcspn(p, ",");
        int last = *end == '\0';
        *end = '\0';
        while (*p == ' ')
            p++;
        for (char *t = end; t > p && t[-1] == ' ';)
            *--t = '\0';
        if (!*p || strlen(p) >= PROTO_IFNAME_MAX || d->n_ifaces == CAPTURE_MAX_INTERFACES) {
            free(d);
            return cp_fail(e, CP_EINVAL, "", "interfaces",
                           "interfaces: expected a comma-separated list of at most %d names",
                           CAPTURE_MAX_INTERFACES);
        }
        d->ifaces[d->n_ifaces++] = p;
        p = last ? end : end + 1;
    }
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (d->epfd < 0) {
        free(d);
        return cp_fail(e, CP_EIO, "", "", "epoll_create1: %s", strerror(errno));
    }
    *out = d;
    return CP_OK;
}

void dispatch_handler(struct dispatch *d, struct channel_handler *out)
{
    *out = (struct channel_handler){.ctx = d,
                                    .on_welcome = on_welcome,
                                    .on_message = on_message,
                                    .wake_fd = d->epfd,
                                    .on_wake = on_wake,
                                    .hello_sessions = hello_sessions};
}

void dispatch_free(struct dispatch *d)
{
    if (!d)
        return;
    for (struct dispatch_session *s = d->sessions, *next; s; s = next) {
        next = s->next;
        if (s->cap)
            log_info("event=capture_abandoned captureId=%s", s->capture_id);
        capture_free(s->cap); /* stops it: the file is completed, not reported */
        free(s);
    }
    for (struct dispatch_report *r = d->reports, *next; r; r = next) {
        next = r->next;
        free(r->json);
        free(r);
    }
    close(d->epfd);
    free(d);
}
