/* The dispatcher thread behind dispatch.h. */
#include "core/dispatch.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/armid.h"
#include "common/log.h"
#include "common/strutil.h"
#include "common/timefmt.h"
#include "core/core_int.h"

struct item {
    char op_id[DB_OP_ID_MAX]; /* a create operation, or a command id */
    int is_command;
};

struct core_dispatch {
    struct core *core;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* thread: work queued, rescan wanted, or stopping */
    pthread_cond_t drain_cv; /* drainers: handled caught up with pushed */
    struct item *queue;      /* growable FIFO up to CORE_DISPATCH_QUEUE_MAX */
    size_t head, len, cap;
    unsigned long long pushed, handled;
    int rescan; /* the queue overflowed (or start-up): read running creates from the store */
    int stopping;
    /* The recorder thread writes "sent" (pending -> sent, a start's dispatched time) for the
     * commands a turn handed out, so that the dispatcher goes on to the next turn's starts
     * instead of waiting for that commit. Its FIFO (guarded by mu) also carries the turns'
     * counts: handled moves only once a turn's sends are recorded, in order. */
    pthread_t recorder;
    int recorder_running;
    pthread_cond_t rec_cv;
    struct rec *rec_head, *rec_tail;
    int rec_stopping;
};

/* One turn's sent commands (ids owned; n may be 0) and how many entries the turn had. */
struct rec {
    struct rec *next;
    char (*ids)[DB_COMMAND_ID_MAX];
    size_t n;
    int turn_n;
};

/* One create (or one command) being handled in a turn. */
struct turn_entry {
    char op_id[DB_OP_ID_MAX];
    int is_command;
    struct db_capture cap;   /* the capture it made (id 0 when gone); sessions attached */
    struct db_command *cmds; /* owned: what is owed for it, to send now */
    size_t n_cmds, cap_cmds;
    enum cp_err outcome; /* CP_OK: handed to its agents (or nothing to do) */
    struct cp_error why;
};

static void entry_clear(struct turn_entry *te)
{
    db_capture_clear(&te->cap);
    for (size_t i = 0; i < te->n_cmds; i++)
        db_command_clear(&te->cmds[i]);
    free(te->cmds);
    te->cmds = NULL;
    te->n_cmds = te->cap_cmds = 0;
}

static enum cp_err push_locked(struct core_dispatch *d, const char *op_id, int is_command)
{
    if (d->len == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        if (cap > CORE_DISPATCH_QUEUE_MAX)
            return CP_EBUSY;
        struct item *q = malloc(cap * sizeof(*q));
        if (!q)
            return CP_ENOMEM;
        for (size_t i = 0; i < d->len; i++)
            q[i] = d->queue[(d->head + i) % d->cap];
        free(d->queue);
        d->queue = q;
        d->cap = cap;
        d->head = 0;
    }
    struct item *it = &d->queue[(d->head + d->len) % d->cap];
    str_copy(it->op_id, DB_OP_ID_MAX, op_id);
    it->is_command = is_command;
    d->len++;
    return CP_OK;
}

static void push(struct core_dispatch *d, const char *id, int is_command)
{
    pthread_mutex_lock(&d->mu);
    d->pushed++;
    if (push_locked(d, id, is_command) != CP_OK) {
        /* Not lost: the operation is InProgress in the store; a rescan finds it. */
        d->rescan = 1;
        d->handled++;
    }
    pthread_cond_signal(&d->work_cv);
    pthread_mutex_unlock(&d->mu);
}

void core_dispatch_push(struct core_dispatch *d, const char *op_id)
{
    push(d, op_id, 0);
}

void core_dispatch_push_command(struct core_dispatch *d, const char *command_id)
{
    /* A command that does not fit is not lost either: it is owed in the store and goes out
     * after its agent's next hello (the rescan only looks for creates). */
    push(d, command_id, 1);
}

static enum cp_err rescan_one(const char *id, void *arg)
{
    struct core_dispatch *d = arg;
    pthread_mutex_lock(&d->mu);
    d->pushed++;
    enum cp_err err = push_locked(d, id, 0);
    if (err != CP_OK)
        d->handled++;
    pthread_mutex_unlock(&d->mu);
    return err == CP_EBUSY ? CP_OK : err; /* full: the rest wait for the next rescan */
}

static enum cp_err rescan_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    return db_operation_list_running(c, "capture.create", rescan_one, arg);
}

struct turn {
    struct turn_entry *entries;
    int n;
};

