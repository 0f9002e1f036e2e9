/*
 * bench_agent_captures: captures created through netwatchd's ARM API, as an Azure client would
 * (HTTP PUT with the bearer token), and started on N simulated agents (sim.h), all in one
 * process so that every timestamp is on one clock (CLOCK_MONOTONIC).
 *
 *   bench_agent_captures --url http://HOST:PORT --tokens FILE --api-token-file FILE
 *                        --subscription SUB --phase NAME:CREATES:RATE:CLIENTS [--phase ...]
 *                        [--count N] [--rate R] [--resource-group RG] [--watcher NAME]
 *                        [--location LOC] [--phase-timeout S] [--stop]
 *                        [--p99-target-ms MS] [--running-target-s S]
 *
 * First the N agents (--count, default all the tokens of FILE) connect at --rate per second
 * (sim_open), and the program creates the network watcher (PUT, --location, default westus2).
 * Then each phase in turn: CREATES captures, create k (counted across phases) named c<k> on
 * VM vm<k mod N> of RG (default "rg": the VMs bench_seed_agents registers), each PUT by one of
 * CLIENTS threads (libcurl, one kept-alive connection each). RATE > 0 spaces the PUTs evenly,
 * RATE/s from the phase's start; RATE 0 sends them as fast as the clients get their answers
 * (a burst). The simulated agents answer every start with ack ok; the server replies to the ack
 * once the capture is durably Running. A phase ends when every create answered 201 has its ok
 * reply (or failed), or --phase-timeout (default 60 s) after its last PUT.
 *
 * Per create: t_put (just before the PUT is sent), t_201 (its answer), t_start (the simulated
 * agent decoded the start naming c<k>), t_running (the server's reply to the ack arrived).
 * Reported per phase: PUT->201, PUT->start and PUT->Running percentiles, and the time from the
 * phase's first PUT to its last capture Running.
 *
 * After the phases, POST queryStatus for every capture must say Running (the server's own view,
 * not the simulator's). With --stop, every capture is then stopped (POST stop), the agents ack
 * and report completed, and queryStatus must say Stopped.
 *
 * PASS/FAIL lines: --p99-target-ms checks each phase's PUT->start p99; --running-target-s each
 * phase's first PUT to last Running. One "BENCH phase=..." line per phase for scripts.
 *
 * Exit status: 0 every capture was created, started, Running (and Stopped with --stop),
 * whatever the timing targets say; 1 some were not, or set-up failed; 2 usage.
 */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/agents/sim.h"

#define CAP_MAX_PHASES   8
#define CAP_MAX_CREATES  100000
#define CAP_MAX_CLIENTS  64
#define CAP_PATH_MAX     512
#define CAP_BODY_KEEP    2048 /* bytes of a response kept (status JSON, error detail) */
#define CAP_POLL_MS      2    /* the agents' epoll wait while clients run */
#define CAP_API_VERSION  "2024-07-01"
#define CAP_STOP_WAIT_US 30000000

struct phase {
    char name[32];
    unsigned creates, clients;
    double rate;    /* PUTs per second; 0: as fast as the clients go */
    unsigned first; /* index of its first create */
};

/* One capture: written by the client thread that sends its requests (t_put, t_201, status)
 * and by the agents' thread (t_start, t_running, ack_seq); read once the clients are joined. */
struct create {
    int64_t t_put, t_201, t_start, t_running; /* monotonic us, 0 = not yet */
    int64_t ack_seq;                          /* seq of the agent's ack to its start */
    int status;                               /* of the PUT; 0 = transport error */
    int dup_starts;                           /* starts beyond the first */
    char state[24];                           /* packetCaptureStatus from queryStatus */
};

enum work { W_CREATE, W_QUERY, W_STOP };

