/*
 * The agent's end of the agent channel (docs/agent-protocol.md): a WebSocket client over TCP,
 * or over TLS (agent/tls.h) for https://. It dials netwatchd, with TLS completes the handshake
 * and verifies the server's certificate and name before anything else is sent, upgrades GET
 * /agent/v1/channel with the agent's bearer token and a random key, checks the 101 and its
 * Sec-WebSocket-Accept, then runs a wslay client context (masks from OpenSSL's RAND_bytes): sends
 * hello, takes welcome (protocol, heartbeat, the server's lastAppliedSeq into the state), answers
 * pings (wslay does), hands every other message to a dispatcher (struct channel_handler), and drops
 * a server silent for 3 x heartbeatSeconds. On any failure or close it reconnects after an
 * exponential backoff with full jitter (0.5 s doubling to 30 s; reset once a welcome arrives),
 * until told to stop; then it closes with 1000. A close with 4004 (the hello's identity is not
 * the token's machine) is logged as an error saying what to fix, then retried the same way.
 *
 * A certificate that does not verify fails that attempt like any other failure (logged with the
 * reason, retried after the backoff): the token only ever goes to a verified server.
 *
 * Threading: channel_run() runs in the calling thread and everything it calls back runs there
 * too; channel_send() only from those callbacks (on_wake included).
 */
#ifndef NW_AGENT_CHANNEL_H
#define NW_AGENT_CHANNEL_H

#include <jansson.h>
#include <stddef.h>

#include "agent/state.h"
#include "common/err.h"
#include "proto/proto.h"

#define AGENT_VERSION       "0.1.0"
#define CHANNEL_PATH        PROTO_CHANNEL_PATH
#define CHANNEL_SUBPROTOCOL PROTO_SUBPROTOCOL
#define CHANNEL_PROTOCOL    PROTO_VERSION /* the protocol version this agent speaks */
#define CHANNEL_MAX_MESSAGE PROTO_MAX_MESSAGE

struct channel;

/* The dispatcher: what the agent does with the server's messages. Both callbacks are optional;
 * a missing on_message logs the message's type and answers nothing. Every message has passed
 * proto_decode: one it refuses closes the channel (1003; 1009 when too large). */
struct channel_handler {
    void *ctx;
    /* The server's welcome (borrowed, decoded), after the channel has applied it. */
    void (*on_welcome)(void *ctx, struct channel *ch, const struct proto_welcome *welcome);
    /* Any other message, decoded by proto_decode (borrowed for the call). */
    void (*on_message)(void *ctx, struct channel *ch, const struct proto_msg *msg);
    /* Optional, with on_wake: one more fd the loop polls once welcomed, and while it waits
     * between connections (so work that finishes elsewhere, a capture ending, is handled on this
     * thread). Readable: on_wake runs, and must consume whatever made it readable or the loop
     * spins. ch is the channel (channel_send may be called) or NULL between connections (keep
     * what is to be said for the next welcome). Not polled from the dial to the welcome. */
    int wake_fd;
    void (*on_wake)(void *ctx, struct channel *ch);
    /* Optional: the sessions the agent holds, for the hello (hello.sessions). Fills at most max
     * entries of out (capture id and PROTO_SESSION_RUNNING or PROTO_SESSION_FINISHED) and
     * returns how many. Missing: the hello lists none. */
    size_t (*hello_sessions)(void *ctx, struct proto_session *out, size_t max);
};

struct channel_options {
    const char *host;                      /* borrowed: name or address, no IPv6 brackets */
    unsigned port;                         /* TCP port */
    int tls;                               /* 1: wss (https://), 0: plain ws (http://) */
    const char *ca_file;                   /* borrowed, TLS: PEM CAs instead of the system's */
    const char *token;                     /* borrowed; sent as a bearer token, never logged */
    struct agent_state *state;             /* borrowed; unackedFrom and acks */
    const struct channel_handler *handler; /* borrowed; NULL: log and ignore */
    int stop_fd; /* readable = stop (never read here: a signalfd or eventfd stays readable) */
    unsigned backoff_min_ms;     /* 0 = 500 */
    unsigned backoff_max_ms;     /* 0 = 30000 */
    unsigned connect_timeout_ms; /* TCP connect plus handshake; 0 = 10000 */
    unsigned silence_ms;         /* before a welcome says otherwise; 0 = 45000 */
    /* Borrowed; hello.identity: the machine the agent was configured for (validated by
     * agent_config_load). NULL or "" resource_id: the hello states none. */
    const char *resource_id;
    const char *instance_id; /* scale-set instance; NULL or "" for a VM */
};

/* Runs until stop_fd is readable: connect, hello, serve, reconnect. Returns CP_OK after a stop,
 * CP_EINVAL for unusable options, an unreadable ca_file included (logged; nothing else ends
 * it). */
enum cp_err channel_run(const struct channel_options *opt) CP_MUST_USE;

/* Queues one text message (len bytes of JSON, copied) on ch. CP_EBUSY when the channel is
 * closing, CP_ETOOBIG over CHANNEL_MAX_MESSAGE, CP_ENOMEM. */
enum cp_err channel_send(struct channel *ch, const char *json, size_t len) CP_MUST_USE;

/* The hello this agent sends now (hostname, interfaces and addresses from getifaddrs, the
 * sessions o->handler (may be NULL) holds, unackedFrom from o->state, identity from
 * o->resource_id and o->instance_id), encoded by proto_encode; caller frees with free(). NULL
 * when out of memory or when it would not encode. */
char *channel_hello_json(const struct channel_options *o);

#endif
