/* RFC 6455 handshake checks behind ws_handshake.h (shared pieces in proto/proto_ws.c). */
#include "server/ws_handshake.h"

#include "proto/proto_ws.h"

#include <string.h>
#include <strings.h>

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* A key is the base64 of 16 random bytes: 22 alphabet characters and "==". */
static int key_valid(const char *key)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (strlen(key) != 24 || strcmp(key + 22, "==") != 0)
        return 0;
    for (int i = 0; i < 22; i++) {
        if (!strchr(alphabet, key[i]))
            return 0;
    }
    return 1;
}

enum ws_verdict ws_handshake_check(const struct ws_handshake_request *r, const char **token,
                                   size_t *token_len, int *echo_protocol, const char **why)
{
    *why = NULL;
    if (!r->method || strcmp(r->method, "GET") != 0)
        *why = "the channel is opened with GET";
    else if (!r->http_version || strcmp(r->http_version, "HTTP/1.1") != 0)
        *why = "the channel needs HTTP/1.1";
    else if (!r->upgrade || !proto_ws_has_token(r->upgrade, "websocket"))
        *why = "Upgrade: websocket is missing";
    else if (!r->connection || !proto_ws_has_token(r->connection, "upgrade"))
        *why = "Connection: Upgrade is missing";
    else if (!r->ws_key || !key_valid(r->ws_key))
        *why = "Sec-WebSocket-Key is missing or not 16 bytes of base64";
    else if (r->ws_protocol && !proto_ws_has_token(r->ws_protocol, WS_SUBPROTOCOL))
        *why = "Sec-WebSocket-Protocol does not offer " WS_SUBPROTOCOL;
    if (*why)
        return WS_BAD_REQUEST;
    if (!r->ws_version || strcmp(r->ws_version, "13") != 0) {
        *why = "Sec-WebSocket-Version must be 13";
        return WS_BAD_VERSION;
    }
    const char *a = r->authorization;
    if (!a || strncasecmp(a, "Bearer", 6) != 0 || !is_blank(a[6])) {
        *why = "no bearer token";
        return WS_UNAUTHORIZED;
    }
    a += 6;
    while (is_blank(*a))
        a++;
    size_t len = strlen(a);
    while (len > 0 && is_blank(a[len - 1]))
        len--;
    if (len == 0 || len > WS_BEARER_TOKEN_MAX) {
        *why = "no bearer token";
        return WS_UNAUTHORIZED;
    }
    *token = a;
    *token_len = len;
    *echo_protocol = r->ws_protocol != NULL;
    return WS_OK;
}
