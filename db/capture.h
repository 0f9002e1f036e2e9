/*
 * The packet_captures table: one row per capture session, child of a watcher.
 *
 * The capture's parameters are stored as the normalised PacketCaptureParameters JSON text
 * (defaults filled) that api/ produced and validated; db/ and core/ treat it as opaque.
 * Functions run inside the caller's db_store job (see db/store.h).
 */
#ifndef NW_DB_CAPTURE_H
#define NW_DB_CAPTURE_H

#include <stdint.h>

#include "common/err.h"
#include "db/session.h"
#include "db/store.h"

#define DB_STATE_MAX       16
#define DB_STOP_REASON_MAX 64
#define DB_ERRORS_JSON_MAX 256
#define DB_TARGET_MAX      512

struct db_capture {
    int64_t id;
    int64_t watcher_id;
    char name[81]; /* as created */
    char sub_key[64];
    char region[65];
    char target[DB_TARGET_MAX];
    char *properties_json; /* owned; freed by db_capture_clear() */
    char provisioning_state[DB_STATE_MAX];
    char capture_status[DB_STATE_MAX];
    char stop_reason[DB_STOP_REASON_MAX]; /* "" until stopped */
    char capture_errors_json[DB_ERRORS_JSON_MAX];
    int unfinished;           /* counts against the per-region limit */
    int64_t capture_start_ms; /* 0 until started */
    char create_operation_id[40];
    int64_t created_ms;
    int64_t updated_ms;
    char agent_id[40];          /* 0003's agent column; no longer written (see sessions) */
    char stop_operation_id[40]; /* a stop waiting for its sessions to end; "" when none */
    /* Its sessions (one per machine that runs it), attached by core on reads (not by the
     * functions below); owned, freed by db_capture_clear(). */
    struct db_session *sessions;
    size_t n_sessions;
};

/* Visits one capture row (borrowed for the call). */
typedef enum cp_err (*db_capture_each_fn)(const struct db_capture *cap, void *arg);

/* Frees what c owns and zeroes it. */
void db_capture_clear(struct db_capture *cap);

/* The capture named name_key (lower case) under a watcher; CP_ENOTFOUND when absent. */
enum cp_err db_capture_get(struct db_conn *c, int64_t watcher_id, const char *name_key,
                           struct db_capture *out) CP_MUST_USE;
/* The capture with this row id; CP_ENOTFOUND when absent. */
enum cp_err db_capture_get_by_id(struct db_conn *c, int64_t id, struct db_capture *out) CP_MUST_USE;
/* The capture that the create operation op_id made; CP_ENOTFOUND when absent. */
enum cp_err db_capture_get_by_create_op(struct db_conn *c, const char *op_id,
                                        struct db_capture *out) CP_MUST_USE;
/* Inserts cap (name_key derived from cap->name) and sets cap->id; CP_EEXIST on a name clash. */
enum cp_err db_capture_insert(struct db_conn *c, struct db_capture *cap) CP_MUST_USE;
/* Writes the state columns of cap (provisioning_state .. capture_start_ms, updated_ms). */
enum cp_err db_capture_update_state(struct db_conn *c, const struct db_capture *cap) CP_MUST_USE;
enum cp_err db_capture_delete(struct db_conn *c, int64_t id) CP_MUST_USE;
/* Sets agent_id and stop_operation_id ("" = NULL) of capture id. */
enum cp_err db_capture_set_agent(struct db_conn *c, int64_t id, const char *agent_id,
                                 const char *stop_operation_id) CP_MUST_USE;
/* Calls each() for the captures of agent_id with a command pending: Updating (start not yet
 * acknowledged) or a stop waiting. */
enum cp_err db_capture_list_pending(struct db_conn *c, const char *agent_id,
                                    db_capture_each_fn each, void *arg) CP_MUST_USE;
/* Calls each() for the captures still Updating, handed to an agent, created before before_ms. */
enum cp_err db_capture_list_overdue(struct db_conn *c, int64_t before_ms, db_capture_each_fn each,
                                    void *arg) CP_MUST_USE;
/* How many unfinished captures a subscription has in a region. */
enum cp_err db_capture_count_unfinished(struct db_conn *c, const char *sub_key, const char *region,
                                        int64_t *out) CP_MUST_USE;

/* Calls each() for every capture of a watcher, in name order; the row is borrowed. */
enum cp_err db_capture_list(struct db_conn *c, int64_t watcher_id, db_capture_each_fn each,
                            void *arg) CP_MUST_USE;

/* Calls each() with every (provisioning state, capture status, count) group, for metrics. */
typedef void (*db_capture_count_fn)(const char *provisioning_state, const char *capture_status,
                                    int64_t count, void *arg);
enum cp_err db_capture_count_by_state(struct db_conn *c, db_capture_count_fn each,
                                      void *arg) CP_MUST_USE;

#endif
