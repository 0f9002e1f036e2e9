/* Check suite for api/: routing, the shared checks (auth, api-version, names), capture
 * validation and defaults, and ETag handling, in-process on a real store in a temp dir. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "api/api_int.h"
#include "db/store.h"

#define SUB   "6a9ad3f3-1b2c-4d5e-8f90-123456789abc"
#define OTHER "11111111-2222-3333-4444-555555555555"
#define NW                                                                                         \
    "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1"
#define VM                                                                                         \
    "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
#define V "2024-07-01"

static char dir[64];
static struct db_store *store;
static struct core *core;
static struct api_ctx ctx;

/* "good" is allowed SUB only; anything else is unauthenticated. */
static enum cp_err fake_auth(void *c, const char *authz, const char *sub)
{
    (void)c;
    if (!authz || strcmp(authz, "Bearer good") != 0)
        return CP_EAUTH;
    return !sub || strcasecmp(sub, SUB) == 0 ? CP_OK : CP_EFORBIDDEN;
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/nwapiXXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/t.db", dir);
    struct db_store_options o = {.path = path, .readers = 2, .busy_timeout_ms = 1000};
    ck_assert_int_eq(db_store_open(&o, &store, NULL), CP_OK);
    ck_assert_int_eq(core_new(store, NULL, &core), CP_OK);
    ctx = (struct api_ctx){core, "http://nw.test", fake_auth, NULL, 0};
}

