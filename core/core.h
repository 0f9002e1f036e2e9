/*
 * Domain rules of netwatchd: network watchers, packet-capture sessions and the long-running
 * operations that track them. core/ decides what may happen and records it through db/; it
 * knows neither HTTP nor SQL text. Every mutation is one store job (db_store_write), so it is
 * durable before the function returns, and so before anyone is told it happened.
 *
 * Threading: every function may be called from any thread at once.
 * Names: sub, rg and names are passed in the caller's casing; matching is case-insensitive.
 */
#ifndef NW_CORE_CORE_H
#define NW_CORE_CORE_H

#include <stdint.h>

#include "common/err.h"
#include "db/capture.h"
#include "db/stats.h"
#include "db/operation.h"
#include "db/outbox.h"
#include "db/store.h"
#include "db/watcher.h"

/* Azure's documented limit of capture sessions per subscription and region. */
#define CORE_MAX_UNFINISHED_CAPTURES 10000
/* Machines (scale-set instances) one capture may run on. */
#define CORE_MAX_SESSIONS_PER_CAPTURE 1000
/* Time limit of a session whose own is 0 ("none"): Azure's largest, 7 days (continuous). */
#define CORE_SESSION_LIMIT_MAX_MS (604800LL * 1000)

/*
 * The seam to the agents. send() hands one command of the outbox (db/outbox.h) to its agent's
 * channel: cmd->kind "start" (cmd->name and cmd->spec_json set) or "stop" (cmd->stop_reason).
 * It returns CP_OK once the message is queued on the agent's live channel, anything else when
 * the agent is not connected (the command stays owed and goes out after its next hello). It is
 * called on the dispatcher thread after the command's transaction committed, never on a
 * request's thread, and must not block on the store. With no port, no agent serves anything.
 */
struct core_agent_port {
    void *ctx;
    enum cp_err (*send)(void *ctx, const struct db_command *cmd);
};

struct core;

/* store is borrowed and must outlive core; agents may be NULL (no agents). */
enum cp_err core_new(struct db_store *store, const struct core_agent_port *agents,
                     struct core **out) CP_MUST_USE;
/* Stops the dispatcher; creates still queued stay InProgress in the store for the next start. */
void core_free(struct core *core);
/* Waits until every create made so far has been dispatched (or has failed to be). */
void core_drain(struct core *core);
struct db_store *core_store(struct core *core);

/* Which watcher (or which parent watcher of a capture). */
struct core_watcher_ref {
    const char *sub;
    const char *rg;
    const char *name;
};

/* Conditional-request headers as received (NULL when absent). */
struct core_precond {
    const char *if_match;
    const char *if_none_match;
};

/* 1 when an If-Match/If-None-Match header value names etag (bare GUID): "*", or a
 * comma-separated list of "x", W/"x" entries. */
int core_etag_listed(const char *header, const char *etag);

/* --- network watchers --- */

/* Creates or updates a watcher. region is normalised; tags_json a JSON object text (borrowed).
 * *created says which. CP_EINVAL NetworkWatcherCountLimitReached when another watcher holds
 * the region; CP_EINVAL when an update tries to move the watcher to another region;
 * CP_EPRECOND per the ARM If-Match table. out is filled (caller clears) on success. */
enum cp_err core_watcher_put(struct core *core, const struct core_watcher_ref *ref,
                             const char *region, const char *tags_json,
                             const struct core_precond *pre, struct db_watcher *out, int *created,
                             struct cp_error *e) CP_MUST_USE;
enum cp_err core_watcher_get(struct core *core, const struct core_watcher_ref *ref,
                             struct db_watcher *out, struct cp_error *e) CP_MUST_USE;
enum cp_err core_watcher_patch_tags(struct core *core, const struct core_watcher_ref *ref,
                                    const char *tags_json, const struct core_precond *pre,
                                    struct db_watcher *out, struct cp_error *e) CP_MUST_USE;
/* Deletes the watcher and its captures. CP_ENOTFOUND when absent (the caller answers 204);
 * otherwise op is the recorded operation (already Succeeded). */
