/* The session and report files behind agent/spool.h. */
/* _GNU_SOURCE: pcap.h (through pcap_file.h) needs the BSD u_int/u_char types. */
#define _GNU_SOURCE
#include "agent/spool.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/durable.h"
#include "agent/pcap_file.h"
#include "common/log.h"

#define SPOOL_PATH_MAX 2048
#define SPOOL_VERSION  1
#define SPOOL_SUFFIX   ".json"
#define SPOOL_LIST_MAX (16 * SPOOL_MAX_REPORTS) /* entries read from one directory */

struct spool {
    const char *dir; /* the state directory */
    char sessions[SPOOL_PATH_MAX];
    char reports[SPOOL_PATH_MAX];
};

enum cp_err spool_open(const char *state_dir, struct spool **out, struct cp_error *e)
{
    struct spool *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return cp_fail(e, CP_ENOMEM, "", "", "out of memory");
    sp->dir = state_dir;
    enum cp_err err = CP_OK;
    if (snprintf(sp->sessions, sizeof(sp->sessions), "%s/" SPOOL_SESSIONS, state_dir) >=
            (int)sizeof(sp->sessions) ||
        snprintf(sp->reports, sizeof(sp->reports), "%s/" SPOOL_REPORTS, state_dir) >=
            (int)sizeof(sp->reports))
        err = cp_fail(e, CP_EINVAL, "", "state-dir", "state-dir: path too long");
    if (err == CP_OK)
        err = durable_mkdir(state_dir, e);
    if (err == CP_OK)
        err = durable_mkdir(sp->sessions, e);
    if (err == CP_OK)
        err = durable_mkdir(sp->reports, e);
    if (err != CP_OK) {
        free(sp);
        return err;
    }
    *out = sp;
    return CP_OK;
}

void spool_free(struct spool *sp)
{
    free(sp);
}

/* ---- sessions ---------------------------------------------------------------------------- */

enum cp_err spool_session_add_file(struct spool_session *s, const char *path, uint64_t size,
                                   const char *sha256)
{
    if (s->n_files >= PROTO_MAX_FILES)
        return CP_ETOOBIG;
    struct spool_file *f = realloc(s->files, (s->n_files + 1) * sizeof(*f));
    if (!f)
        return CP_ENOMEM;
    s->files = f;
    f = &s->files[s->n_files++];
    memset(f, 0, sizeof(*f));
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->size = size;
    snprintf(f->sha256, sizeof(f->sha256), "%s", sha256 ? sha256 : "");
    return CP_OK;
}

void spool_session_clear(struct spool_session *s)
{
    free(s->spec);
    free(s->files);
    memset(s, 0, sizeof(*s));
}

static json_t *session_json(const struct spool_session *s)
{
    json_error_t jerr;
    json_t *spec = json_loads(s->spec ? s->spec : "{}", 0, &jerr);
    json_t *files = json_array();
    for (size_t i = 0; files && i < s->n_files; i++)
        json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "path", s->files[i].path, "bytes",
                                               (json_int_t)s->files[i].size, "sha256",
                                               s->files[i].sha256));
    const char *reason = proto_stop_reason_name(s->stop_reason);
    return json_pack("{s:i, s:s, s:s, s:s, s:o?, s:I, s:s, s:I, s:o?, s:I, s:I, s:I, s:I, s:I, "
                     "s:I, s:s, s:s}",
                     "version", SPOOL_VERSION, "commandId", s->command_id, "captureId",
                     s->capture_id, "name", s->name, "spec", spec, "startedAt",
                     (json_int_t)s->started_ms, "partial", s->partial, "nextIndex",
                     (json_int_t)s->next_index, "files", files, "packets", (json_int_t)s->packets,
                     "bytes", (json_int_t)s->bytes, "drops", (json_int_t)s->drops, "curDrops",
                     (json_int_t)s->cur_drops, "firstPacketAt", (json_int_t)s->first_packet_ms,
                     "finalSeq", (json_int_t)s->final_seq, "stopCommandId", s->stop_command_id,
                     "stopReason", reason ? reason : "");
}

