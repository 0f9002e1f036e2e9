/* The WebSocket client behind agent/channel.h: dial, TLS, handshake, wslay loop, backoff. */
#include "agent/channel.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <wslay/wslay.h>

#include "agent/tls.h"
#include "common/log.h"
#include "proto/proto_ws.h"

#define CHANNEL_RESPONSE_MAX 8192 /* the server's 101 and its headers */
#define CHANNEL_REQUEST_MAX  2048
#define CHANNEL_STOP_WAIT_MS 2000 /* after our close 1000, how long the server gets to answer */

/* One connection's state (one at a time). */
struct channel {
    const struct channel_options *opt;
    int fd;
    struct agent_tls_conn *tls; /* owned; NULL for plain TCP */
    /* What the last blocked read / write waits for: POLLIN or POLLOUT. With TLS either may be
     * either (a read can need to write, a write to read); plain TCP keeps the obvious ones. */
    short rd_wait, wr_wait;
    char io_why[AGENT_TLS_WHY]; /* why the transport failed, for ending */
    wslay_event_context_ptr ws;
    unsigned char pre[CHANNEL_RESPONSE_MAX]; /* bytes read past the 101's headers */
    size_t pre_len, pre_off;
    int64_t last_rx_ms;
    unsigned silence_ms;
    int welcomed;
    const char *ending; /* why this connection ended, for the log */
};

/* What one connection ended with. */
enum session_end { SESSION_FAILED, SESSION_STOPPED };

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- handshake --------------------------------------------------------------------------- */

/* ---- transport: plain TCP or TLS ---------------------------------------------------------- */

#define IO_ERROR AGENT_TLS_ERROR
#define IO_AGAIN AGENT_TLS_AGAIN

/* Reads up to len bytes: > 0 read, 0 the server closed, IO_AGAIN (poll for ch->rd_wait) or
 * IO_ERROR (ch->io_why). */
static ssize_t io_read(struct channel *ch, void *buf, size_t len)
{
    if (ch->tls)
        return agent_tls_read(ch->tls, buf, len, &ch->rd_wait, ch->io_why);
    for (;;) {
        ssize_t r = recv(ch->fd, buf, len, 0);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            ch->rd_wait = POLLIN;
            return IO_AGAIN;
        }
        snprintf(ch->io_why, sizeof(ch->io_why), "receive failed: %s", strerror(errno));
        return IO_ERROR;
    }
}

/* Writes up to len bytes: > 0 taken, IO_AGAIN (poll for ch->wr_wait, then offer the same bytes
 * again: TLS requires it) or IO_ERROR (ch->io_why). */
static ssize_t io_write(struct channel *ch, const void *buf, size_t len)
{
    if (ch->tls)
        return agent_tls_write(ch->tls, buf, len, &ch->wr_wait, ch->io_why);
    for (;;) {
        ssize_t r = send(ch->fd, buf, len, MSG_NOSIGNAL);
        if (r > 0)
            return r;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            ch->wr_wait = POLLOUT;
            return IO_AGAIN;
        }
        snprintf(ch->io_why, sizeof(ch->io_why), "send failed: %s",
                 r < 0 ? strerror(errno) : "nothing sent");
        return IO_ERROR;
    }
}

/* Polls fd for events, or stop_fd; returns 1 ready, 0 timed out, -1 stop, -2 error. */
static int wait_fd(int fd, short events, int stop_fd, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0)
            return 0;
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = stop_fd, .events = POLLIN}};
        int n = poll(p, stop_fd >= 0 ? 2 : 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -2;
        if (stop_fd >= 0 && p[1].revents)
            return -1;
        if (n > 0)
            return 1;
    }
}

/* Connects to host:port (every address getaddrinfo gives, in turn) before deadline.
 * Returns the non-blocking socket, -1 on failure (*why set), -2 when told to stop. */
