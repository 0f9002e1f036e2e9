/*
 * lifecycle.c - replays the Azure CLI (reference §6.1) or Azure PowerShell (§6.2) packet
 * capture sequence against the real netwatchd and checks every status, header and body the
 * reference and docs/api.md promise.
 *
 *   it_lifecycle NETWATCHD cli|powershell
 *
 * Adapted to this version: no agent exists, so every create operation ends Failed with
 * AgentNotConnected and the resource shows provisioningState Failed; queryStatus says
 * NotStarted. Local paths are valid ones (/var/captures/..., C:\...).
 */
#include "tests/integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OP_TIMEOUT_S 10

struct flavour {
    const char *api;    /* api-version the client sends */
    const char *region; /* watcher location */
    const char *rg;
    const char *nw;
};

static struct nw_server srv;
static char watcher_path[512]; /* no query */

static const char *body_text(const struct nw_response *r)
{
    return r->body ? r->body : "";
}

/* Checks status and prints the reply when it is not the wanted one. */
#define WANT_STATUS(r, want, what)                                                                 \
    NW_CHECK((r)->status == (want), "%s: want %ld, got %ld: %.600s", (what), (long)(want),         \
             (r)->status, body_text(r))

/* Every reply carries a GUID x-ms-request-id and a correlation id. */
static void check_ids(const struct nw_response *r, const char *what)
{
    const char *rid = nw_response_header(r, "x-ms-request-id");

    NW_CHECK(rid && nw_is_guid(rid), "%s: x-ms-request-id %s", what, rid ? rid : "absent");
    NW_CHECK(nw_response_header(r, "x-ms-correlation-request-id") != NULL,
             "%s: x-ms-correlation-request-id absent", what);
}

static int request(const char *method, const char *target, const char *body, struct nw_response *r)
{
    int rc = nw_server_request(&srv, method, target, body, NULL, r);

    NW_CHECK(rc == 0, "%s %s: no reply: %s", method, target, r->error);
    if (rc == 0)
        check_ids(r, target);
    return rc;
}

/*
 * Checks a monitor URL: {scheme://host}/subscriptions/{sub}/providers/Microsoft.Network/
 * locations/{region}/{kind}/{GUID}?api-version={api}. Copies the GUID into id.
 */
static int check_monitor_url(const char *url, const struct flavour *f, const char *kind, char *id,
                             const char *what)
{
    char prefix[512];
    const char *target = nw_url_target(url);

    if (!NW_CHECK(url != NULL, "%s: monitor header absent", what))
        return 0;
    NW_CHECK(strncmp(url, "http://", 7) == 0 || strncmp(url, "https://", 8) == 0,
             "%s: %s is not absolute", what, url);
    if (!NW_CHECK(target != NULL, "%s: %s has no path", what, url))
        return 0;
    snprintf(prefix, sizeof(prefix),
             "/subscriptions/%s/providers/Microsoft.Network/locations/%s/%s/", srv.sub, f->region,
             kind);
    if (!NW_CHECK(strncasecmp(target, prefix, strlen(prefix)) == 0, "%s: %s does not start %s",
                  what, target, prefix))
        return 0;
    const char *g = target + strlen(prefix);
    const char *q = strchr(g, '?');
    if (!NW_CHECK(q && (size_t)(q - g) == NW_GUID_LEN, "%s: no operation id in %s", what, url))
        return 0;
    memcpy(id, g, NW_GUID_LEN);
    id[NW_GUID_LEN] = '\0';
    NW_CHECK(nw_is_guid(id), "%s: operation id %s is not a GUID", what, id);
    char want_q[64];
    snprintf(want_q, sizeof(want_q), "?api-version=%s", f->api);
    NW_CHECK(strncmp(q, want_q, strlen(want_q)) == 0 &&
                 (q[strlen(want_q)] == '\0' || q[strlen(want_q)] == '&'),
             "%s: %s does not carry %s", what, url, want_q);
    return 1;
}

