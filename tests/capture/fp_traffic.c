/*
 * fp_traffic.c - the filter proof's corpus and its senders and receivers (fp_traffic.h).
 */
#include "tests/capture/fp_traffic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define N4 "10.88.0."
#define N6 "fd88::"

const char fp_local_field[] = N4 "9;" N4 "10;" N4 "11;" N4 "12;" N6 "a;" N6 "b";

const char *const fp_a_addrs[] = {N4 "9", N4 "10", N4 "11", N4 "12", N6 "a", N6 "b", NULL};
const char *const fp_b_addrs[] = {N4 "20",  N4 "32",     N4 "33",  N4 "46", N4 "47",
                                  N4 "63",  N4 "64",     N4 "79",  N4 "80", N6 "20",
                                  N6 "32",  N6 "33",     N6 "46",  N6 "47", N6 "ffff",
                                  N6 "1:0", N6 "1:ffff", N6 "2:0", NULL};

/* kind: 'U' one UDP datagram, 'T' a TCP connection opened and reset, 'I' an echo and reply. */
struct flow {
    char kind;
    const char *src;
    unsigned sport;
    const char *dst;
    unsigned dport;
};

/* B's first address to each of A's v4 addresses on every local-port edge. */
#define TO_A4_PORTS(a)                                                                             \
    {'U', N4 "20", 7000, a, 5001}, {'U', N4 "20", 7000, a, 5005}, {'U', N4 "20", 7000, a, 5009},   \
        {'U', N4 "20", 7000, a, 5010}, {'U', N4 "20", 7000, a, 5020},                              \
    {                                                                                              \
        'U', N4 "20", 7000, a, 5021                                                                \
    }

static const struct flow corpus[] = {
    /* UDP B->A: local addresses x local-port edges (24) */
    TO_A4_PORTS(N4 "9"),
    TO_A4_PORTS(N4 "10"),
    TO_A4_PORTS(N4 "11"),
    TO_A4_PORTS(N4 "12"),
    /* every remote IPv4 address, edges included (9) */
    {'U', N4 "20", 7000, N4 "10", 5002},
    {'U', N4 "32", 7000, N4 "10", 5002},
    {'U', N4 "33", 7000, N4 "10", 5002},
    {'U', N4 "46", 7000, N4 "10", 5002},
    {'U', N4 "47", 7000, N4 "10", 5002},
    {'U', N4 "63", 7000, N4 "10", 5002},
    {'U', N4 "64", 7000, N4 "10", 5002},
    {'U', N4 "79", 7000, N4 "10", 5002},
    {'U', N4 "80", 7000, N4 "10", 5002},
    /* remote-port edges (4), and 5001 as the REMOTE port of an incoming datagram (1) */
    {'U', N4 "20", 7009, N4 "10", 5003},
    {'U', N4 "20", 7010, N4 "10", 5003},
    {'U', N4 "20", 7020, N4 "10", 5003},
    {'U', N4 "20", 7021, N4 "10", 5003},
    {'U', N4 "20", 5001, N4 "10", 7500},
    /* UDP A->B (10): from local port 5001, and A's own datagram TO port 5001 elsewhere */
    {'U', N4 "10", 5001, N4 "20", 7001},
    {'U', N4 "10", 40001, N4 "20", 5001},
    {'U', N4 "11", 5010, N4 "33", 7010},
    {'U', N4 "9", 5021, N4 "47", 7021},
    {'U', N4 "12", 5020, N4 "64", 7009},
    {'U', N4 "9", 40002, N4 "32", 7002},
    {'U', N4 "9", 40002, N4 "46", 7002},
    {'U', N4 "9", 40002, N4 "63", 7002},
    {'U', N4 "9", 40002, N4 "79", 7002},
    {'U', N4 "9", 40002, N4 "80", 7002},
    /* UDP over IPv6 (16) */
    {'U', N6 "20", 7000, N6 "a", 5001},
    {'U', N6 "32", 7000, N6 "a", 5001},
    {'U', N6 "33", 7000, N6 "a", 5001},
    {'U', N6 "46", 7000, N6 "a", 5001},
    {'U', N6 "47", 7000, N6 "a", 5001},
    {'U', N6 "ffff", 7000, N6 "a", 5001},
    {'U', N6 "1:0", 7000, N6 "a", 5001},
    {'U', N6 "1:ffff", 7000, N6 "a", 5001},
    {'U', N6 "2:0", 7000, N6 "a", 5001},
    {'U', N6 "20", 7000, N6 "b", 5009},
    {'U', N6 "20", 7000, N6 "b", 5010},
    {'U', N6 "20", 7000, N6 "b", 5020},
    {'U', N6 "20", 7000, N6 "b", 5021},
    {'U', N6 "a", 5001, N6 "20", 7001},
    {'U', N6 "b", 40003, N6 "20", 5001},
    {'U', N6 "b", 5010, N6 "1:ffff", 7010},
    /* TCP (10 connections, 40 packets); A's own connection to port 5001 elsewhere among them */
    {'T', N4 "20", 7100, N4 "10", 5001},
    {'T', N4 "33", 7101, N4 "11", 5010},
    {'T', N4 "46", 7102, N4 "12", 5021},
    {'T', N4 "80", 7103, N4 "9", 5020},
    {'T', N6 "20", 7104, N6 "a", 5010},
    {'T', N6 "1:0", 7105, N6 "b", 5001},
    {'T', N4 "10", 7200, N4 "20", 5001},
    {'T', N4 "9", 7201, N4 "46", 6000},
    {'T', N4 "11", 7202, N4 "64", 7010},
    {'T', N6 "b", 7203, N6 "47", 6000},
    /* ICMP echo and reply, both directions, both families (7 x 2) */
    {'I', N4 "20", 0, N4 "10", 0},
    {'I', N4 "46", 0, N4 "12", 0},
    {'I', N4 "11", 0, N4 "64", 0},
    {'I', N4 "9", 0, N4 "80", 0},
    {'I', N6 "20", 0, N6 "a", 0},
    {'I', N6 "b", 0, N6 "1:0", 0},
    {'I', N6 "47", 0, N6 "b", 0},
};