static void teardown(void)
{
    core_free(core);
    db_store_close(store);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* Runs one request; returns the status and (if wanted) the parsed body. */
static int call(enum api_method m, const char *path, const char *version, const char *body,
                json_t **out, struct api_response *keep)
{
    struct api_request req = {.method = m,
                              .path = path,
                              .api_version = version,
                              .authorization = "Bearer good",
                              .body = body,
                              .body_len = body ? strlen(body) : 0};
    struct api_response res;
    api_handle(&ctx, &req, &res);
    if (out)
        *out = res.body ? json_loads(res.body, JSON_DECODE_ANY, NULL) : NULL;
    int status = res.status;
    if (keep)
        *keep = res;
    else
        api_response_free(&res);
    return status;
}

static const char *err_code(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static const char *err_target(json_t *j)
{
    return json_string_value(json_object_get(json_object_get(j, "error"), "target"));
}

static const char *header_of(const struct api_response *res, const char *name)
{
    for (int i = 0; i < res->nheaders; i++)
        if (strcasecmp(res->headers[i].name, name) == 0)
            return res->headers[i].value;
    return NULL;
}

static void make_watcher(void)
{
    ck_assert_int_eq(call(API_PUT, NW, V, "{\"location\":\"West US 2\"}", NULL, NULL), 201);
}

START_TEST(unknown_route_and_method)
{
    json_t *j;
    ck_assert_int_eq(call(API_GET, "/subscriptions/" SUB "/nothing", V, NULL, &j, NULL), 404);
    ck_assert_str_eq(err_code(j), "NotFound");
    json_decref(j);
    struct api_response res;
    ck_assert_int_eq(call(API_POST, NW, V, NULL, &j, &res), 405);
    ck_assert_str_eq(header_of(&res, "Allow"), "GET, PUT, DELETE, PATCH");
    ck_assert_ptr_nonnull(header_of(&res, "x-ms-request-id"));
    api_response_free(&res);
    json_decref(j);
}
END_TEST

START_TEST(auth_and_versions)
{
    struct api_request req = {.method = API_GET, .path = NW, .api_version = V};
    struct api_response res;
    api_handle(&ctx, &req, &res);
    ck_assert_int_eq(res.status, 401);
    ck_assert_str_eq(header_of(&res, "WWW-Authenticate"), "Bearer realm=\"netwatch\"");
    api_response_free(&res);

    json_t *j;
    ck_assert_int_eq(call(API_GET,
                          "/subscriptions/" OTHER "/providers/Microsoft.Network/networkWatchers", V,
                          NULL, &j, NULL),
                     403);
    ck_assert_str_eq(err_code(j), "AuthorizationFailed");
    json_decref(j);
    ck_assert_int_eq(call(API_GET, NW, NULL, NULL, &j, NULL), 400);
    ck_assert_str_eq(err_code(j), "MissingApiVersionParameter");
    json_decref(j);
    ck_assert_int_eq(call(API_GET, NW, "2024-13", NULL, &j, NULL), 400);
    ck_assert_str_eq(err_code(j), "InvalidApiVersionParameter");
    json_decref(j);
    ck_assert_int_eq(call(API_GET, NW, "2015-01-01", NULL, &j, NULL), 400);
    ck_assert_str_eq(err_code(j), "NoRegisteredProviderFound");
    json_decref(j);
    ck_assert_int_eq(call(API_GET, NW, "2016-09-01", NULL, &j, NULL), 404);
    ck_assert_str_eq(err_code(j), "ResourceNotFound");
    json_decref(j);
    ck_assert_int_eq(call(API_GET,
                          "/subscriptions/not-a-guid/providers/Microsoft.Network/"
                          "networkWatchers",
                          V, NULL, &j, NULL),
                     400);
    ck_assert_str_eq(err_code(j), "InvalidSubscriptionId");
    json_decref(j);
}
END_TEST

START_TEST(watcher_lifecycle_and_casing)
{
    json_t *j;
    make_watcher();
    /* Matching is case-insensitive; the body keeps the casing of the last PUT. */
    ck_assert_int_eq(call(API_PUT,
                          "/SUBSCRIPTIONS/" SUB "/resourcegroups/RG1/providers/microsoft.network/"
                          "networkwatchers/NW1",
                          V, "{\"location\":\"westus2\",\"tags\":{\"a\":\"b\"}}", &j, NULL),
                     200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "NW1");
    ck_assert_str_eq(json_string_value(json_object_get(j, "location")), "westus2");
    json_decref(j);
    ck_assert_int_eq(call(API_PUT,
                          "/subscriptions/" SUB "/resourceGroups/rg2/providers/Microsoft.Network/"
                          "networkWatchers/other",
                          V, "{\"location\":\"westus2\"}", &j, NULL),
                     400);
    ck_assert_str_eq(err_code(j), "NetworkWatcherCountLimitReached");
    json_decref(j);
    ck_assert_int_eq(call(API_PUT, NW, V, "{\"location\":\"eastus\"}", &j, NULL), 400);
    ck_assert_str_eq(err_target(j), "location");
    json_decref(j);
    ck_assert_int_eq(call(API_PUT, NW, V, "{}", &j, NULL), 400);
    ck_assert_str_eq(err_code(j), "MissingRequiredProperty");
    json_decref(j);
}
END_TEST

START_TEST(watcher_etag_preconditions)
{
    make_watcher();
    struct api_response res;
    json_t *j;
    ck_assert_int_eq(call(API_GET, NW, V, NULL, &j, &res), 200);
    char etag[64];
    snprintf(etag, sizeof(etag), "%s", header_of(&res, "ETag"));
    ck_assert_str_eq(etag, json_string_value(json_object_get(j, "etag")));
    ck_assert(strncmp(etag, "W/\"", 3) == 0);
    api_response_free(&res);
    json_decref(j);

    struct api_request req = {.method = API_PATCH,
                              .path = NW,
                              .api_version = V,
                              .authorization = "Bearer good",
                              .if_match = "W/\"nope\"",
                              .body = "{\"tags\":{}}",
                              .body_len = 11};
    api_handle(&ctx, &req, &res);
    ck_assert_int_eq(res.status, 412);
    api_response_free(&res);
    req.if_match = etag;
    api_handle(&ctx, &req, &res);
    ck_assert_int_eq(res.status, 200);
    ck_assert_str_ne(header_of(&res, "ETag"), etag); /* a change gives a new etag */
    api_response_free(&res);
    req = (struct api_request){.method = API_PUT,
                               .path = NW,
                               .api_version = V,
                               .authorization = "Bearer good",
                               .if_none_match = "*",
                               .body = "{\"location\":\"westus2\"}",
                               .body_len = 22};
    api_handle(&ctx, &req, &res);
    ck_assert_int_eq(res.status, 412);
    api_response_free(&res);
}
END_TEST

START_TEST(capture_defaults_and_create)
{
    make_watcher();
    json_t *j;
    struct api_response res;
    ck_assert_int_eq(call(API_PUT, NW "/packetCaptures/pc1", V,
                          "{\"properties\":{\"target\":\"" VM "\",\"storageLocation\":"
                          "{\"filePath\":\"/var/captures/a.cap\"},\"filters\":[{\"protocol\":"
                          "\"tcp\",\"localPort\":\"80;443;\"}]}}",
                          &j, &res),
                     201);
    json_t *p = json_object_get(j, "properties");
    ck_assert_str_eq(json_string_value(json_object_get(p, "provisioningState")), "Updating");
    ck_assert_str_eq(json_string_value(json_object_get(p, "targetType")), "AzureVM");
    ck_assert_int_eq(json_integer_value(json_object_get(p, "bytesToCapturePerPacket")), 0);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "totalBytesPerSession")), 1073741824);
    ck_assert_int_eq(json_integer_value(json_object_get(p, "timeLimitInSeconds")), 18000);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(p, "storageLocation"), "storagePath")),
        "");
    json_t *f0 = json_array_get(json_object_get(p, "filters"), 0);
    ck_assert_str_eq(json_string_value(json_object_get(f0, "protocol")), "TCP");
    ck_assert_str_eq(json_string_value(json_object_get(f0, "remoteIPAddress")), "");
    ck_assert_int_eq(json_array_size(json_object_get(json_object_get(p, "scope"), "include")), 0);
    ck_assert_str_eq(json_string_value(json_object_get(j, "type")),
                     "Microsoft.Network/networkWatchers/packetCaptures");
    const char *aao = header_of(&res, "Azure-AsyncOperation");
    ck_assert_ptr_nonnull(aao);
    ck_assert(strstr(aao, "http://nw.test/subscriptions/" SUB
                          "/providers/Microsoft.Network/locations/westus2/operations/") == aao);
    ck_assert(strstr(aao, res.request_id) != NULL); /* request id = operation id */
    ck_assert_str_eq(header_of(&res, "Retry-After"), "1");
    api_response_free(&res);
    json_decref(j);

    /* Without agents the create fails once dispatched; the resource says so. */
    core_drain(core);
    ck_assert_int_eq(call(API_GET, NW "/packetCaptures/PC1", V, NULL, &j, NULL), 200);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(j, "properties"), "provisioningState")),
        "Failed");
    ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "pc1");
    json_decref(j);
    ck_assert_int_eq(call(API_PUT, NW "/packetCaptures/Pc1", V,
                          "{\"properties\":{\"target\":\"" VM "\",\"storageLocation\":"
                          "{\"filePath\":\"/var/captures/a.cap\"}}}",
                          &j, NULL),
                     409);
    ck_assert_str_eq(err_code(j), "PacketCaptureAlreadyExists");
    json_decref(j);
}
END_TEST