static void check_retry_after(const struct nw_response *r, const char *what)
{
    const char *ra = nw_response_header(r, "Retry-After");
    char *end = NULL;
    long v = ra ? strtol(ra, &end, 10) : -1;

    NW_CHECK(ra && end && *end == '\0' && v >= 0 && v <= 2, "%s: Retry-After %s (want 0..2)", what,
             ra ? ra : "absent");
}

static void capture_target(char *out, size_t n, const char *name, const struct flavour *f)
{
    snprintf(out, n, "%s/packetCaptures/%s?api-version=%s", watcher_path, name, f->api);
}

static char *get_etag(const char *target, const char *what)
{
    struct nw_response r;
    char *tag = NULL;

    if (request("GET", target, NULL, &r) == 0 && WANT_STATUS(&r, 200, what)) {
        const char *h = nw_response_header(&r, "ETag");
        const char *b = nw_json_str(r.json, "etag");
        NW_CHECK(h != NULL, "%s: GET has no ETag header", what);
        NW_CHECK(b && nw_is_weak_etag(b), "%s: body etag %s is not W/\"<guid>\"", what,
                 b ? b : "absent");
        NW_CHECK(h && b && strcmp(h, b) == 0, "%s: ETag header %s != body etag %s", what,
                 h ? h : "-", b ? b : "-");
        tag = b ? strdup(b) : NULL;
    }
    nw_response_free(&r);
    return tag;
}

static char *watcher_etag(const struct flavour *f)
{
    char t[600];

    snprintf(t, sizeof(t), "%s?api-version=%s", watcher_path, f->api);
    return get_etag(t, "GET watcher");
}

static void put_watcher(const struct flavour *f)
{
    struct nw_response r;
    char t[600], body[128];

    snprintf(t, sizeof(t), "%s?api-version=%s", watcher_path, f->api);
    snprintf(body, sizeof(body), "{\"location\":\"%s\",\"properties\":{}}", f->region);
    if (request("PUT", t, body, &r) == 0 && WANT_STATUS(&r, 201, "PUT watcher")) {
        NW_CHECK(nw_json_str(r.json, "etag") && nw_is_weak_etag(nw_json_str(r.json, "etag")),
                 "watcher etag");
        const char *h = nw_response_header(&r, "ETag");
        NW_CHECK(h && nw_json_str(r.json, "etag") && strcmp(h, nw_json_str(r.json, "etag")) == 0,
                 "PUT watcher: ETag header %s", h ? h : "absent");
    }
    nw_response_free(&r);

    /* The CLI finds the watcher through ListAll and picks it by location. */
    snprintf(t, sizeof(t),
             "/subscriptions/%s/providers/Microsoft.Network/networkWatchers"
             "?api-version=%s",
             srv.sub, f->api);
    if (request("GET", t, NULL, &r) == 0 && WANT_STATUS(&r, 200, "ListAll watchers")) {
        json_t *v = json_object_get(r.json, "value");
        NW_CHECK(json_array_size(v) == 1, "ListAll: want 1 watcher, got %zu", json_array_size(v));
        json_t *w = json_array_get(v, 0);
        NW_CHECK(nw_json_str(w, "location") && strcmp(nw_json_str(w, "location"), f->region) == 0,
                 "ListAll: location %s",
                 nw_json_str(w, "location") ? nw_json_str(w, "location") : "absent");
        NW_CHECK(json_is_array(nw_json_get(w, "properties.runningOperationIds")) &&
                     json_array_size(nw_json_get(w, "properties.runningOperationIds")) == 0,
                 "ListAll: runningOperationIds not []");
        NW_CHECK(nw_json_str(w, "type") &&
                     strcmp(nw_json_str(w, "type"), "Microsoft.Network/networkWatchers") == 0,
                 "ListAll: type");
    }
    nw_response_free(&r);
}

