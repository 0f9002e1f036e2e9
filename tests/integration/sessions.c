/*
 * sessions.c - captures on a scale set, run for real by three netwatch-agent processes
 * (instances 0, 1 and 2 of one scale set, each capturing on the loopback interface into its
 * own capture root) against the real netwatchd:
 *   - scope.include and scope.exclude: only the selected instances run the capture (their
 *     files exist, the others' do not); GET and queryStatus show the aggregate and one entry
 *     per selected instance, with the packets each agent's progress reports counted (summed
 *     for the capture); one stop ends them all (Stopped/Manual everywhere);
 *   - a silent agent (SIGSTOP): queryStatus says Unknown once its channel is dropped, then the
 *     backstop (time limit + grace, small via flags) ends the session Error/AgentStopped;
 *   - reconciliation: an agent killed and restarted with its state directory wiped no longer
 *     holds its session, which ends Error/AgentStopped after it reconnects;
 *   - live counters: a scripted agent (the real agent's channel code, agent/channel.c, driven
 *     from here, as the only instance of a second scale set) acknowledges the start and reports
 *     progress; GET and queryStatus show its counters and times, summed and per instance, and
 *     its completed report ends the capture.
 *
 *   it_sessions NETWATCHD NETWATCH_AGENT
 */
#include "tests/integration/agent_proc.h"
#include "tests/integration/harness.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <time.h>

#include "agent/channel.h"
#include "agent/state.h"
#include "proto/proto.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define API       "2024-07-01"
#define WAIT_MS   20000
#define INSTANCES 3

static struct nw_server srv;
static const char *agent_bin;
static char vmss[256], nw[300];
static char ids[INSTANCES][64];
static pid_t agents[INSTANCES];

/* Runs a netwatchd CLI command: stdout into out, stderr to the server dir's cli.log. */
static int run(char *const argv[], char *out, size_t outsz)
{
    char log[NW_PATH_MAX + 16];
    snprintf(log, sizeof(log), "%s/cli.log", srv.dir);
    return nw_run(argv, log, out, outsz);
}

/* Registers the agent of instance i: token into dir/i<i>.token, its id into ids[i]. */
static int add_instance(int i)
{
    char inst[8], token[128], path[NW_PATH_MAX + 64], list[8192];
    snprintf(inst, sizeof(inst), "%d", i);
    char *argv[] = {srv.bin, "agent", "add", vmss, "--instance", inst, "--db", srv.db, NULL};
    if (!NW_CHECK(run(argv, token, sizeof(token)) == 0, "agent add instance %d failed", i))
        return -1;
    snprintf(path, sizeof(path), "%s/i%d.token", srv.dir, i);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f, "%s\n", token);
    fclose(f);
    char *largv[] = {srv.bin, "agent", "list", "--db", srv.db, NULL};
    if (run(largv, list, sizeof(list)) != 0)
        return -1;
    char want[32];
    snprintf(want, sizeof(want), "\t%d\t", i); /* ID RESOURCE INSTANCE ... */
    for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, vmss) && strstr(line, want)) {
            snprintf(ids[i], sizeof(ids[i]), "%.36s", line);
            return 0;
        }
    }
    return NW_CHECK(0, "instance %d not in `agent list`", i) ? 0 : -1;
}

static void path_of(char *out, size_t n, int i, const char *what)
{
    snprintf(out, n, "%s/i%d.%s", srv.dir, i, what);
}

