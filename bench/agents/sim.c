/* The simulated agents behind sim.h. */
#include "bench/agents/sim.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/proto.h"
#include "proto/proto_ws.h"

#define SIM_BUF_MAX      2048 /* the upgrade request, then the response head */
#define SIM_TOKEN_MAX    512
#define SIM_EVENTS       512
#define SIM_CLOSE_REASON "bench done"

const char *const sim_fail_names[SIM_F_KINDS] = {"none",   "connect", "upgrade",  "handshake",
                                                 "closed", "timeout", "protocol", "stopped"};

volatile sig_atomic_t sim_stop;

static void on_signal(int sig)
{
    (void)sig;
    sim_stop = 1;
}

void sim_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

int64_t sim_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t sim_epoch_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* xorshift64*: masks and handshake keys need no cryptographic strength here. */
static uint64_t rnd(struct sim *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return s->rng * 2685821657736338717ULL;
}

static void rnd_fill(struct sim *s, uint8_t *buf, size_t len)
{
    while (len) {
        uint64_t r = rnd(s);
        size_t k = len < 8 ? len : 8;
        memcpy(buf, &r, k);
        buf += k;
        len -= k;
    }
}

static struct sim *g_sim; /* for the wslay callbacks, which get the conn as user data */

/* ---- accounting ----------------------------------------------------------------------------- */

