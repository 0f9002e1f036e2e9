/*
 * ARM resource ids and names: parsing the ids a packet capture points at (its target VM or
 * scale set, its storage account), and the name rules the API applies to path segments.
 *
 * Fixed segments ("subscriptions", "resourceGroups", "providers", namespaces, types) match
 * ASCII case-insensitively, as ARM does; names keep the caller's casing. Only ASCII names are
 * accepted (ARM allows some Unicode in resource group names; we do not).
 *
 * libc only; no global state; every function is thread-safe.
 */
#ifndef NW_COMMON_ARMID_H
#define NW_COMMON_ARMID_H

#include <stddef.h>

#include "common/err.h"

#define ARMID_SUB_MAX    64  /* buffer for a subscription id; a GUID needs 37 */
#define ARMID_RG_MAX     91  /* buffer for a resource group name: 90 + NUL */
#define ARMID_NAME_MAX   81  /* buffer for a resource name: 80 + NUL */
#define ARMID_MAX_LEN    512 /* longest id armid_parse reads; longer ones are refused */
#define ARMID_REGION_MAX 64  /* longest normalised region name */

enum armid_kind {
    ARMID_VM,      /* Microsoft.Compute/virtualMachines */
    ARMID_VMSS,    /* Microsoft.Compute/virtualMachineScaleSets */
    ARMID_STORAGE, /* Microsoft.Storage/storageAccounts */
};

/* A parsed id; every string is NUL-terminated and in the caller's casing. */
struct armid {
    enum armid_kind kind;
    char sub[ARMID_SUB_MAX];   /* subscription GUID */
    char rg[ARMID_RG_MAX];     /* resource group name */
    char name[ARMID_NAME_MAX]; /* VM, scale set or storage account name */
};

/*
 * Parses one of
 *   /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}
 *   /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}
 *   /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}
 * into *out (caller-owned; written only on success). A single trailing '/' is tolerated; any
 * other extra, missing or empty segment is refused. {sub} must pass armid_is_guid, {rg}
 * armid_valid_rg_name, {name} armid_valid_resource_name. The caller checks out->kind against
 * what the field allows. s is borrowed; NULL is refused. target (may be NULL) names the field.
 * Returns CP_OK, or CP_EINVAL with e (if not NULL) filled: code "InvalidPropertyValue", the
 * given target, and a message saying which part is wrong.
 */
enum cp_err armid_parse(const char *s, struct armid *out, struct cp_error *e,
                        const char *target) CP_MUST_USE;

/* Name validators: 1 valid, 0 not (NULL is not valid). */

/* 8-4-4-4-12 hex digits with '-' between, either case, no braces. */
int armid_is_guid(const char *s);
/* 1-90 characters of ASCII letters, digits, '_', '-', '.', '(', ')'; not ending in '.'. */
int armid_valid_rg_name(const char *s);
/* 1-80 characters of ASCII letters, digits, '_', '-', '.'; the first a letter or digit, the last
 * a letter, digit or '_'. */
int armid_valid_resource_name(const char *s);

/*
 * Normalises a region ("West US 2" -> "westus2"): ASCII lower-case, spaces removed. Valid when
 * the result is 1-ARMID_REGION_MAX characters of [a-z0-9]. Writes the result and its NUL into
 * out (size outsz) and returns 0; returns -1 (out untouched) when in is NULL, invalid, longer
 * than 256 characters, or the result does not fit in outsz.
 */
int armid_normalize_region(const char *in, char *out, size_t outsz);

#endif
