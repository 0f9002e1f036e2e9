/* RFC 6455 handshake helpers behind proto_ws.h. */
#include "proto/proto_ws.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

/* RFC 6455 section 1.3: appended to the client's key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

int proto_ws_accept_key(const char *key, char out[PROTO_WS_ACCEPT_LEN])
{
    char buf[PROTO_WS_KEY_MAX + sizeof(ws_guid)];
    size_t klen = strlen(key);
    if (klen > PROTO_WS_KEY_MAX)
        return -1;
    memcpy(buf, key, klen);
    memcpy(buf + klen, ws_guid, sizeof(ws_guid) - 1);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int dlen = 0;
    if (EVP_Digest(buf, klen + sizeof(ws_guid) - 1, digest, &dlen, EVP_sha1(), NULL) != 1 ||
        dlen != 20)
        return -1;
    /* 20 bytes encode to 28 characters plus the NUL EVP_EncodeBlock writes. */
    return EVP_EncodeBlock((unsigned char *)out, digest, 20) == 28 ? 0 : -1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int proto_ws_has_token(const char *list, const char *token)
{
    size_t tlen = strlen(token);
    const char *p = list;
    while (p && *p) {
        while (is_blank(*p) || *p == ',')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && is_blank(end[-1]))
            end--;
        if ((size_t)(end - start) == tlen && strncasecmp(start, token, tlen) == 0)
            return 1;
    }
    return 0;
}

int proto_ws_response_header(const char *head, const char *name, char *out, size_t outsz)
{
    size_t nlen = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line && line[2];
         line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, nlen) != 0 || l[nlen] != ':')
            continue;
        const char *v = l + nlen + 1;
        while (is_blank(*v))
            v++;
        size_t len = strcspn(v, "\r\n");
        while (len > 0 && is_blank(v[len - 1]))
            len--;
        if (len >= outsz)
            return -1;
        memcpy(out, v, len);
        out[len] = '\0';
        return 0;
    }
    return -1;
}
