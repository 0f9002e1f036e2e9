/*
 * The agent channel end to end in one process: netwatchd's HTTP front (http_bind/http_serve)
 * with a hub whose store callbacks are fakes (token "good" is agent "a1"; "tN" is "nN"), driven
 * by raw WebSocket frames written here (for what a well-behaved client never sends: binary,
 * oversized, silence) and by the real agent channel code (agent/channel.c).
 *
 * Owns: the fake hub_ops (counters under a mutex + condition variable), a blocking raw client
 * (handshake, masked frames out, frames in), the agent cases' fixture (struct agent_run: one real
 * agent in this process, made by agent_new, freed by agent_free), and one Check case per
 * behaviour.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/channel.h"
#include "agent/dispatch.h"
#include "agent/state.h"
#include "common/log.h"
#include "core/agents.h"
#include "core/core.h"
#include "server/agent_glue.h"
#include "server/http.h"
#include "server/hub.h"
#include "server/metrics.h"
#include "tests/capture/test_fixture.h"

#define MSG_MAX    (70 * 1024)
#define WAIT_MS    5000
#define MANY       1000
#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="     /* RFC 6455 1.3's example key... */
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" /* ...and its accept value */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* memmem and strcasestr are GNU's; the project builds as POSIX. */
static int has_bytes(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= n; i++) {
        if (memcmp(hay + i, needle, k) == 0)
            return 1;
    }
    return 0;
}

static const char *find_ci(const char *hay, const char *needle)
{
    size_t k = strlen(needle);
    for (; *hay; hay++) {
        if (strncasecmp(hay, needle, k) == 0)
            return hay;
    }
    return NULL;
}

/* ---- fake store callbacks ----------------------------------------------------------------- */

struct fake {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct hub *hub;
    int welcome;            /* answer a hello with a welcome */
    char welcome_text[512]; /* that welcome; "" = the default one (nothing applied, no stop) */
    int opens, closes, messages, hellos;
    int auths;        /* authenticate calls: a token reached the server */
    char events[256]; /* "o" / "c" per on_open / on_close of agent a1, in order */
    char last[MSG_MAX + 1];
    size_t last_len;
    char all[MSG_MAX + 1]; /* every message received, one a line, while there is room */
    size_t all_len;
};

static struct fake fake;

static enum cp_err fake_authenticate(void *ctx, const char *token, char agent_id[40],
                                     struct cp_error *e)
{
    (void)ctx;
    pthread_mutex_lock(&fake.mu);
    fake.auths++;
    pthread_mutex_unlock(&fake.mu);
    if (strcmp(token, "good") == 0) {
        strcpy(agent_id, "a1");
        return CP_OK;
    }
    if (token[0] == 't' && strlen(token) < 10) {
        snprintf(agent_id, 40, "n%s", token + 1);
        return CP_OK;
    }
    return cp_fail(e, CP_EAUTH, "", "", "unknown token");
}

/* Counts an open or close and, for agent a1, appends its letter to f->events. */
static void fake_event(struct fake *f, const char *agent_id, int *count, char letter)
{
    pthread_mutex_lock(&f->mu);
    (*count)++;
    size_t n = strlen(f->events);
    if (strcmp(agent_id, "a1") == 0 && n + 1 < sizeof(f->events))
        f->events[n] = letter;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static void fake_on_open(void *ctx, const char *agent_id)
{
    struct fake *f = ctx;
    fake_event(f, agent_id, &f->opens, 'o');
}

static void fake_on_close(void *ctx, const char *agent_id)
{
    struct fake *f = ctx;
    fake_event(f, agent_id, &f->closes, 'c');
}

static void fake_on_message(void *ctx, const char *agent_id, const char *json, size_t len)
{
    struct fake *f = ctx;
    int hello = len < 2048 && has_bytes(json, len, "\"type\":\"hello\"");
    pthread_mutex_lock(&f->mu);
    f->messages++;
    f->hellos += hello;
    memcpy(f->last, json, len);
    f->last[len] = '\0';
    f->last_len = len;
    if (f->all_len + len + 1 < sizeof(f->all)) {
        memcpy(f->all + f->all_len, json, len);
        f->all_len += len;
        f->all[f->all_len++] = '\n';
        f->all[f->all_len] = '\0';
    }
    int welcome = f->welcome && hello;
    char w[sizeof(f->welcome_text)];
    snprintf(w, sizeof(w), "%s",
             f->welcome_text[0] ? f->welcome_text
                                : "{\"type\":\"welcome\",\"protocol\":1,\"heartbeatSeconds\":15,"
                                  "\"lastAppliedSeq\":0,\"stop\":[]}");
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    if (welcome)
        ck_assert_int_eq(hub_send(f->hub, agent_id, w, strlen(w)), CP_OK);
}

static const struct hub_ops fake_ops = {
    .ctx = &fake,
    .authenticate = fake_authenticate,
    .on_open = fake_on_open,
    .on_message = fake_on_message,
    .on_close = fake_on_close,
};

/* Waits until *counter >= target; returns the value seen. */
static int wait_count(const int *counter, int target, int ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&fake.mu);
    while (*counter < target && pthread_cond_timedwait(&fake.cv, &fake.mu, &until) == 0)
        ;
    int v = *counter;
    pthread_mutex_unlock(&fake.mu);
    return v;
}

/* A copy of one of fake's strings (assertions never run with the lock held: a failing one
 * would leave it locked for the next case under CK_FORK=no). */
static const char *fake_copy(const char *field, char *out, size_t n)
{
    pthread_mutex_lock(&fake.mu);
    size_t len = strnlen(field, n - 1);
    memcpy(out, field, len);
    out[len] = '\0';
    pthread_mutex_unlock(&fake.mu);
    return out;
}

static int count(const int *counter)
{
    pthread_mutex_lock(&fake.mu);
    int v = *counter;
    pthread_mutex_unlock(&fake.mu);
    return v;
}

/* ---- the server under test ---------------------------------------------------------------- */

struct srv {
    struct http_server *http;
    struct hub *hub;
    struct metrics *metrics;
    struct api_ctx api;
    unsigned port;
};

static enum cp_err api_auth_ok(void *ctx, const char *authorization, const char *sub)
{
    (void)ctx;
    (void)authorization;
    (void)sub;
    return CP_OK;
}

/* A fresh self-signed certificate and key (PEM, malloc'd) whose subjectAltName is san
 * ("IP:127.0.0.1,DNS:localhost": what the agent's host name check looks at). */
