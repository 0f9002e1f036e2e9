/* The capture-file blob naming rule (see storage/blob_name.h). */
#include "storage/blob_name.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "storage/sas.h"

#define CONTAINER_SEGMENT "/network-watcher-logs/"

enum cp_err storage_blob_name(const char *storage_path, const char *instance, int64_t file,
                              char *out, size_t outsz, struct cp_error *e)
{
    const char *base = storage_path ? strstr(storage_path, CONTAINER_SEGMENT) : NULL;
    if (!base || file < 0)
        return cp_fail(e, CP_EINVAL, "StorageFailed", "",
                       "The capture's storagePath is not in the network-watcher-logs container.");
    base += strlen(CONTAINER_SEGMENT);
    size_t n = strlen(base);
    char suffix[24] = "";
    if (file > 0)
        snprintf(suffix, sizeof(suffix), "_%" PRId64, file);
    int len;
    if (n > 4 && strcmp(base + n - 4, ".cap") == 0) {
        len = snprintf(out, outsz, "%.*s%s.cap", (int)(n - 4), base, suffix);
    } else {
        if (!instance || !instance[0] || strchr(instance, '/'))
            return cp_fail(e, CP_EINVAL, "StorageFailed", "",
                           "A scale-set capture's file needs its instance id.");
        len = snprintf(out, outsz, "%s/%s%s.cap", base, instance, suffix);
    }
    if (len < 0 || (size_t)len >= outsz || len > STORAGE_BLOB_NAME_MAX)
        return cp_fail(e, CP_ETOOBIG, "StorageFailed", "",
                       "The blob name would be longer than %d characters.", STORAGE_BLOB_NAME_MAX);
    return CP_OK;
}
