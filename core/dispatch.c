/* The dispatcher thread behind dispatch.h. */
#include "core/dispatch.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/strutil.h"
#include "common/timefmt.h"
#include "core/core_int.h"

struct item {
    char op_id[DB_OP_ID_MAX];
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
};

/* One create being handled in a turn. */
struct turn_entry {
    char op_id[DB_OP_ID_MAX];
    struct db_capture cap; /* the capture it made (id 0 when gone) */
    enum cp_err outcome;   /* CP_OK: handed to an agent */
    struct cp_error why;
};

static enum cp_err push_locked(struct core_dispatch *d, const char *op_id)
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
    str_copy(d->queue[(d->head + d->len) % d->cap].op_id, DB_OP_ID_MAX, op_id);
    d->len++;
    return CP_OK;
}

void core_dispatch_push(struct core_dispatch *d, const char *op_id)
{
    pthread_mutex_lock(&d->mu);
    d->pushed++;
    if (push_locked(d, op_id) != CP_OK) {
        /* Not lost: the operation is InProgress in the store; a rescan finds it. */
        d->rescan = 1;
        d->handled++;
    }
    pthread_cond_signal(&d->work_cv);
    pthread_mutex_unlock(&d->mu);
}

static enum cp_err rescan_one(const char *id, void *arg)
{
    struct core_dispatch *d = arg;
    pthread_mutex_lock(&d->mu);
    d->pushed++;
    enum cp_err err = push_locked(d, id);
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

static enum cp_err load_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct turn *t = arg;
    for (int i = 0; i < t->n; i++) {
        enum cp_err err = db_capture_get_by_create_op(c, t->entries[i].op_id, &t->entries[i].cap);
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

static void run_turn(struct core_dispatch *d, struct turn *t)
{
    struct core *core = d->core;
    if (db_store_read(core->store, load_run, t, NULL) != CP_OK) {
        log_warnx("component=dispatch event=load_failed count=%d", t->n);
        return; /* left InProgress; the next rescan retries */
    }
    int failures = 0;
    for (int i = 0; i < t->n; i++) {
        struct turn_entry *te = &t->entries[i];
        if (te->cap.id == 0) {
            te->outcome = cp_fail(&te->why, CP_ENOTFOUND, "PacketCaptureDeleted", "",
                                  "The packet capture was deleted before it started.");
        } else if (strcmp(te->cap.provisioning_state, "Updating") != 0) {
            te->outcome = CP_OK; /* settled meanwhile (acknowledged, deleted, expired) */
        } else if (te->cap.agent_id[0] && core->agents && core->agents->start) {
            /* Handed to its agent: sent now if connected, else when it connects; the agent's
             * ack ends the create, or the dispatch deadline does. */
            te->outcome = core->agents->start(core->agents->ctx, &te->cap, &te->why);
        } else {
            te->outcome = cp_fail(
                &te->why, CP_ENOAGENT, "AgentNotConnected", "properties.target",
                "No netwatch agent is registered for target '%s', so the capture cannot start. "
                "Register an agent for that machine and start it, then create the capture again.",
                te->cap.target);
        }
        failures += te->outcome != CP_OK;
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
            d->head = (d->head + 1) % d->cap;
            d->len--;
            t.n++;
        }
        pthread_mutex_unlock(&d->mu);
        run_turn(d, &t);
        for (int i = 0; i < t.n; i++)
            db_capture_clear(&t.entries[i].cap);
        pthread_mutex_lock(&d->mu);
        d->handled += (unsigned long long)t.n;
        pthread_cond_broadcast(&d->drain_cv);
    }
    pthread_mutex_unlock(&d->mu);
    free(t.entries);
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
    /* Creates acknowledged before a restart are queued before anything new. */
    if (db_store_read(core->store, rescan_run, d, NULL) != CP_OK)
        d->rescan = 1;
    /* The thread takes no signals; the server's main thread waits for them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&d->thread, NULL, dispatch_main, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
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
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->work_cv);
    pthread_cond_destroy(&d->drain_cv);
    free(d->queue);
    free(d);
}