struct bench {
    struct sim sim;
    char base[CAP_PATH_MAX]; /* http://host:port */
    char auth[600];          /* Authorization header */
    const char *sub, *rg, *watcher, *location;
    struct phase phases[CAP_MAX_PHASES];
    int n_phases;
    struct create *creates;
    unsigned total;
    /* the work the clients are doing now */
    enum work work;
    unsigned begin, end; /* creates [begin, end) */
    double rate;
    int64_t t_begin;
    atomic_uint next;
    atomic_uint clients_left;
    atomic_uint failed_requests;
    pthread_mutex_t detail_mu;
    char detail[300]; /* the first unexpected answer */
    /* counted by the agents' thread */
    unsigned running_ok, running_failed;
};

static int usage(void)
{
    fprintf(
        stderr,
        "usage: bench_agent_captures --url http://HOST:PORT --tokens FILE --api-token-file "
        "FILE\n"
        "       --subscription SUB --phase NAME:CREATES:RATE:CLIENTS [--phase ...] [--count N]\n"
        "       [--rate R] [--resource-group RG] [--watcher NAME] [--location LOC]\n"
        "       [--phase-timeout S] [--stop] [--p99-target-ms MS] [--running-target-s S]\n");
    return 2;
}

/* ---- the agents' side: which create a start or a reply is about ------------------------------ */

static void on_start(struct sim *s, struct sim_conn *c, const struct proto_start *m, int64_t t_us)
{
    struct bench *b = s->user;
    char *end = NULL;
    unsigned long k = m->name[0] == 'c' ? strtoul(m->name + 1, &end, 10) : 0;
    if (!end || *end || k >= b->total || k % s->n != c->idx) {
        s->unexpected++;
        return;
    }
    struct create *cr = &b->creates[k];
    if (cr->t_start) {
        cr->dup_starts++;
        return;
    }
    cr->t_start = t_us;
    cr->ack_seq = c->seq; /* the ack the simulator just queued for it */
}

static void on_reply(struct sim *s, struct sim_conn *c, const struct proto_reply *m, int64_t t_us)
{
    struct bench *b = s->user;
    /* Create k runs on agent k mod N: look among that agent's creates for the acked one. */
    for (unsigned k = c->idx; k < b->total; k += s->n) {
        struct create *cr = &b->creates[k];
        if (cr->ack_seq != m->seq || cr->t_running)
            continue;
        if (m->ok) {
            cr->t_running = t_us;
            b->running_ok++;
        } else {
            b->running_failed++;
        }
        return;
    }
}

/* ---- the API clients ----------------------------------------------------------------------- */

struct answer {
    char body[CAP_BODY_KEEP];
    size_t len;
};

static size_t keep_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct answer *a = arg;
    size_t n = size * nmemb, room = sizeof(a->body) - 1 - a->len;
    memcpy(a->body + a->len, data, n < room ? n : room);
    a->len += n < room ? n : room;
    a->body[a->len] = '\0';
    return n;
}

static void note_detail(struct bench *b, unsigned k, const char *what, long status,
                        const struct answer *a)
{
    atomic_fetch_add(&b->failed_requests, 1);
    pthread_mutex_lock(&b->detail_mu);
    if (!b->detail[0])
        snprintf(b->detail, sizeof(b->detail), "c%u %s: HTTP %ld %.200s", k, what, status, a->body);
    pthread_mutex_unlock(&b->detail_mu);
}

