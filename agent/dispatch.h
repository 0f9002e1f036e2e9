/*
 * The agent's command dispatcher: what netwatch-agent does with the server's start and stop
 * (docs/agent-protocol.md), on top of the capture engine (agent/capture.h).
 *
 * start: the spec (normalised PacketCaptureParameters) becomes struct capture_params. The local
 * file (storageLocation.filePath, else localPath) must be under CAPTURE_ROOT_LINUX
 * ("/var/captures/"): the rest of the path is the file's path under the agent's capture root
 * (--capture-root), so a test can point the root at a temporary directory. A Windows path or any
 * other prefix, and continuousCapture, are refused (CaptureFailed); a storage-only session
 * (no local path) is refused with StorageFailed (no blob upload yet). Filters compile to one pcap
 * expression (common/bpf_expr.h) with this machine's addresses taken at start. The answer is an
 * ack: ok with at = the start time, or not ok with the engine's PcError and message.
 *
 * stop: stops a running capture (its completion then reports the stop's reason: Manual, or
 * SessionDeleted when the server says so) and acks. A stop for a
 * session that has already ended acks and sends the session's final report again (same seq:
 * the server applies a seq once); a stop for a capture this agent never saw is logged only.
 *
 * Completion: each running capture's done fd sits in one epoll set, whose fd is the channel's
 * wake_fd (agent/channel.h), so endings are reported from the channel thread: completed
 * {stopReason, files with "/var/captures/<path>", bytes, sha256} or error {code, message}.
 *
 * Hello and welcome: the hello lists the sessions held (channel_handler.hello_sessions): running
 * captures, and ended ones whose completed/error the server has not answered yet (a reply, or a
 * welcome whose lastAppliedSeq covers it). welcome.stop names captures the server has stopped or
 * deleted while apart: a running one is stopped and reports stopReason Manual (the welcome does
 * not say which of the two; for a deleted capture the server ignores the report anyway); an
 * ended one just has its final report sent again; an unknown one is logged.
 *
 * Repeats: a commandId seen before gets the same ack (same seq) and nothing else happens, so a
 * start re-sent after a reconnect never starts a second capture. Every report sent is kept in
 * memory; on each welcome the ones from unackedFrom on are sent again in seq order (a report
 * queued on a connection that then died is otherwise lost). Sessions live in memory only:
 * persistence across agent restarts is a later step. A reply is logged.
 *
 * Threading: everything runs on the channel thread (channel_run's callbacks); dispatch_new and
 * dispatch_free before and after channel_run.
 */
#ifndef NW_AGENT_DISPATCH_H
#define NW_AGENT_DISPATCH_H

#include "agent/channel.h"
#include "agent/state.h"
#include "common/err.h"

struct dispatch_options {
    const char *capture_root;  /* borrowed for the dispatcher's life; must exist */
    const char *interfaces;    /* copied: "eth0,eth1"; NULL or "" = the engine's default set */
    struct agent_state *state; /* borrowed for the dispatcher's life: report seqs */
};

struct dispatch;

/* A dispatcher with no sessions. CP_EINVAL (an interface list with an empty or too long name,
 * or more than CAPTURE_MAX_INTERFACES names), CP_EIO (epoll), CP_ENOMEM; e filled. */
enum cp_err dispatch_new(const struct dispatch_options *o, struct dispatch **out,
                         struct cp_error *e) CP_MUST_USE;

/* The channel handler that feeds d: ctx, on_welcome, on_message, wake_fd and on_wake. */
void dispatch_handler(struct dispatch *d, struct channel_handler *out);

/* Running sessions (for logs and tests). */
size_t dispatch_running(const struct dispatch *d);

/* Stops every running capture (files completed, nothing reported) and frees d. NULL: no-op. */
void dispatch_free(struct dispatch *d);

#endif
