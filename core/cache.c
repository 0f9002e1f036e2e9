/* The generation-checked capture cache behind cache.h. */
#include "core/cache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STRIPES 64

struct entry {
    char key[CORE_CACHE_KEY_MAX];
    uint64_t gen;
    struct db_capture cap; /* owns properties_json */
    struct db_watcher w;   /* owns tags_json */
};

struct core_cache {
    atomic_uint_fast64_t writes;                 /* changes completed, ever */
    atomic_uint_fast64_t gens[CORE_CACHE_SLOTS]; /* per watcher slot */
    pthread_mutex_t locks[STRIPES];              /* entry i is guarded by locks[i % STRIPES] */
    struct entry *entries[CORE_CACHE_ENTRIES];   /* NULL until first filled */
    /* core_cache_wait: a change broadcasts only while someone waits (the common case pays one
     * atomic load). */
    atomic_int waiters;
    pthread_mutex_t wait_mu;
    pthread_cond_t wait_cv; /* CLOCK_MONOTONIC */
};

struct core_cache *core_cache_new(void)
{
    struct core_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&c->locks[i], NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->wait_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->wait_mu, NULL);
    return c;
}

void core_cache_free(struct core_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < CORE_CACHE_ENTRIES; i++) {
        if (c->entries[i]) {
            db_capture_clear(&c->entries[i]->cap);
            db_watcher_clear(&c->entries[i]->w);
            free(c->entries[i]);
        }
    }
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_destroy(&c->locks[i]);
    pthread_cond_destroy(&c->wait_cv);
    pthread_mutex_destroy(&c->wait_mu);
    free(c);
}

static size_t index_of(const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h % CORE_CACHE_ENTRIES);
}

static size_t slot_of(int64_t watcher_id)
{
    return (size_t)((uint64_t)watcher_id % CORE_CACHE_SLOTS);
}

/* Deep copies; 0 on success. */
static int copy_pair(struct db_capture *cap_out, struct db_watcher *w_out,
                     const struct db_capture *cap, const struct db_watcher *w)
{
    *cap_out = *cap;
    *w_out = *w;
    cap_out->properties_json = strdup(cap->properties_json);
    cap_out->sessions = NULL;
    if (cap->n_sessions && (cap_out->sessions = malloc(cap->n_sessions * sizeof(*cap->sessions))))
        memcpy(cap_out->sessions, cap->sessions, cap->n_sessions * sizeof(*cap->sessions));
    w_out->tags_json = strdup(w->tags_json);
    if (cap_out->properties_json && w_out->tags_json && (!cap->n_sessions || cap_out->sessions))
        return 0;
    db_capture_clear(cap_out);
    db_watcher_clear(w_out);
    return -1;
}

uint64_t core_cache_token(struct core_cache *c)
{
    return atomic_load(&c->writes);
}

int core_cache_get(struct core_cache *c, const char *key, struct db_capture *cap,
                   struct db_watcher *w)
{
    size_t i = index_of(key);
    int hit = 0;
    pthread_mutex_lock(&c->locks[i % STRIPES]);
    struct entry *en = c->entries[i];
    if (en && strcmp(en->key, key) == 0 && en->gen == atomic_load(&c->gens[slot_of(en->w.id)]))
        hit = copy_pair(cap, w, &en->cap, &en->w) == 0;
    pthread_mutex_unlock(&c->locks[i % STRIPES]);
    return hit;
}

void core_cache_put(struct core_cache *c, const char *key, uint64_t token,
                    const struct db_capture *cap, const struct db_watcher *w)
{
    if (strlen(key) >= CORE_CACHE_KEY_MAX)
        return;
    uint64_t gen = atomic_load(&c->gens[slot_of(w->id)]);
    /* Checked after reading gen: a change that completed since the token may already have
     * bumped gen past what was read from the store. */
    if (atomic_load(&c->writes) != token)
        return;
    struct entry fresh;
    memset(&fresh, 0, sizeof(fresh));
    if (copy_pair(&fresh.cap, &fresh.w, cap, w) != 0)
        return;
    memcpy(fresh.key, key, strlen(key) + 1);
    fresh.gen = gen;
    size_t i = index_of(key);
    pthread_mutex_lock(&c->locks[i % STRIPES]);
    struct entry *en = c->entries[i];
    if (!en)
        en = c->entries[i] = calloc(1, sizeof(*en));
    if (en) {
        db_capture_clear(&en->cap);
        db_watcher_clear(&en->w);
        *en = fresh;
    }
    pthread_mutex_unlock(&c->locks[i % STRIPES]);
    if (!en) {
        db_capture_clear(&fresh.cap);
        db_watcher_clear(&fresh.w);
    }
}

void core_cache_changed(struct core_cache *c, int64_t watcher_id)
{
    /* Order matters (see cache.h): the write counter first, then the slot. */
    atomic_fetch_add(&c->writes, 1);
    atomic_fetch_add(&c->gens[slot_of(watcher_id)], 1);
    /* Sequentially consistent with core_cache_wait's increment then check: either it sees the
     * new count, or this sees it waiting and wakes it. */
    if (atomic_load(&c->waiters) > 0) {
        pthread_mutex_lock(&c->wait_mu);
        pthread_cond_broadcast(&c->wait_cv);
        pthread_mutex_unlock(&c->wait_mu);
    }
}

int core_cache_wait(struct core_cache *c, uint64_t token, int64_t deadline_ms)
{
    struct timespec until = {.tv_sec = (time_t)(deadline_ms / 1000),
                             .tv_nsec = (long)(deadline_ms % 1000) * 1000000L};
    atomic_fetch_add(&c->waiters, 1);
    pthread_mutex_lock(&c->wait_mu);
    int rc = 0;
    while (atomic_load(&c->writes) == token && rc == 0)
        rc = pthread_cond_timedwait(&c->wait_cv, &c->wait_mu, &until);
    pthread_mutex_unlock(&c->wait_mu);
    atomic_fetch_sub(&c->waiters, 1);
    return atomic_load(&c->writes) != token;
}