static void make_cert_for(const char *san, char **cert_pem, char **key_pem)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    ck_assert(key && x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"127.0.0.1", -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
    ck_assert_ptr_nonnull(ext);
    ck_assert_int_eq(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
    ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
    BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
    ck_assert(PEM_write_bio_X509(cb, x) == 1);
    ck_assert(PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) == 1);
    char *p;
    long n = BIO_get_mem_data(cb, &p);
    *cert_pem = strndup(p, (size_t)n);
    n = BIO_get_mem_data(kb, &p);
    *key_pem = strndup(p, (size_t)n);
    BIO_free(cb);
    BIO_free(kb);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void make_cert(char **cert_pem, char **key_pem)
{
    make_cert_for("IP:127.0.0.1,DNS:localhost", cert_pem, key_pem);
}

/* TLS for the next srv_start (NULL: plain HTTP). */
static char *next_cert, *next_key;

static void free_next_cert(void)
{
    free(next_cert);
    free(next_key);
    next_cert = next_key = NULL;
}

/* --max-connections for the next srv_start (0: 4 x MANY). */
static unsigned next_max_connections;

/* Starts a server on port (0: any) with a hub (with_hub) made from ho. */
static void srv_start(struct srv *s, unsigned port, const struct hub_options *ho, int with_hub)
{
    memset(s, 0, sizeof(*s));
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_ptr_nonnull(s->metrics = metrics_new());
    if (with_hub) {
        ck_assert_int_eq(hub_new(ho, &fake_ops, &s->hub), CP_OK);
        ck_assert_int_eq(hub_start(s->hub), CP_OK);
    }
    pthread_mutex_lock(&fake.mu);
    fake.hub = s->hub;
    pthread_mutex_unlock(&fake.mu);
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    enum cp_err err = CP_EIO;
    /* The same port again (a restart) may need a moment while the old socket goes. */
    for (int i = 0; i < 100 && err != CP_OK; i++) {
        err = http_bind(listen, &s->http, &e);
        if (err != CP_OK)
            sleep_ms(50);
    }
    ck_assert_msg(err == CP_OK, "bind: %s", e.message);
    s->port = http_port(s->http);
    s->api = (struct api_ctx){
        .core = NULL, .public_url = "http://127.0.0.1", .auth = api_auth_ok, .auth_ctx = NULL};
    struct http_options o = {
        .threads = 2,
        .max_connections = next_max_connections ? next_max_connections : 4 * MANY,
        .max_agents = ho && ho->max_channels ? ho->max_channels : HUB_MAX_CHANNELS,
        .write_workers = 0,
        .api = &s->api,
        .metrics = s->metrics,
        .hub = s->hub,
        .tls_cert_pem = next_cert,
        .tls_key_pem = next_key};
    ck_assert_int_eq(http_serve(s->http, &o, &e), CP_OK);
}

/* The order netwatchd stops in: hub (channels closed, sockets back to MHD), HTTP, then free. */
static void srv_stop(struct srv *s)
{
    hub_stop(s->hub);
    http_stop(s->http, 2000);
    hub_free(s->hub);
    metrics_free(s->metrics);
    memset(s, 0, sizeof(*s));
}

/* ---- a raw blocking client ---------------------------------------------------------------- */

/* TLS sessions by descriptor (NULL: a plain socket, used as it is). */
#define TLS_FDS 4096
static SSL *tls_of[TLS_FDS];

static SSL *tls_on(int fd)
{
    return fd >= 0 && fd < TLS_FDS ? tls_of[fd] : NULL;
}

static ssize_t io_send(int fd, const void *p, size_t n)
{
    if (tls_on(fd))
        return SSL_write(tls_on(fd), p, (int)n);
    return send(fd, p, n, MSG_NOSIGNAL);
}

static ssize_t io_recv(int fd, void *p, size_t n)
{
    if (tls_on(fd))
        return SSL_read(tls_on(fd), p, (int)n);
    return recv(fd, p, n, 0);
}

static int tcp_connect(unsigned port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct timeval tv = {WAIT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = io_send(fd, c, n);
        ck_assert_int_gt(w, 0);
        c += w;
        n -= (size_t)w;
    }
}

/* Reads a response head into head (and the body, when it is not a 101 and has one, up to
 * headsz). Returns the status. */
static int read_response(int fd, char *head, size_t headsz)
{
    size_t got = 0;
    char *end = NULL;
    while (!end && got + 1 < headsz) {
        ssize_t r = io_recv(fd, head + got, 1); /* byte by byte: frames may follow the head */
        ck_assert_int_gt(r, 0);
        got += (size_t)r;
        head[got] = '\0';
        end = strstr(head, "\r\n\r\n");
    }
    ck_assert_ptr_nonnull(end);
    int status = 0;
    ck_assert_int_eq(sscanf(head, "HTTP/1.1 %d", &status), 1);
    if (status != 101) {
        /* Read the body too (Content-Length), for the error code. */
        const char *cl = find_ci(head, "Content-Length:");
        size_t len = cl ? strtoul(cl + 15, NULL, 10) : 0;
        while (len > 0 && got + 1 < headsz) {
            ssize_t r = io_recv(fd, head + got, len);
            ck_assert_int_gt(r, 0);
            got += (size_t)r;
            len -= (size_t)r;
            head[got] = '\0';
        }
    }
    return status;
}

/* Sends an upgrade request (token NULL: no Authorization; extra: the Sec-WebSocket-Version and
 * -Protocol lines instead of "13" and "netwatch.agent.v1") and reads the response
 * (read_response). Returns the status. */
static int upgrade(int fd, const char *path, const char *token, const char *extra, char *head,
                   size_t headsz)
{
    char req[2048];
    char auth[600] = "";
    if (token)
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n", token);
    snprintf(req, sizeof(req),
             "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: " RFC_KEY "\r\n%s%s\r\n",
             path, auth,
             extra ? extra
                   : "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: netwatch.agent.v1\r\n");
    send_all(fd, req, strlen(req));
    return read_response(fd, head, headsz);
}

/* A plain keep-alive GET on fd; returns the status (head as in read_response). */
static int http_get(int fd, const char *path, char *head, size_t headsz)
{
    char req[512];
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    send_all(fd, req, strlen(req));
    return read_response(fd, head, headsz);
}

/* Upgrades with token and checks the 101. */
static int open_channel(unsigned port, const char *token)
{
    int fd = tcp_connect(port);
    char head[4096];
    ck_assert_int_eq(upgrade(fd, "/agent/v1/channel", token, NULL, head, sizeof(head)), 101);
    return fd;
}

/* One client frame: FIN, opcode, masked payload. */
static void send_frame(int fd, int opcode, const void *payload, size_t len)
{
    unsigned char *f = malloc(len + 14);
    ck_assert_ptr_nonnull(f);
    size_t n = 0;
    f[n++] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        f[n++] = (unsigned char)(0x80 | len);
    } else if (len < 65536) {
        f[n++] = 0x80 | 126;
        f[n++] = (unsigned char)(len >> 8);
        f[n++] = (unsigned char)len;
    } else {
        f[n++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            f[n++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy(f + n, mask, 4);
    n += 4;
    const unsigned char *p = payload;
    for (size_t i = 0; i < len; i++)
        f[n + i] = p[i] ^ mask[i % 4];
    send_all(fd, f, n + len);
    free(f);
}

static int recv_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t r = io_recv(fd, c, n);
        if (r <= 0)
            return -1;
        c += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads one server frame (unmasked). Returns the opcode, -1 on EOF/timeout. */
static int read_frame(int fd, char *buf, size_t bufsz, size_t *len)
{
    unsigned char h[2];
    if (recv_all(fd, h, 2) != 0)
        return -1;
    ck_assert_int_eq(h[1] & 0x80, 0); /* a server never masks */
    uint64_t n = h[1] & 0x7f;
    if (n == 126) {
        unsigned char x[2];
        if (recv_all(fd, x, 2) != 0)
            return -1;
        n = ((uint64_t)x[0] << 8) | x[1];
    } else if (n == 127) {
        unsigned char x[8];
        if (recv_all(fd, x, 8) != 0)
            return -1;
        n = 0;
        for (int i = 0; i < 8; i++)
            n = (n << 8) | x[i];
    }
    ck_assert_uint_le(n, bufsz);
    if (recv_all(fd, buf, (size_t)n) != 0)
        return -1;
    *len = (size_t)n;
    return h[0] & 0x0f;
}

/* Reads frames until a close; returns its code (-1: EOF or timeout before one). */
static int read_close(int fd)
{
    static char buf[MSG_MAX];
    size_t len;
    for (;;) {
        int op = read_frame(fd, buf, sizeof(buf), &len);
        if (op < 0)
            return -1;
        if (op == 0x8)
            return len >= 2 ? ((unsigned char)buf[0] << 8) | (unsigned char)buf[1] : 0;
    }
}

/* Reads frames until a text one, skipping pings; returns its length, -1 on EOF/timeout. */
static long read_text(int fd, char *buf, size_t bufsz)
{
    size_t len;
    for (;;) {
        int op = read_frame(fd, buf, bufsz - 1, &len);
        if (op < 0 || op == 0x8)
            return -1;
        if (op == 0x1) {
            buf[len] = '\0';
            return (long)len;
        }
    }
}

static void reset_fake(void)
{
    pthread_mutex_lock(&fake.mu);
    fake.opens = fake.closes = fake.messages = fake.hellos = fake.auths = 0;
    fake.welcome = 0;
    fake.welcome_text[0] = '\0';
    memset(fake.events, 0, sizeof(fake.events));
    fake.last_len = 0;
    fake.all_len = 0;
    fake.all[0] = '\0';
    pthread_mutex_unlock(&fake.mu);
}

static void setup(void)
{
    log_level = LOG_LEVEL_WARN;
    signal(SIGPIPE, SIG_IGN);
    next_max_connections = 0;
    reset_fake();
}

/* ---- cases -------------------------------------------------------------------------------- */

START_TEST(upgrade_ok_and_messages)
{
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    int fd = tcp_connect(s.port);
    char head[4096];
    ck_assert_int_eq(upgrade(fd, "/agent/v1/channel", "good", NULL, head, sizeof(head)), 101);
    ck_assert_ptr_nonnull(strstr(head, "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"));
    ck_assert_ptr_nonnull(find_ci(head, "Upgrade: websocket\r\n"));
    ck_assert_ptr_nonnull(strstr(head, "Sec-WebSocket-Protocol: netwatch.agent.v1\r\n"));
    ck_assert_int_eq(wait_count(&fake.opens, 1, WAIT_MS), 1);

    static const char hello[] = "{\"type\":\"hello\",\"protocols\":[1]}";
    char copy[256];
    send_frame(fd, 0x1, hello, sizeof(hello) - 1);
    ck_assert_int_eq(wait_count(&fake.messages, 1, WAIT_MS), 1);
    ck_assert_str_eq(fake_copy(fake.last, copy, sizeof(copy)), hello);

    static const char cmd[] = "{\"type\":\"start\",\"commandId\":\"c1\"}";
    ck_assert_int_eq(hub_send(s.hub, "a1", cmd, sizeof(cmd) - 1), CP_OK);
    ck_assert_int_eq(hub_send(s.hub, "nobody", cmd, sizeof(cmd) - 1), CP_ENOAGENT);
    char buf[1024];
    ck_assert_int_eq(read_text(fd, buf, sizeof(buf)), (long)(sizeof(cmd) - 1));
    ck_assert_str_eq(buf, cmd);

    struct hub_stats st;
    hub_stats(s.hub, &st);
    ck_assert_uint_eq(st.channels, 1);
    ck_assert_uint_eq(st.messages_in, 1);
    ck_assert_uint_eq(st.messages_out, 1);

    /* A clean close from the client: the hub answers 1000 and reports the channel closed. */
    unsigned char bye[2] = {0x03, 0xe8};
    send_frame(fd, 0x8, bye, 2);
    ck_assert_int_eq(read_close(fd), 1000);
    ck_assert_int_eq(wait_count(&fake.closes, 1, WAIT_MS), 1);
    close(fd);
    srv_stop(&s);
}
END_TEST

/* A hello sent in the same packet as the upgrade request reaches on_message (MHD's extra_in). */
START_TEST(hello_with_the_request)
{
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    int fd = tcp_connect(s.port);
    static const char hello[] = "{\"type\":\"hello\"}";
    char copy[256];
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "GET /agent/v1/channel HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: " RFC_KEY "\r\nAuthorization: Bearer good\r\n\r\n");
    /* The frame by hand: FIN|text, masked, 16 bytes, zero mask. */
    unsigned char frame[2 + 4 + sizeof(hello)] = {0x81,
                                                  (unsigned char)(0x80 | (sizeof(hello) - 1))};
    memcpy(frame + 6, hello, sizeof(hello) - 1);
    memcpy(req + n, frame, 6 + sizeof(hello) - 1);
    send_all(fd, req, (size_t)n + 6 + sizeof(hello) - 1);
    ck_assert_int_eq(wait_count(&fake.messages, 1, WAIT_MS), 1);
    ck_assert_str_eq(fake_copy(fake.last, copy, sizeof(copy)), hello);
    close(fd);
    ck_assert_int_eq(wait_count(&fake.closes, 1, WAIT_MS), 1);
    srv_stop(&s);
}
END_TEST

START_TEST(refusals)
{
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    char head[8192];
    struct {
        const char *path, *token, *extra;
        int status;
        const char *needle;
    } cases[] = {
        {"/agent/v1/channel", "bad", NULL, 401, "AuthenticationFailed"},
        {"/agent/v1/channel", NULL, NULL, 401, "WWW-Authenticate: Bearer"},
        {"/agent/v1/channelx", "good", NULL, 404, "NotFound"},
        {"/agent/v1/channel", "good", "Sec-WebSocket-Version: 8\r\n", 426,
         "Sec-WebSocket-Version: 13"},
        {"/agent/v1/channel", "good", "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: x\r\n",
         400, "InvalidRequestFormat"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int fd = tcp_connect(s.port);
        int st = upgrade(fd, cases[i].path, cases[i].token, cases[i].extra, head, sizeof(head));
        ck_assert_msg(st == cases[i].status, "case %zu: status %d", i, st);
        ck_assert_msg(strstr(head, cases[i].needle), "case %zu: no '%s' in %s", i, cases[i].needle,
                      head);
        close(fd);
    }
    /* No key at all: malformed. */
    int fd = tcp_connect(s.port);
    static const char nokey[] =
        "GET /agent/v1/channel HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Authorization: Bearer good\r\n\r\n";
    send_all(fd, nokey, sizeof(nokey) - 1);
    ssize_t r = recv(fd, head, sizeof(head) - 1, 0);
    ck_assert_int_gt(r, 12);
    ck_assert_int_eq(strncmp(head, "HTTP/1.1 400", 12), 0);
    close(fd);
    ck_assert_int_eq(count(&fake.opens), 0);
    srv_stop(&s);

    /* No hub configured: the path does not exist. */
    srv_start(&s, 0, NULL, 0);
    fd = tcp_connect(s.port);
    ck_assert_int_eq(upgrade(fd, "/agent/v1/channel", "good", NULL, head, sizeof(head)), 404);
    close(fd);
    srv_stop(&s);
}
END_TEST

START_TEST(oversized_message_closes_1009)
{
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    int fd = open_channel(s.port, "good");
    char *big = malloc(HUB_MAX_MESSAGE + 1);
    memset(big, 'x', HUB_MAX_MESSAGE + 1);
    /* Exactly the limit passes... */
    send_frame(fd, 0x1, big, HUB_MAX_MESSAGE);
    ck_assert_int_eq(wait_count(&fake.messages, 1, WAIT_MS), 1);
    /* ...one byte more closes. */
    send_frame(fd, 0x1, big, HUB_MAX_MESSAGE + 1);
    free(big);
    ck_assert_int_eq(read_close(fd), 1009);
    ck_assert_int_eq(wait_count(&fake.closes, 1, WAIT_MS), 1);
    ck_assert_int_eq(count(&fake.messages), 1);
    close(fd);
    srv_stop(&s);
}
END_TEST

START_TEST(binary_frame_closes_1003)
{
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    int fd = open_channel(s.port, "good");
    static const char bin[] = {0x01, 0x02, 0x03};
    send_frame(fd, 0x2, bin, sizeof(bin));
    ck_assert_int_eq(read_close(fd), 1003);
    ck_assert_int_eq(wait_count(&fake.closes, 1, WAIT_MS), 1);
    ck_assert_int_eq(count(&fake.messages), 0);
    close(fd);
    srv_stop(&s);
}
END_TEST

START_TEST(heartbeat_timeout)
{
    struct srv s;
    struct hub_options ho = {.heartbeat_ms = 100}; /* timeout 300 ms */
    srv_start(&s, 0, &ho, 1);
    int fd = open_channel(s.port, "good");
    /* Pings come every heartbeat... */
    char buf[256];
    size_t len;
    ck_assert_int_eq(read_frame(fd, buf, sizeof(buf), &len), 0x9);
    /* ...and a client that never answers (no pong, nothing) is closed and reported. */
    ck_assert_int_eq(wait_count(&fake.closes, 1, 3000), 1);
    int code = read_close(fd);
    ck_assert(code == 1001 || code == -1);
    close(fd);
    srv_stop(&s);
}
END_TEST

START_TEST(second_channel_replaces_first)
{
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    int first = open_channel(s.port, "good");
    ck_assert_int_eq(wait_count(&fake.opens, 1, WAIT_MS), 1);
    int second = open_channel(s.port, "good");
    ck_assert_int_eq(read_close(first), 1008);
    ck_assert_int_eq(wait_count(&fake.opens, 2, WAIT_MS), 2);
    char copy[16];
    /* the old one's close before the new one's open */
    ck_assert_str_eq(fake_copy(fake.events, copy, sizeof(copy)), "oco");
    /* Messages now go to the second. */
    static const char m[] = "{\"type\":\"stop\"}";
    ck_assert_int_eq(hub_send(s.hub, "a1", m, sizeof(m) - 1), CP_OK);
    char buf[256];
    ck_assert_int_eq(read_text(second, buf, sizeof(buf)), (long)(sizeof(m) - 1));
    close(first);
    close(second);
    ck_assert_int_eq(wait_count(&fake.closes, 2, WAIT_MS), 2);
    srv_stop(&s);
}
END_TEST

START_TEST(queue_overflow_closes_1008)
{
    struct srv s;
    struct hub_options ho = {.max_queue = 4};
    srv_start(&s, 0, &ho, 1);
    int fd = open_channel(s.port, "good");
    ck_assert_int_eq(wait_count(&fake.opens, 1, WAIT_MS), 1);
    /* The client reads nothing: socket buffers fill, then the hub's queue, then it closes. */
    char *big = malloc(60000);
    memset(big, 'y', 60000);
    enum cp_err err = CP_OK;
    for (int i = 0; i < 2000 && err == CP_OK; i++) {
        err = hub_send(s.hub, "a1", big, 60000);
        if (err == CP_OK && i % 8 == 0)
            sleep_ms(1);
    }
    free(big);
    ck_assert(err == CP_EBUSY || err == CP_ENOAGENT);
    ck_assert_int_eq(wait_count(&fake.closes, 1, WAIT_MS), 1);
    ck_assert_int_eq(read_close(fd), 1008);
    close(fd);
    srv_stop(&s);
}
END_TEST

START_TEST(hub_close_and_stop)
{
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    int fd = open_channel(s.port, "good");
    ck_assert_int_eq(wait_count(&fake.opens, 1, WAIT_MS), 1);
    ck_assert_int_eq(hub_close(s.hub, "a1", 4001, "revoked"), CP_OK);
    ck_assert_int_eq(read_close(fd), 4001);
    ck_assert_int_eq(wait_count(&fake.closes, 1, WAIT_MS), 1);
    ck_assert_int_eq(hub_close(s.hub, "a1", 4001, "revoked"), CP_ENOAGENT);
    ck_assert_int_eq(hub_close(s.hub, "a1", 1005, ""), CP_EINVAL);
    close(fd);
    /* hub_stop closes what is open with 1001. */
    fd = open_channel(s.port, "good");
    ck_assert_int_eq(wait_count(&fake.opens, 2, WAIT_MS), 2);
    hub_stop(s.hub);
    ck_assert_int_eq(read_close(fd), 1001);
    ck_assert_int_eq(count(&fake.closes), 2);
    close(fd);
    /* Stopped: an upgrade still answers 101 but the socket is closed at once. */
    fd = open_channel(s.port, "good");
    char buf[16];
    ck_assert_int_le(recv(fd, buf, sizeof(buf), 0), 0);
    close(fd);
    srv_stop(&s);
}
END_TEST

START_TEST(many_channels)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < 3 * MANY + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    int n = MANY;
    if (rl.rlim_cur < 2 * (rlim_t)n + 64)
        n = (int)(rl.rlim_cur - 64) / 2;
    ck_assert_int_ge(n, 100);
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    int *fds = calloc((size_t)n, sizeof(int));
    char token[16];
    for (int i = 0; i < n; i++) {
        snprintf(token, sizeof(token), "t%d", i);
        fds[i] = open_channel(s.port, token);
    }
    ck_assert_int_eq(wait_count(&fake.opens, n, 20000), n);
    static const char hello[] = "{\"type\":\"hello\"}";
    for (int i = 0; i < n; i++)
        send_frame(fds[i], 0x1, hello, sizeof(hello) - 1);
    ck_assert_int_eq(wait_count(&fake.messages, n, 20000), n);
    struct hub_stats st;
    hub_stats(s.hub, &st);
    ck_assert_uint_eq(st.channels, (unsigned)n);
    char id[16], msg[64], buf[128];
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "n%d", i);
        int len = snprintf(msg, sizeof(msg), "{\"type\":\"stop\",\"to\":\"%s\"}", id);
        ck_assert_int_eq(hub_send(s.hub, id, msg, (size_t)len), CP_OK);
    }
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof(id), "n%d", i);
        int len = snprintf(msg, sizeof(msg), "{\"type\":\"stop\",\"to\":\"%s\"}", id);
        ck_assert_int_eq(read_text(fds[i], buf, sizeof(buf)), len);
        ck_assert_str_eq(buf, msg);
    }
    for (int i = 0; i < n; i++)
        close(fds[i]);
    ck_assert_int_eq(wait_count(&fake.closes, n, 20000), n);
    free(fds);
    srv_stop(&s);
}
END_TEST

