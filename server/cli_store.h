/*
 * The store as the operator commands (`netwatchd agent ...`, `netwatchd storage ...`) open it:
 * --db if given, else the server's own default (NETWATCH_DB, then ./var/netwatch.db, from the
 * one settings table), migrations applied, one reader, warnings only on stderr (stdout and
 * stderr carry the command's own result lines).
 */
#ifndef NW_SERVER_CLI_STORE_H
#define NW_SERVER_CLI_STORE_H

#include "db/store.h"

/* Opens the store for the command named what ("agent add", ...). db (borrowed) may be NULL.
 * argv is the command's (for the settings table's env and defaults). Returns the store, or
 * NULL after saying why on stderr. */
struct db_store *cli_store_open(const char *what, const char *db, int argc, char **argv);

#endif
