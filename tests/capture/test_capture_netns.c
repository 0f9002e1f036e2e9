/*
 * Real-traffic test of the capture engine (agent/capture.c + common/bpf_expr.c): two network
 * namespaces joined by a veth pair, the engine capturing in namespace A, known traffic sent from
 * B to A and from A to B, and every resulting pcap file read back with libpcap.
 *
 *   A: nwcapA<pid>, veth nwcA<pid> 10.77.0.1/24 fd77::1/64     B: nwcapB<pid>, nwcB<pid> .2 ::2
 *
 * Static neighbour entries and no link-local addresses keep ARP/ND out of the way; what little
 * noise the kernel still sends (MLD) is tolerated: each file is checked packet by packet against
 * a reference implementation of the filter semantics (written here, independently of the BPF
 * generator), and the count of OUR packets in it must equal the number in the case table.
 *
 * Processes: the test (parent, initial namespace) builds the namespaces; a long-lived child in A
 * holds the UDP/TCP receivers and runs every capture at once (each case is one capture); a
 * long-lived child in B holds B's receivers; short-lived children in B send B->A traffic. The A
 * child also owns a private mount namespace with a 64 KiB tmpfs for the ENOSPC case. Results
 * travel back in a MAP_SHARED page.
 *
 * Needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN for netns and mounts): exits 77 (skip) otherwise. As
 * root every setup failure is a test failure. The namespaces are deleted on every exit path of the
 * parent (atexit and SIGINT/SIGTERM); only a SIGKILL can leave nwcap* namespaces behind.
 */
/* _GNU_SOURCE: setns(2), unshare(2) and mount flags are Linux-only; pcap.h needs the BSD types. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/capture.h"
#include "common/bpf_expr.h"

#define A4 "10.77.0.1"
#define B4 "10.77.0.2"
#define A6 "fd77::1"
#define B6 "fd77::2"

#define MAC_A     "02:77:00:00:00:01"
#define MAC_B     "02:77:00:00:00:02"
#define SKIP_CODE 77
#define MAX_F     3

/* ---- tiny assertion kit: count failures, keep going ---- */

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

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---- the cases: one capture each, all running at once in A ---- */

struct filt {
    const char *proto, *lip, *rip, *lport, *rport;
};

struct tcase {
    const char *name;
    const char *file;   /* relative to the capture root */
    int default_ifaces; /* 1: the engine's default set; 0: just the veth */
    int nf;             /* filters */
    struct filt f[MAX_F];
    uint32_t snaplen;             /* 0 = whole packets */
    uint64_t byte_limit;          /* 0 = none */
    uint32_t time_limit;          /* 0 = none */
    int expect;                   /* our packets expected in the file; -1: not checked */
    enum capture_stop_reason why; /* expected stop reason */
};

/* Frames of the byte-limit traffic (T12): Ethernet 14 + IPv4 20 + UDP 8 + 100 payload. */
#define T12_FRAME 142

/*
 * Our traffic (sport -> dport, count):
 *   B->A  T1-T4 UDP v4 7000 -> 5001..5004, T5 UDP v4 7001 -> 5005, T6/T7 UDP v6 7000 -> 5001/5005,
 *         T8 UDP v4 7000 -> 5009 (1000-byte payload), T9 TCP v4 7100 -> 6000 (SYN, SYN-ACK, ACK,
 *         RST: 4 packets), T10 ICMP echo v4 (2), T11 ICMPv6 echo (2), T12 UDP v4 7000 -> 5010 x10,
 *         T17 UDP v4 7002 -> 5011 x100 (1000-byte payload; fills the tmpfs)
 *   A->B  T13 UDP v4 5006 -> 8001, T14 UDP v4 7300 -> 5001 (remote port 5001), T15 UDP v6 5006 ->
 *         8002, T16 TCP v4 7200 -> 6001 (4 packets)
 * Totals: UDP 21 + 100, TCP 8, ICMP 4.
 */
