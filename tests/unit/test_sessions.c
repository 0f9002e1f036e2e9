/*
 * Check suite for captures run by agents (core/sessions.c, db/session.c, db/outbox.c and the
 * 0004 migration) on a throwaway store, with a recording agent port in place of the hub: the
 * outbox rows a create, stop or delete owes; acks, progress and ends applied once by seq; the
 * agent speaking only for its own sessions; scale-set fan-out by scope and the aggregate rule;
 * the timers (dispatch deadline, backstop).
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/agents.h"
#include "core/core.h"
#include "db/migrations.h"

#define SUB "0b7c4a4e-1111-4a4a-8a8a-000000000001"
#define VM1                                                                                        \
    "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
#define SS1                                                                                        \
    "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.Compute/"                       \
    "virtualMachineScaleSets/ss1"
#define PROPS_VM "{\"target\":\"" VM1 "\",\"targetType\":\"AzureVM\"}"
#define PROPS_SS "{\"target\":\"" SS1 "\",\"targetType\":\"AzureVMSS\"}"

#define MAX_SENT 64

static struct db_store *store;
static struct core *core;
static char agent_vm[40], agent_ss[3][40];

/* The fake port: every command core hands to an agent, in order. */
static pthread_mutex_t sent_mu = PTHREAD_MUTEX_INITIALIZER;
static struct db_command sent[MAX_SENT];
static int n_sent;

static enum cp_err fake_send(void *ctx, const struct db_command *cmd)
{
    (void)ctx;
    pthread_mutex_lock(&sent_mu);
    if (n_sent < MAX_SENT) {
        sent[n_sent] = *cmd;
        sent[n_sent].spec_json = NULL;
        n_sent++;
    }
    pthread_mutex_unlock(&sent_mu);
    return CP_OK;
}

static const struct core_agent_port port = {NULL, fake_send};

static void reg(const char *rid, const char *instance, const char *token, char *id)
{
    struct db_agent a;
    ck_assert_int_eq(core_agent_register(store, rid, instance, token, &a, NULL), CP_OK);
    snprintf(id, 40, "%s", a.id);
    db_agent_clear(&a);
}

static void setup(void)
{
    struct db_store_options o = {.path = ":memory:", .readers = 2, .busy_timeout_ms = 0};
    ck_assert_int_eq(db_store_open(&o, &store, NULL), CP_OK);
    ck_assert_int_eq(core_new(store, &port, &core), CP_OK);
    struct core_watcher_ref ref = {SUB, "rg1", "nw1"};
    struct db_watcher w;
    int created;
    ck_assert_int_eq(core_watcher_put(core, &ref, "westus", "{}", NULL, &w, &created, NULL), CP_OK);
    db_watcher_clear(&w);
    reg(VM1, NULL, "nwa_1111111111111111111111111111111111111111111111111111111111111111",
        agent_vm);
    reg(SS1, "0", "nwa_2222222222222222222222222222222222222222222222222222222222222222",
        agent_ss[0]);
    reg(SS1, "1", "nwa_3333333333333333333333333333333333333333333333333333333333333333",
        agent_ss[1]);
    reg(SS1, "2", "nwa_4444444444444444444444444444444444444444444444444444444444444444",
        agent_ss[2]);
    n_sent = 0;
}

static void teardown(void)
{
    core_free(core);
    db_store_close(store);
}

static const struct core_watcher_ref parent = {SUB, "rg1", "nw1"};

/* Creates capture name (VM, or the scale set with include/exclude), dispatched; op id out. */
static void create(const char *name, int scale_set, const char *const *inc, size_t n_inc,
                   const char *const *exc, size_t n_exc, int64_t limit_ms, char *op)
{
    struct core_capture_new req = {name, scale_set ? SS1 : VM1, scale_set ? PROPS_SS : PROPS_VM,
                                   "2024-07-01"};
    struct core_capture_run run = {scale_set, inc, n_inc, exc, n_exc, limit_ms};
    struct db_capture cap;
    struct db_watcher w;
    ck_assert_int_eq(
        core_capture_create_on(core, &parent, &req, &run, NULL, &cap, &w, op, 40, NULL), CP_OK);
    db_capture_clear(&cap);
    db_watcher_clear(&w);
    core_drain(core);
}

static struct db_capture get(const char *name)
{
    struct db_capture cap;
    struct db_watcher w;
    ck_assert_int_eq(core_capture_get(core, &parent, name, &cap, &w, NULL), CP_OK);
    db_watcher_clear(&w);
    return cap;
}

static struct db_operation op_get(const char *id)
{
    struct db_operation op;
    ck_assert_int_eq(core_operation_get(core, SUB, id, &op, NULL), CP_OK);
    return op;
}

/* The command sent to agent of this kind (the latest), or NULL. */
static const struct db_command *sent_to(const char *agent, const char *kind)
{
    const struct db_command *found = NULL;
    pthread_mutex_lock(&sent_mu);
    for (int i = 0; i < n_sent; i++)
        if (strcmp(sent[i].agent_id, agent) == 0 && strcmp(sent[i].kind, kind) == 0)
            found = &sent[i];
    pthread_mutex_unlock(&sent_mu);
    return found;
}

static enum cp_err count_owed(const struct db_command *cmd, void *arg)
{
    (void)cmd;
    (*(int *)arg)++;
    return CP_OK;
}

