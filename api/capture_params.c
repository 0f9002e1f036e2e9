/*
 * Validation of a PacketCapture PUT body and its normalised form.
 *
 * Every refusal names the offending field in `target` (e.g. properties.timeLimitInSeconds).
 * The output is the PacketCaptureParameters object that is stored and echoed: defaults filled
 * as the ARM reference's checklist says, enums in canonical casing, unknown fields dropped.
 * The grammar of IP and port fields is the shared one in common/netfilter.h, so the agent
 * reads filters exactly as they were accepted here; and the whole set is built into the pcap
 * expression and compiled to the BPF program the agent would install (filter/filter.h), so a
 * set the kernel cannot run is refused here, not at the agent.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>

#include "api/api_int.h"
#include "common/armid.h"
#include "common/capture_path.h"
#include "common/bpf_expr.h"
#include "common/netfilter.h"
#include "core/storage_accounts.h"
#include "filter/filter.h"

#define MAX_FILTERS       BPF_EXPR_MAX_FILTERS
#define MAX_SCOPE_ENTRIES 1000
#define SCOPE_ENTRY_MAX   64
#define UINT32_LIMIT      4294967295LL

static enum cp_err missing(struct cp_error *e, const char *target)
{
    return cp_fail(e, CP_EINVAL, "MissingRequiredProperty", target, "%s is required.", target);
}

static enum cp_err wrong_type(struct cp_error *e, const char *target, const char *type)
{
    return cp_fail(e, CP_EINVAL, "InvalidRequestContent", target, "%s must be %s.", target, type);
}

/* Optional string member: *out NULL when absent or null. */
static enum cp_err opt_string(json_t *obj, const char *key, const char *target, const char **out,
                              struct cp_error *e)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return CP_OK;
    if (!json_is_string(v))
        return wrong_type(e, target, "a string");
    *out = json_string_value(v);
    return CP_OK;
}

/* Optional integer member in [lo, hi], def when absent or null. */
static enum cp_err opt_int(json_t *obj, const char *key, const char *target, long long lo,
                           long long hi, long long def, long long *out, struct cp_error *e)
{
    json_t *v = json_object_get(obj, key);
    *out = def;
    if (!v || json_is_null(v))
        return CP_OK;
    if (!json_is_integer(v))
        return wrong_type(e, target, "an integer");
    long long x = json_integer_value(v);
    if (x < lo || x > hi)
        return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", target,
                       "%s must be between %lld and %lld; %lld was given.", target, lo, hi, x);
    *out = x;
    return CP_OK;
}

static enum cp_err check_target(json_t *p, json_t *out, struct cp_error *e)
{
    const char *target, *type;
    enum cp_err err = opt_string(p, "target", "properties.target", &target, e);
    if (err == CP_OK)
        err = opt_string(p, "targetType", "properties.targetType", &type, e);
    if (err != CP_OK)
        return err;
    if (!target || !*target)
        return missing(e, "properties.target");
    int vmss = 0;
    if (type) {
        if (strcasecmp(type, "AzureVMSS") == 0)
            vmss = 1;
        else if (strcasecmp(type, "AzureVM") != 0)
            return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "properties.targetType",
                           "properties.targetType must be 'AzureVM' or 'AzureVMSS'.");
    }
    struct armid id;
    err = armid_parse(target, &id, e, "properties.target");
    if (err != CP_OK)
        return err;
    if (id.kind != (vmss ? ARMID_VMSS : ARMID_VM))
        return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "properties.target",
                       vmss ? "targetType AzureVMSS needs a virtual machine scale set id "
                              "(.../providers/Microsoft.Compute/virtualMachineScaleSets/{name})."
                            : "targetType AzureVM needs a virtual machine id "
                              "(.../providers/Microsoft.Compute/virtualMachines/{name}).");
    json_object_set_new(out, "target", json_string(target));
    json_object_set_new(out, "targetType", json_string(vmss ? "AzureVMSS" : "AzureVM"));
    return CP_OK;
}

/* 1 when c may appear in an instance id (what `netwatchd agent add --instance` accepts). */
static int instance_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

const char *api_scope_instance(const char *entry)
{
    const char *slash = strrchr(entry, '/');
    return slash ? slash + 1 : entry;
}

/*
 * One scope entry: an instance id ("3"), or the instance's resource id under the target scale
 * set ("<target>/virtualMachines/3", any casing). Either way the instance id is 1-64 characters
 * of letters, digits, '_', '-', '.'.
 */