/* Descriptors this process has open. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* not d's own */
}

/* GETs path on a new connection every 50 ms until it answers want (or WAIT_MS passes). */
static int get_until(unsigned port, const char *path, int want)
{
    char head[4096];
    int st = 0;
    for (int waited = 0; waited <= WAIT_MS; waited += 50) {
        int fd = tcp_connect(port);
        st = http_get(fd, path, head, sizeof(head));
        close(fd);
        if (st == want)
            break;
        sleep_ms(50);
    }
    return st;
}

/* Without TLS an upgraded channel leaves MHD: the hub holds the only descriptor of its socket,
 * MHD's connection (and its 32 KiB memory pool) is gone, and the channel does not count against
 * --max-connections. */
START_TEST(channels_leave_mhd)
{
    enum { N = 40 };
    next_max_connections = 16;
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    int before = open_fds();
    int fds[N];
    char token[16];
    for (int i = 0; i < N; i++) {
        snprintf(token, sizeof(token), "t%d", i);
        fds[i] = open_channel(s.port, token);
    }
    ck_assert_int_eq(wait_count(&fake.opens, N, WAIT_MS), N);
    /* One descriptor per channel on each side once MHD has let go of its own. */
    int delta = 0;
    for (int waited = 0; waited <= WAIT_MS && (delta = open_fds() - before) != 2 * N; waited += 50)
        sleep_ms(50);
    ck_assert_int_eq(delta, 2 * N);
    /* 40 channels and --max-connections 16: the API still answers. */
    ck_assert_int_eq(get_until(s.port, "/healthz", 200), 200);
    /* Every channel still works both ways on the hub's descriptor. */
    static const char hello[] = "{\"type\":\"hello\"}";
    for (int i = 0; i < N; i++)
        send_frame(fds[i], 0x1, hello, sizeof(hello) - 1);
    ck_assert_int_eq(wait_count(&fake.messages, N, WAIT_MS), N);
    char id[16], msg[64], buf[128];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof(id), "n%d", i);
        int len = snprintf(msg, sizeof(msg), "{\"to\":\"%s\"}", id);
        ck_assert_int_eq(hub_send(s.hub, id, msg, (size_t)len), CP_OK);
        ck_assert_int_eq(read_text(fds[i], buf, sizeof(buf)), len);
        ck_assert_str_eq(buf, msg);
    }
    /* A clean close still goes both ways. */
    unsigned char bye[2] = {0x03, 0xe8};
    send_frame(fds[0], 0x8, bye, 2);
    ck_assert_int_eq(read_close(fds[0]), 1000);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    ck_assert_int_eq(wait_count(&fake.closes, N, WAIT_MS), N);
    srv_stop(&s);
}
END_TEST

/* --max-connections bounds API clients, not agents: past it a request is answered 503 and its
 * connection closed, while agents still connect; a freed slot is usable again. */
START_TEST(api_connection_limit)
{
    enum { MAXC = 16 };
    next_max_connections = MAXC;
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    char head[4096];
    int fds[MAXC];
    for (int i = 0; i < MAXC; i++) {
        fds[i] = tcp_connect(s.port);
        ck_assert_int_eq(http_get(fds[i], "/healthz", head, sizeof(head)), 200);
    }
    int fd = tcp_connect(s.port);
    ck_assert_int_eq(http_get(fd, "/healthz", head, sizeof(head)), 503);
    ck_assert_ptr_nonnull(find_ci(head, "Retry-After: 1\r\n"));
    ck_assert_ptr_nonnull(find_ci(head, "Connection: close\r\n"));
    ck_assert_int_eq(recv(fd, head, sizeof(head), 0), 0); /* closed */
    close(fd);
    /* An agent still gets in. */
    int ch = open_channel(s.port, "good");
    ck_assert_int_eq(wait_count(&fake.opens, 1, WAIT_MS), 1);
    /* One API connection closes: a new one is served. */
    close(fds[1]);
    ck_assert_int_eq(get_until(s.port, "/healthz", 200), 200);
    for (int i = 0; i < MAXC; i++) {
        if (i != 1)
            close(fds[i]);
    }
    close(ch);
    ck_assert_int_eq(wait_count(&fake.closes, 1, WAIT_MS), 1);
    srv_stop(&s);
}
END_TEST

/* --max-agents (the hub's max_channels): past it an agent is answered 503 before any upgrade,
 * except one replacing its own channel; a channel that closes makes room. */
START_TEST(agent_limit)
{
    struct hub_options ho = {.max_channels = 3};
    struct srv s;
    srv_start(&s, 0, &ho, 1);
    int fds[3];
    char token[16], head[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(token, sizeof(token), "t%d", i);
        fds[i] = open_channel(s.port, token);
    }
    ck_assert_int_eq(wait_count(&fake.opens, 3, WAIT_MS), 3);
    int fd = tcp_connect(s.port);
    ck_assert_int_eq(upgrade(fd, "/agent/v1/channel", "t3", NULL, head, sizeof(head)), 503);
    ck_assert_ptr_nonnull(find_ci(head, "Retry-After: 1\r\n"));
    close(fd);
    /* t0 again: replaces its own channel (the old one is closed with 1008). */
    int again = open_channel(s.port, "t0");
    ck_assert_int_eq(read_close(fds[0]), 1008);
    ck_assert_int_eq(wait_count(&fake.opens, 4, WAIT_MS), 4);
    close(fds[0]);
    fds[0] = again;
    /* t1 leaves: t3 gets in. */
    close(fds[1]);
    ck_assert_int_eq(wait_count(&fake.closes, 2, WAIT_MS), 2);
    fds[1] = open_channel(s.port, "t3");
    ck_assert_int_eq(wait_count(&fake.opens, 5, WAIT_MS), 5);
    struct hub_stats st;
    hub_stats(s.hub, &st);
    ck_assert_uint_eq(st.channels, 3);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    ck_assert_int_eq(wait_count(&fake.closes, 5, WAIT_MS), 5);
    srv_stop(&s);
}
END_TEST

/* A TLS client context that takes the throwaway self-signed certificate. */
static SSL_CTX *tls_client_ctx(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(ctx);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    return ctx;
}

/* A TLS connection to port; io_send/io_recv then go through it. */
static int tls_connect(SSL_CTX *ctx, unsigned port)
{
    int fd = tcp_connect(port);
    ck_assert_int_lt(fd, TLS_FDS);
    SSL *ssl = SSL_new(ctx);
    ck_assert_ptr_nonnull(ssl);
    SSL_set_fd(ssl, fd);
    ck_assert_int_eq(SSL_connect(ssl), 1);
    tls_of[fd] = ssl;
    return fd;
}

static void tls_close(int fd)
{
    SSL_free(tls_of[fd]);
    tls_of[fd] = NULL;
    close(fd);
}

/* With --tls-cert, MHD hands the hub one end of a socketpair and forwards it through TLS
 * itself: the hub works unchanged. */
