/* packetCaptures: PUT (create), GET, list, DELETE, stop and queryStatus; JSON in and out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "common/timefmt.h"

static struct core_watcher_ref parent_of(const struct api_route_args *a)
{
    struct core_watcher_ref ref = {a->sub, a->rg, a->watcher};
    return ref;
}

static void capture_id(const struct db_watcher *w, const struct db_capture *cap, char *out,
                       size_t n)
{
    snprintf(out, n,
             "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkWatchers/%s"
             "/packetCaptures/%s",
             w->sub, w->rg, w->name, cap->name);
}

/* PacketCaptureResult: the stored parameters under properties, provisioningState first. */
static json_t *capture_json(const struct db_watcher *w, const struct db_capture *cap)
{
    char id[DB_TARGET_MAX + 128], etag[64];
    capture_id(w, cap, id, sizeof(id));
    api_weak_etag(w->etag, etag, sizeof(etag));
    json_t *stored = json_loads(cap->properties_json, 0, NULL);
    json_t *props = json_pack("{s:s}", "provisioningState", cap->provisioning_state);
    if (!stored || !props || json_object_update(props, stored) != 0) {
        json_decref(stored);
        json_decref(props);
        return NULL;
    }
    json_decref(stored);
    return json_pack("{s:s, s:s, s:s, s:s, s:o}", "name", cap->name, "id", id, "etag", etag,
                     "type", "Microsoft.Network/networkWatchers/packetCaptures", "properties",
                     props);
}

void api_capture_put(const struct api_ctx *ctx, const struct api_request *req,
                     const struct api_route_args *a, struct api_response *res)
{
    json_t *body = api_parse_object(req, res);
    if (!body)
        return;
    json_t *props = NULL;
    char *props_text = NULL;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = api_capture_params(body, &props, &e);
    json_decref(body);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    if (!(props_text = json_dumps(props, JSON_COMPACT))) {
        json_decref(props);
        api_set_cp_error(res, CP_ENOMEM, NULL);
        return;
    }
    struct core_watcher_ref parent = parent_of(a);
    struct core_precond pre = {req->if_match, req->if_none_match};
    struct core_capture_new spec = {a->capture,
                                    json_string_value(json_object_get(props, "target")),
                                    props_text, req->api_version};
    struct db_capture cap;
    struct db_watcher w;
    char op_id[DB_OP_ID_MAX];
    err = core_capture_create(ctx->core, &parent, &spec, &pre, &cap, &w, op_id, sizeof(op_id), &e);
    json_decref(props);
    free(props_text);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    snprintf(res->request_id, sizeof(res->request_id), "%s", op_id);
    api_add_monitor_headers(ctx, res, a->sub, w.region, op_id, req->api_version, 0);
    api_set_json(res, 201, capture_json(&w, &cap));
    db_capture_clear(&cap);
    db_watcher_clear(&w);
}

void api_capture_get(const struct api_ctx *ctx, const struct api_request *req,
                     const struct api_route_args *a, struct api_response *res)
{
    (void)req;
    struct core_watcher_ref parent = parent_of(a);
    struct db_capture cap;
    struct db_watcher w;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_capture_get(ctx->core, &parent, a->capture, &cap, &w, &e);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    char etag[64];
    api_weak_etag(w.etag, etag, sizeof(etag));
    api_add_header(res, "ETag", "%s", etag);
    api_set_json(res, 200, capture_json(&w, &cap));
    db_capture_clear(&cap);
    db_watcher_clear(&w);
}

struct list_acc {
    json_t *value;
    const struct db_watcher *w;
};

static enum cp_err append_capture(const struct db_capture *cap, void *arg)
{
    struct list_acc *acc = arg;
    json_t *j = capture_json(acc->w, cap);
    return j && json_array_append_new(acc->value, j) == 0 ? CP_OK : CP_ENOMEM;
}

void api_capture_list(const struct api_ctx *ctx, const struct api_request *req,
                      const struct api_route_args *a, struct api_response *res)
{
    (void)req;
    struct core_watcher_ref parent = parent_of(a);
    struct db_watcher w;
    struct list_acc acc = {json_array(), &w};
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = acc.value ? core_capture_list(ctx->core, &parent, &w, append_capture, &acc, &e)
                                : CP_ENOMEM;
    db_watcher_clear(&w);
    if (err != CP_OK) {
        json_decref(acc.value);
        api_set_cp_error(res, err, &e);
        return;
    }
    api_set_json(res, 200, json_pack("{s:o}", "value", acc.value));
}

static void reply_operation_started(const struct api_ctx *ctx, const struct api_request *req,
                                    const struct api_route_args *a, struct api_response *res,
                                    struct db_operation *op)
{
    snprintf(res->request_id, sizeof(res->request_id), "%s", op->id);
    api_add_monitor_headers(ctx, res, a->sub, op->region, op->id, req->api_version, 1);
    res->status = 202;
    db_operation_clear(op);
}

void api_capture_delete(const struct api_ctx *ctx, const struct api_request *req,
                        const struct api_route_args *a, struct api_response *res)
{
    struct core_watcher_ref parent = parent_of(a);
    struct core_precond pre = {req->if_match, req->if_none_match};
    struct db_operation op;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err =
        core_capture_delete(ctx->core, &parent, a->capture, &pre, req->api_version, &op, &e);
    if (err == CP_ENOTFOUND && strcmp(e.code, "NotFound") == 0) {
        res->status = 204; /* deleting what is not there succeeds (ARM) */
        return;
    }
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    reply_operation_started(ctx, req, a, res, &op);
}

void api_capture_stop(const struct api_ctx *ctx, const struct api_request *req,
                      const struct api_route_args *a, struct api_response *res)
{
    struct core_watcher_ref parent = parent_of(a);
    struct db_operation op;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_capture_stop(ctx->core, &parent, a->capture, req->api_version, &op, &e);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    reply_operation_started(ctx, req, a, res, &op);
}

void api_capture_query_status(const struct api_ctx *ctx, const struct api_request *req,
                              const struct api_route_args *a, struct api_response *res)
{
    (void)req;
    struct core_watcher_ref parent = parent_of(a);
    struct db_capture cap;
    struct db_watcher w;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_capture_get(ctx->core, &parent, a->capture, &cap, &w, &e);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    char id[DB_TARGET_MAX + 128];
    capture_id(&w, &cap, id, sizeof(id));
    json_t *errors = json_loads(cap.capture_errors_json, 0, NULL);
    json_t *out = json_pack("{s:s, s:s}", "name", cap.name, "id", id);
    if (out && cap.capture_start_ms) {
        char when[40];
        timefmt_rfc3339(cap.capture_start_ms, when, sizeof(when));
        json_object_set_new(out, "captureStartTime", json_string(when));
    }
    if (out) {
        json_object_set_new(out, "packetCaptureStatus", json_string(cap.capture_status));
        if (cap.stop_reason[0])
            json_object_set_new(out, "stopReason", json_string(cap.stop_reason));
        json_object_set_new(out, "packetCaptureError",
                            json_is_array(errors) ? json_incref(errors) : json_array());
    }
    json_decref(errors);
    api_set_json(res, 200, out);
    db_capture_clear(&cap);
    db_watcher_clear(&w);
}
