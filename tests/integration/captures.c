/*
 * captures.c - a watcher's packet captures through the API (see captures.h).
 */
#include "tests/integration/captures.h"

#include <stdio.h>
#include <string.h>

#define API "2024-07-01"

int nw_watcher_put(const struct nw_server *s, char *nw)
{
    char t[NW_WATCHER_MAX + 40];
    snprintf(nw, NW_WATCHER_MAX,
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1",
             s->sub);
    snprintf(t, sizeof(t), "%s?api-version=" API, nw);
    struct nw_response r;
    int ok = nw_server_request(s, "PUT", t, "{\"location\":\"westus2\"}", NULL, &r) == 0 &&
             r.status / 100 == 2;
    NW_CHECK(ok, "watcher PUT: %ld", r.status);
    nw_response_free(&r);
    return ok ? 0 : -1;
}

int nw_capture_put(const struct nw_server *s, const char *nw, const char *name, const char *vm,
                   int port, const char *extra, struct nw_created *out)
{
    char t[700], body[1200];
    snprintf(
        body, sizeof(body),
        "{\"properties\":{%s\"target\":\"/subscriptions/%s/resourceGroups/rg1/providers/"
        "Microsoft.Compute/virtualMachines/%s\",\"storageLocation\":{\"filePath\":"
        "\"/var/captures/%s.cap\"},\"filters\":[{\"protocol\":\"UDP\",\"localPort\":\"%d\"}]}}",
        extra, s->sub, vm, name, port);
    snprintf(t, sizeof(t), "%s/packetCaptures/%s?api-version=" API, nw, name);
    struct nw_response r;
    memset(out, 0, sizeof(*out));
    if (nw_server_request(s, "PUT", t, body, NULL, &r) == 0)
        out->status = r.status;
    const char *aao = nw_response_header(&r, "Azure-AsyncOperation");
    if (aao)
        snprintf(out->aao, sizeof(out->aao), "%s", aao);
    const char *ops = aao ? strstr(aao, "/operations/") : NULL;
    if (ops)
        snprintf(out->op_id, sizeof(out->op_id), "%.36s", ops + strlen("/operations/"));
    int ok = out->status == 201 && nw_is_guid(out->op_id);
    NW_CHECK(ok, "PUT %s: %ld %.300s", name, out->status, r.body ? r.body : "");
    nw_response_free(&r);
    return ok ? 0 : -1;
}

int nw_operation_ends(const struct nw_server *s, const char *aao, int timeout_s, const char *want,
                      const char *code, json_t **keep)
{
    json_t *op = nw_server_wait_operation(s, aao, timeout_s);
    const char *st = op ? json_string_value(json_object_get(op, "status")) : NULL;
    const char *c = op ? nw_json_str(op, "error.code") : NULL;
    int ok = NW_CHECK(st && strcmp(st, want) == 0, "operation %s ended %s, want %s", aao,
                      st ? st : "(not within the wait)", want);
    if (ok && code)
        ok = NW_CHECK(c && strcmp(c, code) == 0, "operation failed with %s, want %s",
                      c ? c : "(no code)", code);
    if (keep)
        *keep = op;
    else
        json_decref(op);
    return ok;
}

long nw_capture_query(const struct nw_server *s, const char *nw, const char *name, char *status,
                      char *reason, char *start, size_t sz)
{
    char t[700];
    snprintf(t, sizeof(t), "%s/packetCaptures/%s/queryStatus?api-version=" API, nw, name);
    struct nw_response r;
    long code = nw_server_request(s, "POST", t, NULL, NULL, &r) == 0 ? r.status : 0;
    const char *st = nw_json_str(r.json, "packetCaptureStatus");
    const char *why = nw_json_str(r.json, "stopReason");
    snprintf(status, sz, "%s", st ? st : "");
    snprintf(reason, sz, "%s", why ? why : "");
    if (start) {
        const char *t0 = nw_json_str(r.json, "captureStartTime");
        snprintf(start, sz, "%s", t0 ? t0 : "");
    }
    nw_response_free(&r);
    return code;
}

int nw_capture_is(const struct nw_server *s, const char *nw, const char *name, const char *status,
                  const char *reason)
{
    char st[64], why[64];
    long code = nw_capture_query(s, nw, name, st, why, NULL, sizeof(st));
    int ok = NW_CHECK(code == 200 && strcmp(st, status) == 0, "%s: queryStatus %ld %s, want %s",
                      name, code, st, status);
    if (ok && reason)
        ok = NW_CHECK(strcmp(why, reason) == 0, "%s: stopReason '%s', want %s", name, why, reason);
    return ok;
}

int nw_capture_stop(const struct nw_server *s, const char *nw, const char *name, char *loc,
                    size_t locsz, char *aao, size_t aaosz)
{
    char t[700];
    snprintf(t, sizeof(t), "%s/packetCaptures/%s/stop?api-version=" API, nw, name);
    struct nw_response r;
    long code = nw_server_request(s, "POST", t, NULL, NULL, &r) == 0 ? r.status : 0;
    const char *l = nw_response_header(&r, "Location");
    snprintf(loc, locsz, "%s", l ? l : "");
    if (aao) {
        const char *a = nw_response_header(&r, "Azure-AsyncOperation");
        snprintf(aao, aaosz, "%s", a ? a : "");
    }
    nw_response_free(&r);
    return NW_CHECK(code == 202 && loc[0], "stop %s: %ld", name, code) ? 0 : -1;
}

int nw_stop_done(const struct nw_server *s, const char *loc, int timeout_s)
{
    struct nw_response fin;
    int ok = NW_CHECK(nw_server_wait_location(s, loc, timeout_s, &fin) == 0,
                      "the stop did not finish within %d s", timeout_s);
    if (ok)
        ok = NW_CHECK(fin.status == 200 && fin.json && json_is_null(fin.json),
                      "stop result %ld %.200s, want 200 null", fin.status, fin.body);
    nw_response_free(&fin);
    return ok;
}
