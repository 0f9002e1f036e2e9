/*
 * fp_ref.c - decoding, keys and the reference filter semantics of the filter proof (fp_ref.h).
 */
#include "tests/capture/fp_ref.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define REF_MAX_ITEMS 64

void fp_decode(const uint8_t *d, uint32_t caplen, struct fp_pkt *p)
{
    memset(p, 0, sizeof(*p));
    p->icmp_type = -1;
    if (caplen < 14)
        return;
    unsigned type = (unsigned)d[12] << 8 | d[13];
    const uint8_t *l4;
    size_t left;
    if (type == 0x0800 && caplen >= 34) {
        size_t ihl = (size_t)(d[14] & 0x0f) * 4;
        if (ihl < 20 || caplen < 14 + ihl)
            return;
        p->ip = 4;
        p->proto = d[23];
        memcpy(p->src, d + 26, 4);
        memcpy(p->dst, d + 30, 4);
        l4 = d + 14 + ihl;
        left = caplen - 14 - ihl;
    } else if (type == 0x86dd && caplen >= 54) {
        p->ip = 6;
        p->proto = d[20];
        memcpy(p->src, d + 22, 16);
        memcpy(p->dst, d + 38, 16);
        l4 = d + 54;
        left = caplen - 54;
    } else {
        return;
    }
    if ((p->proto == 6 || p->proto == 17) && left >= 4) {
        p->has_ports = 1;
        p->sport = (unsigned)l4[0] << 8 | l4[1];
        p->dport = (unsigned)l4[2] << 8 | l4[3];
    }
    if (p->proto == 6 && left >= 14)
        p->tcp_flags = l4[13];
    if (p->proto == 17 && left > 8 + 5 && memcmp(l4 + 8, "nwfp:", 5) == 0) {
        size_t n = left - 8 < sizeof(p->marker) - 1 ? left - 8 : sizeof(p->marker) - 1;
        memcpy(p->marker, l4 + 8, n);
        p->marker[n] = '\0';
    }
    if (((p->ip == 4 && p->proto == 1) || (p->ip == 6 && p->proto == 58)) && left >= 8) {
        p->icmp_type = l4[0];
        p->icmp_id = (unsigned)l4[4] << 8 | l4[5];
        p->icmp_seq = (unsigned)l4[6] << 8 | l4[7];
    }
}

void fp_key(const struct fp_pkt *p, char *out, size_t outsz)
{
    char s[INET6_ADDRSTRLEN] = "?", d[INET6_ADDRSTRLEN] = "?";
    if (!p->ip) {
        snprintf(out, outsz, "other (not IP)");
        return;
    }
    int fam = p->ip == 4 ? AF_INET : AF_INET6;
    inet_ntop(fam, p->src, s, sizeof(s));
    inet_ntop(fam, p->dst, d, sizeof(d));
    if (p->proto == 17 && p->has_ports)
        snprintf(out, outsz, "udp %s:%u>%s:%u %s", s, p->sport, d, p->dport, p->marker);
    else if (p->proto == 6 && p->has_ports)
        snprintf(out, outsz, "tcp %s:%u>%s:%u flags=0x%02x", s, p->sport, d, p->dport,
                 p->tcp_flags);
    else if (p->icmp_type >= 0)
        snprintf(out, outsz, "icmp%s %s>%s type=%d id=%u seq=%u", p->ip == 6 ? "6" : "", s, d,
                 p->icmp_type, p->icmp_id, p->icmp_seq);
    else
        snprintf(out, outsz, "ip%d proto=%d %s>%s", p->ip, p->proto, s, d);
}

/* ---- the reference's own reading of the field grammar ---- */

struct ref_ip {
    int ip; /* 4 or 6 */
    uint8_t lo[16], hi[16];
};

struct ref_port {
    unsigned lo, hi;
};

/* Splits field s on ';' into trimmed items (one trailing ';' allowed). Returns the count, 0 for
 * an unset field, -1 for an empty item or too many. */
