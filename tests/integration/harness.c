/*
 * harness.c - starts/stops the real netwatchd and talks HTTP to it (see harness.h).
 */
#include "tests/integration/harness.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

/* A reply body larger than this is a server bug, not something to buffer. */
#define NW_BODY_MAX (64u * 1024u * 1024u)
/* Header lines kept per response. */
#define NW_HEADERS_MAX 128

int nw_failures;
static pthread_mutex_t nw_check_lock = PTHREAD_MUTEX_INITIALIZER;

int nw_check_fail(const char *file, int line, const char *expr, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&nw_check_lock);
    nw_failures++;
    fprintf(stdout, "FAIL %s:%d: %s: ", file, line, expr);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    pthread_mutex_unlock(&nw_check_lock);
    return 0;
}

long long nw_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void nw_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

void nw_harness_init(void)
{
    if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
        fprintf(stderr, "harness: curl_global_init failed\n");
        exit(2);
    }
    /* Seed jansson's hash once here: doing it lazily from several threads races. */
    json_object_seed(0);
    signal(SIGPIPE, SIG_IGN);
}

void nw_guid(char *out)
{
    unsigned char b[16];
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd >= 0) {
        while (got < sizeof(b)) {
            ssize_t n = read(fd, b + got, sizeof(b) - got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        close(fd);
    }
    if (got < sizeof(b)) {
        /* No urandom: still unique enough for a test. */
        unsigned long long x =
            (unsigned long long)nw_now_ms() ^ ((unsigned long long)getpid() << 32);
        for (size_t i = 0; i < sizeof(b); i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            b[i] = (unsigned char)(x >> 56);
        }
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, NW_GUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
}

int nw_is_guid(const char *s)
{
    static const int dash[] = {8, 13, 18, 23};
    size_t n = s ? strlen(s) : 0;

    if (n != NW_GUID_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        int want_dash = 0;
        for (size_t d = 0; d < sizeof(dash) / sizeof(dash[0]); d++)
            want_dash |= (size_t)dash[d] == i;
        if (want_dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

json_t *nw_json_get(json_t *root, const char *dotted)
{
    char tmp[512];
    char *save = NULL;
    json_t *cur = root;

    if (snprintf(tmp, sizeof(tmp), "%s", dotted) >= (int)sizeof(tmp))
        return NULL;
    for (char *seg = strtok_r(tmp, ".", &save); seg && cur; seg = strtok_r(NULL, ".", &save)) {
        if (json_is_array(cur)) {
            char *end;
            unsigned long i = strtoul(seg, &end, 10);
            cur = *end == '\0' ? json_array_get(cur, i) : NULL;
        } else {
            cur = json_object_get(cur, seg);
        }
    }
    return cur;
}

const char *nw_json_str(json_t *root, const char *dotted)
{
    return json_string_value(nw_json_get(root, dotted));
}

int nw_is_weak_etag(const char *e)
{
    char guid[NW_GUID_LEN + 1];
    size_t n = e ? strlen(e) : 0;

    if (n != NW_GUID_LEN + 4 || strncmp(e, "W/\"", 3) != 0 || e[n - 1] != '"')
        return 0;
    memcpy(guid, e + 3, NW_GUID_LEN);
    guid[NW_GUID_LEN] = '\0';
    return nw_is_guid(guid);
}

char *nw_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0;

    if (f == NULL)
        return NULL;
    for (;;) {
        if (cap - n < 4096) {
            char *nb = realloc(buf, cap + 65536);
            if (nb == NULL) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
            cap += 65536;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

const char *nw_url_target(const char *url)
{
    const char *p;

    if (url == NULL)
        return NULL;
    if (url[0] == '/')
        return url;
    p = strstr(url, "://");
    if (p == NULL)
        return NULL;
    p = strchr(p + 3, '/');
    return p;
}

/* ---- HTTP ---- */

struct nw_sink {
    struct nw_response *r;
    size_t cap;
    int overflow;
};

static void free_headers(struct nw_response *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    free(r->headers);
    r->headers = NULL;
    r->nheaders = 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct nw_sink *sink = ud;
    struct nw_response *r = sink->r;
    size_t len = size * nmemb;
    const char *colon;
    size_t nlen, vstart, vend;

    /* A status line starts a new response (after a 100 Continue): forget older headers. */
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        free_headers(r);
        return len;
    }
    colon = memchr(data, ':', len);
    if (colon == NULL || r->nheaders >= NW_HEADERS_MAX)
        return len;
    nlen = (size_t)(colon - data);
    vstart = nlen + 1;
    vend = len;
    while (vstart < vend && (data[vstart] == ' ' || data[vstart] == '\t'))
        vstart++;
    while (vend > vstart && isspace((unsigned char)data[vend - 1]))
        vend--;
    struct nw_header *nh = realloc(r->headers, (r->nheaders + 1) * sizeof(*nh));
    if (nh == NULL)
        return 0;
    r->headers = nh;
    nh[r->nheaders].name = strndup(data, nlen);
    nh[r->nheaders].value = strndup(data + vstart, vend - vstart);
    if (nh[r->nheaders].name == NULL || nh[r->nheaders].value == NULL) {
        free(nh[r->nheaders].name);
        free(nh[r->nheaders].value);
        return 0;
    }
    r->nheaders++;
    return len;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct nw_sink *sink = ud;
    struct nw_response *r = sink->r;
    size_t len = size * nmemb;

    if (r->body_len + len + 1 > NW_BODY_MAX) {
        sink->overflow = 1;
        return 0;
    }
    if (r->body_len + len + 1 > sink->cap) {
        size_t ncap = sink->cap ? sink->cap : 4096;
        while (ncap < r->body_len + len + 1)
            ncap *= 2;
        char *nb = realloc(r->body, ncap);
        if (nb == NULL)
            return 0;
        r->body = nb;
        sink->cap = ncap;
    }
    memcpy(r->body + r->body_len, data, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

const char *nw_response_header(const struct nw_response *r, const char *name)
{
    const char *found = NULL;

    for (size_t i = 0; i < r->nheaders; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            found = r->headers[i].value;
    return found;
}

void nw_response_free(struct nw_response *r)
{
    if (r == NULL)
        return;
    free_headers(r);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* One line per JSON reply, for the openapi validator. */
static void log_reply(const char *method, const char *target, long status, json_t *body)
{
    const char *log = getenv("NW_REPLIES_LOG");
    const char *q;
    json_t *line;
    char *text;
    int fd;

    if (log == NULL || *log == '\0')
        return;
    q = strchr(target, '?');
    line = json_pack("{s:s, s:s%, s:I, s:O}", "method", method, "path", target,
                     q ? (size_t)(q - target) : strlen(target), "status", (json_int_t)status,
                     "body", body);
    if (line == NULL)
        return;
    text = json_dumps(line, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(line);
    if (text == NULL)
        return;
    size_t n = strlen(text);
    text[n] = '\n'; /* replaces the NUL: one write() carries the whole line */
    fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        if (write(fd, text, n + 1) != (ssize_t)(n + 1))
            fprintf(stderr, "harness: short write to %s\n", log);
        close(fd);
    }
    free(text);
}

static int has_header(const char *const *headers, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; headers && headers[i]; i++)
        if (strncasecmp(headers[i], name, n) == 0 && headers[i][n] == ':')
            return 1;
    return 0;
}

int nw_http(const char *base_url, const struct nw_request *req, struct nw_response *out)
{
    struct nw_sink sink = {out, 0, 0};
    struct curl_slist *hl = NULL, *tmp;
    char *url = NULL, *auth = NULL;
    CURL *c = NULL;
    CURLcode rc;
    int ret = -1;
    int sends_body = req->body != NULL || strcmp(req->method, "POST") == 0 ||
                     strcmp(req->method, "PUT") == 0 || strcmp(req->method, "PATCH") == 0;

    memset(out, 0, sizeof(*out));
    out->body = calloc(1, 1);
    if (out->body == NULL)
        goto cleanup;
    sink.cap = 1;
    c = curl_easy_init();
    if (c == NULL) {
        snprintf(out->error, sizeof(out->error), "curl_easy_init failed");
        goto cleanup;
    }
    size_t ulen = strlen(base_url) + strlen(req->target) + 1;
    url = malloc(ulen);
    if (url == NULL)
        goto cleanup;
    snprintf(url, ulen, "%s%s", base_url, req->target);

    for (size_t i = 0; req->headers && req->headers[i]; i++) {
        tmp = curl_slist_append(hl, req->headers[i]);
        if (tmp == NULL)
            goto cleanup;
        hl = tmp;
    }
    if (req->token != NULL && !has_header(req->headers, "Authorization")) {
        size_t alen = strlen(req->token) + 32;
        auth = malloc(alen);
        if (auth == NULL)
            goto cleanup;
        snprintf(auth, alen, "Authorization: Bearer %s", req->token);
        if ((tmp = curl_slist_append(hl, auth)) == NULL)
            goto cleanup;
        hl = tmp;
    }
    /* No 100-continue round trip unless the caller asks for one (a server may refuse a big
     * body before it is sent), and no form content type that curl would add by itself. */
    if (!has_header(req->headers, "Expect")) {
        if ((tmp = curl_slist_append(hl, "Expect:")) == NULL)
            goto cleanup;
        hl = tmp;
    }
    if (!has_header(req->headers, "Content-Type")) {
        const char *ct = req->body != NULL ? "Content-Type: application/json" : "Content-Type:";
        if ((tmp = curl_slist_append(hl, ct)) == NULL)
            goto cleanup;
        hl = tmp;
    }

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms > 0 ? req->timeout_ms : 20000L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &sink);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    if (strcmp(req->method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    if (sends_body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body ? req->body_len : 0));
    }

    rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (rc != CURLE_OK) {
        snprintf(out->error, sizeof(out->error), "%s%s", curl_easy_strerror(rc),
                 sink.overflow ? " (reply body too large)" : "");
        /* A server may answer (e.g. 413) before reading the whole body and then close:
         * the status is still the answer. */
        if (out->status == 0 || sink.overflow) {
            out->status = 0;
            goto cleanup;
        }
    }
    if (out->body_len > 0) {
        json_error_t jerr;
        out->json = json_loadb(out->body, out->body_len, JSON_DECODE_ANY, &jerr);
    }
    if (out->json != NULL)
        log_reply(req->method, req->target, out->status, out->json);
    ret = 0;

cleanup:
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    free(url);
    free(auth);
    return ret;
}

/* ---- the server process ---- */

int nw_remove_tree(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;
    char child[NW_PATH_MAX * 2];
    int ret = 0;

    if (lstat(path, &st) != 0)
        return errno == ENOENT ? 0 : -1;
    if (!S_ISDIR(st.st_mode))
        return unlink(path);
    d = opendir(path);
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        if (nw_remove_tree(child) != 0)
            ret = -1;
    }
    closedir(d);
    if (rmdir(path) != 0)
        ret = -1;
    return ret;
}

/* Child side of fork: stdout/stderr to the log (or a pipe), no NETWATCH_* from our env, and
 * killed when the test dies so no server outlives a crashed or timed-out test. */
static void child_setup(pid_t parent, int out_fd, int err_fd)
{
    static const char *const vars[] = {"NETWATCH_LISTEN",
                                       "NETWATCH_DB",
                                       "NETWATCH_TOKEN_FILE",
                                       "NETWATCH_PUBLIC_URL",
                                       "NETWATCH_LOG_LEVEL",
                                       "NETWATCH_READY_FILE",
                                       "NETWATCH_DISPATCH_DEADLINE_SECONDS"};

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    if (out_fd >= 0)
        dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0)
        dup2(err_fd, STDERR_FILENO);
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    signal(SIGPIPE, SIG_DFL);
}

static int open_log(const struct nw_server *s)
{
    return open(s->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

int nw_server_init(struct nw_server *s, const char *bin)
{
    const char *tmp = getenv("TMPDIR");

    memset(s, 0, sizeof(*s));
    s->log_level = "info";
    if (snprintf(s->bin, sizeof(s->bin), "%s", bin) >= (int)sizeof(s->bin))
        return -1;
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "harness: %s is not an executable: %s\n", bin, strerror(errno));
        return -1;
    }
    snprintf(s->dir, sizeof(s->dir), "%s/nwtest.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(s->dir) == NULL) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        return -1;
    }
    snprintf(s->db, sizeof(s->db), "%s/netwatch.db", s->dir);
    snprintf(s->token_file, sizeof(s->token_file), "%s/tokens", s->dir);
    snprintf(s->ready_file, sizeof(s->ready_file), "%s/ready", s->dir);
    snprintf(s->log_file, sizeof(s->log_file), "%s/server.log", s->dir);
    nw_guid(s->sub);
    nw_guid(s->othersub);
    return nw_server_add_token(s, s->sub, s->token, sizeof(s->token));
}

int nw_server_add_token(struct nw_server *s, const char *subs, char *out, size_t outsz)
{
    int pfd[2];
    pid_t pid, parent = getpid();
    char buf[4096];
    size_t n = 0;
    int status = 0, logfd;

    if (pipe(pfd) != 0)
        return -1;
    logfd = open_log(s);
    pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        if (logfd >= 0)
            close(logfd);
        return -1;
    }
    if (pid == 0) {
        child_setup(parent, pfd[1], logfd);
        execl(s->bin, s->bin, "token", "add", "--token-file", s->token_file, "--subscriptions",
              subs, "--name", "nwtest", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    if (logfd >= 0)
        close(logfd);
    for (;;) {
        ssize_t got = read(pfd[0], buf + n, sizeof(buf) - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
        if (n == sizeof(buf) - 1)
            break;
    }
    close(pfd[0]);
    buf[n] = '\0';
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "harness: `netwatchd token add` failed (status %d)\n", status);
        nw_server_dump_log(s, 4096);
        return -1;
    }
    /* The token is the last non-empty line printed. */
    char *line = NULL, *save = NULL;
    for (char *p = strtok_r(buf, "\r\n", &save); p; p = strtok_r(NULL, "\r\n", &save)) {
        while (isspace((unsigned char)*p))
            p++;
        size_t l = strlen(p);
        while (l > 0 && isspace((unsigned char)p[l - 1]))
            p[--l] = '\0';
        if (l > 0)
            line = p;
    }
    if (line == NULL || strlen(line) >= outsz) {
        fprintf(stderr, "harness: `netwatchd token add` printed no usable token\n");
        return -1;
    }
    memcpy(out, line, strlen(line) + 1);
    return 0;
}

void nw_server_dump_log(const struct nw_server *s, size_t max_bytes)
{
    size_t len = 0;
    char *text = nw_read_file(s->log_file, &len);

    if (text == NULL)
        return;
    const char *from = len > max_bytes ? text + len - max_bytes : text;
    fprintf(stderr, "----- %s (last %zu bytes) -----\n%s\n----- end of server log -----\n",
            s->log_file, len > max_bytes ? max_bytes : len, from);
    free(text);
}

/* Reads the port once the ready file holds a whole number ("1234\n", or unchanged twice). */
static int read_port(const char *path, char *prev, size_t prevsz)
{
    char *text = nw_read_file(path, NULL);
    int port = 0;

    if (text == NULL)
        return 0;
    size_t l = strlen(text);
    int complete = (l > 0 && text[l - 1] == '\n') || (l > 0 && strcmp(prev, text) == 0);
    snprintf(prev, prevsz, "%s", text);
    if (complete) {
        char *end;
        errno = 0;
        long v = strtol(text, &end, 10);
        while (*end && isspace((unsigned char)*end))
            end++;
        if (errno == 0 && end != text && *end == '\0' && v > 0 && v <= 65535)
            port = (int)v;
    }
    free(text);
    return port;
}

int nw_server_start(struct nw_server *s)
{
    return nw_server_start_on(s, 0, NULL);
}

int nw_server_start_on(struct nw_server *s, int port, const char *const *extra)
{
    const char *argv[32];
    int argc = 0;
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);

    argv[argc++] = "--listen";
    argv[argc++] = listen;
    argv[argc++] = "--ready-file";
    argv[argc++] = s->ready_file;
    argv[argc++] = "--db";
    argv[argc++] = s->db;
    argv[argc++] = "--token-file";
    argv[argc++] = s->token_file;
    argv[argc++] = "--log-level";
    argv[argc++] = s->log_level ? s->log_level : "info";
    if (s->public_url[0]) {
        argv[argc++] = "--public-url";
        argv[argc++] = s->public_url;
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        if (argc + 1 >= (int)(sizeof(argv) / sizeof(argv[0]))) {
            fprintf(stderr, "harness: too many server options\n");
            return -1;
        }
        argv[argc++] = extra[i];
    }
    argv[argc] = NULL;
    return nw_server_start_argv(s, argv, NULL);
}

int nw_server_start_argv(struct nw_server *s, const char *const *args, const char *const *env)
{
    const char *argv[40];
    int argc = 0, logfd;
    pid_t parent = getpid();
    char prev[64] = "";
    long long deadline;

    if (s->pid != 0) {
        fprintf(stderr, "harness: server already running\n");
        return -1;
    }
    unlink(s->ready_file);
    argv[argc++] = s->bin;
    for (size_t i = 0; args && args[i] && argc < 39; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;

    logfd = open_log(s);
    if (logfd >= 0) {
        char mark[128];
        int ml = snprintf(mark, sizeof(mark), "===== harness: start #%d =====\n", s->starts + 1);
        if (write(logfd, mark, (size_t)ml) < 0)
            ml = 0;
    }
    s->pid = fork();
    if (s->pid < 0) {
        s->pid = 0;
        if (logfd >= 0)
            close(logfd);
        return -1;
    }
    if (s->pid == 0) {
        child_setup(parent, logfd, logfd);
        for (size_t i = 0; env && env[i]; i++) {
            char kv[NW_PATH_MAX * 2];
            snprintf(kv, sizeof(kv), "%s", env[i]);
            char *eq = strchr(kv, '=');
            if (eq) {
                *eq = '\0';
                setenv(kv, eq + 1, 1);
            }
        }
        execv(s->bin, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    if (logfd >= 0)
        close(logfd);

    deadline = nw_now_ms() + NW_READY_TIMEOUT_S * 1000LL;
    while (nw_now_ms() < deadline) {
        int status;
        pid_t w = waitpid(s->pid, &status, WNOHANG);
        if (w == s->pid) {
            fprintf(stderr, "harness: netwatchd exited before it was ready (status %d)\n", status);
            s->pid = 0;
            nw_server_dump_log(s, 8192);
            return -1;
        }
        s->port = read_port(s->ready_file, prev, sizeof(prev));
        if (s->port > 0) {
            snprintf(s->base_url, sizeof(s->base_url), "http://127.0.0.1:%d", s->port);
            s->starts++;
            return 0;
        }
        nw_sleep_ms(10);
    }
    fprintf(stderr, "harness: netwatchd did not write %s within %d s\n", s->ready_file,
            NW_READY_TIMEOUT_S);
    nw_server_kill(s);
    nw_server_dump_log(s, 8192);
    return -1;
}

static int reap(struct nw_server *s, int timeout_ms, int *status)
{
    long long deadline = nw_now_ms() + timeout_ms;

    for (;;) {
        pid_t w = waitpid(s->pid, status, WNOHANG);
        if (w == s->pid)
            return 0;
        if (w < 0 && errno != EINTR)
            return -1;
        if (nw_now_ms() >= deadline)
            return -1;
        nw_sleep_ms(5);
    }
}

int nw_server_stop(struct nw_server *s)
{
    return nw_server_stop_signal(s, SIGTERM);
}

int nw_server_stop_signal(struct nw_server *s, int sig)
{
    int status = 0;

    if (s->pid == 0)
        return 0;
    kill(s->pid, sig);
    if (reap(s, NW_STOP_TIMEOUT_S * 1000, &status) != 0) {
        fprintf(stderr, "harness: netwatchd ignored signal %d for %d s; killing it\n", sig,
                NW_STOP_TIMEOUT_S);
        nw_server_kill(s);
        nw_server_dump_log(s, 8192);
        return -1;
    }
    s->pid = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (WIFSIGNALED(status))
            fprintf(stderr, "harness: netwatchd died of signal %d on signal %d\n", WTERMSIG(status),
                    sig);
        else
            fprintf(stderr, "harness: netwatchd exited with %d on signal %d (want 0)\n",
                    WEXITSTATUS(status), sig);
        nw_server_dump_log(s, 16384);
        return -1;
    }
    return 0;
}

int nw_server_kill(struct nw_server *s)
{
    int status;

    if (s->pid == 0)
        return 0;
    kill(s->pid, SIGKILL);
    if (reap(s, 10000, &status) != 0)
        return -1;
    s->pid = 0;
    return 0;
}

void nw_server_cleanup(struct nw_server *s)
{
    const char *keep = getenv("NW_KEEP_TMP");

    nw_server_kill(s);
    if (s->dir[0] == '\0')
        return;
    if (keep && *keep)
        fprintf(stderr, "harness: keeping %s\n", s->dir);
    else
        nw_remove_tree(s->dir);
    s->dir[0] = '\0';
}

int nw_server_request(const struct nw_server *s, const char *method, const char *target,
                      const char *body, const char *token, struct nw_response *out)
{
    struct nw_request req = {0};

    req.method = method;
    req.target = target;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    req.token = token == NULL ? s->token : (*token ? token : NULL);
    return nw_http(s->base_url, &req, out);
}

static int is_terminal(const char *status)
{
    return status && (strcasecmp(status, "Succeeded") == 0 || strcasecmp(status, "Failed") == 0 ||
                      strcasecmp(status, "Canceled") == 0);
}

json_t *nw_server_wait_operation(const struct nw_server *s, const char *aao_url, int timeout_s)
{
    const char *target = nw_url_target(aao_url);
    long long deadline = nw_now_ms() + timeout_s * 1000LL;

    if (target == NULL)
        return NULL;
    while (nw_now_ms() < deadline) {
        struct nw_response r;
        if (nw_server_request(s, "GET", target, NULL, NULL, &r) == 0 && r.status == 200 &&
            json_is_object(r.json) &&
            is_terminal(json_string_value(json_object_get(r.json, "status")))) {
            json_t *ret = json_incref(r.json);
            nw_response_free(&r);
            return ret;
        }
        nw_response_free(&r);
        nw_sleep_ms(20);
    }
    return NULL;
}

int nw_server_wait_location(const struct nw_server *s, const char *location_url, int timeout_s,
                            struct nw_response *out)
{
    const char *target = nw_url_target(location_url);
    long long deadline = nw_now_ms() + timeout_s * 1000LL;

    memset(out, 0, sizeof(*out));
    if (target == NULL)
        return -1;
    for (;;) {
        if (nw_server_request(s, "GET", target, NULL, NULL, out) == 0 && out->status != 202)
            return 0;
        if (nw_now_ms() >= deadline)
            return -1;
        nw_response_free(out);
        nw_sleep_ms(20);
    }
}
