/*
 * Check suite for filter/filter.h: the program check netwatchd runs at create time and the agent
 * on every handle. The kernel limit is tested at its edge without hard-coding libpcap's
 * instruction counts: expressions of growing size are compiled by pcap directly, and
 * filter_compile must accept exactly those whose program has at most FILTER_MAX_INSNS
 * instructions.
 */
/* pcap.h uses the BSD u_int/u_char types, which glibc declares only under _DEFAULT_SOURCE. */
#define _DEFAULT_SOURCE
#include "filter/filter.h"

#include <check.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* "ip host 10.0.<i/250>.<i%250+1> or ..." with n hosts: about 2 instructions per host. */
static char *hosts(size_t n)
{
    char *s = malloc(n * 32 + 1);
    ck_assert_ptr_nonnull(s);
    size_t len = 0;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, "%sip host 10.0.%zu.%zu", i ? " or " : "", i / 250,
                               i % 250 + 1);
    return s;
}

START_TEST(counts_port_tests)
{
    ck_assert_uint_eq(filter_port_tests(""), 0);
    ck_assert_uint_eq(filter_port_tests(NULL), 0);
    ck_assert_uint_eq(filter_port_tests("ip src net 10.0.0.4/32"), 0);
    ck_assert_uint_eq(filter_port_tests("(src port 80 or src portrange 1-2) and dst port 3"), 3);
}
END_TEST

START_TEST(empty_is_no_program)
{
    struct bpf_program prog;
    struct cp_error e;
    memset(&prog, 0xff, sizeof(prog));
    ck_assert_int_eq(filter_compile(dead, "", &prog, &e), CP_OK);
    ck_assert_uint_eq(prog.bf_len, 0);
    ck_assert_int_eq(filter_compile(dead, NULL, &prog, &e), CP_OK);
}
END_TEST

START_TEST(pcap_refusal_is_quoted)
{
    struct bpf_program prog;
    struct cp_error e;
    memset(&e, 0, sizeof(e));
    prog.bf_len = 12345;
    ck_assert_int_eq(filter_compile(dead, "port 70000", &prog, &e), CP_EINVAL);
    ck_assert_uint_eq(prog.bf_len, 12345); /* untouched */
    ck_assert_str_eq(e.code, "InvalidPropertyValue");
    ck_assert_str_eq(e.target, "properties.filters");
    ck_assert_msg(strstr(e.message, "do not compile") && strstr(e.message, "70000"), "%s",
                  e.message);
}
END_TEST

/* Instructions of the program of hosts(n), compiled by pcap directly. */
static unsigned hosts_insns(size_t n)
{
    char *expr = hosts(n);
    struct bpf_program raw;
    ck_assert_int_eq(pcap_compile(dead, &raw, expr, 1, PCAP_NETMASK_UNKNOWN), 0);
    unsigned len = raw.bf_len;
    pcap_freecode(&raw);
    free(expr);
    return len;
}

/* The kernel's limit at its edge: filter_compile's verdict is bf_len <= 4096 on both sides of
 * it. Each host adds about 4 instructions (1000 hosts make about 3,750), so the first n whose
 * program passes the limit is found by bisection. */
START_TEST(kernel_limit_edge)
{
    size_t lo = 1000, hi = 1300; /* hosts_insns(lo) <= limit < hosts_insns(hi) */
    ck_assert_uint_le(hosts_insns(lo), FILTER_MAX_INSNS);
    ck_assert_uint_gt(hosts_insns(hi), FILTER_MAX_INSNS);
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (hosts_insns(mid) <= FILTER_MAX_INSNS)
            lo = mid;
        else
            hi = mid;
    }
    struct bpf_program prog;
    struct cp_error e;
    char *expr = hosts(lo);
    memset(&e, 0, sizeof(e));
    ck_assert_msg(filter_compile(dead, expr, &prog, &e) == CP_OK, "%s", e.message);
    ck_assert_uint_le(prog.bf_len, FILTER_MAX_INSNS);
    pcap_freecode(&prog);
    free(expr);
    expr = hosts(hi);
    unsigned len = hosts_insns(hi);
    ck_assert_int_eq(filter_compile(dead, expr, &prog, &e), CP_EINVAL);
    char want[64];
    snprintf(want, sizeof(want), "compile to %u BPF instructions", len);
    ck_assert_msg(strstr(e.message, want) && strstr(e.message, "at most 4096"), "%s", e.message);
    free(expr);
}
END_TEST

