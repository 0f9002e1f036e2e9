/*
 * ring.c - continuous capture end to end: captures created through netwatchd's API (PUT with
 * continuousCapture true and captureSettings, localPath under /var/captures), run by the real
 * netwatch-agent on the loopback interface with real UDP traffic:
 *
 *   (a) rotation: fileCount 3, fileSizeInBytes 1000, bytesToCapturePerPacket 128, 100 marked
 *       datagrams (about 8 files' worth), stopped through the API: Stopped/Manual; exactly 3 ring
 *       files on disk (no partial), contiguous numbers, each at most 1000 bytes, valid pcap read
 *       back with libpcap, holding the newest datagrams in order and ending with the last one;
 *       every record cut at 128 bytes at most; the agent's completion lists each of them with its
 *       size and SHA-256 (its log, event=capture_file); captureDetails says 3 files.
 *   (b) disk full: the ring's directory is a 64 KiB tmpfs (the test runs in a mount namespace of
 *       its own, which the agent inherits): the capture ends Error/LocalFileFailed by itself and
 *       the agent stays connected;
 *   (c) sessionTimeLimitInSeconds 2: the next ring, on the same agent, ends Stopped/TimeExceeded
 *       2-5 s after it started;
 *   (d) the agent is SIGKILLed mid-ring and started again: the ring goes on with the next file
 *       numbers; stopped, it keeps the newest 3 files across both lives (contiguous numbers, the
 *       last datagram sent after the restart in the newest) and lists them with their SHA-256.
 *
 *   (e) an ordinary capture with bytesToCapturePerPacket 64 and totalBytesPerSession 670 (ten
 *       64-byte records and 30 bytes): ends Stopped/SessionBytesExceeded by itself with exactly the
 *       first 10 datagrams in its file, each cut at 64 bytes with its wire length kept.
 *
 *   it_ring NETWATCHD NETWATCH_AGENT     (needs root for the mount namespace; exits 77 without)
 */
/* _GNU_SOURCE: unshare(2) and mount flags; memmem; pcap.h's BSD types. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pcap/pcap.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/agent_proc.h"
#include "tests/integration/captures.h"
#include "tests/integration/harness.h"
#include "tests/integration/traffic.h"

#define API       "2024-07-01"
#define WAIT_MS   15000
#define RING_SIZE 1000
#define SNAP      128
#define SENT      100

static struct nw_server srv;
static const char *agent_bin;
static char nw[NW_WATCHER_MAX];

/* PUTs a continuous capture `name` on vm1 (UDP to port) into /var/captures/<path> and waits for
 * Succeeded. 0 or -1. */
static int create_ring(const char *name, const char *path, int port, int count, int size,
                       int seconds)
{
    char body[1500], t[700];
    snprintf(body, sizeof(body),
             "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/rg1/providers/"
             "Microsoft.Compute/virtualMachines/vm1\",\"bytesToCapturePerPacket\":%d,"
             "\"storageLocation\":{\"localPath\":\"/var/captures/%s\"},\"continuousCapture\":true,"
             "\"captureSettings\":{\"fileCount\":%d,\"fileSizeInBytes\":%d,"
             "\"sessionTimeLimitInSeconds\":%d},"
             "\"filters\":[{\"protocol\":\"UDP\",\"localPort\":\"%d\"}]}}",
             srv.sub, SNAP, path, count, size, seconds, port);
    snprintf(t, sizeof(t), "%s/packetCaptures/%s?api-version=" API, nw, name);
    struct nw_response r;
    long code = nw_server_request(&srv, "PUT", t, body, NULL, &r) == 0 ? r.status : 0;
    const char *aao = nw_response_header(&r, "Azure-AsyncOperation");
    char op[600];
    snprintf(op, sizeof(op), "%s", aao ? aao : "");
    int ok = NW_CHECK(code == 201 && op[0], "PUT %s: %ld %.300s", name, code, r.body ? r.body : "");
    nw_response_free(&r);
    return ok && nw_operation_ends(&srv, op, 15, "Succeeded", NULL, NULL) ? 0 : -1;
}

