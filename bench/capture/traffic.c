/*
 * bench_capture_traffic: the UDP traffic of bench/capture/run.sh.
 *
 *   bench_capture_traffic send DST_IPV4 PORT COUNT RATE [PAYLOAD]
 *       sends COUNT datagrams of PAYLOAD bytes (default 64) to DST_IPV4:PORT at RATE packets per
 *       second (0: as fast as it goes), in batches of up to 64 per sendmmsg(2). Prints
 *       "sent N seconds S pps P" on stdout. Exit 0 when all COUNT were accepted by the kernel.
 *   bench_capture_traffic sink PORT
 *       binds UDP PORT on every address and never reads: datagrams to a bound port raise no ICMP
 *       port-unreachable replies (which would be traffic of their own), and a full receive
 *       buffer drops them after every packet tap has seen them. Runs until SIGTERM/SIGINT.
 *
 * Pacing: the n-th packet is due at start + n / RATE; each round sends every packet already due
 * (at most one batch) and otherwise sleeps until the next one is due, so a late wake-up is caught
 * up with a bigger batch instead of lowering the rate.
 */
/* _GNU_SOURCE: sendmmsg(2) and struct mmsghdr are Linux extensions. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TRAFFIC_BATCH       64
#define TRAFFIC_PAYLOAD_MAX 1400

static int usage(void)
{
    fprintf(stderr, "usage: bench_capture_traffic send DST_IPV4 PORT COUNT RATE [PAYLOAD]\n"
                    "       bench_capture_traffic sink PORT\n");
    return 2;
}

/* A decimal number in [lo, hi], or -1. */
static long long num(const char *s, long long lo, long long hi)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    return v;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static int do_sink(long long port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("bench_capture_traffic: sink");
        return 1;
    }
    sigset_t s;
    sigemptyset(&s);
    sigaddset(&s, SIGTERM);
    sigaddset(&s, SIGINT);
    sigprocmask(SIG_BLOCK, &s, NULL);
    int sig = 0;
    sigwait(&s, &sig);
    close(fd);
    return 0;
}

static int do_send(const char *dst, long long port, long long count, long long rate,
                   long long payload)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0 || inet_pton(AF_INET, dst, &a.sin_addr) != 1 ||
        connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        perror("bench_capture_traffic: send");
        return 1;
    }
    /* The default 50 us timer slack would cap the paced rates below their target. */
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    static char data[TRAFFIC_BATCH][TRAFFIC_PAYLOAD_MAX];
    struct iovec iov[TRAFFIC_BATCH];
    struct mmsghdr msgs[TRAFFIC_BATCH];
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < TRAFFIC_BATCH; i++) {
        memset(data[i], 'n', (size_t)payload);
        iov[i] = (struct iovec){.iov_base = data[i], .iov_len = (size_t)payload};
        msgs[i].msg_hdr.msg_iov = &iov[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    long long sent = 0;
    int64_t start = now_ns();
    while (sent < count) {
        long long due = count;
        if (rate > 0) {
            due = (long long)((double)(now_ns() - start) * (double)rate / 1e9) + 1;
            if (due > count)
                due = count;
            if (due <= sent) {
                int64_t at = start + (int64_t)((double)sent * 1e9 / (double)rate);
                struct timespec ts = {.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000};
                clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
                continue;
            }
        }
        long long n = due - sent < TRAFFIC_BATCH ? due - sent : TRAFFIC_BATCH;
        for (long long i = 0; i < n; i++) /* a sequence number in each, for whoever looks */
            memcpy(data[i], &(uint64_t){(uint64_t)(sent + i)}, payload >= 8 ? 8 : 0);
        int r = sendmmsg(fd, msgs, (unsigned)n, 0);
        if (r < 0) {
            if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN)
                continue;
            perror("bench_capture_traffic: sendmmsg");
            break;
        }
        sent += r;
    }
    double secs = (double)(now_ns() - start) / 1e9;
    printf("sent %lld seconds %.3f pps %.0f\n", sent, secs, secs > 0 ? (double)sent / secs : 0.0);
    close(fd);
    return sent == count ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "sink") == 0) {
        long long port = num(argv[2], 1, 65535);
        return port < 0 ? usage() : do_sink(port);
    }
    if ((argc == 6 || argc == 7) && strcmp(argv[1], "send") == 0) {
        long long port = num(argv[3], 1, 65535);
        long long count = num(argv[4], 1, 1000000000LL);
        long long rate = num(argv[5], 0, 100000000LL);
        long long payload = argc == 7 ? num(argv[6], 0, TRAFFIC_PAYLOAD_MAX) : 64;
        if (port < 0 || count < 0 || rate < 0 || payload < 0)
            return usage();
        return do_send(argv[2], port, count, rate, payload);
    }
    return usage();
}
