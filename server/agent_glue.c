/* hub_ops on top of core/agents (see agent_glue.h). */
#include "server/agent_glue.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/armid.h"
#include "common/log.h"
#include "core/agents.h"
#include "proto/proto.h"
#include "server/blob_grant.h"
#include "server/workers.h"

/* How often the server looks for agents revoked (by `netwatchd agent revoke`, another
 * process) whose channel is still up. */
#define REVOKE_SWEEP_MS 2000
#define GLUE_SHARDS     8
/* Messages queued to one shard at most; past it an agent's message is refused and its channel
 * closed ("server busy"). */
#define GLUE_QUEUE_MAX 4096
/* Reports applied in one store write job at most. */
#define GLUE_BATCH_MAX 128

struct item;

/*
 * One glue thread and what it has queued. The thread takes everything queued at once and
 * applies the reports among it in one store write job (core_reports_apply), so that acks share
 * group commits the way creates do; each report is still answered only after its commit.
 */
struct shard {
    struct agent_glue *g;
    struct workers *w; /* one thread */
    pthread_mutex_t mu;
    struct item *head, *tail; /* queued, oldest first; guarded by mu */
    size_t n_queued;          /* messages queued; guarded by mu */
    int scheduled;            /* a run is queued to w and has not taken the list yet; mu */
    /*
     * Agents a report of which was not applied (the store failed, or it was refused for lack
     * of room): nothing more of theirs is applied until their next hello, and their channel is
     * closed. The agent sends such a report again after the welcome; were a later one applied
     * first, the seq high-water mark would make the server take the earlier one as applied.
     * Only the shard's thread touches it.
     */
    char (*held)[HUB_AGENT_ID_MAX];
    size_t n_held, cap_held;
    /* The batch being built: reports, their decoded messages and items (owned). */
    struct core_report *reps;
    struct proto_msg *msgs;
    struct item **its;
    size_t n;
};

struct agent_glue {
    struct core *core;
    struct hub *hub;
    struct hub_ops ops;
    struct core_agent_port port;
    /* GLUE_SHARDS threads; an agent always goes to the same one, so its messages stay in
     * order, while different agents' durable writes share group commits. */
    struct shard shards[GLUE_SHARDS];
    /* Disconnects that could not be queued (out of memory), recorded by the sweeper instead: a
     * disconnect is never dropped (it is what clears `connected`). Guarded by mu. */
    char (*late_closes)[HUB_AGENT_ID_MAX];
    size_t n_late, cap_late;
    pthread_t sweeper; /* closes the channels of revoked agents */
    int sweeper_running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    int heartbeat_seconds; /* told to agents in welcome */
    int64_t deadline_ms;   /* dispatch deadline */
    int64_t grace_ms;      /* backstop grace */
    int64_t grant_ms;      /* blob grant lifetime */
};

/* ITEM_REFUSED: in place of a message refused for lack of room, so that the agent is held
 * (struct shard) in order, after what came before it. */
enum item_kind { ITEM_MESSAGE, ITEM_CLOSE, ITEM_REFUSED };

static void shard_run(void *arg);

/* One unit of work for the glue thread; owns its copy of the message. */
struct item {
    struct item *next;
    enum item_kind kind;
    char agent_id[HUB_AGENT_ID_MAX];
    size_t len;
    char json[]; /* len bytes (not NUL-terminated) */
};

static enum cp_err glue_authenticate(void *ctx, const char *token, char agent_id[40],
                                     struct cp_error *e)
{
    struct agent_glue *g = ctx;
    struct db_agent a;
    enum cp_err err = core_agent_authenticate(core_store(g->core), token, &a, e);
    if (err == CP_OK) {
        memcpy(agent_id, a.id, sizeof(a.id) < 40 ? sizeof(a.id) : 40);
        agent_id[39] = '\0';
        db_agent_clear(&a);
    }
    return err;
}

/* Closes an agent's channel; one that is already gone needs nothing more. */
static void close_channel(struct agent_glue *g, const char *agent_id, uint16_t code,
                          const char *reason)
{
    log_info("component=agents event=close agent=%s code=%u reason=\"%s\"", agent_id, code, reason);
    if (hub_close(g->hub, agent_id, code, reason) != CP_OK)
        log_debug("component=agents event=close_noop agent=%s", agent_id);
}

