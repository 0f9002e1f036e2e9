/*
 * A capture's output behind capture_ring.h: the single file, or the ring's names, rotation by
 * size and deletion of the oldest completed file.
 */
/* _GNU_SOURCE: pcap.h needs the BSD u_int/u_char types; gmtime_r and fdopendir are POSIX
 * beyond C11. */
#define _GNU_SOURCE
#include "agent/capture_ring.h"

#include <dirent.h>
#include <pcap/pcap.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent/pcap_file.h"
#include "common/log.h"

#define CR_CODE        "LocalFileFailed"
#define CR_SEQ_DIGITS  6  /* zero-padded to at least this many, so names sort by seq for a while */
#define CR_SEQ_MAX_LEN 10 /* digits of UINT32_MAX */
#define CR_RECORD_HDR  16 /* bytes of a pcap record header on disk */
#define CR_LATEST_TIME ((time_t)253402300799LL) /* 9999-12-31T23:59:59Z: the longest stamp */

struct capture_out {
    int rootfd; /* borrowed */
    int ring;   /* 0: one file */
    uint32_t file_count;
    uint64_t file_size;
    char base[CAPTURE_PATH_MAX_LEN + 1];
    int dirfd; /* ring: the directory of its files (owned); -1 otherwise */
    int linktype, snaplen;
    struct pcap_file *cur; /* being written; NULL once committed or aborted */
    uint64_t cur_packets;
    uint32_t next_seq;         /* of the next file started */
    struct capture_file *kept; /* completed files kept: kept[first .. first + n) */
    size_t first, n, cap;
    void (*on_file)(void *arg, const struct capture_file *f); /* capture_ring.on_file */
    void *on_file_arg;
};

/* ---- names ---- */

/* base's final segment split at its extension: [seg, dot) is the stem, dot the extension
 * ("" when none; a leading dot is part of the stem, as in ".cap"). */
static void cr_split(const char *base, const char **seg, const char **dot)
{
    const char *slash = strrchr(base, '/');
    *seg = slash ? slash + 1 : base;
    *dot = strrchr(*seg, '.');
    if (!*dot || *dot == *seg)
        *dot = *seg + strlen(*seg);
}

int capture_ring_name(const char *base, uint32_t seq, time_t t, char *out, size_t n)
{
    const char *seg, *dot;
    cr_split(base, &seg, &dot);
    struct tm tm;
    char stamp[32];
    if (!gmtime_r(&t, &tm) || strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm) == 0 ||
        strlen(stamp) != CAPTURE_RING_STAMP_LEN)
        return -1;
    int w =
        snprintf(out, n, "%.*s_%0*u_%s%s", (int)(dot - base), base, CR_SEQ_DIGITS, seq, stamp, dot);
    if (w < 0 || (size_t)w >= n)
        return -1;
    return pcap_file_check_path(out, NULL) == CP_OK ? 0 : -1;
}

static int cr_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return 1;
}

uint32_t capture_ring_seq(const char *base, const char *name)
{
    const char *seg, *dot;
    cr_split(base, &seg, &dot);
    size_t stem = (size_t)(dot - seg);
    if (strncmp(name, seg, stem) != 0 || name[stem] != '_')
        return 0;
    const char *p = name + stem + 1;
    size_t d = strspn(p, "0123456789");
    if (d < CR_SEQ_DIGITS || d > CR_SEQ_MAX_LEN || p[d] != '_')
        return 0;
    unsigned long long v = strtoull(p, NULL, 10);
    if (v == 0 || v > UINT32_MAX)
        return 0;
    const char *s = p + d + 1; /* YYYYMMDDTHHMMSSZ, then the extension */
    if (strnlen(s, CAPTURE_RING_STAMP_LEN) != CAPTURE_RING_STAMP_LEN || !cr_digits(s, 8) ||
        s[8] != 'T' || !cr_digits(s + 9, 6) || s[15] != 'Z' ||
        strcmp(s + CAPTURE_RING_STAMP_LEN, dot) != 0)
        return 0;
    return (uint32_t)v;
}