/* One invalid body per row: the error target names the field. */
static const struct {
    const char *props;
    const char *code;
    const char *target;
} bad_captures[] = {
    {"{}", "MissingRequiredProperty", "properties.target"},
    {"{\"target\":\"" VM "\"}", "MissingRequiredProperty", "properties.storageLocation"},
    {"{\"target\":\"" VM "\",\"storageLocation\":{}}", "MissingRequiredProperty",
     "properties.storageLocation"},
    {"{\"target\":\"" VM "\",\"timeLimitInSeconds\":18001,\"storageLocation\":{\"filePath\":"
     "\"/var/captures/a.cap\"}}",
     "InvalidPropertyValue", "properties.timeLimitInSeconds"},
    {"{\"target\":\"" VM "\",\"bytesToCapturePerPacket\":\"10\",\"storageLocation\":{"
     "\"filePath\":\"/var/captures/a.cap\"}}",
     "InvalidRequestContent", "properties.bytesToCapturePerPacket"},
    {"{\"target\":\"" VM "\",\"targetType\":\"AzureVMSS\",\"storageLocation\":{\"filePath\":"
     "\"/var/captures/a.cap\"}}",
     "InvalidPropertyValue", "properties.target"},
    {"{\"target\":\"" VM "\",\"scope\":{\"include\":[\"0\"]},\"storageLocation\":{\"filePath\":"
     "\"/var/captures/a.cap\"}}",
     "InvalidPropertyValue", "properties.scope"},
    {"{\"target\":\"" VM "\",\"continuousCapture\":true,\"storageLocation\":{\"filePath\":"
     "\"/var/captures/a.cap\"}}",
     "InvalidPropertyValue", "properties.storageLocation.filePath"},
    {"{\"target\":\"" VM "\",\"storageLocation\":{\"filePath\":\"/var/captures/../x.cap\"}}",
     "InvalidPropertyValue", "properties.storageLocation.filePath"},
    {"{\"target\":\"" VM "\",\"storageLocation\":{\"filePath\":\"/var/captures/a.cap\"},"
     "\"filters\":[{\"localPort\":\"90-80\"}]}",
     "InvalidPropertyValue", "properties.filters[0].localPort"},
    {"{\"target\":\"" VM "\",\"storageLocation\":{\"filePath\":\"/var/captures/a.cap\"},"
     "\"filters\":[{},{\"protocol\":\"SCTP\"}]}",
     "InvalidPropertyValue", "properties.filters[1].protocol"},
    {"{\"target\":\"" VM "\",\"continuousCapture\":true,\"storageLocation\":{\"localPath\":"
     "\"/var/captures/a.cap\"},\"captureSettings\":{\"fileCount\":10001}}",
     "InvalidPropertyValue", "properties.captureSettings.fileCount"},
};

