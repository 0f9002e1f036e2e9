/*
 * The agent's durable records of its work, in the state directory beside the report sequence
 * (agent/state.h), so that a restart of the agent loses no session and no completion:
 *
 *   <state-dir>/sessions/<captureId>.json   one per held session (struct spool_session)
 *   <state-dir>/reports/<seq>.json          one per report (ack, completed, error) the server
 *                                           has not answered yet: the exact text sent
 *   <state-dir>/corrupt/                    files that did not load, set aside (never deleted)
 *
 * Directories 0700, files 0600, each replaced atomically (agent/durable.h). A session file is
 * at most SPOOL_SESSION_MAX bytes and a report PROTO_MAX_MESSAGE; a file that is larger, does
 * not parse, breaks a bound, or whose name does not match its content is set aside with a
 * warning and the agent carries on without it. At most PROTO_MAX_SESSIONS sessions and
 * SPOOL_MAX_REPORTS reports are loaded; the rest are set aside too.
 *
 * Session file (JSON object, version 1):
 *   version:1, commandId, captureId, name, spec:{the start's spec}, startedAt:epoch ms,
 *   partial:"<path under the capture root of the file being written>" ("" = none),
 *   nextIndex:int (the number the next resumed file takes), files:[{path, bytes, sha256}]
 *   (completed files, oldest first, at most PROTO_MAX_FILES), packets, bytes, drops: totals of
 *   the completed files; curDrops: drops of the file being written, as last saved;
 *   firstPacketAt:epoch ms (0 = none yet), finalSeq (0 = still running), stopCommandId ("" =
 *   none), stopReason ("" = none).
 *
 * Threading: one thread (the dispatcher's) uses a struct spool.
 */
#ifndef NW_AGENT_SPOOL_H
#define NW_AGENT_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "common/capture_path.h"
#include "common/err.h"
#include "proto/proto.h"

#define SPOOL_SESSION_MAX (1024 * 1024) /* bytes per session file: spec + 256 file entries */
#define SPOOL_MAX_REPORTS (4 * PROTO_MAX_SESSIONS)
#define SPOOL_SESSIONS    "sessions"
#define SPOOL_REPORTS     "reports"

struct spool_file {
    char path[CAPTURE_PATH_MAX_LEN + 1]; /* relative to the capture root */
    uint64_t size;                       /* bytes on disk */
    char sha256[PROTO_SHA256_HEX + 1];   /* lower-case hex; "" = not known */
};

struct spool_session {
    char command_id[PROTO_ID_SIZE];
    char capture_id[PROTO_ID_SIZE];
    char name[PROTO_NAME_MAX + 1];
    char *spec;         /* owned: the start's spec, compact JSON */
    int64_t started_ms; /* epoch ms the capture started (the start's ack.at) */
    char partial[CAPTURE_PATH_MAX_LEN + 1];
    uint32_t next_index;
    struct spool_file *files; /* owned, n_files entries */
    size_t n_files;
    uint64_t packets, bytes, drops; /* totals of the completed files */
    uint64_t cur_drops;             /* the current file's drops when last saved */
    int64_t first_packet_ms;
    uint64_t final_seq;
    char stop_command_id[PROTO_ID_SIZE];
    enum proto_stop_reason stop_reason;
};

struct spool;

/* Opens the spool under state_dir (borrowed; kept for the spool's life), making its directories.
 * CP_EIO / CP_EINVAL (e filled), CP_ENOMEM. */
enum cp_err spool_open(const char *state_dir, struct spool **out, struct cp_error *e) CP_MUST_USE;

/* NULL is a no-op. Files stay. */
void spool_free(struct spool *sp);

/* Writes s (borrowed) durably. CP_ETOOBIG when it would pass SPOOL_SESSION_MAX, CP_EIO, CP_ENOMEM.
 */
enum cp_err spool_session_save(struct spool *sp, const struct spool_session *s,
                               struct cp_error *e) CP_MUST_USE;

/* Removes the session's file. */
enum cp_err spool_session_remove(struct spool *sp, const char *capture_id,
                                 struct cp_error *e) CP_MUST_USE;

/* Appends a completed file to s. CP_ETOOBIG past PROTO_MAX_FILES, CP_ENOMEM. */
enum cp_err spool_session_add_file(struct spool_session *s, const char *path, uint64_t size,
                                   const char *sha256) CP_MUST_USE;

/* Frees what s owns and zeroes it. */
void spool_session_clear(struct spool_session *s);

/* Writes the report text (borrowed, len bytes) for seq durably. */
enum cp_err spool_report_save(struct spool *sp, uint64_t seq, const char *json, size_t len,
                              struct cp_error *e) CP_MUST_USE;

/* Removes the report's file (answered). */
enum cp_err spool_report_remove(struct spool *sp, uint64_t seq, struct cp_error *e) CP_MUST_USE;

/* Called once per loaded session; takes *s (the callee owns it from then on, also on error). */
typedef void (*spool_session_fn)(void *arg, struct spool_session *s);
/* Called once per loaded report, in seq order; m is the decoded report (borrowed), json its text
 * (taken). */
typedef void (*spool_report_fn)(void *arg, uint64_t seq, const struct proto_msg *m, char *json);

/* Loads everything (setting aside what does not load, as above). CP_EIO when a directory cannot
 * be listed, CP_ENOMEM. */
enum cp_err spool_load(struct spool *sp, spool_session_fn on_session, spool_report_fn on_report,
                       void *arg, struct cp_error *e) CP_MUST_USE;

#endif
