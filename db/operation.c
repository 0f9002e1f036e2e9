/* SQL for the operations table (see db/operation.h). */
#include "db/operation.h"

#include <stdlib.h>
#include <string.h>

void db_operation_clear(struct db_operation *op)
{
    if (!op)
        return;
    free(op->result_json);
    memset(op, 0, sizeof(*op));
}

enum cp_err db_operation_insert(struct db_conn *c, const struct db_operation *op)
{
    sqlite3_stmt *st =
        db_conn_stmt(c, "INSERT INTO operations (id, sub_key, region, kind, resource_id, status,"
                        " error_code, error_message, result_status, result_json, api_version,"
                        " start_ms, end_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULLIF(?7, ''),"
                        " NULLIF(?8, ''), NULLIF(?9, 0), ?10, ?11, ?12, NULLIF(?13, 0))");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, op->id) || db_bind_text(st, 2, op->sub_key) ||
        db_bind_text(st, 3, op->region) || db_bind_text(st, 4, op->kind) ||
        db_bind_text(st, 5, op->resource_id) || db_bind_text(st, 6, op->status) ||
        db_bind_text(st, 7, op->error_code) || db_bind_text(st, 8, op->error_message) ||
        db_bind_text(st, 10, op->result_json) || db_bind_text(st, 11, op->api_version))
        return CP_ENOMEM;
    sqlite3_bind_int(st, 9, op->result_status);
    sqlite3_bind_int64(st, 12, op->start_ms);
    sqlite3_bind_int64(st, 13, op->end_ms);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? CP_OK : db_err(rc);
}

enum cp_err db_operation_get(struct db_conn *c, const char *id, const char *sub_key,
                             struct db_operation *out)
{
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = db_conn_stmt(
        c, "SELECT id, sub_key, region, kind, resource_id, status, error_code, error_message,"
           " result_status, result_json, api_version, start_ms, end_ms FROM operations"
           " WHERE id = ?1 AND sub_key = ?2");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, id) || db_bind_text(st, 2, sub_key))
        return CP_ENOMEM;
    int rc = sqlite3_step(st);
    enum cp_err err = CP_OK;
    if (rc == SQLITE_ROW) {
        db_column_copy(st, 0, out->id, sizeof(out->id));
        db_column_copy(st, 1, out->sub_key, sizeof(out->sub_key));
        db_column_copy(st, 2, out->region, sizeof(out->region));
        db_column_copy(st, 3, out->kind, sizeof(out->kind));
        db_column_copy(st, 4, out->resource_id, sizeof(out->resource_id));
        db_column_copy(st, 5, out->status, sizeof(out->status));
        db_column_copy(st, 6, out->error_code, sizeof(out->error_code));
        db_column_copy(st, 7, out->error_message, sizeof(out->error_message));
        out->result_status = sqlite3_column_int(st, 8);
        const char *res = (const char *)sqlite3_column_text(st, 9);
        if (res && !(out->result_json = strdup(res)))
            err = CP_ENOMEM;
        db_column_copy(st, 10, out->api_version, sizeof(out->api_version));
        out->start_ms = sqlite3_column_int64(st, 11);
        out->end_ms = sqlite3_column_int64(st, 12);
    } else {
        err = rc == SQLITE_DONE ? CP_ENOTFOUND : db_err(rc);
    }
    sqlite3_reset(st);
    return err;
}

enum cp_err db_operation_finish(struct db_conn *c, const struct db_operation *op)
{
    sqlite3_stmt *st = db_conn_stmt(
        c, "UPDATE operations SET status = ?1, error_code = NULLIF(?2, ''),"
           " error_message = NULLIF(?3, ''), result_status = NULLIF(?4, 0), result_json = ?5,"
           " end_ms = ?6 WHERE id = ?7 AND status = 'InProgress'");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, op->status) || db_bind_text(st, 2, op->error_code) ||
        db_bind_text(st, 3, op->error_message) || db_bind_text(st, 5, op->result_json) ||
        db_bind_text(st, 7, op->id))
        return CP_ENOMEM;
    sqlite3_bind_int(st, 4, op->result_status);
    sqlite3_bind_int64(st, 6, op->end_ms);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_err(rc);
    return sqlite3_changes(db_conn_handle(c)) == 1 ? CP_OK : CP_ENOTFOUND;
}

enum cp_err db_operation_list_running(struct db_conn *c, const char *kind, db_operation_id_fn each,
                                      void *arg)
{
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT id FROM operations WHERE status = 'InProgress'"
                                       " AND kind = ?1 ORDER BY start_ms");
    if (!st)
        return CP_EIO;
    if (db_bind_text(st, 1, kind))
        return CP_ENOMEM;
    enum cp_err err = CP_OK;
    int rc = SQLITE_DONE;
    while (err == CP_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        err = each((const char *)sqlite3_column_text(st, 0), arg);
    if (err == CP_OK && rc != SQLITE_DONE)
        err = db_err(rc);
    sqlite3_reset(st);
    return err;
}
