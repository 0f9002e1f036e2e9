/* The command dispatcher behind agent/dispatch.h: start, stop, reports, replies, progress. */
#include "agent/dispatch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "agent/dispatch_int.h"
#include "agent/capture_ring.h"
#include "agent/spec.h"
#include "common/log.h"

#define DISPATCH_EVENTS     32
#define DISPATCH_SAVE_EVERY 10 /* seconds between counter saves when progress is off */

int64_t dispatch_epoch_ms(void)
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

static void send_text(struct channel *ch, uint64_t seq, const char *json)
{
    if (!ch || !json)
        return;
    enum cp_err err = channel_send(ch, json, strlen(json));
    /* Not fatal: the report is kept and sent again after the next welcome. */
    if (err != CP_OK)
        log_warnx("event=report_not_sent seq=%" PRIu64 " reason=%s", seq, cp_err_name(err));
}

static void set_seq(struct proto_msg *m, uint64_t seq)
{
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
    case PROTO_PROGRESS:
        m->progress.seq = (int64_t)seq;
        break;
    default:
        break;
    }
}

/* Encodes m; a completed that does not fit one message drops its oldest files until it does
 * (the protocol lets an informative list be trimmed; the server keeps no file list yet). */
static char *encode(struct proto_msg *m)
{
    char *json = proto_encode(m);
    while (!json && m->type == PROTO_COMPLETED && m->completed.n_files > 0) {
        m->completed.files++;
        m->completed.n_files--;
        json = proto_encode(m);
    }
    return json;
}

struct dispatch_report *dispatch_report_new(uint64_t seq, const struct proto_msg *m, char *json)
{
    struct dispatch_report *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->seq = seq;
    r->type = m->type;
    r->json = json;
    if (m->type == PROTO_ACK)
        snprintf(r->command_id, sizeof(r->command_id), "%s", m->ack.command_id);
    else if (m->type == PROTO_COMPLETED)
        snprintf(r->capture_id, sizeof(r->capture_id), "%s", m->completed.capture_id);
    else if (m->type == PROTO_ERROR)
        snprintf(r->capture_id, sizeof(r->capture_id), "%s", m->error.capture_id);
    return r;
}

void dispatch_report_append(struct dispatch *d, struct dispatch_report *r)
{
    if (d->last_report)
        d->last_report->next = r;
    else
        d->reports = r;
    d->last_report = r;
    d->n_reports++;
}

uint64_t dispatch_report(struct dispatch *d, struct channel *ch, struct proto_msg *m, char **copy)
{
    uint64_t seq;
    struct cp_error e = {{0}, {0}, {0}};
    if (copy)
        *copy = NULL;
    if (agent_state_take_seq(d->state, &seq, &e) != CP_OK) {
        log_error("event=state_write_failed detail=\"%s\"", e.message);
        return 0;
    }
    set_seq(m, seq);
    struct proto_file *files = m->type == PROTO_COMPLETED ? m->completed.files : NULL;
    char *json = encode(m);
    if (files)
        m->completed.files = files; /* the caller frees what it allocated */
    struct dispatch_report *r = json ? dispatch_report_new(seq, m, json) : NULL;
    if (!r) {
        log_error("event=report_unencodable type=%s seq=%" PRIu64, proto_type_name(m->type), seq);
        free(json);
        return 0;
    }
    /* Durable before it is sent: a restart sends it again rather than losing it. A spool that
     * cannot be written (disk full) does not stop the report: it is still sent and kept in
     * memory until answered. */
    if (spool_report_save(d->spool, seq, json, strlen(json), &e) != CP_OK)
        log_error("event=report_not_saved seq=%" PRIu64 " detail=\"%s\"", seq, e.message);
    dispatch_report_append(d, r);
    send_text(ch, seq, json);
    if (copy)
        *copy = strdup(json);
    return seq;
}

/* Forgets an answered report (memory and spool). */
static void report_drop(struct dispatch *d, struct dispatch_report *r)
{
    struct dispatch_report **pp = &d->reports, *prev = NULL;
    while (*pp && *pp != r) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (!*pp)
        return;
    *pp = r->next;
    if (d->last_report == r)
        d->last_report = prev;
    d->n_reports--;
    struct cp_error e = {{0}, {0}, {0}};
    if (spool_report_remove(d->spool, r->seq, &e) != CP_OK)
        log_warnx("event=state_write_failed detail=\"%s\"", e.message);
    free(r->json);
    free(r);
}

static struct dispatch_report *report_by_seq(struct dispatch *d, uint64_t seq)
{
    for (struct dispatch_report *r = d->reports; r; r = r->next)
        if (r->seq == seq)
            return r;
    return NULL;
}

