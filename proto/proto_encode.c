/*
 * The encoder: struct proto_msg -> JSON tree -> compact text. Before handing the text out it
 * runs the decoder's tree reader on the tree, so it never emits what proto_decode refuses.
 */
#include "proto/proto_int.h"

#include <stdlib.h>
#include <string.h>

#include "common/bpf_expr.h"

/* The agent reports the whole expression it installed in one ack (proto.h, ack.filter). */
_Static_assert(BPF_EXPR_MAX <= PROTO_FILTER_MAX, "an expression must fit ack.filter");

/* A tree being built; any failed step marks it failed and the encode returns NULL. */
struct bld {
    int failed;
};

/* Adds k:v to o (v is taken; NULL marks the build failed). */
static void put(struct bld *b, json_t *o, const char *k, json_t *v)
{
    if (!v || json_object_set_new(o, k, v) != 0)
        b->failed = 1;
}

/* Appends v (taken) to array a. */
static void push(struct bld *b, json_t *a, json_t *v)
{
    if (!v || json_array_append_new(a, v) != 0)
        b->failed = 1;
}

/* A string held in a fixed field of size n: NULL when it has no NUL within the field. */
static json_t *fixed_str(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    return len < n ? json_stringn(s, len) : NULL;
}

#define FSTR(field) fixed_str((field), sizeof(field))

/* A name from a *_name() table; NULL (build fails) for an unset or unknown enum. */
static json_t *name_str(const char *name)
{
    return name ? json_string(name) : NULL;
}

/* Adds an optional fixed-field message: omitted when "". */
static void put_message(struct bld *b, json_t *o, const char *msg, size_t n)
{
    if (msg[0])
        put(b, o, "message", fixed_str(msg, n));
}

static void enc_hello(struct bld *b, json_t *o, const struct proto_hello *h)
{
    if (h->n_protocols > PROTO_MAX_PROTOCOLS || h->n_interfaces > PROTO_MAX_INTERFACES ||
        h->n_sessions > PROTO_MAX_SESSIONS || (h->n_interfaces && !h->interfaces) ||
        (h->n_sessions && !h->sessions)) {
        b->failed = 1;
        return;
    }
    json_t *protocols = json_array();
    for (size_t i = 0; protocols && i < h->n_protocols; i++)
        push(b, protocols, json_integer(h->protocols[i]));
    put(b, o, "protocols", protocols);
    put(b, o, "agentVersion", FSTR(h->agent_version));
    put(b, o, "hostname", FSTR(h->hostname));
    put(b, o, "os", FSTR(h->os));

    json_t *ifs = json_array();
    for (size_t i = 0; ifs && !b->failed && i < h->n_interfaces; i++) {
        const struct proto_iface *f = &h->interfaces[i];
        json_t *fo = json_object(), *addrs = json_array();
        if (f->n_addresses > PROTO_MAX_ADDRESSES)
            b->failed = 1;
        for (size_t j = 0; addrs && !b->failed && j < f->n_addresses; j++)
            push(b, addrs, FSTR(f->addresses[j]));
        if (fo) {
            put(b, fo, "name", FSTR(f->name));
            put(b, fo, "addresses", addrs);
        } else {
            json_decref(addrs);
        }
        push(b, ifs, fo);
    }
    put(b, o, "interfaces", ifs);

    /* sessions: {"running":[...],"finished":[...]}; both keys always present */
    json_t *ses = json_object();
    static const enum proto_session_state states[] = {PROTO_SESSION_RUNNING,
                                                      PROTO_SESSION_FINISHED};
    for (size_t k = 0; ses && k < 2; k++) {
        json_t *ids = json_array();
        for (size_t i = 0; ids && !b->failed && i < h->n_sessions; i++) {
            const struct proto_session *s = &h->sessions[i];
            if (!proto_session_state_name(s->state))
                b->failed = 1; /* an unset or unknown state */
            else if (s->state == states[k])
                push(b, ids, FSTR(s->capture_id));
        }
        put(b, ses, proto_session_state_name(states[k]), ids);
    }
    put(b, o, "sessions", ses);
    put(b, o, "unackedFrom", json_integer(h->unacked_from));

    /* identity only when stated; an instance without a resource id is not a message. */
    const struct proto_identity *id = &h->identity;
    if (!id->resource_id[0] && id->instance_id[0]) {
        b->failed = 1;
    } else if (id->resource_id[0]) {
        json_t *io = json_object();
        if (io) {
            put(b, io, "resourceId", FSTR(id->resource_id));
            if (id->instance_id[0])
                put(b, io, "instanceId", FSTR(id->instance_id));
        }
        put(b, o, "identity", io);
    }
}