static const struct tcase cases[] = {
    {"all (default interfaces)", "c00_all.cap", 1, 0, {{0}}, 0, 0, 0, 133, CAPTURE_STOP_MANUAL},
    {"UDP", "sub/dir/c01_udp.cap", 0, 1, {{"UDP", 0, 0, 0, 0}}, 0, 0, 0, 121, CAPTURE_STOP_MANUAL},
    {"TCP", "c02_tcp.cap", 0, 1, {{"TCP", 0, 0, 0, 0}}, 0, 0, 0, 8, CAPTURE_STOP_MANUAL},
    {"ICMP", "c03_icmp.cap", 0, 1, {{"ICMP", 0, 0, 0, 0}}, 0, 0, 0, 4, CAPTURE_STOP_MANUAL},
    {"local port single",
     "c04.cap",
     0,
     1,
     {{"UDP", 0, 0, "5001", 0}},
     0,
     0,
     0,
     2,
     CAPTURE_STOP_MANUAL},
    {"local port range (Any)",
     "c05.cap",
     0,
     1,
     {{"Any", 0, 0, "5002-5004", 0}},
     0,
     0,
     0,
     3,
     CAPTURE_STOP_MANUAL},
    {"local port list",
     "c06.cap",
     0,
     1,
     {{"UDP", 0, 0, "5001;5005;5006;", 0}},
     0,
     0,
     0,
     6,
     CAPTURE_STOP_MANUAL},
    {"remote port single",
     "c07.cap",
     0,
     1,
     {{"UDP", 0, 0, 0, "7001"}},
     0,
     0,
     0,
     1,
     CAPTURE_STOP_MANUAL},
    {"remote port range+list",
     "c08.cap",
     0,
     1,
     {{"Any", 0, 0, 0, "7000-7001;6001"}},
     0,
     0,
     0,
     22,
     CAPTURE_STOP_MANUAL},
    {"remote IPv4", "c09.cap", 0, 1, {{"Any", 0, B4, 0, 0}}, 0, 0, 0, 128, CAPTURE_STOP_MANUAL},
    {"local IPv6", "c10.cap", 0, 1, {{"Any", A6, 0, 0, 0}}, 0, 0, 0, 5, CAPTURE_STOP_MANUAL},
    {"local+remote range, both directions",
     "c11.cap",
     0,
     1,
     {{"TCP", A4, "10.77.0.2-10.77.0.6", "6000", 0}},
     0,
     0,
     0,
     4,
     CAPTURE_STOP_MANUAL},
    {"remote range excluding the peer",
     "c12.cap",
     0,
     1,
     {{"Any", 0, "10.77.0.3-10.77.0.200", 0, 0}},
     0,
     0,
     0,
     0,
     CAPTURE_STOP_MANUAL},
    {"two filters OR-ed",
     "c13.cap",
     0,
     2,
     {{"TCP", 0, 0, "6000", 0}, {"ICMP", 0, B6, 0, 0}},
     0,
     0,
     0,
     6,
     CAPTURE_STOP_MANUAL},
    {"IPv6 remote range",
     "c14.cap",
     0,
     1,
     {{"UDP", 0, "fd77::1-fd77::ff", 0, 0}},
     0,
     0,
     0,
     3,
     CAPTURE_STOP_MANUAL},
    {"byte limit, exact multiple",
     "l1_bytes.cap",
     0,
     1,
     {{"UDP", 0, 0, "5010", 0}},
     0,
     3 * T12_FRAME,
     0,
     3,
     CAPTURE_STOP_BYTES},
    {"byte limit, not a multiple",
     "l2_bytes.cap",
     0,
     1,
     {{"UDP", 0, 0, "5010", 0}},
     0,
     5 * T12_FRAME + 50,
     0,
     5,
     CAPTURE_STOP_BYTES},
    {"time limit", "l3_time.cap", 0, 0, {{0}}, 0, 0, 1, -1, CAPTURE_STOP_TIME},
    {"snap length",
     "l4_snap.cap",
     0,
     1,
     {{"UDP", 0, 0, "5009", 0}},
     64,
     0,
     0,
     1,
     CAPTURE_STOP_MANUAL},
    {"disk full", "full/big.cap", 0, 1, {{"UDP", 0, 0, "5011", 0}}, 0, 0, 0, -1, CAPTURE_STOP_NONE},
};

#define NCASES      (sizeof(cases) / sizeof(cases[0]))
#define CASE_ALL    0
#define CASE_BYTES1 15
#define CASE_BYTES2 16
#define CASE_TIME   17
#define CASE_SNAP   18
#define CASE_FULL   19

/* Results, written by the A child into a MAP_SHARED page. */
struct outcome {
    int started;
    char start_msg[256];
    int ended_alone; /* finished before the stop was sent (limit cases) */
    struct capture_result r;
    struct capture_file file;
    char expr[512];
    int full_dir_empty; /* disk-full case: nothing left in full/ afterwards */
};

struct shared {
    struct nf_ip_set local; /* A's addresses, as the engine saw them */
    struct outcome o[NCASES];
    int negatives_run;
};

static struct shared *sh;
static char ns_a[32], ns_b[32], if_a[16], if_b[16];
static char root[128], outside[128];
static pid_t owner;
static const char *ip_cmd;

/* ---- processes and commands ---- */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FATAL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1); /* atexit cleans up in the parent; children use _exit paths elsewhere */
}

