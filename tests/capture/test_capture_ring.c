/*
 * Continuous (ring) capture of the capture engine (agent/capture.c + agent/capture_ring.c) with
 * real packets: a network namespace holding a veth pair, the engine capturing on one end, frames
 * of a known size and an experimental ethertype (0x88b5, so nothing else the kernel sends is
 * captured) injected on the other end with libpcap, each carrying its number. Every file is read
 * back with libpcap.
 *
 * Cases, capturing at once the same 400 frames of FRAME bytes:
 *   rotate   3 files of 50 frames each (the size holds exactly 50): 8 files made, the newest 3
 *            kept (6, 7, 8: frames 250-399 in order), each exactly the size, none other on disk;
 *            stopped Manual; the result's sizes and SHA-256 are the files'.
 *   big      (on its own, 6 frames) a size smaller than one frame: each file holds one frame
 *            (the one exception to the size), 4 kept: the last 4 frames.
 *   time     sessionTimeLimitInSeconds 2: ends TimeExceeded after 2 s (+0.5 s), 2 files kept.
 *   full     a 64 KiB tmpfs and a ring of 100 files of 8 KiB: ends alone LocalFileFailed (No
 *            space left), the message says completed files stay, they do (valid pcap, whole
 *            frames), and the partial file is gone.
 *   exists   a new ring over the files of an earlier one is refused (CP_EEXIST, LocalFileFailed)
 *            and deletes nothing; the same ring resumed past them (first_seq, prior) starts.
 * Plus the naming rules (capture_ring_name / capture_ring_seq), no packets needed.
 *
 * Needs root (netns, mounts): exits 77 (skip) without it; as root every setup failure fails.
 */
/* _GNU_SOURCE: setns(2), unshare(2), mount flags; pcap.h needs the BSD types. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/capture.h"
#include "agent/capture_ring.h"

#define SKIP_CODE 77
#define FRAME     200 /* bytes per injected frame */
#define FRAMES    400
#define PER_FILE  50
#define REC       (16 + FRAME)          /* a frame's record on disk */
#define RING_SIZE (24 + PER_FILE * REC) /* holds exactly PER_FILE frames */
#define ETHERTYPE 0x88b5
#define FILTER    "ether proto 0x88b5"
#define SNAPLEN   256  /* > FRAME: frames stay whole, and the kernel ring holds many of them */
#define BIG_FIRST 1000 /* frames of the "big" case: BIG_FIRST .. BIG_FIRST + 5 */

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static char ns[32], if_cap[16], if_inj[16], root[128];
static const char *ip_cmd;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FATAL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* Runs "ip <args>" (split on spaces, no shell). */
static int ip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ip(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    char prog[64];
    snprintf(prog, sizeof(prog), "%s", ip_cmd);
    char *argv[24];
    int n = 0;
    argv[n++] = prog;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t && n < 23;
         t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        execv(ip_cmd, argv);
        _exit(127);
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    return 0;
}

/* The SHA-256 of the file at path as lower-case hex ("" when it cannot be read). */
static void sha256_file(const char *path, char out[65])
{
    out[0] = '\0';
    FILE *f = fopen(path, "rb");
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
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

static void cleanup(void)
{
    if (ns[0])
        (void)ip("netns del %s", ns);
    if (root[0]) {
        char full[160];
        snprintf(full, sizeof(full), "%s/full", root);
        (void)umount2(full, MNT_DETACH);
        pid_t pid = fork();
        if (pid == 0) {
            execl("/bin/rm", "rm", "-rf", "--", root, (char *)NULL);
            _exit(127);
        }
        if (pid > 0)
            (void)waitpid(pid, NULL, 0);
    }
}

/* Into a fresh network namespace with the veth pair up, and a private mount namespace with a
 * 64 KiB tmpfs at <root>/full; before any thread exists. */
static void setup(void)
{
    static const char *const where[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]) && !ip_cmd; i++)
        if (access(where[i], X_OK) == 0)
            ip_cmd = where[i];
    if (!ip_cmd)
        die("no ip(8) from iproute2");
    int pid = (int)getpid();
    snprintf(if_cap, sizeof(if_cap), "nwrA%d", pid);
    snprintf(if_inj, sizeof(if_inj), "nwrB%d", pid);
    snprintf(ns, sizeof(ns), "nwring%d", pid);
    atexit(cleanup);
    if (ip("netns add %s", ns) != 0)
        die("cannot create namespace %s", ns);
    if (ip("-n %s link add %s type veth peer name %s", ns, if_cap, if_inj) ||
        ip("-n %s link set %s addrgenmode none", ns, if_cap) ||
        ip("-n %s link set %s addrgenmode none", ns, if_inj) ||
        ip("-n %s link set %s up", ns, if_cap) || ip("-n %s link set %s up", ns, if_inj))
        die("cannot set up the veth pair");
    char path[96];
    snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0)
        die("setns %s: %s", ns, strerror(errno));
    close(fd);
    snprintf(root, sizeof(root), "/tmp/nw-ring-XXXXXX");
    if (!mkdtemp(root)) {
        root[0] = '\0';
        die("mkdtemp: %s", strerror(errno));
    }
    char full[160];
    snprintf(full, sizeof(full), "%s/full", root);
    if (mkdir(full, 0750) != 0 || unshare(CLONE_NEWNS) != 0 ||
        mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", full, "tmpfs", 0, "size=64k,mode=0750") != 0)
        die("tmpfs on %s: %s", full, strerror(errno));
}

