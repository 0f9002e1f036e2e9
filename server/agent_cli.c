/* `netwatchd agent add|revoke|list` (see agent_cli.h): argument parsing, the token, output. */
#include "server/agent_cli.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

#include "common/armid.h"
#include "common/timefmt.h"
#include "core/agents.h"
#include "db/store.h"
#include "server/cli_store.h"

struct cli_args {
    const char *cmd;      /* add | revoke | list */
    const char *target;   /* the positional argument, or NULL */
    const char *instance; /* --instance, or NULL */
    const char *db;       /* --db, or NULL for the server's default */
};

void agent_cli_usage(FILE *out)
{
    fprintf(out, "usage: netwatchd agent add <resource-id> [--instance ID] [--db PATH]\n"
                 "       netwatchd agent revoke <agent-id | resource-id [--instance ID]> "
                 "[--db PATH]\n"
                 "       netwatchd agent list [--db PATH]\n");
}

/* Fills a from argv[3..]; -1 on anything unexpected. */
/* cli_group.parse: the arguments of the command argv[2], and --db for the frame. */
static int parse_args(int argc, char **argv, void *args, const char **db)
{
    struct cli_args *a = args;
    memset(a, 0, sizeof(*a));
    a->cmd = argv[2];
    for (int i = 3; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--instance") == 0 && v && !a->instance)
            a->instance = argv[++i];
        else if (strcmp(argv[i], "--db") == 0 && v && !a->db)
            a->db = argv[++i];
        else if (argv[i][0] != '-' && !a->target)
            a->target = argv[i];
        else
            return -1;
    }
    *db = a->db;
    /* The command is one of the group's (the frame checked): list takes no target. */
    if (strcmp(a->cmd, "list") == 0)
        return a->target || a->instance ? -1 : 0;
    return a->target ? 0 : -1;
}

/* A fresh token: "nwa_" and 64 hex digits of 32 bytes from OpenSSL's CSPRNG. */
static int make_token(char out[CORE_AGENT_TOKEN_LEN])
{
    unsigned char raw[32];
    static const char hexd[] = "0123456789abcdef";
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return -1;
    size_t p = strlen(CORE_AGENT_TOKEN_PREFIX);
    memcpy(out, CORE_AGENT_TOKEN_PREFIX, p);
    for (size_t i = 0; i < sizeof(raw); i++) {
        out[p + 2 * i] = hexd[raw[i] >> 4];
        out[p + 2 * i + 1] = hexd[raw[i] & 15];
    }
    out[CORE_AGENT_TOKEN_LEN - 1] = '\0';
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

static int failed(const char *cmd, enum cp_err err, const struct cp_error *e)
{
    fprintf(stderr, "netwatchd agent %s: %s\n", cmd, e->message[0] ? e->message : cp_err_name(err));
    return 1;
}

static int cmd_add(struct db_store *s, const void *args)
{
    const struct cli_args *a = args;
    char token[CORE_AGENT_TOKEN_LEN];
    if (make_token(token) != 0) {
        fprintf(stderr, "netwatchd agent add: no randomness for a token\n");
        return 1;
    }
    struct db_agent agent;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_agent_register(s, a->target, a->instance, token, &agent, &e);
    if (err != CP_OK) {
        OPENSSL_cleanse(token, sizeof(token));
        return failed("add", err, &e);
    }
    /* The only time the token is ever shown: only its hash is kept. */
    printf("%s\n", token);
    fflush(stdout);
    OPENSSL_cleanse(token, sizeof(token));
    fprintf(stderr, "agent %s registered for %s%s%s\n", agent.id, agent.resource_id,
            agent.instance_id[0] ? " instance " : "", agent.instance_id);
    db_agent_clear(&agent);
    return 0;
}

static int cmd_revoke(struct db_store *s, const void *args)
{
    const struct cli_args *a = args;
    struct db_agent agent;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err;
    int was_revoked = 0;
    if (armid_is_guid(a->target)) {
        if (a->instance) {
            fprintf(stderr, "netwatchd agent revoke: --instance goes with a resource id, not an "
                            "agent id\n");
            return 2;
        }
        err = core_agent_revoke(s, a->target, &agent, &was_revoked, &e);
    } else {
        err = core_agent_revoke_resource(s, a->target, a->instance, &agent, &e);
    }
    if (err != CP_OK)
        return failed("revoke", err, &e);
    fprintf(stderr, "agent %s %s\n", agent.id, was_revoked ? "was already revoked" : "revoked");
    db_agent_clear(&agent);
    return 0;
}

static const char *or_dash(const char *s)
{
    return s[0] ? s : "-";
}

static enum cp_err print_agent(const struct db_agent *a, void *arg)
{
    (void)arg;
    char seen[TIMEFMT_RFC3339_LEN] = "-";
    if (a->last_seen_ms)
        timefmt_rfc3339(a->last_seen_ms, seen, sizeof(seen));
    /* The version came from the agent: core let in no control characters (C0, DEL, C1). */
    printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a->id, a->resource_id, or_dash(a->instance_id),
           a->revoked ? "revoked" : "active", a->connected && !a->revoked ? "yes" : "no", seen,
           or_dash(a->agent_version));
    return CP_OK;
}

static int cmd_list(struct db_store *s, const void *args)
{
    (void)args;
    struct cp_error e = {{0}, {0}, {0}};
    printf("ID\tRESOURCE\tINSTANCE\tSTATE\tCONNECTED\tLAST_SEEN\tVERSION\n");
    enum cp_err err = core_agent_list(s, NULL, print_agent, NULL, &e);
    if (err != CP_OK)
        return failed("list", err, &e);
    return fflush(stdout) == 0 ? 0 : 1;
}

int agent_cli_main(int argc, char **argv)
{
    static const struct cli_command commands[] = {
        {"add", cmd_add}, {"revoke", cmd_revoke}, {"list", cmd_list}};
    static const struct cli_group group = {"agent", agent_cli_usage, parse_args, commands,
                                           sizeof(commands) / sizeof(commands[0])};
    struct cli_args a;
    return cli_group_main(&group, argc, argv, &a);
}