/* "port 1 or port 2 or ..." with n ports. */
static char *ports(size_t n)
{
    char *s = malloc(n * 16 + 1);
    ck_assert_ptr_nonnull(s);
    size_t len = 0;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, "%sport %zu", i ? " or " : "", i + 1);
    return s;
}

/* More port tests than the budget: refused at once, without compiling. */
START_TEST(port_budget)
{
    char *s = ports(FILTER_MAX_PORT_TESTS + 1);
    struct bpf_program prog;
    struct cp_error e;
    ck_assert_int_eq(filter_compile(dead, s, &prog, &e), CP_EINVAL);
    ck_assert_msg(strstr(e.message, "257 port comparisons") && strstr(e.message, "at most 256"),
                  "%s", e.message);
    free(s);
    /* One fewer passes the budget and goes to pcap_compile (which then refuses the trailing
     * "and": a syntax error ends the compile before its slow part). */
    s = ports(FILTER_MAX_PORT_TESTS);
    ck_assert_uint_eq(filter_port_tests(s), FILTER_MAX_PORT_TESTS);
    char *t = realloc(s, strlen(s) + 5);
    ck_assert_ptr_nonnull(t);
    strcat(t, " and");
    ck_assert_int_eq(filter_compile(dead, t, &prog, &e), CP_EINVAL);
    ck_assert_msg(strstr(e.message, "do not compile"), "%s", e.message);
    free(t);
}
END_TEST

START_TEST(standin_addresses)
{
    struct nf_ip_set s;
    filter_standin_addrs(&s);
    ck_assert_uint_eq(s.n, 5);
    size_t v4 = 0, v6 = 0;
    for (size_t i = 0; i < s.n; i++)
        s.r[i].family == AF_INET ? v4++ : v6++;
    ck_assert_uint_eq(v4, 2);
    ck_assert_uint_eq(v6, 3);
}
END_TEST

/* The create-time check: unset local side (the stand-in), small and too large sets. */
START_TEST(check_sets)
{
    struct bpf_filter_spec fs[64];
    struct cp_error e;
    unsigned insns = 0;
    ck_assert_int_eq(filter_check(NULL, 0, &insns, &e), CP_OK);
    ck_assert_uint_eq(insns, 0);
    fs[0] = spec("TCP", NULL, NULL, "80", NULL);
    ck_assert_int_eq(filter_check(fs, 1, &insns, &e), CP_OK);
    ck_assert_uint_gt(insns, 10);
    ck_assert_uint_le(insns, 200);
    /* ICMP with a port matches nothing: "len = 0" still compiles. */
    fs[0] = spec("ICMP", NULL, NULL, "80", NULL);
    ck_assert_int_eq(filter_check(fs, 1, &insns, &e), CP_OK);
    for (size_t i = 0; i < 64; i++) {
        char port[8];
        snprintf(port, sizeof(port), "%zu", 1000 + i);
        fs[i] = spec(NULL, NULL, NULL, port, NULL);
    }
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(filter_check(fs, 64, &insns, &e), CP_EINVAL);
    ck_assert_str_eq(e.code, "InvalidPropertyValue");
    ck_assert_str_eq(e.target, "properties.filters");
    ck_assert_msg(strstr(e.message, "the kernel runs at most 4096"), "%s", e.message);
    /* An expression over BPF_EXPR_MAX is a request error (400), not CP_ETOOBIG (413). */
    for (size_t i = 0; i < 64; i++)
        fs[i] = spec(NULL, NULL, "2001:db8::1-2001:db8:ffff:ffff:ffff:ffff:ffff:fffe", NULL, NULL);
    ck_assert_int_eq(filter_check(fs, 64, &insns, &e), CP_EINVAL);
    ck_assert_msg(strstr(e.message, "bytes of capture expression"), "%s", e.message);
}
END_TEST

static Suite *filter_suite(void)
{
    Suite *s = suite_create("filter");
    TCase *c = tcase_create("compile");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, counts_port_tests);
    tcase_add_test(c, empty_is_no_program);
    tcase_add_test(c, pcap_refusal_is_quoted);
    tcase_add_test(c, kernel_limit_edge);
    tcase_add_test(c, port_budget);
    tcase_add_test(c, standin_addresses);
    tcase_add_test(c, check_sets);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    SRunner *r = srunner_create(filter_suite());
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
