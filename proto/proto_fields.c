/*
 * Typed member readers for the decoder: each one checks a single value against the value rules
 * of proto.h (JSON type, range, length, shape) and words the error with the member's path.
 */
#include "proto/proto_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum cp_err proto_rd_fail(const struct proto_rd *rd, const char *target, const char *fmt, ...)
{
    if (!rd->e)
        return CP_EINVAL;
    char what[CP_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return cp_fail(rd->e, CP_EINVAL, "InvalidMessage", target, "%s: %s%s%s", rd->type, target,
                   target[0] ? " " : "", what);
}

const char *proto_rd_path(char *buf, size_t n, const char *prefix, const char *key)
{
    snprintf(buf, n, "%s%s%s", prefix, prefix[0] ? "." : "", key);
    return buf;
}

/* The member's value, or NULL (absent); a required absent member is an error. */
static enum cp_err member(const struct proto_rd *rd, const json_t *obj, const char *target,
                          const char *key, int required, const json_t **out)
{
    const json_t *v = json_object_get(obj, key);
    if (!v && required)
        return proto_rd_fail(rd, target, "is required");
    *out = v;
    return CP_OK;
}

enum cp_err proto_rd_int(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                         const char *key, int required, int64_t min, int64_t max, int64_t *out)
{
    char target[PROTO_TARGET_MAX];
    const json_t *v;
    proto_rd_path(target, sizeof(target), prefix, key);
    enum cp_err err = member(rd, obj, target, key, required, &v);
    if (err || !v)
        return err;
    if (!json_is_integer(v))
        return proto_rd_fail(rd, target, "must be an integer");
    json_int_t i = json_integer_value(v);
    if (i < min || i > max) {
        if (max == INT64_MAX)
            return proto_rd_fail(rd, target, "must be at least %lld, not %lld", (long long)min,
                                 (long long)i);
        return proto_rd_fail(rd, target, "must be %lld..%lld, not %lld", (long long)min,
                             (long long)max, (long long)i);
    }
    *out = (int64_t)i;
    return CP_OK;
}

enum cp_err proto_rd_bool(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                          const char *key, int *out)
{
    char target[PROTO_TARGET_MAX];
    const json_t *v;
    proto_rd_path(target, sizeof(target), prefix, key);
    enum cp_err err = member(rd, obj, target, key, 1, &v);
    if (err)
        return err;
    if (!json_is_boolean(v))
        return proto_rd_fail(rd, target, "must be true or false");
    *out = json_is_true(v);
    return CP_OK;
}

enum cp_err proto_rd_str_value(const struct proto_rd *rd, const json_t *v, const char *target,
                               unsigned flags, char *dst, size_t dstsz)
{
    if (!v)
        return (flags & PROTO_F_REQUIRED) ? proto_rd_fail(rd, target, "is required") : CP_OK;
    if (!json_is_string(v))
        return proto_rd_fail(rd, target, "must be a string");
    /* jansson refuses "\u0000" (no JSON_ALLOW_NUL) and invalid UTF-8, so s is a C string. */
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len >= dstsz)
        return proto_rd_fail(rd, target, "is longer than %zu bytes", dstsz - 1);
    if (flags & PROTO_F_NAME) {
        if (len == 0)
            return proto_rd_fail(rd, target, "must not be empty");
        for (size_t i = 0; i < len; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c < 0x20 || c == 0x7f)
                return proto_rd_fail(rd, target, "must not contain control characters");
        }
    }
    memcpy(dst, s, len + 1);
    return CP_OK;
}

enum cp_err proto_rd_str(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                         const char *key, unsigned flags, char *dst, size_t dstsz)
{
    char target[PROTO_TARGET_MAX];
    proto_rd_path(target, sizeof(target), prefix, key);
    return proto_rd_str_value(rd, json_object_get(obj, key), target, flags, dst, dstsz);
}

int proto_is_id(const char *s)
{
    for (size_t i = 0; i < PROTO_ID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0; /* also stops at the NUL of a short string */
        }
    }
    return s[PROTO_ID_LEN] == '\0';
}

enum cp_err proto_rd_id_value(const struct proto_rd *rd, const json_t *v, const char *target,
                              char *dst)
{
    if (!v)
        return proto_rd_fail(rd, target, "is required");
    if (!json_is_string(v))
        return proto_rd_fail(rd, target, "must be a string");
    if (json_string_length(v) != PROTO_ID_LEN || !proto_is_id(json_string_value(v)))
        return proto_rd_fail(rd, target, "must be a lower-case GUID (8-4-4-4-12 hex digits)");
    memcpy(dst, json_string_value(v), PROTO_ID_SIZE);
    return CP_OK;
}

enum cp_err proto_rd_id(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                        const char *key, char *dst)
{
    char target[PROTO_TARGET_MAX];
    proto_rd_path(target, sizeof(target), prefix, key);
    return proto_rd_id_value(rd, json_object_get(obj, key), target, dst);
}

enum cp_err proto_rd_array(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                           const char *key, int required, size_t max, const json_t **out)
{
    char target[PROTO_TARGET_MAX];
    const json_t *v;
    proto_rd_path(target, sizeof(target), prefix, key);
    enum cp_err err = member(rd, obj, target, key, required, &v);
    if (err)
        return err;
    if (v && !json_is_array(v))
        return proto_rd_fail(rd, target, "must be an array");
    if (v && json_array_size(v) > max)
        return proto_rd_fail(rd, target, "has %zu entries, more than %zu", json_array_size(v), max);
    *out = v;
    return CP_OK;
}

enum cp_err proto_rd_object(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                            const char *key, const json_t **out)
{
    char target[PROTO_TARGET_MAX];
    const json_t *v;
    proto_rd_path(target, sizeof(target), prefix, key);
    enum cp_err err = member(rd, obj, target, key, 1, &v);
    if (err)
        return err;
    if (!json_is_object(v))
        return proto_rd_fail(rd, target, "must be an object");
    *out = v;
    return CP_OK;
}
