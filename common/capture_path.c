/*
 * The local capture path rule behind capture_path.h: classify the path (Linux or Windows
 * drive), then walk its segments once, refusing the first rule that fails.
 */
#include "common/capture_path.h"

#include <string.h>

#define CP_PATH_CODE      "InvalidPropertyValue"
#define CP_PATH_QUOTE_MAX 160 /* characters of an offending path quoted in a message */
#define CP_PATH_SUFFIX    ".cap"

static const char *cpath_field(const char *target)
{
    return target && target[0] ? target : "the path";
}

static enum cp_err cpath_bad(struct cp_error *e, const char *target, const char *path, size_t len,
                             const char *why)
{
    return cp_fail(e, CP_EINVAL, CP_PATH_CODE, target, "The path '%.*s%s' in %s is not valid: %s.",
                   (int)(len > CP_PATH_QUOTE_MAX ? CP_PATH_QUOTE_MAX : len), path,
                   len > CP_PATH_QUOTE_MAX ? "..." : "", cpath_field(target), why);
}

static char cpath_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* 1 when the last segment [name, name+len) is at least one character plus ".cap", any case. */
static int cpath_has_cap_name(const char *name, size_t len)
{
    size_t sl = sizeof(CP_PATH_SUFFIX) - 1;
    if (len <= sl)
        return 0;
    for (size_t i = 0; i < sl; i++) {
        if (cpath_lower(name[len - sl + i]) != CP_PATH_SUFFIX[i])
            return 0;
    }
    return 1;
}

/*
 * Walks the segments of rest[0..len) separated by sep. Refuses empty, "." and ".." segments,
 * and (when bad_chars is not NULL) any of bad_chars; then checks the ".cap" file name.
 * Returns NULL when fine, else the reason.
 */
static const char *cpath_segments(const char *rest, size_t len, char sep, const char *bad_chars)
{
    const char *p = rest;
    const char *end = rest + len;
    const char *last = rest;
    size_t last_len = 0;
    for (;;) {
        const char *s = memchr(p, sep, (size_t)(end - p));
        const char *stop = s ? s : end;
        size_t n = (size_t)(stop - p);
        if (n == 0)
            return s ? "it has an empty segment" : "it must name a file ending in .cap";
        if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
            return "'.' and '..' segments are not allowed";
        if (bad_chars) {
            for (size_t i = 0; i < n; i++) {
                if (strchr(bad_chars, p[i]))
                    return "a Windows path cannot contain < > : \" / | ? * after the drive";
            }
        }
        last = p;
        last_len = n;
        if (!s)
            break;
        p = s + 1;
    }
    if (!cpath_has_cap_name(last, last_len))
        return "the file name must end in .cap";
    return NULL;
}

enum cp_err capture_path_check(const char *path, struct cp_error *e, const char *target)
{
    if (!path || !path[0])
        return cp_fail(e, CP_EINVAL, CP_PATH_CODE, target, "A file path is required in %s.",
                       cpath_field(target));
    size_t len = strnlen(path, CAPTURE_PATH_MAX_LEN + 1);
    if (len > CAPTURE_PATH_MAX_LEN)
        return cpath_bad(e, target, path, len, "it is longer than 1024 bytes");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)path[i];
        if (c < 0x20 || c == 0x7f)
            return cpath_bad(e, target, path, len, "it contains a control character");
    }

    const char *why;
    if (path[0] == '/') {
        static const char root[] = CAPTURE_ROOT_LINUX "/";
        size_t rl = sizeof(root) - 1;
        if (len == rl - 1 && memcmp(path, root, rl - 1) == 0)
            return cpath_bad(e, target, path, len,
                             "it must name a .cap file under " CAPTURE_ROOT_LINUX "/");
        if (len < rl || memcmp(path, root, rl) != 0)
            return cpath_bad(e, target, path, len,
                             "a Linux path must be under " CAPTURE_ROOT_LINUX "/");
        if (len == rl)
            return cpath_bad(e, target, path, len, "it must name a file ending in .cap");
        why = cpath_segments(path + rl, len - rl, '/', NULL);
    } else if (len >= 3 &&
               ((path[0] >= 'A' && path[0] <= 'Z') || (path[0] >= 'a' && path[0] <= 'z')) &&
               path[1] == ':' && path[2] == '\\') {
        why = cpath_segments(path + 3, len - 3, '\\', "<>:\"/|?*");
    } else {
        why = "expected a Linux path under " CAPTURE_ROOT_LINUX "/ or a Windows drive path such "
              "as C:\\captures\\capture.cap";
    }
    if (why)
        return cpath_bad(e, target, path, len, why);
    return CP_OK;
}
