/* Building responses: headers, JSON bodies, the ARM error envelope, monitor headers, and the
 * one table that maps enum cp_err to HTTP status. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "common/log.h"
#include "common/strutil.h"

void api_response_init(struct api_response *res, const struct api_request *req)
{
    (void)req;
    /* Not a memset: the header array is large and filled entry by entry. */
    res->status = 500;
    res->nheaders = 0;
    res->body = NULL;
    res->body_len = 0;
    res->route = "";
    res->request_id[0] = '\0';
}

void api_response_free(struct api_response *res)
{
    free(res->body);
    res->body = NULL;
    res->body_len = 0;
}

int api_add_header(struct api_response *res, const char *name, const char *fmt, ...)
{
    if (res->nheaders >= API_MAX_HEADERS)
        return -1;
    struct api_header *h = &res->headers[res->nheaders];
    if (str_copy(h->name, sizeof(h->name), name))
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(h->value, sizeof(h->value), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(h->value))
        return -1;
    res->nheaders++;
    return 0;
}

static void set_body(struct api_response *res, int status, char *body)
{
    free(res->body);
    res->status = status;
    res->body = body;
    res->body_len = body ? strlen(body) : 0;
}

void api_set_body(struct api_response *res, int status, char *body)
{
    if (!body) {
        api_set_error(res, 500, "InternalServerError", "The response could not be built.", NULL);
        return;
    }
    set_body(res, status, body);
}

void api_set_json(struct api_response *res, int status, json_t *json)
{
    char *text = json ? json_dumps(json, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(json);
    if (!text) {
        set_body(res, 500, NULL);
        return;
    }
    set_body(res, status, text);
}

void api_set_json_text(struct api_response *res, int status, const char *json)
{
    char *copy = strdup(json);
    set_body(res, copy ? status : 500, copy);
}

void api_set_error(struct api_response *res, int status, const char *code, const char *message,
                   const char *target)
{
    json_t *err = json_pack("{s:s, s:s, s:[]}", "code", code, "message", message, "details");
    if (err && target && *target)
        json_object_set_new(err, "target", json_string(target));
    api_set_json(res, status, err ? json_pack("{s:o}", "error", err) : NULL);
}

/* HTTP status and default ARM code of each enum cp_err. */
static const struct {
    int status;
    const char *code;
    const char *message;
} status_of[] = {
    [CP_OK] = {200, "", ""},
    [CP_EINVAL] = {400, "InvalidRequestContent", "The request is not valid."},
    [CP_ENOTFOUND] = {404, "NotFound", "The resource was not found."},
    [CP_EEXIST] = {409, "Conflict", "The resource already exists."},
    [CP_ECONFLICT] = {409, "Conflict", "The resource changed during the request; retry."},
    [CP_EPRECOND] = {412, "PreconditionFailed", "A request precondition was not met."},
    [CP_ETOOBIG] = {413, "RequestBodyTooLarge", "The request body is too large."},
    [CP_EAUTH] = {401, "AuthenticationFailed", "Authentication failed."},
    [CP_EFORBIDDEN] = {403, "AuthorizationFailed", "The client is not authorized."},
    [CP_ENOMEM] = {500, "InternalServerError", "The server ran out of memory."},
    [CP_EIO] = {500, "InternalServerError", "An internal error occurred."},
    [CP_EBUSY] = {503, "ServiceUnavailable", "The server is busy; retry later."},
    [CP_ENOAGENT] = {409, "AgentNotConnected", "No agent serves the target."},
};

void api_set_cp_error(struct api_response *res, enum cp_err err, const struct cp_error *e)
{
    if ((size_t)err >= sizeof(status_of) / sizeof(status_of[0]) || err == CP_OK)
        err = CP_EIO;
    int status = status_of[err].status;
    /* Internal failures keep their detail in the log, not in the reply. */
    if (status >= 500) {
        log_warnx("event=internal_error request_id=%s err=%s detail=\"%s\"", res->request_id,
                  cp_err_name(err), e ? e->message : "");
        api_set_error(res, status, status_of[err].code, status_of[err].message, NULL);
        return;
    }
    int has = e && e->code[0];
    api_set_error(res, status, has ? e->code : status_of[err].code,
                  has && e->message[0] ? e->message : status_of[err].message,
                  has ? e->target : NULL);
}

void api_add_monitor_headers(const struct api_ctx *ctx, struct api_response *res, const char *sub,
                             const char *region, const char *op_id, const char *api_version,
                             int location)
{
    const char *base = ctx->public_url;
    api_add_header(res, "Azure-AsyncOperation",
                   "%s/subscriptions/%s/providers/Microsoft.Network/locations/%s/operations/%s"
                   "?api-version=%s",
                   base, sub, region, op_id, api_version);
    if (location)
        api_add_header(res, "Location",
                       "%s/subscriptions/%s/providers/Microsoft.Network/locations/%s/"
                       "operationResults/%s?api-version=%s",
                       base, sub, region, op_id, api_version);
    /* Short on purpose: SDK pollers obey the monitor's Retry-After, and our operations end in
     * milliseconds; a long value makes every client wait for nothing. */
    api_add_header(res, "Retry-After", "1");
}

json_t *api_parse_object(const struct api_request *req, struct api_response *res)
{
    if (req->body_too_large) {
        api_set_error(res, 413, "RequestBodyTooLarge",
                      "The request body is larger than 1048576 bytes.", NULL);
        return NULL;
    }
    if (!req->body || req->body_len == 0) {
        api_set_error(res, 400, "InvalidRequestFormat", "The request body is required.", NULL);
        return NULL;
    }
    json_error_t jerr;
    /* Depth is bounded by jansson (JSON_PARSER_MAX_DEPTH); size by API_MAX_BODY. */
    json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (!j) {
        char msg[CP_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof(msg), "Cannot parse the request body: %s at line %d, column %d.",
                 jerr.text, jerr.line, jerr.column);
        api_set_error(res, 400, "InvalidRequestFormat", msg, NULL);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        api_set_error(res, 400, "InvalidRequestFormat", "The request body must be a JSON object.",
                      NULL);
        return NULL;
    }
    return j;
}

void api_weak_etag(const char *etag, char *out, size_t n)
{
    snprintf(out, n, "W/\"%s\"", etag);
}
