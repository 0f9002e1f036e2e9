/* Counters, histograms and the text exposition behind metrics.h. */
#include "server/metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Route names as api/router.c names them, plus the server's own. */
static const char *const route_names[] = {
    "watchers.listAll",
    "watchers.list",
    "watcher",
    "captures.list",
    "capture",
    "capture.stop",
    "capture.queryStatus",
    "operation",
    "operationResult",
    "agents.list",
    "agent",
    "healthz",
    "metrics",
    "unmatched",
};
#define NROUTES (sizeof(route_names) / sizeof(route_names[0]))

static const int statuses[] = {200, 201, 202, 204, 304, 400, 401, 403,
                               404, 405, 409, 412, 413, 500, 503, 0 /* other */};
#define NSTATUS (sizeof(statuses) / sizeof(statuses[0]))

/* Upper bounds in seconds; the last bucket is +Inf. */
static const double buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                 0.05,   0.1,   0.25,   0.5,   1.0,  2.5};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

struct metrics {
    atomic_ullong requests[NROUTES][NSTATUS];
    atomic_ullong latency[NROUTES][NBUCKETS + 1];
    atomic_ullong latency_sum_us[NROUTES];
};

struct metrics *metrics_new(void)
{
    struct metrics *m = calloc(1, sizeof(*m));
    return m;
}

void metrics_free(struct metrics *m)
{
    free(m);
}

static size_t route_index(const char *route)
{
    for (size_t i = 0; route && i + 1 < NROUTES; i++) {
        if (strcmp(route, route_names[i]) == 0)
            return i;
    }
    return NROUTES - 1;
}

static size_t status_index(int status)
{
    for (size_t i = 0; i + 1 < NSTATUS; i++) {
        if (statuses[i] == status)
            return i;
    }
    return NSTATUS - 1;
}

void metrics_observe(struct metrics *m, const char *route, int status, double seconds)
{
    size_t r = route_index(route);
    atomic_fetch_add_explicit(&m->requests[r][status_index(status)], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < NBUCKETS && seconds > buckets[b])
        b++;
    atomic_fetch_add_explicit(&m->latency[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_sum_us[r], (unsigned long long)(seconds * 1e6),
                              memory_order_relaxed);
}

/* A growable text buffer with a hard maximum (metrics stay small). */
struct text {
    char *s;
    size_t len, cap;
    int failed;
};

#define TEXT_MAX (1024 * 1024)

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct text *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = t->cap * 2;
        char *s = cap <= TEXT_MAX ? realloc(t->s, cap) : NULL;
        if (!s) {
            t->failed = 1;
            return;
        }
        t->s = s;
        t->cap = cap;
    }
}

static void put_capture_count(const char *prov, const char *status, int64_t count, void *arg)
{
    put(arg, "netwatch_captures{provisioning_state=\"%s\",status=\"%s\"} %lld\n", prov, status,
        (long long)count);
}

static void put_session_count(const char *status, const char *unused, int64_t count, void *arg)
{
    (void)unused;
    put(arg, "netwatch_sessions{status=\"%s\"} %lld\n", status, (long long)count);
}

static void put_command_count(const char *kind, const char *state, int64_t count, void *arg)
{
    put(arg, "netwatch_agent_commands_owed{kind=\"%s\",state=\"%s\"} %lld\n", kind, state,
        (long long)count);
}

static void put_agent_count(const char *state, const char *unused, int64_t count, void *arg)
{
    (void)unused;
    put(arg, "netwatch_agents{state=\"%s\"} %lld\n", state, (long long)count);
}

/* The agent side's gauges, one family (HELP, TYPE, samples) per read. */
static void put_agent_side(struct text *t, struct core *core)
{
    static const struct {
        enum core_agent_stat which;
        const char *head;
        db_stats_fn each;
    } families[] = {
        {CORE_STAT_SESSIONS,
         "# HELP netwatch_sessions Capture sessions on agents not ended yet, by status.\n"
         "# TYPE netwatch_sessions gauge\n",
         put_session_count},
        {CORE_STAT_COMMANDS,
         "# HELP netwatch_agent_commands_owed Commands to agents not acknowledged yet.\n"
         "# TYPE netwatch_agent_commands_owed gauge\n",
         put_command_count},
        {CORE_STAT_AGENTS,
         "# HELP netwatch_agents Registered agents that are not revoked, by connection.\n"
         "# TYPE netwatch_agents gauge\n",
         put_agent_count},
    };
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        put(t, "%s", families[i].head);
        if (core_agent_stats(core, families[i].which, families[i].each, t) != CP_OK)
            t->failed = 1;
    }
}

char *metrics_render(struct metrics *m, struct core *core)
{
    struct text t = {malloc(16384), 0, 16384, 0};
    if (!t.s)
        return NULL;
    put(&t, "# HELP netwatch_http_requests_total HTTP requests by route and status.\n"
            "# TYPE netwatch_http_requests_total counter\n");
    for (size_t r = 0; r < NROUTES; r++) {
        for (size_t s = 0; s < NSTATUS; s++) {
            unsigned long long v = atomic_load(&m->requests[r][s]);
            if (!v)
                continue;
            if (statuses[s])
                put(&t, "netwatch_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                    route_names[r], statuses[s], v);
            else
                put(&t, "netwatch_http_requests_total{route=\"%s\",status=\"other\"} %llu\n",
                    route_names[r], v);
        }
    }
    put(&t, "# HELP netwatch_http_request_duration_seconds Time from request to response.\n"
            "# TYPE netwatch_http_request_duration_seconds histogram\n");
    for (size_t r = 0; r < NROUTES; r++) {
        unsigned long long cum = 0;
        for (size_t b = 0; b <= NBUCKETS; b++) {
            cum += atomic_load(&m->latency[r][b]);
            if (b < NBUCKETS)
                put(&t,
                    "netwatch_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                    route_names[r], buckets[b], cum);
            else
                put(&t,
                    "netwatch_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} "
                    "%llu\n",
                    route_names[r], cum);
        }
        put(&t, "netwatch_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n", route_names[r],
            (double)atomic_load(&m->latency_sum_us[r]) / 1e6);
        put(&t, "netwatch_http_request_duration_seconds_count{route=\"%s\"} %llu\n", route_names[r],
            cum);
    }
    put(&t, "# HELP netwatch_captures Packet captures by provisioning state and status.\n"
            "# TYPE netwatch_captures gauge\n");
    if (core_capture_counts(core, put_capture_count, &t) != CP_OK)
        t.failed = 1;
    put_agent_side(&t, core);
    if (t.failed) {
        free(t.s);
        return NULL;
    }
    return t.s;
}
