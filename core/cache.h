/*
 * A read cache of packet captures (with their watcher), so that GET and queryStatus of a
 * capture that has not changed cost a hash lookup instead of an SQLite read transaction.
 *
 * Validity by generations, never by time. Every committed change to a watcher or any of its
 * captures calls core_cache_changed() before the change is acknowledged; it bumps a global
 * write counter and then the watcher's generation slot. An entry records the slot generation
 * it was filled at and is served only while that is still current. A reader takes a token
 * (the write counter) before its store read and may fill only if no change completed in
 * between, so data read before a commit is never stored under a generation from after it.
 * Slots are shared by watcher id modulo CORE_CACHE_SLOTS: a collision only invalidates more.
 *
 * Thread-safe. Bounded: CORE_CACHE_ENTRIES entries, direct-mapped by key (a newer fill
 * replaces an older one), each allocated on first use.
 */
#ifndef NW_CORE_CACHE_H
#define NW_CORE_CACHE_H

#include <stdint.h>

#include "db/capture.h"
#include "db/watcher.h"

#define CORE_CACHE_ENTRIES 1024
#define CORE_CACHE_SLOTS   1024
#define CORE_CACHE_KEY_MAX 400

struct core_cache;

struct core_cache *core_cache_new(void);
void core_cache_free(struct core_cache *c);

/* The token to take before reading the store for a later core_cache_put(). */
uint64_t core_cache_token(struct core_cache *c);
/* Copies a still-valid entry for key into cap and w (caller clears both); 1 on a hit. */
int core_cache_get(struct core_cache *c, const char *key, struct db_capture *cap,
                   struct db_watcher *w);
/* Stores copies of cap and w under key, unless a change completed since token was taken. */
void core_cache_put(struct core_cache *c, const char *key, uint64_t token,
                    const struct db_capture *cap, const struct db_watcher *w);
/* A change to watcher_id or its captures has been committed. */
void core_cache_changed(struct core_cache *c, int64_t watcher_id);
/* Waits until some change completes after token was taken (1), or until deadline_ms on the
 * CLOCK_MONOTONIC clock in milliseconds (0). For readers that wait for a state to be reached:
 * take a token, read, and wait only if the read did not show it yet. */
int core_cache_wait(struct core_cache *c, uint64_t token, int64_t deadline_ms);

#endif
