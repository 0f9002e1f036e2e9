/* `netwatchd storage add|remove|list` (see storage_cli.h): arguments, the key file, output. */
#include "server/storage_cli.h"

#include <openssl/crypto.h>
#include <string.h>

#include "common/timefmt.h"
#include "core/storage_accounts.h"
#include "server/cli_store.h"
#include "storage/container.h"

struct cli_args {
    const char *cmd;      /* add | remove | list */
    const char *target;   /* the storage id, or NULL */
    const char *key_file; /* --key-file, "-" = stdin */
    const char *account;  /* --account */
    const char *endpoint; /* --endpoint */
    const char *db;       /* --db */
    int no_verify;        /* --no-verify: register without creating the container */
};

void storage_cli_usage(FILE *out)
{
    fprintf(out, "usage: netwatchd storage add <storage-id> --key-file PATH|- [--account NAME] "
                 "[--endpoint URL] [--no-verify] [--db PATH]\n"
                 "       netwatchd storage remove <storage-id> [--db PATH]\n"
                 "       netwatchd storage list [--db PATH]\n");
}

static int take(const char **slot, const char *v)
{
    if (*slot || !v)
        return -1;
    *slot = v;
    return 0;
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
        int rc;
        if (strcmp(argv[i], "--key-file") == 0)
            rc = take(&a->key_file, v), i++;
        else if (strcmp(argv[i], "--account") == 0)
            rc = take(&a->account, v), i++;
        else if (strcmp(argv[i], "--endpoint") == 0)
            rc = take(&a->endpoint, v), i++;
        else if (strcmp(argv[i], "--db") == 0)
            rc = take(&a->db, v), i++;
        else if (strcmp(argv[i], "--no-verify") == 0)
            rc = a->no_verify++ ? -1 : 0;
        else if (argv[i][0] != '-')
            rc = take(&a->target, argv[i]);
        else
            rc = -1;
        if (rc != 0)
            return -1;
    }
    *db = a->db;
    int add = strcmp(a->cmd, "add") == 0;
    if (!add && (a->key_file || a->account || a->endpoint || a->no_verify))
        return -1;
    /* The command is one of the group's (the frame checked): list takes no target. */
    if (strcmp(a->cmd, "list") == 0)
        return a->target ? -1 : 0;
    return a->target && (!add || a->key_file) ? 0 : -1;
}

/* Reads the key (one line; surrounding whitespace dropped) into key. 0, or -1 said on stderr. */
static int read_key(const char *path, char key[DB_STORAGE_KEY_MAX])
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        fprintf(stderr, "netwatchd storage add: cannot read the key file %s\n", path);
        return -1;
    }
    char buf[DB_STORAGE_KEY_MAX + 2];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    int bad = ferror(f) || !feof(f);
    if (f != stdin)
        fclose(f);
    buf[n] = '\0';
    char *p = buf;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    size_t len = strlen(p);
    while (len &&
           (p[len - 1] == ' ' || p[len - 1] == '\t' || p[len - 1] == '\n' || p[len - 1] == '\r'))
        len--;
    p[len] = '\0';
    int rc = -1;
    if (bad || len == 0 || len >= DB_STORAGE_KEY_MAX)
        fprintf(stderr, "netwatchd storage add: the key file must hold one base64 key\n");
    else
        rc = (memcpy(key, p, len + 1), 0);
    OPENSSL_cleanse(buf, sizeof(buf));
    return rc;
}

static int failed(const char *cmd, enum cp_err err, const struct cp_error *e)
{
    fprintf(stderr, "netwatchd storage %s: %s\n", cmd,
            e->message[0] ? e->message : cp_err_name(err));
    return 1;
}

static int cmd_add(struct db_store *s, const void *args)
{
    const struct cli_args *a = args;
    char key[DB_STORAGE_KEY_MAX];
    if (read_key(a->key_file, key) != 0)
        return 1;
    struct core_storage_account_new n = {a->target, a->account, a->endpoint, key};
    struct db_storage_account acct;
    int replaced = 0;
    struct cp_error e = {{0}, {0}, {0}};
    enum storage_container_state made = STORAGE_CONTAINER_EXISTED;
    /* Proven before stored: a wrong key or endpoint is refused now, not at the first upload. */
    enum cp_err err = core_storage_account_check(&n, &acct, &e);
    if (err == CP_OK && !a->no_verify)
        err = storage_container_ensure(acct.blob_endpoint, acct.account_name, key,
                                       CORE_STORAGE_CONTAINER, NULL, &made, &e);
    if (err == CP_OK)
        err = core_storage_account_add(s, &n, &acct, &replaced, &e);
    OPENSSL_cleanse(key, sizeof(key));
    if (err != CP_OK)
        return failed("add", err, &e);
    fprintf(stderr, "storage account %s %s: account %s at %s%s\n", acct.resource_id,
            replaced ? "updated" : "registered", acct.account_name, acct.blob_endpoint,
            a->no_verify                        ? " (not verified)"
            : made == STORAGE_CONTAINER_CREATED ? "; container " CORE_STORAGE_CONTAINER " created"
                                                : "");
    return 0;
}

static int cmd_remove(struct db_store *s, const void *args)
{
    const struct cli_args *a = args;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_storage_account_remove(s, a->target, &e);
    if (err != CP_OK)
        return failed("remove", err, &e);
    fprintf(stderr, "storage account %s removed\n", a->target);
    return 0;
}

static enum cp_err print_account(const struct db_storage_account *a, void *arg)
{
    (void)arg;
    char created[TIMEFMT_RFC3339_LEN];
    timefmt_rfc3339(a->created_ms, created, sizeof(created));
    printf("%s\t%s\t%s\t%s\n", a->resource_id, a->account_name, a->blob_endpoint, created);
    return CP_OK;
}

static int cmd_list(struct db_store *s, const void *args)
{
    (void)args;
    struct cp_error e = {{0}, {0}, {0}};
    printf("STORAGE_ID\tACCOUNT\tBLOB_ENDPOINT\tREGISTERED\n");
    enum cp_err err = core_storage_account_list(s, print_account, NULL, &e);
    if (err != CP_OK)
        return failed("list", err, &e);
    return fflush(stdout) == 0 ? 0 : 1;
}

int storage_cli_main(int argc, char **argv)
{
    static const struct cli_command commands[] = {
        {"add", cmd_add}, {"remove", cmd_remove}, {"list", cmd_list}};
    static const struct cli_group group = {"storage", storage_cli_usage, parse_args, commands,
                                           sizeof(commands) / sizeof(commands[0])};
    struct cli_args a;
    return cli_group_main(&group, argc, argv, &a);
}
