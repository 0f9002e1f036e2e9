/* Agent registry rules (see core/agents.h): registration, revocation, token authentication and
 * the channel state an agent reports. */
#include "core/agents.h"

#include <stdlib.h>
#include <string.h>

#include "common/armid.h"
#include "core/token_hash.h"
#include "common/strutil.h"
#include "common/timefmt.h"
#include "core/ids.h"

/* ---- validation, outside any job ---- */

int core_agent_token_well_formed(const char *token)
{
    size_t plen = strlen(CORE_AGENT_TOKEN_PREFIX);
    if (!token || strncmp(token, CORE_AGENT_TOKEN_PREFIX, plen) != 0 ||
        strlen(token) != CORE_AGENT_TOKEN_LEN - 1)
        return 0;
    for (const char *p = token + plen; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    }
    return 1;
}

/* The machine an agent serves, checked and normalised. */
struct machine {
    char resource_id[DB_AGENT_RESOURCE_MAX]; /* as given, without a trailing '/' */
    char resource_key[DB_AGENT_RESOURCE_MAX];
    char sub_key[ARMID_SUB_MAX];
    char instance_id[DB_AGENT_INSTANCE_MAX]; /* "" for a VM */
    char instance_key[DB_AGENT_INSTANCE_MAX];
};

static enum cp_err machine_of(const char *resource_id, const char *instance_id, struct machine *m,
                              struct cp_error *e)
{
    struct armid id;
    if (!resource_id || !*resource_id)
        return cp_fail(e, CP_EINVAL, "InvalidResourceId", "resourceId",
                       "A VM or scale-set resource id is required.");
    if (armid_parse(resource_id, &id, e, "resourceId") != CP_OK)
        return CP_EINVAL;
    int has_instance = instance_id && *instance_id;
    if (id.kind == ARMID_STORAGE)
        return cp_fail(e, CP_EINVAL, "InvalidResourceId", "resourceId",
                       "An agent runs on a virtual machine: give a "
                       "Microsoft.Compute/virtualMachines id, or a "
                       "Microsoft.Compute/virtualMachineScaleSets id with an instance id.");
    if (id.kind == ARMID_VM && has_instance)
        return cp_fail(e, CP_EINVAL, "InvalidInstanceId", "instanceId",
                       "An instance id is only for a scale set; '%.200s' is a virtual machine.",
                       resource_id);
    if (id.kind == ARMID_VMSS && !has_instance)
        return cp_fail(e, CP_EINVAL, "MissingInstanceId", "instanceId",
                       "'%.200s' is a scale set: give the instance the agent runs on (--instance).",
                       resource_id);
    if (has_instance && !armid_valid_resource_name(instance_id))
        return cp_fail(e, CP_EINVAL, "InvalidInstanceId", "instanceId",
                       "The instance id '%.100s' is not valid: 1-80 letters, digits, '_', '-' or "
                       "'.', starting with a letter or digit.",
                       instance_id);
    /* armid_parse tolerates one trailing '/'; /x and /x/ are the same machine. */
    size_t len = strlen(resource_id);
    if (resource_id[len - 1] == '/')
        len--;
    if (len >= sizeof(m->resource_id))
        return cp_fail(e, CP_EINVAL, "InvalidResourceId", "resourceId",
                       "The resource id is too long.");
    memcpy(m->resource_id, resource_id, len);
    m->resource_id[len] = '\0';
    if (str_lower_copy(m->resource_key, sizeof(m->resource_key), m->resource_id) ||
        str_lower_copy(m->sub_key, sizeof(m->sub_key), id.sub) ||
        str_copy(m->instance_id, sizeof(m->instance_id), has_instance ? instance_id : "") ||
        str_lower_copy(m->instance_key, sizeof(m->instance_key), m->instance_id))
        return cp_fail(e, CP_EINVAL, "InvalidResourceId", "resourceId", "A part is too long.");
    return CP_OK;
}

/* Lower-cases a GUID id into out; -1 when id is not a GUID (then no agent can have it). */
static int id_key(const char *id, char out[DB_AGENT_ID_LEN])
{
    if (!armid_is_guid(id))
        return -1;
    return str_lower_copy(out, DB_AGENT_ID_LEN, id);
}

/* Only a GUID is echoed: anything else came from a caller and may not even be UTF-8. */
static enum cp_err agent_not_found(struct cp_error *e, const char *id)
{
    if (!id || !armid_is_guid(id))
        return cp_fail(e, CP_ENOTFOUND, "NotFound", "", "The agent was not found.");
    return cp_fail(e, CP_ENOTFOUND, "NotFound", "", "Agent '%s' was not found.", id);
}

