/*
 * storage_accounts.c - the storage-account registry through the real netwatchd: `netwatchd
 * storage add|list|remove` on the server's database, then captures over real HTTP.
 *
 *   - add reads the key from a file or stdin, refuses a bad key, id or endpoint; adding the same
 *     id again (any casing) updates it; list shows id, account and endpoint, never the key;
 *     remove removes, a second remove fails;
 *   - a capture naming a registered account (in another casing) gets storagePath under the
 *     account's registered blob endpoint, container network-watcher-logs;
 *   - a capture naming an unregistered account is a 400 InvalidPropertyValue with the
 *     storageId target, and nothing is created (GET 404);
 *   - the key appears in no command output and not in the server's log.
 *
 *   it_storage_accounts NETWATCHD
 */
#include "tests/integration/agent_proc.h"
#include "tests/integration/harness.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define API "2024-07-01"
/* 64 bytes of 0x6b in base64: a well-formed key that is easy to search for. */
#define KEY                                                                                        \
    "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2traw=="

static struct nw_server srv;

static char id_pcstore[256], id_other[256];

/* `netwatchd storage <args...> --db <db>` (args NULL-terminated, at most 10); stdout into out,
 * stderr appended to cli.log; stdin from stdin_file when not NULL. Returns the exit status. */
static int storage_cmd(const char *stdin_file, char *out, size_t outsz, const char *const *args)
{
    char log[600];
    snprintf(log, sizeof(log), "%s/cli.log", srv.dir);
    char *argv[16];
    int n = 0;
    argv[n++] = srv.bin;
    argv[n++] = (char *)(uintptr_t) "storage";
    for (size_t i = 0; args[i] && n < 12; i++)
        argv[n++] = (char *)(uintptr_t)args[i];
    argv[n++] = (char *)(uintptr_t) "--db";
    argv[n++] = srv.db;
    argv[n] = NULL;
    int saved = -1;
    if (stdin_file) {
        saved = dup(STDIN_FILENO);
        int fd = open(stdin_file, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || dup2(fd, STDIN_FILENO) < 0)
            return -1;
        close(fd);
    }
    int rc = nw_run(argv, log, out, outsz);
    if (saved >= 0) {
        dup2(saved, STDIN_FILENO);
        close(saved);
    }
    return rc;
}

#define STORAGE(in, out, ...)                                                                      \
    storage_cmd((in), (out), sizeof(out), (const char *const[]){__VA_ARGS__, NULL})

