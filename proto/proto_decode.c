/*
 * The decoder: bytes -> JSON tree (jansson, duplicate keys refused) -> struct proto_msg, one
 * function per message type. Every bound of proto.h is enforced here; proto_encode runs the same
 * tree reader on what it built.
 */
#include "proto/proto_int.h"

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/armid.h"

_Static_assert(PROTO_NAME_MAX + 1 == ARMID_NAME_MAX, "a capture name is an ARM resource name");
_Static_assert(PROTO_INSTANCE_ID_MAX + 1 == ARMID_NAME_MAX, "an instance id is a resource name");
_Static_assert(PROTO_RESOURCE_ID_MAX == ARMID_MAX_LEN, "hello.identity takes what armid reads");

static enum cp_err no_memory(struct cp_error *e)
{
    return cp_fail(e, CP_ENOMEM, "OutOfMemory", "", "out of memory decoding a message");
}

/* seq: a report sequence number, >= 1. */
static enum cp_err rd_seq(const struct proto_rd *rd, const json_t *o, int64_t *out)
{
    return proto_rd_int(rd, o, "", "seq", 1, 1, INT64_MAX, out);
}

static enum cp_err rd_count(const struct proto_rd *rd, const json_t *o, const char *prefix,
                            const char *key, int64_t *out)
{
    return proto_rd_int(rd, o, prefix, key, 1, 0, INT64_MAX, out);
}

static enum cp_err rd_stop_reason(const struct proto_rd *rd, const json_t *o, const char *key,
                                  enum proto_stop_reason *out)
{
    char s[PROTO_CODE_MAX + 1];
    enum cp_err err = proto_rd_str(rd, o, "", key, PROTO_F_REQUIRED | PROTO_F_NAME, s, sizeof(s));
    if (err)
        return err;
    if (proto_stop_reason_parse(s, out) != 0)
        return proto_rd_fail(rd, key,
                             "must be Manual, TimeExceeded, SessionBytesExceeded, "
                             "SessionDeleted or AgentStopped");
    return CP_OK;
}

static enum cp_err rd_pc_error(const struct proto_rd *rd, const json_t *o, enum proto_pc_error *out)
{
    char s[PROTO_CODE_MAX + 1];
    enum cp_err err =
        proto_rd_str(rd, o, "", "code", PROTO_F_REQUIRED | PROTO_F_NAME, s, sizeof(s));
    if (err)
        return err;
    if (proto_pc_error_parse(s, out) != 0)
        return proto_rd_fail(rd, "code",
                             "must be InternalError, AgentStopped, CaptureFailed, "
                             "LocalFileFailed or StorageFailed");
    return CP_OK;
}

/* With ok true, code and message must be absent; with ok false, code is required. */
static enum cp_err rd_no_failure_detail(const struct proto_rd *rd, const json_t *o)
{
    if (json_object_get(o, "code"))
        return proto_rd_fail(rd, "code", "is only allowed when ok is false");
    if (json_object_get(o, "message"))
        return proto_rd_fail(rd, "message", "is only allowed when ok is false");
    return CP_OK;
}

/* ---- hello ---- */

static enum cp_err rd_protocols(const struct proto_rd *rd, const json_t *o, struct proto_hello *h)
{
    const json_t *a;
    enum cp_err err = proto_rd_array(rd, o, "", "protocols", 1, PROTO_MAX_PROTOCOLS, &a);
    if (err)
        return err;
    if (json_array_size(a) == 0)
        return proto_rd_fail(rd, "protocols", "must offer at least one version");
    for (size_t i = 0; i < json_array_size(a); i++) {
        const json_t *v = json_array_get(a, i);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT_MAX) {
            char t[PROTO_TARGET_MAX];
            snprintf(t, sizeof(t), "protocols[%zu]", i);
            return proto_rd_fail(rd, t, "must be an integer version, 1..%d", INT_MAX);
        }
        h->protocols[i] = (int)json_integer_value(v);
    }
    h->n_protocols = json_array_size(a);
    return CP_OK;
}

