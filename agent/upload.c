/*
 * upload.c - one capture file to one block blob through a SAS URL (see upload.h): Put Blob or
 * Put Block + Put Block List over libcurl, Content-MD5 by OpenSSL, retries with backoff, and a
 * journal of staged blocks for resuming after a restart.
 */
#include "agent/upload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/dynbuf.h"

#define DEF_ATTEMPTS      8
#define DEF_BACKOFF_MS    500L
#define DEF_BACKOFF_MAX   30000L
#define DEF_BUDGET_MS     300000L
#define DEF_CONNECT_MS    10000L
#define DEF_STALL_S       60L
#define BLOCK_ID_FMT      "nwblk-%06u" /* 12 bytes: base64 without padding, 16 characters */
#define BLOCK_ID_B64      17           /* 16 characters and the NUL */
#define JOURNAL_MAGIC     "nw-upload-journal 1"
#define JOURNAL_MAX       (64 * 1024 + (size_t)UPLOAD_BLOCKS_MAX * 8) /* header + one line each */
#define ERROR_CODE_MAX    64                                          /* x-ms-error-code kept */
#define BLOCK_LIST_ENTRY  (sizeof("<Latest></Latest>") - 1 + BLOCK_ID_B64 - 1)
#define BLOCK_LIST_HEADER "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>"
#define BLOCK_LIST_FOOTER "</BlockList>"

/* How one attempt of a request ended. */
enum outcome {
    OUT_OK,        /* the status we wanted */
    OUT_RETRY,     /* network failure, 408, 429, 5xx: worth another attempt */
    OUT_FORBIDDEN, /* 403: the SAS is refused */
    OUT_FAIL,      /* any other answer */
};

struct upload {
    const char *sas_url;             /* borrowed */
    char blob_url[UPLOAD_URL_MAX];   /* sas_url up to the '?': safe to show */
    CURL *curl;                      /* owned; one connection reused for every request */
    struct upload_opts o;            /* with defaults filled in */
    struct upload_stats *st;         /* never NULL (points at a local when the caller's is) */
    int fd;                          /* the file, O_RDONLY */
    int jfd;                         /* the journal, O_APPEND; -1 without one */
    unsigned char *staged;           /* owned: one flag per block, from the journal */
    long status;                     /* of the last reply; 0 when none came */
    char error_code[ERROR_CODE_MAX]; /* x-ms-error-code of the last reply */
    char curl_error[CURL_ERROR_SIZE];
};

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int stopped(const struct upload *u)
{
    return u->o.stop != NULL && atomic_load(u->o.stop) != 0;
}

/* Sleeps ms, in slices, so that a stop is seen soon. Returns -1 when stopped. */
static int pause_ms(const struct upload *u, long ms)
{
    long until = now_ms() + ms;

    for (long left = ms; left > 0; left = until - now_ms()) {
        long slice = left < 100 ? left : 100;
        struct timespec ts = {slice / 1000, (slice % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        if (stopped(u))
            return -1;
    }
    return stopped(u) ? -1 : 0;
}

/* Keeps the x-ms-error-code header: the service's reason, e.g. AuthenticationFailed. */
static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    struct upload *u = arg;
    size_t len = size * n;
    static const char name[] = "x-ms-error-code:";

    if (len > sizeof(name) - 1 && strncasecmp(buf, name, sizeof(name) - 1) == 0) {
        const char *v = buf + sizeof(name) - 1;
        size_t vl = len - (sizeof(name) - 1);
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        if (vl >= sizeof(u->error_code))
            vl = sizeof(u->error_code) - 1;
        memcpy(u->error_code, v, vl);
        u->error_code[vl] = '\0';
    }
    return len;
}

/* Reply bodies (XML error details) are not needed: the header has the code. */
static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
    (void)buf;
    (void)arg;
    return size * n;
}

/* base64 of the MD5 of data, into out (25 bytes). */
static int md5_b64(const void *data, size_t len, char out[25])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(data, len, md, &n, EVP_md5(), NULL) != 1 || n != 16)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, md, (int)n) == 24 ? 0 : -1;
}

