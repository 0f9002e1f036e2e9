/*
 * sas.c - builds and signs service and account SAS tokens (see sas.h for the formats).
 */
#include "storage/sas.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "common/dynbuf.h"

/* Bounds of what we build: a token is a few hundred bytes; a URL adds the endpoint and a
 * blob name that may triple when encoded. */
#define SAS_TOKEN_MAX   2048
#define SAS_URL_MAX     (SAS_TOKEN_MAX + 3 * STORAGE_BLOB_NAME_MAX + 1024)
#define SAS_SIGN_MAX    (4096 + STORAGE_BLOB_NAME_MAX)
#define SAS_KEY_MAX     64 /* decoded bytes; Azure's keys are 64 */
#define SAS_TIME_LEN    21 /* "YYYY-MM-DDTHH:MM:SSZ" and the NUL */
#define SAS_SIG_B64_LEN 45 /* base64 of 32 bytes and the NUL */

/* 1 when s consists of letters of order, each at most once and in order, and is not empty. */
static int letters_in_order(const char *s, const char *order)
{
    const char *o = order;

    if (s == NULL || *s == '\0')
        return 0;
    for (; *s; s++) {
        const char *at = strchr(o, *s);
        if (at == NULL)
            return 0;
        o = at + 1;
    }
    return 1;
}

static int valid_account(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n < 3 || n > STORAGE_ACCOUNT_NAME_MAX)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
            return 0;
    return 1;
}

/* Azure: 3-63 of [a-z0-9-], starting with a letter or digit, no "--", not ending in '-'. */
static int valid_container(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n < 3 || n > STORAGE_CONTAINER_NAME_MAX || s[0] == '-' || s[n - 1] == '-' ||
        strstr(s, "--") != NULL)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
            return 0;
    return 1;
}

/* 1..STORAGE_BLOB_NAME_MAX bytes, no control characters, no empty segment ("a//b", "/a"), no
 * "." or ".." segment (the service would normalise those away and the SAS would not match). */
static int valid_blob(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > STORAGE_BLOB_NAME_MAX || s[0] == '/' || s[n - 1] == '/' ||
        strstr(s, "//") != NULL)
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '\\')
            return 0;
    for (const char *seg = s; seg;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return 0;
        seg = end ? end + 1 : NULL;
    }
    return 1;
}

/* "YYYY-MM-DDTHH:MM:SSZ" for epoch ms (whole seconds; the service ignores fractions). */
static int iso_time(int64_t ms, char out[SAS_TIME_LEN])
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (ms < 0 || gmtime_r(&t, &tm) == NULL)
        return -1;
    return strftime(out, SAS_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == SAS_TIME_LEN - 1 ? 0 : -1;
}

static enum cp_err check_times(int64_t start_ms, int64_t expiry_ms, char st[SAS_TIME_LEN],
                               char se[SAS_TIME_LEN], struct cp_error *err)
{
    st[0] = '\0';
    if (start_ms != 0 && iso_time(start_ms, st) != 0)
        return cp_fail(err, CP_EINVAL, "InvalidSasTime", "start", "start time out of range");
    if (iso_time(expiry_ms, se) != 0)
        return cp_fail(err, CP_EINVAL, "InvalidSasTime", "expiry", "expiry time out of range");
    /* Compared as rendered: both are whole seconds in the same fixed-width format. */
    if (st[0] != '\0' && strcmp(st, se) >= 0)
        return cp_fail(err, CP_EINVAL, "InvalidSasTime", "expiry",
                       "expiry must be at least a second after start");
    return CP_OK;
}

/* Decodes a base64 account key into key (SAS_KEY_MAX bytes). Returns its length, or 0. */
static size_t decode_key(const char *b64, unsigned char key[SAS_KEY_MAX])
{
    unsigned char tmp[(STORAGE_KEY_B64_MAX / 4) * 3];
    unsigned char again[STORAGE_KEY_B64_MAX + 1];
    size_t n = b64 ? strlen(b64) : 0;
    size_t len = 0;
    int got;

    if (n == 0 || n > STORAGE_KEY_B64_MAX || n % 4 != 0)
        return 0;
    got = EVP_DecodeBlock(tmp, (const unsigned char *)b64, (int)n);
    if (got > 0) {
        /* EVP_DecodeBlock counts the padding as zero bytes; take them off. */
        len = (size_t)got - (b64[n - 1] == '=') - (b64[n - 2] == '=');
        /* Canonical base64 only: encoding the bytes again must give the input back. */
        if (len == 0 || len > SAS_KEY_MAX || EVP_EncodeBlock(again, tmp, (int)len) != (int)n ||
            memcmp(again, b64, n) != 0)
            len = 0;
        else
            memcpy(key, tmp, len);
    }
    OPENSSL_cleanse(tmp, sizeof(tmp));
    OPENSSL_cleanse(again, sizeof(again));
    return len;
}

