/* The bounded growable buffer behind dynbuf.h. */
#include "common/dynbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void dynbuf_init(struct dynbuf *b, size_t max)
{
    memset(b, 0, sizeof(*b));
    b->max = max;
}

static int grow(struct dynbuf *b, size_t need)
{
    if (b->failed)
        return -1;
    if (need > b->max) {
        b->failed = 1;
        return -1;
    }
    if (need + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need + 1)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

int dynbuf_reserve(struct dynbuf *b, size_t n)
{
    return grow(b, b->len + n);
}

int dynbuf_add(struct dynbuf *b, const void *data, size_t n)
{
    if (grow(b, b->len + n))
        return -1;
    memcpy(b->s + b->len, data, n);
    b->len += n;
    b->s[b->len] = '\0';
    return 0;
}

int dynbuf_addstr(struct dynbuf *b, const char *s)
{
    return dynbuf_add(b, s, strlen(s));
}

int dynbuf_printf(struct dynbuf *b, const char *fmt, ...)
{
    va_list ap;
    /* Usually one pass: format into the room there is, and only when it did not fit grow and
     * format again. */
    size_t room = b->cap > b->len ? b->cap - b->len : 0;
    va_start(ap, fmt);
    int n = vsnprintf(room ? b->s + b->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < room) {
        b->len += (size_t)n;
        return 0;
    }
    if (n < 0 || grow(b, b->len + (size_t)n)) {
        b->failed = 1;
        return -1;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *dynbuf_take(struct dynbuf *b)
{
    char *s = b->failed ? NULL : b->s;
    if (b->failed)
        free(b->s);
    else if (!s)
        s = calloc(1, 1); /* nothing added: an empty string, not a failure */
    size_t max = b->max;
    dynbuf_init(b, max);
    return s;
}

void dynbuf_free(struct dynbuf *b)
{
    free(b->s);
    dynbuf_init(b, b->max);
}
