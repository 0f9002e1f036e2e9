/*
 * stats.h - counts of the agent-side state for /metrics: live sessions by status, commands
 * still owed by kind and state, and active agents by connection. Each query uses an index
 * that holds only the rows it counts, so a scrape does not grow with history.
 *
 * Threading: like every db/ call, on the connection of the job that runs it.
 */
#ifndef NW_DB_STATS_H
#define NW_DB_STATS_H

#include <stdint.h>

#include "common/err.h"
#include "db/store.h"

/* One counted group: up to two label values ("" when the metric has one) and its count. */
typedef void (*db_stats_fn)(const char *label1, const char *label2, int64_t count, void *arg);

/* Sessions not ended: ("NotStarted", ""), ("Running", ""). */
enum cp_err db_stats_live_sessions(struct db_conn *c, db_stats_fn each, void *arg) CP_MUST_USE;
/* Commands not acknowledged: (kind, state) for each group there is. */
enum cp_err db_stats_owed_commands(struct db_conn *c, db_stats_fn each, void *arg) CP_MUST_USE;
/* Active (not revoked) agents: ("connected", "") and ("disconnected", ""). */
enum cp_err db_stats_agents(struct db_conn *c, db_stats_fn each, void *arg) CP_MUST_USE;

#endif
