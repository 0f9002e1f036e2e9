/*
 * bench/agents/sim: N simulated netwatch agents in one thread and one epoll loop, shared by
 * bench_agent_sim (memory with N agents) and bench_agent_captures (creates dispatched to them).
 *
 * Each simulated agent does what netwatch-agent does (agent/channel.c), without a thread of its
 * own: a non-blocking connect, the HTTP upgrade to PROTO_CHANNEL_PATH with "Authorization:
 * Bearer <line i of the tokens file>" and subprotocol PROTO_SUBPROTOCOL (checks the 101,
 * Upgrade, Connection, Sec-WebSocket-Accept and the echoed subprotocol), then a wslay client
 * context that sends a valid hello (proto_encode: hostname vm<i>, one interface) and waits for
 * the welcome. Pings are answered by wslay (a pong is queued by wslay_event_recv and sent by the
 * next wslay_event_send). A start is answered with ack ok; a stop with ack ok and then a
 * completed report (stopReason as the stop asked), as an agent whose capture ended would.
 * Replies are counted, ok or not.
 *
 * Phases (the caller drives them):
 *   sim_open   connections are started at most rate per second (no SYN flood, and the server's
 *              accept backlog stays short); returns when every channel is welcomed or has failed,
 *              or after open_timeout_s. A channel not welcomed within channel_timeout_s of its
 *              connect fails ("timeout"). Prints the open summary; writes the ready file.
 *   sim_poll   one epoll round: serves every channel (pings, commands, replies).
 *   sim_close  every open channel sends close 1000 and waits up to close_timeout_s for the
 *              server's close.
 *
 * Not thread-safe: one thread owns a struct sim and calls every function and hook. The hooks
 * run on that thread from inside sim_poll (or sim_open).
 */
#ifndef NW_BENCH_AGENTS_SIM_H
#define NW_BENCH_AGENTS_SIM_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <wslay/wslay.h>

#include "proto/proto.h"

#define SIM_MAX_AGENTS 1000000
#define SIM_FD_MARGIN  64     /* descriptors beyond one per agent */
#define SIM_TICK_US    100000 /* timeout scan and progress granularity */
#define SIM_AGENT_VER  "bench-agent-sim/0.1"

/* Channel states, in order. */
enum sim_cstate {
    SIM_C_IDLE,
    SIM_C_CONNECTING,
    SIM_C_REQUEST,
    SIM_C_RESPONSE,
    SIM_C_OPEN,
    SIM_C_CLOSING,
    SIM_C_DONE
};

/* Why a channel never got its welcome (one kind each). */
enum sim_fail {
    SIM_F_NONE,
    SIM_F_CONNECT,   /* socket() or connect() failed */
    SIM_F_UPGRADE,   /* the server answered, not 101 */
    SIM_F_HANDSHAKE, /* a bad or truncated 101, or the connection dropped before it */
    SIM_F_CLOSED,    /* upgraded, then closed by the server before the welcome */
    SIM_F_TIMEOUT,   /* no welcome within channel_timeout_s (or the open phase ended) */
    SIM_F_PROTOCOL,  /* a message that is not a valid welcome where one was due */
    SIM_F_STOPPED,   /* told to stop before the welcome came */
    SIM_F_KINDS
};
extern const char *const sim_fail_names[SIM_F_KINDS];

struct sim_conn {
    int fd;
    unsigned idx; /* agent i: vm<i>, line i+1 of the tokens file */
    enum sim_cstate st;
    enum sim_fail fail;
    unsigned char welcomed, closing_by_us, server_close;
    uint16_t pings;
    uint32_t events; /* epoll interest now */
    size_t buf_len, buf_off;
    char *buf; /* request, then response head; freed once upgraded */
    unsigned char *pre;
    size_t pre_len, pre_off; /* bytes that came after the 101's head: wslay reads them first */
    wslay_event_context_ptr ws;
    int64_t t_start, t_up, t_welcome, close_deadline; /* monotonic us */
    int64_t seq;                                      /* last report seq sent */
    char expect[29];                                  /* Sec-WebSocket-Accept we want */
};