/* PUT a capture, check the 201 and its operation (Failed: AgentNotConnected), then GET it. */
static void create_capture(const struct flavour *f, const char *name, const char *body,
                           int continuous)
{
    struct nw_response r;
    char t[600], what[128], opid[NW_GUID_LEN + 1] = "", want_id[600];
    char *put_etag = NULL;
    json_t *op = NULL;

    capture_target(t, sizeof(t), name, f);
    snprintf(want_id, sizeof(want_id), "%s/packetCaptures/%s", watcher_path, name);
    snprintf(what, sizeof(what), "PUT %s", name);
    if (request("PUT", t, body, &r) != 0 || !WANT_STATUS(&r, 201, what))
        goto cleanup;
    NW_CHECK(nw_json_str(r.json, "name") && strcmp(nw_json_str(r.json, "name"), name) == 0,
             "%s: name", what);
    NW_CHECK(nw_json_str(r.json, "id") && strcmp(nw_json_str(r.json, "id"), want_id) == 0,
             "%s: id %s", what, nw_json_str(r.json, "id") ? nw_json_str(r.json, "id") : "absent");
    NW_CHECK(nw_json_str(r.json, "type") &&
                 strcmp(nw_json_str(r.json, "type"),
                        "Microsoft.Network/networkWatchers/packetCaptures") == 0,
             "%s: type", what);
    NW_CHECK(nw_json_str(r.json, "etag") && nw_is_weak_etag(nw_json_str(r.json, "etag")),
             "%s: etag %s", what,
             nw_json_str(r.json, "etag") ? nw_json_str(r.json, "etag") : "absent");
    put_etag = nw_json_str(r.json, "etag") ? strdup(nw_json_str(r.json, "etag")) : NULL;
    NW_CHECK(nw_json_str(r.json, "properties.provisioningState") &&
                 strcmp(nw_json_str(r.json, "properties.provisioningState"), "Updating") == 0,
             "%s: provisioningState %s (want Updating)", what,
             nw_json_str(r.json, "properties.provisioningState")
                 ? nw_json_str(r.json, "properties.provisioningState")
                 : "absent");
    NW_CHECK(nw_json_str(r.json, "properties.targetType") &&
                 strcmp(nw_json_str(r.json, "properties.targetType"), "AzureVM") == 0,
             "%s: targetType", what);
    NW_CHECK(json_integer_value(nw_json_get(r.json, "properties.bytesToCapturePerPacket")) == 0 &&
                 json_is_integer(nw_json_get(r.json, "properties.bytesToCapturePerPacket")),
             "%s: bytesToCapturePerPacket", what);
    if (continuous) {
        NW_CHECK(nw_json_get(r.json, "properties.totalBytesPerSession") == NULL,
                 "%s: totalBytesPerSession present with continuousCapture", what);
        NW_CHECK(nw_json_get(r.json, "properties.timeLimitInSeconds") == NULL,
                 "%s: timeLimitInSeconds present with continuousCapture", what);
        NW_CHECK(json_is_true(nw_json_get(r.json, "properties.continuousCapture")),
                 "%s: continuousCapture", what);
        NW_CHECK(
            json_integer_value(nw_json_get(r.json, "properties.captureSettings.fileCount")) == 2 &&
                json_integer_value(
                    nw_json_get(r.json, "properties.captureSettings.fileSizeInBytes")) == 102400 &&
                json_integer_value(nw_json_get(
                    r.json, "properties.captureSettings.sessionTimeLimitInSeconds")) == 60,
            "%s: captureSettings not echoed", what);
    } else {
        NW_CHECK(json_integer_value(nw_json_get(r.json, "properties.totalBytesPerSession")) ==
                     1073741824,
                 "%s: totalBytesPerSession", what);
        NW_CHECK(json_integer_value(nw_json_get(r.json, "properties.timeLimitInSeconds")) == 18000,
                 "%s: timeLimitInSeconds", what);
    }
    NW_CHECK(json_is_array(nw_json_get(r.json, "properties.filters")) &&
                 json_array_size(nw_json_get(r.json, "properties.filters")) == 0,
             "%s: filters not []", what);
    NW_CHECK(json_is_array(nw_json_get(r.json, "properties.scope.include")) &&
                 json_is_array(nw_json_get(r.json, "properties.scope.exclude")),
             "%s: scope not {include:[],exclude:[]}", what);
    NW_CHECK(nw_json_str(r.json, "properties.storageLocation.storagePath") &&
                 strcmp(nw_json_str(r.json, "properties.storageLocation.storagePath"), "") == 0,
             "%s: storagePath not \"\"", what);

    const char *aao = nw_response_header(&r, "Azure-AsyncOperation");
    if (check_monitor_url(aao, f, "operations", opid, what)) {
        const char *rid = nw_response_header(&r, "x-ms-request-id");
        NW_CHECK(rid && strcmp(rid, opid) == 0, "%s: x-ms-request-id %s != operation id %s", what,
                 rid ? rid : "absent", opid);
    }
    check_retry_after(&r, what);
    if (aao == NULL)
        goto cleanup;

    op = nw_server_wait_operation(&srv, aao, OP_TIMEOUT_S);
    if (!NW_CHECK(op != NULL, "%s: operation did not end in %d s", what, OP_TIMEOUT_S))
        goto cleanup;
    NW_CHECK(nw_json_str(op, "status") && strcmp(nw_json_str(op, "status"), "Failed") == 0,
             "%s: operation status %s (want Failed)", what,
             nw_json_str(op, "status") ? nw_json_str(op, "status") : "absent");
    NW_CHECK(nw_json_str(op, "error.code") &&
                 strcmp(nw_json_str(op, "error.code"), "AgentNotConnected") == 0,
             "%s: operation error.code %s (want AgentNotConnected)", what,
             nw_json_str(op, "error.code") ? nw_json_str(op, "error.code") : "absent");
    NW_CHECK(nw_json_str(op, "error.message") != NULL, "%s: operation error.message absent", what);
    NW_CHECK(nw_json_str(op, "name") && strcmp(nw_json_str(op, "name"), opid) == 0,
             "%s: operation name", what);
    NW_CHECK(nw_json_str(op, "id") && strstr(nw_json_str(op, "id"), opid) != NULL,
             "%s: operation id", what);
    NW_CHECK(nw_json_str(op, "startTime") != NULL, "%s: operation startTime absent", what);

    /* A failed operation's result monitor answers with the operation's error. */
    char result[1024];
    const char *ops = strstr(aao, "/operations/");
    if (ops != NULL) {
        snprintf(result, sizeof(result), "%.*s/operationResults/%s", (int)(ops - aao), aao,
                 ops + strlen("/operations/"));
        struct nw_response fr;
        if (request("GET", nw_url_target(result), NULL, &fr) == 0) {
            NW_CHECK(fr.status >= 400 && fr.status <= 599, "%s: result of a failed operation: %ld",
                     what, fr.status);
            const char *code = nw_json_str(fr.json, "error.code");
            NW_CHECK(code && strcmp(code, "AgentNotConnected") == 0,
                     "%s: result of a failed operation: code %s", what, code ? code : "absent");
        }
        nw_response_free(&fr);
    }

    /* The resource now says Failed, with a new etag that is the watcher's. */
    nw_response_free(&r);
    if (request("GET", t, NULL, &r) == 0 && WANT_STATUS(&r, 200, "GET after create")) {
        const char *ps = nw_json_str(r.json, "properties.provisioningState");
        NW_CHECK(ps && strcmp(ps, "Failed") == 0, "GET %s: provisioningState %s (want Failed)",
                 name, ps ? ps : "absent");
        const char *h = nw_response_header(&r, "ETag");
        const char *b = nw_json_str(r.json, "etag");
        NW_CHECK(h && b && strcmp(h, b) == 0, "GET %s: ETag header %s != body %s", name,
                 h ? h : "-", b ? b : "-");
        NW_CHECK(b && put_etag && strcmp(b, put_etag) != 0,
                 "GET %s: etag did not change after the operation ended (%s)", name, b ? b : "-");
        char *we = watcher_etag(f);
        NW_CHECK(we && b && strcmp(we, b) == 0, "GET %s: etag %s != watcher etag %s", name,
                 b ? b : "-", we ? we : "-");
        free(we);
    }
cleanup:
    json_decref(op);
    free(put_etag);
    nw_response_free(&r);
}

