/*
 * agent_faults.c - captures run by the real netwatch-agent (capturing on lo) for the real
 * netwatchd, when something other than a plain create and stop happens:
 *   server_killed    netwatchd SIGKILLed and restarted on the same database and port while a
 *                    capture runs (the agent keeps capturing and reconnects); while a create it
 *                    acknowledged (201) waits for the agent's ack; while a stop it accepted
 *                    waits for the agent's report. Each operation ends once, with its status.
 *   agent_absent     a registered agent that is not connected: the create fails
 *                    AgentNotConnected after the dispatch deadline; one that connects within
 *                    the deadline starts the capture.
 *   time_limit       timeLimitInSeconds ends the capture Stopped/TimeExceeded with no stop call.
 *   delete_running   DELETE of a running capture: the agent finalises the file, the capture is
 *                    gone, the delete operation Succeeded.
 *   not_your_session an agent reporting on another agent's capture is refused (NotYourSession),
 *                    logged, and the capture is untouched. A real agent never does that, so that
 *                    agent is the real agent's channel code (agent/channel.c) driven from here.
 *
 *   it_agent_faults NETWATCHD NETWATCH_AGENT [server_killed | agent_absent | one_agent]
 */
#include "tests/integration/agent_proc.h"
#include "tests/integration/captures.h"
#include "tests/integration/harness.h"
#include "tests/integration/pcap_count.h"
#include "tests/integration/traffic.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/channel.h"
#include "agent/state.h"
#include "proto/proto.h"

#define API     "2024-07-01"
#define WAIT_S  15    /* any one thing the product should do within a second or two */
#define WAIT_MS 15000 /* the same in ms */
#define NPKT    5     /* datagrams sent per phase */

static const char *netwatchd_bin;
static const char *agent_bin;
static int udp_base; /* ports this process sends its traffic to */

/* One netwatchd (its temp dir, db, port) with watcher nw1 and the agents' capture root. */
struct fx {
    struct nw_server srv;
    long deadline_s;         /* --dispatch-deadline-seconds */
    int failures;            /* nw_failures when it started: the logs are shown if it grows */
    char nw[NW_WATCHER_MAX]; /* the watcher's path */
    char root[NW_PATH_MAX + 16];
};

/* Starts (or restarts, same db) netwatchd on port (0: any free port). */
static int fx_start(struct fx *f, int port)
{
    char deadline[24];
    snprintf(deadline, sizeof(deadline), "%ld", f->deadline_s);
    const char *const extra[] = {"--dispatch-deadline-seconds", deadline, NULL};
    return nw_server_start_on(&f->srv, port, extra);
}

static int fx_init(struct fx *f, long deadline_s)
{
    memset(f, 0, sizeof(*f));
    f->deadline_s = deadline_s;
    f->failures = nw_failures;
    if (!NW_CHECK(nw_server_init(&f->srv, netwatchd_bin) == 0 && fx_start(f, 0) == 0,
                  "netwatchd did not start"))
        return -1;
    nw_agent_root(&f->srv, f->root, sizeof(f->root));
    return nw_watcher_put(&f->srv, f->nw);
}

static void fx_done(struct fx *f)
{
    if (f->srv.pid)
        NW_CHECK(nw_server_stop(&f->srv) == 0, "netwatchd did not stop cleanly");
    if (nw_failures > f->failures) {
        nw_server_dump_log(&f->srv, 6000);
        nw_agent_dump_logs(&f->srv, 4000);
    }
    nw_server_cleanup(&f->srv);
}

/* SIGKILL, then the same binary on the same db and port (the agents dial that port). */
static int fx_crash_restart(struct fx *f)
{
    int port = f->srv.port;
    if (!NW_CHECK(nw_server_kill(&f->srv) == 0, "SIGKILL of netwatchd failed"))
        return -1;
    return NW_CHECK(fx_start(f, port) == 0, "netwatchd did not restart on port %d", port) ? 0 : -1;
}

