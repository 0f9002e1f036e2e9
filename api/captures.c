/* packetCaptures: PUT (create), GET, list, DELETE, stop and queryStatus; JSON in and out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "common/dynbuf.h"
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

/* Responses are far below this; it only bounds a runaway list. */
#define CAPTURE_JSON_MAX (8 * 1024 * 1024)

/*
 * Appends a PacketCaptureResult: the stored parameters under properties, provisioningState
 * first. Rendered as text, not through a JSON tree: GET and list are the hot reads, and the
 * stored parameters are already compact JSON that netwatchd wrote itself. The other strings are
 * names the router admitted ([A-Za-z0-9_.()-], GUIDs) and state words, none needing escapes.
 */
static void capture_render(struct dynbuf *b, const struct db_watcher *w,
                           const struct db_capture *cap)
{
    const char *props = cap->properties_json;
    if (props[0] == '{')
        props++;
    dynbuf_printf(
        b,
        "{\"name\":\"%s\",\"id\":\"/subscriptions/%s/resourceGroups/%s/providers/"
        "Microsoft.Network/networkWatchers/%s/packetCaptures/%s\",\"etag\":\"W/\\\"%s\\\"\","
        "\"type\":\"Microsoft.Network/networkWatchers/packetCaptures\",\"properties\":{"
        "\"provisioningState\":\"%s\"%s%s}",
        cap->name, w->sub, w->rg, w->name, cap->name, w->etag, cap->provisioning_state,
        props[0] == '}' ? "" : ",", props);
}

static void reply_capture(struct api_response *res, int status, const struct db_watcher *w,
                          const struct db_capture *cap)
{
    struct dynbuf b;
    dynbuf_init(&b, CAPTURE_JSON_MAX);
    dynbuf_reserve(&b, 2048); /* a typical capture renders in one pass */
    capture_render(&b, w, cap);
    api_set_body(res, status, dynbuf_take(&b));
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
    struct core_capture_new spec = {a->capture, json_string_value(json_object_get(props, "target")),
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
    reply_capture(res, 201, &w, &cap);
    db_capture_clear(&cap);
    db_watcher_clear(&w);
}

/* The capture of the route and its watcher (caller clears both), or -1 with res set. */
static int load_capture(const struct api_ctx *ctx, const struct api_route_args *a,
                        struct api_response *res, struct db_capture *cap, struct db_watcher *w)
{
    struct core_watcher_ref parent = parent_of(a);
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_capture_get(ctx->core, &parent, a->capture, cap, w, &e);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return -1;
    }
    return 0;
}

void api_capture_get(const struct api_ctx *ctx, const struct api_request *req,
                     const struct api_route_args *a, struct api_response *res)
{
    (void)req;
    struct db_capture cap;
    struct db_watcher w;
    if (load_capture(ctx, a, res, &cap, &w))
        return;
    char etag[64];
    api_weak_etag(w.etag, etag, sizeof(etag));
    api_add_header(res, "ETag", "%s", etag);
    reply_capture(res, 200, &w, &cap);
    db_capture_clear(&cap);
    db_watcher_clear(&w);
}

struct list_acc {
    struct dynbuf b;
    const struct db_watcher *w;
    int n;
};

static enum cp_err append_capture(const struct db_capture *cap, void *arg)
{
    struct list_acc *acc = arg;
    if (acc->n++)
        dynbuf_addstr(&acc->b, ",");
    capture_render(&acc->b, acc->w, cap);
    return acc->b.failed ? CP_ENOMEM : CP_OK;
}

void api_capture_list(const struct api_ctx *ctx, const struct api_request *req,
                      const struct api_route_args *a, struct api_response *res)
{
    (void)req;
    struct core_watcher_ref parent = parent_of(a);
    struct db_watcher w;
    struct list_acc acc = {.w = &w};
    dynbuf_init(&acc.b, CAPTURE_JSON_MAX);
    dynbuf_addstr(&acc.b, "{\"value\":[");
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_capture_list(ctx->core, &parent, &w, append_capture, &acc, &e);
    db_watcher_clear(&w);
    if (err != CP_OK) {
        dynbuf_free(&acc.b);
        api_set_cp_error(res, err, &e);
        return;
    }
    dynbuf_addstr(&acc.b, "]}");
    api_set_body(res, 200, dynbuf_take(&acc.b));
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
    struct db_capture cap;
    struct db_watcher w;
    if (load_capture(ctx, a, res, &cap, &w))
        return;
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