enum cp_err spool_session_save(struct spool *sp, const struct spool_session *s, struct cp_error *e)
{
    json_t *o = session_json(s);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return cp_fail(e, CP_ENOMEM, "", "", "cannot encode session %s", s->capture_id);
    size_t len = strlen(text);
    enum cp_err err;
    if (len > SPOOL_SESSION_MAX) {
        err = cp_fail(e, CP_ETOOBIG, "", "", "session %s would take %zu bytes (at most %d)",
                      s->capture_id, len, SPOOL_SESSION_MAX);
    } else {
        char name[PROTO_ID_SIZE + 8];
        snprintf(name, sizeof(name), "%s" SPOOL_SUFFIX, s->capture_id);
        err = durable_write(sp->sessions, name, text, len, e);
    }
    free(text);
    return err;
}

enum cp_err spool_session_remove(struct spool *sp, const char *capture_id, struct cp_error *e)
{
    char name[PROTO_ID_SIZE + 8];
    snprintf(name, sizeof(name), "%s" SPOOL_SUFFIX, capture_id);
    return durable_remove(sp->sessions, name, e);
}

static int u64_member(json_t *o, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int str_member(json_t *o, const char *key, char *out, size_t outsz)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (!v || strlen(v) >= outsz)
        return -1;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

static int is_hex64(const char *s)
{
    if (strlen(s) != PROTO_SHA256_HEX)
        return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    return 1;
}

/* The identity (ids, name, spec) checked by the protocol's own codec: as a start message. */
static int identity_ok(const struct spool_session *s, json_t *spec)
{
    json_t *m = json_pack("{s:s, s:s, s:s, s:s, s:O}", "type", "start", "commandId", s->command_id,
                          "captureId", s->capture_id, "name", s->name, "spec", spec);
    char *text = m ? json_dumps(m, JSON_COMPACT) : NULL;
    json_decref(m);
    struct proto_msg pm = {.type = PROTO_NONE};
    int ok = text && proto_decode(text, strlen(text), &pm, NULL) == CP_OK;
    proto_msg_clear(&pm);
    free(text);
    return ok;
}

/* Parses one session file. 0, or -1 with *why set. */
static int session_parse(const char *text, size_t len, const char *file_id, struct spool_session *s,
                         const char **why)
{
    json_error_t jerr;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *spec = json_object_get(o, "spec");
    json_t *files = json_object_get(o, "files");
    uint64_t version = 0, started = 0, next = 0, first = 0, final = 0;
    const char *reason = json_string_value(json_object_get(o, "stopReason"));
    int rc = -1;
    memset(s, 0, sizeof(*s));
    *why = "not a session record";
    if (!json_is_object(o) || u64_member(o, "version", &version) != 0 || version != SPOOL_VERSION ||
        !json_is_object(spec) || !json_is_array(files) || !reason)
        goto out;
    *why = "a member is missing, of the wrong type or out of bounds";
    if (str_member(o, "commandId", s->command_id, sizeof(s->command_id)) != 0 ||
        str_member(o, "captureId", s->capture_id, sizeof(s->capture_id)) != 0 ||
        str_member(o, "name", s->name, sizeof(s->name)) != 0 ||
        str_member(o, "partial", s->partial, sizeof(s->partial)) != 0 ||
        str_member(o, "stopCommandId", s->stop_command_id, sizeof(s->stop_command_id)) != 0 ||
        u64_member(o, "startedAt", &started) != 0 || u64_member(o, "nextIndex", &next) != 0 ||
        u64_member(o, "packets", &s->packets) != 0 || u64_member(o, "bytes", &s->bytes) != 0 ||
        u64_member(o, "drops", &s->drops) != 0 || u64_member(o, "curDrops", &s->cur_drops) != 0 ||
        u64_member(o, "firstPacketAt", &first) != 0 || u64_member(o, "finalSeq", &final) != 0 ||
        next > UINT32_MAX || started > INT64_MAX || first > INT64_MAX ||
        json_array_size(files) > PROTO_MAX_FILES)
        goto out;
    if (reason[0] && proto_stop_reason_parse(reason, &s->stop_reason) != 0)
        goto out;
    if (s->partial[0] && pcap_file_check_path(s->partial, NULL) != CP_OK)
        goto out;
    if (s->stop_command_id[0] && strlen(s->stop_command_id) != PROTO_ID_LEN)
        goto out;
    *why = "bad identity (ids, name or spec)";
    if (!identity_ok(s, spec) || strcmp(s->capture_id, file_id) != 0)
        goto out;
    *why = "a file entry is bad";
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        char path[CAPTURE_PATH_MAX_LEN + 1], sha[PROTO_SHA256_HEX + 1];
        uint64_t size = 0;
        if (str_member(f, "path", path, sizeof(path)) != 0 ||
            str_member(f, "sha256", sha, sizeof(sha)) != 0 || u64_member(f, "bytes", &size) != 0 ||
            pcap_file_check_path(path, NULL) != CP_OK || (sha[0] && !is_hex64(sha)) ||
            spool_session_add_file(s, path, size, sha) != CP_OK)
            goto out;
    }
    s->spec = json_dumps(spec, JSON_COMPACT);
    if (!s->spec) {
        *why = "out of memory";
        goto out;
    }
    s->started_ms = (int64_t)started;
    s->next_index = (uint32_t)next;
    s->first_packet_ms = (int64_t)first;
    s->final_seq = final;
    rc = 0;
out:
    json_decref(o);
    if (rc != 0)
        spool_session_clear(s);
    return rc;
}