/* 1 once some TCP connection to 127.0.0.1:port holds unread bytes on the client side (a
 * message the server sent that a stopped agent has not read yet), within WAIT_MS. */
static int wait_unread_from(int port)
{
    long long end = nw_now_ms() + WAIT_MS;
    do {
        FILE *tcp = fopen("/proc/net/tcp", "r");
        char line[512];
        int found = 0;
        while (tcp && !found && fgets(line, sizeof(line), tcp)) {
            unsigned rport = 0, st = 0, txq = 0, rxq = 0;
            if (sscanf(line, " %*d: %*x:%*x %*x:%x %x %x:%x", &rport, &st, &txq, &rxq) == 4)
                found = rport == (unsigned)port && st == 1 /* ESTABLISHED */ && rxq > 0;
        }
        if (tcp)
            fclose(tcp);
        if (found)
            return 1;
        nw_sleep_ms(10);
    } while (nw_now_ms() < end);
    return 0;
}

/* ---- captures through the API ---------------------------------------------------------- */

/* The operation's status body now (owned; NULL when the GET failed). */
static json_t *op_get(struct fx *f, const char *aao)
{
    struct nw_response r;
    json_t *j = NULL;
    if (nw_server_request(&f->srv, "GET", nw_url_target(aao), NULL, NULL, &r) == 0 &&
        r.status == 200)
        j = json_incref(r.json);
    nw_response_free(&r);
    return j;
}

/* GET the capture's property at dotted path into out ("" when absent); HTTP status. */
static long cap_prop(struct fx *f, const char *name, const char *dotted, char *out, size_t sz)
{
    char t[700];
    snprintf(t, sizeof(t), "%s/packetCaptures/%s?api-version=" API, f->nw, name);
    struct nw_response r;
    long code = nw_server_request(&f->srv, "GET", t, NULL, NULL, &r) == 0 ? r.status : 0;
    const char *v = nw_json_str(r.json, dotted);
    snprintf(out, sz, "%s", v ? v : "");
    nw_response_free(&r);
    return code;
}

/* Create on vm and wait until it runs. */
static int cap_running(struct fx *f, const char *name, const char *vm, int port, const char *extra,
                       struct nw_created *c)
{
    return nw_capture_put(&f->srv, f->nw, name, vm, port, extra, c) == 0 &&
                   nw_operation_ends(&f->srv, c->aao, WAIT_S, "Succeeded", NULL, NULL) &&
                   nw_capture_is(&f->srv, f->nw, name, "Running", NULL)
               ? 0
               : -1;
}

/* ---- traffic and files ----------------------------------------------------------------- */

/* NPKT datagrams to 127.0.0.1:port, each carrying tag. */
static void send_udp(int port, const char *tag)
{
    NW_CHECK(nw_send_udp(port, tag, NPKT) == NPKT, "sendto failed");
}

/* The finished capture file of name (the agent writes .<name>.cap.partial and renames it when
 * complete): waits until it is there and the partial file is gone. */
static int file_final(struct fx *f, const char *name, char *path, size_t pathsz)
{
    char partial[NW_PATH_MAX + 128];
    struct stat sb;
    snprintf(path, pathsz, "%s/%s.cap", f->root, name);
    snprintf(partial, sizeof(partial), "%s/.%s.cap.partial", f->root, name);
    long long end = nw_now_ms() + WAIT_MS;
    int done = 0;
    while (!done && nw_now_ms() < end) {
        done = stat(path, &sb) == 0 && stat(partial, &sb) != 0;
        if (!done)
            nw_sleep_ms(50);
    }
    return NW_CHECK(done, "%s not finalised (%s, %s)", name,
                    stat(path, &sb) == 0 ? "file present" : "no file",
                    stat(partial, &sb) == 0 ? "partial left" : "no partial");
}

static void expect_packets(const char *path, const char *tag, int want)
{
    int got = nw_pcap_count(path, tag);
    NW_CHECK(got == want, "%s: %d '%s' packets, want %d", path, got, tag, want);
}

