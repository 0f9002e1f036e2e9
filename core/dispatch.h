/*
 * The dispatcher: hands captures that were just created to the agent port, after their create
 * has been committed and answered. It runs on its own thread so that a create costs its caller
 * one durable transaction, and so that no request waits on an agent.
 *
 * Work is the id of a create operation still InProgress. The queue lives in memory, but the
 * truth is in the store: at start-up, and whenever the queue overflowed, the dispatcher
 * rescans the store for running creates, so an acknowledged create is never forgotten.
 */
#ifndef NW_CORE_DISPATCH_H
#define NW_CORE_DISPATCH_H

#include "core/core.h"

#define CORE_DISPATCH_QUEUE_MAX 65536 /* queued operation ids; past it, rescan the store */
#define CORE_DISPATCH_BATCH_MAX 256   /* creates handled per turn (one store job) */

struct core_dispatch;

/* Starts the thread and queues the creates the store still holds as running. core borrowed. */
enum cp_err core_dispatch_start(struct core *core, struct core_dispatch **out) CP_MUST_USE;
/* Queues a create operation (thread-safe; never blocks on the store). */
void core_dispatch_push(struct core_dispatch *d, const char *op_id);
/* Queues one command of the outbox to be handed to its agent (thread-safe; never blocks). A
 * command lost from the queue stays owed in the store and goes out after its agent's hello. */
void core_dispatch_push_command(struct core_dispatch *d, const char *command_id);
/* Waits until everything queued so far has been handled (tests, shutdown). */
void core_dispatch_drain(struct core_dispatch *d);
/* Stops the thread; what is still queued stays running in the store for the next start. */
void core_dispatch_stop(struct core_dispatch *d);

#endif