START_TEST(tls_channel)
{
    make_cert(&next_cert, &next_key);
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    SSL_CTX *ctx = tls_client_ctx();
    int fd = tls_connect(ctx, s.port);
    char head[4096];
    ck_assert_int_eq(upgrade(fd, "/agent/v1/channel", "good", NULL, head, sizeof(head)), 101);
    ck_assert_ptr_nonnull(strstr(head, "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"));
    static const char hello[] = "{\"type\":\"hello\"}";
    send_frame(fd, 0x1, hello, sizeof(hello) - 1);
    ck_assert_int_eq(wait_count(&fake.messages, 1, WAIT_MS), 1);
    /* A message larger than MHD's forwarding buffers crosses in pieces. */
    char *big = malloc(60000);
    memset(big, 'z', 60000);
    big[0] = '"';
    big[59999] = '"';
    ck_assert_int_eq(hub_send(s.hub, "a1", big, 60000), CP_OK);
    char *buf = malloc(MSG_MAX);
    ck_assert_int_eq(read_text(fd, buf, MSG_MAX), 60000);
    ck_assert_int_eq(memcmp(buf, big, 60000), 0);
    free(buf);
    free(big);
    hub_stop(s.hub);
    ck_assert_int_eq(read_close(fd), 1001);
    ck_assert_int_eq(wait_count(&fake.closes, 1, WAIT_MS), 1);
    tls_close(fd);
    SSL_CTX_free(ctx);
    srv_stop(&s);
    free_next_cert();
}
END_TEST

/* Under TLS a channel stays one of MHD's connections (MHD runs the session), yet it counts as an
 * agent, not against --max-connections: 20 TLS channels with --max-connections 16 and the API
 * still answers. */
START_TEST(tls_channels_are_not_api_connections)
{
    enum { N = 20 };
    make_cert(&next_cert, &next_key);
    next_max_connections = 16;
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    SSL_CTX *ctx = tls_client_ctx();
    int fds[N];
    char token[16], head[4096];
    for (int i = 0; i < N; i++) {
        snprintf(token, sizeof(token), "t%d", i);
        fds[i] = tls_connect(ctx, s.port);
        ck_assert_int_eq(upgrade(fds[i], "/agent/v1/channel", token, NULL, head, sizeof(head)),
                         101);
    }
    ck_assert_int_eq(wait_count(&fake.opens, N, WAIT_MS), N);
    int fd = tls_connect(ctx, s.port);
    ck_assert_int_eq(http_get(fd, "/healthz", head, sizeof(head)), 200);
    tls_close(fd);
    static const char hello[] = "{\"type\":\"hello\"}";
    for (int i = 0; i < N; i++)
        send_frame(fds[i], 0x1, hello, sizeof(hello) - 1);
    ck_assert_int_eq(wait_count(&fake.messages, N, WAIT_MS), N);
    /* Closed by the hub (MHD 0.9.75 passes a TLS peer's disconnect on to the hub only once
     * forwarding failed both ways, i.e. after the next pings: the heartbeat's business). */
    hub_stop(s.hub);
    ck_assert_int_eq(count(&fake.closes), N);
    for (int i = 0; i < N; i++)
        tls_close(fds[i]);
    SSL_CTX_free(ctx);
    srv_stop(&s);
    free_next_cert();
}
END_TEST

/* ---- the real agent channel --------------------------------------------------------------- */

#define CMD_START   "11111111-1111-4111-8111-111111111111"
#define CAP_1       "22222222-2222-4222-8222-222222222222"
#define CMD_STOP    "33333333-3333-4333-8333-333333333333"
#define CMD_WINDOWS "44444444-4444-4444-8444-444444444444"
#define CAP_2       "55555555-5555-4555-8555-555555555555"
#define VM_TARGET                                                                                  \
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"             \
    "Microsoft.Compute/virtualMachines/vm1"
/* A start's spec members for "no limit" (start_t1's limits). */
#define NO_LIMITS                                                                                  \
    "\"bytesToCapturePerPacket\":0,\"totalBytesPerSession\":0,\"timeLimitInSeconds\":0,"

/* The agent cases' fixture: one real agent in this process. Its state directory (and capture
 * root, with a dispatcher), the handler its channel calls (the real dispatcher's or the
 * recording one below), the channel_run thread and the eventfd that stops it, and a UDP socket
 * pair for traffic a capture filter names. agent_new makes one; agent_free undoes it all. */
struct agent_run {
    char dir[32];  /* the state directory */
    char root[32]; /* the capture root; "" when the case has no dispatcher */
    struct agent_state state;
    struct dispatch *d; /* NULL: none */
    struct dispatch_options dopt;
    struct channel_handler handler; /* what the channel calls; unset (NULL handler) when none */
    struct channel_options opt;
    pthread_t thread;
    int stop_fd; /* -1 until agent_connect */
    enum cp_err result;
    int rx, tx;             /* the UDP pair (-1: none) */
    struct sockaddr_in udp; /* rx's address on loopback, where tx sends */
    pthread_mutex_t mu;     /* guards the recording handler's two fields */
    int welcomes;
    char last_type[32];
};

/* A new agent whose state directory is made and opened; with_root: a capture root too. */
static struct agent_run *agent_new(int with_root)
{
    struct agent_run *a = calloc(1, sizeof(*a));
    ck_assert_ptr_nonnull(a);
    pthread_mutex_init(&a->mu, NULL);
    a->stop_fd = a->rx = a->tx = -1;
    tfx_mkdtemp(a->dir, sizeof(a->dir), "/tmp/nw-channel");
    if (with_root)
        tfx_mkdtemp(a->root, sizeof(a->root), "/tmp/nw-captures");
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(agent_state_open(a->dir, &a->state, &e), CP_OK);
    return a;
}

/* Starts the real dispatcher on lo under root (progress reports every progress_s seconds, 0:
 * none) as a starting agent does: state opened again first when reopen (after dispatch_free,
 * the agent's next life). Its handler becomes the one the channel calls. */
static void agent_dispatch(struct agent_run *a, unsigned progress_s, int reopen)
{
    struct cp_error e = {{0}, {0}, {0}};
    if (reopen)
        ck_assert_int_eq(agent_state_open(a->dir, &a->state, &e), CP_OK);
    a->dopt = (struct dispatch_options){.capture_root = a->root,
                                        .interfaces = "lo",
                                        .state = &a->state,
                                        .progress_interval_s = progress_s};
    ck_assert_int_eq(dispatch_new(&a->dopt, &a->d, &e), CP_OK);
    dispatch_handler(a->d, &a->handler);
}

/* A clean stop of the dispatcher alone (its sessions paused, their files complete), as when
 * the agent stops; agent_dispatch(a, .., 1) is its next start. */
static void agent_pause(struct agent_run *a)
{
    dispatch_free(a->d);
    a->d = NULL;
}

/* One message from the server handled with no channel (as between connections). */
static void agent_deliver(struct agent_run *a, const char *json)
{
    struct cp_error e = {{0}, {0}, {0}};
    struct proto_msg m = {.type = PROTO_NONE};
    ck_assert_int_eq(proto_decode(json, strlen(json), &m, &e), CP_OK);
    a->handler.on_message(a->handler.ctx, NULL, &m);
    proto_msg_clear(&m);
}

/* A bound UDP socket (rx) on loopback and one to send from (tx): the packets are plain
 * delivered UDP. Returns rx's port. */
static unsigned agent_udp(struct agent_run *a)
{
    ck_assert_int_ge(a->rx = socket(AF_INET, SOCK_DGRAM, 0), 0);
    ck_assert_int_ge(a->tx = socket(AF_INET, SOCK_DGRAM, 0), 0);
    a->udp = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(a->udp);
    ck_assert_int_eq(bind(a->rx, (struct sockaddr *)&a->udp, sizeof(a->udp)), 0);
    ck_assert_int_eq(getsockname(a->rx, (struct sockaddr *)&a->udp, &slen), 0);
    return ntohs(a->udp.sin_port);
}

/* Sends n datagrams of len bytes from tx to rx. */
static void agent_send_udp(struct agent_run *a, const void *payload, size_t len, int n)
{
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(sendto(a->tx, payload, len, 0, (struct sockaddr *)&a->udp, sizeof(a->udp)),
                         (ssize_t)len);
}

static void *agent_main(void *arg)
{
    struct agent_run *a = arg;
    a->result = channel_run(&a->opt);
    return NULL;
}

/* Runs channel_run in a thread towards port. What the case set in a->opt beforehand stays
 * (tls, ca_file, host, token, backoff_min_ms); else 127.0.0.1, token "good", a backoff from
 * 20 ms to backoff_max_ms. */
static void agent_connect(struct agent_run *a, unsigned port, unsigned backoff_max_ms)
{
    ck_assert_int_ge(a->stop_fd = eventfd(0, EFD_CLOEXEC), 0);
    a->opt.host = a->opt.host ? a->opt.host : "127.0.0.1";
    a->opt.token = a->opt.token ? a->opt.token : "good";
    a->opt.backoff_min_ms = a->opt.backoff_min_ms ? a->opt.backoff_min_ms : 20;
    a->opt.backoff_max_ms = backoff_max_ms;
    a->opt.port = port;
    a->opt.state = &a->state;
    a->opt.handler = a->handler.on_message ? &a->handler : NULL;
    a->opt.stop_fd = a->stop_fd;
    ck_assert_int_eq(pthread_create(&a->thread, NULL, agent_main, a), 0);
}

