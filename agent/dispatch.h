/*
 * The agent's command dispatcher: what netwatch-agent does with the server's start and stop
 * (docs/agent-protocol.md), on top of the capture engine (agent/capture.h), and how its sessions
 * outlive a restart of the agent (docs/agent.md).
 *
 * start: the spec becomes capture parameters (agent/spec.h); the session is written to the spool
 * (agent/spool.h) and only then acked: ok with at = the start time, or not ok with the engine's
 * PcError and message.
 *
 * stop: stops a running capture (its completion then reports the stop's reason: Manual, or
 * SessionDeleted when the server says so) and acks. A stop for a session that has already ended
 * acks and sends the session's final report again (same seq: the server applies a seq once); a
 * stop for a capture this agent does not hold is logged only.
 *
 * Completion: each running capture's done fd sits in one epoll set, whose fd is the channel's
 * wake_fd (agent/channel.h), so endings are handled on the channel thread, also between
 * connections: completed {stopReason, every file of the session with "/var/captures/<path>",
 * bytes, sha256} or error {code, message}.
 *
 * Reports: every ack, completed and error is written to the spool before it is sent and kept
 * until the server answers it (a reply ok, or NotYourSession; a welcome whose lastAppliedSeq
 * covers it); on each welcome the kept ones are sent again in seq order. A session is held until
 * its final report is answered.
 *
 * Progress: every progress_interval_s seconds, each running session whose totals changed since
 * the last one sent reports them (packets and bytes written, kernel drops, files, firstPacketAt),
 * when connected. Progress is never kept or sent again: the next one supersedes it, and a
 * refusal is logged once.
 *
 * Hello and welcome: the hello lists the sessions held (channel_handler.hello_sessions): running
 * captures, and ended ones whose completed/error the server has not answered yet. welcome.stop
 * names captures the server has stopped or deleted while apart: a running one is stopped and
 * reports stopReason Manual (the welcome does not say which of the two; for a deleted capture the
 * server ignores the report anyway); an ended one just has its final report sent again; an
 * unknown one is logged.
 *
 * Commands: the channel hands over messages proto_decode accepted (agent/channel.h), so the agent
 * refuses what the protocol refuses; the spec inside a start is read by agent/spec.h.
 *
 * Repeats: a commandId seen before gets the same ack (same seq) and nothing else happens, so a
 * start re-sent after a reconnect never starts a second capture.
 *
 * Restart: dispatch_new loads the spool before any connection, salvages files a crash left
 * unfinished (agent/salvage.h), and resumes running sessions into a new file each, within what is
 * left of their limits, or ends them (dispatch_restore.c).
 *
 * Blob storage: a session with a storage account uploads each finished file while capturing
 * (agent/uploads.h: one worker thread; its grant requests, grants and results pass through this
 * thread, its wake fd sits in the same epoll set); its completed report waits until every file
 * is committed, and failed uploads end it with StorageFailed (dispatch_upload.c,
 * docs/storage.md).
 *
 * Threading: everything runs on the channel thread (channel_run's callbacks) but the upload
 * worker and a ring's file hook (capture thread), which only touch the upload queue (its own
 * lock); dispatch_new and dispatch_free before and after channel_run.
 */
#ifndef NW_AGENT_DISPATCH_H
#define NW_AGENT_DISPATCH_H

#include "agent/channel.h"
#include "agent/state.h"
#include "common/err.h"

struct dispatch_options {
    const char *capture_root;     /* borrowed for the dispatcher's life; must exist */
    const char *interfaces;       /* copied: "eth0,eth1"; NULL or "" = the engine's default set */
    struct agent_state *state;    /* borrowed for the dispatcher's life: report seqs; its dir
                                     holds the spool */
    unsigned progress_interval_s; /* 0 = no progress reports */
    size_t upload_block_size;     /* blob uploads' block size; 0 = agent/upload.h's default */
    long upload_backoff_ms;       /* first retry wait of an upload request; 0 = the default */
};

struct dispatch;

/* A dispatcher with the sessions the spool holds, restored (see Restart above). CP_EINVAL (an
 * interface list with an empty or too long name, or more than CAPTURE_MAX_INTERFACES names),
 * CP_EIO (epoll, timer, a spool directory that cannot be made or listed), CP_ENOMEM; e filled. */
enum cp_err dispatch_new(const struct dispatch_options *o, struct dispatch **out,
                         struct cp_error *e) CP_MUST_USE;

/* The channel handler that feeds d: ctx, on_welcome, on_message, wake_fd and on_wake. */
void dispatch_handler(struct dispatch *d, struct channel_handler *out);

/* Running sessions (for logs and tests). */
size_t dispatch_running(const struct dispatch *d);

/* Stops every running capture (files completed, nothing reported: the spool still says running,
 * so the next start resumes them) and frees d. NULL: no-op. */
void dispatch_free(struct dispatch *d);

#endif