static int owed(const char *agent)
{
    int n = 0;
    ck_assert_int_eq(core_agent_owed(core, agent, count_owed, &n, NULL), CP_OK);
    return n;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct late_ack {
    char command_id[40];
    int delay_ms;
};

static void *ack_later(void *arg)
{
    struct late_ack *la = arg;
    struct timespec d = {0, (long)la->delay_ms * 1000000L};
    nanosleep(&d, NULL);
    int applied = 0;
    ck_assert_int_eq(
        core_capture_acked(core, agent_vm, la->command_id, 1, NULL, NULL, 0, 7, &applied, NULL),
        CP_OK);
    return NULL;
}

/* A poll of a young create waits for the agent's ack and answers as soon as it is committed;
 * without one it gives up at its budget; and it never waits on an operation that has ended. */
START_TEST(operation_wait_answers_when_the_ack_lands)
{
    char op[40];
    create("pc1", 0, NULL, 0, NULL, 0, 60000, op);
    struct late_ack la = {.delay_ms = 150};
    snprintf(la.command_id, sizeof(la.command_id), "%s", sent_to(agent_vm, "start")->id);

    /* No ack: InProgress after about the budget. */
    struct db_operation o;
    int64_t t0 = mono_ms();
    ck_assert_int_eq(core_operation_wait(core, SUB, op, 100, &o, NULL), CP_OK);
    int64_t took = mono_ms() - t0;
    ck_assert_str_eq(o.status, "InProgress");
    ck_assert_int_ge(took, 95);
    ck_assert_int_lt(took, 1000);
    db_operation_clear(&o);

    /* The ack comes 150 ms in: answered then, long before the 3 s budget. */
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, ack_later, &la), 0);
    t0 = mono_ms();
    ck_assert_int_eq(core_operation_wait(core, SUB, op, 3000, &o, NULL), CP_OK);
    took = mono_ms() - t0;
    pthread_join(th, NULL);
    ck_assert_str_eq(o.status, "Succeeded");
    ck_assert_int_ge(took, 100);
    ck_assert_int_lt(took, 1500);
    db_operation_clear(&o);

    /* Ended: answered at once. */
    t0 = mono_ms();
    ck_assert_int_eq(core_operation_wait(core, SUB, op, 3000, &o, NULL), CP_OK);
    ck_assert_int_lt(mono_ms() - t0, 500);
    ck_assert_str_eq(o.status, "Succeeded");
    db_operation_clear(&o);
}
END_TEST

START_TEST(vm_create_owes_one_start)
{
    char op[40];
    create("pc1", 0, NULL, 0, NULL, 0, 60000, op);
    const struct db_command *start = sent_to(agent_vm, "start");
    ck_assert_ptr_nonnull(start);
    ck_assert_str_eq(start->name, "pc1");
    /* A VM's session and start are known by the create operation's id. */
    ck_assert_str_eq(start->id, op);
    ck_assert_str_eq(start->session_id, op);
    struct db_capture cap = get("pc1");
    ck_assert_str_eq(cap.provisioning_state, "Updating");
    ck_assert_uint_eq(cap.n_sessions, 1);
    ck_assert_str_eq(cap.sessions[0].id, start->session_id);
    ck_assert_str_eq(cap.sessions[0].status, "NotStarted");
    ck_assert_str_eq(cap.sessions[0].instance_id, "");
    ck_assert_int_gt(cap.sessions[0].dispatched_ms, 0); /* handed to the channel */
    db_capture_clear(&cap);
    ck_assert_int_eq(owed(agent_vm), 1); /* until acked */
}
END_TEST

START_TEST(ack_progress_end_applied_once)
{
    char op[40];
    create("pc1", 0, NULL, 0, NULL, 0, 60000, op);
    struct db_command start = *sent_to(agent_vm, "start");
    int applied = 0;
    ck_assert_int_eq(core_capture_acked(core, agent_vm, start.id, 1, NULL, NULL, 1700000000000, 1,
                                        &applied, NULL),
                     CP_OK);
    ck_assert_int_eq(applied, 1);
    ck_assert_int_eq(owed(agent_vm), 0);
    struct db_capture cap = get("pc1");
    ck_assert_str_eq(cap.provisioning_state, "Succeeded");
    ck_assert_str_eq(cap.capture_status, "Running");
    ck_assert_int_eq(cap.capture_start_ms, 1700000000000);
    ck_assert_int_gt(cap.sessions[0].backstop_ms, 0);
    db_capture_clear(&cap);
    struct db_operation o = op_get(op);
    ck_assert_str_eq(o.status, "Succeeded");
    db_operation_clear(&o);
    /* The same report again: nothing applied. */
    ck_assert_int_eq(
        core_capture_acked(core, agent_vm, start.id, 0, "CaptureFailed", "x", 0, 1, &applied, NULL),
        CP_OK);
    ck_assert_int_eq(applied, 0);
    ck_assert_int_eq(core_capture_progress(core, agent_vm, start.session_id, 10, 2000, 1, 1,
                                           1700000000500, 2, NULL),
                     CP_OK);
    cap = get("pc1");
    ck_assert_int_eq(cap.sessions[0].packets, 10);
    ck_assert_int_eq(cap.sessions[0].bytes, 2000);
    ck_assert_int_eq(cap.sessions[0].first_packet_ms, 1700000000500);
    ck_assert_int_gt(cap.sessions[0].progress_ms, 0);
    ck_assert_str_eq(cap.capture_status, "Running");
    db_capture_clear(&cap);
    ck_assert_int_eq(core_capture_ended(core, agent_vm, start.session_id, "TimeExceeded", NULL,
                                        NULL, 3, &applied, NULL),
                     CP_OK);
    ck_assert_int_eq(applied, 1);
    cap = get("pc1");
    ck_assert_str_eq(cap.capture_status, "Stopped");
    ck_assert_str_eq(cap.stop_reason, "TimeExceeded");
    ck_assert_int_eq(cap.unfinished, 0);
    ck_assert_int_gt(cap.sessions[0].ended_ms, 0);
    db_capture_clear(&cap);
}
END_TEST