enum cp_err core_watcher_delete(struct core *core, const struct core_watcher_ref *ref,
                                const struct core_precond *pre, const char *api_version,
                                struct db_operation *op, struct cp_error *e) CP_MUST_USE;
/* Lists a subscription's watchers, or one resource group's (rg NULL for all). */
enum cp_err core_watcher_list(struct core *core, const char *sub, const char *rg,
                              db_watcher_each_fn each, void *arg, struct cp_error *e) CP_MUST_USE;

/* --- packet captures --- */

/* What a create asks for; all borrowed. properties_json is the validated, normalised
 * PacketCaptureParameters text; target the VM or scale-set id inside it. */
struct core_capture_new {
    const char *name;
    const char *target;
    const char *properties_json;
    const char *api_version;
};

/* Where and how long a capture runs (all borrowed); NULL to core_capture_create_on means a VM
 * target with the largest time limit. */
struct core_capture_run {
    int scale_set;              /* target is a scale set: one session per selected instance */
    const char *const *include; /* scope.include as instance ids (any casing) */
    size_t n_include;           /* 0: every instance with a registered agent */
    const char *const *exclude; /* scope.exclude as instance ids */
    size_t n_exclude;
    int64_t time_limit_ms; /* the session's time limit, for the backstop (0: the largest) */
};

/* Records a new capture (provisioningState Updating) with its create operation, durably, and
 * queues it for the dispatcher, which asks the agent port to start it after this returns.
 * out (caller clears) is the capture as recorded, watcher its parent (etag as of then),
 * op_id the create operation. Errors: CP_ENOTFOUND (watcher), CP_EEXIST,
 * CP_EINVAL PacketCaptureCountLimitReached, CP_EPRECOND. */
enum cp_err core_capture_create(struct core *core, const struct core_watcher_ref *parent,
                                const struct core_capture_new *req, const struct core_precond *pre,
                                struct db_capture *out, struct db_watcher *watcher, char *op_id,
                                size_t op_id_size, struct cp_error *e) CP_MUST_USE;
/* The same with run (may be NULL): a capture on a scale set runs on the instances run selects
 * (see core_assign_sessions). */
enum cp_err core_capture_create_on(struct core *core, const struct core_watcher_ref *parent,
                                   const struct core_capture_new *req,
                                   const struct core_capture_run *run,
                                   const struct core_precond *pre, struct db_capture *out,
                                   struct db_watcher *watcher, char *op_id, size_t op_id_size,
                                   struct cp_error *e) CP_MUST_USE;
/* A capture and its parent watcher (for the etag and ids); caller clears both. */
enum cp_err core_capture_get(struct core *core, const struct core_watcher_ref *parent,
                             const char *name, struct db_capture *out, struct db_watcher *watcher,
                             struct cp_error *e) CP_MUST_USE;
/* The pcap expression each session's agent installed (migrations/0006), for GET and
 * queryStatus: n entries of (session id, owned expression), sessions whose agent has not said
 * one left out. Release with core_session_filters_clear (also after a failure). */
struct core_session_filter {
    char session_id[DB_SESSION_ID_MAX];
    char *expression; /* owned; "" = every packet */
};
struct core_session_filters {
    struct core_session_filter *v;
    size_t n;
};
enum cp_err core_capture_filters(struct core *core, int64_t capture_id,
                                 struct core_session_filters *out, struct cp_error *e) CP_MUST_USE;
void core_session_filters_clear(struct core_session_filters *f);
/* The expression of session id in f, or NULL. */
const char *core_session_filter_of(const struct core_session_filters *f, const char *id);

/* The parent watcher (caller clears) and each of its captures. */
enum cp_err core_capture_list(struct core *core, const struct core_watcher_ref *parent,
                              struct db_watcher *watcher, db_capture_each_fn each, void *arg,
                              struct cp_error *e) CP_MUST_USE;
/* Deletes a capture (stopping it first when running). CP_ENOTFOUND when absent. */
enum cp_err core_capture_delete(struct core *core, const struct core_watcher_ref *parent,
                                const char *name, const struct core_precond *pre,
                                const char *api_version, struct db_operation *op,
                                struct cp_error *e) CP_MUST_USE;
