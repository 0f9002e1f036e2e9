/* libmicrohttpd wiring behind http.h. Handlers stay thin: collect, translate, api_handle. */
#define _GNU_SOURCE /* strcasestr */
#include "server/http.h"

#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "server/workers.h"
#include "proto/proto_ws.h"
#include "server/ws_handshake.h"

struct http_server {
    struct MHD_Daemon *daemon;
    const struct api_ctx *api;
    struct metrics *metrics;
    struct workers *workers; /* runs requests that wait on a commit */
    struct hub *hub;         /* takes upgraded agent channels; NULL: none */
    int tls;                 /* MHD terminates TLS (and so relays upgraded channels) */
    int fd;                  /* the bound listening socket; ours, not MHD's */
    unsigned port;
    pthread_t acceptor; /* accepts on fd and hands connections to MHD */
    int acceptor_running;
    int stop_fd;          /* eventfd: tells the acceptor to stop */
    atomic_int in_flight; /* requests begun and not yet completed */
    /* --max-connections bounds MHD's connections other than agent channels: conns counts all of
     * MHD's connections, tls_channels the agent channels among them (TLS only; without TLS a
     * channel leaves MHD at its 101). */
    unsigned max_api;
    atomic_int conns;
    atomic_int tls_channels;
};

/* Body bytes read and dropped past API_MAX_BODY before answering 413 anyway. */
#define DISCARD_MAX (8 * 1024 * 1024)

/* Per-request state: created on the first callback, freed in request_completed(). */
struct request_state {
    struct timespec start;
    char *body;
    size_t len, cap;
    int too_large;   /* over API_MAX_BODY: the answer is 413 */
    int answer_now;  /* over DISCARD_MAX: answer without reading further */
    size_t received; /* body bytes seen, kept or not */
    /* While a worker runs the request, its connection is suspended; these carry it across. */
    struct http_server *h;
    struct MHD_Connection *conn;
    struct api_request req; /* pointers into the connection's memory and body, both kept */
    /* The answer (15 KB with its header slots): allocated when it is built, freed once sent; an
     * accepted agent channel never has one. */
    struct api_response *res;
    int done; /* res is ready (set by the worker before it resumes the connection) */
    /* An agent channel: the agent its token names, and whether the socket went to the hub (the
     * request then no longer counts as in flight: the channel outlives http_stop's grace). */
    char agent_id[HUB_AGENT_ID_MAX];
    int upgraded;
};