static void note_fail(struct sim *s, struct sim_conn *c, enum sim_fail k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Marks c as failed with kind k (the first reason sticks); the detail of the first of each kind
 * is kept for the report. */
static void note_fail(struct sim *s, struct sim_conn *c, enum sim_fail k, const char *fmt, ...)
{
    if (c->fail != SIM_F_NONE || c->welcomed)
        return;
    c->fail = k;
    if (!s->fail_detail[k][0]) {
        va_list ap;
        va_start(ap, fmt);
        int n = snprintf(s->fail_detail[k], sizeof(s->fail_detail[k]), "vm%u: ", c->idx);
        if (n > 0 && (size_t)n < sizeof(s->fail_detail[k]))
            vsnprintf(s->fail_detail[k] + n, sizeof(s->fail_detail[k]) - (size_t)n, fmt, ap);
        va_end(ap);
    }
}

/* Tears c down (socket, wslay, buffers) and counts how it ended. */
static void conn_end(struct sim *s, struct sim_conn *c)
{
    if (c->st == SIM_C_DONE || c->st == SIM_C_IDLE)
        return;
    uint16_t code = c->ws ? wslay_event_get_status_code_received(c->ws) : 0;
    if (c->welcomed) {
        s->open_now--;
        if (c->closing_by_us) {
            if (c->server_close)
                s->closed_clean++;
            else
                s->close_unanswered++;
        } else {
            s->dropped++;
            int slot = code == 1000   ? 0
                       : code == 1001 ? 1
                       : code == 1008 ? 2
                       : code == 1006 ? 4
                                      : 3;
            s->drop_codes[slot]++;
            if (!s->drop_detail[0])
                snprintf(s->drop_detail, sizeof(s->drop_detail),
                         "vm%u: ended by the server after its welcome, close code %u", c->idx,
                         (unsigned)code);
        }
    } else {
        if (c->fail == SIM_F_NONE) {
            if (c->st >= SIM_C_OPEN)
                note_fail(s, c, SIM_F_CLOSED, "upgraded, then %s before the welcome",
                          c->server_close ? "closed by the server" : "the connection dropped");
            else
                note_fail(s, c, SIM_F_HANDSHAKE, "the connection dropped during the handshake");
        }
        s->fails[c->fail]++;
        s->unresolved--;
    }
    if (c->fd >= 0)
        close(c->fd); /* leaves the epoll set with it */
    c->fd = -1;
    wslay_event_context_free(c->ws);
    c->ws = NULL;
    free(c->buf);
    c->buf = NULL;
    free(c->pre);
    c->pre = NULL;
    c->st = SIM_C_DONE;
    s->ended++;
}

static void set_events(struct sim *s, struct sim_conn *c, uint32_t ev)
{
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->events = ev;
}

/* ---- wslay ---------------------------------------------------------------------------------- */

static ssize_t ws_recv(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags, void *user)
{
    struct sim_conn *c = user;
    (void)flags;
    if (c->pre_off < c->pre_len) {
        size_t n = c->pre_len - c->pre_off;
        if (n > len)
            n = len;
        memcpy(buf, c->pre + c->pre_off, n);
        c->pre_off += n;
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, len, 0);
        if (r > 0)
            return r;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
        else
            wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

static ssize_t ws_send(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct sim_conn *c = user;
    (void)flags;
    for (;;) {
        ssize_t r = send(c->fd, data, len, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
        else
            wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

static int ws_genmask(wslay_event_context_ptr ws, uint8_t *buf, size_t len, void *user)
{
    (void)ws;
    (void)user;
    rnd_fill(g_sim, buf, len);
    return 0;
}

/* Fails the channel from inside a wslay callback: close queued, nothing more read. */
static void ws_fail(struct sim_conn *c, uint16_t code, const char *reason)
{
    (void)wslay_event_queue_close(c->ws, code, (const uint8_t *)reason, strlen(reason));
    wslay_event_shutdown_read(c->ws);
}

static void send_msg(struct sim_conn *c, const struct proto_msg *m)
{
    char *text = proto_encode(m);
    if (!text)
        return;
    struct wslay_event_msg wm = {WSLAY_TEXT_FRAME, (const uint8_t *)text, strlen(text)};
    (void)wslay_event_queue_msg(c->ws, &wm); /* wslay copies the message */
    free(text);
}

/* A positive ack: the command took effect now. */
static void send_ack(struct sim_conn *c, const char *command_id)
{
    struct proto_msg a;
    memset(&a, 0, sizeof(a));
    a.type = PROTO_ACK;
    a.ack.seq = ++c->seq; /* reports continue after the welcome's lastAppliedSeq */
    memcpy(a.ack.command_id, command_id, PROTO_ID_SIZE);
    a.ack.ok = 1;
    a.ack.at = sim_epoch_ms();
    send_msg(c, &a);
}

static void on_text(struct sim *s, struct sim_conn *c, const uint8_t *data, size_t len)
{
    struct proto_msg m;
    struct cp_error e = {{0}, {0}, {0}};
    if (proto_decode((const char *)data, len, &m, &e) != CP_OK) {
        s->unexpected++;
        note_fail(s, c, SIM_F_PROTOCOL, "undecodable message: %s", e.message);
        ws_fail(c, PROTO_CLOSE_UNSUPPORTED, "message refused");
        return;
    }
    if (m.type == PROTO_WELCOME && !c->welcomed) {
        if (m.welcome.protocol != PROTO_VERSION) {
            note_fail(s, c, SIM_F_PROTOCOL, "welcome with protocol %d", m.welcome.protocol);
            ws_fail(c, PROTO_CLOSE_NO_PROTOCOL, "no protocol in common");
        } else {
            c->welcomed = 1;
            c->seq = m.welcome.last_applied_seq; /* acks continue after what was applied */
            c->t_welcome = sim_now_us();
            s->last_welcome = c->t_welcome;
            s->welcomed++;
            s->unresolved--;
            s->open_now++;
        }
    } else if (m.type == PROTO_START) {
        s->commands++;
        s->starts++;
        int64_t t = sim_now_us();
        send_ack(c, m.start.command_id);
        if (s->on_start)
            s->on_start(s, c, &m.start, t);
    } else if (m.type == PROTO_STOP) {
        /* Acked, then ended at once, as an agent whose capture stopped reports it. */
        s->commands++;
        s->stops++;
        send_ack(c, m.stop.command_id);
        struct proto_msg done;
        memset(&done, 0, sizeof(done));
        done.type = PROTO_COMPLETED;
        done.completed.seq = ++c->seq;
        memcpy(done.completed.capture_id, m.stop.capture_id, PROTO_ID_SIZE);
        done.completed.stop_reason = m.stop.reason;
        send_msg(c, &done);
    } else if (m.type == PROTO_REPLY) {
        s->replies++;
        s->replies_failed += !m.reply.ok;
        if (s->on_reply)
            s->on_reply(s, c, &m.reply, sim_now_us());
    } else {
        s->unexpected++;
    }
    proto_msg_clear(&m);
}

static void ws_message(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg,
                       void *user)
{
    struct sim_conn *c = user;
    struct sim *s = g_sim;
    if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        c->server_close = 1;
        if (!c->welcomed && c->fail == SIM_F_NONE) {
            size_t rl = arg->msg_length > 2 ? arg->msg_length - 2 : 0;
            note_fail(s, c, SIM_F_CLOSED, "server closed with %u \"%.*s\" before the welcome",
                      (unsigned)arg->status_code, (int)(rl > 100 ? 100 : rl),
                      rl ? (const char *)arg->msg + 2 : "");
        }
        return;
    }
    if (!wslay_event_get_read_enabled(ws))
        return; /* failing already */
    if (arg->opcode == WSLAY_PING) {
        s->pings++;
        if (s->phase == 1)
            s->pings_hold++;
        if (c->pings < UINT16_MAX)
            c->pings++;
    } else if (arg->opcode == WSLAY_TEXT_FRAME) {
        on_text(s, c, arg->msg, arg->msg_length);
    } else if (arg->opcode == WSLAY_BINARY_FRAME) {
        s->unexpected++;
        note_fail(s, c, SIM_F_PROTOCOL, "a binary frame");
        ws_fail(c, PROTO_CLOSE_UNSUPPORTED, "binary frames are not accepted");
    }
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_recv,
    .send_callback = ws_send,
    .genmask_callback = ws_genmask,
    .on_msg_recv_callback = ws_message,
};

/* Sends what wslay has queued; ends c when both directions are done; sets the epoll interest. */
static void ws_flush(struct sim *s, struct sim_conn *c)
{
    if (wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
        conn_end(s, c);
        return;
    }
    int r = wslay_event_want_read(c->ws), w = wslay_event_want_write(c->ws);
    if (!r && !w) {
        conn_end(s, c); /* closing handshake done (or failed) */
        return;
    }
    set_events(s, c, (r ? EPOLLIN : 0) | (w ? EPOLLOUT : 0));
}

/* ---- handshake ------------------------------------------------------------------------------ */

/* Builds the upgrade request into c->buf. 0 or -1. */
static int build_request(struct sim *s, struct sim_conn *c)
{
    uint8_t raw[16];
    char key[32];
    rnd_fill(s, raw, sizeof(raw));
    if (EVP_EncodeBlock((unsigned char *)key, raw, 16) != 24 ||
        proto_ws_accept_key(key, c->expect) != 0)
        return -1;
    if (!c->buf && !(c->buf = malloc(SIM_BUF_MAX)))
        return -1;
    int v6 = strchr(s->host, ':') != NULL;
    int n = snprintf(c->buf, SIM_BUF_MAX,
                     "GET " PROTO_CHANNEL_PATH " HTTP/1.1\r\n"
                     "Host: %s%s%s:%u\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Protocol: " PROTO_SUBPROTOCOL "\r\n"
                     "Authorization: Bearer %s\r\n"
                     "User-Agent: " SIM_AGENT_VER "\r\n\r\n",
                     v6 ? "[" : "", s->host, v6 ? "]" : "", s->port, key, s->tokens[c->idx]);
    if (n < 0 || n >= SIM_BUF_MAX)
        return -1;
    c->buf_len = (size_t)n;
    c->buf_off = 0;
    return 0;
}

static void conn_start(struct sim *s, struct sim_conn *c)
{
    c->t_start = sim_now_us();
    c->fd = socket(s->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    c->st = SIM_C_CONNECTING;
    s->started++;
    s->unresolved++;
    if (c->fd < 0) {
        note_fail(s, c, SIM_F_CONNECT, "socket: %s", strerror(errno));
        conn_end(s, c);
        return;
    }
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&s->addr, s->addrlen) != 0 && errno != EINPROGRESS) {
        note_fail(s, c, SIM_F_CONNECT, "connect: %s", strerror(errno));
        conn_end(s, c);
        return;
    }
    struct epoll_event e = {.events = EPOLLOUT, .data.ptr = c};
    if (epoll_ctl(s->ep, EPOLL_CTL_ADD, c->fd, &e) != 0) {
        note_fail(s, c, SIM_F_CONNECT, "epoll_ctl: %s", strerror(errno));
        conn_end(s, c);
        return;
    }
    c->events = EPOLLOUT;
}

/* The 101 is in: a wslay client context, the hello, then whatever came after the head. */
static void ws_open(struct sim *s, struct sim_conn *c, size_t head_len)
{
    c->t_up = sim_now_us();
    size_t extra = c->buf_len - head_len;
    if (extra) {
        if (!(c->pre = malloc(extra))) {
            note_fail(s, c, SIM_F_HANDSHAKE, "out of memory");
            conn_end(s, c);
            return;
        }
        memcpy(c->pre, c->buf + head_len, extra);
        c->pre_len = extra;
        c->pre_off = 0;
    }
    free(c->buf);
    c->buf = NULL;
    if (wslay_event_context_client_init(&c->ws, &ws_callbacks, c) != 0) {
        note_fail(s, c, SIM_F_HANDSHAKE, "out of memory (wslay)");
        conn_end(s, c);
        return;
    }
    wslay_event_config_set_max_recv_msg_length(c->ws, PROTO_MAX_MESSAGE);
    c->st = SIM_C_OPEN;

    struct proto_msg m;
    memset(&m, 0, sizeof(m));
    m.type = PROTO_HELLO;
    m.hello.protocols[0] = PROTO_VERSION;
    m.hello.n_protocols = 1;
    snprintf(m.hello.agent_version, sizeof(m.hello.agent_version), "%s", SIM_AGENT_VER);
    snprintf(m.hello.hostname, sizeof(m.hello.hostname), "vm%u", c->idx);
    snprintf(m.hello.os, sizeof(m.hello.os), "linux");
    struct proto_iface ifc;
    memset(&ifc, 0, sizeof(ifc));
    snprintf(ifc.name, sizeof(ifc.name), "eth0");
    snprintf(ifc.addresses[0], sizeof(ifc.addresses[0]), "10.%u.%u.%u", (c->idx >> 16) & 255,
             (c->idx >> 8) & 255, c->idx & 255);
    ifc.n_addresses = 1;
    m.hello.interfaces = &ifc;
    m.hello.n_interfaces = 1;
    m.hello.unacked_from = 1;
    char *hello = proto_encode(&m);
    struct wslay_event_msg wm = {WSLAY_TEXT_FRAME, (const uint8_t *)hello,
                                 hello ? strlen(hello) : 0};
    if (!hello || wslay_event_queue_msg(c->ws, &wm) != 0) {
        free(hello);
        note_fail(s, c, SIM_F_PROTOCOL, "cannot build the hello");
        conn_end(s, c);
        return;
    }
    free(hello);
    if (c->pre_len && wslay_event_recv(c->ws) != 0) {
        conn_end(s, c);
        return;
    }
    ws_flush(s, c);
}

/* Reads the response head; on a good 101, opens the WebSocket. */
static void read_response(struct sim *s, struct sim_conn *c)
{
    for (;;) {
        if (c->buf_len >= SIM_BUF_MAX - 1) {
            note_fail(s, c, SIM_F_HANDSHAKE, "response head over %d bytes", SIM_BUF_MAX - 1);
            conn_end(s, c);
            return;
        }
        ssize_t r = recv(c->fd, c->buf + c->buf_len, SIM_BUF_MAX - 1 - c->buf_len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            note_fail(s, c, SIM_F_HANDSHAKE, "%s before the 101 (netwatchd's --max-connections?)",
                      r == 0 ? "the server closed" : strerror(errno));
            conn_end(s, c);
            return;
        }
        c->buf_len += (size_t)r;
        c->buf[c->buf_len] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end)
            continue;
        size_t head_len = (size_t)(end - c->buf) + 4;
        char saved = end[2];
        end[2] = '\0'; /* the last header keeps its \r\n for proto_ws_response_header() */
        int status = 0;
        char val[256];
        const char *bad = NULL;
        if (sscanf(c->buf, "HTTP/1.1 %3d", &status) != 1)
            bad = "not an HTTP/1.1 response";
        else if (status != 101)
            bad = "";
        else if (proto_ws_response_header(c->buf, "Upgrade", val, sizeof(val)) != 0 ||
                 !proto_ws_has_token(val, "websocket") ||
                 proto_ws_response_header(c->buf, "Connection", val, sizeof(val)) != 0 ||
                 !proto_ws_has_token(val, "upgrade"))
            bad = "the 101 lacks Upgrade: websocket or Connection: Upgrade";
        else if (proto_ws_response_header(c->buf, "Sec-WebSocket-Accept", val, sizeof(val)) != 0 ||
                 strcmp(val, c->expect) != 0)
            bad = "wrong or missing Sec-WebSocket-Accept";
        else if (proto_ws_response_header(c->buf, "Sec-WebSocket-Protocol", val, sizeof(val)) !=
                     0 ||
                 strcmp(val, PROTO_SUBPROTOCOL) != 0)
            bad = "the 101 does not echo the subprotocol " PROTO_SUBPROTOCOL;
        end[2] = saved;
        if (bad && status != 101 && status != 0) {
            note_fail(s, c, SIM_F_UPGRADE, "HTTP %d", status);
            conn_end(s, c);
        } else if (bad) {
            note_fail(s, c, SIM_F_HANDSHAKE, "%s", bad);
            conn_end(s, c);
        } else {
            ws_open(s, c, head_len);
        }
        return;
    }
}

/* Writes the rest of the upgrade request. */
static void write_request(struct sim *s, struct sim_conn *c)
{
    while (c->buf_off < c->buf_len) {
        ssize_t w = send(c->fd, c->buf + c->buf_off, c->buf_len - c->buf_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->buf_off += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        note_fail(s, c, SIM_F_HANDSHAKE, "sending the upgrade request: %s", strerror(errno));
        conn_end(s, c);
        return;
    }
    memset(c->buf, 0, c->buf_len); /* it held the token */
    c->buf_len = c->buf_off = 0;
    c->st = SIM_C_RESPONSE;
    set_events(s, c, EPOLLIN);
}

static void conn_io(struct sim *s, struct sim_conn *c, uint32_t ev)
{
    switch (c->st) {
    case SIM_C_CONNECTING: {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err) {
            note_fail(s, c, SIM_F_CONNECT, "connect: %s", strerror(err));
            conn_end(s, c);
            return;
        }
        if (!(ev & EPOLLOUT))
            return;
        if (build_request(s, c) != 0) {
            note_fail(s, c, SIM_F_HANDSHAKE, "cannot build the upgrade request");
            conn_end(s, c);
            return;
        }
        c->st = SIM_C_REQUEST;
        write_request(s, c);
        return;
    }
    case SIM_C_REQUEST:
        write_request(s, c);
        return;
    case SIM_C_RESPONSE:
        read_response(s, c);
        return;
    case SIM_C_OPEN:
    case SIM_C_CLOSING:
        if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) && wslay_event_want_read(c->ws) &&
            wslay_event_recv(c->ws) != 0) {
            conn_end(s, c);
            return;
        }
        if ((ev & (EPOLLHUP | EPOLLERR)) && !wslay_event_want_read(c->ws)) {
            conn_end(s, c);
            return;
        }
        ws_flush(s, c);
        return;
    default:
        return;
    }
}