static void enc_welcome(struct bld *b, json_t *o, const struct proto_welcome *w)
{
    if (w->n_stop > PROTO_MAX_SESSIONS || (w->n_stop && !w->stop)) {
        b->failed = 1;
        return;
    }
    put(b, o, "protocol", json_integer(w->protocol));
    put(b, o, "heartbeatSeconds", json_integer(w->heartbeat_seconds));
    put(b, o, "lastAppliedSeq", json_integer(w->last_applied_seq));
    json_t *stop = json_array();
    for (size_t i = 0; stop && !b->failed && i < w->n_stop; i++)
        push(b, stop, FSTR(w->stop[i]));
    put(b, o, "stop", stop);
}

static void enc_start(struct bld *b, json_t *o, const struct proto_start *s)
{
    put(b, o, "commandId", FSTR(s->command_id));
    put(b, o, "captureId", FSTR(s->capture_id));
    put(b, o, "name", FSTR(s->name));
    /* Text that is not a JSON object or array fails here; an array fails the reader below. */
    json_t *spec = s->spec ? json_loads(s->spec, JSON_REJECT_DUPLICATES, NULL) : NULL;
    put(b, o, "spec", spec);
}

static void enc_stop(struct bld *b, json_t *o, const struct proto_stop *s)
{
    put(b, o, "commandId", FSTR(s->command_id));
    put(b, o, "captureId", FSTR(s->capture_id));
    put(b, o, "reason", name_str(proto_stop_reason_name(s->reason)));
}

static void enc_ack(struct bld *b, json_t *o, const struct proto_ack *a)
{
    put(b, o, "seq", json_integer(a->seq));
    put(b, o, "commandId", FSTR(a->command_id));
    put(b, o, "ok", json_boolean(a->ok));
    if (a->at != 0)
        put(b, o, "at", json_integer(a->at));
    if (a->ok && a->filter)
        put(b, o, "filter", strlen(a->filter) <= PROTO_FILTER_MAX ? json_string(a->filter) : NULL);
    if (!a->ok) {
        put(b, o, "code", name_str(proto_pc_error_name(a->code)));
        put_message(b, o, a->message, sizeof(a->message));
    }
}

static void enc_progress(struct bld *b, json_t *o, const struct proto_progress *p)
{
    put(b, o, "seq", json_integer(p->seq));
    put(b, o, "captureId", FSTR(p->capture_id));
    put(b, o, "packets", json_integer(p->packets));
    put(b, o, "bytes", json_integer(p->bytes));
    put(b, o, "drops", json_integer(p->drops));
    put(b, o, "files", json_integer(p->files));
    if (p->first_packet_at != 0)
        put(b, o, "firstPacketAt", json_integer(p->first_packet_at));
    if (p->uploaded_bytes != 0)
        put(b, o, "uploadedBytes", json_integer(p->uploaded_bytes));
}

