/*
 * agent_restart.c - the real netwatch-agent keeps its sessions across its own crash, and its
 * completions across a crash while netwatchd is away (docs/agent.md, "Restart"):
 *
 *   (a) a capture runs on the loopback interface; the agent is SIGKILLed mid-capture and started
 *       again: the capture goes on in a new file of the same session, a manual stop through the
 *       API ends it Stopped/Manual, and the session's files hold the packets sent before the
 *       crash (the torn file salvaged) and after it;
 *   (b) a capture with a 3 s time limit; netwatchd is SIGKILLed, the time limit passes (the agent
 *       ends the capture with nobody to tell), the agent is SIGKILLed and started again, then
 *       netwatchd comes back on the same port: the completion is applied, Stopped/TimeExceeded,
 *       with the packets in the file.
 * The agent runs with --progress-interval 1, so progress reports flow throughout (whatever the
 * server answers to them, the agent must stay connected and go on).
 *
 *   it_agent_restart NETWATCHD NETWATCH_AGENT
 */
#include "tests/integration/agent_proc.h"
#include "tests/integration/captures.h"
#include "tests/integration/harness.h"
#include "tests/integration/pcap_count.h"
#include "tests/integration/traffic.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAIT_MS 15000

static struct nw_server srv;
static const char *agent_bin;
static char nw[NW_WATCHER_MAX];

/* vm1 on the loopback interface, with a progress report every second. */
static pid_t start_agent(void)
{
    static const char *const extra[] = {"--interfaces", "lo", "--progress-interval", "1", NULL};
    return nw_agent_start_argv(&srv, agent_bin, "vm1", extra);
}

static void stop_agent(pid_t pid)
{
    NW_CHECK(nw_agent_stop(pid) == 0, "agent did not exit 0 within 5 s of SIGTERM");
}

/* Lines of vm1's agent log holding needle. */
static int agent_log_count(const char *needle)
{
    return nw_agent_log_count(&srv, "vm1", needle);
}

/* Waits until vm1's agent log holds needle on at least n lines. */
static int wait_agent_log(const char *needle, int n)
{
    return nw_agent_wait_log(&srv, "vm1", needle, n, WAIT_MS);
}

/* PUTs capture `name` on vm1 (UDP to port, the given time limit) and waits for Succeeded. */
static int create_capture(const char *name, int port, int time_limit)
{
    char extra[48];
    snprintf(extra, sizeof(extra), "\"timeLimitInSeconds\":%d,", time_limit);
    struct nw_created c;
    return nw_capture_put(&srv, nw, name, "vm1", port, extra, &c) == 0 &&
                   nw_operation_ends(&srv, c.aao, 15, "Succeeded", NULL, NULL)
               ? 0
               : -1;
}

/* Starts the agent and has it capture `name` (create_capture); the agent's pid, or -1 (the
 * agent stopped again) when the capture was not created. */
static pid_t start_capturing(const char *name, int port, int time_limit)
{
    pid_t agent = start_agent();
    if (create_capture(name, port, time_limit) == 0)
        return agent;
    stop_agent(agent);
    return -1;
}

/* queryStatus of capture name: packetCaptureStatus and stopReason into st/why ("" if none). */
static int query(const char *name, char *st, char *why, size_t sz)
{
    return nw_capture_query(&srv, nw, name, st, why, NULL, sz) == 200 ? 0 : -1;
}

/* Waits (up to ms) until capture name is no longer Running; its status and reason. */
static void wait_ended(const char *name, int ms, char *st, char *why, size_t sz)
{
    long long end = nw_now_ms() + ms;
    while (nw_now_ms() < end) {
        if (query(name, st, why, sz) == 0 && st[0] && strcmp(st, "Running") != 0 &&
            strcmp(st, "Unknown") != 0)
            return;
        nw_sleep_ms(200);
    }
}