/* Sends an ack; filter (borrowed, only read; may be NULL) is a started capture's expression. */
static char *send_ack_filter(struct dispatch *d, struct channel *ch, const char *command_id,
                             int64_t at, const char *code, const char *message, char *filter,
                             uint64_t *seq)
{
    struct proto_msg m = {.type = PROTO_ACK};
    snprintf(m.ack.command_id, sizeof(m.ack.command_id), "%s", command_id);
    m.ack.ok = code == NULL;
    m.ack.at = at;
    m.ack.filter = code ? NULL : filter; /* only read by the encoder */
    if (code) {
        enum proto_pc_error pc = PROTO_PC_INTERNAL_ERROR;
        (void)proto_pc_error_parse(code, &pc); /* an engine code outside PcError: Internal */
        m.ack.code = pc;
        snprintf(m.ack.message, sizeof(m.ack.message), "%s", message ? message : "");
    }
    log_info("event=command_ack commandId=%s ok=%s code=%s", command_id, code ? "no" : "yes",
             or_dash(code));
    char *copy = NULL;
    uint64_t s = dispatch_report(d, ch, &m, &copy);
    if (seq)
        *seq = s;
    return copy;
}

static char *send_ack(struct dispatch *d, struct channel *ch, const char *command_id, int64_t at,
                      const char *code, const char *message, uint64_t *seq)
{
    return send_ack_filter(d, ch, command_id, at, code, message, NULL, seq);
}

/* ---- sessions ---------------------------------------------------------------------------- */

struct dispatch_session *dispatch_session_new(struct dispatch *d)
{
    struct dispatch_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->next = d->sessions;
    d->sessions = s;
    return s;
}

