/* GUID generation (see ids.h). */
#include "core/ids.h"

#include <string.h>
#include <sys/random.h>
#include <uuid/uuid.h>

/*
 * Random bytes come from getrandom(2) in blocks, per thread: libuuid's uuid_generate_random()
 * reseeds its fallback PRNG and makes a system call for every id, which showed up as several
 * percent of a GET (each response carries a fresh x-ms-request-id). The bytes are still the
 * kernel's CSPRNG output; libuuid formats them.
 */
#define POOL_SIZE 4096

static _Thread_local unsigned char pool[POOL_SIZE];
static _Thread_local size_t pool_used = POOL_SIZE;

static void random_bytes(unsigned char *out, size_t n)
{
    if (pool_used + n > POOL_SIZE) {
        size_t got = 0;
        while (got < POOL_SIZE) {
            ssize_t r = getrandom(pool + got, POOL_SIZE - got, 0);
            if (r > 0)
                got += (size_t)r;
        }
        pool_used = 0;
    }
    memcpy(out, pool + pool_used, n);
    pool_used += n;
}

void core_guid(char out[CORE_GUID_LEN])
{
    uuid_t u;
    random_bytes(u, sizeof(u));
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40); /* version 4 */
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    uuid_unparse_lower(u, out);
}
