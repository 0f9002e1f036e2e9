/*
 * Wall-clock time for the API: epoch milliseconds (what the store keeps) and their RFC 3339
 * rendering in the shape ARM uses, "2026-03-17T03:37:35.4290000Z" (UTC, seven fractional digits;
 * we only have milliseconds, so the last four are always 0).
 *
 * libc only; thread-safe (gmtime_r, clock_gettime).
 */
#ifndef NW_COMMON_TIMEFMT_H
#define NW_COMMON_TIMEFMT_H

#include <stddef.h>
#include <stdint.h>

#define TIMEFMT_RFC3339_LEN 32 /* buffer size always large enough for timefmt_rfc3339 */

/* CLOCK_REALTIME as milliseconds since 1970-01-01T00:00:00Z; 0 if the clock cannot be read. */
int64_t timefmt_now_ms(void);

/*
 * Writes ms (epoch milliseconds, may be negative) as "YYYY-MM-DDTHH:MM:SS.fffffffZ" into out
 * (caller-owned, size outsz; TIMEFMT_RFC3339_LEN is always enough). out is always
 * NUL-terminated when outsz > 0; it is "" when outsz is too small or the time is outside
 * years 0000-9999.
 */
void timefmt_rfc3339(int64_t ms, char *out, size_t outsz);

#endif
