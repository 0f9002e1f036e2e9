/* Create Container with an account SAS (see storage/container.h). */
#include "storage/container.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timefmt.h"
#include "storage/sas.h"

#define SAS_LIFETIME_MS (5 * 60 * 1000)
#define TIMEOUT_S       30L

/* The reply body is not needed: the status says it all. */
static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

enum cp_err storage_container_ensure(const char *endpoint, const char *account, const char *key_b64,
                                     const char *container, const char *ca_file,
                                     enum storage_container_state *state, struct cp_error *e)
{
    if (!endpoint || !endpoint[0] || !container || !container[0])
        return cp_fail(e, CP_EINVAL, "StorageFailed", "", "No endpoint or container given.");
    int64_t now = timefmt_now_ms();
    struct storage_sas_account p = {
        .account = account,
        .services = "b",
        .resource_types = "c",
        .permissions = "c",
        .start_ms = now - SAS_LIFETIME_MS,
        .expiry_ms = now + SAS_LIFETIME_MS,
        .protocol =
            strncmp(endpoint, "http://", 7) == 0 ? STORAGE_SAS_HTTPS_HTTP : STORAGE_SAS_HTTPS,
    };
    char *token = NULL, *url = NULL;
    enum cp_err err = storage_sas_account_token(&p, key_b64, &token, e);
    if (err != CP_OK)
        return err;
    size_t n = strlen(endpoint) + strlen(container) + strlen(token) + 32;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "x-ms-version: " STORAGE_SAS_VERSION);
    if (!(url = malloc(n)) || !c || !h) {
        err = cp_fail(e, CP_ENOMEM, "StorageFailed", "", "Out of memory.");
        goto cleanup;
    }
    snprintf(url, n, "%s/%s?restype=container&%s", endpoint, container, token);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca_file);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK)
        err = cp_fail(e, CP_EIO, "StorageFailed", "", "No answer from %s: %s.", endpoint,
                      curl_easy_strerror(rc));
    else if (status == 201 || status == 409) {
        if (state)
            *state = status == 201 ? STORAGE_CONTAINER_CREATED : STORAGE_CONTAINER_EXISTED;
    } else if (status == 403)
        err =
            cp_fail(e, CP_EFORBIDDEN, "StorageFailed", "",
                    "%s refused the account key (403): check the account name and key.", endpoint);
    else
        err = cp_fail(e, CP_EIO, "StorageFailed", "", "%s answered %ld to Create Container %s.",
                      endpoint, status, container);
cleanup:
    if (url) {
        memset(url, 0, n); /* it held a SAS */
        free(url);
    }
    free(token);
    curl_slist_free_all(h);
    if (c)
        curl_easy_cleanup(c);
    return err;
}
