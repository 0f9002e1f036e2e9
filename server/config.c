/* The settings table behind config.h. */
#include "server/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/settings.h"
#include "server/http.h"

#define STR(field, name, env, def, help) SETTINGS_STR(struct config, field, name, env, def, help)
#define NUM(field, name, env, def, min, max, help)                                                 \
    SETTINGS_NUM(struct config, field, name, env, def, min, max, help)
#define FLAG(field, name, help) SETTINGS_FLAG(struct config, field, name, help)

static const struct settings_entry settings[] = {
    STR(listen, "listen", "NETWATCH_LISTEN", "127.0.0.1:8080",
        "address:port to serve on ([v6]:port for IPv6; port 0 picks a free one)"),
    STR(db, "db", "NETWATCH_DB", "./var/netwatch.db", "SQLite database file (created if absent)"),
    STR(public_url, "public-url", "NETWATCH_PUBLIC_URL", "",
        "base URL clients reach this server at, used in Azure-AsyncOperation and Location "
        "headers (default http://<listen address>)"),
    STR(log_level, "log-level", "NETWATCH_LOG_LEVEL", "info", "debug, info, warn or error"),
    STR(token_file, "token-file", "NETWATCH_TOKEN_FILE", "./var/tokens",
        "API bearer tokens, stored as SHA-256 hashes (see 'netwatchd token add')"),
    STR(tls_cert, "tls-cert", "NETWATCH_TLS_CERT", "",
        "PEM certificate (chain) to serve HTTPS with; with --tls-key"),
    STR(tls_key, "tls-key", "NETWATCH_TLS_KEY", "", "PEM private key of --tls-cert"),
    STR(ready_file, "ready-file", "NETWATCH_READY_FILE", "",
        "file to write the bound port to once serving (for scripts and tests)"),
    NUM(threads, "threads", "NETWATCH_THREADS", "2", 1, 64, "HTTP worker threads"),
    NUM(write_workers, "write-workers", "NETWATCH_WRITE_WORKERS", "64", 1, 1024,
        "threads that run changing requests while they wait for their commit (bounds the writes "
        "in flight, and so the size of each group commit)"),
    NUM(max_connections, "max-connections", "NETWATCH_MAX_CONNECTIONS", "1024", 16, 65536,
        "concurrent HTTP connections of API clients (agent channels have --max-agents)"),
    NUM(max_agents, "max-agents", "NETWATCH_MAX_AGENTS", "16384", 1, 1000000,
        "connected agents (WebSocket channels); past it an agent is answered 503 until one leaves"),
    NUM(agent_heartbeat, "agent-heartbeat-seconds", "NETWATCH_AGENT_HEARTBEAT_SECONDS", "15", 1,
        3600,
        "ping interval of agent channels; an agent silent for 3 intervals is disconnected "
        "(its running captures then show Unknown)"),
    NUM(dispatch_deadline_seconds, "dispatch-deadline-seconds",
        "NETWATCH_DISPATCH_DEADLINE_SECONDS", "30", 1, 3600,
        "how long an agent has to acknowledge a start before that session fails; the create "
        "fails (AgentNotConnected) when none started"),
    NUM(backstop_grace, "backstop-grace-seconds", "NETWATCH_BACKSTOP_GRACE_SECONDS", "120", 0,
        86400,
        "how long past its time limit a running session may go without its agent reporting the "
        "end before the server ends it (Error/AgentStopped) and stops it on the agent"),
    NUM(storage_grant_seconds, "storage-grant-seconds", "NETWATCH_STORAGE_GRANT_SECONDS", "900", 1,
        86400,
        "lifetime of the write-only SAS URL an agent gets per capture file (blobGrant); an upload "
        "that outlives it asks for a new one and resumes"),
    FLAG(check_config, "check-config", "validate the configuration and the database, then exit"),
    FLAG(help, "help", "print this help"),
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

enum cp_err config_load(struct config *c, int argc, char **argv, int first, struct cp_error *e)
{
    memset(c, 0, sizeof(*c));
    enum cp_err err = settings_load(settings, NSETTINGS, c, argc, argv, first, e);
    if (err != CP_OK)
        return err;
    char host[64];
    unsigned port;
    struct in6_addr addr;
    if (http_parse_listen(c->listen, host, sizeof(host), &port) != 0 ||
        (inet_pton(AF_INET, host, &addr) != 1 && inet_pton(AF_INET6, host, &addr) != 1))
        return cp_fail(e, CP_EINVAL, "", "listen",
                       "listen: expected <IP address>:<port 0-65535>, got '%s'", c->listen);
    if (!c->tls_cert[0] != !c->tls_key[0])
        return cp_fail(e, CP_EINVAL, "", "tls-cert", "--tls-cert and --tls-key go together");
    enum log_level lvl;
    if (log_level_parse(c->log_level, &lvl) != 0)
        return cp_fail(e, CP_EINVAL, "", "log-level",
                       "log-level: expected debug, info, warn or error");
    if (c->public_url[0]) {
        size_t len = strlen(c->public_url);
        if (strncmp(c->public_url, "http://", 7) != 0 && strncmp(c->public_url, "https://", 8) != 0)
            return cp_fail(e, CP_EINVAL, "", "public-url", "public-url must start with http(s)://");
        if (c->public_url[len - 1] == '/')
            c->public_url[len - 1] = '\0';
    }
    return CP_OK;
}

void config_usage(FILE *out)
{
    fprintf(out, "usage: netwatchd [options]\n"
                 "       netwatchd token add --subscriptions SUB[,SUB...]|'*' [--name NAME] "
                 "[--token-file PATH]\n"
                 "       netwatchd agent add <resource-id> [--instance ID] [--db PATH]\n"
                 "       netwatchd agent revoke <agent-id | resource-id [--instance ID]> "
                 "[--db PATH]\n"
                 "       netwatchd agent list [--db PATH]\n"
                 "       netwatchd storage add <storage-id> --key-file PATH|- [--account NAME] "
                 "[--endpoint URL] [--no-verify] [--db PATH]\n"
                 "       netwatchd storage remove <storage-id> [--db PATH]\n"
                 "       netwatchd storage list [--db PATH]\n"
                 "\noptions (environment variable, default):\n");
    settings_usage(settings, NSETTINGS, out);
}
