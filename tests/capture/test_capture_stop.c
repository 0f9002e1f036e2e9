/*
 * The stop of a buffered capture (agent/capture.h): the kernel hands packets over in blocks, up
 * to the block timeout after they arrived, so a manual stop must read on until the last block
 * holding a packet from before the stop is handed over, and must not write what arrives while it
 * waits.
 *
 * In a network namespace of its own (only lo), a thread sends a numbered UDP datagram to
 * 127.0.0.1 every 500 us, before, across and after the stop; the engine captures on lo. Checked
 * in the file: every datagram sent more than EARLY_MS before capture_stop is there (none lost in
 * a block not yet handed over), none stamped more than LATE_MS after it (nothing from the wait),
 * and traffic did go on during the wait (else the second check proves nothing).
 *
 * Needs root (CAP_SYS_ADMIN for the namespace, CAP_NET_RAW to capture): exits 77 (skip)
 * otherwise; as root every set-up failure is a test failure.
 */
/* _GNU_SOURCE: unshare(2) is Linux-only; pcap.h needs the BSD types. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/capture.h"

#define SKIP_CODE 77
#define PORT      5099
#define MAX_SENT  4000 /* 2 s at one per 500 us */
/* Scheduling slack: a datagram sent this long before capture_stop must be in the file... */
#define EARLY_MS 50
/* ...and none may be stamped this long after it. The capture thread takes the stop's time when
 * it wakes for it, so this is also how late it may wake. Why not more: without the cut-off the
 * wait for the last block (up to 300 ms) writes packets stamped at least 50 ms after the stop,
 * because some block (250 ms timeout) is handed over 50 ms or more into the wait. */
#define LATE_MS     40
#define PAYLOAD_OFF 42 /* lo frames: 14 (Ethernet) + 20 (IPv4) + 8 (UDP) */

static int failures;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            failures++;                                                                            \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

static int64_t sent_us[MAX_SENT]; /* CLOCK_REALTIME after each sendto returned */
static atomic_int n_sent;
static atomic_int stop_sending;

static int64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static void *sender(void *arg)
{
    (void)arg;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timespec gap = {0, 500000};
    for (int i = 0; i < MAX_SENT && !atomic_load(&stop_sending); i++) {
        uint32_t seq = (uint32_t)i;
        if (sendto(fd, &seq, sizeof(seq), 0, (struct sockaddr *)&to, sizeof(to)) !=
            (ssize_t)sizeof(seq))
            break;
        sent_us[i] = now_us();
        atomic_store(&n_sent, i + 1);
        nanosleep(&gap, NULL);
    }
    close(fd);
    return NULL;
}

