/* The spec reader behind agent/spec.h. */
#include "agent/spec.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/capture.h"
#include "common/bpf_expr.h"

#define SPEC_MAX_FILTERS BPF_EXPR_MAX_FILTERS /* what api/ accepts */

/* Reads an optional non-negative integer member (absent or null = def) no larger than max. */
static int spec_uint_or(json_t *spec, const char *key, uint64_t max, uint64_t def, uint64_t *out,
                        struct cp_error *e)
{
    json_t *v = json_object_get(spec, key);
    *out = def;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max) {
        cp_fail(e, CP_EINVAL, "CaptureFailed", key, "%s must be an integer from 0 to %" PRIu64, key,
                max);
        return -1;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int spec_uint(json_t *spec, const char *key, uint64_t max, uint64_t *out, struct cp_error *e)
{
    return spec_uint_or(spec, key, max, 0, out, e);
}

/*
 * continuousCapture and captureSettings. Given at all (true or false), the session lasts
 * sessionTimeLimitInSeconds, as netwatchd's backstop counts it; true makes it a ring.
 */
static int spec_continuous(json_t *spec, struct agent_spec *out, struct cp_error *e)
{
    json_t *cc = json_object_get(spec, "continuousCapture");
    if (!cc || json_is_null(cc))
        return 0;
    if (!json_is_boolean(cc)) {
        cp_fail(e, CP_EINVAL, "CaptureFailed", "continuousCapture",
                "continuousCapture must be a boolean");
        return -1;
    }
    json_t *cs = json_object_get(spec, "captureSettings");
    uint64_t count, size, secs;
    if (spec_uint_or(cs, "fileCount", SPEC_RING_FILES_MAX, SPEC_RING_FILES_DEFAULT, &count, e) ||
        spec_uint_or(cs, "fileSizeInBytes", UINT32_MAX, SPEC_RING_SIZE_DEFAULT, &size, e) ||
        spec_uint_or(cs, "sessionTimeLimitInSeconds", SPEC_RING_TIME_MAX, SPEC_RING_TIME_DEFAULT,
                     &secs, e))
        return -1;
    out->continuous = 1;
    out->ring = json_is_true(cc);
    out->ring_files = count ? (uint32_t)count : SPEC_RING_FILES_DEFAULT;
    out->ring_file_size = size ? size : SPEC_RING_SIZE_DEFAULT;
    out->time_limit_s = secs ? (uint32_t)secs : SPEC_RING_TIME_MAX;
    out->byte_limit = 0;
    return 0;
}

/* The filters as one pcap expression (*out malloc'ed; NULL with no filters). */
static int spec_filter(json_t *spec, char **out, struct cp_error *e)
{
    json_t *fs = json_object_get(spec, "filters");
    size_t n = json_array_size(fs);
    *out = NULL;
    if (n == 0)
        return 0;
    if (n > SPEC_MAX_FILTERS) {
        cp_fail(e, CP_EINVAL, "CaptureFailed", "filters", "at most %d filters", SPEC_MAX_FILTERS);
        return -1;
    }
    struct bpf_filter_spec *specs = calloc(n, sizeof(*specs));
    struct nf_ip_set *local = calloc(1, sizeof(*local));
    int rc = -1;
    if (!specs || !local) {
        cp_fail(e, CP_ENOMEM, "InternalError", "", "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *f = json_array_get(fs, i);
        if (bpf_filter_spec_parse(json_string_value(json_object_get(f, "protocol")),
                                  json_string_value(json_object_get(f, "localIPAddress")),
                                  json_string_value(json_object_get(f, "remoteIPAddress")),
                                  json_string_value(json_object_get(f, "localPort")),
                                  json_string_value(json_object_get(f, "remotePort")), i, &specs[i],
                                  e) != CP_OK)
            goto refused;
    }
    /* The machine's addresses now: what "local" means for this session (common/bpf_expr.h). */
    if (capture_local_addrs(local, e) != CP_OK || bpf_expr_build(specs, n, local, out, e) != CP_OK)
        goto refused;
    rc = 0;
    goto out;
refused:
    /* The builders' codes are API validation codes; for the agent a bad filter fails the
     * capture. */
    if (strcmp(e->code, "InternalError") != 0)
        snprintf(e->code, sizeof(e->code), "%s", "CaptureFailed");
out:
    free(specs);
    free(local);
    return rc;
}

/* The local file of the spec, relative to the capture root (*rel NULL: storage only), and the
 * upload mode. Refusals fill e with the PcError. */
static int spec_file(json_t *spec, const char **rel, enum agent_spec_upload *upload,
                     struct cp_error *e)
{
    json_t *sl = json_object_get(spec, "storageLocation");
    const char *path = json_string_value(json_object_get(sl, "filePath"));
    const char *sid = json_string_value(json_object_get(sl, "storageId"));
    if (!path)
        path = json_string_value(json_object_get(sl, "localPath"));
    *rel = NULL;
    *upload = sid && *sid ? (path ? SPEC_UPLOAD_BOTH : SPEC_UPLOAD_ONLY) : SPEC_UPLOAD_NONE;
    if (*upload == SPEC_UPLOAD_ONLY)
        return 0;
    if (!path) {
        cp_fail(e, CP_EINVAL, "StorageFailed", "storageLocation",
                "storageLocation names neither a storage account nor a local path");
        return -1;
    }
    size_t plen = strlen(SPEC_ROOT_PREFIX);
    if (strncmp(path, SPEC_ROOT_PREFIX, plen) != 0 || !path[plen]) {
        cp_fail(e, CP_EINVAL, "CaptureFailed", "storageLocation",
                "the local path '%.256s' is not under " SPEC_ROOT_PREFIX
                " (this is a Linux agent: Windows paths cannot be written)",
                path);
        return -1;
    }
    *rel = path + plen;
    return 0;
}

int agent_spec_read(const char *text, struct agent_spec *out, struct cp_error *e)
{
    memset(out, 0, sizeof(*out));
    json_error_t jerr;
    json_t *spec = json_loads(text, 0, &jerr);
    uint64_t snaplen, bytes, secs;
    const char *rel = NULL;
    int rc = -1;
    if (!json_is_object(spec)) {
        cp_fail(e, CP_EINVAL, "InternalError", "spec", "the spec is not a JSON object");
    } else if (spec_file(spec, &rel, &out->upload, e) == 0 &&
               spec_uint(spec, "bytesToCapturePerPacket", UINT32_MAX, &snaplen, e) == 0 &&
               spec_uint(spec, "totalBytesPerSession", UINT64_MAX >> 1, &bytes, e) == 0 &&
               spec_uint(spec, "timeLimitInSeconds", UINT32_MAX, &secs, e) == 0 &&
               spec_filter(spec, &out->filter, e) == 0) {
        if (rel && strlen(rel) > CAPTURE_PATH_MAX_LEN) {
            cp_fail(e, CP_EINVAL, "CaptureFailed", "storageLocation", "the local path is too long");
        } else {
            snprintf(out->file, sizeof(out->file), "%s", rel ? rel : "");
            out->snaplen = (uint32_t)snaplen;
            out->byte_limit = bytes;
            out->time_limit_s = (uint32_t)secs;
            rc = spec_continuous(spec, out, e);
        }
    }
    json_decref(spec);
    return rc;
}

void agent_spec_clear(struct agent_spec *s)
{
    free(s->filter);
    s->filter = NULL;
}

void agent_spec_upload_file(struct agent_spec *s, const char *capture_id)
{
    if (s->upload == SPEC_UPLOAD_ONLY)
        snprintf(s->file, sizeof(s->file), "%s/%s/%s", SPEC_UPLOAD_DIR, capture_id,
                 SPEC_UPLOAD_BASE);
}