/* ---- the loop ------------------------------------------------------------------------------- */

/* Channels past their deadlines: not welcomed in time, or our close not answered in time. */
static void scan_timeouts(struct sim *s, int64_t now)
{
    int64_t limit = (int64_t)(s->channel_timeout_s * 1e6);
    for (unsigned i = 0; i < s->started; i++) {
        struct sim_conn *c = &s->conns[i];
        if (c->st == SIM_C_DONE || c->st == SIM_C_IDLE)
            continue;
        if (c->st == SIM_C_CLOSING) {
            if (now >= c->close_deadline)
                conn_end(s, c);
        } else if (!c->welcomed && now - c->t_start >= limit) {
            static const char *const names[] = {"idle", "connecting", "sending the request",
                                                "reading the response", "waiting for welcome"};
            note_fail(s, c, SIM_F_TIMEOUT, "no welcome within %.0f s (%s)", s->channel_timeout_s,
                      names[c->st < SIM_C_OPEN ? c->st : SIM_C_OPEN]);
            conn_end(s, c);
        }
    }
}

/* One epoll round of at most timeout_ms. */
int sim_poll(struct sim *s, int timeout_ms)
{
    struct epoll_event evs[SIM_EVENTS];
    int n = epoll_wait(s->ep, evs, SIM_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++)
        conn_io(s, evs[i].data.ptr, evs[i].events);
    return 0;
}