/* POST stop or DELETE: 202 + both monitors, AAO Succeeded, Location -> final. */
static void lro_action(const struct flavour *f, const char *method, const char *target,
                       const char *what, long final_status, int final_null)
{
    struct nw_response r, fin;
    char op1[NW_GUID_LEN + 1] = "", op2[NW_GUID_LEN + 1] = "";
    json_t *op = NULL;

    memset(&fin, 0, sizeof(fin));
    if (request(method, target, NULL, &r) != 0 || !WANT_STATUS(&r, 202, what))
        goto cleanup;
    NW_CHECK(r.body_len == 0, "%s: 202 body not empty: %.200s", what, r.body);
    const char *aao = nw_response_header(&r, "Azure-AsyncOperation");
    const char *loc = nw_response_header(&r, "Location");
    int ok1 = check_monitor_url(aao, f, "operations", op1, what);
    int ok2 = check_monitor_url(loc, f, "operationResults", op2, what);
    if (ok1 && ok2)
        NW_CHECK(strcmp(op1, op2) == 0, "%s: operation ids differ: %s vs %s", what, op1, op2);
    if (ok1) {
        const char *rid = nw_response_header(&r, "x-ms-request-id");
        NW_CHECK(rid && strcmp(rid, op1) == 0, "%s: x-ms-request-id %s != operation id %s", what,
                 rid ? rid : "absent", op1);
    }
    check_retry_after(&r, what);
    if (!ok1 || !ok2)
        goto cleanup;
    op = nw_server_wait_operation(&srv, aao, OP_TIMEOUT_S);
    if (!NW_CHECK(op != NULL, "%s: operation did not end in %d s", what, OP_TIMEOUT_S))
        goto cleanup;
    NW_CHECK(nw_json_str(op, "status") && strcmp(nw_json_str(op, "status"), "Succeeded") == 0,
             "%s: operation status %s (want Succeeded)", what,
             nw_json_str(op, "status") ? nw_json_str(op, "status") : "absent");
    NW_CHECK(nw_json_get(op, "error") == NULL, "%s: Succeeded operation carries an error", what);
    if (!NW_CHECK(nw_server_wait_location(&srv, loc, OP_TIMEOUT_S, &fin) == 0,
                  "%s: Location still 202", what))
        goto cleanup;
    check_ids(&fin, "Location");
    NW_CHECK(fin.status == final_status, "%s: Location answered %ld (want %ld): %.300s", what,
             fin.status, final_status, fin.body);
    if (final_null)
        NW_CHECK(json_is_null(fin.json), "%s: Location body %.100s (want null)", what, fin.body);
    else
        NW_CHECK(fin.body_len == 0, "%s: Location body not empty", what);
cleanup:
    json_decref(op);
    nw_response_free(&fin);
    nw_response_free(&r);
}

