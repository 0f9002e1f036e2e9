/*
 * Check suite for agent/pcap_file: the path rules, the partial file and its commit, mode 0640,
 * refusal of symlinks and existing names, size and SHA-256, and (as root, in a private mount
 * namespace) ENOSPC on a tiny tmpfs. Needs no network.
 */
/* _GNU_SOURCE: pcap.h's BSD types, and unshare(2)/mount(2) for the ENOSPC case. */
#define _GNU_SOURCE
#include "agent/pcap_file.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/capture/test_fixture.h"

static char top[128]; /* made and removed by main(): a failed test leaves nothing behind */
static char root[256];
static char outside[256];
static int rootfd = -1;

static void setup(void)
{
    char prefix[160];
    snprintf(prefix, sizeof(prefix), "%s/root", top);
    tfx_mkdtemp(root, sizeof(root), prefix);
    snprintf(prefix, sizeof(prefix), "%s/out", top);
    tfx_mkdtemp(outside, sizeof(outside), prefix);
    rootfd = tfx_open_dir(root);
}

static void teardown(void)
{
    close(rootfd);
    tfx_rm_rf(root);
    tfx_rm_rf(outside);
}

static int exists(const char *rel)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", root, rel);
    return lstat(p, &st) == 0;
}

static int dir_is_empty(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", path);
    return system(cmd) == 0;
}

/* Writes n packets of len bytes (caplen = len) with distinct first bytes. */
static void write_packets(struct pcap_file *f, int n, unsigned len)
{
    u_char buf[2048];
    ck_assert_uint_le(len, sizeof(buf));
    for (int i = 0; i < n; i++) {
        memset(buf, i & 0xff, len);
        struct pcap_pkthdr h;
        memset(&h, 0, sizeof(h));
        h.ts.tv_sec = 1700000000 + i;
        h.caplen = h.len = len;
        pcap_file_write(f, &h, buf);
    }
}

START_TEST(path_rules)
{
    static const char *const bad[] = {"",         "/var/captures/x.cap",
                                      "../x.cap", "a/../x.cap",
                                      "a//b",     "./x.cap",
                                      "a/.",      "a/",
                                      "a/b/.",    "..",
                                      "x\n.cap",  "a/\x7f"};
    struct cp_error e;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(pcap_file_check_path(bad[i], &e) == CP_EINVAL, "accepted '%s'", bad[i]);
        ck_assert_str_eq(e.code, "LocalFileFailed");
    }
    ck_assert_int_eq(pcap_file_check_path(NULL, &e), CP_EINVAL);
    char longseg[PCAP_FILE_SEGMENT_MAX + 2];
    memset(longseg, 'a', sizeof(longseg) - 1);
    longseg[sizeof(longseg) - 1] = '\0';
    ck_assert_int_eq(pcap_file_check_path(longseg, &e), CP_EINVAL);
    longseg[PCAP_FILE_SEGMENT_MAX] = '\0';
    ck_assert_int_eq(pcap_file_check_path(longseg, &e), CP_OK);
    static const char *const good[] = {"x.cap", "a/b/c.cap",   "..a",
                                       "a..",   ".hidden.cap", "with space.cap"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ck_assert_msg(pcap_file_check_path(good[i], &e) == CP_OK, "refused '%s'", good[i]);
}
END_TEST

