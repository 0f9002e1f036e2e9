/*
 * What a starting agent finds from its previous life (docs/agent.md, "Restart"): the spool's
 * sessions and unanswered reports, the files a crash left unfinished, and the sessions to
 * resume or end. Runs once, in dispatch_new, before any connection: reports made here wait for
 * the first welcome.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/capture_ring.h"
#include "agent/dispatch_int.h"
#include "agent/salvage.h"
#include "agent/spec.h"
#include "common/log.h"

#define RESTORE_NAME_TRIES 16 /* resumed file names tried past ones that already exist */

static void on_session(void *arg, struct spool_session *rec)
{
    struct dispatch *d = arg;
    struct dispatch_session *s = dispatch_session_new(d);
    if (!s) {
        log_error("event=session_not_restored captureId=%s reason=\"out of memory\"",
                  rec->capture_id);
        spool_session_clear(rec);
        return;
    }
    s->rec = *rec;
    /* RUNNING without a capture: resumed (or ended) below. */
    s->state = rec->final_seq ? DISPATCH_FINISHED : DISPATCH_RUNNING;
}

static void on_report(void *arg, uint64_t seq, const struct proto_msg *m, char *json)
{
    struct dispatch *d = arg;
    struct dispatch_report *r = dispatch_report_new(seq, m, json);
    if (!r) {
        log_error("event=report_not_restored seq=%" PRIu64 " reason=\"out of memory\"", seq);
        free(json);
        return;
    }
    dispatch_report_append(d, r);
}

/* Ties each kept report to its session: the answers to repeat, and which sessions ended. */
static void link_reports(struct dispatch *d)
{
    for (const struct dispatch_report *r = d->reports; r; r = r->next) {
        for (struct dispatch_session *s = d->sessions; s; s = s->next) {
            if (r->type == PROTO_ACK && strcmp(s->rec.command_id, r->command_id) == 0) {
                free(s->ack_json);
                s->ack_json = strdup(r->json);
            } else if (r->type == PROTO_ACK && strcmp(s->rec.stop_command_id, r->command_id) == 0) {
                free(s->stop_ack_json);
                s->stop_ack_json = strdup(r->json);
            } else if (r->type != PROTO_ACK && strcmp(s->rec.capture_id, r->capture_id) == 0) {
                /* The end was reported (a crash may have come before the session was saved). */
                free(s->final_json);
                s->final_json = strdup(r->json);
                s->rec.final_seq = r->seq;
                s->rec.partial[0] = '\0';
                s->state = DISPATCH_FINISHED;
            }
        }
    }
}

/* Finished sessions whose final report is no longer kept were answered: forgotten. */
static void drop_answered(struct dispatch *d)
{
    for (struct dispatch_session *s = d->sessions, *next; s; s = next) {
        next = s->next;
        if (s->state != DISPATCH_FINISHED || s->final_json)
            continue;
        struct cp_error e = {{0}, {0}, {0}};
        if (spool_session_remove(d->spool, s->rec.capture_id, &e) != CP_OK)
            log_warnx("event=state_write_failed detail=\"%s\"", e.message);
        dispatch_session_drop(d, s);
    }
}

/* The file a running session was writing when the agent went down joins its files. */
static void salvage_current(struct dispatch *d, int rootfd, struct dispatch_session *s)
{
    struct spool_session *rec = &s->rec;
    if (!rec->partial[0])
        return;
    struct salvage_info info;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = rootfd >= 0 ? salvage_file(rootfd, rec->partial, &info, &e) : CP_EIO;
    if (err == CP_OK) {
        if (spool_session_add_file(rec, info.path, info.size, info.sha256) != CP_OK)
            log_warnx("event=session_file_not_listed captureId=%s file=\"%s\"", rec->capture_id,
                      info.path);
        rec->packets += info.packets;
        rec->bytes += info.bytes;
        if (!rec->first_packet_ms)
            rec->first_packet_ms = info.first_packet_ms;
    } else {
        log_warnx("event=session_file_lost captureId=%s file=\"%s\" detail=\"%s\"", rec->capture_id,
                  rec->partial, rootfd >= 0 ? e.message : "no capture root");
    }
    rec->drops += rec->cur_drops;
    rec->cur_drops = 0;
    rec->partial[0] = '\0';
    dispatch_save(d, s);
}

