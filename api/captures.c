/* packetCaptures: PUT (create), GET, list, DELETE, stop and queryStatus; JSON in and out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "common/dynbuf.h"
#include "common/timefmt.h"
#include "core/storage_accounts.h"

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

/* Appends ,"<name>":"<time>" when ms is known. */
static void add_time(struct dynbuf *b, const char *name, int64_t ms)
{
    if (ms <= 0)
        return;
    char when[TIMEFMT_RFC3339_LEN];
    timefmt_rfc3339(ms, when, sizeof(when));
    dynbuf_printf(b, ",\"%s\":\"%s\"", name, when);
}

/* Appends free text as a JSON string (escaped by jansson). */
static void add_text(struct dynbuf *b, const char *name, const char *text)
{
    json_t *v = json_string(text);
    char *enc = v ? json_dumps(v, JSON_ENCODE_ANY) : NULL;
    if (enc)
        dynbuf_printf(b, ",\"%s\":%s", name, enc);
    free(enc);
    json_decref(v);
}

/* filters (may be NULL: not read) gives the expression the session's agent installed. */
static void session_render(struct dynbuf *b, const struct db_session *s,
                           const struct core_session_filters *filters)
{
    dynbuf_addstr(b, "{");
    if (s->instance_id[0])
        dynbuf_printf(b, "\"instanceId\":\"%s\",", s->instance_id);
    dynbuf_printf(b, "\"agentId\":\"%s\",\"packetCaptureStatus\":\"%s\"", s->agent_id,
                  core_session_shown_status(s));
    if (s->stop_reason[0])
        dynbuf_printf(b, ",\"stopReason\":\"%s\"", s->stop_reason);
    if (s->error_code[0])
        dynbuf_printf(b, ",\"packetCaptureError\":[\"%s\"]", s->error_code);
    else
        dynbuf_addstr(b, ",\"packetCaptureError\":[]");
    if (s->error_message[0])
        add_text(b, "errorMessage", s->error_message);
    dynbuf_printf(b, ",\"packets\":%lld,\"bytes\":%lld,\"drops\":%lld,\"files\":%lld",
                  (long long)s->packets, (long long)s->bytes, (long long)s->drops,
                  (long long)s->files);
    dynbuf_printf(b, ",\"uploadedBytes\":%lld", (long long)s->uploaded_bytes);
    add_time(b, "dispatchedTime", s->dispatched_ms);
    add_time(b, "startTime", s->started_ms);
    add_time(b, "firstPacketTime", s->first_packet_ms);
    add_time(b, "endTime", s->ended_ms);
    add_time(b, "lastProgressTime", s->progress_ms);
    const char *expr = core_session_filter_of(filters, s->id);
    if (expr)
        add_text(b, "filterExpression", expr);
    dynbuf_addstr(b, "}");
}

static int64_t earliest(int64_t a, int64_t b)
{
    return a <= 0 ? b : b <= 0 ? a : a < b ? a : b;
}

/*
 * Appends "captureDetails" (docs/api.md "Sessions"): netwatchd's own read-only additions, the
 * live counters summed over the capture's sessions, its timestamps, and each session (with the
 * filter expression its agent installed when filters is not NULL: GET and queryStatus).
 */
static void details_render(struct dynbuf *b, const struct db_capture *cap,
                           const struct core_session_filters *filters)
{
    long long packets = 0, bytes = 0, drops = 0, files = 0, uploaded = 0;
    int64_t dispatched = 0, first_packet = 0, ended = 0, progress = 0;
    int all_ended = cap->n_sessions > 0;
    for (size_t i = 0; i < cap->n_sessions; i++) {
        const struct db_session *s = &cap->sessions[i];
        packets += s->packets;
        bytes += s->bytes;
        drops += s->drops;
        files += s->files;
        uploaded += s->uploaded_bytes;
        dispatched = earliest(dispatched, s->dispatched_ms);
        first_packet = earliest(first_packet, s->first_packet_ms);
        progress = s->progress_ms > progress ? s->progress_ms : progress;
        ended = s->ended_ms > ended ? s->ended_ms : ended;
        all_ended &= s->ended_ms > 0;
    }
    dynbuf_printf(b,
                  "\"captureDetails\":{\"packetCaptureStatus\":\"%s\",\"packets\":%lld,"
                  "\"bytes\":%lld,\"drops\":%lld,\"files\":%lld",
                  core_capture_shown_status(cap), packets, bytes, drops, files);
    dynbuf_printf(b, ",\"uploadedBytes\":%lld", uploaded);
    add_time(b, "requestedTime", cap->created_ms);
    add_time(b, "dispatchedTime", dispatched);
    add_time(b, "startTime", cap->capture_start_ms);
    add_time(b, "firstPacketTime", first_packet);
    add_time(b, "endTime", all_ended ? ended : 0);
    add_time(b, "lastProgressTime", progress);
    dynbuf_addstr(b, ",\"instances\":[");
    for (size_t i = 0; i < cap->n_sessions; i++) {
        if (i)
            dynbuf_addstr(b, ",");
        session_render(b, &cap->sessions[i], filters);
    }
    dynbuf_addstr(b, "]}");
}