/*
 * The rule proto/ applies to a "name" (at most max - 1 bytes, no control characters), plus:
 * valid UTF-8 (shortest form, no surrogates) and no C1 controls either (U+0080..U+009F, which
 * some terminals act on). These strings end up in JSON replies and on an operator's terminal.
 * NULL and "" are fine (unknown).
 */
static int text_ok(const char *s, size_t max)
{
    if (!s)
        return 1;
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (p[i]) {
        unsigned c = p[i], cp, n;
        if (c < 0x80) {
            cp = c;
            n = 1;
        } else if (c >= 0xc2 && c <= 0xdf) {
            cp = c & 0x1f;
            n = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            cp = c & 0x0f;
            n = 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            cp = c & 0x07;
            n = 4;
        } else {
            return 0;
        }
        for (unsigned k = 1; k < n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) /* also stops at the NUL */
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp < 0x20 || (cp >= 0x7f && cp <= 0x9f))
            return 0;
        i += n;
        if (i >= max)
            return 0;
    }
    return 1;
}

/* ---- register ---- */

struct register_job {
    const struct machine *m;
    const char *token_hash;
    struct db_agent *out;
};

static enum cp_err register_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct register_job *job = arg;
    const struct machine *m = job->m;
    struct db_agent cur;
    enum cp_err err = db_agent_get_active(c, m->resource_key, m->instance_key, &cur);
    if (err == CP_OK) {
        err = cp_fail(e, CP_EEXIST, "AgentAlreadyRegistered", "resourceId",
                      "Agent %s is already registered for %.300s%s%s; revoke it first "
                      "(netwatchd agent revoke %s).",
                      cur.id, cur.resource_id, cur.instance_id[0] ? " instance " : "",
                      cur.instance_id, cur.id);
        db_agent_clear(&cur);
        return err;
    }
    if (err != CP_ENOTFOUND)
        return err;

    struct db_agent *a = job->out;
    memset(a, 0, sizeof(*a));
    core_guid(a->id);
    memcpy(a->resource_id, m->resource_id, sizeof(a->resource_id));
    memcpy(a->instance_id, m->instance_id, sizeof(a->instance_id));
    a->created_ms = timefmt_now_ms();
    if (!(a->addresses_json = strdup("[]")))
        return CP_ENOMEM;
    err = db_agent_insert(c, a, m->sub_key, job->token_hash);
    if (err == CP_EEXIST) /* the id or the token hash: never in practice (random) */
        err = cp_fail(e, CP_EEXIST, "AgentAlreadyRegistered", "",
                      "The new agent clashes with an existing one; run the command again.");
    if (err != CP_OK)
        db_agent_clear(a);
    return err;
}

enum cp_err core_agent_register(struct db_store *s, const char *resource_id,
                                const char *instance_id, const char *token, struct db_agent *out,
                                struct cp_error *e)
{
    struct machine m;
    enum cp_err err = machine_of(resource_id, instance_id, &m, e);
    if (err != CP_OK)
        return err;
    if (!core_agent_token_well_formed(token))
        return cp_fail(e, CP_EINVAL, "InvalidToken", "",
                       "An agent token is 'nwa_' and 64 lower-case hex digits.");
    char hash[CORE_TOKEN_HEX_LEN];
    if (core_token_hash_hex(token, strlen(token), hash) != 0)
        return CP_EIO;
    struct register_job job = {&m, hash, out};
    memset(out, 0, sizeof(*out));
    err = db_store_write(s, register_run, &job, e);
    if (err != CP_OK)
        db_agent_clear(out); /* the job may have filled it before the commit failed */
    return err;
}

/* ---- revoke ---- */

struct revoke_job {
    const char *id;          /* by id, or */
    const struct machine *m; /* by machine */
    struct db_agent *out;    /* may be NULL */
    int was_revoked;
};

static enum cp_err revoke_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct revoke_job *job = arg;
    struct db_agent a;
    enum cp_err err = job->id
                          ? db_agent_get(c, job->id, &a)
                          : db_agent_get_active(c, job->m->resource_key, job->m->instance_key, &a);
    if (err == CP_ENOTFOUND && job->id)
        return agent_not_found(e, job->id);
    if (err == CP_ENOTFOUND)
        return cp_fail(e, CP_ENOTFOUND, "NotFound", "resourceId",
                       "No active agent is registered for %.300s%s%s.", job->m->resource_id,
                       job->m->instance_id[0] ? " instance " : "", job->m->instance_id);
    if (err != CP_OK)
        return err;
    job->was_revoked = a.revoked;
    if (!a.revoked) {
        int64_t now = timefmt_now_ms();
        err = db_agent_revoke(c, a.id, now);
        a.revoked = 1;
        a.revoked_ms = now;
        a.connected = 0;
    }
    if (err == CP_OK && job->out)
        *job->out = a; /* handed over */
    else
        db_agent_clear(&a);
    return err;
}