static enum cp_err check_scope_entry(const char *entry, const char *vmss, const char *target,
                                     struct cp_error *e)
{
    const char *inst = entry;
    if (strchr(entry, '/')) {
        size_t n = strlen(vmss);
        static const char vms[] = "/virtualMachines/";
        if (strncasecmp(entry, vmss, n) != 0 || strncasecmp(entry + n, vms, sizeof(vms) - 1) != 0)
            return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", target,
                           "%s entry '%.200s' is not an instance of the target scale set: give "
                           "an instance id (\"0\") or '<target>/virtualMachines/<instance id>'.",
                           target, entry);
        inst = entry + n + sizeof(vms) - 1;
    }
    size_t len = strlen(inst);
    int ok = len >= 1 && len <= SCOPE_ENTRY_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = instance_char(inst[i]);
    if (!ok)
        return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", target,
                       "%s entries must be instance ids (1-%d letters, digits, '_', '-' or '.') "
                       "or instance resource ids of the target scale set; '%.200s' is not.",
                       target, SCOPE_ENTRY_MAX, entry);
    return CP_OK;
}

static enum cp_err check_scope_list(json_t *scope, const char *key, const char *vmss, json_t **out,
                                    struct cp_error *e)
{
    char target[64];
    snprintf(target, sizeof(target), "properties.scope.%s", key);
    json_t *v = json_object_get(scope, key);
    *out = json_array();
    if (!v || json_is_null(v))
        return CP_OK;
    if (!json_is_array(v))
        return wrong_type(e, target, "an array of strings");
    if (json_array_size(v) > MAX_SCOPE_ENTRIES)
        return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", target, "%s has more than %d entries.",
                       target, MAX_SCOPE_ENTRIES);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item))
            return wrong_type(e, target, "an array of strings");
        if (json_string_length(item) == 0 || json_string_length(item) > ARMID_MAX_LEN + 80)
            return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", target,
                           "%s entries must be instance ids (1-%d characters).", target,
                           SCOPE_ENTRY_MAX);
        /* A VM target is refused by the caller with a clearer message. */
        if (vmss) {
            enum cp_err err = check_scope_entry(json_string_value(item), vmss, target, e);
            if (err != CP_OK)
                return err;
        }
        json_array_append(*out, item);
    }
    return CP_OK;
}

/* An instance both included and excluded is a contradiction, refused rather than guessed. */
static enum cp_err check_scope_overlap(json_t *inc, json_t *exc, struct cp_error *e)
{
    size_t i, k;
    json_t *a, *b;
    json_array_foreach(inc, i, a)
    {
        json_array_foreach(exc, k, b)
        {
            if (strcasecmp(api_scope_instance(json_string_value(a)),
                           api_scope_instance(json_string_value(b))) == 0)
                return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "properties.scope.exclude",
                               "Instance '%.80s' is both included and excluded; list it in "
                               "properties.scope.include or in properties.scope.exclude, not both.",
                               api_scope_instance(json_string_value(b)));
        }
    }
    return CP_OK;
}

static enum cp_err check_scope(json_t *p, json_t *out, struct cp_error *e)
{
    json_t *scope = json_object_get(p, "scope");
    json_t *inc = NULL, *exc = NULL;
    if (scope && !json_is_null(scope) && !json_is_object(scope))
        return wrong_type(e, "properties.scope", "an object");
    json_t *s = scope && json_is_object(scope) ? scope : NULL;
    const char *vmss =
        strcmp(json_string_value(json_object_get(out, "targetType")), "AzureVMSS") == 0
            ? json_string_value(json_object_get(out, "target"))
            : NULL;
    enum cp_err err = check_scope_list(s, "include", vmss, &inc, e);
    if (err == CP_OK)
        err = check_scope_list(s, "exclude", vmss, &exc, e);
    if (err == CP_OK && (json_array_size(inc) || json_array_size(exc)) && !vmss)
        err = cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "properties.scope",
                      "properties.scope applies only to targetType AzureVMSS.");
    if (err == CP_OK)
        err = check_scope_overlap(inc, exc, e);
    if (err == CP_OK)
        json_object_set_new(out, "scope", json_pack("{s:O, s:O}", "include", inc, "exclude", exc));
    json_decref(inc);
    json_decref(exc);
    return err;
}

