/* Epoch milliseconds and their RFC 3339 rendering behind timefmt.h. */
#include "common/timefmt.h"

#include <stdio.h>
#include <time.h>

#define TIMEFMT_OUT_LEN 28 /* "YYYY-MM-DDTHH:MM:SS.fffffffZ" without the NUL */

int64_t timefmt_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return 0;
    return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

void timefmt_rfc3339(int64_t ms, char *out, size_t outsz)
{
    if (!out || outsz == 0)
        return;
    out[0] = '\0';
    if (outsz < TIMEFMT_OUT_LEN + 1)
        return;
    /* Floor division, so that -1 ms is 1969-12-31T23:59:59.999. */
    int64_t sec = ms / 1000;
    int64_t rem = ms % 1000;
    if (rem < 0) {
        rem += 1000;
        sec -= 1;
    }
    time_t t = (time_t)sec;
    if ((int64_t)t != sec)
        return;
    struct tm tm;
    if (!gmtime_r(&t, &tm))
        return;
    if (tm.tm_year > 9999 - 1900 || tm.tm_year < -1900)
        return;
    int year = tm.tm_year + 1900;
    int n = snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03d0000Z", year, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)rem);
    if (n != TIMEFMT_OUT_LEN)
        out[0] = '\0';
}
