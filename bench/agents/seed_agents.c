/*
 * bench_seed_agents: registers N agents in a netwatchd database, fast, for bench/agents.
 *
 *   bench_seed_agents --db PATH --subscription SUB --count N --tokens-out FILE [--threads T]
 *                     [--resource-group RG]
 *
 * Agent i (0 <= i < N) serves the VM /subscriptions/SUB/resourceGroups/RG/providers/
 * Microsoft.Compute/virtualMachines/vm<i>, with the token "nwa_" + hex(SHA-256("netwatch-bench-
 * agent:" + i)): deterministic, well formed (core_agent_token_well_formed), and only ever used
 * on a throwaway database. Line i+1 of FILE is agent i's token (bench_agent_sim reads it).
 *
 * Registration goes through core_agent_register(), exactly as `netwatchd agent add` does, from T
 * threads at once (default 64) so that the store's group commit batches them: one fsync per
 * batch instead of one per agent. The database is created if absent (migrations applied); run it
 * before netwatchd starts on that file.
 *
 * Exit status: 0 all registered and FILE written; 1 a registration or the file failed; 2 usage.
 */
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/agents.h"
#include "db/store.h"

#define SEED_MAX_AGENTS  1000000
#define SEED_MAX_THREADS 256

struct seed {
    struct db_store *store;
    const char *sub;
    const char *rg;
    long count;
    char (*tokens)[CORE_AGENT_TOKEN_LEN];
    atomic_long next;
    atomic_int failed;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Agent i's token: "nwa_" + 64 lower-case hex of SHA-256("netwatch-bench-agent:<i>"). */
static int bench_token(long i, char out[CORE_AGENT_TOKEN_LEN])
{
    static const char hexd[] = "0123456789abcdef";
    char label[64];
    int n = snprintf(label, sizeof(label), "netwatch-bench-agent:%ld", i);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (n < 0 || EVP_Digest(label, (size_t)n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
        return -1;
    size_t p = strlen(CORE_AGENT_TOKEN_PREFIX);
    memcpy(out, CORE_AGENT_TOKEN_PREFIX, p);
    for (unsigned k = 0; k < 32; k++) {
        out[p + 2 * k] = hexd[md[k] >> 4];
        out[p + 2 * k + 1] = hexd[md[k] & 15];
    }
    out[CORE_AGENT_TOKEN_LEN - 1] = '\0';
    return core_agent_token_well_formed(out) ? 0 : -1;
}

static void *worker(void *arg)
{
    struct seed *s = arg;
    for (;;) {
        long i = atomic_fetch_add(&s->next, 1);
        if (i >= s->count || atomic_load(&s->failed))
            return NULL;
        char rid[512];
        snprintf(rid, sizeof(rid),
                 "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/"
                 "virtualMachines/vm%ld",
                 s->sub, s->rg, i);
        struct db_agent a;
        struct cp_error e = {{0}, {0}, {0}};
        enum cp_err err = CP_EINVAL;
        if (bench_token(i, s->tokens[i]) == 0)
            err = core_agent_register(s->store, rid, NULL, s->tokens[i], &a, &e);
        if (err != CP_OK) {
            if (atomic_fetch_add(&s->failed, 1) == 0)
                fprintf(stderr, "bench_seed_agents: vm%ld: %s: %s\n", i, cp_err_name(err),
                        e.message[0] ? e.message : "(no detail)");
            return NULL;
        }
        db_agent_clear(&a);
    }
}

static int usage(void)
{
    fprintf(stderr, "usage: bench_seed_agents --db PATH --subscription SUB --count N "
                    "--tokens-out FILE [--threads T] [--resource-group RG]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *db = NULL, *out = NULL;
    struct seed s = {.rg = "rg", .count = -1};
    long threads = 64;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v)
            return usage();
        if (strcmp(argv[i], "--db") == 0)
            db = v;
        else if (strcmp(argv[i], "--subscription") == 0)
            s.sub = v;
        else if (strcmp(argv[i], "--resource-group") == 0)
            s.rg = v;
        else if (strcmp(argv[i], "--tokens-out") == 0)
            out = v;
        else if (strcmp(argv[i], "--count") == 0)
            s.count = strtol(v, &end, 10);
        else if (strcmp(argv[i], "--threads") == 0)
            threads = strtol(v, &end, 10);
        else
            return usage();
        if (end && *end)
            return usage();
        i++;
    }
    if (!db || !s.sub || !out || s.count < 1 || s.count > SEED_MAX_AGENTS || threads < 1 ||
        threads > SEED_MAX_THREADS)
        return usage();
    if (threads > s.count)
        threads = s.count;

    s.tokens = calloc((size_t)s.count, sizeof(*s.tokens));
    if (!s.tokens) {
        fprintf(stderr, "bench_seed_agents: out of memory\n");
        return 1;
    }
    struct cp_error e = {{0}, {0}, {0}};
    struct db_store_options o = {.path = db, .readers = 4};
    if (db_store_open(&o, &s.store, &e) != CP_OK) {
        fprintf(stderr, "bench_seed_agents: cannot open %s: %s\n", db, e.message);
        free(s.tokens);
        return 1;
    }
    double t0 = now_s();
    pthread_t tid[SEED_MAX_THREADS];
    long started = 0;
    for (; started < threads; started++) {
        if (pthread_create(&tid[started], NULL, worker, &s) != 0)
            break;
    }
    if (started == 0)
        atomic_store(&s.failed, 1);
    for (long i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    double secs = now_s() - t0;
    db_store_close(s.store);

    int rc = 0;
    if (atomic_load(&s.failed)) {
        fprintf(stderr, "bench_seed_agents: registration failed\n");
        rc = 1;
    } else {
        FILE *f = fopen(out, "w");
        for (long i = 0; f && i < s.count; i++)
            fprintf(f, "%s\n", s.tokens[i]);
        if (!f || ferror(f) || fclose(f) != 0) {
            fprintf(stderr, "bench_seed_agents: cannot write %s\n", out);
            rc = 1;
        } else {
            printf("seeded %ld agents (vm0..vm%ld) in %.2f s (%.0f/s, %ld threads)\n", s.count,
                   s.count - 1, secs, (double)s.count / secs, threads);
        }
    }
    memset(s.tokens, 0, (size_t)s.count * sizeof(*s.tokens));
    free(s.tokens);
    return rc;
}