/* One attempt: method PUT to url with headers and body. */
static enum outcome perform(struct upload *u, const char *url, struct curl_slist *headers,
                            const void *body, size_t len)
{
    CURLcode rc;

    u->status = 0;
    u->error_code[0] = '\0';
    u->curl_error[0] = '\0';
    u->st->requests++;
    curl_easy_setopt(u->curl, CURLOPT_URL, url);
    curl_easy_setopt(u->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(u->curl, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDS, len ? body : "");
    curl_easy_setopt(u->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    rc = curl_easy_perform(u->curl);
    if (rc != CURLE_OK) {
        if (u->curl_error[0] == '\0')
            snprintf(u->curl_error, sizeof(u->curl_error), "%s", curl_easy_strerror(rc));
        return OUT_RETRY;
    }
    curl_easy_getinfo(u->curl, CURLINFO_RESPONSE_CODE, &u->status);
    if (u->status == 201)
        return OUT_OK;
    if (u->status == 408 || u->status == 429 || u->status >= 500)
        return OUT_RETRY;
    return u->status == 403 ? OUT_FORBIDDEN : OUT_FAIL;
}

/* "status 503 (ServerBusy)" or curl's message, for error texts. */
static void describe_last(const struct upload *u, char *out, size_t outsz)
{
    if (u->status == 0)
        snprintf(out, outsz, "%s", u->curl_error[0] ? u->curl_error : "no reply");
    else if (u->error_code[0])
        snprintf(out, outsz, "status %ld (%s)", u->status, u->error_code);
    else
        snprintf(out, outsz, "status %ld", u->status);
}

/* A request with retries. Returns CP_OK, or fails err with what to tell the user; the last
 * reply's status and error code stay in u->status / u->error_code. */
static enum cp_err request(struct upload *u, const char *what, const char *url,
                           struct curl_slist *headers, const void *body, size_t len,
                           struct cp_error *err)
{
    long started = now_ms();
    long backoff = u->o.backoff_initial_ms;
    char last[CURL_ERROR_SIZE + 64];
    int attempt;

    for (attempt = 1;; attempt++) {
        if (stopped(u))
            return cp_fail(err, CP_EBUSY, "StorageFailed", NULL, "upload to %s stopped before %s",
                           u->blob_url, what);
        enum outcome out = perform(u, url, headers, body, len);
        if (out == OUT_OK) {
            u->st->bytes_sent += len;
            return CP_OK;
        }
        describe_last(u, last, sizeof(last));
        if (out == OUT_FORBIDDEN)
            return cp_fail(err, CP_EFORBIDDEN, "StorageFailed", NULL,
                           "storage refused %s of %s: %s; the SAS is expired, for another blob "
                           "or not valid",
                           what, u->blob_url, last);
        if (out == OUT_FAIL)
            return cp_fail(err, CP_EIO, "StorageFailed", NULL, "storage refused %s of %s: %s", what,
                           u->blob_url, last);
        if (attempt >= u->o.max_attempts || now_ms() - started >= u->o.retry_budget_ms)
            break;
        /* Equal jitter: half the backoff for sure, the other half at random, so that agents
         * cut off together do not all come back at the same instant. */
        unsigned int r = 0;
        if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
            r = 0;
        long wait = backoff / 2 + (long)(r % (unsigned int)(backoff / 2 + 1));
        if (pause_ms(u, wait) != 0)
            return cp_fail(err, CP_EBUSY, "StorageFailed", NULL,
                           "upload to %s stopped while retrying %s", u->blob_url, what);
        u->st->retries++;
        backoff = backoff * 2 > u->o.backoff_max_ms ? u->o.backoff_max_ms : backoff * 2;
    }
    return cp_fail(err, CP_EIO, "StorageFailed", NULL,
                   "%s of %s failed %d times over %ld ms; last: %s", what, u->blob_url, attempt,
                   now_ms() - started, last);
}

/* Base headers of every request, plus extra (NULL-terminated). NULL when out of memory. */
static struct curl_slist *headers_with(const char *const *extra)
{
    static const char *const base[] = {"x-ms-version: " UPLOAD_API_VERSION,
                                       /* No 100-continue round trip before each block. */
                                       "Expect:", NULL};
    struct curl_slist *h = NULL;

    for (size_t i = 0; base[i]; i++) {
        struct curl_slist *n = curl_slist_append(h, base[i]);
        if (n == NULL)
            goto fail;
        h = n;
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        struct curl_slist *n = curl_slist_append(h, extra[i]);
        if (n == NULL)
            goto fail;
        h = n;
    }
    return h;
fail:
    curl_slist_free_all(h);
    return NULL;
}

/* Sends data (len bytes) as what, to url, with its Content-MD5 and the given extra header. */
static enum cp_err put_body(struct upload *u, const char *what, const char *url, const char *extra,
                            const void *data, size_t len, struct cp_error *err)
{
    char md5[25], md5_header[48];
    const char *hdrs[] = {"Content-Type: application/octet-stream", md5_header, extra, NULL};
    struct curl_slist *h;
    enum cp_err rc;

    if (md5_b64(data, len, md5) != 0)
        return cp_fail(err, CP_EIO, "StorageFailed", NULL, "MD5 failed");
    snprintf(md5_header, sizeof(md5_header), "Content-MD5: %s", md5);
    h = headers_with(hdrs);
    if (h == NULL)
        return cp_fail(err, CP_ENOMEM, "StorageFailed", NULL, "out of memory");
    rc = request(u, what, url, h, data, len, err);
    curl_slist_free_all(h);
    return rc;
}

/* Reads exactly len bytes at off into buf. */
static enum cp_err read_at(struct upload *u, const char *path, void *buf, size_t len, uint64_t off,
                           struct cp_error *err)
{
    size_t got = 0;

    while (got < len) {
        ssize_t n = pread(u->fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return cp_fail(err, CP_EINVAL, "StorageFailed", NULL, "cannot read %s at byte %llu: %s",
                           path, (unsigned long long)(off + got),
                           n < 0 ? strerror(errno) : "file shrank");
        got += (size_t)n;
    }
    return CP_OK;
}

static void block_id(uint32_t index, char out[BLOCK_ID_B64])
{
    char raw[24]; /* 12 used: the index is below UPLOAD_BLOCKS_MAX, six digits */

    snprintf(raw, sizeof(raw), BLOCK_ID_FMT, index);
    EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)raw, 12);
}

/* sas_url + "&" + query; NULL when out of memory or too long. */
static char *url_with(const struct upload *u, const char *query)
{
    struct dynbuf b;

    dynbuf_init(&b, UPLOAD_URL_MAX + 256);
    dynbuf_printf(&b, "%s&%s", u->sas_url, query);
    char *s = dynbuf_take(&b);
    dynbuf_free(&b);
    return s;
}

/* ---- journal ---------------------------------------------------------------------------- */

static void journal_header(const struct upload *u, char *out, size_t outsz)
{
    snprintf(out, outsz, JOURNAL_MAGIC " size=%llu block=%zu url=%s\n",
             (unsigned long long)u->st->size, u->o.block_size, u->blob_url);
}

/* Marks in u->staged the blocks a journal for this very upload lists. A journal for anything
 * else (another file size, block size or blob), or unreadable, is started afresh. A torn last
 * line (no newline: the agent died mid-write) is ignored. */
static enum cp_err journal_open(struct upload *u, struct cp_error *err)
{
    char header[UPLOAD_URL_MAX + 128];
    char *text = NULL;
    int matches = 0;
    int fd;

    journal_header(u, header, sizeof(header));
    fd = open(u->o.journal_path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        struct stat st;
        if (fstat(fd, &st) == 0 && (size_t)st.st_size <= JOURNAL_MAX &&
            (text = malloc((size_t)st.st_size + 1)) != NULL) {
            ssize_t n = read(fd, text, (size_t)st.st_size);
            text[n > 0 ? n : 0] = '\0';
            matches = n > 0 && strncmp(text, header, strlen(header)) == 0;
        }
        close(fd);
    }
    if (matches) {
        for (char *line = text + strlen(header); *line;) {
            char *nl = strchr(line, '\n');
            if (nl == NULL)
                break;
            *nl = '\0';
            char *end = NULL;
            errno = 0;
            unsigned long i = strtoul(line, &end, 10);
            if (errno == 0 && end != line && *end == '\0' && line[0] != '-' && i < u->st->blocks)
                u->staged[i] = 1;
            line = nl + 1;
        }
    }
    free(text);

    u->jfd = open(u->o.journal_path,
                  O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (matches ? 0 : O_TRUNC), 0600);
    if (u->jfd < 0)
        return cp_fail(err, CP_EIO, "StorageFailed", NULL, "cannot open upload journal %s: %s",
                       u->o.journal_path, strerror(errno));
    if (!matches && (write(u->jfd, header, strlen(header)) != (ssize_t)strlen(header) ||
                     fdatasync(u->jfd) != 0))
        return cp_fail(err, CP_EIO, "StorageFailed", NULL, "cannot write upload journal %s: %s",
                       u->o.journal_path, strerror(errno));
    return CP_OK;
}

/* Records block i as staged; durable before the next block is sent. */
static enum cp_err journal_add(struct upload *u, uint32_t i, struct cp_error *err)
{
    char line[16];
    int n = snprintf(line, sizeof(line), "%u\n", i);

    if (u->jfd < 0)
        return CP_OK;
    if (write(u->jfd, line, (size_t)n) != n || fdatasync(u->jfd) != 0)
        return cp_fail(err, CP_EIO, "StorageFailed", NULL, "cannot write upload journal %s: %s",
                       u->o.journal_path, strerror(errno));
    return CP_OK;
}

/* Forgets every staged block (the service lost them): the journal keeps its header only. */
static enum cp_err journal_reset(struct upload *u, struct cp_error *err)
{
    char header[UPLOAD_URL_MAX + 128];

    memset(u->staged, 0, u->st->blocks);
    if (u->jfd < 0)
        return CP_OK;
    journal_header(u, header, sizeof(header));
    if (ftruncate(u->jfd, 0) != 0 ||
        write(u->jfd, header, strlen(header)) != (ssize_t)strlen(header) || fdatasync(u->jfd) != 0)
        return cp_fail(err, CP_EIO, "StorageFailed", NULL, "cannot reset upload journal %s: %s",
                       u->o.journal_path, strerror(errno));
    return CP_OK;
}

/* ---- the two ways up ---------------------------------------------------------------------- */

static void progress(const struct upload *u, uint64_t done)
{
    if (u->o.progress)
        u->o.progress(u->o.progress_arg, done, u->st->size);
}

static enum cp_err put_blob(struct upload *u, const char *path, struct cp_error *err)
{
    size_t len = (size_t)u->st->size;
    void *buf = malloc(len ? len : 1);
    enum cp_err rc;

    if (buf == NULL)
        return cp_fail(err, CP_ENOMEM, "StorageFailed", NULL, "out of memory");
    rc = read_at(u, path, buf, len, 0, err);
    if (rc == CP_OK)
        rc = put_body(u, "Put Blob", u->sas_url, "x-ms-blob-type: BlockBlob", buf, len, err);
    free(buf);
    if (rc == CP_OK)
        progress(u, len);
    return rc;
}

/* Stages every block not marked in u->staged. */
static enum cp_err stage_blocks(struct upload *u, const char *path, void *buf, struct cp_error *err)
{
    uint64_t done = 0;

    for (uint32_t i = 0; i < u->st->blocks; i++) {
        uint64_t off = (uint64_t)i * u->o.block_size;
        size_t len =
            (size_t)(u->st->size - off < u->o.block_size ? u->st->size - off : u->o.block_size);
        char id[BLOCK_ID_B64], query[96], what[48];
        enum cp_err rc;

        if (u->staged[i]) {
            u->st->blocks_skipped++;
            done += len;
            continue;
        }
        block_id(i, id);
        char *enc = curl_easy_escape(u->curl, id, 0);
        if (enc == NULL)
            return cp_fail(err, CP_ENOMEM, "StorageFailed", NULL, "out of memory");
        snprintf(query, sizeof(query), "comp=block&blockid=%s", enc);
        curl_free(enc);
        char *url = url_with(u, query);
        if (url == NULL)
            return cp_fail(err, CP_ENOMEM, "StorageFailed", NULL, "out of memory");
        snprintf(what, sizeof(what), "Put Block %u/%u", i + 1, u->st->blocks);
        rc = read_at(u, path, buf, len, off, err);
        if (rc == CP_OK)
            rc = put_body(u, what, url, NULL, buf, len, err);
        free(url);
        if (rc != CP_OK)
            return rc;
        u->staged[i] = 1;
        u->st->blocks_put++;
        rc = journal_add(u, i, err);
        if (rc != CP_OK)
            return rc;
        done += len;
        progress(u, done);
    }
    return CP_OK;
}

/* Put Block List naming blocks 0..n-1. *lost is set when the service answered 400
 * InvalidBlockList (it no longer has a block the list names). */
static enum cp_err commit_blocks(struct upload *u, int *lost, struct cp_error *err)
{
    static const char *const hdrs[] = {"Content-Type: application/xml", NULL};
    struct dynbuf xml;
    struct curl_slist *h = NULL;
    char *url = NULL;
    enum cp_err rc;

    *lost = 0;
    dynbuf_init(&xml, sizeof(BLOCK_LIST_HEADER) + sizeof(BLOCK_LIST_FOOTER) +
                          (size_t)u->st->blocks * BLOCK_LIST_ENTRY);
    dynbuf_addstr(&xml, BLOCK_LIST_HEADER);
    for (uint32_t i = 0; i < u->st->blocks; i++) {
        char id[BLOCK_ID_B64];
        block_id(i, id);
        dynbuf_printf(&xml, "<Latest>%s</Latest>", id);
    }
    dynbuf_addstr(&xml, BLOCK_LIST_FOOTER);
    url = url_with(u, "comp=blocklist");
    h = headers_with(hdrs);
    if (xml.failed || url == NULL || h == NULL) {
        rc = cp_fail(err, CP_ENOMEM, "StorageFailed", NULL, "out of memory");
    } else {
        rc = request(u, "Put Block List", url, h, xml.s, xml.len, err);
        if (rc == CP_EIO && u->status == 400 && strcmp(u->error_code, "InvalidBlockList") == 0)
            *lost = 1;
    }
    curl_slist_free_all(h);
    free(url);
    dynbuf_free(&xml);
    return rc;
}

static enum cp_err put_blocks(struct upload *u, const char *path, struct cp_error *err)
{
    void *buf = malloc(u->o.block_size);
    enum cp_err rc = CP_OK;
    int lost = 0;

    u->staged = calloc(u->st->blocks, 1);
    if (buf == NULL || u->staged == NULL)
        rc = cp_fail(err, CP_ENOMEM, "StorageFailed", NULL, "out of memory");
    if (rc == CP_OK && u->o.journal_path)
        rc = journal_open(u, err);
    if (rc == CP_OK)
        rc = stage_blocks(u, path, buf, err);
    if (rc == CP_OK)
        rc = commit_blocks(u, &lost, err);
    /* The journal named blocks the service has dropped (expired, or its store was reset):
     * send them all again, once. */
    if (rc != CP_OK && lost && u->st->blocks_skipped > 0) {
        u->st->restaged = 1;
        u->st->blocks_skipped = 0;
        rc = journal_reset(u, err);
        if (rc == CP_OK)
            rc = stage_blocks(u, path, buf, err);
        if (rc == CP_OK)
            rc = commit_blocks(u, &lost, err);
    }
    if (rc == CP_OK)
        progress(u, u->st->size);
    free(buf);
    return rc;
}

/* ---- entry point -------------------------------------------------------------------------- */

static enum cp_err fill_opts(struct upload *u, const struct upload_opts *in, struct cp_error *err)
{
    if (in)
        u->o = *in;
    if (u->o.block_size == 0)
        u->o.block_size = UPLOAD_BLOCK_SIZE_DEFAULT;
    if (u->o.block_size < UPLOAD_BLOCK_SIZE_MIN || u->o.block_size > UPLOAD_BLOCK_SIZE_MAX)
        return cp_fail(err, CP_EINVAL, "StorageFailed", "blockSize",
                       "block size must be %u to %u bytes", UPLOAD_BLOCK_SIZE_MIN,
                       UPLOAD_BLOCK_SIZE_MAX);
    if (u->o.single_put_max == 0)
        u->o.single_put_max = u->o.block_size;
    if (u->o.single_put_max > UPLOAD_BLOCK_SIZE_MAX)
        return cp_fail(err, CP_EINVAL, "StorageFailed", "singlePutMax",
                       "single Put Blob limit must be at most %u bytes", UPLOAD_BLOCK_SIZE_MAX);
    if (u->o.max_attempts <= 0)
        u->o.max_attempts = DEF_ATTEMPTS;
    if (u->o.backoff_initial_ms <= 0)
        u->o.backoff_initial_ms = DEF_BACKOFF_MS;
    if (u->o.backoff_max_ms <= 0)
        u->o.backoff_max_ms = DEF_BACKOFF_MAX;
    if (u->o.backoff_max_ms < u->o.backoff_initial_ms)
        u->o.backoff_max_ms = u->o.backoff_initial_ms;
    if (u->o.retry_budget_ms <= 0)
        u->o.retry_budget_ms = DEF_BUDGET_MS;
    if (u->o.connect_timeout_ms <= 0)
        u->o.connect_timeout_ms = DEF_CONNECT_MS;
    if (u->o.stall_timeout_s <= 0)
        u->o.stall_timeout_s = DEF_STALL_S;
    return CP_OK;
}

static enum cp_err setup_curl(struct upload *u, struct cp_error *err)
{
    u->curl = curl_easy_init();
    if (u->curl == NULL)
        return cp_fail(err, CP_ENOMEM, "StorageFailed", NULL, "curl_easy_init failed");
    curl_easy_setopt(u->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(u->curl, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(u->curl, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(u->curl, CURLOPT_CONNECTTIMEOUT_MS, u->o.connect_timeout_ms);
    curl_easy_setopt(u->curl, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(u->curl, CURLOPT_LOW_SPEED_TIME, u->o.stall_timeout_s);
    curl_easy_setopt(u->curl, CURLOPT_ERRORBUFFER, u->curl_error);
    curl_easy_setopt(u->curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(u->curl, CURLOPT_HEADERDATA, u);
    curl_easy_setopt(u->curl, CURLOPT_WRITEFUNCTION, on_body);
    if (u->o.ca_file)
        curl_easy_setopt(u->curl, CURLOPT_CAINFO, u->o.ca_file);
    return CP_OK;
}

enum cp_err upload_file(const char *path, const char *sas_url, const struct upload_opts *opts,
                        struct upload_stats *stats, struct cp_error *err)
{
    struct upload_stats local;
    struct upload u;
    struct stat st;
    const char *q;
    enum cp_err rc;

    memset(&u, 0, sizeof(u));
    memset(&local, 0, sizeof(local));
    u.st = stats ? stats : &local;
    memset(u.st, 0, sizeof(*u.st));
    u.fd = -1;
    u.jfd = -1;
    u.sas_url = sas_url;

    q = sas_url ? strchr(sas_url, '?') : NULL;
    if (q == NULL || strlen(sas_url) >= UPLOAD_URL_MAX ||
        (strncmp(sas_url, "https://", 8) != 0 && strncmp(sas_url, "http://", 7) != 0))
        return cp_fail(err, CP_EINVAL, "StorageFailed", "storagePath",
                       "the upload URL is not an http(s) SAS URL of at most %d bytes",
                       UPLOAD_URL_MAX - 1);
    snprintf(u.blob_url, sizeof(u.blob_url), "%.*s", (int)(q - sas_url), sas_url);
    rc = fill_opts(&u, opts, err);
    if (rc != CP_OK)
        return rc;

    u.fd = open(path, O_RDONLY | O_CLOEXEC);
    if (u.fd < 0 || fstat(u.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cp_fail(err, CP_EINVAL, "StorageFailed", NULL, "cannot open %s for upload: %s", path,
                     u.fd < 0 ? strerror(errno) : "not a regular file");
        goto cleanup;
    }
    u.st->size = (uint64_t)st.st_size;
    if (u.st->size > u.o.single_put_max) {
        uint64_t blocks = (u.st->size + u.o.block_size - 1) / u.o.block_size;
        if (blocks > UPLOAD_BLOCKS_MAX) {
            rc = cp_fail(err, CP_ETOOBIG, "StorageFailed", NULL,
                         "%s needs %llu blocks of %zu bytes; a blob holds at most %u", path,
                         (unsigned long long)blocks, u.o.block_size, UPLOAD_BLOCKS_MAX);
            goto cleanup;
        }
        u.st->blocks = (uint32_t)blocks;
    }
    rc = setup_curl(&u, err);
    if (rc != CP_OK)
        goto cleanup;
    rc = u.st->blocks ? put_blocks(&u, path, err) : put_blob(&u, path, err);
    if (rc == CP_OK && u.o.journal_path && unlink(u.o.journal_path) != 0 && errno != ENOENT)
        rc = cp_fail(err, CP_EIO, "StorageFailed", NULL, "cannot remove upload journal %s: %s",
                     u.o.journal_path, strerror(errno));

cleanup:
    if (u.jfd >= 0)
        close(u.jfd);
    if (u.fd >= 0)
        close(u.fd);
    curl_easy_cleanup(u.curl);
    free(u.staged);
    return rc;
}
