/*
 * uploads.h - the agent's upload queue: every finished capture file of a session with a storage
 * account goes to its blob (docs/storage.md, "The agent's side") while capturing goes on.
 *
 * Files are queued with their file index (the k of blobRequest.file, which names blob k on the
 * server: storage/blob_name.h) and uploaded in queue order by one worker thread, with
 * agent/upload.h (Put Blob, or Put Block + MD5 + Put Block List, retries with backoff). For each
 * file the worker asks the dispatcher's thread (the channel's) for a grant: it raises the wake fd,
 * uploads_on_wake sends the blobRequest, the dispatcher hands the blobGrant to uploads_on_grant.
 * A SAS refused (403) when its grant has expired (or is within UPLOADS_EXPIRY_MARGIN_MS of it)
 * makes the worker ask for a fresh grant and resume with the journal; UPLOADS_REGRANTS_MAX grants
 * in a row that stage nothing end it. Any other failure after the uploader's retries (a 403 on a
 * grant that is still valid included) fails the session's uploads (the dispatcher ends the
 * session with StorageFailed; local files are kept).
 *
 * Durability: <state-dir>/uploads/<captureId>.json holds each session's queue (files, index,
 * committed or not, the blob URL without its SAS once committed, whether the capture has ended
 * and why), rewritten atomically (agent/durable.h) before anyone is told of a change; the upload
 * journals are <state-dir>/uploads/<captureId>.<index>.journal. A restarted agent loads the
 * queues and goes on with the files not committed, skipping the blocks their journals list.
 *
 * Local files: a file queued with remove_after (Storage only, and a ring's upload links) is
 * unlinked once its blob is committed; others stay.
 *
 * Threading: uploads_new and uploads_free from the owning thread; the worker is internal; every
 * other function may be called from any thread (one mutex), but the event callback runs on the
 * thread that calls uploads_on_wake, and channel use follows agent/channel.h (on_wake's thread).
 */
#ifndef NW_AGENT_UPLOADS_H
#define NW_AGENT_UPLOADS_H

#include <stddef.h>
#include <stdint.h>

#include "agent/channel.h"
#include "common/capture_path.h"
#include "common/err.h"
#include "proto/proto.h"

#define UPLOADS_DIR "uploads" /* under the state directory */
/* A SAS refused this long before its expiry is not taken for an expired one. */
#define UPLOADS_EXPIRY_MARGIN_MS 60000
#define UPLOADS_REGRANTS_MAX     3 /* fresh grants in a row that stage no block */

struct uploads_options {
    const char *state_dir;   /* borrowed for the queue's life */
    const char *root;        /* the capture root; borrowed for the queue's life */
    size_t block_size;       /* 0: UPLOAD_BLOCK_SIZE_DEFAULT */
    const char *ca_file;     /* https: PEM CAs; NULL/"": the system's (borrowed) */
    long backoff_initial_ms; /* 0: the uploader's default */
};

/* A change the dispatcher must act on, reported from uploads_on_wake: every queued file of the
 * session is committed (failure NULL), or its uploads failed (failure: the message for the
 * session's StorageFailed). */
typedef void (*uploads_event_fn)(void *arg, struct channel *ch, const char *capture_id,
                                 const char *failure);

struct uploads;

/* Loads the queues under state_dir/uploads (made 0700 if absent) and starts the worker.
 * CP_EIO, CP_ENOMEM (e filled). */
enum cp_err uploads_new(const struct uploads_options *o, uploads_event_fn fn, void *arg,
                        struct uploads **out, struct cp_error *e) CP_MUST_USE;

/* Stops the worker (an upload under way ends at its next request, journal kept) and frees u.
 * Queues stay on disk. NULL: no-op. */
void uploads_free(struct uploads *u);

/* Readable when uploads_on_wake has work (an eventfd: on_wake reads it). */
int uploads_wake_fd(const struct uploads *u);

/* Sends the grant requests the worker waits for (ch NULL: kept for the next connection), applies
 * finished uploads (records, local files) and reports changes through the event callback. */
void uploads_on_wake(struct uploads *u, struct channel *ch);

/* After a welcome: grant requests not answered on the previous connection go again. */
void uploads_on_welcome(struct uploads *u, struct channel *ch);

/* A blobGrant from the server (borrowed). One for no request of ours is logged and dropped. */
void uploads_on_grant(struct uploads *u, const struct proto_blob_grant *g);

/* Queues file `index` of capture_id: rel (under the capture root), its size and SHA-256 (hex or
 * ""). Durable before it returns. Already queued (same index): CP_OK, nothing changes.
 * CP_EIO (the queue cannot be written: nothing queued), CP_ENOMEM. */
enum cp_err uploads_add(struct uploads *u, const char *capture_id, int64_t index, const char *rel,
                        uint64_t size, const char *sha256, int remove_after,
                        struct cp_error *e) CP_MUST_USE;

/* 1 when file index of capture_id is queued (committed or not). */
int uploads_has(struct uploads *u, const char *capture_id, int64_t index);

/* 1 when capture_id has a queue at all. */
int uploads_known(struct uploads *u, const char *capture_id);

/* Files of capture_id not committed yet. */
size_t uploads_pending(struct uploads *u, const char *capture_id);

/* Records (durably) that capture_id's capture has ended with reason and waits for its uploads.
 * 0, or -1 (logged). */
int uploads_set_ended(struct uploads *u, const char *capture_id, enum proto_stop_reason reason);

/* 1 and *reason when capture_id's capture has ended and waits for its uploads. */
int uploads_ended(struct uploads *u, const char *capture_id, enum proto_stop_reason *reason);

/* Bytes of capture_id's files the blob service holds (committed files whole, staged blocks of
 * the one under way). */
uint64_t uploads_bytes(struct uploads *u, const char *capture_id);

/* One file of a queue, for the session's completed report. */
struct uploads_file {
    int64_t index;
    char rel[CAPTURE_PATH_MAX_LEN + 1];
    uint64_t size;
    char sha256[PROTO_SHA256_HEX + 1];
    char blob[PROTO_PATH_MAX + 1]; /* the blob's URL without the SAS; "" until committed */
};

/* capture_id's files, by index: *out malloc'ed (caller frees; NULL when none), *n entries. */
enum cp_err uploads_files(struct uploads *u, const char *capture_id, struct uploads_file **out,
                          size_t *n) CP_MUST_USE;

/* The capture ids that have a queue, into ids (at most max); how many. */
size_t uploads_ids(struct uploads *u, char (*ids)[PROTO_ID_SIZE], size_t max);

/* Forgets capture_id's queue: record and journals removed (local files untouched). An upload
 * of it under way is finished first by the worker and then dropped. */
void uploads_forget(struct uploads *u, const char *capture_id);

#endif