START_TEST(capture_validation)
{
    make_watcher();
    char body[1024];
    snprintf(body, sizeof(body), "{\"properties\":%s}", bad_captures[_i].props);
    json_t *j;
    ck_assert_int_eq(call(API_PUT, NW "/packetCaptures/bad", V, body, &j, NULL), 400);
    ck_assert_str_eq(err_code(j), bad_captures[_i].code);
    ck_assert_str_eq(err_target(j), bad_captures[_i].target);
    json_decref(j);
    /* Bad input changes nothing. */
    ck_assert_int_eq(call(API_GET, NW "/packetCaptures/bad", V, NULL, NULL, NULL), 404);
}
END_TEST

#define SS                                                                                         \
    "/subscriptions/" SUB                                                                          \
    "/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachineScaleSets/ss1"
#define SS_HEAD                                                                                    \
    "{\"target\":\"" SS                                                                            \
    "\",\"targetType\":\"AzureVMSS\",\"storageLocation\":{\"filePath\":\"/var/captures/a.cap\"},"

/* Scale-set scopes refused (400): code, target and a piece of the message. */
static const struct {
    const char *props;
    const char *target;
    const char *message;
} bad_scopes[] = {
    {SS_HEAD "\"scope\":{\"include\":[\"0\",\"1\"],\"exclude\":[\"1\"]}}",
     "properties.scope.exclude", "Instance '1' is both included and excluded"},
    {SS_HEAD "\"scope\":{\"include\":[\"" SS "/virtualMachines/3\"],\"exclude\":[\"3\"]}}",
     "properties.scope.exclude", "Instance '3' is both included and excluded"},
    {SS_HEAD "\"scope\":{\"include\":[\"a/b\"]}}", "properties.scope.include",
     "is not an instance of the target scale set"},
    {SS_HEAD "\"scope\":{\"exclude\":[\"" SS "x/virtualMachines/3\"]}}", "properties.scope.exclude",
     "is not an instance of the target scale set"},
    {SS_HEAD "\"scope\":{\"include\":[\"0;1\"]}}", "properties.scope.include",
     "must be instance ids"},
    {SS_HEAD "\"scope\":{\"include\":[\"" SS "/virtualMachines/\"]}}", "properties.scope.include",
     "must be instance ids"},
    {SS_HEAD "\"scope\":{\"include\":[\"\"]}}", "properties.scope.include", "must be instance ids"},
};

START_TEST(scale_set_scope_validation)
{
    make_watcher();
    char body[2048];
    snprintf(body, sizeof(body), "{\"properties\":%s}", bad_scopes[_i].props);
    json_t *j;
    ck_assert_int_eq(call(API_PUT, NW "/packetCaptures/bad", V, body, &j, NULL), 400);
    ck_assert_str_eq(err_code(j), "InvalidPropertyValue");
    ck_assert_str_eq(err_target(j), bad_scopes[_i].target);
    const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
    ck_assert_ptr_nonnull(msg);
    ck_assert_ptr_nonnull(strstr(msg, bad_scopes[_i].message));
    json_decref(j);
    ck_assert_int_eq(call(API_GET, NW "/packetCaptures/bad", V, NULL, NULL, NULL), 404);
}
END_TEST

/* Full instance ids (any casing) are accepted and echoed as given; the instance ids they name
 * are what the scope selects. */
