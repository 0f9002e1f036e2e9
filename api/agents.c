/*
 * Netwatch/agents: the read-only view of registered agents, per subscription (an agent belongs
 * to the subscription of the VM or scale set it serves). GET list and GET one; JSON out.
 * Tokens and their hashes never reach this file (struct db_agent has neither).
 */
#include <stdio.h>
#include <string.h>

#include "api/api_int.h"
#include "common/timefmt.h"
#include "core/agents.h"

/* Sets key to the RFC 3339 form of ms; ms 0 (never) leaves the key out. */
static int set_time(json_t *obj, const char *key, int64_t ms)
{
    if (ms == 0)
        return 0;
    char t[TIMEFMT_RFC3339_LEN];
    timefmt_rfc3339(ms, t, sizeof(t));
    return json_object_set_new(obj, key, json_string(t));
}

/* Sets key to s unless s is "" (unknown). */
static int set_opt(json_t *obj, const char *key, const char *s)
{
    return s[0] ? json_object_set_new(obj, key, json_string(s)) : 0;
}

/* The stored interfaces: a JSON array the hub recorded from hello. Anything else shows as []. */
static json_t *interfaces_of(const struct db_agent *a)
{
    json_t *j = a->addresses_json ? json_loads(a->addresses_json, 0, NULL) : NULL;
    if (json_is_array(j))
        return j;
    json_decref(j);
    return json_array();
}

/* The agent resource; sub in the caller's casing. NULL when out of memory. */
static json_t *agent_json(const char *sub, const struct db_agent *a)
{
    char id[API_SEGMENT_MAX + 128];
    snprintf(id, sizeof(id), "/subscriptions/%s/providers/Netwatch/agents/%s", sub, a->id);
    json_t *props =
        json_pack("{s:s, s:b, s:b, s:o}", "resourceId", a->resource_id, "revoked", a->revoked,
                  "connected", a->connected && !a->revoked, "interfaces", interfaces_of(a));
    if (!props || set_opt(props, "instanceId", a->instance_id) ||
        set_time(props, "registeredTime", a->created_ms) ||
        set_time(props, "revokedTime", a->revoked ? a->revoked_ms : 0) ||
        set_time(props, "lastSeenTime", a->last_seen_ms) ||
        set_opt(props, "agentVersion", a->agent_version) || set_opt(props, "os", a->os) ||
        set_opt(props, "hostname", a->hostname)) {
        json_decref(props);
        return NULL;
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "id", id, "name", a->id, "type", "Netwatch/agents",
                     "properties", props);
}

void api_agent_get(const struct api_ctx *ctx, const struct api_request *req,
                   const struct api_route_args *args, struct api_response *res)
{
    (void)req;
    struct db_agent a;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_agent_get(core_store(ctx->core), args->sub, args->agent, &a, &e);
    if (err != CP_OK) {
        api_set_cp_error(res, err, &e);
        return;
    }
    api_set_json(res, 200, agent_json(args->sub, &a));
    db_agent_clear(&a);
}

struct list_ctx {
    const char *sub;
    json_t *value;
};

static enum cp_err append_agent(const struct db_agent *a, void *arg)
{
    struct list_ctx *l = arg;
    json_t *j = agent_json(l->sub, a);
    return j && json_array_append_new(l->value, j) == 0 ? CP_OK : CP_ENOMEM;
}

void api_agent_list(const struct api_ctx *ctx, const struct api_request *req,
                    const struct api_route_args *args, struct api_response *res)
{
    (void)req;
    struct list_ctx l = {args->sub, json_array()};
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = l.value
                          ? core_agent_list(core_store(ctx->core), args->sub, append_agent, &l, &e)
                          : CP_ENOMEM;
    if (err != CP_OK) {
        json_decref(l.value);
        api_set_cp_error(res, err, &e);
        return;
    }
    api_set_json(res, 200, json_pack("{s:o}", "value", l.value));
}
