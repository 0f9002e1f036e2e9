/*
 * grant_live.c - blobRequest/blobGrant through the real netwatchd, with a real Azurite as the
 * storage account: the SAS URL the server signs for an agent's session writes that session's
 * blob and nothing else.
 *
 *   it_storage_grant <netwatchd> <node> <azurite blob main.js>
 *
 * The account is registered with `netwatchd storage add` (Azurite's endpoint and development
 * key, from a key file); a capture names it; a scripted agent (the real agent's channel code,
 * tests/integration/script_agent.c) acknowledges the start and asks for grants:
 *   - file 0: the URL is the capture's storagePath plus a SAS (sp=cw, sr=b, a short expiry);
 *     a Put Blob through it is accepted and a read SAS downloads the same bytes; a GET through
 *     it is refused (write-only);
 *   - file 2: the blob is storagePath's name with "_2" before ".cap";
 *   - a capture id that is not the agent's: NotYourSession; a capture with only a local path:
 *     NoStorage; after `storage remove`: StorageFailed;
 *   - the server's log has no SAS signature and no key in it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "tests/integration/agent_proc.h"
#include "tests/integration/harness.h"
#include "tests/integration/script_agent.h"
#include "tests/storage/azurite.h"
#include "tests/storage/blob_fixture.h"

#define API     "2024-07-01"
#define WAIT_MS 15000

static struct nw_azurite az;
static struct nw_server srv;
static char storage_id[256], nw[300];

static const char *const block_blob[] = {"x-ms-blob-type: BlockBlob", "x-ms-version: 2022-11-02",
                                         NULL};
static const char *const plain[] = {"x-ms-version: 2022-11-02", NULL};

static long send_to(const char *method, const char *url, const char *const *headers,
                    const char *body, size_t len)
{
    struct nw_response r = {0};
    struct nw_request req = {.method = method,
                             .target = nw_url_target(url),
                             .headers = headers,
                             .body = body,
                             .body_len = len};
    nw_http(az.base_url, &req, &r);
    long status = r.status;
    nw_response_free(&r);
    return status;
}

static int cli(char *const argv[], char *out, size_t outsz)
{
    char log[NW_PATH_MAX + 16];
    snprintf(log, sizeof(log), "%s/cli.log", srv.dir);
    return nw_run(argv, log, out, outsz);
}

static int cli_log_has(const char *needle)
{
    char path[NW_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/cli.log", srv.dir);
    size_t len = 0;
    char *text = nw_read_file(path, &len);
    int found = text && strstr(text, needle);
    free(text);
    return found;
}

static int put_capture(const char *name, const char *location, char *storage_path, size_t n)
{
    char t[600], body[1400];
    struct nw_response r;
    snprintf(t, sizeof(t), "%s/packetCaptures/%s?api-version=" API, nw, name);
    snprintf(body, sizeof(body),
             "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/rg1/providers/"
             "Microsoft.Compute/virtualMachines/vm1\",\"storageLocation\":%s}}",
             srv.sub, location);
    nw_server_request(&srv, "PUT", t, body, NULL, &r);
    int ok = NW_CHECK(r.status == 201, "PUT %s: %ld %.300s", name, r.status, r.body ? r.body : "");
    if (ok && storage_path) {
        const char *p = nw_json_str(r.json, "properties.storageLocation.storagePath");
        snprintf(storage_path, n, "%s", p ? p : "");
    }
    nw_response_free(&r);
    return ok;
}

static int with_id(const struct proto_msg *m, void *arg)
{
    return m->blob_grant.id == *(const int64_t *)arg;
}

/* Asks for file `file` of capture_id as request id; the grant into *g (caller clears). */
static int ask(struct script_agent *a, int64_t id, const char *capture_id, int64_t file,
               struct proto_msg *g)
{
    struct proto_msg rq = {.type = PROTO_BLOB_REQUEST};
    rq.blob_request.id = id;
    snprintf(rq.blob_request.capture_id, sizeof(rq.blob_request.capture_id), "%s", capture_id);
    rq.blob_request.file = file;
    return NW_CHECK(script_agent_send(a, &rq) == 0 &&
                        script_agent_wait_msg(a, PROTO_BLOB_GRANT, with_id, &id, g, WAIT_MS) == 0,
                    "no blobGrant %lld", (long long)id);
}

