/*
 * The capture filter compiler: turns a session's PacketCaptureFilter list into ONE pcap filter
 * expression (tcpdump syntax) that the agent hands to pcap_compile(3PCAP).
 *
 * Semantics (Azure's):
 *   - filters are OR-ed; the fields of one filter are AND-ed;
 *   - "local" is this machine, "remote" the peer, so one filter matches both directions:
 *       (src in L and dst in R and sport in LP and dport in RP)        outgoing
 *    or (dst in L and src in R and dport in LP and sport in RP)        incoming
 *     where L, R are the local/remote address sets and LP, RP the local/remote port sets; an
 *     unset remote field, port field or protocol ("Any") adds no restriction.
 *   - An unset LOCAL address field means "any of this machine's addresses" (local_addrs), not
 *     "any address". Why: only the machine's addresses tell the two directions apart. With
 *     "any address", {localPort: 80} would become "src port 80 or dst port 80" and also catch this
 *     machine's outgoing connections TO port 80 elsewhere, which Azure's "local port" excludes.
 *     The machine's addresses are a snapshot the caller takes at capture start (see
 *     capture_local_addrs() in agent/capture.h); an address added later is not local to a
 *     running capture.
 *   - A filter that sets no address and no port field has no direction: it matches every packet
 *     of its protocol, forwarded traffic included, exactly as "no filters" matches everything.
 *   - Protocol: TCP -> tcp, UDP -> udp, ICMP -> (icmp or icmp6), Any -> no restriction; but a
 *     port field implies (tcp or udp), since only those carry ports here. ICMP with a port field
 *     matches nothing.
 *   - Address items are expressed exactly: an a-b range becomes the minimal list of CIDR blocks
 *     covering exactly a..b ("ip net x/len", "ip6 net x/len"; the protocol keeps ARP and RARP,
 *     which a bare "net" also matches, out). Port ranges become "portrange a-b".
 *   - A filter that can match no packet (ICMP with ports; local and remote sets of different
 *     address families) is left out of the OR. When every filter is left out the expression is
 *     BPF_EXPR_MATCH_NONE, because pcap_compile refuses an expression it proves always false.
 *   - No filters, or any filter that matches everything: "" (capture everything).
 *
 * pcap limits worth knowing, not papered over here: pcap's "port" looks at the first IPv4 fragment
 * only and at IPv6 packets whose next header is TCP/UDP directly (no extension-header walk), so
 * later fragments and extension-header packets do not match a port filter; tcpdump behaves the
 * same.
 *
 * libc only; no global state; thread-safe.
 */
#ifndef NW_COMMON_BPF_EXPR_H
#define NW_COMMON_BPF_EXPR_H

#include <stddef.h>

#include "common/err.h"
#include "common/netfilter.h"

/* Bytes of expression, excluding the NUL: small enough that the agent reports a whole one in
 * one message (PROTO_FILTER_MAX, proto/proto.h). */
#define BPF_EXPR_MAX         (60 * 1024)
#define BPF_EXPR_MATCH_NONE  "len = 0" /* no captured packet has length 0 */
#define BPF_EXPR_MAX_FILTERS 100       /* filters in one set: the API's bound, the agent's too */

/* One parsed PacketCaptureFilter. An empty set (n == 0) is an unset field. */
struct bpf_filter_spec {
    enum nf_protocol protocol;
    struct nf_ip_set local_ip;
    struct nf_ip_set remote_ip;
    struct nf_port_set local_port;
    struct nf_port_set remote_port;
};

/*
 * Fills *out from a filter's five JSON string fields (each borrowed, NULL or "" = unset; protocol
 * NULL or "" = Any) with the shared grammar of common/netfilter.h. index names the filter in error
 * targets ("properties.filters[<index>].localPort"). *out is written only on success.
 * Returns CP_OK or CP_EINVAL with e (if not NULL) filled, code "InvalidPropertyValue".
 */
enum cp_err bpf_filter_spec_parse(const char *protocol, const char *local_ip, const char *remote_ip,
                                  const char *local_port, const char *remote_port, size_t index,
                                  struct bpf_filter_spec *out, struct cp_error *e) CP_MUST_USE;

/*
 * Builds the expression for filters[0..n) (borrowed; NULL when n == 0). local_addrs (borrowed)
 * is this machine's address set; it may be NULL or empty only if no filter needs it (every filter
 * that sets an address or port field also sets its local address field).
 * On success *out is a malloc'ed NUL-terminated string the caller frees ("" = capture all).
 * Errors: CP_EINVAL (a set out of its bounds, an unknown protocol or family, a range with lo > hi,
 * or local_addrs needed but empty), CP_ETOOBIG (the expression would pass BPF_EXPR_MAX bytes),
 * CP_ENOMEM; e (if not NULL) gets code "InvalidPropertyValue" / "FilterTooLarge" /
 * "InternalError" and a message. *out is untouched on failure.
 */
enum cp_err bpf_expr_build(const struct bpf_filter_spec *filters, size_t n,
                           const struct nf_ip_set *local_addrs, char **out,
                           struct cp_error *e) CP_MUST_USE;

/*
 * Appends to out[] the minimal list of CIDR blocks that covers r exactly (at most 2 * bits - 2
 * blocks: 62 for IPv4, 254 for IPv6). Each block is its first address (in blocks[i].lo, hi equal
 * to the block's last address) and prefix length (in lens[i]). cap is the room in both arrays.
 * Returns the number of blocks, or 0 if r is malformed (bad family, lo > hi) or cap is too small.
 * Exposed for the unit tests.
 */
size_t bpf_expr_range_to_cidrs(const struct nf_ip_range *r, struct nf_ip_range *blocks,
                               unsigned *lens, size_t cap);

#endif
