/* Check suite for common/bpf_expr: range -> CIDR decomposition and the expression text. */
#include "common/bpf_expr.h"

#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ---- */

static struct nf_ip_range range_of(const char *lo, const char *hi)
{
    struct nf_ip_range r;
    memset(&r, 0, sizeof(r));
    r.family = strchr(lo, ':') ? AF_INET6 : AF_INET;
    ck_assert_int_eq(inet_pton(r.family, lo, r.lo), 1);
    ck_assert_int_eq(inet_pton(r.family, hi, r.hi), 1);
    return r;
}

/* Decomposes lo-hi and compares with want[] ("addr/len" strings). */
static void assert_cidrs(const char *lo, const char *hi, const char *const *want, size_t n)
{
    struct nf_ip_range r = range_of(lo, hi);
    struct nf_ip_range blocks[300];
    unsigned lens[300];
    size_t got = bpf_expr_range_to_cidrs(&r, blocks, lens, 300);
    ck_assert_uint_eq(got, n);
    for (size_t i = 0; i < n; i++) {
        char text[INET6_ADDRSTRLEN], both[INET6_ADDRSTRLEN + 8];
        ck_assert_ptr_nonnull(inet_ntop(blocks[i].family, blocks[i].lo, text, sizeof(text)));
        snprintf(both, sizeof(both), "%s/%u", text, lens[i]);
        ck_assert_str_eq(both, want[i]);
    }
}

/* A filter from the API's strings, via the shared grammar. */
static struct bpf_filter_spec spec(const char *proto, const char *lip, const char *rip,
                                   const char *lport, const char *rport)
{
    struct bpf_filter_spec f;
    struct cp_error e;
    ck_assert_int_eq(bpf_filter_spec_parse(proto, lip, rip, lport, rport, 0, &f, &e), CP_OK);
    return f;
}

static struct nf_ip_set addrs(const char *s)
{
    struct nf_ip_set set;
    ck_assert_int_eq(nf_parse_ips(s, &set, NULL, NULL), CP_OK);
    return set;
}

/* Builds the expression of fs[0..n) and compares it with want. */
static void assert_expr(const struct bpf_filter_spec *fs, size_t n, const char *local,
                        const char *want)
{
    struct nf_ip_set l = addrs(local ? local : "");
    char *out = NULL;
    struct cp_error e;
    enum cp_err err = bpf_expr_build(fs, n, local ? &l : NULL, &out, &e);
    ck_assert_msg(err == CP_OK, "build failed: %s", e.message);
    ck_assert_str_eq(out, want);
    free(out);
}

/* ---- range -> CIDR ---- */

START_TEST(cidr_brief_example)
{
    static const char *const want[] = {"10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/31", "10.0.0.6/32"};
    assert_cidrs("10.0.0.1", "10.0.0.6", want, 4);
}
END_TEST

START_TEST(cidr_single_and_aligned)
{
    static const char *const one[] = {"192.0.2.7/32"};
    assert_cidrs("192.0.2.7", "192.0.2.7", one, 1);
    static const char *const c24[] = {"10.1.2.0/24"};
    assert_cidrs("10.1.2.0", "10.1.2.255", c24, 1);
    static const char *const all[] = {"0.0.0.0/0"};
    assert_cidrs("0.0.0.0", "255.255.255.255", all, 1);
    static const char *const top[] = {"255.255.255.255/32"};
    assert_cidrs("255.255.255.255", "255.255.255.255", top, 1);
    static const char *const upper[] = {"128.0.0.0/1"};
    assert_cidrs("128.0.0.0", "255.255.255.255", upper, 1);
}
END_TEST

START_TEST(cidr_unaligned_edges)
{
    static const char *const want[] = {"10.0.0.255/32", "10.0.1.0/24", "10.0.2.0/32"};
    assert_cidrs("10.0.0.255", "10.0.2.0", want, 3);
    static const char *const azure[] = {"1.1.1.1/32",  "1.1.1.2/31",  "1.1.1.4/30",
                                        "1.1.1.8/29",  "1.1.1.16/28", "1.1.1.32/27",
                                        "1.1.1.64/26", "1.1.1.128/25"};
    /* First part of Azure's documented "1.1.1.1-255.255.255.255" */
    assert_cidrs("1.1.1.1", "1.1.1.255", azure, 8);
}
END_TEST