/* lo up in this (new) namespace. 0 or -1. */
static int lo_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    int rc = fd >= 0 && ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 &&
                     (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) == 0)
                 ? 0
                 : -1;
    if (fd >= 0)
        close(fd);
    return rc;
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "skip: needs root (a network namespace, CAP_NET_RAW)\n");
        return SKIP_CODE;
    }
    if (unshare(CLONE_NEWNET) != 0 || lo_up() != 0) {
        fprintf(stderr, "FAIL: no network namespace with lo up: %s\n", strerror(errno));
        return 1;
    }
    /* A bound receiver that never reads: no ICMP port unreachable in the capture. */
    int sink = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in at = {.sin_family = AF_INET, .sin_port = htons(PORT)};
    at.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sink < 0 || bind(sink, (struct sockaddr *)&at, sizeof(at)) != 0) {
        fprintf(stderr, "FAIL: cannot bind the receiver: %s\n", strerror(errno));
        return 1;
    }
    char root[] = "/tmp/nw-capstop-XXXXXX";
    if (!mkdtemp(root)) {
        fprintf(stderr, "FAIL: mkdtemp: %s\n", strerror(errno));
        return 1;
    }
    const char *ifs[] = {"lo"};
    struct capture_params p = {.root_dir = root,
                               .file_path = "stop.cap",
                               .interfaces = ifs,
                               .n_interfaces = 1,
                               .filter = "udp dst port 5099"};
    struct capture *c = NULL;
    struct cp_error e;
    if (capture_start(&p, &c, &e) != CP_OK) {
        fprintf(stderr, "FAIL: capture_start: %s: %s\n", e.code, e.message);
        return 1;
    }
    pthread_t th;
    if (pthread_create(&th, NULL, sender, NULL) != 0) {
        fprintf(stderr, "FAIL: no sender thread\n");
        return 1;
    }
    /* Long enough for some blocks to be handed over, and not a multiple of the timeout. */
    struct timespec before_stop = {0, 370 * 1000000L};
    nanosleep(&before_stop, NULL);
    int64_t stop_at = now_us();
    capture_stop(c);
    capture_wait(c);
    int64_t ended_at = now_us();
    atomic_store(&stop_sending, 1);
    pthread_join(th, NULL);
    const struct capture_result *r = capture_result(c);
    CHECK(r->error == CAPTURE_ERR_NONE, "error %s: %s", capture_error_name(r->error), r->message);
    CHECK(r->reason == CAPTURE_STOP_MANUAL, "reason %s", capture_stop_reason_name(r->reason));
    CHECK(r->stats.drops == 0, "%llu drops", (unsigned long long)r->stats.drops);

    static unsigned char seen[MAX_SENT];
    int late = 0, in_file = 0;
    char path[sizeof(root) + 16], errbuf[PCAP_ERRBUF_SIZE];
    snprintf(path, sizeof(path), "%s/stop.cap", root);
    pcap_t *rd = r->n_files == 1 ? pcap_open_offline(path, errbuf) : NULL;
    CHECK(rd != NULL, "the file %s cannot be read (%zu files)", path, r->n_files);
    struct pcap_pkthdr *h;
    const u_char *d;
    while (rd && pcap_next_ex(rd, &h, &d) == 1) {
        uint32_t seq;
        if (h->caplen < PAYLOAD_OFF + sizeof(seq))
            continue;
        memcpy(&seq, d + PAYLOAD_OFF, sizeof(seq));
        if (seq < MAX_SENT)
            seen[seq] = 1;
        in_file++;
        int64_t ts = (int64_t)h->ts.tv_sec * 1000000 + h->ts.tv_usec;
        if (ts > stop_at + LATE_MS * 1000)
            late++;
    }
    if (rd)
        pcap_close(rd);

    int sent = atomic_load(&n_sent), missing = 0, due = 0, after = 0;
    for (int i = 0; i < sent; i++) {
        if (sent_us[i] < stop_at - EARLY_MS * 1000) {
            due++;
            missing += seen[i] ? 0 : 1;
        }
        if (sent_us[i] > stop_at + LATE_MS * 1000 && sent_us[i] < ended_at)
            after++;
    }
    printf("sent %d, %d of them %d ms before the stop, %d in the file, %d sent %d ms after it "
           "while it waited; the stop took %lld ms\n",
           sent, due, EARLY_MS, in_file, after, LATE_MS, (long long)(ended_at - stop_at) / 1000);
    CHECK(due > 100, "only %d datagrams were sent before the stop", due);
    CHECK(missing == 0, "%d of the %d datagrams sent before the stop are not in the file", missing,
          due);
    CHECK(late == 0, "%d packets in the file arrived more than %d ms after the stop", late,
          LATE_MS);
    CHECK(after > 0,
          "no datagram was sent from %d ms after the stop to its end (%lld ms): the "
          "check above proves nothing",
          LATE_MS, (long long)(ended_at - stop_at) / 1000);
    capture_free(c);
    char cmd[sizeof(root) + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        fprintf(stderr, "warning: could not remove %s\n", root);
    close(sink);
    printf("%s capture.stop: %d failure(s)\n", failures ? "FAIL" : "ok", failures);
    return failures ? 1 : 0;
}