static size_t shard_of(const char *agent_id)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)agent_id; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % GLUE_SHARDS;
}

/* A disconnect that could not be queued (out of memory): recorded by the sweeper instead, as a
 * disconnect is never dropped (it is what clears `connected`). */
static void close_later(struct agent_glue *g, const char *agent_id)
{
    pthread_mutex_lock(&g->mu);
    if (g->n_late == g->cap_late) {
        size_t cap = g->cap_late ? g->cap_late * 2 : 256;
        void *more = realloc(g->late_closes, cap * sizeof(*g->late_closes));
        if (more) {
            g->late_closes = more;
            g->cap_late = cap;
        }
    }
    if (g->n_late < g->cap_late)
        snprintf(g->late_closes[g->n_late++], HUB_AGENT_ID_MAX, "%s", agent_id);
    else
        log_warnx("component=agents event=disconnect_lost agent=%s", agent_id);
    pthread_mutex_unlock(&g->mu);
}

/* Queues a message or a disconnect to the agent's shard. A disconnect is always queued; a
 * message past GLUE_QUEUE_MAX is refused: its channel is closed and an ITEM_REFUSED takes its
 * place in the queue. */
static void submit(struct agent_glue *g, enum item_kind kind, const char *agent_id,
                   const char *json, size_t len)
{
    struct shard *sh = &g->shards[shard_of(agent_id)];
    pthread_mutex_lock(&sh->mu);
    int full = kind == ITEM_MESSAGE && sh->n_queued >= GLUE_QUEUE_MAX;
    pthread_mutex_unlock(&sh->mu);
    if (full) {
        kind = ITEM_REFUSED;
        len = 0;
    }
    struct item *it = malloc(sizeof(*it) + len);
    if (!it) {
        if (kind == ITEM_CLOSE)
            close_later(g, agent_id);
        else
            close_channel(g, agent_id, HUB_CLOSE_POLICY, "server out of memory");
        return;
    }
    it->next = NULL;
    it->kind = kind;
    snprintf(it->agent_id, sizeof(it->agent_id), "%s", agent_id);
    it->len = len;
    if (len)
        memcpy(it->json, json, len);
    pthread_mutex_lock(&sh->mu);
    if (sh->tail)
        sh->tail->next = it;
    else
        sh->head = it;
    sh->tail = it;
    if (kind == ITEM_MESSAGE)
        sh->n_queued++;
    int schedule = !sh->scheduled;
    sh->scheduled = 1;
    pthread_mutex_unlock(&sh->mu);
    /* At most one run per shard waits in its pool's queue, which therefore never fills. */
    if (schedule && workers_submit(sh->w, shard_run, sh) != CP_OK)
        log_warnx("component=agents event=shard_not_scheduled agent=%s", agent_id);
    if (full)
        close_channel(g, agent_id, HUB_CLOSE_POLICY, "server busy");
}

static void glue_on_open(void *ctx, const char *agent_id)
{
    (void)ctx;
    log_info("component=agents event=channel_open agent=%s", agent_id);
}

static void glue_on_message(void *ctx, const char *agent_id, const char *json, size_t len)
{
    submit(ctx, ITEM_MESSAGE, agent_id, json, len);
}

static void glue_on_close(void *ctx, const char *agent_id)
{
    submit(ctx, ITEM_CLOSE, agent_id, NULL, 0);
}

static void send_msg(struct agent_glue *g, const char *agent_id, const struct proto_msg *m)
{
    char *text = proto_encode(m);
    if (!text) {
        log_warnx("component=agents event=encode_failed agent=%s type=%s", agent_id,
                  proto_type_name(m->type));
        return;
    }
    if (hub_send(g->hub, agent_id, text, strlen(text)) != CP_OK)
        log_debug("component=agents event=send_dropped agent=%s", agent_id);
    free(text);
}

/* --- commands to agents --- */

/* core_agent_port.send (dispatcher and glue threads): one command of the outbox, on the
 * agent's live channel; CP_ENOAGENT (or CP_EBUSY) when it is not there: it goes out again after
 * the agent's next hello. */