START_TEST(cidr_worst_case_counts)
{
    struct nf_ip_range blocks[300];
    unsigned lens[300];
    struct nf_ip_range r = range_of("0.0.0.1", "255.255.255.254");
    ck_assert_uint_eq(bpf_expr_range_to_cidrs(&r, blocks, lens, 300), 62);
    r = range_of("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
    ck_assert_uint_eq(bpf_expr_range_to_cidrs(&r, blocks, lens, 300), 254);
    /* Too little room is an error, not a silently shorter (wider-meaning) list. */
    ck_assert_uint_eq(bpf_expr_range_to_cidrs(&r, blocks, lens, 253), 0);
}
END_TEST

START_TEST(cidr_ipv6)
{
    static const char *const small[] = {"fd77::1/128", "fd77::2/127", "fd77::4/127", "fd77::6/128"};
    assert_cidrs("fd77::1", "fd77::6", small, 4);
    static const char *const all[] = {"::/0"};
    assert_cidrs("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", all, 1);
    static const char *const p64[] = {"2001:db8::/64"};
    assert_cidrs("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff", p64, 1);
    /* Across the boundary of the two 64-bit halves. */
    static const char *const cross[] = {"2001:db8::ffff:ffff:ffff:ffff/128", "2001:db8:0:1::/128"};
    assert_cidrs("2001:db8::ffff:ffff:ffff:ffff", "2001:db8:0:1::", cross, 2);
    static const char *const cross2[] = {"2001:db8:0:0:8000::/65", "2001:db8:0:1::/65"};
    assert_cidrs("2001:db8::8000:0:0:0", "2001:db8:0:1:7fff:ffff:ffff:ffff", cross2, 2);
}
END_TEST

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* Random IPv4 ranges: blocks are aligned, contiguous, cover exactly lo..hi, and no two
 * neighbours are buddies that one shorter prefix would cover (the list is minimal). */
START_TEST(cidr_random_ipv4_exact_and_minimal)
{
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (int iter = 0; iter < 20000; iter++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        uint32_t a = (uint32_t)(seed >> 32);
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        uint32_t span = (uint32_t)(seed >> 32) >> (seed & 31);
        uint32_t b = a + span < a ? UINT32_MAX : a + span;
        struct nf_ip_range r;
        memset(&r, 0, sizeof(r));
        r.family = AF_INET;
        for (int i = 0; i < 4; i++) {
            r.lo[i] = (uint8_t)(a >> (24 - 8 * i));
            r.hi[i] = (uint8_t)(b >> (24 - 8 * i));
        }
        struct nf_ip_range blocks[64];
        unsigned lens[64];
        size_t n = bpf_expr_range_to_cidrs(&r, blocks, lens, 64);
        ck_assert_uint_ge(n, 1);
        ck_assert_uint_le(n, 62);
        uint64_t next = a;
        for (size_t i = 0; i < n; i++) {
            uint32_t lo = be32(blocks[i].lo), hi = be32(blocks[i].hi);
            uint64_t size = (uint64_t)1 << (32 - lens[i]);
            ck_assert_uint_eq(lo, next);
            ck_assert_uint_eq(lo % size, 0);
            ck_assert_uint_eq((uint64_t)hi, lo + size - 1);
            if (i > 0 && lens[i] == lens[i - 1] && lens[i] > 0) {
                uint32_t prev = be32(blocks[i - 1].lo);
                ck_assert_msg(prev % (size * 2) != 0, "blocks %zu and %zu could merge", i - 1, i);
            }
            next = (uint64_t)hi + 1;
        }
        ck_assert_uint_eq(next, (uint64_t)b + 1);
    }
}
END_TEST

START_TEST(cidr_malformed_is_zero)
{
    struct nf_ip_range blocks[4];
    unsigned lens[4];
    struct nf_ip_range r = range_of("10.0.0.9", "10.0.0.1");
    ck_assert_uint_eq(bpf_expr_range_to_cidrs(&r, blocks, lens, 4), 0);
    r = range_of("10.0.0.1", "10.0.0.1");
    r.family = 99;
    ck_assert_uint_eq(bpf_expr_range_to_cidrs(&r, blocks, lens, 4), 0);
}
END_TEST

/* ---- expression text ---- */

START_TEST(expr_no_filters_captures_all)
{
    assert_expr(NULL, 0, NULL, "");
    struct bpf_filter_spec any = spec("Any", NULL, NULL, NULL, NULL);
    assert_expr(&any, 1, NULL, "");
    struct bpf_filter_spec two[2] = {spec("TCP", NULL, NULL, NULL, NULL), any};
    assert_expr(two, 2, NULL, ""); /* OR with "everything" is everything */
}
END_TEST

START_TEST(expr_protocol_only)
{
    struct bpf_filter_spec f = spec("TCP", NULL, NULL, NULL, NULL);
    assert_expr(&f, 1, NULL, "tcp");
    f = spec("udp", "", "", "", "");
    assert_expr(&f, 1, NULL, "udp");
    f = spec("ICMP", NULL, NULL, NULL, NULL);
    assert_expr(&f, 1, NULL, "(icmp or icmp6)");
    struct bpf_filter_spec two[2] = {spec("TCP", NULL, NULL, NULL, NULL),
                                     spec("UDP", NULL, NULL, NULL, NULL)};
    assert_expr(two, 2, NULL, "(tcp) or (udp)");
}
END_TEST

START_TEST(expr_azure_example_both_directions)
{
    struct bpf_filter_spec f = spec("TCP", "10.0.0.4", NULL, "80", NULL);
    assert_expr(&f, 1, NULL,
                "tcp and ((ip src net 10.0.0.4/32 and src port 80) or "
                "(ip dst net 10.0.0.4/32 and dst port 80))");
}
END_TEST

START_TEST(expr_all_four_fields)
{
    struct bpf_filter_spec f = spec("UDP", "10.0.0.4", "192.0.2.1", "53", "1024-65535");
    assert_expr(
        &f, 1, NULL,
        "udp and ((ip src net 10.0.0.4/32 and ip dst net 192.0.2.1/32 and src port 53 and "
        "dst portrange 1024-65535) or (ip dst net 10.0.0.4/32 and ip src net 192.0.2.1/32 and "
        "dst port 53 and src portrange 1024-65535))");
}
END_TEST

START_TEST(expr_unset_local_is_the_machine)
{
    /* Ports with Any imply tcp or udp; the unset local side is this machine's addresses. */
    struct bpf_filter_spec f = spec(NULL, NULL, NULL, "80", NULL);
    assert_expr(
        &f, 1, "10.0.0.4;fd00::4",
        "(tcp or udp) and (((ip src net 10.0.0.4/32 or ip6 src net fd00::4/128) and src port 80) "
        "or ((ip dst net 10.0.0.4/32 or ip6 dst net fd00::4/128) and dst port 80))");
    f = spec("Any", NULL, "192.0.2.0/24", NULL, NULL);
    assert_expr(&f, 1, "10.0.0.4",
                "((ip src net 10.0.0.4/32 and ip dst net 192.0.2.0/24) or "
                "(ip dst net 10.0.0.4/32 and ip src net 192.0.2.0/24))");
}
END_TEST

START_TEST(expr_unset_local_needs_addresses)
{
    struct bpf_filter_spec f = spec("TCP", NULL, NULL, "80", NULL);
    struct nf_ip_set empty = addrs("");
    char *out = (char *)"untouched";
    struct cp_error e;
    ck_assert_int_eq(bpf_expr_build(&f, 1, NULL, &out, &e), CP_EINVAL);
    ck_assert_int_eq(bpf_expr_build(&f, 1, &empty, &out, &e), CP_EINVAL);
    ck_assert_str_eq(out, "untouched");
    ck_assert_ptr_nonnull(strstr(e.message, "this machine's addresses"));
    /* Protocol-only filters and filters with a local address do not need them. */
    struct bpf_filter_spec ok[2] = {spec("TCP", NULL, NULL, NULL, NULL),
                                    spec("UDP", "10.0.0.4", NULL, "53", NULL)};
    ck_assert_int_eq(bpf_expr_build(ok, 2, NULL, &out, &e), CP_OK);
    free(out);
}
END_TEST

START_TEST(expr_ranges_and_lists)
{
    struct bpf_filter_spec f = spec("TCP", "10.0.0.1-10.0.0.6", NULL, "80;443;8000-8080", NULL);
    assert_expr(&f, 1, NULL,
                "tcp and (((ip src net 10.0.0.1/32 or ip src net 10.0.0.2/31 or ip src net "
                "10.0.0.4/31 or ip src net "
                "10.0.0.6/32) and (src port 80 or src port 443 or src portrange 8000-8080)) or "
                "((ip dst net "
                "10.0.0.1/32 or ip dst net 10.0.0.2/31 or ip dst net 10.0.0.4/31 or ip dst net "
                "10.0.0.6/32) and "
                "(dst port 80 or dst port 443 or dst portrange 8000-8080)))");
}
END_TEST

START_TEST(expr_ipv6_and_cidr_items)
{
    struct bpf_filter_spec f = spec("UDP", "fd77::1-fd77::3", "2001:db8::/32;fd00::9", NULL, NULL);
    assert_expr(&f, 1, NULL,
                "udp and (((ip6 src net fd77::1/128 or ip6 src net fd77::2/127) and (ip6 dst net "
                "2001:db8::/32 or ip6 dst net fd00::9/128)) or ((ip6 dst net fd77::1/128 or ip6 "
                "dst net fd77::2/127) and (ip6 src net 2001:db8::/32 or ip6 src net "
                "fd00::9/128)))");
}
END_TEST

START_TEST(expr_families_pruned)
{
    /* The machine has v4 and v6 addresses; a v6 peer pairs only with the v6 ones. */
    struct bpf_filter_spec f = spec("Any", NULL, "fd00::9", NULL, NULL);
    assert_expr(&f, 1, "10.0.0.4;fd00::4",
                "((ip6 src net fd00::4/128 and ip6 dst net fd00::9/128) or "
                "(ip6 dst net fd00::4/128 and ip6 src net fd00::9/128))");
    /* A mixed remote set keeps only the family the local side has. */
    f = spec("Any", "10.0.0.4", "fd00::9;192.0.2.1", NULL, NULL);
    assert_expr(&f, 1, NULL,
                "((ip src net 10.0.0.4/32 and ip dst net 192.0.2.1/32) or "
                "(ip dst net 10.0.0.4/32 and ip src net 192.0.2.1/32))");
}
END_TEST

START_TEST(expr_impossible_filters)
{
    struct bpf_filter_spec cross = spec("TCP", "10.0.0.4", "fd00::9", NULL, NULL);
    assert_expr(&cross, 1, NULL, BPF_EXPR_MATCH_NONE);
    struct bpf_filter_spec icmp_port = spec("ICMP", "10.0.0.4", NULL, "80", NULL);
    assert_expr(&icmp_port, 1, NULL, BPF_EXPR_MATCH_NONE);
    /* Only the impossible ones drop out of the OR. */
    struct bpf_filter_spec three[3] = {cross, spec("UDP", NULL, NULL, NULL, NULL), icmp_port};
    assert_expr(three, 3, NULL, "udp");
    struct bpf_filter_spec four[4] = {cross, spec("UDP", NULL, NULL, NULL, NULL), icmp_port,
                                      spec("TCP", NULL, NULL, NULL, NULL)};
    assert_expr(four, 4, NULL, "(udp) or (tcp)");
    /* A v4-only machine and a v6 peer with the local side unset. */
    struct bpf_filter_spec v6peer = spec("UDP", NULL, "fd00::9", NULL, NULL);
    assert_expr(&v6peer, 1, "10.0.0.4", BPF_EXPR_MATCH_NONE);
}
END_TEST

START_TEST(expr_several_filters)
{
    struct bpf_filter_spec fs[2] = {spec("TCP", "10.0.0.4", NULL, "22", NULL),
                                    spec("ICMP", NULL, "192.0.2.1", NULL, NULL)};
    assert_expr(
        fs, 2, "10.0.0.4",
        "(tcp and ((ip src net 10.0.0.4/32 and src port 22) or (ip dst net 10.0.0.4/32 and dst "
        "port 22))) or ((icmp or icmp6) and ((ip src net 10.0.0.4/32 and ip dst net "
        "192.0.2.1/32) or (ip dst net 10.0.0.4/32 and ip src net 192.0.2.1/32)))");
}
END_TEST

START_TEST(expr_too_big)
{
    enum { N = 100 };
    struct bpf_filter_spec *fs = calloc(N, sizeof(*fs));
    ck_assert_ptr_nonnull(fs);
    for (size_t i = 0; i < N; i++)
        fs[i] = spec("TCP", "10.0.0.4", "0.0.0.1-255.255.255.254", NULL, NULL);
    char *out = (char *)"untouched";
    struct cp_error e;
    ck_assert_int_eq(bpf_expr_build(fs, N, NULL, &out, &e), CP_ETOOBIG);
    ck_assert_str_eq(out, "untouched");
    ck_assert_ptr_nonnull(strstr(e.message, "61440"));
    /* A handful of the same fits. */
    ck_assert_int_eq(bpf_expr_build(fs, 10, NULL, &out, &e), CP_OK);
    ck_assert_uint_le(strlen(out), BPF_EXPR_MAX);
    free(out);
    free(fs);
}
END_TEST

START_TEST(expr_bad_input)
{
    char *out = NULL;
    struct cp_error e;
    struct bpf_filter_spec f = spec("TCP", "10.0.0.4", NULL, NULL, NULL);
    f.protocol = (enum nf_protocol)42;
    ck_assert_int_eq(bpf_expr_build(&f, 1, NULL, &out, &e), CP_EINVAL);
    f = spec("TCP", "10.0.0.4", NULL, NULL, NULL);
    f.local_ip.r[0].family = 12345;
    ck_assert_int_eq(bpf_expr_build(&f, 1, NULL, &out, &e), CP_EINVAL);
    f = spec("TCP", "10.0.0.4", NULL, NULL, NULL);
    f.local_ip.r[0].lo[3] = 9;
    ck_assert_int_eq(bpf_expr_build(&f, 1, NULL, &out, &e), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "filters[0].localIPAddress"));
    f = spec("TCP", NULL, NULL, "80", NULL);
    f.local_port.r[0].lo = 81;
    ck_assert_int_eq(bpf_expr_build(&f, 1, NULL, &out, &e), CP_EINVAL);
    f = spec("TCP", NULL, NULL, "80", NULL);
    f.remote_port.n = NF_MAX_ITEMS + 1;
    ck_assert_int_eq(bpf_expr_build(&f, 1, NULL, &out, &e), CP_EINVAL);
    ck_assert_ptr_null(out);
}
END_TEST

