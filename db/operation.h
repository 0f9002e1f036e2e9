/*
 * The operations table: long-running ARM operations and their outcome, served by the
 * Azure-AsyncOperation (status) and Location (result) monitors. Rows outlive the resource they
 * acted on, so a client polling after a delete still gets its answer.
 */
#ifndef NW_DB_OPERATION_H
#define NW_DB_OPERATION_H

#include <stdint.h>

#include "common/err.h"
#include "db/capture.h"
#include "db/store.h"

#define DB_OP_ID_MAX 40

struct db_operation {
    char id[DB_OP_ID_MAX];
    char sub_key[64];
    char region[65];
    char kind[24];
    char resource_id[DB_TARGET_MAX];
    char status[DB_STATE_MAX]; /* InProgress | Succeeded | Failed */
    char error_code[CP_ERROR_CODE_MAX];
    char error_message[CP_ERROR_MESSAGE_MAX];
    int result_status; /* HTTP status for the result monitor once done; 0 while running */
    char *result_json; /* owned; NULL for no body */
    char api_version[32];
    int64_t start_ms;
    int64_t end_ms; /* 0 while running */
};

void db_operation_clear(struct db_operation *op);

/* Inserts op as given (status and, when already finished, its outcome). */
enum cp_err db_operation_insert(struct db_conn *c, const struct db_operation *op) CP_MUST_USE;
/* The operation with this id (lower case) in this subscription; CP_ENOTFOUND when absent. */
enum cp_err db_operation_get(struct db_conn *c, const char *id, const char *sub_key,
                             struct db_operation *out) CP_MUST_USE;
/* Records the end of a running operation: status, error, result and end time from op. */
enum cp_err db_operation_finish(struct db_conn *c, const struct db_operation *op) CP_MUST_USE;

/* Calls each() with the id of every operation of this kind still InProgress, oldest first. */
typedef enum cp_err (*db_operation_id_fn)(const char *id, void *arg);
enum cp_err db_operation_list_running(struct db_conn *c, const char *kind, db_operation_id_fn each,
                                      void *arg) CP_MUST_USE;

#endif