static enum cp_err rd_iface(const struct proto_rd *rd, const json_t *v, const char *prefix,
                            struct proto_iface *f)
{
    if (!json_is_object(v))
        return proto_rd_fail(rd, prefix, "must be an object");
    const json_t *a;
    enum cp_err err = proto_rd_str(rd, v, prefix, "name", PROTO_F_REQUIRED | PROTO_F_NAME, f->name,
                                   sizeof(f->name));
    if (!err)
        err = proto_rd_array(rd, v, prefix, "addresses", 0, PROTO_MAX_ADDRESSES, &a);
    if (err)
        return err;
    for (size_t i = 0; a && i < json_array_size(a); i++) {
        /* Room for the prefix (itself at most PROTO_TARGET_MAX) and the suffix. */
        char t[PROTO_TARGET_MAX + 32];
        snprintf(t, sizeof(t), "%s.addresses[%zu]", prefix, i);
        char *dst = f->addresses[i];
        unsigned char bin[16];
        err = proto_rd_str_value(rd, json_array_get(a, i), t, PROTO_F_REQUIRED | PROTO_F_NAME, dst,
                                 sizeof(f->addresses[i]));
        if (err)
            return err;
        if (inet_pton(AF_INET, dst, bin) != 1 && inet_pton(AF_INET6, dst, bin) != 1)
            return proto_rd_fail(rd, t, "must be an IPv4 or IPv6 address");
    }
    f->n_addresses = a ? json_array_size(a) : 0;
    return CP_OK;
}

/* sessions: {"running":[uuid],"finished":[uuid]}, both optional, PROTO_MAX_SESSIONS in all.
 * Decoded running first, then finished, each in wire order. */
static enum cp_err rd_sessions(const struct proto_rd *rd, const json_t *o, struct proto_hello *h)
{
    static const enum proto_session_state states[] = {PROTO_SESSION_RUNNING,
                                                      PROTO_SESSION_FINISHED};
    const json_t *lists[2];
    const json_t *obj = json_object_get(o, "sessions");
    enum cp_err err;
    if (!obj)
        return CP_OK;
    if (!json_is_object(obj))
        return proto_rd_fail(rd, "sessions", "must be an object");
    size_t total = 0;
    for (size_t k = 0; k < 2; k++) {
        const char *key = proto_session_state_name(states[k]);
        if ((err = proto_rd_array(rd, obj, "sessions", key, 0, PROTO_MAX_SESSIONS, &lists[k])))
            return err;
        total += lists[k] ? json_array_size(lists[k]) : 0;
    }
    if (total > PROTO_MAX_SESSIONS)
        return proto_rd_fail(rd, "sessions", "has %zu captures, more than %d", total,
                             PROTO_MAX_SESSIONS);
    if (total && !(h->sessions = calloc(total, sizeof(*h->sessions))))
        return no_memory(rd->e);
    h->n_sessions = total; /* set as soon as allocated, so proto_msg_clear frees it */
    size_t n = 0;
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; lists[k] && i < json_array_size(lists[k]); i++, n++) {
            char t[PROTO_TARGET_MAX];
            snprintf(t, sizeof(t), "sessions.%s[%zu]", proto_session_state_name(states[k]), i);
            if ((err = proto_rd_id_value(rd, json_array_get(lists[k], i), t,
                                         h->sessions[n].capture_id)))
                return err;
            h->sessions[n].state = states[k];
        }
    }
    return CP_OK;
}

/* identity: {"resourceId": VM or scale-set id, "instanceId": instance (scale sets only)}.
 * Absent leaves h->identity empty (not stated). */
static enum cp_err rd_identity(const struct proto_rd *rd, const json_t *o, struct proto_hello *h)
{
    const json_t *obj = json_object_get(o, "identity");
    struct proto_identity *id = &h->identity;
    struct armid parsed;
    struct cp_error ae = {{0}, {0}, {0}};
    enum cp_err err;
    if (!obj)
        return CP_OK;
    if (!json_is_object(obj))
        return proto_rd_fail(rd, "identity", "must be an object");
    if ((err = proto_rd_str(rd, obj, "identity", "resourceId", PROTO_F_REQUIRED | PROTO_F_NAME,
                            id->resource_id, sizeof(id->resource_id))) ||
        (err = proto_rd_str(rd, obj, "identity", "instanceId", PROTO_F_NAME, id->instance_id,
                            sizeof(id->instance_id))))
        return err;
    if (armid_parse(id->resource_id, &parsed, &ae, "identity.resourceId") != CP_OK)
        return proto_rd_fail(rd, "identity.resourceId",
                             "must be a virtual machine or scale set resource id (%s)", ae.message);
    if (parsed.kind != ARMID_VM && parsed.kind != ARMID_VMSS)
        return proto_rd_fail(rd, "identity.resourceId",
                             "must be a virtual machine or a scale set id");
    if (parsed.kind == ARMID_VM && id->instance_id[0])
        return proto_rd_fail(rd, "identity.instanceId", "is only for a scale set id");
    if (parsed.kind == ARMID_VMSS && !id->instance_id[0])
        return proto_rd_fail(rd, "identity.instanceId", "is required with a scale set id");
    if (id->instance_id[0] && !armid_valid_resource_name(id->instance_id))
        return proto_rd_fail(rd, "identity.instanceId",
                             "must be 1-80 letters, digits, '_', '-' or '.' (a resource name)");
    return CP_OK;
}