#define NFLOWS (sizeof(corpus) / sizeof(corpus[0]))

_Static_assert(NFLOWS == 64 + 10 + 7, "the corpus table and FP_CORPUS_PACKETS disagree");

static int in_list(const char *const *list, const char *addr)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], addr) == 0)
            return 1;
    return 0;
}

int fp_is_a(const char *addr)
{
    return in_list(fp_a_addrs, addr);
}

static int bin_in_list(const char *const *list, int ip, const unsigned char *addr)
{
    unsigned char b[16];
    for (size_t i = 0; list[i]; i++)
        if (inet_pton(ip == 4 ? AF_INET : AF_INET6, list[i], b) == 1 &&
            memcmp(b, addr, ip == 4 ? 4 : 16) == 0)
            return 1;
    return 0;
}

int fp_bin_is_a(int ip, const unsigned char *addr)
{
    return bin_in_list(fp_a_addrs, ip, addr);
}

int fp_bin_is_b(int ip, const unsigned char *addr)
{
    return bin_in_list(fp_b_addrs, ip, addr);
}

static socklen_t sockaddr_of(const char *addr, unsigned port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(addr, ':')) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, addr, &s6->sin6_addr);
        return sizeof(*s6);
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, addr, &s4->sin_addr);
    return sizeof(*s4);
}

/* A socket of type/protocol bound to addr:port; SO_REUSEADDR so that a sender can share a port
 * with the side's own receiver. -1 on failure (said on stderr). */
