/*
 * The agent hub: every agent's WebSocket channel, run by ONE thread from ONE epoll loop
 * (docs/agent-protocol.md; /work/shared/DESIGN.md "Threads and data paths"), so 10,000 agents
 * cost memory (a wslay context and a few small buffers each), not threads.
 *
 * Owns: the hub thread; its epoll set, an eventfd (wakes the loop when another thread hands it
 * work) and a timerfd (heartbeat tick); one wslay server context per channel; the map from
 * agent id to its one live channel; each channel's bounded outbound queue.
 *
 * It knows nothing of the store or of message contents: server/http.c authenticates and
 * upgrades a connection, then hands the socket over (hub_adopt); whoever wires the hub in
 * (server/main.c) gives it a struct hub_ops. Messages are opaque JSON text here.
 *
 * Channel rules, enforced here:
 * - text frames only, one message at most max_message bytes (64 KiB): a larger one closes the
 *   channel with 1009, a binary frame with 1003, invalid UTF-8 with 1007 (wslay);
 * - a ping every heartbeat_ms (15 s); a channel silent (not a byte, not even a pong) for
 *   timeout_ms (45 s) is closed and reported closed;
 * - at most max_queue (256) messages waiting to go to one agent: past that the channel is
 *   closed with 1008 (the server's outbox resends after the reconnect);
 * - one live channel per agent id: a new one closes the older with 1008 "replaced".
 * - at most max_channels (16,384; netwatchd's --max-agents) channels: past that an agent is
 *   refused (hub_authenticate, 503 before any upgrade) unless it replaces its own channel.
 *
 * Callbacks: for one agent id, on_open and on_close strictly alternate (the older channel's
 * on_close comes before the newer one's on_open), and on_message only falls between them.
 * on_close comes once per on_open, whatever ended the channel (peer close, error, heartbeat,
 * hub_close, replacement, hub_stop).
 *
 * Threading: hub_send, hub_close, hub_adopt, hub_authenticate and hub_stats may be called from
 * any thread at any time between hub_new and hub_free. hub_start/hub_stop/hub_free from the
 * thread that owns the hub.
 */
#ifndef NW_SERVER_HUB_H
#define NW_SERVER_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/proto.h"

#define HUB_AGENT_ID_MAX 40 /* an agent id and its NUL */

/* Defaults (docs/agent-protocol.md, "Limits"). HUB_MAX_MESSAGE is proto's PROTO_MAX_MESSAGE. */
#define HUB_MAX_MESSAGE  PROTO_MAX_MESSAGE
#define HUB_MAX_QUEUE    PROTO_MAX_QUEUE
#define HUB_HEARTBEAT_MS (PROTO_HEARTBEAT_SECONDS * 1000)
#define HUB_MAX_CHANNELS 16384 /* netwatchd's --max-agents default */

/* Close codes the hub sends (RFC 6455 7.4.1). */
#define HUB_CLOSE_NORMAL      1000
#define HUB_CLOSE_GOING_AWAY  1001                    /* hub_stop */
#define HUB_CLOSE_UNSUPPORTED PROTO_CLOSE_UNSUPPORTED /* binary frame */
#define HUB_CLOSE_POLICY      1008                /* queue overflow, replaced by a newer channel */
#define HUB_CLOSE_TOO_BIG     PROTO_CLOSE_TOO_BIG /* message over max_message */

/* What the hub calls. The callbacks run on the hub thread (authenticate excepted: on the HTTP
 * thread that serves the upgrade request, several at once) and must not block long: every agent
 * waits while one runs. They may call hub_send/hub_close (those only queue work). */
struct hub_ops {
    void *ctx;
    /* Maps a bearer token to the agent it belongs to. CP_OK with agent_id filled (NUL-terminated,
     * at most HUB_AGENT_ID_MAX - 1 characters); CP_EAUTH (or CP_ENOTFOUND/CP_EFORBIDDEN) for a
     * missing, unknown or revoked token: 401; CP_EBUSY: 503; anything else: 500. The token is
     * borrowed for the call and must never be logged. */
    enum cp_err (*authenticate)(void *ctx, const char *bearer_token, char agent_id[40],
                                struct cp_error *e);
    /* A channel for agent_id is open (authenticated, upgraded). */
    void (*on_open)(void *ctx, const char *agent_id);
    /* One text message: json is len bytes of UTF-8, NOT NUL-terminated, borrowed for the call. */
    void (*on_message)(void *ctx, const char *agent_id, const char *json, size_t len);
    /* The channel opened by the matching on_open is gone. */
    void (*on_close)(void *ctx, const char *agent_id);
};