void dispatch_session_drop(struct dispatch *d, struct dispatch_session *s)
{
    for (struct dispatch_session **pp = &d->sessions; *pp; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    if (s->cap) {
        (void)epoll_ctl(d->epfd, EPOLL_CTL_DEL, capture_done_fd(s->cap), NULL);
        capture_free(s->cap);
    }
    spool_session_clear(&s->rec);
    free(s->ack_json);
    free(s->stop_ack_json);
    free(s->final_json);
    free(s->filter);
    free(s->upload_failure);
    free(s->ring_up); /* after capture_free: the capture thread no longer calls the hook */
    free(s);
}

int dispatch_save(struct dispatch *d, struct dispatch_session *s)
{
    struct cp_error e = {{0}, {0}, {0}};
    if (s->state != DISPATCH_REFUSED && spool_session_save(d->spool, &s->rec, &e) != CP_OK) {
        log_error("event=session_not_saved captureId=%s detail=\"%s\"", s->rec.capture_id,
                  e.message);
        return -1;
    }
    return 0;
}

/* The held session a command id names (its start or its last stop). */
static struct dispatch_session *by_command(struct dispatch *d, const char *command_id)
{
    for (struct dispatch_session *s = d->sessions; s; s = s->next) {
        if (strcmp(s->rec.command_id, command_id) == 0 ||
            strcmp(s->rec.stop_command_id, command_id) == 0)
            return s;
    }
    return NULL;
}

/* The session a capture id names; a refused start never made one. */
static struct dispatch_session *by_capture(struct dispatch *d, const char *capture_id)
{
    for (struct dispatch_session *s = d->sessions; s; s = s->next) {
        if (s->state != DISPATCH_REFUSED && strcmp(s->rec.capture_id, capture_id) == 0)
            return s;
    }
    return NULL;
}

static size_t held(const struct dispatch *d)
{
    size_t n = 0;
    for (const struct dispatch_session *s = d->sessions; s; s = s->next)
        n += s->state != DISPATCH_REFUSED;
    return n;
}

size_t dispatch_running(const struct dispatch *d)
{
    size_t n = 0;
    for (const struct dispatch_session *s = d->sessions; s; s = s->next)
        n += s->state == DISPATCH_RUNNING;
    return n;
}

/* ---- capturing --------------------------------------------------------------------------- */

/* The ring's files kept from before a restart (rec's files) as capture_ring.prior, and the seq to
 * go on from. *prior (malloc'ed, NULL when none) is the caller's to free. */
static enum cp_err ring_prior(const struct spool_session *rec, const char *base,
                              struct capture_ring *ring, struct capture_file **prior,
                              struct cp_error *e)
{
    uint32_t last = 0;
    *prior = rec->n_files ? calloc(rec->n_files, sizeof(**prior)) : NULL;
    if (rec->n_files && !*prior)
        return cp_fail(e, CP_ENOMEM, "InternalError", "", "out of memory");
    for (size_t i = 0; i < rec->n_files; i++) {
        struct capture_file *f = &(*prior)[i];
        snprintf(f->path, sizeof(f->path), "%s", rec->files[i].path);
        f->size = rec->files[i].size;
        snprintf(f->sha256, sizeof(f->sha256), "%s", rec->files[i].sha256);
        const char *slash = strrchr(f->path, '/');
        uint32_t seq = capture_ring_seq(base, slash ? slash + 1 : f->path);
        last = seq > last ? seq : last;
    }
    ring->first_seq = last + 1;
    ring->prior = *prior;
    ring->n_prior = rec->n_files;
    return CP_OK;
}

enum cp_err dispatch_capture(struct dispatch *d, struct dispatch_session *s, const char *rel,
                             uint64_t time_left_ms, uint64_t byte_budget, struct cp_error *e)
{
    struct agent_spec sp;
    struct capture *cap = NULL;
    struct capture_file *prior = NULL;
    enum cp_err rc = CP_EINVAL;
    if (dispatch_spec(s, &sp, e) == 0) {
        struct capture_params p = {.root_dir = d->root,
                                   .file_path = rel,
                                   .snaplen = sp.snaplen,
                                   .byte_limit = byte_budget,
                                   .time_limit_ms = time_left_ms,
                                   .interfaces = d->n_ifaces ? d->ifaces : NULL,
                                   .n_interfaces = d->n_ifaces,
                                   .filter = sp.filter};
        struct capture_ring ring = {.file_count = sp.ring_files, .file_size = sp.ring_file_size};
        rc = CP_OK;
        if (sp.ring) {
            /* A resumed ring goes on from its files kept (dispatch_restore.c lists them). */
            rc = ring_prior(&s->rec, sp.file, &ring, &prior, e);
            dispatch_upload_ring(d, s, sp.file, &ring);
            p.ring = &ring;
            p.byte_limit = 0;
        }
        if (rc == CP_OK)
            rc = capture_start(&p, &cap, e);
        if (rc != CP_OK && !e->code[0])
            snprintf(e->code, sizeof(e->code), "%s", "InternalError");
        s->ring = sp.ring;
        if (rc == CP_OK) {
            /* What this capture runs, for the start's ack (proto.h, ack.filter). */
            free(s->filter);
            s->filter = strdup(sp.filter ? sp.filter : "");
        }
    }
    free(prior);
    agent_spec_clear(&sp);
    if (rc != CP_OK)
        return rc;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, capture_done_fd(cap), &ev) != 0) {
        /* Without the watch its end would never be reported: refuse rather than lose it. */
        enum cp_err err = cp_fail(e, CP_EIO, "InternalError", "",
                                  "cannot watch the capture's end: %s", strerror(errno));
        capture_free(cap);
        return err;
    }
    s->cap = cap;
    s->state = DISPATCH_RUNNING;
    /* A ring writes many files: a restart finds them by their names instead. */
    snprintf(s->rec.partial, sizeof(s->rec.partial), "%s", s->ring ? "" : rel);
    return CP_OK;
}

/* Sends m (a progress for s) when progress is on, there is a channel and the totals changed
 * since the last one sent. Returns CP_OK, or the error of taking a seq (logged). */
static enum cp_err send_progress(struct dispatch *d, struct channel *ch, struct dispatch_session *s,
                                 struct proto_msg *m)
{
    struct proto_progress *p = &m->progress;
    if (!ch || !d->progress_s ||
        (p->packets == s->sent.packets && p->bytes == s->sent.bytes && p->drops == s->sent.drops &&
         p->files == s->sent.files && p->uploaded_bytes == s->sent.uploaded_bytes))
        return CP_OK;
    uint64_t seq;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = agent_state_take_seq(d->state, &seq, &e);
    if (err != CP_OK) {
        log_error("event=state_write_failed detail=\"%s\"", e.message);
        return err;
    }
    p->seq = (int64_t)seq;
    /* Not kept: a progress lost with a connection is superseded by the next one. */
    char *json = proto_encode(m);
    send_text(ch, seq, json);
    free(json);
    s->sent = *p;
    return CP_OK;
}

/* A session that completes says its final totals first (when connected), so the server's live
 * counters end where the capture did rather than at the last timer tick. */
static void send_final_progress(struct dispatch *d, struct channel *ch, struct dispatch_session *s,
                                size_t n_files)
{
    struct proto_msg m = {.type = PROTO_PROGRESS};
    struct proto_progress *p = &m.progress;
    snprintf(p->capture_id, sizeof(p->capture_id), "%s", s->rec.capture_id);
    p->packets = (int64_t)s->rec.packets;
    p->bytes = (int64_t)s->rec.bytes;
    p->drops = (int64_t)s->rec.drops;
    p->files = (int64_t)n_files;
    p->first_packet_at = s->rec.first_packet_ms;
    p->uploaded_bytes = (int64_t)uploads_bytes(d->uploads, s->rec.capture_id);
    (void)send_progress(d, ch, s, &m);
}

