/*
 * bench_agent_sim: N simulated netwatch agents in one process, one thread, one epoll loop
 * (sim.h describes each agent), held open so that run.sh can read netwatchd's memory.
 *
 *   bench_agent_sim --url http://HOST:PORT --tokens FILE [--count N] [--rate R] [--hold S]
 *                   [--open-timeout S] [--channel-timeout S] [--close-timeout S]
 *                   [--ready-file PATH]
 *
 * Phases:
 *   open   connections are started at most R per second (default 2000: no SYN flood, and the
 *          server's accept backlog stays short); the phase ends when every channel is welcomed
 *          or has failed, or after --open-timeout (default 300 s). A channel not welcomed within
 *          --channel-timeout (default 120 s) of its connect fails ("timeout"). Then the summary
 *          goes to stdout and, if asked, "welcomed=W failed=F" to the ready file.
 *   hold   the channels stay open (answering pings, and any start or stop) for --hold seconds
 *          (default 30), or until SIGTERM, SIGINT or SIGUSR1.
 *   close  every open channel sends close 1000 and waits up to --close-timeout (default 10 s)
 *          for the server's close.
 * The report ends with one "BENCH key=value ..." line for scripts (bench/agents/run.sh).
 *
 * RLIMIT_NOFILE is raised to N + 64 when the hard limit allows it (or the process may raise
 * the hard limit: root with CAP_SYS_RESOURCE); otherwise the simulator refuses to start.
 *
 * Exit status: 0 the run completed (whatever failed among the channels: that is the report);
 * 1 set-up failed (tokens, address, descriptors, epoll); 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "bench/agents/sim.h"

static int usage(void)
{
    fprintf(stderr, "usage: bench_agent_sim --url http://HOST:PORT --tokens FILE [--count N] "
                    "[--rate R] [--hold S]\n"
                    "       [--open-timeout S] [--channel-timeout S] [--close-timeout S] "
                    "[--ready-file PATH]\n");
    return 2;
}

int main(int argc, char **argv)
{
    static struct sim sim;
    struct sim *s = &sim;
    const char *url = NULL, *tokens = NULL, *ready = NULL;
    long count = -1;
    double rate = 2000, hold_s = 30, open_s = 300, channel_s = 120, close_s = 10;
    for (int i = 1; i < argc; i += 2) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!v)
            return usage();
        if (strcmp(o, "--url") == 0) {
            url = v;
        } else if (strcmp(o, "--tokens") == 0) {
            tokens = v;
        } else if (strcmp(o, "--ready-file") == 0) {
            ready = v;
        } else if (strcmp(o, "--count") == 0) {
            count = strtol(v, &end, 10);
            if (*end || count < 1 || count > SIM_MAX_AGENTS)
                return usage();
        } else if (strcmp(o, "--rate") == 0) {
            if (sim_parse_secs(v, &rate) != 0 || rate < 1)
                return usage();
        } else if (strcmp(o, "--hold") == 0) {
            if (sim_parse_secs(v, &hold_s) != 0)
                return usage();
        } else if (strcmp(o, "--open-timeout") == 0) {
            if (sim_parse_secs(v, &open_s) != 0)
                return usage();
        } else if (strcmp(o, "--channel-timeout") == 0) {
            if (sim_parse_secs(v, &channel_s) != 0)
                return usage();
        } else if (strcmp(o, "--close-timeout") == 0) {
            if (sim_parse_secs(v, &close_s) != 0)
                return usage();
        } else {
            return usage();
        }
    }
    if (!url || !tokens)
        return usage();
    int rc = sim_setup(s, url, tokens, count);
    if (rc != 0)
        return rc;
    s->rate = rate;
    s->open_timeout_s = open_s;
    s->channel_timeout_s = channel_s;
    s->close_timeout_s = close_s;
    s->ready_file = ready;
    sim_signals();

    printf("bench_agent_sim: %u agents -> http://%s:%u%s, at most %.0f connects/s\n", s->n, s->host,
           s->port, PROTO_CHANNEL_PATH, s->rate);
    fflush(stdout);

    /* ---- open ---- */
    int fatal = sim_open(s) != 0;

    /* ---- hold ---- */
    int64_t hold_start = sim_now_us();
    int64_t hold_end = hold_start + (int64_t)(hold_s * 1e6);
    while (!sim_stop && !fatal) {
        int64_t now = sim_now_us();
        if (now >= hold_end)
            break;
        int64_t left_ms = (hold_end - now + 999) / 1000;
        fatal = sim_poll(s, left_ms < 100 ? (int)left_ms : 100) != 0;
    }
    double held_s = (double)(sim_now_us() - hold_start) / 1e6;
    unsigned open_at_hold_end = s->open_now;
    unsigned pinged = 0;
    for (unsigned i = 0; i < s->started; i++)
        pinged += s->conns[i].st == SIM_C_OPEN && s->conns[i].welcomed && s->conns[i].pings > 0;
    if (fatal)
        fprintf(stderr, "bench_agent_sim: epoll_wait: %s\n", strerror(errno));

    /* ---- close ---- */
    fatal |= sim_close(s) != 0;

    /* ---- report ---- */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    const int64_t *lat = s->lat_welcome, *up = s->lat_up;
    size_t nl = s->n_lat;
    printf("hold: %.1f s; open at its end %u; pinged during the hold %u (%llu pings, each "
           "answered by wslay with a pong); dropped by the server %u\n",
           held_s, open_at_hold_end, pinged, s->pings_hold, s->dropped);
    if (s->dropped)
        printf("  dropped: close 1000 %u, 1001 %u, 1008 %u, other %u, no close frame %u; first: "
               "%s\n",
               s->drop_codes[0], s->drop_codes[1], s->drop_codes[2], s->drop_codes[3],
               s->drop_codes[4], s->drop_detail);
    printf("close: %u closed with 1000 and answered by the server, %u not answered within %.0f s\n",
           s->closed_clean, s->close_unanswered, s->close_timeout_s);
    printf("messages: commands %llu, replies %llu, unexpected %llu\n", s->commands, s->replies,
           s->unexpected);
    printf("self: cpu %.2f s, max RSS %ld kB\n", cpu, ru.ru_maxrss);
    printf("BENCH requested=%u started=%u welcomed=%u failed=%u", s->n, s->started, s->welcomed,
           sim_failed(s));
    for (int k = 1; k < SIM_F_KINDS; k++)
        printf(" f_%s=%u", sim_fail_names[k], s->fails[k]);
    printf(" open_s=%.3f up_p50_ms=%.2f up_p99_ms=%.2f welcome_p50_ms=%.2f welcome_p90_ms=%.2f "
           "welcome_p99_ms=%.2f welcome_max_ms=%.2f",
           s->welcomed ? (double)(s->last_welcome - s->t0) / 1e6 : 0.0, sim_pct_ms(up, nl, 0.5),
           sim_pct_ms(up, nl, 0.99), sim_pct_ms(lat, nl, 0.5), sim_pct_ms(lat, nl, 0.9),
           sim_pct_ms(lat, nl, 0.99), sim_pct_ms(lat, nl, 1));
    printf(" hold_s=%.1f open_at_hold_end=%u pinged=%u pings_hold=%llu dropped=%u closed_clean=%u "
           "close_unanswered=%u commands=%llu replies=%llu unexpected=%llu cpu_s=%.2f "
           "maxrss_kb=%ld\n",
           held_s, open_at_hold_end, pinged, s->pings_hold, s->dropped, s->closed_clean,
           s->close_unanswered, s->commands, s->replies, s->unexpected, cpu, ru.ru_maxrss);
    fflush(stdout);
    sim_free(s);
    return fatal ? 1 : 0;
}