int sim_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted v[0..n), in ms. */
double sim_pct_ms(const int64_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t k = (size_t)ceil(p * (double)n);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return (double)v[k - 1] / 1000.0;
}

/* "http://HOST:PORT" (or "http://[v6]:PORT"), an optional "/" after it. */
static int parse_url(struct sim *s, const char *url)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return -1;
    const char *h = url + sizeof(scheme) - 1, *colon;
    size_t hlen;
    if (*h == '[') {
        const char *close = strchr(h, ']');
        if (!close || close[1] != ':')
            return -1;
        h++;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(h, ':');
        if (!colon)
            return -1;
        hlen = (size_t)(colon - h);
    }
    if (!hlen || hlen >= sizeof(s->host))
        return -1;
    memcpy(s->host, h, hlen);
    s->host[hlen] = '\0';
    char *end = NULL;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (!port || port > 65535 || (*end && strcmp(end, "/") != 0))
        return -1;
    s->port = (unsigned)port;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", s->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(s->host, ps, &hints, &res) != 0 || !res)
        return -1;
    memcpy(&s->addr, res->ai_addr, res->ai_addrlen);
    s->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Reads up to max tokens, one per line. Returns how many, or -1. */
static long load_tokens(struct sim *s, const char *path, long max)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t cap = 1024, n = 0;
    char **t = malloc(cap * sizeof(*t));
    char *line = NULL;
    size_t lcap = 0;
    ssize_t len;
    while (t && (max < 0 || (long)n < max) && (len = getline(&line, &lcap, f)) >= 0) {
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (len == 0 || len > SIM_TOKEN_MAX || n >= SIM_MAX_AGENTS) {
            fprintf(stderr, "bench_agent_sim: %s line %zu: %s\n", path, n + 1,
                    len == 0 ? "empty" : "too long, or too many lines");
            n = 0;
            break;
        }
        if (n == cap) {
            char **nt = realloc(t, 2 * cap * sizeof(*t));
            if (!nt)
                break;
            t = nt;
            cap *= 2;
        }
        if (!(t[n] = strdup(line)))
            break;
        n++;
    }
    free(line);
    fclose(f);
    if (!t || n == 0) {
        free(t);
        return -1;
    }
    s->tokens = t;
    return (long)n;
}