void dispatch_end(struct dispatch *d, struct channel *ch, struct dispatch_session *s,
                  enum proto_stop_reason reason, enum proto_pc_error code, const char *message)
{
    struct proto_msg m = {.type = PROTO_NONE};
    struct proto_file *files = NULL;
    size_t n = 0;
    if (code == PROTO_PC_NONE) {
        m.type = PROTO_COMPLETED;
        snprintf(m.completed.capture_id, sizeof(m.completed.capture_id), "%s", s->rec.capture_id);
        m.completed.stop_reason = reason;
        /* Storage only: the files are the blobs. */
        if (dispatch_upload_report(d, s, &files, &n) != 0)
            files = calloc(s->rec.n_files + 1, sizeof(*files));
        for (size_t i = 0; files && n == i && i < s->rec.n_files; i++) {
            const struct spool_file *f = &s->rec.files[i];
            size_t len = strlen(SPEC_ROOT_PREFIX) + strlen(f->path) + 1;
            char *path = malloc(len);
            if (!path)
                break;
            snprintf(path, len, "%s%s", SPEC_ROOT_PREFIX, f->path);
            files[n].path = path;
            files[n].bytes = (int64_t)f->size;
            snprintf(files[n].sha256, sizeof(files[n].sha256), "%s", f->sha256);
            n++;
            log_info("event=capture_file captureId=%s file=\"%s\" bytes=%" PRIu64 " sha256=%s",
                     s->rec.capture_id, path, f->size, f->sha256);
        }
        for (size_t i = 0; s->upload == SPEC_UPLOAD_ONLY && i < n; i++)
            log_info("event=capture_file captureId=%s file=\"%s\" bytes=%" PRId64 " sha256=%s",
                     s->rec.capture_id, files[i].path, files[i].bytes, files[i].sha256);
        m.completed.files = files;
        m.completed.n_files = n;
        send_final_progress(d, ch, s, n);
        log_info("event=capture_completed captureId=%s stopReason=%s files=%zu packets=%" PRIu64
                 " bytes=%" PRIu64 " drops=%" PRIu64,
                 s->rec.capture_id, proto_stop_reason_name(reason), n, s->rec.packets, s->rec.bytes,
                 s->rec.drops);
    } else {
        m.type = PROTO_ERROR;
        snprintf(m.error.capture_id, sizeof(m.error.capture_id), "%s", s->rec.capture_id);
        m.error.code = code;
        snprintf(m.error.message, sizeof(m.error.message), "%s", message ? message : "");
        log_warnx("event=capture_failed captureId=%s code=%s detail=\"%s\"", s->rec.capture_id,
                  proto_pc_error_name(code), or_dash(message));
    }
    free(s->final_json);
    s->rec.final_seq = dispatch_report(d, ch, &m, &s->final_json);
    for (size_t i = 0; i < n; i++)
        free(files[i].path);
    free(files);
    s->state = DISPATCH_FINISHED;
    s->rec.partial[0] = '\0';
    dispatch_save(d, s); /* after the report: a restart that finds both knows it ended */
    dispatch_upload_end(d, s, code == PROTO_PC_NONE);
}

