/*
 * Check suite for common/bpf_expr against libpcap itself: every expression the builder produces
 * compiles with pcap_compile on a DLT_EN10MB dead handle, and the compiled program accepts and
 * rejects hand-built Ethernet frames (pcap_offline_filter) exactly as the filter semantics say:
 * range edges, both directions, unset local side, IPv6, protocols.
 */
/* pcap.h uses the BSD u_int/u_char types, which glibc declares only under _DEFAULT_SOURCE. */
#define _DEFAULT_SOURCE
#include "common/bpf_expr.h"

#include <arpa/inet.h>
#include <check.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROTO_ICMP   1
#define PROTO_TCP    6
#define PROTO_UDP    17
#define PROTO_ICMP6  58
#define PROTO_SCTP   132
#define FRAME_MAX    128
#define MACHINE_ADDR "10.0.0.4;fd00::4;127.0.0.0/8;::1"

static pcap_t *dead;

static void setup(void)
{
    dead = pcap_open_dead(DLT_EN10MB, 262144);
    ck_assert_ptr_nonnull(dead);
}

static void teardown(void)
{
    pcap_close(dead);
}

static struct bpf_filter_spec spec(const char *proto, const char *lip, const char *rip,
                                   const char *lport, const char *rport)
{
    struct bpf_filter_spec f;
    struct cp_error e;
    ck_assert_int_eq(bpf_filter_spec_parse(proto, lip, rip, lport, rport, 0, &f, &e), CP_OK);
    return f;
}

/* Builds the expression of fs[0..n) with the machine's addresses MACHINE_ADDR and compiles it. */
static void compile(const struct bpf_filter_spec *fs, size_t n, struct bpf_program *prog)
{
    struct nf_ip_set local;
    ck_assert_int_eq(nf_parse_ips(MACHINE_ADDR, &local, NULL, NULL), CP_OK);
    char *expr = NULL;
    struct cp_error e;
    ck_assert_int_eq(bpf_expr_build(fs, n, &local, &expr, &e), CP_OK);
    int rc = pcap_compile(dead, prog, expr, 1, PCAP_NETMASK_UNKNOWN);
    ck_assert_msg(rc == 0, "pcap_compile(\"%.200s\"): %s", expr, pcap_geterr(dead));
    free(expr);
}

/* An Ethernet frame carrying one IPv4 or IPv6 packet: proto, addresses and (TCP/UDP/SCTP)
 * ports. Checksums are left zero; BPF never looks at them. */
static size_t frame(u_char *f, int proto, const char *src, const char *dst, unsigned sport,
                    unsigned dport)
{
    memset(f, 0, FRAME_MAX);
    memcpy(f, "\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01", 12);
    int v6 = strchr(src, ':') != NULL;
    size_t l4;
    if (v6) {
        f[12] = 0x86, f[13] = 0xdd;
        uint8_t *ip = f + 14;
        ip[0] = 0x60;
        ip[5] = 40; /* payload length */
        ip[6] = (uint8_t)proto;
        ip[7] = 64;
        ck_assert_int_eq(inet_pton(AF_INET6, src, ip + 8), 1);
        ck_assert_int_eq(inet_pton(AF_INET6, dst, ip + 24), 1);
        l4 = 14 + 40;
    } else {
        f[12] = 0x08, f[13] = 0x00;
        uint8_t *ip = f + 14;
        ip[0] = 0x45;
        ip[3] = 60; /* total length */
        ip[8] = 64;
        ip[9] = (uint8_t)proto;
        ck_assert_int_eq(inet_pton(AF_INET, src, ip + 12), 1);
        ck_assert_int_eq(inet_pton(AF_INET, dst, ip + 16), 1);
        l4 = 14 + 20;
    }
    f[l4] = (uint8_t)(sport >> 8), f[l4 + 1] = (uint8_t)sport;
    f[l4 + 2] = (uint8_t)(dport >> 8), f[l4 + 3] = (uint8_t)dport;
    if (proto == PROTO_ICMP || proto == PROTO_ICMP6)
        f[l4] = 8, f[l4 + 1] = 0, f[l4 + 2] = 0, f[l4 + 3] = 0; /* echo request */
    return l4 + 40;
}