/* ---- reports ----------------------------------------------------------------------------- */

static void report_name(uint64_t seq, char *out, size_t n)
{
    /* Zero-padded: a directory listing sorts like the sequence. */
    snprintf(out, n, "%020" PRIu64 SPOOL_SUFFIX, seq);
}

enum cp_err spool_report_save(struct spool *sp, uint64_t seq, const char *json, size_t len,
                              struct cp_error *e)
{
    if (len > PROTO_MAX_MESSAGE)
        return cp_fail(e, CP_ETOOBIG, "", "", "report %" PRIu64 " is too large", seq);
    char name[40];
    report_name(seq, name, sizeof(name));
    return durable_write(sp->reports, name, json, len, e);
}

enum cp_err spool_report_remove(struct spool *sp, uint64_t seq, struct cp_error *e)
{
    char name[40];
    report_name(seq, name, sizeof(name));
    return durable_remove(sp->reports, name, e);
}

/* ---- loading ----------------------------------------------------------------------------- */

/* A name "<id>.json" (id: what precedes the suffix, at most idsz - 1 bytes) or -1. Temporary
 * files of an interrupted write (".<name>.tmp") are not ours to load. */
static int entry_id(const char *name, char *id, size_t idsz)
{
    size_t n = strlen(name), k = strlen(SPOOL_SUFFIX);
    if (name[0] == '.' || n <= k || strcmp(name + n - k, SPOOL_SUFFIX) != 0 || n - k >= idsz)
        return -1;
    memcpy(id, name, n - k);
    id[n - k] = '\0';
    return 0;
}

struct loaded_report {
    uint64_t seq;
    char name[64];
};

static int by_seq(const void *a, const void *b)
{
    const struct loaded_report *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Lists dir's entries (not "." files) into a malloc'ed array of names, at most
 * SPOOL_LIST_MAX (a directory past that is not ours: the rest waits for the next start). */
static enum cp_err list_dir(const struct spool *sp, const char *dir, struct loaded_report **out,
                            size_t *n, struct cp_error *e)
{
    DIR *d = opendir(dir);
    if (!d)
        return cp_fail(e, CP_EIO, "", "state-dir", "cannot list %s: %s", dir, strerror(errno));
    struct loaded_report *list = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    enum cp_err err = CP_OK;
    while ((de = readdir(d)) != NULL && cnt < SPOOL_LIST_MAX) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (de->d_name[0] == '.' && strstr(de->d_name, ".tmp")) {
            /* An interrupted atomic write: the real file is intact; the temporary goes. */
            char path[SPOOL_PATH_MAX + 300];
            snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
            unlink(path);
            continue;
        }
        if (strlen(de->d_name) >= sizeof(list[0].name)) {
            durable_set_aside(sp->dir, dir, de->d_name, "name", "unexpected file name");
            continue;
        }
        if (cnt == cap) {
            size_t ncap = cap ? 2 * cap : 64;
            struct loaded_report *l = realloc(list, ncap * sizeof(*l));
            if (!l) {
                err = cp_fail(e, CP_ENOMEM, "", "", "out of memory");
                break;
            }
            list = l;
            cap = ncap;
        }
        memset(&list[cnt], 0, sizeof(list[cnt]));
        memcpy(list[cnt].name, de->d_name, strlen(de->d_name) + 1); /* length checked above */
        cnt++;
    }
    closedir(d);
    if (err != CP_OK) {
        free(list);
        return err;
    }
    *out = list;
    *n = cnt;
    return CP_OK;
}