static enum cp_err port_send(void *ctx, const struct db_command *cmd)
{
    struct agent_glue *g = ctx;
    struct proto_msg m;
    memset(&m, 0, sizeof(m));
    if (strcmp(cmd->kind, "start") == 0) {
        if (!cmd->spec_json)
            return CP_ENOTFOUND; /* its capture is gone; the start is settled by then */
        m.type = PROTO_START;
        snprintf(m.start.command_id, sizeof(m.start.command_id), "%.36s", cmd->id);
        snprintf(m.start.capture_id, sizeof(m.start.capture_id), "%.36s", cmd->session_id);
        snprintf(m.start.name, sizeof(m.start.name), "%s", cmd->name);
        m.start.spec = cmd->spec_json;
    } else {
        m.type = PROTO_STOP;
        snprintf(m.stop.command_id, sizeof(m.stop.command_id), "%.36s", cmd->id);
        snprintf(m.stop.capture_id, sizeof(m.stop.capture_id), "%.36s", cmd->session_id);
        if (proto_stop_reason_parse(cmd->stop_reason, &m.stop.reason) != 0)
            m.stop.reason = PROTO_STOP_MANUAL;
    }
    char *text = proto_encode(&m);
    if (!text) {
        log_warnx("component=agents event=encode_failed agent=%s type=%s", cmd->agent_id,
                  proto_type_name(m.type));
        return CP_EINVAL;
    }
    enum cp_err err = hub_send(g->hub, cmd->agent_id, text, strlen(text));
    free(text);
    if (err != CP_OK)
        log_debug("component=agents event=send_deferred agent=%s command=%s", cmd->agent_id,
                  cmd->id);
    return err;
}

/* After a hello: everything still owed to this agent goes out again. */
struct resend {
    struct agent_glue *g;
    char (*sent)[DB_COMMAND_ID_MAX];
    size_t n, cap;
};

static enum cp_err resend_one(const struct db_command *cmd, void *arg)
{
    struct resend *r = arg;
    if (port_send(r->g, cmd) != CP_OK)
        return CP_OK;
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        void *more = realloc(r->sent, cap * sizeof(*r->sent));
        if (!more)
            return CP_OK; /* only the bookkeeping of "sent" is lost */
        r->sent = more;
        r->cap = cap;
    }
    snprintf(r->sent[r->n++], DB_COMMAND_ID_MAX, "%s", cmd->id);
    return CP_OK;
}

/* The hello's interfaces as the JSON array the registry keeps. Caller frees. */
static char *interfaces_json(const struct proto_hello *h)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < h->n_interfaces; i++) {
        json_t *addrs = json_array();
        for (size_t k = 0; addrs && k < h->interfaces[i].n_addresses; k++)
            json_array_append_new(addrs, json_string(h->interfaces[i].addresses[k]));
        json_array_append_new(arr, json_pack("{s:s, s:o}", "name", h->interfaces[i].name,
                                             "addresses", addrs ? addrs : json_array()));
    }
    char *text = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    return text;
}

/* The sessions the hello lists against the store (core_agent_reconcile); *stop (caller frees)
 * gets the ids for welcome.stop. */
static enum cp_err reconcile(struct agent_glue *g, const char *agent_id,
                             const struct proto_hello *h, char (**stop)[DB_SESSION_ID_MAX],
                             size_t *n_stop)
{
    *n_stop = 0;
    const char **ids = malloc((h->n_sessions + 1) * sizeof(*ids));
    *stop = malloc((h->n_sessions + 1) * sizeof(**stop));
    if (!ids || !*stop) {
        free(ids);
        free(*stop);
        *stop = NULL;
        return CP_ENOMEM;
    }
    size_t n_running = 0, n_finished = 0;
    for (size_t i = 0; i < h->n_sessions; i++) /* decoded running first */
        if (h->sessions[i].state == PROTO_SESSION_RUNNING)
            ids[n_running++] = h->sessions[i].capture_id;
    for (size_t i = 0; i < h->n_sessions; i++)
        if (h->sessions[i].state == PROTO_SESSION_FINISHED)
            ids[n_running + n_finished++] = h->sessions[i].capture_id;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_agent_reconcile(g->core, agent_id, ids, n_running, ids + n_running,
                                           n_finished, *stop, h->n_sessions, n_stop, &e);
    free(ids);
    if (err != CP_OK) {
        log_warnx("component=agents event=reconcile_failed agent=%s detail=\"%s\"", agent_id,
                  e.message);
        free(*stop);
        *stop = NULL;
        *n_stop = 0;
    } else if (*n_stop) {
        log_info("component=agents event=reconcile_stop agent=%s count=%zu", agent_id, *n_stop);
    }
    return err;
}

