/* Private to core/: the core object and helpers shared by its files. */
#ifndef NW_CORE_INT_H
#define NW_CORE_INT_H

#include "core/core.h"
#include "core/cache.h"
#include "core/dispatch.h"

struct core {
    struct db_store *store;               /* borrowed */
    const struct core_agent_port *agents; /* borrowed; NULL = no agents */
    struct core_dispatch *dispatch;       /* owned */
    struct core_cache *cache;             /* owned */
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

/* In a create job: hands cap (just inserted) to the active agent registered for its target, if
 * any (sets cap->agent_id). */
enum cp_err core_assign_agent(struct db_conn *c, struct db_capture *cap) CP_MUST_USE;

#endif
