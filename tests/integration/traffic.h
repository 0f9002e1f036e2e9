/*
 * traffic.h - marked UDP traffic for the agent's loopback captures: each datagram carries
 * "netwatch:<tag>:<i>", so pcap_count.h can tell one batch from another in a capture file.
 *
 * Threading: any thread (no shared state).
 */
#ifndef NW_TESTS_TRAFFIC_H
#define NW_TESTS_TRAFFIC_H

/* Sends n datagrams "netwatch:<tag>:<i>" (i from 0) to 127.0.0.1:port. Returns how many
 * the kernel took whole. */
int nw_send_udp(int port, const char *tag, int n);

#endif