static int bound(int type, int proto, const char *addr, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t len = sockaddr_of(addr, port, &ss);
    int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, proto);
    int one = 1, zero = 0;
    /* The wildcard "::" receives IPv4 too (cleared before bind, or it does not apply). */
    if (fd >= 0 && strcmp(addr, "::") == 0)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0) {
        fprintf(stderr, "bind %s:%u: %s\n", addr, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* A dual-stack wildcard socket on port: UDP, or a TCP listener. */
static int receiver(int tcp, unsigned port)
{
    int fd = bound(tcp ? SOCK_STREAM : SOCK_DGRAM, 0, "::", port);
    if (fd < 0)
        return -1;
    if (tcp && listen(fd, 16) != 0) {
        fprintf(stderr, "listen %u: %s\n", port, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int fp_receivers(int side_a, int *fds, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < NFLOWS; i++) {
        const struct flow *f = &corpus[i];
        if (f->kind == 'I' || fp_is_a(f->dst) != side_a)
            continue;
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = corpus[j].kind == f->kind && corpus[j].dport == f->dport &&
                  fp_is_a(corpus[j].dst) == side_a;
        if (dup)
            continue;
        if (n == cap) {
            fprintf(stderr, "fp_receivers: more than %zu ports\n", cap);
            return -1;
        }
        if ((fds[n] = receiver(f->kind == 'T', f->dport)) < 0)
            return -1;
        n++;
    }
    return (int)n;
}

static int send_udp(const struct flow *f, size_t idx)
{
    int fd = bound(SOCK_DGRAM, 0, f->src, f->sport);
    if (fd < 0)
        return -1;
    struct sockaddr_storage to;
    socklen_t len = sockaddr_of(f->dst, f->dport, &to);
    char msg[32];
    int n = snprintf(msg, sizeof(msg), "nwfp:%zu", idx);
    ssize_t sent = sendto(fd, msg, (size_t)n, 0, (struct sockaddr *)&to, len);
    if (sent != n)
        fprintf(stderr, "sendto %s:%u: %s\n", f->dst, f->dport, strerror(errno));
    close(fd);
    return sent == n ? 0 : -1;
}

/* Handshake, then an abortive close: exactly SYN, SYN-ACK, ACK, RST on the wire. */
static int send_tcp(const struct flow *f)
{
    int fd = bound(SOCK_STREAM, 0, f->src, f->sport);
    if (fd < 0)
        return -1;
    struct sockaddr_storage to;
    socklen_t len = sockaddr_of(f->dst, f->dport, &to);
    if (connect(fd, (struct sockaddr *)&to, len) != 0) {
        fprintf(stderr, "connect %s:%u: %s\n", f->dst, f->dport, strerror(errno));
        close(fd);
        return -1;
    }
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
    return 0;
}

static uint16_t inet_checksum(const uint8_t *p, size_t n)
{
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)(p[n - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* One echo request from src to dst, then its reply awaited so that it is on the wire. */
static int send_echo(const struct flow *f, size_t idx)
{
    int v6 = strchr(f->dst, ':') != NULL;
    int fd = bound(SOCK_RAW, v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP, f->src, 0);
    if (fd < 0)
        return -1;
    unsigned id = FP_ICMP_ID_BASE + (unsigned)idx;
    uint8_t pkt[16] = {v6 ? 128 : 8, 0,   0,   0,  (uint8_t)(id >> 8), (uint8_t)id, 0, 1,
                       'n',          'w', 'f', 'p'};
    if (!v6) { /* the kernel fills the ICMPv6 checksum itself */
        uint16_t ck = inet_checksum(pkt, sizeof(pkt));
        pkt[2] = (uint8_t)(ck >> 8);
        pkt[3] = (uint8_t)ck;
    }
    struct sockaddr_storage to;
    socklen_t len = sockaddr_of(f->dst, 0, &to);
    if (sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, len) != (ssize_t)sizeof(pkt)) {
        fprintf(stderr, "echo to %s: %s\n", f->dst, strerror(errno));
        close(fd);
        return -1;
    }
    for (int tries = 0; tries < 20; tries++) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        uint8_t buf[256];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        size_t off = v6 ? 0 : (size_t)(buf[0] & 0x0f) * 4; /* raw IPv4 sockets get the header */
        if (n >= (ssize_t)(off + 8) && buf[off] == (v6 ? 129 : 0) && buf[off + 4] == pkt[4] &&
            buf[off + 5] == pkt[5]) {
            close(fd);
            return 0;
        }
    }
    fprintf(stderr, "no echo reply from %s to %s\n", f->dst, f->src);
    close(fd);
    return -1;
}

int fp_send(int side_a)
{
    for (size_t i = 0; i < NFLOWS; i++) {
        const struct flow *f = &corpus[i];
        if (fp_is_a(f->src) != side_a)
            continue;
        int rc = f->kind == 'U' ? send_udp(f, i) : f->kind == 'T' ? send_tcp(f) : send_echo(f, i);
        if (rc != 0)
            return -1;
    }
    return 0;
}