static int dial(const struct channel_options *o, int64_t deadline, const char **why)
{
    char port[8];
    snprintf(port, sizeof(port), "%u", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(o->host, port, &hints, &res);
    if (g != 0) {
        *why = "cannot resolve the server";
        return -1;
    }
    int fd = -1;
    *why = "cannot connect";
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
            close(fd);
            fd = -1;
            continue;
        }
        int w = wait_fd(fd, POLLOUT, o->stop_fd, deadline);
        int soerr = 0;
        socklen_t slen = sizeof(soerr);
        if (w == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &slen) == 0 && soerr == 0)
            break;
        close(fd);
        fd = -1;
        if (w == -1) {
            freeaddrinfo(res);
            return -2;
        }
        if (w == 0)
            *why = "connect timed out";
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}

/* Sends the upgrade request and checks the 101. Bytes past the response head go to ch->pre.
 * Returns 0, -1 (*why set), -2 when told to stop. */
static int handshake(struct channel *ch, int64_t deadline, const char **why)
{
    const struct channel_options *o = ch->opt;
    unsigned char raw[16];
    char key[32], expect[29];
    if (RAND_bytes(raw, sizeof(raw)) != 1 || EVP_EncodeBlock((unsigned char *)key, raw, 16) != 24 ||
        proto_ws_accept_key(key, expect) != 0) {
        *why = "cannot make a handshake key";
        return -1;
    }
    char req[CHANNEL_REQUEST_MAX];
    int v6 = strchr(o->host, ':') != NULL;
    int n = snprintf(req, sizeof(req),
                     "GET " CHANNEL_PATH " HTTP/1.1\r\n"
                     "Host: %s%s%s:%u\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Protocol: " CHANNEL_SUBPROTOCOL "\r\n"
                     "Authorization: Bearer %s\r\n"
                     "User-Agent: netwatch-agent/" AGENT_VERSION "\r\n\r\n",
                     v6 ? "[" : "", o->host, v6 ? "]" : "", o->port, key, o->token);
    if (n < 0 || n >= (int)sizeof(req)) {
        *why = "the token is too long";
        return -1;
    }
    size_t off = 0;
    int rc = 0;
    while (off < (size_t)n && rc == 0) {
        ssize_t w = io_write(ch, req + off, (size_t)n - off);
        if (w > 0) {
            off += (size_t)w;
        } else if (w == IO_AGAIN) {
            int r = wait_fd(ch->fd, ch->wr_wait, o->stop_fd, deadline);
            rc = r == 1 ? 0 : r == -1 ? -2 : -1;
            *why = "cannot send the upgrade request";
        } else {
            *why = "cannot send the upgrade request";
            rc = -1;
        }
    }
    memset(req, 0, sizeof(req)); /* it held the token */
    if (rc != 0)
        return rc;

    char head[CHANNEL_RESPONSE_MAX + 1];
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        if (got == CHANNEL_RESPONSE_MAX) {
            *why = "the server's response head is too large";
            return -1;
        }
        ssize_t r = io_read(ch, head + got, CHANNEL_RESPONSE_MAX - got);
        if (r > 0) {
            got += (size_t)r;
            head[got] = '\0';
            end = strstr(head, "\r\n\r\n");
        } else if (r == IO_AGAIN) {
            int w = wait_fd(ch->fd, ch->rd_wait, o->stop_fd, deadline);
            if (w != 1) {
                *why = "no answer to the upgrade request";
                return w == -1 ? -2 : -1;
            }
        } else {
            *why = "the server closed during the handshake";
            return -1;
        }
    }
    size_t head_len = (size_t)(end - head) + 4;
    ch->pre_len = got - head_len;
    ch->pre_off = 0;
    memcpy(ch->pre, head + head_len, ch->pre_len);
    end[2] = '\0'; /* keep the last header's \r\n for proto_ws_response_header() */

    int status = 0;
    if (sscanf(head, "HTTP/1.1 %3d", &status) != 1) {
        *why = "not an HTTP/1.1 response";
        return -1;
    }
    if (status != 101) {
        log_warnx("event=channel_refused status=%d hint=\"%s\"", status,
                  status == 401   ? "the agent token was refused"
                  : status == 404 ? "the server has no agent channel"
                                  : "see the server log");
        *why = "upgrade refused";
        return -1;
    }
    char val[256];
    if (proto_ws_response_header(head, "Upgrade", val, sizeof(val)) != 0 ||
        !proto_ws_has_token(val, "websocket") ||
        proto_ws_response_header(head, "Connection", val, sizeof(val)) != 0 ||
        !proto_ws_has_token(val, "upgrade")) {
        *why = "the 101 lacks Upgrade: websocket or Connection: Upgrade";
        return -1;
    }
    if (proto_ws_response_header(head, "Sec-WebSocket-Accept", val, sizeof(val)) != 0 ||
        strcmp(val, expect) != 0) {
        *why = "wrong Sec-WebSocket-Accept";
        return -1;
    }
    if (proto_ws_response_header(head, "Sec-WebSocket-Protocol", val, sizeof(val)) == 0 &&
        strcmp(val, CHANNEL_SUBPROTOCOL) != 0) {
        *why = "the server chose another subprotocol";
        return -1;
    }
    return 0;
}

