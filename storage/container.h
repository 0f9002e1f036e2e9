/*
 * container.h - makes sure a storage account has the container captures go to, and in doing so
 * proves that the registered endpoint, account name and key work together (`netwatchd storage
 * add` calls it before it stores anything).
 *
 * One Create Container request (PUT {endpoint}/{container}?restype=container) authorised by an
 * account SAS (storage/sas.h: ss=b, srt=c, sp=c, valid for a few minutes), over libcurl:
 * 201 (created) and 409 (already there) are success; 403 means the key or account name is
 * wrong. curl_global_init must have been called (the CLI's main does).
 */
#ifndef NW_STORAGE_CONTAINER_H
#define NW_STORAGE_CONTAINER_H

#include "common/err.h"

/* What storage_container_ensure found. */
enum storage_container_state {
    STORAGE_CONTAINER_CREATED,
    STORAGE_CONTAINER_EXISTED,
};

/*
 * Creates container in the account at endpoint (borrowed, no trailing '/'), signing with key_b64
 * (borrowed; never logged). ca_file (may be NULL) replaces the system's CAs for https. *state
 * (may be NULL) says which it was. Errors (e filled, code "StorageFailed", the message naming
 * the endpoint and the HTTP status, never the SAS): CP_EFORBIDDEN (403: wrong key or account),
 * CP_EIO (no answer, or another status), CP_EINVAL (bad arguments), CP_ENOMEM.
 */
enum cp_err storage_container_ensure(const char *endpoint, const char *account, const char *key_b64,
                                     const char *container, const char *ca_file,
                                     enum storage_container_state *state,
                                     struct cp_error *e) CP_MUST_USE;

#endif