enum cp_err storage_sas_sign(const char *key_b64, const char *msg, char *out, size_t outsz,
                             struct cp_error *err)
{
    unsigned char key[SAS_KEY_MAX];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t keylen;
    unsigned char *ok;

    if (outsz < SAS_SIG_B64_LEN)
        return cp_fail(err, CP_EINVAL, "InternalError", NULL, "signature buffer too small");
    keylen = decode_key(key_b64, key);
    if (keylen == 0)
        return cp_fail(err, CP_EINVAL, "InvalidStorageKey", "key",
                       "the storage account key is not base64 of 1 to %d bytes", SAS_KEY_MAX);
    ok =
        HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), mac, &maclen);
    OPENSSL_cleanse(key, sizeof(key));
    if (ok == NULL || maclen != 32)
        return cp_fail(err, CP_EIO, "InternalError", NULL, "HMAC-SHA256 failed");
    if (EVP_EncodeBlock((unsigned char *)out, mac, (int)maclen) != SAS_SIG_B64_LEN - 1)
        return cp_fail(err, CP_EIO, "InternalError", NULL, "base64 encoding failed");
    return CP_OK;
}

/* Appends "&name=" and value percent-encoded (name alone first when b is empty). */
static int add_param(struct dynbuf *b, const char *name, const char *value)
{
    char *enc = curl_easy_escape(NULL, value, 0);
    int rc;

    if (enc == NULL)
        return -1;
    rc = dynbuf_printf(b, "%s%s=%s", b->len ? "&" : "", name, enc);
    curl_free(enc);
    return rc;
}

static const char *protocol_str(enum storage_sas_protocol p)
{
    return p == STORAGE_SAS_HTTPS_HTTP ? "https,http" : "https";
}

/* Signs sts and appends the common tail of both kinds of token to q. */
static enum cp_err finish_token(struct dynbuf *sts, struct dynbuf *q, const char *key_b64,
                                char **token, struct cp_error *err)
{
    char sig[SAS_SIG_B64_LEN];
    enum cp_err rc;

    if (sts->failed)
        return cp_fail(err, CP_ENOMEM, "InternalError", NULL, "string to sign too long");
    rc = storage_sas_sign(key_b64, sts->s ? sts->s : "", sig, sizeof(sig), err);
    if (rc != CP_OK)
        return rc;
    if (add_param(q, "sig", sig) != 0 || q->failed)
        return cp_fail(err, CP_ENOMEM, "InternalError", NULL, "token too long");
    *token = dynbuf_take(q);
    if (*token == NULL)
        return cp_fail(err, CP_ENOMEM, "InternalError", NULL, "out of memory");
    return CP_OK;
}

enum cp_err storage_sas_blob_token(const struct storage_sas_blob *p, const char *key_b64,
                                   char **token, struct cp_error *err)
{
    char st[SAS_TIME_LEN], se[SAS_TIME_LEN];
    struct dynbuf sts, q;
    enum cp_err rc;

    if (!valid_account(p->account))
        return cp_fail(err, CP_EINVAL, "InvalidStorageAccount", "account",
                       "storage account name must be 3-24 lower-case letters and digits");
    if (!valid_container(p->container))
        return cp_fail(err, CP_EINVAL, "InvalidContainerName", "container",
                       "container name must be 3-63 lower-case letters, digits and dashes");
    if (!valid_blob(p->blob))
        return cp_fail(err, CP_EINVAL, "InvalidBlobName", "blob",
                       "blob name must be 1-%d printable bytes without empty or dot segments",
                       STORAGE_BLOB_NAME_MAX);
    if (!letters_in_order(p->permissions, "racwd"))
        return cp_fail(err, CP_EINVAL, "InvalidSasPermissions", "permissions",
                       "blob SAS permissions are letters of \"racwd\" in that order");
    rc = check_times(p->start_ms, p->expiry_ms, st, se, err);
    if (rc != CP_OK)
        return rc;

    dynbuf_init(&sts, SAS_SIGN_MAX);
    dynbuf_init(&q, SAS_TOKEN_MAX);
    /* sp st se resource si sip spr sv sr snapshot ses rscc rscd rsce rscl rsct */
    dynbuf_printf(&sts, "%s\n%s\n%s\n/blob/%s/%s/%s\n\n\n%s\n%s\nb\n\n\n\n\n\n\n", p->permissions,
                  st, se, p->account, p->container, p->blob, protocol_str(p->protocol),
                  STORAGE_SAS_VERSION);
    if (add_param(&q, "sv", STORAGE_SAS_VERSION) != 0 ||
        add_param(&q, "spr", protocol_str(p->protocol)) != 0 ||
        (st[0] && add_param(&q, "st", st) != 0) || add_param(&q, "se", se) != 0 ||
        add_param(&q, "sr", "b") != 0 || add_param(&q, "sp", p->permissions) != 0)
        rc = cp_fail(err, CP_ENOMEM, "InternalError", NULL, "token too long");
    else
        rc = finish_token(&sts, &q, key_b64, token, err);
    dynbuf_free(&sts);
    dynbuf_free(&q);
    return rc;
}

