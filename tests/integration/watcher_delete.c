/*
 * watcher_delete.c - deleting a network watcher removes it and all of its packet captures,
 * and nothing else (docs/api.md, networkWatchers DELETE).
 *
 *   it_watcher_delete NETWATCHD
 */
#include "tests/integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API          "2024-07-01"
#define OP_TIMEOUT_S 10

static struct nw_server srv;

#define WANT_STATUS(r, want, what)                                                                 \
    NW_CHECK((r)->status == (want), "%s: want %ld, got %ld: %.600s", (what), (long)(want),         \
             (r)->status, (r)->body ? (r)->body : "")

static void watcher_path(char *out, size_t n, const char *nw)
{
    snprintf(out, n,
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/%s",
             srv.sub, nw);
}

static long req(const char *method, const char *target, const char *body, struct nw_response *r)
{
    if (nw_server_request(&srv, method, target, body, NULL, r) != 0) {
        NW_CHECK(0, "%s %s: no reply: %s", method, target, r->error);
        return 0;
    }
    return r->status;
}

static void put_watcher(const char *nw, const char *region, long want)
{
    struct nw_response r;
    char t[600], body[128], what[128];

    watcher_path(t, sizeof(t), nw);
    strncat(t, "?api-version=" API, sizeof(t) - strlen(t) - 1);
    snprintf(body, sizeof(body), "{\"location\":\"%s\"}", region);
    snprintf(what, sizeof(what), "PUT watcher %s", nw);
    req("PUT", t, body, &r);
    WANT_STATUS(&r, want, what);
    nw_response_free(&r);
}

static void put_capture(const char *nw, const char *pc)
{
    struct nw_response r;
    char t[800], w[600], body[600], what[128];

    watcher_path(w, sizeof(w), nw);
    snprintf(t, sizeof(t), "%s/packetCaptures/%s?api-version=" API, w, pc);
    snprintf(body, sizeof(body),
             "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/rg2/providers/"
             "Microsoft.Compute/virtualMachines/vm1\",\"storageLocation\":{\"filePath\":"
             "\"/var/captures/%s.cap\"}}}",
             srv.sub, pc);
    snprintf(what, sizeof(what), "PUT capture %s/%s", nw, pc);
    req("PUT", t, body, &r);
    if (WANT_STATUS(&r, 201, what)) {
        const char *aao = nw_response_header(&r, "Azure-AsyncOperation");
        json_t *op = aao ? nw_server_wait_operation(&srv, aao, OP_TIMEOUT_S) : NULL;
        NW_CHECK(op != NULL, "%s: operation did not end", what);
        json_decref(op);
    }
    nw_response_free(&r);
}

static void get_capture(const char *nw, const char *pc, long want)
{
    struct nw_response r;
    char t[800], w[600], what[128];

    watcher_path(w, sizeof(w), nw);
    snprintf(t, sizeof(t), "%s/packetCaptures/%s?api-version=" API, w, pc);
    snprintf(what, sizeof(what), "GET capture %s/%s", nw, pc);
    req("GET", t, NULL, &r);
    WANT_STATUS(&r, want, what);
    nw_response_free(&r);
}

static size_t list_captures(const char *nw, long want)
{
    struct nw_response r;
    char t[800], w[600], what[128];
    size_t n = 0;

    watcher_path(w, sizeof(w), nw);
    snprintf(t, sizeof(t), "%s/packetCaptures?api-version=" API, w);
    snprintf(what, sizeof(what), "list captures of %s", nw);
    req("GET", t, NULL, &r);
    if (WANT_STATUS(&r, want, what) && want == 200) {
        json_t *v = json_object_get(r.json, "value");
        NW_CHECK(json_is_array(v), "%s: value not an array", what);
        n = json_array_size(v);
    }
    nw_response_free(&r);
    return n;
}

