/*
 * restart.c - long-running operations are rows in the store: their monitor URLs keep
 * answering after the server is stopped (SIGTERM) or killed (SIGKILL) and started again on
 * the same db, and resources and tokens survive too.
 *
 *   it_restart NETWATCHD
 */
#include "tests/integration/harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API          "2024-07-01"
#define OP_TIMEOUT_S 10

static struct nw_server srv;
static char watcher[512];

#define WANT_STATUS(r, want, what)                                                                 \
    NW_CHECK((r)->status == (want), "%s: want %ld, got %ld: %.600s", (what), (long)(want),         \
             (r)->status, (r)->body ? (r)->body : "")

struct monitors {
    char aao[1024]; /* paths, host dropped: the port changes at every start */
    char loc[1024];
};

/* Sends a request; keeps the monitor paths of the reply in m (when m is given). */
static long call(const char *method, const char *target, const char *body, struct monitors *m,
                 struct nw_response *r)
{
    if (nw_server_request(&srv, method, target, body, NULL, r) != 0) {
        NW_CHECK(0, "%s %s: no reply: %s", method, target, r->error);
        return 0;
    }
    if (m) {
        const char *a = nw_url_target(nw_response_header(r, "Azure-AsyncOperation"));
        const char *l = nw_url_target(nw_response_header(r, "Location"));
        snprintf(m->aao, sizeof(m->aao), "%s", a ? a : "");
        snprintf(m->loc, sizeof(m->loc), "%s", l ? l : "");
    }
    return r->status;
}

static void restart(int hard, const char *why)
{
    printf("-- %s restart: %s\n", hard ? "SIGKILL" : "SIGTERM", why);
    if (hard)
        NW_CHECK(nw_server_kill(&srv) == 0, "SIGKILL failed");
    else
        NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not exit 0 on SIGTERM");
    if (!NW_CHECK(nw_server_start(&srv) == 0, "netwatchd did not start again")) {
        nw_server_cleanup(&srv);
        printf("FAIL restart: %d failure(s)\n", nw_failures);
        exit(1);
    }
}

/* The status monitor answers 200 and ends with want_status (NULL: any terminal status). */
static void check_operation(const struct monitors *m, const char *want_status, const char *what)
{
    json_t *op;

    if (!NW_CHECK(m->aao[0] != '\0', "%s: no Azure-AsyncOperation", what))
        return;
    op = nw_server_wait_operation(&srv, m->aao, OP_TIMEOUT_S);
    if (NW_CHECK(op != NULL, "%s: %s did not answer a terminal status in %d s", what, m->aao,
                 OP_TIMEOUT_S) &&
        want_status != NULL) {
        const char *st = nw_json_str(op, "status");
        NW_CHECK(st && strcmp(st, want_status) == 0, "%s: status %s (want %s)", what,
                 st ? st : "absent", want_status);
    }
    json_decref(op);
}

/* The result monitor ends with want (status) and, for 200, a null body. */
static void check_result(const struct monitors *m, long want, const char *what)
{
    struct nw_response r;

    if (!NW_CHECK(m->loc[0] != '\0', "%s: no Location", what))
        return;
    if (NW_CHECK(nw_server_wait_location(&srv, m->loc, OP_TIMEOUT_S, &r) == 0,
                 "%s: %s still 202 after %d s", what, m->loc, OP_TIMEOUT_S)) {
        NW_CHECK(r.status == want, "%s: Location answered %ld (want %ld): %.300s", what, r.status,
                 want, r.body);
        if (want == 200)
            NW_CHECK(json_is_null(r.json), "%s: Location body %.100s (want null)", what, r.body);
    }
    nw_response_free(&r);
}