/* The current file's capture has ended: its file joins the session's, then the end report. */
static void finish(struct dispatch *d, struct channel *ch, struct dispatch_session *s)
{
    (void)epoll_ctl(d->epfd, EPOLL_CTL_DEL, capture_done_fd(s->cap), NULL);
    capture_wait(s->cap);
    const struct capture_result *r = capture_result(s->cap);
    struct spool_session *rec = &s->rec;
    rec->packets += r->stats.packets;
    rec->bytes += r->stats.bytes;
    rec->drops += r->stats.drops;
    rec->cur_drops = 0;
    if (!rec->first_packet_ms)
        rec->first_packet_ms = r->stats.first_packet_ms;
    size_t from = 0;
    if (s->ring) {
        /* A ring's result lists every file it kept, those from before a restart too: it replaces
         * the list. A report lists at most PROTO_MAX_FILES: the newest. */
        free(rec->files);
        rec->files = NULL;
        rec->n_files = 0;
        from = r->n_files > PROTO_MAX_FILES ? r->n_files - PROTO_MAX_FILES : 0;
    }
    for (size_t i = from; i < r->n_files; i++) {
        if (spool_session_add_file(rec, r->files[i].path, r->files[i].size, r->files[i].sha256) !=
            CP_OK)
            log_warnx("event=session_file_not_listed captureId=%s file=\"%s\"", rec->capture_id,
                      r->files[i].path);
    }
    dispatch_upload_queue(d, s);
    enum proto_stop_reason reason = PROTO_STOP_MANUAL;
    enum proto_pc_error code = PROTO_PC_NONE;
    char message[PROTO_MESSAGE_MAX + 1] = "";
    if (r->error == CAPTURE_ERR_NONE) {
        (void)proto_stop_reason_parse(capture_stop_reason_name(r->reason), &reason);
        /* Stopped on the server's word: the reason it gave (Manual, SessionDeleted). */
        if (r->reason == CAPTURE_STOP_MANUAL && rec->stop_reason != PROTO_STOP_NONE)
            reason = rec->stop_reason;
    } else {
        code = PROTO_PC_INTERNAL_ERROR;
        (void)proto_pc_error_parse(capture_error_name(r->error), &code);
        snprintf(message, sizeof(message), "%s", r->message);
    }
    capture_free(s->cap);
    s->cap = NULL;
    if (code == PROTO_PC_NONE && s->upload_failure) {
        code = PROTO_PC_STORAGE_FAILED;
        snprintf(message, sizeof(message), "%s", s->upload_failure);
    }
    /* Files still going to storage: the completed report waits for them. */
    if (code == PROTO_PC_NONE && dispatch_upload_wait(d, s, reason))
        return;
    dispatch_end(d, ch, s, reason, code, message);
}

/* ---- start ------------------------------------------------------------------------------- */

static void on_start(struct dispatch *d, struct channel *ch, const struct proto_start *st)
{
    struct dispatch_session *s = by_command(d, st->command_id);
    if (s && strcmp(s->rec.command_id, st->command_id) == 0) {
        /* A resend (after a reconnect): the first answer stands. After a restart of the agent
         * the text is gone (answered, or in the spool and sent after the welcome); the same
         * answer, with a new seq, is harmless: the server applies an ack once. */
        log_info("event=command_repeat type=start commandId=%s captureId=%s", st->command_id,
                 st->capture_id);
        if (!s->ack_json)
            s->ack_json = s->state == DISPATCH_REFUSED
                              ? NULL
                              : send_ack_filter(d, NULL, st->command_id, s->rec.started_ms, NULL,
                                                NULL, s->filter, NULL);
        send_text(ch, 0, s->ack_json);
        return;
    }
    for (const struct dispatch_report *r = d->reports; r; r = r->next) {
        if (r->type == PROTO_ACK && strcmp(r->command_id, st->command_id) == 0) {
            /* Answered before a restart (a refusal: a start that ran has a session). */
            log_info("event=command_repeat type=start commandId=%s", st->command_id);
            send_text(ch, r->seq, r->json);
            return;
        }
    }
    if (d->n_reports >= SPOOL_MAX_REPORTS) {
        /* The server has answered nothing for long: no new work until it does (it sends the
         * start again after a reconnect). */
        log_warnx("event=start_deferred commandId=%s reason=\"%zu reports unanswered\"",
                  st->command_id, d->n_reports);
        return;
    }
    struct cp_error e = {{0}, {0}, {0}};
    int64_t at = dispatch_epoch_ms();
    s = dispatch_session_new(d);
    if (!s) {
        /* No record, so a resend starts over. */
        free(send_ack(d, ch, st->command_id, 0, "InternalError", "out of memory", NULL));
        return;
    }
    s->state = DISPATCH_REFUSED;
    snprintf(s->rec.command_id, sizeof(s->rec.command_id), "%s", st->command_id);
    snprintf(s->rec.capture_id, sizeof(s->rec.capture_id), "%s", st->capture_id);
    snprintf(s->rec.name, sizeof(s->rec.name), "%s", st->name);
    s->rec.spec = strdup(st->spec ? st->spec : "{}");
    s->rec.started_ms = at;
    s->rec.next_index = 1;
    struct agent_spec sp = {.filter = NULL};
    int ok = 0;
    if (!s->rec.spec)
        cp_fail(&e, CP_ENOMEM, "InternalError", "", "out of memory");
    else if (by_capture(d, st->capture_id))
        cp_fail(&e, CP_EEXIST, "CaptureFailed", "captureId",
                "capture %s already exists on this agent", st->capture_id);
    else if (held(d) >= PROTO_MAX_SESSIONS)
        cp_fail(&e, CP_ETOOBIG, "CaptureFailed", "", "this agent already holds %d sessions",
                PROTO_MAX_SESSIONS);
    else if (dispatch_spec(s, &sp, &e) == 0) {
        s->upload = sp.upload;
        ok = dispatch_capture(d, s, sp.file, (uint64_t)sp.time_limit_s * 1000, sp.byte_limit, &e) ==
             CP_OK;
    }
    agent_spec_clear(&sp);
    /* Saved before the ack: once the server hears of it, a restart finds it. A session that
     * cannot be saved is refused rather than run unrecorded. */
    if (ok && dispatch_save(d, s) != 0) {
        (void)epoll_ctl(d->epfd, EPOLL_CTL_DEL, capture_done_fd(s->cap), NULL);
        capture_free(s->cap);
        s->cap = NULL;
        ok = 0;
        cp_fail(&e, CP_EIO, "InternalError", "", "the agent cannot write its state directory");
    }
    if (!ok) {
        s->state = DISPATCH_REFUSED;
        log_warnx("event=capture_refused captureId=%s name=%s code=%s detail=\"%s\"",
                  st->capture_id, st->name, e.code, e.message);
        s->ack_json = send_ack(d, ch, st->command_id, 0, e.code, e.message, NULL);
        return;
    }
    log_info("event=capture_started captureId=%s name=%s", st->capture_id, st->name);
    s->ack_json = send_ack_filter(d, ch, st->command_id, at, NULL, NULL, s->filter, NULL);
}