/* ---- hello ------------------------------------------------------------------------------- */

/* Fills at most max interfaces (PROTO_MAX_ADDRESSES addresses each) from getifaddrs(); returns
 * how many. */
static size_t list_interfaces(struct proto_iface *out, size_t max)
{
    struct ifaddrs *ifs = NULL;
    size_t n = 0;
    if (getifaddrs(&ifs) != 0)
        return 0;
    for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
        if (!i->ifa_name || strlen(i->ifa_name) > PROTO_IFNAME_MAX)
            continue;
        struct proto_iface *f = NULL;
        for (size_t k = 0; k < n && !f; k++)
            if (strcmp(out[k].name, i->ifa_name) == 0)
                f = &out[k];
        if (!f) {
            if (n == max)
                continue;
            f = &out[n++];
            snprintf(f->name, sizeof(f->name), "%s", i->ifa_name);
        }
        if (!i->ifa_addr || f->n_addresses == PROTO_MAX_ADDRESSES)
            continue;
        const void *a = NULL;
        if (i->ifa_addr->sa_family == AF_INET)
            a = &((const struct sockaddr_in *)(const void *)i->ifa_addr)->sin_addr;
        else if (i->ifa_addr->sa_family == AF_INET6)
            a = &((const struct sockaddr_in6 *)(const void *)i->ifa_addr)->sin6_addr;
        if (a && inet_ntop(i->ifa_addr->sa_family, a, f->addresses[f->n_addresses],
                           sizeof(f->addresses[0])))
            f->n_addresses++;
    }
    freeifaddrs(ifs);
    return n;
}

char *channel_hello_json(const struct channel_options *opt)
{
    const struct channel_handler *hd = opt->handler;
    struct proto_msg m = {.type = PROTO_HELLO};
    struct proto_hello *h = &m.hello;
    h->protocols[0] = CHANNEL_PROTOCOL;
    h->n_protocols = 1;
    snprintf(h->agent_version, sizeof(h->agent_version), "%s", AGENT_VERSION);
    snprintf(h->os, sizeof(h->os), "linux");
    if (gethostname(h->hostname, sizeof(h->hostname)) != 0 || !h->hostname[0])
        snprintf(h->hostname, sizeof(h->hostname), "unknown"); /* the protocol needs a name */
    h->hostname[sizeof(h->hostname) - 1] = '\0';
    h->unacked_from = (int64_t)agent_state_unacked_from(opt->state);
    if (opt->resource_id && opt->resource_id[0]) {
        snprintf(h->identity.resource_id, sizeof(h->identity.resource_id), "%s", opt->resource_id);
        snprintf(h->identity.instance_id, sizeof(h->identity.instance_id), "%s",
                 opt->instance_id ? opt->instance_id : "");
    }
    h->interfaces = calloc(PROTO_MAX_INTERFACES, sizeof(*h->interfaces));
    h->sessions = calloc(PROTO_MAX_SESSIONS, sizeof(*h->sessions));
    char *text = NULL;
    if (h->interfaces && h->sessions) {
        h->n_interfaces = list_interfaces(h->interfaces, PROTO_MAX_INTERFACES);
        if (hd && hd->hello_sessions)
            h->n_sessions = hd->hello_sessions(hd->ctx, h->sessions, PROTO_MAX_SESSIONS);
        text = proto_encode(&m);
        /* The interfaces only inform: a machine with too many to fit the message says none
         * rather than not saying hello. */
        if (!text && h->n_interfaces) {
            h->n_interfaces = 0;
            text = proto_encode(&m);
        }
    }
    free(h->interfaces);
    free(h->sessions);
    return text;
}