/* ---- traffic ---- */

/* Injects frames first .. first + n - 1 on the injecting end; each carries its number. */
static void inject(int first, int n)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_create(if_inj, errbuf);
    if (!p || pcap_activate(p) < 0)
        die("cannot inject on %s: %s", if_inj, p ? pcap_geterr(p) : errbuf);
    unsigned char f[FRAME];
    memset(f, 0, sizeof(f));
    memset(f, 0xff, 6);                           /* broadcast: always received */
    memcpy(f + 6, "\x02\x00\x00\x00\x00\x02", 6); /* a local MAC */
    f[12] = ETHERTYPE >> 8;
    f[13] = ETHERTYPE & 0xff;
    memcpy(f + 14, "NWRING", 6);
    for (int i = first; i < first + n; i++) {
        uint32_t num = (uint32_t)i;
        memcpy(f + 20, &num, sizeof(num));
        if (pcap_inject(p, f, sizeof(f)) != (int)sizeof(f))
            die("inject: %s", pcap_geterr(p));
        if (i % 10 == 9)
            usleep(1000); /* paced: no drop is expected */
    }
    pcap_close(p);
}

/* ---- reading files back ---- */

/* The frame numbers of the pcap file root/rel, in order, into nums (max entries); the count,
 * or -1 when libpcap cannot read it whole. Checks every record is a whole FRAME. */
static int read_nums(const char *rel, int *nums, int max)
{
    char path[1200], errbuf[PCAP_ERRBUF_SIZE];
    snprintf(path, sizeof(path), "%s/%s", root, rel);
    pcap_t *p = pcap_open_offline(path, errbuf);
    if (!p) {
        fprintf(stderr, "  %s: %s\n", path, errbuf);
        return -1;
    }
    struct pcap_pkthdr *h;
    const u_char *d;
    int n = 0, rc;
    while ((rc = pcap_next_ex(p, &h, &d)) == 1) {
        CHECK(h->caplen == FRAME && h->len == FRAME, "%s: record of %u/%u bytes", rel, h->caplen,
              h->len);
        uint32_t num = 0;
        if (h->caplen >= 24)
            memcpy(&num, d + 20, sizeof(num));
        if (n < max)
            nums[n] = (int)num;
        n++;
    }
    CHECK(pcap_datalink(p) == DLT_EN10MB, "%s: link type %d", rel, pcap_datalink(p));
    pcap_close(p);
    return rc == PCAP_ERROR ? -1 : n; /* else -2: the end of the file */
}