/* ---- stop, welcome, reply ---------------------------------------------------------------- */

static void on_stop(struct dispatch *d, struct channel *ch, const struct proto_stop *st)
{
    struct dispatch_session *s = by_command(d, st->command_id);
    if (s && strcmp(s->rec.stop_command_id, st->command_id) == 0) {
        log_info("event=command_repeat type=stop commandId=%s captureId=%s", st->command_id,
                 st->capture_id);
        if (!s->stop_ack_json)
            s->stop_ack_json =
                send_ack(d, NULL, st->command_id, dispatch_epoch_ms(), NULL, NULL, NULL);
        send_text(ch, 0, s->stop_ack_json);
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
        if (s->rec.stop_reason == PROTO_STOP_NONE)
            s->rec.stop_reason = st->reason;
        capture_stop(s->cap); /* its end is reported by on_wake */
    }
    snprintf(s->rec.stop_command_id, sizeof(s->rec.stop_command_id), "%s", st->command_id);
    dispatch_save(d, s);
    free(s->stop_ack_json);
    s->stop_ack_json = send_ack(d, ch, st->command_id, dispatch_epoch_ms(), NULL, NULL, NULL);
    /* Already ended: the server may not have its final report yet; the same seq again is
     * applied at most once. */
    if (s->state == DISPATCH_FINISHED)
        send_text(ch, s->rec.final_seq, s->final_json);
}

/* A report the server has answered (or applied, says a welcome): forgotten, and its session
 * with it when it was the final one (or a refused start's ack). */
static void settle(struct dispatch *d, struct dispatch_report *r)
{
    struct dispatch_session *done = NULL;
    for (struct dispatch_session *s = d->sessions; s; s = s->next) {
        if ((s->state == DISPATCH_FINISHED && s->rec.final_seq == r->seq) ||
            (s->state == DISPATCH_REFUSED && r->type == PROTO_ACK &&
             strcmp(s->rec.command_id, r->command_id) == 0))
            done = s;
    }
    report_drop(d, r);
    if (done) {
        struct cp_error e = {{0}, {0}, {0}};
        if (done->state == DISPATCH_FINISHED &&
            spool_session_remove(d->spool, done->rec.capture_id, &e) != CP_OK)
            log_warnx("event=state_write_failed detail=\"%s\"", e.message);
        log_debug("event=session_settled captureId=%s", done->rec.capture_id);
        dispatch_session_drop(d, done);
    }
}

static void on_welcome(void *ctx, struct channel *ch, const struct proto_welcome *w)
{
    struct dispatch *d = ctx;
    /* Reports the server has applied (the channel has just recorded lastAppliedSeq). */
    uint64_t from = agent_state_unacked_from(d->state);
    while (d->reports && d->reports->seq < from)
        settle(d, d->reports);
    for (size_t i = 0; i < w->n_stop; i++) {
        /* Sessions the server has stopped or deleted while we were apart. The welcome does not
         * say which, so the session ends as a stop command would: Manual. */
        struct dispatch_session *s = by_capture(d, w->stop[i]);
        log_info("event=welcome_stop captureId=%s held=%s", w->stop[i],
                 !s                             ? "no"
                 : s->state == DISPATCH_RUNNING ? "running"
                                                : "finished");
        if (s && s->state == DISPATCH_RUNNING) {
            if (s->rec.stop_reason == PROTO_STOP_NONE)
                s->rec.stop_reason = PROTO_STOP_MANUAL;
            dispatch_save(d, s);
            capture_stop(s->cap); /* its end is reported by on_wake */
        }
    }
    /* Everything not answered goes again, in seq order (the server applies a seq once and
     * keeps the highest applied, so the order matters). */
    for (const struct dispatch_report *r = d->reports; r; r = r->next)
        send_text(ch, r->seq, r->json);
    uploads_on_welcome(d->uploads, ch);
}