/* The seq of a directory entry of base's ring, complete or (partial set) ".<name>.partial". */
static uint32_t cr_entry_seq(const char *base, const char *name, int partial)
{
    uint32_t seq = capture_ring_seq(base, name);
    if (seq || !partial || name[0] != '.')
        return seq;
    size_t len = strlen(name), suf = strlen(PCAP_FILE_PARTIAL_SUFFIX);
    if (len <= 1 + suf || strcmp(name + len - suf, PCAP_FILE_PARTIAL_SUFFIX) != 0)
        return 0;
    char inner[PCAP_FILE_SEGMENT_MAX + 1];
    if (len - 1 - suf > PCAP_FILE_SEGMENT_MAX)
        return 0;
    memcpy(inner, name + 1, len - 1 - suf);
    inner[len - 1 - suf] = '\0';
    return capture_ring_seq(base, inner);
}

static int cr_by_seq(const void *a, const void *b)
{
    uint32_t x = ((const struct capture_ring_entry *)a)->seq;
    uint32_t y = ((const struct capture_ring_entry *)b)->seq;
    return x < y ? -1 : x > y;
}

/* Lists dirfd (borrowed) for base's ring. With out: the complete files into *out and *n; always:
 * the highest seq seen, partial files included, into *max. */
static enum cp_err cr_scan(int dirfd, const char *base, struct capture_ring_entry **out, size_t *n,
                           uint32_t *max, struct cp_error *e)
{
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int err = errno;
        if (fd >= 0)
            close(fd);
        return cp_fail(e, CP_EIO, CR_CODE, NULL, "Cannot list the directory of '%s': %s.", base,
                       strerror(err));
    }
    const char *slash = strrchr(base, '/');
    int dir_len = slash ? (int)(slash - base + 1) : 0;
    struct capture_ring_entry *v = NULL;
    size_t cnt = 0, cap = 0;
    enum cp_err err = CP_OK;
    *max = 0;
    for (struct dirent *de; (de = readdir(d)) != NULL;) {
        uint32_t seq = cr_entry_seq(base, de->d_name, 1);
        if (seq > *max)
            *max = seq;
        if (!out || seq == 0 || capture_ring_seq(base, de->d_name) == 0)
            continue;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct capture_ring_entry *nv = realloc(v, ncap * sizeof(*nv));
            if (!nv) {
                err = cp_fail(e, CP_ENOMEM, "InternalError", NULL, "Out of memory.");
                break;
            }
            v = nv;
            cap = ncap;
        }
        int w = snprintf(v[cnt].path, sizeof(v[cnt].path), "%.*s%s", dir_len, base, de->d_name);
        if (w < 0 || (size_t)w >= sizeof(v[cnt].path))
            continue; /* cannot happen: capture_ring_name's check bounds every name */
        v[cnt++].seq = seq;
    }
    closedir(d);
    if (err != CP_OK || !out) {
        free(v);
        return err;
    }
    if (cnt)
        qsort(v, cnt, sizeof(*v), cr_by_seq);
    *out = v;
    *n = cnt;
    return CP_OK;
}

enum cp_err capture_ring_list(int rootfd, const char *base, struct capture_ring_entry **out,
                              size_t *n, struct cp_error *e)
{
    int dirfd;
    char seg[PCAP_FILE_SEGMENT_MAX + 1];
    *out = NULL;
    *n = 0;
    enum cp_err err = pcap_file_open_dir(rootfd, base, &dirfd, seg, e);
    if (err != CP_OK)
        return err;
    uint32_t max;
    err = cr_scan(dirfd, base, out, n, &max, e);
    close(dirfd);
    return err;
}

