/*
 * The store as the operator commands (`netwatchd agent ...`, `netwatchd storage ...`) open it:
 * --db if given, else the server's own default (NETWATCH_DB, then ./var/netwatch.db, from the
 * one settings table), migrations applied, one reader, warnings only on stderr (stdout and
 * stderr carry the command's own result lines).
 */
#ifndef NW_SERVER_CLI_STORE_H
#define NW_SERVER_CLI_STORE_H

#include <stddef.h>
#include <stdio.h>

#include "db/store.h"

/* Opens the store for the command named what ("agent add", ...). db (borrowed) may be NULL.
 * argv is the command's (for the settings table's env and defaults). Returns the store, or
 * NULL after saying why on stderr. */
struct db_store *cli_store_open(const char *what, const char *db, int argc, char **argv);

/* One command of a group: its name (argv[2]) and what it does on the open store with the
 * group's parsed arguments; returns the exit status. */
struct cli_command {
    const char *name;
    int (*run)(struct db_store *s, const void *args);
};

/* One operator command group (`netwatchd agent ...`, `netwatchd storage ...`). */
struct cli_group {
    const char *name;         /* "agent" */
    void (*usage)(FILE *out); /* the group's usage lines */
    /* Fills args from argv (argv[2] is the command, one of commands[]) and *db from --db (left
     * NULL without it); 0, or -1 for a usage error. */
    int (*parse)(int argc, char **argv, void *args, const char **db);
    const struct cli_command *commands; /* n_commands entries */
    size_t n_commands;
};

/* The frame every group shares: `help`/`--help` prints the usage (0); an unknown command or a
 * usage error prints it to stderr (2); otherwise the store is opened (1 when it cannot be), the
 * command decides the exit status, and the store is closed. args is the group's own struct,
 * filled by g->parse. */
int cli_group_main(const struct cli_group *g, int argc, char **argv, void *args);

#endif