/* 1 when resource ids a and b name the same machine. ARM compares ids case-insensitively, and
 * armid_parse tolerates a trailing '/', so parsed parts are compared; an id that does not parse
 * (the registry only holds parsed ones) is compared as text. */
static int same_resource(const char *a, const char *b)
{
    struct armid pa, pb;
    if (armid_parse(a, &pa, NULL, NULL) != CP_OK || armid_parse(b, &pb, NULL, NULL) != CP_OK)
        return strcasecmp(a, b) == 0;
    return pa.kind == pb.kind && strcasecmp(pa.sub, pb.sub) == 0 && strcasecmp(pa.rg, pb.rg) == 0 &&
           strcasecmp(pa.name, pb.name) == 0;
}

/*
 * A hello that states an identity must name the machine the agent's token was registered for:
 * a token copied to another machine (or a wrong --resource-id) would otherwise capture there
 * under this agent's name. Returns 1 to go on (matching, or nothing stated), 0 when the channel
 * is being closed (4004, or 1008 when the registration could not be read).
 */
static int check_identity(struct agent_glue *g, const char *agent_id, const struct proto_hello *h)
{
    const struct proto_identity *id = &h->identity;
    if (!id->resource_id[0])
        return 1;
    struct db_agent a;
    struct cp_error e = {{0}, {0}, {0}};
    if (core_agent_get(core_store(g->core), NULL, agent_id, &a, &e) != CP_OK) {
        log_warnx("component=agents event=hello_refused agent=%s detail=\"%s\"", agent_id,
                  e.message);
        close_channel(g, agent_id, HUB_CLOSE_POLICY, "hello refused");
        return 0;
    }
    int same = same_resource(id->resource_id, a.resource_id) &&
               strcasecmp(id->instance_id, a.instance_id) == 0;
    if (!same) {
        log_warnx("component=agents event=wrong_identity agent=%s registered=\"%s\" "
                  "registered_instance=\"%s\" stated=\"%s\" stated_instance=\"%s\" "
                  "detail=\"the agent's token was registered for another machine\"",
                  agent_id, a.resource_id, a.instance_id, id->resource_id, id->instance_id);
        close_channel(g, agent_id, PROTO_CLOSE_WRONG_IDENTITY,
                      "hello.identity is not the machine this token was registered for");
    }
    db_agent_clear(&a);
    return same;
}