static void grants(struct script_agent *a)
{
    char path[1200], cap_id[PROTO_ID_SIZE], local_id[PROTO_ID_SIZE];
    char loc[600];
    snprintf(loc, sizeof(loc), "{\"storageId\":\"%s\"}", storage_id);
    if (!put_capture("pc1", loc, path, sizeof(path)) ||
        !NW_CHECK(script_agent_wait_capture(a, 0, cap_id, WAIT_MS) == 0, "no start for pc1"))
        return;
    char prefix[300];
    snprintf(prefix, sizeof(prefix), "%s/network-watcher-logs/", az.endpoint);
    NW_CHECK(strncmp(path, prefix, strlen(prefix)) == 0, "storagePath %s is not under %s", path,
             prefix);

    struct proto_msg g = {0};
    if (ask(a, 1, cap_id, 0, &g) && NW_CHECK(g.blob_grant.ok, "grant 1 refused: %s %s",
                                             g.blob_grant.code, g.blob_grant.message)) {
        const char *url = g.blob_grant.url;
        size_t plen = strlen(path);
        NW_CHECK(strncmp(url, path, plen) == 0 && url[plen] == '?', "grant URL %.*s is not %s",
                 (int)(strchr(url, '?') ? strchr(url, '?') - url : 80), url, path);
        NW_CHECK(strstr(url, "sp=cw") && strstr(url, "sr=b"), "grant scope: not cw on one blob");
        long long left = g.blob_grant.expires_at - timefmt_now_ms();
        NW_CHECK(left > 60000 && left <= 16 * 60000, "grant expires in %lld ms", left);
        NW_CHECK(send_to("PUT", url, block_blob, "captured bytes", 14) == 201,
                 "Put Blob through the grant");
        NW_CHECK(send_to("GET", url, plain, NULL, 0) == 403, "a read through the grant worked");
        char *body = NULL;
        size_t len = 0;
        const char *blob = path + strlen(prefix);
        NW_CHECK(nw_blob_download(&az, NW_BLOB_CONTAINER, blob, &body, &len) == 200 && len == 14 &&
                     memcmp(body, "captured bytes", 14) == 0,
                 "the blob does not hold what was put");
        free(body);
    }
    proto_msg_clear(&g);

    if (ask(a, 2, cap_id, 2, &g) && NW_CHECK(g.blob_grant.ok, "grant 2 refused")) {
        char want[1300];
        snprintf(want, sizeof(want), "%.*s_2.cap?", (int)(strlen(path) - 4), path);
        NW_CHECK(strncmp(g.blob_grant.url, want, strlen(want)) == 0, "file 2's blob is not %s",
                 want);
    }
    proto_msg_clear(&g);

    char other[NW_GUID_LEN + 1];
    nw_guid(other);
    if (ask(a, 3, other, 0, &g))
        NW_CHECK(!g.blob_grant.ok && strcmp(g.blob_grant.code, "NotYourSession") == 0,
                 "another capture: %s", g.blob_grant.code);
    proto_msg_clear(&g);

    if (put_capture("pc2", "{\"filePath\":\"/var/captures/pc2.cap\"}", NULL, 0) &&
        NW_CHECK(script_agent_wait_capture(a, 1, local_id, WAIT_MS) == 0, "no start for pc2") &&
        ask(a, 4, local_id, 0, &g))
        NW_CHECK(!g.blob_grant.ok && strcmp(g.blob_grant.code, "NoStorage") == 0,
                 "a local capture: %s", g.blob_grant.code);
    proto_msg_clear(&g);

    char *rm[] = {srv.bin, "storage", "remove", storage_id, "--db", srv.db, NULL};
    if (NW_CHECK(cli(rm, NULL, 0) == 0, "storage remove") && ask(a, 5, cap_id, 0, &g))
        NW_CHECK(!g.blob_grant.ok && strcmp(g.blob_grant.code, "StorageFailed") == 0 &&
                     strstr(g.blob_grant.message, "not registered"),
                 "after remove: %s %s", g.blob_grant.code, g.blob_grant.message);
    proto_msg_clear(&g);
}

