/*
 * The filter compiler behind bpf_expr.h: exact CIDR decomposition of address ranges (on a 128-bit
 * integer made of two 64-bit halves, so IPv4 and IPv6 share one path) and the text of the pcap
 * expression, grown in one bounded dynbuf.
 *
 * Output shape, per kept filter (parts that are unset are left out):
 *     <proto> and ((src in L and dst in R and sport in LP and dport in RP)
 *                  or (dst in L and src in R and dport in LP and sport in RP))
 * a set of one item is written bare ("ip src net 10.0.0.4/32"), a set of several in parentheses
 * joined by "or"; several filters are each parenthesised and joined by "or".
 */
#include "common/bpf_expr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/dynbuf.h"

#define BPF_CODE_INVALID "InvalidPropertyValue"
#define BPF_TARGET       "properties.filters"
#define BPF_BLOCKS_MAX   254 /* 2 * 128 - 2: the most CIDR blocks one IPv6 range needs */

/* ---- 128-bit arithmetic, just what the decomposition needs ---- */

struct u128 {
    uint64_t hi, lo;
};

static struct u128 u128_from_bytes(const uint8_t *b, size_t n)
{
    struct u128 v = {0, 0};
    for (size_t i = 0; i < n; i++) {
        v.hi = (v.hi << 8) | (v.lo >> 56);
        v.lo = (v.lo << 8) | b[i];
    }
    return v;
}

static void u128_to_bytes(struct u128 v, uint8_t *b, size_t n)
{
    for (size_t i = n; i-- > 0;) {
        b[i] = (uint8_t)(v.lo & 0xff);
        v.lo = (v.lo >> 8) | (v.hi << 56);
        v.hi >>= 8;
    }
}

static int u128_cmp(struct u128 a, struct u128 b)
{
    if (a.hi != b.hi)
        return a.hi < b.hi ? -1 : 1;
    if (a.lo != b.lo)
        return a.lo < b.lo ? -1 : 1;
    return 0;
}

/* The low k bits set, 0 <= k <= 128. */
static struct u128 u128_mask(unsigned k)
{
    struct u128 m = {0, 0};
    if (k >= 128)
        return (struct u128){UINT64_MAX, UINT64_MAX};
    if (k >= 64) {
        m.lo = UINT64_MAX;
        m.hi = k == 64 ? 0 : (UINT64_MAX >> (128 - k));
    } else if (k > 0) {
        m.lo = UINT64_MAX >> (64 - k);
    }
    return m;
}

static struct u128 u128_or(struct u128 a, struct u128 b)
{
    return (struct u128){a.hi | b.hi, a.lo | b.lo};
}

static struct u128 u128_inc(struct u128 a)
{
    a.lo++;
    if (a.lo == 0)
        a.hi++;
    return a;
}

/* Trailing zero bits of v, capped at width (a zero value has width of them). */
static unsigned u128_tz(struct u128 v, unsigned width)
{
    unsigned n = 0;
    while (n < width) {
        uint64_t word = n < 64 ? v.lo : v.hi;
        if ((word >> (n % 64)) & 1)
            break;
        n++;
    }
    return n;
}

static size_t bpf_addr_bytes(int family)
{
    return family == AF_INET ? 4 : 16;
}

static int bpf_family_ok(int family)
{
    return family == AF_INET || family == AF_INET6;
}

size_t bpf_expr_range_to_cidrs(const struct nf_ip_range *r, struct nf_ip_range *blocks,
                               unsigned *lens, size_t cap)
{
    if (!bpf_family_ok(r->family))
        return 0;
    size_t nb = bpf_addr_bytes(r->family);
    unsigned width = (unsigned)nb * 8;
    struct u128 cur = u128_from_bytes(r->lo, nb);
    struct u128 hi = u128_from_bytes(r->hi, nb);
    if (u128_cmp(cur, hi) > 0)
        return 0;
    size_t n = 0;
    for (;;) {
        /* The largest block that starts at cur (aligned) and ends at or before hi. */
        unsigned k = u128_tz(cur, width);
        struct u128 last = u128_or(cur, u128_mask(k));
        while (k > 0 && u128_cmp(last, hi) > 0) {
            k--;
            last = u128_or(cur, u128_mask(k));
        }
        if (n == cap)
            return 0;
        memset(&blocks[n], 0, sizeof(blocks[n]));
        blocks[n].family = r->family;
        u128_to_bytes(cur, blocks[n].lo, nb);
        u128_to_bytes(last, blocks[n].hi, nb);
        lens[n] = width - k;
        n++;
        /* Stopping at hi (rather than testing cur > hi) never increments past the top. */
        if (u128_cmp(last, hi) == 0)
            return n;
        cur = u128_inc(last);
    }
}

/* ---- validation ---- */

