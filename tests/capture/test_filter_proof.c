/*
 * The filter proof (issue 4): the real netwatchd and the real netwatch-agent capture known
 * traffic between two network namespaces, one capture per case of a table of filters that
 * covers every form of the grammar, and every capture is compared packet for packet with
 *   (1) the reference: the corpus as seen on the wire, kept where fp_ref.c's independent
 *       reading of the filter semantics says it matches;
 *   (2) tcpdump, capturing live beside the agent with the expression bpf_expr_build makes from
 *       the same filters and the same machine addresses (what the agent compiles);
 *   (3) tcpdump reading the wire capture with a hand-written equivalent expression (ranges as
 *       integer comparisons, CIDRs as "net", the machine's addresses spelled out).
 *
 *   test_filter_proof NETWATCHD NETWATCH_AGENT
 *
 * Hosts and traffic: fp_traffic.h. A (nwfpA<pid>, veth nwfA<pid>) is the capturing machine; the
 * test process itself moves into A before anything else starts, so netwatchd (127.0.0.1 of A),
 * the agent, tcpdump and the HTTP client all live there; the agent and tcpdump capture on the
 * veth only, so the agent's own channel on A's loopback is never in a capture. A child process
 * in B (nwfpB<pid>) holds B's receivers and sends B's half of the corpus.
 *
 * What counts: a packet is "ours" when it goes between an A and a B address and is a corpus
 * packet (marked UDP, TCP, or an echo with our id); the wire must hold exactly
 * FP_CORPUS_PACKETS of them. In every file, ours must equal the reference set exactly (as
 * multisets of keys: no packet missing, none extra). Any other packet (kernel noise such as an
 * MLD report) is allowed only where the reference says the filter matches it; a noise packet the
 * filter should have refused is a failure like any other.
 *
 * Needs root (network namespaces, capture): exits 77 (skipped) otherwise; as root every setup
 * failure, tcpdump included, is a failure. The namespaces are deleted on every exit path of the
 * test process (atexit, SIGINT/SIGTERM); netwatchd, the agent and tcpdump die with it
 * (PR_SET_PDEATHSIG).
 */
/* _GNU_SOURCE: setns(2); pcap.h needs the BSD types. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/capture.h"
#include "common/bpf_expr.h"
#include "tests/capture/fp_ref.h"
#include "tests/capture/fp_traffic.h"
#include "tests/integration/agent_proc.h"
#include "tests/integration/captures.h"
#include "tests/integration/harness.h"

#define SKIP_CODE 77
#define MAX_F     3
#define MAC_A     "02:88:00:00:00:0a"
#define MAC_B     "02:88:00:00:00:0b"
#define API       "2024-07-01"
#define VM        "vmA"

/*
 * The table. hand: the hand-written tcpdump equivalent, where @LS / @LD stand for "the packet's
 * source / destination is one of A's addresses" (expanded from fp_a_addrs). expect: how many
 * corpus packets the case keeps, counted by hand from fp_traffic.c (the reference must agree).
 */
struct fcase {
    const char *name;
    size_t nf;
    struct fp_filter f[MAX_F];
    const char *hand;
    int expect;
};

