/* Small bounded string helpers (ASCII only; names in ARM paths are ASCII). */
#ifndef NW_COMMON_STRUTIL_H
#define NW_COMMON_STRUTIL_H

#include <stddef.h>

/* Copies src into dst (size n) lower-cased; returns 0, or -1 when src does not fit (dst is then
 * ""). */
int str_lower_copy(char *dst, size_t n, const char *src);
/* Copies src into dst (size n); returns 0, or -1 when it does not fit (dst is then ""). */
int str_copy(char *dst, size_t n, const char *src);
/* ASCII case-insensitive equality; NULLs are equal only to NULL. */
int str_ieq(const char *a, const char *b);

#endif
