/*
 * netwatchd: the packet-capture control plane. Wires config, store, core, auth, API and HTTP;
 * serves until SIGTERM/SIGINT, then stops accepting, lets in-flight requests finish and closes
 * the store. `netwatchd token add` manages API tokens, `netwatchd agent ...` the agent registry
 * (server/agent_cli.c), `netwatchd storage ...` the storage accounts (server/storage_cli.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "api/api.h"
#include "common/log.h"
#include "core/core.h"
#include "db/store.h"
#include "server/agent_cli.h"
#include "server/storage_cli.h"
#include "core/agents.h"
#include "server/agent_glue.h"
#include "server/auth.h"
#include "server/config.h"
#include "server/http.h"

#define SHUTDOWN_GRACE_MS 10000

static int token_add(int argc, char **argv)
{
    const char *file = getenv("NETWATCH_TOKEN_FILE");
    const char *name = "default";
    const char *subs = NULL;
    if (!file)
        file = "./var/tokens";
    for (int i = 3; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--token-file") == 0 && v)
            file = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && v)
            name = argv[++i];
        else if (strcmp(argv[i], "--subscriptions") == 0 && v)
            subs = argv[++i];
        else {
            fprintf(stderr, "usage: netwatchd token add --subscriptions SUB[,SUB...]|'*' "
                            "[--name NAME] [--token-file PATH]\n");
            return 2;
        }
    }
    if (!subs) {
        fprintf(stderr, "netwatchd token add: --subscriptions is required ('*' for all)\n");
        return 2;
    }
    char token[AUTH_TOKEN_LEN];
    struct cp_error e = {{0}, {0}, {0}};
    if (auth_add(file, name, subs, token, &e) != CP_OK) {
        fprintf(stderr, "netwatchd token add: %s\n", e.message);
        return 1;
    }
    /* The only time the token is ever shown: only its hash is kept. */
    printf("%s\n", token);
    return 0;
}

/* Writes the port to path atomically (temp file + rename), so readers never see half. */
static int write_ready_file(const char *path, unsigned port)
{
    char tmp[CONFIG_PATH_MAX + 8];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int ok = fprintf(f, "%u\n", port) > 0;
    ok &= fclose(f) == 0;
    return ok && rename(tmp, path) == 0 ? 0 : -1;
}

#define PEM_MAX (64 * 1024)

/* A PEM file's text (caller frees), or NULL with e filled: missing, unreadable, too large, or
 * not PEM at all. */
static char *read_pem(const char *path, struct cp_error *e)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        cp_fail(e, CP_EIO, "", "", "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(PEM_MAX + 1);
    size_t n = buf ? fread(buf, 1, PEM_MAX + 1, f) : 0;
    int bad = ferror(f);
    fclose(f);
    if (!buf || bad || n == 0 || n > PEM_MAX) {
        free(buf);
        cp_fail(e, CP_EINVAL, "", "", "%s: not a readable PEM file of at most %d bytes", path,
                PEM_MAX);
        return NULL;
    }
    buf[n] = '\0';
    if (!strstr(buf, "-----BEGIN ")) {
        free(buf);
        cp_fail(e, CP_EINVAL, "", "", "%s: no PEM block in it", path);
        return NULL;
    }
    return buf;
}

/* Descriptors besides connections: the database and its WAL, epoll sets, eventfds, timers, the
 * log, MHD's own pipes (a few per thread). */
#define NOFILE_MARGIN 256

/* One descriptor per connection and per agent channel (three under TLS: MHD relays each
 * channel through a socketpair), so 10,000 agents need more than the usual soft limit of 1,024.
 * The soft limit is raised to the hard one when it is short (the hard one takes privilege to
 * raise, so it is only reported). */