static pid_t start_instance(int i)
{
    char token[NW_PATH_MAX + 64], state[NW_PATH_MAX + 64], root[NW_PATH_MAX + 64];
    char log[NW_PATH_MAX + 64];
    path_of(token, sizeof(token), i, "token");
    path_of(state, sizeof(state), i, "state");
    path_of(root, sizeof(root), i, "captures");
    path_of(log, sizeof(log), i, "agent.log");
    mkdir(root, 0750);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(agent_bin, agent_bin, "--server", srv.base_url, "--token-file", token, "--state-dir",
              state, "--capture-root", root, "--interfaces", "lo", "--progress-interval", "1",
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Ends an agent for good (also one stopped with SIGSTOP). */
static void kill_instance(int i)
{
    if (agents[i] <= 0)
        return;
    kill(agents[i], SIGCONT);
    kill(agents[i], SIGKILL);
    waitpid(agents[i], NULL, 0);
    agents[i] = 0;
}

static int wait_connected(int i, int want)
{
    return nw_agent_wait_connected(&srv, ids[i], want, WAIT_MS);
}

/* PUT capture name with the given scope JSON and time limit; 1 when its create Succeeded. */
static int create(const char *name, const char *scope, int seconds)
{
    char t[700], body[1400];
    snprintf(body, sizeof(body),
             "{\"properties\":{\"target\":\"%s\",\"targetType\":\"AzureVMSS\",\"scope\":%s,"
             "\"timeLimitInSeconds\":%d,\"storageLocation\":{\"filePath\":"
             "\"/var/captures/%s.cap\"},\"filters\":[{\"protocol\":\"UDP\"}]}}",
             vmss, scope, seconds, name);
    snprintf(t, sizeof(t), "%s/packetCaptures/%s?api-version=" API, nw, name);
    struct nw_response r;
    if (!NW_CHECK(nw_server_request(&srv, "PUT", t, body, NULL, &r) == 0 && r.status == 201,
                  "PUT %s: %ld %.300s", name, r.status, r.body ? r.body : ""))
        return 0;
    char aao[600];
    snprintf(aao, sizeof(aao), "%s", nw_response_header(&r, "Azure-AsyncOperation"));
    nw_response_free(&r);
    json_t *op = nw_server_wait_operation(&srv, aao, 20);
    const char *st = op ? json_string_value(json_object_get(op, "status")) : NULL;
    int ok = NW_CHECK(st && strcmp(st, "Succeeded") == 0, "create %s ended %s", name,
                      st ? st : "(no answer)");
    json_decref(op);
    return ok;
}

/* POST queryStatus of name into *r (caller frees); 1 on 200. */
static int query(const char *name, struct nw_response *r)
{
    char t[700];
    snprintf(t, sizeof(t), "%s/packetCaptures/%s/queryStatus?api-version=" API, nw, name);
    if (nw_server_request(&srv, "POST", t, NULL, NULL, r) == 0 && r->status == 200)
        return 1;
    nw_response_free(r);
    return 0;
}

/* The session of instance inst in a captureDetails object, or NULL. */
static json_t *instance_of(json_t *details, const char *inst)
{
    json_t *arr = json_object_get(details, "instances"), *it;
    size_t k;
    json_array_foreach(arr, k, it)
    {
        const char *id = json_string_value(json_object_get(it, "instanceId"));
        if (id && strcmp(id, inst) == 0)
            return it;
    }
    return NULL;
}

/* Polls queryStatus until packetCaptureStatus is want and every listed instance's status is
 * inst_want (NULL: any); 1 when it got there. */
static int wait_status(const char *name, const char *want, const char *inst_want, int ms)
{
    long long end = nw_now_ms() + ms;
    char last[64] = "-", body[1200] = "";
    while (nw_now_ms() < end) {
        struct nw_response r;
        if (query(name, &r)) {
            const char *st = nw_json_str(r.json, "packetCaptureStatus");
            snprintf(last, sizeof(last), "%s", st ? st : "-");
            snprintf(body, sizeof(body), "%s", r.body ? r.body : "");
            int all = 1;
            json_t *arr = nw_json_get(r.json, "captureDetails.instances"), *it;
            size_t k;
            json_array_foreach(arr, k, it)
            {
                const char *s = json_string_value(json_object_get(it, "packetCaptureStatus"));
                all &= !inst_want || (s && strcmp(s, inst_want) == 0);
            }
            int done = st && strcmp(st, want) == 0 && all;
            nw_response_free(&r);
            if (done)
                return 1;
        }
        nw_sleep_ms(100);
    }
    return NW_CHECK(0, "%s: status %s, want %s (instances %s); last reply %s", name, last, want,
                    inst_want ? inst_want : "any", body);
}

static int file_exists(int i, const char *name)
{
    char p[NW_PATH_MAX + 128];
    snprintf(p, sizeof(p), "%s/i%d.captures/%s.cap", srv.dir, i, name);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* Stops capture name through the API and waits for the stop's result (200 null). */
static void stop_capture(const char *name)
{
    char t[700];
    snprintf(t, sizeof(t), "%s/packetCaptures/%s/stop?api-version=" API, nw, name);
    struct nw_response r;
    NW_CHECK(nw_server_request(&srv, "POST", t, NULL, NULL, &r) == 0 && r.status == 202,
             "stop %s: %ld", name, r.status);
    char loc[600];
    snprintf(loc, sizeof(loc), "%s", nw_response_header(&r, "Location") ?: "");
    nw_response_free(&r);
    struct nw_response fin;
    if (NW_CHECK(nw_server_wait_location(&srv, loc, 20, &fin) == 0, "stop %s never finished",
                 name)) {
        NW_CHECK(fin.status == 200 && fin.json && json_is_null(fin.json), "stop result %ld",
                 fin.status);
        nw_response_free(&fin);
    }
}

/* UDP datagrams to 127.0.0.1 (the captures' filter is UDP; the agents capture on lo). */
static void send_udp(int n)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    for (int i = 0; fd >= 0 && i < n; i++)
        sendto(fd, "netwatch", 8, 0, (struct sockaddr *)&to, sizeof(to));
    if (fd >= 0)
        close(fd);
}

/* Polls until every listed instance of name reported packets (the agents' progress, every
 * second); then the sums must add up. 1 when they did. */
static int wait_progress(const char *name)
{
    long long end = nw_now_ms() + WAIT_MS;
    while (nw_now_ms() < end) {
        send_udp(3);
        struct nw_response r;
        int done = 0;
        if (query(name, &r)) {
            json_t *d = json_object_get(r.json, "captureDetails"), *it;
            json_t *arr = json_object_get(d, "instances");
            size_t k;
            long long sum = 0;
            int all = json_array_size(arr) > 0;
            json_array_foreach(arr, k, it)
            {
                long long p = json_integer_value(json_object_get(it, "packets"));
                all &= p > 0 && json_object_get(it, "firstPacketTime") != NULL;
                sum += p;
            }
            if (all) {
                done = 1;
                NW_CHECK(json_integer_value(json_object_get(d, "packets")) == sum,
                         "%s: packets %lld, the instances add up to %lld", name,
                         (long long)json_integer_value(json_object_get(d, "packets")), sum);
                NW_CHECK(json_object_get(d, "firstPacketTime") &&
                             json_object_get(d, "lastProgressTime"),
                         "%s: no firstPacketTime/lastProgressTime", name);
            }
            nw_response_free(&r);
        }
        if (done)
            return 1;
        nw_sleep_ms(200);
    }
    return NW_CHECK(0, "%s: not every instance reported packets", name);
}

/* Checks the selected instances (sel[i] 1/0) of a Running capture, then stops it. */
static void scope_case(const char *name, const char *scope, const int sel[INSTANCES])
{
    if (!create(name, scope, 60))
        return;
    wait_status(name, "Running", "Running", WAIT_MS);
    wait_progress(name);
    struct nw_response r;
    if (query(name, &r)) {
        json_t *d = json_object_get(r.json, "captureDetails");
        size_t want = 0;
        for (int i = 0; i < INSTANCES; i++) {
            char inst[8];
            snprintf(inst, sizeof(inst), "%d", i);
            json_t *s = instance_of(d, inst);
            want += (size_t)sel[i];
            NW_CHECK(!s == !sel[i], "%s: instance %d %s", name, i,
                     sel[i] ? "missing" : "runs though not selected");
            const char *agent = s ? json_string_value(json_object_get(s, "agentId")) : NULL;
            NW_CHECK(!s || (agent && strcmp(agent, ids[i]) == 0), "%s: instance %d agent %s", name,
                     i, agent ? agent : "-");
        }
        NW_CHECK(json_array_size(json_object_get(d, "instances")) == want,
                 "%s: %zu instances, want %zu", name,
                 json_array_size(json_object_get(d, "instances")), want);
        NW_CHECK(nw_json_str(r.json, "captureStartTime") != NULL, "%s: no captureStartTime", name);
        NW_CHECK(json_object_get(d, "requestedTime") && json_object_get(d, "dispatchedTime") &&
                     json_object_get(d, "startTime") && !json_object_get(d, "endTime"),
                 "%s: times of a running capture wrong", name);
        nw_response_free(&r);
    }
    stop_capture(name);
    /* Each selected agent wrote the capture under its own root (finished: renamed to the name
     * asked for); the others wrote nothing. */
    for (int i = 0; i < INSTANCES; i++)
        NW_CHECK(file_exists(i, name) == sel[i], "%s: instance %d file %s", name, i,
                 sel[i] ? "missing" : "exists though not selected");
    if (!query(name, &r))
        return;
    const char *st = nw_json_str(r.json, "packetCaptureStatus");
    const char *why = nw_json_str(r.json, "stopReason");
    NW_CHECK(st && strcmp(st, "Stopped") == 0, "%s after stop: %s", name, st ? st : "-");
    NW_CHECK(why && strcmp(why, "Manual") == 0, "%s stopReason %s", name, why ? why : "-");
    json_t *arr = nw_json_get(r.json, "captureDetails.instances"), *it;
    size_t k;
    json_array_foreach(arr, k, it)
    {
        const char *s = json_string_value(json_object_get(it, "packetCaptureStatus"));
        const char *w = json_string_value(json_object_get(it, "stopReason"));
        NW_CHECK(s && strcmp(s, "Stopped") == 0 && w && strcmp(w, "Manual") == 0 &&
                     json_object_get(it, "endTime"),
                 "%s: an instance is %s/%s after the stop", name, s ? s : "-", w ? w : "-");
    }
    NW_CHECK(nw_json_get(r.json, "captureDetails.endTime") != NULL, "%s: no endTime", name);
    nw_response_free(&r);
    /* GET shows the same aggregate inside properties. */
    char t[700];
    snprintf(t, sizeof(t), "%s/packetCaptures/%s?api-version=" API, nw, name);
    if (nw_server_request(&srv, "GET", t, NULL, NULL, &r) == 0 && r.status == 200) {
        const char *gs = nw_json_str(r.json, "properties.captureDetails.packetCaptureStatus");
        NW_CHECK(gs && strcmp(gs, "Stopped") == 0, "%s: GET status %s", name, gs ? gs : "-");
        NW_CHECK(json_array_size(nw_json_get(r.json, "properties.captureDetails.instances")) ==
                     (size_t)(sel[0] + sel[1] + sel[2]),
                 "%s: GET instances", name);
    }
    nw_response_free(&r);
}

/* A silent agent: SIGSTOP after its capture started. Its channel is dropped after 3 heartbeats
 * (Unknown), then the backstop ends the session at its time limit plus the grace. */
static void backstop_case(void)
{
    if (!create("bs", "{\"include\":[\"1\"]}", 8))
        return;
    if (!wait_status("bs", "Running", "Running", WAIT_MS))
        return;
    kill(agents[1], SIGSTOP);
    wait_status("bs", "Unknown", "Unknown", 8000);
    if (wait_status("bs", "Error", "Error", 15000)) {
        struct nw_response r;
        if (query("bs", &r)) {
            json_t *errs = nw_json_get(r.json, "packetCaptureError");
            NW_CHECK(json_array_size(errs) == 1 &&
                         strcmp(json_string_value(json_array_get(errs, 0)), "AgentStopped") == 0,
                     "backstop: packetCaptureError is not [AgentStopped]");
            nw_response_free(&r);
        }
    }
    kill_instance(1);
}

/* An agent restarted without its state: it no longer holds its session. */
static void reconcile_case(void)
{
    if (!create("rc", "{\"include\":[\"2\"]}", 60))
        return;
    if (!wait_status("rc", "Running", "Running", WAIT_MS))
        return;
    kill_instance(2);
    char state[NW_PATH_MAX + 64], cmd[NW_PATH_MAX + 96];
    path_of(state, sizeof(state), 2, "state");
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state);
    NW_CHECK(system(cmd) == 0, "could not wipe %s", state);
    agents[2] = start_instance(2);
    if (!wait_status("rc", "Error", "Error", WAIT_MS))
        return;
    struct nw_response r;
    if (query("rc", &r)) {
        json_t *s = instance_of(json_object_get(r.json, "captureDetails"), "2");
        const char *msg = s ? json_string_value(json_object_get(s, "errorMessage")) : NULL;
        NW_CHECK(msg && strstr(msg, "no longer holds"), "reconcile: message %s", msg ? msg : "-");
        json_t *errs = json_object_get(s, "packetCaptureError");
        NW_CHECK(json_array_size(errs) == 1 &&
                     strcmp(json_string_value(json_array_get(errs, 0)), "AgentStopped") == 0,
                 "reconcile: the session's error is not AgentStopped");
        nw_response_free(&r);
    }
}

/* --- a scripted agent: acks the start, reports progress, completes when told --- */

#define PROGRESS_PACKETS 1200
#define PROGRESS_BYTES   834211
#define PROGRESS_DROPS   3
#define FIRST_PACKET_AT  1767225600100LL /* 2026-01-01T00:00:00.1Z */

struct scripted {
    struct agent_state state;
    int stop_fd, wake_fd;
    pthread_mutex_t mu;
    char capture_id[PROTO_ID_SIZE]; /* "" until a start came */
    int started;
    int end_pending; /* the test asked for the end, not said yet */
    enum cp_err run_err;
};

static void scripted_send(struct scripted *sc, struct channel *ch, struct proto_msg *m)
{
    uint64_t seq = 0;
    struct cp_error e = {{0}, {0}, {0}};
    if (!NW_CHECK(agent_state_take_seq(&sc->state, &seq, &e) == CP_OK, "seq: %s", e.message))
        return;
    if (m->type == PROTO_ACK)
        m->ack.seq = (int64_t)seq;
    else if (m->type == PROTO_PROGRESS)
        m->progress.seq = (int64_t)seq;
    else
        m->completed.seq = (int64_t)seq;
    char *text = proto_encode(m);
    NW_CHECK(text && channel_send(ch, text, strlen(text)) == CP_OK, "scripted agent: send failed");
    free(text);
}

static void scripted_message(void *ctx, struct channel *ch, const struct proto_msg *msg)
{
    struct scripted *sc = ctx;
    if (msg->type != PROTO_START)
        return;
    const char *cmd = msg->start.command_id, *cap = msg->start.capture_id;
    pthread_mutex_lock(&sc->mu);
    int repeat = sc->started;
    snprintf(sc->capture_id, sizeof(sc->capture_id), "%s", cap);
    sc->started = 1;
    pthread_mutex_unlock(&sc->mu);
    if (repeat)
        return;
    struct proto_msg a = {.type = PROTO_ACK};
    snprintf(a.ack.command_id, sizeof(a.ack.command_id), "%s", cmd);
    a.ack.ok = 1;
    scripted_send(sc, ch, &a);
    struct proto_msg p = {.type = PROTO_PROGRESS};
    snprintf(p.progress.capture_id, sizeof(p.progress.capture_id), "%s", cap);
    p.progress.packets = PROGRESS_PACKETS;
    p.progress.bytes = PROGRESS_BYTES;
    p.progress.drops = PROGRESS_DROPS;
    p.progress.files = 1;
    p.progress.first_packet_at = FIRST_PACKET_AT;
    scripted_send(sc, ch, &p);
}

static void scripted_complete(struct scripted *sc, struct channel *ch)
{
    struct proto_msg m = {.type = PROTO_COMPLETED};
    pthread_mutex_lock(&sc->mu);
    snprintf(m.completed.capture_id, sizeof(m.completed.capture_id), "%s", sc->capture_id);
    sc->end_pending = 0;
    pthread_mutex_unlock(&sc->mu);
    m.completed.stop_reason = PROTO_STOP_TIME_EXCEEDED;
    scripted_send(sc, ch, &m);
}

/* An end asked for between connections is said after the next welcome. */
static void scripted_welcome(void *ctx, struct channel *ch, const struct proto_welcome *w)
{
    (void)w;
    struct scripted *sc = ctx;
    pthread_mutex_lock(&sc->mu);
    int pending = sc->end_pending;
    pthread_mutex_unlock(&sc->mu);
    if (pending)
        scripted_complete(sc, ch);
}

/* The test asked for the end (eventfd): completed, TimeExceeded. */
static void scripted_wake(void *ctx, struct channel *ch)
{
    struct scripted *sc = ctx;
    uint64_t n;
    if (read(sc->wake_fd, &n, sizeof(n)) != sizeof(n))
        return;
    pthread_mutex_lock(&sc->mu);
    sc->end_pending = 1;
    pthread_mutex_unlock(&sc->mu);
    if (ch)
        scripted_complete(sc, ch);
}

static size_t scripted_sessions(void *ctx, struct proto_session *out, size_t max)
{
    struct scripted *sc = ctx;
    pthread_mutex_lock(&sc->mu);
    size_t n = sc->started && max ? 1 : 0;
    if (n) {
        snprintf(out[0].capture_id, sizeof(out[0].capture_id), "%s", sc->capture_id);
        out[0].state = PROTO_SESSION_RUNNING;
    }
    pthread_mutex_unlock(&sc->mu);
    return n;
}

struct scripted_run {
    struct scripted *sc;
    struct channel_handler h;
    struct channel_options opt;
};

static void *scripted_main(void *arg)
{
    struct scripted_run *run = arg;
    run->sc->run_err = channel_run(&run->opt);
    return NULL;
}

/* The capture's counters in a captureDetails object match what the scripted agent said. */
static void check_counters(json_t *d, const char *where)
{
    json_t *s = json_array_get(json_object_get(d, "instances"), 0);
    NW_CHECK(json_integer_value(json_object_get(d, "packets")) == PROGRESS_PACKETS &&
                 json_integer_value(json_object_get(d, "bytes")) == PROGRESS_BYTES &&
                 json_integer_value(json_object_get(d, "drops")) == PROGRESS_DROPS &&
                 json_integer_value(json_object_get(d, "files")) == 1,
             "%s: summed counters wrong", where);
    NW_CHECK(s && json_integer_value(json_object_get(s, "packets")) == PROGRESS_PACKETS &&
                 json_integer_value(json_object_get(s, "bytes")) == PROGRESS_BYTES,
             "%s: the instance's counters wrong", where);
    const char *first = json_string_value(json_object_get(d, "firstPacketTime"));
    NW_CHECK(first && strcmp(first, "2026-01-01T00:00:00.1000000Z") == 0, "%s: firstPacketTime %s",
             where, first ? first : "-");
    NW_CHECK(json_object_get(d, "lastProgressTime") && json_object_get(s, "lastProgressTime"),
             "%s: no lastProgressTime", where);
}

static void progress_case(void)
{
    /* A second scale set whose one registered instance is the scripted agent. */
    char saved[256], token[NW_TOKEN_MAX];
    snprintf(saved, sizeof(saved), "%s", vmss);
    snprintf(vmss, sizeof(vmss),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Compute/"
             "virtualMachineScaleSets/ss2",
             srv.sub);
    char *argv[] = {srv.bin, "agent", "add", vmss, "--instance", "9", "--db", srv.db, NULL};
    int ok = NW_CHECK(run(argv, token, sizeof(token)) == 0, "agent add ss2/9 failed");
    struct scripted sc;
    memset(&sc, 0, sizeof(sc));
    pthread_mutex_init(&sc.mu, NULL);
    char state[NW_PATH_MAX + 32];
    snprintf(state, sizeof(state), "%s/scripted.state", srv.dir);
    struct cp_error e = {{0}, {0}, {0}};
    sc.stop_fd = eventfd(0, EFD_CLOEXEC);
    sc.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    ok = ok && NW_CHECK(agent_state_open(state, &sc.state, &e) == CP_OK && sc.stop_fd >= 0 &&
                            sc.wake_fd >= 0,
                        "scripted agent state: %s", e.message);
    struct scripted_run r = {.sc = &sc,
                             .h = {.ctx = &sc,
                                   .on_welcome = scripted_welcome,
                                   .on_message = scripted_message,
                                   .wake_fd = sc.wake_fd,
                                   .on_wake = scripted_wake,
                                   .hello_sessions = scripted_sessions}};
    r.opt = (struct channel_options){.host = "127.0.0.1",
                                     .port = (unsigned)srv.port,
                                     .token = token,
                                     .state = &sc.state,
                                     .handler = &r.h,
                                     .stop_fd = sc.stop_fd,
                                     .backoff_min_ms = 100,
                                     .backoff_max_ms = 500,
                                     .connect_timeout_ms = 5000};
    pthread_t th;
    int running = ok && NW_CHECK(pthread_create(&th, NULL, scripted_main, &r) == 0, "thread");
    if (running && create("pg", "{\"include\":[],\"exclude\":[]}", 60) &&
        wait_status("pg", "Running", "Running", WAIT_MS)) {
        long long end = nw_now_ms() + WAIT_MS;
        struct nw_response q;
        int seen = 0;
        while (!seen && nw_now_ms() < end) {
            if (query("pg", &q)) {
                seen = json_integer_value(nw_json_get(q.json, "captureDetails.packets")) ==
                       PROGRESS_PACKETS;
                if (seen)
                    check_counters(json_object_get(q.json, "captureDetails"), "queryStatus");
                nw_response_free(&q);
            }
            if (!seen)
                nw_sleep_ms(100);
        }
        NW_CHECK(seen, "the progress report never showed in queryStatus");
        char t[700];
        snprintf(t, sizeof(t), "%s/packetCaptures/pg?api-version=" API, nw);
        if (NW_CHECK(nw_server_request(&srv, "GET", t, NULL, NULL, &q) == 0 && q.status == 200,
                     "GET pg"))
            check_counters(nw_json_get(q.json, "properties.captureDetails"), "GET");
        nw_response_free(&q);
        uint64_t one = 1;
        NW_CHECK(write(sc.wake_fd, &one, sizeof(one)) == sizeof(one), "wake the scripted agent");
        if (wait_status("pg", "Stopped", "Stopped", WAIT_MS) && query("pg", &q)) {
            const char *why = nw_json_str(q.json, "stopReason");
            NW_CHECK(why && strcmp(why, "TimeExceeded") == 0, "pg stopReason %s", why ? why : "-");
            NW_CHECK(nw_json_get(q.json, "captureDetails.endTime") != NULL, "pg: no endTime");
            nw_response_free(&q);
        }
    }
    if (running) {
        uint64_t one = 1;
        NW_CHECK(write(sc.stop_fd, &one, sizeof(one)) == sizeof(one), "stop the scripted agent");
        pthread_join(th, NULL);
        NW_CHECK(sc.run_err == CP_OK, "the scripted channel ended with %s",
                 cp_err_name(sc.run_err));
    }
    if (sc.stop_fd >= 0)
        close(sc.stop_fd);
    if (sc.wake_fd >= 0)
        close(sc.wake_fd);
    pthread_mutex_destroy(&sc.mu);
    snprintf(vmss, sizeof(vmss), "%s", saved);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s NETWATCHD NETWATCH_AGENT\n", argv[0]);
        return 2;
    }
    agent_bin = argv[2];
    if (nw_server_init(&srv, argv[1]) != 0)
        return 1;
    const char *args[] = {"--listen",
                          "127.0.0.1:0",
                          "--ready-file",
                          srv.ready_file,
                          "--db",
                          srv.db,
                          "--token-file",
                          srv.token_file,
                          "--agent-heartbeat-seconds",
                          "1",
                          "--backstop-grace-seconds",
                          "2",
                          NULL};
    if (nw_server_start_argv(&srv, args, NULL) != 0)
        return 1;
    snprintf(vmss, sizeof(vmss),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Compute/"
             "virtualMachineScaleSets/ss1",
             srv.sub);
    snprintf(nw, sizeof(nw),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1",
             srv.sub);
    int ready = 1;
    for (int i = 0; i < INSTANCES && ready; i++)
        ready = add_instance(i) == 0;
    for (int i = 0; i < INSTANCES && ready; i++)
        agents[i] = start_instance(i);
    for (int i = 0; i < INSTANCES && ready; i++)
        ready = NW_CHECK(wait_connected(i, 1), "instance %d never connected", i);
    char t[400];
    snprintf(t, sizeof(t), "%s?api-version=" API, nw);
    struct nw_response r;
    ready = ready && NW_CHECK(nw_server_request(&srv, "PUT", t, "{\"location\":\"westus2\"}", NULL,
                                                &r) == 0 &&
                                  r.status / 100 == 2,
                              "watcher PUT: %ld", r.status);
    nw_response_free(&r);
    if (ready) {
        static const int inc[INSTANCES] = {1, 0, 1}, exc[INSTANCES] = {0, 1, 1};
        scope_case("inc", "{\"include\":[\"0\",\"2\"]}", inc);
        scope_case("exc", "{\"exclude\":[\"0\"]}", exc);
        backstop_case();
        reconcile_case();
        progress_case();
    }
    for (int i = 0; i < INSTANCES; i++)
        kill_instance(i);
    if (nw_server_stop(&srv) != 0)
        NW_CHECK(0, "netwatchd did not stop cleanly");
    if (nw_failures)
        nw_server_dump_log(&srv, 6000);
    nw_server_cleanup(&srv);
    printf("%s sessions: %d failure(s)\n", nw_failures ? "FAIL" : "ok", nw_failures);
    return nw_failures ? 1 : 0;
}