static enum cp_err rd_hello(const struct proto_rd *rd, const json_t *o, struct proto_hello *h)
{
    const json_t *ifs;
    enum cp_err err;
    if ((err = rd_protocols(rd, o, h)) ||
        (err = proto_rd_str(rd, o, "", "agentVersion", PROTO_F_REQUIRED | PROTO_F_NAME,
                            h->agent_version, sizeof(h->agent_version))) ||
        (err = proto_rd_str(rd, o, "", "hostname", PROTO_F_REQUIRED | PROTO_F_NAME, h->hostname,
                            sizeof(h->hostname))) ||
        (err = proto_rd_str(rd, o, "", "os", PROTO_F_REQUIRED | PROTO_F_NAME, h->os,
                            sizeof(h->os))) ||
        (err = proto_rd_int(rd, o, "", "unackedFrom", 1, 1, INT64_MAX, &h->unacked_from)) ||
        (err = proto_rd_array(rd, o, "", "interfaces", 0, PROTO_MAX_INTERFACES, &ifs)))
        return err;

    size_t nif = ifs ? json_array_size(ifs) : 0;
    if (nif && !(h->interfaces = calloc(nif, sizeof(*h->interfaces))))
        return no_memory(rd->e);
    h->n_interfaces = nif; /* set as soon as allocated, so proto_msg_clear frees it */
    for (size_t i = 0; i < nif; i++) {
        char p[PROTO_TARGET_MAX];
        snprintf(p, sizeof(p), "interfaces[%zu]", i);
        if ((err = rd_iface(rd, json_array_get(ifs, i), p, &h->interfaces[i])))
            return err;
    }
    if ((err = rd_sessions(rd, o, h)))
        return err;
    return rd_identity(rd, o, h);
}

/* ---- server -> agent ---- */

static enum cp_err rd_welcome(const struct proto_rd *rd, const json_t *o, struct proto_welcome *w)
{
    int64_t protocol, heartbeat;
    const json_t *a;
    enum cp_err err;
    if ((err = proto_rd_int(rd, o, "", "protocol", 1, 1, INT_MAX, &protocol)) ||
        (err =
             proto_rd_int(rd, o, "", "heartbeatSeconds", 1, 1, PROTO_HEARTBEAT_MAX, &heartbeat)) ||
        (err = proto_rd_int(rd, o, "", "lastAppliedSeq", 1, 0, INT64_MAX, &w->last_applied_seq)) ||
        (err = proto_rd_array(rd, o, "", "stop", 0, PROTO_MAX_SESSIONS, &a)))
        return err;
    w->protocol = (int)protocol;
    w->heartbeat_seconds = (int)heartbeat;
    size_t n = a ? json_array_size(a) : 0;
    if (n && !(w->stop = calloc(n, sizeof(*w->stop))))
        return no_memory(rd->e);
    w->n_stop = n;
    for (size_t i = 0; i < n; i++) {
        char t[PROTO_TARGET_MAX];
        snprintf(t, sizeof(t), "stop[%zu]", i);
        if ((err = proto_rd_id_value(rd, json_array_get(a, i), t, w->stop[i])))
            return err;
    }
    return CP_OK;
}