/* Stops a capture; a capture that is not running is already stopped (success). */
enum cp_err core_capture_stop(struct core *core, const struct core_watcher_ref *parent,
                              const char *name, const char *api_version, struct db_operation *op,
                              struct cp_error *e) CP_MUST_USE;

/* --- operations --- */

/* The operation with this id in this subscription; CP_ENOTFOUND when unknown. */
enum cp_err core_operation_get(struct core *core, const char *sub, const char *id,
                               struct db_operation *out, struct cp_error *e) CP_MUST_USE;

/* An operation is young for its first CORE_OP_WAIT_YOUNG_MS; at most CORE_OP_WAIT_MAX callers
 * wait at once (the others are answered at once). */
#define CORE_OP_WAIT_YOUNG_MS 5000
#define CORE_OP_WAIT_MAX      16
/* core_operation_get, but a young operation still InProgress is waited for up to wait_ms
 * (blocking the caller) until it ends: its agent usually answers in milliseconds, and a client
 * told to come back after a Retry-After second would wait for nothing. Older ones, and callers
 * past CORE_OP_WAIT_MAX, are answered at once. */
enum cp_err core_operation_wait(struct core *core, const char *sub, const char *id, int wait_ms,
                                struct db_operation *out, struct cp_error *e) CP_MUST_USE;

/* --- captures run by agents (core/sessions.c; docs/agent-protocol.md "Server side"). An agent
 * speaks only for its own sessions: CP_EFORBIDDEN ("NotYourSession") otherwise. session_id is
 * the captureId the agent knows, command_id a commandId of the outbox. seq is the agent's
 * report sequence number: a report already applied changes nothing (*applied = 0, may be
 * NULL) and succeeds. --- */

/* Calls each() for every command still owed to agent_id, oldest first (resend after hello). */
enum cp_err core_agent_owed(struct core *core, const char *agent_id, db_command_each_fn each,
                            void *arg, struct cp_error *e) CP_MUST_USE;
/* Records that these commands were handed to their agents' channels now (pending -> sent, and
 * a start's session gets its dispatched time). ids borrowed. */
enum cp_err core_commands_sent(struct core *core, const char (*ids)[DB_COMMAND_ID_MAX], size_t n,
                               struct cp_error *e) CP_MUST_USE;
/* The agent acknowledged command_id: a start makes its session Running (ok; at_ms its start,
 * 0 = now) or Error (code, message); a stop is settled (the session's end follows). */
enum cp_err core_capture_acked(struct core *core, const char *agent_id, const char *command_id,
                               int ok, const char *code, const char *message, int64_t at_ms,
                               int64_t seq, int *applied, struct cp_error *e) CP_MUST_USE;
/* The session ended: Stopped with stop_reason, or Error with error_code/message (stop_reason
 * NULL). Commands still owed for it are settled; a stop waiting for the capture's sessions
 * succeeds once the last one has ended. */
enum cp_err core_capture_ended(struct core *core, const char *agent_id, const char *session_id,
                               const char *stop_reason, const char *error_code, const char *message,
                               int64_t seq, int *applied, struct cp_error *e) CP_MUST_USE;
/* The session's latest totals (first_packet_ms 0 = no packet yet). */
enum cp_err core_capture_progress(struct core *core, const char *agent_id, const char *session_id,
                                  int64_t packets, int64_t bytes, int64_t drops, int64_t files,
                                  int64_t first_packet_ms, int64_t seq,
                                  struct cp_error *e) CP_MUST_USE;
/* The session session_id (lower-case GUID) of agent agent_id and its capture (cap: caller
 * clears with db_capture_clear; its sessions are not attached), in any state. CP_EFORBIDDEN
 * ("NotYourSession") when there is no such session or it is another agent's. */
enum cp_err core_session_of_agent(struct core *core, const char *agent_id, const char *session_id,
                                  struct db_session *s, struct db_capture *cap,
                                  struct cp_error *e) CP_MUST_USE;
