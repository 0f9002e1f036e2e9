/* Bounded ASCII string helpers behind strutil.h. */
#include "common/strutil.h"

#include <string.h>
#include <strings.h>

int str_copy(char *dst, size_t n, const char *src)
{
    size_t len = strlen(src);
    if (len >= n) {
        if (n)
            dst[0] = '\0';
        return -1;
    }
    memcpy(dst, src, len + 1);
    return 0;
}

int str_lower_copy(char *dst, size_t n, const char *src)
{
    if (str_copy(dst, n, src) != 0)
        return -1;
    for (char *p = dst; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }
    return 0;
}

int str_ieq(const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    return strcasecmp(a, b) == 0;
}