static int matches(const struct bpf_program *prog, int proto, const char *src, const char *dst,
                   unsigned sport, unsigned dport)
{
    u_char f[FRAME_MAX];
    struct pcap_pkthdr h;
    memset(&h, 0, sizeof(h));
    h.caplen = h.len = (bpf_u_int32)frame(f, proto, src, dst, sport, dport);
    return pcap_offline_filter(prog, &h, f) != 0;
}

/* An ARP request (who-has tpa, tell spa) in an Ethernet frame. */
static int arp_matches(const struct bpf_program *prog, const char *spa, const char *tpa)
{
    u_char f[42] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06,
                    0,    1,    8,    0,    6,    4,    0, 1, 2, 0, 0, 0, 0,    1};
    ck_assert_int_eq(inet_pton(AF_INET, spa, f + 28), 1);
    ck_assert_int_eq(inet_pton(AF_INET, tpa, f + 38), 1);
    struct pcap_pkthdr h;
    memset(&h, 0, sizeof(h));
    h.caplen = h.len = sizeof(f);
    return pcap_offline_filter(prog, &h, f) != 0;
}

#define YES(...) ck_assert_msg(matches(&prog, __VA_ARGS__), "should match: " #__VA_ARGS__)
#define NO(...)  ck_assert_msg(!matches(&prog, __VA_ARGS__), "should not match: " #__VA_ARGS__)

START_TEST(every_shape_compiles)
{
    /* The shapes the builder can emit, alone and together. */
    struct bpf_filter_spec fs[] = {
        spec("TCP", NULL, NULL, NULL, NULL),
        spec("UDP", NULL, NULL, NULL, NULL),
        spec("ICMP", NULL, NULL, NULL, NULL),
        spec("Any", NULL, NULL, "80", NULL),
        spec("Any", NULL, NULL, NULL, "1-65535"),
        spec("TCP", "10.0.0.4", NULL, "80", NULL),
        spec("UDP", "10.0.0.1-10.0.0.6", "192.0.2.0/24;198.51.100.7", "53;5353;6000-6010",
             "0-65535"),
        spec("Any", "0.0.0.0-255.255.255.255", "::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", NULL,
             NULL),
        spec("Any", NULL, "::/0", NULL, NULL),
        spec("ICMP", "fd00::4", "fd77::1-fd77::ff", NULL, NULL),
        spec("TCP", NULL, "1.1.1.1-255.255.255.255", "0", "65535"),
        spec("UDP", "::1", "::ffff:10.0.0.1", NULL, NULL),
        spec("ICMP", NULL, NULL, "7", NULL),            /* matches nothing */
        spec("TCP", "10.0.0.4", "fd00::9", NULL, NULL), /* matches nothing */
    };
    size_t n = sizeof(fs) / sizeof(fs[0]);
    struct bpf_program prog;
    for (size_t i = 0; i < n; i++) {
        compile(&fs[i], 1, &prog);
        pcap_freecode(&prog);
    }
    compile(fs, n, &prog);
    pcap_freecode(&prog);
    /* The match-nothing expression on its own (all filters impossible). */
    compile(&fs[n - 1], 1, &prog);
    NO(PROTO_TCP, "10.0.0.4", "1.2.3.4", 1, 2);
    pcap_freecode(&prog);
    /* And the empty expression (no filters). */
    compile(NULL, 0, &prog);
    YES(PROTO_SCTP, "192.0.2.1", "192.0.2.2", 1, 2);
    pcap_freecode(&prog);
}
END_TEST