enum cp_err core_agent_revoke(struct db_store *s, const char *id, struct db_agent *out,
                              int *was_revoked, struct cp_error *e)
{
    char key[DB_AGENT_ID_LEN];
    if (!id || id_key(id, key) != 0)
        return agent_not_found(e, id);
    struct revoke_job job = {key, NULL, out, 0};
    if (out)
        memset(out, 0, sizeof(*out));
    enum cp_err err = db_store_write(s, revoke_run, &job, e);
    if (err != CP_OK)
        db_agent_clear(out);
    else if (was_revoked)
        *was_revoked = job.was_revoked;
    return err;
}

enum cp_err core_agent_revoke_resource(struct db_store *s, const char *resource_id,
                                       const char *instance_id, struct db_agent *out,
                                       struct cp_error *e)
{
    struct machine m;
    enum cp_err err = machine_of(resource_id, instance_id, &m, e);
    if (err != CP_OK)
        return err;
    struct revoke_job job = {NULL, &m, out, 0};
    if (out)
        memset(out, 0, sizeof(*out));
    err = db_store_write(s, revoke_run, &job, e);
    if (err != CP_OK)
        db_agent_clear(out);
    return err;
}

/* ---- authenticate ---- */

struct auth_job {
    const char *hash;
    struct db_agent *out;
};

static enum cp_err auth_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct auth_job *job = arg;
    enum cp_err err = db_agent_get_by_token_hash(c, job->hash, job->out);
    if (err == CP_ENOTFOUND)
        return cp_fail(e, CP_EAUTH, "AgentUnknown", "", "No agent has this token.");
    if (err != CP_OK)
        return err;
    if (job->out->revoked) {
        err = cp_fail(e, CP_EAUTH, "AgentRevoked", "", "Agent %s has been revoked.", job->out->id);
        db_agent_clear(job->out);
    }
    return err;
}

enum cp_err core_agent_authenticate(struct db_store *s, const char *token, struct db_agent *out,
                                    struct cp_error *e)
{
    /* Any token up to the bound is hashed and looked up (the API token format may change);
     * only what cannot be a token is refused without a lookup. */
    size_t len = token ? strnlen(token, CORE_AGENT_TOKEN_MAX + 1) : 0;
    if (len == 0 || len > CORE_AGENT_TOKEN_MAX)
        return cp_fail(e, CP_EAUTH, "AgentUnknown", "", "No agent token was presented.");
    char hash[CORE_TOKEN_HEX_LEN];
    if (core_token_hash_hex(token, len, hash) != 0)
        return CP_EIO;
    struct auth_job job = {hash, out};
    memset(out, 0, sizeof(*out));
    enum cp_err err = db_store_read(s, auth_run, &job, e);
    if (err != CP_OK)
        db_agent_clear(out);
    return err;
}

/* ---- channel state ---- */

struct state_job {
    const char *id;
    const struct core_agent_hello *hello; /* hello, or */
    int seen;                             /* seen, or else disconnected */
};

/* After an UPDATE that matched no active row: revoked (CP_EAUTH) or unknown (CP_ENOTFOUND). */
static enum cp_err why_not_active(struct db_conn *c, const char *id, struct cp_error *e)
{
    struct db_agent a;
    enum cp_err err = db_agent_get(c, id, &a);
    if (err == CP_OK && a.revoked)
        err = cp_fail(e, CP_EAUTH, "AgentRevoked", "", "Agent %s has been revoked.", id);
    else if (err == CP_OK || err == CP_ENOTFOUND)
        err = agent_not_found(e, id);
    db_agent_clear(&a);
    return err;
}

static enum cp_err state_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct state_job *job = arg;
    int64_t now = timefmt_now_ms();
    enum cp_err err;
    if (job->hello)
        err = db_agent_set_hello(c, job->id, job->hello->agent_version, job->hello->os,
                                 job->hello->hostname, job->hello->addresses_json, now);
    else if (job->seen)
        err = db_agent_set_seen(c, job->id, now);
    else
        err = db_agent_set_disconnected(c, job->id);
    return err == CP_ENOTFOUND ? why_not_active(c, job->id, e) : err;
}

static enum cp_err record_state(struct db_store *s, const char *id,
                                const struct core_agent_hello *h, int seen, struct cp_error *e)
{
    char key[DB_AGENT_ID_LEN];
    if (!id || id_key(id, key) != 0)
        return agent_not_found(e, id);
    struct state_job job = {key, h, seen};
    return db_store_write(s, state_run, &job, e);
}

