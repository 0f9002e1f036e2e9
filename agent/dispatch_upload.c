/*
 * The dispatcher's side of blob uploads (docs/storage.md, "The agent's side"): which files of a
 * session go to storage, when its capture has ended but its uploads have not, and what a
 * failure does. The queue itself (worker, grants, records) is agent/uploads.h.
 *
 * Modes come from the spec (agent/spec.h): File (no storageId): nothing here applies. Both: each
 * finished file is queued and stays. Storage only: the files live under
 * SPEC_UPLOAD_DIR/<captureId>/ in the capture root and each goes once its blob is committed.
 *
 * File index: file k of the session's list (the single file 0, then the parts a restart
 * resumed into, in order) is blob file k. In a ring, the file with sequence number n (its name,
 * agent/capture_ring.h) is blob file n - 1, so the index survives restarts and deletions.
 *
 * Rings: the ring deletes its oldest file when one more completes, whether or not it went to
 * storage yet. So each file the ring completes is hard-linked, on the capture thread before any
 * deletion (capture_ring.on_file), as SPEC_UPLOAD_DIR/<captureId>/up/<name>, and the link is
 * what is queued and removed once committed: the ring keeps its fileCount names and its rule,
 * and a file it deletes stays on disk (under the link) only until uploaded. Disk use can grow
 * past fileCount files while storage is slower than the capture.
 *
 * A session whose capture ends while files are still queued becomes UPLOADING (recorded in its
 * queue, so a restart does not capture again): the server still sees it running; its completed
 * report goes once every file is committed. If the uploads fail (after the uploader's retries,
 * or a grant refused) the session ends with error StorageFailed and the uploader's message; the
 * local files stay where they are, including a storage-only session's private directory.
 */
/* _GNU_SOURCE: d_type (DT_REG) and dirfd. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/capture_ring.h"
#include "agent/dispatch_int.h"
#include "common/log.h"

int dispatch_spec(const struct dispatch_session *s, struct agent_spec *sp, struct cp_error *e)
{
    if (agent_spec_read(s->rec.spec, sp, e) != 0)
        return -1;
    agent_spec_upload_file(sp, s->rec.capture_id);
    return 0;
}

static struct dispatch_session *session_of(struct dispatch *d, const char *capture_id)
{
    for (struct dispatch_session *s = d->sessions; s; s = s->next)
        if (s->state != DISPATCH_REFUSED && strcmp(s->rec.capture_id, capture_id) == 0)
            return s;
    return NULL;
}

/* Where a storage-only session's local data stays, for its StorageFailed message. */
static void failure_message(const struct dispatch_session *s, const char *why, char *out, size_t n)
{
    if (s->upload == SPEC_UPLOAD_ONLY)
        snprintf(out, n,
                 "%s; the capture is kept on the agent under " SPEC_ROOT_PREFIX SPEC_UPLOAD_DIR
                 "/%s/",
                 why, s->rec.capture_id);
    else
        snprintf(out, n, "%s; the local files are kept", why);
}

/* uploads_event_fn: every file committed, or the uploads failed. */
static void on_event(void *arg, struct channel *ch, const char *capture_id, const char *failure)
{
    struct dispatch *d = arg;
    struct dispatch_session *s = session_of(d, capture_id);
    if (!s || s->state == DISPATCH_FINISHED) {
        uploads_forget(d->uploads, capture_id);
        return;
    }
    if (failure) {
        char msg[PROTO_MESSAGE_MAX + 1];
        failure_message(s, failure, msg, sizeof(msg));
        if (s->state == DISPATCH_RUNNING && s->cap) {
            /* Its end (on_wake -> finish) reports the failure. */
            free(s->upload_failure);
            s->upload_failure = strdup(msg);
            capture_stop(s->cap);
        } else {
            dispatch_end(d, ch, s, PROTO_STOP_NONE, PROTO_PC_STORAGE_FAILED, msg);
        }
        return;
    }
    if (s->state == DISPATCH_UPLOADING && uploads_pending(d->uploads, capture_id) == 0) {
        log_info("event=uploads_committed captureId=%s", capture_id);
        dispatch_end(d, ch, s, s->up_reason, PROTO_PC_NONE, NULL);
    }
}