/* Lets this process hold need descriptors. 0 or -1 (message printed). */
static int raise_nofile(rlim_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur >= need)
        return 0;
    struct rlimit want = {need, rl.rlim_max >= need ? rl.rlim_max : need};
    if (setrlimit(RLIMIT_NOFILE, &want) == 0)
        return 0;
    fprintf(stderr,
            "bench_agent_sim: needs %llu descriptors (N + %d); RLIMIT_NOFILE is %llu, hard %llu, "
            "and cannot be raised: %s\n",
            (unsigned long long)need, SIM_FD_MARGIN, (unsigned long long)rl.rlim_cur,
            (unsigned long long)rl.rlim_max, strerror(errno));
    return -1;
}

int sim_parse_secs(const char *v, double *out)
{
    char *end = NULL;
    double d = strtod(v, &end);
    if (!end || *end || !(d >= 0) || d > 86400)
        return -1;
    *out = d;
    return 0;
}

static void write_ready(const struct sim *s)
{
    if (!s->ready_file)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", s->ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "welcomed=%u failed=%u\n", s->welcomed, s->started - s->welcomed);
    if (fclose(f) == 0)
        (void)rename(tmp, s->ready_file);
}

static void print_open(const struct sim *s, int64_t *lat, size_t nl, int64_t *up, size_t nu)
{
    double open_s = s->welcomed ? (double)(s->last_welcome - s->t0) / 1e6 : 0;
    unsigned failed = 0;
    for (int k = 1; k < SIM_F_KINDS; k++)
        failed += s->fails[k];
    printf("open: %u/%u welcomed in %.3f s (first connect to last welcome; the ramp alone takes "
           "%.3f s), %u failed, %u not started\n",
           s->welcomed, s->n, open_s, (double)s->n / s->rate, failed, s->n - s->started);
    printf("  connect->101      ms: p50 %8.2f  p90 %8.2f  p99 %8.2f  max %8.2f\n",
           sim_pct_ms(up, nu, 0.5), sim_pct_ms(up, nu, 0.9), sim_pct_ms(up, nu, 0.99),
           sim_pct_ms(up, nu, 1));
    printf("  connect->welcome  ms: p50 %8.2f  p90 %8.2f  p99 %8.2f  max %8.2f\n",
           sim_pct_ms(lat, nl, 0.5), sim_pct_ms(lat, nl, 0.9), sim_pct_ms(lat, nl, 0.99),
           sim_pct_ms(lat, nl, 1));
    if (failed) {
        printf("  failures:");
        for (int k = 1; k < SIM_F_KINDS; k++)
            printf(" %s %u", sim_fail_names[k], s->fails[k]);
        printf("\n");
        for (int k = 1; k < SIM_F_KINDS; k++)
            if (s->fail_detail[k][0])
                printf("  first %s failure: %s\n", sim_fail_names[k], s->fail_detail[k]);
    }
    fflush(stdout);
}

