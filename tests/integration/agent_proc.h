/*
 * agent_proc.h - the real netwatch-agent as a child process of an integration test, beside the
 * real netwatchd of harness.h: register an agent with `netwatchd agent add`, start and stop the
 * agent binary, and watch it connect through the read-only agents API.
 *
 * Files, all in the server's temp dir: <vm>.token (the agent's token), <vm>.state (its state
 * directory), <vm>.agent.log (its stdout and stderr), captures/ (the capture root every agent
 * of the server shares; the agent maps /var/captures/X to captures/X), cli.log (stderr of the
 * CLI commands).
 *
 * Threading: one thread (these fork and wait).
 */
#ifndef NW_TESTS_AGENT_PROC_H
#define NW_TESTS_AGENT_PROC_H

#include <stddef.h>
#include <sys/types.h>

#include "tests/integration/harness.h"

/* Runs argv (argv[0] a path) with stdout into out (outsz bytes, trailing blanks trimmed; out
 * may be NULL) and stderr appended to log (NULL: inherited). Returns 0 when it exited 0. */
int nw_run(char *const argv[], const char *log, char *out, size_t outsz);

/* `netwatchd agent add` for VM vm (resource group rg1 of s->sub): the token goes to
 * <dir>/<vm>.token, the agent's id into id (idsz >= NW_GUID_LEN + 1). 0 or -1 (reported). */
int nw_agent_add(struct nw_server *s, const char *vm, char *id, size_t idsz);

/* The capture root of s's agents (created when absent): <dir>/captures. */
const char *nw_agent_root(const struct nw_server *s, char *out, size_t outsz);

/* Starts agent_bin for vm against s->base_url (interfaces NULL: the agent's default set). The
 * agent is SIGKILLed if the test dies. Returns its pid, or -1. */
pid_t nw_agent_start(const struct nw_server *s, const char *agent_bin, const char *vm,
                     const char *interfaces);

/* The same with more options after the ones every agent gets (extra: NULL-terminated, at most
 * 16, e.g. {"--interfaces", "lo", "--progress-interval", "1", NULL}; NULL for none). */
pid_t nw_agent_start_argv(const struct nw_server *s, const char *agent_bin, const char *vm,
                          const char *const *extra);

/* Stops an agent started above (SIGCONT first, in case a test stopped it, then SIGTERM; SIGKILL
 * after 5 s). Returns 0 when it exited with status 0. */
int nw_agent_stop(pid_t pid);

/* SIGKILLs an agent started above and reaps it: the crash a test inflicts. */
void nw_agent_kill(pid_t pid);

/* The agent's properties.connected from GET .../agents/{id}: 1 or 0; -1 when the GET failed. */
int nw_agent_connected(const struct nw_server *s, const char *id);

/* Polls nw_agent_connected until it is want or timeout_ms passes. 1 when it got there. */
int nw_agent_wait_connected(const struct nw_server *s, const char *id, int want, long timeout_ms);

/* Lines of the text file path that contain needle (0 when the file is absent). */
int nw_file_count_lines(const char *path, const char *needle);

/* Polls nw_file_count_lines until at least n lines hold needle or timeout_ms passes. 1 when
 * they do. */
int nw_file_wait_lines(const char *path, const char *needle, int n, long timeout_ms);

/* nw_file_count_lines and nw_file_wait_lines on vm's agent log (<dir>/<vm>.agent.log). */
int nw_agent_log_count(const struct nw_server *s, const char *vm, const char *needle);
int nw_agent_wait_log(const struct nw_server *s, const char *vm, const char *needle, int n,
                      long timeout_ms);

/* Prints the last max_bytes of every agent log of s's temp dir to stderr (for a failed test). */
void nw_agent_dump_logs(const struct nw_server *s, size_t max_bytes);

/* The start of an agent test's main, run as `PROG NETWATCHD NETWATCH_AGENT`: *agent_bin is
 * set and s initialised and started. 0, or the status main should exit with (2: usage, 1: no
 * server). */
int nw_agent_test_begin(int argc, char **argv, struct nw_server *s, const char **agent_bin);

/* Its end: stops s (a failure when it does not stop cleanly), shows the server's and the
 * agents' logs when anything failed, removes the temp dir and prints "ok|FAIL name: N
 * failure(s)". Returns main's exit status. */
int nw_agent_test_end(struct nw_server *s, const char *name);

#endif