static int setup(char *token, size_t tokensz)
{
    char key[NW_PATH_MAX + 8], t[600];
    snprintf(key, sizeof(key), "%s/account.key", srv.dir);
    FILE *f = fopen(key, "w");
    if (!NW_CHECK(f != NULL, "key file"))
        return -1;
    fputs(NW_AZURITE_KEY "\n", f);
    fclose(f);
    snprintf(storage_id, sizeof(storage_id),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/"
             "capstore",
             srv.sub);
    char *add[] = {srv.bin,     "storage",          "add",        storage_id,  "--key-file", key,
                   "--account", NW_AZURITE_ACCOUNT, "--endpoint", az.endpoint, "--db",       srv.db,
                   NULL};
    char vm[300];
    snprintf(vm, sizeof(vm),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1",
             srv.sub);
    char *agent[] = {srv.bin, "agent", "add", vm, "--db", srv.db, NULL};
    /* A wrong key is refused by the blob service at registration, and nothing is stored. */
    char bad[NW_PATH_MAX + 8];
    snprintf(bad, sizeof(bad), "%s/wrong.key", srv.dir);
    if ((f = fopen(bad, "w")) != NULL) {
        fputs("a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tr"
              "aw==\n",
              f);
        fclose(f);
    }
    add[5] = bad;
    NW_CHECK(cli(add, NULL, 0) != 0, "storage add with a wrong key succeeded");
    add[5] = key;
    char list_out[2048] = "";
    char *list[] = {srv.bin, "storage", "list", "--db", srv.db, NULL};
    NW_CHECK(cli(list, list_out, sizeof(list_out)) == 0 && !strstr(list_out, "capstore"),
             "the refused account is listed: %s", list_out);
    if (!NW_CHECK(cli(add, NULL, 0) == 0, "storage add") ||
        !NW_CHECK(cli_log_has("container network-watcher-logs created"),
                  "storage add did not create the container") ||
        !NW_CHECK(cli(agent, token, tokensz) == 0 && token[0], "agent add") ||
        !NW_CHECK(nw_server_start(&srv) == 0, "netwatchd did not start"))
        return -1;
    snprintf(nw, sizeof(nw),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/nw1",
             srv.sub);
    struct nw_response r;
    snprintf(t, sizeof(t), "%s?api-version=" API, nw);
    nw_server_request(&srv, "PUT", t, "{\"location\":\"westus\"}", NULL, &r);
    int ok = NW_CHECK(r.status == 201, "PUT watcher: %ld", r.status);
    nw_response_free(&r);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s NETWATCHD NODE AZURITE_MAIN_JS\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    /* No container yet: `storage add` creates it. */
    if (nw_azurite_init(&az, argv[2], argv[3]) != 0 || nw_azurite_start(&az, 0) != 0 ||
        nw_server_init(&srv, argv[1]) != 0) {
        nw_server_cleanup(&srv);
        nw_azurite_cleanup(&az);
        printf("FAIL storage grant: cannot prepare Azurite and netwatchd\n");
        return 1;
    }
    char token[NW_TOKEN_MAX] = "";
    struct script_agent a;
    int started = 0;
    if (setup(token, sizeof(token)) == 0) {
        char state[NW_PATH_MAX + 16];
        snprintf(state, sizeof(state), "%s/agent-state", srv.dir);
        started = script_agent_start(&a, (unsigned)srv.port, token, state) == 0;
        if (started)
            grants(&a);
    }
    if (started)
        script_agent_stop(&a);
    if (srv.pid)
        NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not stop cleanly");
    size_t len = 0;
    char *log = nw_read_file(srv.log_file, &len);
    NW_CHECK(log && !strstr(log, "sig=") && !strstr(log, "Eby8vdM02"),
             "the server log holds a signature or the key");
    free(log);
    if (nw_failures) {
        nw_server_dump_log(&srv, 8000);
        nw_azurite_dump_log(&az, 4000);
    }
    nw_server_cleanup(&srv);
    nw_azurite_cleanup(&az);
    printf("%s storage grant: %d failure(s)\n", nw_failures ? "FAIL" : "PASS", nw_failures);
    return nw_failures ? 1 : 0;
}
