/* Check suite for common/netfilter: port and IP filter fields, and the protocol enum. */
#include "common/netfilter.h"

#include <arpa/inet.h>
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TARGET "properties.filters[0].localPort"

/* An output pre-filled with a sentinel, so tests can see it was not written on failure. */
static void port_sentinel(struct nf_port_set *s)
{
    memset(s, 0, sizeof(*s));
    s->n = 99;
}

static void ip_sentinel(struct nf_ip_set *s)
{
    memset(s, 0, sizeof(*s));
    s->n = 99;
}

static void assert_v4(const uint8_t b[16], const char *text)
{
    uint8_t want[16] = {0};
    ck_assert_int_eq(inet_pton(AF_INET, text, want), 1);
    ck_assert_mem_eq(b, want, 16);
}

static void assert_v6(const uint8_t b[16], const char *text)
{
    uint8_t want[16];
    ck_assert_int_eq(inet_pton(AF_INET6, text, want), 1);
    ck_assert_mem_eq(b, want, 16);
}

/* Builds "<first>;<first+1>;..." with count port items into buf. */
static void build_port_list(char *buf, size_t sz, int count)
{
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < count; i++) {
        int n = snprintf(buf + off, sz - off, "%s%d", i ? ";" : "", 1000 + i);
        ck_assert_int_gt(n, 0);
        ck_assert_uint_lt(off + (size_t)n, sz);
        off += (size_t)n;
    }
}

/* ---- ports: accepted ---- */

