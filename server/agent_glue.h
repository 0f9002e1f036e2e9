/*
 * The glue between the hub (sockets, frames) and core (the store): the hub_ops that
 * authenticate agents and handle what they say. Store work never runs on the hub thread: each
 * message is handed to one glue thread, which keeps every agent's messages in order and lets
 * the hub go on serving the other channels while a hello is committed.
 *
 * This step handles the channel's life (authentication, hello -> welcome, connected state,
 * disconnect). Commands and reports (start, stop, ack, progress, completed, error) come with the
 * dispatcher; until then a report is answered {"type":"reply","ok":false,"code":"NotYourSession"}
 * since no session is assigned to any agent.
 */
#ifndef NW_SERVER_AGENT_GLUE_H
#define NW_SERVER_AGENT_GLUE_H

#include "core/core.h"
#include "server/hub.h"

struct agent_glue;

/* core borrowed (must outlive the glue). */
enum cp_err agent_glue_new(struct core *core, struct agent_glue **out) CP_MUST_USE;
/* The ops to give hub_new(); valid while the glue lives. */
const struct hub_ops *agent_glue_ops(struct agent_glue *g);
/* The hub to answer through; set once, after hub_new(), before hub_start(). */
void agent_glue_set_hub(struct agent_glue *g, struct hub *hub);
/* Finishes queued messages and stops the glue thread. Call after hub_stop(). NULL: no-op. */
void agent_glue_free(struct agent_glue *g);

#endif