/*
 * Appends a PacketCaptureResult: the stored parameters under properties, provisioningState
 * first, captureDetails last. Rendered as text, not through a JSON tree: GET and list are the
 * hot reads, and the stored parameters are already compact JSON that netwatchd wrote itself.
 * The other strings are names the router admitted ([A-Za-z0-9_.()-], GUIDs), instance ids the
 * registry admitted (the same characters) and state words, none needing escapes; the one free
 * text (a session's error message) goes through jansson.
 */
static void capture_render(struct dynbuf *b, const struct db_watcher *w,
                           const struct db_capture *cap, const struct core_session_filters *filters)
{
    const char *props = cap->properties_json;
    if (props[0] == '{')
        props++;
    size_t len = strlen(props);
    if (len && props[len - 1] == '}')
        len--;
    dynbuf_printf(
        b,
        "{\"name\":\"%s\",\"id\":\"/subscriptions/%s/resourceGroups/%s/providers/"
        "Microsoft.Network/networkWatchers/%s/packetCaptures/%s\",\"etag\":\"W/\\\"%s\\\"\","
        "\"type\":\"Microsoft.Network/networkWatchers/packetCaptures\",\"properties\":{"
        "\"provisioningState\":\"%s\",%.*s%s",
        cap->name, w->sub, w->rg, w->name, cap->name, w->etag, cap->provisioning_state, (int)len,
        props, len ? "," : "");
    details_render(b, cap, filters);
    dynbuf_addstr(b, "}}");
}

static void reply_capture(struct api_response *res, int status, const struct db_watcher *w,
                          const struct db_capture *cap, const struct core_session_filters *filters)
{
    struct dynbuf b;
    dynbuf_init(&b, CAPTURE_JSON_MAX);
    dynbuf_reserve(&b, 2048); /* a typical capture renders in one pass */
    capture_render(&b, w, cap, filters);
    api_set_body(res, status, dynbuf_take(&b));
}

/* What core needs to run the sessions, from the normalised parameters: scale set or not, the
 * scope's instance ids and the session's time limit. Returns the array that holds the scope's
 * ids (borrowed from props; the caller frees it), NULL when out of memory. */
static const char **session_params(json_t *props, struct core_capture_run *spec)
{
    spec->scale_set =
        strcmp(json_string_value(json_object_get(props, "targetType")), "AzureVMSS") == 0;
    json_t *scope = json_object_get(props, "scope");
    json_t *inc = json_object_get(scope, "include"), *exc = json_object_get(scope, "exclude");
    size_t n_inc = json_array_size(inc), n_exc = json_array_size(exc);
    const char **ids = malloc((n_inc + n_exc + 1) * sizeof(*ids));
    if (!ids)
        return NULL;
    for (size_t i = 0; i < n_inc; i++)
        ids[i] = api_scope_instance(json_string_value(json_array_get(inc, i)));
    for (size_t i = 0; i < n_exc; i++)
        ids[n_inc + i] = api_scope_instance(json_string_value(json_array_get(exc, i)));
    spec->include = ids;
    spec->n_include = n_inc;
    spec->exclude = ids + n_inc;
    spec->n_exclude = n_exc;
    /* A continuous session runs for captureSettings.sessionTimeLimitInSeconds, any other for
     * timeLimitInSeconds; 0 means none given (core uses its largest). */
    json_t *cs = json_object_get(props, "captureSettings");
    json_int_t secs = json_object_get(props, "continuousCapture")
                          ? json_integer_value(json_object_get(cs, "sessionTimeLimitInSeconds"))
                          : json_integer_value(json_object_get(props, "timeLimitInSeconds"));
    spec->time_limit_ms = (int64_t)secs * 1000;
    return ids;
}

