/* The two monitors of a long-running operation: the status resource (Azure-AsyncOperation)
 * and the result resource (Location). */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "common/timefmt.h"

static int load(const struct api_ctx *ctx, const struct api_route_args *a, struct api_response *res,
                struct db_operation *op)
{
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err =
        core_operation_wait(ctx->core, a->sub, a->operation, ctx->monitor_wait_ms, op, &e);
    /* An operation is addressed under its region; another region's URL does not find it. */
    if (err == CP_OK && strcasecmp(op->region, a->region) != 0) {
        db_operation_clear(op);
        err = cp_fail(&e, CP_ENOTFOUND, "NotFound", "", "Operation %s not found.", a->operation);
    }
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return -1;
    }
    return 0;
}

void api_operation_status(const struct api_ctx *ctx, const struct api_request *req,
                          const struct api_route_args *a, struct api_response *res)
{
    (void)req;
    struct db_operation op;
    if (load(ctx, a, res, &op))
        return;
    char id[512], when[40];
    snprintf(id, sizeof(id),
             "/subscriptions/%s/providers/Microsoft.Network/locations/%s/operations/%s", a->sub,
             op.region, op.id);
    timefmt_rfc3339(op.start_ms, when, sizeof(when));
    json_t *out = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "name", op.id, "status", op.status,
                            "startTime", when);
    if (out && op.end_ms) {
        timefmt_rfc3339(op.end_ms, when, sizeof(when));
        json_object_set_new(out, "endTime", json_string(when));
    }
    if (out && strcmp(op.status, "Failed") == 0)
        json_object_set_new(
            out, "error",
            json_pack("{s:s, s:s}", "code", op.error_code, "message", op.error_message));
    if (out && strcmp(op.status, "Succeeded") == 0 && strcmp(op.kind, "capture.stop") == 0)
        json_object_set_new(out, "properties", json_object());
    if (strcmp(op.status, "InProgress") == 0)
        api_add_header(res, "Retry-After", "1");
    api_set_json(res, 200, out);
    db_operation_clear(&op);
}

void api_operation_result(const struct api_ctx *ctx, const struct api_request *req,
                          const struct api_route_args *a, struct api_response *res)
{
    struct db_operation op;
    if (load(ctx, a, res, &op))
        return;
    if (strcmp(op.status, "InProgress") == 0) {
        api_add_monitor_headers(ctx, res, a->sub, op.region, op.id, req->api_version, 1);
        res->status = 202;
    } else if (strcmp(op.status, "Failed") == 0) {
        api_set_error(res, op.result_status ? op.result_status : 500, op.error_code,
                      op.error_message, NULL);
    } else if (op.result_json) {
        json_t *body = json_loads(op.result_json, JSON_DECODE_ANY, NULL);
        api_set_json(res, op.result_status ? op.result_status : 200, body);
    } else {
        res->status = op.result_status ? op.result_status : 204;
    }
    db_operation_clear(&op);
}