/* Returns 1 when the agent was welcomed, 0 when its channel is being closed. */
static int handle_hello(struct agent_glue *g, const char *agent_id, const struct proto_hello *h)
{
    int version = proto_negotiate(h->protocols, h->n_protocols);
    if (version < 0) {
        close_channel(g, agent_id, PROTO_CLOSE_NO_PROTOCOL, "no common protocol version");
        return 0;
    }
    /* Before core_agent_hello: a machine that is not the token's never shows connected. */
    if (!check_identity(g, agent_id, h))
        return 0;
    char *ifaces = interfaces_json(h);
    struct core_agent_hello rec = {h->agent_version, h->os, h->hostname, ifaces};
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_agent_hello(core_store(g->core), agent_id, &rec, &e);
    free(ifaces);
    if (err == CP_EAUTH) {
        close_channel(g, agent_id, PROTO_CLOSE_REVOKED, "agent revoked");
        return 0;
    }
    if (err != CP_OK) {
        log_warnx("component=agents event=hello_refused agent=%s detail=\"%s\"", agent_id,
                  e.message);
        close_channel(g, agent_id, HUB_CLOSE_POLICY, "hello refused");
        return 0;
    }
    struct db_agent a;
    int64_t last = 0;
    if (core_agent_get(core_store(g->core), NULL, agent_id, &a, NULL) == CP_OK) {
        last = a.last_applied_seq;
        db_agent_clear(&a);
    }
    struct proto_msg w;
    memset(&w, 0, sizeof(w));
    w.type = PROTO_WELCOME;
    w.welcome.protocol = version;
    w.welcome.heartbeat_seconds = g->heartbeat_seconds;
    w.welcome.last_applied_seq = last;
    char(*stop)[DB_SESSION_ID_MAX] = NULL;
    char(*wire)[PROTO_ID_SIZE] = NULL;
    size_t n_stop = 0;
    if (reconcile(g, agent_id, h, &stop, &n_stop) == CP_OK && n_stop &&
        (wire = malloc(n_stop * sizeof(*wire)))) {
        for (size_t i = 0; i < n_stop; i++)
            snprintf(wire[i], sizeof(wire[i]), "%.36s", stop[i]);
        w.welcome.stop = wire;
        w.welcome.n_stop = n_stop;
    }
    send_msg(g, agent_id, &w);
    free(stop);
    free(wire);
    core_agent_presence_changed(g->core, agent_id);
    struct resend r = {g, NULL, 0, 0};
    if (core_agent_owed(g->core, agent_id, resend_one, &r, NULL) != CP_OK)
        log_warnx("component=agents event=resend_failed agent=%s", agent_id);
    if (core_commands_sent(g->core, (const char(*)[DB_COMMAND_ID_MAX])r.sent, r.n, NULL) != CP_OK)
        log_warnx("component=agents event=sent_not_recorded agent=%s count=%zu", agent_id, r.n);
    free(r.sent);
    log_info("component=agents event=hello agent=%s version=\"%s\" host=\"%s\"", agent_id,
             h->agent_version, h->hostname);
    return 1;
}

static void reply(struct agent_glue *g, const char *agent_id, int64_t seq, enum cp_err err,
                  const struct cp_error *e)
{
    struct proto_msg r;
    memset(&r, 0, sizeof(r));
    r.type = PROTO_REPLY;
    r.reply.seq = seq;
    r.reply.ok = err == CP_OK;
    if (err != CP_OK) {
        snprintf(r.reply.code, sizeof(r.reply.code), "%s",
                 err == CP_EFORBIDDEN ? PROTO_REPLY_NOT_YOUR_SESSION : "InternalError");
        snprintf(r.reply.message, sizeof(r.reply.message), "%s",
                 e && e->message[0] ? e->message : "the report was not applied");
    }
    send_msg(g, agent_id, &r);
}

/* --- the shard's thread --- */

static int is_held(const struct shard *sh, const char *agent_id)
{
    for (size_t i = 0; i < sh->n_held; i++)
        if (strcmp(sh->held[i], agent_id) == 0)
            return 1;
    return 0;
}

static void hold(struct shard *sh, const char *agent_id)
{
    if (is_held(sh, agent_id))
        return;
    if (sh->n_held == sh->cap_held) {
        size_t cap = sh->cap_held ? sh->cap_held * 2 : 16;
        void *more = realloc(sh->held, cap * sizeof(*sh->held));
        if (!more) {
            log_warnx("component=agents event=hold_lost agent=%s", agent_id);
            return;
        }
        sh->held = more;
        sh->cap_held = cap;
    }
    snprintf(sh->held[sh->n_held++], HUB_AGENT_ID_MAX, "%s", agent_id);
}

static void release(struct shard *sh, const char *agent_id)
{
    for (size_t i = 0; i < sh->n_held; i++)
        if (strcmp(sh->held[i], agent_id) == 0) {
            memmove(sh->held[i], sh->held[--sh->n_held], HUB_AGENT_ID_MAX);
            log_info("component=agents event=hold_released agent=%s", agent_id);
            return;
        }
}

