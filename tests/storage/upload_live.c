/*
 * upload_live.c - the agent's blob uploader (agent/upload.c) against a real Azurite, with SAS
 * URLs signed by storage/sas.c as the server will sign them ("cw", one blob).
 *
 *   it_storage_upload <node> <azurite blob main.js>
 *
 * Every upload is checked by downloading the blob (with a separate read SAS) and comparing its
 * SHA-256 with the file's. Request counts come from Azurite's own access log, not from the
 * uploader. Cases: a small file (one Put Blob), an empty one, a multi-block one (many small
 * blocks, then one Put Block List); a crash (SIGKILL) halfway, then a resume that sends only
 * the missing blocks; a stale journal (blocks the service lost: all sent again); Azurite stopped
 * mid-upload and restarted on the same port and workspace; an expired SAS and another blob's SAS
 * (StorageFailed, no retry); nothing listening (retries exhausted, bounded).
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <sys/socket.h>

#include "agent/upload.h"
#include "tests/integration/harness.h"
#include "tests/storage/azurite.h"
#include "tests/storage/blob_fixture.h"

#define BLOCK (16u * 1024u)

static struct nw_azurite az;
static char dir[512];

/* Writes len random bytes to dir/name; returns the SHA-256 hex in sha. */
static int make_file(const char *name, size_t len, char *path, size_t pathsz, char sha[65])
{
    unsigned char *buf = malloc(len ? len : 1);
    FILE *f = NULL;
    int rc = -1;

    snprintf(path, pathsz, "%s/%s", dir, name);
    if (buf == NULL || RAND_bytes(buf, (int)len) != 1 || (f = fopen(path, "wb")) == NULL) {
        free(buf);
        return -1;
    }
    if (fwrite(buf, 1, len, f) == len)
        rc = 0;
    if (fclose(f) != 0)
        rc = -1;
    nw_sha256_hex(buf, len, sha);
    free(buf);
    return rc;
}

/* 1 when the blob downloads with the given SHA-256 and length. */
static int blob_matches(const char *blob, const char *sha, size_t want_len)
{
    char *body = NULL;
    size_t len = 0;
    char got[65] = "";
    long status = nw_blob_download(&az, NW_BLOB_CONTAINER, blob, &body, &len);

    if (status == 200)
        nw_sha256_hex(body ? body : "", len, got);
    free(body);
    if (status != 200 || len != want_len || strcmp(got, sha) != 0) {
        printf("  blob %s: status %ld, %zu bytes (want %zu), sha256 %s (want %s)\n", blob, status,
               len, want_len, got, sha);
        return 0;
    }
    return 1;
}

/* Requests Azurite logged for blob whose query holds what (e.g. "comp=block&") and that it
 * answered 201. Azurite writes a line once its reply is out, so the client may see the reply
 * first: wait (up to 3 s) for at least want lines, then a little longer for any extra ones. */
static long logged(const char *blob, const char *what, long want)
{
    char path[512];
    const char *needles[] = {path, what, "\" 201 ", NULL};
    long long deadline = nw_now_ms() + 3000;
    long n;

    snprintf(path, sizeof(path), "/%s/%s?", NW_BLOB_CONTAINER, blob);
    while ((n = nw_azurite_count(&az, needles)) >= 0 && n < want && nw_now_ms() < deadline)
        nw_sleep_ms(20);
    nw_sleep_ms(100);
    return nw_azurite_count(&az, needles);
}

struct progress_log {
    uint64_t last, total;
    int calls, backwards;
};

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
    struct progress_log *p = arg;

    if (done < p->last)
        p->backwards++;
    p->last = done;
    p->total = total;
    p->calls++;
}

static struct upload_opts test_opts(void)
{
    struct upload_opts o = {
        .block_size = BLOCK,
        .backoff_initial_ms = 100,
        .backoff_max_ms = 1000,
        .max_attempts = 40,
        .retry_budget_ms = 60000,
        .connect_timeout_ms = 2000,
    };
    return o;
}

