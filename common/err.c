/* Filling struct cp_error and naming enum cp_err. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum cp_err cp_fail(struct cp_error *e, enum cp_err err, const char *code, const char *target,
                    const char *fmt, ...)
{
    if (!e)
        return err;
    snprintf(e->code, sizeof(e->code), "%s", code ? code : "");
    snprintf(e->target, sizeof(e->target), "%s", target ? target : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return err;
}

const char *cp_err_name(enum cp_err err)
{
    static const char *const names[] = {
        [CP_OK] = "ok",
        [CP_EINVAL] = "invalid",
        [CP_ENOTFOUND] = "not_found",
        [CP_EEXIST] = "exists",
        [CP_ECONFLICT] = "conflict",
        [CP_EPRECOND] = "precondition",
        [CP_ETOOBIG] = "too_big",
        [CP_EAUTH] = "auth",
        [CP_EFORBIDDEN] = "forbidden",
        [CP_ENOMEM] = "no_memory",
        [CP_EIO] = "io",
        [CP_EBUSY] = "busy",
        [CP_ENOAGENT] = "no_agent",
    };
    if ((size_t)err < sizeof(names) / sizeof(names[0]) && names[err])
        return names[err];
    return "unknown";
}