/* SIGTERM's stand-in: the agent closes with 1000 and channel_run returns CP_OK. */
static void agent_stop(struct agent_run *a)
{
    uint64_t one = 1;
    ck_assert_int_eq(write(a->stop_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
    pthread_join(a->thread, NULL);
    ck_assert_int_eq(a->result, CP_OK);
}

/* After agent_stop (or with no thread): the dispatcher, sockets and directories go. */
static void agent_free(struct agent_run *a)
{
    dispatch_free(a->d);
    int fds[] = {a->stop_fd, a->rx, a->tx};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
    pthread_mutex_destroy(&a->mu);
    if (a->root[0])
        tfx_rm_rf(a->root);
    tfx_rm_rf(a->dir);
    free(a);
}

/* The recording handler: counts welcomes, keeps the last message's type, and answers each
 * message with an ack as a dispatcher would. */
static void agent_on_welcome(void *ctx, struct channel *ch, const struct proto_welcome *w)
{
    struct agent_run *a = ctx;
    (void)ch;
    (void)w;
    pthread_mutex_lock(&a->mu);
    a->welcomes++;
    pthread_mutex_unlock(&a->mu);
}

static void agent_on_message(void *ctx, struct channel *ch, const struct proto_msg *msg)
{
    struct agent_run *a = ctx;
    pthread_mutex_lock(&a->mu);
    snprintf(a->last_type, sizeof(a->last_type), "%s", proto_type_name(msg->type));
    pthread_mutex_unlock(&a->mu);
    /* A dispatcher answers on the same channel (the next step's acks). */
    static const char ack[] = "{\"type\":\"ack\",\"seq\":1,\"commandId\":\"c1\",\"ok\":true}";
    ck_assert_int_eq(channel_send(ch, ack, sizeof(ack) - 1), CP_OK);
}

static void agent_record(struct agent_run *a)
{
    a->handler = (struct channel_handler){
        .ctx = a, .on_welcome = agent_on_welcome, .on_message = agent_on_message};
}

static int agent_welcomes(struct agent_run *a)
{
    pthread_mutex_lock(&a->mu);
    int n = a->welcomes;
    pthread_mutex_unlock(&a->mu);
    return n;
}

static void wait_welcomes(struct agent_run *a, int n)
{
    for (int i = 0; i < WAIT_MS / 10 && agent_welcomes(a) < n; i++)
        sleep_ms(10);
    ck_assert_int_ge(agent_welcomes(a), n);
}

/* The type of the last message the recording handler got. */
static void agent_last_type(struct agent_run *a, char *out, size_t outsz)
{
    pthread_mutex_lock(&a->mu);
    snprintf(out, outsz, "%s", a->last_type);
    pthread_mutex_unlock(&a->mu);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* The fake server answers a hello with text ("": the default welcome). */
static void set_welcome(const char *text)
{
    pthread_mutex_lock(&fake.mu);
    fake.welcome = 1;
    snprintf(fake.welcome_text, sizeof(fake.welcome_text), "%s", text);
    pthread_mutex_unlock(&fake.mu);
}

/* Starts the fake server (answering hellos with the default welcome) and connects agent a to it
 * (backoff up to backoff_max_ms); returns once its first hello is in. */
static void agent_serve(struct agent_run *a, struct srv *s, unsigned backoff_max_ms)
{
    srv_start(s, 0, NULL, 1);
    set_welcome("");
    agent_connect(a, s->port, backoff_max_ms);
    ck_assert_int_eq(wait_count(&fake.hellos, 1, WAIT_MS), 1);
}

/* A new agent with its dispatcher (progress_s as in agent_dispatch), served by s (agent_serve). */
static struct agent_run *agent_up(struct srv *s, unsigned progress_s, unsigned backoff_max_ms)
{
    struct agent_run *a = agent_new(1);
    agent_dispatch(a, progress_s, 0);
    agent_serve(a, s, backoff_max_ms);
    return a;
}

/* Stops agent a, then its server, and frees the agent. */
static void agent_down(struct agent_run *a, struct srv *s)
{
    agent_stop(a);
    srv_stop(s);
    agent_free(a);
}

/* The start of capture CAP_1 ("t1", to /var/captures/t1.cap) by CMD_START, into out. limits:
 * spec members put before storageLocation, each with its comma ("" for none); udp_port > 0:
 * one filter, UDP to that local port, with filter_extra's members (each with its comma) before
 * localPort; 0: no filter. */
static void start_t1(char *out, size_t outsz, const char *limits, const char *filter_extra,
                     unsigned udp_port)
{
    char filters[256] = "[]";
    if (udp_port) {
        int f = snprintf(filters, sizeof(filters),
                         "[{\"protocol\":\"UDP\",%s\"localPort\":\"%u\"}]", filter_extra, udp_port);
        ck_assert(f > 0 && (size_t)f < sizeof(filters));
    }
    int n = snprintf(out, outsz,
                     "{\"type\":\"start\",\"commandId\":\"" CMD_START "\",\"captureId\":\"" CAP_1
                     "\",\"name\":\"t1\",\"spec\":{\"target\":\"" VM_TARGET "\",%s"
                     "\"storageLocation\":{\"filePath\":\"/var/captures/t1.cap\"},"
                     "\"filters\":%s}}",
                     limits, filters);
    ck_assert(n > 0 && (size_t)n < outsz);
}

/* The n-th (from 1) message the server got that contains both needles, parsed; NULL when none
 * arrives within WAIT_MS. */
static json_t *wait_report(const char *n1, const char *n2, int nth, char *raw, size_t rawsz)
{
    for (int i = 0; i < WAIT_MS / 10; i++) {
        json_t *found = NULL;
        pthread_mutex_lock(&fake.mu);
        int seen = 0;
        for (char *line = fake.all; *line && !found;) {
            char *end = strchr(line, '\n');
            size_t len = (size_t)(end - line);
            if (has_bytes(line, len, n1) && has_bytes(line, len, n2) && ++seen == nth) {
                json_error_t jerr;
                found = json_loadb(line, len, 0, &jerr);
                snprintf(raw, rawsz, "%.*s", (int)len, line);
            }
            line = end + 1;
        }
        pthread_mutex_unlock(&fake.mu);
        if (found)
            return found;
        sleep_ms(10);
    }
    return NULL;
}

/* Sends the stop of CAP_1 (CMD_STOP, Manual) and returns its completed, which must come and say
 * Manual (raw: its text); the caller decrefs it. */
static json_t *stop_t1(struct srv *s, char *raw, size_t rawsz)
{
    static const char stop[] = "{\"type\":\"stop\",\"commandId\":\"" CMD_STOP
                               "\",\"captureId\":\"" CAP_1 "\",\"reason\":\"Manual\"}";
    ck_assert_int_eq(hub_send(s->hub, "a1", stop, sizeof(stop) - 1), CP_OK);
    json_t *done = wait_report("\"type\":\"completed\"", CAP_1, 1, raw, rawsz);
    ck_assert_msg(done != NULL, "no completed after the stop");
    ck_assert_str_eq(json_string_value(json_object_get(done, "stopReason")), "Manual");
    return done;
}

/* The nth ack for command cmd, which must have come and say ok (raw: its text); the caller
 * decrefs it. */
static json_t *wait_ok_ack(const char *cmd, int nth, char *raw, size_t rawsz)
{
    json_t *ack = wait_report("\"type\":\"ack\"", cmd, nth, raw, rawsz);
    ck_assert_msg(ack != NULL, "no ack #%d for %s", nth, cmd);
    ck_assert_msg(json_is_true(json_object_get(ack, "ok")), "%s refused: %s", cmd, raw);
    return ack;
}

START_TEST(agent_channel_end_to_end)
{
    struct srv s;
    struct hub_options ho = {.heartbeat_ms = 100};
    srv_start(&s, 0, &ho, 1);
    set_welcome("");
    unsigned port = s.port;
    struct agent_run *a = agent_new(0);
    agent_record(a);
    agent_connect(a, port, 200);

    /* hello: what the protocol asks for. */
    ck_assert_int_eq(wait_count(&fake.hellos, 1, WAIT_MS), 1);
    pthread_mutex_lock(&fake.mu);
    json_error_t jerr;
    json_t *hello = json_loads(fake.last, 0, &jerr);
    pthread_mutex_unlock(&fake.mu);
    ck_assert_ptr_nonnull(hello);
    ck_assert_str_eq(json_string_value(json_object_get(hello, "type")), "hello");
    ck_assert_str_eq(json_string_value(json_object_get(hello, "os")), "linux");
    ck_assert(json_is_string(json_object_get(hello, "hostname")));
    ck_assert(json_is_array(json_object_get(hello, "interfaces")));
    ck_assert(json_is_object(json_object_get(hello, "sessions")));
    ck_assert_int_eq(json_integer_value(json_object_get(hello, "unackedFrom")), 1);
    ck_assert_int_eq(json_integer_value(json_array_get(json_object_get(hello, "protocols"), 0)), 1);
    json_decref(hello);
    wait_welcomes(a, 1);

    /* The agent answers pings: with a 100 ms heartbeat (300 ms timeout) it stays connected. */
    sleep_ms(800);
    ck_assert_int_eq(count(&fake.closes), 0);

    /* A command reaches the dispatcher, whose answer reaches the server. */
    int before = count(&fake.messages);
    static const char start[] =
        "{\"type\":\"start\",\"commandId\":\"11111111-1111-4111-8111-111111111111\","
        "\"captureId\":\"22222222-2222-4222-8222-222222222222\",\"name\":\"x\",\"spec\":{}}";
    ck_assert_int_eq(hub_send(s.hub, "a1", start, sizeof(start) - 1), CP_OK);
    ck_assert_int_eq(wait_count(&fake.messages, before + 1, WAIT_MS), before + 1);
    char type[32];
    agent_last_type(a, type, sizeof(type));
    ck_assert_str_eq(type, "start");

    /* The server restarts on the same port: the agent comes back by itself. */
    srv_stop(&s);
    ck_assert_int_eq(wait_count(&fake.closes, 1, WAIT_MS), 1);
    srv_start(&s, port, &ho, 1);
    ck_assert_int_eq(wait_count(&fake.hellos, 2, 10000), 2);
    wait_welcomes(a, 2);

    agent_stop(a);
    ck_assert_int_eq(wait_count(&fake.closes, 2, WAIT_MS), 2);
    srv_stop(&s);
    agent_free(a);
}
END_TEST

/* The agent keeps retrying (with backoff) while nothing listens, and a refused token. */
START_TEST(agent_retries_without_server)
{
    struct agent_run *a = agent_new(0);
    /* A port nobody listens on: bind one and close it. */
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    a->opt.token = "bad";
    a->opt.backoff_min_ms = 10;
    agent_connect(a, s.port, 50);
    sleep_ms(300); /* several refused upgrades (401) */
    ck_assert_int_eq(count(&fake.opens), 0);
    srv_stop(&s);
    sleep_ms(200); /* several refused connects */
    agent_stop(a);
    agent_free(a);
}
END_TEST

/* ---- the real agent with its dispatcher: start, capture, stop, completed ------------------- */

START_TEST(agent_dispatch_capture)
{
    struct srv s;
    struct agent_run *a = agent_up(&s, 0, 200);

    /* The UDP port the filter names. */
    char start[2048];
    start_t1(start, sizeof(start), NO_LIMITS,
             "\"localIPAddress\":\"\",\"remoteIPAddress\":\"\",\"remotePort\":\"\",", agent_udp(a));
    ck_assert_int_eq(hub_send(s.hub, "a1", start, strlen(start)), CP_OK);
    char raw[4096], again[4096];
    json_t *ack = wait_ok_ack(CMD_START, 1, raw, sizeof(raw));
    ck_assert_int_gt(json_integer_value(json_object_get(ack, "at")), 1700000000000LL);
    ck_assert_int_ge(json_integer_value(json_object_get(ack, "seq")), 1);
    json_decref(ack);

    static const char payload[] = "netwatch dispatch test";
    agent_send_udp(a, payload, sizeof(payload), 5);
    sleep_ms(200);

    /* A resend (as after a reconnect) gets the same ack, seq included, and no second capture. */
    ck_assert_int_eq(hub_send(s.hub, "a1", start, strlen(start)), CP_OK);
    ack = wait_report("\"type\":\"ack\"", CMD_START, 2, again, sizeof(again));
    ck_assert_msg(ack != NULL, "no second ack for the repeated start");
    ck_assert_str_eq(again, raw);
    json_decref(ack);

    json_t *done = stop_t1(&s, raw, sizeof(raw));
    json_t *files = json_object_get(done, "files");
    ck_assert_int_eq(json_array_size(files), 1);
    json_t *f0 = json_array_get(files, 0);
    ck_assert_str_eq(json_string_value(json_object_get(f0, "path")), "/var/captures/t1.cap");
    json_int_t bytes = json_integer_value(json_object_get(f0, "bytes"));
    ck_assert_int_gt(bytes, 24);
    ck_assert_int_eq(strlen(json_string_value(json_object_get(f0, "sha256"))), 64);
    json_decref(done);
    json_decref(wait_ok_ack(CMD_STOP, 1, raw, sizeof(raw)));
    char path[256];
    snprintf(path, sizeof(path), "%s/t1.cap", a->root);
    struct stat stt;
    ck_assert_int_eq(stat(path, &stt), 0);
    ck_assert_int_eq(stt.st_size, bytes);
    ck_assert_int_eq(dispatch_running(a->d), 0);

    /* A Windows path cannot be written by a Linux agent. */
    static const char win[] =
        "{\"type\":\"start\",\"commandId\":\"" CMD_WINDOWS "\",\"captureId\":\"" CAP_2 "\","
        "\"name\":\"t2\",\"spec\":{\"target\":\"" VM_TARGET "\"," NO_LIMITS
        "\"storageLocation\":{\"filePath\":\"C:\\\\captures\\\\t2.cap\"},\"filters\":[]}}";
    ck_assert_int_eq(hub_send(s.hub, "a1", win, sizeof(win) - 1), CP_OK);
    ack = wait_report("\"type\":\"ack\"", CMD_WINDOWS, 1, raw, sizeof(raw));
    ck_assert_msg(ack != NULL, "no ack for the Windows start");
    ck_assert(json_is_false(json_object_get(ack, "ok")));
    ck_assert_str_eq(json_string_value(json_object_get(ack, "code")), "CaptureFailed");
    ck_assert_ptr_nonnull(json_string_value(json_object_get(ack, "message")));
    json_decref(ack);

    agent_down(a, &s);
}
END_TEST

/* ---- hello.sessions and welcome.stop ------------------------------------------------------ */

/* The ids in hello.sessions[key] of the n-th hello, comma-separated ("" for none). */
static void hello_list(int nth, const char *key, char *out, size_t outsz)
{
    char raw[8192];
    json_t *h = wait_report("\"type\":\"hello\"", "unackedFrom", nth, raw, sizeof(raw));
    ck_assert_msg(h != NULL, "no hello #%d", nth);
    json_t *list = json_object_get(json_object_get(h, "sessions"), key);
    ck_assert_msg(json_is_array(list), "hello #%d has no sessions.%s: %s", nth, key, raw);
    out[0] = '\0';
    size_t i;
    json_t *id;
    json_array_foreach(list, i, id)
    {
        size_t len = strlen(out);
        snprintf(out + len, outsz - len, "%s%s", len ? "," : "", json_string_value(id));
    }
    json_decref(h);
}

/* Restarts the fake server on the same port and waits for the agent's next hello. */
static void srv_restart(struct srv *s, int hellos)
{
    unsigned port = s->port;
    srv_stop(s);
    srv_start(s, port, NULL, 1);
    ck_assert_int_eq(wait_count(&fake.hellos, hellos, 10000), hellos);
}

/* The server's answer to report seq: ok, no longer held. */
static void send_reply(struct srv *s, json_int_t seq)
{
    char reply[128];
    snprintf(reply, sizeof(reply), "{\"type\":\"reply\",\"seq\":%lld,\"ok\":true}", (long long)seq);
    ck_assert_int_eq(hub_send(s->hub, "a1", reply, strlen(reply)), CP_OK);
}

START_TEST(agent_hello_sessions_and_welcome_stop)
{
    struct srv s;
    struct agent_run *a = agent_up(&s, 0, 100);
    char ids[256];
    hello_list(1, "running", ids, sizeof(ids));
    ck_assert_str_eq(ids, "");
    hello_list(1, "finished", ids, sizeof(ids));
    ck_assert_str_eq(ids, "");

    char start[2048];
    start_t1(start, sizeof(start), NO_LIMITS, "", 0);
    ck_assert_int_eq(hub_send(s.hub, "a1", start, strlen(start)), CP_OK);
    char raw[4096], again[4096];
    json_decref(wait_ok_ack(CMD_START, 1, raw, sizeof(raw)));

    /* The next hello lists the capture as running; this welcome says the server has stopped
     * it meanwhile: the agent ends it and reports Manual. */
    set_welcome("{\"type\":\"welcome\",\"protocol\":1,\"heartbeatSeconds\":15,"
                "\"lastAppliedSeq\":1,\"stop\":[\"" CAP_1 "\"]}");
    srv_restart(&s, 2);
    hello_list(2, "running", ids, sizeof(ids));
    ck_assert_str_eq(ids, CAP_1);
    hello_list(2, "finished", ids, sizeof(ids));
    ck_assert_str_eq(ids, "");
    json_t *done = wait_report("\"type\":\"completed\"", CAP_1, 1, raw, sizeof(raw));
    ck_assert_msg(done != NULL, "no completed after welcome.stop");
    ck_assert_str_eq(json_string_value(json_object_get(done, "stopReason")), "Manual");
    json_int_t final_seq = json_integer_value(json_object_get(done, "seq"));
    ck_assert_int_ge(final_seq, 2);
    json_decref(done);
    ck_assert_int_eq(dispatch_running(a->d), 0);

    /* Not answered yet: the next hello lists it as finished, and the report goes again. */
    set_welcome("{\"type\":\"welcome\",\"protocol\":1,\"heartbeatSeconds\":15,"
                "\"lastAppliedSeq\":1,\"stop\":[]}");
    srv_restart(&s, 3);
    hello_list(3, "running", ids, sizeof(ids));
    ck_assert_str_eq(ids, "");
    hello_list(3, "finished", ids, sizeof(ids));
    ck_assert_str_eq(ids, CAP_1);
    done = wait_report("\"type\":\"completed\"", CAP_1, 2, again, sizeof(again));
    ck_assert_msg(done != NULL, "the unanswered completed was not sent again");
    ck_assert_str_eq(again, raw);
    json_decref(done);

    /* Answered: no longer held. */
    send_reply(&s, final_seq);
    sleep_ms(200);
    srv_restart(&s, 4);
    hello_list(4, "running", ids, sizeof(ids));
    ck_assert_str_eq(ids, "");
    hello_list(4, "finished", ids, sizeof(ids));
    ck_assert_str_eq(ids, "");

    agent_down(a, &s);
}
END_TEST

/* ---- progress reports --------------------------------------------------------------------- */

/* Messages the server got that contain both needles. */
static int count_reports(const char *n1, const char *n2)
{
    int seen = 0;
    pthread_mutex_lock(&fake.mu);
    for (char *line = fake.all; *line;) {
        char *end = strchr(line, '\n');
        size_t len = (size_t)(end - line);
        seen += has_bytes(line, len, n1) && has_bytes(line, len, n2);
        line = end + 1;
    }
    pthread_mutex_unlock(&fake.mu);
    return seen;
}

/* The first progress report with the given packets count, waiting up to 3 s; NULL if none. */
static json_t *wait_progress(const char *packets, char *raw, size_t rawsz)
{
    json_t *p = NULL;
    for (int i = 0; i < 300 && !p; i++) {
        if (count_reports("\"type\":\"progress\"", packets) > 0)
            p = wait_report("\"type\":\"progress\"", packets, 1, raw, rawsz);
        else
            sleep_ms(10);
    }
    return p;
}

START_TEST(agent_progress_reports)
{
    struct srv s;
    struct agent_run *a = agent_up(&s, 1, 100);

    char start[2048];
    start_t1(start, sizeof(start), "", "", agent_udp(a));
    ck_assert_int_eq(hub_send(s.hub, "a1", start, strlen(start)), CP_OK);
    char raw[4096];
    json_decref(wait_ok_ack(CMD_START, 1, raw, sizeof(raw)));
    int64_t t0 = (int64_t)time(NULL) * 1000;
    static const char payload[] = "progress test";
    agent_send_udp(a, payload, sizeof(payload), 3);

    /* Within a couple of ticks: the totals, and the first packet's time. */
    json_t *p = wait_progress("\"packets\":3", raw, sizeof(raw));
    ck_assert_msg(p != NULL, "no progress with 3 packets");
    ck_assert_str_eq(json_string_value(json_object_get(p, "captureId")), CAP_1);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "bytes")),
                     3 * (14 + 20 + 8 + (json_int_t)sizeof(payload)));
    ck_assert_int_eq(json_integer_value(json_object_get(p, "drops")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "files")), 1);
    json_int_t first = json_integer_value(json_object_get(p, "firstPacketAt"));
    ck_assert_int_ge(first, t0 - 2000);
    ck_assert_int_le(first, t0 + 5000);
    json_int_t pseq = json_integer_value(json_object_get(p, "seq"));
    ck_assert_int_gt(pseq, 1);
    json_decref(p);

    /* The server refuses it: nothing is sent again, the channel stays up, and with no new
     * packet no new progress comes. */
    char reply[160];
    snprintf(reply, sizeof(reply),
             "{\"type\":\"reply\",\"seq\":%lld,\"ok\":false,\"code\":\"InternalError\"}",
             (long long)pseq);
    ck_assert_int_eq(hub_send(s.hub, "a1", reply, strlen(reply)), CP_OK);
    int progresses = count_reports("\"type\":\"progress\"", CAP_1);
    sleep_ms(2500);
    ck_assert_int_eq(count_reports("\"type\":\"progress\"", CAP_1), progresses);
    ck_assert_int_eq(count(&fake.closes), 0);
    ck_assert_int_eq(count(&fake.hellos), 1);

    /* New packets: a new progress with the new totals and the same first packet time. */
    agent_send_udp(a, payload, sizeof(payload), 2);
    p = wait_progress("\"packets\":5", raw, sizeof(raw));
    ck_assert_msg(p != NULL, "no progress with 5 packets");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "firstPacketAt")), first);
    ck_assert_int_gt(json_integer_value(json_object_get(p, "seq")), pseq);
    json_decref(p);

    agent_down(a, &s);
}
END_TEST

