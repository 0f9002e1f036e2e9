/*
 * The agent_outbox table (migrations/0004_sessions_outbox.sql): the commands owed to agents.
 * A row is written in the transaction that owes it, handed to the agent's channel when new and
 * after every hello, and acked in the transaction that applies its effect (see
 * docs/agent-protocol.md, "Outbox"). Its id is the commandId the agent deduplicates.
 *
 * A start's reads carry what the start message needs from its capture (name, spec); a stop's
 * have name "" and spec NULL (its capture may be gone). Functions run inside the caller's
 * db_store job; ids are lower case.
 */
#ifndef NW_DB_OUTBOX_H
#define NW_DB_OUTBOX_H

#include <stdint.h>

#include "common/err.h"
#include "db/store.h"

#define DB_COMMAND_ID_MAX 40

struct db_command {
    char id[DB_COMMAND_ID_MAX]; /* the commandId */
    char agent_id[DB_COMMAND_ID_MAX];
    char session_id[DB_COMMAND_ID_MAX]; /* the captureId */
    char kind[8];                       /* start | stop */
    char stop_reason[32];               /* stop only */
    char state[8];                      /* pending | sent | acked */
    int64_t created_ms, sent_ms, acked_ms;
    /* read only (joined, start only): */
    char name[81];   /* the capture's name */
    char *spec_json; /* owned: its normalised parameters; NULL for a stop */
};

/* Frees what cmd owns and zeroes it. NULL is a no-op. */
void db_command_clear(struct db_command *cmd);

/* Visits one command (borrowed for the call). */
typedef enum cp_err (*db_command_each_fn)(const struct db_command *cmd, void *arg);

/* Inserts cmd (state, times as given; 0 = NULL). */
enum cp_err db_outbox_insert(struct db_conn *c, const struct db_command *cmd) CP_MUST_USE;
/* The command with this id; CP_ENOTFOUND when absent. out cleared by the caller. */
enum cp_err db_outbox_get(struct db_conn *c, const char *id, struct db_command *out) CP_MUST_USE;
/* pending -> sent (a sent one stays sent), sent_ms = now_ms; an acked one is left alone. */
enum cp_err db_outbox_mark_sent(struct db_conn *c, const char *id, int64_t now_ms) CP_MUST_USE;
/* Settles command id (state acked, acked_ms); *changed (may be NULL) 1 when it was owed. */
enum cp_err db_outbox_ack(struct db_conn *c, const char *id, int64_t now_ms,
                          int *changed) CP_MUST_USE;
/* Settles every command still owed for a session to agent_id (NULL: any agent); kind NULL for
 * all kinds. */
enum cp_err db_outbox_ack_session(struct db_conn *c, const char *session_id, const char *agent_id,
                                  const char *kind, int64_t now_ms) CP_MUST_USE;
/* Calls each() for what is still owed to an agent, oldest first. */
enum cp_err db_outbox_list_owed(struct db_conn *c, const char *agent_id, db_command_each_fn each,
                                void *arg) CP_MUST_USE;
/* Calls each() for what is still owed for the sessions of one capture, oldest first. */
enum cp_err db_outbox_list_owed_by_capture(struct db_conn *c, int64_t capture_id,
                                           db_command_each_fn each, void *arg) CP_MUST_USE;
/* Deletes at most limit acked commands settled before before_ms; *deleted (may be NULL). */
enum cp_err db_outbox_prune(struct db_conn *c, int64_t before_ms, int limit,
                            int *deleted) CP_MUST_USE;

#endif
