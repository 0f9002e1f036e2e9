/*
 * `netwatchd agent ...`: the operator's commands for the agent registry (core/agents.h).
 *
 *   netwatchd agent add <resource-id> [--instance ID] [--db PATH]
 *   netwatchd agent revoke <agent-id | resource-id [--instance ID]> [--db PATH]
 *   netwatchd agent list [--db PATH]
 *
 * Each opens the store (applying migrations), acts, and closes it; a running netwatchd sees the
 * change at once (agents are not cached). --db defaults as for the server (NETWATCH_DB, then
 * ./var/netwatch.db).
 */
#ifndef NW_SERVER_AGENT_CLI_H
#define NW_SERVER_AGENT_CLI_H

#include <stdio.h>

/* Runs `netwatchd agent ...`; argv[1] is "agent" (argv borrowed). Returns the exit status:
 * 0 done, 1 refused or failed (the reason on stderr), 2 usage error. */
int agent_cli_main(int argc, char **argv);

/* Writes the usage lines of the agent commands to out. */
void agent_cli_usage(FILE *out);

#endif