static void load_sessions(struct spool *sp, spool_session_fn fn, void *arg,
                          struct loaded_report *list, size_t n)
{
    /* Past the bound: set aside, logged, never silently dropped. */
    for (size_t i = PROTO_MAX_SESSIONS; i < n; i++)
        durable_set_aside(sp->dir, sp->sessions, list[i].name, SPOOL_SESSIONS,
                          "more sessions than an agent holds");
    if (n > PROTO_MAX_SESSIONS)
        n = PROTO_MAX_SESSIONS;
    for (size_t i = 0; i < n; i++) {
        char id[PROTO_ID_SIZE], path[SPOOL_PATH_MAX + 80];
        const char *why = "unexpected file name";
        char *text = NULL;
        size_t len = 0;
        struct spool_session s;
        struct cp_error e = {{0}, {0}, {0}};
        snprintf(path, sizeof(path), "%s/%s", sp->sessions, list[i].name);
        if (entry_id(list[i].name, id, sizeof(id)) == 0) {
            enum cp_err err = durable_read(path, SPOOL_SESSION_MAX, &text, &len, &e);
            why = err == CP_OK ? NULL : e.message;
        }
        if (!why && session_parse(text, len, id, &s, &why) == 0) {
            free(text);
            fn(arg, &s);
            continue;
        }
        free(text);
        durable_set_aside(sp->dir, sp->sessions, list[i].name, SPOOL_SESSIONS, why);
    }
}

static void load_reports(struct spool *sp, spool_report_fn fn, void *arg,
                         struct loaded_report *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char id[32], *end = NULL;
        list[i].seq = 0;
        if (entry_id(list[i].name, id, sizeof(id)) == 0 && id[0] >= '0' && id[0] <= '9') {
            errno = 0;
            unsigned long long v = strtoull(id, &end, 10);
            if (!errno && *end == '\0')
                list[i].seq = v;
        }
    }
    if (n > 1) /* qsort wants a real array, even for none */
        qsort(list, n, sizeof(*list), by_seq);
    for (size_t i = SPOOL_MAX_REPORTS; i < n; i++)
        durable_set_aside(sp->dir, sp->reports, list[i].name, SPOOL_REPORTS,
                          "more reports than the agent keeps");
    if (n > SPOOL_MAX_REPORTS)
        n = SPOOL_MAX_REPORTS;
    for (size_t i = 0; i < n; i++) {
        char path[SPOOL_PATH_MAX + 80];
        const char *why = "unexpected file name";
        char *text = NULL;
        size_t len = 0;
        struct cp_error e = {{0}, {0}, {0}};
        struct proto_msg m = {.type = PROTO_NONE};
        snprintf(path, sizeof(path), "%s/%s", sp->reports, list[i].name);
        if (list[i].seq > 0) {
            enum cp_err err = durable_read(path, PROTO_MAX_MESSAGE, &text, &len, &e);
            why = err == CP_OK ? NULL : e.message;
        }
        if (!why) {
            why = "not a report the protocol accepts, or not the seq of its name";
            if (proto_decode(text, len, &m, NULL) == CP_OK &&
                (m.type == PROTO_ACK || m.type == PROTO_COMPLETED || m.type == PROTO_ERROR) &&
                (uint64_t)proto_msg_seq(&m) == list[i].seq) {
                fn(arg, list[i].seq, &m, text);
                proto_msg_clear(&m);
                continue;
            }
            proto_msg_clear(&m);
        }
        free(text);
        durable_set_aside(sp->dir, sp->reports, list[i].name, SPOOL_REPORTS, why);
    }
}

enum cp_err spool_load(struct spool *sp, spool_session_fn on_session, spool_report_fn on_report,
                       void *arg, struct cp_error *e)
{
    struct loaded_report *list = NULL;
    size_t n = 0;
    enum cp_err err = list_dir(sp, sp->sessions, &list, &n, e);
    if (err != CP_OK)
        return err;
    load_sessions(sp, on_session, arg, list, n);
    free(list);
    err = list_dir(sp, sp->reports, &list, &n, e);
    if (err != CP_OK)
        return err;
    load_reports(sp, on_report, arg, list, n);
    free(list);
    return CP_OK;
}