START_TEST(scale_set_scope_full_ids)
{
    make_watcher();
    static const char body[] =
        "{\"properties\":" SS_HEAD "\"scope\":{\"include\":[\"0\",\"" SS
        "/VIRTUALMACHINES/2\"],\"exclude\":[\"" SS "/virtualMachines/5\"]}}}";
    json_t *j;
    ck_assert_int_eq(call(API_PUT, NW "/packetCaptures/ok", V, body, &j, NULL), 201);
    json_t *scope = json_object_get(json_object_get(j, "properties"), "scope");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(scope, "include"), 1)),
                     SS "/VIRTUALMACHINES/2");
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(scope, "exclude"), 0)),
                     SS "/virtualMachines/5");
    json_decref(j);
    ck_assert_str_eq(api_scope_instance(SS "/virtualMachines/17"), "17");
    ck_assert_str_eq(api_scope_instance("17"), "17");
}
END_TEST

START_TEST(continuous_capture_shape)
{
    make_watcher();
    json_t *j;
    ck_assert_int_eq(call(API_PUT, NW "/packetCaptures/ring", V,
                          "{\"properties\":{\"target\":\"" VM "\",\"continuousCapture\":true,"
                          "\"storageLocation\":{\"localPath\":\"C:\\\\captures\\\\x.cap\"},"
                          "\"captureSettings\":{\"fileCount\":2}}}",
                          &j, NULL),
                     201);
    json_t *p = json_object_get(j, "properties");
    ck_assert_ptr_null(json_object_get(p, "totalBytesPerSession"));
    ck_assert_ptr_null(json_object_get(p, "timeLimitInSeconds"));
    ck_assert(json_is_true(json_object_get(p, "continuousCapture")));
    json_t *cs = json_object_get(p, "captureSettings");
    ck_assert_int_eq(json_integer_value(json_object_get(cs, "fileCount")), 2);
    ck_assert_int_eq(json_integer_value(json_object_get(cs, "fileSizeInBytes")), 104857600);
    ck_assert_int_eq(json_integer_value(json_object_get(cs, "sessionTimeLimitInSeconds")), 86400);
    json_decref(j);
}
END_TEST

START_TEST(malformed_and_oversize_bodies)
{
    make_watcher();
    json_t *j;
    ck_assert_int_eq(call(API_PUT, NW "/packetCaptures/x", V, "{\"properties\":", &j, NULL), 400);
    ck_assert_str_eq(err_code(j), "InvalidRequestFormat");
    json_decref(j);
    ck_assert_int_eq(call(API_PUT, NW "/packetCaptures/x", V, "[1]", &j, NULL), 400);
    ck_assert_str_eq(err_code(j), "InvalidRequestFormat");
    json_decref(j);
    struct api_request req = {.method = API_PUT,
                              .path = NW "/packetCaptures/x",
                              .api_version = V,
                              .authorization = "Bearer good",
                              .body_too_large = 1};
    struct api_response res;
    api_handle(&ctx, &req, &res);
    ck_assert_int_eq(res.status, 413);
    api_response_free(&res);
}
END_TEST

START_TEST(stop_delete_and_monitors)
{
    make_watcher();
    ck_assert_int_eq(call(API_PUT, NW "/packetCaptures/pc", V,
                          "{\"properties\":{\"target\":\"" VM "\",\"storageLocation\":"
                          "{\"filePath\":\"/var/captures/a.cap\"}}}",
                          NULL, NULL),
                     201);
    struct api_response res;
    json_t *j;
    ck_assert_int_eq(call(API_POST, NW "/packetCaptures/pc/stop", V, NULL, NULL, &res), 202);
    const char *loc = header_of(&res, "Location");
    ck_assert_ptr_nonnull(loc);
    char path[512];
    snprintf(path, sizeof(path), "%s", loc + strlen("http://nw.test"));
    *strchr(path, '?') = '\0';
    api_response_free(&res);
    ck_assert_int_eq(call(API_GET, path, V, NULL, &j, NULL), 200);
    ck_assert(json_is_null(j));
    json_decref(j);
    ck_assert_int_eq(call(API_POST, NW "/packetCaptures/pc/queryStatus", V, NULL, &j, NULL), 200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "packetCaptureStatus")), "NotStarted");
    ck_assert(json_is_array(json_object_get(j, "packetCaptureError")));
    json_decref(j);
    ck_assert_int_eq(call(API_DELETE, NW "/packetCaptures/pc", V, NULL, NULL, &res), 202);
    snprintf(path, sizeof(path), "%s", header_of(&res, "Location") + strlen("http://nw.test"));
    *strchr(path, '?') = '\0';
    api_response_free(&res);
    ck_assert_int_eq(call(API_GET, path, V, NULL, NULL, NULL), 204);
    ck_assert_int_eq(call(API_GET, NW "/packetCaptures/pc", V, NULL, &j, NULL), 404);
    ck_assert_str_eq(err_code(j), "NotFound");
    json_decref(j);
    ck_assert_int_eq(call(API_DELETE, NW "/packetCaptures/pc", V, NULL, NULL, NULL), 204);
    ck_assert_int_eq(call(API_GET, NW "/packetCaptures", V, NULL, &j, NULL), 200);
    ck_assert_int_eq(json_array_size(json_object_get(j, "value")), 0);
    json_decref(j);
}
END_TEST

