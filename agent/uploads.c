/* The upload queue behind agent/uploads.h. */
#define _GNU_SOURCE /* pthread, eventfd, dirent on C11 */
#include "agent/uploads.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "agent/durable.h"
#include "agent/upload.h"
#include "common/log.h"

#define UP_RECORD_MAX (8 * 1024 * 1024) /* bytes of one queue file */
#define UP_EVENTS_MAX 64                /* events reported per on_wake (the rest next time) */

enum up_grant {
    UP_GRANT_NONE,    /* not asked for yet */
    UP_GRANT_WANTED,  /* the worker waits; on_wake sends the request */
    UP_GRANT_ASKED,   /* request sent on this connection */
    UP_GRANT_GOT,     /* url holds it */
    UP_GRANT_REFUSED, /* message holds why */
};

struct up_file {
    int64_t index;
    char rel[CAPTURE_PATH_MAX_LEN + 1];
    uint64_t size;
    char sha256[PROTO_SHA256_HEX + 1];
    int remove_after;
    int done;                      /* committed, recorded */
    char blob[PROTO_PATH_MAX + 1]; /* blob URL without the SAS, once committed */
    uint64_t uploaded;             /* bytes the service holds, while under way */
    /* Worker <-> dispatcher, under the mutex; not saved. */
    enum up_grant grant;
    int64_t req_id;
    char *url;
    int64_t expires_at;
    int regrants; /* fresh grants asked in a row after an expired one, nothing staged between */
    int result;   /* 0 under way or waiting, 1 committed, -1 failed */
    char message[CP_ERROR_MESSAGE_MAX];
    struct up_file *next;
};

struct up_session {
    char capture_id[PROTO_ID_SIZE];
    int ended;
    enum proto_stop_reason reason;
    int failed; /* reported to the dispatcher */
    /* Committed files past the newest PROTO_MAX_FILES committed are dropped from the list (a
     * long ring would make it grow without end): every index below done_below is committed,
     * pruned_bytes their sizes. */
    int64_t done_below;
    uint64_t pruned_bytes;
    int forgotten; /* uploads_forget while the worker had a file of it */
    struct up_file *files, *last;
    struct up_session *next;
};

struct uploads {
    char dir[PATH_MAX];
    const char *root;
    size_t block_size;
    const char *ca_file;
    long backoff_initial_ms;
    uploads_event_fn fn;
    void *arg;
    int efd;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t worker;
    int started;
    atomic_int stop;
    struct up_session *sessions;
    struct up_file *current; /* the worker's file, NULL when idle */
    int64_t next_req;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(struct uploads *u)
{
    uint64_t one = 1;
    (void)!write(u->efd, &one, sizeof(one));
}

static struct up_session *find(struct uploads *u, const char *capture_id)
{
    for (struct up_session *s = u->sessions; s; s = s->next)
        if (!s->forgotten && strcmp(s->capture_id, capture_id) == 0)
            return s;
    return NULL;
}

static struct up_file *find_file(struct up_session *s, int64_t index)
{
    for (struct up_file *f = s->files; f; f = f->next)
        if (f->index == index)
            return f;
    return NULL;
}

static void file_free(struct up_file *f)
{
    free(f->url);
    free(f);
}

static void session_free(struct up_session *s)
{
    for (struct up_file *f = s->files, *next; f; f = next) {
        next = f->next;
        file_free(f);
    }
    free(s);
}

/* ---- records ---------------------------------------------------------------------------- */

static void remove_local(struct uploads *u, const struct up_file *f);

static const char *reason_name(const struct up_session *s)
{
    const char *n = s->ended ? proto_stop_reason_name(s->reason) : NULL;
    return n ? n : "";
}

/* Writes s's record. Under the mutex. */
static enum cp_err save(struct uploads *u, const struct up_session *s, struct cp_error *e)
{
    json_t *files = json_array();
    for (const struct up_file *f = s->files; files && f; f = f->next)
        json_array_append_new(
            files, json_pack("{s:I, s:s, s:I, s:s, s:b, s:b, s:s}", "index", (json_int_t)f->index,
                             "path", f->rel, "bytes", (json_int_t)f->size, "sha256", f->sha256,
                             "removeAfter", f->remove_after, "done", f->done, "blob", f->blob));
    json_t *o = json_pack("{s:i, s:s, s:b, s:s, s:I, s:I, s:o?}", "version", 1, "captureId",
                          s->capture_id, "ended", s->ended, "stopReason", reason_name(s),
                          "doneBelow", (json_int_t)s->done_below, "prunedBytes",
                          (json_int_t)s->pruned_bytes, "files", files);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text)
        return cp_fail(e, CP_ENOMEM, "InternalError", "", "out of memory");
    char name[PROTO_ID_SIZE + 8];
    snprintf(name, sizeof(name), "%s.json", s->capture_id);
    enum cp_err err = durable_write(u->dir, name, text, strlen(text), e);
    free(text);
    return err;
}