/* ack.filter is kept per session (migration 0006) and read back by core_capture_filters; an
 * ack without one, or a failed start, leaves none; a repeated ack changes nothing. */
START_TEST(ack_filter_kept_per_session)
{
    char op[40];
    create("pc1", 0, NULL, 0, NULL, 0, 60000, op);
    struct db_command start = *sent_to(agent_vm, "start");
    struct db_capture cap = get("pc1");
    struct core_session_filters f;
    ck_assert_int_eq(core_capture_filters(core, cap.id, &f, NULL), CP_OK);
    ck_assert_uint_eq(f.n, 0); /* not said yet */
    core_session_filters_clear(&f);
    struct core_report r = {.kind = CORE_REPORT_ACK,
                            .agent_id = agent_vm,
                            .id = start.id,
                            .ok = 1,
                            .seq = 1,
                            .filter = "udp and (src port 53 or dst port 53)"};
    ck_assert_int_eq(core_reports_apply(core, &r, 1), CP_OK);
    ck_assert_int_eq(r.err, CP_OK);
    ck_assert_int_eq(r.applied, 1);
    ck_assert_int_eq(core_capture_filters(core, cap.id, &f, NULL), CP_OK);
    ck_assert_uint_eq(f.n, 1);
    ck_assert_str_eq(f.v[0].session_id, start.session_id);
    ck_assert_str_eq(core_session_filter_of(&f, start.session_id),
                     "udp and (src port 53 or dst port 53)");
    ck_assert_ptr_null(core_session_filter_of(&f, "no-such-session"));
    core_session_filters_clear(&f);
    /* The same ack again (same seq) with another text: not applied, the first one stays. */
    r.filter = "tcp";
    ck_assert_int_eq(core_reports_apply(core, &r, 1), CP_OK);
    ck_assert_int_eq(r.applied, 0);
    ck_assert_int_eq(core_capture_filters(core, cap.id, &f, NULL), CP_OK);
    ck_assert_str_eq(f.v[0].expression, "udp and (src port 53 or dst port 53)");
    core_session_filters_clear(&f);
    db_capture_clear(&cap);

    /* A failed start says no expression. */
    char first[40];
    snprintf(first, sizeof(first), "%s", start.id);
    create("pc2", 0, NULL, 0, NULL, 0, 60000, op);
    start = *sent_to(agent_vm, "start");
    ck_assert_str_ne(start.id, first);
    struct core_report bad = {.kind = CORE_REPORT_ACK,
                              .agent_id = agent_vm,
                              .id = start.id,
                              .ok = 0,
                              .code = "CaptureFailed",
                              .message = "too big",
                              .seq = 2,
                              .filter = "ignored"};
    ck_assert_int_eq(core_reports_apply(core, &bad, 1), CP_OK);
    ck_assert_msg(bad.err == CP_OK && bad.applied == 1, "err %d applied %d: %s", (int)bad.err,
                  bad.applied, bad.e.message);
    cap = get("pc2");
    ck_assert_str_eq(cap.sessions[0].status, "Error");
    ck_assert_int_eq(core_capture_filters(core, cap.id, &f, NULL), CP_OK);
    ck_assert_uint_eq(f.n, 0);
    core_session_filters_clear(&f);
    db_capture_clear(&cap);
}
END_TEST

START_TEST(other_agents_reports_refused)
{
    char op[40];
    create("pc1", 0, NULL, 0, NULL, 0, 60000, op);
    struct db_command start = *sent_to(agent_vm, "start");
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(core_capture_acked(core, agent_ss[0], start.id, 1, NULL, NULL, 0, 1, NULL, &e),
                     CP_EFORBIDDEN);
    ck_assert_str_eq(e.code, "NotYourSession");
    ck_assert_int_eq(
        core_capture_ended(core, agent_ss[0], start.session_id, "Manual", NULL, NULL, 2, NULL, &e),
        CP_EFORBIDDEN);
    ck_assert_int_eq(
        core_capture_progress(core, agent_ss[0], start.session_id, 1, 1, 0, 1, 0, 3, &e),
        CP_EFORBIDDEN);
    struct db_capture cap = get("pc1");
    ck_assert_str_eq(cap.provisioning_state, "Updating");
    ck_assert_int_eq(cap.sessions[0].packets, 0);
    db_capture_clear(&cap);
}
END_TEST

