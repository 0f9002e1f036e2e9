/*
 * Least privilege for netwatch-agent (docs/agent.md, "Privileges").
 *
 * The agent is a daemon that opens new capture handles whenever a start arrives, so it cannot
 * give CAP_NET_RAW up for good after a first capture the way tcpdump does. What it can do on
 * Linux, and does here with libcap:
 *   - at start, once, before any thread exists: become the --user (supplementary groups, gid,
 *     uid; only when started as root), set no-new-privs, empty the ambient and inheritable
 *     sets, shrink the bounding set to CAP_NET_RAW (when it holds CAP_SETPCAP), and keep
 *     CAP_NET_RAW in the permitted set only: no capability is effective;
 *   - around each pcap_activate (the one call that needs it: socket(AF_PACKET)), raise
 *     CAP_NET_RAW to effective in the calling thread only and lower it right after.
 * Capabilities are per thread on Linux (libcap without libpsx changes the calling thread's), so
 * the raise never reaches the capture, channel or upload threads, and threads started later
 * inherit the lowered state.
 */
#ifndef NW_AGENT_PRIVILEGE_H
#define NW_AGENT_PRIVILEGE_H

#include <sys/types.h>

#include "common/err.h"

/* What privilege_drop left, for the start-up log line. */
struct privilege_state {
    uid_t uid;
    gid_t gid;
    int switched;     /* 1: became user; 0: kept the uid started with */
    int net_raw;      /* CAP_NET_RAW is permitted (captures can open) */
    int bound_narrow; /* the bounding set holds CAP_NET_RAW at most */
    int as_root;      /* uid 0 kept: started as root without a user */
};

/*
 * Drops to the least the agent needs (above). user: the account to run as ("" = keep the
 * current one; a user needs the agent started as root, or already running as that user).
 * Refuses (CP_EINVAL, e filled) a user that does not exist or is uid 0, a call with more than
 * one thread, and any end state with more than planned: a capability effective, inheritable
 * or ambient, a permitted one besides CAP_NET_RAW, no-new-privs unset, a uid or gid other than
 * user's, or a way back to uid 0. CP_EIO when a step fails. Fills *out on success.
 * Call once, from main, before any thread starts.
 */
enum cp_err privilege_drop(const char *user, struct privilege_state *out,
                           struct cp_error *e) CP_MUST_USE;

/*
 * pcap_activate(p) with CAP_NET_RAW raised to effective in this thread for the call only.
 * Before a privilege_drop (tests using the capture engine in-process) it is pcap_activate.
 * Any thread. Aborts if the capability cannot be lowered again (never run on with it).
 */
struct pcap; /* pcap_t; pcap.h needs _GNU_SOURCE, which not every includer defines */
int privilege_pcap_activate(struct pcap *p);

#endif
