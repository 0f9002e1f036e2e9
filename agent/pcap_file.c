/*
 * The safe pcap file behind pcap_file.h: path walk under the root fd, the partial file and its
 * commit, and the stdio cookie stream that counts, hashes and keeps the errno of every write.
 */
/* _GNU_SOURCE: fopencookie(3) (a FILE* for pcap_dump_fopen whose writes we see) and renameat2(2)
 * with RENAME_NOREPLACE (publish without replacing) are glibc/Linux extensions; it also gives
 * pcap.h its BSD u_int/u_char types. */
#define _GNU_SOURCE
#include "agent/pcap_file.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PF_CODE      "LocalFileFailed"
#define PF_DIR_MODE  0750
#define PF_FILE_MODE 0640
#define PF_STDIO_BUF (64 * 1024) /* one write(2) per flush in the common case */

struct pcap_file {
    int dirfd;                                /* the directory holding the file; owned */
    int fd;                                   /* the partial file; owned */
    FILE *stream;                             /* cookie stream over fd; owned via dumper */
    pcap_dumper_t *dumper;                    /* is stream, to libpcap */
    EVP_MD_CTX *sha;                          /* SHA-256 of every byte written */
    uint64_t written;                         /* bytes write(2) accepted */
    uint64_t logical;                         /* bytes handed to stdio: written + buffered */
    int werrno;                               /* first write error, 0 if none */
    char rel[CAPTURE_PATH_MAX_LEN + 1];       /* as given */
    char name[PCAP_FILE_SEGMENT_MAX + 1];     /* final name, in dirfd */
    char partial[PCAP_FILE_SEGMENT_MAX + 16]; /* ".<name>.partial", in dirfd */
};

/* ---- the cookie stream ---- */

static ssize_t pf_cookie_write(void *cookie, const char *buf, size_t size)
{
    struct pcap_file *f = cookie;
    if (f->werrno) {
        errno = f->werrno;
        return 0;
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = write(f->fd, buf + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* Keep the first error: stdio and later calls may overwrite errno. */
            f->werrno = n < 0 ? errno : EIO;
            errno = f->werrno;
            return 0; /* fopencookie: 0 means error; never negative */
        }
        if (EVP_DigestUpdate(f->sha, buf + done, (size_t)n) != 1) {
            f->werrno = EIO;
            errno = EIO;
            return 0;
        }
        f->written += (uint64_t)n;
        done += (size_t)n;
    }
    return (ssize_t)size;
}

/* The fd stays ours: it must be fsynced after the last flush and before the rename. */
static int pf_cookie_close(void *cookie)
{
    (void)cookie;
    return 0;
}

/* ---- paths ---- */

static int pf_segment_ok(const char *s, size_t len)
{
    if (len == 0 || len > PCAP_FILE_SEGMENT_MAX)
        return 0;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

enum cp_err pcap_file_check_path(const char *rel, struct cp_error *e)
{
    if (!rel || !rel[0])
        return cp_fail(e, CP_EINVAL, PF_CODE, NULL, "The capture file path is empty.");
    size_t len = strnlen(rel, CAPTURE_PATH_MAX_LEN + 1);
    if (len > CAPTURE_PATH_MAX_LEN)
        return cp_fail(e, CP_EINVAL, PF_CODE, NULL,
                       "The capture file path is longer than %d bytes.", CAPTURE_PATH_MAX_LEN);
    if (rel[0] == '/')
        return cp_fail(e, CP_EINVAL, PF_CODE, NULL,
                       "The capture file path must be relative to the capture root.");
    const char *p = rel;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (!pf_segment_ok(p, n))
            return cp_fail(e, CP_EINVAL, PF_CODE, NULL,
                           "The capture file path '%.*s' has an empty, '.', '..', over-long or "
                           "control-character segment.",
                           (int)(len > 128 ? 128 : len), rel);
        if (!slash)
            return CP_OK;
        p = slash + 1;
    }
}

static enum cp_err pf_sys(struct cp_error *e, const char *what, const char *name)
{
    int err = errno;
    return cp_fail(e, CP_EIO, PF_CODE, NULL, "Cannot %s '%s' in the capture root: %s.", what, name,
                   strerror(err));
}

/*
 * Walks the directory part of rel from rootfd, making missing directories, and returns an fd of
 * the last one in *dirfd and the final segment in name. Never follows a symlink.
 */