/* An operation read twice ended at the same time: it was not ended again in between. */
static void same_end(json_t *first, json_t *second, const char *what)
{
    const char *e1 = nw_json_str(first, "endTime"), *e2 = nw_json_str(second, "endTime");
    NW_CHECK(e1 && e2 && strcmp(e1, e2) == 0, "%s ended again: %s then %s", what, e1 ? e1 : "-",
             e2 ? e2 : "-");
}

/* The agent's log line of event on capture_id: "event=<event> captureId=<capture_id>". */
static const char *event_needle(char *out, size_t sz, const char *event, const char *capture_id)
{
    snprintf(out, sz, "event=%s captureId=%s", event, capture_id);
    return out;
}

/* Lines "event=<event> captureId=<capture_id>" of the agent's log. */
static int agent_log_count(struct fx *f, const char *vm, const char *event, const char *capture_id)
{
    char needle[200];
    return nw_agent_log_count(&f->srv, vm, event_needle(needle, sizeof(needle), event, capture_id));
}

/* ---- the cases --------------------------------------------------------------------------- */

/* netwatchd SIGKILLed and restarted (same db, same port) in three places. */
static void case_server_killed(void)
{
    struct fx f;
    char id[64], loc[700], path[NW_PATH_MAX + 128];
    pid_t agent = -1;
    struct nw_created ka, kb;
    char stop_aao[700] = "";
    json_t *op1 = NULL, *op2 = NULL, *op3 = NULL;
    if (fx_init(&f, 30) != 0 || nw_agent_add(&f.srv, "vmk", id, sizeof(id)) != 0)
        goto out;
    agent = nw_agent_start(&f.srv, agent_bin, "vmk", "lo");
    if (!NW_CHECK(nw_agent_wait_connected(&f.srv, id, 1, WAIT_MS), "agent never connected"))
        goto out;

    /* 1. Mid-capture: traffic before, during and after the outage all lands in the file. */
    if (cap_running(&f, "ka", "vmk", udp_base, "", &ka) != 0)
        goto out;
    send_udp(udp_base, "before");
    int port = f.srv.port;
    int closed = nw_agent_log_count(&f.srv, "vmk", "event=channel_closed");
    if (!NW_CHECK(nw_server_kill(&f.srv) == 0, "SIGKILL of netwatchd failed"))
        goto out;
    /* The server is down and the agent has seen its channel go: it captures on. */
    NW_CHECK(nw_agent_wait_log(&f.srv, "vmk", "event=channel_closed", closed + 1, WAIT_MS),
             "the agent did not notice netwatchd's death");
    send_udp(udp_base, "during");
    nw_sleep_ms(300); /* down a while: the agent's reconnects fail meanwhile */
    if (!NW_CHECK(fx_start(&f, port) == 0, "netwatchd did not restart on port %d", port))
        goto out;
    NW_CHECK(nw_agent_wait_connected(&f.srv, id, 1, WAIT_MS), "agent did not reconnect");
    nw_capture_is(&f.srv, f.nw, "ka", "Running", NULL);
    send_udp(udp_base, "after");
    if (nw_capture_stop(&f.srv, f.nw, "ka", loc, sizeof(loc), NULL, 0) == 0 &&
        nw_stop_done(&f.srv, loc, WAIT_S))
        nw_capture_is(&f.srv, f.nw, "ka", "Stopped", "Manual");
    if (file_final(&f, "ka", path, sizeof(path))) {
        expect_packets(path, "before", NPKT);
        expect_packets(path, "during", NPKT);
        expect_packets(path, "after", NPKT);
    }
    nw_operation_ends(&f.srv, ka.aao, 1, "Succeeded", NULL, NULL);

    /* 2. A create acknowledged (201) whose agent has not acked when netwatchd dies: the agent
     * is stopped (SIGSTOP) so it cannot answer before the kill. After the restart the start
     * is sent again and the capture starts once. */
    kill(agent, SIGSTOP);
    if (nw_capture_put(&f.srv, f.nw, "kb", "vmk", udp_base + 1, "", &kb) != 0) {
        kill(agent, SIGCONT);
        goto out;
    }
    json_t *pending = op_get(&f, kb.aao);
    const char *pst = pending ? nw_json_str(pending, "status") : NULL;
    NW_CHECK(pst && strcmp(pst, "InProgress") == 0,
             "create of kb %s while its agent is stopped, want InProgress", pst ? pst : "-");
    json_decref(pending);
    /* The start is on its way: in the stopped agent's socket, unread. */
    NW_CHECK(wait_unread_from(f.srv.port), "the start never reached the agent's socket");
    int restarted = fx_crash_restart(&f) == 0;
    kill(agent, SIGCONT);
    if (!restarted)
        goto out;
    if (!nw_operation_ends(&f.srv, kb.aao, WAIT_S, "Succeeded", NULL, &op1) ||
        !nw_capture_is(&f.srv, f.nw, "kb", "Running", NULL))
        goto out;
    char start1[64], st[64], why[64];
    nw_capture_query(&f.srv, f.nw, "kb", st, why, start1, sizeof(start1));
    NW_CHECK(agent_log_count(&f, "vmk", "capture_started", kb.op_id) == 1,
             "the agent started capture %s %d times, want once", kb.op_id,
             agent_log_count(&f, "vmk", "capture_started", kb.op_id));
    /* The restarted server sent the start again; the agent knew it and answered the same. */
    char needle[120];
    snprintf(needle, sizeof(needle), "event=command_repeat type=start commandId=%s", kb.op_id);
    NW_CHECK(nw_agent_log_count(&f.srv, "vmk", needle) >= 1,
             "the start of %s was not sent again after the restart", kb.op_id);
    send_udp(udp_base + 1, "kb");

    /* 3. A stop accepted (202) just before the kill completes after the restart. */
    kill(agent, SIGSTOP);
    if (nw_capture_stop(&f.srv, f.nw, "kb", loc, sizeof(loc), stop_aao, sizeof(stop_aao)) != 0) {
        kill(agent, SIGCONT);
        goto out;
    }
    NW_CHECK(wait_unread_from(f.srv.port), "the stop never reached the agent's socket");
    restarted = fx_crash_restart(&f) == 0;
    kill(agent, SIGCONT);
    if (!restarted)
        goto out;
    if (nw_stop_done(&f.srv, loc, WAIT_S))
        nw_capture_is(&f.srv, f.nw, "kb", "Stopped", "Manual");
    /* Whether the restarted server sends the stop again depends on a race it may lose
     * legitimately: the agent may read the stop still buffered in its socket after SIGCONT and
     * report the end before the server's resend goes out (the end settles the stop). Either
     * way the agent must carry it out exactly once. */
    const char *stop_id = strstr(stop_aao, "/operations/");
    NW_CHECK(stop_id, "stop of kb had no operation URL");
    snprintf(needle, sizeof(needle), "event=capture_stop captureId=%s ", kb.op_id);
    NW_CHECK(nw_agent_log_count(&f.srv, "vmk", needle) == 1,
             "the agent carried out the stop of kb %d times, want once",
             nw_agent_log_count(&f.srv, "vmk", needle));
    if (file_final(&f, "kb", path, sizeof(path)))
        expect_packets(path, "kb", NPKT);

    /* Nothing applied twice: one more crash and reconnect (the agent resends what it thinks
     * unacknowledged) leaves both operations and the capture as they ended. */
    nw_operation_ends(&f.srv, stop_aao, 1, "Succeeded", NULL, &op3);
    int welcomes = nw_agent_log_count(&f.srv, "vmk", "event=channel_welcome");
    if (fx_crash_restart(&f) != 0)
        goto out;
    NW_CHECK(nw_agent_wait_log(&f.srv, "vmk", "event=channel_welcome", welcomes + 1, WAIT_MS),
             "agent did not reconnect");
    nw_sleep_ms(200); /* what it resends on welcome reaches the server within this */
    if (nw_operation_ends(&f.srv, kb.aao, 1, "Succeeded", NULL, &op2))
        same_end(op1, op2, "create of kb");
    json_decref(op2);
    op2 = NULL;
    if (nw_operation_ends(&f.srv, stop_aao, 1, "Succeeded", NULL, &op2))
        same_end(op3, op2, "stop of kb");
    char start2[64];
    nw_capture_query(&f.srv, f.nw, "kb", st, why, start2, sizeof(start2));
    NW_CHECK(start1[0] && strcmp(start1, start2) == 0, "captureStartTime moved: %s then %s", start1,
             start2);
    nw_capture_is(&f.srv, f.nw, "kb", "Stopped", "Manual");
    NW_CHECK(agent_log_count(&f, "vmk", "capture_started", kb.op_id) == 1 &&
                 agent_log_count(&f, "vmk", "capture_completed", kb.op_id) == 1,
             "capture %s started %d and completed %d times on the agent, want once each", kb.op_id,
             agent_log_count(&f, "vmk", "capture_started", kb.op_id),
             agent_log_count(&f, "vmk", "capture_completed", kb.op_id));
out:
    json_decref(op1);
    json_decref(op2);
    json_decref(op3);
    if (agent > 0)
        NW_CHECK(nw_agent_stop(agent) == 0, "agent vmk did not exit 0");
    fx_done(&f);
}