static void stop_capture(const struct flavour *f, const char *name)
{
    char t[600], what[128];

    snprintf(t, sizeof(t), "%s/packetCaptures/%s/stop?api-version=%s", watcher_path, name, f->api);
    snprintf(what, sizeof(what), "stop %s", name);
    lro_action(f, "POST", t, what, 200, 1);
}

static void delete_capture(const struct flavour *f, const char *name)
{
    char t[600], what[128];
    char *before = watcher_etag(f);
    struct nw_response r;

    capture_target(t, sizeof(t), name, f);
    snprintf(what, sizeof(what), "DELETE %s", name);
    lro_action(f, "DELETE", t, what, 204, 0);
    if (request("GET", t, NULL, &r) == 0 && WANT_STATUS(&r, 404, "GET after delete"))
        NW_CHECK(nw_json_str(r.json, "error.code") &&
                     strcmp(nw_json_str(r.json, "error.code"), "NotFound") == 0,
                 "GET after delete: code %s",
                 nw_json_str(r.json, "error.code") ? nw_json_str(r.json, "error.code") : "-");
    nw_response_free(&r);
    char *after = watcher_etag(f);
    NW_CHECK(before && after && strcmp(before, after) != 0, "%s: watcher etag did not change (%s)",
             what, after ? after : "-");
    free(before);
    free(after);
}