static void save_logged(struct uploads *u, const struct up_session *s)
{
    struct cp_error e = {{0}, {0}, {0}};
    if (save(u, s, &e) != CP_OK)
        log_error("event=upload_queue_not_saved captureId=%s detail=\"%s\"", s->capture_id,
                  e.message);
}

static void journal_path(const struct uploads *u, const char *capture_id, int64_t index, char *out,
                         size_t n)
{
    snprintf(out, n, "%s/%s.%" PRId64 ".journal", u->dir, capture_id, index);
}

static int copy_str(json_t *o, const char *key, char *out, size_t n)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (!v || strlen(v) >= n)
        return -1;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

/* One record file into a session (appended to u). 0, or -1 (set aside by the caller). */
static int load_one(struct uploads *u, const char *name)
{
    char path[PATH_MAX + 300];
    snprintf(path, sizeof(path), "%s/%s", u->dir, name);
    char *text = NULL;
    size_t len = 0;
    struct cp_error e = {{0}, {0}, {0}};
    if (durable_read(path, UP_RECORD_MAX, &text, &len, &e) != CP_OK)
        return -1;
    json_t *o = json_loads(text, 0, NULL);
    free(text);
    struct up_session *s = calloc(1, sizeof(*s));
    int rc = -1;
    json_t *files = json_object_get(o, "files");
    const char *why = json_string_value(json_object_get(o, "stopReason"));
    if (!s || !json_is_object(o) || json_integer_value(json_object_get(o, "version")) != 1 ||
        copy_str(o, "captureId", s->capture_id, sizeof(s->capture_id)) != 0 ||
        strncmp(name, s->capture_id, strlen(s->capture_id)) != 0 || !json_is_array(files))
        goto out;
    s->ended = json_is_true(json_object_get(o, "ended"));
    json_t *below = json_object_get(o, "doneBelow"), *pruned = json_object_get(o, "prunedBytes");
    if (!json_is_integer(below) || json_integer_value(below) < 0 || !json_is_integer(pruned) ||
        json_integer_value(pruned) < 0)
        goto out;
    s->done_below = json_integer_value(below);
    s->pruned_bytes = (uint64_t)json_integer_value(pruned);
    if (s->ended && (!why || proto_stop_reason_parse(why, &s->reason) != 0))
        goto out;
    size_t i;
    json_t *jf;
    json_array_foreach(files, i, jf)
    {
        struct up_file *f = calloc(1, sizeof(*f));
        json_t *ix = json_object_get(jf, "index"), *bytes = json_object_get(jf, "bytes");
        if (!f || !json_is_integer(ix) || json_integer_value(ix) < 0 || !json_is_integer(bytes) ||
            json_integer_value(bytes) < 0 || copy_str(jf, "path", f->rel, sizeof(f->rel)) ||
            copy_str(jf, "sha256", f->sha256, sizeof(f->sha256)) ||
            copy_str(jf, "blob", f->blob, sizeof(f->blob))) {
            free(f);
            goto out;
        }
        f->index = json_integer_value(ix);
        f->size = (uint64_t)json_integer_value(bytes);
        f->remove_after = json_is_true(json_object_get(jf, "removeAfter"));
        f->done = json_is_true(json_object_get(jf, "done"));
        if (s->last)
            s->last->next = f;
        else
            s->files = f;
        s->last = f;
    }
    s->next = u->sessions;
    u->sessions = s;
    s = NULL;
    rc = 0;
out:
    json_decref(o);
    if (s)
        session_free(s);
    return rc;
}