static enum cp_err pf_open_dirs(int rootfd, const char *rel, int *dirfd, char *name,
                                struct cp_error *e)
{
    int cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
    if (cur < 0)
        return pf_sys(e, "use", ".");
    const char *p = rel;
    char seg[PCAP_FILE_SEGMENT_MAX + 1];
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        memcpy(seg, p, n); /* n <= PCAP_FILE_SEGMENT_MAX: pcap_file_check_path passed */
        seg[n] = '\0';
        if (!slash)
            break;
        int made = mkdirat(cur, seg, PF_DIR_MODE) == 0;
        if (!made && errno != EEXIST) {
            enum cp_err err = pf_sys(e, "create directory", seg);
            close(cur);
            return err;
        }
        int next = openat(cur, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            int oerr = errno;
            close(cur);
            if (oerr == ELOOP || oerr == ENOTDIR)
                return cp_fail(e, CP_EINVAL, PF_CODE, NULL,
                               "'%s' in the capture file path is a symbolic link or not a "
                               "directory; capture files are written only under the capture root.",
                               seg);
            errno = oerr;
            return pf_sys(e, "open directory", seg);
        }
        /* Like the file's mode, a directory we made does not depend on the umask. Existing
         * directories are the operator's and keep theirs. */
        if (made && fchmod(next, PF_DIR_MODE) != 0) {
            enum cp_err err = pf_sys(e, "set the mode of directory", seg);
            close(next);
            close(cur);
            return err;
        }
        close(cur);
        cur = next;
        p = slash + 1;
    }
    memcpy(name, seg, strlen(seg) + 1);
    *dirfd = cur;
    return CP_OK;
}

enum cp_err pcap_file_open_dir(int rootfd, const char *rel, int *dirfd, char *name,
                               struct cp_error *e)
{
    enum cp_err err = pcap_file_check_path(rel, e);
    return err == CP_OK ? pf_open_dirs(rootfd, rel, dirfd, name, e) : err;
}

/* ---- the file ---- */

static void pf_free(struct pcap_file *f)
{
    if (f->dumper)
        pcap_dump_close(f->dumper); /* fclose: flushes (errors kept in werrno), fd stays */
    if (f->fd >= 0)
        close(f->fd);
    if (f->dirfd >= 0)
        close(f->dirfd);
    EVP_MD_CTX_free(f->sha);
    free(f);
}

enum cp_err pcap_file_open(int rootfd, const char *rel, int linktype, int snaplen,
                           struct pcap_file **out, struct cp_error *e)
{
    enum cp_err err = pcap_file_check_path(rel, e);
    if (err != CP_OK)
        return err;
    struct pcap_file *f = calloc(1, sizeof(*f));
    pcap_t *tmpl = NULL;
    if (!f)
        return cp_fail(e, CP_ENOMEM, "InternalError", NULL, "Out of memory.");
    f->fd = -1;
    f->dirfd = -1;
    snprintf(f->rel, sizeof(f->rel), "%s", rel);
    if ((err = pf_open_dirs(rootfd, rel, &f->dirfd, f->name, e)) != CP_OK)
        goto cleanup;
    snprintf(f->partial, sizeof(f->partial), ".%s%s", f->name, PCAP_FILE_PARTIAL_SUFFIX);

