/*
 * fp_ref.h - the filter proof's reference side (tests/capture/test_filter_proof.c): one decoded
 * packet, its comparison key, and the filter semantics of the issue written a second time, from
 * the text of the five filter fields, with its own little parser. Nothing here calls
 * common/netfilter.c or common/bpf_expr.c, so a mistake there cannot hide behind the same
 * mistake here.
 *
 * Semantics (docs/api.md, "Filters"): filters are OR-ed, the fields of one filter AND-ed; a
 * filter holds when the packet goes out (source local, destination remote, source port local,
 * destination port remote) or comes in (the mirror image). An unset local address means any
 * of the capturing machine's addresses; any other unset field restricts nothing. A port field
 * needs a TCP or UDP packet; a filter with no address and no port field matches every packet of
 * its protocol (Any: every packet, IP or not).
 *
 * Threading: any thread (no shared state).
 */
#ifndef NW_TESTS_FP_REF_H
#define NW_TESTS_FP_REF_H

#include <stddef.h>
#include <stdint.h>

#define FP_KEY_MAX 160

/* One Ethernet frame, decoded as far as the filters look. */
struct fp_pkt {
    int ip;    /* 4, 6, or 0 (not IP, or too short) */
    int proto; /* IPv4 protocol / IPv6 next header (no extension-header walk, as pcap) */
    uint8_t src[16], dst[16];
    int has_ports; /* TCP or UDP with both ports present */
    unsigned sport, dport;
    unsigned tcp_flags;
    int icmp_type; /* -1 when not ICMP/ICMPv6 */
    unsigned icmp_id, icmp_seq;
    char marker[24]; /* UDP payload when it starts "nwfp:", else "" */
};

void fp_decode(const uint8_t *frame, uint32_t caplen, struct fp_pkt *p);

/* "udp 10.88.0.20:7000>10.88.0.10:5001 nwfp:3", "tcp ... flags=0x12", "icmp ... t8 id.. seq..",
 * "other" plus what is known: the identity of one packet of the corpus. */
void fp_key(const struct fp_pkt *p, char *out, size_t outsz);

/* One PacketCaptureFilter as the API receives it; NULL or "" = unset (protocol: Any). */
struct fp_filter {
    const char *proto, *lip, *rip, *lport, *rport;
};

/*
 * 1 when p matches filters[0..n) (n == 0: every packet), 0 when not. local is the capturing
 * machine's addresses as one address field ("10.0.0.1;fd00::1"). -1 when a field does not parse
 * by the reference's reading of the grammar (a test table error).
 */
int fp_ref_match(const struct fp_filter *filters, size_t n, const char *local,
                 const struct fp_pkt *p);

#endif