static void small_and_empty(void)
{
    static const size_t sizes[] = {1000, 0, BLOCK};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        char name[64], path[1024], sha[65];
        struct upload_opts o = test_opts();
        struct upload_stats st;
        struct cp_error e = {0};

        snprintf(name, sizeof(name), "small/%zu.cap", sizes[i]);
        if (!NW_CHECK(make_file(name + 6, sizes[i], path, sizeof(path), sha) == 0, "file"))
            return;
        char *url = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, name, "cw", 600);
        NW_CHECK(upload_file(path, url, &o, &st, &e) == CP_OK, "upload %s: %s", name, e.message);
        NW_CHECK(st.blocks == 0 && st.requests == 1 && st.bytes_sent == sizes[i],
                 "%s: one Put Blob (blocks %u, requests %u, sent %llu)", name, st.blocks,
                 st.requests, (unsigned long long)st.bytes_sent);
        NW_CHECK(logged(name, "sv=", 1) == 1, "Azurite saw one request for %s", name);
        NW_CHECK(blob_matches(name, sha, sizes[i]), "%s byte-identical", name);
        free(url);
    }
}

static void multi_block(void)
{
    const char *blob = "multi/big.cap";
    const size_t size = 64 * BLOCK + 123; /* 65 blocks, the last one short */
    char path[1024], sha[65];
    struct upload_opts o = test_opts();
    struct progress_log pl = {0};
    struct upload_stats st;
    struct cp_error e = {0};

    if (!NW_CHECK(make_file("big.cap", size, path, sizeof(path), sha) == 0, "file"))
        return;
    o.progress = on_progress;
    o.progress_arg = &pl;
    char *url = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, blob, "cw", 600);
    NW_CHECK(upload_file(path, url, &o, &st, &e) == CP_OK, "upload: %s", e.message);
    NW_CHECK(st.blocks == 65 && st.blocks_put == 65 && st.blocks_skipped == 0,
             "blocks %u put %u skipped %u", st.blocks, st.blocks_put, st.blocks_skipped);
    long staged = logged(blob, "comp=block&", 65);
    NW_CHECK(staged == 65, "Azurite staged %ld blocks", staged);
    NW_CHECK(logged(blob, "comp=blocklist", 1) == 1, "one Put Block List");
    NW_CHECK(pl.calls >= 65 && pl.backwards == 0 && pl.last == size && pl.total == size,
             "progress: %d calls, %d backwards, last %llu of %llu", pl.calls, pl.backwards,
             (unsigned long long)pl.last, (unsigned long long)pl.total);
    NW_CHECK(blob_matches(blob, sha, size), "multi-block blob byte-identical");
    free(url);
}

/* The child's progress callback: dies like a crashed agent once half the blocks are up. */
static void die_at_half(void *arg, uint64_t done, uint64_t total)
{
    (void)arg;
    if (done >= total / 2)
        raise(SIGKILL);
}

static void crash_and_resume(void)
{
    const char *blob = "resume/crash.cap";
    const size_t size = 40 * BLOCK;
    char path[1024], journal[1024], sha[65];
    struct upload_opts o = test_opts();
    struct upload_stats st;
    struct cp_error e = {0};
    int status = 0;
    pid_t pid;

    if (!NW_CHECK(make_file("crash.cap", size, path, sizeof(path), sha) == 0, "file"))
        return;
    snprintf(journal, sizeof(journal), "%s/crash.cap.upload", dir);
    o.journal_path = journal;
    char *url = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, blob, "cw", 600);

    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        struct upload_opts co = o;
        co.progress = die_at_half;
        if (upload_file(path, url, &co, NULL, &e) != CP_OK)
            _exit(3);
        _exit(4); /* finished: the callback did not kill us */
    }
    NW_CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "child");
    NW_CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "child crashed (status %d)",
             status);
    long first = logged(blob, "comp=block&", 20);
    NW_CHECK(first == 20, "the crashed run staged %ld blocks (want 20)", first);
    NW_CHECK(access(journal, F_OK) == 0, "journal left by the crash");

    /* A new SAS for the same blob, as a restarted agent would get. */
    free(url);
    url = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, blob, "cw", 600);
    NW_CHECK(upload_file(path, url, &o, &st, &e) == CP_OK, "resume: %s", e.message);
    NW_CHECK(st.blocks_skipped == 20 && st.blocks_put == 20 && !st.restaged,
             "resume skipped %u, put %u, restaged %d", st.blocks_skipped, st.blocks_put,
             st.restaged);
    NW_CHECK(logged(blob, "comp=blocklist", 1) == 1, "one Put Block List");
    long total = logged(blob, "comp=block&", 40);
    NW_CHECK(total == 40, "Azurite saw %ld Put Block in all (want 40: none sent twice)", total);
    NW_CHECK(access(journal, F_OK) != 0, "journal removed after the commit");
    NW_CHECK(blob_matches(blob, sha, size), "resumed blob byte-identical");
    printf("  crash+resume: %ld Put Block before the crash, %ld after\n", first, total - first);
    free(url);
}