int main(int argc, char **argv)
{
    static const char *const caps[] = {"pc1", "PC2", "pc.3"};
    struct nw_response r;
    char t[800], w[600];

    if (argc != 2) {
        fprintf(stderr, "usage: %s NETWATCHD\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    if (nw_server_init(&srv, argv[1]) != 0 || nw_server_start(&srv) != 0) {
        nw_server_cleanup(&srv);
        printf("FAIL watcher_delete: netwatchd did not start\n");
        return 1;
    }

    put_watcher("nwA", "westus", 201);
    put_watcher("nwB", "eastus", 201);
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        put_capture("nwA", caps[i]);
    put_capture("nwB", "keep1");
    NW_CHECK(list_captures("nwA", 200) == 3, "nwA should list 3 captures before the delete");

    /* DELETE: 202 with both monitors, operation Succeeded, Location 204. */
    watcher_path(w, sizeof(w), "nwA");
    snprintf(t, sizeof(t), "%s?api-version=" API, w);
    req("DELETE", t, NULL, &r);
    if (WANT_STATUS(&r, 202, "DELETE nwA")) {
        const char *aao = nw_response_header(&r, "Azure-AsyncOperation");
        const char *loc = nw_response_header(&r, "Location");
        NW_CHECK(aao != NULL, "DELETE nwA: no Azure-AsyncOperation");
        NW_CHECK(loc != NULL, "DELETE nwA: no Location");
        NW_CHECK(r.body_len == 0, "DELETE nwA: 202 body not empty");
        json_t *op = aao ? nw_server_wait_operation(&srv, aao, OP_TIMEOUT_S) : NULL;
        const char *st = nw_json_str(op, "status");
        NW_CHECK(st && strcmp(st, "Succeeded") == 0, "DELETE nwA: operation %s",
                 st ? st : "did not end");
        json_decref(op);
        struct nw_response fin;
        if (loc && NW_CHECK(nw_server_wait_location(&srv, loc, OP_TIMEOUT_S, &fin) == 0,
                            "DELETE nwA: Location still 202"))
            NW_CHECK(fin.status == 204, "DELETE nwA: Location answered %ld (want 204)", fin.status);
        nw_response_free(&fin);
    }
    nw_response_free(&r);

    req("GET", t, NULL, &r);
    if (WANT_STATUS(&r, 404, "GET nwA after delete")) {
        const char *code = nw_json_str(r.json, "error.code");
        NW_CHECK(code && strcmp(code, "ResourceNotFound") == 0, "GET nwA: code %s",
                 code ? code : "-");
    }
    nw_response_free(&r);
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
        get_capture("nwA", caps[i], 404);
    list_captures("nwA", 404);

    /* The other watcher and its capture are untouched. */
    get_capture("nwB", "keep1", 200);
    NW_CHECK(list_captures("nwB", 200) == 1, "nwB lost its capture");

    /* A second DELETE finds nothing: 204. */
    req("DELETE", t, NULL, &r);
    WANT_STATUS(&r, 204, "DELETE nwA again");
    NW_CHECK(r.body_len == 0, "DELETE nwA again: body not empty");
    nw_response_free(&r);

    /* Re-created under the same name it is new (201) and empty; old names are free. */
    put_watcher("nwA", "westus", 201);
    NW_CHECK(list_captures("nwA", 200) == 0, "re-created nwA lists old captures");
    put_capture("nwA", "pc1");
    NW_CHECK(list_captures("nwA", 200) == 1, "re-created nwA: want 1 capture");

    /* The subscription now has both watchers again. */
    snprintf(t, sizeof(t),
             "/subscriptions/%s/providers/Microsoft.Network/networkWatchers"
             "?api-version=" API,
             srv.sub);
    req("GET", t, NULL, &r);
    if (WANT_STATUS(&r, 200, "ListAll"))
        NW_CHECK(json_array_size(json_object_get(r.json, "value")) == 2,
                 "ListAll: want 2 watchers: %.400s", r.body);
    nw_response_free(&r);

    NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not exit 0 on SIGTERM");
    if (nw_failures)
        nw_server_dump_log(&srv, 8000);
    nw_server_cleanup(&srv);
    printf("%s watcher_delete: %d failure(s)\n", nw_failures ? "FAIL" : "PASS", nw_failures);
    return nw_failures ? 1 : 0;
}
