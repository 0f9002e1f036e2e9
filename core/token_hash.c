/* SHA-256 through OpenSSL's EVP interface (see token_hash.h). */
#include "core/token_hash.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* Fetched once: OpenSSL 3 otherwise looks the algorithm up on every digest. */
static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int core_token_hash(const void *data, size_t len, unsigned char out[CORE_TOKEN_HASH_LEN])
{
    pthread_once(&sha256_once, fetch_sha256);
    unsigned int n = 0;
    if (EVP_Digest(data, len, out, &n, sha256_md ? sha256_md : EVP_sha256(), NULL) == 1 &&
        n == CORE_TOKEN_HASH_LEN)
        return 0;
    memset(out, 0, CORE_TOKEN_HASH_LEN);
    return -1;
}

int core_token_hash_hex(const void *data, size_t len, char out[CORE_TOKEN_HEX_LEN])
{
    static const char hexd[] = "0123456789abcdef";
    unsigned char d[CORE_TOKEN_HASH_LEN];
    int rc = core_token_hash(data, len, d);
    for (int i = 0; i < CORE_TOKEN_HASH_LEN; i++) {
        out[2 * i] = hexd[d[i] >> 4];
        out[2 * i + 1] = hexd[d[i] & 15];
    }
    out[CORE_TOKEN_HEX_LEN - 1] = '\0';
    return rc;
}
