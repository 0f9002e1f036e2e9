/*
 * The ARM API of netwatchd, independent of the HTTP server: server/ fills a struct
 * api_request from the wire, api_handle() routes, checks, calls core and renders a struct
 * api_response that server/ sends. api/ never sees libmicrohttpd types.
 *
 * Threading: api_handle() may run in many threads at once; ctx is read-only.
 */
#ifndef NW_API_API_H
#define NW_API_API_H

#include <stddef.h>

#include "common/err.h"
#include "core/core.h"

/* Bodies over this are refused with 413 before they are read further. */
#define API_MAX_BODY (1024 * 1024)

enum api_method { API_GET, API_PUT, API_POST, API_DELETE, API_PATCH, API_HEAD, API_OTHER };

/* One request as server/ received it; every pointer is borrowed for the call. */
struct api_request {
    enum api_method method;
    const char *path;              /* URL-decoded path, no query */
    const char *api_version;       /* NULL when the query has none */
    const char *authorization;     /* Authorization header or NULL */
    const char *if_match;          /* If-Match header or NULL */
    const char *if_none_match;     /* If-None-Match header or NULL */
    const char *correlation_id;    /* x-ms-correlation-request-id or NULL */
    const char *client_request_id; /* x-ms-client-request-id or NULL */
    int return_client_request_id;  /* x-ms-return-client-request-id: true */
    const char *body;              /* NULL or body_len bytes, not terminated */
    size_t body_len;
    int body_too_large; /* server stopped reading past API_MAX_BODY */
};

#define API_MAX_HEADERS      14
#define API_HEADER_NAME_MAX  48
#define API_HEADER_VALUE_MAX 1024

struct api_header {
    char name[API_HEADER_NAME_MAX];
    char value[API_HEADER_VALUE_MAX];
};

/* The answer; api_response_free() releases body. */
struct api_response {
    int status;
    struct api_header headers[API_MAX_HEADERS];
    int nheaders;
    char *body; /* owned, malloc'd; NULL for none */
    size_t body_len;
    const char *route; /* static route template for metrics ("" when none matched) */
    char request_id[40];
};

/* Checks a bearer credential. sub NULL: is the token valid at all. Returns CP_OK, CP_EAUTH (no
 * or unknown token) or CP_EFORBIDDEN (valid token, not allowed this subscription). */
typedef enum cp_err (*api_auth_fn)(void *auth_ctx, const char *authorization, const char *sub);

struct api_ctx {
    struct core *core;      /* borrowed */
    const char *public_url; /* base of monitor URLs, no trailing '/' */
    api_auth_fn auth;
    void *auth_ctx;
    /* How long a poll of a young operation still InProgress may wait for it to end before it
     * is answered (core_operation_wait); 0 = at once. The caller must allow the handler to
     * block that long (server/ runs such polls on its workers). */
    int monitor_wait_ms;
};

/* Handles one request; res is always filled (callers free it with api_response_free). */
void api_handle(const struct api_ctx *ctx, const struct api_request *req, struct api_response *res);
void api_response_free(struct api_response *res);

/* Adds the headers every response carries (x-ms-request-id, correlation ids); api_handle()
 * calls it, server/ calls it for its own routes. */
void api_finish(const struct api_request *req, struct api_response *res);

/* Used by server/ for its own routes (healthz, metrics, errors before api_handle). */
void api_response_init(struct api_response *res, const struct api_request *req);
void api_set_error(struct api_response *res, int status, const char *code, const char *message,
                   const char *target);
/* Sets a JSON body from constant text (copied). */
void api_set_json_text(struct api_response *res, int status, const char *json);
int api_add_header(struct api_response *res, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
