/* The settings table behind config.h. */
#include "server/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/http.h"

enum setting_type { SET_STRING, SET_LONG, SET_FLAG };

struct setting {
    const char *name; /* --name */
    const char *env;  /* NETWATCH_* or NULL */
    enum setting_type type;
    size_t offset;
    size_t size; /* strings: buffer size */
    const char *def;
    long min, max;
    const char *help;
};

#define STR(field, name, env, def, help)                                                           \
    {                                                                                              \
        name, env, SET_STRING, offsetof(struct config, field),                                     \
            sizeof(((struct config *)0)->field), def, 0, 0, help                                   \
    }
#define NUM(field, name, env, def, min, max, help)                                                 \
    {                                                                                              \
        name, env, SET_LONG, offsetof(struct config, field), 0, def, min, max, help                \
    }
#define FLAG(field, name, help)                                                                    \
    {                                                                                              \
        name, NULL, SET_FLAG, offsetof(struct config, field), 0, "0", 0, 1, help                   \
    }

static const struct setting settings[] = {
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
        "concurrent HTTP connections"),
    FLAG(check_config, "check-config", "validate the configuration and the database, then exit"),
    FLAG(help, "help", "print this help"),
};

#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static enum cp_err apply(struct config *c, const struct setting *s, const char *value,
                         const char *from, struct cp_error *e)
{
    char *field = (char *)c + s->offset;
    if (s->type == SET_STRING) {
        size_t len = strlen(value);
        if (len >= s->size)
            return cp_fail(e, CP_EINVAL, "", s->name, "%s (%s): longer than %zu characters",
                           s->name, from, s->size - 1);
        memcpy(field, value, len + 1);
        return CP_OK;
    }
    if (s->type == SET_FLAG) {
        *(int *)(void *)field = 1;
        return CP_OK;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || !*value || *end || v < s->min || v > s->max)
        return cp_fail(e, CP_EINVAL, "", s->name, "%s (%s): expected an integer from %ld to %ld",
                       s->name, from, s->min, s->max);
    *(long *)(void *)field = v;
    return CP_OK;
}

enum cp_err config_load(struct config *c, int argc, char **argv, int first, struct cp_error *e)
{
    memset(c, 0, sizeof(*c));
    enum cp_err err = CP_OK;
    for (size_t i = 0; i < NSETTINGS && err == CP_OK; i++) {
        if (settings[i].type != SET_FLAG)
            err = apply(c, &settings[i], settings[i].def, "default", e);
    }
    for (size_t i = 0; i < NSETTINGS && err == CP_OK; i++) {
        const char *v = settings[i].env ? getenv(settings[i].env) : NULL;
        if (v)
            err = apply(c, &settings[i], v, settings[i].env, e);
    }
    for (int a = first; a < argc && err == CP_OK; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0)
            return cp_fail(e, CP_EINVAL, "", "", "unexpected argument '%s'", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct setting *s = NULL;
        for (size_t i = 0; i < NSETTINGS; i++) {
            if (strlen(settings[i].name) == nlen && strncmp(settings[i].name, name, nlen) == 0)
                s = &settings[i];
        }
        if (!s)
            return cp_fail(e, CP_EINVAL, "", "", "unknown option '%s' (see --help)", arg);
        const char *value = eq ? eq + 1 : NULL;
        if (s->type != SET_FLAG && !value) {
            if (a + 1 >= argc)
                return cp_fail(e, CP_EINVAL, "", s->name, "--%s needs a value", s->name);
            value = argv[++a];
        }
        err = apply(c, s, value ? value : "1", "flag", e);
    }
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
                 "\noptions (environment variable, default):\n");
    for (size_t i = 0; i < NSETTINGS; i++) {
        const struct setting *s = &settings[i];
        fprintf(out, "  --%-16s %s\n", s->name, s->help);
        if (s->type != SET_FLAG)
            fprintf(out, "  %-18s (%s, default '%s')\n", "", s->env, s->def);
    }
}