START_TEST(commit_publishes_complete_file)
{
    mode_t old = umask(077); /* the mode must not depend on the umask */
    struct pcap_file *f = NULL;
    struct cp_error e;
    ck_assert_int_eq(pcap_file_open(rootfd, "sub/dir/pc1.cap", DLT_EN10MB, 1500, &f, &e), CP_OK);
    umask(old);
    ck_assert(exists("sub/dir/.pc1.cap.partial"));
    ck_assert(!exists("sub/dir/pc1.cap"));
    write_packets(f, 10, 100);
    ck_assert_uint_eq(pcap_file_size(f), 24 + 10 * (16 + 100));
    ck_assert_int_eq(pcap_file_flush(f, &e), CP_OK);
    ck_assert(!exists("sub/dir/pc1.cap"));

    struct pcap_file_info info;
    ck_assert_int_eq(pcap_file_commit(f, &info, &e), CP_OK);
    ck_assert(!exists("sub/dir/.pc1.cap.partial"));
    ck_assert_str_eq(info.path, "sub/dir/pc1.cap");
    ck_assert_uint_eq(info.size, 24 + 10 * (16 + 100));

    char path[512];
    snprintf(path, sizeof(path), "%s/sub/dir/pc1.cap", root);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0640);
    ck_assert_uint_eq((uint64_t)st.st_size, info.size);
    char want[65];
    tfx_sha256_file(path, want);
    ck_assert_str_eq(info.sha256, want);
    snprintf(path, sizeof(path), "%s/sub", root);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 07777, 0750);

    /* libpcap reads it back: link type, snap length, packets. */
    char errbuf[PCAP_ERRBUF_SIZE];
    snprintf(path, sizeof(path), "%s/sub/dir/pc1.cap", root);
    pcap_t *p = pcap_open_offline(path, errbuf);
    ck_assert_msg(p != NULL, "%s", errbuf);
    ck_assert_int_eq(pcap_datalink(p), DLT_EN10MB);
    ck_assert_int_eq(pcap_snapshot(p), 1500);
    struct pcap_pkthdr *h;
    const u_char *data;
    int n = 0;
    while (pcap_next_ex(p, &h, &data) == 1) {
        ck_assert_uint_eq(h->caplen, 100);
        ck_assert_uint_eq(data[0], n);
        ck_assert_int_eq(h->ts.tv_sec, 1700000000 + n);
        n++;
    }
    ck_assert_int_eq(n, 10);
    pcap_close(p);
}
END_TEST

START_TEST(existing_names_are_refused)
{
    struct pcap_file *f = NULL;
    struct cp_error e;
    ck_assert_int_eq(pcap_file_open(rootfd, "a.cap", DLT_EN10MB, 100, &f, &e), CP_OK);
    /* A second writer of the same name is refused while the first runs ... */
    struct pcap_file *g = NULL;
    ck_assert_int_eq(pcap_file_open(rootfd, "a.cap", DLT_EN10MB, 100, &g, &e), CP_EEXIST);
    struct pcap_file_info info;
    ck_assert_int_eq(pcap_file_commit(f, &info, &e), CP_OK);
    /* ... and after it finished. */
    ck_assert_int_eq(pcap_file_open(rootfd, "a.cap", DLT_EN10MB, 100, &g, &e), CP_EEXIST);
    ck_assert_str_eq(e.code, "LocalFileFailed");

    /* A name that appears while capturing is not replaced; the capture fails instead. */
    ck_assert_int_eq(pcap_file_open(rootfd, "b.cap", DLT_EN10MB, 100, &f, &e), CP_OK);
    char path[512];
    snprintf(path, sizeof(path), "%s/b.cap", root);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, "mine", 4), 4);
    close(fd);
    ck_assert_int_eq(pcap_file_commit(f, &info, &e), CP_EEXIST);
    ck_assert(!exists(".b.cap.partial"));
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_size, 4);
}
END_TEST

