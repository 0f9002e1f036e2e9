/* Private to core/: the core object and helpers shared by its files. */
#ifndef NW_CORE_INT_H
#define NW_CORE_INT_H

#include <stdatomic.h>

#include "core/core.h"
#include "core/cache.h"
#include "core/dispatch.h"

struct core {
    struct db_store *store;               /* borrowed */
    const struct core_agent_port *agents; /* borrowed; NULL = no agents */
    struct core_dispatch *dispatch;       /* owned */
    struct core_cache *cache;             /* owned */
    atomic_int op_waiters;                /* callers inside core_operation_wait */
};

/* Lower-cased keys of a watcher reference; CP_EINVAL when a part is too long. */
struct core_keys {
    char sub[64];
    char rg[91];
    char name[81];
};
enum cp_err core_keys_of(const struct core_watcher_ref *ref, struct core_keys *k) CP_MUST_USE;

/* The watcher behind ref, or CP_ENOTFOUND with the ARM ResourceNotFound error in e. */
enum cp_err core_find_watcher(struct db_conn *c, const struct core_watcher_ref *ref,
                              struct db_watcher *out, struct cp_error *e) CP_MUST_USE;

/* Fills op as a new operation on resource_id in the watcher's subscription and region. */
void core_operation_init(struct db_operation *op, const struct db_watcher *w, const char *kind,
                         const char *resource_id, const char *api_version, int64_t now_ms);

/* Writes the ARM id of a watcher ("/subscriptions/.../networkWatchers/{name}") or, with
 * capture non-NULL, of one of its captures. */
void core_resource_id(const struct db_watcher *w, const char *capture, char *out, size_t n);

/* Gives the watcher (and so its captures) a fresh etag, in the current job. */
enum cp_err core_touch_watcher(struct db_conn *c, struct db_watcher *w, int64_t now_ms) CP_MUST_USE;

/* Command ids a job owed to agents, pushed to the dispatcher once the job has committed. */
struct core_cmd_ids {
    char (*ids)[DB_COMMAND_ID_MAX]; /* owned */
    size_t n, cap;
};
void core_cmd_ids_free(struct core_cmd_ids *l);
/* Queues every id of l on the dispatcher (after the commit), then frees l. */
void core_cmd_ids_send(struct core *core, struct core_cmd_ids *l);
/* In a job: writes a command owed to agent_id about session_id (kind start or stop; reason:
 * stops only), with id as its commandId (core_owe: a fresh GUID), and adds the id to out. */
enum cp_err core_owe_as(struct db_conn *c, const char *id, const char *agent_id,
                        const char *session_id, const char *kind, const char *reason, int64_t now,
                        struct core_cmd_ids *out) CP_MUST_USE;
enum cp_err core_owe(struct db_conn *c, const char *agent_id, const char *session_id,
                     const char *kind, const char *reason, int64_t now,
                     struct core_cmd_ids *out) CP_MUST_USE;

/* Sessions gathered by core_collect_session (a db_session_each_fn; arg is the accumulator). */
struct core_sessions_acc {
    struct db_session *v; /* owned */
    size_t n, cap;
};
enum cp_err core_collect_session(const struct db_session *s, void *arg);
/* In a job: ends s (Stopped with reason, or Error with code and message when reason is NULL)
 * and writes it. */
enum cp_err core_end_session(struct db_conn *c, struct db_session *s, const char *reason,
                             const char *code, const char *message, int64_t now) CP_MUST_USE;

/* In a create job: a session and its start command for each machine that runs cap (just
 * inserted): the VM's active agent, or the active agents of the scale set's instances that
 * req's scope selects (more than CORE_MAX_SESSIONS_PER_CAPTURE: CP_EINVAL, e filled). None: no
 * session, and the dispatcher fails the create (AgentNotConnected). The sessions made are
 * attached to cap. */
enum cp_err core_assign_sessions(struct db_conn *c, struct db_capture *cap,
                                 const struct core_capture_run *req, int64_t now_ms,
                                 struct cp_error *e) CP_MUST_USE;
/* In a stop or delete job: ends what cap's sessions still run. Each live session's owed start
 * is settled and a stop (reason Manual, or SessionDeleted when deleting) is owed to its agent
 * (ids added to owed; a VM's one stop has op_id, the stop or delete operation, as commandId); a
 * stop also ends sessions not started yet (Stopped/Manual) at once. *running is how many sessions
 * stay Running until their agents report the end. */
enum cp_err core_sessions_stop(struct db_conn *c, const struct db_capture *cap, int is_delete,
                               const char *op_id, int64_t now_ms, struct core_cmd_ids *owed,
                               int *running) CP_MUST_USE;
/* Recomputes a capture's state from its sessions (docs/api.md "Scale sets") and writes it,
 * ending its create operation (Succeeded once a session started; Failed, with fail_code and
 * fail_message when given, else the first session error, once none can start) and a waiting
 * stop operation (once every session ended). *watcher_id (may be NULL) gets the capture's
 * watcher (0 when the capture is gone). */
enum cp_err core_capture_aggregate(struct db_conn *c, int64_t capture_id, int64_t now_ms,
                                   const char *fail_code, const char *fail_message,
                                   int64_t *watcher_id) CP_MUST_USE;
/* Attaches the sessions of cap (cap->sessions, cap->n_sessions), in a read or write job. */
enum cp_err core_attach_sessions(struct db_conn *c, struct db_capture *cap) CP_MUST_USE;

#endif