static double elapsed(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static enum api_method method_of(const char *m)
{
    static const char *const names[] = {"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"};
    for (int i = 0; i < API_OTHER; i++) {
        if (strcmp(m, names[i]) == 0)
            return (enum api_method)i;
    }
    return API_OTHER;
}

/* Appends upload data, keeping at most API_MAX_BODY bytes; past that only notes the excess. */
static int append_body(struct request_state *st, const char *data, size_t n)
{
    if (st->too_large || st->len + n > API_MAX_BODY) {
        st->too_large = 1;
        return 0;
    }
    if (st->len + n > st->cap) {
        size_t cap = st->cap ? st->cap : 4096;
        while (cap < st->len + n)
            cap *= 2;
        if (cap > API_MAX_BODY)
            cap = API_MAX_BODY;
        char *b = realloc(st->body, cap);
        if (!b)
            return -1;
        st->body = b;
        st->cap = cap;
    }
    memcpy(st->body + st->len, data, n);
    st->len += n;
    return 0;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

/* The server's own routes; returns 1 when it answered. */
static int own_route(struct http_server *h, const char *url, const struct api_request *req,
                     struct api_response *res)
{
    if (strcmp(url, "/healthz") == 0) {
        res->route = "healthz";
        api_set_json_text(res, 200, "{\"status\":\"ok\"}");
        return 1;
    }
    if (strcmp(url, "/metrics") == 0) {
        res->route = "metrics";
        if (h->api->auth(h->api->auth_ctx, req->authorization, NULL) != CP_OK) {
            api_add_header(res, "WWW-Authenticate", "Bearer realm=\"netwatch\"");
            api_set_error(res, 401, "AuthenticationFailed",
                          "Authentication failed. The Authorization header is missing or does "
                          "not carry a valid bearer token.",
                          NULL);
            return 1;
        }
        char *text = metrics_render(h->metrics, h->api->core);
        if (!text) {
            api_set_error(res, 500, "InternalServerError", "Metrics are unavailable.", NULL);
            return 1;
        }
        res->status = 200;
        res->body = text;
        res->body_len = strlen(text);
        api_add_header(res, "Content-Type", "text/plain; version=0.0.4");
        return 1;
    }
    return 0;
}

static enum MHD_Result send_response(struct MHD_Connection *c, struct api_response *res)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(res->body_len, res->body ? res->body : (void *)"",
                                        res->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    res->body = NULL; /* MHD owns it now */
    int has_type = 0;
    for (int i = 0; i < res->nheaders; i++) {
        MHD_add_response_header(r, res->headers[i].name, res->headers[i].value);
        has_type |= strcasecmp(res->headers[i].name, "Content-Type") == 0;
    }
    if (!has_type && res->status != 204)
        MHD_add_response_header(r, "Content-Type", "application/json; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)res->status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Logs, counts and sends a finished request. */
static enum MHD_Result finish(struct http_server *h, struct MHD_Connection *c,
                              struct request_state *st, const char *method, const char *url)
{
    struct api_response *res = st->res;
    double secs = elapsed(&st->start);
    const char *route = res->route[0] ? res->route : "unmatched";
    metrics_observe(h->metrics, route, res->status, secs);
    /* One line per request; never the body or the Authorization header. */
    log_info("event=request method=%s path=\"%.200s\" status=%d duration_ms=%.3f "
             "request_id=%s route=%s",
             method, url, res->status, secs * 1e3, res->request_id, route);
    enum MHD_Result ret = send_response(c, res);
    api_response_free(res);
    free(res);
    st->res = NULL;
    return ret;
}

/* On a worker thread: run the request (it may wait for a group commit), then hand the
 * connection back to its HTTP thread, which sends the answer. */
static void run_deferred(void *arg)
{
    struct request_state *st = arg;
    api_handle(st->h->api, &st->req, st->res);
    st->done = 1;
    MHD_resume_connection(st->conn);
}

/* Requests that change state wait on a durable commit, and a poll of an operation monitor may
 * wait for its operation to end (api_ctx.monitor_wait_ms): they go to the workers. */
static int runs_on_worker(const struct http_server *h, enum api_method m, const char *url)
{
    if (m == API_PUT || m == API_PATCH || m == API_DELETE || m == API_POST)
        return 1;
    return m == API_GET && h->api->monitor_wait_ms > 0 &&
           (strcasestr(url, "/operations/") || strcasestr(url, "/operationResults/"));
}

/* The hub's release callback under TLS: MHD owns the socketpair end and closes it itself. */
static void release_upgraded(void *arg, int fd)
{
    (void)fd;
    MHD_upgrade_action(arg, MHD_UPGRADE_ACTION_CLOSE);
}

/* MHD calls this once the 101 is out: the socket, and whatever MHD already read past the
 * request (the agent may send its hello at once), go to the hub.
 *
 * Plain HTTP: the hub takes a duplicate of the socket and MHD is told at once that the
 * application is done with it. For an upgraded connection without TLS, MHD 0.9.75 then only
 * frees its connection (memory pool, request state) and closes its own descriptor, with no
 * shutdown(), so the agent's TCP connection lives on in the hub alone: an agent costs the hub's
 * few kB, not MHD's 32 KiB pool, and no longer counts as one of MHD's connections.
 * tests/channel (channels_leave_mhd) holds MHD to this.
 *
 * TLS: MHD holds the TLS session and relays the clear text through a socketpair whose other
 * end the hub gets, so the connection must stay MHD's until the hub releases it. */
static void channel_upgraded(void *cls, struct MHD_Connection *c, void *req_cls,
                             const char *extra_in, size_t extra_in_size, MHD_socket sock,
                             struct MHD_UpgradeResponseHandle *urh)
{
    struct http_server *h = cls;
    struct request_state *st = req_cls;
    (void)c;
    st->upgraded = 1;
    atomic_fetch_sub(&h->in_flight, 1);
    if (h->tls) {
        atomic_fetch_add(&h->tls_channels, 1); /* until request_completed */
        if (hub_adopt(h->hub, sock, extra_in, extra_in_size, st->agent_id, release_upgraded, urh) !=
            CP_OK) {
            log_warnx("event=agent_channel_refused agent=%s reason=\"the hub is not accepting\"",
                      st->agent_id);
            MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
        }
        return;
    }
    int fd = fcntl(sock, F_DUPFD_CLOEXEC, 0);
    /* extra_in lives in MHD's pool: hub_adopt copies it before the CLOSE below frees it. */
    enum cp_err err =
        fd < 0 ? CP_EIO : hub_adopt(h->hub, fd, extra_in, extra_in_size, st->agent_id, NULL, NULL);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
    if (err != CP_OK) {
        log_warnx("event=agent_channel_refused agent=%s reason=\"%s\"", st->agent_id,
                  fd < 0 ? "out of descriptors" : "the hub is not accepting");
        if (fd >= 0)
            close(fd);
    }
}

#define CHANNEL_ROUTE "agent.channel" /* the channel's route for metrics and logs */

/* Answers a channel request with an error. The answer is allocated only here: an accepted
 * channel never needs one (10,000 agents reconnecting at once would otherwise each hold one
 * while they wait for their 101). header/value: one extra header, or NULL. */
static enum MHD_Result channel_refuse(struct http_server *h, struct MHD_Connection *c,
                                      struct request_state *st, const char *method, const char *url,
                                      int status, const char *code, const char *message,
                                      const char *header_name, const char *header_value)
{
    if (!(st->res = calloc(1, sizeof(*st->res))))
        return MHD_NO;
    api_response_init(st->res, &st->req);
    st->res->route = CHANNEL_ROUTE;
    if (header_name)
        api_add_header(st->res, header_name, "%s", header_value);
    api_set_error(st->res, status, code, message, NULL);
    api_finish(&st->req, st->res);
    return finish(h, c, st, method, url);
}

/* Answers 101 and hands the socket to the hub (channel_upgraded). */
static enum MHD_Result channel_accept(struct http_server *h, struct MHD_Connection *c,
                                      struct request_state *st, const char *key, int echo_protocol,
                                      const char *method, const char *url)
{
    char accept[PROTO_WS_ACCEPT_LEN];
    if (proto_ws_accept_key(key, accept) != 0)
        return channel_refuse(h, c, st, method, url, 500, "InternalServerError",
                              "Cannot compute the handshake.", NULL, NULL);
    struct MHD_Response *r = MHD_create_response_for_upgrade(channel_upgraded, h);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "Upgrade");
    MHD_add_response_header(r, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(r, "Sec-WebSocket-Accept", accept);
    if (echo_protocol)
        MHD_add_response_header(r, "Sec-WebSocket-Protocol", WS_SUBPROTOCOL);
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_SWITCHING_PROTOCOLS, r);
    MHD_destroy_response(r);
    double secs = elapsed(&st->start);
    metrics_observe(h->metrics, CHANNEL_ROUTE, 101, secs);
    log_info("event=request method=%s path=\"%.200s\" status=101 duration_ms=%.3f agent=%s "
             "route=" CHANNEL_ROUTE,
             method, url, secs * 1e3, st->agent_id);
    return ret;
}

/* GET /agent/v1/channel: checks the WebSocket handshake and the agent's token (through the hub)
 * BEFORE upgrading: 404 without a hub, 400 malformed, 426 wrong version, 401 bad token. */
static enum MHD_Result channel_request(struct http_server *h, struct MHD_Connection *c,
                                       struct request_state *st, const char *method,
                                       const char *version, const char *url)
{
    if (!h->hub)
        return channel_refuse(h, c, st, method, url, 404, "NotFound",
                              "No route matches '" WS_CHANNEL_PATH "'.", NULL, NULL);
    struct ws_handshake_request hr = {
        .method = method,
        .http_version = version,
        .upgrade = header(c, MHD_HTTP_HEADER_UPGRADE),
        .connection = header(c, MHD_HTTP_HEADER_CONNECTION),
        .ws_version = header(c, "Sec-WebSocket-Version"),
        .ws_key = header(c, "Sec-WebSocket-Key"),
        .ws_protocol = header(c, "Sec-WebSocket-Protocol"),
        .authorization = header(c, MHD_HTTP_HEADER_AUTHORIZATION),
    };
    const char *token = NULL, *why = NULL;
    size_t token_len = 0;
    int echo_protocol = 0;
    enum ws_verdict v = ws_handshake_check(&hr, &token, &token_len, &echo_protocol, &why);
    enum cp_err err = CP_EAUTH;
    if (v == WS_OK) {
        char tok[WS_BEARER_TOKEN_MAX + 1];
        memcpy(tok, token, token_len);
        tok[token_len] = '\0';
        struct cp_error e = {{0}, {0}, {0}};
        err = hub_authenticate(h->hub, tok, st->agent_id, &e);
        memset(tok, 0, sizeof(tok));
        st->agent_id[HUB_AGENT_ID_MAX - 1] = '\0';
        if (err == CP_OK && !st->agent_id[0])
            err = CP_EIO;
        if (err == CP_OK)
            return channel_accept(h, c, st, hr.ws_key, echo_protocol, method, url);
    }
    if (v == WS_BAD_REQUEST) {
        char msg[CP_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "Not a valid agent channel handshake: %s.", why);
        return channel_refuse(h, c, st, method, url, 400, "InvalidRequestFormat", msg, NULL, NULL);
    }
    if (v == WS_BAD_VERSION)
        return channel_refuse(h, c, st, method, url, 426, "UpgradeRequired",
                              "The agent channel speaks WebSocket version 13.",
                              "Sec-WebSocket-Version", "13");
    if (err == CP_EAUTH || err == CP_ENOTFOUND || err == CP_EFORBIDDEN)
        return channel_refuse(h, c, st, method, url, 401, "AuthenticationFailed",
                              "Authentication failed. The Authorization header is missing or "
                              "does not carry a valid agent token.",
                              "WWW-Authenticate", "Bearer realm=\"netwatch\"");
    if (err == CP_EBUSY)
        return channel_refuse(h, c, st, method, url, 503, "ServiceUnavailable",
                              "Agents cannot connect now; retry shortly.", "Retry-After", "1");
    return channel_refuse(h, c, st, method, url, 500, "InternalServerError",
                          "The agent token could not be checked.", NULL, NULL);
}

/* MHD accepts up to --max-connections plus --max-agents connections (http_serve), so that agents
 * cannot take the API's share; this keeps API clients out of the agents' share: past
 * --max-connections connections that are not agent channels, requests are answered 503 and their
 * connections closed. (Whether a connection is an agent's is known only from its request, so
 * the check is made per request; an agent in its handshake counts as an API client until its
 * 101.) */
static int over_api_limit(struct http_server *h)
{
    if (!h->max_api)
        return 0;
    int api = atomic_load(&h->conns) - atomic_load(&h->tls_channels);
    if (api <= (int)h->max_api)
        return 0;
    log_warnx("event=connection_refused reason=\"max connections\" connections=%d "
              "max_connections=%u",
              api, h->max_api);
    return 1;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **req_cls)
{
    struct http_server *h = cls;
    struct request_state *st = *req_cls;
    if (st && st->done)
        return finish(h, c, st, method, url); /* back from a worker */
    if (!st) {
        /* First call: headers only. A body declared past DISCARD_MAX is refused unread. */
        if (!(st = calloc(1, sizeof(*st))))
            return MHD_NO;
        clock_gettime(CLOCK_MONOTONIC, &st->start);
        *req_cls = st;
        atomic_fetch_add(&h->in_flight, 1);
        const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > DISCARD_MAX) {
            st->too_large = 1; /* far too big to read: answer now, MHD closes after */
            st->answer_now = 1;
        } else {
            return MHD_YES;
        }
    }
    if (*upload_data_size && !st->answer_now) {
        /* Over API_MAX_BODY the rest is read and dropped (up to DISCARD_MAX), so that the 413
         * reaches a client that sends its whole body before reading the answer. */
        st->received += *upload_data_size;
        if (st->received > DISCARD_MAX)
            st->too_large = st->answer_now = 1;
        else if (append_body(st, upload_data, *upload_data_size) != 0)
            return MHD_NO;
        if (!st->answer_now) {
            *upload_data_size = 0;
            return MHD_YES;
        }
    }
    *upload_data_size = 0;

    struct api_request *req = &st->req;
    *req = (struct api_request){
        .method = method_of(method),
        .path = url,
        .api_version = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "api-version"),
        .authorization = header(c, MHD_HTTP_HEADER_AUTHORIZATION),
        .if_match = header(c, MHD_HTTP_HEADER_IF_MATCH),
        .if_none_match = header(c, MHD_HTTP_HEADER_IF_NONE_MATCH),
        .correlation_id = header(c, "x-ms-correlation-request-id"),
        .client_request_id = header(c, "x-ms-client-request-id"),
        .body = st->body,
        .body_len = st->len,
        .body_too_large = st->too_large,
    };
    const char *ret_cid = header(c, "x-ms-return-client-request-id");
    req->return_client_request_id = ret_cid && strcasecmp(ret_cid, "true") == 0;

    if (strcmp(url, WS_CHANNEL_PATH) == 0)
        return channel_request(h, c, st, method, version, url);
    /* The answer is built from here on (allocated only now: see channel_refuse). */
    if (!(st->res = calloc(1, sizeof(*st->res))))
        return MHD_NO;
    if (over_api_limit(h)) {
        api_response_init(st->res, req);
        api_add_header(st->res, "Retry-After", "1");
        api_add_header(st->res, "Connection", "close"); /* gives the connection back */
        api_set_error(st->res, 503, "ServiceUnavailable",
                      "Too many connections are open; retry shortly.", NULL);
        api_finish(req, st->res);
        return finish(h, c, st, method, url);
    }
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/metrics") == 0) {
        api_response_init(st->res, req);
        own_route(h, url, req, st->res);
        api_finish(req, st->res);
        return finish(h, c, st, method, url);
    }
    if (h->workers && runs_on_worker(h, req->method, url) && !st->too_large) {
        st->h = h;
        st->conn = c;
        MHD_suspend_connection(c);
        if (workers_submit(h->workers, run_deferred, st) != CP_OK) {
            api_response_init(st->res, req);
            api_add_header(st->res, "Retry-After", "1");
            api_set_error(st->res, 503, "ServiceUnavailable",
                          "Too many requests are waiting to be stored; retry shortly.", NULL);
            api_finish(req, st->res);
            st->done = 1;
            MHD_resume_connection(c);
        }
        return MHD_YES;
    }
    api_handle(h->api, req, st->res);
    return finish(h, c, st, method, url);
}

