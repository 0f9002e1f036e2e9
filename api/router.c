/*
 * Request routing and the checks every ARM call shares, in this order: authentication (401),
 * route (404/405), subscription id (400), authorisation for that subscription (403),
 * api-version (400), resource names (400); then the route's handler.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/api_int.h"
#include "common/apiversion.h"
#include "common/armid.h"
#include "common/strutil.h"
#include "core/ids.h"

/* Variable segments of a route pattern; each fills one field of struct api_route_args. */
#define V_SUB "{sub}"
#define V_RG  "{rg}"
#define V_NW  "{nw}"
#define V_PC  "{pc}"
#define V_LOC "{region}"
#define V_OP  "{op}"
#define V_AG  "{agent}"

#define WATCHERS_RG                                                                                \
    "subscriptions", V_SUB, "resourceGroups", V_RG, "providers", "Microsoft.Network",              \
        "networkWatchers"
#define CAPTURES WATCHERS_RG, V_NW, "packetCaptures"
#define LOCATION "subscriptions", V_SUB, "providers", "Microsoft.Network", "locations", V_LOC
#define AGENTS   "subscriptions", V_SUB, "providers", "Netwatch", "agents"

struct route {
    const char *name; /* template, for metrics and logs */
    const char *segments[API_MAX_SEGMENTS];
    api_handler_fn handlers[API_OTHER]; /* indexed by enum api_method; NULL = not allowed */
};

static const struct route routes[] = {
    {"watchers.listAll",
     {"subscriptions", V_SUB, "providers", "Microsoft.Network", "networkWatchers"},
     {[API_GET] = api_watcher_list}},
    {"watchers.list", {WATCHERS_RG}, {[API_GET] = api_watcher_list}},
    {"watcher",
     {WATCHERS_RG, V_NW},
     {[API_GET] = api_watcher_get,
      [API_PUT] = api_watcher_put,
      [API_PATCH] = api_watcher_patch,
      [API_DELETE] = api_watcher_delete}},
    {"captures.list", {CAPTURES}, {[API_GET] = api_capture_list}},
    {"capture",
     {CAPTURES, V_PC},
     {[API_GET] = api_capture_get, [API_PUT] = api_capture_put, [API_DELETE] = api_capture_delete}},
    {"capture.stop", {CAPTURES, V_PC, "stop"}, {[API_POST] = api_capture_stop}},
    {"capture.queryStatus",
     {CAPTURES, V_PC, "queryStatus"},
     {[API_POST] = api_capture_query_status}},
    {"operation", {LOCATION, "operations", V_OP}, {[API_GET] = api_operation_status}},
    {"operationResult", {LOCATION, "operationResults", V_OP}, {[API_GET] = api_operation_result}},
    {"agents.list", {AGENTS}, {[API_GET] = api_agent_list}},
    {"agent", {AGENTS, V_AG}, {[API_GET] = api_agent_get}},
};

static const char *const method_names[] = {"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"};

/* Splits path into segments (copied into buf). Returns the count, or -1 when over a bound. */
static int split_path(const char *path, char seg[][API_SEGMENT_MAX])
{
    int n = 0;
    const char *p = path;
    if (*p == '/')
        p++;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0) {
            if (!end || end[1] == '\0')
                break; /* one trailing '/' is tolerated */
            return -1;
        }
        if (n >= API_MAX_SEGMENTS || len >= API_SEGMENT_MAX)
            return -1;
        memcpy(seg[n], p, len);
        seg[n][len] = '\0';
        n++;
        p = end ? end + 1 : p + len;
    }
    return n;
}

static char *arg_slot(struct api_route_args *a, const char *var)
{
    if (strcmp(var, V_SUB) == 0)
        return a->sub;
    if (strcmp(var, V_RG) == 0)
        return a->rg;
    if (strcmp(var, V_NW) == 0)
        return a->watcher;
    if (strcmp(var, V_PC) == 0)
        return a->capture;
    if (strcmp(var, V_LOC) == 0)
        return a->region;
    if (strcmp(var, V_AG) == 0)
        return a->agent;
    return a->operation;
}

static int match(const struct route *r, char seg[][API_SEGMENT_MAX], int n,
                 struct api_route_args *args)
{
    int i = 0;
    for (; i < API_MAX_SEGMENTS && r->segments[i]; i++) {
        if (i >= n)
            return 0;
        if (r->segments[i][0] == '{')
            memcpy(arg_slot(args, r->segments[i]), seg[i], strlen(seg[i]) + 1);
        else if (strcasecmp(r->segments[i], seg[i]) != 0)
            return 0;
    }
    return i == n;
}

static void not_allowed(const struct route *r, struct api_response *res)
{
    char allow[64] = "";
    for (int m = 0; m < API_OTHER; m++) {
        if (!r->handlers[m])
            continue;
        if (allow[0])
            strncat(allow, ", ", sizeof(allow) - strlen(allow) - 1);
        strncat(allow, method_names[m], sizeof(allow) - strlen(allow) - 1);
    }
    api_add_header(res, "Allow", "%s", allow);
    char msg[160];
    snprintf(msg, sizeof(msg), "The requested method is not allowed on %s; allowed: %s.", r->name,
             allow);
    api_set_error(res, 405, "MethodNotAllowed", msg, NULL);
}