static void enc_completed(struct bld *b, json_t *o, const struct proto_completed *c)
{
    if (c->n_files > PROTO_MAX_FILES || (c->n_files && !c->files)) {
        b->failed = 1;
        return;
    }
    put(b, o, "seq", json_integer(c->seq));
    put(b, o, "captureId", FSTR(c->capture_id));
    put(b, o, "stopReason", name_str(proto_stop_reason_name(c->stop_reason)));
    json_t *files = json_array();
    for (size_t i = 0; files && !b->failed && i < c->n_files; i++) {
        const struct proto_file *f = &c->files[i];
        json_t *fo = json_object();
        if (fo) {
            put(b, fo, "path", f->path ? json_string(f->path) : NULL);
            put(b, fo, "bytes", json_integer(f->bytes));
            if (f->sha256[0])
                put(b, fo, "sha256", FSTR(f->sha256));
        }
        push(b, files, fo);
    }
    put(b, o, "files", files);
}

static void enc_error(struct bld *b, json_t *o, const struct proto_error *x)
{
    put(b, o, "seq", json_integer(x->seq));
    put(b, o, "captureId", FSTR(x->capture_id));
    put(b, o, "code", name_str(proto_pc_error_name(x->code)));
    put_message(b, o, x->message, sizeof(x->message));
}

static void enc_reply(struct bld *b, json_t *o, const struct proto_reply *r)
{
    put(b, o, "seq", json_integer(r->seq));
    put(b, o, "ok", json_boolean(r->ok));
    if (!r->ok) {
        put(b, o, "code", FSTR(r->code));
        put_message(b, o, r->message, sizeof(r->message));
    }
}

static void enc_blob_request(struct bld *b, json_t *o, const struct proto_blob_request *r)
{
    put(b, o, "id", json_integer(r->id));
    put(b, o, "captureId", FSTR(r->capture_id));
    put(b, o, "file", json_integer(r->file));
}

static void enc_blob_grant(struct bld *b, json_t *o, const struct proto_blob_grant *g)
{
    put(b, o, "id", json_integer(g->id));
    put(b, o, "ok", json_boolean(g->ok));
    if (g->ok) {
        put(b, o, "url", g->url ? json_string(g->url) : NULL);
        put(b, o, "expiresAt", json_integer(g->expires_at));
    } else {
        put(b, o, "code", FSTR(g->code));
        put_message(b, o, g->message, sizeof(g->message));
    }
}

char *proto_encode(const struct proto_msg *m)
{
    struct bld b = {0};
    struct proto_msg check = {0};
    char *out = NULL;
    json_t *o = json_object();
    if (!m || !o)
        goto cleanup;
    put(&b, o, "type", name_str(proto_type_name(m->type)));
    if (b.failed)
        goto cleanup;
    switch (m->type) {
    case PROTO_HELLO:
        enc_hello(&b, o, &m->hello);
        break;
    case PROTO_WELCOME:
        enc_welcome(&b, o, &m->welcome);
        break;
    case PROTO_START:
        enc_start(&b, o, &m->start);
        break;
    case PROTO_STOP:
        enc_stop(&b, o, &m->stop);
        break;
    case PROTO_ACK:
        enc_ack(&b, o, &m->ack);
        break;
    case PROTO_PROGRESS:
        enc_progress(&b, o, &m->progress);
        break;
    case PROTO_COMPLETED:
        enc_completed(&b, o, &m->completed);
        break;
    case PROTO_ERROR:
        enc_error(&b, o, &m->error);
        break;
    case PROTO_REPLY:
        enc_reply(&b, o, &m->reply);
        break;
    case PROTO_BLOB_REQUEST:
        enc_blob_request(&b, o, &m->blob_request);
        break;
    case PROTO_BLOB_GRANT:
        enc_blob_grant(&b, o, &m->blob_grant);
        break;
    case PROTO_NONE:
    default:
        b.failed = 1;
        break;
    }
    if (b.failed)
        goto cleanup;

    /* The same reader proto_decode runs: what it refuses is never sent. */
    if (proto_from_json(o, &check, NULL) != CP_OK)
        goto cleanup;
    proto_msg_clear(&check);

    out = json_dumps(o, JSON_COMPACT);
    if (out && strlen(out) > PROTO_MAX_MESSAGE) {
        free(out);
        out = NULL;
    }
cleanup:
    json_decref(o);
    return out;
}