static enum cp_err load(struct uploads *u, const char *state_dir, struct cp_error *e)
{
    DIR *d = opendir(u->dir);
    if (!d)
        return cp_fail(e, CP_EIO, "", "", "%s: %s", u->dir, strerror(errno));
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        size_t n = strlen(de->d_name);
        if (n < 6 || de->d_name[0] == '.' || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        if (load_one(u, de->d_name) != 0)
            durable_set_aside(state_dir, u->dir, de->d_name, "upload", "not an upload queue");
    }
    closedir(d);
    for (struct up_session *s = u->sessions; s; s = s->next) {
        size_t pending = 0;
        for (struct up_file *f = s->files; f; f = f->next) {
            pending += !f->done;
            if (f->done && f->remove_after)
                remove_local(u, f); /* the restart came between the record and the unlink */
        }
        log_info("event=upload_queue_restored captureId=%s pending=%zu ended=%s", s->capture_id,
                 pending, s->ended ? "yes" : "no");
    }
    return CP_OK;
}

/* ---- the worker ------------------------------------------------------------------------- */

/* The next file to upload: the first not committed of the oldest session still going. */
static struct up_file *next_work(struct uploads *u, struct up_session **owner)
{
    struct up_session *best = NULL;
    for (struct up_session *s = u->sessions; s; s = s->next) {
        int broken = s->failed || s->forgotten;
        for (struct up_file *f = s->files; f && !broken; f = f->next)
            broken = f->result == -1; /* failed: its next files wait for the session's end */
        if (broken)
            continue;
        for (struct up_file *f = s->files; f; f = f->next)
            if (!f->done && f->result == 0) {
                best = s; /* sessions are pushed at the head: the last one found is oldest */
                break;
            }
    }
    if (!best)
        return NULL;
    *owner = best;
    for (struct up_file *f = best->files; f; f = f->next)
        if (!f->done && f->result == 0)
            return f;
    return NULL;
}

static void on_progress(void *arg, uint64_t done, uint64_t total)
{
    (void)total;
    struct up_file *f = arg;
    /* The worker holds no lock while uploading; a torn read is impossible on the 64-bit targets
     * and the value is informative. */
    __atomic_store_n(&f->uploaded, done, __ATOMIC_RELAXED);
}

/* The blob URL of a SAS URL: everything before '?'. */
static void strip_query(const char *url, char *out, size_t n)
{
    size_t len = strcspn(url, "?");
    if (len >= n)
        len = n - 1;
    memcpy(out, url, len);
    out[len] = '\0';
}