/* queryStatus of name (owned JSON, NULL when it did not answer 200). */
static json_t *query(const char *name)
{
    char t[700];
    snprintf(t, sizeof(t), "%s/packetCaptures/%s/queryStatus?api-version=" API, nw, name);
    struct nw_response r;
    json_t *j = NULL;
    if (nw_server_request(&srv, "POST", t, NULL, NULL, &r) == 0 && r.status == 200 && r.json)
        j = json_incref(r.json);
    nw_response_free(&r);
    return j;
}

/* Waits (up to ms) until name is neither Running nor Unknown; its final queryStatus (owned). */
static json_t *wait_ended(const char *name, long ms)
{
    long long end = nw_now_ms() + ms;
    json_t *j = NULL;
    while (nw_now_ms() < end) {
        json_decref(j);
        j = query(name);
        const char *st = nw_json_str(j, "packetCaptureStatus");
        if (st && strcmp(st, "Running") != 0 && strcmp(st, "Unknown") != 0 &&
            strcmp(st, "NotStarted") != 0)
            return j;
        nw_sleep_ms(200);
    }
    return j;
}

/* Sends datagrams "netwatch:<tag>:<i>:" + pad bytes, i = 0..n-1, to port, paced (10, then
 * pause_ms), so the capture keeps up with its file rotations. */
static void send_paced(int port, const char *tag, int n, int pause_ms, int pad)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    char msg[1500];
    for (int i = 0; fd >= 0 && i < n; i++) {
        int len = snprintf(msg, sizeof(msg), "netwatch:%s:%d:", tag, i);
        memset(msg + len, 'x', (size_t)pad);
        (void)sendto(fd, msg, (size_t)(len + pad), 0, (struct sockaddr *)&to, sizeof(to));
        if (i % 10 == 9)
            nw_sleep_ms(pause_ms);
    }
    if (fd >= 0)
        close(fd);
}

/* The marks (i of netwatch:<tag>:<i>:) of the pcap file at path, in order, into v (max); their
 * count, or -1 when libpcap cannot read the file to its end. Every caplen must be <= SNAP. */
static int read_marks(const char *path, const char *tag, int *v, int max)
{
    char err[PCAP_ERRBUF_SIZE], needle[64];
    int k = snprintf(needle, sizeof(needle), "netwatch:%s:", tag);
    pcap_t *p = pcap_open_offline(path, err);
    if (!p)
        return -1;
    struct pcap_pkthdr *h;
    const u_char *d;
    int n = 0, rc;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
        NW_CHECK(h->caplen <= SNAP && h->len >= h->caplen, "%s: record of %u/%u bytes", path,
                 h->caplen, h->len);
        const u_char *m = memmem(d, h->caplen, needle, (size_t)k);
        if (m && n < max)
            v[n++] = atoi((const char *)m + k); /* digits then ':' within caplen */
    }
    pcap_close(p);
    return rc == PCAP_ERROR_BREAK ? n : -1;
}

