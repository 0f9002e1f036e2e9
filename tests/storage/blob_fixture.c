/*
 * blob_fixture.c - container creation, SAS URLs and downloads for the storage tests (see
 * blob_fixture.h).
 */
#include "tests/storage/blob_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/timefmt.h"
#include "storage/sas.h"
#include "tests/integration/harness.h"

int nw_blob_container_create(const struct nw_azurite *a, const char *container)
{
    struct storage_sas_account p = {
        .account = NW_AZURITE_ACCOUNT,
        .services = "b",
        .resource_types = "c",
        .permissions = "c",
        .start_ms = 0,
        .expiry_ms = timefmt_now_ms() + 600000,
        .protocol = STORAGE_SAS_HTTPS_HTTP,
    };
    struct cp_error e = {0};
    struct nw_response r = {0};
    char *tok = NULL;
    char target[1024 + 2048];
    int rc = -1;

    if (storage_sas_account_token(&p, NW_AZURITE_KEY, &tok, &e) != CP_OK) {
        fprintf(stderr, "blob_fixture: account SAS: %s\n", e.message);
        return -1;
    }
    snprintf(target, sizeof(target), "/%s/%s?restype=container&%s", NW_AZURITE_ACCOUNT, container,
             tok);
    free(tok);
    struct nw_request req = {.method = "PUT", .target = target};
    if (nw_http(a->base_url, &req, &r) == 0 && (r.status == 201 || r.status == 409))
        rc = 0;
    else
        fprintf(stderr, "blob_fixture: create container %s: status %ld %s %s\n", container,
                r.status, r.error, r.body ? r.body : "");
    nw_response_free(&r);
    return rc;
}

char *nw_blob_sas_url(const struct nw_azurite *a, const char *container, const char *blob,
                      const char *perms, long ttl_s)
{
    int64_t now = timefmt_now_ms();
    struct storage_sas_blob p = {
        .account = NW_AZURITE_ACCOUNT,
        .container = container,
        .blob = blob,
        .permissions = perms,
        /* A little in the past, as a server would do against clock skew. */
        .start_ms = now - 300000 + (ttl_s < 0 ? ttl_s * 1000 : 0),
        .expiry_ms = now + ttl_s * 1000,
        .protocol = STORAGE_SAS_HTTPS_HTTP,
    };
    struct cp_error e = {0};
    char *url = NULL;

    if (storage_sas_blob_url(a->endpoint, &p, NW_AZURITE_KEY, &url, &e) != CP_OK) {
        fprintf(stderr, "blob_fixture: blob SAS: %s\n", e.message);
        return NULL;
    }
    return url;
}

long nw_blob_download(const struct nw_azurite *a, const char *container, const char *blob,
                      char **body, size_t *len)
{
    char *url = nw_blob_sas_url(a, container, blob, "r", 600);
    struct nw_response r = {0};
    long status;

    *body = NULL;
    *len = 0;
    if (url == NULL)
        return 0;
    struct nw_request req = {.method = "GET", .target = nw_url_target(url), .timeout_ms = 60000};
    nw_http(a->base_url, &req, &r);
    free(url);
    status = r.status;
    if (status == 200) {
        *body = r.body;
        *len = r.body_len;
        r.body = NULL;
    }
    nw_response_free(&r);
    return status;
}

void nw_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;

    memset(md, 0, sizeof(md));
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (size_t i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}
