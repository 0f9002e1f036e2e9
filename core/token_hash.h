/*
 * SHA-256 of bearer credentials (API tokens and agent tokens), via OpenSSL: only hashes are
 * stored, and a presented token is hashed before it is compared or looked up. Thread-safe.
 */
#ifndef NW_CORE_TOKEN_HASH_H
#define NW_CORE_TOKEN_HASH_H

#include <stddef.h>

#define CORE_TOKEN_HASH_LEN 32 /* bytes of a digest */
#define CORE_TOKEN_HEX_LEN  65 /* 64 lower-case hex digits and the NUL */

/* Returns 0, or -1 when OpenSSL fails (out is then zeroed). */
int core_token_hash(const void *data, size_t len, unsigned char out[CORE_TOKEN_HASH_LEN]);
int core_token_hash_hex(const void *data, size_t len, char out[CORE_TOKEN_HEX_LEN]);

#endif