int main(int argc, char **argv)
{
    struct nw_response r;
    struct monitors create = {"", ""}, stop = {"", ""}, del = {"", ""}, wdel = {"", ""};
    char t[800], body[800], etag[128] = "";

    if (argc != 2) {
        fprintf(stderr, "usage: %s NETWATCHD\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    if (nw_server_init(&srv, argv[1]) != 0 || nw_server_start(&srv) != 0) {
        nw_server_cleanup(&srv);
        printf("FAIL restart: netwatchd did not start\n");
        return 1;
    }
    snprintf(watcher, sizeof(watcher),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1",
             srv.sub);

    snprintf(t, sizeof(t), "%s?api-version=" API, watcher);
    if (call("PUT", t, "{\"location\":\"westus\",\"tags\":{\"k\":\"v\"}}", NULL, &r) == 201 &&
        nw_json_str(r.json, "etag"))
        snprintf(etag, sizeof(etag), "%s", nw_json_str(r.json, "etag"));
    WANT_STATUS(&r, 201, "PUT watcher");
    nw_response_free(&r);

    /* 1. A create operation started just before a clean stop still answers afterwards. */
    snprintf(t, sizeof(t), "%s/packetCaptures/pc1?api-version=" API, watcher);
    snprintf(body, sizeof(body),
             "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/rg2/providers/"
             "Microsoft.Compute/virtualMachines/vm1\",\"storageLocation\":{\"filePath\":"
             "\"/var/captures/pc1.cap\"},\"timeLimitInSeconds\":77}}",
             srv.sub);
    call("PUT", t, body, &create, &r);
    WANT_STATUS(&r, 201, "PUT pc1");
    nw_response_free(&r);
    restart(0, "right after a capture create");
    check_operation(&create, NULL, "create pc1 after restart");
    if (call("GET", t, NULL, NULL, &r) == 200) {
        json_t *tl = nw_json_get(r.json, "properties.timeLimitInSeconds");
        NW_CHECK(json_integer_value(tl) == 77, "pc1 after restart: timeLimitInSeconds");
        const char *ps = nw_json_str(r.json, "properties.provisioningState");
        NW_CHECK(ps && strcmp(ps, "Updating") != 0,
                 "pc1 after restart: provisioningState still %s once its operation ended", ps);
    }
    WANT_STATUS(&r, 200, "GET pc1 after restart");
    nw_response_free(&r);

    /* 2. A finished stop: both monitors survive a restart. */
    snprintf(t, sizeof(t), "%s/packetCaptures/pc1/stop?api-version=" API, watcher);
    call("POST", t, NULL, &stop, &r);
    WANT_STATUS(&r, 202, "stop pc1");
    nw_response_free(&r);
    check_operation(&stop, "Succeeded", "stop pc1");
    restart(0, "after a finished stop");
    check_operation(&stop, "Succeeded", "stop pc1 after restart");
    check_result(&stop, 200, "stop pc1 after restart");

    /* 3. A delete stopped right away ends after the restart. */
    snprintf(t, sizeof(t), "%s/packetCaptures/pc1?api-version=" API, watcher);
    call("DELETE", t, NULL, &del, &r);
    WANT_STATUS(&r, 202, "DELETE pc1");
    nw_response_free(&r);
    restart(0, "right after a capture delete");
    check_operation(&del, "Succeeded", "delete pc1 after restart");
    check_result(&del, 204, "delete pc1 after restart");
    call("GET", t, NULL, NULL, &r);
    WANT_STATUS(&r, 404, "GET pc1 after delete and restart");
    nw_response_free(&r);

    /* 4. SIGKILL: what was acknowledged is durable, monitors included. */
    snprintf(t, sizeof(t), "%s/packetCaptures/pc2?api-version=" API, watcher);
    snprintf(body, sizeof(body),
             "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/rg2/providers/"
             "Microsoft.Compute/virtualMachines/vm2\",\"storageLocation\":{\"localPath\":"
             "\"/var/captures/pc2.cap\"},\"continuousCapture\":false}}",
             srv.sub);
    struct monitors create2 = {"", ""};
    call("PUT", t, body, &create2, &r);
    WANT_STATUS(&r, 201, "PUT pc2");
    nw_response_free(&r);
    check_operation(&create2, "Failed", "create pc2");
    restart(1, "after pc2 was created");
    check_operation(&create2, "Failed", "create pc2 after SIGKILL");
    check_operation(&create, NULL, "create pc1 after two restarts");
    check_result(&stop, 200, "stop pc1 after two restarts");
    check_result(&del, 204, "delete pc1 after two restarts");
    if (call("GET", t, NULL, NULL, &r) == 200) {
        const char *lp = nw_json_str(r.json, "properties.storageLocation.localPath");
        NW_CHECK(lp && strcmp(lp, "/var/captures/pc2.cap") == 0, "pc2 localPath %s",
                 lp ? lp : "absent");
    }
    WANT_STATUS(&r, 200, "GET pc2 after SIGKILL");
    nw_response_free(&r);

    /* 5. Watcher delete, SIGKILL right after its 202, restart: it completes. */
    snprintf(t, sizeof(t), "%s?api-version=" API, watcher);
    if (call("GET", t, NULL, NULL, &r) == 200) {
        const char *k = nw_json_str(r.json, "tags.k");
        NW_CHECK(k && strcmp(k, "v") == 0, "watcher tags lost across restarts");
        NW_CHECK(nw_json_str(r.json, "etag") && strcmp(nw_json_str(r.json, "etag"), etag) != 0,
                 "watcher etag did not change after capture changes");
    }
    WANT_STATUS(&r, 200, "GET watcher after restarts");
    nw_response_free(&r);
    call("DELETE", t, NULL, &wdel, &r);
    WANT_STATUS(&r, 202, "DELETE watcher");
    nw_response_free(&r);
    restart(1, "right after a watcher delete");
    check_operation(&wdel, "Succeeded", "watcher delete after SIGKILL");
    check_result(&wdel, 204, "watcher delete after SIGKILL");
    call("GET", t, NULL, NULL, &r);
    WANT_STATUS(&r, 404, "GET watcher after delete");
    nw_response_free(&r);
    snprintf(t, sizeof(t), "%s/packetCaptures/pc2?api-version=" API, watcher);
    call("GET", t, NULL, NULL, &r);
    WANT_STATUS(&r, 404, "GET pc2 after its watcher was deleted");
    nw_response_free(&r);

    NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not exit 0 on SIGTERM");
    if (nw_failures)
        nw_server_dump_log(&srv, 8000);
    nw_server_cleanup(&srv);
    printf("%s restart: %d failure(s)\n", nw_failures ? "FAIL" : "PASS", nw_failures);
    return nw_failures ? 1 : 0;
}
