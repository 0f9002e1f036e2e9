/* Private to api/: route captures, handler signature, rendering helpers. */
#ifndef NW_API_INT_H
#define NW_API_INT_H

#include <jansson.h>

#include "api/api.h"

#define API_MAX_SEGMENTS 16
#define API_SEGMENT_MAX  128

/* The variable parts of a matched route, decoded, in the caller's casing. */
struct api_route_args {
    char sub[API_SEGMENT_MAX];
    char rg[API_SEGMENT_MAX];
    char watcher[API_SEGMENT_MAX];
    char capture[API_SEGMENT_MAX];
    char region[API_SEGMENT_MAX];
    char operation[API_SEGMENT_MAX];
    char agent[API_SEGMENT_MAX];
};

typedef void (*api_handler_fn)(const struct api_ctx *ctx, const struct api_request *req,
                               const struct api_route_args *args, struct api_response *res);

/* Takes (steals) json: renders it as the body with the JSON content type. */
void api_set_json(struct api_response *res, int status, json_t *json);
/* Takes body (a malloc'd JSON text, or NULL meaning out of memory: 500) as the response. */
void api_set_body(struct api_response *res, int status, char *body);
/* Maps err (with detail e) to the ARM error response; only this maps enum cp_err to HTTP. */
void api_set_cp_error(struct api_response *res, enum cp_err err, const struct cp_error *e);
/* Adds Azure-AsyncOperation, Location and Retry-After for operation op_id in sub/region. */
void api_add_monitor_headers(const struct api_ctx *ctx, struct api_response *res, const char *sub,
                             const char *region, const char *op_id, const char *api_version,
                             int location);
/* Parses the request body as a JSON object; on failure sets the 400/413 response, returns NULL. */
json_t *api_parse_object(const struct api_request *req, struct api_response *res);

/* W/"etag" into out. */
void api_weak_etag(const char *etag, char *out, size_t n);

/* Handlers. */
void api_watcher_put(const struct api_ctx *, const struct api_request *,
                     const struct api_route_args *, struct api_response *);
void api_watcher_get(const struct api_ctx *, const struct api_request *,
                     const struct api_route_args *, struct api_response *);
void api_watcher_patch(const struct api_ctx *, const struct api_request *,
                       const struct api_route_args *, struct api_response *);
void api_watcher_delete(const struct api_ctx *, const struct api_request *,
                        const struct api_route_args *, struct api_response *);
void api_watcher_list(const struct api_ctx *, const struct api_request *,
                      const struct api_route_args *, struct api_response *);
void api_capture_put(const struct api_ctx *, const struct api_request *,
                     const struct api_route_args *, struct api_response *);
void api_capture_get(const struct api_ctx *, const struct api_request *,
                     const struct api_route_args *, struct api_response *);
void api_capture_delete(const struct api_ctx *, const struct api_request *,
                        const struct api_route_args *, struct api_response *);
void api_capture_list(const struct api_ctx *, const struct api_request *,
                      const struct api_route_args *, struct api_response *);
void api_capture_stop(const struct api_ctx *, const struct api_request *,
                      const struct api_route_args *, struct api_response *);
void api_capture_query_status(const struct api_ctx *, const struct api_request *,
                              const struct api_route_args *, struct api_response *);
void api_operation_status(const struct api_ctx *, const struct api_request *,
                          const struct api_route_args *, struct api_response *);
void api_operation_result(const struct api_ctx *, const struct api_request *,
                          const struct api_route_args *, struct api_response *);
void api_agent_list(const struct api_ctx *, const struct api_request *,
                    const struct api_route_args *, struct api_response *);
void api_agent_get(const struct api_ctx *, const struct api_request *,
                   const struct api_route_args *, struct api_response *);

/* Validates a PacketCapture PUT body (the whole object) and builds the normalised
 * PacketCaptureParameters with every default filled (new reference in *out), except
 * storageLocation.storagePath when a storageId is given: that needs the registered account's
 * endpoint (api_capture_storage_path). */
enum cp_err api_capture_params(json_t *body, json_t **out, struct cp_error *e) CP_MUST_USE;
/* Sets out's storageLocation.storagePath (out from api_capture_params, which has a storageId)
 * to the capture's blob URL under blob_endpoint (borrowed; no trailing '/'). */
enum cp_err api_capture_storage_path(json_t *out, const char *blob_endpoint,
                                     struct cp_error *e) CP_MUST_USE;
/* The instance id of a validated scope entry ("3", or ".../virtualMachines/3"); borrowed from
 * entry. */
const char *api_scope_instance(const char *entry);

#endif