START_TEST(spec_parse_reports_the_field)
{
    struct bpf_filter_spec f;
    struct cp_error e;
    ck_assert_int_eq(bpf_filter_spec_parse("tcp", NULL, NULL, "80;99999", NULL, 3, &f, &e),
                     CP_EINVAL);
    ck_assert_str_eq(e.target, "properties.filters[3].localPort");
    ck_assert_int_eq(bpf_filter_spec_parse("SCTP", NULL, NULL, NULL, NULL, 1, &f, &e), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "filters[1].protocol"));
    ck_assert_int_eq(
        bpf_filter_spec_parse(NULL, "10.0.0.1-10.0.0.6", "fd00::/8", "1", "2-3", 0, &f, &e), CP_OK);
    ck_assert_int_eq(f.protocol, NF_PROTO_ANY);
    ck_assert_uint_eq(f.local_ip.n, 1);
    ck_assert_uint_eq(f.remote_ip.n, 1);
    ck_assert_uint_eq(f.local_port.n, 1);
    ck_assert_uint_eq(f.remote_port.r[0].hi, 3);
}
END_TEST

static Suite *bpf_expr_suite(void)
{
    Suite *s = suite_create("bpf_expr");
    TCase *c = tcase_create("cidr");
    tcase_add_test(c, cidr_brief_example);
    tcase_add_test(c, cidr_single_and_aligned);
    tcase_add_test(c, cidr_unaligned_edges);
    tcase_add_test(c, cidr_worst_case_counts);
    tcase_add_test(c, cidr_ipv6);
    tcase_add_test(c, cidr_random_ipv4_exact_and_minimal);
    tcase_add_test(c, cidr_malformed_is_zero);
    suite_add_tcase(s, c);
    c = tcase_create("expr");
    tcase_add_test(c, expr_no_filters_captures_all);
    tcase_add_test(c, expr_protocol_only);
    tcase_add_test(c, expr_azure_example_both_directions);
    tcase_add_test(c, expr_all_four_fields);
    tcase_add_test(c, expr_unset_local_is_the_machine);
    tcase_add_test(c, expr_unset_local_needs_addresses);
    tcase_add_test(c, expr_ranges_and_lists);
    tcase_add_test(c, expr_ipv6_and_cidr_items);
    tcase_add_test(c, expr_families_pruned);
    tcase_add_test(c, expr_impossible_filters);
    tcase_add_test(c, expr_several_filters);
    tcase_add_test(c, expr_too_big);
    tcase_add_test(c, expr_bad_input);
    tcase_add_test(c, spec_parse_reports_the_field);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(bpf_expr_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
