/*
 * crash.c - crash durability: a reply of 2xx means the change is on disk.
 *
 *   it_crash NETWATCHD
 *
 * Four threads create watchers (one per subscription and region: each thread has its own
 * subscription and walks through regions) and packet captures under them, recording every
 * acknowledged resource with the content it was given. The server is SIGKILLed while they
 * run, started again on the same db, and every acknowledged resource must be there with that
 * content. Load is bounded: a few hundred requests, a few seconds even under ASan.
 */
#include "tests/integration/harness.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define API              "2024-07-01"
#define NTHREADS         4
#define CAPS_PER_WATCHER 8
#define KILL_AFTER_ACKS  120
#define KILL_AFTER_MS    4000

static const char *const regions[] = {"westus",    "eastus",        "westus2",     "eastus2",
                                      "centralus", "northeurope",   "westeurope",  "uksouth",
                                      "japaneast", "australiaeast", "brazilsouth", "canadacentral"};
#define NREGIONS (sizeof(regions) / sizeof(regions[0]))

struct ack {
    int is_watcher;
    char target[512]; /* path and query of the resource */
    char region[32];  /* watcher: location */
    char tag[64];     /* watcher: tags.seq */
    int time_limit;   /* capture: timeLimitInSeconds */
    char port[16];    /* capture: filters[0].localPort */
    char file[128];   /* capture: storageLocation.filePath */
};

struct worker {
    int idx;
    char sub[NW_GUID_LEN + 1];
    struct ack *acks; /* owned */
    size_t nacks;
    int requests, transport_errors;
    pthread_t th;
};

static struct nw_server srv;
static char wildtoken[NW_TOKEN_MAX];
static atomic_int stop_flag;
static atomic_int total_acks;
static atomic_int finished_threads;

static int add_ack(struct worker *w, const struct ack *a)
{
    struct ack *na = realloc(w->acks, (w->nacks + 1) * sizeof(*na));

    if (na == NULL)
        return -1;
    w->acks = na;
    w->acks[w->nacks++] = *a;
    atomic_fetch_add(&total_acks, 1);
    return 0;
}

static long put(struct worker *w, const char *target, const char *body)
{
    struct nw_response r;
    long st = 0;

    w->requests++;
    if (nw_server_request(&srv, "PUT", target, body, wildtoken, &r) == 0)
        st = r.status;
    else
        w->transport_errors++;
    nw_response_free(&r);
    return st;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    char watcher[400] = "";
    char body[1024];
    int ncap = CAPS_PER_WATCHER;
    size_t region = 0;

    for (int op = 0; !atomic_load(&stop_flag); op++) {
        struct ack a;
        memset(&a, 0, sizeof(a));
        if (ncap == CAPS_PER_WATCHER) {
            if (region == NREGIONS)
                break;
            snprintf(watcher, sizeof(watcher),
                     "/subscriptions/%s/resourceGroups/crash-rg%zu/providers/"
                     "Microsoft.Network/networkWatchers/nw-%d-%s",
                     w->sub, region % 3, w->idx, regions[region]);
            a.is_watcher = 1;
            snprintf(a.target, sizeof(a.target), "%s?api-version=" API, watcher);
            snprintf(a.region, sizeof(a.region), "%s", regions[region]);
            snprintf(a.tag, sizeof(a.tag), "t%d-op%d", w->idx, op);
            snprintf(body, sizeof(body), "{\"location\":\"%s\",\"tags\":{\"seq\":\"%s\"}}",
                     a.region, a.tag);
            region++;
            ncap = 0;
            long st = put(w, a.target, body);
            if (st == 200 || st == 201)
                add_ack(w, &a);
            else if (st != 0)
                printf("thread %d: PUT watcher answered %ld\n", w->idx, st);
            continue;
        }
        ncap++;
        a.time_limit = (op * 37) % 18001;
        snprintf(a.port, sizeof(a.port), "%d", 1000 + op);
        snprintf(a.file, sizeof(a.file), "/var/captures/t%d/op%d.cap", w->idx, op);
        snprintf(a.target, sizeof(a.target), "%s/packetCaptures/pc-%d?api-version=" API, watcher,
                 op);
        snprintf(body, sizeof(body),
                 "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/vms/providers/"
                 "Microsoft.Compute/virtualMachines/vm-%d-%d\",\"timeLimitInSeconds\":%d,"
                 "\"storageLocation\":{\"filePath\":\"%s\"},\"filters\":[{\"protocol\":\"TCP\","
                 "\"localPort\":\"%s\"}]}}",
                 w->sub, w->idx, op, a.time_limit, a.file, a.port);
        long st = put(w, a.target, body);
        if (st == 201)
            add_ack(w, &a);
        else if (st != 0 && st != 404)
            printf("thread %d: PUT capture answered %ld\n", w->idx, st);
    }
    atomic_fetch_add(&finished_threads, 1);
    return NULL;
}