unsigned sim_failed(const struct sim *s)
{
    unsigned failed = 0;
    for (int k = 1; k < SIM_F_KINDS; k++)
        failed += s->fails[k];
    return failed;
}

int sim_setup(struct sim *s, const char *url, const char *tokens_path, long count)
{
    s->rate = 2000;
    s->open_timeout_s = 300;
    s->channel_timeout_s = 120;
    s->close_timeout_s = 10;
    s->ep = -1;
    if (parse_url(s, url) != 0) {
        fprintf(stderr, "bench: --url %s: want http://HOST:PORT (resolvable)\n", url);
        return 2;
    }
    long have = load_tokens(s, tokens_path, count);
    if (have < 0 || (count > 0 && have < count)) {
        fprintf(stderr, "bench: %s: cannot read %ld tokens (one per line)\n", tokens_path,
                count > 0 ? count : 1);
        return 1;
    }
    s->n = (unsigned)have;
    if (raise_nofile((rlim_t)s->n + SIM_FD_MARGIN) != 0)
        return 1;
    s->conns = calloc(s->n, sizeof(*s->conns));
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    if (!s->conns || s->ep < 0) {
        fprintf(stderr, "bench: out of memory or no epoll\n");
        return 1;
    }
    for (unsigned i = 0; i < s->n; i++) {
        s->conns[i].fd = -1;
        s->conns[i].idx = i;
    }
    s->rng = (uint64_t)sim_now_us() * 0x9E3779B97F4A7C15ULL | 1;
    g_sim = s;
    return 0;
}