static void request_completed(void *cls, struct MHD_Connection *c, void **req_cls,
                              enum MHD_RequestTerminationCode toe)
{
    struct http_server *h = cls;
    (void)c;
    (void)toe;
    struct request_state *st = *req_cls;
    if (st) {
        if (!st->upgraded)
            atomic_fetch_sub(&h->in_flight, 1);
        else if (h->tls)
            atomic_fetch_sub(&h->tls_channels, 1);
        if (st->res) {
            api_response_free(st->res);
            free(st->res);
        }
        free(st->body);
        free(st);
    }
    *req_cls = NULL;
}

/* Counts MHD's connections, for the --max-connections check in over_api_limit(). */
static void connection_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    struct http_server *h = cls;
    (void)c;
    (void)socket_context;
    atomic_fetch_add(&h->conns, code == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

int http_parse_listen(const char *listen, char *host, size_t hostsz, unsigned *port)
{
    const char *colon;
    const char *h = listen;
    size_t hlen;
    if (*listen == '[') {
        const char *close = strchr(listen, ']');
        if (!close || close[1] != ':')
            return -1;
        h = listen + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(listen, ':');
        if (!colon)
            return -1;
        hlen = (size_t)(colon - listen);
    }
    if (hlen == 0 || hlen >= hostsz)
        return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    char *end = NULL;
    unsigned long p = strtoul(colon + 1, &end, 10);
    if (!colon[1] || *end || p > 65535)
        return -1;
    *port = (unsigned)p;
    return 0;
}

enum cp_err http_bind(const char *listen_addr, struct http_server **out, struct cp_error *e)
{
    char host[64];
    unsigned port;
    if (http_parse_listen(listen_addr, host, sizeof(host), &port) != 0)
        return cp_fail(e, CP_EINVAL, "", "listen", "listen: expected host:port, got '%s'",
                       listen_addr);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sslen;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        sslen = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        sslen = sizeof(*v6);
    } else {
        return cp_fail(e, CP_EINVAL, "", "listen", "listen: '%s' is not an IP address", host);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0) {
        enum cp_err err = cp_fail(e, CP_EIO, "", "listen", "cannot listen on %s: %s", listen_addr,
                                  strerror(errno));
        if (fd >= 0)
            close(fd);
        return err;
    }
    struct http_server *h = calloc(1, sizeof(*h));
    if (!h) {
        close(fd);
        return CP_ENOMEM;
    }
    h->fd = fd;
    h->stop_fd = -1;
    h->port = ntohs(ss.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    *out = h;
    return CP_OK;
}

/* Accepts connections until told to stop; MHD_add_connection() takes each one (and closes it
 * when refused, e.g. at the connection limit). */
static void *acceptor_main(void *arg)
{
    struct http_server *h = arg;
    struct pollfd fds[2] = {{.fd = h->fd, .events = POLLIN}, {.fd = h->stop_fd, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_warn("event=accept_poll_failed");
            break;
        }
        if (fds[1].revents)
            break;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        int fd = accept(h->fd, (struct sockaddr *)&ss, &len);
        if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
            close(fd);
            continue;
        }
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                /* Out of descriptors: back off instead of spinning on the pending connection. */
                struct timespec ts = {0, 50 * 1000000L};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        if (MHD_add_connection(h->daemon, fd, (struct sockaddr *)&ss, len) != MHD_YES)
            log_warnx("event=connection_refused reason=\"connection limit or out of memory\"");
    }
    return NULL;
}