static void verify(const struct worker *w)
{
    for (size_t i = 0; i < w->nacks; i++) {
        const struct ack *a = &w->acks[i];
        struct nw_response r;

        if (nw_server_request(&srv, "GET", a->target, NULL, wildtoken, &r) != 0) {
            NW_CHECK(0, "GET %s: no reply: %s", a->target, r.error);
            continue;
        }
        if (!NW_CHECK(r.status == 200, "acknowledged %s lost after SIGKILL: %ld %.300s", a->target,
                      r.status, r.body)) {
            nw_response_free(&r);
            continue;
        }
        if (a->is_watcher) {
            const char *loc = nw_json_str(r.json, "location");
            const char *tag = nw_json_str(r.json, "tags.seq");
            NW_CHECK(loc && strcmp(loc, a->region) == 0, "%s: location %s (want %s)", a->target,
                     loc ? loc : "absent", a->region);
            NW_CHECK(tag && strcmp(tag, a->tag) == 0, "%s: tags.seq %s (want %s)", a->target,
                     tag ? tag : "absent", a->tag);
        } else {
            json_t *tl = nw_json_get(r.json, "properties.timeLimitInSeconds");
            const char *port = nw_json_str(r.json, "properties.filters.0.localPort");
            const char *file = nw_json_str(r.json, "properties.storageLocation.filePath");
            NW_CHECK(json_is_integer(tl) && json_integer_value(tl) == a->time_limit,
                     "%s: timeLimitInSeconds (want %d)", a->target, a->time_limit);
            NW_CHECK(port && strcmp(port, a->port) == 0, "%s: localPort %s (want %s)", a->target,
                     port ? port : "absent", a->port);
            NW_CHECK(file && strcmp(file, a->file) == 0, "%s: filePath %s (want %s)", a->target,
                     file ? file : "absent", a->file);
        }
        nw_response_free(&r);
    }
}

int main(int argc, char **argv)
{
    struct worker workers[NTHREADS];
    char subs[NTHREADS * (NW_GUID_LEN + 1)] = "";
    int started = 0;
    long long t0;

    if (argc != 2) {
        fprintf(stderr, "usage: %s NETWATCHD\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    memset(workers, 0, sizeof(workers));
    if (nw_server_init(&srv, argv[1]) != 0)
        goto fail_start;
    for (int i = 0; i < NTHREADS; i++) {
        workers[i].idx = i;
        nw_guid(workers[i].sub);
        size_t used = strlen(subs);
        snprintf(subs + used, sizeof(subs) - used, "%s%s", i ? "," : "", workers[i].sub);
    }
    if (nw_server_add_token(&srv, subs, wildtoken, sizeof(wildtoken)) != 0 ||
        nw_server_start(&srv) != 0)
        goto fail_start;

    t0 = nw_now_ms();
    for (int i = 0; i < NTHREADS; i++) {
        if (pthread_create(&workers[i].th, NULL, work, &workers[i]) != 0)
            break;
        started++;
    }
    while (atomic_load(&total_acks) < KILL_AFTER_ACKS && nw_now_ms() - t0 < KILL_AFTER_MS)
        nw_sleep_ms(2);
    int acks_at_kill = atomic_load(&total_acks);
    int busy_at_kill = started - atomic_load(&finished_threads);
    NW_CHECK(nw_server_kill(&srv) == 0, "SIGKILL failed");
    printf("SIGKILL after %lld ms with %d acknowledged creates\n", nw_now_ms() - t0, acks_at_kill);
    atomic_store(&stop_flag, 1);
    for (int i = 0; i < started; i++)
        pthread_join(workers[i].th, NULL);

    size_t total = 0, nwatchers = 0;
    int requests = 0;
    for (int i = 0; i < started; i++) {
        total += workers[i].nacks;
        requests += workers[i].requests;
        for (size_t k = 0; k < workers[i].nacks; k++)
            nwatchers += workers[i].acks[k].is_watcher;
    }
    printf("%d requests, %zu acknowledged (%zu watchers, %zu captures)\n", requests, total,
           nwatchers, total - nwatchers);
    NW_CHECK(total >= 20, "too little load before the kill (%zu acknowledged)", total);
    NW_CHECK(busy_at_kill > 0, "the kill did not land mid-load");

    if (!NW_CHECK(nw_server_start(&srv) == 0, "netwatchd did not start after SIGKILL"))
        goto done;
    for (int i = 0; i < started; i++)
        verify(&workers[i]);
    NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not exit 0 on SIGTERM");

done:
    if (nw_failures)
        nw_server_dump_log(&srv, 8000);
    nw_server_cleanup(&srv);
    for (int i = 0; i < NTHREADS; i++)
        free(workers[i].acks);
    printf("%s crash: %d failure(s)\n", nw_failures ? "FAIL" : "PASS", nw_failures);
    return nw_failures ? 1 : 0;

fail_start:
    nw_server_cleanup(&srv);
    printf("FAIL crash: netwatchd did not start\n");
    return 1;
}
