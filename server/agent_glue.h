/*
 * The glue between the hub (sockets, frames) and core (the store): the hub_ops that
 * authenticate agents and handle what they say. Store work never runs on the hub thread: each
 * message goes to one of a few glue threads, always the same one for an agent (its messages
 * stay in order), so the hub goes on serving the other channels while a hello is committed.
 *
 * It handles the channel's life (authentication, hello -> welcome, connected state, disconnect)
 * and the captures run by agents: the commands of the outbox (sent when core dispatches, and
 * sent again after every hello until settled), and the agent's reports (ack, progress,
 * completed, error), each applied exactly once by core and answered with a reply once durable.
 * A glue thread applies all the reports it has queued in one store write job, so they share a
 * group commit. A report about a session that is not the agent's is refused (NotYourSession)
 * and logged; one the store failed to apply closes the agent's channel (4003) and nothing more
 * of that agent is applied until its next hello (docs/agent-protocol.md). A sweeper
 * thread runs the timers (dispatch deadline, backstop) and the revocation sweep.
 */
#ifndef NW_SERVER_AGENT_GLUE_H
#define NW_SERVER_AGENT_GLUE_H

#include <stdint.h>

#include "core/core.h"
#include "server/hub.h"

struct agent_glue;

/* Defaults of the timers (the server's flags override them). The dispatch deadline: how long
 * a session handed to an agent may wait for the agent's ack before it fails. The backstop's
 * grace: how long past its time limit a Running session may go without its end being reported
 * before the server ends it (Error/AgentStopped). */
#define AGENT_DISPATCH_DEADLINE_MS 30000
#define AGENT_BACKSTOP_GRACE_MS    120000

/* The glue is made before core (core needs its port), then given core with set_core. Its
 * timers start at their defaults (PROTO_HEARTBEAT_SECONDS and the two above). */
enum cp_err agent_glue_new(struct agent_glue **out) CP_MUST_USE;
/* Overrides the timer defaults (server flags): heartbeat told to agents in welcome (seconds),
 * dispatch deadline and backstop grace (ms); a value <= 0 keeps its default. Call before the
 * hub starts. */
void agent_glue_set_timers(struct agent_glue *g, int heartbeat_seconds, int64_t deadline_ms,
                           int64_t grace_ms);
/* The lifetime of blob grants (server/blob_grant.h; --storage-grant-seconds, in ms); <= 0
 * keeps BLOB_GRANT_LIFETIME_MS. Call before the hub starts. */
void agent_glue_set_grant_lifetime(struct agent_glue *g, int64_t lifetime_ms);
/* The port to give core_new(); valid while the glue lives. */
const struct core_agent_port *agent_glue_port(struct agent_glue *g);
/* core borrowed (must outlive the glue); set once, before the hub starts. */
void agent_glue_set_core(struct agent_glue *g, struct core *core);
/* The ops to give hub_new(); valid while the glue lives. */
const struct hub_ops *agent_glue_ops(struct agent_glue *g);
/* The hub to answer through; set once, after hub_new(), before hub_start(). */
void agent_glue_set_hub(struct agent_glue *g, struct hub *hub);
/* Finishes queued messages and stops the glue's threads (they use core and the hub). Call after
 * hub_stop(), before core_free(). NULL: no-op. */
void agent_glue_stop(struct agent_glue *g);
/* Frees the glue; core (whose dispatcher calls the port) must be freed before. NULL: no-op. */
void agent_glue_free(struct agent_glue *g);

#endif