/* A reply settles its report, unless the server could not store it (then it goes again after
 * the next welcome). A refusal for a session that is not ours settles it too: sending it again
 * would change nothing. A reply for no kept report answers a progress: a refused one is never
 * sent again (the next progress supersedes it). */
static void on_reply(struct dispatch *d, const struct proto_reply *rp)
{
    struct dispatch_report *r = rp->seq > 0 ? report_by_seq(d, (uint64_t)rp->seq) : NULL;
    log_debug("event=report_reply seq=%lld ok=%s code=%s kept=%s", (long long)rp->seq,
              rp->ok ? "yes" : "no", or_dash(rp->code), r ? "yes" : "no");
    if (!r) {
        if (!rp->ok && d->progress_refused++ == 0)
            log_warnx("event=progress_refused seq=%lld code=%s detail=\"%s\" hint=\"the server "
                      "does not take progress reports; further refusals are logged at debug\"",
                      (long long)rp->seq, rp->code, rp->message);
        return;
    }
    if (!rp->ok)
        log_warnx("event=report_refused seq=%lld code=%s detail=\"%s\"", (long long)rp->seq,
                  rp->code, rp->message);
    if (rp->ok || strcmp(rp->code, PROTO_REPLY_NOT_YOUR_SESSION) == 0)
        settle(d, r);
}

/* channel_handler.hello_sessions: running captures, then ended ones whose final report the
 * server has not answered yet. */
static size_t hello_sessions(void *ctx, struct proto_session *out, size_t max)
{
    struct dispatch *d = ctx;
    size_t n = 0;
    for (const struct dispatch_session *s = d->sessions; s && n < max; s = s->next) {
        if (s->state == DISPATCH_REFUSED)
            continue;
        snprintf(out[n].capture_id, sizeof(out[n].capture_id), "%s", s->rec.capture_id);
        /* UPLOADING: the server hears of its end once its files are in storage. */
        out[n].state =
            s->state == DISPATCH_FINISHED ? PROTO_SESSION_FINISHED : PROTO_SESSION_RUNNING;
        n++;
    }
    return n;
}

/* ---- progress ---------------------------------------------------------------------------- */

/* The timer: each running session's totals are saved when they changed (drops are known only
 * here; packets and bytes a restart recovers from the file) and, with progress on and a
 * channel, reported. */
static void tick(struct dispatch *d, struct channel *ch)
{
    uint64_t n;
    (void)!read(d->timerfd, &n, sizeof(n));
    for (struct dispatch_session *s = d->sessions; s; s = s->next) {
        if (s->state == DISPATCH_UPLOADING) {
            send_final_progress(d, ch, s, s->rec.n_files); /* only what was uploaded changes */
            continue;
        }
        if (s->state != DISPATCH_RUNNING)
            continue;
        struct capture_stats cur;
        capture_progress(s->cap, &cur);
        struct spool_session *rec = &s->rec;
        if (cur.drops != rec->cur_drops || (!rec->first_packet_ms && cur.first_packet_ms)) {
            rec->cur_drops = cur.drops;
            if (!rec->first_packet_ms)
                rec->first_packet_ms = cur.first_packet_ms;
            dispatch_save(d, s);
        }
        struct proto_msg m = {.type = PROTO_PROGRESS};
        struct proto_progress *p = &m.progress;
        snprintf(p->capture_id, sizeof(p->capture_id), "%s", rec->capture_id);
        p->packets = (int64_t)(rec->packets + cur.packets);
        p->bytes = (int64_t)(rec->bytes + cur.bytes);
        p->drops = (int64_t)(rec->drops + cur.drops);
        /* The one being written counts; a ring's capture counts every file it keeps. */
        p->files = (int64_t)(s->ring ? cur.files : rec->n_files) + 1;
        p->first_packet_at = rec->first_packet_ms;
        p->uploaded_bytes = (int64_t)uploads_bytes(d->uploads, rec->capture_id);
        if (send_progress(d, ch, s, &m) != CP_OK)
            return;
    }
}