/* Runs argv (no shell); returns the exit status, or -1. Quiet unless it fails. */
static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs prog with the arguments in line, split on spaces (no shell, no quoting). */
static int run_line(const char *prog, const char *line)
{
    char buf[512], path[64];
    snprintf(buf, sizeof(buf), "%s", line);
    snprintf(path, sizeof(path), "%s", prog);
    char *argv[40];
    int n = 0;
    argv[n++] = path;
    for (char *save = NULL, *t = strtok_r(buf, " ", &save); t && n < 39;
         t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    return run(argv);
}

/* Runs "ip <args>"; says so when it fails. */
static int ip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int ip(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    int rc = run_line(ip_cmd, line);
    if (rc != 0)
        fprintf(stderr, "ip %s: exit %d\n", line, rc);
    return rc;
}

static void cleanup(void)
{
    if (getpid() != owner)
        return;
    char line[300];
    if (ip_cmd) {
        snprintf(line, sizeof(line), "netns del %s", ns_a);
        run_line(ip_cmd, line);
        snprintf(line, sizeof(line), "netns del %s", ns_b);
        run_line(ip_cmd, line);
    }
    if (root[0]) {
        snprintf(line, sizeof(line), "-rf -- %s %s", root, outside);
        run_line("/bin/rm", line);
    }
}

static void on_signal(int sig)
{
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void enter_ns(const char *name)
{
    char path[96];
    snprintf(path, sizeof(path), "/var/run/netns/%s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || setns(fd, CLONE_NEWNET) != 0) {
        fprintf(stderr, "setns %s: %s\n", name, strerror(errno));
        _exit(2);
    }
    close(fd);
}

static void setup_namespaces(void)
{
    int pid = (int)getpid();
    snprintf(ns_a, sizeof(ns_a), "nwcapA%d", pid);
    snprintf(ns_b, sizeof(ns_b), "nwcapB%d", pid);
    snprintf(if_a, sizeof(if_a), "nwcA%d", pid);
    snprintf(if_b, sizeof(if_b), "nwcB%d", pid);
    if (ip("netns add %s", ns_a) || ip("netns add %s", ns_b))
        die("cannot create network namespaces");
    if (ip("link add %s netns %s address %s type veth peer name %s netns %s address %s", if_a, ns_a,
           MAC_A, if_b, ns_b, MAC_B))
        die("cannot create the veth pair");
    /* No link-local addresses (no DAD, fewer MLD reports), static neighbours (no ARP/ND). */
    int bad = ip("-n %s link set %s addrgenmode none", ns_a, if_a) ||
              ip("-n %s link set %s addrgenmode none", ns_b, if_b) ||
              ip("-n %s link set lo up", ns_a) || ip("-n %s link set lo up", ns_b) ||
              ip("-n %s addr add %s/24 dev %s", ns_a, A4, if_a) ||
              ip("-n %s addr add %s/24 dev %s", ns_b, B4, if_b) ||
              ip("-n %s addr add %s/64 dev %s nodad", ns_a, A6, if_a) ||
              ip("-n %s addr add %s/64 dev %s nodad", ns_b, B6, if_b) ||
              ip("-n %s link set %s up", ns_a, if_a) || ip("-n %s link set %s up", ns_b, if_b) ||
              ip("-n %s neigh replace %s lladdr %s dev %s nud permanent", ns_a, B4, MAC_B, if_a) ||
              ip("-n %s neigh replace %s lladdr %s dev %s nud permanent", ns_a, B6, MAC_B, if_a) ||
              ip("-n %s neigh replace %s lladdr %s dev %s nud permanent", ns_b, A4, MAC_A, if_b) ||
              ip("-n %s neigh replace %s lladdr %s dev %s nud permanent", ns_b, A6, MAC_A, if_b);
    if (bad)
        die("cannot configure the veth pair");
}

/* ---- traffic ---- */

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

/* A socket bound to src:sport. */
static int bound_socket(int type, const char *src, unsigned sport)
{
    struct sockaddr_storage ss;
    socklen_t len = sockaddr_of(src, sport, &ss);
    int fd = socket(ss.ss_family, type | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&ss, len) != 0) {
        fprintf(stderr, "bind %s:%u: %s\n", src, sport, strerror(errno));
        _exit(3);
    }
    return fd;
}

static void udp_send(const char *src, unsigned sport, const char *dst, unsigned dport,
                     size_t payload, int count)
{
    int fd = bound_socket(SOCK_DGRAM, src, sport);
    struct sockaddr_storage to;
    socklen_t len = sockaddr_of(dst, dport, &to);
    char buf[1500];
    memset(buf, 'n', sizeof(buf));
    for (int i = 0; i < count; i++)
        if (sendto(fd, buf, payload, 0, (struct sockaddr *)&to, len) != (ssize_t)payload) {
            fprintf(stderr, "sendto %s:%u: %s\n", dst, dport, strerror(errno));
            _exit(3);
        }
    close(fd);
}

/* Handshake then abort: SYN, SYN-ACK, ACK, RST, exactly. */
static void tcp_connect_reset(const char *src, unsigned sport, const char *dst, unsigned dport)
{
    int fd = bound_socket(SOCK_STREAM, src, sport);
    struct sockaddr_storage to;
    socklen_t len = sockaddr_of(dst, dport, &to);
    if (connect(fd, (struct sockaddr *)&to, len) != 0) {
        fprintf(stderr, "connect %s:%u: %s\n", dst, dport, strerror(errno));
        _exit(3);
    }
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
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

/* One echo request to dst and its reply (raw socket; the kernel checksums ICMPv6 itself). */
static void ping_once(const char *dst)
{
    int v6 = strchr(dst, ':') != NULL;
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_RAW | SOCK_CLOEXEC,
                    v6 ? IPPROTO_ICMPV6 : IPPROTO_ICMP);
    if (fd < 0) {
        fprintf(stderr, "raw socket: %s\n", strerror(errno));
        _exit(3);
    }
    uint8_t pkt[16] = {v6 ? 128 : 8, 0,   0,   0,   0x4e, 0x57, 0,   1,
                       'n',          'e', 't', 'w', 'a',  't',  'c', 'h'};
    if (!v6) {
        uint16_t ck = inet_checksum(pkt, sizeof(pkt));
        pkt[2] = (uint8_t)(ck >> 8);
        pkt[3] = (uint8_t)ck;
    }
    struct sockaddr_storage to;
    socklen_t len = sockaddr_of(dst, 0, &to);
    if (sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, len) != (ssize_t)sizeof(pkt)) {
        fprintf(stderr, "ping %s: %s\n", dst, strerror(errno));
        _exit(3);
    }
    /* Wait for the reply so that it is on the wire before the capture stops. */
    for (int tries = 0; tries < 20; tries++) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        uint8_t buf[256];
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        size_t off = v6 ? 0 : (size_t)(buf[0] & 0x0f) * 4;
        if (n > (ssize_t)(off + 5) && buf[off] == (v6 ? 129 : 0) && buf[off + 4] == 0x4e &&
            buf[off + 5] == 0x57) {
            close(fd);
            return;
        }
    }
    fprintf(stderr, "no echo reply from %s\n", dst);
    _exit(3);
}

