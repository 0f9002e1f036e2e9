/*
 * sas_live.c - the SAS tokens of storage/sas.c against a real Azurite: what the server will
 * hand an agent lets it write its one blob and nothing else.
 *
 *   it_storage_sas <node> <azurite blob main.js>
 *
 * Cases: an account SAS creates the container; a "cw" blob SAS creates the blob (Put Blob) and
 * stages and commits blocks; the same SAS cannot read the blob nor its block list, nor write
 * another blob; an expired SAS, a tampered signature and permissions widened in the query
 * are refused; a read SAS downloads exactly what was written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/sas.h"
#include "tests/integration/harness.h"
#include "tests/storage/azurite.h"
#include "tests/storage/blob_fixture.h"

static struct nw_azurite az;

/* Sends method to url (a full SAS URL) with body; returns the status (0: no reply). */
static long send(const char *method, const char *url, const char *const *headers, const char *body,
                 size_t len)
{
    struct nw_response r = {0};
    struct nw_request req = {.method = method,
                             .target = nw_url_target(url),
                             .headers = headers,
                             .body = body,
                             .body_len = len};
    long status;

    nw_http(az.base_url, &req, &r);
    status = r.status;
    if (status >= 400)
        printf("  %s -> %ld %.200s\n", method, status, r.body ? r.body : "");
    nw_response_free(&r);
    return status;
}

static const char *const block_blob[] = {"x-ms-blob-type: BlockBlob", "x-ms-version: 2022-11-02",
                                         NULL};
static const char *const plain[] = {"x-ms-version: 2022-11-02", NULL};
static const char *const xml[] = {"x-ms-version: 2022-11-02", "Content-Type: application/xml",
                                  NULL};

static void put_and_read(void)
{
    const char *blob = "subscriptions/s1/resourcegroups/rg/providers/microsoft.compute/"
                       "virtualmachines/vm1/2026/03/17/packetcapture_03_00_00_000.cap";
    char *w = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, blob, "cw", 600);
    char *body = NULL;
    size_t len = 0;

    if (!NW_CHECK(w != NULL, "cw SAS"))
        return;
    NW_CHECK(strstr(w, "&sp=cw&") != NULL && strstr(w, "&sr=b&") != NULL, "scope in %s", w);
    NW_CHECK(send("PUT", w, block_blob, "hello capture", 13) == 201, "Put Blob with cw SAS");
    NW_CHECK(send("GET", w, plain, NULL, 0) == 403, "GET with a write-only SAS is refused");
    /* Get Block List is a read: a write-only SAS cannot see what is staged (docs/storage.md:
     * why the agent keeps its own journal to resume). */
    {
        char gbl[4096];
        snprintf(gbl, sizeof(gbl), "%s&comp=blocklist&blocklisttype=uncommitted", w);
        NW_CHECK(send("GET", gbl, plain, NULL, 0) == 403, "Get Block List with cw is refused");
    }
    NW_CHECK(nw_blob_download(&az, NW_BLOB_CONTAINER, blob, &body, &len) == 200,
             "GET with a read SAS");
    NW_CHECK(len == 13 && body && memcmp(body, "hello capture", 13) == 0, "downloaded %zu bytes",
             len);
    free(body);
    free(w);
}

static void blocks_with_cw(void)
{
    const char *blob = "blocks/one.cap";
    char *w = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, blob, "cw", 600);
    char url[4096];
    const char *list = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>"
                       "<Latest>YmxrMDAwMDA=</Latest><Latest>YmxrMDAwMDE=</Latest></BlockList>";
    char *body = NULL;
    size_t len = 0;

    if (!NW_CHECK(w != NULL, "cw SAS"))
        return;
    snprintf(url, sizeof(url), "%s&comp=block&blockid=YmxrMDAwMDA%%3D", w);
    NW_CHECK(send("PUT", url, plain, "abc", 3) == 201, "Put Block 0");
    snprintf(url, sizeof(url), "%s&comp=block&blockid=YmxrMDAwMDE%%3D", w);
    NW_CHECK(send("PUT", url, plain, "def", 3) == 201, "Put Block 1");
    snprintf(url, sizeof(url), "%s&comp=blocklist", w);
    NW_CHECK(send("PUT", url, xml, list, strlen(list)) == 201, "Put Block List");
    NW_CHECK(nw_blob_download(&az, NW_BLOB_CONTAINER, blob, &body, &len) == 200, "download");
    NW_CHECK(len == 6 && body && memcmp(body, "abcdef", 6) == 0, "committed %zu bytes", len);
    free(body);
    free(w);
}

static void refused(void)
{
    char *expired = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, "refused/expired.cap", "cw", -60);
    char *mine = nw_blob_sas_url(&az, NW_BLOB_CONTAINER, "refused/mine.cap", "cw", 600);
    char other[4096], tampered[4096];
    char *sig;

    if (!NW_CHECK(expired && mine, "SAS URLs"))
        goto out;
    NW_CHECK(send("PUT", expired, block_blob, "x", 1) == 403, "an expired SAS is refused");

    /* The same token on another blob's path. */
    snprintf(other, sizeof(other), "%s", mine);
    char *name = strstr(other, "mine.cap");
    if (NW_CHECK(name != NULL, "blob name in URL"))
        memcpy(name, "othr", 4);
    NW_CHECK(send("PUT", other, block_blob, "x", 1) == 403, "a SAS for another blob is refused");

    /* One character of the signature changed. */
    snprintf(tampered, sizeof(tampered), "%s", mine);
    sig = strstr(tampered, "&sig=");
    if (NW_CHECK(sig != NULL, "sig in URL")) {
        sig += 5;
        *sig = *sig == 'A' ? 'B' : 'A';
    }
    NW_CHECK(send("PUT", tampered, block_blob, "x", 1) == 403, "a tampered signature is refused");

    /* Permissions are signed too: "cw" turned into "rcw" in the query is refused. */
    snprintf(tampered, sizeof(tampered), "%s", mine);
    char *sp = strstr(tampered, "&sp=cw");
    if (NW_CHECK(sp != NULL, "sp in URL")) {
        char widened[8192];
        *sp = '\0';
        snprintf(widened, sizeof(widened), "%s&sp=rcw%s", tampered, sp + 6);
        NW_CHECK(send("GET", widened, plain, NULL, 0) == 403, "widened permissions are refused");
    }

    NW_CHECK(send("PUT", mine, block_blob, "x", 1) == 201, "the untouched SAS still works");
out:
    free(expired);
    free(mine);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s <node> <azurite blob main.js>\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    if (nw_azurite_init(&az, argv[1], argv[2]) != 0 || nw_azurite_start(&az, 0) != 0) {
        nw_azurite_cleanup(&az);
        return 1;
    }
    printf("azurite on %s\n", az.base_url);
    if (NW_CHECK(nw_blob_container_create(&az, NW_BLOB_CONTAINER) == 0, "container")) {
        put_and_read();
        blocks_with_cw();
        refused();
    }
    if (nw_failures)
        nw_azurite_dump_log(&az, 4096);
    NW_CHECK(nw_azurite_stop(&az) == 0, "azurite stops on SIGTERM");
    nw_azurite_cleanup(&az);
    printf("%s: %d failure(s)\n", argv[0], nw_failures);
    return nw_failures ? 1 : 0;
}