static enum cp_err rd_start(const struct proto_rd *rd, const json_t *o, struct proto_start *s)
{
    const json_t *spec;
    enum cp_err err;
    if ((err = proto_rd_id(rd, o, "", "commandId", s->command_id)) ||
        (err = proto_rd_id(rd, o, "", "captureId", s->capture_id)) ||
        (err = proto_rd_str(rd, o, "", "name", PROTO_F_REQUIRED | PROTO_F_NAME, s->name,
                            sizeof(s->name))) ||
        (err = proto_rd_object(rd, o, "", "spec", &spec)))
        return err;
    if (!armid_valid_resource_name(s->name))
        return proto_rd_fail(rd, "name",
                             "must be an ARM resource name (1-80 letters, digits, '_', '-', '.')");
    /* The spec is api/'s business: kept as text, bounded by the message size. */
    if (!(s->spec = json_dumps(spec, JSON_COMPACT)))
        return no_memory(rd->e);
    return CP_OK;
}

static enum cp_err rd_stop(const struct proto_rd *rd, const json_t *o, struct proto_stop *s)
{
    enum cp_err err;
    if ((err = proto_rd_id(rd, o, "", "commandId", s->command_id)) ||
        (err = proto_rd_id(rd, o, "", "captureId", s->capture_id)))
        return err;
    return rd_stop_reason(rd, o, "reason", &s->reason);
}

static enum cp_err rd_reply(const struct proto_rd *rd, const json_t *o, struct proto_reply *r)
{
    enum cp_err err;
    if ((err = rd_seq(rd, o, &r->seq)) || (err = proto_rd_bool(rd, o, "", "ok", &r->ok)))
        return err;
    if (r->ok)
        return rd_no_failure_detail(rd, o);
    if ((err = proto_rd_str(rd, o, "", "code", PROTO_F_REQUIRED | PROTO_F_NAME, r->code,
                            sizeof(r->code))) ||
        (err = proto_rd_str(rd, o, "", "message", 0, r->message, sizeof(r->message))))
        return err;
    for (const char *c = r->code; *c; c++) {
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')))
            return proto_rd_fail(rd, "code", "must be ASCII letters and digits only");
    }
    return CP_OK;
}

/* A blob URL: an http(s) URL of 1..PROTO_URL_MAX printable ASCII bytes, copied. */
static enum cp_err rd_url(const struct proto_rd *rd, const json_t *o, char **out)
{
    const json_t *v = json_object_get(o, "url");
    if (!json_is_string(v))
        return proto_rd_fail(rd, "url", v ? "must be a string" : "is required");
    const char *u = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > PROTO_URL_MAX || strlen(u) != n)
        return proto_rd_fail(rd, "url", "must be 1-%d bytes", PROTO_URL_MAX);
    if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)
        return proto_rd_fail(rd, "url", "must be an http(s) URL");
    for (size_t i = 0; i < n; i++)
        if (u[i] <= ' ' || u[i] >= 0x7f)
            return proto_rd_fail(rd, "url", "must be printable ASCII without spaces");
    if (!(*out = strdup(u)))
        return no_memory(rd->e);
    return CP_OK;
}

static enum cp_err rd_blob_grant(const struct proto_rd *rd, const json_t *o,
                                 struct proto_blob_grant *g)
{
    enum cp_err err;
    if ((err = proto_rd_int(rd, o, "", "id", 1, 1, INT64_MAX, &g->id)) ||
        (err = proto_rd_bool(rd, o, "", "ok", &g->ok)))
        return err;
    if (g->ok) {
        if ((err = rd_no_failure_detail(rd, o)) ||
            (err = proto_rd_int(rd, o, "", "expiresAt", 1, 0, INT64_MAX, &g->expires_at)))
            return err;
        return rd_url(rd, o, &g->url);
    }
    if (json_object_get(o, "url") || json_object_get(o, "expiresAt"))
        return proto_rd_fail(rd, "url", "and expiresAt are only allowed when ok is true");
    if ((err = proto_rd_str(rd, o, "", "code", PROTO_F_REQUIRED | PROTO_F_NAME, g->code,
                            sizeof(g->code))))
        return err;
    return proto_rd_str(rd, o, "", "message", 0, g->message, sizeof(g->message));
}

/* ---- agent -> server reports ---- */

static enum cp_err rd_blob_request(const struct proto_rd *rd, const json_t *o,
                                   struct proto_blob_request *r)
{
    enum cp_err err;
    if ((err = proto_rd_int(rd, o, "", "id", 1, 1, INT64_MAX, &r->id)) ||
        (err = proto_rd_id(rd, o, "", "captureId", r->capture_id)))
        return err;
    return proto_rd_int(rd, o, "", "file", 1, 0, PROTO_FILE_INDEX_MAX, &r->file);
}