static enum cp_err add_cmd(const struct db_command *cmd, void *arg)
{
    struct turn_entry *te = arg;
    if (te->n_cmds == te->cap_cmds) {
        size_t cap = te->cap_cmds ? te->cap_cmds * 2 : 2;
        void *more = realloc(te->cmds, cap * sizeof(*te->cmds));
        if (!more)
            return CP_ENOMEM;
        te->cmds = more;
        te->cap_cmds = cap;
    }
    struct db_command *copy = &te->cmds[te->n_cmds];
    *copy = *cmd;
    copy->spec_json = NULL;
    if (cmd->spec_json && !(copy->spec_json = strdup(cmd->spec_json)))
        return CP_ENOMEM;
    te->n_cmds++;
    return CP_OK;
}

static enum cp_err load_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct turn *t = arg;
    for (int i = 0; i < t->n; i++) {
        struct turn_entry *te = &t->entries[i];
        enum cp_err err;
        if (te->is_command) {
            struct db_command cmd;
            err = db_outbox_get(c, te->op_id, &cmd);
            if (err == CP_OK && strcmp(cmd.state, "acked") != 0)
                err = add_cmd(&cmd, te);
            db_command_clear(&cmd);
        } else {
            err = db_capture_get_by_create_op(c, te->op_id, &te->cap);
            /* An Updating capture with sessions has a start owed (a session whose start is
             * settled has started or ended, which moves the capture on in the same
             * transaction): no owed command means no session. */
            if (err == CP_OK && strcmp(te->cap.provisioning_state, "Updating") == 0)
                err = db_outbox_list_owed_by_capture(c, te->cap.id, add_cmd, te);
        }
        if (err != CP_OK && err != CP_ENOTFOUND)
            return err;
    }
    return CP_OK;
}

/* Records every create of the turn that could not be handed to an agent. */
static enum cp_err fail_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct turn *t = arg;
    int64_t now = timefmt_now_ms();
    for (int i = 0; i < t->n; i++) {
        struct turn_entry *te = &t->entries[i];
        if (te->outcome == CP_OK)
            continue;
        struct db_operation op;
        memset(&op, 0, sizeof(op));
        str_copy(op.id, sizeof(op.id), te->op_id);
        str_copy(op.status, sizeof(op.status), "Failed");
        str_copy(op.error_code, sizeof(op.error_code), te->why.code);
        str_copy(op.error_message, sizeof(op.error_message), te->why.message);
        op.result_status = te->outcome == CP_ENOAGENT ? 409 : 500;
        op.end_ms = now;
        /* The capture may have changed since it was loaded; act on the row as it is now. */
        struct db_capture cap;
        enum cp_err err = db_capture_get_by_create_op(c, te->op_id, &cap);
        if (err == CP_OK && strcmp(cap.provisioning_state, "Updating") == 0) {
            str_copy(cap.provisioning_state, sizeof(cap.provisioning_state), "Failed");
            cap.unfinished = 0;
            cap.updated_ms = now;
            err = db_capture_update_state(c, &cap);
            if (err == CP_OK) {
                struct db_watcher w = {.id = cap.watcher_id};
                err = core_touch_watcher(c, &w, now);
            }
        } else if (err == CP_ENOTFOUND) {
            err = CP_OK;
        }
        db_capture_clear(&cap);
        if (err == CP_OK) {
            err = db_operation_finish(c, &op);
            if (err == CP_ENOTFOUND)
                err = CP_OK; /* already ended by someone else */
        }
        if (err != CP_OK)
            return err;
    }
    return CP_OK;
}

/* Hands every loaded command to its agent's channel; returns how many went out (their ids in
 * sent, at most max). */
static size_t send_all(struct core *core, struct turn *t, char (*sent)[DB_COMMAND_ID_MAX],
                       size_t max)
{
    size_t n = 0;
    for (int i = 0; i < t->n; i++) {
        struct turn_entry *te = &t->entries[i];
        for (size_t k = 0; k < te->n_cmds; k++) {
            if (!core->agents || !core->agents->send)
                continue;
            if (core->agents->send(core->agents->ctx, &te->cmds[k]) == CP_OK && n < max)
                str_copy(sent[n++], DB_COMMAND_ID_MAX, te->cmds[k].id);
        }
    }
    return n;
}

static int is_scale_set(const char *target)
{
    struct armid id;
    return armid_parse(target, &id, NULL, NULL) == CP_OK && id.kind == ARMID_VMSS;
}

/* Runs a turn; *sent (owned, *n_sent ids) gets the commands handed to agents, for the
 * recorder. */