/* Receivers for every port we send to, so the kernel answers no ICMP port-unreachable. */
static void bind_receivers(const unsigned *udp, size_t n, unsigned tcp_port, int *fds)
{
    for (size_t i = 0; i < n; i++) {
        fds[i] = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        int zero = 0;
        setsockopt(fds[i], IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
        int big = 4 * 1024 * 1024;
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
        struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)udp[i])};
        if (bind(fds[i], (struct sockaddr *)&any, sizeof(any)) != 0) {
            fprintf(stderr, "bind udp %u: %s\n", udp[i], strerror(errno));
            _exit(3);
        }
    }
    int l = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int zero = 0, one = 1;
    setsockopt(l, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in6 any = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)tcp_port)};
    if (bind(l, (struct sockaddr *)&any, sizeof(any)) != 0 || listen(l, 16) != 0) {
        fprintf(stderr, "listen %u: %s\n", tcp_port, strerror(errno));
        _exit(3);
    }
    fds[n] = l;
}

static void traffic_b_to_a(void)
{
    for (unsigned p = 5001; p <= 5004; p++)
        udp_send(B4, 7000, A4, p, 100, 1); /* T1-T4 */
    udp_send(B4, 7001, A4, 5005, 100, 1);  /* T5 */
    udp_send(B6, 7000, A6, 5001, 100, 1);  /* T6 */
    udp_send(B6, 7000, A6, 5005, 100, 1);  /* T7 */
    udp_send(B4, 7000, A4, 5009, 1000, 1); /* T8 */
    tcp_connect_reset(B4, 7100, A4, 6000); /* T9 */
    ping_once(A4);                         /* T10 */
    ping_once(A6);                         /* T11 */
    udp_send(B4, 7000, A4, 5010, 100, 10); /* T12 */
    for (int i = 0; i < 100; i++) {
        udp_send(B4, 7002, A4, 5011, 1000, 1); /* T17, paced: no backlog drops */
        if (i % 10 == 9)
            usleep(2000);
    }
}

static void traffic_a_to_b(void)
{
    udp_send(A4, 5006, B4, 8001, 100, 1);  /* T13 */
    udp_send(A4, 7300, B4, 5001, 100, 1);  /* T14 */
    udp_send(A6, 5006, B6, 8002, 100, 1);  /* T15 */
    tcp_connect_reset(A4, 7200, B4, 6001); /* T16 */
}

/* ---- pipes between the parent and the long-lived children ---- */

static void send_cmd(int fd, char c)
{
    if (write(fd, &c, 1) != 1)
        die("pipe write: %s", strerror(errno));
}

static char wait_cmd(int fd, int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    char c = 0;
    if (poll(&p, 1, timeout_ms) != 1 || read(fd, &c, 1) != 1)
        return 0;
    return c;
}

/* ---- the A side: receivers, captures, negative starts ---- */

static int build_filter(const struct tcase *t, char **expr, struct cp_error *e)
{
    struct bpf_filter_spec fs[MAX_F];
    for (int i = 0; i < t->nf; i++)
        if (bpf_filter_spec_parse(t->f[i].proto, t->f[i].lip, t->f[i].rip, t->f[i].lport,
                                  t->f[i].rport, (size_t)i, &fs[i], e) != CP_OK)
            return -1;
    return bpf_expr_build(fs, (size_t)t->nf, &sh->local, expr, e) == CP_OK ? 0 : -1;
}

static void negative_starts(void)
{
    const char *lst[] = {if_a};
    struct capture_params p = {
        .root_dir = root, .file_path = "out/x.cap", .interfaces = lst, .n_interfaces = 1};
    struct capture *c = NULL;
    struct cp_error e;
    /* A directory symlink out of the root. */
    CHECK(capture_start(&p, &c, &e) == CP_EINVAL && strcmp(e.code, "LocalFileFailed") == 0,
          "symlinked dir: %s", e.message);
    p.file_path = "../escape.cap";
    CHECK(capture_start(&p, &c, &e) == CP_EINVAL && strcmp(e.code, "LocalFileFailed") == 0,
          "..: %s", e.message);
    p.file_path = "/etc/x.cap";
    CHECK(capture_start(&p, &c, &e) == CP_EINVAL, "absolute: %s", e.message);
    p.file_path = "exists.cap";
    CHECK(capture_start(&p, &c, &e) == CP_EEXIST && strcmp(e.code, "LocalFileFailed") == 0,
          "existing file: %s", e.message);
    p.file_path = "n1.cap";
    const char *nosuch[] = {"nosuch0"};
    p.interfaces = nosuch;
    CHECK(capture_start(&p, &c, &e) == CP_EINVAL && strcmp(e.code, "CaptureFailed") == 0,
          "unknown interface: %s", e.message);
    p.interfaces = lst;
    p.filter = "tcp and and";
    CHECK(capture_start(&p, &c, &e) == CP_EINVAL && strcmp(e.code, "CaptureFailed") == 0,
          "bad filter: %s", e.message);
    p.filter = NULL;
    struct capture_ring ring = {.file_count = 0, .file_size = 1000000};
    p.ring = &ring;
    CHECK(capture_start(&p, &c, &e) == CP_EINVAL, "ring of no files: %s", e.message);
    ring = (struct capture_ring){.file_count = 3, .file_size = 0};
    CHECK(capture_start(&p, &c, &e) == CP_EINVAL, "ring of empty files: %s", e.message);
    sh->negatives_run = 1;
}