static enum cp_err rd_ack(const struct proto_rd *rd, const json_t *o, struct proto_ack *a)
{
    enum cp_err err;
    if ((err = rd_seq(rd, o, &a->seq)) ||
        (err = proto_rd_id(rd, o, "", "commandId", a->command_id)) ||
        (err = proto_rd_bool(rd, o, "", "ok", &a->ok)) ||
        (err = proto_rd_int(rd, o, "", "at", 0, 0, INT64_MAX, &a->at)))
        return err;
    const json_t *filter = json_object_get(o, "filter");
    if (a->ok) {
        if ((err = rd_no_failure_detail(rd, o)))
            return err;
        if (!filter)
            return CP_OK;
        /* Text: any UTF-8 (jansson checked it), bounded; kept whole, never trimmed. */
        if (!json_is_string(filter))
            return proto_rd_fail(rd, "filter", "must be a string");
        if (json_string_length(filter) > PROTO_FILTER_MAX)
            return proto_rd_fail(rd, "filter", "must be at most %d bytes", PROTO_FILTER_MAX);
        if (!(a->filter = strdup(json_string_value(filter))))
            return no_memory(rd->e);
        return CP_OK;
    }
    if (filter)
        return proto_rd_fail(rd, "filter", "is only allowed when ok is true");
    if ((err = rd_pc_error(rd, o, &a->code)))
        return err;
    return proto_rd_str(rd, o, "", "message", 0, a->message, sizeof(a->message));
}

static enum cp_err rd_progress(const struct proto_rd *rd, const json_t *o, struct proto_progress *p)
{
    enum cp_err err;
    if ((err = rd_seq(rd, o, &p->seq)) ||
        (err = proto_rd_id(rd, o, "", "captureId", p->capture_id)) ||
        (err = rd_count(rd, o, "", "packets", &p->packets)) ||
        (err = rd_count(rd, o, "", "bytes", &p->bytes)) ||
        (err = rd_count(rd, o, "", "drops", &p->drops)) ||
        (err = rd_count(rd, o, "", "files", &p->files)) ||
        (err = proto_rd_int(rd, o, "", "firstPacketAt", 0, 0, INT64_MAX, &p->first_packet_at)) ||
        (err = proto_rd_int(rd, o, "", "uploadedBytes", 0, 0, INT64_MAX, &p->uploaded_bytes)))
        return err;
    return CP_OK;
}

static enum cp_err rd_file(const struct proto_rd *rd, const json_t *v, const char *prefix,
                           struct proto_file *f)
{
    char path[PROTO_PATH_MAX + 1], t[PROTO_TARGET_MAX];
    enum cp_err err;
    if (!json_is_object(v))
        return proto_rd_fail(rd, prefix, "must be an object");
    if ((err = proto_rd_str(rd, v, prefix, "path", PROTO_F_REQUIRED | PROTO_F_NAME, path,
                            sizeof(path))) ||
        (err = rd_count(rd, v, prefix, "bytes", &f->bytes)) ||
        (err = proto_rd_str(rd, v, prefix, "sha256", 0, f->sha256, sizeof(f->sha256))))
        return err;
    size_t n = strlen(f->sha256);
    if (json_object_get(v, "sha256") && n != PROTO_SHA256_HEX)
        return proto_rd_fail(rd, proto_rd_path(t, sizeof(t), prefix, "sha256"),
                             "must be %d lower-case hex digits", PROTO_SHA256_HEX);
    for (size_t i = 0; i < n; i++) {
        char c = f->sha256[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return proto_rd_fail(rd, proto_rd_path(t, sizeof(t), prefix, "sha256"),
                                 "must be %d lower-case hex digits", PROTO_SHA256_HEX);
    }
    if (!(f->path = strdup(path)))
        return no_memory(rd->e);
    return CP_OK;
}

static enum cp_err rd_completed(const struct proto_rd *rd, const json_t *o,
                                struct proto_completed *c)
{
    const json_t *a;
    enum cp_err err;
    if ((err = rd_seq(rd, o, &c->seq)) ||
        (err = proto_rd_id(rd, o, "", "captureId", c->capture_id)) ||
        (err = rd_stop_reason(rd, o, "stopReason", &c->stop_reason)) ||
        (err = proto_rd_array(rd, o, "", "files", 0, PROTO_MAX_FILES, &a)))
        return err;
    size_t n = a ? json_array_size(a) : 0;
    if (n && !(c->files = calloc(n, sizeof(*c->files))))
        return no_memory(rd->e);
    c->n_files = n;
    for (size_t i = 0; i < n; i++) {
        char p[PROTO_TARGET_MAX];
        snprintf(p, sizeof(p), "files[%zu]", i);
        if ((err = rd_file(rd, json_array_get(a, i), p, &c->files[i])))
            return err;
    }
    return CP_OK;
}

static enum cp_err rd_error(const struct proto_rd *rd, const json_t *o, struct proto_error *x)
{
    enum cp_err err;
    if ((err = rd_seq(rd, o, &x->seq)) ||
        (err = proto_rd_id(rd, o, "", "captureId", x->capture_id)) ||
        (err = rd_pc_error(rd, o, &x->code)))
        return err;
    return proto_rd_str(rd, o, "", "message", 0, x->message, sizeof(x->message));
}

/* ---- entry points ---- */

enum cp_err proto_from_json(const json_t *root, struct proto_msg *out, struct cp_error *e)
{
    struct proto_rd rd = {.type = "message", .e = e};
    if (!json_is_object(root))
        return cp_fail(e, CP_EINVAL, "InvalidMessage", "", "a message must be a JSON object");