static void run_turn(struct core_dispatch *d, struct turn *t, char (**sent_out)[DB_COMMAND_ID_MAX],
                     size_t *n_sent_out)
{
    struct core *core = d->core;
    *sent_out = NULL;
    *n_sent_out = 0;
    if (db_store_read(core->store, load_run, t, NULL) != CP_OK) {
        log_warnx("component=dispatch event=load_failed count=%d", t->n);
        return; /* creates stay InProgress (the next rescan retries); commands stay owed */
    }
    int failures = 0;
    size_t n_cmds = 0;
    for (int i = 0; i < t->n; i++) {
        struct turn_entry *te = &t->entries[i];
        n_cmds += te->n_cmds;
        if (te->is_command) {
            te->outcome = CP_OK;
        } else if (te->cap.id == 0) {
            te->outcome = cp_fail(&te->why, CP_ENOTFOUND, "PacketCaptureDeleted", "",
                                  "The packet capture was deleted before it started.");
        } else if (strcmp(te->cap.provisioning_state, "Updating") != 0 || te->n_cmds) {
            /* Settled meanwhile, or handed to its agents: sent now to those connected, to the
             * others after their hello; the acks end the create, or the dispatch deadline. */
            te->outcome = CP_OK;
        } else if (is_scale_set(te->cap.target)) {
            te->outcome = cp_fail(
                &te->why, CP_ENOAGENT, "AgentNotConnected", "properties.scope",
                "No netwatch agent is registered for an instance of scale set '%s' that "
                "properties.scope selects, so the capture cannot start. Register agents for its "
                "instances (netwatchd agent add <scale set id> --instance <id>) and start them, "
                "then create the capture again.",
                te->cap.target);
        } else {
            te->outcome = cp_fail(
                &te->why, CP_ENOAGENT, "AgentNotConnected", "properties.target",
                "No netwatch agent is registered for target '%s', so the capture cannot start. "
                "Register an agent for that machine and start it, then create the capture again.",
                te->cap.target);
        }
        failures += te->outcome != CP_OK;
    }
    if (n_cmds) {
        char(*sent)[DB_COMMAND_ID_MAX] = malloc(n_cmds * sizeof(*sent));
        size_t n_sent = sent ? send_all(core, t, sent, n_cmds) : 0;
        *sent_out = sent;
        *n_sent_out = n_sent;
    }
    if (!failures)
        return;
    if (db_store_write(core->store, fail_run, t, NULL) != CP_OK) {
        log_warnx("component=dispatch event=record_failed count=%d", failures);
        return;
    }
    for (int i = 0; i < t->n; i++)
        if (t->entries[i].outcome != CP_OK && t->entries[i].cap.id)
            core_cache_changed(core->cache, t->entries[i].cap.watcher_id);
}

static void *dispatch_main(void *arg)
{
    struct core_dispatch *d = arg;
    struct turn t = {calloc(CORE_DISPATCH_BATCH_MAX, sizeof(struct turn_entry)), 0};
    pthread_mutex_lock(&d->mu);
    while (t.entries) {
        while (!d->stopping && !d->len && !d->rescan)
            pthread_cond_wait(&d->work_cv, &d->mu);
        if (d->stopping)
            break;
        if (d->rescan && !d->len) {
            d->rescan = 0;
            pthread_mutex_unlock(&d->mu);
            if (db_store_read(d->core->store, rescan_run, d, NULL) != CP_OK)
                log_warnx("component=dispatch event=rescan_failed");
            pthread_mutex_lock(&d->mu);
            continue;
        }
        t.n = 0;
        while (d->len && t.n < CORE_DISPATCH_BATCH_MAX) {
            memset(&t.entries[t.n], 0, sizeof(t.entries[t.n]));
            memcpy(t.entries[t.n].op_id, d->queue[d->head].op_id, DB_OP_ID_MAX);
            t.entries[t.n].is_command = d->queue[d->head].is_command;
            d->head = (d->head + 1) % d->cap;
            d->len--;
            t.n++;
        }
        pthread_mutex_unlock(&d->mu);
        char(*sent)[DB_COMMAND_ID_MAX] = NULL;
        size_t n_sent = 0;
        run_turn(d, &t, &sent, &n_sent);
        for (int i = 0; i < t.n; i++)
            entry_clear(&t.entries[i]);
        struct rec *r = NULL;
        if (n_sent && !(r = calloc(1, sizeof(*r)))) {
            /* No room to hand it over: recorded here, as before the recorder. */
            if (core_commands_sent(d->core, (const char(*)[DB_COMMAND_ID_MAX])sent, n_sent, NULL) !=
                CP_OK)
                log_warnx("component=dispatch event=sent_not_recorded count=%zu", n_sent);
        }
        if (!r)
            free(sent);
        pthread_mutex_lock(&d->mu);
        if (!r && d->rec_head)
            r = calloc(1, sizeof(*r)); /* behind turns still being recorded: keep the order */
        if (r) {
            r->ids = n_sent ? sent : NULL;
            r->n = n_sent;
            r->turn_n = t.n;
            if (d->rec_tail)
                d->rec_tail->next = r;
            else
                d->rec_head = r;
            d->rec_tail = r;
            pthread_cond_signal(&d->rec_cv);
        } else {
            d->handled += (unsigned long long)t.n;
            pthread_cond_broadcast(&d->drain_cv);
        }
    }
    pthread_mutex_unlock(&d->mu);
    free(t.entries);
    return NULL;
}