static void a_child(int cmd_fd, int ack_fd)
{
    enter_ns(ns_a);
    /* A private mount namespace, before any thread exists, for the disk-full tmpfs. */
    char full[256];
    snprintf(full, sizeof(full), "%s/full", root);
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", full, "tmpfs", 0, "size=64k,mode=0750") != 0) {
        fprintf(stderr, "tmpfs on %s: %s\n", full, strerror(errno));
        _exit(4);
    }
    static const unsigned udp[] = {5001, 5002, 5003, 5004, 5005, 5009, 5010, 5011};
    int fds[16];
    bind_receivers(udp, sizeof(udp) / sizeof(udp[0]), 6000, fds);

    struct cp_error e;
    if (capture_local_addrs(&sh->local, &e) != CP_OK) {
        fprintf(stderr, "local addrs: %s\n", e.message);
        _exit(4);
    }
    negative_starts();

    struct capture *caps[NCASES] = {0};
    const char *lst[] = {if_a};
    for (size_t i = 0; i < NCASES; i++) {
        const struct tcase *t = &cases[i];
        struct outcome *o = &sh->o[i];
        char *expr = NULL;
        if (build_filter(t, &expr, &e) != 0) {
            snprintf(o->start_msg, sizeof(o->start_msg), "filter: %.200s", e.message);
            continue;
        }
        snprintf(o->expr, sizeof(o->expr), "%s", expr);
        struct capture_params p = {
            .root_dir = root,
            .file_path = t->file,
            .snaplen = t->snaplen,
            .byte_limit = t->byte_limit,
            .time_limit_s = t->time_limit,
            .interfaces = t->default_ifaces ? NULL : lst,
            .n_interfaces = t->default_ifaces ? 0 : 1,
            .filter = expr,
        };
        if (capture_start(&p, &caps[i], &e) == CP_OK)
            o->started = 1;
        else
            snprintf(o->start_msg, sizeof(o->start_msg), "%.40s: %.200s", e.code, e.message);
        free(expr);
    }
    send_cmd(ack_fd, 'R');

    if (wait_cmd(cmd_fd, 20000) != 'S')
        _exit(5);
    traffic_a_to_b();
    send_cmd(ack_fd, 'D');

    if (wait_cmd(cmd_fd, 20000) != 'Q')
        _exit(5);
    for (size_t i = 0; i < NCASES; i++) {
        if (!caps[i])
            continue;
        struct pollfd pfd = {capture_done_fd(caps[i]), POLLIN, 0};
        sh->o[i].ended_alone = poll(&pfd, 1, 0) == 1;
        if (i == CASE_TIME)
            capture_wait(caps[i]); /* it must end by itself; the parent checks how soon */
        else
            capture_stop(caps[i]);
    }
    for (size_t i = 0; i < NCASES; i++) {
        if (!caps[i])
            continue;
        capture_wait(caps[i]);
        const struct capture_result *r = capture_result(caps[i]);
        sh->o[i].r = *r;
        sh->o[i].r.files = NULL;
        if (r->n_files)
            sh->o[i].file = r->files[0];
        capture_free(caps[i]);
    }
    /* Only this process sees the tmpfs: look inside it here. */
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", full);
    sh->o[CASE_FULL].full_dir_empty = system(cmd) == 0;
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]) && i <= sizeof(udp) / sizeof(udp[0]); i++)
        close(fds[i]);
    exit(0); /* not _exit: LeakSanitizer checks the engine here (cleanup() skips non-owners) */
}

/* Last phase: a capture whose interface is deleted under it must end with CaptureFailed. */
static void gone_child(int ack_fd, int unused)
{
    (void)unused;
    enter_ns(ns_a);
    const char *lst[] = {if_a};
    struct capture_params p = {.root_dir = root,
                               .file_path = "gone.cap",
                               .interfaces = lst,
                               .n_interfaces = 1,
                               .time_limit_s = 10};
    struct capture *c = NULL;
    struct cp_error e;
    if (capture_start(&p, &c, &e) != CP_OK) {
        fprintf(stderr, "gone: start: %s\n", e.message);
        _exit(1);
    }
    send_cmd(ack_fd, 'R');
    struct pollfd pfd = {capture_done_fd(c), POLLIN, 0};
    int ended = poll(&pfd, 1, 5000) == 1;
    capture_stop(c);
    capture_wait(c);
    const struct capture_result *r = capture_result(c);
    int ok = ended && r->error == CAPTURE_ERR_CAPTURE_FAILED && r->n_files == 0;
    if (!ok)
        fprintf(stderr, "gone: ended %d error %s reason %s: %s\n", ended,
                capture_error_name(r->error), capture_stop_reason_name(r->reason), r->message);
    else
        fprintf(stderr, "gone: %s\n", r->message);
    capture_free(c);
    exit(ok ? 0 : 1);
}

