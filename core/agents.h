/*
 * The agent registry: which netwatch-agent speaks for which VM or scale-set instance, with
 * which credential, and what it last said about itself. Rules live here; SQL in db/agent.c.
 *
 * - An agent is registered for a VM id, or for a scale-set id plus an instance id
 *   (common/armid.h grammar), with a token made by the caller (`netwatchd agent add`). At most
 *   one active agent per VM or instance: a second registration is refused until the first is
 *   revoked. Revoked agents stay listed (revoked); the machine can then be registered again.
 * - Tokens are never stored: only their SHA-256 (common/sha256.h), as 64 lower-case hex.
 *   Authentication hashes the presented token and looks the hash up (unique index). Looking up
 *   a hash rather than comparing tokens means a timing difference can only tell an attacker
 *   about hashes of guesses, which does not help forge a token of 256 random bits.
 * - The channel state (hello, seen, disconnect) is recorded for active agents only: once an
 *   agent is revoked, by another process (the CLI) or this one, core_agent_hello() and
 *   core_agent_seen() fail with CP_EAUTH, which is how the hub learns that a live channel must
 *   be closed (4001) within one heartbeat.
 *
 * Every write is one db_store_write() job: durable before the function returns. Functions take
 * the store, not struct core, so that the CLI can use them without starting a dispatcher.
 * Threading: every function may be called from any thread at once. e may be NULL; on failure
 * it gets an ARM-style code (PascalCase) and a message meant for an operator.
 */
#ifndef NW_CORE_AGENTS_H
#define NW_CORE_AGENTS_H

#include "common/err.h"
#include "db/agent.h"
#include "db/store.h"

#define CORE_AGENT_TOKEN_PREFIX "nwa_"
#define CORE_AGENT_TOKEN_LEN    69  /* "nwa_" + 64 lower-case hex + NUL */
#define CORE_AGENT_TOKEN_MAX    512 /* a longer presented token is refused without hashing */

/* 1 when token is "nwa_" followed by 64 lower-case hex digits (what `agent add` makes). */
int core_agent_token_well_formed(const char *token);

/*
 * Registers a new agent for resource_id (a VM id, or a scale-set id; borrowed) and, for a
 * scale set, instance_id (required: 1-80 characters of letters, digits, '_', '-', '.'; must be
 * NULL or "" for a VM). token (borrowed) must be core_agent_token_well_formed(); only its hash
 * is stored. out (caller clears) is the new agent. Errors: CP_EINVAL (bad id, wrong resource
 * type, instance given for a VM or missing for a scale set, malformed token), CP_EEXIST
 * ("AgentAlreadyRegistered": an active agent serves that VM or instance; the message names
 * it), CP_EIO, CP_ENOMEM, CP_EBUSY.
 */
enum cp_err core_agent_register(struct db_store *s, const char *resource_id,
                                const char *instance_id, const char *token, struct db_agent *out,
                                struct cp_error *e) CP_MUST_USE;

/*
 * Revokes the agent with this id (any casing). Revoking an agent that is already revoked
 * changes nothing and succeeds (*was_revoked = 1; may be NULL). out (may be NULL; caller
 * clears) is the agent as it now is. CP_ENOTFOUND when no agent has that id.
 */
enum cp_err core_agent_revoke(struct db_store *s, const char *id, struct db_agent *out,
                              int *was_revoked, struct cp_error *e) CP_MUST_USE;
/* Revokes the active agent of a VM, or of a scale-set instance (instance_id as for register).
 * CP_EINVAL for a bad id or instance, CP_ENOTFOUND when no active agent serves it. */
enum cp_err core_agent_revoke_resource(struct db_store *s, const char *resource_id,
                                       const char *instance_id, struct db_agent *out,
                                       struct cp_error *e) CP_MUST_USE;

/*
 * The active agent owning token (borrowed; the bare token, no "Bearer "). out (caller clears)
 * on success. CP_EAUTH for a missing, malformed, unknown ("AgentUnknown") or revoked
 * ("AgentRevoked") token: all the same to the peer (401), told apart for the log.
 */
enum cp_err core_agent_authenticate(struct db_store *s, const char *token, struct db_agent *out,
                                    struct cp_error *e) CP_MUST_USE;

/* What an agent says about itself in hello (docs/agent-protocol.md); all borrowed. */
struct core_agent_hello {
    const char *agent_version;  /* < DB_AGENT_VERSION_MAX bytes (proto's bounds); NULL or "" =
                                 * unknown */
    const char *os;             /* < DB_AGENT_OS_MAX bytes */
    const char *hostname;       /* < DB_AGENT_HOSTNAME_MAX bytes */
    const char *addresses_json; /* the hello's interfaces as a JSON array text, as proto decoded
                                 * it: [{"name","addresses":[...]}]; NULL = "[]"; kept opaque,
                                 * < DB_AGENT_ADDRESSES_MAX bytes */
};

/* Records a hello: the fields of h, connected, connected and last seen now. A string that is
 * not UTF-8, holds a control character (C0, DEL or C1) or is over its bound: CP_EINVAL, nothing
 * recorded. CP_EAUTH
 * ("AgentRevoked") when the agent has been revoked, CP_ENOTFOUND when unknown. */
enum cp_err core_agent_hello(struct db_store *s, const char *id, const struct core_agent_hello *h,
                             struct cp_error *e) CP_MUST_USE;
/* Records that the agent was heard from now. CP_EAUTH when revoked, CP_ENOTFOUND when unknown. */
enum cp_err core_agent_seen(struct db_store *s, const char *id, struct cp_error *e) CP_MUST_USE;
/* Records that its channel is gone (connected = 0). CP_ENOTFOUND when unknown. */
enum cp_err core_agent_disconnected(struct db_store *s, const char *id,
                                    struct cp_error *e) CP_MUST_USE;

/* The agent with this id (any casing), active or revoked. With sub non-NULL, an agent whose
 * resource is in another subscription is CP_ENOTFOUND too (never shown across subscriptions).
 * out (caller clears) on success. */
/* At start-up, before serving: no agent's channel survived the restart. */
enum cp_err core_agent_reset_connections(struct db_store *s, struct cp_error *e) CP_MUST_USE;
/* Calls each() for every revoked agent whose channel is still up (revocation comes from
 * another process, `netwatchd agent revoke`; the server sweeps for it). */
enum cp_err core_agent_revoked_connected(struct db_store *s, db_agent_each_fn each, void *arg,
                                         struct cp_error *e) CP_MUST_USE;
enum cp_err core_agent_get(struct db_store *s, const char *sub, const char *id,
                           struct db_agent *out, struct cp_error *e) CP_MUST_USE;
/* Calls each() for every agent (active and revoked, oldest first) whose resource is in
 * subscription sub (any casing), or for every agent when sub is NULL. */
enum cp_err core_agent_list(struct db_store *s, const char *sub, db_agent_each_fn each, void *arg,
                            struct cp_error *e) CP_MUST_USE;

#endif