/* A journal that claims blocks the service never got (as after uncommitted blocks expired):
 * the commit is refused with InvalidBlockList, and every block is sent again, once. A journal
 * of another block size is not trusted at all. */
static void stale_journal(void)
{
    static const char *const blobs[] = {"resume/stale-other-size.cap", "resume/stale.cap"};
    const size_t size = 6 * BLOCK;
    char path[1024], journal[1024], sha[65];
    struct upload_opts o = test_opts();
    struct upload_stats st;
    struct cp_error e = {0};
    FILE *f = NULL;

    if (!NW_CHECK(make_file("stale.cap", size, path, sizeof(path), sha) == 0, "file"))
        return;
    snprintf(journal, sizeof(journal), "%s/stale.cap.upload", dir);
    o.journal_path = journal;
    /* A fresh blob each pass: Put Block List also finds ids among a blob's committed blocks. */
    for (int pass = 0; pass < 2; pass++) {
        char *url = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, blobs[pass], "cw", 600);
        const char *q = url ? strchr(url, '?') : NULL;
        /* The journal's layout (docs/storage.md): a header line naming the upload, then one
         * staged block index per line. */
        if (!NW_CHECK(q && (f = fopen(journal, "w")) != NULL, "journal")) {
            free(url);
            break;
        }
        fprintf(f, "nw-upload-journal 1 size=%zu block=%u url=%.*s\n0\n1\n2\n", size,
                pass == 0 ? BLOCK * 2 : BLOCK, (int)(q - url), url);
        fclose(f);
        memset(&e, 0, sizeof(e));
        NW_CHECK(upload_file(path, url, &o, &st, &e) == CP_OK, "upload: %s", e.message);
        if (pass == 0)
            NW_CHECK(st.blocks_skipped == 0 && st.blocks_put == 6 && !st.restaged,
                     "another block size: nothing skipped (skipped %u, put %u)", st.blocks_skipped,
                     st.blocks_put);
        else
            NW_CHECK(st.restaged && st.blocks_put == 3 + 6,
                     "stale journal: restaged %d, put %u (want 3, then all 6 again)", st.restaged,
                     st.blocks_put);
        NW_CHECK(blob_matches(blobs[pass], sha, size), "blob byte-identical (pass %d)", pass);
        NW_CHECK(access(journal, F_OK) != 0, "journal removed");
        free(url);
    }
}

/* The emulator stops between two blocks and comes back 1 s later on the same port. (SIGTERM:
 * Azurite keeps its metadata in memory and saves it now and then, so a SIGKILL can lose the
 * container itself, which no real storage account would do.) */
struct outage {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int reached, released;
    uint32_t at_blocks;
};

static void hold_at(void *arg, uint64_t done, uint64_t total)
{
    struct outage *o = arg;

    (void)total;
    pthread_mutex_lock(&o->lock);
    if (!o->reached && done >= (uint64_t)o->at_blocks * BLOCK) {
        o->reached = 1;
        pthread_cond_broadcast(&o->cond);
        while (!o->released)
            pthread_cond_wait(&o->cond, &o->lock);
    }
    pthread_mutex_unlock(&o->lock);
}

struct upload_job {
    const char *path, *url;
    struct upload_opts o;
    struct upload_stats st;
    struct cp_error e;
    enum cp_err rc;
};

