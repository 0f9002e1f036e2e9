/*
 * A small pool of threads for requests that wait on a durable commit. The HTTP threads hand
 * such a request over (its connection suspended) and go on serving others, so the number of
 * writes in flight, and so the size of each group commit, is not capped by the number of HTTP
 * threads. The threads have small stacks: they wait far more than they run.
 */
#ifndef NW_SERVER_WORKERS_H
#define NW_SERVER_WORKERS_H

#include "common/err.h"

#define WORKERS_QUEUE_MAX 4096 /* tasks waiting for a thread; past it, submit refuses */

struct workers;
typedef void (*workers_fn)(void *arg);

enum cp_err workers_start(unsigned threads, struct workers **out) CP_MUST_USE;
/* Queues fn(arg). CP_EBUSY when the queue is full or the pool is stopping (arg untouched). */
enum cp_err workers_submit(struct workers *w, workers_fn fn, void *arg) CP_MUST_USE;
/* Runs what is queued, then joins the threads. NULL is a no-op. */
void workers_stop(struct workers *w);

#endif
