/*
 * The dispatcher's private parts, shared by dispatch.c (commands, reports, progress) and
 * dispatch_restore.c (what a restart finds in the state directory and the capture root).
 */
#ifndef NW_AGENT_DISPATCH_INT_H
#define NW_AGENT_DISPATCH_INT_H

#include <stdint.h>

#include "agent/capture.h"
#include "agent/dispatch.h"
#include "agent/spec.h"
#include "agent/spool.h"
#include "agent/uploads.h"
#include "proto/proto.h"

/* A report (ack, completed, error) sent and not answered yet; its text is also in the spool. */
struct dispatch_report {
    uint64_t seq;
    enum proto_type type;
    char command_id[PROTO_ID_SIZE]; /* ack: the command it answers */
    char capture_id[PROTO_ID_SIZE]; /* completed, error: the capture */
    char *json;                     /* owned: the exact text sent */
    struct dispatch_report *next;
};

enum dispatch_state {
    DISPATCH_REFUSED,   /* the start was refused: only its ack is kept, until answered */
    DISPATCH_RUNNING,   /* capturing */
    DISPATCH_FINISHED,  /* ended; its completed/error not answered yet */
    DISPATCH_UPLOADING, /* capturing has ended; its files are still going to blob storage */
};

struct dispatch_session {
    struct spool_session rec; /* what the spool holds (REFUSED: never saved) */
    enum dispatch_state state;
    struct capture *cap;           /* RUNNING only: the current file's capture */
    int ring;                      /* continuous capture: the capture keeps (and lists) the files */
    char *ack_json;                /* the start's ack as sent (for repeats); NULL after a restart */
    char *stop_ack_json;           /* the last stop's ack as sent; NULL = none known */
    char *final_json;              /* FINISHED: completed or error as sent */
    char *filter;                  /* the expression the latest capture installed ("" = all) */
    struct proto_progress sent;    /* totals of the last progress sent */
    enum agent_spec_upload upload; /* the spec's storage mode (dispatch_upload.c) */
    enum proto_stop_reason up_reason; /* UPLOADING: why capturing ended */
    char *upload_failure;             /* RUNNING: the uploads failed; ends StorageFailed */
    void *ring_up;                    /* a ring's upload hook context (dispatch_upload.c) */
    struct dispatch_session *next;
};

struct dispatch {
    const char *root; /* the capture root */
    struct agent_state *state;
    struct spool *spool;
    char ifbuf[1024]; /* the interface list, split in place */
    const char *ifaces[CAPTURE_MAX_INTERFACES];
    size_t n_ifaces;
    unsigned progress_s; /* 0 = no progress reports */
    int epfd;            /* done fds of running captures and the timer; the channel's wake_fd */
    int timerfd;         /* progress and counter saves */
    struct dispatch_session *sessions;
    struct dispatch_report *reports, *last_report; /* unanswered, in seq order */
    size_t n_reports;
    unsigned progress_refused; /* progress replies refused so far (logged once) */
    struct uploads *uploads;   /* the upload queue (dispatch_upload.c) */
};

/* Gives m the next seq, encodes it (a completed too large for a message lists its newest files),
 * writes it to the spool, keeps it until answered and sends it when ch is not NULL (otherwise
 * the next welcome does). *copy (may be NULL) gets a malloc'ed copy of the text. Returns the
 * seq, or 0 when no seq could be taken or m would not encode (logged; nothing sent). */
uint64_t dispatch_report(struct dispatch *d, struct channel *ch, struct proto_msg *m, char **copy);
/* A kept report for m (ack: its commandId; completed, error: its captureId) owning json;
 * NULL when out of memory (json is then still the caller's). */
struct dispatch_report *dispatch_report_new(uint64_t seq, const struct proto_msg *m, char *json);
/* Appends r to the reports kept until answered (in seq order: the caller appends in order). */
void dispatch_report_append(struct dispatch *d, struct dispatch_report *r);