static void *run_upload(void *arg)
{
    struct upload_job *j = arg;

    j->rc = upload_file(j->path, j->url, &j->o, &j->st, &j->e);
    return NULL;
}

static void emulator_outage(void)
{
    const char *blob = "outage/big.cap";
    const size_t size = 48 * BLOCK + 7;
    char path[1024], journal[1024], sha[65];
    struct outage og = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 16};
    struct upload_job job;
    pthread_t t;
    int port = az.port;

    if (!NW_CHECK(make_file("outage.cap", size, path, sizeof(path), sha) == 0, "file"))
        return;
    snprintf(journal, sizeof(journal), "%s/outage.cap.upload", dir);
    memset(&job, 0, sizeof(job));
    job.path = path;
    char *url = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, blob, "cw", 600);
    job.url = url;
    job.o = test_opts();
    job.o.journal_path = journal;
    job.o.progress = hold_at;
    job.o.progress_arg = &og;
    if (!NW_CHECK(pthread_create(&t, NULL, run_upload, &job) == 0, "thread"))
        return;

    pthread_mutex_lock(&og.lock);
    while (!og.reached)
        pthread_cond_wait(&og.cond, &og.lock);
    pthread_mutex_unlock(&og.lock);
    long long before = nw_now_ms();
    NW_CHECK(nw_azurite_stop(&az) == 0, "Azurite stopped");
    pthread_mutex_lock(&og.lock);
    og.released = 1;
    pthread_cond_broadcast(&og.cond);
    pthread_mutex_unlock(&og.lock);
    nw_sleep_ms(1000);
    NW_CHECK(nw_azurite_start(&az, port) == 0 && az.port == port, "Azurite back on port %d", port);
    pthread_join(t, NULL);

    NW_CHECK(job.rc == CP_OK, "upload through the outage: %s", job.e.message);
    NW_CHECK(job.st.retries >= 1, "the outage cost retries (%u)", job.st.retries);
    NW_CHECK(blob_matches(blob, sha, size), "blob byte-identical after the outage");
    printf("  outage: %u retries, %u blocks put, %u skipped, restaged %d, %lld ms from kill\n",
           job.st.retries, job.st.blocks_put, job.st.blocks_skipped, job.st.restaged,
           nw_now_ms() - before);
    free(url);
}

static void refused_sas(void)
{
    char path[1024], sha[65];
    struct upload_opts o = test_opts();
    struct upload_stats st;
    struct cp_error e = {0};

    if (!NW_CHECK(make_file("refused.cap", 3 * BLOCK, path, sizeof(path), sha) == 0, "file"))
        return;

    char *expired = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, "refused/expired.cap", "cw", -60);
    NW_CHECK(upload_file(path, expired, &o, &st, &e) == CP_EFORBIDDEN, "expired SAS refused");
    NW_CHECK(st.requests == 1 && st.retries == 0, "a 403 is not retried (%u requests)",
             st.requests);
    NW_CHECK(strcmp(e.code, "StorageFailed") == 0, "code %s", e.code);
    NW_CHECK(strstr(e.message, "403") && strstr(e.message, "/refused/expired.cap") &&
                 !strstr(e.message, "sig="),
             "message names the status and the blob, not the SAS: %s", e.message);
    printf("  expired SAS: %s\n", e.message);
    free(expired);

    /* The SAS of one blob, used on another blob's URL. */
    char *mine = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, "refused/mine.cap", "cw", 600);
    char other[4096];
    snprintf(other, sizeof(other), "%s", mine ? mine : "");
    char *at = strstr(other, "mine.cap");
    if (NW_CHECK(at != NULL, "name in URL"))
        memcpy(at, "othr", 4);
    memset(&e, 0, sizeof(e));
    NW_CHECK(upload_file(path, other, &o, &st, &e) == CP_EFORBIDDEN,
             "another blob's SAS refused: %s", e.message);
    NW_CHECK(access(path, F_OK) == 0, "the local file is kept");
    free(mine);
}