/* The agent decodes what the server sends with the protocol's strict codec: a message it
 * refuses (here a start whose commandId is not a GUID, and one with a repeated key) closes the
 * channel with 1003 and answers nothing; the agent comes back and is welcomed again. */
START_TEST(agent_refuses_bad_commands)
{
    struct srv s;
    struct agent_run *a = agent_up(&s, 0, 100);
    static const char *bad[] = {
        "{\"type\":\"start\",\"commandId\":\"c1\",\"captureId\":\"" CAP_1 "\",\"name\":\"t\","
        "\"spec\":{}}",
        "{\"type\":\"stop\",\"commandId\":\"" CMD_STOP "\",\"commandId\":\"" CMD_STOP
        "\",\"captureId\":\"" CAP_1 "\",\"reason\":\"Manual\"}",
    };
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(hub_send(s.hub, "a1", bad[i], strlen(bad[i])), CP_OK);
        ck_assert_int_eq(wait_count(&fake.closes, i + 1, WAIT_MS), i + 1);
        ck_assert_int_eq(wait_count(&fake.hellos, i + 2, WAIT_MS), i + 2);
    }
    ck_assert_int_eq(count_reports("\"type\":\"ack\"", "\"seq\""), 0);
    ck_assert_int_eq(dispatch_running(a->d), 0);
    agent_down(a, &s);
}
END_TEST

/* ---- a restart of the agent ---------------------------------------------------------------- */

/* Entries in dir/sub (dot files aside); -1 when there is no such directory. */
static int files_in(const char *dir, const char *sub)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, sub);
    return tfx_count_entries(p);
}

/* Writes a pcap file (native byte order, Ethernet) with one whole 10-byte record and a torn
 * second one, as a crash leaves it. */
static void write_torn_pcap(const char *path)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    uint32_t hdr[6] = {0xa1b2c3d4u, 0x00040002u, 0, 0, 65535, 1};
    uint32_t rec[4] = {1773718655, 0, 10, 10};
    unsigned char data[10] = {0};
    fwrite(hdr, 4, 6, f);
    fwrite(rec, 4, 4, f);
    fwrite(data, 1, sizeof(data), f);
    fwrite(rec, 4, 4, f);
    fwrite(data, 1, 3, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* A session that outlives its dispatcher: paused at a clean stop of the agent, its time limit
 * passes meanwhile, and the next agent ends it TimeExceeded before connecting, sends its start's
 * ack and the completed (every file, SHA-256) after the welcome, and forgets both once answered.
 * On the way: a stray partial file under the capture root is salvaged and a corrupt session file
 * is set aside, neither stopping the agent. */
START_TEST(agent_restore_ended_while_away)
{
    struct agent_run *a = agent_new(1);
    char p[256];
    snprintf(p, sizeof(p), "%s/stray", a->root);
    ck_assert_int_eq(mkdir(p, 0750), 0);
    snprintf(p, sizeof(p), "%s/stray/.lost.cap.partial", a->root);
    write_torn_pcap(p);
    snprintf(p, sizeof(p), "%s/sessions", a->dir);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/sessions/" CAP_2 ".json", a->dir);
    write_text(p, "{\"version\":1,");

    agent_dispatch(a, 0, 0);
    snprintf(p, sizeof(p), "%s/stray/lost.cap", a->root);
    struct stat st;
    ck_assert_msg(stat(p, &st) == 0 && st.st_size == 24 + 16 + 10, "stray partial not salvaged");
    ck_assert_int_eq(files_in(a->dir, "corrupt"), 1);
    ck_assert_int_eq(files_in(a->dir, "sessions"), 0);

    /* A start handled with no channel (as between connections). */
    char start[2048];
    start_t1(start, sizeof(start), "\"timeLimitInSeconds\":1,", "", 0);
    agent_deliver(a, start);
    ck_assert_int_eq(dispatch_running(a->d), 1);
    ck_assert_int_eq(files_in(a->dir, "sessions"), 1);
    ck_assert_int_eq(files_in(a->dir, "reports"), 1); /* the ack, unanswered */
    sleep_ms(100);
    agent_pause(a); /* a clean stop: paused, its file complete */
    snprintf(p, sizeof(p), "%s/t1.cap", a->root);
    ck_assert_int_eq(stat(p, &st), 0);
    sleep_ms(1100);

    agent_dispatch(a, 0, 1);
    ck_assert_int_eq(dispatch_running(a->d), 0);
    ck_assert_int_eq(files_in(a->dir, "reports"), 2);

    struct srv s;
    agent_serve(a, &s, 100);
    char ids[256], raw[4096];
    hello_list(1, "finished", ids, sizeof(ids));
    ck_assert_str_eq(ids, CAP_1);
    hello_list(1, "running", ids, sizeof(ids));
    ck_assert_str_eq(ids, "");
    json_t *ack = wait_ok_ack(CMD_START, 1, raw, sizeof(raw));
    json_int_t ack_seq = json_integer_value(json_object_get(ack, "seq"));
    json_decref(ack);
    json_t *done = wait_report("\"type\":\"completed\"", CAP_1, 1, raw, sizeof(raw));
    ck_assert_msg(done != NULL, "no completed after the restart");
    ck_assert_str_eq(json_string_value(json_object_get(done, "stopReason")), "TimeExceeded");
    json_int_t done_seq = json_integer_value(json_object_get(done, "seq"));
    ck_assert_int_gt(done_seq, ack_seq);
    json_t *files = json_object_get(done, "files");
    ck_assert_int_eq(json_array_size(files), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(files, 0), "path")),
                     "/var/captures/t1.cap");
    ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(files, 0), "bytes")),
                     st.st_size);
    ck_assert_int_eq(strlen(json_string_value(json_object_get(json_array_get(files, 0), "sha256"))),
                     64);
    json_decref(done);

    /* Answered: nothing of it is left in the state directory. */
    send_reply(&s, ack_seq);
    send_reply(&s, done_seq);
    for (int i = 0; i < 200 && (files_in(a->dir, "reports") || files_in(a->dir, "sessions")); i++)
        sleep_ms(10);
    ck_assert_int_eq(files_in(a->dir, "reports"), 0);
    ck_assert_int_eq(files_in(a->dir, "sessions"), 0);

    agent_down(a, &s);
}
END_TEST

