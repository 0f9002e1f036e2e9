/*
 * pcap_count.h - counts the marked datagrams of traffic.h in a capture file, read back with
 * libpcap (so a file libpcap cannot read is a failure, not a short count).
 *
 * Threading: any thread (no shared state).
 */
#ifndef NW_TESTS_PCAP_COUNT_H
#define NW_TESTS_PCAP_COUNT_H

/* Packets of the pcap file at path whose bytes contain "netwatch:<tag>:" (nw_send_udp's
 * batch tag). -1 when libpcap cannot open the file or cannot read it to its end. */
int nw_pcap_count(const char *path, const char *tag);

#endif
