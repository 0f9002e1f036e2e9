/* Opening the store for an operator command (see server/cli_store.h). */
#include "server/cli_store.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "server/config.h"

struct db_store *cli_store_open(const char *what, const char *db, int argc, char **argv)
{
    struct config cfg;
    struct cp_error e = {{0}, {0}, {0}};
    if (!db) {
        /* Only the defaults and the environment: the command's own flags are not the server's. */
        if (config_load(&cfg, argc, argv, argc, &e) != CP_OK) {
            fprintf(stderr, "netwatchd %s: %s\n", what, e.message);
            return NULL;
        }
        db = cfg.db;
    }
    log_level = LOG_LEVEL_WARN;
    struct db_store_options so = {.path = db, .readers = 1, .busy_timeout_ms = 5000};
    struct db_store *s = NULL;
    if (db_store_open(&so, &s, &e) != CP_OK) {
        fprintf(stderr, "netwatchd %s: cannot open the database %s: %s\n", what, db, e.message);
        return NULL;
    }
    return s;
}

int cli_group_main(const struct cli_group *g, int argc, char **argv, void *args)
{
    if (argc == 3 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "help") == 0)) {
        g->usage(stdout);
        return 0;
    }
    const struct cli_command *cmd = NULL;
    for (size_t i = 0; argc >= 3 && i < g->n_commands && !cmd; i++)
        if (strcmp(argv[2], g->commands[i].name) == 0)
            cmd = &g->commands[i];
    const char *db = NULL;
    if (!cmd || g->parse(argc, argv, args, &db) != 0) {
        g->usage(stderr);
        return 2;
    }
    char what[64];
    snprintf(what, sizeof(what), "%s %s", g->name, cmd->name);
    struct db_store *s = cli_store_open(what, db, argc, argv);
    if (!s)
        return 1;
    int rc = cmd->run(s, args);
    db_store_close(s);
    return rc;
}
