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
#include "db/operation.h"
#include "db/store.h"
#include "db/watcher.h"

/* Azure's documented limit of capture sessions per subscription and region. */
#define CORE_MAX_UNFINISHED_CAPTURES 10000

/*
 * The seam to the agents. start() is called on the dispatcher thread to hand a capture that was
 * just recorded to the agent serving its target. It returns CP_OK once the start command is on its
 * way (its outcome is reported back to core later), or CP_ENOAGENT (e filled) when no agent serves
 * the target, which ends the create operation as Failed. With no port at all, no agent serves
 * anything.
 */
struct core_agent_port {
    void *ctx;
    enum cp_err (*start)(void *ctx, const struct db_capture *cap, struct cp_error *e);
    /* Asks the agent running cap (cap->agent_id) to stop it (cap->stop_operation_id is the
     * stop's operation); best effort: a stop not delivered now is sent again on reconnect. */
    void (*stop)(void *ctx, const struct db_capture *cap);
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

/* Records a new capture (provisioningState Updating) with its create operation, durably, and
 * queues it for the dispatcher, which asks the agent port to start it after this returns.
 * out (caller clears) is the capture as recorded, watcher its parent (etag as of then),
 * op_id the create operation. Errors: CP_ENOTFOUND (watcher), CP_EEXIST,
 * CP_EINVAL PacketCaptureCountLimitReached, CP_EPRECOND. */
enum cp_err core_capture_create(struct core *core, const struct core_watcher_ref *parent,
                                const struct core_capture_new *req, const struct core_precond *pre,
                                struct db_capture *out, struct db_watcher *watcher, char *op_id,
                                size_t op_id_size, struct cp_error *e) CP_MUST_USE;
/* A capture and its parent watcher (for the etag and ids); caller clears both. */
enum cp_err core_capture_get(struct core *core, const struct core_watcher_ref *parent,
                             const char *name, struct db_capture *out, struct db_watcher *watcher,
                             struct cp_error *e) CP_MUST_USE;
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

/* --- captures run by agents (the agent speaks only for its own captures: CP_EFORBIDDEN
 * otherwise). capture_guid is the capture's create operation id, which the agent knows as its
 * captureId. seq is the agent's report sequence number: a report already applied changes
 * nothing (*applied = 0) and succeeds. --- */

/* Calls each() for the captures of agent_id with a command to (re)send: Updating (start) or a
 * stop waiting (stop_operation_id set). */
enum cp_err core_capture_pending(struct core *core, const char *agent_id, db_capture_each_fn each,
                                 void *arg, struct cp_error *e) CP_MUST_USE;
/* The agent acknowledged a start: Running (ok) or Failed with code/message. */
enum cp_err core_capture_acked(struct core *core, const char *agent_id, const char *capture_guid,
                               int ok, const char *code, const char *message, int64_t at_ms,
                               int64_t seq, int *applied, struct cp_error *e) CP_MUST_USE;
/* The capture ended: Stopped with stop_reason, or Error with error_code/message (stop_reason
 * NULL). A stop waiting for it succeeds. */
enum cp_err core_capture_ended(struct core *core, const char *agent_id, const char *capture_guid,
                               const char *stop_reason, const char *error_code, const char *message,
                               int64_t seq, int *applied, struct cp_error *e) CP_MUST_USE;
/* Ends as Failed (AgentNotConnected) every create handed to an agent that has not acknowledged
 * it by now_ms - deadline_ms. */
enum cp_err core_capture_expire(struct core *core, int64_t deadline_ms,
                                struct cp_error *e) CP_MUST_USE;

/* Calls each() with (provisioningState, packetCaptureStatus, count) groups, for metrics. */
enum cp_err core_capture_counts(struct core *core, db_capture_count_fn each, void *arg) CP_MUST_USE;

#endif