/* A storageId must name a registered account; storagePath is then the blob URL under its
 * endpoint. Checked after the body's own validation: a malformed body is refused first. */
static enum cp_err resolve_storage(const struct api_ctx *ctx, json_t *props, struct cp_error *e)
{
    const char *sid =
        json_string_value(json_object_get(json_object_get(props, "storageLocation"), "storageId"));
    if (!sid)
        return CP_OK;
    struct db_storage_account acct;
    enum cp_err err = core_storage_account_find(core_store(ctx->core), sid,
                                                "properties.storageLocation.storageId", &acct, e);
    return err != CP_OK ? err : api_capture_storage_path(props, acct.blob_endpoint, e);
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
    if (err == CP_OK)
        err = resolve_storage(ctx, props, &e);
    if (err != CP_OK) {
        json_decref(props); /* NULL when api_capture_params refused the body */
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
    struct core_capture_run run;
    memset(&run, 0, sizeof(run));
    const char **scope = session_params(props, &run);
    struct db_capture cap;
    struct db_watcher w;
    char op_id[DB_OP_ID_MAX];
    err = scope ? core_capture_create_on(ctx->core, &parent, &spec, &run, &pre, &cap, &w, op_id,
                                         sizeof(op_id), &e)
                : CP_ENOMEM;
    free(scope);
    json_decref(props);
    free(props_text);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    snprintf(res->request_id, sizeof(res->request_id), "%s", op_id);
    api_add_monitor_headers(ctx, res, a->sub, w.region, op_id, req->api_version, 0);
    reply_capture(res, 201, &w, &cap, NULL); /* no agent has started it yet */
    db_capture_clear(&cap);
    db_watcher_clear(&w);
}

/* The capture of the route, its watcher and its sessions' installed filter expressions
 * (caller clears all three, also after a failure), or -1 with res set. */
static int load_capture(const struct api_ctx *ctx, const struct api_route_args *a,
                        struct api_response *res, struct db_capture *cap, struct db_watcher *w,
                        struct core_session_filters *filters)
{
    struct core_watcher_ref parent = parent_of(a);
    struct cp_error e = {{0}, {0}, {0}};
    memset(filters, 0, sizeof(*filters));
    enum cp_err err = core_capture_get(ctx->core, &parent, a->capture, cap, w, &e);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return -1;
    }
    /* Read apart from the (cached) capture: up to 60 KiB a session, for these two reads only. */
    if ((err = core_capture_filters(ctx->core, cap->id, filters, &e)) != CP_OK) {
        api_set_cp_error(res, err, &e);
        db_capture_clear(cap);
        db_watcher_clear(w);
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
    struct core_session_filters filters;
    if (load_capture(ctx, a, res, &cap, &w, &filters)) {
        core_session_filters_clear(&filters);
        return;
    }
    char etag[64];
    api_weak_etag(w.etag, etag, sizeof(etag));
    api_add_header(res, "ETag", "%s", etag);
    reply_capture(res, 200, &w, &cap, &filters);
    core_session_filters_clear(&filters);
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
    capture_render(&acc->b, acc->w, cap, NULL); /* filter expressions: GET one capture */
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
    struct core_session_filters filters;
    if (load_capture(ctx, a, res, &cap, &w, &filters)) {
        core_session_filters_clear(&filters);
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
        json_object_set_new(out, "packetCaptureStatus",
                            json_string(core_capture_shown_status(&cap)));
        if (cap.stop_reason[0])
            json_object_set_new(out, "stopReason", json_string(cap.stop_reason));
        json_object_set_new(out, "packetCaptureError",
                            json_is_array(errors) ? json_incref(errors) : json_array());
    }
    json_decref(errors);
    /* captureDetails as GET renders it, parsed back into the reply's tree. */
    struct dynbuf b;
    dynbuf_init(&b, CAPTURE_JSON_MAX);
    dynbuf_addstr(&b, "{");
    details_render(&b, &cap, &filters);
    core_session_filters_clear(&filters);
    dynbuf_addstr(&b, "}");
    char *text = dynbuf_take(&b);
    json_t *details = text ? json_loads(text, 0, NULL) : NULL;
    free(text);
    if (out && details)
        json_object_update(out, details);
    json_decref(details);
    api_set_json(res, 200, out);
    db_capture_clear(&cap);
    db_watcher_clear(&w);
}