static void b_holder(int ack_fd, int cmd_fd)
{
    enter_ns(ns_b);
    static const unsigned udp[] = {8001, 8002, 5001};
    int fds[8];
    bind_receivers(udp, 3, 6001, fds);
    send_cmd(ack_fd, 'R');
    wait_cmd(cmd_fd, 60000); /* until the parent says so */
    _exit(0);
}

static void sender_b(void)
{
    enter_ns(ns_b);
    traffic_b_to_a();
    _exit(0);
}

/* ---- reading the files back ---- */

struct pkt {
    int ip;    /* 4, 6, or 0 (not IP) */
    int proto; /* IP protocol */
    uint8_t src[16], dst[16];
    unsigned sport, dport;
    int has_ports;
    int icmp_type;
    int ours; /* between the two veth addresses, UDP/TCP/ICMP echo */
};

static void decode(const u_char *d, uint32_t caplen, struct pkt *p)
{
    memset(p, 0, sizeof(*p));
    if (caplen < 14)
        return;
    unsigned type = (unsigned)d[12] << 8 | d[13];
    const u_char *l4;
    size_t left;
    if (type == 0x0800 && caplen >= 34) {
        p->ip = 4;
        p->proto = d[23];
        memcpy(p->src, d + 26, 4);
        memcpy(p->dst, d + 30, 4);
        size_t ihl = (size_t)(d[14] & 0x0f) * 4;
        l4 = d + 14 + ihl;
        left = caplen - 14 - ihl;
    } else if (type == 0x86dd && caplen >= 54) {
        p->ip = 6;
        p->proto = d[20];
        memcpy(p->src, d + 22, 16);
        memcpy(p->dst, d + 38, 16);
        l4 = d + 54;
        left = caplen - 54;
    } else {
        return;
    }
    if ((p->proto == 6 || p->proto == 17) && left >= 4) {
        p->has_ports = 1;
        p->sport = (unsigned)l4[0] << 8 | l4[1];
        p->dport = (unsigned)l4[2] << 8 | l4[3];
    }
    if ((p->proto == 1 || p->proto == 58) && left >= 1)
        p->icmp_type = l4[0];
    uint8_t a[16] = {0}, b[16] = {0};
    inet_pton(p->ip == 4 ? AF_INET : AF_INET6, p->ip == 4 ? A4 : A6, a);
    inet_pton(p->ip == 4 ? AF_INET : AF_INET6, p->ip == 4 ? B4 : B6, b);
    size_t n = p->ip == 4 ? 4 : 16;
    int pair = (memcmp(p->src, a, n) == 0 && memcmp(p->dst, b, n) == 0) ||
               (memcmp(p->src, b, n) == 0 && memcmp(p->dst, a, n) == 0);
    int echo = (p->proto == 1 && (p->icmp_type == 8 || p->icmp_type == 0)) ||
               (p->proto == 58 && (p->icmp_type == 128 || p->icmp_type == 129));
    p->ours = pair && (p->proto == 6 || p->proto == 17 || echo);
}

/* ---- the reference semantics, independent of common/bpf_expr.c ---- */

static int in_ips(const struct nf_ip_set *s, int ipv, const uint8_t *a)
{
    int fam = ipv == 4 ? AF_INET : AF_INET6;
    size_t n = ipv == 4 ? 4 : 16;
    for (size_t i = 0; i < s->n; i++)
        if (s->r[i].family == fam && memcmp(a, s->r[i].lo, n) >= 0 && memcmp(a, s->r[i].hi, n) <= 0)
            return 1;
    return 0;
}

static int in_ports(const struct nf_port_set *s, unsigned port)
{
    for (size_t i = 0; i < s->n; i++)
        if (port >= s->r[i].lo && port <= s->r[i].hi)
            return 1;
    return 0;
}

static int ref_one(const struct bpf_filter_spec *f, const struct pkt *p)
{
    int ports = f->local_port.n || f->remote_port.n;
    int directed = ports || f->local_ip.n || f->remote_ip.n;
    switch (f->protocol) {
    case NF_PROTO_TCP:
        if (!p->ip || p->proto != 6)
            return 0;
        break;
    case NF_PROTO_UDP:
        if (!p->ip || p->proto != 17)
            return 0;
        break;
    case NF_PROTO_ICMP:
        if (ports || !p->ip || (p->proto != 1 && p->proto != 58))
            return 0;
        break;
    case NF_PROTO_ANY:
        if (ports && (!p->ip || (p->proto != 6 && p->proto != 17)))
            return 0;
        break;
    }
    if (!directed)
        return 1;
    if (!p->ip)
        return 0;
    const struct nf_ip_set *l = f->local_ip.n ? &f->local_ip : &sh->local;
    int out = in_ips(l, p->ip, p->src) &&
              (!f->remote_ip.n || in_ips(&f->remote_ip, p->ip, p->dst)) &&
              (!f->local_port.n || (p->has_ports && in_ports(&f->local_port, p->sport))) &&
              (!f->remote_port.n || (p->has_ports && in_ports(&f->remote_port, p->dport)));
    int in = in_ips(l, p->ip, p->dst) &&
             (!f->remote_ip.n || in_ips(&f->remote_ip, p->ip, p->src)) &&
             (!f->local_port.n || (p->has_ports && in_ports(&f->local_port, p->dport))) &&
             (!f->remote_port.n || (p->has_ports && in_ports(&f->remote_port, p->sport)));
    return out || in;
}

