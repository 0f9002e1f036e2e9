/*
 * The glue between the hub (sockets, frames) and core (the store): the hub_ops that
 * authenticate agents and handle what they say. Store work never runs on the hub thread: each
 * message goes to one of a few glue threads, always the same one for an agent (its messages
 * stay in order), so the hub goes on serving the other channels while a hello is committed.
 *
 * It handles the channel's life (authentication, hello -> welcome, connected state, disconnect)
 * and the captures run by agents: start and stop commands (sent when core dispatches, and sent
 * again after every hello until settled), and the agent's reports (ack, completed, error),
 * each applied exactly once by core and answered with a reply. A report about a capture that is
 * not the agent's is refused (NotYourSession) and logged. Progress reports are acknowledged
 * (live counters are a later step).
 */
#ifndef NW_SERVER_AGENT_GLUE_H
#define NW_SERVER_AGENT_GLUE_H

#include "core/core.h"
#include "server/hub.h"

struct agent_glue;

/* The glue is made before core (core needs its port), then given core with set_core.
 * dispatch_deadline_ms: how long a create handed to an agent may wait for the agent's ack
 * before it fails (AgentNotConnected). */
enum cp_err agent_glue_new(int64_t dispatch_deadline_ms, struct agent_glue **out) CP_MUST_USE;
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