enum cp_err dispatch_upload_open(struct dispatch *d, const struct dispatch_options *o,
                                 struct cp_error *e)
{
    struct uploads_options uo = {.state_dir = d->state->dir,
                                 .root = d->root,
                                 .block_size = o->upload_block_size,
                                 .backoff_initial_ms = o->upload_backoff_ms};
    enum cp_err err = uploads_new(&uo, on_event, d, &d->uploads, e);
    if (err != CP_OK)
        return err;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &d->uploads};
    if (epoll_ctl(d->epfd, EPOLL_CTL_ADD, uploads_wake_fd(d->uploads), &ev) != 0)
        return cp_fail(e, CP_EIO, "", "", "epoll_ctl: %s", strerror(errno));
    return CP_OK;
}

/* What a ring's hook needs, fixed while the capture runs (read on the capture thread). */
struct ring_up {
    struct uploads *uploads;
    const char *root;
    char capture_id[PROTO_ID_SIZE];
    char base[CAPTURE_PATH_MAX_LEN + 1];
};

#define UPLOAD_LINKS "up" /* a ring's links, under the session's upload directory */

static int make_dir(const char *path)
{
    return mkdir(path, 0750) == 0 || errno == EEXIST ? 0 : -1;
}

/* Links ring file rel under the session's upload directory and queues the link (blob file
 * seq - 1). A file that cannot be linked is queued as it is (logged): the ring may delete it
 * first, and then its upload fails the session. */
static void ring_queue(const struct ring_up *r, const char *rel, uint64_t size, const char *sha)
{
    const char *slash = strrchr(rel, '/');
    const char *name = slash ? slash + 1 : rel;
    uint32_t seq = capture_ring_seq(r->base, name);
    if (seq == 0 || uploads_has(r->uploads, r->capture_id, (int64_t)seq - 1))
        return;
    char link_rel[CAPTURE_PATH_MAX_LEN + 1], dir[CAPTURE_PATH_MAX_LEN * 2];
    char from[CAPTURE_PATH_MAX_LEN * 2], to[CAPTURE_PATH_MAX_LEN * 3];
    int w = snprintf(link_rel, sizeof(link_rel), "%s/%s/%s/%s", SPEC_UPLOAD_DIR, r->capture_id,
                     UPLOAD_LINKS, name);
    const char *queued = rel;
    int remove_after = 0;
    if (w > 0 && (size_t)w < sizeof(link_rel)) {
        snprintf(from, sizeof(from), "%s/%s", r->root, rel);
        snprintf(to, sizeof(to), "%s/%s", r->root, link_rel);
        snprintf(dir, sizeof(dir), "%s/%s", r->root, SPEC_UPLOAD_DIR);
        int ok = make_dir(dir) == 0;
        snprintf(dir, sizeof(dir), "%s/%s/%s", r->root, SPEC_UPLOAD_DIR, r->capture_id);
        ok = ok && make_dir(dir) == 0;
        snprintf(dir, sizeof(dir), "%s/%s/%s/%s", r->root, SPEC_UPLOAD_DIR, r->capture_id,
                 UPLOAD_LINKS);
        ok = ok && make_dir(dir) == 0 && (link(from, to) == 0 || errno == EEXIST);
        if (ok) {
            queued = link_rel;
            remove_after = 1;
        } else {
            log_warnx("event=ring_file_not_linked captureId=%s file=\"%s\" detail=\"%s\"",
                      r->capture_id, rel, strerror(errno));
        }
    }
    struct cp_error e = {{0}, {0}, {0}};
    if (uploads_add(r->uploads, r->capture_id, (int64_t)seq - 1, queued, size, sha, remove_after,
                    &e) != CP_OK)
        log_error("event=upload_not_queued captureId=%s file=\"%s\" detail=\"%s\"", r->capture_id,
                  rel, e.message);
}

static void on_ring_file(void *arg, const struct capture_file *f)
{
    ring_queue(arg, f->path, f->size, f->sha256);
}

