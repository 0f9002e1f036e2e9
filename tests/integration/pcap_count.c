/*
 * pcap_count.c - marked packets in a capture file (see pcap_count.h).
 */
/* _GNU_SOURCE: memmem, and pcap.h's BSD u_int/u_char types. */
#define _GNU_SOURCE
#include "tests/integration/pcap_count.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

int nw_pcap_count(const char *path, const char *tag)
{
    char err[PCAP_ERRBUF_SIZE], needle[128];
    int k = snprintf(needle, sizeof(needle), "netwatch:%s:", tag);
    if (k <= 0 || (size_t)k >= sizeof(needle))
        return -1;
    pcap_t *p = pcap_open_offline(path, err);
    if (!p)
        return -1;
    struct pcap_pkthdr *h;
    const u_char *data;
    int count = 0, rc;
    while ((rc = pcap_next_ex(p, &h, &data)) == 1) {
        /* memmem: a packet counts once however often the needle appears in it. */
        if (memmem(data, h->caplen, needle, (size_t)k) != NULL)
            count++;
    }
    pcap_close(p);
    /* PCAP_ERROR_BREAK is the clean end of the file; anything else is a torn record. */
    return rc == PCAP_ERROR_BREAK ? count : -1;
}