    char type[PROTO_CODE_MAX + 1];
    enum cp_err err =
        proto_rd_str(&rd, root, "", "type", PROTO_F_REQUIRED | PROTO_F_NAME, type, sizeof(type));
    if (err)
        return err;
    struct proto_msg m;
    memset(&m, 0, sizeof(m));
    if (proto_type_parse(type, &m.type) != 0)
        return cp_fail(e, CP_EINVAL, "InvalidMessage", "type", "unknown message type \"%s\"", type);
    rd.type = proto_type_name(m.type);

    switch (m.type) {
    case PROTO_HELLO:
        err = rd_hello(&rd, root, &m.hello);
        break;
    case PROTO_WELCOME:
        err = rd_welcome(&rd, root, &m.welcome);
        break;
    case PROTO_START:
        err = rd_start(&rd, root, &m.start);
        break;
    case PROTO_STOP:
        err = rd_stop(&rd, root, &m.stop);
        break;
    case PROTO_ACK:
        err = rd_ack(&rd, root, &m.ack);
        break;
    case PROTO_PROGRESS:
        err = rd_progress(&rd, root, &m.progress);
        break;
    case PROTO_COMPLETED:
        err = rd_completed(&rd, root, &m.completed);
        break;
    case PROTO_ERROR:
        err = rd_error(&rd, root, &m.error);
        break;
    case PROTO_REPLY:
        err = rd_reply(&rd, root, &m.reply);
        break;
    case PROTO_BLOB_REQUEST:
        err = rd_blob_request(&rd, root, &m.blob_request);
        break;
    case PROTO_BLOB_GRANT:
        err = rd_blob_grant(&rd, root, &m.blob_grant);
        break;
    case PROTO_NONE:
    default:
        err = cp_fail(e, CP_EINVAL, "InvalidMessage", "type", "unknown message type");
        break;
    }
    if (err) {
        proto_msg_clear(&m);
        return err;
    }
    *out = m;
    return CP_OK;
}

enum cp_err proto_decode(const char *buf, size_t len, struct proto_msg *out, struct cp_error *e)
{
    if (len > PROTO_MAX_MESSAGE)
        return cp_fail(e, CP_ETOOBIG, "MessageTooLarge", "",
                       "a message is at most %d bytes; this one has %zu", PROTO_MAX_MESSAGE, len);
    if (!buf || len == 0)
        return cp_fail(e, CP_EINVAL, "InvalidMessage", "", "the message is empty");

    json_error_t je;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (json_error_code(&je) == json_error_out_of_memory)
            return no_memory(e);
        return cp_fail(e, CP_EINVAL, "InvalidMessage", "", "not valid JSON at byte %d: %s",
                       je.position, je.text);
    }
    enum cp_err err = proto_from_json(root, out, e);
    json_decref(root);
    return err;
}
