/*
 * The filter-field grammar behind netfilter.h: split a field on ';', trim each item, then read
 * the item as a single value, an "a-b" range or (addresses only) an "addr/len" block.
 * Nothing is allocated; the output struct is filled on the stack and copied out on success.
 */
#include "common/netfilter.h"

#include <arpa/inet.h>
#include <assert.h>
#include <string.h>

#define NF_CODE      "InvalidPropertyValue"
#define NF_QUOTE_MAX 64 /* characters of an offending value quoted in a message */

/* A borrowed slice of the caller's field string (not NUL-terminated). */
struct nf_span {
    const char *p;
    size_t len;
};

static const char *nf_field_name(const char *target)
{
    return target && target[0] ? target : "the filter field";
}

static int nf_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static struct nf_span nf_trim(struct nf_span s)
{
    while (s.len > 0 && nf_is_blank(s.p[0])) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && nf_is_blank(s.p[s.len - 1]))
        s.len--;
    return s;
}

/* Quotes at most NF_QUOTE_MAX characters of s; the "..." tells the reader it was cut. */
static int nf_quote_len(struct nf_span s)
{
    return (int)(s.len > NF_QUOTE_MAX ? NF_QUOTE_MAX : s.len);
}

static const char *nf_quote_more(struct nf_span s)
{
    return s.len > NF_QUOTE_MAX ? "..." : "";
}

static enum cp_err nf_bad_item(struct cp_error *e, const char *target, struct nf_span item,
                               const char *what, const char *why)
{
    return cp_fail(e, CP_EINVAL, NF_CODE, target, "'%.*s%s' in %s is not a valid %s: %s.",
                   nf_quote_len(item), item.p, nf_quote_more(item), nf_field_name(target), what,
                   why);
}

/*
 * Splits s (not NULL, not "") into at most NF_MAX_ITEMS trimmed, non-empty items. A single
 * trailing ';' (optionally followed by blanks) is allowed; any other empty item is refused.
 */
static enum cp_err nf_split(const char *s, struct nf_span items[NF_MAX_ITEMS], size_t *count,
                            struct cp_error *e, const char *target)
{
    size_t len = strnlen(s, NF_MAX_FIELD_LEN + 1);
    if (len > NF_MAX_FIELD_LEN)
        return cp_fail(e, CP_EINVAL, NF_CODE, target,
                       "The value of %s is longer than %d characters.", nf_field_name(target),
                       NF_MAX_FIELD_LEN);

    struct nf_span whole = {s, len};
    const char *p = s;
    const char *end = s + len;
    size_t n = 0;
    for (;;) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        struct nf_span item = nf_trim((struct nf_span){p, (size_t)(stop - p)});
        if (item.len == 0) {
            /* Blanks after the one trailing ';' are tolerated, like the ';' itself. */
            if (!semi && n > 0)
                break;
            return cp_fail(e, CP_EINVAL, NF_CODE, target,
                           "'%.*s%s' in %s has an empty item: separate items with a single ';'.",
                           nf_quote_len(whole), s, nf_quote_more(whole), nf_field_name(target));
        }
        if (n == NF_MAX_ITEMS)
            return cp_fail(e, CP_EINVAL, NF_CODE, target, "%s has more than %d items.",
                           nf_field_name(target), NF_MAX_ITEMS);
        items[n++] = item;
        if (!semi || semi + 1 == end)
            break;
        p = semi + 1;
    }
    *count = n;
    return CP_OK;
}

/* Reads 1-5 decimal digits worth at most 65535. Returns 0, -1 (not digits) or -2 (too big). */
static int nf_port_value(struct nf_span s, uint16_t *out)
{
    if (s.len == 0)
        return -1;
    uint32_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c < '0' || c > '9')
            return -1;
        if (i < 5)
            v = v * 10 + (uint32_t)(c - '0');
    }
    if (s.len > 5 || v > 65535)
        return -2;
    *out = (uint16_t)v;
    return 0;
}