static int ref_match(const struct tcase *t, const struct pkt *p)
{
    if (t->nf == 0)
        return 1;
    for (int i = 0; i < t->nf; i++) {
        struct bpf_filter_spec f;
        struct cp_error e;
        if (bpf_filter_spec_parse(t->f[i].proto, t->f[i].lip, t->f[i].rip, t->f[i].lport,
                                  t->f[i].rport, (size_t)i, &f, &e) != CP_OK)
            return 0;
        if (ref_one(&f, p))
            return 1;
    }
    return 0;
}

static double ms_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void verify_case(size_t i)
{
    const struct tcase *t = &cases[i];
    const struct outcome *o = &sh->o[i];
    CHECK(o->started, "[%s] did not start: %s", t->name, o->start_msg);
    if (!o->started)
        return;
    const struct capture_result *r = &o->r;
    fprintf(stderr,
            "case %-38s reason=%-20s error=%-15s packets=%-4llu bytes=%-6llu drops=%llu "
            "ms=%llu\n",
            t->name, capture_stop_reason_name(r->reason), capture_error_name(r->error),
            (unsigned long long)r->stats.packets, (unsigned long long)r->stats.bytes,
            (unsigned long long)r->stats.drops, (unsigned long long)r->duration_ms);

    if (i == CASE_FULL) {
        CHECK(r->error == CAPTURE_ERR_LOCAL_FILE_FAILED, "[%s] error %s", t->name,
              capture_error_name(r->error));
        CHECK(strstr(r->message, "No space left") != NULL, "[%s] message: %s", t->name, r->message);
        CHECK(r->n_files == 0 && o->ended_alone, "[%s] files %zu, ended alone %d", t->name,
              r->n_files, o->ended_alone);
        CHECK(o->full_dir_empty, "[%s] the partial file was left behind", t->name);
        return;
    }
    CHECK(r->error == CAPTURE_ERR_NONE, "[%s] error %s: %s", t->name, capture_error_name(r->error),
          r->message);
    CHECK(r->reason == t->why, "[%s] reason %s, want %s", t->name,
          capture_stop_reason_name(r->reason), capture_stop_reason_name(t->why));
    CHECK(r->stats.drops == 0, "[%s] %llu drops", t->name, (unsigned long long)r->stats.drops);
    CHECK(r->n_files == 1 && strcmp(o->file.path, t->file) == 0, "[%s] file '%s'", t->name,
          o->file.path);

    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", root, t->file);
    CHECK(stat(path, &st) == 0, "[%s] %s missing", t->name, path);
    CHECK((st.st_mode & 07777) == 0640, "[%s] mode %o", t->name, (unsigned)(st.st_mode & 07777));
    CHECK((uint64_t)st.st_size == o->file.size, "[%s] size %lld vs reported %llu", t->name,
          (long long)st.st_size, (unsigned long long)o->file.size);
    char partial[512];
    const char *slash = strrchr(t->file, '/');
    snprintf(partial, sizeof(partial), "%s/%.*s.%s.partial", root,
             slash ? (int)(slash - t->file + 1) : 0, t->file, slash ? slash + 1 : t->file);
    CHECK(lstat(partial, &st) != 0, "[%s] %s left behind", t->name, partial);

    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline(path, errbuf);
    CHECK(pc != NULL, "[%s] %s", t->name, errbuf);
    if (!pc)
        return;
    CHECK(pcap_datalink(pc) == DLT_EN10MB, "[%s] link type %d", t->name, pcap_datalink(pc));
    struct pcap_pkthdr *h;
    const u_char *d;
    int ours = 0, total = 0, bad = 0;
    uint64_t bytes = 0;
    while (pcap_next_ex(pc, &h, &d) == 1) {
        struct pkt p;
        decode(d, h->caplen, &p);
        total++;
        bytes += h->caplen;
        ours += p.ours;
        if (!ref_match(t, &p) && bad++ < 3)
            fprintf(stderr, "  [%s] packet %d (ip%d proto %d %u->%u) does not match the filter\n",
                    t->name, total, p.ip, p.proto, p.sport, p.dport);
        if (t->snaplen) {
            CHECK(h->caplen == t->snaplen && h->len == 14 + 20 + 8 + 1000, "[%s] caplen %u len %u",
                  t->name, h->caplen, h->len);
        }
    }
    pcap_close(pc);
    CHECK(bad == 0, "[%s] %d packets outside the filter (expr: %s)", t->name, bad, o->expr);
    CHECK((uint64_t)total == r->stats.packets && bytes == r->stats.bytes,
          "[%s] file has %d packets/%llu bytes, result says %llu/%llu", t->name, total,
          (unsigned long long)bytes, (unsigned long long)r->stats.packets,
          (unsigned long long)r->stats.bytes);
    if (t->expect >= 0)
        CHECK(ours == t->expect, "[%s] %d of our packets, want %d (expr: %s)", t->name, ours,
              t->expect, o->expr);
    if (t->byte_limit) {
        CHECK(bytes <= t->byte_limit && bytes + T12_FRAME > t->byte_limit,
              "[%s] %llu bytes for a limit of %llu", t->name, (unsigned long long)bytes,
              (unsigned long long)t->byte_limit);
        CHECK(o->ended_alone, "[%s] did not stop by itself", t->name);
    }
    if (t->time_limit) {
        CHECK(r->duration_ms >= t->time_limit * 1000u &&
                  r->duration_ms <= t->time_limit * 1000u + 500,
              "[%s] ran %llu ms for a %u s limit", t->name, (unsigned long long)r->duration_ms,
              t->time_limit);
    }
}