static void raise_nofile(const struct config *cfg, int tls)
{
    rlim_t need =
        (rlim_t)cfg->max_connections + (rlim_t)cfg->max_agents * (tls ? 3 : 1) + NOFILE_MARGIN;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_warn("event=nofile_raise_failed soft=%llu hard=%llu", (unsigned long long)was,
                     (unsigned long long)rl.rlim_max);
            rl.rlim_cur = was;
        } else {
            log_info("event=nofile_raised from=%llu to=%llu needed=%llu", (unsigned long long)was,
                     (unsigned long long)rl.rlim_cur, (unsigned long long)need);
        }
    }
    if (rl.rlim_cur < need)
        log_warnx("event=nofile_low limit=%llu needed=%llu max_connections=%ld max_agents=%ld "
                  "hint=\"raise the hard limit (ulimit -Hn, systemd LimitNOFILE=) or lower "
                  "--max-agents/--max-connections\"",
                  (unsigned long long)rl.rlim_cur, (unsigned long long)need, cfg->max_connections,
                  cfg->max_agents);
}

static int serve(const struct config *cfg)
{
    /* Signals are taken by sigwait() once serving; blocked first, so that every thread started
     * from here (store writer, dispatcher, glue, hub, HTTP) inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int rc = 1;
    struct db_store *store = NULL;
    struct core *core = NULL;
    struct auth *auth = NULL;
    struct metrics *metrics = NULL;
    struct http_server *http = NULL;
    struct agent_glue *glue = NULL;
    struct hub *hub = NULL;
    char *tls_cert = NULL, *tls_key = NULL;
    struct cp_error e = {{0}, {0}, {0}};

    struct db_store_options so = {
        .path = cfg->db, .readers = (int)cfg->threads + 2, .busy_timeout_ms = 5000};
    if (db_store_open(&so, &store, &e) != CP_OK) {
        log_error("event=store_open_failed path=\"%s\" detail=\"%s\"", cfg->db, e.message);
        goto cleanup;
    }
    if (auth_load(cfg->token_file, 0, &auth, &e) != CP_OK) {
        log_error("event=token_file_invalid detail=\"%s\"", e.message);
        goto cleanup;
    }
    if (auth_count(auth) == 0)
        log_warnx("event=no_tokens token_file=\"%s\" hint=\"every API call will get 401; run "
                  "'netwatchd token add'\"",
                  cfg->token_file);
    if (cfg->tls_cert[0] &&
        (!(tls_cert = read_pem(cfg->tls_cert, &e)) || !(tls_key = read_pem(cfg->tls_key, &e)))) {
        log_error("event=tls_files_invalid detail=\"%s\"", e.message);
        goto cleanup;
    }
    raise_nofile(cfg, tls_cert != NULL);
    if (cfg->check_config) {
        printf("configuration ok: db=%s schema=%d tokens=%d\n", cfg->db,
               db_store_schema_version(store), auth_count(auth));
        rc = 0;
        goto cleanup;
    }
    /* The agent glue is core's port to the agents, so it is made first, and given its hub
     * before core exists: core's dispatcher starts with the creates still waiting from before
     * a restart and hands them to the glue at once, which sends through the hub (to no one
     * yet: the hub is not serving; they go out again after each agent's hello). */
    if (agent_glue_new(&glue) != CP_OK)
        goto cleanup;
    agent_glue_set_timers(glue, (int)cfg->agent_heartbeat, cfg->dispatch_deadline_seconds * 1000LL,
                          cfg->backstop_grace * 1000LL);
    agent_glue_set_grant_lifetime(glue, cfg->storage_grant_seconds * 1000LL);
    struct hub_options hub_opt = {.heartbeat_ms = (unsigned)cfg->agent_heartbeat * 1000u,
                                  .max_channels = (unsigned)cfg->max_agents};
    if (hub_new(&hub_opt, agent_glue_ops(glue), &hub) != CP_OK) {
        log_error("event=hub_failed");
        goto cleanup;
    }
    agent_glue_set_hub(glue, hub);
    if (core_new(store, agent_glue_port(glue), &core) != CP_OK || !(metrics = metrics_new()))
        goto cleanup;
    agent_glue_set_core(glue, core);

    if (core_agent_reset_connections(store, &e) != CP_OK) {
        log_error("event=agents_reset_failed detail=\"%s\"", e.message);
        goto cleanup;
    }
    /* The agent hub's thread inherits the signal mask set above. */
    if (hub_start(hub) != CP_OK) {
        log_error("event=hub_failed");
        goto cleanup;
    }
    if (http_bind(cfg->listen, &http, &e) != CP_OK) {
        log_error("event=listen_failed detail=\"%s\"", e.message);
        goto cleanup;
    }
    char host[64];
    unsigned port;
    http_parse_listen(cfg->listen, host, sizeof(host), &port);
    port = http_port(http);
    const char *scheme = tls_cert ? "https" : "http";
    char public_url[600];
    if (cfg->public_url[0])
        snprintf(public_url, sizeof(public_url), "%s", cfg->public_url);
    else if (strchr(host, ':'))
        snprintf(public_url, sizeof(public_url), "%s://[%s]:%u", scheme, host, port);
    else
        snprintf(public_url, sizeof(public_url), "%s://%s:%u", scheme, host, port);
    /* A client polling a create or stop a moment after it was accepted is usually polling an
     * agent round trip of a few milliseconds: answer when it ends (at most this long) rather
     * than send the client away for the Retry-After second. */
    struct api_ctx api = {.core = core,
                          .public_url = public_url,
                          .auth = auth_check,
                          .auth_ctx = auth,
                          .monitor_wait_ms = 500};
    struct http_options ho = {.threads = (unsigned)cfg->threads,
                              .max_connections = (unsigned)cfg->max_connections,
                              .max_agents = (unsigned)cfg->max_agents,
                              .write_workers = (unsigned)cfg->write_workers,
                              .tls_cert_pem = tls_cert,
                              .tls_key_pem = tls_key,
                              .api = &api,
                              .metrics = metrics,
                              .hub = hub};
    if (http_serve(http, &ho, &e) != CP_OK) {
        log_error("event=serve_failed detail=\"%s\"", e.message);
        goto cleanup;
    }
    if (cfg->ready_file[0] && write_ready_file(cfg->ready_file, port) != 0) {
        log_warn("event=ready_file_failed path=\"%s\"", cfg->ready_file);
        goto cleanup;
    }
    log_info("event=serving listen=%s:%u public_url=%s db=\"%s\" schema=%d threads=%ld", host, port,
             public_url, cfg->db, db_store_schema_version(store), cfg->threads);

    int sig = 0;
    while (sigwait(&sigs, &sig) != 0)
        ;
    log_info("event=shutdown signal=%d", sig);
    rc = 0;
cleanup:
    /* The hub first (under TLS, MHD still owns the upgraded sockets), then HTTP; the glue may still
     * answer through the hub while it drains, so the hub is freed after it. */
    if (hub)
        hub_stop(hub);
    http_stop(http, SHUTDOWN_GRACE_MS);
    agent_glue_stop(glue);
    core_free(core); /* its dispatcher may still call the glue's port, which uses the hub */
    hub_free(hub);
    agent_glue_free(glue);
    db_store_close(store);
    metrics_free(metrics);
    auth_free(auth);
    free(tls_cert);
    if (tls_key)
        memset(tls_key, 0, strlen(tls_key));
    free(tls_key);
    if (rc == 0 && !cfg->check_config)
        log_info("event=stopped");
    return rc;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "token") == 0 && strcmp(argv[2], "add") == 0)
        return token_add(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "agent") == 0)
        return agent_cli_main(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "storage") == 0)
        return storage_cli_main(argc, argv);
    struct config cfg;
    struct cp_error e = {{0}, {0}, {0}};
    if (config_load(&cfg, argc, argv, 1, &e) != CP_OK) {
        fprintf(stderr, "netwatchd: %s\n", e.message);
        return 2;
    }
    if (cfg.help) {
        config_usage(stdout);
        return 0;
    }
    enum log_level lvl = LOG_LEVEL_INFO;
    log_level_parse(cfg.log_level, &lvl);
    log_level = lvl;
    return serve(&cfg);
}