static void sha256_file(const char *path, char out[65])
{
    out[0] = '\0';
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char buf[16384], md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    size_t n;
    int ok = f && ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    while (ok && (n = fread(buf, 1, sizeof(buf), f)) > 0)
        ok = EVP_DigestUpdate(ctx, buf, n) == 1;
    if (ok && !ferror(f) && EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == 32)
        for (unsigned i = 0; i < len; i++)
            snprintf(out + 2 * i, 3, "%02x", md[i]);
    EVP_MD_CTX_free(ctx);
    if (f)
        fclose(f);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names in dir starting with prefix, sorted (at most max, strdup'ed); partial files counted in
 * *partials. */
static int list_dir(const char *dir, const char *prefix, char **names, int max, int *partials)
{
    DIR *d = opendir(dir);
    int n = 0;
    *partials = 0;
    for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
        if (strstr(de->d_name, ".partial"))
            (*partials)++;
        else if (strncmp(de->d_name, prefix, strlen(prefix)) == 0 && n < max)
            names[n++] = strdup(de->d_name);
    }
    if (d)
        closedir(d);
    qsort(names, (size_t)n, sizeof(*names), by_name);
    return n;
}

/*
 * The files of ring `prefix` in captures/ring: exactly 3, no partial, contiguous numbers, each
 * at most RING_SIZE, read whole by libpcap, datagrams marked tag in order ending with #sent-1,
 * each listed by the agent's completion with its size and SHA-256. Returns the newest number.
 */
static int check_kept(const char *prefix, const char *tag, int sent)
{
    char dir[NW_PATH_MAX + 64];
    snprintf(dir, sizeof(dir), "%s/captures/ring", srv.dir);
    char *names[16];
    int partials;
    int n = list_dir(dir, prefix, names, 16, &partials);
    NW_CHECK(n == 3 && partials == 0, "%d %s files and %d partial files in %s, want 3 and 0", n,
             prefix, partials, dir);
    int next = -1, last_seq = 0, total = 0;
    size_t plen = strlen(prefix);
    for (int i = 0; i < n; i++) {
        char path[NW_PATH_MAX + 400];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        int seq = atoi(names[i] + plen);
        NW_CHECK(i == 0 || seq == last_seq + 1, "%s follows number %d", names[i], last_seq);
        last_seq = seq;
        struct stat sb;
        NW_CHECK(stat(path, &sb) == 0 && sb.st_size <= RING_SIZE, "%s is %lld bytes, over %d",
                 names[i], (long long)sb.st_size, RING_SIZE);
        int marks[64];
        int m = read_marks(path, tag, marks, 64);
        NW_CHECK(m >= 0, "%s: libpcap cannot read it whole", names[i]);
        for (int k = 0; k < m; k++) {
            NW_CHECK(next < 0 || marks[k] == next, "%s: packet #%d where #%d was next", names[i],
                     marks[k], next);
            next = marks[k] + 1;
        }
        total += m > 0 ? m : 0;
        /* The completion listed it with its size and SHA-256. */
        char sha[65], line[NW_PATH_MAX + 200];
        sha256_file(path, sha);
        snprintf(line, sizeof(line), "file=\"/var/captures/ring/%s\" bytes=%lld sha256=%s",
                 names[i], (long long)sb.st_size, sha);
        NW_CHECK(nw_agent_log_count(&srv, "vm1", line) == 1, "no completion entry %s", line);
        free(names[i]);
    }
    NW_CHECK(next == sent, "the newest file ends before packet #%d (next %d)", sent - 1, next);
    fprintf(stderr, "%s: %d files made, %d kept with %s #%d-#%d\n", prefix, last_seq, n, tag,
            sent - total, sent - 1);
    return last_seq;
}

/* (a) */
static void rotation(void)
{
    int port = 23000 + (int)(getpid() % 20000);
    if (create_ring("ring1", "ring/r1.cap", port, 3, RING_SIZE, 60) != 0)
        return;
    send_paced(port, "ring", SENT, 50, 0);
    nw_sleep_ms(1500); /* written once the capture thread has seen them */
    char loc[700];
    nw_capture_stop(&srv, nw, "ring1", loc, sizeof(loc), NULL, 0);
    json_t *j = wait_ended("ring1", WAIT_MS);
    const char *st = nw_json_str(j, "packetCaptureStatus"), *why = nw_json_str(j, "stopReason");
    NW_CHECK(st && why && strcmp(st, "Stopped") == 0 && strcmp(why, "Manual") == 0,
             "ring1 ended %s/%s, want Stopped/Manual", st ? st : "-", why ? why : "-");
    json_t *files = nw_json_get(j, "captureDetails.files");
    NW_CHECK(json_integer_value(files) == 3, "captureDetails.files %lld, want 3",
             (long long)json_integer_value(files));
    json_decref(j);

    int made = check_kept("r1_", "ring", SENT);
    NW_CHECK(made >= 6, "only %d files were made; the test wants at least 6", made);
}

/* (d) */
static void restarted(pid_t *agent)
{
    int port = 26000 + (int)(getpid() % 20000);
    if (create_ring("ring4", "ring/r4.cap", port, 3, RING_SIZE, 60) != 0)
        return;
    send_paced(port, "life1", 40, 50, 0);
    nw_sleep_ms(1500);
    nw_agent_kill(*agent);
    static const char *const extra[] = {"--interfaces", "lo", "--progress-interval", "1", NULL};
    *agent = nw_agent_start_argv(&srv, agent_bin, "vm1", extra);
    NW_CHECK(nw_agent_wait_log(&srv, "vm1", "event=ring_restored", 1, WAIT_MS),
             "the ring was not restored");
    NW_CHECK(nw_agent_wait_log(&srv, "vm1", "event=capture_resumed", 1, WAIT_MS),
             "the ring was not resumed");
    send_paced(port, "life2", 40, 50, 0);
    nw_sleep_ms(1500);
    char loc[700];
    nw_capture_stop(&srv, nw, "ring4", loc, sizeof(loc), NULL, 0);
    json_t *j = wait_ended("ring4", WAIT_MS);
    const char *st = nw_json_str(j, "packetCaptureStatus"), *why = nw_json_str(j, "stopReason");
    NW_CHECK(st && why && strcmp(st, "Stopped") == 0 && strcmp(why, "Manual") == 0,
             "ring4 ended %s/%s, want Stopped/Manual", st ? st : "-", why ? why : "-");
    json_decref(j);
    /* 40 datagrams of the second life fill more than the 3 files kept: all are hers. */
    int made = check_kept("r4_", "life2", 40);
    NW_CHECK(made >= 7, "only %d files over both lives", made);
}

/* (e) */
static void byte_limit(void)
{
    int port = 27000 + (int)(getpid() % 20000);
    struct nw_created c;
    if (nw_capture_put(&srv, nw, "bytes1", "vm1", port,
                       "\"bytesToCapturePerPacket\":64,\"totalBytesPerSession\":670,", &c) != 0 ||
        !nw_operation_ends(&srv, c.aao, 15, "Succeeded", NULL, NULL))
        return;
    send_paced(port, "bytes", 30, 50, 100); /* frames of ~160 bytes, cut to 64 */
    json_t *j = wait_ended("bytes1", WAIT_MS);
    const char *st = nw_json_str(j, "packetCaptureStatus"), *why = nw_json_str(j, "stopReason");
    NW_CHECK(st && why && strcmp(st, "Stopped") == 0 && strcmp(why, "SessionBytesExceeded") == 0,
             "bytes1 ended %s/%s, want Stopped/SessionBytesExceeded", st ? st : "-",
             why ? why : "-");
    json_decref(j);
    char path[NW_PATH_MAX + 64], err[PCAP_ERRBUF_SIZE];
    snprintf(path, sizeof(path), "%s/captures/bytes1.cap", srv.dir);
    pcap_t *p = pcap_open_offline(path, err);
    if (!NW_CHECK(p != NULL, "%s: %s", path, err))
        return;
    struct pcap_pkthdr *h;
    const u_char *d;
    int n = 0, rc;
    long long sum = 0;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
        char want[32];
        int k = snprintf(want, sizeof(want), "netwatch:bytes:%d:", n);
        NW_CHECK(h->caplen == 64 && h->len > 100 && memmem(d, h->caplen, want, (size_t)k),
                 "record %d: %u of %u bytes, not datagram #%d", n, h->caplen, h->len, n);
        sum += h->caplen;
        n++;
    }
    pcap_close(p);
    NW_CHECK(rc == PCAP_ERROR_BREAK && n == 10 && sum <= 670 && sum + 64 > 670,
             "bytes1.cap: %d records, %lld captured bytes for a limit of 670", n, sum);
    fprintf(stderr, "bytes1: %d records of 64 bytes, %lld bytes for a limit of 670\n", n, sum);
}