/* One agent report, for core_reports_apply (strings borrowed). */
enum core_report_kind { CORE_REPORT_ACK, CORE_REPORT_END, CORE_REPORT_PROGRESS };
struct core_report {
    enum core_report_kind kind;
    const char *agent_id;
    const char *id;             /* ack: the command id; end, progress: the session id */
    int ok;                     /* ack: the command was carried out */
    const char *code, *message; /* ack not ok, or an end in Error (stop_reason NULL) */
    const char *stop_reason;    /* end: Stopped with this reason */
    int64_t at_ms;              /* ack: when the capture started (0 = now) */
    const char *filter;         /* ack ok: the expression the start installed (NULL: not said) */
    int64_t seq;
    int64_t packets, bytes, drops, files, first_packet_ms; /* progress */
    int64_t uploaded_bytes;                                /* progress: in blob storage */
    /* Results: err is CP_OK (applied, or applied before: applied = 0), CP_EFORBIDDEN (refused,
     * e says why: not this agent's session or command) or the store's failure. */
    enum cp_err err;
    struct cp_error e;
    int applied;
    int64_t watcher_id; /* the watcher whose cached captures changed (0: none) */
};
/* Applies n reports, in order, in one write job: they share one group commit, each with its
 * own seq check, as core_capture_acked/ended/progress would apply them one by one. A refused
 * report changes nothing and the others go on. Any other failure undoes the whole job: every
 * report gets that error and none is applied, so no report of an agent is ever applied after
 * an earlier one of the same agent that failed. Returns CP_OK when the job committed. */
enum cp_err core_reports_apply(struct core *core, struct core_report *r, size_t n) CP_MUST_USE;
/* The timers, run by the server every few seconds: sessions still NotStarted deadline_ms after
 * their create end in Error (and a stop is owed in case the start got through), failing the
 * create when none started; Running sessions past their time limit plus grace_ms end in
 * Error/AgentStopped and a stop is owed; acked commands older than a day are pruned. */
enum cp_err core_sessions_sweep(struct core *core, int64_t deadline_ms, int64_t grace_ms,
                                struct cp_error *e) CP_MUST_USE;
/*
 * Reconciliation on hello (docs/agent-protocol.md): the agent holds running[] and finished[]
 * (session ids, borrowed). In one transaction: each Running session of this agent listed in
 * neither ends Error/AgentStopped ("the agent no longer holds it"); each stop owed to it for a
 * session listed in neither is settled (nothing to stop). stop (n_max entries) gets the listed
 * running sessions the server has stopped, deleted or never knew: welcome.stop; *n_stop their
 * count.
 */
enum cp_err core_agent_reconcile(struct core *core, const char *agent_id,
                                 const char *const *running, size_t n_running,
                                 const char *const *finished, size_t n_finished,
                                 char (*stop)[DB_SESSION_ID_MAX], size_t n_max, size_t *n_stop,
                                 struct cp_error *e) CP_MUST_USE;
/* What a session shows as its packetCaptureStatus: its status, but Unknown while it is Running
 * and its agent is not connected (nobody can tell whether it still captures). */
const char *core_session_shown_status(const struct db_session *s);
/* What a capture (sessions attached) shows: its stored status, but Unknown while it is Running
 * and none of its Running sessions' agents is connected. */
const char *core_capture_shown_status(const struct db_capture *cap);
/* The agent's channel came up or went down: captures it runs show Unknown while it is away,
 * so their cached reads are dropped. */
void core_agent_presence_changed(struct core *core, const char *agent_id);

/* Calls each() with (provisioningState, packetCaptureStatus, count) groups, for metrics. */
enum cp_err core_capture_counts(struct core *core, db_capture_count_fn each, void *arg) CP_MUST_USE;

/* For metrics (db/stats.h): live sessions by status, commands owed to agents by kind and
 * state, or active agents by connection. */
enum core_agent_stat { CORE_STAT_SESSIONS, CORE_STAT_COMMANDS, CORE_STAT_AGENTS };
enum cp_err core_agent_stats(struct core *core, enum core_agent_stat which, db_stats_fn each,
                             void *arg) CP_MUST_USE;

#endif
