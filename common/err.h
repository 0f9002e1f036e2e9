/*
 * Error codes and error detail shared by every module.
 *
 * Functions return enum cp_err (CP_OK = 0). When a caller needs to tell a user what went
 * wrong, the callee also fills a caller-owned struct cp_error: an ARM error code (PascalCase),
 * a human message and the offending field ("target", e.g. "properties.timeLimitInSeconds").
 * Only api/ maps enum cp_err to HTTP status.
 */
#ifndef NW_COMMON_ERR_H
#define NW_COMMON_ERR_H

#include <stddef.h>

#define CP_MUST_USE __attribute__((warn_unused_result))

enum cp_err {
    CP_OK = 0,
    CP_EINVAL,     /* bad input from a caller (400) */
    CP_ENOTFOUND,  /* resource absent (404) */
    CP_EEXIST,     /* resource already there (409) */
    CP_ECONFLICT,  /* state forbids the change, e.g. limit reached (409/400 by code) */
    CP_EPRECOND,   /* If-Match / If-None-Match failed (412) */
    CP_ETOOBIG,    /* input over a bound (413) */
    CP_EAUTH,      /* no or bad credential (401) */
    CP_EFORBIDDEN, /* credential not allowed here (403) */
    CP_ENOMEM,     /* allocation failed (500) */
    CP_EIO,        /* store or system failure (500) */
    CP_EBUSY,      /* temporarily unavailable, e.g. shutting down (503) */
    CP_ENOAGENT,   /* no agent serves the target */
};

#define CP_ERROR_CODE_MAX    64
#define CP_ERROR_MESSAGE_MAX 512
#define CP_ERROR_TARGET_MAX  128

/* Caller-owned detail for a failure. An empty code means "use the default for the enum". */
struct cp_error {
    char code[CP_ERROR_CODE_MAX];
    char message[CP_ERROR_MESSAGE_MAX];
    char target[CP_ERROR_TARGET_MAX];
};

/* Fills e (if not NULL) and returns err, so callers can write `return cp_fail(e, ...)`. */
enum cp_err cp_fail(struct cp_error *e, enum cp_err err, const char *code, const char *target,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Short English name of an error code, for logs. */
const char *cp_err_name(enum cp_err err);

#endif