    struct stat st;
    if (fstatat(f->dirfd, f->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        err = cp_fail(e, CP_EEXIST, PF_CODE, NULL, "The capture file '%s' already exists.", rel);
        goto cleanup;
    }
    if (errno != ENOENT) {
        err = pf_sys(e, "check", f->name);
        goto cleanup;
    }
    f->fd = openat(f->dirfd, f->partial, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                   PF_FILE_MODE);
    if (f->fd < 0) {
        err = errno == EEXIST
                  ? cp_fail(e, CP_EEXIST, PF_CODE, NULL,
                            "'%s' is being written by another capture (or was left by a crash).",
                            f->partial)
                  : pf_sys(e, "create", f->partial);
        goto cleanup;
    }
    /* From here on a failure must also unlink the partial file. */
    if (fchmod(f->fd, PF_FILE_MODE) != 0) {
        err = pf_sys(e, "set the mode of", f->partial);
        goto cleanup;
    }
    f->sha = EVP_MD_CTX_new();
    if (!f->sha || EVP_DigestInit_ex(f->sha, EVP_sha256(), NULL) != 1) {
        err = cp_fail(e, CP_ENOMEM, "InternalError", NULL, "Cannot start a SHA-256 digest.");
        goto cleanup;
    }
    static const cookie_io_functions_t io = {
        .read = NULL, .write = pf_cookie_write, .seek = NULL, .close = pf_cookie_close};
    f->stream = fopencookie(f, "w", io);
    if (!f->stream) {
        err = cp_fail(e, CP_ENOMEM, "InternalError", NULL, "Cannot open a stdio stream.");
        goto cleanup;
    }
    if (setvbuf(f->stream, NULL, _IOFBF, PF_STDIO_BUF) != 0) {
        fclose(f->stream);
        f->stream = NULL;
        err = cp_fail(e, CP_ENOMEM, "InternalError", NULL, "Cannot size the stdio buffer.");
        goto cleanup;
    }
    /* A dead handle carries only what the file header needs: link type and snap length. */
    tmpl = pcap_open_dead_with_tstamp_precision(linktype, snaplen, PCAP_TSTAMP_PRECISION_MICRO);
    if (!tmpl) {
        fclose(f->stream);
        f->stream = NULL;
        err = cp_fail(e, CP_ENOMEM, "InternalError", NULL, "Cannot make a pcap template.");
        goto cleanup;
    }
    f->dumper = pcap_dump_fopen(tmpl, f->stream);
    if (!f->dumper) {
        /* libpcap closes the stream only when writing the header failed, which cannot happen
         * with 24 bytes into an empty 64 KiB buffer; the other failure (a link type pcap files
         * cannot hold) leaves it to us. */
        fclose(f->stream);
        f->stream = NULL;
        err = cp_fail(e, CP_EIO, PF_CODE, NULL, "Cannot start the pcap file '%s': %s.", rel,
                      pcap_geterr(tmpl));
        goto cleanup;
    }
    f->logical = sizeof(struct pcap_file_header);
    if ((err = pcap_file_flush(f, e)) != CP_OK)
        goto cleanup;
    pcap_close(tmpl);
    *out = f;
    return CP_OK;

cleanup:
    if (tmpl)
        pcap_close(tmpl);
    if (f->fd >= 0)
        unlinkat(f->dirfd, f->partial, 0);
    pf_free(f);
    return err;
}

void pcap_file_write(struct pcap_file *f, const struct pcap_pkthdr *h, const u_char *bytes)
{
    pcap_dump((u_char *)f->dumper, h, bytes);
    f->logical += 16 + (uint64_t)h->caplen; /* the on-disk record header is 16 bytes */
}

enum cp_err pcap_file_flush(struct pcap_file *f, struct cp_error *e)
{
    if (pcap_dump_flush(f->dumper) != 0 || f->werrno) {
        int err = f->werrno ? f->werrno : EIO;
        return cp_fail(e, CP_EIO, PF_CODE, NULL, "Cannot write the capture file '%s': %s.", f->rel,
                       strerror(err));
    }
    return CP_OK;
}

uint64_t pcap_file_size(const struct pcap_file *f)
{
    return f->logical;
}

static void pf_hex(const unsigned char *d, unsigned n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Moves the partial file to its final name, never replacing an existing one. */
static int pf_publish(struct pcap_file *f)
{
    if (renameat2(f->dirfd, f->partial, f->dirfd, f->name, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    /* File systems without RENAME_NOREPLACE: link(2) fails with EEXIST just the same. */
    if (linkat(f->dirfd, f->partial, f->dirfd, f->name, 0) != 0)
        return -1;
    unlinkat(f->dirfd, f->partial, 0);
    return 0;
}

enum cp_err pcap_file_commit(struct pcap_file *f, struct pcap_file_info *info, struct cp_error *e)
{
    enum cp_err err = pcap_file_flush(f, e);
    if (err != CP_OK) {
        pcap_file_abort(f);
        return err;
    }
    pcap_dump_close(f->dumper); /* nothing left to flush; the cookie keeps fd open */
    f->dumper = NULL;
    f->stream = NULL;
    if (fsync(f->fd) != 0) {
        err = pf_sys(e, "sync", f->partial);
        pcap_file_abort(f);
        return err;
    }
    if (pf_publish(f) != 0) {
        err = errno == EEXIST ? cp_fail(e, CP_EEXIST, PF_CODE, NULL,
                                        "The capture file '%s' appeared while capturing.", f->rel)
                              : pf_sys(e, "rename to", f->name);
        pcap_file_abort(f);
        return err;
    }
    /* The rename is durable only once the directory is. A failure here leaves a complete file
     * under its final name, which is still reported. */
    (void)fsync(f->dirfd);

    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_DigestFinal_ex(f->sha, md, &mdlen) != 1 || mdlen != 32) {
        pf_free(f);
        return cp_fail(e, CP_EIO, "InternalError", NULL, "Cannot finish the SHA-256 digest.");
    }
    snprintf(info->path, sizeof(info->path), "%s", f->rel);
    info->size = f->written;
    pf_hex(md, mdlen, info->sha256);
    pf_free(f);
    return CP_OK;
}

void pcap_file_abort(struct pcap_file *f)
{
    if (!f)
        return;
    if (f->dumper) {
        pcap_dump_close(f->dumper);
        f->dumper = NULL;
        f->stream = NULL;
    }
    if (f->fd >= 0)
        unlinkat(f->dirfd, f->partial, 0);
    pf_free(f);
}
