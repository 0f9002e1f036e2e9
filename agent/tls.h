/*
 * The agent's TLS client (wss://): OpenSSL libssl over a connected non-blocking socket that the
 * caller owns and polls. One agent_tls_ctx per agent run (the trust store, TLS 1.2 minimum,
 * peer verification on); one agent_tls_conn per connection (SNI plus host name or IP address
 * verification against the name the agent dialled).
 *
 * Every I/O call is non-blocking. AGENT_TLS_AGAIN means "poll for *wait, then call the same
 * function again": TLS may need to write while the caller reads (a TLS 1.3 KeyUpdate) or read
 * while it writes, so *wait is whatever OpenSSL asked for, not the caller's direction.
 *
 * Threading: one connection is used by one thread at a time; a ctx may be shared read-only.
 */
#ifndef NW_AGENT_TLS_H
#define NW_AGENT_TLS_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

#define AGENT_TLS_ERROR (-1) /* the connection is unusable; the reason is in the call's why */
#define AGENT_TLS_AGAIN (-2) /* poll for *wait (POLLIN or POLLOUT) and call again */
#define AGENT_TLS_WHY   256  /* size of a reason buffer */

struct agent_tls_ctx;
struct agent_tls_conn;

/* Makes the client context: peers must verify against ca_file (PEM, borrowed; it replaces the
 * system store, so a private CA is trusted alone) or, when ca_file is NULL or "", the system
 * store. CP_EINVAL (unreadable CA file) or CP_ENOMEM, e filled. */
enum cp_err agent_tls_ctx_new(const char *ca_file, struct agent_tls_ctx **out,
                              struct cp_error *e) CP_MUST_USE;
void agent_tls_ctx_free(struct agent_tls_ctx *ctx);

/* Starts a client session on fd (borrowed, connected, non-blocking) that will accept only a
 * certificate for host (borrowed: a DNS name, or an IPv4/IPv6 literal matched against the
 * certificate's IP addresses). CP_ENOMEM or CP_EINVAL (host unusable). */
enum cp_err agent_tls_conn_new(struct agent_tls_ctx *ctx, int fd, const char *host,
                               struct agent_tls_conn **out) CP_MUST_USE;
/* Frees the session (not the fd). NULL is a no-op. */
void agent_tls_conn_free(struct agent_tls_conn *c);

/* Drives the handshake, verification included: 0 done, AGENT_TLS_AGAIN (*wait set) or
 * AGENT_TLS_ERROR with why (AGENT_TLS_WHY bytes) saying what failed, the certificate
 * verification result when that is it. */
int agent_tls_handshake(struct agent_tls_conn *c, short *wait, char *why);

/* Reads up to len bytes: > 0 bytes read, 0 the peer closed (close_notify or EOF),
 * AGENT_TLS_AGAIN (*wait set) or AGENT_TLS_ERROR (why filled). */
ssize_t agent_tls_read(struct agent_tls_conn *c, void *buf, size_t len, short *wait, char *why);

/* Writes up to len bytes (partial writes allowed): > 0 bytes taken, AGENT_TLS_AGAIN (*wait set;
 * call again with the same bytes, at least as many) or AGENT_TLS_ERROR (why filled). */
ssize_t agent_tls_write(struct agent_tls_conn *c, const void *buf, size_t len, short *wait,
                        char *why);

/* Sends close_notify once, best effort: never waits for the peer's. */
void agent_tls_shutdown(struct agent_tls_conn *c);

#endif
