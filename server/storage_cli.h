/*
 * `netwatchd storage ...`: the operator's commands for the storage-account registry
 * (core/storage_accounts.h).
 *
 *   netwatchd storage add <storage-id> --key-file PATH|- [--account NAME] [--endpoint URL]
 *                                       [--no-verify] [--db PATH]
 *   netwatchd storage remove <storage-id> [--db PATH]
 *   netwatchd storage list [--db PATH]
 *
 * add first proves the endpoint, account name and key by creating the captures' container
 * (network-watcher-logs) if it is missing (storage/container.h); --no-verify skips that, for an
 * account not reachable from the server (the container must then exist before uploads).
 * The key is read from a file or standard input ("-"), never from the command line, where
 * other users could read it in the process list. It is never printed. A running netwatchd sees
 * a change at its next create (accounts are read from the store, not cached).
 */
#ifndef NW_SERVER_STORAGE_CLI_H
#define NW_SERVER_STORAGE_CLI_H

#include <stdio.h>

/* Runs `netwatchd storage ...`; argv[1] is "storage" (argv borrowed). Returns the exit status:
 * 0 done, 1 refused or failed (the reason on stderr), 2 usage error. */
int storage_cli_main(int argc, char **argv);

/* Writes the usage lines of the storage commands to out. */
void storage_cli_usage(FILE *out);

#endif