static enum cp_err check_path(json_t *sl, const char *key, json_t *out_sl, struct cp_error *e)
{
    char target[64];
    snprintf(target, sizeof(target), "properties.storageLocation.%s", key);
    const char *path;
    enum cp_err err = opt_string(sl, key, target, &path, e);
    if (err != CP_OK || !path || !*path)
        return err;
    err = capture_path_check(path, e, target);
    if (err == CP_OK)
        json_object_set_new(out_sl, key, json_string(path));
    return err;
}

static enum cp_err check_storage(json_t *p, int continuous, json_t *out, struct cp_error *e)
{
    json_t *sl = json_object_get(p, "storageLocation");
    if (!sl || json_is_null(sl))
        return missing(e, "properties.storageLocation");
    if (!json_is_object(sl))
        return wrong_type(e, "properties.storageLocation", "an object");
    json_t *o = json_object();
    const char *sid, *spath;
    enum cp_err err = opt_string(sl, "storageId", "properties.storageLocation.storageId", &sid, e);
    if (err == CP_OK)
        err = opt_string(sl, "storagePath", "properties.storageLocation.storagePath", &spath, e);
    if (err == CP_OK && sid && *sid) {
        struct armid id;
        err = armid_parse(sid, &id, e, "properties.storageLocation.storageId");
        if (err == CP_OK && id.kind != ARMID_STORAGE)
            err = cp_fail(e, CP_EINVAL, "InvalidPropertyValue",
                          "properties.storageLocation.storageId",
                          "storageId must be a storage account id "
                          "(.../providers/Microsoft.Storage/storageAccounts/{name}).");
        if (err == CP_OK)
            json_object_set_new(o, "storageId", json_string(sid));
    }
    if (err == CP_OK && spath && *spath && strncmp(spath, "https://", 8) != 0 &&
        strncmp(spath, "http://", 7) != 0)
        err =
            cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "properties.storageLocation.storagePath",
                    "storagePath must be an http(s) URI.");
    if (err == CP_OK)
        json_object_set_new(o, "storagePath", json_string(spath ? spath : ""));
    json_t *fp = json_object_get(sl, "filePath");
    if (err == CP_OK && continuous && fp && !json_is_null(fp))
        err = cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "properties.storageLocation.filePath",
                      "filePath is not valid when continuousCapture is given; use localPath.");
    if (err == CP_OK)
        err = check_path(sl, "filePath", o, e);
    if (err == CP_OK)
        err = check_path(sl, "localPath", o, e);
    if (err == CP_OK && !json_object_get(o, "storageId") && !json_object_get(o, "filePath") &&
        !json_object_get(o, "localPath"))
        err = cp_fail(e, CP_EINVAL, "MissingRequiredProperty", "properties.storageLocation",
                      continuous ? "storageLocation needs storageId or localPath."
                                 : "storageLocation needs storageId, filePath or localPath.");
    if (err == CP_OK)
        json_object_set_new(out, "storageLocation", o);
    else
        json_decref(o);
    return err;
}

static enum cp_err check_filter_field(json_t *f, const char *key, int is_port, size_t idx,
                                      json_t *out, struct cp_error *e)
{
    char target[96];
    snprintf(target, sizeof(target), "properties.filters[%zu].%s", idx, key);
    const char *s;
    enum cp_err err = opt_string(f, key, target, &s, e);
    if (err != CP_OK)
        return err;
    if (s && *s) {
        if (is_port) {
            struct nf_port_set ports;
            err = nf_parse_ports(s, &ports, e, target);
        } else {
            struct nf_ip_set ips;
            err = nf_parse_ips(s, &ips, e, target);
        }
    }
    if (err == CP_OK)
        json_object_set_new(out, key, json_string(s ? s : ""));
    return err;
}