static void upload_one(struct uploads *u, struct up_session *s, struct up_file *f)
{
    char path[PATH_MAX + CAPTURE_PATH_MAX_LEN + 2], journal[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/%s", u->root, f->rel);
    journal_path(u, s->capture_id, f->index, journal, sizeof(journal));
    char *url = f->url;
    f->url = NULL;
    int64_t expires = f->expires_at;
    u->current = f;
    pthread_mutex_unlock(&u->mu);

    struct upload_opts o = {.block_size = u->block_size,
                            .backoff_initial_ms = u->backoff_initial_ms,
                            .ca_file = u->ca_file && *u->ca_file ? u->ca_file : NULL,
                            .journal_path = journal,
                            .progress = on_progress,
                            .progress_arg = f,
                            .stop = &u->stop};
    struct upload_stats st = {0};
    struct cp_error e = {{0}, {0}, {0}};
    log_info("event=upload_started captureId=%s file=%" PRId64 " path=\"%s\" bytes=%" PRIu64,
             s->capture_id, f->index, f->rel, f->size);
    enum cp_err err = upload_file(path, url, &o, &st, &e);
    char blob[PROTO_PATH_MAX + 1];
    strip_query(url, blob, sizeof(blob));
    free(url);

    pthread_mutex_lock(&u->mu);
    u->current = NULL;
    if (err == CP_OK) {
        log_info("event=upload_committed captureId=%s file=%" PRId64 " blob=\"%s\" bytes=%" PRIu64
                 " blocks=%u put=%u skipped=%u requests=%u retries=%u",
                 s->capture_id, f->index, blob, st.size, st.blocks, st.blocks_put,
                 st.blocks_skipped, st.requests, st.retries);
        snprintf(f->blob, sizeof(f->blob), "%s", blob);
        f->result = 1;
    } else if (err == CP_EBUSY && atomic_load(&u->stop)) {
        /* Shutting down: the journal stays for the next life. */
    } else if (err == CP_EFORBIDDEN && now_ms() >= expires - UPLOADS_EXPIRY_MARGIN_MS &&
               (st.blocks_put > 0 || f->regrants < UPLOADS_REGRANTS_MAX)) {
        /* The grant ran out under the upload: a new one, and the journal resumes it. A grant
         * that expires again before a single block goes is asked for a few times only. */
        f->regrants = st.blocks_put > 0 ? 1 : f->regrants + 1;
        log_info("event=upload_regrant captureId=%s file=%" PRId64 " blocks_put=%u"
                 " reason=\"the SAS expired during the upload\"",
                 s->capture_id, f->index, st.blocks_put);
        f->grant = UP_GRANT_WANTED;
    } else {
        log_warnx("event=upload_failed captureId=%s file=%" PRId64 " detail=\"%s\"", s->capture_id,
                  f->index, e.message);
        snprintf(f->message, sizeof(f->message), "%s", e.message);
        f->result = -1;
    }
    if (s->forgotten) {
        /* uploads_forget came while this ran: the session is the worker's to free, with the
         * journal it left. */
        if (unlink(journal) != 0 && errno != ENOENT)
            log_warnx("event=upload_journal_not_removed file=\"%s\"", journal);
        struct up_session **pp = &u->sessions;
        while (*pp && *pp != s)
            pp = &(*pp)->next;
        if (*pp)
            *pp = s->next;
        session_free(s);
    }
    wake(u);
}

static void *worker(void *arg)
{
    struct uploads *u = arg;
    pthread_mutex_lock(&u->mu);
    while (!atomic_load(&u->stop)) {
        struct up_session *s = NULL;
        struct up_file *f = next_work(u, &s);
        if (!f) {
            pthread_cond_wait(&u->cv, &u->mu);
            continue;
        }
        if (f->grant == UP_GRANT_NONE) {
            f->grant = UP_GRANT_WANTED;
            wake(u);
        }
        if (f->grant == UP_GRANT_WANTED || f->grant == UP_GRANT_ASKED) {
            pthread_cond_wait(&u->cv, &u->mu);
            continue; /* the session may have been forgotten meanwhile */
        }
        if (f->grant == UP_GRANT_REFUSED) {
            f->result = -1;
            wake(u);
            continue;
        }
        f->grant = UP_GRANT_NONE; /* a grant is used once: a retry asks again */
        upload_one(u, s, f);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

/* ---- the dispatcher's side -------------------------------------------------------------- */

static void send_request(struct uploads *u, struct channel *ch, struct up_session *s,
                         struct up_file *f)
{
    struct proto_msg m = {.type = PROTO_BLOB_REQUEST};
    m.blob_request.id = ++u->next_req;
    snprintf(m.blob_request.capture_id, sizeof(m.blob_request.capture_id), "%s", s->capture_id);
    m.blob_request.file = f->index;
    char *json = proto_encode(&m);
    if (json && channel_send(ch, json, strlen(json)) == CP_OK) {
        f->grant = UP_GRANT_ASKED;
        f->req_id = m.blob_request.id;
        log_debug("event=blob_request captureId=%s file=%" PRId64 " id=%" PRId64, s->capture_id,
                  f->index, f->req_id);
    }
    free(json);
}

struct up_event {
    char capture_id[PROTO_ID_SIZE];
    char failure[CP_ERROR_MESSAGE_MAX + 128];
    int failed;
};

/* Drops the oldest committed files from the head of s's list while more than PROTO_MAX_FILES
 * are committed (what a completed report can list); not the worker's file. */
static void prune(struct up_session *s)
{
    size_t done = 0;
    for (const struct up_file *f = s->files; f; f = f->next)
        done += f->done;
    while (done > PROTO_MAX_FILES && s->files && s->files->done) {
        struct up_file *f = s->files;
        s->files = f->next;
        if (s->last == f)
            s->last = NULL;
        if (f->index + 1 > s->done_below)
            s->done_below = f->index + 1;
        s->pruned_bytes += f->size;
        file_free(f);
        done--;
    }
}

/* Removes a committed file that was only kept for its upload. */
static void remove_local(struct uploads *u, const struct up_file *f)
{
    char path[PATH_MAX + CAPTURE_PATH_MAX_LEN + 2];
    snprintf(path, sizeof(path), "%s/%s", u->root, f->rel);
    if (unlink(path) != 0 && errno != ENOENT)
        log_warnx("event=upload_local_not_removed file=\"%s\" detail=\"%s\"", f->rel,
                  strerror(errno));
}

void uploads_on_wake(struct uploads *u, struct channel *ch)
{
    uint64_t n;
    (void)!read(u->efd, &n, sizeof(n));
    struct up_event *ev = calloc(UP_EVENTS_MAX, sizeof(*ev));
    size_t nev = 0;
    pthread_mutex_lock(&u->mu);
    for (struct up_session *s = u->sessions; s; s = s->next) {
        if (s->forgotten)
            continue;
        int changed = 0;
        const char *failure = NULL;
        for (struct up_file *f = s->files; f; f = f->next) {
            if (ch && f->grant == UP_GRANT_WANTED)
                send_request(u, ch, s, f);
            if (f->result == 1 && !f->done) {
                f->done = 1;
                changed = 1;
            } else if (f->result == -1 && !failure) {
                failure = f->message;
            }
        }
        if (changed) {
            /* Recorded before the local copy goes: a restart never looks for a removed file. */
            save_logged(u, s);
            for (struct up_file *f = s->files; f; f = f->next)
                if (f->done && f->remove_after && f->result == 1) {
                    remove_local(u, f);
                    f->result = 2; /* removed */
                }
            prune(s); /* written with the next change; a restart prunes again */
        }
        if (!ev || nev == UP_EVENTS_MAX) {
            if (changed || failure)
                wake(u); /* the rest next time */
            continue;
        }
        if (failure && !s->failed) {
            s->failed = 1;
            snprintf(ev[nev].capture_id, sizeof(ev[nev].capture_id), "%s", s->capture_id);
            snprintf(ev[nev].failure, sizeof(ev[nev].failure), "%s", failure);
            ev[nev++].failed = 1;
        } else if (changed && !s->failed) {
            size_t pending = 0;
            for (struct up_file *f = s->files; f; f = f->next)
                pending += !f->done;
            if (pending == 0) {
                snprintf(ev[nev].capture_id, sizeof(ev[nev].capture_id), "%s", s->capture_id);
                nev++;
            }
        }
    }
    pthread_mutex_unlock(&u->mu);
    for (size_t i = 0; i < nev; i++)
        u->fn(u->arg, ch, ev[i].capture_id, ev[i].failed ? ev[i].failure : NULL);
    free(ev);
}

void uploads_on_welcome(struct uploads *u, struct channel *ch)
{
    pthread_mutex_lock(&u->mu);
    for (struct up_session *s = u->sessions; s; s = s->next)
        for (struct up_file *f = s->files; f; f = f->next) {
            if (f->grant == UP_GRANT_ASKED)
                f->grant = UP_GRANT_WANTED; /* asked on a connection that is gone */
            if (!s->forgotten && f->grant == UP_GRANT_WANTED)
                send_request(u, ch, s, f);
        }
    pthread_mutex_unlock(&u->mu);
}

void uploads_on_grant(struct uploads *u, const struct proto_blob_grant *g)
{
    pthread_mutex_lock(&u->mu);
    struct up_file *hit = NULL;
    struct up_session *owner = NULL;
    for (struct up_session *s = u->sessions; s && !hit; s = s->next)
        for (struct up_file *f = s->files; f && !hit; f = f->next)
            if (f->grant == UP_GRANT_ASKED && f->req_id == g->id) {
                hit = f;
                owner = s;
            }
    if (!hit) {
        pthread_mutex_unlock(&u->mu);
        log_warnx("event=blob_grant_unexpected id=%" PRId64, g->id);
        return;
    }
    if (g->ok) {
        free(hit->url);
        hit->url = strdup(g->url ? g->url : "");
        hit->expires_at = g->expires_at;
        hit->grant = hit->url ? UP_GRANT_GOT : UP_GRANT_WANTED;
    } else {
        hit->grant = UP_GRANT_REFUSED;
        snprintf(hit->message, sizeof(hit->message),
                 "the server granted no upload of file %" PRId64 ": %s%s%.300s", hit->index,
                 g->code, g->message[0] ? ": " : "", g->message);
        log_warnx("event=blob_grant_refused captureId=%s file=%" PRId64 " code=%s detail=\"%s\"",
                  owner->capture_id, hit->index, g->code, g->message);
    }
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

/* ---- queue ------------------------------------------------------------------------------- */

enum cp_err uploads_add(struct uploads *u, const char *capture_id, int64_t index, const char *rel,
                        uint64_t size, const char *sha256, int remove_after, struct cp_error *e)
{
    pthread_mutex_lock(&u->mu);
    struct up_session *s = find(u, capture_id);
    int fresh = 0;
    enum cp_err err = CP_OK;
    if (s && (index < s->done_below || find_file(s, index)))
        goto out;
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s) {
            err = cp_fail(e, CP_ENOMEM, "InternalError", "", "out of memory");
            goto out;
        }
        snprintf(s->capture_id, sizeof(s->capture_id), "%s", capture_id);
        s->next = u->sessions;
        u->sessions = s;
        fresh = 1;
    }
    struct up_file *f = calloc(1, sizeof(*f));
    if (!f) {
        err = cp_fail(e, CP_ENOMEM, "InternalError", "", "out of memory");
        goto undo;
    }
    f->index = index;
    snprintf(f->rel, sizeof(f->rel), "%s", rel);
    f->size = size;
    snprintf(f->sha256, sizeof(f->sha256), "%s", sha256 ? sha256 : "");
    f->remove_after = remove_after;
    struct up_file *prev_last = s->last;
    if (s->last)
        s->last->next = f;
    else
        s->files = f;
    s->last = f;
    err = save(u, s, e);
    if (err != CP_OK) {
        if (prev_last)
            prev_last->next = NULL;
        else
            s->files = NULL;
        s->last = prev_last;
        free(f);
        goto undo;
    }
    log_info("event=upload_queued captureId=%s file=%" PRId64 " path=\"%s\" bytes=%" PRIu64,
             capture_id, index, rel, size);
    pthread_cond_broadcast(&u->cv);
    goto out;
undo:
    if (fresh) {
        u->sessions = s->next;
        free(s);
    }
out:
    pthread_mutex_unlock(&u->mu);
    return err;
}

int uploads_has(struct uploads *u, const char *capture_id, int64_t index)
{
    pthread_mutex_lock(&u->mu);
    struct up_session *s = find(u, capture_id);
    int has = s && (index < s->done_below || find_file(s, index));
    pthread_mutex_unlock(&u->mu);
    return has;
}

int uploads_known(struct uploads *u, const char *capture_id)
{
    pthread_mutex_lock(&u->mu);
    int has = find(u, capture_id) != NULL;
    pthread_mutex_unlock(&u->mu);
    return has;
}

size_t uploads_pending(struct uploads *u, const char *capture_id)
{
    size_t n = 0;
    pthread_mutex_lock(&u->mu);
    struct up_session *s = find(u, capture_id);
    for (struct up_file *f = s ? s->files : NULL; f; f = f->next)
        n += !f->done;
    pthread_mutex_unlock(&u->mu);
    return n;
}

int uploads_set_ended(struct uploads *u, const char *capture_id, enum proto_stop_reason reason)
{
    pthread_mutex_lock(&u->mu);
    struct up_session *s = find(u, capture_id);
    int rc = -1;
    if (s) {
        s->ended = 1;
        s->reason = reason;
        struct cp_error e = {{0}, {0}, {0}};
        rc = save(u, s, &e) == CP_OK ? 0 : -1;
        if (rc != 0)
            log_error("event=upload_queue_not_saved captureId=%s detail=\"%s\"", capture_id,
                      e.message);
    }
    pthread_mutex_unlock(&u->mu);
    return rc;
}

int uploads_ended(struct uploads *u, const char *capture_id, enum proto_stop_reason *reason)
{
    pthread_mutex_lock(&u->mu);
    struct up_session *s = find(u, capture_id);
    int ended = s && s->ended;
    if (ended)
        *reason = s->reason;
    pthread_mutex_unlock(&u->mu);
    return ended;
}

uint64_t uploads_bytes(struct uploads *u, const char *capture_id)
{
    uint64_t sum = 0;
    pthread_mutex_lock(&u->mu);
    struct up_session *s = find(u, capture_id);
    sum = s ? s->pruned_bytes : 0;
    for (struct up_file *f = s ? s->files : NULL; f; f = f->next)
        sum += f->done ? f->size : __atomic_load_n(&f->uploaded, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&u->mu);
    return sum;
}

enum cp_err uploads_files(struct uploads *u, const char *capture_id, struct uploads_file **out,
                          size_t *n)
{
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&u->mu);
    struct up_session *s = find(u, capture_id);
    size_t count = 0;
    for (struct up_file *f = s ? s->files : NULL; f; f = f->next)
        count++;
    enum cp_err err = CP_OK;
    if (count) {
        *out = calloc(count, sizeof(**out));
        if (!*out)
            err = CP_ENOMEM;
    }
    for (struct up_file *f = *out ? s->files : NULL; f; f = f->next) {
        struct uploads_file *o = &(*out)[(*n)++];
        o->index = f->index;
        snprintf(o->rel, sizeof(o->rel), "%s", f->rel);
        o->size = f->size;
        snprintf(o->sha256, sizeof(o->sha256), "%s", f->sha256);
        snprintf(o->blob, sizeof(o->blob), "%s", f->blob);
    }
    pthread_mutex_unlock(&u->mu);
    return err;
}

size_t uploads_ids(struct uploads *u, char (*ids)[PROTO_ID_SIZE], size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&u->mu);
    for (struct up_session *s = u->sessions; s && n < max; s = s->next)
        if (!s->forgotten)
            snprintf(ids[n++], PROTO_ID_SIZE, "%s", s->capture_id);
    pthread_mutex_unlock(&u->mu);
    return n;
}

