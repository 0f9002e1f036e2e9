/* Check suite for core/cache.c: hits, invalidation by generation, refusing fills that raced a
 * change, and a threaded check that no reader sees a value older than the last acknowledged
 * change. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/cache.h"

static void fill(struct db_capture *cap, struct db_watcher *w, int64_t wid, const char *state)
{
    memset(cap, 0, sizeof(*cap));
    memset(w, 0, sizeof(*w));
    w->id = wid;
    snprintf(w->etag, sizeof(w->etag), "etag-%s", state);
    w->tags_json = strdup("{}");
    cap->watcher_id = wid;
    snprintf(cap->provisioning_state, sizeof(cap->provisioning_state), "%s", state);
    cap->properties_json = strdup("{\"a\":1}");
}

START_TEST(hit_copies_and_change_invalidates)
{
    struct core_cache *c = core_cache_new();
    struct db_capture cap, got;
    struct db_watcher w, gw;
    fill(&cap, &w, 7, "Updating");
    uint64_t tok = core_cache_token(c);
    core_cache_put(c, "s/rg/nw/pc", tok, &cap, &w);
    ck_assert_int_eq(core_cache_get(c, "s/rg/nw/pc", &got, &gw), 1);
    ck_assert_str_eq(got.provisioning_state, "Updating");
    ck_assert_str_eq(got.properties_json, "{\"a\":1}");
    ck_assert_ptr_ne(got.properties_json, cap.properties_json); /* a copy, caller-owned */
    ck_assert_str_eq(gw.etag, "etag-Updating");
    db_capture_clear(&got);
    db_watcher_clear(&gw);
    ck_assert_int_eq(core_cache_get(c, "s/rg/nw/other", &got, &gw), 0);
    /* A change to another watcher's slot leaves the entry valid; one to its own does not. */
    core_cache_changed(c, 8);
    ck_assert_int_eq(core_cache_get(c, "s/rg/nw/pc", &got, &gw), 1);
    db_capture_clear(&got);
    db_watcher_clear(&gw);
    core_cache_changed(c, 7);
    ck_assert_int_eq(core_cache_get(c, "s/rg/nw/pc", &got, &gw), 0);
    db_capture_clear(&cap);
    db_watcher_clear(&w);
    core_cache_free(c);
}
END_TEST

START_TEST(fill_that_raced_a_change_is_refused)
{
    struct core_cache *c = core_cache_new();
    struct db_capture cap, got;
    struct db_watcher w, gw;
    fill(&cap, &w, 3, "Updating");
    uint64_t tok = core_cache_token(c);
    core_cache_changed(c, 99); /* any change completing between token and fill */
    core_cache_put(c, "k", tok, &cap, &w);
    ck_assert_int_eq(core_cache_get(c, "k", &got, &gw), 0);
    db_capture_clear(&cap);
    db_watcher_clear(&w);
    core_cache_free(c);
}
END_TEST

/* A simulated store: value under a lock; the writer acknowledges after core_cache_changed. */
static pthread_mutex_t store_mu = PTHREAD_MUTEX_INITIALIZER;
static int store_value;
static atomic_int acked;
static atomic_int stop;
static atomic_int stale;

static void *writer(void *arg)
{
    struct core_cache *c = arg;
    for (int i = 1; i <= 20000; i++) {
        pthread_mutex_lock(&store_mu);
        store_value = i; /* commit */
        pthread_mutex_unlock(&store_mu);
        core_cache_changed(c, 1);
        atomic_store(&acked, i); /* acknowledge */
    }
    atomic_store(&stop, 1);
    return NULL;
}

static void *reader(void *arg)
{
    struct core_cache *c = arg;
    while (!atomic_load(&stop)) {
        int floor = atomic_load(&acked);
        struct db_capture cap;
        struct db_watcher w;
        int value;
        if (core_cache_get(c, "key", &cap, &w)) {
            value = atoi(cap.provisioning_state);
        } else {
            uint64_t tok = core_cache_token(c);
            pthread_mutex_lock(&store_mu);
            value = store_value;
            pthread_mutex_unlock(&store_mu);
            char state[16];
            snprintf(state, sizeof(state), "%d", value);
            fill(&cap, &w, 1, state);
            core_cache_put(c, "key", tok, &cap, &w);
        }
        if (value < floor)
            atomic_fetch_add(&stale, 1);
        db_capture_clear(&cap);
        db_watcher_clear(&w);
    }
    return NULL;
}

START_TEST(no_stale_read_after_acknowledgement)
{
    struct core_cache *c = core_cache_new();
    pthread_t wt, rt[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&rt[i], NULL, reader, c);
    pthread_create(&wt, NULL, writer, c);
    pthread_join(wt, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(rt[i], NULL);
    ck_assert_int_eq(atomic_load(&stale), 0);
    ck_assert_int_eq(atomic_load(&acked), 20000);
    core_cache_free(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core_cache");
    TCase *tc = tcase_create("cache");
    tcase_add_test(tc, hit_copies_and_change_invalidates);
    tcase_add_test(tc, fill_that_raced_a_change_is_refused);
    tcase_add_test(tc, no_stale_read_after_acknowledgement);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