static enum cp_err check_filters(json_t *p, json_t *out, struct cp_error *e)
{
    json_t *fs = json_object_get(p, "filters");
    json_t *arr = json_array();
    json_object_set_new(out, "filters", arr);
    if (!fs || json_is_null(fs))
        return CP_OK;
    if (!json_is_array(fs))
        return wrong_type(e, "properties.filters", "an array");
    if (json_array_size(fs) > MAX_FILTERS)
        return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "properties.filters",
                       "At most %d filters are allowed.", MAX_FILTERS);
    size_t i;
    json_t *f;
    json_array_foreach(fs, i, f)
    {
        char target[64];
        snprintf(target, sizeof(target), "properties.filters[%zu]", i);
        if (!json_is_object(f))
            return wrong_type(e, target, "an object");
        snprintf(target, sizeof(target), "properties.filters[%zu].protocol", i);
        const char *proto;
        enum cp_err err = opt_string(f, "protocol", target, &proto, e);
        if (err != CP_OK)
            return err;
        enum nf_protocol pr = NF_PROTO_ANY;
        if (proto && nf_protocol_parse(proto, &pr) != 0)
            return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", target,
                           "%s must be one of TCP, UDP, ICMP, Any.", target);
        json_t *o = json_pack("{s:s}", "protocol", nf_protocol_name(pr));
        json_array_append_new(arr, o);
        if ((err = check_filter_field(f, "localIPAddress", 0, i, o, e)) ||
            (err = check_filter_field(f, "remoteIPAddress", 0, i, o, e)) ||
            (err = check_filter_field(f, "localPort", 1, i, o, e)) ||
            (err = check_filter_field(f, "remotePort", 1, i, o, e)))
            return err;
    }
    return CP_OK;
}

/*
 * The normalised filters (out's "filters", all fields present) built and compiled as the agent
 * does, with the stand-in for the machine's addresses (filter/filter.h).
 */
static enum cp_err check_filter_program(json_t *out, struct cp_error *e)
{
    json_t *fs = json_object_get(out, "filters");
    size_t n = json_array_size(fs);
    if (n == 0)
        return CP_OK;
    struct bpf_filter_spec *specs = calloc(n, sizeof(*specs)); /* ~5 KiB each */
    if (!specs)
        return cp_fail(e, CP_ENOMEM, "InternalError", "properties.filters", "Out of memory.");
    enum cp_err err = CP_OK;
    for (size_t i = 0; i < n && err == CP_OK; i++) {
        json_t *f = json_array_get(fs, i);
        err = bpf_filter_spec_parse(json_string_value(json_object_get(f, "protocol")),
                                    json_string_value(json_object_get(f, "localIPAddress")),
                                    json_string_value(json_object_get(f, "remoteIPAddress")),
                                    json_string_value(json_object_get(f, "localPort")),
                                    json_string_value(json_object_get(f, "remotePort")), i,
                                    &specs[i], e);
    }
    if (err == CP_OK)
        err = filter_check(specs, n, NULL, e);
    free(specs);
    return err;
}

static enum cp_err check_capture_settings(json_t *p, int continuous, json_t *out,
                                          struct cp_error *e)
{
    json_t *cs = json_object_get(p, "captureSettings");
    if (cs && !json_is_null(cs) && !json_is_object(cs))
        return wrong_type(e, "properties.captureSettings", "an object");
    if (!continuous && (!cs || json_is_null(cs)))
        return CP_OK;
    json_t *s = cs && json_is_object(cs) ? cs : NULL;
    long long count, size, secs;
    enum cp_err err =
        opt_int(s, "fileCount", "properties.captureSettings.fileCount", 0, 10000, 10, &count, e);
    if (err == CP_OK)
        err = opt_int(s, "fileSizeInBytes", "properties.captureSettings.fileSizeInBytes", 0,
                      UINT32_LIMIT, 104857600, &size, e);
    if (err == CP_OK)
        err = opt_int(s, "sessionTimeLimitInSeconds",
                      "properties.captureSettings.sessionTimeLimitInSeconds", 0, 604800, 86400,
                      &secs, e);
    if (err == CP_OK)
        json_object_set_new(out, "captureSettings",
                            json_pack("{s:I, s:I, s:I}", "fileCount", (json_int_t)count,
                                      "fileSizeInBytes", (json_int_t)size,
                                      "sessionTimeLimitInSeconds", (json_int_t)secs));
    return err;
}

/* Lower-cases s into out (size n). */
static void lower(const char *s, char *out, size_t n)
{
    size_t i = 0;
    for (; s[i] && i + 1 < n; i++)
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    out[i] = '\0';
}

/*
 * With a storage account, storagePath is the server's: the blob URL in Azure's layout, under the
 * registered account's blob endpoint, container network-watcher-logs, the target's lower-cased
 * resource path and the UTC creation time (packetcapture_HH_mm_ss_fff.cap). A scale set gets the
 * folder-style prefix its instances write under, or, when scope.include names exactly one
 * instance, the file path under .../virtualmachines/{instance} (the reference's
 * single-instance form).
 */