/* Entries of root/dir whose name starts with prefix; prefix NULL: partial files. */
static int count_prefix(const char *dir, const char *prefix)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/%s", root, dir);
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d)) != NULL;) {
        size_t len = strlen(de->d_name);
        if (prefix ? strncmp(de->d_name, prefix, strlen(prefix)) == 0
                   : len > 8 && strcmp(de->d_name + len - 8, ".partial") == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

/* The result's files: on disk with that size and SHA-256, seqs contiguous and ending at last. */
static void check_files(const char *what, const char *base, const struct capture_file *fs, size_t n,
                        uint32_t last)
{
    for (size_t i = 0; i < n; i++) {
        const char *slash = strrchr(fs[i].path, '/');
        uint32_t seq = capture_ring_seq(base, slash ? slash + 1 : fs[i].path);
        CHECK(seq == last - (uint32_t)(n - 1 - i), "[%s] file %zu is '%s' (seq %u), want seq %u",
              what, i, fs[i].path, seq, last - (uint32_t)(n - 1 - i));
        char path[1200], sha[65];
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", root, fs[i].path);
        CHECK(stat(path, &st) == 0 && (uint64_t)st.st_size == fs[i].size,
              "[%s] %s: size on disk %lld, reported %llu", what, fs[i].path, (long long)st.st_size,
              (unsigned long long)fs[i].size);
        if (stat(path, &st) == 0) {
            sha256_file(path, sha);
            CHECK(strcmp(sha, fs[i].sha256) == 0, "[%s] %s: SHA-256 %s, reported %s", what,
                  fs[i].path, sha, fs[i].sha256);
        }
    }
}

/* ---- the cases ---- */

struct rcase {
    const char *name, *base;
    uint32_t count;
    uint64_t size;
    uint32_t time_limit_s;
    struct capture *c;
};

static struct rcase cases[] = {
    {"rotate", "rot/r.cap", 3, RING_SIZE, 0, NULL},
    {"time", "time/t", 2, RING_SIZE, 2, NULL},
    {"full", "full/f.cap", 100, 8192, 0, NULL},
    {"big", "big/b.cap", 4, 100, 0, NULL}, /* started on its own, after the others */
};
#define NCASES   4
#define CASE_BIG 3

/* Starts cases [from, to). */
static void start_cases(size_t from, size_t to)
{
    const char *lst[] = {if_cap};
    for (size_t i = from; i < to; i++) {
        struct capture_ring ring = {.file_count = cases[i].count, .file_size = cases[i].size};
        struct capture_params p = {.root_dir = root,
                                   .file_path = cases[i].base,
                                   .snaplen = SNAPLEN,
                                   .time_limit_s = cases[i].time_limit_s,
                                   .interfaces = lst,
                                   .n_interfaces = 1,
                                   .filter = FILTER,
                                   .ring = &ring};
        struct cp_error e;
        if (capture_start(&p, &cases[i].c, &e) != CP_OK)
            die("[%s] start: %s: %s", cases[i].name, e.code, e.message);
    }
}

/* Waits until c has written want packets (or ended, or 10 s passed). */
static void wait_packets(struct capture *c, uint64_t want)
{
    for (int i = 0; i < 1000; i++) {
        struct capture_stats s;
        capture_progress(c, &s);
        struct pollfd pfd = {capture_done_fd(c), POLLIN, 0};
        if (s.packets >= want || poll(&pfd, 1, 0) == 1)
            return;
        usleep(10000);
    }
}

static void check_rotate(struct rcase *t)
{
    wait_packets(t->c, FRAMES);
    capture_stop(t->c);
    capture_wait(t->c);
    const struct capture_result *r = capture_result(t->c);
    CHECK(r->error == CAPTURE_ERR_NONE && r->reason == CAPTURE_STOP_MANUAL, "[rotate] %s/%s: %s",
          capture_error_name(r->error), capture_stop_reason_name(r->reason), r->message);
    CHECK(r->stats.packets == FRAMES && r->stats.drops == 0, "[rotate] %llu packets, %llu drops",
          (unsigned long long)r->stats.packets, (unsigned long long)r->stats.drops);
    CHECK(r->n_files == 3 && r->stats.files == 3, "[rotate] %zu files kept (stats %u), want 3",
          r->n_files, r->stats.files);
    check_files("rotate", t->base, r->files, r->n_files, FRAMES / PER_FILE);
    for (size_t i = 0; i < r->n_files; i++) {
        int nums[PER_FILE + 8];
        int n = read_nums(r->files[i].path, nums, PER_FILE + 8);
        CHECK(r->files[i].size == RING_SIZE, "[rotate] %s is %llu bytes, want exactly %d",
              r->files[i].path, (unsigned long long)r->files[i].size, RING_SIZE);
        CHECK(n == PER_FILE, "[rotate] %s holds %d frames", r->files[i].path, n);
        int first = FRAMES - PER_FILE * (int)(r->n_files - i);
        for (int k = 0; k < n && k < PER_FILE; k++)
            CHECK(nums[k] == first + k, "[rotate] %s frame %d is #%d, want #%d", r->files[i].path,
                  k, nums[k], first + k);
    }
    CHECK(count_prefix("rot", "r_") == 3, "[rotate] %d ring files on disk, want 3",
          count_prefix("rot", "r_"));
    CHECK(count_prefix("rot", NULL) == 0, "[rotate] a partial file is left");
}

static void check_big(struct rcase *t)
{
    inject(BIG_FIRST, 6);
    wait_packets(t->c, 6);
    capture_stop(t->c);
    capture_wait(t->c);
    const struct capture_result *r = capture_result(t->c);
    CHECK(r->error == CAPTURE_ERR_NONE && r->n_files == 4, "[big] %s, %zu files: %s",
          capture_error_name(r->error), r->n_files, r->message);
    check_files("big", t->base, r->files, r->n_files, 6);
    for (size_t i = 0; i < r->n_files; i++) {
        int nums[4];
        int n = read_nums(r->files[i].path, nums, 4);
        CHECK(n == 1 && nums[0] == BIG_FIRST + 2 + (int)i && r->files[i].size == 24 + REC,
              "[big] %s: %d frames, first #%d, %llu bytes", r->files[i].path, n, nums[0],
              (unsigned long long)r->files[i].size);
    }
}

static void check_time(struct rcase *t)
{
    capture_wait(t->c); /* it must end by itself */
    const struct capture_result *r = capture_result(t->c);
    CHECK(r->error == CAPTURE_ERR_NONE && r->reason == CAPTURE_STOP_TIME, "[time] %s/%s",
          capture_error_name(r->error), capture_stop_reason_name(r->reason));
    CHECK(r->duration_ms >= 2000 && r->duration_ms <= 2500, "[time] ran %llu ms for 2 s",
          (unsigned long long)r->duration_ms);
    CHECK(r->n_files == 2, "[time] %zu files kept, want 2", r->n_files);
    CHECK(r->stats.packets == FRAMES, "[time] %llu frames written, want %d",
          (unsigned long long)r->stats.packets, FRAMES);
    check_files("time", t->base, r->files, r->n_files, FRAMES / PER_FILE);
}

static void check_full(struct rcase *t)
{
    struct pollfd pfd = {capture_done_fd(t->c), POLLIN, 0};
    int alone = poll(&pfd, 1, 10000) == 1;
    capture_wait(t->c);
    const struct capture_result *r = capture_result(t->c);
    CHECK(alone, "[full] did not end by itself");
    CHECK(r->error == CAPTURE_ERR_LOCAL_FILE_FAILED && strstr(r->message, "No space left") &&
              strstr(r->message, "stay on disk"),
          "[full] %s: %s", capture_error_name(r->error), r->message);
    CHECK(r->n_files == 0, "[full] %zu files reported with an error", r->n_files);
    CHECK(count_prefix("full", NULL) == 0, "[full] the partial file is left");
    int kept = count_prefix("full", "f_");
    CHECK(kept >= 5, "[full] %d completed files on the 64 KiB tmpfs", kept);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "ls '%s/full' | grep '^f_'", root);
    FILE *f = popen(cmd, "r");
    char line[300];
    int frames = 0;
    while (f && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        char rel[400];
        snprintf(rel, sizeof(rel), "full/%s", line);
        int nums[64];
        int n = read_nums(rel, nums, 64);
        CHECK(n > 0 && nums[0] == frames, "[full] %s: %d frames from #%d, want from #%d", rel, n,
              n > 0 ? nums[0] : -1, frames);
        frames += n > 0 ? n : 0;
    }
    if (f)
        pclose(f);
    fprintf(stderr, "full: %d files kept with %d frames: %s\n", kept, frames, r->message);
}

/* A new ring over an earlier one's files is refused and deletes nothing; resumed, it starts. */
static void check_exists(const struct capture_result *rot)
{
    const char *lst[] = {if_cap};
    struct capture_ring ring = {.file_count = 3, .file_size = RING_SIZE};
    struct capture_params p = {.root_dir = root,
                               .file_path = "rot/r.cap",
                               .interfaces = lst,
                               .n_interfaces = 1,
                               .filter = FILTER,
                               .ring = &ring};
    struct capture *c = NULL;
    struct cp_error e;
    enum cp_err err = capture_start(&p, &c, &e);
    CHECK(err == CP_EEXIST && strcmp(e.code, "LocalFileFailed") == 0, "[exists] %d %s: %s", err,
          e.code, e.message);
    if (err == CP_OK)
        capture_free(c);
    CHECK(count_prefix("rot", "r_") == 3, "[exists] the refused start touched the files");
    /* Resumed: the next number, with the files kept as prior. */
    ring.first_seq = FRAMES / PER_FILE + 1; /* check_rotate: the last was 8 */
    ring.prior = rot->files;
    ring.n_prior = rot->n_files;
    err = capture_start(&p, &c, &e);
    CHECK(err == CP_OK, "[exists] resume: %s", e.message);
    if (err != CP_OK)
        return;
    inject(FRAMES, 1);
    wait_packets(c, 1);
    capture_stop(c);
    capture_wait(c);
    const struct capture_result *r = capture_result(c);
    /* 3 prior + 1 new, one deleted: 7, 8, 9. */
    CHECK(r->error == CAPTURE_ERR_NONE && r->n_files == 3, "[exists] %s, %zu files",
          capture_error_name(r->error), r->n_files);
    check_files("resumed", "rot/r.cap", r->files, r->n_files, FRAMES / PER_FILE + 1);
    CHECK(count_prefix("rot", "r_") == 3, "[exists] %d ring files on disk after the resume",
          count_prefix("rot", "r_"));
    capture_free(c);
}

static void check_names(void)
{
    char out[CAPTURE_PATH_MAX_LEN + 1];
    time_t t = 1764162900; /* 2025-11-26T13:15:00Z */
    out[0] = '\0';
    CHECK(capture_ring_name("a/x.cap", 1, t, out, sizeof(out)) == 0 &&
              strcmp(out, "a/x_000001_20251126T131500Z.cap") == 0,
          "name: %s", out);
    CHECK(capture_ring_name("x", 1234567, t, out, sizeof(out)) == 0 &&
              strcmp(out, "x_1234567_20251126T131500Z") == 0,
          "no extension: %s", out);
    CHECK(capture_ring_name(".cap", 2, t, out, sizeof(out)) == 0 &&
              strcmp(out, ".cap_000002_20251126T131500Z") == 0,
          "dot name: %s", out);
    CHECK(capture_ring_seq("a/x.cap", "x_000042_20251126T131500Z.cap") == 42, "seq");
    CHECK(capture_ring_seq("x.cap", "x_4294967295_20251126T131500Z.cap") == 4294967295u, "max");
    CHECK(capture_ring_seq("x.cap", "x_4294967296_20251126T131500Z.cap") == 0, "over max");
    CHECK(capture_ring_seq("x.cap", "x_000042_20251126T131500Z.pcap") == 0, "other extension");
    CHECK(capture_ring_seq("x.cap", "x_42_20251126T131500Z.cap") == 0, "short number");
    CHECK(capture_ring_seq("x.cap", "x_000000_20251126T131500Z.cap") == 0, "seq 0");
    CHECK(capture_ring_seq("x.cap", "xy_000001_20251126T131500Z.cap") == 0, "other stem");
    CHECK(capture_ring_seq("x.cap", "x_000001_20251126T1315Z.cap") == 0, "short stamp");
    CHECK(capture_ring_seq("x.cap", ".x_000001_20251126T131500Z.cap.partial") == 0, "partial");
    char longname[300];
    memset(longname, 'n', 240);
    memcpy(longname + 240, ".cap", 5);
    CHECK(capture_ring_name(longname, 1, t, out, sizeof(out)) != 0, "a too long name");
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root for network namespaces and mounts\n");
        return SKIP_CODE;
    }
    setvbuf(stderr, NULL, _IOLBF, 0);
    check_names();
    setup();
    start_cases(0, CASE_BIG);
    inject(0, FRAMES);
    check_rotate(&cases[0]);
    check_time(&cases[1]);
    check_full(&cases[2]);
    start_cases(CASE_BIG, NCASES);
    check_big(&cases[CASE_BIG]);
    check_exists(capture_result(cases[0].c));
    for (size_t i = 0; i < NCASES; i++)
        capture_free(cases[i].c);
    fprintf(stderr, "%s: %d failure(s)\n", failures ? "FAILED" : "OK", failures);
    return failures ? 1 : 0;
}