START_TEST(stop_waits_for_the_end)
{
    char op[40];
    create("pc1", 0, NULL, 0, NULL, 0, 60000, op);
    struct db_command start = *sent_to(agent_vm, "start");
    ck_assert_int_eq(core_capture_acked(core, agent_vm, start.id, 1, NULL, NULL, 0, 1, NULL, NULL),
                     CP_OK);
    struct db_operation stop;
    ck_assert_int_eq(core_capture_stop(core, &parent, "pc1", "2024-07-01", &stop, NULL), CP_OK);
    ck_assert_str_eq(stop.status, "InProgress");
    core_drain(core);
    const struct db_command *cmd = sent_to(agent_vm, "stop");
    ck_assert_ptr_nonnull(cmd);
    ck_assert_str_eq(cmd->stop_reason, "Manual");
    ck_assert_str_eq(cmd->id, stop.id); /* a VM's stop: the operation's id */
    ck_assert_str_eq(cmd->session_id, start.session_id);
    ck_assert_int_eq(owed(agent_vm), 1);
    /* The stop's own ack does not settle it: only the session's end does. */
    ck_assert_int_eq(core_capture_acked(core, agent_vm, cmd->id, 1, NULL, NULL, 0, 2, NULL, NULL),
                     CP_OK);
    ck_assert_int_eq(owed(agent_vm), 1);
    /* A second stop follows the same operation. */
    struct db_operation again;
    ck_assert_int_eq(core_capture_stop(core, &parent, "pc1", "2024-07-01", &again, NULL), CP_OK);
    ck_assert_str_eq(again.id, stop.id);
    db_operation_clear(&again);
    ck_assert_int_eq(
        core_capture_ended(core, agent_vm, start.session_id, "Manual", NULL, NULL, 3, NULL, NULL),
        CP_OK);
    ck_assert_int_eq(owed(agent_vm), 0); /* the end settles the stop */
    struct db_operation o = op_get(stop.id);
    ck_assert_str_eq(o.status, "Succeeded");
    db_operation_clear(&o);
    db_operation_clear(&stop);
    struct db_capture cap = get("pc1");
    ck_assert_str_eq(cap.capture_status, "Stopped");
    ck_assert_str_eq(cap.stop_reason, "Manual");
    ck_assert_str_eq(cap.stop_operation_id, "");
    db_capture_clear(&cap);
}
END_TEST

START_TEST(stop_before_start_ends_at_once)
{
    char op[40];
    create("pc1", 0, NULL, 0, NULL, 0, 60000, op);
    struct db_operation stop;
    ck_assert_int_eq(core_capture_stop(core, &parent, "pc1", "2024-07-01", &stop, NULL), CP_OK);
    ck_assert_str_eq(stop.status, "Succeeded");
    db_operation_clear(&stop);
    struct db_capture cap = get("pc1");
    ck_assert_str_eq(cap.provisioning_state, "Failed");
    ck_assert_str_eq(cap.capture_status, "Stopped");
    ck_assert_str_eq(cap.sessions[0].status, "Stopped");
    db_capture_clear(&cap);
    struct db_operation o = op_get(op);
    ck_assert_str_eq(o.status, "Failed");
    ck_assert_str_eq(o.error_code, "Canceled");
    db_operation_clear(&o);
    /* The start had been handed to the channel: a stop is owed in case it got through. */
    core_drain(core);
    ck_assert_ptr_nonnull(sent_to(agent_vm, "stop"));
}
END_TEST

START_TEST(delete_owes_stop_that_outlives_capture)
{
    char op[40];
    create("pc1", 0, NULL, 0, NULL, 0, 60000, op);
    struct db_command start = *sent_to(agent_vm, "start");
    ck_assert_int_eq(core_capture_acked(core, agent_vm, start.id, 1, NULL, NULL, 0, 1, NULL, NULL),
                     CP_OK);
    struct db_operation del;
    ck_assert_int_eq(core_capture_delete(core, &parent, "pc1", NULL, "2024-07-01", &del, NULL),
                     CP_OK);
    db_operation_clear(&del);
    core_drain(core);
    const struct db_command *cmd = sent_to(agent_vm, "stop");
    ck_assert_ptr_nonnull(cmd);
    ck_assert_str_eq(cmd->stop_reason, "SessionDeleted");
    ck_assert_int_eq(owed(agent_vm), 1);
    int applied = 0;
    ck_assert_int_eq(core_capture_ended(core, agent_vm, start.session_id, "SessionDeleted", NULL,
                                        NULL, 2, &applied, NULL),
                     CP_OK);
    ck_assert_int_eq(owed(agent_vm), 0);
}
END_TEST

static int has_instance(const struct db_capture *cap, const char *inst)
{
    for (size_t i = 0; i < cap->n_sessions; i++)
        if (strcmp(cap->sessions[i].instance_id, inst) == 0)
            return 1;
    return 0;
}

START_TEST(scale_set_fans_out_by_scope)
{
    char op[40];
    const char *inc[] = {"0", "2"}, *exc[] = {"1"}, *none[] = {"7"};
    create("all", 1, NULL, 0, NULL, 0, 60000, op);
    struct db_capture cap = get("all");
    ck_assert_uint_eq(cap.n_sessions, 3);
    db_capture_clear(&cap);
    create("inc", 1, inc, 2, NULL, 0, 60000, op);
    cap = get("inc");
    ck_assert_uint_eq(cap.n_sessions, 2);
    ck_assert(has_instance(&cap, "0") && has_instance(&cap, "2") && !has_instance(&cap, "1"));
    db_capture_clear(&cap);
    create("exc", 1, NULL, 0, exc, 1, 60000, op);
    cap = get("exc");
    ck_assert_uint_eq(cap.n_sessions, 2);
    ck_assert(has_instance(&cap, "0") && has_instance(&cap, "2") && !has_instance(&cap, "1"));
    db_capture_clear(&cap);
    ck_assert_ptr_nonnull(sent_to(agent_ss[0], "start"));
    ck_assert_ptr_nonnull(sent_to(agent_ss[2], "start"));
    /* Nothing selected: the create fails like a VM without an agent. */
    create("none", 1, none, 1, NULL, 0, 60000, op);
    cap = get("none");
    ck_assert_uint_eq(cap.n_sessions, 0);
    ck_assert_str_eq(cap.provisioning_state, "Failed");
    db_capture_clear(&cap);
    struct db_operation o = op_get(op);
    ck_assert_str_eq(o.status, "Failed");
    ck_assert_str_eq(o.error_code, "AgentNotConnected");
    ck_assert_ptr_nonnull(strstr(o.error_message, "scale set"));
    db_operation_clear(&o);
}
END_TEST