static void ring_up_fill(struct dispatch *d, const struct dispatch_session *s, const char *base,
                         struct ring_up *r)
{
    r->uploads = d->uploads;
    r->root = d->root;
    snprintf(r->capture_id, sizeof(r->capture_id), "%s", s->rec.capture_id);
    snprintf(r->base, sizeof(r->base), "%s", base);
}

void dispatch_upload_ring(struct dispatch *d, struct dispatch_session *s, const char *base,
                          struct capture_ring *ring)
{
    if (s->upload == SPEC_UPLOAD_NONE)
        return;
    free(s->ring_up);
    struct ring_up *r = calloc(1, sizeof(*r));
    s->ring_up = r;
    if (!r)
        return; /* its files are queued at the end instead (dispatch_upload_settle's way) */
    ring_up_fill(d, s, base, r);
    ring->on_file = on_ring_file;
    ring->on_file_arg = r;
}

/* A ring session's files not queued yet (a restart salvaged them): linked and queued. */
static void ring_queue_listed(struct dispatch *d, struct dispatch_session *s)
{
    struct agent_spec sp;
    struct cp_error e = {{0}, {0}, {0}};
    if (dispatch_spec(s, &sp, &e) == 0 && sp.ring) {
        struct ring_up r;
        ring_up_fill(d, s, sp.file, &r);
        for (size_t i = 0; i < s->rec.n_files; i++)
            ring_queue(&r, s->rec.files[i].path, s->rec.files[i].size, s->rec.files[i].sha256);
    }
    agent_spec_clear(&sp);
}

void dispatch_upload_queue(struct dispatch *d, struct dispatch_session *s)
{
    if (s->upload == SPEC_UPLOAD_NONE)
        return;
    if (s->ring) {
        ring_queue_listed(d, s); /* the hook has queued them; a failed link or alloc has not */
        return;
    }
    for (size_t i = 0; i < s->rec.n_files; i++) {
        const struct spool_file *f = &s->rec.files[i];
        struct cp_error e = {{0}, {0}, {0}};
        if (uploads_has(d->uploads, s->rec.capture_id, (int64_t)i))
            continue;
        if (uploads_add(d->uploads, s->rec.capture_id, (int64_t)i, f->path, f->size, f->sha256,
                        s->upload == SPEC_UPLOAD_ONLY, &e) != CP_OK) {
            /* Not queued, so never uploaded: the session must not claim it was. */
            char msg[PROTO_MESSAGE_MAX + 1];
            failure_message(s, e.message, msg, sizeof(msg));
            if (!s->upload_failure)
                s->upload_failure = strdup(msg);
        }
    }
}

int dispatch_upload_wait(struct dispatch *d, struct dispatch_session *s,
                         enum proto_stop_reason reason)
{
    if (s->upload == SPEC_UPLOAD_NONE || uploads_pending(d->uploads, s->rec.capture_id) == 0)
        return 0;
    if (uploads_set_ended(d->uploads, s->rec.capture_id, reason) != 0)
        return 0; /* unrecorded, a restart would capture again: better end it now */
    s->state = DISPATCH_UPLOADING;
    s->up_reason = reason;
    s->rec.partial[0] = '\0';
    dispatch_save(d, s);
    log_info("event=capture_uploading captureId=%s pending=%zu", s->rec.capture_id,
             uploads_pending(d->uploads, s->rec.capture_id));
    return 1;
}

void dispatch_upload_restore(struct dispatch *d)
{
    for (struct dispatch_session *s = d->sessions; s; s = s->next) {
        struct agent_spec sp;
        struct cp_error e = {{0}, {0}, {0}};
        if (dispatch_spec(s, &sp, &e) == 0) {
            s->upload = sp.upload;
            s->ring = sp.ring;
        }
        agent_spec_clear(&sp);
        enum proto_stop_reason why;
        if (s->state == DISPATCH_RUNNING && uploads_ended(d->uploads, s->rec.capture_id, &why)) {
            s->state = DISPATCH_UPLOADING;
            s->up_reason = why;
            s->rec.partial[0] = '\0';
            log_info("event=capture_uploading captureId=%s pending=%zu restored=yes",
                     s->rec.capture_id, uploads_pending(d->uploads, s->rec.capture_id));
        }
    }
    char(*ids)[PROTO_ID_SIZE] = calloc(PROTO_MAX_SESSIONS, PROTO_ID_SIZE);
    size_t n = ids ? uploads_ids(d->uploads, ids, PROTO_MAX_SESSIONS) : 0;
    for (size_t i = 0; i < n; i++) {
        struct dispatch_session *s = session_of(d, ids[i]);
        if (!s || s->state == DISPATCH_FINISHED) {
            log_info("event=upload_queue_dropped captureId=%s reason=\"no session holds it\"",
                     ids[i]);
            uploads_forget(d->uploads, ids[i]);
        }
    }
    free(ids);
}

