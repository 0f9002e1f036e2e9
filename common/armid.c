/*
 * ARM id parsing and name rules behind armid.h. An id is split on '/' into exactly eight
 * segments, then each is checked in place; nothing is copied until the whole id is valid.
 */
#include "common/armid.h"

#include <assert.h>
#include <string.h>

#define ARMID_CODE        "InvalidPropertyValue"
#define ARMID_SEGMENTS    8   /* subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/{type}/{n} */
#define ARMID_QUOTE_MAX   160 /* characters of an offending id quoted in a message */
#define ARMID_REGION_IN   256 /* longest region input read, spaces included */
#define ARMID_RG_NAME_LEN 90
#define ARMID_NAME_LEN    80

/* A borrowed slice of the id (not NUL-terminated). */
struct armid_seg {
    const char *p;
    size_t len;
};

/* The resource types an id may name, matched case-insensitively. */
static const struct {
    const char *ns;
    const char *type;
    enum armid_kind kind;
} armid_types[] = {
    {"Microsoft.Compute", "virtualMachines", ARMID_VM},
    {"Microsoft.Compute", "virtualMachineScaleSets", ARMID_VMSS},
    {"Microsoft.Storage", "storageAccounts", ARMID_STORAGE},
};

static char armid_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int armid_is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int armid_is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ASCII case-insensitive comparison of a segment with a literal. */
static int armid_seg_ieq(struct armid_seg seg, const char *lit)
{
    size_t n = strlen(lit);
    if (seg.len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (armid_lower(seg.p[i]) != armid_lower(lit[i]))
            return 0;
    }
    return 1;
}

static enum cp_err armid_bad(struct cp_error *e, const char *target, const char *s, size_t len,
                             const char *why)
{
    return cp_fail(
        e, CP_EINVAL, ARMID_CODE, target, "'%.*s%s' in %s is not a valid resource id: %s.",
        (int)(len > ARMID_QUOTE_MAX ? ARMID_QUOTE_MAX : len), s, len > ARMID_QUOTE_MAX ? "..." : "",
        target && target[0] ? target : "the field", why);
}

/* Copies a segment into a NUL-terminated buffer; the caller checked that it fits (a segment
 * that does not is cut short rather than overrun, should that check ever be wrong). */
static void armid_seg_copy(char *dst, size_t dstsz, struct armid_seg seg)
{
    assert(seg.len < dstsz);
    if (seg.len >= dstsz)
        seg.len = dstsz - 1;
    memcpy(dst, seg.p, seg.len);
    dst[seg.len] = '\0';
}

enum cp_err armid_parse(const char *s, struct armid *out, struct cp_error *e, const char *target)
{
    assert(out != NULL);
    if (!s)
        return cp_fail(e, CP_EINVAL, ARMID_CODE, target, "A resource id is required in %s.",
                       target && target[0] ? target : "the field");
    size_t len = strnlen(s, ARMID_MAX_LEN + 1);
    if (len > ARMID_MAX_LEN)
        return armid_bad(e, target, s, len, "it is longer than 512 characters");
    if (len == 0 || s[0] != '/')
        return armid_bad(e, target, s, len, "it must start with '/subscriptions/'");

    /* One trailing '/' is tolerated (clients build ids by joining); a second one is not. */
    size_t used = len;
    if (used > 1 && s[used - 1] == '/')
        used--;

    struct armid_seg seg[ARMID_SEGMENTS];
    size_t n = 0;
    const char *p = s + 1;
    const char *end = s + used;
    for (;;) {
        const char *slash = memchr(p, '/', (size_t)(end - p));
        const char *stop = slash ? slash : end;
        if (stop == p)
            return armid_bad(e, target, s, len, "it has an empty segment ('//')");
        if (n == ARMID_SEGMENTS)
            return armid_bad(e, target, s, len,
                             "it has segments after the resource name; expected "
                             "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/"
                             "providers/{namespace}/{type}/{name}");
        seg[n].p = p;
        seg[n].len = (size_t)(stop - p);
        n++;
        if (!slash)
            break;
        p = slash + 1;
    }
    if (n != ARMID_SEGMENTS || !armid_seg_ieq(seg[0], "subscriptions") ||
        !armid_seg_ieq(seg[2], "resourceGroups") || !armid_seg_ieq(seg[4], "providers"))
        return armid_bad(e, target, s, len,
                         "expected /subscriptions/{subscriptionId}/resourceGroups/"
                         "{resourceGroupName}/providers/{namespace}/{type}/{name}");

