/* The thread pool behind workers.h. */
#include "server/workers.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#define WORKER_STACK (256 * 1024)

struct task {
    workers_fn fn;
    void *arg;
};

struct workers {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct task queue[WORKERS_QUEUE_MAX]; /* ring */
    unsigned head, len;
    int stopping;
    unsigned nthreads;
    pthread_t threads[];
};

static void *worker_main(void *arg)
{
    struct workers *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->len && !w->stopping)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->len)
            break; /* stopping and drained */
        struct task t = w->queue[w->head];
        w->head = (w->head + 1) % WORKERS_QUEUE_MAX;
        w->len--;
        pthread_mutex_unlock(&w->mu);
        t.fn(t.arg);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

enum cp_err workers_start(unsigned threads, struct workers **out)
{
    struct workers *w = calloc(1, sizeof(*w) + threads * sizeof(pthread_t));
    if (!w)
        return CP_ENOMEM;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, WORKER_STACK);
    /* Signals belong to the main thread's sigwait(). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    enum cp_err err = CP_OK;
    for (unsigned i = 0; i < threads && err == CP_OK; i++) {
        if (pthread_create(&w->threads[i], &attr, worker_main, w) != 0)
            err = CP_ENOMEM;
        else
            w->nthreads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (err != CP_OK) {
        workers_stop(w);
        return err;
    }
    *out = w;
    return CP_OK;
}

enum cp_err workers_submit(struct workers *w, workers_fn fn, void *arg)
{
    enum cp_err err = CP_OK;
    pthread_mutex_lock(&w->mu);
    if (w->stopping || w->len == WORKERS_QUEUE_MAX) {
        err = CP_EBUSY;
    } else {
        w->queue[(w->head + w->len) % WORKERS_QUEUE_MAX] = (struct task){fn, arg};
        w->len++;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return err;
}

void workers_stop(struct workers *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    for (unsigned i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    free(w);
}