/* what names the set in messages, e.g. "filters[2].localIPAddress". */
static enum cp_err bpf_check_ips(const struct nf_ip_set *s, const char *what, struct cp_error *e)
{
    if (s->n > NF_MAX_ITEMS)
        return cp_fail(e, CP_EINVAL, BPF_CODE_INVALID, BPF_TARGET, "%s has more than %d items.",
                       what, NF_MAX_ITEMS);
    for (size_t i = 0; i < s->n; i++) {
        const struct nf_ip_range *r = &s->r[i];
        if (!bpf_family_ok(r->family) || memcmp(r->lo, r->hi, bpf_addr_bytes(r->family)) > 0)
            return cp_fail(e, CP_EINVAL, BPF_CODE_INVALID, BPF_TARGET,
                           "Item %zu of %s is not a valid address range.", i, what);
    }
    return CP_OK;
}

static enum cp_err bpf_check_ports(const struct nf_port_set *s, const char *what,
                                   struct cp_error *e)
{
    if (s->n > NF_MAX_ITEMS)
        return cp_fail(e, CP_EINVAL, BPF_CODE_INVALID, BPF_TARGET, "%s has more than %d items.",
                       what, NF_MAX_ITEMS);
    for (size_t i = 0; i < s->n; i++)
        if (s->r[i].lo > s->r[i].hi)
            return cp_fail(e, CP_EINVAL, BPF_CODE_INVALID, BPF_TARGET,
                           "Item %zu of %s is not a valid port range.", i, what);
    return CP_OK;
}

static enum cp_err bpf_check_filter(const struct bpf_filter_spec *f, size_t fi, struct cp_error *e)
{
    if (f->protocol != NF_PROTO_ANY && f->protocol != NF_PROTO_TCP && f->protocol != NF_PROTO_UDP &&
        f->protocol != NF_PROTO_ICMP)
        return cp_fail(e, CP_EINVAL, BPF_CODE_INVALID, BPF_TARGET,
                       "filters[%zu] has an unknown protocol (%d).", fi, (int)f->protocol);
    static const char *const names[] = {"localIPAddress", "remoteIPAddress", "localPort",
                                        "remotePort"};
    char what[4][64];
    for (size_t i = 0; i < 4; i++)
        snprintf(what[i], sizeof(what[i]), "filters[%zu].%s", fi, names[i]);
    enum cp_err err;
    if ((err = bpf_check_ips(&f->local_ip, what[0], e)) ||
        (err = bpf_check_ips(&f->remote_ip, what[1], e)) ||
        (err = bpf_check_ports(&f->local_port, what[2], e)) ||
        (err = bpf_check_ports(&f->remote_port, what[3], e)))
        return err;
    return CP_OK;
}

/* ---- expression text ---- */

#define BPF_FAM_V4  1u
#define BPF_FAM_V6  2u
#define BPF_FAM_ALL (BPF_FAM_V4 | BPF_FAM_V6)

static unsigned bpf_family_bit(int family)
{
    return family == AF_INET ? BPF_FAM_V4 : BPF_FAM_V6;
}

/* The families present in s; an unset set stands for every address, so both. */
static unsigned bpf_families(const struct nf_ip_set *s)
{
    if (s->n == 0)
        return BPF_FAM_ALL;
    unsigned f = 0;
    for (size_t i = 0; i < s->n; i++)
        f |= bpf_family_bit(s->r[i].family);
    return f;
}

/* Number of items of s whose family is in fams. */
static size_t bpf_count_in(const struct nf_ip_set *s, unsigned fams)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (bpf_family_bit(s->r[i].family) & fams)
            n++;
    return n;
}

/*
 * Writes "ip <dir> net <block>" (or "ip6 ...") for every CIDR block of every item of s whose
 * family is in fams, joined by "or", in parentheses when there is more than one block.
 */
static void bpf_put_ips(struct dynbuf *b, const char *dir, const struct nf_ip_set *s, unsigned fams)
{
    struct nf_ip_range blocks[BPF_BLOCKS_MAX];
    unsigned lens[BPF_BLOCKS_MAX];
    size_t total = 0;
    size_t mark = b->len;
    dynbuf_addstr(b, "(");
    for (size_t i = 0; i < s->n; i++) {
        if (!(bpf_family_bit(s->r[i].family) & fams))
            continue;
        size_t nb = bpf_expr_range_to_cidrs(&s->r[i], blocks, lens, BPF_BLOCKS_MAX);
        for (size_t j = 0; j < nb; j++) {
            char text[INET6_ADDRSTRLEN];
            if (!inet_ntop(blocks[j].family, blocks[j].lo, text, sizeof(text)))
                text[0] = '\0'; /* cannot happen for AF_INET/AF_INET6 and a right-sized buffer */
            /* "ip"/"ip6" first: a bare "net" would also match ARP and RARP packets. */
            dynbuf_printf(b, "%s%s %s net %s/%u", total++ ? " or " : "",
                          blocks[j].family == AF_INET ? "ip" : "ip6", dir, text, lens[j]);
        }
    }
    dynbuf_addstr(b, ")");
    /* One block: drop the parentheses again. The writes above only appended after mark, so the
     * content can be shifted in place (nothing to do once the buffer has failed). */
    if (total == 1 && !b->failed) {
        memmove(b->s + mark, b->s + mark + 1, b->len - mark - 2);
        b->len -= 2;
        b->s[b->len] = '\0';
    }
}