START_TEST(ports_null_and_empty_are_any)
{
    struct nf_port_set s;
    port_sentinel(&s);
    ck_assert_int_eq(nf_parse_ports(NULL, &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 0);
    port_sentinel(&s);
    ck_assert_int_eq(nf_parse_ports("", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(ports_single)
{
    struct nf_port_set s;
    ck_assert_int_eq(nf_parse_ports("80", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_uint_eq(s.r[0].lo, 80);
    ck_assert_uint_eq(s.r[0].hi, 80);
}
END_TEST

START_TEST(ports_bounds)
{
    struct nf_port_set s;
    ck_assert_int_eq(nf_parse_ports("0;65535;0-65535;1-65535", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 4);
    ck_assert_uint_eq(s.r[0].lo, 0);
    ck_assert_uint_eq(s.r[0].hi, 0);
    ck_assert_uint_eq(s.r[1].lo, 65535);
    ck_assert_uint_eq(s.r[1].hi, 65535);
    ck_assert_uint_eq(s.r[2].lo, 0);
    ck_assert_uint_eq(s.r[2].hi, 65535);
    ck_assert_uint_eq(s.r[3].lo, 1);
    ck_assert_uint_eq(s.r[3].hi, 65535);
}
END_TEST

START_TEST(ports_range)
{
    struct nf_port_set s;
    ck_assert_int_eq(nf_parse_ports("80-85", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_uint_eq(s.r[0].lo, 80);
    ck_assert_uint_eq(s.r[0].hi, 85);
    ck_assert_int_eq(nf_parse_ports("443-443", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.r[0].lo, 443);
    ck_assert_uint_eq(s.r[0].hi, 443);
}
END_TEST

START_TEST(ports_list_trailing_semicolon)
{
    struct nf_port_set s;
    ck_assert_int_eq(nf_parse_ports("80;443;", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_uint_eq(s.r[0].lo, 80);
    ck_assert_uint_eq(s.r[1].lo, 443);
    ck_assert_int_eq(nf_parse_ports("20;80;443", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_uint_eq(s.r[2].hi, 443);
    /* blanks after the trailing ';' are as harmless as the ';' */
    ck_assert_int_eq(nf_parse_ports("22; ", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_uint_eq(s.r[0].lo, 22);
}
END_TEST

START_TEST(ports_spaces_trimmed)
{
    struct nf_port_set s;
    ck_assert_int_eq(nf_parse_ports("  80 ;\t443-445\t; 8080  ", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_uint_eq(s.r[0].lo, 80);
    ck_assert_uint_eq(s.r[1].lo, 443);
    ck_assert_uint_eq(s.r[1].hi, 445);
    ck_assert_uint_eq(s.r[2].lo, 8080);
}
END_TEST

START_TEST(ports_mixed_list_and_ranges)
{
    struct nf_port_set s;
    ck_assert_int_eq(nf_parse_ports("22;1000-2000;80;1500-1600", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 4);
    ck_assert_uint_eq(s.r[1].lo, 1000);
    ck_assert_uint_eq(s.r[1].hi, 2000);
    ck_assert_uint_eq(s.r[3].lo, 1500);
    ck_assert_uint_eq(s.r[3].hi, 1600);
}
END_TEST

START_TEST(ports_leading_zeros_within_five_digits)
{
    struct nf_port_set s;
    ck_assert_int_eq(nf_parse_ports("00080", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.r[0].lo, 80);
}
END_TEST

START_TEST(ports_64_items_accepted)
{
    char buf[1024];
    struct nf_port_set s;
    build_port_list(buf, sizeof(buf), NF_MAX_ITEMS);
    ck_assert_int_eq(nf_parse_ports(buf, &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 64);
    ck_assert_uint_eq(s.r[0].lo, 1000);
    ck_assert_uint_eq(s.r[63].lo, 1063);
}
END_TEST

/* ---- ports: refused ---- */

static const struct {
    const char *in;
    const char *quote; /* must appear in the message */
} bad_ports[] = {
    {"65536", "'65536'"},
    {"99999", "'99999'"},
    {"100000", "'100000'"},
    {"80-", "'80-'"},
    {"-80", "'-80'"},
    {"-", "'-'"},
    {"85-80", "'85-80'"},
    {"81-80", "'81-80'"},
    {"80-65536", "'80-65536'"},
    {"80-85-90", "'80-85-90'"},
    {"+80", "'+80'"},
    {"-1", "'-1'"},
    {"8a", "'8a'"},
    {"0x50", "'0x50'"},
    {"80 85", "'80 85'"},
    {"80 - 85", "'80 - 85'"},
    {"1e3", "'1e3'"},
    {"80,443", "'80,443'"},
    {"80;abc;443", "'abc'"},
    {";;", "';;'"},
    {"80;;443", "'80;;443'"},
    {";80", "';80'"},
    {";", "';'"},
    {" ", "' '"},
    {"80; ;443", "'80; ;443'"},
    {"80;;", "'80;;'"},
};

START_TEST(ports_refused)
{
    struct nf_port_set s;
    struct cp_error e;
    memset(&e, 0, sizeof(e));
    port_sentinel(&s);
    const char *in = bad_ports[_i].in;
    ck_assert_msg(nf_parse_ports(in, &s, &e, TARGET) == CP_EINVAL, "accepted '%s'", in);
    ck_assert_uint_eq(s.n, 99); /* untouched */
    ck_assert_str_eq(e.code, "InvalidPropertyValue");
    ck_assert_str_eq(e.target, TARGET);
    ck_assert_msg(strstr(e.message, bad_ports[_i].quote) != NULL, "message for '%s': %s", in,
                  e.message);
    ck_assert_ptr_nonnull(strstr(e.message, TARGET));
}
END_TEST

START_TEST(ports_messages_name_the_rule)
{
    struct nf_port_set s;
    struct cp_error e;
    ck_assert_int_eq(nf_parse_ports("65536", &s, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "between 0 and 65535"));
    ck_assert_int_eq(nf_parse_ports("85-80", &s, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "low end is above the high end"));
    ck_assert_int_eq(nf_parse_ports("80-", &s, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "both sides of '-'"));
    ck_assert_int_eq(nf_parse_ports("80;;443", &s, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "empty item"));
}
END_TEST

START_TEST(ports_65_items_refused)
{
    char buf[1024];
    struct nf_port_set s;
    struct cp_error e;
    port_sentinel(&s);
    build_port_list(buf, sizeof(buf), NF_MAX_ITEMS + 1);
    ck_assert_int_eq(nf_parse_ports(buf, &s, &e, TARGET), CP_EINVAL);
    ck_assert_uint_eq(s.n, 99);
    ck_assert_str_eq(e.code, "InvalidPropertyValue");
    ck_assert_ptr_nonnull(strstr(e.message, "more than 64 items"));
}
END_TEST

START_TEST(ports_field_length_bound)
{
    /* 1024 characters is the limit: "80" padded with blanks fits, one more character does not. */
    char buf[NF_MAX_FIELD_LEN + 2];
    struct nf_port_set s;
    struct cp_error e;
    memset(buf, ' ', sizeof(buf));
    buf[0] = '8';
    buf[1] = '0';
    buf[NF_MAX_FIELD_LEN] = '\0';
    ck_assert_int_eq(nf_parse_ports(buf, &s, &e, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 1);
    buf[NF_MAX_FIELD_LEN] = ' ';
    buf[NF_MAX_FIELD_LEN + 1] = '\0';
    ck_assert_int_eq(nf_parse_ports(buf, &s, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "longer than 1024"));
}
END_TEST

START_TEST(ports_error_without_detail_or_target)
{
    struct nf_port_set s;
    struct cp_error e;
    ck_assert_int_eq(nf_parse_ports("x", &s, NULL, NULL), CP_EINVAL);
    ck_assert_int_eq(nf_parse_ports("x", &s, &e, NULL), CP_EINVAL);
    ck_assert_str_eq(e.target, "");
    ck_assert_ptr_nonnull(strstr(e.message, "'x'"));
}
END_TEST

START_TEST(ports_long_item_is_quoted_truncated)
{
    char buf[300];
    struct nf_port_set s;
    struct cp_error e;
    memset(buf, '9', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    ck_assert_int_eq(nf_parse_ports(buf, &s, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "...'"));
    ck_assert_uint_lt(strlen(e.message), 250);
}
END_TEST

/* ---- IPs: accepted ---- */

START_TEST(ips_null_and_empty_are_any)
{
    struct nf_ip_set s;
    ip_sentinel(&s);
    ck_assert_int_eq(nf_parse_ips(NULL, &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 0);
    ip_sentinel(&s);
    ck_assert_int_eq(nf_parse_ips("", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 0);
}
END_TEST

START_TEST(ips_single_v4)
{
    struct nf_ip_set s;
    ck_assert_int_eq(nf_parse_ips("127.0.0.1", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_int_eq(s.r[0].family, AF_INET);
    assert_v4(s.r[0].lo, "127.0.0.1");
    assert_v4(s.r[0].hi, "127.0.0.1");
}
END_TEST

START_TEST(ips_range_v4)
{
    struct nf_ip_set s;
    ck_assert_int_eq(nf_parse_ips("127.0.0.1-127.0.0.255", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 1);
    ck_assert_int_eq(s.r[0].family, AF_INET);
    assert_v4(s.r[0].lo, "127.0.0.1");
    assert_v4(s.r[0].hi, "127.0.0.255");
    ck_assert_int_eq(nf_parse_ips("1.1.1.1-255.255.255.255", &s, NULL, TARGET), CP_OK);
    assert_v4(s.r[0].hi, "255.255.255.255");
    /* ordering is numeric, not textual: 9.x < 10.x */
    ck_assert_int_eq(nf_parse_ips("9.255.255.255-10.0.0.0", &s, NULL, TARGET), CP_OK);
}
END_TEST

START_TEST(ips_list_v4)
{
    struct nf_ip_set s;
    ck_assert_int_eq(nf_parse_ips("127.0.0.1;127.0.0.5;", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 2);
    assert_v4(s.r[0].lo, "127.0.0.1");
    assert_v4(s.r[1].lo, "127.0.0.5");
    assert_v4(s.r[1].hi, "127.0.0.5");
}
END_TEST

START_TEST(ips_v6)
{
    struct nf_ip_set s;
    ck_assert_int_eq(nf_parse_ips("::1;2001:db8::1-2001:db8::ff;::ffff:10.0.0.1", &s, NULL, TARGET),
                     CP_OK);
    ck_assert_uint_eq(s.n, 3);
    ck_assert_int_eq(s.r[0].family, AF_INET6);
    assert_v6(s.r[0].lo, "::1");
    assert_v6(s.r[0].hi, "::1");
    ck_assert_int_eq(s.r[1].family, AF_INET6);
    assert_v6(s.r[1].lo, "2001:db8::1");
    assert_v6(s.r[1].hi, "2001:db8::ff");
    ck_assert_int_eq(s.r[2].family, AF_INET6);
    assert_v6(s.r[2].lo, "::ffff:10.0.0.1");
    ck_assert_int_eq(nf_parse_ips("2001:DB8:0:0:0:0:0:1", &s, NULL, TARGET), CP_OK);
    assert_v6(s.r[0].lo, "2001:db8::1");
}
END_TEST

START_TEST(ips_mixed_families_in_a_list)
{
    struct nf_ip_set s;
    ck_assert_int_eq(nf_parse_ips(" 10.0.0.1 ; fe80::1 ", &s, NULL, TARGET), CP_OK);
    ck_assert_uint_eq(s.n, 2);
    ck_assert_int_eq(s.r[0].family, AF_INET);
    ck_assert_int_eq(s.r[1].family, AF_INET6);
    assert_v6(s.r[1].lo, "fe80::1");
}
END_TEST

START_TEST(ips_cidr_v4)
{
    struct nf_ip_set s;
    ck_assert_int_eq(nf_parse_ips("10.0.0.0/8", &s, NULL, TARGET), CP_OK);
    ck_assert_int_eq(s.r[0].family, AF_INET);
    assert_v4(s.r[0].lo, "10.0.0.0");
    assert_v4(s.r[0].hi, "10.255.255.255");
    /* host bits are widened to the block */
    ck_assert_int_eq(nf_parse_ips("192.168.1.77/24", &s, NULL, TARGET), CP_OK);
    assert_v4(s.r[0].lo, "192.168.1.0");
    assert_v4(s.r[0].hi, "192.168.1.255");
    ck_assert_int_eq(nf_parse_ips("172.16.5.4/20", &s, NULL, TARGET), CP_OK);
    assert_v4(s.r[0].lo, "172.16.0.0");
    assert_v4(s.r[0].hi, "172.16.15.255");
    ck_assert_int_eq(nf_parse_ips("1.2.3.4/32", &s, NULL, TARGET), CP_OK);
    assert_v4(s.r[0].lo, "1.2.3.4");
    assert_v4(s.r[0].hi, "1.2.3.4");
    ck_assert_int_eq(nf_parse_ips("5.6.7.8/0", &s, NULL, TARGET), CP_OK);
    assert_v4(s.r[0].lo, "0.0.0.0");
    assert_v4(s.r[0].hi, "255.255.255.255");
}
END_TEST

START_TEST(ips_cidr_v6)
{
    struct nf_ip_set s;
    ck_assert_int_eq(nf_parse_ips("fe80::/10", &s, NULL, TARGET), CP_OK);
    ck_assert_int_eq(s.r[0].family, AF_INET6);
    assert_v6(s.r[0].lo, "fe80::");
    assert_v6(s.r[0].hi, "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    ck_assert_int_eq(nf_parse_ips("2001:db8::1/128", &s, NULL, TARGET), CP_OK);
    assert_v6(s.r[0].lo, "2001:db8::1");
    assert_v6(s.r[0].hi, "2001:db8::1");
    ck_assert_int_eq(nf_parse_ips("::/0", &s, NULL, TARGET), CP_OK);
    assert_v6(s.r[0].lo, "::");
    assert_v6(s.r[0].hi, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    ck_assert_int_eq(nf_parse_ips("2001:db8:abcd:12::/64", &s, NULL, TARGET), CP_OK);
    assert_v6(s.r[0].hi, "2001:db8:abcd:12:ffff:ffff:ffff:ffff");
}
END_TEST

/* ---- IPs: refused ---- */

static const struct {
    const char *in;
    const char *why; /* must appear in the message */
} bad_ips[] = {
    {"10.0.0.1-::1", "both ends of a range"},
    {"::1-10.0.0.1", "both ends of a range"},
    {"10.0.0.5-10.0.0.1", "low end is above"},
    {"10.0.1.0-10.0.0.255", "low end is above"},
    {"2001:db8::2-2001:db8::1", "low end is above"},
    {"1.2.3.4/33", "0-32"},
    {"::/129", "0-128"},
    {"1.2.3.4/", "0-32"},
    {"1.2.3.4/-1", "not both"},
    {"1.2.3.4/1000", "0-32"},
    {"1.2.3.4/ 8", "0-32"},
    {"/24", "before '/'"},
    {"1.2.3/24", "before '/'"},
    {"1.1.1.1-2.2.2.2/24", "not both"},
    {"1.2.3", "IPv4 or IPv6"},
    {"256.1.1.1", "IPv4 or IPv6"},
    {"1.2.3.4.5", "IPv4 or IPv6"},
    {"localhost", "IPv4 or IPv6"},
    {"fe80::1%eth0", "IPv4 or IPv6"},
    {"2001:db8:::1", "IPv4 or IPv6"},
    {"1.2.3.4 - 1.2.3.5", "IPv4 or IPv6"},
    {"1.2.3.4-", "both sides of '-'"},
    {"-1.2.3.4", "both sides of '-'"},
    {"1.2.3.4-1.2.3.5-1.2.3.6", "IPv4 or IPv6"},
    {";;", "empty item"},
    {"1.2.3.4;;5.6.7.8", "empty item"},
    {";1.2.3.4", "empty item"},
    {" ", "empty item"},
};

START_TEST(ips_refused)
{
    struct nf_ip_set s;
    struct cp_error e;
    memset(&e, 0, sizeof(e));
    ip_sentinel(&s);
    const char *in = bad_ips[_i].in;
    ck_assert_msg(nf_parse_ips(in, &s, &e, "properties.filters[1].remoteIPAddress") == CP_EINVAL,
                  "accepted '%s'", in);
    ck_assert_uint_eq(s.n, 99);
    ck_assert_str_eq(e.code, "InvalidPropertyValue");
    ck_assert_str_eq(e.target, "properties.filters[1].remoteIPAddress");
    ck_assert_msg(strstr(e.message, bad_ips[_i].why) != NULL, "message for '%s': %s", in,
                  e.message);
}
END_TEST

START_TEST(ips_bad_item_is_quoted)
{
    struct nf_ip_set s;
    struct cp_error e;
    ck_assert_int_eq(nf_parse_ips("10.0.0.1;10.0.0.300;10.0.0.3", &s, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "'10.0.0.300'"));
}
END_TEST

START_TEST(ips_65_items_refused)
{
    char buf[NF_MAX_FIELD_LEN + 1];
    size_t off = 0;
    struct nf_ip_set s;
    struct cp_error e;
    for (int i = 0; i < NF_MAX_ITEMS + 1; i++) {
        int n =
            snprintf(buf + off, sizeof(buf) - off, "%s10.0.%d.%d", i ? ";" : "", i / 10, i % 10);
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
        ck_assert_uint_lt(off, sizeof(buf));
        if (i == NF_MAX_ITEMS - 1) {
            ck_assert_int_eq(nf_parse_ips(buf, &s, &e, TARGET), CP_OK);
            ck_assert_uint_eq(s.n, 64);
        }
    }
    ip_sentinel(&s);
    ck_assert_int_eq(nf_parse_ips(buf, &s, &e, TARGET), CP_EINVAL);
    ck_assert_uint_eq(s.n, 99);
    ck_assert_ptr_nonnull(strstr(e.message, "more than 64 items"));
}
END_TEST

START_TEST(ips_field_length_bound)
{
    char buf[NF_MAX_FIELD_LEN + 2];
    struct nf_ip_set s;
    struct cp_error e;
    memset(buf, ' ', sizeof(buf));
    memcpy(buf, "::1", 3);
    buf[NF_MAX_FIELD_LEN + 1] = '\0';
    ck_assert_int_eq(nf_parse_ips(buf, &s, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "longer than 1024"));
    buf[NF_MAX_FIELD_LEN] = '\0';
    ck_assert_int_eq(nf_parse_ips(buf, &s, &e, TARGET), CP_OK);
    ck_assert_int_eq(s.r[0].family, AF_INET6);
}
END_TEST

/* ---- protocol ---- */

START_TEST(protocol_parse_accepts_any_case)
{
    static const struct {
        const char *in;
        enum nf_protocol want;
    } ok[] = {
        {"Any", NF_PROTO_ANY},   {"any", NF_PROTO_ANY}, {"ANY", NF_PROTO_ANY},
        {"TCP", NF_PROTO_TCP},   {"tcp", NF_PROTO_TCP}, {"Tcp", NF_PROTO_TCP},
        {"UDP", NF_PROTO_UDP},   {"uDp", NF_PROTO_UDP}, {"ICMP", NF_PROTO_ICMP},
        {"icmp", NF_PROTO_ICMP},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        enum nf_protocol p = (enum nf_protocol)99;
        ck_assert_msg(nf_protocol_parse(ok[i].in, &p) == 0, "refused %s", ok[i].in);
        ck_assert_int_eq(p, ok[i].want);
    }
}
END_TEST

START_TEST(protocol_parse_refuses)
{
    static const char *const bad[] = {"", " TCP", "TCP ", "tcpx", "TC", "IP", "ICMPv6", "*", "6"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum nf_protocol p = (enum nf_protocol)99;
        ck_assert_msg(nf_protocol_parse(bad[i], &p) == -1, "accepted '%s'", bad[i]);
        ck_assert_int_eq(p, 99);
    }
    enum nf_protocol p = NF_PROTO_UDP;
    ck_assert_int_eq(nf_protocol_parse(NULL, &p), -1);
    ck_assert_int_eq(p, NF_PROTO_UDP);
}
END_TEST

START_TEST(protocol_names)
{
    ck_assert_str_eq(nf_protocol_name(NF_PROTO_ANY), "Any");
    ck_assert_str_eq(nf_protocol_name(NF_PROTO_TCP), "TCP");
    ck_assert_str_eq(nf_protocol_name(NF_PROTO_UDP), "UDP");
    ck_assert_str_eq(nf_protocol_name(NF_PROTO_ICMP), "ICMP");
    ck_assert_str_eq(nf_protocol_name((enum nf_protocol)42), "Unknown");
    /* name and parse round-trip */
    enum nf_protocol p;
    ck_assert_int_eq(nf_protocol_parse(nf_protocol_name(NF_PROTO_ICMP), &p), 0);
    ck_assert_int_eq(p, NF_PROTO_ICMP);
}
END_TEST

static Suite *netfilter_suite(void)
{
    Suite *s = suite_create("common_netfilter");
    TCase *tp = tcase_create("ports");
    tcase_add_test(tp, ports_null_and_empty_are_any);
    tcase_add_test(tp, ports_single);
    tcase_add_test(tp, ports_bounds);
    tcase_add_test(tp, ports_range);
    tcase_add_test(tp, ports_list_trailing_semicolon);
    tcase_add_test(tp, ports_spaces_trimmed);
    tcase_add_test(tp, ports_mixed_list_and_ranges);
    tcase_add_test(tp, ports_leading_zeros_within_five_digits);
    tcase_add_test(tp, ports_64_items_accepted);
    tcase_add_loop_test(tp, ports_refused, 0, (int)(sizeof(bad_ports) / sizeof(bad_ports[0])));
    tcase_add_test(tp, ports_messages_name_the_rule);
    tcase_add_test(tp, ports_65_items_refused);
    tcase_add_test(tp, ports_field_length_bound);
    tcase_add_test(tp, ports_error_without_detail_or_target);
    tcase_add_test(tp, ports_long_item_is_quoted_truncated);
    suite_add_tcase(s, tp);

    TCase *ti = tcase_create("ips");
    tcase_add_test(ti, ips_null_and_empty_are_any);
    tcase_add_test(ti, ips_single_v4);
    tcase_add_test(ti, ips_range_v4);
    tcase_add_test(ti, ips_list_v4);
    tcase_add_test(ti, ips_v6);
    tcase_add_test(ti, ips_mixed_families_in_a_list);
    tcase_add_test(ti, ips_cidr_v4);
    tcase_add_test(ti, ips_cidr_v6);
    tcase_add_loop_test(ti, ips_refused, 0, (int)(sizeof(bad_ips) / sizeof(bad_ips[0])));
    tcase_add_test(ti, ips_bad_item_is_quoted);
    tcase_add_test(ti, ips_65_items_refused);
    tcase_add_test(ti, ips_field_length_bound);
    suite_add_tcase(s, ti);

    TCase *tr = tcase_create("protocol");
    tcase_add_test(tr, protocol_parse_accepts_any_case);
    tcase_add_test(tr, protocol_parse_refuses);
    tcase_add_test(tr, protocol_names);
    suite_add_tcase(s, tr);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(netfilter_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