/* A registered agent that is not connected: the create waits for it until the dispatch
 * deadline, then fails AgentNotConnected; an agent that connects within the deadline starts
 * the capture. */
static void case_agent_absent(void)
{
    struct fx f;
    char id[64], id2[64], prop[64], loc[700];
    pid_t agent = -1;
    struct nw_created na, nb;
    if (fx_init(&f, 3) != 0 || nw_agent_add(&f.srv, "vmn", id, sizeof(id)) != 0 ||
        nw_agent_add(&f.srv, "vmo", id2, sizeof(id2)) != 0)
        goto out;

    long long t0 = nw_now_ms();
    if (nw_capture_put(&f.srv, f.nw, "na", "vmn", udp_base + 2, "", &na) == 0) {
        /* The sweep that ends overdue creates runs every 2 s: deadline + 2 s, plus slack. */
        if (nw_operation_ends(&f.srv, na.aao, (int)f.deadline_s + 8, "Failed", "AgentNotConnected",
                              NULL)) {
            long long took = nw_now_ms() - t0;
            NW_CHECK(took >= f.deadline_s * 1000 - 100 && took <= f.deadline_s * 1000 + 6000,
                     "the create failed after %lld ms; the deadline is %ld s", took, f.deadline_s);
        }
        NW_CHECK(cap_prop(&f, "na", "properties.provisioningState", prop, sizeof(prop)) == 200 &&
                     strcmp(prop, "Failed") == 0,
                 "na: provisioningState %s, want Failed", prop);
    }

    /* The agent of vmo starts only after the create was accepted. */
    if (nw_capture_put(&f.srv, f.nw, "nb", "vmo", udp_base + 3, "", &nb) != 0)
        goto out;
    agent = nw_agent_start(&f.srv, agent_bin, "vmo", "lo");
    if (nw_operation_ends(&f.srv, nb.aao, WAIT_S, "Succeeded", NULL, NULL) &&
        nw_capture_is(&f.srv, f.nw, "nb", "Running", NULL) &&
        nw_capture_stop(&f.srv, f.nw, "nb", loc, sizeof(loc), NULL, 0) == 0 &&
        nw_stop_done(&f.srv, loc, WAIT_S))
        nw_capture_is(&f.srv, f.nw, "nb", "Stopped", "Manual");
out:
    if (agent > 0)
        NW_CHECK(nw_agent_stop(agent) == 0, "agent vmo did not exit 0");
    fx_done(&f);
}