/* The session id of capture name's session on instance inst. */
static void session_of(const char *name, const char *inst, char *out)
{
    struct db_capture cap = get(name);
    out[0] = '\0';
    for (size_t i = 0; i < cap.n_sessions; i++)
        if (strcmp(cap.sessions[i].instance_id, inst) == 0)
            snprintf(out, 40, "%s", cap.sessions[i].id);
    db_capture_clear(&cap);
    ck_assert_str_ne(out, "");
}

/* The start command of a session, by asking what is owed (a start is owed until acked). */
struct find_start {
    const char *session;
    char id[40];
};

static enum cp_err find_start_cb(const struct db_command *cmd, void *arg)
{
    struct find_start *f = arg;
    if (strcmp(cmd->session_id, f->session) == 0 && strcmp(cmd->kind, "start") == 0)
        snprintf(f->id, sizeof(f->id), "%s", cmd->id);
    return CP_OK;
}

static void ack_start(const char *agent, const char *session, int ok, int64_t seq)
{
    struct find_start f = {session, ""};
    ck_assert_int_eq(core_agent_owed(core, agent, find_start_cb, &f, NULL), CP_OK);
    ck_assert_str_ne(f.id, "");
    ck_assert_int_eq(core_capture_acked(core, agent, f.id, ok, ok ? NULL : "CaptureFailed",
                                        ok ? NULL : "no such interface", 0, seq, NULL, NULL),
                     CP_OK);
}

START_TEST(scale_set_aggregate)
{
    char op[40], s0[40], s1[40], s2[40];
    create("pc", 1, NULL, 0, NULL, 0, 60000, op);
    session_of("pc", "0", s0);
    session_of("pc", "1", s1);
    session_of("pc", "2", s2);
    ack_start(agent_ss[0], s0, 1, 1);
    struct db_capture cap = get("pc");
    ck_assert_str_eq(cap.provisioning_state, "Succeeded"); /* the first start is enough */
    ck_assert_str_eq(cap.capture_status, "Running");
    db_capture_clear(&cap);
    ack_start(agent_ss[1], s1, 0, 1); /* refused on instance 1 */
    ack_start(agent_ss[2], s2, 1, 1);
    cap = get("pc");
    ck_assert_str_eq(cap.capture_status, "Running");
    db_capture_clear(&cap);
    ck_assert_int_eq(core_capture_ended(core, agent_ss[0], s0, "Manual", NULL, NULL, 2, NULL, NULL),
                     CP_OK);
    cap = get("pc");
    ck_assert_str_eq(cap.capture_status, "Running"); /* instance 2 still runs */
    db_capture_clear(&cap);
    ck_assert_int_eq(core_capture_ended(core, agent_ss[2], s2, NULL, "LocalFileFailed", "disk full",
                                        2, NULL, NULL),
                     CP_OK);
    cap = get("pc");
    ck_assert_str_eq(cap.capture_status, "Stopped"); /* Error only when every one failed */
    ck_assert_str_eq(cap.stop_reason, "Manual");
    ck_assert_str_eq(cap.capture_errors_json, "[\"CaptureFailed\",\"LocalFileFailed\"]");
    ck_assert_int_eq(cap.unfinished, 0);
    db_capture_clear(&cap);

    create("bad", 1, NULL, 0, NULL, 0, 60000, op);
    session_of("bad", "0", s0);
    session_of("bad", "1", s1);
    session_of("bad", "2", s2);
    ack_start(agent_ss[0], s0, 1, 3);
    ack_start(agent_ss[1], s1, 1, 3);
    ack_start(agent_ss[2], s2, 1, 3);
    for (int i = 0; i < 3; i++) {
        const char *s = i == 0 ? s0 : i == 1 ? s1 : s2;
        ck_assert_int_eq(
            core_capture_ended(core, agent_ss[i], s, NULL, "CaptureFailed", NULL, 4, NULL, NULL),
            CP_OK);
    }
    cap = get("bad");
    ck_assert_str_eq(cap.capture_status, "Error");
    ck_assert_str_eq(cap.capture_errors_json, "[\"CaptureFailed\"]");
    db_capture_clear(&cap);
}
END_TEST