struct sim;

/* Called on the sim's thread when a start arrives, just after its ack was queued (c->seq is
 * that ack's seq); t_us is sim_now_us() when the start was decoded. m is borrowed. */
typedef void (*sim_start_hook)(struct sim *s, struct sim_conn *c, const struct proto_start *m,
                               int64_t t_us);
/* Called when a reply arrives; ok or not is in m. */
typedef void (*sim_reply_hook)(struct sim *s, struct sim_conn *c, const struct proto_reply *m,
                               int64_t t_us);

struct sim {
    /* options: set by sim_setup's defaults, then by the caller before sim_open */
    char host[256];
    unsigned port;
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char **tokens;
    unsigned n;
    double rate, open_timeout_s, channel_timeout_s, close_timeout_s;
    const char *ready_file;
    sim_start_hook on_start;
    sim_reply_hook on_reply;
    void *user; /* for the hooks */
    /* state */
    int ep;
    struct sim_conn *conns;
    unsigned started, welcomed, ended;
    unsigned unresolved; /* started, neither welcomed nor failed yet */
    unsigned open_now;   /* welcomed and not ended */
    uint64_t rng;
    int64_t t0, last_welcome;
    int phase; /* 0 open, 1 hold (after sim_open), 2 close */
    /* open latencies (sorted, us), filled by sim_open: connect->welcome and connect->101 */
    int64_t *lat_welcome, *lat_up;
    size_t n_lat;
    /* counters */
    unsigned fails[SIM_F_KINDS];
    char fail_detail[SIM_F_KINDS][160];
    unsigned long long pings, pings_hold, commands, starts, stops, replies, replies_failed,
        unexpected;
    unsigned dropped, closed_clean, close_unanswered;
    unsigned drop_codes[5]; /* 1000,1001,1008,other,none(1006) */
    char drop_detail[160];
};

/* Set by SIGTERM, SIGINT and SIGUSR1 once sim_signals() installed the handler. */
extern volatile sig_atomic_t sim_stop;
/* Installs the handler above and ignores SIGPIPE. */
void sim_signals(void);

int64_t sim_now_us(void);   /* CLOCK_MONOTONIC */
int64_t sim_epoch_ms(void); /* CLOCK_REALTIME */

/*
 * Resolves url ("http://HOST:PORT"), reads count tokens from tokens_path (count < 0: all of
 * them), raises RLIMIT_NOFILE to N + SIM_FD_MARGIN, allocates the channels and the epoll set.
 * Sets the option defaults (rate 2000, open 300 s, channel 120 s, close 10 s).
 * Returns 0, 1 (set-up failed; a message was printed) or 2 (bad url).
 */
int sim_setup(struct sim *s, const char *url, const char *tokens_path, long count);
/* Frees what sim_setup allocated (after sim_close). */
void sim_free(struct sim *s);

/* The open phase (see above); prints "open: ..." and the latencies. 0, or -1 if epoll failed. */
int sim_open(struct sim *s);
/* One epoll round of at most timeout_ms. 0, or -1 if epoll failed. */
int sim_poll(struct sim *s, int timeout_ms);
/* The close phase. 0, or -1 if epoll failed. */
int sim_close(struct sim *s);

/* Failed channels, all kinds. */
unsigned sim_failed(const struct sim *s);

/* Nearest-rank percentile p (0..1) of the sorted v[0..n), microseconds in, ms out. */
double sim_pct_ms(const int64_t *v, size_t n, double p);
/* qsort comparator for int64_t. */
int sim_cmp_i64(const void *a, const void *b);
/* Seconds 0..86400 (a fraction allowed) into *out: 0, or -1. */
int sim_parse_secs(const char *v, double *out);

#endif