enum cp_err core_agent_hello(struct db_store *s, const char *id, const struct core_agent_hello *h,
                             struct cp_error *e)
{
    if (!text_ok(h->agent_version, DB_AGENT_VERSION_MAX))
        return cp_fail(e, CP_EINVAL, "InvalidHello", "agentVersion",
                       "agentVersion must be UTF-8 without control characters, at most %d bytes.",
                       DB_AGENT_VERSION_MAX - 1);
    if (!text_ok(h->os, DB_AGENT_OS_MAX))
        return cp_fail(e, CP_EINVAL, "InvalidHello", "os",
                       "os must be UTF-8 without control characters, at most %d bytes.",
                       DB_AGENT_OS_MAX - 1);
    if (!text_ok(h->hostname, DB_AGENT_HOSTNAME_MAX))
        return cp_fail(e, CP_EINVAL, "InvalidHello", "hostname",
                       "hostname must be UTF-8 without control characters, at most %d bytes.",
                       DB_AGENT_HOSTNAME_MAX - 1);
    if (h->addresses_json &&
        strnlen(h->addresses_json, DB_AGENT_ADDRESSES_MAX) >= DB_AGENT_ADDRESSES_MAX)
        return cp_fail(e, CP_EINVAL, "InvalidHello", "interfaces",
                       "interfaces take more than %d bytes.", DB_AGENT_ADDRESSES_MAX - 1);
    return record_state(s, id, h, 0, e);
}

enum cp_err core_agent_seen(struct db_store *s, const char *id, struct cp_error *e)
{
    return record_state(s, id, NULL, 1, e);
}

enum cp_err core_agent_disconnected(struct db_store *s, const char *id, struct cp_error *e)
{
    return record_state(s, id, NULL, 0, e);
}

static enum cp_err reset_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)arg;
    (void)e;
    return db_agent_set_all_disconnected(c);
}

enum cp_err core_agent_reset_connections(struct db_store *s, struct cp_error *e)
{
    return db_store_write(s, reset_run, NULL, e);
}

/* ---- reads ---- */

struct revoked_job {
    db_agent_each_fn each;
    void *arg;
};

static enum cp_err revoked_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct revoked_job *job = arg;
    return db_agent_list_revoked_connected(c, job->each, job->arg);
}

enum cp_err core_agent_revoked_connected(struct db_store *s, db_agent_each_fn each, void *arg,
                                         struct cp_error *e)
{
    struct revoked_job job = {each, arg};
    return db_store_read(s, revoked_run, &job, e);
}

/* 1 when the agent's resource is in subscription sub_key (lower case). */
static int in_subscription(const struct db_agent *a, const char *sub_key)
{
    struct armid id;
    return armid_parse(a->resource_id, &id, NULL, NULL) == CP_OK && str_ieq(id.sub, sub_key);
}

struct get_job {
    const char *id;
    const char *sub_key; /* NULL: any */
    struct db_agent *out;
};

static enum cp_err get_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct get_job *job = arg;
    enum cp_err err = db_agent_get(c, job->id, job->out);
    if (err == CP_OK && job->sub_key && !in_subscription(job->out, job->sub_key)) {
        db_agent_clear(job->out);
        err = CP_ENOTFOUND;
    }
    return err == CP_ENOTFOUND ? agent_not_found(e, job->id) : err;
}

enum cp_err core_agent_get(struct db_store *s, const char *sub, const char *id,
                           struct db_agent *out, struct cp_error *e)
{
    char key[DB_AGENT_ID_LEN], sub_key[ARMID_SUB_MAX];
    if (!id || id_key(id, key) != 0)
        return agent_not_found(e, id);
    if (sub && str_lower_copy(sub_key, sizeof(sub_key), sub) != 0)
        return agent_not_found(e, id);
    struct get_job job = {key, sub ? sub_key : NULL, out};
    memset(out, 0, sizeof(*out));
    enum cp_err err = db_store_read(s, get_run, &job, e);
    if (err != CP_OK)
        db_agent_clear(out);
    return err;
}

struct list_job {
    const char *sub_key;
    db_agent_each_fn each;
    void *arg;
};

static enum cp_err list_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct list_job *job = arg;
    return db_agent_list(c, job->sub_key, job->each, job->arg);
}

enum cp_err core_agent_list(struct db_store *s, const char *sub, db_agent_each_fn each, void *arg,
                            struct cp_error *e)
{
    char sub_key[ARMID_SUB_MAX];
    if (sub && str_lower_copy(sub_key, sizeof(sub_key), sub) != 0)
        return cp_fail(e, CP_EINVAL, "InvalidSubscriptionId", "", "The subscription is too long.");
    struct list_job job = {sub ? sub_key : NULL, each, arg};
    return db_store_read(s, list_run, &job, e);
}