static void bpf_put_ports(struct dynbuf *b, const char *dir, const struct nf_port_set *s)
{
    if (s->n > 1)
        dynbuf_addstr(b, "(");
    for (size_t i = 0; i < s->n; i++) {
        const struct nf_port_range *r = &s->r[i];
        const char *sep = i ? " or " : "";
        if (r->lo == r->hi)
            dynbuf_printf(b, "%s%s port %u", sep, dir, (unsigned)r->lo);
        else
            dynbuf_printf(b, "%s%s portrange %u-%u", sep, dir, (unsigned)r->lo, (unsigned)r->hi);
    }
    if (s->n > 1)
        dynbuf_addstr(b, ")");
}

/* One direction: local side is "src" when out is true. L is never empty here. */
static void bpf_put_arm(struct dynbuf *b, int out, const struct nf_ip_set *l,
                        const struct bpf_filter_spec *f, unsigned fams)
{
    const char *ldir = out ? "src" : "dst";
    const char *rdir = out ? "dst" : "src";
    dynbuf_addstr(b, "(");
    bpf_put_ips(b, ldir, l, fams);
    if (f->remote_ip.n) {
        dynbuf_addstr(b, " and ");
        bpf_put_ips(b, rdir, &f->remote_ip, fams);
    }
    if (f->local_port.n) {
        dynbuf_addstr(b, " and ");
        bpf_put_ports(b, ldir, &f->local_port);
    }
    if (f->remote_port.n) {
        dynbuf_addstr(b, " and ");
        bpf_put_ports(b, rdir, &f->remote_port);
    }
    dynbuf_addstr(b, ")");
}

enum bpf_kind {
    BPF_KIND_NONE,  /* matches no packet: left out of the OR */
    BPF_KIND_ALL,   /* matches every packet: the whole expression is "" */
    BPF_KIND_CLAUSE /* appended a clause to the buffer */
};

/* Appends the clause of one filter (already checked) or says why there is none. */
static enum bpf_kind bpf_put_filter(struct dynbuf *b, const struct bpf_filter_spec *f,
                                    const struct nf_ip_set *local_addrs, int *need_local)
{
    int ports = f->local_port.n || f->remote_port.n;
    int directed = ports || f->local_ip.n || f->remote_ip.n;
    const char *proto = NULL;
    switch (f->protocol) {
    case NF_PROTO_TCP:
        proto = "tcp";
        break;
    case NF_PROTO_UDP:
        proto = "udp";
        break;
    case NF_PROTO_ICMP:
        if (ports)
            return BPF_KIND_NONE; /* ICMP carries no ports */
        proto = "(icmp or icmp6)";
        break;
    case NF_PROTO_ANY:
        proto = ports ? "(tcp or udp)" : NULL;
        break;
    }
    if (!directed) {
        if (!proto)
            return BPF_KIND_ALL;
        dynbuf_addstr(b, proto);
        return BPF_KIND_CLAUSE;
    }

    const struct nf_ip_set *l = f->local_ip.n ? &f->local_ip : local_addrs;
    if (!l || l->n == 0) {
        *need_local = 1;
        return BPF_KIND_NONE;
    }
    /* Keep only the families both sides can have: a v4 source never pairs with a v6 target,
     * and pcap_compile refuses a program it proves can never match. */
    unsigned fams = bpf_families(l) & bpf_families(&f->remote_ip);
    if (!fams || bpf_count_in(l, fams) == 0 ||
        (f->remote_ip.n && bpf_count_in(&f->remote_ip, fams) == 0))
        return BPF_KIND_NONE;

    if (proto) {
        dynbuf_addstr(b, proto);
        dynbuf_addstr(b, " and ");
    }
    dynbuf_addstr(b, "(");
    bpf_put_arm(b, 1, l, f, fams);
    dynbuf_addstr(b, " or ");
    bpf_put_arm(b, 0, l, f, fams);
    dynbuf_addstr(b, ")");
    return BPF_KIND_CLAUSE;
}

