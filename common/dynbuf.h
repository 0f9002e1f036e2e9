/*
 * A growable byte buffer with a hard maximum (curl's dynbuf habit): appends fail, and the
 * buffer is marked failed, once the content would pass max. Always NUL-terminated.
 */
#ifndef NW_COMMON_DYNBUF_H
#define NW_COMMON_DYNBUF_H

#include <stddef.h>

struct dynbuf {
    char *s;
    size_t len;
    size_t cap;
    size_t max;
    int failed; /* an append failed (too big or out of memory); the content is incomplete */
};

void dynbuf_init(struct dynbuf *b, size_t max);
/* Makes room for n more bytes up front; returns 0 or -1 as dynbuf_add(). */
int dynbuf_reserve(struct dynbuf *b, size_t n);
/* Appends n bytes; returns 0, or -1 (and sets failed) past max or out of memory. */
int dynbuf_add(struct dynbuf *b, const void *data, size_t n);
int dynbuf_addstr(struct dynbuf *b, const char *s);
int dynbuf_printf(struct dynbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the string over to the caller (who frees it), or NULL when failed; resets b. */
char *dynbuf_take(struct dynbuf *b);
void dynbuf_free(struct dynbuf *b);

#endif
