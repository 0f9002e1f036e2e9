/* networkWatchers: PUT, GET, PATCH tags, DELETE and the two lists; JSON in and out. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_int.h"
#include "common/armid.h"

/* ARM's documented tag limits. */
#define TAGS_MAX      50
#define TAG_NAME_MAX  512
#define TAG_VALUE_MAX 256

static json_t *watcher_json(const struct db_watcher *w)
{
    char id[DB_TARGET_MAX], etag[64];
    snprintf(id, sizeof(id),
             "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkWatchers/%s",
             w->sub, w->rg, w->name);
    api_weak_etag(w->etag, etag, sizeof(etag));
    json_t *tags = json_loads(w->tags_json, 0, NULL);
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:{s:s, s:[]}}", "id", id, "name", w->name,
                     "type", "Microsoft.Network/networkWatchers", "location", w->region, "tags",
                     tags ? tags : json_object(), "etag", etag, "properties", "provisioningState",
                     "Succeeded", "runningOperationIds");
}

static void reply_watcher(struct api_response *res, int status, const struct db_watcher *w)
{
    char etag[64];
    api_weak_etag(w->etag, etag, sizeof(etag));
    api_add_header(res, "ETag", "%s", etag);
    api_set_json(res, status, watcher_json(w));
}

/* Validates `tags` (absent = {}) and returns its JSON text (caller frees), or NULL with res set. */
static char *tags_text(json_t *body, struct api_response *res)
{
    json_t *tags = json_object_get(body, "tags");
    if (!tags || json_is_null(tags))
        return strdup("{}");
    if (!json_is_object(tags)) {
        api_set_error(res, 400, "InvalidRequestContent", "tags must be an object of strings.",
                      "tags");
        return NULL;
    }
    if (json_object_size(tags) > TAGS_MAX) {
        api_set_error(res, 400, "InvalidPropertyValue", "At most 50 tags are allowed.", "tags");
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(tags, k, v)
    {
        if (!json_is_string(v)) {
            char msg[160];
            snprintf(msg, sizeof(msg), "Tag '%.64s' must have a string value.", k);
            api_set_error(res, 400, "InvalidRequestContent", msg, "tags");
            return NULL;
        }
        if (strlen(k) == 0 || strlen(k) > TAG_NAME_MAX || json_string_length(v) > TAG_VALUE_MAX) {
            char msg[256];
            snprintf(msg, sizeof(msg),
                     "Tag '%.64s' is not valid: names are 1-512 characters, values strings of at "
                     "most 256.",
                     k);
            api_set_error(res, 400, "InvalidPropertyValue", msg, "tags");
            return NULL;
        }
    }
    char *text = json_dumps(tags, JSON_COMPACT | JSON_SORT_KEYS);
    if (!text)
        api_set_error(res, 500, "InternalServerError", "Out of memory.", NULL);
    return text;
}

static struct core_watcher_ref ref_of(const struct api_route_args *a)
{
    struct core_watcher_ref ref = {a->sub, a->rg, a->watcher};
    return ref;
}

static struct core_precond precond_of(const struct api_request *req)
{
    struct core_precond pre = {req->if_match, req->if_none_match};
    return pre;
}

void api_watcher_put(const struct api_ctx *ctx, const struct api_request *req,
                     const struct api_route_args *a, struct api_response *res)
{
    json_t *body = api_parse_object(req, res);
    if (!body)
        return;
    char region[65];
    char *tags = NULL;
    json_t *loc = json_object_get(body, "location");
    json_t *props = json_object_get(body, "properties");
    if (!loc || json_is_null(loc)) {
        api_set_error(res, 400, "MissingRequiredProperty", "location is required.", "location");
        goto done;
    }
    if (!json_is_string(loc)) {
        api_set_error(res, 400, "InvalidRequestContent", "location must be a string.", "location");
        goto done;
    }
    if (armid_normalize_region(json_string_value(loc), region, sizeof(region))) {
        api_set_error(res, 400, "InvalidPropertyValue",
                      "location must be a region name such as 'westus2'.", "location");
        goto done;
    }
    if (props && !json_is_null(props) && !json_is_object(props)) {
        api_set_error(res, 400, "InvalidRequestContent", "properties must be an object.",
                      "properties");
        goto done;
    }
    if (!(tags = tags_text(body, res)))
        goto done;
    struct core_watcher_ref ref = ref_of(a);
    struct core_precond pre = precond_of(req);
    struct db_watcher w;
    int created = 0;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_watcher_put(ctx->core, &ref, region, tags, &pre, &w, &created, &e);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        goto done;
    }
    reply_watcher(res, created ? 201 : 200, &w);
    db_watcher_clear(&w);
done:
    free(tags);
    json_decref(body);
}

void api_watcher_get(const struct api_ctx *ctx, const struct api_request *req,
                     const struct api_route_args *a, struct api_response *res)
{
    (void)req;
    struct core_watcher_ref ref = ref_of(a);
    struct db_watcher w;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_watcher_get(ctx->core, &ref, &w, &e);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    reply_watcher(res, 200, &w);
    db_watcher_clear(&w);
}

void api_watcher_patch(const struct api_ctx *ctx, const struct api_request *req,
                       const struct api_route_args *a, struct api_response *res)
{
    json_t *body = api_parse_object(req, res);
    if (!body)
        return;
    char *tags = tags_text(body, res);
    json_decref(body);
    if (!tags)
        return;
    struct core_watcher_ref ref = ref_of(a);
    struct core_precond pre = precond_of(req);
    struct db_watcher w;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_watcher_patch_tags(ctx->core, &ref, tags, &pre, &w, &e);
    free(tags);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    reply_watcher(res, 200, &w);
    db_watcher_clear(&w);
}

void api_watcher_delete(const struct api_ctx *ctx, const struct api_request *req,
                        const struct api_route_args *a, struct api_response *res)
{
    struct core_watcher_ref ref = ref_of(a);
    struct core_precond pre = precond_of(req);
    struct db_operation op;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_watcher_delete(ctx->core, &ref, &pre, req->api_version, &op, &e);
    if (err == CP_ENOTFOUND) {
        res->status = 204;
        return;
    }
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    snprintf(res->request_id, sizeof(res->request_id), "%s", op.id);
    api_add_monitor_headers(ctx, res, a->sub, op.region, op.id, req->api_version, 1);
    res->status = 202;
    db_operation_clear(&op);
}

static enum cp_err append_watcher(const struct db_watcher *w, void *arg)
{
    json_t *j = watcher_json(w);
    return j && json_array_append_new(arg, j) == 0 ? CP_OK : CP_ENOMEM;
}

void api_watcher_list(const struct api_ctx *ctx, const struct api_request *req,
                      const struct api_route_args *a, struct api_response *res)
{
    (void)req;
    json_t *value = json_array();
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = value ? core_watcher_list(ctx->core, a->sub, a->rg[0] ? a->rg : NULL,
                                                append_watcher, value, &e)
                            : CP_ENOMEM;
    if (err != CP_OK) {
        json_decref(value);
        api_set_cp_error(res, err, &e);
        return;
    }
    api_set_json(res, 200, json_pack("{s:o}", "value", value));
}