    struct armid id;
    memset(&id, 0, sizeof(id));
    size_t t;
    for (t = 0; t < sizeof(armid_types) / sizeof(armid_types[0]); t++) {
        if (armid_seg_ieq(seg[5], armid_types[t].ns) && armid_seg_ieq(seg[6], armid_types[t].type))
            break;
    }
    if (t == sizeof(armid_types) / sizeof(armid_types[0]))
        return armid_bad(e, target, s, len,
                         "the resource type must be Microsoft.Compute/virtualMachines, "
                         "Microsoft.Compute/virtualMachineScaleSets or "
                         "Microsoft.Storage/storageAccounts");
    id.kind = armid_types[t].kind;

    if (seg[1].len >= sizeof(id.sub))
        return armid_bad(e, target, s, len, "the subscription id is not a GUID");
    armid_seg_copy(id.sub, sizeof(id.sub), seg[1]);
    if (!armid_is_guid(id.sub))
        return armid_bad(e, target, s, len, "the subscription id is not a GUID");

    if (seg[3].len >= sizeof(id.rg))
        return armid_bad(e, target, s, len, "the resource group name is longer than 90 characters");
    armid_seg_copy(id.rg, sizeof(id.rg), seg[3]);
    if (!armid_valid_rg_name(id.rg))
        return armid_bad(e, target, s, len,
                         "a resource group name is 1-90 letters, digits, '_', '-', '.', '(' or ')' "
                         "and does not end in '.'");

    if (seg[7].len >= sizeof(id.name))
        return armid_bad(e, target, s, len, "the resource name is longer than 80 characters");
    armid_seg_copy(id.name, sizeof(id.name), seg[7]);
    if (!armid_valid_resource_name(id.name))
        return armid_bad(e, target, s, len,
                         "a resource name is 1-80 letters, digits, '_', '-' or '.', starts with a "
                         "letter or digit and ends with a letter, digit or '_'");

    *out = id;
    return CP_OK;
}

int armid_is_guid(const char *s)
{
    if (!s)
        return 0;
    for (size_t i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return 0;
        } else if (!armid_is_hex(s[i])) {
            return 0; /* also stops at the NUL of a short string */
        }
    }
    return s[36] == '\0';
}

int armid_valid_rg_name(const char *s)
{
    if (!s)
        return 0;
    size_t len = strnlen(s, ARMID_RG_NAME_LEN + 1);
    if (len == 0 || len > ARMID_RG_NAME_LEN || s[len - 1] == '.')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!armid_is_alnum(c) && c != '_' && c != '-' && c != '.' && c != '(' && c != ')')
            return 0;
    }
    return 1;
}

int armid_valid_resource_name(const char *s)
{
    if (!s)
        return 0;
    size_t len = strnlen(s, ARMID_NAME_LEN + 1);
    if (len == 0 || len > ARMID_NAME_LEN)
        return 0;
    if (!armid_is_alnum(s[0]))
        return 0;
    if (!armid_is_alnum(s[len - 1]) && s[len - 1] != '_')
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!armid_is_alnum(c) && c != '_' && c != '-' && c != '.')
            return 0;
    }
    return 1;
}

int armid_normalize_region(const char *in, char *out, size_t outsz)
{
    if (!in || !out)
        return -1;
    size_t len = strnlen(in, ARMID_REGION_IN + 1);
    if (len > ARMID_REGION_IN)
        return -1;
    char buf[ARMID_REGION_MAX];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = armid_lower(in[i]);
        if (c == ' ')
            continue;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
            return -1;
        if (n == sizeof(buf))
            return -1;
        buf[n++] = c;
    }
    if (n == 0 || n >= outsz)
        return -1;
    memcpy(out, buf, n);
    out[n] = '\0';
    return 0;
}