/* A create acknowledged before a restart but never dispatched is dispatched at the next start. */
static enum cp_err seed_running_create(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)arg;
    (void)e;
    sqlite3 *db = db_conn_handle(c);
    return sqlite3_exec(db,
                        "INSERT INTO network_watchers (sub_key, rg_key, name_key, sub, rg, name,"
                        " region, tags_json, etag, version, created_ms, updated_ms) VALUES ('" SUB
                        "', 'rg1', 'nw1', '" SUB "', 'rg1', 'nw1', 'westus2', '{}', 'e1', 1, 1, 1);"
                        "INSERT INTO packet_captures (watcher_id, name_key, name, sub_key, region,"
                        " target, properties_json, provisioning_state, capture_status,"
                        " capture_errors_json, unfinished, create_operation_id, created_ms,"
                        " updated_ms) VALUES (1, 'old', 'old', '" SUB "', 'westus2', '" VM
                        "', '{}', 'Updating', 'NotStarted', '[]', 1, 'op-old', 1, 1);"
                        "INSERT INTO operations (id, sub_key, region, kind, resource_id, status,"
                        " api_version, start_ms) VALUES ('op-old', '" SUB "', 'westus2',"
                        " 'capture.create', 'x', 'InProgress', '" V "', 1);",
                        NULL, NULL, NULL) == SQLITE_OK
               ? CP_OK
               : CP_EIO;
}

START_TEST(dispatch_recovers_running_creates)
{
    core_free(core);
    ck_assert_int_eq(db_store_write(store, seed_running_create, NULL, NULL), CP_OK);
    ck_assert_int_eq(core_new(store, NULL, &core), CP_OK);
    ctx.core = core;
    core_drain(core);
    json_t *j;
    ck_assert_int_eq(call(API_GET, NW "/packetCaptures/old", V, NULL, &j, NULL), 200);
    ck_assert_str_eq(
        json_string_value(json_object_get(json_object_get(j, "properties"), "provisioningState")),
        "Failed");
    json_decref(j);
    ck_assert_int_eq(call(API_GET,
                          "/subscriptions/" SUB "/providers/Microsoft.Network/locations/westus2/"
                          "operations/op-old",
                          V, NULL, &j, NULL),
                     200);
    ck_assert_str_eq(json_string_value(json_object_get(j, "status")), "Failed");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                     "AgentNotConnected");
    json_decref(j);
}
END_TEST

static Suite *api_suite(void)
{
    Suite *s = suite_create("api");
    TCase *tc = tcase_create("api");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, unknown_route_and_method);
    tcase_add_test(tc, auth_and_versions);
    tcase_add_test(tc, watcher_lifecycle_and_casing);
    tcase_add_test(tc, watcher_etag_preconditions);
    tcase_add_test(tc, capture_defaults_and_create);
    tcase_add_loop_test(tc, capture_validation, 0,
                        (int)(sizeof(bad_captures) / sizeof(bad_captures[0])));
    tcase_add_loop_test(tc, scale_set_scope_validation, 0,
                        (int)(sizeof(bad_scopes) / sizeof(bad_scopes[0])));
    tcase_add_test(tc, scale_set_scope_full_ids);
    tcase_add_test(tc, continuous_capture_shape);
    tcase_add_test(tc, malformed_and_oversize_bodies);
    tcase_add_test(tc, stop_delete_and_monitors);
    tcase_add_test(tc, dispatch_recovers_running_creates);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(api_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
