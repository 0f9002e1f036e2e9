/*
 * Waiting briefly for a young operation to end, so that a client polling a create or stop whose
 * agent answers in milliseconds is not sent away for a whole Retry-After second.
 *
 * The wait rides on the capture cache's change signal: every committed change that can end an
 * operation calls core_cache_changed() before it is acknowledged. A waiter takes the cache's
 * token, reads the operation, and sleeps only if the read still shows it running; so an end
 * committed between the read and the sleep is never missed.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "common/timefmt.h"
#include "core/cache.h"
#include "core/core_int.h"

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int running(const struct db_operation *op)
{
    return strcmp(op->status, "InProgress") == 0;
}

enum cp_err core_operation_wait(struct core *core, const char *sub, const char *id, int wait_ms,
                                struct db_operation *out, struct cp_error *e)
{
    enum cp_err err = core_operation_get(core, sub, id, out, e);
    if (err != CP_OK || !running(out) || wait_ms <= 0 ||
        timefmt_now_ms() - out->start_ms > CORE_OP_WAIT_YOUNG_MS)
        return err;
    /* Bounded: past CORE_OP_WAIT_MAX waiters a poll is answered at once, as before. */
    if (atomic_fetch_add(&core->op_waiters, 1) >= CORE_OP_WAIT_MAX) {
        atomic_fetch_sub(&core->op_waiters, 1);
        return err;
    }
    int64_t deadline = mono_ms() + wait_ms;
    while (err == CP_OK && running(out) && mono_ms() < deadline) {
        uint64_t token = core_cache_token(core->cache);
        db_operation_clear(out);
        if ((err = core_operation_get(core, sub, id, out, e)) != CP_OK || !running(out))
            break;
        (void)core_cache_wait(core->cache, token, deadline);
    }
    atomic_fetch_sub(&core->op_waiters, 1);
    return err;
}