/* A port nothing listens on: bound, read back, closed. */
static int dead_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int port = 0;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static void retries_exhausted(void)
{
    char path[1024], sha[65], url[4096];
    struct upload_opts o = test_opts();
    struct upload_stats st;
    struct cp_error e = {0};

    if (!NW_CHECK(make_file("unreachable.cap", 100, path, sizeof(path), sha) == 0, "file"))
        return;
    o.max_attempts = 4;
    o.backoff_initial_ms = 50;
    char *real = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, "unreachable.cap", "cw", 600);
    const char *query = real ? strchr(real, '?') : NULL;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s/%s/unreachable.cap%s", dead_port(),
             NW_AZURITE_ACCOUNT, NW_BLOB_CONTAINER, query ? query : "?x");
    long long t0 = nw_now_ms();
    NW_CHECK(upload_file(path, url, &o, &st, &e) == CP_EIO, "unreachable: %s", e.message);
    long long took = nw_now_ms() - t0;
    NW_CHECK(st.requests == 4 && st.retries == 3, "4 attempts (%u requests, %u retries)",
             st.requests, st.retries);
    NW_CHECK(strstr(e.message, "failed 4 times") != NULL && !strstr(e.message, "sig="),
             "message: %s", e.message);
    /* Backoff 50, 100, 200 ms with equal jitter: 175..350 ms of waiting in all. */
    NW_CHECK(took >= 170 && took < 5000, "took %lld ms", took);
    printf("  unreachable: %s (%lld ms)\n", e.message, took);
    free(real);
}

static void bad_input(void)
{
    struct cp_error e = {0};
    struct upload_opts o = test_opts();

    NW_CHECK(upload_file("/nonexistent/x.cap", "http://127.0.0.1:1/a/b?sig=x", &o, NULL, &e) ==
                 CP_EINVAL,
             "missing file");
    NW_CHECK(upload_file("/etc/hostname", "http://127.0.0.1:1/a/b", &o, NULL, &e) == CP_EINVAL,
             "URL without a SAS");
    NW_CHECK(upload_file("/etc/hostname", "file:///etc/passwd?x", &o, NULL, &e) == CP_EINVAL,
             "not http(s)");
    o.block_size = 10;
    NW_CHECK(upload_file("/etc/hostname", "http://127.0.0.1:1/a/b?x", &o, NULL, &e) == CP_EINVAL,
             "block size too small");
}

/* A stop set before the upload: nothing is sent, CP_EBUSY. */
static void stopped_early(void)
{
    char path[1024], sha[65];
    struct upload_opts o = test_opts();
    struct upload_stats st;
    struct cp_error e = {0};
    atomic_int stop = 1;

    if (!NW_CHECK(make_file("stopped.cap", 2 * BLOCK + 1, path, sizeof(path), sha) == 0, "file"))
        return;
    o.stop = &stop;
    char *url = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, "stopped.cap", "cw", 600);
    NW_CHECK(upload_file(path, url, &o, &st, &e) == CP_EBUSY, "stopped: %s", e.message);
    NW_CHECK(st.requests == 0, "nothing sent (%u requests)", st.requests);
    free(url);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("TMPDIR");

    if (argc != 3) {
        fprintf(stderr, "usage: %s <node> <azurite blob main.js>\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    snprintf(dir, sizeof(dir), "%s/nw-upload.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    if (nw_azurite_init(&az, argv[1], argv[2]) != 0 || nw_azurite_start(&az, 0) != 0) {
        nw_azurite_cleanup(&az);
        return 1;
    }
    printf("azurite on %s\n", az.base_url);
    if (NW_CHECK(nw_blob_container_create(&az, NW_BLOB_CONTAINER) == 0, "container")) {
        bad_input();
        stopped_early();
        small_and_empty();
        multi_block();
        crash_and_resume();
        stale_journal();
        refused_sas();
        retries_exhausted();
        emulator_outage();
    }
    if (nw_failures)
        nw_azurite_dump_log(&az, 4096);
    nw_azurite_stop(&az);
    nw_azurite_cleanup(&az);
    if (!getenv("NW_KEEP_TMP")) {
        char cmd[600];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", dir);
    }
    printf("%s: %d failure(s)\n", argv[0], nw_failures);
    return nw_failures ? 1 : 0;
}