/* (b) */
static void disk_full(const char *full)
{
    int port = 24000 + (int)(getpid() % 20000);
    if (create_ring("ring2", "full/f.cap", port, 100, 8192, 60) != 0)
        return;
    send_paced(port, "full", 1500, 10, 0); /* records of ~80 bytes: ~120 KB for 64 KiB */
    json_t *j = wait_ended("ring2", WAIT_MS);
    const char *st = nw_json_str(j, "packetCaptureStatus");
    json_t *errs = json_object_get(j, "packetCaptureError");
    const char *code = json_string_value(json_array_get(errs, 0));
    NW_CHECK(st && code && strcmp(st, "Error") == 0 && strcmp(code, "LocalFileFailed") == 0,
             "ring2 ended %s/%s, want Error/LocalFileFailed", st ? st : "-", code ? code : "-");
    json_decref(j);
    NW_CHECK(nw_agent_log_count(&srv, "vm1", "No space left on device") >= 1,
             "the agent did not say the disk was full");
    int partials;
    char *names[128];
    int n = list_dir(full, "f_", names, 128, &partials);
    NW_CHECK(partials == 0 && n >= 1, "%d partial files, %d completed in the full tmpfs", partials,
             n);
    for (int i = 0; i < n; i++)
        free(names[i]);
}