enum cp_err bpf_filter_spec_parse(const char *protocol, const char *local_ip, const char *remote_ip,
                                  const char *local_port, const char *remote_port, size_t index,
                                  struct bpf_filter_spec *out, struct cp_error *e)
{
    struct bpf_filter_spec *f = calloc(1, sizeof(*f)); /* ~5 KiB: keep it off small stacks */
    if (!f)
        return cp_fail(e, CP_ENOMEM, "InternalError", BPF_TARGET, "Out of memory.");
    enum cp_err err = CP_OK;
    char target[CP_ERROR_TARGET_MAX];
    f->protocol = NF_PROTO_ANY;
    if (protocol && protocol[0] && nf_protocol_parse(protocol, &f->protocol) != 0) {
        err =
            cp_fail(e, CP_EINVAL, BPF_CODE_INVALID, BPF_TARGET,
                    "properties.filters[%zu].protocol must be one of TCP, UDP, ICMP, Any.", index);
        goto cleanup;
    }
    snprintf(target, sizeof(target), "properties.filters[%zu].localIPAddress", index);
    if ((err = nf_parse_ips(local_ip, &f->local_ip, e, target)))
        goto cleanup;
    snprintf(target, sizeof(target), "properties.filters[%zu].remoteIPAddress", index);
    if ((err = nf_parse_ips(remote_ip, &f->remote_ip, e, target)))
        goto cleanup;
    snprintf(target, sizeof(target), "properties.filters[%zu].localPort", index);
    if ((err = nf_parse_ports(local_port, &f->local_port, e, target)))
        goto cleanup;
    snprintf(target, sizeof(target), "properties.filters[%zu].remotePort", index);
    if ((err = nf_parse_ports(remote_port, &f->remote_port, e, target)))
        goto cleanup;
    *out = *f;
cleanup:
    free(f);
    return err;
}

enum cp_err bpf_expr_build(const struct bpf_filter_spec *filters, size_t n,
                           const struct nf_ip_set *local_addrs, char **out, struct cp_error *e)
{
    enum cp_err err;
    if (local_addrs && (err = bpf_check_ips(local_addrs, "the machine's address set", e)))
        return err;
    for (size_t i = 0; i < n; i++)
        if ((err = bpf_check_filter(&filters[i], i, e)))
            return err;

    struct dynbuf b;
    dynbuf_init(&b, BPF_EXPR_MAX);
    /* dynbuf reports "too big" and "out of memory" alike; realloc(3) sets ENOMEM, going past the
     * maximum sets nothing, and nothing else here sets ENOMEM. */
    errno = 0;
    size_t kept = 0;
    int all = n == 0;
    int need_local = 0;
    size_t first_start = 0;
    for (size_t i = 0; i < n && !all && !b.failed; i++) {
        size_t mark = b.len;
        if (kept)
            dynbuf_addstr(&b, " or (");
        else
            dynbuf_addstr(&b, "(");
        enum bpf_kind k = bpf_put_filter(&b, &filters[i], local_addrs, &need_local);
        if (need_local)
            break;
        if (k == BPF_KIND_ALL) {
            all = 1;
        } else if (k == BPF_KIND_NONE) {
            /* Undo the opening text; nothing else was appended. */
            if (!b.failed) {
                b.len = mark;
                b.s[b.len] = '\0';
            }
        } else {
            dynbuf_addstr(&b, ")");
            if (!kept)
                first_start = mark;
            kept++;
        }
    }
    if (need_local) {
        dynbuf_free(&b);
        return cp_fail(e, CP_EINVAL, BPF_CODE_INVALID, BPF_TARGET,
                       "A filter leaves localIPAddress unset, which means this machine's "
                       "addresses, and none are known.");
    }
    if (b.failed) {
        int nomem = errno == ENOMEM;
        dynbuf_free(&b);
        if (nomem)
            return cp_fail(e, CP_ENOMEM, "InternalError", BPF_TARGET, "Out of memory.");
        return cp_fail(e, CP_ETOOBIG, BPF_CODE_INVALID, BPF_TARGET,
                       "The filters compile to more than %d bytes of capture expression.",
                       BPF_EXPR_MAX);
    }
    const char *text;
    if (all)
        text = "";
    else if (kept == 0)
        text = BPF_EXPR_MATCH_NONE;
    else
        text = NULL;
    if (text) {
        dynbuf_free(&b);
        char *s = strdup(text);
        if (!s)
            return cp_fail(e, CP_ENOMEM, "InternalError", BPF_TARGET, "Out of memory.");
        *out = s;
        return CP_OK;
    }
    /* One filter needs no parentheses around it: strip the outer pair. */
    if (kept == 1) {
        memmove(b.s + first_start, b.s + first_start + 1, b.len - first_start - 2);
        b.len -= 2;
        b.s[b.len] = '\0';
    }
    char *s = dynbuf_take(&b);
    if (!s)
        return cp_fail(e, CP_ENOMEM, "InternalError", BPF_TARGET, "Out of memory.");
    *out = s;
    return CP_OK;
}