/* timeLimitInSeconds 2: the agent ends the capture by itself, Stopped/TimeExceeded, with the
 * traffic of those two seconds in the file. */
static void case_time_limit(struct fx *f, const char *vm)
{
    struct nw_created tl;
    char path[NW_PATH_MAX + 128];
    if (cap_running(f, "tl", vm, udp_base + 4, "\"timeLimitInSeconds\":2,", &tl) != 0)
        return;
    long long t0 = nw_now_ms();
    send_udp(udp_base + 4, "limit");
    char st[64] = "", why[64] = "";
    while (nw_now_ms() - t0 < WAIT_MS) {
        if (nw_capture_query(&f->srv, f->nw, "tl", st, why, NULL, sizeof(st)) != 200 ||
            strcmp(st, "Running") != 0)
            break;
        nw_sleep_ms(50);
    }
    long long took = nw_now_ms() - t0;
    NW_CHECK(strcmp(st, "Stopped") == 0 && strcmp(why, "TimeExceeded") == 0,
             "tl: %s/%s, want Stopped/TimeExceeded", st, why);
    NW_CHECK(took >= 1500, "tl ended after %lld ms, before its 2 s time limit", took);
    if (file_final(f, "tl", path, sizeof(path)))
        expect_packets(path, "limit", NPKT);
}