static const char *find_ip(void)
{
    static const char *const where[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};
    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++)
        if (access(where[i], X_OK) == 0)
            return where[i];
    return NULL;
}

static pid_t spawn(void (*fn)(int, int), int a, int b)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0)
        fn(a, b);
    return pid;
}

static void sender_b_adapter(int a, int b)
{
    (void)a;
    (void)b;
    sender_b();
}

static int wait_ok(pid_t pid, const char *what)
{
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "FAIL: %s exited with status %d\n", what, st);
        failures++;
        return 0;
    }
    return 1;
}

int main(void)
{
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root for network namespaces\n");
        return SKIP_CODE;
    }
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    setvbuf(stderr, NULL, _IOLBF, 0);
    owner = getpid();
    ip_cmd = find_ip();
    if (!ip_cmd)
        die("no ip(8) from iproute2");
    snprintf(root, sizeof(root), "/tmp/nw-capture-XXXXXX");
    snprintf(outside, sizeof(outside), "/tmp/nw-capture-out-XXXXXX");
    if (!mkdtemp(root) || !mkdtemp(outside))
        die("mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    memset(sh, 0, sizeof(*sh));

    /* What the negative starts need: a symlink out of the root, an existing file, the tmpfs
     * mount point. */
    char path[512];
    snprintf(path, sizeof(path), "%s/out", root);
    if (symlink(outside, path) != 0)
        die("symlink: %s", strerror(errno));
    snprintf(path, sizeof(path), "%s/exists.cap", root);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0640);
    if (fd < 0)
        die("create: %s", strerror(errno));
    close(fd);
    snprintf(path, sizeof(path), "%s/full", root);
    if (mkdir(path, 0750) != 0)
        die("mkdir: %s", strerror(errno));

    setup_namespaces();

    int b_ack[2], b_cmd[2], a_ack[2], a_cmd[2];
    if (pipe(b_ack) || pipe(b_cmd) || pipe(a_ack) || pipe(a_cmd))
        die("pipe: %s", strerror(errno));
    pid_t b = fork();
    if (b < 0)
        die("fork: %s", strerror(errno));
    if (b == 0)
        b_holder(b_ack[1], b_cmd[0]);
    if (wait_cmd(b_ack[0], 10000) != 'R')
        die("the B side did not come up");
    pid_t a = fork();
    if (a < 0)
        die("fork: %s", strerror(errno));
    if (a == 0)
        a_child(a_cmd[0], a_ack[1]);
    if (wait_cmd(a_ack[0], 20000) != 'R')
        die("the A side did not come up");

    /* While capturing: only the partial file exists. */
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", root, cases[CASE_ALL].file);
    CHECK(lstat(path, &st) != 0, "%s exists before the capture completed", path);
    snprintf(path, sizeof(path), "%s/.%s.partial", root, cases[CASE_ALL].file);
    CHECK(lstat(path, &st) == 0 && (st.st_mode & 07777) == 0640, "%s missing or wrong mode", path);
    CHECK(sh->negatives_run, "negative starts did not run");

    wait_ok(spawn(sender_b_adapter, 0, 0), "B->A sender");
    send_cmd(a_cmd[1], 'S');
    if (wait_cmd(a_ack[0], 20000) != 'D')
        die("the A side did not send");
    usleep(300 * 1000); /* let the last packets reach the capture rings */
    send_cmd(a_cmd[1], 'Q');
    int a_ok = wait_ok(a, "A side");
    send_cmd(b_cmd[1], 'Q');
    wait_ok(b, "B side");

    /* Nothing ever reached the directory the symlink points to. */
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", outside);
    CHECK(system(cmd) == 0, "files appeared outside the capture root in %s", outside);
    if (a_ok)
        for (size_t i = 0; i < NCASES; i++)
            verify_case(i);

    /* The interface disappears under a running capture. */
    int g_ack[2];
    if (pipe(g_ack))
        die("pipe: %s", strerror(errno));
    pid_t g = spawn(gone_child, g_ack[1], -1);
    if (wait_cmd(g_ack[0], 10000) != 'R')
        die("the interface-gone capture did not start");
    CHECK(ip("-n %s link del %s", ns_a, if_a) == 0, "cannot delete %s", if_a);
    wait_ok(g, "interface-gone capture");
    snprintf(path, sizeof(path), "%s/gone.cap", root);
    CHECK(lstat(path, &st) != 0, "%s exists after a failed capture", path);
    snprintf(path, sizeof(path), "%s/.gone.cap.partial", root);
    CHECK(lstat(path, &st) != 0, "%s left after a failed capture", path);

    fprintf(stderr, "%s: %d failure(s) in %.0f ms\n", failures ? "FAILED" : "OK", failures,
            ms_since(&t0));
    return failures ? 1 : 0;
}