/* The report m as core takes it; 0 when m is not a report. */
static int to_report(const char *agent_id, const struct proto_msg *m, struct core_report *r)
{
    memset(r, 0, sizeof(*r));
    r->agent_id = agent_id;
    r->seq = proto_msg_seq(m);
    switch (m->type) {
    case PROTO_ACK:
        r->kind = CORE_REPORT_ACK;
        r->id = m->ack.command_id;
        r->ok = m->ack.ok;
        r->code = m->ack.ok ? NULL : proto_pc_error_name(m->ack.code);
        r->message = m->ack.message;
        r->at_ms = m->ack.at;
        r->filter = m->ack.filter;
        break;
    case PROTO_COMPLETED:
        r->kind = CORE_REPORT_END;
        r->id = m->completed.capture_id;
        r->stop_reason = proto_stop_reason_name(m->completed.stop_reason);
        break;
    case PROTO_ERROR:
        r->kind = CORE_REPORT_END;
        r->id = m->error.capture_id;
        r->code = proto_pc_error_name(m->error.code);
        r->message = m->error.message;
        break;
    case PROTO_PROGRESS:
        r->kind = CORE_REPORT_PROGRESS;
        r->id = m->progress.capture_id;
        r->packets = m->progress.packets;
        r->bytes = m->progress.bytes;
        r->drops = m->progress.drops;
        r->files = m->progress.files;
        r->first_packet_ms = m->progress.first_packet_at;
        r->uploaded_bytes = m->progress.uploaded_bytes;
        break;
    default:
        return 0;
    }
    return r->seq > 0;
}

/* Applies the batch in one write job and answers each report once it is durable. A report
 * refused (not the agent's session) gets ok:false NotYourSession, as before. One the store
 * failed to apply is not answered: the agent is held and its channel closed
 * (PROTO_CLOSE_NOT_APPLIED); it sends the report again after its next welcome. */
static void flush(struct shard *sh)
{
    struct agent_glue *g = sh->g;
    if (!sh->n)
        return;
    if (core_reports_apply(g->core, sh->reps, sh->n) != CP_OK)
        log_warnx("component=agents event=reports_failed count=%zu detail=\"%s\"", sh->n,
                  sh->reps[0].e.message);
    for (size_t i = 0; i < sh->n; i++) {
        const struct core_report *r = &sh->reps[i];
        const char *agent_id = sh->its[i]->agent_id;
        if (r->err == CP_OK || r->err == CP_EFORBIDDEN) {
            if (r->err == CP_EFORBIDDEN)
                log_warnx("component=agents event=report_refused agent=%s type=%s seq=%lld"
                          " detail=\"%s\"",
                          agent_id, proto_type_name(sh->msgs[i].type), (long long)r->seq,
                          r->e.message);
            reply(g, agent_id, r->seq, r->err, &r->e);
        } else if (!is_held(sh, agent_id)) {
            log_warnx("component=agents event=report_failed agent=%s type=%s seq=%lld", agent_id,
                      proto_type_name(sh->msgs[i].type), (long long)r->seq);
            hold(sh, agent_id);
            close_channel(g, agent_id, PROTO_CLOSE_NOT_APPLIED, "report not applied");
        }
        proto_msg_clear(&sh->msgs[i]);
        free(sh->its[i]);
    }
    sh->n = 0;
}

static void handle_close(struct agent_glue *g, const char *agent_id)
{
    struct cp_error e = {{0}, {0}, {0}};
    if (core_agent_disconnected(core_store(g->core), agent_id, &e) != CP_OK)
        log_warnx("component=agents event=disconnect_not_recorded agent=%s detail=\"%s\"", agent_id,
                  e.message);
    core_agent_presence_changed(g->core, agent_id);
    log_info("component=agents event=channel_closed agent=%s", agent_id);
}

/* One queued item, in order. Reports join the batch; anything else first flushes it, so an
 * agent's messages take effect in the order they came. Returns 1 when it kept the item. */
