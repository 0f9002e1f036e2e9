/*
 * Packet-capture filter fields: the grammar of PacketCaptureFilter's localIPAddress,
 * remoteIPAddress, localPort, remotePort and protocol.
 *
 * Grammar (a superset of what Azure documents; see docs/api.md, "packetCaptures"):
 *
 *   field := ""                          "any": no restriction (NULL means the same)
 *          | item { ";" item } [ ";" ]   at most NF_MAX_ITEMS items, one trailing ';' allowed
 *   item  := SP* value SP*               spaces and tabs around an item are ignored
 *   value := single | single "-" single  a range, both ends inclusive, lo <= hi
 *          | addr "/" len                IP fields only: a CIDR block
 *
 * Ports are 1-5 decimal digits, 0..65535 (no sign, no spaces inside the item). Addresses are
 * IPv4 dotted quads or IPv6 text forms as inet_pton(3) reads them; the two ends of a range must be
 * of one family. A CIDR block with host bits set is accepted and widened to the whole block
 * ("10.0.0.7/24" = 10.0.0.0-10.0.0.255). Items may overlap or repeat. Azure's own docs allow only
 * one range per field and no range inside a list; we accept any mix because the agent's BPF
 * compiler handles it and refusing it would buy nothing.
 *
 * Empty items are refused: ";80", "80;;443", " " and ";" are all errors. The whole field is at
 * most NF_MAX_FIELD_LEN characters.
 *
 * libc only; no global state; every function is thread-safe.
 */
#ifndef NW_COMMON_NETFILTER_H
#define NW_COMMON_NETFILTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h> /* AF_INET, AF_INET6 for nf_ip_range.family */

#include "common/err.h"

#define NF_MAX_ITEMS     64   /* items per field */
#define NF_MAX_FIELD_LEN 1024 /* characters per field, excluding the NUL */

/* One port item; a single port has lo == hi. */
struct nf_port_range {
    uint16_t lo, hi;
};

/* A parsed port field; n == 0 means "any port". Items keep the caller's order. */
struct nf_port_set {
    size_t n;
    struct nf_port_range r[NF_MAX_ITEMS];
};

/* One address item; a single address has lo == hi, a CIDR block its first and last address. */
struct nf_ip_range {
    int family;     /* AF_INET or AF_INET6 */
    uint8_t lo[16]; /* network byte order; IPv4 uses lo[0..3], the rest is zero */
    uint8_t hi[16]; /* same layout as lo */
};

/* A parsed address field; n == 0 means "any address". Items keep the caller's order. */
struct nf_ip_set {
    size_t n;
    struct nf_ip_range r[NF_MAX_ITEMS];
};

/*
 * Parses a port field into *out (caller-owned; written only on success).
 * s is borrowed and may be NULL (= ""). target names the field for messages, e.g.
 * "properties.filters[0].localPort"; it may be NULL.
 * Returns CP_OK, or CP_EINVAL with e (if not NULL) filled: code "InvalidPropertyValue", the
 * given target, and a message quoting the offending item and the rule it broke.
 */
enum cp_err nf_parse_ports(const char *s, struct nf_port_set *out, struct cp_error *e,
                           const char *target) CP_MUST_USE;

/* Same contract as nf_parse_ports, for an IP address field (IPv4 and IPv6). */
enum cp_err nf_parse_ips(const char *s, struct nf_ip_set *out, struct cp_error *e,
                         const char *target) CP_MUST_USE;

enum nf_protocol { NF_PROTO_ANY, NF_PROTO_TCP, NF_PROTO_UDP, NF_PROTO_ICMP };

/*
 * Parses "Any", "TCP", "UDP" or "ICMP", ASCII case-insensitively (ICMP is a netwatch extension;
 * Azure knows only the first three). Returns 0 and sets *out, or -1 (NULL, "", anything else)
 * leaving *out untouched.
 */
int nf_protocol_parse(const char *s, enum nf_protocol *out);

/* Canonical name: "Any", "TCP", "UDP", "ICMP"; "Unknown" for a value outside the enum.
 * The string is static; never NULL. */
const char *nf_protocol_name(enum nf_protocol p);

#endif