static const struct fcase cases[] = {
    {"no filters: everything", 0, {{0}}, "", FP_CORPUS_PACKETS},
    {"protocol TCP", 1, {{"TCP", 0, 0, 0, 0}}, "tcp", 40},
    {"protocol UDP", 1, {{"UDP", 0, 0, 0, 0}}, "udp", 64},
    {"protocol ICMP, both families", 1, {{"ICMP", 0, 0, 0, 0}}, "icmp or icmp6", 14},
    {"local port single, Any: not A's own traffic to that port",
     1,
     {{"Any", 0, 0, "5001", 0}},
     "(tcp or udp) and ((@LS and src port 5001) or (@LD and dst port 5001))",
     23},
    {"local port range, UDP, edges",
     1,
     {{"UDP", 0, 0, "5010-5020", 0}},
     "udp and ((@LS and src portrange 5010-5020) or (@LD and dst portrange 5010-5020))",
     13},
    {"local port list with a trailing ';', TCP",
     1,
     {{"TCP", 0, 0, "5001;5020;", 0}},
     "tcp and ((@LS and (src port 5001 or src port 5020)) or (@LD and (dst port 5001 or dst port "
     "5020)))",
     12},
    {"local port list mixing singles and a range",
     1,
     {{"UDP", 0, 0, "5001;5009-5010;5021", 0}},
     "udp and ((@LS and (src port 5001 or src portrange 5009-5010 or src port 5021)) or (@LD and "
     "(dst port 5001 or dst portrange 5009-5010 or dst port 5021)))",
     33},
    {"remote port range, edges",
     1,
     {{"Any", 0, 0, 0, "7010-7020"}},
     "(tcp or udp) and ((@LS and dst portrange 7010-7020) or (@LD and src portrange 7010-7020))",
     8},
    {"remote port single: A's own traffic to it, not to A's port",
     1,
     {{"Any", 0, 0, 0, "5001"}},
     "(@LS and dst port 5001) or (@LD and src port 5001)",
     7},
    {"local address single", 1, {{"Any", "10.88.0.12", 0, 0, 0}}, "ip host 10.88.0.12", 13},
    {"local address range, edges",
     1,
     {{"Any", "10.88.0.10-10.88.0.11", 0, 0, 0}},
     "ip and ((ip[12:4] >= 0x0a58000a and ip[12:4] <= 0x0a58000b) or (ip[16:4] >= 0x0a58000a and "
     "ip[16:4] <= 0x0a58000b))",
     49},
    {"local address list: a CIDR and a single",
     1,
     {{"Any", "10.88.0.8/31;10.88.0.12", 0, 0, 0}},
     "ip net 10.88.0.8/31 or ip host 10.88.0.12",
     35},
    {"remote IPv4 range, edges",
     1,
     {{"Any", 0, "10.88.0.33-10.88.0.46", 0, 0}},
     "(@LS and ip[16:4] >= 0x0a580021 and ip[16:4] <= 0x0a58002e) or (@LD and ip[12:4] >= "
     "0x0a580021 and ip[12:4] <= 0x0a58002e)",
     18},
    {"remote IPv4 CIDR, UDP, edges",
     1,
     {{"UDP", 0, "10.88.0.64/28", 0, 0}},
     "udp and ((@LS and ip dst net 10.88.0.64/28) or (@LD and ip src net 10.88.0.64/28))",
     4},
    {"remote list: single, range, CIDRs of both families, trailing ';'",
     1,
     {{"Any", 0, "10.88.0.20;10.88.0.33-10.88.0.46;10.88.0.64/28;fd88::1:0/112;", 0, 0}},
     "(@LS and (ip dst host 10.88.0.20 or (ip[16:4] >= 0x0a580021 and ip[16:4] <= 0x0a58002e) or "
     "ip dst net 10.88.0.64/28 or ip6 dst net fd88::1:0/112)) or (@LD and (ip src host 10.88.0.20 "
     "or (ip[12:4] >= 0x0a580021 and ip[12:4] <= 0x0a58002e) or ip src net 10.88.0.64/28 or ip6 "
     "src net fd88::1:0/112))",
     79},
    {"remote IPv6 single",
     1,
     {{"Any", 0, "fd88::20", 0, 0}},
     "(@LS and ip6 dst host fd88::20) or (@LD and ip6 src host fd88::20)",
     13},
    {"remote IPv6 range, UDP, edges",
     1,
     {{"UDP", 0, "fd88::33-fd88::46", 0, 0}},
     "udp and ((@LS and ip6[24:4] = 0xfd880000 and ip6[28:4] = 0 and ip6[32:4] = 0 and ip6[36:4] "
     ">= 0x33 and ip6[36:4] <= 0x46) or (@LD and ip6[8:4] = 0xfd880000 and ip6[12:4] = 0 and "
     "ip6[16:4] = 0 and ip6[20:4] >= 0x33 and ip6[20:4] <= 0x46))",
     2},
    {"remote IPv6 CIDR, edges",
     1,
     {{"Any", 0, "fd88::1:0/112", 0, 0}},
     "(@LS and ip6 dst net fd88::1:0/112) or (@LD and ip6 src net fd88::1:0/112)",
     9},
    {"local IPv6 single, UDP", 1, {{"UDP", "fd88::b", 0, 0, 0}}, "udp and ip6 host fd88::b", 6},
    {"ICMP to a v4 and a v6 remote",
     1,
     {{"ICMP", 0, "10.88.0.46;fd88::20", 0, 0}},
     "(icmp or icmp6) and ((@LS and (ip dst host 10.88.0.46 or ip6 dst host fd88::20)) or (@LD "
     "and (ip src host 10.88.0.46 or ip6 src host fd88::20)))",
     4},
    {"ICMP with a port matches nothing", 1, {{"ICMP", 0, 0, "5001", 0}}, "len = 0", 0},
    {"three filters OR-ed",
     3,
     {{"TCP", 0, 0, "5010", 0}, {"UDP", 0, "10.88.0.64/28", 0, 0}, {"ICMP", "fd88::a", 0, 0, 0}},
     "(tcp and ((@LS and src port 5010) or (@LD and dst port 5010))) or (udp and ((@LS and ip dst "
     "net 10.88.0.64/28) or (@LD and ip src net 10.88.0.64/28))) or ((icmp or icmp6) and ip6 host "
     "fd88::a)",
     14},
    {"every field set and AND-ed, both directions",
     1,
     {{"UDP", "10.88.0.10-10.88.0.11", "10.88.0.20;10.88.0.33", "5001;5010-5020", "7000-7010"}},
     "udp and ((ip[12:4] >= 0x0a58000a and ip[12:4] <= 0x0a58000b and (ip dst host 10.88.0.20 or "
     "ip dst host 10.88.0.33) and (udp[0:2] = 5001 or (udp[0:2] >= 5010 and udp[0:2] <= 5020)) "
     "and udp[2:2] >= 7000 and udp[2:2] <= 7010) or (ip[16:4] >= 0x0a58000a and ip[16:4] <= "
     "0x0a58000b and (ip src host 10.88.0.20 or ip src host 10.88.0.33) and (udp[2:2] = 5001 or "
     "(udp[2:2] >= 5010 and udp[2:2] <= 5020)) and udp[0:2] >= 7000 and udp[0:2] <= 7010))",
     8},
    {"TCP, local address and remote port: A's own connection",
     1,
     {{"TCP", "10.88.0.10", 0, 0, "5001"}},
     "tcp and ((ip src host 10.88.0.10 and dst port 5001) or (ip dst host 10.88.0.10 and src port "
     "5001))",
     4},
    {"local ranges of both families, lower-case protocol, blanks around items",
     1,
     {{"any", " 10.88.0.11-10.88.0.12 ; fd88::a-fd88::b ", 0, 0, 0}},
     "ip host 10.88.0.11 or ip host 10.88.0.12 or ip6 host fd88::a or ip6 host fd88::b",
     64},
    {"a filter nothing can match (v6 local, v4 remote) OR-ed with a remote port",
     2,
     {{"Any", "fd88::a", "10.88.0.20", 0, 0}, {"UDP", 0, 0, 0, "7001"}},
     "udp and ((@LS and dst port 7001) or (@LD and src port 7001))",
     2},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* ---- state shared with the exit paths ---- */

static struct nw_server srv;
static pid_t owner;
static const char *tcpdump_cmd;
static char ip_cmd[64]; /* "" until found */
static char ns_a[32], ns_b[32], if_a[16], if_b[16];
static char out_dir[NW_PATH_MAX + 32];

/* tcpdump processes: the wire (index NCASES) and one per case */
static pid_t dumps[NCASES + 1];

static void cleanup(void)
{
    if (getpid() != owner)
        return;
    for (size_t i = 0; i <= NCASES; i++)
        if (dumps[i] > 0) {
            kill(dumps[i], SIGKILL);
            waitpid(dumps[i], NULL, 0);
            dumps[i] = 0;
        }
    if (ip_cmd[0] && ns_a[0]) {
        char netns[] = "netns", del[] = "del";
        char *a[] = {ip_cmd, netns, del, ns_a, NULL};
        char *b[] = {ip_cmd, netns, del, ns_b, NULL};
        nw_run(a, "/dev/null", NULL, 0);
        nw_run(b, "/dev/null", NULL, 0);
        ns_a[0] = '\0';
    }
    nw_server_cleanup(&srv);
}

static void on_signal(int sig)
{
    cleanup();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("FATAL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (srv.pid > 0)
        nw_agent_dump_logs(&srv, 4000);
    exit(1); /* atexit: cleanup() */
}

static const char *find_prog(const char *const *where)
{
    for (size_t i = 0; where[i]; i++)
        if (access(where[i], X_OK) == 0)
            return where[i];
    return NULL;
}

/* ---- namespaces ---- */

/* Runs "ip <args>" split on spaces; dies when it fails. */
static void ip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ip(const char *fmt, ...)
{
    char line[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    char *argv[24];
    int n = 0;
    argv[n++] = ip_cmd;
    for (char *save = NULL, *t = strtok_r(line, " ", &save); t && n < 23;
         t = strtok_r(NULL, " ", &save))
        argv[n++] = t;
    argv[n] = NULL;
    if (nw_run(argv, NULL, NULL, 0) != 0)
        die("ip command failed (see above)");
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

/* Addresses of one side on its veth, and permanent neighbour entries for the other side's (no
 * ARP, no neighbour discovery in the captures). */
static void side_addrs(const char *ns, const char *ifname, const char *const *mine,
                       const char *const *theirs, const char *their_mac)
{
    for (size_t i = 0; mine[i]; i++)
        ip("-n %s addr add %s/%s dev %s%s", ns, mine[i], strchr(mine[i], ':') ? "64" : "24", ifname,
           strchr(mine[i], ':') ? " nodad" : "");
    for (size_t i = 0; theirs[i]; i++)
        ip("-n %s neigh replace %s lladdr %s dev %s nud permanent", ns, theirs[i], their_mac,
           ifname);
}

static void setup_namespaces(void)
{
    int pid = (int)getpid();
    snprintf(ns_a, sizeof(ns_a), "nwfpA%d", pid);
    snprintf(ns_b, sizeof(ns_b), "nwfpB%d", pid);
    snprintf(if_a, sizeof(if_a), "nwfA%d", pid);
    snprintf(if_b, sizeof(if_b), "nwfB%d", pid);
    ip("netns add %s", ns_a);
    ip("netns add %s", ns_b);
    ip("link add %s netns %s address %s type veth peer name %s netns %s address %s", if_a, ns_a,
       MAC_A, if_b, ns_b, MAC_B);
    /* No link-local addresses: no DAD, fewer MLD reports. */
    ip("-n %s link set %s addrgenmode none", ns_a, if_a);
    ip("-n %s link set %s addrgenmode none", ns_b, if_b);
    ip("-n %s link set lo up", ns_a);
    ip("-n %s link set lo up", ns_b);
    side_addrs(ns_a, if_a, fp_a_addrs, fp_b_addrs, MAC_B);
    side_addrs(ns_b, if_b, fp_b_addrs, fp_a_addrs, MAC_A);
    ip("-n %s link set %s up", ns_a, if_a);
    ip("-n %s link set %s up", ns_b, if_b);
}

/* ---- the B side ---- */

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

/* Receivers, then on 'S' B's half of the corpus ('D' when sent, 'F' when it failed), then 'Q'. */
static void b_side(int cmd_fd, int ack_fd)
{
    enter_ns(ns_b);
    int fds[32];
    if (fp_receivers(0, fds, 32) < 0)
        _exit(3);
    send_cmd(ack_fd, 'R');
    if (wait_cmd(cmd_fd, 60000) != 'S')
        _exit(4);
    send_cmd(ack_fd, fp_send(0) == 0 ? 'D' : 'F');
    wait_cmd(cmd_fd, 60000);
    _exit(0);
}

/* ---- tcpdump ---- */

/* Starts tcpdump in A: live on the veth into file (iface != NULL), or reading rfile; expr NULL
 * or "" for none. Its stderr goes to log. */
static pid_t tcpdump_start(const char *iface, const char *rfile, const char *file, const char *expr,
                           const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd >= 0) {
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
    }
    /* -Z root: Debian's tcpdump would otherwise drop to user tcpdump before writing the file.
     * --immediate-mode: every packet is handed over at once, none wait in a buffer at SIGINT.
     * -s 512: the ring's slots are sized by the snap length; with the default 256 KiB a 2 MiB
     * ring holds 8 packets, and a burst overruns it while 30 processes share two CPUs. Our
     * packets are shorter than 512 bytes. */
    const char *argv[20];
    int n = 0;
    argv[n++] = tcpdump_cmd;
    argv[n++] = "-n";
    argv[n++] = "-Z";
    argv[n++] = "root";
    if (iface) {
        argv[n++] = "-i";
        argv[n++] = iface;
        argv[n++] = "-U";
        argv[n++] = "--immediate-mode";
        argv[n++] = "-B";
        argv[n++] = "2048";
        argv[n++] = "-s";
        argv[n++] = "512";
    } else {
        argv[n++] = "-r";
        argv[n++] = rfile;
    }
    argv[n++] = "-w";
    argv[n++] = file;
    if (expr && *expr)
        argv[n++] = expr;
    argv[n] = NULL;
    execv(tcpdump_cmd, (char *const *)(uintptr_t)argv);
    _exit(127);
}

static int wait_exit0(pid_t pid)
{
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* tcpdump's own count of packets the kernel dropped for it (its last words at SIGINT), or -1
 * when the log does not say. */
static long tcpdump_drops(const char *log)
{
    char *text = nw_read_file(log, NULL);
    const char *line = text ? strstr(text, " packets dropped by kernel") : NULL;
    long n = -1;
    if (line) {
        while (line > text && line[-1] >= '0' && line[-1] <= '9')
            line--;
        n = strtol(line, NULL, 10);
    }
    free(text);
    return n;
}

/* Replaces @LS / @LD in hand with "(ip src host a or ... or ip6 src host b)" (dst for @LD). */
static void expand_hand(const char *hand, char *out, size_t outsz)
{
    char ls[600] = "(", ld[600] = "(";
    for (size_t i = 0; fp_a_addrs[i]; i++) {
        const char *fam = strchr(fp_a_addrs[i], ':') ? "ip6" : "ip";
        const char *sep = i ? " or " : "";
        size_t a = strlen(ls), b = strlen(ld);
        snprintf(ls + a, sizeof(ls) - a, "%s%s src host %s", sep, fam, fp_a_addrs[i]);
        snprintf(ld + b, sizeof(ld) - b, "%s%s dst host %s", sep, fam, fp_a_addrs[i]);
    }
    strcat(ls, ")");
    strcat(ld, ")");
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = hand; *p && n + 1 < outsz;) {
        const char *with = strncmp(p, "@LS", 3) == 0 ? ls : strncmp(p, "@LD", 3) == 0 ? ld : NULL;
        if (with) {
            n += (size_t)snprintf(out + n, outsz - n, "%s", with);
            p += 3;
        } else {
            out[n++] = *p++;
            out[n] = '\0';
        }
    }
    if (n + 1 >= outsz)
        die("a hand-written expression is longer than %zu bytes", outsz);
}

/* ---- the captures, through the API ---- */

static char nw[NW_WATCHER_MAX];

static json_t *filter_json(const struct fp_filter *f)
{
    json_t *o = json_object();
    const char *const keys[] = {"protocol", "localIPAddress", "remoteIPAddress", "localPort",
                                "remotePort"};
    const char *const vals[] = {f->proto, f->lip, f->rip, f->lport, f->rport};
    for (size_t i = 0; i < 5; i++)
        if (vals[i])
            json_object_set_new(o, keys[i], json_string(vals[i]));
    return o;
}

/* PUTs capture fpNN for case i; its operation URL into aao. 0 when it answered 201. */
static int capture_put(size_t i, char *aao, size_t aaosz)
{
    char target[NW_WATCHER_MAX + 100], vm[300], file[64];
    snprintf(vm, sizeof(vm),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/"
             "%s",
             srv.sub, VM);
    snprintf(file, sizeof(file), "/var/captures/fp%02zu.cap", i);
    json_t *filters = json_array();
    for (size_t k = 0; k < cases[i].nf; k++)
        json_array_append_new(filters, filter_json(&cases[i].f[k]));
    /* 512 bytes per packet: more than any corpus packet. With whole packets (the default) the
     * agent's 4 MiB ring holds ~64 packets on an interface with offloads (libpcap sizes each slot
     * for 64 KiB), and on a loaded machine a burst can overrun it before the capture thread runs:
     * drops that say nothing about filters. */
    json_t *body = json_pack("{s:{s:s, s:i, s:{s:s}, s:o}}", "properties", "target", vm,
                             "bytesToCapturePerPacket", 512, "storageLocation", "filePath", file,
                             "filters", filters);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text)
        die("cannot build the body of capture %zu", i);
    snprintf(target, sizeof(target), "%s/packetCaptures/fp%02zu?api-version=" API, nw, i);
    struct nw_response r;
    int ok = nw_server_request(&srv, "PUT", target, text, NULL, &r) == 0 && r.status == 201 &&
             nw_response_header(&r, "Azure-AsyncOperation");
    NW_CHECK(ok, "[%s] PUT: %ld %.300s", cases[i].name, r.status, r.body ? r.body : "");
    if (ok)
        snprintf(aao, aaosz, "%s", nw_response_header(&r, "Azure-AsyncOperation"));
    nw_response_free(&r);
    free(text);
    return ok ? 0 : -1;
}

/* The expression the agent compiles for case i, made here the same way (agent/spec.c): the
 * grammar of common/netfilter.c, the machine's addresses of capture_local_addrs() in A. */
static char *expected_expr(size_t i, const struct nf_ip_set *local)
{
    struct bpf_filter_spec fs[MAX_F];
    struct cp_error e;
    char *expr = NULL;
    for (size_t k = 0; k < cases[i].nf; k++) {
        const struct fp_filter *f = &cases[i].f[k];
        if (bpf_filter_spec_parse(f->proto, f->lip, f->rip, f->lport, f->rport, k, &fs[k], &e) !=
            CP_OK)
            die("[%s] the grammar refused filter %zu: %s", cases[i].name, k, e.message);
    }
    if (bpf_expr_build(fs, cases[i].nf, local, &expr, &e) != CP_OK)
        die("[%s] bpf_expr_build: %s", cases[i].name, e.message);
    return expr;
}

/* ---- reading the files back ---- */

struct pset {
    char (*keys)[FP_KEY_MAX]; /* our packets, sorted */
    size_t n;
    int noise;     /* other packets */
    int bad_noise; /* other packets the filter should not have let through */
    int readable;
};

static int cmp_key(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int is_ours(const struct fp_pkt *p)
{
    if (!p->ip)
        return 0;
    int pair = (fp_bin_is_a(p->ip, p->src) && fp_bin_is_b(p->ip, p->dst)) ||
               (fp_bin_is_b(p->ip, p->src) && fp_bin_is_a(p->ip, p->dst));
    int echo =
        p->icmp_type >= 0 && p->icmp_id >= FP_ICMP_ID_BASE && p->icmp_id < FP_ICMP_ID_BASE + 256 &&
        (p->icmp_type == 0 || p->icmp_type == 8 || p->icmp_type == 128 || p->icmp_type == 129);
    return pair && ((p->proto == 17 && p->marker[0]) || p->proto == 6 || echo);
}

/*
 * Reads a pcap file into s: its corpus packets as keys, the others counted as noise. With a
 * case c: from the wire (wire set), only the corpus packets c's filters keep (the reference set);
 * from a capture, all of them, and the noise packets c's filters refuse counted again as bad.
 */
static void read_set(const char *path, const struct fcase *c, int wire, struct pset *s)
{
    memset(s, 0, sizeof(*s));
    char err[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline(path, err);
    if (!pc) {
        fprintf(stderr, "%s: %s\n", path, err);
        return;
    }
    if (pcap_datalink(pc) != DLT_EN10MB) {
        fprintf(stderr, "%s: link type %d, want Ethernet\n", path, pcap_datalink(pc));
        pcap_close(pc);
        return;
    }
    size_t cap = 0;
    struct pcap_pkthdr *h;
    const u_char *d;
    int rc;
    while ((rc = pcap_next_ex(pc, &h, &d)) == 1) {
        struct fp_pkt p;
        fp_decode(d, h->caplen, &p);
        int m = c ? fp_ref_match(c->f, c->nf, fp_local_field, &p) : 1;
        if (m < 0)
            die("[%s] the reference cannot read the filters", c->name);
        if (!is_ours(&p)) {
            s->noise++;
            if (!m && !wire) {
                char key[FP_KEY_MAX];
                fp_key(&p, key, sizeof(key));
                if (s->bad_noise++ < 3)
                    fprintf(stderr, "  %s: %s passed a filter that refuses it\n", path, key);
            }
            continue;
        }
        if (wire && !m)
            continue;
        if (s->n == cap) {
            cap = cap ? 2 * cap : 256;
            s->keys = realloc(s->keys, cap * sizeof(*s->keys));
            if (!s->keys)
                die("out of memory");
        }
        fp_key(&p, s->keys[s->n++], FP_KEY_MAX);
    }
    pcap_close(pc);
    s->readable = rc == PCAP_ERROR_BREAK;
    if (s->n)
        qsort(s->keys, s->n, sizeof(*s->keys), cmp_key);
}

/* Both sorted: prints what one has and the other lacks (a few of each). 1 when equal. */
static int same_set(const char *what, const struct pset *want, const struct pset *got)
{
    size_t i = 0, j = 0;
    int missing = 0, extra = 0;
    while (i < want->n || j < got->n) {
        int c = i == want->n ? 1 : j == got->n ? -1 : strcmp(want->keys[i], got->keys[j]);
        if (c == 0) {
            i++;
            j++;
        } else if (c < 0) {
            if (missing++ < 4)
                fprintf(stderr, "  %s: missing %s\n", what, want->keys[i]);
            i++;
        } else {
            if (extra++ < 4)
                fprintf(stderr, "  %s: extra   %s\n", what, got->keys[j]);
            j++;
        }
    }
    return NW_CHECK(missing == 0 && extra == 0, "%s: %d of the expected packets missing, %d extra",
                    what, missing, extra);
}

static void verify_case(size_t i, const char *expr)
{
    const struct fcase *c = &cases[i];
    char path[NW_PATH_MAX + 64], what[600];
    struct pset want = {0}, agent, live, hand;

    /* The reference set: the wire's corpus packets that the filters keep. */
    snprintf(path, sizeof(path), "%s/wire.pcap", out_dir);
    read_set(path, c, 1, &want);
    snprintf(path, sizeof(path), "%s/captures/fp%02zu.cap", srv.dir, i);
    read_set(path, c, 0, &agent);
    snprintf(path, sizeof(path), "%s/live%02zu.pcap", out_dir, i);
    read_set(path, c, 0, &live);
    snprintf(path, sizeof(path), "%s/hand%02zu.pcap", out_dir, i);
    read_set(path, c, 0, &hand);

    fprintf(stderr, "case %02zu %-70s ref=%-3zu agent=%-3zu+%d live=%-3zu+%d hand=%-3zu+%d\n", i,
            c->name, want.n, agent.n, agent.noise, live.n, live.noise, hand.n, hand.noise);
    NW_CHECK(want.n == (size_t)c->expect,
             "[%s] the reference keeps %zu corpus packets, the table "
             "says %d",
             c->name, want.n, c->expect);
    NW_CHECK(agent.readable && live.readable && hand.readable,
             "[%s] a file is unreadable (agent %d, tcpdump live %d, hand %d)", c->name,
             agent.readable, live.readable, hand.readable);
    snprintf(what, sizeof(what), "[%s] agent vs reference (expr: %.300s)", c->name, expr);
    same_set(what, &want, &agent);
    snprintf(what, sizeof(what), "[%s] tcpdump live vs reference", c->name);
    same_set(what, &want, &live);
    snprintf(what, sizeof(what), "[%s] tcpdump hand-written vs reference", c->name);
    same_set(what, &want, &hand);
    NW_CHECK(agent.bad_noise == 0 && live.bad_noise == 0 && hand.bad_noise == 0,
             "[%s] packets outside the filter: agent %d, tcpdump live %d, hand %d", c->name,
             agent.bad_noise, live.bad_noise, hand.bad_noise);
    free(want.keys);
    free(agent.keys);
    free(live.keys);
    free(hand.keys);
}

/* ---- main ---- */

static int wait_listening(const char *log, long timeout_ms)
{
    return nw_file_wait_lines(log, "listening on", 1, timeout_ms);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s NETWATCHD NETWATCH_AGENT\n", argv[0]);
        return 2;
    }
    if (geteuid() != 0) {
        fprintf(stderr, "SKIP: needs root for network namespaces\n");
        return SKIP_CODE;
    }
    long long t0 = nw_now_ms();
    setvbuf(stderr, NULL, _IOLBF, 0);
    owner = getpid();
    static const char *const ips[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip", NULL};
    static const char *const tds[] = {"/usr/bin/tcpdump", "/usr/sbin/tcpdump", "/sbin/tcpdump",
                                      NULL};
    const char *ipp = find_prog(ips);
    tcpdump_cmd = find_prog(tds);
    if (!ipp || !tcpdump_cmd)
        die("needs ip(8) and tcpdump(8) (scripts/install-deps.sh installs both)");
    snprintf(ip_cmd, sizeof(ip_cmd), "%s", ipp);
    atexit(cleanup);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);

    setup_namespaces();
    /* From here on this process, and all it starts, lives in A. */
    enter_ns(ns_a);

    int b_cmd[2], b_ack[2];
    if (pipe(b_cmd) || pipe(b_ack))
        die("pipe: %s", strerror(errno));
    pid_t b = fork();
    if (b < 0)
        die("fork: %s", strerror(errno));
    if (b == 0)
        b_side(b_cmd[0], b_ack[1]);
    int a_fds[32];
    if (fp_receivers(1, a_fds, 32) < 0)
        die("A's receivers");
    if (wait_cmd(b_ack[0], 10000) != 'R')
        die("the B side did not come up");

    nw_harness_init();
    if (nw_server_init(&srv, argv[1]) != 0 || nw_server_start(&srv) != 0)
        die("netwatchd did not start");
    snprintf(out_dir, sizeof(out_dir), "%s/tcpdump", srv.dir);
    if (mkdir(out_dir, 0700) != 0)
        die("mkdir %s: %s", out_dir, strerror(errno));
    char agent_id[NW_GUID_LEN + 1];
    if (nw_agent_add(&srv, VM, agent_id, sizeof(agent_id)) != 0)
        die("agent add");
    const char *const extra[] = {"--interfaces", if_a, "--progress-interval", "0", NULL};
    pid_t agent = nw_agent_start_argv(&srv, argv[2], VM, extra);
    if (agent < 0 || !nw_agent_wait_connected(&srv, agent_id, 1, 10000))
        die("the agent did not connect");
    if (nw_watcher_put(&srv, nw) != 0)
        die("watcher PUT");

    /* The expressions, with A's addresses as the agent sees them. */
    struct nf_ip_set *local = calloc(1, sizeof(*local));
    struct cp_error e;
    if (!local || capture_local_addrs(local, &e) != CP_OK)
        die("capture_local_addrs: %s", local ? e.message : "out of memory");
    char *exprs[NCASES];
    for (size_t i = 0; i < NCASES; i++)
        exprs[i] = expected_expr(i, local);
    free(local);

    /* tcpdump: the whole wire, and every case's expression, live. */
    char file[NW_PATH_MAX + 64], log[NW_PATH_MAX + 64];
    snprintf(file, sizeof(file), "%s/wire.pcap", out_dir);
    snprintf(log, sizeof(log), "%s/wire.log", out_dir);
    dumps[NCASES] = tcpdump_start(if_a, NULL, file, NULL, log);
    for (size_t i = 0; i < NCASES; i++) {
        snprintf(file, sizeof(file), "%s/live%02zu.pcap", out_dir, i);
        snprintf(log, sizeof(log), "%s/live%02zu.log", out_dir, i);
        dumps[i] = tcpdump_start(if_a, NULL, file, exprs[i], log);
    }
    /* The agent's captures, all at once. */
    char aao[NCASES][600];
    int created[NCASES] = {0};
    for (size_t i = 0; i < NCASES; i++)
        created[i] = capture_put(i, aao[i], sizeof(aao[i])) == 0;
    for (size_t i = 0; i < NCASES; i++)
        if (created[i])
            created[i] = nw_operation_ends(&srv, aao[i], 15, "Succeeded", NULL, NULL);
    for (size_t i = 0; i <= NCASES; i++) {
        if (i == NCASES)
            snprintf(log, sizeof(log), "%s/wire.log", out_dir);
        else
            snprintf(log, sizeof(log), "%s/live%02zu.log", out_dir, i);
        if (!wait_listening(log, 10000)) {
            char *text = nw_read_file(log, NULL);
            die("tcpdump (%s) did not start: %s", log, text ? text : "");
        }
    }
    long long t_ready = nw_now_ms();

    /* The corpus: B's half, then A's. */
    send_cmd(b_cmd[1], 'S');
    char bs = wait_cmd(b_ack[0], 20000);
    NW_CHECK(bs == 'D', "the B side could not send its traffic (%c)", bs ? bs : '-');
    NW_CHECK(fp_send(1) == 0, "A could not send its traffic");
    /* Let the last packets through the capture rings before anyone stops. */
    nw_sleep_ms(500);
    long long t_sent = nw_now_ms();

    char loc[NCASES][600];
    for (size_t i = 0; i < NCASES; i++) {
        char name[16];
        snprintf(name, sizeof(name), "fp%02zu", i);
        created[i] =
            created[i] && nw_capture_stop(&srv, nw, name, loc[i], sizeof(loc[i]), NULL, 0) == 0;
    }
    for (size_t i = 0; i < NCASES; i++)
        if (created[i])
            created[i] = nw_stop_done(&srv, loc[i], 15);
    for (size_t i = 0; i <= NCASES; i++) {
        kill(dumps[i], SIGINT);
        NW_CHECK(wait_exit0(dumps[i]), "tcpdump %zu did not end cleanly", i);
        dumps[i] = 0;
        if (i == NCASES)
            snprintf(log, sizeof(log), "%s/wire.log", out_dir);
        else
            snprintf(log, sizeof(log), "%s/live%02zu.log", out_dir, i);
        long drops = tcpdump_drops(log);
        NW_CHECK(drops == 0, "%s: tcpdump says the kernel dropped %ld packets", log, drops);
    }
    send_cmd(b_cmd[1], 'Q');
    NW_CHECK(wait_exit0(b), "the B side failed");
    NW_CHECK(nw_agent_stop(agent) == 0, "the agent did not exit 0 within 5 s of SIGTERM");

    /* The hand-written expressions, over the wire capture. */
    char wire_path[NW_PATH_MAX + 64];
    snprintf(wire_path, sizeof(wire_path), "%s/wire.pcap", out_dir);
    for (size_t i = 0; i < NCASES; i++) {
        char hand[8192];
        expand_hand(cases[i].hand, hand, sizeof(hand));
        snprintf(file, sizeof(file), "%s/hand%02zu.pcap", out_dir, i);
        snprintf(log, sizeof(log), "%s/hand%02zu.log", out_dir, i);
        if (!NW_CHECK(wait_exit0(tcpdump_start(NULL, wire_path, file, hand, log)),
                      "[%s] tcpdump refused the hand-written expression (%s)", cases[i].name, log))
            fprintf(stderr, "  %s\n", hand);
    }

    /* The wire holds the whole corpus, once. */
    struct pset wire;
    read_set(wire_path, NULL, 0, &wire);
    NW_CHECK(wire.readable && wire.n == FP_CORPUS_PACKETS,
             "the wire holds %zu corpus packets, want %d (noise %d)", wire.n, FP_CORPUS_PACKETS,
             wire.noise);
    for (size_t i = 0; i < NCASES; i++) {
        if (NW_CHECK(created[i], "[%s] the capture did not run to its stop", cases[i].name))
            verify_case(i, exprs[i]);
        free(exprs[i]);
    }
    free(wire.keys);
    fprintf(stderr,
            "filter proof: %zu cases, %zu corpus packets, %d noise packets on the wire; setup %lld "
            "ms, traffic %lld ms, total %lld ms\n",
            NCASES, wire.n, wire.noise, t_ready - t0, t_sent - t_ready, nw_now_ms() - t0);
    int rc = nw_agent_test_end(&srv, "capture.filter_proof");
    return rc;
}