enum cp_err storage_sas_blob_url(const char *endpoint, const struct storage_sas_blob *p,
                                 const char *key_b64, char **url, struct cp_error *err)
{
    char *token = NULL;
    struct dynbuf b;
    enum cp_err rc;

    if (endpoint == NULL || *endpoint == '\0' || endpoint[strlen(endpoint) - 1] == '/')
        return cp_fail(err, CP_EINVAL, "InvalidStorageEndpoint", "endpoint",
                       "blob endpoint must be an absolute URL without a trailing '/'");
    rc = storage_sas_blob_token(p, key_b64, &token, err);
    if (rc != CP_OK)
        return rc;
    dynbuf_init(&b, SAS_URL_MAX);
    dynbuf_printf(&b, "%s/%s", endpoint, p->container);
    /* Each segment encoded on its own: curl_easy_escape would turn the '/' into %2F. */
    for (const char *seg = p->blob; seg && !b.failed;) {
        const char *end = strchr(seg, '/');
        size_t len = end ? (size_t)(end - seg) : strlen(seg);
        char *enc = curl_easy_escape(NULL, seg, (int)len);
        if (enc == NULL) {
            b.failed = 1;
            break;
        }
        dynbuf_printf(&b, "/%s", enc);
        curl_free(enc);
        seg = end ? end + 1 : NULL;
    }
    dynbuf_printf(&b, "?%s", token);
    OPENSSL_cleanse(token, strlen(token));
    free(token);
    *url = b.failed ? NULL : dynbuf_take(&b);
    dynbuf_free(&b);
    if (*url == NULL)
        return cp_fail(err, CP_ENOMEM, "InternalError", NULL, "SAS URL too long");
    return CP_OK;
}

enum cp_err storage_sas_account_token(const struct storage_sas_account *p, const char *key_b64,
                                      char **token, struct cp_error *err)
{
    char st[SAS_TIME_LEN], se[SAS_TIME_LEN];
    struct dynbuf sts, q;
    enum cp_err rc;

    if (!valid_account(p->account))
        return cp_fail(err, CP_EINVAL, "InvalidStorageAccount", "account",
                       "storage account name must be 3-24 lower-case letters and digits");
    if (!letters_in_order(p->services, "bfqt"))
        return cp_fail(err, CP_EINVAL, "InvalidSasServices", "services",
                       "account SAS services are letters of \"bfqt\" in that order");
    if (!letters_in_order(p->resource_types, "sco"))
        return cp_fail(err, CP_EINVAL, "InvalidSasResourceTypes", "resourceTypes",
                       "account SAS resource types are letters of \"sco\" in that order");
    if (!letters_in_order(p->permissions, "rwdlacup"))
        return cp_fail(err, CP_EINVAL, "InvalidSasPermissions", "permissions",
                       "account SAS permissions are letters of \"rwdlacup\" in that order");
    rc = check_times(p->start_ms, p->expiry_ms, st, se, err);
    if (rc != CP_OK)
        return rc;

    dynbuf_init(&sts, SAS_SIGN_MAX);
    dynbuf_init(&q, SAS_TOKEN_MAX);
    /* account sp ss srt st se sip spr sv ses, each followed by a newline */
    dynbuf_printf(&sts, "%s\n%s\n%s\n%s\n%s\n%s\n\n%s\n%s\n\n", p->account, p->permissions,
                  p->services, p->resource_types, st, se, protocol_str(p->protocol),
                  STORAGE_SAS_VERSION);
    if (add_param(&q, "sv", STORAGE_SAS_VERSION) != 0 || add_param(&q, "ss", p->services) != 0 ||
        add_param(&q, "srt", p->resource_types) != 0 ||
        add_param(&q, "spr", protocol_str(p->protocol)) != 0 ||
        (st[0] && add_param(&q, "st", st) != 0) || add_param(&q, "se", se) != 0 ||
        add_param(&q, "sp", p->permissions) != 0)
        rc = cp_fail(err, CP_ENOMEM, "InternalError", NULL, "token too long");
    else
        rc = finish_token(&sts, &q, key_b64, token, err);
    dynbuf_free(&sts);
    dynbuf_free(&q);
    return rc;
}
