/*
 * The agent's own durable state, in its state directory: the report sequence numbers of
 * docs/agent-protocol.md. `next_seq` is the next seq to give a report (starting at 1, never
 * reused, even across a crash: it is written before the seq is handed out); `acked_seq` is the
 * highest seq the server has said it applied (welcome's lastAppliedSeq, replies), so the hello's
 * unackedFrom is acked_seq + 1.
 *
 * On disk: <state-dir>/seq (0600, in a 0700 directory), two lines "next_seq=N" and
 * "acked_seq=M", replaced atomically (agent/durable.h). Held sessions and unanswered reports
 * live beside it (agent/spool.h).
 *
 * Threading: one thread (the agent's channel loop) owns a struct agent_state.
 */
#ifndef NW_AGENT_STATE_H
#define NW_AGENT_STATE_H

#include <stdint.h>

#include "agent/config.h"
#include "common/err.h"

struct agent_state {
    char dir[AGENT_PATH_MAX];
    uint64_t next_seq;  /* >= 1 */
    uint64_t acked_seq; /* < next_seq */
};

/* Opens (creating the directory, mode 0700, if absent) and loads the state; a missing file is a
 * fresh agent (next_seq 1). A file that does not parse is set aside (agent/durable.h) and the
 * sequence goes on from the current time in microseconds, above any seq handed out before
 * (starting over at 1 would make the server take new reports for ones it has applied); acked_seq
 * is then 0 until a welcome says more. CP_EINVAL (bad dir), CP_EIO. */
enum cp_err agent_state_open(const char *dir, struct agent_state *st,
                             struct cp_error *e) CP_MUST_USE;

/* Hands out the next seq, durably: the file says next_seq + 1 before *seq is returned. */
enum cp_err agent_state_take_seq(struct agent_state *st, uint64_t *seq,
                                 struct cp_error *e) CP_MUST_USE;

/* Records that the server applied everything up to seq (ignored when not newer, or not a seq
 * this agent handed out yet). */
enum cp_err agent_state_set_acked(struct agent_state *st, uint64_t seq,
                                  struct cp_error *e) CP_MUST_USE;

/* The first seq not yet acknowledged (the hello's unackedFrom). */
uint64_t agent_state_unacked_from(const struct agent_state *st);

#endif