START_TEST(dispatch_deadline_fails_unstarted)
{
    char op[40];
    create("pc1", 0, NULL, 0, NULL, 0, 60000, op);
    struct timespec ts = {0, 5 * 1000000L};
    nanosleep(&ts, NULL);
    ck_assert_int_eq(core_sessions_sweep(core, 1, 0, NULL), CP_OK);
    core_drain(core);
    struct db_capture cap = get("pc1");
    ck_assert_str_eq(cap.provisioning_state, "Failed");
    ck_assert_str_eq(cap.sessions[0].status, "Error");
    ck_assert_str_eq(cap.sessions[0].error_code, "AgentStopped");
    db_capture_clear(&cap);
    struct db_operation o = op_get(op);
    ck_assert_str_eq(o.status, "Failed");
    ck_assert_str_eq(o.error_code, "AgentNotConnected");
    db_operation_clear(&o);
    /* The start had gone out: a stop follows it, in case the agent did start. */
    ck_assert_ptr_nonnull(sent_to(agent_vm, "stop"));
}
END_TEST

START_TEST(backstop_ends_silent_session)
{
    char op[40];
    create("pc1", 0, NULL, 0, NULL, 0, 1, op); /* a 1 ms time limit */
    struct db_command start = *sent_to(agent_vm, "start");
    ck_assert_int_eq(core_capture_acked(core, agent_vm, start.id, 1, NULL, NULL, 0, 1, NULL, NULL),
                     CP_OK);
    /* Within the grace: untouched. */
    ck_assert_int_eq(core_sessions_sweep(core, 60000, 60000, NULL), CP_OK);
    struct db_capture cap = get("pc1");
    ck_assert_str_eq(cap.capture_status, "Running");
    db_capture_clear(&cap);
    struct timespec ts = {0, 20 * 1000000L};
    nanosleep(&ts, NULL);
    ck_assert_int_eq(core_sessions_sweep(core, 60000, 0, NULL), CP_OK);
    core_drain(core);
    cap = get("pc1");
    ck_assert_str_eq(cap.capture_status, "Error");
    ck_assert_str_eq(cap.capture_errors_json, "[\"AgentStopped\"]");
    ck_assert_int_eq(cap.unfinished, 0);
    db_capture_clear(&cap);
    const struct db_command *stop = sent_to(agent_vm, "stop");
    ck_assert_ptr_nonnull(stop);
    ck_assert_str_eq(stop->stop_reason, "AgentStopped");
    /* The agent's late end changes nothing but settles the stop. */
    ck_assert_int_eq(core_capture_ended(core, agent_vm, start.session_id, "TimeExceeded", NULL,
                                        NULL, 2, NULL, NULL),
                     CP_OK);
    ck_assert_int_eq(owed(agent_vm), 0);
    cap = get("pc1");
    ck_assert_str_eq(cap.capture_status, "Error");
    db_capture_clear(&cap);
}
END_TEST

START_TEST(reconcile_on_hello)
{
    char op[40], s_lost[40], s_kept[40], s_fin[40], s_stopped[40];
    create("lost", 0, NULL, 0, NULL, 0, 60000, op);
    create("kept", 0, NULL, 0, NULL, 0, 60000, op);
    create("fin", 0, NULL, 0, NULL, 0, 60000, op);
    create("stopped", 0, NULL, 0, NULL, 0, 60000, op);
    session_of("lost", "", s_lost);
    session_of("kept", "", s_kept);
    session_of("fin", "", s_fin);
    session_of("stopped", "", s_stopped);
    ack_start(agent_vm, s_lost, 1, 1);
    ack_start(agent_vm, s_kept, 1, 2);
    ack_start(agent_vm, s_fin, 1, 3);
    ack_start(agent_vm, s_stopped, 1, 4);
    /* Stopped while the agent was away: the stop is owed. */
    struct db_operation stop;
    ck_assert_int_eq(core_capture_stop(core, &parent, "stopped", "2024-07-01", &stop, NULL), CP_OK);
    db_operation_clear(&stop);
    ck_assert_int_eq(
        core_capture_ended(core, agent_vm, s_stopped, "Manual", NULL, NULL, 5, NULL, NULL), CP_OK);
    const char *running[] = {s_kept, s_stopped, "00000000-0000-4000-8000-000000000001"};
    const char *finished[] = {s_fin};
    char stops[8][40];
    size_t n_stop = 0;
    ck_assert_int_eq(
        core_agent_reconcile(core, agent_vm, running, 3, finished, 1, stops, 8, &n_stop, NULL),
        CP_OK);
    ck_assert_uint_eq(n_stop, 2); /* the stopped one and the one never known */
    ck_assert_str_eq(stops[0], s_stopped);
    ck_assert_str_eq(stops[1], "00000000-0000-4000-8000-000000000001");
    struct db_capture cap = get("lost");
    ck_assert_str_eq(cap.capture_status, "Error");
    ck_assert_str_eq(cap.capture_errors_json, "[\"AgentStopped\"]");
    ck_assert_ptr_nonnull(strstr(cap.sessions[0].error_message, "no longer holds"));
    db_capture_clear(&cap);
    cap = get("kept");
    ck_assert_str_eq(cap.capture_status, "Running");
    db_capture_clear(&cap);
    cap = get("fin");
    ck_assert_str_eq(cap.capture_status, "Running"); /* its end report follows */
    db_capture_clear(&cap);
    /* A stop owed for a session the agent does not hold is settled. */
    struct db_operation st2;
    ck_assert_int_eq(core_capture_stop(core, &parent, "kept", "2024-07-01", &st2, NULL), CP_OK);
    db_operation_clear(&st2);
    ck_assert_int_eq(owed(agent_vm), 1);
    ck_assert_int_eq(
        core_agent_reconcile(core, agent_vm, NULL, 0, finished, 1, stops, 8, &n_stop, NULL), CP_OK);
    ck_assert_int_eq(owed(agent_vm), 0);
    cap = get("kept");
    ck_assert_str_eq(cap.capture_status, "Error");
    db_capture_clear(&cap);
}
END_TEST