void uploads_forget(struct uploads *u, const char *capture_id)
{
    pthread_mutex_lock(&u->mu);
    struct up_session *s = find(u, capture_id);
    if (!s) {
        pthread_mutex_unlock(&u->mu);
        return;
    }
    struct cp_error e = {{0}, {0}, {0}};
    char name[PROTO_ID_SIZE + 8], journal[PATH_MAX + 64];
    int busy = 0;
    for (struct up_file *f = s->files; f; f = f->next)
        busy |= u->current == f;
    for (struct up_file *f = s->files; f; f = f->next) {
        if (u->current == f)
            continue; /* the worker's upload still writes it */
        journal_path(u, capture_id, f->index, journal, sizeof(journal));
        if (unlink(journal) != 0 && errno != ENOENT)
            log_warnx("event=upload_journal_not_removed file=\"%s\"", journal);
    }
    snprintf(name, sizeof(name), "%s.json", capture_id);
    if (durable_remove(u->dir, name, &e) != CP_OK)
        log_warnx("event=state_write_failed detail=\"%s\"", e.message);
    if (busy) {
        s->forgotten = 1; /* the worker frees it when its upload returns */
    } else {
        struct up_session **pp = &u->sessions;
        while (*pp != s)
            pp = &(*pp)->next;
        *pp = s->next;
        session_free(s);
    }
    pthread_cond_broadcast(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

/* ---- life -------------------------------------------------------------------------------- */

int uploads_wake_fd(const struct uploads *u)
{
    return u->efd;
}

enum cp_err uploads_new(const struct uploads_options *o, uploads_event_fn fn, void *arg,
                        struct uploads **out, struct cp_error *e)
{
    struct uploads *u = calloc(1, sizeof(*u));
    if (!u)
        return cp_fail(e, CP_ENOMEM, "", "", "out of memory");
    int w = snprintf(u->dir, sizeof(u->dir), "%s/%s", o->state_dir, UPLOADS_DIR);
    u->root = o->root;
    u->block_size = o->block_size;
    u->ca_file = o->ca_file;
    u->backoff_initial_ms = o->backoff_initial_ms;
    u->fn = fn;
    u->arg = arg;
    atomic_init(&u->stop, 0);
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    u->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    enum cp_err err = CP_OK;
    if (w < 0 || (size_t)w >= sizeof(u->dir))
        err = cp_fail(e, CP_EINVAL, "", "state-dir", "the state directory path is too long");
    else if (u->efd < 0)
        err = cp_fail(e, CP_EIO, "", "", "eventfd: %s", strerror(errno));
    if (err == CP_OK)
        err = durable_mkdir(u->dir, e);
    if (err == CP_OK)
        err = load(u, o->state_dir, e);
    if (err == CP_OK) {
        if (pthread_create(&u->worker, NULL, worker, u) != 0)
            err = cp_fail(e, CP_EIO, "", "", "the upload thread cannot start");
        else
            u->started = 1;
    }
    if (err != CP_OK) {
        uploads_free(u);
        return err;
    }
    *out = u;
    return CP_OK;
}

void uploads_free(struct uploads *u)
{
    if (!u)
        return;
    if (u->started) {
        pthread_mutex_lock(&u->mu);
        atomic_store(&u->stop, 1);
        pthread_cond_broadcast(&u->cv);
        pthread_mutex_unlock(&u->mu);
        pthread_join(u->worker, NULL);
    }
    for (struct up_session *s = u->sessions, *next; s; s = next) {
        next = s->next;
        session_free(s);
    }
    if (u->efd >= 0)
        close(u->efd);
    pthread_cond_destroy(&u->cv);
    pthread_mutex_destroy(&u->mu);
    free(u);
}
