/*
 * The RFC 6455 handshake pieces both ends of the agent channel compute: the
 * Sec-WebSocket-Accept value, token lists in headers (Connection: keep-alive, Upgrade), and a
 * header of an HTTP response head. Defined once here, beside the messages, for netwatchd's hub,
 * netwatch-agent and the agent simulator. The accept key hashes with OpenSSL (SHA-1, base64).
 */
#ifndef NW_PROTO_WS_H
#define NW_PROTO_WS_H

#include <stddef.h>

#define PROTO_WS_ACCEPT_LEN 29 /* 28 base64 characters and the NUL */
#define PROTO_WS_KEY_MAX    64 /* longest Sec-WebSocket-Key we hash */

/* Sec-WebSocket-Accept for key into out. 0, or -1 for a key over PROTO_WS_KEY_MAX or when
 * OpenSSL fails. */
int proto_ws_accept_key(const char *key, char out[PROTO_WS_ACCEPT_LEN]);
/* 1 when the comma-separated header value list holds token (case-insensitive, blanks around
 * items ignored), else 0. */
int proto_ws_has_token(const char *list, const char *token);
/* The value of header name in an HTTP response head (NUL-terminated, lines ending in \r\n,
 * the status line first), blanks trimmed, copied into out. 0 found, -1 absent or too long. */
int proto_ws_response_header(const char *head, const char *name, char *out, size_t outsz);

#endif