/* DELETE of a running capture: the agent stops it and finalises the file, the capture is gone,
 * the delete operation Succeeded. */
static void case_delete_running(struct fx *f, const char *vm)
{
    struct nw_created dl;
    char t[700], path[NW_PATH_MAX + 128];
    if (cap_running(f, "dl", vm, udp_base + 5, "", &dl) != 0)
        return;
    send_udp(udp_base + 5, "deleted");
    snprintf(t, sizeof(t), "%s/packetCaptures/dl?api-version=" API, f->nw);
    struct nw_response r;
    long code = nw_server_request(&f->srv, "DELETE", t, NULL, NULL, &r) == 0 ? r.status : 0;
    char aao[600];
    const char *a = nw_response_header(&r, "Azure-AsyncOperation");
    snprintf(aao, sizeof(aao), "%s", a ? a : "");
    nw_response_free(&r);
    if (!NW_CHECK(code == 202 && aao[0], "DELETE dl: %ld", code))
        return;
    nw_operation_ends(&f->srv, aao, WAIT_S, "Succeeded", NULL, NULL);
    NW_CHECK(nw_server_request(&f->srv, "GET", t, NULL, NULL, &r) == 0 && r.status == 404,
             "GET dl after its delete: %ld", r.status);
    nw_response_free(&r);
    if (file_final(f, "dl", path, sizeof(path)))
        expect_packets(path, "deleted", NPKT);
    char needle[200];
    nw_agent_wait_log(&f->srv, vm,
                      event_needle(needle, sizeof(needle), "capture_completed", dl.op_id), 1,
                      WAIT_MS);
    NW_CHECK(agent_log_count(f, vm, "capture_completed", dl.op_id) == 1,
             "the agent did not report dl completed once");
}

/* ---- an agent reporting on a capture that is not its own --------------------------------- */

/* The rogue: a registered agent whose channel (the real agent/channel.c) says, once
 * welcomed, that another agent's capture completed and then failed. */
struct rogue {
    const char *capture_id;
    struct agent_state state;
    int stop_fd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int sent;    /* reports sent */
    int replies; /* replies received */
    int64_t seqs[2], reply_seq[2];
    int reply_ok[2];
    char reply_code[2][PROTO_CODE_MAX + 1];
    enum cp_err run_err;
};

static void rogue_send(struct rogue *r, struct channel *ch, struct proto_msg *m)
{
    uint64_t seq = 0;
    struct cp_error e = {{0}, {0}, {0}};
    if (!NW_CHECK(agent_state_take_seq(&r->state, &seq, &e) == CP_OK, "rogue seq: %s", e.message))
        return;
    if (m->type == PROTO_COMPLETED)
        m->completed.seq = (int64_t)seq;
    else
        m->error.seq = (int64_t)seq;
    char *text = proto_encode(m);
    if (NW_CHECK(text && channel_send(ch, text, strlen(text)) == CP_OK, "rogue could not send")) {
        pthread_mutex_lock(&r->mu);
        r->seqs[r->sent++] = (int64_t)seq;
        pthread_mutex_unlock(&r->mu);
    }
    free(text);
}

