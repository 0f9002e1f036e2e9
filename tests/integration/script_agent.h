/*
 * script_agent.h - a scripted agent for integration tests: the real agent's channel code
 * (agent/channel.c) on a thread of its own, driven by the test instead of the agent's
 * dispatcher. It acknowledges every start (ok), remembers the capture ids it was given, sends
 * what the test queues, and keeps every other message the server sends (up to
 * SCRIPT_AGENT_INBOX) for the test to wait on.
 *
 * Threading: script_agent_start/stop and the other calls from the test's thread; the channel
 * runs on the agent's thread; a mutex guards what both see.
 */
#ifndef NW_TESTS_SCRIPT_AGENT_H
#define NW_TESTS_SCRIPT_AGENT_H

#include <pthread.h>
#include <stddef.h>

#include "agent/state.h"
#include "proto/proto.h"

#define SCRIPT_AGENT_INBOX    64
#define SCRIPT_AGENT_OUTBOX   16
#define SCRIPT_AGENT_CAPTURES 16

struct script_agent {
    struct agent_state state;
    int stop_fd, wake_fd;
    pthread_t thread;
    int running;
    enum cp_err run_err;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char captures[SCRIPT_AGENT_CAPTURES][PROTO_ID_SIZE]; /* from start commands, in order */
    size_t n_captures;
    struct proto_msg inbox[SCRIPT_AGENT_INBOX]; /* owned, decoded copies */
    size_t n_inbox;
    char *outbox[SCRIPT_AGENT_OUTBOX]; /* encoded, to send at the next wake */
    size_t n_outbox;
    /* the channel's own */
    char host[64];
    unsigned port;
    char token[512];
};

/* Connects to 127.0.0.1:port with token (an agent token), state in state_dir (made if missing).
 * Returns 0, or -1 (reported with NW_CHECK). */
int script_agent_start(struct script_agent *a, unsigned port, const char *token,
                       const char *state_dir);

/* Stops the thread and frees everything. Safe on a failed or never started agent. */
void script_agent_stop(struct script_agent *a);

/* Waits up to ms for the n-th (0-based) start; copies its capture id into out. 0 or -1. */
int script_agent_wait_capture(struct script_agent *a, size_t n, char out[PROTO_ID_SIZE], long ms);

/* Queues m (borrowed; encoded now) to be sent from the agent's thread. 0 or -1. */
int script_agent_send(struct script_agent *a, const struct proto_msg *m);

/* Waits up to ms for a received message of type t for which match(msg, arg) is true (match NULL:
 * any of that type); copies it into *out by re-decoding (caller clears). 0 or -1. */
int script_agent_wait_msg(struct script_agent *a, enum proto_type t,
                          int (*match)(const struct proto_msg *m, void *arg), void *arg,
                          struct proto_msg *out, long ms);

#endif