static int handle_item(struct shard *sh, struct item *it)
{
    struct agent_glue *g = sh->g;
    if (it->kind != ITEM_MESSAGE) {
        flush(sh);
        if (it->kind == ITEM_CLOSE)
            handle_close(g, it->agent_id);
        else
            hold(sh, it->agent_id); /* its channel was closed when the message was refused */
        return 0;
    }
    struct proto_msg *m = &sh->msgs[sh->n]; /* n < GLUE_BATCH_MAX: flush keeps it so */
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = proto_decode(it->json, it->len, m, &e);
    if (err != CP_OK) {
        flush(sh);
        log_warnx("component=agents event=bad_message agent=%s detail=\"%s\"", it->agent_id,
                  e.message);
        close_channel(g, it->agent_id,
                      err == CP_ETOOBIG ? PROTO_CLOSE_TOO_BIG : PROTO_CLOSE_UNSUPPORTED,
                      "message refused");
        return 0;
    }
    if (to_report(it->agent_id, m, &sh->reps[sh->n])) {
        if (is_held(sh, it->agent_id)) {
            log_debug("component=agents event=report_held agent=%s seq=%lld", it->agent_id,
                      (long long)proto_msg_seq(m));
            proto_msg_clear(m);
            return 0;
        }
        sh->its[sh->n++] = it;
        if (sh->n == GLUE_BATCH_MAX)
            flush(sh);
        return 1;
    }
    /* Not a report: m is the slot past the batch, which flush leaves alone. */
    flush(sh);
    if (m->type == PROTO_HELLO) {
        if (handle_hello(g, it->agent_id, &m->hello))
            release(sh, it->agent_id);
    } else if (m->type == PROTO_BLOB_REQUEST && g->core) {
        struct proto_msg grant;
        blob_grant_answer(g->core, it->agent_id, &m->blob_request, g->grant_ms, &grant);
        send_msg(g, it->agent_id, &grant);
        free(grant.blob_grant.url);
    } else {
        log_warnx("component=agents event=unexpected_message agent=%s type=%s", it->agent_id,
                  proto_type_name(m->type));
    }
    proto_msg_clear(m);
    return 0;
}

static void shard_run(void *arg)
{
    struct shard *sh = arg;
    pthread_mutex_lock(&sh->mu);
    struct item *it = sh->head;
    sh->head = sh->tail = NULL;
    sh->scheduled = 0;
    pthread_mutex_unlock(&sh->mu);
    size_t messages = 0;
    while (it) {
        struct item *next = it->next;
        messages += it->kind == ITEM_MESSAGE;
        if (!handle_item(sh, it))
            free(it);
        it = next;
    }
    flush(sh);
    pthread_mutex_lock(&sh->mu);
    sh->n_queued -= messages;
    pthread_mutex_unlock(&sh->mu);
}

static enum cp_err close_revoked(const struct db_agent *a, void *arg)
{
    close_channel(arg, a->id, PROTO_CLOSE_REVOKED, "agent revoked");
    return CP_OK;
}

static void *sweeper_main(void *arg)
{
    struct agent_glue *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(REVOKE_SWEEP_MS % 1000) * 1000000L;
        until.tv_sec += REVOKE_SWEEP_MS / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &until);
        if (g->stopping || !g->hub || !g->core)
            continue;
        char(*late)[HUB_AGENT_ID_MAX] = g->late_closes;
        size_t n_late = g->n_late;
        g->late_closes = NULL;
        g->n_late = g->cap_late = 0;
        pthread_mutex_unlock(&g->mu);
        for (size_t i = 0; i < n_late; i++) {
            if (core_agent_disconnected(core_store(g->core), late[i], NULL) != CP_OK)
                log_warnx("component=agents event=disconnect_not_recorded agent=%s", late[i]);
            core_agent_presence_changed(g->core, late[i]);
        }
        free(late);
        if (core_agent_revoked_connected(core_store(g->core), close_revoked, g, NULL) != CP_OK)
            log_warnx("component=agents event=revoke_sweep_failed");
        if (core_sessions_sweep(g->core, g->deadline_ms, g->grace_ms, NULL) != CP_OK)
            log_warnx("component=agents event=session_sweep_failed");
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

