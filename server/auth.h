/*
 * API bearer tokens. The token file holds one line per token:
 *     <name> <sha256-hex of the token> <subscription>[,<subscription>...] | *
 * Tokens themselves are never stored or logged; a presented token is hashed and compared with
 * every stored hash in constant time. The file is read once at start-up (read-only after).
 */
#ifndef NW_SERVER_AUTH_H
#define NW_SERVER_AUTH_H

#include "common/err.h"

struct auth;

/* Loads path. A missing file gives an empty set (every call then fails with 401) unless
 * required is set. Lines that do not parse are refused with the line number in e. */
enum cp_err auth_load(const char *path, int required, struct auth **out,
                      struct cp_error *e) CP_MUST_USE;
void auth_free(struct auth *a);
int auth_count(const struct auth *a);

/* api_auth_fn: checks an Authorization header value ("Bearer <token>"). sub NULL: any valid
 * token; otherwise the token must allow sub (case-insensitive) or all subscriptions. */
enum cp_err auth_check(void *a, const char *authorization, const char *sub);

/* Makes a new random token, appends its line to path (created 0600), and writes the token
 * (NUL-terminated) to out. name: [A-Za-z0-9_.-]{1,64}; subs: "*" or a comma list of GUIDs. */
#define AUTH_TOKEN_LEN 67 /* "nw_" + 64 hex + NUL */
enum cp_err auth_add(const char *path, const char *name, const char *subs, char out[AUTH_TOKEN_LEN],
                     struct cp_error *e) CP_MUST_USE;

#endif
