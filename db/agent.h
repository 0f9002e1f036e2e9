/*
 * The agents table (migrations/0002_agents.sql): one row per registered netwatch-agent, kept
 * after it is revoked. At most one active (not revoked) agent per VM, or per scale-set instance.
 *
 * Every function runs on a connection handed out by db_store_write() or db_store_read() and so
 * inside that job's transaction. Keys are lower case: resource_key and instance_key ("" for a
 * VM) are derived here from the resource id and instance id; ids are lower-case GUIDs, and
 * every id parameter must be given in lower case.
 * The token hash is written once, looked up by db_agent_get_by_token_hash(), and never read
 * back into struct db_agent: nothing above db/ can leak it.
 */
#ifndef NW_DB_AGENT_H
#define NW_DB_AGENT_H

#include <stdint.h>

#include "common/armid.h"
#include "common/err.h"

#include "db/store.h"

#define DB_AGENT_ID_LEN       37                  /* GUID + NUL */
#define DB_AGENT_RESOURCE_MAX (ARMID_MAX_LEN + 1) /* a resource id armid_parse accepts + NUL */
#define DB_AGENT_INSTANCE_MAX 81                  /* scale-set instance id: a resource name + NUL */
/* Buffers for what hello carries: proto/proto.h's limits in bytes, plus the NUL. */
#define DB_AGENT_VERSION_MAX   65          /* agentVersion: 64 bytes */
#define DB_AGENT_OS_MAX        33          /* os: 32 bytes */
#define DB_AGENT_HOSTNAME_MAX  256         /* hostname: 255 bytes */
#define DB_AGENT_ADDRESSES_MAX (64 * 1024) /* addresses_json: a whole hello is at most 64 KiB */

struct db_agent {
    char id[DB_AGENT_ID_LEN];                /* lower-case GUID */
    char resource_id[DB_AGENT_RESOURCE_MAX]; /* VM or scale-set id as registered */
    char instance_id[DB_AGENT_INSTANCE_MAX]; /* "" for a VM */
    int64_t created_ms;
    int revoked;                              /* 1 once revoked */
    int64_t revoked_ms;                       /* 0 while active */
    int connected;                            /* 1 while its channel is up */
    int64_t connected_ms;                     /* 0 = never connected */
    int64_t last_seen_ms;                     /* 0 = never seen */
    char agent_version[DB_AGENT_VERSION_MAX]; /* "" until the first hello */
    char os[DB_AGENT_OS_MAX];
    char hostname[DB_AGENT_HOSTNAME_MAX];
    char *addresses_json; /* owned (never NULL once read); freed by db_agent_clear() */
    int64_t last_applied_seq;
};

/* Frees what a owns and zeroes it. NULL is a no-op. */
void db_agent_clear(struct db_agent *a);

/*
 * Inserts a new active agent: id, resource_id, instance_id ("" for a VM) and created_ms of a
 * (borrowed; the rest of a is ignored: not connected, no hello yet, seq 0) with token_hash (64
 * lower-case hex, borrowed). sub_key is the resource's subscription, lower case.
 * CP_EEXIST when the id or token hash is taken or an active agent already serves that resource
 * and instance; CP_EINVAL when a field does not fit.
 */
enum cp_err db_agent_insert(struct db_conn *c, const struct db_agent *a, const char *sub_key,
                            const char *token_hash) CP_MUST_USE;

/* Reads: out is overwritten (zeroed first) and owned by the caller (db_agent_clear) on CP_OK;
 * CP_ENOTFOUND when there is no such row. */

/* The agent with this id (lower case), active or revoked. */
enum cp_err db_agent_get(struct db_conn *c, const char *id, struct db_agent *out) CP_MUST_USE;
/* The active agent of a resource (resource_key lower case) and instance (instance_key lower
 * case, "" for a VM). */
enum cp_err db_agent_get_active(struct db_conn *c, const char *resource_key,
                                const char *instance_key, struct db_agent *out) CP_MUST_USE;
/* The agent whose token hashes to token_hash (64 lower-case hex), active or revoked. */
enum cp_err db_agent_get_by_token_hash(struct db_conn *c, const char *token_hash,
                                       struct db_agent *out) CP_MUST_USE;

/* Writes: each touches only an active agent; CP_ENOTFOUND when the id is unknown or revoked. */

/* Sets revoked_ms and drops connected. */
enum cp_err db_agent_revoke(struct db_conn *c, const char *id, int64_t now_ms) CP_MUST_USE;
/* Records a hello: the strings (borrowed, "" stored as NULL; addresses_json a JSON array
 * text), connected = 1, connected_ms = last_seen_ms = now_ms. */
enum cp_err db_agent_set_hello(struct db_conn *c, const char *id, const char *agent_version,
                               const char *os, const char *hostname, const char *addresses_json,
                               int64_t now_ms) CP_MUST_USE;
/* last_seen_ms = now_ms. */
enum cp_err db_agent_set_seen(struct db_conn *c, const char *id, int64_t now_ms) CP_MUST_USE;
/* connected = 0 (last_seen_ms is kept). Also done for a revoked agent, whose channel closes
 * after the revoke. */
enum cp_err db_agent_set_disconnected(struct db_conn *c, const char *id) CP_MUST_USE;
/*
 * For applying an agent report exactly once (docs/agent-protocol.md), in the job that applies
 * it: raises last_applied_seq to seq when it is below. *advanced is 1 when it did (apply the
 * report), 0 when seq was already applied (acknowledge without applying). CP_ENOTFOUND as above.
 */
/* Marks every agent disconnected (start-up: no channel survives a restart). */
enum cp_err db_agent_set_all_disconnected(struct db_conn *c) CP_MUST_USE;
enum cp_err db_agent_advance_seq(struct db_conn *c, const char *id, int64_t seq,
                                 int *advanced) CP_MUST_USE;

/* Calls each() for every agent of a subscription (sub_key lower case), or of all subscriptions
 * (sub_key NULL), active and revoked, oldest first. The row is borrowed for the call. A return
 * other than CP_OK from each() stops the walk and is returned. */
typedef enum cp_err (*db_agent_each_fn)(const struct db_agent *a, void *arg);
enum cp_err db_agent_list(struct db_conn *c, const char *sub_key, db_agent_each_fn each,
                          void *arg) CP_MUST_USE;

/* Calls each(id, instance_id) for the active agents of a scale set (resource_key lower case),
 * by instance_key; both strings borrowed for the call. */
typedef enum cp_err (*db_agent_instance_fn)(const char *id, const char *instance_id, void *arg);
enum cp_err db_agent_list_instances(struct db_conn *c, const char *resource_key,
                                    db_agent_instance_fn each, void *arg) CP_MUST_USE;

/* Calls each() for every revoked agent still marked connected (its live channel must go). */
enum cp_err db_agent_list_revoked_connected(struct db_conn *c, db_agent_each_fn each,
                                            void *arg) CP_MUST_USE;

#endif
