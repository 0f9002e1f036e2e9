/*
 * SHA-256 (FIPS 180-4), libc only, for what server and agent both hash: API and agent bearer
 * tokens (stored as SHA-256 hex, compared hashed) and, on the agent, capture files.
 *
 * Why not OpenSSL here: common/ is libc only (STYLE.md), core/ links no crypto library, and
 * both need the same digest. SHA-256 has no secret-dependent branches or table lookups (only
 * add, rotate, xor on 32-bit words), so this portable form runs in time independent of the
 * data, as a token hash should. tests/unit/test_agents.c checks it against the FIPS 180-2
 * vectors and against OpenSSL's EVP on every length 0..1100.
 *
 * No global state; every function is thread-safe on its own context.
 */
#ifndef NW_COMMON_SHA256_H
#define NW_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32 /* bytes of a digest */
#define SHA256_HEX_LEN    65 /* 64 lower-case hex digits and the NUL */

/* Streaming state; caller-owned, no resources (no _free needed). */
struct sha256_ctx {
    uint32_t h[8];
    uint64_t bytes; /* message length so far */
    unsigned char buf[64];
    size_t used; /* bytes waiting in buf */
};

void sha256_init(struct sha256_ctx *c);
/* Adds len bytes of data (borrowed; may be NULL when len is 0). */
void sha256_update(struct sha256_ctx *c, const void *data, size_t len);
/* Writes the digest into out and wipes c (init again to reuse it). */
void sha256_final(struct sha256_ctx *c, unsigned char out[SHA256_DIGEST_LEN]);

/* One-shot digest of data (len bytes). */
void sha256(const void *data, size_t len, unsigned char out[SHA256_DIGEST_LEN]);
/* One-shot digest as 64 lower-case hex digits and a NUL. */
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN]);

#endif
