/*
 * The server half of the RFC 6455 opening handshake, apart from MHD: checking the client's
 * headers (Upgrade, Connection, Sec-WebSocket-Version, Sec-WebSocket-Key, Sec-WebSocket-Protocol,
 * Authorization) and computing Sec-WebSocket-Accept (SHA-1 and base64 by OpenSSL; no crypto of
 * our own). server/http.c feeds it the header values and turns the verdict into a status.
 *
 * Threading: pure functions; callable from any thread.
 */
#ifndef NW_SERVER_WS_HANDSHAKE_H
#define NW_SERVER_WS_HANDSHAKE_H

#include <stddef.h>

#include "proto/proto.h"

#define WS_CHANNEL_PATH     PROTO_CHANNEL_PATH
#define WS_SUBPROTOCOL      PROTO_SUBPROTOCOL
#define WS_BEARER_TOKEN_MAX 512 /* longest bearer token we look at */

/* The client's handshake headers, each borrowed and NULL when absent. */
struct ws_handshake_request {
    const char *method;
    const char *http_version; /* "HTTP/1.1" */
    const char *upgrade;
    const char *connection;
    const char *ws_version;
    const char *ws_key;
    const char *ws_protocol;
    const char *authorization;
};

enum ws_verdict {
    WS_OK = 0,
    WS_BAD_REQUEST,  /* malformed handshake: 400 */
    WS_BAD_VERSION,  /* Sec-WebSocket-Version is not 13: 426 with "Sec-WebSocket-Version: 13" */
    WS_UNAUTHORIZED, /* no usable "Authorization: Bearer <token>": 401 */
};

/* Checks a handshake. On WS_OK, *token points into r->authorization at the bearer token (trimmed
 * length in *token_len, at most WS_BEARER_TOKEN_MAX) and *echo_protocol says whether the client
 * offered WS_SUBPROTOCOL (then the 101 names it; RFC 6455 4.2.2 forbids naming one not offered).
 * On anything else, *why is a static, log-safe reason (never a header value). */
enum ws_verdict ws_handshake_check(const struct ws_handshake_request *r, const char **token,
                                   size_t *token_len, int *echo_protocol, const char **why);

#endif