enum cp_err http_serve(struct http_server *h, const struct http_options *opt, struct cp_error *e)
{
    h->api = opt->api;
    h->metrics = opt->metrics;
    h->hub = opt->hub;
    h->max_api = opt->max_connections;
    unsigned limit = opt->max_connections + (opt->hub ? opt->max_agents : 0);
    if (opt->write_workers && workers_start(opt->write_workers, &h->workers) != CP_OK)
        return cp_fail(e, CP_ENOMEM, "", "", "cannot start the write workers");
    /* MHD gets no listening socket: our acceptor thread owns it and hands each connection
     * over with MHD_add_connection(). Stopping to accept is then closing our socket; MHD's own
     * MHD_quiesce_daemon() races its epoll worker threads in 0.9.75 and can abort the process
     * ("Failed to remove listen FD from epoll set"). */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC;
    /* TLS when a certificate is configured: the options ride in an MHD_OPTION_ARRAY, which
     * is empty (just its end marker) for plain HTTP. */
    struct MHD_OptionItem tls[] = {
        {.option = MHD_OPTION_HTTPS_MEM_CERT, .ptr_value = (void *)(uintptr_t)opt->tls_cert_pem},
        {.option = MHD_OPTION_HTTPS_MEM_KEY, .ptr_value = (void *)(uintptr_t)opt->tls_key_pem},
        {.option = MHD_OPTION_END},
    };
    if (opt->tls_cert_pem)
        flags |= MHD_USE_TLS;
    h->tls = opt->tls_cert_pem != NULL;
    /* Agent channels: a 101 hands the socket to the hub (channel_upgraded). */
    if (opt->hub)
        flags |= MHD_ALLOW_UPGRADE;
    /* The socket was bound by http_bind(), so the port (and the public URL built on it) is
     * known before the first request can arrive. MHD closes it when it stops. */
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, handle, h, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)opt->threads,
        MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
        /* Headers and the read buffer of one connection; bodies are copied out as they come. */
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(32 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
        request_completed, h, MHD_OPTION_NOTIFY_CONNECTION, connection_notify, h, MHD_OPTION_ARRAY,
        opt->tls_cert_pem ? tls : tls + 2, MHD_OPTION_END);
    if (!h->daemon) {
        workers_stop(h->workers);
        h->workers = NULL;
        return cp_fail(e, CP_EIO, "", "listen",
                       "cannot start the HTTP server (TLS certificate or key not usable?)");
    }
    if ((h->stop_fd = eventfd(0, EFD_CLOEXEC)) < 0 ||
        pthread_create(&h->acceptor, NULL, acceptor_main, h) != 0)
        return cp_fail(e, CP_ENOMEM, "", "", "cannot start the acceptor thread");
    h->acceptor_running = 1;
    return CP_OK;
}

unsigned http_port(struct http_server *h)
{
    return h->port;
}

void http_stop(struct http_server *h, int grace_ms)
{
    if (!h)
        return;
    if (!h->daemon) {
        if (h->fd >= 0)
            close(h->fd);
        free(h);
        return;
    }
    /* Stop accepting first (new clients are refused by the kernel), then give the requests in
     * flight time to finish. Idle keep-alive connections are not waited for. */
    if (h->acceptor_running) {
        uint64_t one = 1;
        ssize_t w = write(h->stop_fd, &one, sizeof(one));
        (void)w;
        pthread_join(h->acceptor, NULL);
    }
    close(h->fd);
    h->fd = -1;
    for (int waited = 0; waited < grace_ms && atomic_load(&h->in_flight) > 0; waited += 20) {
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    /* Requests still with a worker finish and resume their connections while the daemon runs;
     * after the join nothing resumes anything, so the daemon can stop. */
    workers_stop(h->workers);
    MHD_stop_daemon(h->daemon);
    if (h->stop_fd >= 0)
        close(h->stop_fd);
    free(h);
}