enum cp_err agent_glue_new(struct agent_glue **out)
{
    struct agent_glue *g = calloc(1, sizeof(*g));
    if (!g)
        return CP_ENOMEM;
    g->port = (struct core_agent_port){.ctx = g, .send = port_send};
    g->heartbeat_seconds = PROTO_HEARTBEAT_SECONDS;
    g->deadline_ms = AGENT_DISPATCH_DEADLINE_MS;
    g->grace_ms = AGENT_BACKSTOP_GRACE_MS;
    g->grant_ms = BLOB_GRANT_LIFETIME_MS;
    g->ops = (struct hub_ops){.ctx = g,
                              .authenticate = glue_authenticate,
                              .on_open = glue_on_open,
                              .on_message = glue_on_message,
                              .on_close = glue_on_close};
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    for (int i = 0; i < GLUE_SHARDS; i++) {
        struct shard *sh = &g->shards[i];
        sh->g = g;
        pthread_mutex_init(&sh->mu, NULL);
        /* malloc, not calloc: an idle server keeps these pages untouched (not resident);
         * every slot is written before it is read. */
        sh->reps = malloc(GLUE_BATCH_MAX * sizeof(*sh->reps));
        sh->msgs = malloc((GLUE_BATCH_MAX + 1) * sizeof(*sh->msgs)); /* + the one past a batch */
        sh->its = malloc(GLUE_BATCH_MAX * sizeof(*sh->its));
        if (!sh->reps || !sh->msgs || !sh->its || workers_start(1, &sh->w) != CP_OK) {
            agent_glue_free(g);
            return CP_ENOMEM;
        }
    }
    /* Signals are for the main thread's sigwait(): the sweeper blocks them all whatever the
     * caller's mask (it is created before netwatchd blocks SIGTERM; an unblocked thread would
     * let SIGTERM kill the process instead of stopping it cleanly). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    g->sweeper_running = pthread_create(&g->sweeper, NULL, sweeper_main, g) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!g->sweeper_running) {
        agent_glue_free(g);
        return CP_ENOMEM;
    }
    *out = g;
    return CP_OK;
}

void agent_glue_set_grant_lifetime(struct agent_glue *g, int64_t lifetime_ms)
{
    pthread_mutex_lock(&g->mu);
    if (lifetime_ms > 0)
        g->grant_ms = lifetime_ms;
    pthread_mutex_unlock(&g->mu);
}

void agent_glue_set_timers(struct agent_glue *g, int heartbeat_seconds, int64_t deadline_ms,
                           int64_t grace_ms)
{
    pthread_mutex_lock(&g->mu);
    if (heartbeat_seconds > 0)
        g->heartbeat_seconds = heartbeat_seconds;
    if (deadline_ms > 0)
        g->deadline_ms = deadline_ms;
    if (grace_ms > 0)
        g->grace_ms = grace_ms;
    pthread_mutex_unlock(&g->mu);
}

const struct core_agent_port *agent_glue_port(struct agent_glue *g)
{
    return &g->port;
}

void agent_glue_set_core(struct agent_glue *g, struct core *core)
{
    g->core = core;
}

const struct hub_ops *agent_glue_ops(struct agent_glue *g)
{
    return &g->ops;
}

void agent_glue_set_hub(struct agent_glue *g, struct hub *hub)
{
    pthread_mutex_lock(&g->mu);
    g->hub = hub;
    pthread_mutex_unlock(&g->mu);
}

void agent_glue_stop(struct agent_glue *g)
{
    if (!g)
        return;
    if (g->sweeper_running) {
        pthread_mutex_lock(&g->mu);
        g->stopping = 1;
        pthread_cond_signal(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->sweeper, NULL);
        g->sweeper_running = 0;
    }
    for (int i = 0; i < GLUE_SHARDS; i++) {
        struct shard *sh = &g->shards[i];
        workers_stop(sh->w);
        sh->w = NULL;
        /* Anything queued that no run took (its pool was stopping): done here, core lives. */
        if (sh->head && g->core)
            shard_run(sh);
        for (struct item *it = sh->head, *next; it; it = next) {
            next = it->next;
            free(it);
        }
        sh->head = sh->tail = NULL;
    }
    /* Disconnects still waiting: recorded now, before core goes. */
    for (size_t i = 0; g->core && i < g->n_late; i++)
        if (core_agent_disconnected(core_store(g->core), g->late_closes[i], NULL) != CP_OK)
            log_warnx("component=agents event=disconnect_not_recorded agent=%s", g->late_closes[i]);
    free(g->late_closes);
    g->late_closes = NULL;
    g->n_late = g->cap_late = 0;
}

void agent_glue_free(struct agent_glue *g)
{
    if (!g)
        return;
    agent_glue_stop(g);
    for (int i = 0; i < GLUE_SHARDS; i++) {
        struct shard *sh = &g->shards[i];
        if (sh->g)
            pthread_mutex_destroy(&sh->mu);
        free(sh->held);
        free(sh->reps);
        free(sh->msgs);
        free(sh->its);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}
