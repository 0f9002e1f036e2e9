/*
 * sas.h - shared access signatures (SAS) for Azure Blob Storage, signed by netwatchd with a
 * storage account's shared key, so that an agent can write one blob without ever holding the
 * key (docs/storage.md).
 *
 * Two kinds, both in the signed version STORAGE_SAS_VERSION (format of 2020-12-06 and later):
 *
 *  - a service SAS for one blob (sr=b): what an agent gets, per capture file, with the
 *    permissions "cw" (create, write: Put Blob, Put Block, Put Block List and nothing else;
 *    no read, so a leaked URL cannot be used to download captures);
 *  - an account SAS for containers (ss=b, srt=c): what the server itself uses to create the
 *    capture container (network-watcher-logs) when it is missing; a service SAS cannot.
 *
 * String to sign (service SAS, blob), one field per line, empty when unused:
 *   sp, st, se, "/blob/{account}/{container}/{blob}", si, sip, spr, sv, sr, snapshot time, ses,
 *   rscc, rscd, rsce, rscl, rsct (no newline after the last).
 * String to sign (account SAS), each followed by a newline:
 *   account, sp, ss, srt, st, se, sip, spr, sv, ses.
 * The signature is base64(HMAC-SHA256(base64-decoded key, string to sign)). Times are UTC,
 * "YYYY-MM-DDTHH:MM:SSZ". Query values are percent-encoded with libcurl.
 *
 * The key is never logged, never kept: it is decoded into a stack buffer that is wiped before
 * return. Returned tokens and URLs are secrets too (they grant access until they expire).
 *
 * Thread-safe (no shared state). Depends on OpenSSL libcrypto and libcurl.
 */
#ifndef NW_STORAGE_SAS_H
#define NW_STORAGE_SAS_H

#include <stdint.h>

#include "common/err.h"

/* The signed version: understood by Azure Storage and by Azurite 3.35 (tests/azurite). */
#define STORAGE_SAS_VERSION "2022-11-02"

#define STORAGE_ACCOUNT_NAME_MAX   24   /* Azure: 3-24 lower-case letters and digits */
#define STORAGE_CONTAINER_NAME_MAX 63   /* Azure: 3-63 lower-case letters, digits, '-' */
#define STORAGE_BLOB_NAME_MAX      1024 /* Azure's limit on a blob name */
#define STORAGE_KEY_B64_MAX        128  /* a 64-byte key is 88 base64 characters */

enum storage_sas_protocol {
    STORAGE_SAS_HTTPS = 0,  /* spr=https: the only sensible choice for a real account */
    STORAGE_SAS_HTTPS_HTTP, /* spr=https,http: also plain http, for Azurite on 127.0.0.1 */
};

/* A service SAS for one blob. All strings borrowed. */
struct storage_sas_blob {
    const char *account;     /* account name */
    const char *container;   /* container name */
    const char *blob;        /* blob name as stored (not URL-encoded); '/' separates folders */
    const char *permissions; /* letters of "racwd", each at most once, in that order */
    int64_t start_ms;        /* epoch ms; 0: no st (valid from whenever the service sees it) */
    int64_t expiry_ms;       /* epoch ms; after start_ms */
    enum storage_sas_protocol protocol;
};

/* An account SAS. All strings borrowed. */
struct storage_sas_account {
    const char *account;        /* account name */
    const char *services;       /* letters of "bfqt" in that order, e.g. "b" */
    const char *resource_types; /* letters of "sco" in that order, e.g. "c" */
    const char *permissions;    /* letters of "rwdlacup" in that order, e.g. "c" */
    int64_t start_ms;           /* as above */
    int64_t expiry_ms;          /* as above */
    enum storage_sas_protocol protocol;
};

/*
 * The SAS token (query string without '?', e.g. "sv=...&sig=...") for p, signed with key_b64
 * (the account key as Azure shows it, base64). *token is owned by the caller (free()); written
 * only on success.
 * Errors: CP_EINVAL (a name, a permission letter, the times or the key is malformed; err says
 * which, never quoting the key), CP_ENOMEM, CP_EIO (OpenSSL or libcurl failed).
 */
enum cp_err storage_sas_blob_token(const struct storage_sas_blob *p, const char *key_b64,
                                   char **token, struct cp_error *err) CP_MUST_USE;

/*
 * The full URL "{endpoint}/{container}/{blob}?{token}", each blob name segment percent-
 * encoded. endpoint is the account's blob endpoint without a trailing '/', e.g.
 * "https://acct.blob.core.windows.net" or "http://127.0.0.1:10000/devstoreaccount1".
 * Ownership and errors as storage_sas_blob_token (CP_EINVAL also for an empty endpoint).
 */
enum cp_err storage_sas_blob_url(const char *endpoint, const struct storage_sas_blob *p,
                                 const char *key_b64, char **url, struct cp_error *err) CP_MUST_USE;

/* The account SAS token for p. Ownership and errors as storage_sas_blob_token. */
enum cp_err storage_sas_account_token(const struct storage_sas_account *p, const char *key_b64,
                                      char **token, struct cp_error *err) CP_MUST_USE;

/*
 * base64(HMAC-SHA256(base64-decode(key_b64), msg)) into out (caller-owned, outsz bytes; 45 is
 * enough), NUL-terminated. Exposed for the known-answer unit test. Returns CP_OK, CP_EINVAL
 * (bad key, out too small) or CP_EIO.
 */
enum cp_err storage_sas_sign(const char *key_b64, const char *msg, char *out, size_t outsz,
                             struct cp_error *err) CP_MUST_USE;

#endif
