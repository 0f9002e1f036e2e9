/*
 * agents.c - the real netwatch-agent against the real netwatchd: an agent registered with
 * `netwatchd agent add` connects over /agent/v1/channel, says hello, and shows up connected
 * (hostname, OS, version, interfaces) in the read-only agents API; it shows disconnected once
 * it stops; revoking a connected agent drops its channel and its token is refused from then on;
 * an agent with a bad token is refused; and one capture runs for real: created through the API,
 * started by the agent on the loopback interface, stopped through the API, Stopped/Manual, with
 * the packets in a pcap file under the agent's capture root. An agent whose --resource-id is not
 * the machine its token was registered for is refused (close 4004, logged by both sides, retried
 * with backoff, never connected); the right id, in any casing, connects. The running capture
 * shows the filter expression the agent installed (captureDetails.instances[].filterExpression),
 * which is its filters built with this machine's addresses, as the agent's own code builds them.
 *
 *   it_agents NETWATCHD NETWATCH_AGENT
 */
#include "tests/integration/agent_proc.h"
#include "tests/integration/captures.h"
#include "tests/integration/harness.h"
#include "tests/integration/traffic.h"

#include "agent/capture.h"
#include "common/bpf_expr.h"

#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define API     "2024-07-01"
#define WAIT_MS 15000

static struct nw_server srv;
static const char *agent_bin;

static pid_t start_agent_on(const char *vm, const char *interfaces)
{
    return nw_agent_start(&srv, agent_bin, vm, interfaces);
}

static pid_t start_agent(const char *vm)
{
    return start_agent_on(vm, NULL);
}

static int add_agent(const char *vm, char *id, size_t idsz)
{
    return nw_agent_add(&srv, vm, id, idsz);
}

static void stop_agent(pid_t pid)
{
    NW_CHECK(nw_agent_stop(pid) == 0, "agent did not exit 0 within 5 s of SIGTERM");
}

/* GET the agent; returns its properties.connected (1/0), -1 when the request failed. With
 * keep, the response is handed over (caller frees) when it is 1 or 0. */
static int connected(const char *id, struct nw_response *keep)
{
    if (!keep)
        return nw_agent_connected(&srv, id);
    char t[512];
    snprintf(t, sizeof(t), "/subscriptions/%s/providers/Netwatch/agents/%s?api-version=" API,
             srv.sub, id);
    struct nw_response r;
    if (nw_server_request(&srv, "GET", t, NULL, NULL, &r) != 0 || r.status != 200) {
        nw_response_free(&r);
        return -1;
    }
    *keep = r;
    return json_is_true(nw_json_get(r.json, "properties.connected"));
}

static int wait_connected(const char *id, int want)
{
    return nw_agent_wait_connected(&srv, id, want, WAIT_MS);
}

