/*
 * filters.c - a filter set the agent could not install is refused at create, and leaves nothing
 * behind: no capture under the name, none in the list, the name free for a set that fits
 * (docs/api.md, "The filter set ... must also make one BPF program the kernel can run").
 *
 *   it_filters NETWATCHD
 */
#include "tests/integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dynbuf.h"

#define API          "2024-07-01"
#define OP_TIMEOUT_S 10

static struct nw_server srv;

#define WANT_STATUS(r, want, what)                                                                 \
    NW_CHECK((r)->status == (want), "%s: want %ld, got %ld: %.600s", (what), (long)(want),         \
             (r)->status, (r)->body ? (r)->body : "")

static void capture_url(char *out, size_t n, const char *pc)
{
    snprintf(out, n,
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/"
             "nw1/packetCaptures%s%s?api-version=" API,
             srv.sub, pc ? "/" : "", pc ? pc : "");
}

/* A PUT body with n filters, each on its own local port. Caller frees. */
static char *body_with_ports(size_t n)
{
    struct dynbuf b;
    dynbuf_init(&b, 1 << 20);
    dynbuf_printf(&b,
                  "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/rg2/providers/"
                  "Microsoft.Compute/virtualMachines/vm1\",\"storageLocation\":{\"filePath\":"
                  "\"/var/captures/pc1.cap\"},\"filters\":[",
                  srv.sub);
    for (size_t i = 0; i < n; i++)
        dynbuf_printf(&b, "%s{\"localPort\":\"%zu\"}", i ? "," : "", 1000 + i);
    dynbuf_addstr(&b, "]}}");
    return dynbuf_take(&b);
}

static long req(const char *method, const char *target, const char *body, struct nw_response *r)
{
    if (nw_server_request(&srv, method, target, body, NULL, r) != 0) {
        NW_CHECK(0, "%s %s: no reply: %s", method, target, r->error);
        return 0;
    }
    return r->status;
}

int main(int argc, char **argv)
{
    struct nw_response r;
    char t[800];

    if (argc != 2) {
        fprintf(stderr, "usage: %s NETWATCHD\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    if (nw_server_init(&srv, argv[1]) != 0 || nw_server_start(&srv) != 0) {
        nw_server_cleanup(&srv);
        printf("FAIL filters: netwatchd did not start\n");
        return 1;
    }
    snprintf(t, sizeof(t),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/"
             "nw1?api-version=" API,
             srv.sub);
    req("PUT", t, "{\"location\":\"westus\"}", &r);
    WANT_STATUS(&r, 201, "PUT watcher");
    nw_response_free(&r);

    /* 64 filters of one port each: more instructions than the kernel runs. */
    char *big = body_with_ports(64);
    capture_url(t, sizeof(t), "pc1");
    long long t0 = nw_now_ms();
    req("PUT", t, big, &r);
    long long took = nw_now_ms() - t0;
    if (WANT_STATUS(&r, 400, "PUT 64 filters")) {
        json_t *j = r.json;
        const char *code = nw_json_str(j, "error.code");
        const char *target = nw_json_str(j, "error.target");
        const char *msg = nw_json_str(j, "error.message");
        NW_CHECK(code && strcmp(code, "InvalidPropertyValue") == 0, "code %s", code ? code : "-");
        NW_CHECK(target && strcmp(target, "properties.filters") == 0, "target %s",
                 target ? target : "-");
        NW_CHECK(msg && strstr(msg, "BPF instructions; the kernel runs at most 4096"), "msg %s",
                 msg ? msg : "-");
    }
    nw_response_free(&r);
    printf("refused PUT of 64 filters answered in %lld ms\n", took);
    free(big);

    /* Nothing is left behind: no capture, an empty list. */
    req("GET", t, NULL, &r);
    WANT_STATUS(&r, 404, "GET pc1 after the refusal");
    nw_response_free(&r);
    capture_url(t, sizeof(t), NULL);
    req("GET", t, NULL, &r);
    if (WANT_STATUS(&r, 200, "list after the refusal")) {
        NW_CHECK(json_array_size(json_object_get(r.json, "value")) == 0, "list not empty: %.300s",
                 r.body);
    }
    nw_response_free(&r);

    /* The name is free for a set that fits (40 filters). */
    char *fits = body_with_ports(40);
    capture_url(t, sizeof(t), "pc1");
    req("PUT", t, fits, &r);
    if (WANT_STATUS(&r, 201, "PUT 40 filters")) {
        NW_CHECK(json_array_size(nw_json_get(r.json, "properties.filters")) == 40,
                 "40 filters not echoed");
        const char *aao = nw_response_header(&r, "Azure-AsyncOperation");
        json_t *op = aao ? nw_server_wait_operation(&srv, aao, OP_TIMEOUT_S) : NULL;
        NW_CHECK(op != NULL, "create operation did not end");
        json_decref(op);
    }
    nw_response_free(&r);
    free(fits);

    NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not exit 0 on SIGTERM");
    if (nw_failures)
        nw_server_dump_log(&srv, 8000);
    nw_server_cleanup(&srv);
    printf("%s filters: %d failure(s)\n", nw_failures ? "FAIL" : "PASS", nw_failures);
    return nw_failures ? 1 : 0;
}