START_TEST(symlinks_are_never_followed)
{
    char path[512];
    struct pcap_file *f = NULL;
    struct cp_error e;
    /* A directory link out of the root. */
    snprintf(path, sizeof(path), "%s/out", root);
    ck_assert_int_eq(symlink(outside, path), 0);
    ck_assert_int_eq(pcap_file_open(rootfd, "out/x.cap", DLT_EN10MB, 100, &f, &e), CP_EINVAL);
    ck_assert_str_eq(e.code, "LocalFileFailed");
    ck_assert_ptr_nonnull(strstr(e.message, "symbolic link"));
    ck_assert_int_eq(pcap_file_open(rootfd, "out/deeper/x.cap", DLT_EN10MB, 100, &f, &e),
                     CP_EINVAL);
    ck_assert(dir_is_empty(outside));
    /* Even a link that stays inside the root. */
    snprintf(path, sizeof(path), "%s/real", root);
    ck_assert_int_eq(mkdir(path, 0750), 0);
    snprintf(path, sizeof(path), "%s/alias", root);
    ck_assert_int_eq(symlink("real", path), 0);
    ck_assert_int_eq(pcap_file_open(rootfd, "alias/x.cap", DLT_EN10MB, 100, &f, &e), CP_EINVAL);
    /* A link as the final name counts as an existing file and is left alone. */
    snprintf(path, sizeof(path), "%s/victim", outside);
    char link[512];
    snprintf(link, sizeof(link), "%s/y.cap", root);
    ck_assert_int_eq(symlink(path, link), 0);
    ck_assert_int_eq(pcap_file_open(rootfd, "y.cap", DLT_EN10MB, 100, &f, &e), CP_EEXIST);
    /* A link where the partial file goes is not written through either. */
    snprintf(link, sizeof(link), "%s/.z.cap.partial", root);
    ck_assert_int_eq(symlink(path, link), 0);
    ck_assert_int_eq(pcap_file_open(rootfd, "z.cap", DLT_EN10MB, 100, &f, &e), CP_EEXIST);
    ck_assert(dir_is_empty(outside));
    /* A plain file where a directory should be. */
    snprintf(path, sizeof(path), "%s/plain", root);
    int fd = open(path, O_WRONLY | O_CREAT, 0600);
    close(fd);
    ck_assert_int_eq(pcap_file_open(rootfd, "plain/x.cap", DLT_EN10MB, 100, &f, &e), CP_EINVAL);
}
END_TEST

START_TEST(abort_leaves_nothing)
{
    struct pcap_file *f = NULL;
    struct cp_error e;
    ck_assert_int_eq(pcap_file_open(rootfd, "c.cap", DLT_EN10MB, 100, &f, &e), CP_OK);
    write_packets(f, 3, 50);
    pcap_file_abort(f);
    ck_assert(!exists(".c.cap.partial"));
    ck_assert(!exists("c.cap"));
    pcap_file_abort(NULL);
    /* The name is free again. */
    ck_assert_int_eq(pcap_file_open(rootfd, "c.cap", DLT_EN10MB, 100, &f, &e), CP_OK);
    pcap_file_abort(f);
}
END_TEST

/* As root only: a 64 KiB tmpfs in a private mount namespace (a child process). */
START_TEST(enospc_is_reported)
{
    if (geteuid() != 0) {
        fprintf(stderr, "enospc_is_reported: not root, case skipped\n");
        return;
    }
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int rc = 1;
        if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
            mount("tmpfs", outside, "tmpfs", 0, "size=64k") != 0) {
            fprintf(stderr, "tmpfs: %s\n", strerror(errno));
            _exit(2);
        }
        int fd = open(outside, O_RDONLY | O_DIRECTORY);
        struct pcap_file *f = NULL;
        struct cp_error e;
        if (pcap_file_open(fd, "full.cap", DLT_EN10MB, 2000, &f, &e) != CP_OK)
            _exit(3);
        enum cp_err err = CP_OK;
        for (int i = 0; i < 200 && err == CP_OK; i++) {
            write_packets(f, 1, 1500);
            err = pcap_file_flush(f, &e);
        }
        if (err == CP_EIO && strstr(e.message, "No space left") &&
            strcmp(e.code, "LocalFileFailed") == 0) {
            pcap_file_abort(f);
            struct stat st;
            rc = fstatat(fd, ".full.cap.partial", &st, 0) == 0 ? 4 : 0;
        } else {
            fprintf(stderr, "expected ENOSPC, got %d: %s\n", (int)err, e.message);
            pcap_file_abort(f);
        }
        _exit(rc);
    }
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
}
END_TEST

int main(void)
{
    snprintf(top, sizeof(top), "/tmp/nw-pcapfile-XXXXXX");
    if (!mkdtemp(top)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    const TTest *cases[] = {path_rules,
                            commit_publishes_complete_file,
                            existing_names_are_refused,
                            symlinks_are_never_followed,
                            abort_leaves_nothing,
                            enospc_is_reported,
                            NULL};
    int failed = tfx_run(tfx_suite("pcap_file", setup, teardown, cases));
    tfx_rm_rf(top);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
