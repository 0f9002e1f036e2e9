/*
 * fp_traffic.h - the filter proof's hosts and traffic corpus (tests/capture/test_filter_proof.c).
 *
 *   A (the capturing machine): 10.88.0.9, .10, .11, .12 and fd88::a, fd88::b
 *   B (its peers):             10.88.0.20, .32, .33, .46, .47, .63, .64, .79, .80 and
 *                              fd88::20, ::32, ::33, ::46, ::47, ::ffff, ::1:0, ::1:ffff, ::2:0
 *
 * B's addresses sit on both sides of the edges the filter table uses (10.88.0.33-10.88.0.46,
 * 10.88.0.64/28, fd88::33-fd88::46, fd88::1:0/112), A's on both sides of 10.88.0.10-10.88.0.11;
 * ports likewise (local 5010-5020: 5009, 5010, 5020, 5021; remote 7010-7020: 7009 ... 7021).
 *
 * The corpus is a fixed table of flows, each one of: a UDP datagram whose payload is
 * "nwfp:<flow>" (1 packet), a TCP connection opened and reset (SYN, SYN-ACK, ACK, RST: 4), an
 * ICMP or ICMPv6 echo with id 0x4e00 + <flow> and its reply (2). FP_CORPUS_PACKETS in all.
 *
 * Threading: any thread; the send and receiver functions act in the caller's network namespace.
 */
#ifndef NW_TESTS_FP_TRAFFIC_H
#define NW_TESTS_FP_TRAFFIC_H

#include <stddef.h>

#define FP_CORPUS_PACKETS 118
#define FP_ICMP_ID_BASE   0x4e00

/* A's addresses as one address field, for the reference matcher: "10.88.0.9;...;fd88::b". */
extern const char fp_local_field[];

/* A's addresses, and B's, one per entry; NULL-terminated. */
extern const char *const fp_a_addrs[];
extern const char *const fp_b_addrs[];

/* 1 when the text address is one of A's / B's (same spelling as the lists above). */
int fp_is_a(const char *addr);

/* 1 when the binary address (4 or 16 bytes, ip 4 or 6) is one of A's / B's. */
int fp_bin_is_a(int ip, const unsigned char *addr);
int fp_bin_is_b(int ip, const unsigned char *addr);

/*
 * Binds a dual-stack UDP socket for every port the other side sends datagrams to and a TCP
 * listener for every port it connects to, so the kernel answers no ICMP port-unreachable (and
 * RST) outside the corpus. side_a: 1 for A, 0 for B. The descriptors go to fds (cap entries;
 * left open until the process ends). Returns their number, or -1 (message on stderr).
 */
int fp_receivers(int side_a, int *fds, size_t cap);

/* Sends every flow whose source is on the given side, in table order. 0, or -1 (message on
 * stderr) when a send, connect or echo failed. */
int fp_send(int side_a);

#endif