void capture_ring_remove(int rootfd, const char *rel)
{
    int dirfd;
    char name[PCAP_FILE_SEGMENT_MAX + 1];
    struct cp_error e;
    if (pcap_file_open_dir(rootfd, rel, &dirfd, name, &e) != CP_OK) {
        log_warnx("event=ring_file_not_deleted file=\"%s\" detail=\"%s\"", rel, e.message);
        return;
    }
    if (unlinkat(dirfd, name, 0) != 0 && errno != ENOENT)
        log_warnx("event=ring_file_not_deleted file=\"%s\" detail=\"%s\"", rel, strerror(errno));
    (void)fsync(dirfd);
    close(dirfd);
}

/* ---- the output ---- */

static enum cp_err cr_start_file(struct capture_out *o, struct cp_error *e)
{
    char rel[CAPTURE_PATH_MAX_LEN + 1];
    if (o->next_seq == 0)
        return cp_fail(e, CP_EIO, CR_CODE, NULL, "The ring of '%s' has used every sequence number.",
                       o->base);
    if (capture_ring_name(o->base, o->next_seq, time(NULL), rel, sizeof(rel)) != 0)
        return cp_fail(e, CP_EINVAL, CR_CODE, NULL, "No ring file name for '%s'.", o->base);
    enum cp_err err = pcap_file_open(o->rootfd, rel, o->linktype, o->snaplen, &o->cur, e);
    if (err == CP_OK) {
        o->next_seq++;
        o->cur_packets = 0;
    }
    return err;
}

/* Appends f to the files kept. */
static enum cp_err cr_keep(struct capture_out *o, const char *path, uint64_t size,
                           const char *sha256, struct cp_error *e)
{
    if (o->first + o->n == o->cap) {
        if (o->first > 0) {
            memmove(o->kept, o->kept + o->first, o->n * sizeof(*o->kept));
            o->first = 0;
        } else {
            size_t ncap = o->cap ? o->cap * 2 : 4;
            struct capture_file *nk = realloc(o->kept, ncap * sizeof(*nk));
            if (!nk)
                return cp_fail(e, CP_ENOMEM, "InternalError", NULL, "Out of memory.");
            o->kept = nk;
            o->cap = ncap;
        }
    }
    struct capture_file *f = &o->kept[o->first + o->n++];
    snprintf(f->path, sizeof(f->path), "%s", path);
    f->size = size;
    snprintf(f->sha256, sizeof(f->sha256), "%s", sha256);
    return CP_OK;
}

/* A ring past its count deletes its oldest files. A file that cannot be deleted is logged and
 * forgotten: it is no longer the ring's, and the capture goes on. */
static void cr_trim(struct capture_out *o)
{
    int deleted = 0;
    while (o->ring && o->n > o->file_count) {
        const struct capture_file *f = &o->kept[o->first];
        const char *slash = strrchr(f->path, '/');
        const char *name = slash ? slash + 1 : f->path;
        if (unlinkat(o->dirfd, name, 0) == 0)
            deleted++;
        else if (errno != ENOENT)
            log_warnx("event=ring_file_not_deleted file=\"%s\" detail=\"%s\"", f->path,
                      strerror(errno));
        log_debug("event=ring_file_deleted file=\"%s\"", f->path);
        o->first++;
        o->n--;
    }
    /* The deletion is durable once the directory is; a failure only means a deleted file may
     * come back after a power loss, to be trimmed again on resume. */
    if (deleted)
        (void)fsync(o->dirfd);
}