/* Packets of captures/<file> carrying tag; -1 when libpcap cannot read the whole file. */
static int count_marked(const char *file, const char *tag)
{
    char path[NW_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/captures/%s", srv.dir, file);
    return nw_pcap_count(path, tag);
}

/* (a) SIGKILL mid-capture, restart, manual stop: packets from both lives. */
static void killed_mid_capture(void)
{
    int port = 21000 + (int)(getpid() % 20000);
    pid_t agent = start_capturing("ra", port, 0);
    if (agent < 0)
        return;
    nw_send_udp(port, "before-crash", 5);
    /* Written (flushed to the kernel) once the capture thread has seen them; a progress report
     * counting them says so. */
    nw_sleep_ms(1500);
    nw_agent_kill(agent);
    char partial[NW_PATH_MAX + 64];
    snprintf(partial, sizeof(partial), "%s/captures/.ra.cap.partial", srv.dir);
    struct stat sb;
    NW_CHECK(stat(partial, &sb) == 0 && sb.st_size > 24,
             "the SIGKILLed agent left no partial file with packets");

    agent = start_agent();
    NW_CHECK(wait_agent_log("event=capture_resumed", 1), "the session was not resumed");
    NW_CHECK(wait_agent_log("event=channel_welcome", 2), "the restarted agent never connected");
    char st[32], why[32];
    NW_CHECK(query("ra", st, why, sizeof(st)) == 0 && strcmp(st, "Running") == 0,
             "after the restart: %s, want Running", st);
    nw_send_udp(port, "after-crash", 4);
    nw_sleep_ms(1500);

    char loc[700];
    nw_capture_stop(&srv, nw, "ra", loc, sizeof(loc), NULL, 0);
    wait_ended("ra", WAIT_MS, st, why, sizeof(st));
    NW_CHECK(strcmp(st, "Stopped") == 0 && strcmp(why, "Manual") == 0,
             "capture ra ended %s/%s, want Stopped/Manual", st, why);
    /* The salvaged first file holds what came before the crash, the resumed one the rest. */
    NW_CHECK(stat(partial, &sb) != 0, "the partial file is still there");
    int before = count_marked("ra.cap", "before-crash");
    int after = count_marked("ra.1.cap", "after-crash");
    NW_CHECK(before == 5, "ra.cap holds %d of the 5 packets sent before the crash", before);
    NW_CHECK(after == 4, "ra.1.cap holds %d of the 4 packets sent after the restart", after);
    NW_CHECK(count_marked("ra.1.cap", "before-crash") == 0, "a packet was written twice");
    NW_CHECK(agent_log_count("reason=\"server silent\"") == 0 && agent_log_count("code=1003") == 0,
             "the agent's channel broke while it sent progress");
    stop_agent(agent);
}

/* (b) The capture ends while netwatchd is down; the agent is SIGKILLed and restarted before
 * netwatchd returns: the completion still lands. */
static void completed_while_server_down(void)
{
    int port = 22000 + (int)(getpid() % 20000);
    pid_t agent = start_capturing("rb", port, 3);
    if (agent < 0)
        return;
    nw_send_udp(port, "while-running", 3);
    nw_sleep_ms(300);
    int ended_before = agent_log_count("event=capture_completed");
    int old_port = srv.port;
    NW_CHECK(nw_server_kill(&srv) == 0, "SIGKILL of netwatchd failed");
    /* The time limit passes with nobody to tell. */
    NW_CHECK(wait_agent_log("event=capture_completed", ended_before + 1),
             "the agent did not end the capture while netwatchd was down");
    nw_agent_kill(agent);
    agent = start_agent();
    NW_CHECK(wait_agent_log("event=agent_restored", 2), "the agent did not start again");
    nw_sleep_ms(500);
    if (!NW_CHECK(nw_server_start_on(&srv, old_port, NULL) == 0, "netwatchd did not start again")) {
        stop_agent(agent);
        return;
    }
    char st[32], why[32];
    wait_ended("rb", 20000, st, why, sizeof(st));
    NW_CHECK(strcmp(st, "Stopped") == 0 && strcmp(why, "TimeExceeded") == 0,
             "capture rb ended %s/%s, want Stopped/TimeExceeded", st, why);
    int got = count_marked("rb.cap", "while-running");
    NW_CHECK(got == 3, "rb.cap holds %d of the 3 packets", got);
    /* Answered: the agent no longer holds it and its report is gone from the state. */
    char reports[NW_PATH_MAX + 64];
    snprintf(reports, sizeof(reports), "%s/vm1.state/reports", srv.dir);
    long long end = nw_now_ms() + WAIT_MS;
    int left = -1;
    while (nw_now_ms() < end && left != 0) {
        char cmd[NW_PATH_MAX + 128];
        snprintf(cmd, sizeof(cmd), "ls -A '%s' | wc -l", reports);
        FILE *p = popen(cmd, "r");
        if (p && fscanf(p, "%d", &left) != 1)
            left = -1;
        if (p)
            pclose(p);
        if (left != 0)
            nw_sleep_ms(200);
    }
    NW_CHECK(left == 0, "%d report(s) still unanswered in the agent's state", left);
    stop_agent(agent);
}

int main(int argc, char **argv)
{
    int rc = nw_agent_test_begin(argc, argv, &srv, &agent_bin);
    if (rc != 0)
        return rc;
    char id[64];
    int ok = nw_agent_add(&srv, "vm1", id, sizeof(id)) == 0 && nw_watcher_put(&srv, nw) == 0;
    if (ok) {
        killed_mid_capture();
        completed_while_server_down();
    }
    return nw_agent_test_end(&srv, "agent_restart");
}