START_TEST(range_edges_are_exact)
{
    struct bpf_filter_spec f = spec("UDP", NULL, "10.9.0.1-10.9.0.6", NULL, NULL);
    struct bpf_program prog;
    compile(&f, 1, &prog);
    NO(PROTO_UDP, "10.9.0.0", "10.0.0.4", 1, 2);
    YES(PROTO_UDP, "10.9.0.1", "10.0.0.4", 1, 2);
    YES(PROTO_UDP, "10.9.0.3", "10.0.0.4", 1, 2);
    YES(PROTO_UDP, "10.9.0.6", "10.0.0.4", 1, 2);
    NO(PROTO_UDP, "10.9.0.7", "10.0.0.4", 1, 2);
    YES(PROTO_UDP, "10.0.0.4", "10.9.0.6", 1, 2);
    NO(PROTO_UDP, "10.0.0.4", "10.9.0.7", 1, 2);
    pcap_freecode(&prog);

    f = spec("UDP", "fd00::4", "fd77::ffff-fd77::1:0", NULL, NULL);
    compile(&f, 1, &prog);
    NO(PROTO_UDP, "fd77::fffe", "fd00::4", 1, 2);
    YES(PROTO_UDP, "fd77::ffff", "fd00::4", 1, 2);
    YES(PROTO_UDP, "fd77::1:0", "fd00::4", 1, 2);
    NO(PROTO_UDP, "fd77::1:1", "fd00::4", 1, 2);
    pcap_freecode(&prog);
}
END_TEST

START_TEST(both_directions_and_local_port)
{
    struct bpf_filter_spec f = spec("TCP", "10.0.0.4", NULL, "80", NULL);
    struct bpf_program prog;
    compile(&f, 1, &prog);
    YES(PROTO_TCP, "10.0.0.4", "192.0.2.1", 80, 50000); /* our server answers */
    YES(PROTO_TCP, "192.0.2.1", "10.0.0.4", 50000, 80); /* a client calls us */
    NO(PROTO_TCP, "10.0.0.4", "192.0.2.1", 50000, 80);  /* we call someone's port 80 */
    NO(PROTO_TCP, "192.0.2.1", "10.0.0.4", 80, 50000);  /* their port 80 answers us */
    NO(PROTO_UDP, "192.0.2.1", "10.0.0.4", 50000, 80);
    NO(PROTO_TCP, "192.0.2.1", "10.0.0.5", 50000, 80); /* not our address */
    pcap_freecode(&prog);
}
END_TEST

START_TEST(unset_local_means_this_machine)
{
    struct bpf_filter_spec f = spec("Any", NULL, NULL, "80", "1000-2000");
    struct bpf_program prog;
    compile(&f, 1, &prog);
    YES(PROTO_TCP, "192.0.2.1", "10.0.0.4", 1500, 80);
    YES(PROTO_UDP, "10.0.0.4", "192.0.2.1", 80, 1000);
    YES(PROTO_UDP, "fd00::4", "fd77::1", 80, 2000);
    YES(PROTO_UDP, "127.0.0.1", "127.9.9.9", 80, 2000); /* loopback: both ends ours */
    NO(PROTO_TCP, "10.0.0.4", "192.0.2.1", 1500, 80);   /* direction reversed */
    NO(PROTO_TCP, "192.0.2.1", "192.0.2.2", 1500, 80);  /* forwarded, not ours */
    NO(PROTO_SCTP, "192.0.2.1", "10.0.0.4", 1500, 80);  /* ports imply tcp or udp */
    NO(PROTO_UDP, "192.0.2.1", "10.0.0.4", 999, 80);
    NO(PROTO_UDP, "192.0.2.1", "10.0.0.4", 2001, 80);
    pcap_freecode(&prog);
}
END_TEST

/* A bare "net" would match ARP too; a filter on addresses means IP packets only. */
START_TEST(addresses_mean_ip_not_arp)
{
    struct bpf_filter_spec f = spec("Any", "10.0.0.4", "10.0.0.9", NULL, NULL);
    struct bpf_program prog;
    compile(&f, 1, &prog);
    YES(PROTO_UDP, "10.0.0.4", "10.0.0.9", 1, 2);
    ck_assert(!arp_matches(&prog, "10.0.0.4", "10.0.0.9"));
    ck_assert(!arp_matches(&prog, "10.0.0.9", "10.0.0.4"));
    pcap_freecode(&prog);
    /* Only an empty filter list, or a filter with nothing but protocol Any, captures ARP. */
    f = spec("Any", NULL, NULL, NULL, NULL);
    compile(&f, 1, &prog);
    ck_assert(arp_matches(&prog, "10.0.0.4", "10.0.0.9"));
    pcap_freecode(&prog);
}
END_TEST