/* A database of schema 3 with a capture still starting and one being stopped: 0004 carries
 * them over as sessions with their owed commands, under the ids the agents were given. */
static enum cp_err exec_sql(void *arg, struct db_conn *c)
{
    const char *sql = arg;
    return sqlite3_exec(db_conn_handle(c), sql, NULL, NULL, NULL) == SQLITE_OK ? CP_OK : CP_EIO;
}

static enum cp_err exec_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    return exec_sql(arg, c);
}

static enum cp_err count_cb(const struct db_command *cmd, void *arg)
{
    char *kinds = arg;
    strncat(kinds, cmd->kind, 8);
    strncat(kinds, ":", 2);
    strncat(kinds, cmd->id, 40);
    strncat(kinds, ";", 2);
    return CP_OK;
}

START_TEST(migration_carries_agent_captures_over)
{
    char dir[] = "/tmp/nwsessXXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/t.db", dir);
    struct db_store_options o = {.path = path, .readers = 1, .busy_timeout_ms = 0};
    struct db_store *old;
    ck_assert_int_eq(db_store_open_with(&o, db_migrations, 3, &old, NULL), CP_OK);
    static char seed[] =
        "INSERT INTO network_watchers VALUES (1, 's', 'rg', 'nw', 'rg', 'nw', 's', 'westus', '{}',"
        " 'e', 1, 1, 1);"
        "INSERT INTO agents (id, resource_id, resource_key, sub_key, instance_key, token_hash,"
        " created_ms) VALUES ('a1', 'r', 'r', 's', '', 'h', 1);"
        "INSERT INTO packet_captures (id, watcher_id, name_key, name, sub_key, region, target,"
        " properties_json, provisioning_state, capture_status, capture_errors_json, unfinished,"
        " create_operation_id, created_ms, updated_ms, agent_id, stop_operation_id) VALUES"
        " (1, 1, 'a', 'a', 's', 'westus', 't', '{}', 'Updating', 'NotStarted', '[]', 1, 'op-a',"
        " 10, 10, 'a1', NULL),"
        " (2, 1, 'b', 'b', 's', 'westus', 't', '{}', 'Succeeded', 'Running', '[]', 1, 'op-b',"
        " 20, 20, 'a1', 'stop-b');";
    ck_assert_int_eq(db_store_write(old, exec_job, seed, NULL), CP_OK);
    db_store_close(old);
    struct db_store *fresh;
    ck_assert_int_eq(db_store_open(&o, &fresh, NULL), CP_OK);
    struct core *c2;
    ck_assert_int_eq(core_new(fresh, NULL, &c2), CP_OK);
    char kinds[512] = "";
    ck_assert_int_eq(core_agent_owed(c2, "a1", count_cb, kinds, NULL), CP_OK);
    ck_assert_str_eq(kinds, "start:op-a;stop:stop-b;");
    /* The running one's end is applied to its session (its id: the old captureId). */
    ck_assert_int_eq(core_capture_ended(c2, "a1", "op-b", "Manual", NULL, NULL, 1, NULL, NULL),
                     CP_OK);
    kinds[0] = '\0';
    ck_assert_int_eq(core_agent_owed(c2, "a1", count_cb, kinds, NULL), CP_OK);
    ck_assert_str_eq(kinds, "start:op-a;");
    core_free(c2);
    db_store_close(fresh);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* The per-region count of unfinished captures (the capture_quota row of migration 0005, kept
 * by db/) against a count of the rows themselves, in one snapshot. */
struct quota {
    int64_t kept, counted;
};

static enum cp_err quota_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct quota *q = arg;
    enum cp_err err = db_capture_count_unfinished(c, SUB, "westus", &q->kept);
    sqlite3_stmt *st;
    if (err != CP_OK ||
        sqlite3_prepare_v2(db_conn_handle(c),
                           "SELECT count(*) FROM packet_captures WHERE sub_key = '" SUB
                           "' AND region = 'westus' AND unfinished = 1",
                           -1, &st, NULL) != SQLITE_OK)
        return CP_EIO;
    q->counted = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return CP_OK;
}

static int64_t quota_exact(void)
{
    struct quota q = {-1, -2};
    ck_assert_int_eq(db_store_read(store, quota_run, &q, NULL), CP_OK);
    ck_assert_int_eq(q.kept, q.counted);
    return q.kept;
}