enum cp_err capture_out_open(int rootfd, const char *rel, const struct capture_ring *ring,
                             int linktype, int snaplen, struct capture_out **out,
                             struct cp_error *e)
{
    struct capture_out *o = calloc(1, sizeof(*o));
    if (!o)
        return cp_fail(e, CP_ENOMEM, "InternalError", NULL, "Out of memory.");
    o->rootfd = rootfd;
    o->dirfd = -1;
    o->linktype = linktype;
    o->snaplen = snaplen;
    snprintf(o->base, sizeof(o->base), "%s", rel ? rel : "");
    enum cp_err err = CP_OK;
    if (!ring) {
        err = pcap_file_open(rootfd, rel, linktype, snaplen, &o->cur, e);
        goto done;
    }
    o->ring = 1;
    o->file_count = ring->file_count;
    o->file_size = ring->file_size;
    o->next_seq = ring->first_seq ? ring->first_seq : 1;
    o->on_file = ring->on_file;
    o->on_file_arg = ring->on_file_arg;
    char probe[CAPTURE_PATH_MAX_LEN + 1];
    if ((err = pcap_file_check_path(rel, e)) != CP_OK)
        goto done;
    if (capture_ring_name(rel, UINT32_MAX, CR_LATEST_TIME, probe, sizeof(probe)) != 0) {
        err = cp_fail(e, CP_EINVAL, CR_CODE, NULL,
                      "The capture file name '%.200s' is too long for continuous capture, which "
                      "adds up to %d characters to it.",
                      rel, 2 + CR_SEQ_MAX_LEN + CAPTURE_RING_STAMP_LEN);
        goto done;
    }
    char seg[PCAP_FILE_SEGMENT_MAX + 1];
    uint32_t max = 0;
    if ((err = pcap_file_open_dir(rootfd, rel, &o->dirfd, seg, e)) != CP_OK ||
        (err = cr_scan(o->dirfd, rel, NULL, NULL, &max, e)) != CP_OK)
        goto done;
    /* Deleting the oldest is safe only when every file of the name is this ring's. */
    if (max >= o->next_seq) {
        err = cp_fail(e, CP_EEXIST, CR_CODE, NULL,
                      "Files of an earlier continuous capture named '%.200s' exist (up to number "
                      "%u); continuous capture never deletes files it did not write. Choose "
                      "another localPath or remove them.",
                      rel, max);
        goto done;
    }
    for (size_t i = 0; i < ring->n_prior && err == CP_OK; i++)
        err = cr_keep(o, ring->prior[i].path, ring->prior[i].size, ring->prior[i].sha256, e);
    if (err == CP_OK)
        err = cr_start_file(o, e);
done:
    if (err != CP_OK) {
        capture_out_free(o);
        return err;
    }
    *out = o;
    return CP_OK;
}

enum cp_err capture_out_commit(struct capture_out *o, struct cp_error *e)
{
    if (!o->cur)
        return CP_OK;
    struct pcap_file_info info;
    enum cp_err err = pcap_file_commit(o->cur, &info, e);
    o->cur = NULL;
    if (err != CP_OK)
        return err;
    err = cr_keep(o, info.path, info.size, info.sha256, e);
    if (err == CP_OK && o->ring && o->on_file)
        o->on_file(o->on_file_arg, &o->kept[o->first + o->n - 1]); /* before the trim */
    cr_trim(o);
    return err;
}

enum cp_err capture_out_write(struct capture_out *o, const struct pcap_pkthdr *h,
                              const unsigned char *bytes, struct cp_error *e)
{
    if (!o->cur)
        return cp_fail(e, CP_EIO, CR_CODE, NULL, "No capture file is open.");
    if (o->ring && o->cur_packets > 0 &&
        pcap_file_size(o->cur) + CR_RECORD_HDR + h->caplen > o->file_size) {
        enum cp_err err = capture_out_commit(o, e);
        if (err == CP_OK)
            err = cr_start_file(o, e);
        if (err != CP_OK)
            return err;
    }
    pcap_file_write(o->cur, h, bytes);
    o->cur_packets++;
    return CP_OK;
}

enum cp_err capture_out_flush(struct capture_out *o, struct cp_error *e)
{
    return o->cur ? pcap_file_flush(o->cur, e) : CP_OK;
}

void capture_out_abort(struct capture_out *o)
{
    pcap_file_abort(o->cur);
    o->cur = NULL;
}

const struct capture_file *capture_out_files(const struct capture_out *o, size_t *n)
{
    *n = o->n;
    return o->n ? o->kept + o->first : NULL;
}

void capture_out_free(struct capture_out *o)
{
    if (!o)
        return;
    capture_out_abort(o);
    if (o->dirfd >= 0)
        close(o->dirfd);
    free(o->kept);
    free(o);
}
