/*
 * traffic.c - marked UDP datagrams to a local port (see traffic.h).
 */
#include "tests/integration/traffic.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int nw_send_udp(int port, const char *tag, int n)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0;
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    int sent = 0;
    for (int i = 0; i < n; i++) {
        char msg[128];
        int len = snprintf(msg, sizeof(msg), "netwatch:%s:%d", tag, i);
        if (len > 0 && (size_t)len < sizeof(msg) &&
            sendto(fd, msg, (size_t)len, 0, (struct sockaddr *)&to, sizeof(to)) == len)
            sent++;
    }
    close(fd);
    return sent;
}