/* Ends s for good: a completed (reason, every file of the session) or, when code is set, an
 * error (code, message); the session is FINISHED and saved. */
void dispatch_end(struct dispatch *d, struct channel *ch, struct dispatch_session *s,
                  enum proto_stop_reason reason, enum proto_pc_error code, const char *message);

/* Starts capturing s into rel (relative to the root) with time_left_ms (0 = no limit) and
 * byte_budget (0 = no limit) and watches its end: RUNNING, rec.partial = rel. Errors as
 * capture_start (CP_EEXIST: rel exists), e filled with a PcError code. */
enum cp_err dispatch_capture(struct dispatch *d, struct dispatch_session *s, const char *rel,
                             uint64_t time_left_ms, uint64_t byte_budget,
                             struct cp_error *e) CP_MUST_USE;

/* Writes s's record to the spool. 0, or -1 (logged). */
int dispatch_save(struct dispatch *d, struct dispatch_session *s);

/* Unlinks s from d and frees it (its capture, if any, is stopped and its file completed). */
void dispatch_session_drop(struct dispatch *d, struct dispatch_session *s);

/* A session with no record yet, linked first in d. NULL when out of memory. */
struct dispatch_session *dispatch_session_new(struct dispatch *d);

/* At start, before any connection: loads the spool, salvages files, resumes or ends sessions
 * (dispatch_restore.c). CP_EIO / CP_ENOMEM when the spool cannot be read at all. */
enum cp_err dispatch_restore(struct dispatch *d, struct cp_error *e) CP_MUST_USE;

int64_t dispatch_epoch_ms(void);

/* agent_spec_read of s's spec, with a storage-only session's private file (agent/spec.h). */
int dispatch_spec(const struct dispatch_session *s, struct agent_spec *sp, struct cp_error *e);

/* ---- blob uploads (dispatch_upload.c, docs/storage.md) ---- */

/* Starts the upload queue (its wake fd joins d->epfd). CP_EIO, CP_ENOMEM. */
enum cp_err dispatch_upload_open(struct dispatch *d, const struct dispatch_options *o,
                                 struct cp_error *e) CP_MUST_USE;
/* Queues the files of s (an upload session, not a ring) that are not queued yet: file k of the
 * session's list is blob file k. */
void dispatch_upload_queue(struct dispatch *d, struct dispatch_session *s);
/* A ring of an upload session: sets ring->on_file so that each file the ring completes is
 * linked under the session's upload directory and queued (blob file seq - 1) before the ring can
 * delete it. base: the ring's base name. No-op for other sessions. */
void dispatch_upload_ring(struct dispatch *d, struct dispatch_session *s, const char *base,
                          struct capture_ring *ring);
/* s's capture has ended with reason and nothing failed: 1 when it now waits for its uploads
 * (UPLOADING, recorded), 0 when it can end at once. */
int dispatch_upload_wait(struct dispatch *d, struct dispatch_session *s,
                         enum proto_stop_reason reason);
/* At restart, after the spool is loaded: each session's mode; ended sessions waiting for uploads
 * become UPLOADING; queues no session holds are forgotten. */
void dispatch_upload_restore(struct dispatch *d);
/* After the restart's resumptions: parts salvaged are queued, and UPLOADING sessions with
 * nothing left to upload end. */
void dispatch_upload_settle(struct dispatch *d);
/* Storage only: the completed report's files are the blobs (URL without the SAS); *files
 * (malloc'ed, paths malloc'ed) and *n. 0, or -1 when s is not storage only. */
int dispatch_upload_report(struct dispatch *d, struct dispatch_session *s,
                           struct proto_file **files, size_t *n);
/* s has ended (reported; completed or not): its queue is forgotten. Completed, a storage-only
 * session's private directory goes (every file in it is in storage). */
void dispatch_upload_end(struct dispatch *d, struct dispatch_session *s, int completed);

#endif