/* ---- the wslay session ------------------------------------------------------------------- */

static ssize_t ws_recv(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags, void *user)
{
    struct channel *ch = user;
    (void)flags;
    if (ch->pre_off < ch->pre_len) {
        size_t n = ch->pre_len - ch->pre_off;
        if (n > len)
            n = len;
        memcpy(buf, ch->pre + ch->pre_off, n);
        ch->pre_off += n;
        ch->last_rx_ms = now_ms();
        return (ssize_t)n;
    }
    ssize_t r = io_read(ch, buf, len);
    if (r > 0) {
        ch->last_rx_ms = now_ms();
        return r;
    }
    if (r == IO_AGAIN) {
        wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
    } else {
        if (!ch->ending)
            ch->ending = r == 0 ? "server disconnected" : ch->io_why;
        wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
    }
    return -1;
}

static ssize_t ws_send(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct channel *ch = user;
    (void)flags;
    /* A blocked write is retried by wslay with the same bytes and length (the rest of the
     * frame header, or the same masked chunk), which is what SSL_write asks for. */
    ssize_t r = io_write(ch, data, len);
    if (r > 0)
        return r;
    if (r == IO_AGAIN) {
        wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
    } else {
        if (!ch->ending)
            ch->ending = ch->io_why;
        wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
    }
    return -1;
}