static void on_wake(void *ctx, struct channel *ch)
{
    struct dispatch *d = ctx;
    struct epoll_event evs[DISPATCH_EVENTS];
    int n = epoll_wait(d->epfd, evs, DISPATCH_EVENTS, 0);
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == &d->timerfd)
            tick(d, ch);
        else if (evs[i].data.ptr == &d->uploads)
            uploads_on_wake(d->uploads, ch);
        else
            finish(d, ch, evs[i].data.ptr);
    }
}

static void on_message(void *ctx, struct channel *ch, const struct proto_msg *m)
{
    struct dispatch *d = ctx;
    switch (m->type) {
    case PROTO_START:
        on_start(d, ch, &m->start);
        break;
    case PROTO_STOP:
        on_stop(d, ch, &m->stop);
        break;
    case PROTO_REPLY:
        on_reply(d, &m->reply);
        break;
    case PROTO_BLOB_GRANT:
        uploads_on_grant(d->uploads, &m->blob_grant);
        break;
    default:
        /* A message the agent sends (hello, ack, ...) has no business coming back. */
        log_warnx("event=message_unexpected type=%s", proto_type_name(m->type));
        break;
    }
}

/* ---- life -------------------------------------------------------------------------------- */

static enum cp_err split_interfaces(struct dispatch *d, const char *list, struct cp_error *e)
{
    if (strlen(list) >= sizeof(d->ifbuf))
        return cp_fail(e, CP_EINVAL, "", "interfaces", "interfaces: the list is too long");
    memcpy(d->ifbuf, list, strlen(list) + 1);
    for (char *p = d->ifbuf; *p;) {
        char *end = p + strcspn(p, ",");
        int last = *end == '\0';
        *end = '\0';
        while (*p == ' ')
            p++;
        for (char *t = end; t > p && t[-1] == ' ';)
            *--t = '\0';
        if (!*p || strlen(p) >= PROTO_IFNAME_MAX || d->n_ifaces == CAPTURE_MAX_INTERFACES)
            return cp_fail(e, CP_EINVAL, "", "interfaces",
                           "interfaces: expected a comma-separated list of at most %d names",
                           CAPTURE_MAX_INTERFACES);
        d->ifaces[d->n_ifaces++] = p;
        p = last ? end : end + 1;
    }
    return CP_OK;
}

static enum cp_err start_timer(struct dispatch *d, struct cp_error *e)
{
    time_t every = d->progress_s ? (time_t)d->progress_s : DISPATCH_SAVE_EVERY;
    struct itimerspec its = {.it_interval = {every, 0}, .it_value = {every, 0}};
    d->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &d->timerfd};
    if (d->timerfd < 0 || timerfd_settime(d->timerfd, 0, &its, NULL) != 0 ||
        epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->timerfd, &ev) != 0)
        return cp_fail(e, CP_EIO, "", "", "timerfd: %s", strerror(errno));
    return CP_OK;
}

enum cp_err dispatch_new(const struct dispatch_options *o, struct dispatch **out,
                         struct cp_error *e)
{
    struct dispatch *d = calloc(1, sizeof(*d));
    if (!d)
        return cp_fail(e, CP_ENOMEM, "", "", "out of memory");
    d->root = o->capture_root;
    d->state = o->state;
    d->progress_s = o->progress_interval_s;
    d->epfd = d->timerfd = -1;
    enum cp_err err = split_interfaces(d, o->interfaces ? o->interfaces : "", e);
    if (err == CP_OK) {
        d->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (d->epfd < 0)
            err = cp_fail(e, CP_EIO, "", "", "epoll_create1: %s", strerror(errno));
    }
    if (err == CP_OK)
        err = start_timer(d, e);
    if (err == CP_OK)
        err = spool_open(d->state->dir, &d->spool, e);
    if (err == CP_OK)
        err = dispatch_upload_open(d, o, e);
    if (err == CP_OK)
        err = dispatch_restore(d, e);
    if (err != CP_OK) {
        dispatch_free(d);
        return err;
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
    while (d->sessions) {
        struct dispatch_session *s = d->sessions;
        if (s->cap)
            log_info("event=capture_paused captureId=%s hint=\"resumed at the next start\"",
                     s->rec.capture_id);
        dispatch_session_drop(d, s); /* a capture stops with its file complete */
    }
    for (struct dispatch_report *r = d->reports, *next; r; r = next) {
        next = r->next;
        free(r->json);
        free(r);
    }
    uploads_free(d->uploads);
    spool_free(d->spool);
    if (d->timerfd >= 0)
        close(d->timerfd);
    if (d->epfd >= 0)
        close(d->epfd);
    free(d);
}