/* A running session paused by a clean stop of the agent resumes at the next start into a new
 * file of its own ("t1.1.cap"); a stop ends it, and the completed lists both files with their
 * sizes and SHA-256, the packets of each life in its file; the seq goes on from the first life. */
START_TEST(agent_restore_resumes_into_new_file)
{
    struct agent_run *a = agent_new(1);
    agent_dispatch(a, 0, 0);
    char start[2048], p[256];
    start_t1(start, sizeof(start), "\"timeLimitInSeconds\":60,", "", agent_udp(a));
    agent_deliver(a, start);
    ck_assert_int_eq(dispatch_running(a->d), 1);
    sleep_ms(100);
    agent_send_udp(a, "first", 5, 3);
    sleep_ms(300);
    agent_pause(a);

    agent_dispatch(a, 0, 1);
    ck_assert_int_eq(dispatch_running(a->d), 1);
    snprintf(p, sizeof(p), "%s/.t1.1.cap.partial", a->root);
    struct stat st;
    ck_assert_msg(stat(p, &st) == 0, "the resumed session writes no t1.1.cap");
    sleep_ms(100);
    agent_send_udp(a, "second", 6, 2);
    sleep_ms(300);

    struct srv s;
    agent_serve(a, &s, 100);
    char ids[256], raw[4096];
    hello_list(1, "running", ids, sizeof(ids));
    ck_assert_str_eq(ids, CAP_1);
    json_t *done = stop_t1(&s, raw, sizeof(raw));
    ck_assert_int_gt(json_integer_value(json_object_get(done, "seq")), 1);
    json_t *files = json_object_get(done, "files");
    ck_assert_int_eq(json_array_size(files), 2);
    static const char *names[] = {"t1.cap", "t1.1.cap"};
    static const json_int_t packets[] = {3, 2};
    static const size_t payload[] = {5, 6};
    for (int i = 0; i < 2; i++) {
        json_t *fi = json_array_get(files, (size_t)i);
        char want[64];
        snprintf(want, sizeof(want), "/var/captures/%s", names[i]);
        ck_assert_str_eq(json_string_value(json_object_get(fi, "path")), want);
        snprintf(p, sizeof(p), "%s/%s", a->root, names[i]);
        ck_assert_int_eq(stat(p, &st), 0);
        ck_assert_int_eq(json_integer_value(json_object_get(fi, "bytes")), st.st_size);
        /* Ethernet + IPv4 + UDP headers and the payload, with a 16-byte record header each. */
        ck_assert_int_eq(st.st_size, 24 + packets[i] * (16 + 14 + 20 + 8 + (json_int_t)payload[i]));
        ck_assert_int_eq(strlen(json_string_value(json_object_get(fi, "sha256"))), 64);
    }
    json_decref(done);

    agent_down(a, &s);
}
END_TEST

/* ---- the real agent channel over TLS ------------------------------------------------------ */

/* Starts the agent (recording handler) over https to host:port, trusting ca_file (NULL: the
 * system store), with a quick backoff. */
static void agent_tls_connect(struct agent_run *a, const char *host, unsigned port,
                              const char *ca_file)
{
    agent_record(a);
    a->opt.host = host;
    a->opt.tls = 1;
    a->opt.ca_file = ca_file;
    agent_connect(a, port, 200);
}

/* stderr (where log lines go) into a file while a case runs, to check what the agent logged. */
struct log_capture {
    int saved;
    char path[32];
};