START_TEST(remote_only_and_lists)
{
    struct bpf_filter_spec f = spec("UDP", NULL, "192.0.2.1;fd77::2", NULL, "53;5353");
    struct bpf_program prog;
    compile(&f, 1, &prog);
    YES(PROTO_UDP, "10.0.0.4", "192.0.2.1", 40000, 53);
    YES(PROTO_UDP, "192.0.2.1", "10.0.0.4", 5353, 40000);
    YES(PROTO_UDP, "fd00::4", "fd77::2", 40000, 5353);
    NO(PROTO_UDP, "fd00::4", "fd77::2", 40000, 54);
    NO(PROTO_UDP, "10.0.0.4", "192.0.2.2", 40000, 53);
    NO(PROTO_UDP, "192.0.2.1", "10.0.0.4", 40000, 53); /* remote port is on the remote side */
    pcap_freecode(&prog);
}
END_TEST

START_TEST(protocols)
{
    struct bpf_filter_spec f = spec("ICMP", NULL, NULL, NULL, NULL);
    struct bpf_program prog;
    compile(&f, 1, &prog);
    YES(PROTO_ICMP, "192.0.2.1", "192.0.2.2", 0, 0);
    YES(PROTO_ICMP6, "fd77::1", "fd77::2", 0, 0);
    NO(PROTO_UDP, "192.0.2.1", "192.0.2.2", 1, 2);
    pcap_freecode(&prog);

    struct bpf_filter_spec two[2] = {spec("TCP", NULL, NULL, NULL, NULL),
                                     spec("ICMP", "fd00::4", NULL, NULL, NULL)};
    compile(two, 2, &prog);
    YES(PROTO_TCP, "192.0.2.1", "192.0.2.2", 1, 2);
    YES(PROTO_ICMP6, "fd77::1", "fd00::4", 0, 0);
    NO(PROTO_ICMP6, "fd77::1", "fd00::5", 0, 0);
    NO(PROTO_ICMP, "10.0.0.4", "192.0.2.2", 0, 0);
    NO(PROTO_UDP, "fd77::1", "fd00::4", 1, 2);
    pcap_freecode(&prog);
}
END_TEST

/* The largest expressions the builder accepts still compile, in bounded time. */
START_TEST(near_the_limit_compiles)
{
    enum { N = 16 };
    struct bpf_filter_spec *fs = calloc(N, sizeof(*fs));
    ck_assert_ptr_nonnull(fs);
    for (size_t i = 0; i < N; i++)
        fs[i] = spec("TCP", "10.0.0.4", "0.0.0.1-255.255.255.254", NULL, NULL);
    struct nf_ip_set local;
    ck_assert_int_eq(nf_parse_ips(MACHINE_ADDR, &local, NULL, NULL), CP_OK);
    char *expr = NULL;
    struct cp_error e;
    ck_assert_int_eq(bpf_expr_build(fs, N, &local, &expr, &e), CP_OK);
    ck_assert_uint_gt(strlen(expr), BPF_EXPR_MAX / 2);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct bpf_program prog;
    int rc = pcap_compile(dead, &prog, expr, 1, PCAP_NETMASK_UNKNOWN);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck_assert_msg(rc == 0, "%s", pcap_geterr(dead));
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    ck_assert_msg(secs < 10.0, "pcap_compile took %.1f s", secs);
    YES(PROTO_TCP, "10.0.0.4", "255.255.255.254", 1, 2);
    NO(PROTO_TCP, "10.0.0.4", "255.255.255.255", 1, 2);
    pcap_freecode(&prog);
    free(expr);
    free(fs);
}
END_TEST

static Suite *bpf_pcap_suite(void)
{
    Suite *s = suite_create("bpf_expr_pcap");
    TCase *c = tcase_create("pcap");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, every_shape_compiles);
    tcase_add_test(c, range_edges_are_exact);
    tcase_add_test(c, both_directions_and_local_port);
    tcase_add_test(c, unset_local_means_this_machine);
    tcase_add_test(c, addresses_mean_ip_not_arp);
    tcase_add_test(c, remote_only_and_lists);
    tcase_add_test(c, protocols);
    tcase_add_test(c, near_the_limit_compiles);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(bpf_pcap_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