static enum cp_err nf_port_item(struct nf_span item, struct nf_port_range *r, struct cp_error *e,
                                const char *target)
{
    const char *dash = memchr(item.p, '-', item.len);
    struct nf_span lo = item;
    struct nf_span hi = item;
    if (dash) {
        lo.len = (size_t)(dash - item.p);
        hi.p = dash + 1;
        hi.len = item.len - lo.len - 1;
        if (lo.len == 0 || hi.len == 0)
            return nf_bad_item(e, target, item, "port range",
                               "a range needs a port on both sides of '-'");
    }
    uint16_t a = 0;
    uint16_t b = 0;
    int rc = nf_port_value(lo, &a);
    if (rc == 0)
        rc = dash ? nf_port_value(hi, &b) : nf_port_value(lo, &b);
    if (rc == -1)
        return nf_bad_item(e, target, item, "port",
                           "ports are plain decimal numbers 0-65535, a range is 'low-high'");
    if (rc == -2)
        return nf_bad_item(e, target, item, "port", "a port must be between 0 and 65535");
    if (a > b)
        return nf_bad_item(e, target, item, "port range", "the low end is above the high end");
    r->lo = a;
    r->hi = b;
    return CP_OK;
}

enum cp_err nf_parse_ports(const char *s, struct nf_port_set *out, struct cp_error *e,
                           const char *target)
{
    assert(out != NULL);
    struct nf_port_set set;
    memset(&set, 0, sizeof(set));
    if (s && s[0]) {
        struct nf_span items[NF_MAX_ITEMS];
        enum cp_err err = nf_split(s, items, &set.n, e, target);
        if (err != CP_OK)
            return err;
        for (size_t i = 0; i < set.n; i++) {
            err = nf_port_item(items[i], &set.r[i], e, target);
            if (err != CP_OK)
                return err;
        }
    }
    *out = set;
    return CP_OK;
}

static size_t nf_addr_bytes(int family)
{
    return family == AF_INET ? 4 : 16;
}

/* Reads one IPv4 or IPv6 address. Returns 0 with *family and out[16] set, or -1. */
static int nf_addr_value(struct nf_span s, int *family, uint8_t out[16])
{
    char buf[INET6_ADDRSTRLEN];
    if (s.len == 0 || s.len >= sizeof(buf))
        return -1;
    memcpy(buf, s.p, s.len);
    buf[s.len] = '\0';
    memset(out, 0, 16);
    if (inet_pton(AF_INET, buf, out) == 1) {
        *family = AF_INET;
        return 0;
    }
    memset(out, 0, 16);
    if (inet_pton(AF_INET6, buf, out) == 1) {
        *family = AF_INET6;
        return 0;
    }
    return -1;
}

/* Reads a prefix length of 1-3 decimal digits. Returns it, or -1. */
static int nf_prefix_len(struct nf_span s)
{
    if (s.len == 0 || s.len > 3)
        return -1;
    int v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        v = v * 10 + (s.p[i] - '0');
    }
    return v;
}

static enum cp_err nf_cidr_item(struct nf_span item, const char *slash, struct nf_ip_range *r,
                                struct cp_error *e, const char *target)
{
    struct nf_span addr = {item.p, (size_t)(slash - item.p)};
    struct nf_span plen = {slash + 1, item.len - addr.len - 1};
    uint8_t a[16];
    int family = 0;
    if (nf_addr_value(addr, &family, a) != 0)
        return nf_bad_item(e, target, item, "CIDR block",
                           "the part before '/' is not an IPv4 or IPv6 address");
    int bits = (int)nf_addr_bytes(family) * 8;
    int len = nf_prefix_len(plen);
    if (len < 0 || len > bits)
        return nf_bad_item(e, target, item, "CIDR block",
                           family == AF_INET ? "an IPv4 prefix length is 0-32"
                                             : "an IPv6 prefix length is 0-128");
    memset(r, 0, sizeof(*r));
    r->family = family;
    for (size_t i = 0; i < nf_addr_bytes(family); i++) {
        int start = (int)i * 8;
        uint8_t mask;
        if (len >= start + 8)
            mask = 0xff;
        else if (len <= start)
            mask = 0x00;
        else
            mask = (uint8_t)(0xff << (8 - (len - start)));
        r->lo[i] = (uint8_t)(a[i] & mask);
        r->hi[i] = (uint8_t)(a[i] | (uint8_t)~mask);
    }
    return CP_OK;
}