static void rogue_welcome(void *ctx, struct channel *ch, const struct proto_welcome *welcome)
{
    (void)welcome;
    struct rogue *r = ctx;
    if (r->sent)
        return; /* a reconnect: said already */
    struct proto_msg m = {.type = PROTO_COMPLETED};
    snprintf(m.completed.capture_id, sizeof(m.completed.capture_id), "%s", r->capture_id);
    m.completed.stop_reason = PROTO_STOP_MANUAL;
    rogue_send(r, ch, &m);
    struct proto_msg er = {.type = PROTO_ERROR};
    snprintf(er.error.capture_id, sizeof(er.error.capture_id), "%s", r->capture_id);
    er.error.code = PROTO_PC_CAPTURE_FAILED;
    snprintf(er.error.message, sizeof(er.error.message), "%s", "not mine to say");
    rogue_send(r, ch, &er);
}

static void rogue_message(void *ctx, struct channel *ch, const struct proto_msg *m)
{
    (void)ch;
    struct rogue *r = ctx;
    if (m->type != PROTO_REPLY)
        return;
    pthread_mutex_lock(&r->mu);
    if (r->replies < 2) {
        r->reply_seq[r->replies] = m->reply.seq;
        r->reply_ok[r->replies] = m->reply.ok;
        snprintf(r->reply_code[r->replies], sizeof(r->reply_code[0]), "%s", m->reply.code);
    }
    r->replies++;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

struct rogue_run {
    struct rogue *r;
    struct channel_options opt;
};

static void *rogue_main(void *arg)
{
    struct rogue_run *run = arg;
    run->r->run_err = channel_run(&run->opt);
    return NULL;
}

/* Agent B reports on agent A's running capture: refused with NotYourSession, logged, and A's
 * capture runs on (A can still stop it). */
static void case_not_your_session(struct fx *f, const char *vm_a)
{
    struct nw_created ny;
    char id_b[64], loc[700], path[NW_PATH_MAX + 64], token[NW_TOKEN_MAX];
    if (cap_running(f, "ny", vm_a, udp_base + 6, "", &ny) != 0 ||
        nw_agent_add(&f->srv, "vmrogue", id_b, sizeof(id_b)) != 0)
        return;
    snprintf(path, sizeof(path), "%s/vmrogue.token", f->srv.dir);
    char *text = nw_read_file(path, NULL);
    snprintf(token, sizeof(token), "%s", text ? text : "");
    free(text);
    token[strcspn(token, "\r\n")] = '\0';

    struct rogue r;
    memset(&r, 0, sizeof(r));
    r.capture_id = ny.op_id;
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    snprintf(path, sizeof(path), "%s/vmrogue.state", f->srv.dir);
    struct cp_error e = {{0}, {0}, {0}};
    r.stop_fd = eventfd(0, EFD_CLOEXEC);
    if (!NW_CHECK(agent_state_open(path, &r.state, &e) == CP_OK && r.stop_fd >= 0,
                  "rogue state: %s", e.message))
        goto out;
    struct channel_handler h = {
        .ctx = &r, .on_welcome = rogue_welcome, .on_message = rogue_message};
    struct rogue_run run = {.r = &r,
                            .opt = {.host = "127.0.0.1",
                                    .port = (unsigned)f->srv.port,
                                    .token = token,
                                    .state = &r.state,
                                    .handler = &h,
                                    .stop_fd = r.stop_fd,
                                    .backoff_min_ms = 100,
                                    .backoff_max_ms = 500,
                                    .connect_timeout_ms = 5000}};
    pthread_t th;
    if (!NW_CHECK(pthread_create(&th, NULL, rogue_main, &run) == 0, "pthread_create"))
        goto out;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += WAIT_S;
    pthread_mutex_lock(&r.mu);
    while (r.replies < 2)
        if (pthread_cond_timedwait(&r.cv, &r.mu, &until) != 0)
            break;
    pthread_mutex_unlock(&r.mu);
    uint64_t one = 1;
    NW_CHECK(write(r.stop_fd, &one, sizeof(one)) == sizeof(one), "cannot stop the rogue");
    pthread_join(th, NULL);
    NW_CHECK(r.run_err == CP_OK, "the rogue's channel ended with %s", cp_err_name(r.run_err));

    NW_CHECK(r.sent == 2 && r.replies == 2, "rogue sent %d reports, got %d replies", r.sent,
             r.replies);
    for (int i = 0; i < 2 && i < r.replies; i++) {
        NW_CHECK(r.reply_seq[i] == r.seqs[i] && !r.reply_ok[i] &&
                     strcmp(r.reply_code[i], PROTO_REPLY_NOT_YOUR_SESSION) == 0,
                 "reply %d: seq %lld ok %d code '%s', want seq %lld ok 0 code NotYourSession", i,
                 (long long)r.reply_seq[i], r.reply_ok[i], r.reply_code[i], (long long)r.seqs[i]);
    }
    char needle[200];
    snprintf(needle, sizeof(needle), "event=report_refused agent=%s type=completed", id_b);
    NW_CHECK(nw_file_count_lines(f->srv.log_file, needle) == 1, "no '%s' in the server log",
             needle);
    snprintf(needle, sizeof(needle), "event=report_refused agent=%s type=error", id_b);
    NW_CHECK(nw_file_count_lines(f->srv.log_file, needle) == 1, "no '%s' in the server log",
             needle);

    /* A's capture is as it was, and still A's to end. */
    nw_capture_is(&f->srv, f->nw, "ny", "Running", NULL);
    send_udp(udp_base + 6, "mine");
    if (nw_capture_stop(&f->srv, f->nw, "ny", loc, sizeof(loc), NULL, 0) == 0 &&
        nw_stop_done(&f->srv, loc, WAIT_S))
        nw_capture_is(&f->srv, f->nw, "ny", "Stopped", "Manual");
    if (file_final(f, "ny", path, sizeof(path)))
        expect_packets(path, "mine", NPKT);
out:
    if (r.stop_fd >= 0)
        close(r.stop_fd);
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
}

/* The cases that need one server and one agent as they are. */
static void cases_one_agent(void)
{
    struct fx f;
    char id[64];
    pid_t agent = -1;
    if (fx_init(&f, 30) != 0 || nw_agent_add(&f.srv, "vmx", id, sizeof(id)) != 0)
        goto out;
    agent = nw_agent_start(&f.srv, agent_bin, "vmx", "lo");
    if (!NW_CHECK(nw_agent_wait_connected(&f.srv, id, 1, WAIT_MS), "agent vmx never connected"))
        goto out;
    case_time_limit(&f, "vmx");
    case_delete_running(&f, "vmx");
    case_not_your_session(&f, "vmx");
out:
    if (agent > 0)
        NW_CHECK(nw_agent_stop(agent) == 0, "agent vmx did not exit 0");
    fx_done(&f);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s NETWATCHD NETWATCH_AGENT [CASE]\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    netwatchd_bin = argv[1];
    agent_bin = argv[2];
    udp_base = 30000 + (int)(getpid() % 3000) * 10; /* 10 ports each */
    /* One case (or group) at a time, each on a server of its own; a name on the command line
     * runs only that one. */
    static const struct {
        const char *name;
        void (*run)(void);
    } cases[] = {{"server_killed", case_server_killed},
                 {"agent_absent", case_agent_absent},
                 {"one_agent", cases_one_agent}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (argc > 3 && strcmp(argv[3], cases[i].name) != 0)
            continue;
        int before = nw_failures;
        long long t0 = nw_now_ms();
        cases[i].run();
        printf("%s %s (%lld ms)\n", nw_failures == before ? "ok" : "FAIL", cases[i].name,
               nw_now_ms() - t0);
        fflush(stdout);
    }
    printf("%s agent_faults: %d failure(s)\n", nw_failures ? "FAIL" : "ok", nw_failures);
    return nw_failures ? 1 : 0;
}