static void query_status(const struct flavour *f, const char *name)
{
    struct nw_response r;
    char t[600], id[600], what[128];

    snprintf(t, sizeof(t), "%s/packetCaptures/%s/queryStatus?api-version=%s", watcher_path, name,
             f->api);
    snprintf(id, sizeof(id), "%s/packetCaptures/%s", watcher_path, name);
    snprintf(what, sizeof(what), "queryStatus %s", name);
    if (request("POST", t, NULL, &r) == 0 && WANT_STATUS(&r, 200, what)) {
        NW_CHECK(nw_json_str(r.json, "name") && strcmp(nw_json_str(r.json, "name"), name) == 0,
                 "%s: name", what);
        NW_CHECK(nw_json_str(r.json, "id") && strcmp(nw_json_str(r.json, "id"), id) == 0, "%s: id",
                 what);
        NW_CHECK(nw_json_str(r.json, "packetCaptureStatus") &&
                     strcmp(nw_json_str(r.json, "packetCaptureStatus"), "NotStarted") == 0,
                 "%s: packetCaptureStatus %s (want NotStarted)", what,
                 nw_json_str(r.json, "packetCaptureStatus")
                     ? nw_json_str(r.json, "packetCaptureStatus")
                     : "-");
        NW_CHECK(json_is_array(nw_json_get(r.json, "packetCaptureError")),
                 "%s: packetCaptureError not an array", what);
    }
    nw_response_free(&r);
}

static void list_captures(const struct flavour *f, size_t want)
{
    struct nw_response r;
    char t[600];
    char *we = watcher_etag(f);

    snprintf(t, sizeof(t), "%s/packetCaptures?api-version=%s", watcher_path, f->api);
    if (request("GET", t, NULL, &r) == 0 && WANT_STATUS(&r, 200, "list captures")) {
        json_t *v = json_object_get(r.json, "value");
        NW_CHECK(json_is_array(v) && json_array_size(v) == want, "list: want %zu items: %.400s",
                 want, r.body);
        NW_CHECK(json_object_get(r.json, "nextLink") == NULL ||
                     json_is_null(json_object_get(r.json, "nextLink")),
                 "list: nextLink on a single page");
        size_t i;
        json_t *it;
        json_array_foreach(v, i, it)
        {
            NW_CHECK(we && nw_json_str(it, "etag") && strcmp(nw_json_str(it, "etag"), we) == 0,
                     "list item %zu: etag %s != watcher etag %s", i,
                     nw_json_str(it, "etag") ? nw_json_str(it, "etag") : "-", we ? we : "-");
        }
    }
    free(we);
    nw_response_free(&r);
}

static void cli_sequence(void)
{
    static const struct flavour f = {"2022-01-01", "westus2", "NetworkWatcherRG",
                                     "NetworkWatcher_westus2"};
    char body[1024];

    snprintf(watcher_path, sizeof(watcher_path),
             "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkWatchers/%s",
             srv.sub, f.rg, f.nw);
    put_watcher(&f);
    for (int i = 1; i <= 2; i++) {
        char name[32];
        snprintf(name, sizeof(name), "capture%d", i);
        snprintf(body, sizeof(body),
                 "{\"properties\":{\"bytesToCapturePerPacket\":0,\"storageLocation\":{\"filePath\":"
                 "\"/var/captures/capture%d.cap\"},\"target\":\"/subscriptions/%s/resourceGroups/"
                 "cli_test/providers/Microsoft.Compute/virtualMachines/vm1\",\"targetType\":"
                 "\"AzureVM\",\"timeLimitInSeconds\":18000,\"totalBytesPerSession\":1073741824}}",
                 i, srv.sub);
        create_capture(&f, name, body, 0);
    }
    /* show: both captures carry the watcher's current etag. */
    char t[600];
    capture_target(t, sizeof(t), "capture1", &f);
    char *e1 = get_etag(t, "show capture1");
    capture_target(t, sizeof(t), "capture2", &f);
    char *e2 = get_etag(t, "show capture2");
    char *we = watcher_etag(&f);
    NW_CHECK(e1 && e2 && we && strcmp(e1, e2) == 0 && strcmp(e1, we) == 0,
             "show: capture etags %s %s, watcher %s", e1 ? e1 : "-", e2 ? e2 : "-", we ? we : "-");
    free(e1);
    free(e2);
    free(we);

    stop_capture(&f, "capture1");
    query_status(&f, "capture1");
    list_captures(&f, 2);
    delete_capture(&f, "capture1");
    delete_capture(&f, "capture2");
    list_captures(&f, 0);
}