START_TEST(unfinished_count_stays_exact)
{
    char op[40];
    ck_assert_int_eq(quota_exact(), 0);
    create("pc1", 0, NULL, 0, NULL, 0, 60000, op);
    struct db_command start1 = *sent_to(agent_vm, "start");
    create("pc2", 0, NULL, 0, NULL, 0, 60000, op);
    struct db_command start2 = *sent_to(agent_vm, "start");
    create("pc3", 0, NULL, 0, NULL, 0, 60000, op);
    create("pc4", 1, NULL, 0, NULL, 0, 60000, op); /* scale set: one row, three sessions */
    ck_assert_int_eq(quota_exact(), 4);
    /* Running still counts; a session's end ends the capture. */
    ck_assert_int_eq(core_capture_acked(core, agent_vm, start1.id, 1, NULL, NULL, 0, 1, NULL, NULL),
                     CP_OK);
    ck_assert_int_eq(quota_exact(), 4);
    ck_assert_int_eq(
        core_capture_ended(core, agent_vm, start1.session_id, "Manual", NULL, NULL, 2, NULL, NULL),
        CP_OK);
    ck_assert_int_eq(quota_exact(), 3);
    /* The same end again (applied before): no change. A failed start ends it too. */
    ck_assert_int_eq(
        core_capture_ended(core, agent_vm, start1.session_id, "Manual", NULL, NULL, 2, NULL, NULL),
        CP_OK);
    ck_assert_int_eq(quota_exact(), 3);
    ck_assert_int_eq(
        core_capture_acked(core, agent_vm, start2.id, 0, "CaptureFailed", "x", 0, 3, NULL, NULL),
        CP_OK);
    ck_assert_int_eq(quota_exact(), 2);
    /* Deleting a finished capture changes nothing; an unfinished one counts no more. */
    struct db_operation o;
    ck_assert_int_eq(core_capture_delete(core, &parent, "pc1", NULL, "2024-07-01", &o, NULL),
                     CP_OK);
    db_operation_clear(&o);
    ck_assert_int_eq(quota_exact(), 2);
    ck_assert_int_eq(core_capture_delete(core, &parent, "pc3", NULL, "2024-07-01", &o, NULL),
                     CP_OK);
    db_operation_clear(&o);
    core_drain(core);
    ck_assert_int_eq(quota_exact(), 1);
    /* The watcher's delete cascades to its captures. */
    create("pc5", 0, NULL, 0, NULL, 0, 60000, op);
    ck_assert_int_eq(quota_exact(), 2);
    ck_assert_int_eq(core_watcher_delete(core, &parent, NULL, "2024-07-01", &o, NULL), CP_OK);
    db_operation_clear(&o);
    core_drain(core);
    ck_assert_int_eq(quota_exact(), 0);
}
END_TEST

/* 0005 fills the counter from the captures already there. */
START_TEST(migration_fills_unfinished_count)
{
    char dir[] = "/tmp/nwsessXXXXXX", path[64];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/t.db", dir);
    struct db_store_options o = {.path = path, .readers = 1, .busy_timeout_ms = 0};
    struct db_store *old;
    ck_assert_int_eq(db_store_open_with(&o, db_migrations, 4, &old, NULL), CP_OK);
    static char seed[] =
        "INSERT INTO network_watchers VALUES (1, '" SUB "', 'rg', 'nw', 'rg', 'nw', '" SUB "',"
        " 'westus', '{}', 'e', 1, 1, 1);"
        "INSERT INTO network_watchers VALUES (2, '" SUB "', 'rg', 'nw2', 'rg', 'nw2', '" SUB "',"
        " 'eastus', '{}', 'e', 1, 1, 1);"
        "INSERT INTO packet_captures (id, watcher_id, name_key, name, sub_key, region, target,"
        " properties_json, provisioning_state, capture_status, capture_errors_json, unfinished,"
        " create_operation_id, created_ms, updated_ms) VALUES"
        " (1, 1, 'a', 'a', '" SUB "', 'westus', 't', '{}', 'Updating', 'NotStarted', '[]', 1,"
        " 'op-a', 1, 1),"
        " (2, 1, 'b', 'b', '" SUB "', 'westus', 't', '{}', 'Succeeded', 'Running', '[]', 1,"
        " 'op-b', 1, 1),"
        " (3, 1, 'c', 'c', '" SUB "', 'westus', 't', '{}', 'Succeeded', 'Stopped', '[]', 0,"
        " 'op-c', 1, 1),"
        " (4, 2, 'd', 'd', '" SUB "', 'eastus', 't', '{}', 'Updating', 'NotStarted', '[]', 1,"
        " 'op-d', 1, 1);";
    ck_assert_int_eq(db_store_write(old, exec_job, seed, NULL), CP_OK);
    db_store_close(old);
    core_free(core);
    db_store_close(store);
    ck_assert_int_eq(db_store_open(&o, &store, NULL), CP_OK);
    ck_assert_int_eq(core_new(store, &port, &core), CP_OK);
    ck_assert_int_eq(quota_exact(), 2);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sessions");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, vm_create_owes_one_start);
    tcase_add_test(tc, ack_progress_end_applied_once);
    tcase_add_test(tc, ack_filter_kept_per_session);
    tcase_add_test(tc, other_agents_reports_refused);
    tcase_add_test(tc, stop_waits_for_the_end);
    tcase_add_test(tc, stop_before_start_ends_at_once);
    tcase_add_test(tc, delete_owes_stop_that_outlives_capture);
    tcase_add_test(tc, scale_set_fans_out_by_scope);
    tcase_add_test(tc, scale_set_aggregate);
    tcase_add_test(tc, dispatch_deadline_fails_unstarted);
    tcase_add_test(tc, backstop_ends_silent_session);
    tcase_add_test(tc, migration_carries_agent_captures_over);
    tcase_add_test(tc, reconcile_on_hello);
    tcase_add_test(tc, operation_wait_answers_when_the_ack_lands);
    tcase_add_test(tc, unfinished_count_stays_exact);
    tcase_add_test(tc, migration_fills_unfinished_count);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