static int ref_items(const char *s, char items[][80], int max)
{
    int n = 0;
    if (!s || !*s)
        return 0;
    const char *p = s;
    for (;;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && isblank((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len && isblank((unsigned char)p[len - 1]))
            len--;
        if (len == 0 || len >= 80 || n == max)
            return -1;
        memcpy(items[n], p, len);
        items[n][len] = '\0';
        n++;
        if (!end)
            return n;
        p = end + 1;
        if (!*p)
            return n; /* the trailing ';' */
    }
}

static int ref_addr(const char *text, struct ref_ip *r, uint8_t *out)
{
    if (inet_pton(AF_INET, text, out) == 1)
        return r->ip = 4;
    if (inet_pton(AF_INET6, text, out) == 1)
        return r->ip = 6;
    return 0;
}

static int ref_ip_item(char *item, struct ref_ip *r)
{
    memset(r, 0, sizeof(*r));
    char *slash = strchr(item, '/'), *dash = strchr(item, '-');
    if (slash) {
        *slash = '\0';
        char *end;
        long len = strtol(slash + 1, &end, 10);
        if (!ref_addr(item, r, r->lo) || *end || len < 0 || len > (r->ip == 4 ? 32 : 128))
            return -1;
        /* Bits past the prefix: clear them in lo, set them in hi. */
        memcpy(r->hi, r->lo, 16);
        for (int bit = (int)len; bit < (r->ip == 4 ? 32 : 128); bit++) {
            r->lo[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
            r->hi[bit / 8] |= (uint8_t)(0x80u >> (bit % 8));
        }
        return 0;
    }
    if (dash) {
        struct ref_ip second;
        *dash = '\0';
        if (!ref_addr(item, r, r->lo) || !ref_addr(dash + 1, &second, r->hi) || second.ip != r->ip)
            return -1;
        return 0;
    }
    if (!ref_addr(item, r, r->lo))
        return -1;
    memcpy(r->hi, r->lo, 16);
    return 0;
}

static int ref_ips(const char *s, struct ref_ip *out)
{
    char items[REF_MAX_ITEMS][80];
    int n = ref_items(s, items, REF_MAX_ITEMS);
    for (int i = 0; i < n; i++)
        if (ref_ip_item(items[i], &out[i]) != 0)
            return -1;
    return n;
}

static int ref_ports(const char *s, struct ref_port *out)
{
    char items[REF_MAX_ITEMS][80];
    int n = ref_items(s, items, REF_MAX_ITEMS);
    for (int i = 0; i < n; i++) {
        char *end;
        out[i].lo = (unsigned)strtoul(items[i], &end, 10);
        out[i].hi = out[i].lo;
        if (*end == '-')
            out[i].hi = (unsigned)strtoul(end + 1, &end, 10);
        if (*end || out[i].hi > 65535 || out[i].lo > out[i].hi)
            return -1;
    }
    return n;
}

/* ---- the semantics ---- */

static int in_ips(const struct ref_ip *set, int n, const struct fp_pkt *p, const uint8_t *a)
{
    size_t len = p->ip == 4 ? 4 : 16;
    for (int i = 0; i < n; i++)
        if (set[i].ip == p->ip && memcmp(a, set[i].lo, len) >= 0 && memcmp(a, set[i].hi, len) <= 0)
            return 1;
    return 0;
}

static int in_ports(const struct ref_port *set, int n, unsigned port)
{
    for (int i = 0; i < n; i++)
        if (port >= set[i].lo && port <= set[i].hi)
            return 1;
    return 0;
}

struct ref_filter {
    int proto; /* 0 Any, 6 TCP, 17 UDP, 1 ICMP (v4 or v6) */
    struct ref_ip lip[REF_MAX_ITEMS], rip[REF_MAX_ITEMS];
    struct ref_port lport[REF_MAX_ITEMS], rport[REF_MAX_ITEMS];
    int nlip, nrip, nlport, nrport;
};

static int ref_parse(const struct fp_filter *f, struct ref_filter *r)
{
    if (!f->proto || !*f->proto || strcasecmp(f->proto, "Any") == 0)
        r->proto = 0;
    else if (strcasecmp(f->proto, "TCP") == 0)
        r->proto = 6;
    else if (strcasecmp(f->proto, "UDP") == 0)
        r->proto = 17;
    else if (strcasecmp(f->proto, "ICMP") == 0)
        r->proto = 1;
    else
        return -1;
    r->nlip = ref_ips(f->lip, r->lip);
    r->nrip = ref_ips(f->rip, r->rip);
    r->nlport = ref_ports(f->lport, r->lport);
    r->nrport = ref_ports(f->rport, r->rport);
    if (r->nlip < 0 || r->nrip < 0 || r->nlport < 0 || r->nrport < 0)
        return -1;
    return 0;
}

/* One side of the packet is local, the other remote; src_local says which. */
static int ref_side(const struct ref_filter *r, const struct ref_ip *l, int nl,
                    const struct fp_pkt *p, int src_local)
{
    const uint8_t *la = src_local ? p->src : p->dst, *ra = src_local ? p->dst : p->src;
    unsigned lp = src_local ? p->sport : p->dport, rp = src_local ? p->dport : p->sport;
    return in_ips(l, nl, p, la) && (r->nrip == 0 || in_ips(r->rip, r->nrip, p, ra)) &&
           (r->nlport == 0 || in_ports(r->lport, r->nlport, lp)) &&
           (r->nrport == 0 || in_ports(r->rport, r->nrport, rp));
}

static int ref_one(const struct ref_filter *r, const struct ref_ip *machine, int nmachine,
                   const struct fp_pkt *p)
{
    int ports = r->nlport || r->nrport;
    if (r->proto == 6 || r->proto == 17) {
        if (!p->ip || p->proto != r->proto)
            return 0;
    } else if (r->proto == 1) {
        if (!((p->ip == 4 && p->proto == 1) || (p->ip == 6 && p->proto == 58)))
            return 0;
    }
    if (ports && !p->has_ports)
        return 0; /* also every ICMP filter with a port */
    if (!ports && !r->nlip && !r->nrip)
        return 1;
    if (!p->ip)
        return 0;
    const struct ref_ip *l = r->nlip ? r->lip : machine;
    int nl = r->nlip ? r->nlip : nmachine;
    return ref_side(r, l, nl, p, 1) || ref_side(r, l, nl, p, 0);
}

int fp_ref_match(const struct fp_filter *filters, size_t n, const char *local,
                 const struct fp_pkt *p)
{
    struct ref_ip machine[REF_MAX_ITEMS];
    int nmachine = ref_ips(local, machine);
    if (nmachine <= 0)
        return -1;
    if (n == 0)
        return 1;
    struct ref_filter *r = malloc(sizeof(*r)); /* ~7 KiB: off the stack */
    int rc = r ? 0 : -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        memset(r, 0, sizeof(*r));
        if (ref_parse(&filters[i], r) != 0)
            rc = -1;
        else if (ref_one(r, machine, nmachine, p))
            rc = 1;
    }
    free(r);
    return rc;
}