static void powershell_sequence(void)
{
    static const struct flavour f = {"2024-07-01", "westcentralus", "NetworkWatcherRG",
                                     "NetworkWatcher_westcentralus"};
    struct nw_response r;
    char t[600], body[1024], msg[700];

    snprintf(watcher_path, sizeof(watcher_path),
             "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkWatchers/%s",
             srv.sub, f.rg, f.nw);
    put_watcher(&f);

    /* Existence check first: 404 NotFound "Resource {id} not found.". */
    capture_target(t, sizeof(t), "psnrp3366", &f);
    snprintf(msg, sizeof(msg), "Resource %s/packetCaptures/psnrp3366 not found.", watcher_path);
    if (request("GET", t, NULL, &r) == 0 && WANT_STATUS(&r, 404, "existence check")) {
        NW_CHECK(nw_json_str(r.json, "error.code") &&
                     strcmp(nw_json_str(r.json, "error.code"), "NotFound") == 0,
                 "existence check: code %s",
                 nw_json_str(r.json, "error.code") ? nw_json_str(r.json, "error.code") : "-");
        NW_CHECK(nw_json_str(r.json, "error.message") &&
                     strcmp(nw_json_str(r.json, "error.message"), msg) == 0,
                 "existence check: message \"%s\" (want \"%s\")",
                 nw_json_str(r.json, "error.message") ? nw_json_str(r.json, "error.message") : "-",
                 msg);
        NW_CHECK(json_is_array(nw_json_get(r.json, "error.details")), "existence check: details");
    }
    nw_response_free(&r);

    snprintf(body, sizeof(body),
             "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/psnrp1/providers/"
             "Microsoft.Compute/virtualMachines/psnrp9847\",\"targetType\":\"AzureVM\","
             "\"storageLocation\":{\"localPath\":\"C:\\\\captures\\\\Capture.cap\"},"
             "\"continuousCapture\":true,\"captureSettings\":{\"fileCount\":2,"
             "\"fileSizeInBytes\":102400,\"sessionTimeLimitInSeconds\":60}}}",
             srv.sub);
    create_capture(&f, "psnrp3366", body, 1);
    if (request("GET", t, NULL, &r) == 0 && WANT_STATUS(&r, 200, "GET psnrp3366")) {
        const char *lp = nw_json_str(r.json, "properties.storageLocation.localPath");
        NW_CHECK(lp && strcmp(lp, "C:\\captures\\Capture.cap") == 0, "localPath %s",
                 lp ? lp : "absent");
    }
    nw_response_free(&r);
    query_status(&f, "psnrp3366");
    stop_capture(&f, "psnrp3366");
    query_status(&f, "psnrp3366");
    delete_capture(&f, "psnrp3366");
    list_captures(&f, 0);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "cli") != 0 && strcmp(argv[2], "powershell") != 0)) {
        fprintf(stderr, "usage: %s NETWATCHD cli|powershell\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    if (nw_server_init(&srv, argv[1]) != 0 || nw_server_start(&srv) != 0) {
        nw_server_cleanup(&srv);
        printf("FAIL: netwatchd did not start\n");
        return 1;
    }
    printf("netwatchd on %s, scenario %s\n", srv.base_url, argv[2]);
    if (strcmp(argv[2], "cli") == 0)
        cli_sequence();
    else
        powershell_sequence();
    NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not exit 0 on SIGTERM");
    if (nw_failures)
        nw_server_dump_log(&srv, 6000);
    nw_server_cleanup(&srv);
    printf("%s lifecycle.%s: %d failure(s)\n", nw_failures ? "FAIL" : "PASS", argv[2], nw_failures);
    return nw_failures ? 1 : 0;
}