/* 1 when GET /metrics has the line `line` exactly (a whole sample line). */
static int metrics_has(const char *line)
{
    struct nw_response r;
    int found = 0;
    if (nw_server_request(&srv, "GET", "/metrics", NULL, NULL, &r) == 0 && r.status == 200) {
        size_t n = strlen(line);
        for (const char *p = strstr(r.body, line); p && !found; p = strstr(p + 1, line))
            found = (p == r.body || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0');
    }
    nw_response_free(&r);
    return found;
}

/* The expression the agent builds for {"protocol":"UDP","localPort":port} on this machine (the
 * agent runs in this network namespace); malloc'ed, NULL on failure. */
static char *expected_filter(int port)
{
    char lport[16];
    snprintf(lport, sizeof(lport), "%d", port);
    struct bpf_filter_spec *f = calloc(1, sizeof(*f));
    struct nf_ip_set *local = calloc(1, sizeof(*local));
    char *expr = NULL;
    struct cp_error e = {{0}, {0}, {0}};
    if (f && local && bpf_filter_spec_parse("UDP", "", "", lport, "", 0, f, &e) == CP_OK &&
        capture_local_addrs(local, &e) == CP_OK && bpf_expr_build(f, 1, local, &expr, &e) != CP_OK)
        expr = NULL;
    NW_CHECK(expr != NULL, "cannot build the expected filter: %s", e.message);
    free(f);
    free(local);
    return expr;
}

/* GET and queryStatus show the expression the agent installed, exactly. */
static void check_filter_expression(const char *nw, const char *name, int port)
{
    char *want = expected_filter(port);
    if (!want)
        return;
    char t[700];
    snprintf(t, sizeof(t), "%s/packetCaptures/%s?api-version=" API, nw, name);
    struct nw_response r;
    if (NW_CHECK(nw_server_request(&srv, "GET", t, NULL, NULL, &r) == 0 && r.status == 200,
                 "GET %s", name)) {
        const char *got =
            nw_json_str(r.json, "properties.captureDetails.instances.0.filterExpression");
        NW_CHECK(got && strcmp(got, want) == 0, "GET filterExpression\n got: %s\nwant: %s",
                 got ? got : "(absent)", want);
        NW_CHECK(strncmp(want, "udp and (", 9) == 0 && strstr(want, "src port"),
                 "unexpected expression %s", want);
    }
    nw_response_free(&r);
    snprintf(t, sizeof(t), "%s/packetCaptures/%s/queryStatus?api-version=" API, nw, name);
    if (NW_CHECK(nw_server_request(&srv, "POST", t, NULL, NULL, &r) == 0 && r.status == 200,
                 "queryStatus %s", name)) {
        const char *got = nw_json_str(r.json, "captureDetails.instances.0.filterExpression");
        NW_CHECK(got && strcmp(got, want) == 0, "queryStatus filterExpression %s",
                 got ? got : "(absent)");
    }
    nw_response_free(&r);
    /* The list leaves it out (the hot read; docs/api.md). */
    snprintf(t, sizeof(t), "%s/packetCaptures?api-version=" API, nw);
    if (NW_CHECK(nw_server_request(&srv, "GET", t, NULL, NULL, &r) == 0 && r.status == 200,
                 "list")) {
        NW_CHECK(nw_json_get(r.json, "value.0.properties.captureDetails.instances.0.agentId") &&
                     !nw_json_get(r.json,
                                  "value.0.properties.captureDetails.instances.0.filterExpression"),
                 "list: %.400s", r.body);
    }
    nw_response_free(&r);
    free(want);
}

/* One capture run for real by the agent on the loopback interface: create -> the agent acks ->
 * Succeeded/Running; UDP traffic; stop -> the agent's completed report ends the stop (Location
 * 200 null); Stopped/Manual; the pcap file is under the agent's capture root. */
static void capture_lifecycle(void)
{
    char id[64] = "";
    if (add_agent("vm3", id, sizeof(id)) != 0)
        return;
    pid_t agent = start_agent_on("vm3", "lo");
    if (!NW_CHECK(wait_connected(id, 1), "agent vm3 never connected"))
        goto out;
    char nw[NW_WATCHER_MAX];
    nw_watcher_put(&srv, nw);
    int port = 20000 + (int)(getpid() % 20000);
    struct nw_created c;
    if (nw_capture_put(&srv, nw, "lc", "vm3", port, "", &c) != 0)
        goto out;
    nw_operation_ends(&srv, c.aao, 15, "Succeeded", NULL, NULL);
    char pcs[64], why[64], start[64];
    NW_CHECK(nw_capture_query(&srv, nw, "lc", pcs, why, start, sizeof(pcs)) == 200, "qs");
    NW_CHECK(strcmp(pcs, "Running") == 0, "status %s, want Running", pcs);
    NW_CHECK(start[0], "no captureStartTime");
    NW_CHECK(metrics_has("netwatch_sessions{status=\"Running\"} 1"),
             "/metrics does not count the running session");
    check_filter_expression(nw, "lc", port);

    /* Traffic the filter matches (UDP to the local port), on the loopback interface. */
    nw_send_udp(port, "lc", 5);
    nw_sleep_ms(300);

    char loc[600];
    if (nw_capture_stop(&srv, nw, "lc", loc, sizeof(loc), NULL, 0) == 0)
        nw_stop_done(&srv, loc, 15);
    NW_CHECK(nw_capture_query(&srv, nw, "lc", pcs, why, NULL, sizeof(pcs)) == 200, "qs2");
    NW_CHECK(strcmp(pcs, "Stopped") == 0, "status %s, want Stopped", pcs);
    NW_CHECK(strcmp(why, "Manual") == 0, "stopReason %s, want Manual", why);
    NW_CHECK(metrics_has("netwatch_sessions{status=\"Running\"} 0"),
             "/metrics still counts a running session after the stop");
    /* The agent's progress timer (10 s) never fired: the counters are the totals it sends as the
     * capture completes. */
    char qs[700];
    snprintf(qs, sizeof(qs), "%s/packetCaptures/lc/queryStatus?api-version=2024-07-01", nw);
    struct nw_response r;
    if (NW_CHECK(nw_server_request(&srv, "POST", qs, NULL, NULL, &r) == 0 && r.status == 200,
                 "queryStatus after the stop")) {
        json_t *pk = nw_json_get(r.json, "captureDetails.packets");
        json_t *nf = nw_json_get(r.json, "captureDetails.files");
        NW_CHECK(json_integer_value(pk) == 5 && json_integer_value(nf) == 1,
                 "captureDetails after the end: packets %lld files %lld, want 5 and 1 (%s)",
                 (long long)json_integer_value(pk), (long long)json_integer_value(nf), r.body);
    }
    nw_response_free(&r);
    char file[NW_PATH_MAX + 64];
    snprintf(file, sizeof(file), "%s/captures/lc.cap", srv.dir);
    struct stat sb;
    /* pcap file header (24 bytes) plus 5 packets of 16-byte record header and >= 36 bytes */
    NW_CHECK(stat(file, &sb) == 0 && sb.st_size >= 24 + 5 * (16 + 36),
             "capture file %s missing or short (%lld bytes)", file,
             stat(file, &sb) == 0 ? (long long)sb.st_size : -1LL);
out:
    stop_agent(agent);
}

/* hello.identity: a token copied to the wrong machine is caught, not used. */
static void identity_check(void)
{
    char id[64] = "";
    if (add_agent("vm4", id, sizeof(id)) != 0)
        return;
    char wrong[512], right[512], want[128];
    snprintf(wrong, sizeof(wrong),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm5",
             srv.sub);
    const char *const bad[] = {"--resource-id", wrong, NULL};
    pid_t a = nw_agent_start_argv(&srv, agent_bin, "vm4", bad);
    NW_CHECK(nw_agent_wait_log(&srv, "vm4", "code_received=4004", 1, WAIT_MS),
             "the agent with the wrong --resource-id did not get close 4004");
    NW_CHECK(nw_agent_log_count(&srv, "vm4", "event=channel_wrong_identity") >= 1,
             "the agent did not log what to fix");
    snprintf(want, sizeof(want), "event=wrong_identity agent=%s", id);
    NW_CHECK(nw_file_count_lines(srv.log_file, want) >= 1, "the server did not log '%s'", want);
    snprintf(want, sizeof(want), "event=close agent=%s code=4004", id);
    NW_CHECK(nw_file_count_lines(srv.log_file, want) >= 1, "the server did not log '%s'", want);
    /* It keeps trying, with backoff (0.5 s doubling): a few attempts in 3 s, not a spin. */
    nw_sleep_ms(3000);
    int tries = nw_agent_log_count(&srv, "vm4", "code_received=4004");
    NW_CHECK(tries >= 2 && tries <= 12, "%d refused attempts in about 3 s, want 2..12", tries);
    NW_CHECK(connected(id, NULL) == 0, "an agent with the wrong identity shows connected");
    snprintf(want, sizeof(want), "event=hello agent=%s", id);
    NW_CHECK(nw_file_count_lines(srv.log_file, want) == 0, "a refused hello was welcomed");
    stop_agent(a);

    /* The right machine, in other casing and with a trailing '/': ARM ids compare that way. */
    snprintf(right, sizeof(right),
             "/SUBSCRIPTIONS/%s/resourcegroups/RG1/providers/microsoft.compute/VIRTUALMACHINES/"
             "VM4/",
             srv.sub);
    for (char *p = right + strlen("/SUBSCRIPTIONS/"); *p && *p != '/'; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    const char *const good[] = {"--resource-id", right, NULL};
    a = nw_agent_start_argv(&srv, agent_bin, "vm4", good);
    NW_CHECK(wait_connected(id, 1), "the agent with the right --resource-id never connected");
    NW_CHECK(nw_agent_log_count(&srv, "vm4", "event=channel_welcome") == 1,
             "the agent with the right identity was not welcomed once");
    NW_CHECK(nw_file_count_lines(srv.log_file, want) == 1, "no '%s' in the server log", want);
    stop_agent(a);
}

int main(int argc, char **argv)
{
    int rc = nw_agent_test_begin(argc, argv, &srv, &agent_bin);
    if (rc != 0)
        return rc;
    char id1[64] = "", id2[64] = "";
    if (add_agent("vm1", id1, sizeof(id1)) == 0 && add_agent("vm2", id2, sizeof(id2)) == 0) {
        NW_CHECK(connected(id1, NULL) == 0, "a registered agent that never connected shows "
                                            "connected");
        pid_t a1 = start_agent("vm1");
        NW_CHECK(wait_connected(id1, 1), "agent vm1 never showed connected");
        struct nw_response r;
        if (connected(id1, &r) == 1) {
            char host[256] = "";
            gethostname(host, sizeof(host) - 1);
            const char *h = nw_json_str(r.json, "properties.hostname");
            NW_CHECK(h && strcmp(h, host) == 0, "hostname %s, want %s", h ? h : "(none)", host);
            const char *os = nw_json_str(r.json, "properties.os");
            NW_CHECK(os && strcmp(os, "linux") == 0, "os %s", os ? os : "(none)");
            const char *v = nw_json_str(r.json, "properties.agentVersion");
            NW_CHECK(v && v[0], "no agentVersion");
            json_t *ifs = nw_json_get(r.json, "properties.interfaces");
            NW_CHECK(json_is_array(ifs) && json_array_size(ifs) > 0, "no interfaces");
            NW_CHECK(nw_json_get(r.json, "properties.token") == NULL, "a token is shown");
            nw_response_free(&r);
        }
        NW_CHECK(connected(id2, NULL) == 0, "agent vm2 connected without running");
        stop_agent(a1);
        NW_CHECK(wait_connected(id1, 0), "agent vm1 still connected after it stopped");

        /* Revoked while connected: the live channel is dropped (the server sweeps for
         * revocations made by `netwatchd agent revoke` in another process), and the token is
         * refused from then on, so the agent never shows connected again. */
        a1 = start_agent("vm1");
        NW_CHECK(wait_connected(id1, 1), "agent vm1 did not reconnect");
        char *rargv[] = {srv.bin, "agent", "revoke", id1, "--db", srv.db, NULL};
        char cli_log[NW_PATH_MAX + 16];
        snprintf(cli_log, sizeof(cli_log), "%s/cli.log", srv.dir);
        NW_CHECK(nw_run(rargv, cli_log, NULL, 0) == 0, "agent revoke failed");
        /* The API shows a revoked agent as not connected at once, so the drop itself is
         * read from the server's log: the hub closes the channel with 4001. */
        char want[128];
        snprintf(want, sizeof(want), "event=close agent=%s code=4001", id1);
        NW_CHECK(nw_file_wait_lines(srv.log_file, want, 1, WAIT_MS),
                 "a revoked agent's live channel was not closed (no '%s')", want);
        nw_sleep_ms(2000);
        NW_CHECK(connected(id1, NULL) == 0, "a revoked agent connected");
        stop_agent(a1);

        /* A token nobody issued. */
        char bad[NW_PATH_MAX + 64];
        snprintf(bad, sizeof(bad), "%s/vm2.token", srv.dir);
        FILE *f = fopen(bad, "w");
        if (f) {
            fprintf(f, "nwa_%064d\n", 0);
            fclose(f);
        }
        pid_t a2 = start_agent("vm2");
        nw_sleep_ms(2000);
        NW_CHECK(connected(id2, NULL) == 0, "an agent with an unknown token connected");
        stop_agent(a2);
    }
    identity_check();
    capture_lifecycle();
    return nw_agent_test_end(&srv, "agents");
}
