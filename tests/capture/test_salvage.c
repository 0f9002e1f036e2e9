/*
 * Check suite for agent/salvage.c: a pcap file torn in the middle of a record (what a crash of
 * the agent leaves) comes back cut after the last whole record, renamed to its final name, and
 * libpcap reads exactly the whole packets; a file already complete is only read; an unreadable
 * partial is set aside under "<name>.unreadable"; a final name already taken gives
 * "<name>.salvaged"; and the sweep finds stray partial files in subdirectories.
 */
/* _GNU_SOURCE: pcap.h's BSD types. */
#define _GNU_SOURCE
#include "agent/salvage.h"

#include <check.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/capture/test_fixture.h"

static char root[64];
static int rootfd = -1;

static void setup(void)
{
    log_level = LOG_LEVEL_ERROR;
    tfx_mkdtemp(root, sizeof(root), "/tmp/nw-salvage");
    rootfd = tfx_open_dir(root);
}

static void teardown(void)
{
    close(rootfd);
    tfx_rm_rf(root);
}

static void path_of(const char *rel, char *out, size_t n)
{
    snprintf(out, n, "%s/%s", root, rel);
}

/* Writes a pcap file at rel with n packets of 100 + 10 * i bytes (byte value i); returns its
 * size. */
static long write_pcap(const char *rel, int n)
{
    char p[256];
    path_of(rel, p, sizeof(p));
    pcap_t *dead = pcap_open_dead(DLT_EN10MB, 65535);
    pcap_dumper_t *dp = pcap_dump_open(dead, p);
    ck_assert_ptr_nonnull(dp);
    unsigned char buf[1024];
    for (int i = 0; i < n; i++) {
        struct pcap_pkthdr h = {.ts = {1773718655 + i, 250000},
                                .caplen = 100 + 10 * (unsigned)i,
                                .len = 100 + 10 * (unsigned)i};
        memset(buf, i, sizeof(buf));
        pcap_dump((u_char *)dp, &h, buf);
    }
    pcap_dump_close(dp);
    pcap_close(dead);
    struct stat st;
    ck_assert_int_eq(stat(p, &st), 0);
    return (long)st.st_size;
}

static void cut_to(const char *rel, long size)
{
    char p[256];
    path_of(rel, p, sizeof(p));
    ck_assert_int_eq(truncate(p, size), 0);
}

static int exists(const char *rel)
{
    char p[256];
    struct stat st;
    path_of(rel, p, sizeof(p));
    return lstat(p, &st) == 0;
}

/* Packets libpcap reads from rel, checking each one's length and content. */
static int read_back(const char *rel)
{
    char p[256], err[PCAP_ERRBUF_SIZE];
    path_of(rel, p, sizeof(p));
    pcap_t *pc = pcap_open_offline(p, err);
    ck_assert_msg(pc != NULL, "libpcap cannot open %s: %s", rel, err);
    struct pcap_pkthdr *h;
    const u_char *data;
    int n = 0, rc;
    while ((rc = pcap_next_ex(pc, &h, &data)) == 1) {
        ck_assert_uint_eq(h->caplen, 100 + 10 * (unsigned)n);
        ck_assert_uint_eq(data[0], (unsigned)n);
        ck_assert_uint_eq(data[h->caplen - 1], (unsigned)n);
        n++;
    }
    ck_assert_msg(rc == PCAP_ERROR_BREAK, "libpcap stopped with an error in %s: %s", rel,
                  pcap_geterr(pc));
    pcap_close(pc);
    return n;
}

static void sha_of(const char *rel, char out[65])
{
    char p[256];
    path_of(rel, p, sizeof(p));
    tfx_sha256_file(p, out);
}

START_TEST(torn_record_cut)
{
    /* Five packets; the crash tore the fifth in the middle of its data. */
    long full = write_pcap(".t1.cap.partial", 5);
    long four = 24 + (16 + 100) + (16 + 110) + (16 + 120) + (16 + 130);
    ck_assert_int_eq(full, four + 16 + 140);
    cut_to(".t1.cap.partial", four + 16 + 70);
    struct salvage_info info;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(salvage_file(rootfd, "t1.cap", &info, &e), CP_OK);
    ck_assert_str_eq(info.path, "t1.cap");
    ck_assert(!exists(".t1.cap.partial"));
    ck_assert_uint_eq(info.packets, 4);
    ck_assert_uint_eq(info.bytes, 100 + 110 + 120 + 130);
    ck_assert_uint_eq(info.size, (uint64_t)four);
    ck_assert_uint_eq(info.cut, 16 + 70);
    ck_assert_int_eq(info.first_packet_ms, 1773718655250LL);
    ck_assert_int_eq(read_back("t1.cap"), 4);
    char sha[65];
    sha_of("t1.cap", sha);
    ck_assert_str_eq(info.sha256, sha);
    struct stat st;
    char p[256];
    path_of("t1.cap", p, sizeof(p));
    ck_assert_int_eq(stat(p, &st), 0);
    ck_assert_int_eq(st.st_size, four);
}
END_TEST