struct hub_options {
    unsigned heartbeat_ms; /* ping interval; 0 = HUB_HEARTBEAT_MS */
    unsigned timeout_ms;   /* silence that closes a channel; 0 = 3 x heartbeat_ms */
    unsigned max_queue;    /* messages waiting for one agent; 0 = HUB_MAX_QUEUE */
    size_t max_message;    /* largest message received; 0 = HUB_MAX_MESSAGE */
    unsigned max_channels; /* open channels at most; 0 = HUB_MAX_CHANNELS */
};

struct hub_stats {
    unsigned channels; /* open channels (on_open without on_close yet) */
    unsigned long long opened;
    unsigned long long closed;
    unsigned long long messages_in;
    unsigned long long messages_out;
};

struct hub;

/* Gives a socket back when the hub is done with it (http.c under TLS: MHD_upgrade_action CLOSE,
 * since MHD still owns the socketpair it relays through; without TLS http.c hands over a socket
 * of the hub's own and passes NULL). Called once, on the hub thread, after the fd has left the
 * epoll set. NULL in hub_adopt means close(fd). */
typedef void (*hub_release_fn)(void *arg, int fd);

/* Makes a hub (no thread yet). opt NULL: defaults. ops is copied; ops->ctx stays borrowed and
 * must outlive the hub. *out is owned by the caller (hub_free). */
enum cp_err hub_new(const struct hub_options *opt, const struct hub_ops *ops,
                    struct hub **out) CP_MUST_USE;
/* Starts the hub thread; from then on hub_adopt accepts sockets. */
enum cp_err hub_start(struct hub *h) CP_MUST_USE;
/* Closes every channel with 1001 (on_close for each), gives the peers up to a second to answer
 * the close, releases every socket, joins the thread. hub_adopt refuses from the moment it is
 * called. Call it BEFORE http_stop(): MHD may not be stopped while the hub holds sockets it relays
 * (TLS).
 * Idempotent; NULL is a no-op. */
void hub_stop(struct hub *h);
/* Frees a stopped (or never started) hub; stops it first if needed. NULL is a no-op. Call it
 * after http_stop(): the HTTP threads hold the pointer until then. */
void hub_free(struct hub *h);

/* Takes an upgraded socket for agent_id: a TCP socket, or under TLS one end of the socketpair
 * MHD forwards through TLS (the hub only reads, writes and polls it, so both work). extra
 * (extra_len bytes, borrowed, copied) is what was read past the HTTP request; it is processed
 * before the socket. On CP_OK the hub owns fd and
 * gives it back through release (once); on failure (CP_EBUSY: not started, stopping, or
 * max_channels reached; CP_ENOMEM) nothing is taken and the caller still owns fd. */
enum cp_err hub_adopt(struct hub *h, int fd, const char *extra, size_t extra_len,
                      const char *agent_id, hub_release_fn release, void *release_arg) CP_MUST_USE;

/* Checks an agent's bearer token through ops->authenticate (see there), then that the hub has
 * room: CP_EBUSY when it holds max_channels channels (open or being adopted) and none of them is
 * agent_id's (a reconnecting agent replaces its own channel, so it is never locked out). */
enum cp_err hub_authenticate(struct hub *h, const char *bearer_token, char agent_id[40],
                             struct cp_error *e) CP_MUST_USE;

/* Queues one text message (json: len bytes, borrowed, copied) for agent_id's channel.
 * CP_OK: queued (not yet sent: the channel may still close before it goes out);
 * CP_ENOAGENT: no open channel for agent_id; CP_EBUSY: its queue was full, and the channel is
 * being closed (1008); CP_ETOOBIG: len is 0 or over max_message; CP_ENOMEM. */
enum cp_err hub_send(struct hub *h, const char *agent_id, const char *json, size_t len) CP_MUST_USE;

/* Closes agent_id's channel with code (1000-1011 or 3000-4999) and reason (copied; cut to 123
 * bytes), after the messages already queued for it. on_close follows on the hub thread.
 * CP_OK, CP_ENOAGENT (no open channel) or CP_EINVAL (bad code). */
enum cp_err hub_close(struct hub *h, const char *agent_id, uint16_t code,
                      const char *reason) CP_MUST_USE;

/* A snapshot of the counters (atomics; any thread). */
void hub_stats(struct hub *h, struct hub_stats *out);

#endif