/*
 * A running ring's files are what its directory holds under its names (the sweep has salvaged
 * its partial file already): the newest fileCount of them are the session's files, read for size
 * and SHA-256, older ones deleted as the ring would have. The session's packet and byte totals
 * become those of the files kept (packets in files deleted before the restart are not counted).
 */
static void ring_collect(struct dispatch *d, int rootfd, struct dispatch_session *s)
{
    struct spool_session *rec = &s->rec;
    struct agent_spec sp = {.filter = NULL};
    struct cp_error e = {{0}, {0}, {0}};
    struct capture_ring_entry *v = NULL;
    size_t n = 0;
    if (dispatch_spec(s, &sp, &e) != 0 || !sp.ring || rootfd < 0)
        goto out; /* not a ring; or resume() reports what is wrong */
    s->ring = 1;
    if (capture_ring_list(rootfd, sp.file, &v, &n, &e) != CP_OK) {
        log_warnx("event=ring_not_listed captureId=%s detail=\"%s\"", rec->capture_id, e.message);
        goto out;
    }
    size_t from = n > sp.ring_files ? n - sp.ring_files : 0;
    for (size_t i = 0; i < from; i++)
        capture_ring_remove(rootfd, v[i].path);
    /* A report lists PROTO_MAX_FILES at most: older ones stay on disk, unlisted. */
    if (n - from > PROTO_MAX_FILES)
        from = n - PROTO_MAX_FILES;
    free(rec->files);
    rec->files = NULL;
    rec->n_files = 0;
    rec->packets = rec->bytes = 0;
    for (size_t i = from; i < n; i++) {
        struct salvage_info info;
        if (salvage_file(rootfd, v[i].path, &info, &e) != CP_OK ||
            spool_session_add_file(rec, info.path, info.size, info.sha256) != CP_OK) {
            log_warnx("event=session_file_lost captureId=%s file=\"%s\" detail=\"%s\"",
                      rec->capture_id, v[i].path, e.message);
            continue;
        }
        rec->packets += info.packets;
        rec->bytes += info.bytes;
        if (!rec->first_packet_ms)
            rec->first_packet_ms = info.first_packet_ms;
    }
    log_info("event=ring_restored captureId=%s files=%zu deleted=%zu", rec->capture_id,
             rec->n_files, n > sp.ring_files ? n - sp.ring_files : 0);
    dispatch_save(d, s);
out:
    free(v);
    agent_spec_clear(&sp);
}

/* "dir/pc1.cap" and 2 -> "dir/pc1.2.cap"; a name without an extension gets ".2" at the end. */
static int resume_name(const char *rel, uint32_t index, char *out, size_t n)
{
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base)
        dot = base + strlen(base);
    int w = snprintf(out, n, "%.*s.%u%s", (int)(dot - rel), rel, index, dot);
    return w > 0 && (size_t)w < n ? 0 : -1;
}

/* Carries a running session on: it ends now when a limit has passed or a stop was asked, else it
 * captures again into a new file of its own, within what is left of its limits. */