static enum cp_err nf_ip_item(struct nf_span item, struct nf_ip_range *r, struct cp_error *e,
                              const char *target)
{
    const char *slash = memchr(item.p, '/', item.len);
    const char *dash = memchr(item.p, '-', item.len);
    if (slash && dash)
        return nf_bad_item(e, target, item, "IP address item",
                           "an item is an address, a 'low-high' range or a CIDR block, not both");
    if (slash)
        return nf_cidr_item(item, slash, r, e, target);

    struct nf_span lo = item;
    struct nf_span hi = item;
    if (dash) {
        lo.len = (size_t)(dash - item.p);
        hi.p = dash + 1;
        hi.len = item.len - lo.len - 1;
        if (lo.len == 0 || hi.len == 0)
            return nf_bad_item(e, target, item, "IP address range",
                               "a range needs an address on both sides of '-'");
    }
    uint8_t a[16];
    uint8_t b[16];
    int fa = 0;
    int fb = 0;
    if (nf_addr_value(lo, &fa, a) != 0 || (dash && nf_addr_value(hi, &fb, b) != 0))
        return nf_bad_item(e, target, item, dash ? "IP address range" : "IP address",
                           "expected an IPv4 or IPv6 address");
    if (!dash) {
        fb = fa;
        memcpy(b, a, sizeof(b));
    }
    if (fa != fb)
        return nf_bad_item(e, target, item, "IP address range",
                           "both ends of a range must be IPv4, or both IPv6");
    if (memcmp(a, b, nf_addr_bytes(fa)) > 0)
        return nf_bad_item(e, target, item, "IP address range",
                           "the low end is above the high end");
    memset(r, 0, sizeof(*r));
    r->family = fa;
    memcpy(r->lo, a, sizeof(r->lo));
    memcpy(r->hi, b, sizeof(r->hi));
    return CP_OK;
}

enum cp_err nf_parse_ips(const char *s, struct nf_ip_set *out, struct cp_error *e,
                         const char *target)
{
    assert(out != NULL);
    struct nf_ip_set set;
    memset(&set, 0, sizeof(set));
    if (s && s[0]) {
        struct nf_span items[NF_MAX_ITEMS];
        enum cp_err err = nf_split(s, items, &set.n, e, target);
        if (err != CP_OK)
            return err;
        for (size_t i = 0; i < set.n; i++) {
            err = nf_ip_item(items[i], &set.r[i], e, target);
            if (err != CP_OK)
                return err;
        }
    }
    *out = set;
    return CP_OK;
}

static const char *const nf_protocol_names[] = {
    [NF_PROTO_ANY] = "Any",
    [NF_PROTO_TCP] = "TCP",
    [NF_PROTO_UDP] = "UDP",
    [NF_PROTO_ICMP] = "ICMP",
};

#define NF_PROTOCOL_COUNT (sizeof(nf_protocol_names) / sizeof(nf_protocol_names[0]))

/* ASCII-only case folding: independent of the process locale. */
static int nf_ascii_ieq(const char *a, const char *b)
{
    for (;; a++, b++) {
        char ca = (*a >= 'A' && *a <= 'Z') ? (char)(*a - 'A' + 'a') : *a;
        char cb = (*b >= 'A' && *b <= 'Z') ? (char)(*b - 'A' + 'a') : *b;
        if (ca != cb)
            return 0;
        if (ca == '\0')
            return 1;
    }
}

int nf_protocol_parse(const char *s, enum nf_protocol *out)
{
    if (!s)
        return -1;
    for (size_t i = 0; i < NF_PROTOCOL_COUNT; i++) {
        if (nf_ascii_ieq(s, nf_protocol_names[i])) {
            *out = (enum nf_protocol)i;
            return 0;
        }
    }
    return -1;
}

const char *nf_protocol_name(enum nf_protocol p)
{
    if ((size_t)p < NF_PROTOCOL_COUNT)
        return nf_protocol_names[p];
    return "Unknown";
}