int sim_open(struct sim *s)
{
    s->t0 = sim_now_us();
    int64_t open_deadline = s->t0 + (int64_t)(s->open_timeout_s * 1e6);
    int64_t last_scan = s->t0, last_progress = s->t0;
    int fatal = 0;
    while (!sim_stop && !fatal) {
        int64_t now = sim_now_us();
        if (s->started < s->n) {
            double due = (double)(now - s->t0) * s->rate / 1e6 + 1;
            unsigned target = due >= s->n ? s->n : (unsigned)due;
            while (s->started < target)
                conn_start(s, &s->conns[s->started]);
        } else if (s->unresolved == 0) {
            break;
        }
        if (now >= open_deadline)
            break;
        if (now - last_scan >= SIM_TICK_US) {
            scan_timeouts(s, now);
            last_scan = now;
        }
        if (now - last_progress >= 1000000) {
            fprintf(stderr, "open: t=%5.1fs started=%u welcomed=%u failed=%u in-flight=%u\n",
                    (double)(now - s->t0) / 1e6, s->started, s->welcomed,
                    s->started - s->welcomed - s->unresolved, s->unresolved);
            last_progress = now;
        }
        fatal = sim_poll(s, s->started < s->n ? 1 : 50) != 0;
    }
    for (unsigned i = 0; i < s->started; i++) {
        struct sim_conn *c = &s->conns[i];
        if (c->st != SIM_C_DONE && !c->welcomed) {
            if (sim_stop)
                note_fail(s, c, SIM_F_STOPPED, "stopped before the welcome");
            else
                note_fail(s, c, SIM_F_TIMEOUT, "no welcome when the open phase ended (%.0f s)",
                          s->open_timeout_s);
            conn_end(s, c);
        }
    }
    s->lat_welcome = malloc((s->welcomed + 1) * sizeof(*s->lat_welcome));
    s->lat_up = malloc((s->welcomed + 1) * sizeof(*s->lat_up));
    size_t nl = 0;
    for (unsigned i = 0; s->lat_welcome && s->lat_up && i < s->started; i++) {
        const struct sim_conn *c = &s->conns[i];
        if (c->welcomed) {
            s->lat_welcome[nl] = c->t_welcome - c->t_start;
            s->lat_up[nl++] = c->t_up - c->t_start;
        }
    }
    if (s->lat_welcome && s->lat_up) {
        qsort(s->lat_welcome, nl, sizeof(*s->lat_welcome), sim_cmp_i64);
        qsort(s->lat_up, nl, sizeof(*s->lat_up), sim_cmp_i64);
    } else {
        nl = 0;
    }
    s->n_lat = nl;
    print_open(s, s->lat_welcome, nl, s->lat_up, nl);
    write_ready(s);
    s->phase = 1;
    return fatal ? -1 : 0;
}

