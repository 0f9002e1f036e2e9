/*
 * bench_core_create: durable capture creates per second through core/ and db/ alone (no HTTP),
 * from T threads, on a fresh database in a temp dir. Separates the store's cost from the HTTP
 * front's when reading bench/api figures.
 *
 *   bench_core_create [threads] [creates-per-thread]
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"
#include "db/store.h"

#define SUB "00000000-0000-0000-0000-000000000001"
#define VM                                                                                         \
    "/subscriptions/" SUB "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"

static struct core *core;
static int per_thread = 2000;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *worker(void *arg)
{
    long id = (long)arg;
    struct core_watcher_ref w = {SUB, "rg", "nw"};
    for (int i = 0; i < per_thread; i++) {
        char name[64];
        snprintf(name, sizeof(name), "t%ldn%d", id, i);
        struct core_capture_new req = {
            name, VM, "{\"target\":\"" VM "\",\"targetType\":\"AzureVM\"}", "2024-07-01"};
        struct db_capture cap;
        struct db_watcher wt;
        char op[64];
        if (core_capture_create(core, &w, &req, NULL, &cap, &wt, op, sizeof(op), NULL) != CP_OK) {
            fprintf(stderr, "create failed\n");
            exit(1);
        }
        db_capture_clear(&cap);
        db_watcher_clear(&wt);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 32;
    if (argc > 2)
        per_thread = atoi(argv[2]);
    char dir[] = "/tmp/nwbenchXXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[64];
    snprintf(path, sizeof(path), "%s/b.db", dir);
    struct db_store *store;
    struct db_store_options o = {.path = path, .readers = 4};
    if (db_store_open(&o, &store, NULL) != CP_OK || core_new(store, NULL, &core) != CP_OK)
        return 1;
    struct core_watcher_ref w = {SUB, "rg", "nw"};
    struct db_watcher wt;
    int created;
    if (core_watcher_put(core, &w, "westus2", "{}", NULL, &wt, &created, NULL) != CP_OK)
        return 1;
    db_watcher_clear(&wt);
    pthread_t t[256];
    double t0 = now_s();
    for (long i = 0; i < threads && i < 256; i++)
        pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < threads && i < 256; i++)
        pthread_join(t[i], NULL);
    double t1 = now_s();
    core_drain(core);
    double t2 = now_s();
    long n = (long)threads * per_thread;
    printf("threads=%d creates=%ld acknowledged_per_s=%.0f dispatched_per_s=%.0f\n", threads, n,
           (double)n / (t1 - t0), (double)n / (t2 - t0));
    core_free(core);
    db_store_close(store);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