static void sleep_until(int64_t t_us)
{
    int64_t now = sim_now_us();
    if (t_us <= now)
        return;
    struct timespec ts = {(time_t)((t_us - now) / 1000000), (long)((t_us - now) % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* The PUT body of create k: a VM target, a local file (storageLocation wants one place). */
static char *create_body(const struct bench *b, unsigned k)
{
    char target[CAP_PATH_MAX], file[64];
    snprintf(target, sizeof(target),
             "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Compute/virtualMachines/vm%u",
             b->sub, b->rg, k % b->sim.n);
    snprintf(file, sizeof(file), "/var/captures/c%u.cap", k);
    json_t *j = json_pack("{s:{s:s, s:{s:s}}}", "properties", "target", target, "storageLocation",
                          "filePath", file);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

static void capture_url(const struct bench *b, unsigned k, const char *action, char *out,
                        size_t size)
{
    snprintf(out, size,
             "%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkWatchers/"
             "%s/packetCaptures/c%u%s%s?api-version=" CAP_API_VERSION,
             b->base, b->sub, b->rg, b->watcher, k, action[0] ? "/" : "", action);
}

/* Sends one request for create k; returns the HTTP status (0: transport error). */
static long request(CURL *h, const char *url, const char *method, const char *body,
                    struct answer *a)
{
    a->len = 0;
    a->body[0] = '\0';
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(body ? strlen(body) : 0));
    long status = 0;
    if (curl_easy_perform(h) != CURLE_OK)
        return 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* The status string of a queryStatus answer, or "?" */
static void read_state(const struct answer *a, char *out, size_t size)
{
    json_t *j = json_loads(a->body, 0, NULL);
    const char *st = json_string_value(json_object_get(j, "packetCaptureStatus"));
    snprintf(out, size, "%s", st ? st : "?");
    json_decref(j);
}

static void *client_main(void *arg)
{
    struct bench *b = arg;
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = NULL;
    hdr = curl_slist_append(hdr, b->auth);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:"); /* no 100-continue round trip */
    struct answer *a = malloc(sizeof(*a));
    if (!h || !hdr || !a) {
        fprintf(stderr, "bench_agent_captures: a client could not start (out of memory)\n");
        atomic_fetch_add(&b->failed_requests, 1);
        goto out;
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, a);
    for (;;) {
        unsigned k = atomic_fetch_add(&b->next, 1);
        if (k >= b->end)
            break;
        struct create *cr = &b->creates[k];
        char url[CAP_PATH_MAX * 2];
        if (b->work == W_CREATE) {
            char *body = create_body(b, k);
            capture_url(b, k, "", url, sizeof(url));
            if (b->rate > 0)
                sleep_until(b->t_begin + (int64_t)((double)(k - b->begin) * 1e6 / b->rate));
            cr->t_put = sim_now_us();
            long st = body ? request(h, url, "PUT", body, a) : 0;
            cr->t_201 = sim_now_us();
            cr->status = (int)st;
            free(body);
            if (st != 201)
                note_detail(b, k, "PUT", st, a);
        } else if (b->work == W_QUERY) {
            capture_url(b, k, "queryStatus", url, sizeof(url));
            long st = request(h, url, "POST", NULL, a);
            if (st == 200)
                read_state(a, cr->state, sizeof(cr->state));
            else
                note_detail(b, k, "queryStatus", st, a);
        } else {
            capture_url(b, k, "stop", url, sizeof(url));
            long st = request(h, url, "POST", NULL, a);
            if (st != 202 && st != 200)
                note_detail(b, k, "stop", st, a);
        }
    }
out:
    free(a);
    curl_slist_free_all(hdr);
    if (h)
        curl_easy_cleanup(h);
    atomic_fetch_sub(&b->clients_left, 1);
    return NULL;
}

/*
 * Runs `work` on creates [begin, end) from `clients` threads while this thread serves the
 * agents; returns once the clients are done and done_fn says the agents' side is too (or
 * timeout_us after the clients). 0, or -1 if the agents' epoll failed.
 */
static int run_clients(struct bench *b, enum work work, unsigned begin, unsigned end,
                       unsigned clients, double rate, int (*done_fn)(struct bench *),
                       int64_t timeout_us)
{
    pthread_t th[CAP_MAX_CLIENTS];
    b->work = work;
    b->begin = begin;
    b->end = end;
    b->rate = rate;
    b->t_begin = sim_now_us();
    atomic_store(&b->next, begin);
    atomic_store(&b->clients_left, clients);
    unsigned started = 0;
    for (; started < clients; started++)
        if (pthread_create(&th[started], NULL, client_main, b) != 0)
            break;
    atomic_fetch_sub(&b->clients_left, clients - started);
    int fatal = 0;
    int64_t deadline = 0;
    while (!fatal && !sim_stop) {
        if (atomic_load(&b->clients_left) == 0) {
            if (!deadline)
                deadline = sim_now_us() + timeout_us;
            if (!done_fn || done_fn(b) || sim_now_us() >= deadline)
                break;
        }
        fatal = sim_poll(&b->sim, CAP_POLL_MS) != 0;
    }
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    return fatal ? -1 : 0;
}

/* ---- phases and report --------------------------------------------------------------------- */

static const struct phase *g_phase; /* the phase done_phase waits for */

/* Every create of the phase that was answered 201 has its ok reply, or a failed one. */
static int done_phase(struct bench *b)
{
    const struct phase *p = g_phase;
    unsigned want = 0, have = 0;
    for (unsigned k = p->first; k < p->first + p->creates; k++) {
        want += b->creates[k].status == 201;
        have += b->creates[k].status == 201 && b->creates[k].t_running;
    }
    return have + b->running_failed >= want;
}

static unsigned g_stops_wanted;

static int done_stops(struct bench *b)
{
    return b->sim.stops >= g_stops_wanted;
}

/* Percentiles of (field - t_put) over the phase's creates that have both. */
struct dist {
    int64_t *v;
    size_t n;
};

static void dist_of(const struct bench *b, const struct phase *p, size_t field, struct dist *d)
{
    d->n = 0;
    for (unsigned k = p->first; k < p->first + p->creates; k++) {
        const struct create *cr = &b->creates[k];
        int64_t t = *(const int64_t *)((const char *)cr + field);
        if (cr->t_put && t)
            d->v[d->n++] = t - cr->t_put;
    }
    qsort(d->v, d->n, sizeof(*d->v), sim_cmp_i64);
}

static void print_dist(const char *label, const struct dist *d)
{
    printf("  %-14s ms: p50 %8.2f  p90 %8.2f  p99 %8.2f  max %8.2f  (%zu samples)\n", label,
           sim_pct_ms(d->v, d->n, 0.5), sim_pct_ms(d->v, d->n, 0.9), sim_pct_ms(d->v, d->n, 0.99),
           sim_pct_ms(d->v, d->n, 1), d->n);
}

struct phase_result {
    unsigned ok201, starts, running, early_starts, dups;
    double p99_start_ms, p50_start_ms, total_s, put_s;
};

static void report_phase(const struct bench *b, const struct phase *p, struct phase_result *r,
                         int64_t *scratch)
{
    memset(r, 0, sizeof(*r));
    int64_t first = 0, last_put = 0, last_running = 0;
    for (unsigned k = p->first; k < p->first + p->creates; k++) {
        const struct create *cr = &b->creates[k];
        r->ok201 += cr->status == 201;
        r->starts += cr->t_start != 0;
        r->running += cr->t_running != 0;
        r->early_starts += cr->t_start && cr->t_start < cr->t_201;
        r->dups += (unsigned)cr->dup_starts;
        if (cr->t_put && (!first || cr->t_put < first))
            first = cr->t_put;
        if (cr->t_put > last_put)
            last_put = cr->t_put;
        if (cr->t_running > last_running)
            last_running = cr->t_running;
    }
    r->put_s = (double)(last_put - first) / 1e6;
    r->total_s = last_running ? (double)(last_running - first) / 1e6 : 0;
    if (p->rate > 0)
        printf("phase %s: %u creates at %.0f/s from %u clients, over %u agents\n", p->name,
               p->creates, p->rate, p->clients, b->sim.n);
    else
        printf("phase %s: %u creates as fast as %u clients go (a burst), over %u agents\n", p->name,
               p->creates, p->clients, b->sim.n);
    printf("  answered 201: %u; starts received: %u (%u before their 201, %u repeated); Running "
           "(ack replied ok): %u\n",
           r->ok201, r->starts, r->early_starts, r->dups, r->running);
    printf("  PUTs sent over %.3f s (%.0f/s); first PUT to last capture Running: %.3f s\n",
           r->put_s, r->put_s > 0 ? (p->creates - 1) / r->put_s : 0.0, r->total_s);
    struct dist d = {scratch, 0};
    dist_of(b, p, offsetof(struct create, t_201), &d);
    print_dist("PUT->201", &d);
    dist_of(b, p, offsetof(struct create, t_start), &d);
    print_dist("PUT->start", &d);
    r->p50_start_ms = sim_pct_ms(d.v, d.n, 0.5);
    r->p99_start_ms = sim_pct_ms(d.v, d.n, 0.99);
    double start_max = sim_pct_ms(d.v, d.n, 1);
    dist_of(b, p, offsetof(struct create, t_running), &d);
    print_dist("PUT->Running", &d);
    printf("BENCH phase=%s creates=%u rate=%.0f clients=%u agents=%u ok201=%u starts=%u "
           "running=%u start_p50_ms=%.2f start_p99_ms=%.2f start_max_ms=%.2f running_p99_ms=%.2f "
           "put_s=%.3f total_s=%.3f\n",
           p->name, p->creates, p->rate, p->clients, b->sim.n, r->ok201, r->starts, r->running,
           r->p50_start_ms, r->p99_start_ms, start_max, sim_pct_ms(d.v, d.n, 0.99), r->put_s,
           r->total_s);
    fflush(stdout);
}

/* Counts the creates whose queryStatus said `state`. */
static unsigned count_state(const struct bench *b, const char *state)
{
    unsigned n = 0;
    for (unsigned k = 0; k < b->total; k++)
        n += strcmp(b->creates[k].state, state) == 0;
    return n;
}

/* ---- set-up -------------------------------------------------------------------------------- */

static int parse_phase(const char *v, struct phase *p)
{
    char name[32];
    unsigned creates = 0, clients = 0;
    double rate = -1;
    char tail = 0;
    if (sscanf(v, "%31[A-Za-z0-9_-]:%u:%lf:%u%c", name, &creates, &rate, &clients, &tail) != 4)
        return -1;
    if (!creates || creates > CAP_MAX_CREATES || !(rate >= 0) || rate > 1e6 || !clients ||
        clients > CAP_MAX_CLIENTS)
        return -1;
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->creates = creates;
    p->rate = rate;
    p->clients = clients;
    return 0;
}

static int read_token(const char *path, char *out, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int ok = fgets(out, (int)size, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    out[strcspn(out, "\r\n ")] = '\0';
    return out[0] ? 0 : -1;
}

static int put_watcher(struct bench *b)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdr = curl_slist_append(NULL, b->auth);
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    static struct answer a;
    char url[CAP_PATH_MAX * 2], body[128];
    snprintf(url, sizeof(url),
             "%s/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Network/networkWatchers/"
             "%s?api-version=" CAP_API_VERSION,
             b->base, b->sub, b->rg, b->watcher);
    snprintf(body, sizeof(body), "{\"location\":\"%s\"}", b->location);
    long st = 0;
    if (h && hdr) {
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, keep_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
        st = request(h, url, "PUT", body, &a);
    }
    curl_slist_free_all(hdr);
    if (h)
        curl_easy_cleanup(h);
    if (st != 200 && st != 201) {
        fprintf(stderr, "bench_agent_captures: PUT watcher %s: HTTP %ld %.300s\n", b->watcher, st,
                a.body);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct bench bench;
    struct bench *b = &bench;
    const char *url = NULL, *tokens = NULL, *api_token_file = NULL;
    long count = -1;
    double rate = 2000, phase_timeout = 60, p99_target = -1, running_target = -1;
    int do_stop = 0;
    b->rg = "rg";
    b->watcher = "nw";
    b->location = "westus2";
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--stop") == 0) {
            do_stop = 1;
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : NULL;
        char *end = NULL;
        if (!v)
            return usage();
        if (strcmp(o, "--url") == 0) {
            url = v;
        } else if (strcmp(o, "--tokens") == 0) {
            tokens = v;
        } else if (strcmp(o, "--api-token-file") == 0) {
            api_token_file = v;
        } else if (strcmp(o, "--subscription") == 0) {
            b->sub = v;
        } else if (strcmp(o, "--resource-group") == 0) {
            b->rg = v;
        } else if (strcmp(o, "--watcher") == 0) {
            b->watcher = v;
        } else if (strcmp(o, "--location") == 0) {
            b->location = v;
        } else if (strcmp(o, "--count") == 0) {
            count = strtol(v, &end, 10);
            if (*end || count < 1 || count > SIM_MAX_AGENTS)
                return usage();
        } else if (strcmp(o, "--rate") == 0) {
            if (sim_parse_secs(v, &rate) != 0 || rate < 1)
                return usage();
        } else if (strcmp(o, "--phase-timeout") == 0) {
            if (sim_parse_secs(v, &phase_timeout) != 0)
                return usage();
        } else if (strcmp(o, "--p99-target-ms") == 0) {
            if (sim_parse_secs(v, &p99_target) != 0)
                return usage();
        } else if (strcmp(o, "--running-target-s") == 0) {
            if (sim_parse_secs(v, &running_target) != 0)
                return usage();
        } else if (strcmp(o, "--phase") == 0) {
            if (b->n_phases == CAP_MAX_PHASES || parse_phase(v, &b->phases[b->n_phases]) != 0)
                return usage();
            b->phases[b->n_phases].first = b->total;
            b->total += b->phases[b->n_phases++].creates;
        } else {
            return usage();
        }
    }
    if (!url || !tokens || !api_token_file || !b->sub || !b->n_phases || b->total > CAP_MAX_CREATES)
        return usage();
    char api_token[512];
    if (read_token(api_token_file, api_token, sizeof(api_token)) != 0) {
        fprintf(stderr, "bench_agent_captures: %s: no token\n", api_token_file);
        return 1;
    }
    snprintf(b->auth, sizeof(b->auth), "Authorization: Bearer %s", api_token);
    memset(api_token, 0, sizeof(api_token));
    snprintf(b->base, sizeof(b->base), "%s", url);
    b->base[strcspn(b->base, "\n")] = '\0';
    size_t bl = strlen(b->base);
    if (bl && b->base[bl - 1] == '/')
        b->base[bl - 1] = '\0';

    struct sim *s = &b->sim;
    int rc = sim_setup(s, url, tokens, count);
    if (rc != 0)
        return rc;
    s->rate = rate;
    s->user = b;
    s->on_start = on_start;
    s->on_reply = on_reply;
    sim_signals();
    b->creates = calloc(b->total, sizeof(*b->creates));
    int64_t *scratch = malloc(b->total * sizeof(*scratch));
    if (!b->creates || !scratch || curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "bench_agent_captures: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&b->detail_mu, NULL);

    printf("bench_agent_captures: %u agents -> %s%s (%.0f connects/s); %u creates in %d "
           "phase(s)\n",
           s->n, b->base, PROTO_CHANNEL_PATH, s->rate, b->total, b->n_phases);
    fflush(stdout);
    int fatal = sim_open(s) != 0;
    int failed = fatal || s->welcomed != s->n;
    if (failed)
        fprintf(stderr, "bench_agent_captures: %u of %u agents welcomed\n", s->welcomed, s->n);
    if (!failed && put_watcher(b) != 0)
        failed = 1;

    struct phase_result res[CAP_MAX_PHASES];
    memset(res, 0, sizeof(res));
    for (int i = 0; i < b->n_phases && !failed && !fatal; i++) {
        const struct phase *p = &b->phases[i];
        g_phase = p;
        fatal = run_clients(b, W_CREATE, p->first, p->first + p->creates, p->clients, p->rate,
                            done_phase, (int64_t)(phase_timeout * 1e6)) != 0;
        report_phase(b, p, &res[i], scratch);
        failed |= res[i].ok201 != p->creates || res[i].starts != p->creates ||
                  res[i].running != p->creates;
    }

    /* The server's own view: queryStatus of every capture. */
    unsigned running = 0, stopped = 0;
    if (!fatal && !failed) {
        fatal = run_clients(b, W_QUERY, 0, b->total, b->phases[0].clients, 0, NULL, 0) != 0;
        running = count_state(b, "Running");
        printf("queryStatus: %u of %u captures Running\n", running, b->total);
        failed |= running != b->total;
    }
    if (do_stop && !fatal && !failed) {
        g_stops_wanted = s->stops + b->total;
        /* Each stop gets two reports replied to: its ack, then the completed. */
        unsigned long long want = s->replies + 2ULL * b->total;
        fatal = run_clients(b, W_STOP, 0, b->total, b->phases[0].clients, 0, done_stops,
                            CAP_STOP_WAIT_US) != 0;
        /* The completed reports are applied after the acks: wait for their replies. */
        for (int64_t until = sim_now_us() + CAP_STOP_WAIT_US;
             !fatal && s->replies < want && sim_now_us() < until;)
            fatal = sim_poll(s, 10) != 0;
        if (!fatal)
            fatal = run_clients(b, W_QUERY, 0, b->total, b->phases[0].clients, 0, NULL, 0) != 0;
        stopped = count_state(b, "Stopped");
        printf("stop: %llu stops received by the agents; queryStatus: %u of %u captures "
               "Stopped\n",
               s->stops, stopped, b->total);
        failed |= stopped != b->total;
    }
    unsigned bad = atomic_load(&b->failed_requests);
    if (bad)
        printf("requests not answered as expected: %u; first: %s\n", bad, b->detail);
    if (s->replies_failed || s->unexpected || s->dropped)
        printf("agents: %llu replies not ok, %llu unexpected messages, %u channels dropped\n",
               s->replies_failed, s->unexpected, s->dropped);
    failed |= bad != 0 || s->replies_failed != 0 || s->dropped != 0;

    fatal |= sim_close(s) != 0;
    printf("\n");
    for (int i = 0; i < b->n_phases; i++) {
        const struct phase *p = &b->phases[i];
        int all = res[i].starts == p->creates;
        if (p99_target >= 0)
            printf("%s %s: create->start p99 %.2f ms (p50 %.2f) <= %.0f ms, %u of %u starts "
                   "received\n",
                   all && res[i].p99_start_ms <= p99_target ? "PASS" : "FAIL", p->name,
                   res[i].p99_start_ms, res[i].p50_start_ms, p99_target, res[i].starts, p->creates);
        if (running_target >= 0)
            printf("%s %s: %u captures created and Running in %.3f s <= %.0f s (first PUT to "
                   "last Running; %u Running, queryStatus %u Running)\n",
                   res[i].running == p->creates && res[i].total_s <= running_target ? "PASS"
                                                                                    : "FAIL",
                   p->name, p->creates, res[i].total_s, running_target, res[i].running, running);
    }
    printf("%s every capture created, started and Running%s\n", failed || fatal ? "FAIL" : "PASS",
           do_stop ? ", then Stopped" : "");
    fflush(stdout);
    free(scratch);
    free(b->creates);
    sim_free(s);
    curl_global_cleanup();
    pthread_mutex_destroy(&b->detail_mu);
    return failed || fatal ? 1 : 0;
}