int sim_close(struct sim *s)
{
    s->phase = 2;
    int64_t now = sim_now_us();
    int64_t close_deadline = now + (int64_t)(s->close_timeout_s * 1e6);
    for (unsigned i = 0; i < s->started; i++) {
        struct sim_conn *c = &s->conns[i];
        if (c->st != SIM_C_OPEN)
            continue;
        c->closing_by_us = 1;
        c->st = SIM_C_CLOSING;
        c->close_deadline = close_deadline;
        (void)wslay_event_queue_close(c->ws, 1000, (const uint8_t *)SIM_CLOSE_REASON,
                                      sizeof(SIM_CLOSE_REASON) - 1);
        ws_flush(s, c);
    }
    int fatal = 0;
    while (s->ended < s->started && !fatal) {
        now = sim_now_us();
        scan_timeouts(s, now);
        if (now >= close_deadline + SIM_TICK_US)
            break;
        fatal = sim_poll(s, 50) != 0;
    }
    for (unsigned i = 0; i < s->started; i++)
        conn_end(s, &s->conns[i]);
    if (fatal)
        fprintf(stderr, "bench: epoll_wait: %s\n", strerror(errno));
    return fatal ? -1 : 0;
}

void sim_free(struct sim *s)
{
    free(s->lat_welcome);
    free(s->lat_up);
    s->lat_welcome = s->lat_up = NULL;
    for (unsigned i = 0; s->tokens && i < s->n; i++) {
        memset(s->tokens[i], 0, strlen(s->tokens[i]));
        free(s->tokens[i]);
    }
    free(s->tokens);
    s->tokens = NULL;
    if (s->conns)
        for (unsigned i = 0; i < s->n; i++)
            conn_end(s, &s->conns[i]);
    free(s->conns);
    s->conns = NULL;
    if (s->ep >= 0)
        close(s->ep);
    s->ep = -1;
}
