/* Bearer-token file: load, check (SHA-256 via core/token_hash.h (OpenSSL), constant-time compare)
 * and add. */
#include "server/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/armid.h"
#include "common/log.h"
#include "core/token_hash.h"

#define AUTH_MAX_TOKENS 1024
#define AUTH_MAX_SUBS   64
#define AUTH_NAME_MAX   65

struct auth_token {
    char name[AUTH_NAME_MAX];
    unsigned char hash[32];
    int all_subs;
    int nsubs;
    char subs[AUTH_MAX_SUBS][37];
};

struct auth {
    int n;
    struct auth_token tokens[];
};

static int hex_decode(const char *hex, unsigned char *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = hex[2 * i + (size_t)k];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F')
                v |= (unsigned)(c - 'A' + 10);
            else
                return -1;
        }
        out[i] = (unsigned char)v;
    }
    return hex[2 * n] == '\0' ? 0 : -1;
}

static int valid_name(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len >= AUTH_NAME_MAX)
        return 0;
    for (; *s; s++) {
        char c = *s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

/* Parses "*" or "guid,guid" into t. */
static int parse_subs(char *subs, struct auth_token *t)
{
    if (strcmp(subs, "*") == 0) {
        t->all_subs = 1;
        return 0;
    }
    char *save = NULL;
    for (char *s = strtok_r(subs, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        if (t->nsubs >= AUTH_MAX_SUBS || !armid_is_guid(s))
            return -1;
        memcpy(t->subs[t->nsubs++], s, 37);
    }
    return t->nsubs > 0 ? 0 : -1;
}

static int parse_line(char *line, struct auth_token *t)
{
    char *save = NULL;
    char *name = strtok_r(line, " \t", &save);
    char *hash = strtok_r(NULL, " \t", &save);
    char *subs = strtok_r(NULL, " \t", &save);
    if (!name || !hash || !subs || strtok_r(NULL, " \t", &save))
        return -1;
    if (!valid_name(name) || strlen(hash) != 64 || hex_decode(hash, t->hash, 32))
        return -1;
    memcpy(t->name, name, strlen(name) + 1);
    return parse_subs(subs, t);
}

enum cp_err auth_load(const char *path, int required, struct auth **out, struct cp_error *e)
{
    struct auth *a = calloc(1, sizeof(*a) + AUTH_MAX_TOKENS * sizeof(struct auth_token));
    if (!a)
        return CP_ENOMEM;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT && !required) {
            *out = a;
            return CP_OK;
        }
        free(a);
        return cp_fail(e, CP_EIO, "", "", "cannot open token file %s: %s", path, strerror(errno));
    }
    char line[4096];
    int lineno = 0;
    enum cp_err err = CP_OK;
    while (err == CP_OK && fgets(line, sizeof(line), f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *p = line + strspn(line, " \t");
        if (*p == '\0' || *p == '#')
            continue;
        if (a->n >= AUTH_MAX_TOKENS)
            err = cp_fail(e, CP_EINVAL, "", "", "%s: more than %d tokens", path, AUTH_MAX_TOKENS);
        else if (parse_line(p, &a->tokens[a->n]) != 0)
            err = cp_fail(e, CP_EINVAL, "", "",
                          "%s:%d: expected '<name> <sha256-hex> <sub>[,<sub>...]|*'", path, lineno);
        else
            a->n++;
    }
    fclose(f);
    if (err != CP_OK) {
        free(a);
        return err;
    }
    *out = a;
    return CP_OK;
}

void auth_free(struct auth *a)
{
    if (a)
        OPENSSL_cleanse(a, sizeof(*a) + AUTH_MAX_TOKENS * sizeof(struct auth_token));
    free(a);
}

int auth_count(const struct auth *a)
{
    return a->n;
}

enum cp_err auth_check(void *ctx, const char *authorization, const char *sub)
{
    const struct auth *a = ctx;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return CP_EAUTH;
    const char *token = authorization + 7;
    while (*token == ' ')
        token++;
    size_t len = strlen(token);
    if (len == 0 || len > 512)
        return CP_EAUTH;
    unsigned char h[CORE_TOKEN_HASH_LEN];
    if (core_token_hash(token, len, h) != 0)
        return CP_EAUTH;
    const struct auth_token *found = NULL;
    /* Every stored hash is compared, in constant time, whatever matched before. */
    for (int i = 0; i < a->n; i++) {
        if (CRYPTO_memcmp(h, a->tokens[i].hash, 32) == 0)
            found = &a->tokens[i];
    }
    if (!found)
        return CP_EAUTH;
    if (!sub || found->all_subs)
        return CP_OK;
    for (int i = 0; i < found->nsubs; i++) {
        if (strcasecmp(found->subs[i], sub) == 0)
            return CP_OK;
    }
    return CP_EFORBIDDEN;
}

enum cp_err auth_add(const char *path, const char *name, const char *subs, char out[AUTH_TOKEN_LEN],
                     struct cp_error *e)
{
    if (!valid_name(name))
        return cp_fail(e, CP_EINVAL, "", "", "token name must be 1-64 of [A-Za-z0-9_.-]");
    struct auth_token check;
    memset(&check, 0, sizeof(check));
    char subs_copy[AUTH_MAX_SUBS * 40];
    if (snprintf(subs_copy, sizeof(subs_copy), "%s", subs) >= (int)sizeof(subs_copy) ||
        parse_subs(subs_copy, &check))
        return cp_fail(e, CP_EINVAL, "", "",
                       "--subscriptions must be '*' or a comma list of subscription GUIDs");
    unsigned char raw[32], h[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return cp_fail(e, CP_EIO, "", "", "no randomness for a token");
    static const char hexd[] = "0123456789abcdef";
    memcpy(out, "nw_", 3);
    for (int i = 0; i < 32; i++) {
        out[3 + 2 * i] = hexd[raw[i] >> 4];
        out[4 + 2 * i] = hexd[raw[i] & 15];
    }
    out[AUTH_TOKEN_LEN - 1] = '\0';
    if (core_token_hash(out, AUTH_TOKEN_LEN - 1, h) != 0)
        return cp_fail(e, CP_EIO, "", "", "hashing failed");
    char line[AUTH_MAX_SUBS * 40 + 200];
    int n = snprintf(line, sizeof(line), "%s ", name);
    for (int i = 0; i < 32; i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, "%02x", h[i]);
    n += snprintf(line + n, sizeof(line) - (size_t)n, " %s\n", subs);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return cp_fail(e, CP_EIO, "", "", "cannot open %s: %s", path, strerror(errno));
    ssize_t w = write(fd, line, (size_t)n);
    int sync_rc = fsync(fd);
    close(fd);
    if (w != n || sync_rc != 0)
        return cp_fail(e, CP_EIO, "", "", "cannot write %s", path);
    return CP_OK;
}