static int file_contains(const char *path, const char *needle)
{
    size_t len = 0;
    char *text = nw_read_file(path, &len);
    int found = text && strstr(text, needle) != NULL;
    free(text);
    return found;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void registry_commands(void)
{
    char key_file[600], bad_key[600], out[4096], log[600];
    snprintf(key_file, sizeof(key_file), "%s/key", srv.dir);
    snprintf(bad_key, sizeof(bad_key), "%s/badkey", srv.dir);
    snprintf(log, sizeof(log), "%s/cli.log", srv.dir);
    write_file(key_file, KEY "\n");
    write_file(bad_key, "not base64 at all!\n");

    NW_CHECK(STORAGE(NULL, out, "add", id_pcstore, "--key-file", key_file, "--endpoint",
                     "http://127.0.0.1:10000/devstoreaccount1/", "--account") != 0,
             "add with --account missing its value succeeded");
    NW_CHECK(STORAGE(NULL, out, "add", id_pcstore, "--key-file", bad_key) != 0,
             "add with a key that is not base64 succeeded");
    NW_CHECK(STORAGE(NULL, out, "add",
                     "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/"
                     "providers/Microsoft.Compute/virtualMachines/vm1",
                     "--key-file", key_file) != 0,
             "add with a VM id succeeded");
    NW_CHECK(STORAGE(NULL, out, "add", id_pcstore, "--key-file", key_file, "--endpoint",
                     "ftp://example.test") != 0,
             "add with an ftp endpoint succeeded");
    /* Verified by default: an endpoint that does not answer is refused, and nothing is stored
     * (the list below would show it). */
    NW_CHECK(STORAGE(NULL, out, "add", id_other, "--key-file", key_file, "--endpoint",
                     "http://127.0.0.1:1/unverified") != 0,
             "add with an endpoint that does not answer succeeded without --no-verify");
    NW_CHECK(file_contains(log, "No answer from http://127.0.0.1:1/unverified"),
             "the refused add did not say the endpoint did not answer");
    /* First a wrong endpoint, then the same id in other casing, key on stdin: an update. */
    NW_CHECK(STORAGE(NULL, out, "add", id_pcstore, "--key-file", key_file, "--endpoint",
                     "http://127.0.0.1:1/wrong", "--account", "devstoreaccount1",
                     "--no-verify") == 0,
             "add failed");
    char upper[256];
    snprintf(upper, sizeof(upper), "%s", id_pcstore);
    for (char *p = upper; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    NW_CHECK(STORAGE(key_file, out, "add", upper, "--key-file", "-", "--endpoint",
                     "http://127.0.0.1:10000/devstoreaccount1/", "--account", "devstoreaccount1",
                     "--no-verify") == 0,
             "add again (other casing, key on stdin) failed");
    NW_CHECK(file_contains(log, "updated"), "the second add did not say it updated the account");

    NW_CHECK(STORAGE(NULL, out, "add", id_other, "--key-file", key_file, "--no-verify") == 0,
             "add other failed");
    NW_CHECK(STORAGE(NULL, out, "list") == 0, "list failed");
    NW_CHECK(strstr(out, "http://127.0.0.1:10000/devstoreaccount1\t") != NULL,
             "list does not show the updated endpoint without its '/': %s", out);
    NW_CHECK(strstr(out, "https://other1.blob.core.windows.net") != NULL,
             "list does not show the default endpoint: %s", out);
    NW_CHECK(strstr(out, "127.0.0.1:1/wrong") == NULL, "list still shows the replaced endpoint");
    NW_CHECK(strstr(out, "unverified") == NULL, "list shows the refused registration");
    NW_CHECK(strstr(out, "a2tra2tr") == NULL, "list printed the key");

    NW_CHECK(STORAGE(NULL, out, "remove", id_other) == 0, "remove failed");
    NW_CHECK(STORAGE(NULL, out, "remove", id_other) != 0, "a second remove succeeded");
    NW_CHECK(!file_contains(log, "a2tra2tr"), "a storage command wrote the key to its output");
}

static void put_capture(const char *name, const char *storage_id, struct nw_response *r)
{
    char t[400], body[1200];
    snprintf(t, sizeof(t),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/"
             "nw1/packetCaptures/%s?api-version=" API,
             srv.sub, name);
    snprintf(body, sizeof(body),
             "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/rg2/providers/"
             "Microsoft.Compute/virtualMachines/vm1\",\"storageLocation\":{\"storageId\":\"%s\"}}}",
             srv.sub, storage_id);
    nw_server_request(&srv, "PUT", t, body, NULL, r);
}

static void captures(void)
{
    struct nw_response r;
    char t[400];
    if (!NW_CHECK(nw_server_start(&srv) == 0, "netwatchd did not start"))
        return;
    snprintf(t, sizeof(t),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/"
             "nw1?api-version=" API,
             srv.sub);
    nw_server_request(&srv, "PUT", t, "{\"location\":\"westus\"}", NULL, &r);
    NW_CHECK(r.status == 201, "PUT watcher: %ld", r.status);
    nw_response_free(&r);

    /* Registered, named in lower case: the path is under the registered endpoint. */
    char lower[256];
    snprintf(lower, sizeof(lower), "%s", id_pcstore);
    for (char *p = lower; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    put_capture("pc1", lower, &r);
    if (NW_CHECK(r.status == 201, "PUT with a registered account: %ld %.400s", r.status,
                 r.body ? r.body : "")) {
        json_t *j = json_loads(r.body, 0, NULL);
        const char *path = nw_json_str(j, "properties.storageLocation.storagePath");
        char want[300];
        snprintf(want, sizeof(want),
                 "http://127.0.0.1:10000/devstoreaccount1/network-watcher-logs/subscriptions/%s/"
                 "resourcegroups/rg2/providers/microsoft.compute/virtualmachines/vm1/",
                 srv.sub);
        NW_CHECK(path && strncmp(path, want, strlen(want)) == 0 &&
                     strstr(path, "/packetcapture_") && strstr(path, ".cap"),
                 "storagePath %s does not start with %s", path ? path : "(none)", want);
        json_decref(j);
    }
    nw_response_free(&r);

    /* Removed (or never registered): refused, and nothing is created. */
    put_capture("pc2", id_other, &r);
    NW_CHECK(r.status == 400, "PUT with an unregistered account: %ld", r.status);
    json_t *j = json_loads(r.body ? r.body : "", 0, NULL);
    const char *code = nw_json_str(j, "error.code"), *target = nw_json_str(j, "error.target");
    const char *msg = nw_json_str(j, "error.message");
    NW_CHECK(code && strcmp(code, "InvalidPropertyValue") == 0, "code %s", code ? code : "-");
    NW_CHECK(target && strcmp(target, "properties.storageLocation.storageId") == 0, "target %s",
             target ? target : "-");
    NW_CHECK(msg && strstr(msg, "other1") && strstr(msg, "netwatchd storage add"), "message %s",
             msg ? msg : "-");
    json_decref(j);
    nw_response_free(&r);
    snprintf(t, sizeof(t),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/"
             "nw1/packetCaptures/pc2?api-version=" API,
             srv.sub);
    nw_server_request(&srv, "GET", t, NULL, NULL, &r);
    NW_CHECK(r.status == 404, "the refused capture exists: GET %ld", r.status);
    nw_response_free(&r);
    NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not stop cleanly");
    NW_CHECK(!file_contains(srv.log_file, "a2tra2tr"), "the server log contains the key");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s NETWATCHD\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    if (nw_server_init(&srv, argv[1]) != 0) {
        nw_server_cleanup(&srv);
        printf("FAIL storage_accounts: cannot prepare netwatchd\n");
        return 1;
    }
    snprintf(id_pcstore, sizeof(id_pcstore),
             "/subscriptions/%s/resourceGroups/rg2/providers/Microsoft.Storage/storageAccounts/"
             "PcStore",
             srv.sub);
    snprintf(id_other, sizeof(id_other),
             "/subscriptions/%s/resourceGroups/rg2/providers/Microsoft.Storage/storageAccounts/"
             "other1",
             srv.sub);
    registry_commands();
    captures();
    if (nw_failures)
        nw_server_dump_log(&srv, 8000);
    nw_server_cleanup(&srv);
    printf("%s storage_accounts: %d failure(s)\n", nw_failures ? "FAIL" : "PASS", nw_failures);
    return nw_failures ? 1 : 0;
}