void dispatch_upload_settle(struct dispatch *d)
{
    for (struct dispatch_session *s = d->sessions, *next; s; s = next) {
        next = s->next;
        if (s->state == DISPATCH_RUNNING || s->state == DISPATCH_UPLOADING)
            dispatch_upload_queue(d, s);
        if (s->state == DISPATCH_UPLOADING && uploads_pending(d->uploads, s->rec.capture_id) == 0)
            dispatch_end(d, NULL, s, s->up_reason, PROTO_PC_NONE, NULL);
    }
}

int dispatch_upload_report(struct dispatch *d, struct dispatch_session *s,
                           struct proto_file **files, size_t *n)
{
    *files = NULL;
    *n = 0;
    if (s->upload != SPEC_UPLOAD_ONLY)
        return -1;
    struct uploads_file *v = NULL;
    size_t nv = 0;
    if (uploads_files(d->uploads, s->rec.capture_id, &v, &nv) != CP_OK)
        return -1;
    *files = calloc(nv + 1, sizeof(**files));
    for (size_t i = 0; *files && i < nv; i++) {
        char *path = strdup(v[i].blob[0] ? v[i].blob : v[i].rel);
        if (!path)
            break;
        (*files)[*n].path = path;
        (*files)[*n].bytes = (int64_t)v[i].size;
        snprintf((*files)[*n].sha256, sizeof((*files)[*n].sha256), "%s", v[i].sha256);
        (*n)++;
    }
    free(v);
    return *files ? 0 : -1;
}

/* Removes the regular files of dir and dir itself (logged when it cannot). */
static void remove_dir_files(const char *dir)
{
    DIR *dp = opendir(dir);
    for (struct dirent *de; dp && (de = readdir(dp)) != NULL;) {
        if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
            continue; /* "up", ".", ".." */
        if (unlinkat(dirfd(dp), de->d_name, 0) != 0)
            log_warnx("event=upload_local_not_removed dir=\"%s\" file=\"%s\" detail=\"%s\"", dir,
                      de->d_name, strerror(errno));
    }
    if (dp)
        closedir(dp);
    if (rmdir(dir) != 0 && errno != ENOENT)
        log_warnx("event=upload_dir_not_removed dir=\"%s\" detail=\"%s\"", dir, strerror(errno));
}

void dispatch_upload_end(struct dispatch *d, struct dispatch_session *s, int completed)
{
    free(s->upload_failure);
    s->upload_failure = NULL;
    if (s->upload == SPEC_UPLOAD_NONE)
        return;
    uploads_forget(d->uploads, s->rec.capture_id);
    char dir[CAPTURE_PATH_MAX_LEN * 2], links[CAPTURE_PATH_MAX_LEN * 2 + 8];
    snprintf(dir, sizeof(dir), "%s/%s/%s", d->root, SPEC_UPLOAD_DIR, s->rec.capture_id);
    snprintf(links, sizeof(links), "%s/%s", dir, UPLOAD_LINKS);
    /* A failed session keeps everything: nothing captured is lost. */
    if (!completed)
        return;
    /* Completed: every file is in storage. The links are gone already (removed as committed);
     * storage only also drops what its ring still kept, and its directory. */
    if (rmdir(links) != 0 && errno != ENOENT)
        log_warnx("event=upload_dir_not_removed dir=\"%s\" detail=\"%s\"", links, strerror(errno));
    if (s->upload == SPEC_UPLOAD_ONLY)
        remove_dir_files(dir);
    else
        (void)rmdir(dir); /* Both: only the links lived here */
}