START_TEST(torn_record_header)
{
    /* Torn inside the third record's 16-byte header. */
    write_pcap(".t2.cap.partial", 3);
    long two = 24 + (16 + 100) + (16 + 110);
    cut_to(".t2.cap.partial", two + 9);
    struct salvage_info info;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(salvage_file(rootfd, "t2.cap", &info, &e), CP_OK);
    ck_assert_uint_eq(info.packets, 2);
    ck_assert_uint_eq(info.size, (uint64_t)two);
    ck_assert_int_eq(read_back("t2.cap"), 2);
    /* Only the file header: a valid file with no packet. */
    write_pcap(".t3.cap.partial", 1);
    cut_to(".t3.cap.partial", 24 + 5);
    ck_assert_int_eq(salvage_file(rootfd, "t3.cap", &info, &e), CP_OK);
    ck_assert_uint_eq(info.packets, 0);
    ck_assert_int_eq(info.first_packet_ms, 0);
    ck_assert_int_eq(read_back("t3.cap"), 0);
}
END_TEST

START_TEST(complete_file_only_read)
{
    long size = write_pcap("done.cap", 3);
    struct salvage_info info;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(salvage_file(rootfd, "done.cap", &info, &e), CP_OK);
    ck_assert_uint_eq(info.packets, 3);
    ck_assert_uint_eq(info.size, (uint64_t)size);
    ck_assert_uint_eq(info.cut, 0);
    ck_assert_int_eq(read_back("done.cap"), 3);
    ck_assert_int_eq(salvage_file(rootfd, "absent.cap", &info, &e), CP_ENOTFOUND);
}
END_TEST

START_TEST(unreadable_set_aside)
{
    char p[256];
    path_of(".bad.cap.partial", p, sizeof(p));
    FILE *f = fopen(p, "w");
    fputs("not a pcap file at all", f);
    fclose(f);
    struct salvage_info info;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(salvage_file(rootfd, "bad.cap", &info, &e), CP_EINVAL);
    ck_assert(!exists(".bad.cap.partial"));
    ck_assert(!exists("bad.cap"));
    ck_assert(exists("bad.cap.unreadable"));
    /* Empty (the crash came before the file header reached the disk): the same. */
    path_of(".empty.cap.partial", p, sizeof(p));
    f = fopen(p, "w");
    fclose(f);
    ck_assert_int_eq(salvage_file(rootfd, "empty.cap", &info, &e), CP_EINVAL);
    ck_assert(exists("empty.cap.unreadable"));
}
END_TEST

START_TEST(final_name_taken)
{
    write_pcap("x.cap", 1);
    write_pcap(".x.cap.partial", 2);
    struct salvage_info info;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(salvage_file(rootfd, "x.cap", &info, &e), CP_OK);
    ck_assert_str_eq(info.path, "x.cap.salvaged");
    ck_assert_int_eq(read_back("x.cap"), 1);
    ck_assert_int_eq(read_back("x.cap.salvaged"), 2);
}
END_TEST

START_TEST(sweep_finds_strays)
{
    char p[256];
    path_of("a", p, sizeof(p));
    ck_assert_int_eq(mkdir(p, 0750), 0);
    path_of("a/b", p, sizeof(p));
    ck_assert_int_eq(mkdir(p, 0750), 0);
    long size = write_pcap("a/b/.deep.cap.partial", 3);
    cut_to("a/b/.deep.cap.partial", size - 1);
    write_pcap(".top.cap.partial", 1);
    write_pcap("keep.cap", 1);
    /* A symlink to a directory is not followed. */
    path_of("link", p, sizeof(p));
    ck_assert_int_eq(symlink("a", p), 0);
    ck_assert_uint_eq(salvage_sweep(rootfd), 2);
    ck_assert_int_eq(read_back("a/b/deep.cap"), 2);
    ck_assert_int_eq(read_back("top.cap"), 1);
    ck_assert(!exists("a/b/.deep.cap.partial"));
    ck_assert_uint_eq(salvage_sweep(rootfd), 0);
}
END_TEST

int main(void)
{
    const TTest *cases[] = {torn_record_cut,
                            torn_record_header,
                            complete_file_only_read,
                            unreadable_set_aside,
                            final_name_taken,
                            sweep_finds_strays,
                            NULL};
    return tfx_run(tfx_suite("salvage", setup, teardown, cases)) ? 1 : 0;
}