enum cp_err api_capture_storage_path(json_t *out, const char *blob_endpoint, struct cp_error *e)
{
    json_t *sl = json_object_get(out, "storageLocation");
    const char *sid = json_string_value(json_object_get(sl, "storageId"));
    if (!sid)
        return CP_OK;
    struct armid target;
    if (armid_parse(json_string_value(json_object_get(out, "target")), &target, e,
                    "properties.target"))
        return CP_EINVAL;
    char sub[64], rg[91], name[81];
    lower(target.sub, sub, sizeof(sub));
    lower(target.rg, rg, sizeof(rg));
    lower(target.name, name, sizeof(name));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int vmss = target.kind == ARMID_VMSS;
    /* A scale-set capture on one named instance writes one file, under that instance. */
    json_t *inc = json_object_get(json_object_get(out, "scope"), "include");
    char inst[SCOPE_ENTRY_MAX + 32] = "";
    if (vmss && json_array_size(inc) == 1) {
        char id[SCOPE_ENTRY_MAX + 1];
        lower(api_scope_instance(json_string_value(json_array_get(inc, 0))), id, sizeof(id));
        snprintf(inst, sizeof(inst), "/virtualmachines/%s", id);
    }
    char url[1600];
    snprintf(url, sizeof(url),
             "%s/" CORE_STORAGE_CONTAINER "/subscriptions/%s/"
             "resourcegroups/%s/providers/microsoft.compute/%s/%s%s/%04d/%02d/%02d/"
             "packetcapture_%02d_%02d_%02d_%03ld%s",
             blob_endpoint, sub, rg, vmss ? "virtualmachinescalesets" : "virtualmachines", name,
             inst, tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             ts.tv_nsec / 1000000L, vmss && !inst[0] ? "" : ".cap");
    json_object_set_new(sl, "storagePath", json_string(url));
    return CP_OK;
}

static enum cp_err check_properties(json_t *p, json_t *out, struct cp_error *e)
{
    json_t *cc = json_object_get(p, "continuousCapture");
    if (cc && !json_is_null(cc) && !json_is_boolean(cc))
        return wrong_type(e, "properties.continuousCapture", "a boolean");
    int continuous = cc && json_is_boolean(cc);

    long long per_packet, per_session, seconds;
    enum cp_err err = check_target(p, out, e);
    if (err == CP_OK)
        err = check_scope(p, out, e);
    if (err == CP_OK)
        err = opt_int(p, "bytesToCapturePerPacket", "properties.bytesToCapturePerPacket", 0,
                      UINT32_LIMIT, 0, &per_packet, e);
    if (err == CP_OK)
        err = opt_int(p, "totalBytesPerSession", "properties.totalBytesPerSession", 0, UINT32_LIMIT,
                      1073741824, &per_session, e);
    if (err == CP_OK)
        err = opt_int(p, "timeLimitInSeconds", "properties.timeLimitInSeconds", 0, 18000, 18000,
                      &seconds, e);
    if (err != CP_OK)
        return err;
    json_object_set_new(out, "bytesToCapturePerPacket", json_integer(per_packet));
    /* A continuous (ring-buffer) session is bounded by captureSettings instead, and the real
     * service leaves these two out of its echo. */
    if (!continuous) {
        json_object_set_new(out, "totalBytesPerSession", json_integer(per_session));
        json_object_set_new(out, "timeLimitInSeconds", json_integer(seconds));
    }
    if ((err = check_storage(p, continuous, out, e)) || (err = check_filters(p, out, e)) ||
        (err = check_filter_program(out, e)))
        return err;
    if (continuous)
        json_object_set(out, "continuousCapture", cc);
    return check_capture_settings(p, continuous, out, e);
}

enum cp_err api_capture_params(json_t *body, json_t **out, struct cp_error *e)
{
    json_t *p = json_object_get(body, "properties");
    if (!p || json_is_null(p))
        return missing(e, "properties");
    if (!json_is_object(p))
        return wrong_type(e, "properties", "an object");
    json_t *o = json_object();
    if (!o)
        return CP_ENOMEM;
    enum cp_err err = check_properties(p, o, e);
    if (err != CP_OK) {
        json_decref(o);
        return err;
    }
    *out = o;
    return CP_OK;
}