static int check_api_version(const struct api_request *req, struct api_response *res)
{
    char msg[CP_ERROR_MESSAGE_MAX * 2];
    if (!req->api_version || !req->api_version[0]) {
        api_set_error(res, 400, "MissingApiVersionParameter",
                      "The api-version query parameter (?api-version=) is required for all "
                      "requests.",
                      NULL);
        return -1;
    }
    if (!apiversion_well_formed(req->api_version)) {
        snprintf(msg, sizeof(msg),
                 "The api-version '%.40s' is invalid. The supported versions are '%s'.",
                 req->api_version, apiversion_list());
        api_set_error(res, 400, "InvalidApiVersionParameter", msg, NULL);
        return -1;
    }
    if (!apiversion_supported(req->api_version)) {
        snprintf(msg, sizeof(msg),
                 "No registered resource provider found for API version '%.40s' and type "
                 "'networkWatchers'. The supported api-versions are '%s'.",
                 req->api_version, apiversion_list());
        api_set_error(res, 400, "NoRegisteredProviderFound", msg, NULL);
        return -1;
    }
    return 0;
}

static int bad_name(struct api_response *res, const char *code, const char *what, const char *name)
{
    char msg[CP_ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof(msg), "The %s '%.128s' is not valid.", what, name);
    api_set_error(res, 400, code, msg, NULL);
    return -1;
}

static int check_names(const struct api_route_args *a, struct api_response *res)
{
    if (a->rg[0] && !armid_valid_rg_name(a->rg))
        return bad_name(res, "InvalidResourceGroupName", "resource group name", a->rg);
    if (a->watcher[0] && !armid_valid_resource_name(a->watcher))
        return bad_name(res, "InvalidResourceName", "network watcher name", a->watcher);
    if (a->capture[0] && !armid_valid_resource_name(a->capture))
        return bad_name(res, "InvalidResourceName", "packet capture name", a->capture);
    return 0;
}

static int auth_failed(const struct api_ctx *ctx, enum cp_err err, struct api_response *res)
{
    (void)ctx;
    if (err == CP_EAUTH) {
        api_add_header(res, "WWW-Authenticate", "Bearer realm=\"netwatch\"");
        api_set_error(res, 401, "AuthenticationFailed",
                      "Authentication failed. The Authorization header is missing or does not "
                      "carry a valid bearer token.",
                      NULL);
    } else {
        api_set_error(res, 403, "AuthorizationFailed",
                      "The client does not have authorization to perform this action on this "
                      "subscription.",
                      NULL);
    }
    return -1;
}

static void route(const struct api_ctx *ctx, const struct api_request *req,
                  struct api_response *res)
{
    char seg[API_MAX_SEGMENTS][API_SEGMENT_MAX];
    int n = split_path(req->path, seg);
    struct api_route_args args;
    const struct route *found = NULL;
    for (size_t i = 0; n >= 0 && i < sizeof(routes) / sizeof(routes[0]) && !found; i++) {
        args.sub[0] = args.rg[0] = args.watcher[0] = args.capture[0] = '\0';
        args.region[0] = args.operation[0] = args.agent[0] = '\0';
        if (match(&routes[i], seg, n, &args))
            found = &routes[i];
    }
    /* One credential check per request: 401 comes before anything about the path. */
    int sub_ok = found && armid_is_guid(args.sub);
    enum cp_err aerr = ctx->auth(ctx->auth_ctx, req->authorization, sub_ok ? args.sub : NULL);
    if (aerr == CP_EAUTH) {
        auth_failed(ctx, aerr, res);
        return;
    }
    if (!found) {
        char msg[CP_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "No route matches '%.200s'.", req->path);
        api_set_error(res, 404, "NotFound", msg, NULL);
        return;
    }
    res->route = found->name;
    if (req->method >= API_OTHER || !found->handlers[req->method]) {
        not_allowed(found, res);
        return;
    }
    if (!sub_ok) {
        bad_name(res, "InvalidSubscriptionId", "subscription id", args.sub);
        return;
    }
    if (aerr != CP_OK) {
        auth_failed(ctx, aerr, res);
        return;
    }
    if (check_api_version(req, res) || check_names(&args, res))
        return;
    found->handlers[req->method](ctx, req, &args, res);
}

void api_handle(const struct api_ctx *ctx, const struct api_request *req, struct api_response *res)
{
    api_response_init(res, req);
    route(ctx, req, res);
    api_finish(req, res);
}

void api_finish(const struct api_request *req, struct api_response *res)
{
    /* Long-running starts replace the request id with their operation id (Network RP habit);
     * handlers do that by writing res->request_id, so the header is added last. */
    if (!res->request_id[0])
        core_guid(res->request_id);
    api_add_header(res, "x-ms-request-id", "%s", res->request_id);
    if (req->correlation_id && req->correlation_id[0] &&
        strlen(req->correlation_id) < API_HEADER_VALUE_MAX)
        api_add_header(res, "x-ms-correlation-request-id", "%s", req->correlation_id);
    else {
        char cid[CORE_GUID_LEN];
        core_guid(cid);
        api_add_header(res, "x-ms-correlation-request-id", "%s", cid);
    }
    if (req->return_client_request_id && req->client_request_id &&
        strlen(req->client_request_id) < API_HEADER_VALUE_MAX)
        api_add_header(res, "x-ms-client-request-id", "%s", req->client_request_id);
}
