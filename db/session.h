/*
 * The capture_sessions table (migrations/0004_sessions_outbox.sql): one row per machine that
 * runs a capture (one for a VM, one per selected scale-set instance), child of a capture.
 *
 * Reads also return two columns of other tables: the capture's watcher (for the read cache) and
 * whether the session's agent is connected now (queryStatus says Unknown while it is not).
 * Functions run inside the caller's db_store job (see db/store.h); ids are lower case.
 */
#ifndef NW_DB_SESSION_H
#define NW_DB_SESSION_H

#include <stdint.h>

#include "common/err.h"
#include "db/store.h"

#define DB_SESSION_ID_MAX       40
#define DB_SESSION_INSTANCE_MAX 81
#define DB_SESSION_CODE_MAX     32
/* An agent's error message is up to 1024 bytes (proto.h PROTO_MESSAGE_MAX); a longer one would
 * be dropped whole by str_copy, as a StorageFailed naming its blob URL was. */
#define DB_SESSION_MESSAGE_MAX 1025

struct db_session {
    char id[DB_SESSION_ID_MAX]; /* the captureId its agent knows */
    int64_t capture_id;         /* packet_captures.id */
    char agent_id[DB_SESSION_ID_MAX];
    char instance_id[DB_SESSION_INSTANCE_MAX]; /* "" for a VM */
    char status[16];                           /* NotStarted | Running | Stopped | Error */
    char stop_reason[64];                      /* "" unless Stopped */
    char error_code[DB_SESSION_CODE_MAX];      /* "" unless Error: a PcError */
    char error_message[DB_SESSION_MESSAGE_MAX];
    int64_t packets, bytes, drops, files; /* the latest progress totals */
    int64_t time_limit_ms;
    int64_t created_ms, dispatched_ms, started_ms, first_packet_ms, ended_ms, progress_ms;
    int64_t backstop_ms;    /* due time while Running; 0 otherwise */
    int64_t uploaded_bytes; /* the latest progress: bytes in blob storage */
    /* read only (joined): */
    int64_t watcher_id;  /* the capture's watcher */
    int agent_connected; /* 1 while the agent's channel is up */
};

/* Visits one session (borrowed for the call). */
typedef enum cp_err (*db_session_each_fn)(const struct db_session *s, void *arg);

/* Inserts s (every column but the joined ones; 0 times and "" strings are stored as NULL). */
enum cp_err db_session_insert(struct db_conn *c, const struct db_session *s) CP_MUST_USE;
/* The session with this id; CP_ENOTFOUND when absent. */
enum cp_err db_session_get(struct db_conn *c, const char *id, struct db_session *out) CP_MUST_USE;
/* Writes the state of s: status, stop_reason, error_code, error_message, dispatched_ms,
 * started_ms, ended_ms, backstop_ms. CP_ENOTFOUND when gone. */
enum cp_err db_session_update_state(struct db_conn *c, const struct db_session *s) CP_MUST_USE;
/* The cheap path of a progress report: the counters, first_packet_ms (kept once set; 0 = not
 * known), uploaded_bytes and progress_ms of session id. */
enum cp_err db_session_set_progress(struct db_conn *c, const char *id, int64_t packets,
                                    int64_t bytes, int64_t drops, int64_t files,
                                    int64_t first_packet_ms, int64_t uploaded_bytes,
                                    int64_t now_ms) CP_MUST_USE;
/* dispatched_ms = now_ms when it is not set yet. */
enum cp_err db_session_set_dispatched(struct db_conn *c, const char *id,
                                      int64_t now_ms) CP_MUST_USE;

/* filter_expression (migrations/0006): the pcap expression the session's agent installed
 * (borrowed, "" = every packet). Not part of struct db_session, which reads copy around. */
enum cp_err db_session_set_filter(struct db_conn *c, const char *id,
                                  const char *expression) CP_MUST_USE;
/* Visits one session's installed expression (both borrowed for the call). */
typedef enum cp_err (*db_session_filter_fn)(const char *id, const char *expression, void *arg);
/* Calls each() for the sessions of one capture that have an expression, by instance id. */
enum cp_err db_session_filters_by_capture(struct db_conn *c, int64_t capture_id,
                                          db_session_filter_fn each, void *arg) CP_MUST_USE;

/* Calls each() for the sessions of one capture, by instance id. */
enum cp_err db_session_list_by_capture(struct db_conn *c, int64_t capture_id,
                                       db_session_each_fn each, void *arg) CP_MUST_USE;
/* Calls each() for the sessions of every capture of a watcher, by capture then instance. */
enum cp_err db_session_list_by_watcher(struct db_conn *c, int64_t watcher_id,
                                       db_session_each_fn each, void *arg) CP_MUST_USE;
/* Calls each() for the sessions of an agent that have not ended (NotStarted, Running). */
enum cp_err db_session_list_live_by_agent(struct db_conn *c, const char *agent_id,
                                          db_session_each_fn each, void *arg) CP_MUST_USE;
/* Calls each() for sessions NotStarted and created before before_ms (start deadline). */
enum cp_err db_session_list_start_due(struct db_conn *c, int64_t before_ms, db_session_each_fn each,
                                      void *arg) CP_MUST_USE;
/* Calls each() for Running sessions whose backstop_ms is before before_ms. */
enum cp_err db_session_list_backstop_due(struct db_conn *c, int64_t before_ms,
                                         db_session_each_fn each, void *arg) CP_MUST_USE;

#endif