static int ws_genmask(wslay_event_context_ptr ws, uint8_t *buf, size_t len, void *user)
{
    (void)user;
    if (RAND_bytes(buf, (int)len) != 1) {
        wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return 0;
}

/* Fails the connection from inside a wslay callback: close frame queued, no more reading. */
static void fail(struct channel *ch, uint16_t code, const char *reason)
{
    if (!ch->ending)
        ch->ending = reason;
    (void)wslay_event_queue_close(ch->ws, code, (const uint8_t *)reason, strlen(reason));
    wslay_event_shutdown_read(ch->ws);
}

static void on_welcome(struct channel *ch, const struct proto_welcome *w)
{
    if (w->protocol != CHANNEL_PROTOCOL) {
        fail(ch, PROTO_CLOSE_NO_PROTOCOL, "no protocol in common");
        return;
    }
    ch->silence_ms = (unsigned)(PROTO_SILENCE_FACTOR * w->heartbeat_seconds * 1000);
    if (w->last_applied_seq > 0) {
        struct cp_error e = {{0}, {0}, {0}};
        if (agent_state_set_acked(ch->opt->state, (uint64_t)w->last_applied_seq, &e) != CP_OK)
            log_warnx("event=state_write_failed detail=\"%s\"", e.message);
    }
    /* welcome.stop is the dispatcher's (its on_welcome gets the whole welcome). */
    ch->welcomed = 1;
    log_info("event=channel_welcome protocol=%d heartbeat_s=%d last_applied_seq=%lld stop=%zu",
             w->protocol, w->heartbeat_seconds, (long long)w->last_applied_seq, w->n_stop);
    const struct channel_handler *hd = ch->opt->handler;
    if (hd && hd->on_welcome)
        hd->on_welcome(hd->ctx, ch, w);
}

/* Every message goes through the protocol's strict codec: what it refuses closes the channel
 * (1003, or 1009 for a message over the limit), as the server does with the agent's. */
static void on_text(struct channel *ch, const uint8_t *data, size_t len)
{
    struct proto_msg m = {.type = PROTO_NONE};
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = proto_decode((const char *)data, len, &m, &e);
    if (err != CP_OK) {
        log_warnx("event=message_refused detail=\"%s\"", e.message);
        if (err == CP_ETOOBIG)
            fail(ch, PROTO_CLOSE_TOO_BIG, "message too large");
        else
            fail(ch, PROTO_CLOSE_UNSUPPORTED, "a message the protocol refuses");
        return;
    }
    const struct channel_handler *hd = ch->opt->handler;
    if (m.type == PROTO_WELCOME)
        on_welcome(ch, &m.welcome);
    else if (hd && hd->on_message)
        hd->on_message(hd->ctx, ch, &m);
    else
        log_info("event=message_received type=%s handled=no", proto_type_name(m.type));
    proto_msg_clear(&m);
}

static void ws_frame_start(wslay_event_context_ptr ws,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    (void)ws;
    if (arg->opcode == WSLAY_BINARY_FRAME)
        fail(user, 1003, "binary frames are not accepted");
}

static void ws_message(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg,
                       void *user)
{
    struct channel *ch = user;
    if (!wslay_event_get_read_enabled(ws) && arg->opcode != WSLAY_CONNECTION_CLOSE)
        return; /* failing already */
    if (arg->opcode == WSLAY_TEXT_FRAME)
        on_text(ch, arg->msg, arg->msg_length);
    else if (arg->opcode == WSLAY_CONNECTION_CLOSE && !ch->ending)
        ch->ending = "server closed";
}

enum cp_err channel_send(struct channel *ch, const char *json, size_t len)
{
    if (len == 0 || len > CHANNEL_MAX_MESSAGE)
        return CP_ETOOBIG;
    struct wslay_event_msg m = {WSLAY_TEXT_FRAME, (const uint8_t *)json, len};
    int r = wslay_event_queue_msg(ch->ws, &m);
    if (r == WSLAY_ERR_NOMEM)
        return CP_ENOMEM;
    return r == 0 ? CP_OK : CP_EBUSY;
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_recv,
    .send_callback = ws_send,
    .genmask_callback = ws_genmask,
    .on_frame_recv_start_callback = ws_frame_start,
    .on_msg_recv_callback = ws_message,
};

/* Serves one upgraded connection until it ends or we are told to stop. */
static enum session_end serve(struct channel *ch)
{
    const struct channel_options *o = ch->opt;
    ch->last_rx_ms = now_ms();
    char *hello = channel_hello_json(o);
    if (!hello || channel_send(ch, hello, strlen(hello)) != CP_OK) {
        free(hello);
        ch->ending = "cannot build the hello";
        return SESSION_FAILED;
    }
    free(hello);
    int stopping = 0;
    int64_t stop_deadline = 0;
    /* wslay has consumed nothing yet: bytes that came with the 101 go first, and TLS may hold
     * the rest of a record already read from the socket, which poll() would not report. */
    if (wslay_event_recv(ch->ws) != 0)
        return SESSION_FAILED;
    for (;;) {
        if (wslay_event_want_write(ch->ws) && wslay_event_send(ch->ws) != 0)
            break;
        int want_r = wslay_event_want_read(ch->ws), want_w = wslay_event_want_write(ch->ws);
        if (!want_r && !want_w)
            break; /* closing handshake done (or failed) */
        int64_t now = now_ms();
        int64_t deadline = stopping ? stop_deadline : ch->last_rx_ms + ch->silence_ms;
        if (now >= deadline) {
            if (!ch->ending)
                ch->ending = stopping ? "close not answered" : "server silent";
            break;
        }
        /* The directions the transport waits for, not wslay's: SSL_read may need POLLOUT. */
        const struct channel_handler *hd = o->handler;
        int wake = !stopping && ch->welcomed && hd && hd->on_wake && hd->wake_fd >= 0;
        struct pollfd p[3] = {
            {.fd = ch->fd,
             .events = (short)((want_r ? ch->rd_wait : 0) | (want_w ? ch->wr_wait : 0))},
            {.fd = o->stop_fd, .events = POLLIN},
            {.fd = wake ? hd->wake_fd : -1, .events = POLLIN},
        };
        int n = poll(p, stopping ? 1 : 3, (int)(deadline - now));
        if (n < 0 && errno != EINTR)
            break;
        if (n <= 0)
            continue;
        if (!stopping && p[1].revents) {
            stopping = 1;
            stop_deadline = now_ms() + CHANNEL_STOP_WAIT_MS;
            static const char bye[] = "agent stopping";
            ch->ending = "agent stopping";
            (void)wslay_event_queue_close(ch->ws, 1000, (const uint8_t *)bye, sizeof(bye) - 1);
            continue;
        }
        if ((p[0].revents & (ch->rd_wait | POLLHUP | POLLERR)) && want_r &&
            wslay_event_recv(ch->ws) != 0)
            break;
        if (wake && p[2].revents)
            hd->on_wake(hd->ctx, ch); /* queues reports; the loop's top sends them */
        if ((p[0].revents & (POLLHUP | POLLERR)) && !want_r) {
            if (!ch->ending)
                ch->ending = "server disconnected";
            break;
        }
    }
    return stopping ? SESSION_STOPPED : SESSION_FAILED;
}

/* The TLS handshake on ch->fd, verification included, before deadline. Returns 0, -1 (*why set:
 * what failed, the certificate's verification error when that is it) or -2 when told to stop. */
static int tls_start(struct channel *ch, struct agent_tls_ctx *tctx, int64_t deadline,
                     const char **why)
{
    const struct channel_options *o = ch->opt;
    if (agent_tls_conn_new(tctx, ch->fd, o->host, &ch->tls) != CP_OK) {
        *why = "cannot start TLS for this host";
        return -1;
    }
    for (;;) {
        short wait = 0;
        int r = agent_tls_handshake(ch->tls, &wait, ch->io_why);
        if (r == 0)
            return 0;
        if (r != AGENT_TLS_AGAIN) {
            *why = ch->io_why;
            return -1;
        }
        int w = wait_fd(ch->fd, wait, o->stop_fd, deadline);
        if (w == -1)
            return -2;
        if (w != 1) {
            *why = "TLS handshake timed out";
            return -1;
        }
    }
}

/* One connection attempt: dial, TLS (tctx not NULL), handshake, serve. */
static enum session_end session(const struct channel_options *o, struct agent_tls_ctx *tctx,
                                int *welcomed)
{
    struct channel *ch = calloc(1, sizeof(*ch));
    if (!ch) {
        log_warnx("event=channel_failed reason=\"out of memory\"");
        return SESSION_FAILED;
    }
    ch->opt = o;
    ch->rd_wait = POLLIN;
    ch->wr_wait = POLLOUT;
    ch->silence_ms = o->silence_ms ? o->silence_ms : 45000;
    int64_t deadline = now_ms() + (o->connect_timeout_ms ? o->connect_timeout_ms : 10000);
    const char *why = NULL;
    enum session_end end = SESSION_FAILED;
    ch->fd = dial(o, deadline, &why);
    if (ch->fd == -2) {
        free(ch);
        return SESSION_STOPPED;
    }
    if (ch->fd < 0) {
        log_warnx("event=channel_failed server=%s:%u reason=\"%s\"", o->host, o->port, why);
        free(ch);
        return SESSION_FAILED;
    }
    /* The token goes out in the upgrade request: with TLS, only once the server is verified. */
    int ts = tctx ? tls_start(ch, tctx, deadline, &why) : 0;
    int hs = ts == 0 ? handshake(ch, deadline, &why) : ts;
    if (hs == -2) {
        end = SESSION_STOPPED;
    } else if (ts != 0) {
        log_warnx("event=channel_failed server=%s:%u reason=\"TLS handshake failed\" "
                  "detail=\"%s\"",
                  o->host, o->port, why);
    } else if (hs != 0) {
        log_warnx("event=channel_failed server=%s:%u reason=\"%s\"", o->host, o->port, why);
    } else if (wslay_event_context_client_init(&ch->ws, &ws_callbacks, ch) != 0) {
        log_warnx("event=channel_failed reason=\"out of memory\"");
    } else {
        wslay_event_config_set_max_recv_msg_length(ch->ws, CHANNEL_MAX_MESSAGE);
        log_info("event=channel_connected server=%s:%u tls=%s", o->host, o->port,
                 ch->tls ? "yes" : "no");
        end = serve(ch);
        log_info("event=channel_closed reason=\"%s\" code_sent=%u code_received=%u",
                 ch->ending ? ch->ending : "closed",
                 (unsigned)wslay_event_get_status_code_sent(ch->ws),
                 (unsigned)wslay_event_get_status_code_received(ch->ws));
        *welcomed = ch->welcomed;
        if (wslay_event_get_status_code_received(ch->ws) == PROTO_CLOSE_WRONG_IDENTITY)
            log_error("event=channel_wrong_identity resource_id=\"%s\" instance_id=\"%s\" "
                      "detail=\"the server registered this agent's token for another machine: "
                      "set --resource-id/--instance-id (NETWATCH_AGENT_RESOURCE_ID, "
                      "NETWATCH_AGENT_INSTANCE_ID) to the machine the token was made for, or "
                      "give this machine its own token (netwatchd agent add); retrying\"",
                      o->resource_id ? o->resource_id : "", o->instance_id ? o->instance_id : "");
    }
    agent_tls_shutdown(ch->tls); /* after the close frames; best effort */
    agent_tls_conn_free(ch->tls);
    close(ch->fd);
    wslay_event_context_free(ch->ws);
    free(ch);
    return end;
}

/* Full jitter: uniform in [0, min(max, min_ms * 2^attempt)]. */
static unsigned backoff_ms(const struct channel_options *o, unsigned attempt)
{
    unsigned lo = o->backoff_min_ms ? o->backoff_min_ms : 500;
    unsigned hi = o->backoff_max_ms ? o->backoff_max_ms : 30000;
    uint64_t cap = lo;
    for (unsigned i = 0; i < attempt && cap < hi; i++)
        cap *= 2;
    if (cap > hi)
        cap = hi;
    uint32_t r = 0;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
        r = (uint32_t)now_ms();
    return (unsigned)(((uint64_t)r * (cap + 1)) >> 32);
}

/* Connects, serves and reconnects until told to stop. */
static enum cp_err channel_loop(const struct channel_options *o, struct agent_tls_ctx *tctx)
{
    unsigned attempt = 0;
    for (;;) {
        int welcomed = 0;
        if (session(o, tctx, &welcomed) == SESSION_STOPPED)
            return CP_OK;
        if (welcomed)
            attempt = 0;
        unsigned delay = backoff_ms(o, attempt);
        if (attempt < 32)
            attempt++;
        log_info("event=channel_retry delay_ms=%u attempt=%u", delay, attempt);
        /* Work that ends meanwhile (a capture, a timer) is handled now, with no channel: its
         * reports are kept for the next welcome. */
        const struct channel_handler *hd = o->handler;
        int wake = hd && hd->on_wake && hd->wake_fd >= 0;
        struct pollfd p[2] = {{.fd = o->stop_fd, .events = POLLIN},
                              {.fd = wake ? hd->wake_fd : -1, .events = POLLIN}};
        int64_t until = now_ms() + delay;
        for (;;) {
            int64_t left = until - now_ms();
            if (left <= 0)
                break;
            int n = poll(p, 2, (int)left);
            if (n > 0 && p[0].revents)
                return CP_OK;
            if (n > 0 && p[1].revents)
                hd->on_wake(hd->ctx, NULL);
            if (n < 0 && errno != EINTR)
                break;
        }
    }
}

enum cp_err channel_run(const struct channel_options *o)
{
    if (!o->host || !o->host[0] || !o->port || !o->token || !o->state || o->stop_fd < 0)
        return CP_EINVAL;
    /* One TLS context for the whole run: the trust store is read once, at start. */
    struct agent_tls_ctx *tctx = NULL;
    if (o->tls) {
        struct cp_error e = {{0}, {0}, {0}};
        if (agent_tls_ctx_new(o->ca_file, &tctx, &e) != CP_OK) {
            log_error("event=channel_tls_unusable detail=\"%s\"", e.message);
            return CP_EINVAL;
        }
    }
    enum cp_err err = channel_loop(o, tctx);
    agent_tls_ctx_free(tctx);
    return err;
}