static void resume(struct dispatch *d, struct dispatch_session *s)
{
    struct spool_session *rec = &s->rec;
    struct agent_spec sp = {.filter = NULL};
    struct cp_error e = {{0}, {0}, {0}};
    if (dispatch_spec(s, &sp, &e) != 0) {
        agent_spec_clear(&sp);
        enum proto_pc_error code = PROTO_PC_INTERNAL_ERROR;
        (void)proto_pc_error_parse(e.code, &code);
        dispatch_end(d, NULL, s, PROTO_STOP_NONE, code, e.message);
        return;
    }
    int64_t elapsed = dispatch_epoch_ms() - rec->started_ms;
    if (elapsed < 0)
        elapsed = 0; /* the clock went back: count none of the time */
    uint64_t limit_ms = (uint64_t)sp.time_limit_s * 1000;
    enum proto_stop_reason ended = PROTO_STOP_NONE;
    if (rec->stop_reason != PROTO_STOP_NONE)
        ended = rec->stop_reason; /* stopped just before the restart */
    else if (limit_ms && (uint64_t)elapsed >= limit_ms)
        ended = PROTO_STOP_TIME_EXCEEDED;
    else if (sp.byte_limit && rec->bytes >= sp.byte_limit)
        ended = PROTO_STOP_SESSION_BYTES_EXCEEDED;
    if (ended != PROTO_STOP_NONE) {
        log_info("event=capture_ended_while_away captureId=%s stopReason=%s", rec->capture_id,
                 proto_stop_reason_name(ended));
        agent_spec_clear(&sp);
        dispatch_end(d, NULL, s, ended, PROTO_PC_NONE, NULL);
        return;
    }
    if (!sp.ring && rec->n_files >= PROTO_MAX_FILES) {
        agent_spec_clear(&sp);
        dispatch_end(d, NULL, s, PROTO_STOP_NONE, PROTO_PC_LOCAL_FILE_FAILED,
                     "the session has as many files as a report can list; not resumed");
        return;
    }
    uint64_t left = limit_ms ? limit_ms - (uint64_t)elapsed : 0;
    uint64_t budget = sp.byte_limit ? sp.byte_limit - rec->bytes : 0;
    enum cp_err err = CP_EEXIST;
    char rel[CAPTURE_PATH_MAX_LEN + 16];
    if (sp.ring) {
        /* The ring goes on where it was: the same names, the next seq. */
        snprintf(rel, sizeof(rel), "%s", sp.file);
        err = dispatch_capture(d, s, rel, left, 0, &e);
    }
    for (int i = 0; i < RESTORE_NAME_TRIES && err == CP_EEXIST && !sp.ring; i++) {
        if (rec->next_index == 0)
            rec->next_index = 1;
        if (resume_name(sp.file, rec->next_index++, rel, sizeof(rel)) != 0) {
            err = cp_fail(&e, CP_EINVAL, "LocalFileFailed", "", "no file name left to resume in");
            break;
        }
        memset(&e, 0, sizeof(e));
        err = dispatch_capture(d, s, rel, left, budget, &e);
    }
    agent_spec_clear(&sp);
    if (err != CP_OK) {
        enum proto_pc_error code = PROTO_PC_INTERNAL_ERROR;
        (void)proto_pc_error_parse(e.code, &code);
        dispatch_end(d, NULL, s, PROTO_STOP_NONE, code, e.message);
        return;
    }
    dispatch_save(d, s);
    log_info("event=capture_resumed captureId=%s file=\"%s\" files_before=%zu time_left_ms=%" PRIu64
             " byte_budget=%" PRIu64,
             rec->capture_id, rel, rec->n_files, left, budget);
}

enum cp_err dispatch_restore(struct dispatch *d, struct cp_error *e)
{
    enum cp_err err = spool_load(d->spool, on_session, on_report, d, e);
    if (err != CP_OK)
        return err;
    link_reports(d);
    drop_answered(d);
    dispatch_upload_restore(d);
    int rootfd = open(d->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        log_warnx("event=capture_root_unusable root=\"%s\" detail=\"%s\"", d->root,
                  strerror(errno));
    for (struct dispatch_session *s = d->sessions; s; s = s->next)
        if (s->state == DISPATCH_RUNNING && !s->cap)
            salvage_current(d, rootfd, s);
    /* Whatever is left was no session's: salvaged too, never deleted. */
    unsigned stray = rootfd >= 0 ? salvage_sweep(rootfd) : 0;
    for (struct dispatch_session *s = d->sessions; s; s = s->next)
        if (s->state == DISPATCH_RUNNING && !s->cap)
            ring_collect(d, rootfd, s);
    if (rootfd >= 0)
        close(rootfd);
    size_t resumed = 0, n = 0;
    for (struct dispatch_session *s = d->sessions; s; s = s->next) {
        n++;
        if (s->state == DISPATCH_RUNNING && !s->cap) {
            resume(d, s);
            resumed += s->state == DISPATCH_RUNNING;
        }
    }
    dispatch_upload_settle(d);
    log_info("event=agent_restored sessions=%zu resumed=%zu unanswered_reports=%zu "
             "stray_partials=%u",
             n, resumed, d->n_reports, stray);
    return CP_OK;
}