static void *recorder_main(void *arg)
{
    struct core_dispatch *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->rec_head && !d->rec_stopping)
            pthread_cond_wait(&d->rec_cv, &d->mu);
        if (!d->rec_head)
            break; /* stopping, and everything recorded */
        struct rec *list = d->rec_head;
        d->rec_head = d->rec_tail = NULL;
        pthread_mutex_unlock(&d->mu);
        /* Everything queued meanwhile in one write. */
        size_t total = 0;
        for (struct rec *r = list; r; r = r->next)
            total += r->n;
        char(*ids)[DB_COMMAND_ID_MAX] = total ? malloc(total * sizeof(*ids)) : NULL;
        size_t n = 0;
        for (struct rec *r = list; ids && r; r = r->next) {
            memcpy(ids[n], r->ids, r->n * sizeof(*ids));
            n += r->n;
        }
        for (struct rec *r = list; !ids && r; r = r->next) /* out of memory: one by one */
            if (r->n && core_commands_sent(d->core, (const char(*)[DB_COMMAND_ID_MAX])r->ids, r->n,
                                           NULL) != CP_OK)
                log_warnx("component=dispatch event=sent_not_recorded count=%zu", r->n);
        if (n &&
            core_commands_sent(d->core, (const char(*)[DB_COMMAND_ID_MAX])ids, n, NULL) != CP_OK)
            log_warnx("component=dispatch event=sent_not_recorded count=%zu", n);
        free(ids);
        pthread_mutex_lock(&d->mu);
        for (struct rec *r = list, *next; r; r = next) {
            next = r->next;
            d->handled += (unsigned long long)r->turn_n;
            free(r->ids);
            free(r);
        }
        pthread_cond_broadcast(&d->drain_cv);
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

enum cp_err core_dispatch_start(struct core *core, struct core_dispatch **out)
{
    struct core_dispatch *d = calloc(1, sizeof(*d));
    if (!d)
        return CP_ENOMEM;
    d->core = core;
    pthread_mutex_init(&d->mu, NULL);
    pthread_cond_init(&d->work_cv, NULL);
    pthread_cond_init(&d->drain_cv, NULL);
    pthread_cond_init(&d->rec_cv, NULL);
    /* Creates acknowledged before a restart are queued before anything new. */
    if (db_store_read(core->store, rescan_run, d, NULL) != CP_OK)
        d->rescan = 1;
    /* The thread takes no signals; the server's main thread waits for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&d->recorder, NULL, recorder_main, d);
    d->recorder_running = rc == 0;
    if (rc == 0)
        rc = pthread_create(&d->thread, NULL, dispatch_main, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        if (d->recorder_running) {
            pthread_mutex_lock(&d->mu);
            d->rec_stopping = 1;
            pthread_cond_signal(&d->rec_cv);
            pthread_mutex_unlock(&d->mu);
            pthread_join(d->recorder, NULL);
        }
        free(d);
        return CP_ENOMEM;
    }
    *out = d;
    return CP_OK;
}

void core_dispatch_drain(struct core_dispatch *d)
{
    pthread_mutex_lock(&d->mu);
    unsigned long long target = d->pushed;
    while (d->handled < target && !d->stopping)
        pthread_cond_wait(&d->drain_cv, &d->mu);
    pthread_mutex_unlock(&d->mu);
}

void core_dispatch_stop(struct core_dispatch *d)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->mu);
    d->stopping = 1;
    pthread_cond_broadcast(&d->work_cv);
    pthread_cond_broadcast(&d->drain_cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    /* The recorder writes what the dispatcher handed it, then ends. */
    pthread_mutex_lock(&d->mu);
    d->rec_stopping = 1;
    pthread_cond_signal(&d->rec_cv);
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->recorder, NULL);
    pthread_cond_destroy(&d->rec_cv);
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->work_cv);
    pthread_cond_destroy(&d->drain_cv);
    free(d->queue);
    free(d);
}