static void log_capture_start(struct log_capture *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/nw-log-XXXXXX");
    int fd = mkstemp(c->path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_ge(c->saved = dup(STDERR_FILENO), 0);
    ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
    close(fd);
}

/* Restores stderr and returns what was logged (malloc'd). */
static char *log_capture_stop(struct log_capture *c)
{
    ck_assert_int_ge(dup2(c->saved, STDERR_FILENO), 0);
    close(c->saved);
    FILE *f = fopen(c->path, "r");
    ck_assert_ptr_nonnull(f);
    char *text = calloc(1, 65536);
    ck_assert_ptr_nonnull(text);
    size_t n = fread(text, 1, 65535, f);
    text[n] = '\0';
    fclose(f);
    unlink(c->path);
    fputs(text, stderr); /* still visible in the test's output */
    return text;
}

static int occurrences(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Waits up to ms for needle to have been logged n times so far (the file is read, not
 * consumed). Returns how many times it was. */
static int log_capture_wait(const struct log_capture *c, const char *needle, int n, int ms)
{
    int seen = 0;
    for (int waited = 0;; waited += 20) {
        FILE *f = fopen(c->path, "r");
        if (f) {
            static char text[65536];
            size_t got = fread(text, 1, sizeof(text) - 1, f);
            text[got] = '\0';
            fclose(f);
            seen = occurrences(text, needle);
        }
        if (seen >= n || waited >= ms)
            return seen;
        sleep_ms(20);
    }
}

/* https with --ca-file: hello, welcome, pings, a command larger than a TLS record and the
 * dispatcher's answer, a server restart, and the stop. */
START_TEST(agent_tls_end_to_end)
{
    struct agent_run *a = agent_new(0);
    char ca[96];
    snprintf(ca, sizeof(ca), "%s/ca.pem", a->dir);
    make_cert(&next_cert, &next_key);
    write_text(ca, next_cert);
    struct srv s;
    /* Pings every 100 ms; silence limit 2 s rather than 3 x 100 ms: under ASan on a loaded
     * machine a 60 KB TLS transfer can keep the agent busy for a second, and a timeout mid-test
     * would reconnect it (the last message would then be a hello, not the ack). */
    struct hub_options ho = {.heartbeat_ms = 100, .timeout_ms = 2000};
    srv_start(&s, 0, &ho, 1);
    unsigned port = s.port;
    set_welcome("");
    agent_tls_connect(a, "127.0.0.1", port, ca);

    ck_assert_int_eq(wait_count(&fake.hellos, 1, WAIT_MS), 1);
    char copy[2048];
    ck_assert_ptr_nonnull(strstr(fake_copy(fake.last, copy, sizeof(copy)), "\"type\":\"hello\""));
    wait_welcomes(a, 1);
    ck_assert_int_eq(count(&fake.auths), 1);

    /* Pings over TLS are answered: 3 s is well past the 2 s silence limit, and the channel
     * stays up only because the agent answers every 100 ms ping. */
    sleep_ms(3000);
    ck_assert_int_eq(count(&fake.closes), 0);

    /* 60 KB: several TLS records, read by the agent in pieces. */
    int before = count(&fake.messages);
    size_t big_len = 60000;
    char *big = malloc(big_len);
    ck_assert_ptr_nonnull(big);
    static const char head[] =
        "{\"type\":\"start\",\"commandId\":\"11111111-1111-4111-8111-111111111111\","
        "\"captureId\":\"22222222-2222-4222-8222-222222222222\",\"name\":\"x\","
        "\"spec\":{\"pad\":\"";
    memcpy(big, head, sizeof(head) - 1);
    memset(big + sizeof(head) - 1, 'z', big_len - (sizeof(head) - 1) - 3);
    memcpy(big + big_len - 3, "\"}}", 3);
    ck_assert_int_eq(hub_send(s.hub, "a1", big, big_len), CP_OK);
    free(big);
    ck_assert_int_eq(wait_count(&fake.messages, before + 1, WAIT_MS), before + 1);
    char type[32];
    agent_last_type(a, type, sizeof(type));
    ck_assert_str_eq(type, "start");
    ck_assert_ptr_nonnull(strstr(fake_copy(fake.last, copy, sizeof(copy)), "\"type\":\"ack\""));

    /* The server restarts on the same port: the agent verifies it again and comes back. */
    srv_stop(&s);
    ck_assert_int_eq(wait_count(&fake.closes, 1, WAIT_MS), 1);
    srv_start(&s, port, &ho, 1);
    ck_assert_int_eq(wait_count(&fake.hellos, 2, 10000), 2);
    wait_welcomes(a, 2);

    agent_stop(a);
    ck_assert_int_eq(wait_count(&fake.closes, 2, WAIT_MS), 2);
    srv_stop(&s);
    free_next_cert();
    agent_free(a);
}
END_TEST

/* A server whose certificate does not verify for host (san: what it is valid for; with_ca:
 * trusted through --ca-file, or only the system store) is refused before the upgrade: the
 * token never reaches it, every attempt fails and is retried, and the log says why. */
static void agent_tls_refused(const char *san, const char *host, int with_ca, const char *why)
{
    struct agent_run *a = agent_new(0);
    char ca[96];
    snprintf(ca, sizeof(ca), "%s/ca.pem", a->dir);
    make_cert_for(san, &next_cert, &next_key);
    write_text(ca, next_cert);
    struct srv s;
    srv_start(&s, 0, NULL, 1);
    struct log_capture lc;
    log_capture_start(&lc);
    agent_tls_connect(a, host, s.port, with_ca ? ca : NULL);
    /* Several attempts at 20..200 ms of backoff: waited for, since a handshake under a
     * sanitizer on a loaded machine can take longer than the backoff itself. */
    log_capture_wait(&lc, "reason=\"TLS handshake failed\"", 2, 10000);
    agent_stop(a);
    char *logged = log_capture_stop(&lc);
    ck_assert_int_eq(count(&fake.auths), 0);
    ck_assert_int_eq(count(&fake.opens), 0);
    ck_assert_int_eq(count(&fake.messages), 0);
    ck_assert_int_ge(occurrences(logged, "reason=\"TLS handshake failed\""), 2);
    ck_assert_msg(strstr(logged, why), "no '%s' in the log", why);
    ck_assert_ptr_null(strstr(logged, "event=channel_connected"));
    free(logged);
    srv_stop(&s);
    free_next_cert();
    agent_free(a);
}

START_TEST(agent_tls_wrong_host)
{
    /* Trusted (the CA file), but for another name: SNI and the name check use "localhost". */
    agent_tls_refused("DNS:other.example,IP:10.9.9.9", "localhost", 1,
                      "certificate not accepted: hostname mismatch");
}
END_TEST

START_TEST(agent_tls_untrusted)
{
    /* The right name, but self-signed and no --ca-file: the system store does not know it. */
    agent_tls_refused("IP:127.0.0.1,DNS:localhost", "127.0.0.1", 0,
                      "certificate not accepted: self-signed certificate");
}
END_TEST

START_TEST(agent_state_persists)
{
    char dir[] = "/tmp/nw-state-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char sub[64], path[96];
    snprintf(sub, sizeof(sub), "%s/state", dir); /* created on open */
    snprintf(path, sizeof(path), "%s/seq", sub);
    struct agent_state st;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(agent_state_open(sub, &st, &e), CP_OK);
    ck_assert_uint_eq(agent_state_unacked_from(&st), 1);
    uint64_t seq = 0;
    ck_assert_int_eq(agent_state_take_seq(&st, &seq, &e), CP_OK);
    ck_assert_uint_eq(seq, 1);
    ck_assert_int_eq(agent_state_take_seq(&st, &seq, &e), CP_OK);
    ck_assert_uint_eq(seq, 2);
    ck_assert_int_eq(agent_state_set_acked(&st, 1, &e), CP_OK);
    ck_assert_int_eq(agent_state_set_acked(&st, 9, &e), CP_OK); /* never handed out: ignored */
    struct agent_state again;
    ck_assert_int_eq(agent_state_open(sub, &again, &e), CP_OK);
    ck_assert_uint_eq(again.next_seq, 3);
    ck_assert_uint_eq(again.acked_seq, 1);
    ck_assert_uint_eq(agent_state_unacked_from(&again), 2);
    /* A file that does not parse is set aside, and the sequence goes on far above anything
     * handed out (never restarted at 1, which the server would take for repeats). */
    FILE *f = fopen(path, "w");
    fputs("next_seq=banana\n", f);
    fclose(f);
    ck_assert_int_eq(agent_state_open(sub, &again, &e), CP_OK);
    ck_assert_uint_gt(again.next_seq, 1700000000000000ULL);
    ck_assert_uint_eq(agent_state_unacked_from(&again), 1);
    ck_assert_int_eq(files_in(sub, "corrupt"), 1);
    struct agent_state third;
    ck_assert_int_eq(agent_state_open(sub, &third, &e), CP_OK);
    ck_assert_uint_eq(third.next_seq, again.next_seq);
    tfx_rm_rf(dir);
}
END_TEST

/* ---- the real glue: a report the store fails to apply ----------------------------------- */

/* netwatchd's agent side as main.c puts it together: a store, core, the glue and the hub. */
struct glue_srv {
    struct db_store *store;
    struct agent_glue *glue;
    struct core *core;
    struct srv s;
};

static void glue_srv_start(struct glue_srv *gs)
{
    memset(gs, 0, sizeof(*gs));
    struct cp_error e = {{0}, {0}, {0}};
    struct db_store_options o = {.path = ":memory:", .readers = 2, .busy_timeout_ms = 0};
    ck_assert_int_eq(db_store_open(&o, &gs->store, NULL), CP_OK);
    ck_assert_int_eq(agent_glue_new(&gs->glue), CP_OK);
    ck_assert_int_eq(core_new(gs->store, agent_glue_port(gs->glue), &gs->core), CP_OK);
    agent_glue_set_core(gs->glue, gs->core);
    struct srv *s = &gs->s;
    ck_assert_ptr_nonnull(s->metrics = metrics_new());
    ck_assert_int_eq(hub_new(NULL, agent_glue_ops(gs->glue), &s->hub), CP_OK);
    agent_glue_set_hub(gs->glue, s->hub);
    ck_assert_int_eq(hub_start(s->hub), CP_OK);
    ck_assert_int_eq(http_bind("127.0.0.1:0", &s->http, &e), CP_OK);
    s->port = http_port(s->http);
    s->api = (struct api_ctx){
        .core = NULL, .public_url = "http://127.0.0.1", .auth = api_auth_ok, .auth_ctx = NULL};
    struct http_options ho = {.threads = 2,
                              .max_connections = 64,
                              .max_agents = 64,
                              .write_workers = 0,
                              .api = &s->api,
                              .metrics = s->metrics,
                              .hub = s->hub};
    ck_assert_int_eq(http_serve(s->http, &ho, &e), CP_OK);
}

static void glue_srv_stop(struct glue_srv *gs)
{
    hub_stop(gs->s.hub);
    http_stop(gs->s.http, 2000);
    agent_glue_stop(gs->glue);
    core_free(gs->core);
    hub_free(gs->s.hub);
    agent_glue_free(gs->glue);
    db_store_close(gs->store);
    metrics_free(gs->s.metrics);
}

static enum cp_err sql_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    return sqlite3_exec(db_conn_handle(c), arg, NULL, NULL, NULL) == SQLITE_OK ? CP_OK : CP_EIO;
}

#define GLUE_TOKEN   "nwa_5555555555555555555555555555555555555555555555555555555555555555"
#define GLUE_SESSION "0f8fad5b-d9cb-469f-a165-70867728950e"

static void send_text(int fd, const char *text)
{
    send_frame(fd, 0x1, text, strlen(text));
}

/* A progress report about a session the server does not know: applied (seq raised) and no
 * more, which is all this test needs of a report. */
static void send_progress(int fd, int seq)
{
    char m[256];
    snprintf(m, sizeof(m),
             "{\"type\":\"progress\",\"seq\":%d,\"captureId\":\"" GLUE_SESSION "\","
             "\"packets\":1,\"bytes\":1,\"drops\":0,\"files\":0}",
             seq);
    send_text(fd, m);
}

/* Sends a hello and returns the welcome's lastAppliedSeq. */
static long long hello_welcome(int fd)
{
    send_text(fd, "{\"type\":\"hello\",\"protocols\":[1],\"agentVersion\":\"1\",\"hostname\":"
                  "\"vm1\",\"os\":\"linux\",\"unackedFrom\":1,\"interfaces\":[]}");
    char buf[1024];
    ck_assert_int_gt(read_text(fd, buf, sizeof(buf)), 0);
    json_t *w = json_loads(buf, 0, NULL);
    ck_assert_ptr_nonnull(w);
    ck_assert_str_eq(json_string_value(json_object_get(w, "type")), "welcome");
    long long last = json_integer_value(json_object_get(w, "lastAppliedSeq"));
    json_decref(w);
    return last;
}

/* Reads the next reply; asserts it is ok and for seq. */
static void expect_reply_ok(int fd, int seq)
{
    char buf[1024];
    ck_assert_int_gt(read_text(fd, buf, sizeof(buf)), 0);
    json_t *r = json_loads(buf, 0, NULL);
    ck_assert_ptr_nonnull(r);
    ck_assert_str_eq(json_string_value(json_object_get(r, "type")), "reply");
    ck_assert_int_eq(json_integer_value(json_object_get(r, "seq")), seq);
    ck_assert(json_is_true(json_object_get(r, "ok")));
    json_decref(r);
}

/*
 * The store fails to apply report 3 (a trigger put into the real database makes raising the
 * agent's seq to 3 abort). Report 4, sent right behind it, must not be applied before it: with
 * seqs a high-water mark, 3 would then count as applied and be lost. The server closes the
 * channel with 4003 and answers neither; a report that comes on the next channel before its
 * hello is not applied either; after the hello the agent resends 3 and 4 and both apply.
 */
START_TEST(glue_failed_report_holds_the_agent)
{
    struct glue_srv gs;
    glue_srv_start(&gs);
    struct db_agent a;
    ck_assert_int_eq(core_agent_register(gs.store,
                                         "/subscriptions/0b7c4a4e-1111-4a4a-8a8a-000000000001/"
                                         "resourceGroups/rg1/providers/Microsoft.Compute/"
                                         "virtualMachines/vm1",
                                         NULL, GLUE_TOKEN, &a, NULL),
                     CP_OK);
    db_agent_clear(&a);

    int fd = open_channel(gs.s.port, GLUE_TOKEN);
    ck_assert_int_eq(hello_welcome(fd), 0);
    send_progress(fd, 1);
    expect_reply_ok(fd, 1);
    send_progress(fd, 2);
    expect_reply_ok(fd, 2);

    ck_assert_int_eq(db_store_write(gs.store, sql_job,
                                    "CREATE TRIGGER fail_seq_3 BEFORE UPDATE OF last_applied_seq"
                                    " ON agents WHEN new.last_applied_seq = 3"
                                    " BEGIN SELECT RAISE(ABORT, 'injected fault'); END",
                                    NULL),
                     CP_OK);
    send_progress(fd, 3);
    send_progress(fd, 4);
    /* No reply comes: the next frame past any ping is the close. */
    char buf[1024];
    size_t len;
    int op;
    do
        op = read_frame(fd, buf, sizeof(buf), &len);
    while (op == 0x9); /* ping */
    ck_assert_int_eq(op, 0x8);
    ck_assert_uint_ge(len, 2);
    ck_assert_int_eq(((unsigned char)buf[0] << 8) | (unsigned char)buf[1], PROTO_CLOSE_NOT_APPLIED);
    close(fd);

    ck_assert_int_eq(db_store_write(gs.store, sql_job, "DROP TRIGGER fail_seq_3", NULL), CP_OK);
    /* The next channel: report 4 before the hello is held; the welcome says 2 (it is processed
     * in order, before the hello). */
    sleep_ms(100); /* the old channel's close reaches the glue first */
    fd = open_channel(gs.s.port, GLUE_TOKEN);
    send_progress(fd, 4);
    ck_assert_int_eq(hello_welcome(fd), 2);
    send_progress(fd, 3);
    send_progress(fd, 4);
    expect_reply_ok(fd, 3);
    expect_reply_ok(fd, 4);
    ck_assert_int_eq(hello_welcome(fd), 4); /* both applied, in order */
    close(fd);
    glue_srv_stop(&gs);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("channel");
    TCase *t = tcase_create("hub");
    tcase_add_checked_fixture(t, setup, NULL);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, upgrade_ok_and_messages);
    tcase_add_test(t, hello_with_the_request);
    tcase_add_test(t, refusals);
    tcase_add_test(t, oversized_message_closes_1009);
    tcase_add_test(t, binary_frame_closes_1003);
    tcase_add_test(t, heartbeat_timeout);
    tcase_add_test(t, second_channel_replaces_first);
    tcase_add_test(t, queue_overflow_closes_1008);
    tcase_add_test(t, hub_close_and_stop);
    tcase_add_test(t, many_channels);
    tcase_add_test(t, channels_leave_mhd);
    tcase_add_test(t, api_connection_limit);
    tcase_add_test(t, agent_limit);
    tcase_add_test(t, tls_channel);
    tcase_add_test(t, tls_channels_are_not_api_connections);
    suite_add_tcase(s, t);
    TCase *ag = tcase_create("agent");
    tcase_add_checked_fixture(ag, setup, NULL);
    tcase_set_timeout(ag, 60);
    tcase_add_test(ag, agent_channel_end_to_end);
    tcase_add_test(ag, agent_retries_without_server);
    tcase_add_test(ag, agent_dispatch_capture);
    tcase_add_test(ag, agent_hello_sessions_and_welcome_stop);
    tcase_add_test(ag, agent_progress_reports);
    tcase_add_test(ag, agent_refuses_bad_commands);
    tcase_add_test(ag, agent_restore_ended_while_away);
    tcase_add_test(ag, agent_restore_resumes_into_new_file);
    tcase_add_test(ag, agent_tls_end_to_end);
    tcase_add_test(ag, agent_tls_wrong_host);
    tcase_add_test(ag, agent_tls_untrusted);
    tcase_add_test(ag, agent_state_persists);
    tcase_add_test(ag, glue_failed_report_holds_the_agent);
    suite_add_tcase(s, ag);
    return s;
}

int main(void)
{
    pthread_mutex_init(&fake.mu, NULL);
    pthread_cond_init(&fake.cv, NULL);
    SRunner *r = srunner_create(suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? 1 : 0;
}