/* (c) */
static void time_limit(void)
{
    int port = 25000 + (int)(getpid() % 20000);
    long long t0 = nw_now_ms();
    if (create_ring("ring3", "ring/r3.cap", port, 2, RING_SIZE, 2) != 0)
        return;
    send_paced(port, "time", 20, 50, 0);
    json_t *j = wait_ended("ring3", WAIT_MS);
    long long took = nw_now_ms() - t0;
    const char *st = nw_json_str(j, "packetCaptureStatus"), *why = nw_json_str(j, "stopReason");
    NW_CHECK(st && why && strcmp(st, "Stopped") == 0 && strcmp(why, "TimeExceeded") == 0,
             "ring3 ended %s/%s, want Stopped/TimeExceeded", st ? st : "-", why ? why : "-");
    NW_CHECK(took >= 2000 && took <= 5000, "ring3 took %lld ms for a 2 s session", took);
    json_decref(j);
}

int main(int argc, char **argv)
{
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root for a mount namespace\n");
        return 77;
    }
    /* Before any thread: a mount namespace of our own (the agent inherits it) for the tmpfs. */
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
        perror("mount namespace");
        return 1;
    }
    int rc = nw_agent_test_begin(argc, argv, &srv, &agent_bin);
    if (rc != 0)
        return rc;
    char id[64], root[NW_PATH_MAX], full[NW_PATH_MAX + 8];
    nw_agent_root(&srv, root, sizeof(root));
    snprintf(full, sizeof(full), "%s/full", root);
    int mounted = mkdir(full, 0750) == 0 && mount("tmpfs", full, "tmpfs", 0, "size=64k") == 0;
    NW_CHECK(mounted, "cannot mount a tmpfs on %s", full);
    static const char *const extra[] = {"--interfaces", "lo", "--progress-interval", "1", NULL};
    if (mounted && nw_agent_add(&srv, "vm1", id, sizeof(id)) == 0 &&
        nw_watcher_put(&srv, nw) == 0) {
        pid_t agent = nw_agent_start_argv(&srv, agent_bin, "vm1", extra);
        if (NW_CHECK(nw_agent_wait_connected(&srv, id, 1, WAIT_MS), "the agent did not connect")) {
            rotation();
            disk_full(full);
            NW_CHECK(nw_agent_connected(&srv, id) == 1, "the agent left after the disk filled");
            time_limit();
            restarted(&agent);
            byte_limit();
        }
        NW_CHECK(nw_agent_stop(agent) == 0, "agent did not exit 0 within 5 s of SIGTERM");
    }
    if (mounted)
        umount2(full, MNT_DETACH);
    return nw_agent_test_end(&srv, "ring");
}
