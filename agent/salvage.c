/* The salvage of torn pcap files behind agent/salvage.h. */
/* _GNU_SOURCE: renameat2(2) with RENAME_NOREPLACE (never replace a file) is a Linux extension;
 * pcap_file.h needs the BSD u_int/u_char types. */
#define _GNU_SOURCE
#include "agent/salvage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/pcap_file.h"
#include "common/log.h"

#define SV_HEADER      24
#define SV_RECORD      16
#define SV_CAPLEN_MAX  262144 /* libpcap refuses larger records */
#define SV_MAGIC_US    0xa1b2c3d4u
#define SV_MAGIC_NS    0xa1b23c4du
#define SV_READ_BUF    (64 * 1024)
#define SV_PARTIAL_LEN (sizeof(PCAP_FILE_PARTIAL_SUFFIX) - 1)

static uint32_t sv_u32(const unsigned char *p, int swap)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}

/* Opens the directory part of rel under rootfd without making or following anything; *name
 * points into rel at the last segment. */
static int sv_open_dir(int rootfd, const char *rel, const char **name)
{
    int cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
    const char *p = rel;
    for (const char *slash; cur >= 0 && (slash = strchr(p, '/')) != NULL; p = slash + 1) {
        char seg[PCAP_FILE_SEGMENT_MAX + 1];
        size_t n = (size_t)(slash - p);
        memcpy(seg, p, n); /* n fits: pcap_file_check_path passed */
        seg[n] = '\0';
        int next = openat(cur, seg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(cur);
        cur = next;
    }
    *name = p;
    return cur;
}

/* The scan's result: where the last whole record ends, and what the kept part holds. */
struct sv_scan {
    uint64_t keep, total;
    uint64_t packets, bytes;
    int64_t first_ms;
    unsigned char md[EVP_MAX_MD_SIZE];
};

/* Reads fd from the start. 0, -1 when the file header is not pcap, -2 on a read error or out of
 * memory. */
static int sv_scan(int fd, struct sv_scan *sc)
{
    memset(sc, 0, sizeof(*sc));
    unsigned char *buf = malloc(SV_CAPLEN_MAX);
    EVP_MD_CTX *sha = EVP_MD_CTX_new();
    int dfd = dup(fd);
    FILE *f = dfd >= 0 ? fdopen(dfd, "rb") : NULL;
    int rc = -2;
    if (!buf || !sha || !f || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1 ||
        setvbuf(f, NULL, _IOFBF, SV_READ_BUF) != 0) {
        if (!f && dfd >= 0)
            close(dfd);
        goto out;
    }
    unsigned char h[SV_HEADER];
    if (fread(h, 1, SV_HEADER, f) != SV_HEADER) {
        rc = ferror(f) ? -2 : -1;
        goto out;
    }
    uint32_t magic = sv_u32(h, 0);
    int swap = magic == __builtin_bswap32(SV_MAGIC_US) || magic == __builtin_bswap32(SV_MAGIC_NS);
    int nsec = magic == SV_MAGIC_NS || magic == __builtin_bswap32(SV_MAGIC_NS);
    if (!swap && magic != SV_MAGIC_US && magic != SV_MAGIC_NS) {
        rc = -1;
        goto out;
    }
    (void)EVP_DigestUpdate(sha, h, SV_HEADER);
    sc->keep = SV_HEADER;
    for (;;) {
        unsigned char r[SV_RECORD];
        size_t got = fread(r, 1, SV_RECORD, f);
        if (got != SV_RECORD)
            break;
        uint32_t caplen = sv_u32(r + 8, swap);
        if (caplen > SV_CAPLEN_MAX)
            break; /* garbage: what a crash left after the last record */
        if (fread(buf, 1, caplen, f) != caplen)
            break;
        (void)EVP_DigestUpdate(sha, r, SV_RECORD);
        (void)EVP_DigestUpdate(sha, buf, caplen);
        if (sc->packets == 0) {
            uint32_t sub = sv_u32(r + 4, swap);
            sc->first_ms = (int64_t)sv_u32(r, swap) * 1000 + (nsec ? sub / 1000000 : sub / 1000);
        }
        sc->packets++;
        sc->bytes += caplen;
        sc->keep += SV_RECORD + caplen;
    }
    if (ferror(f))
        goto out;
    unsigned mdlen = 0;
    if (EVP_DigestFinal_ex(sha, sc->md, &mdlen) != 1 || mdlen != 32)
        goto out;
    rc = 0;
out:
    if (f)
        fclose(f);
    EVP_MD_CTX_free(sha);
    free(buf);
    return rc;
}

static void sv_hex(const unsigned char *d, unsigned n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < n; i++) {
        out[2 * i] = hex[d[i] >> 4];
        out[2 * i + 1] = hex[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* rel with its last segment replaced by name (+ suffix). */
static void sv_sibling(const char *rel, const char *base, const char *name, const char *suffix,
                       char *out, size_t n)
{
    snprintf(out, n, "%.*s%s%s", (int)(base - rel), rel, name, suffix);
}

enum cp_err salvage_file(int rootfd, const char *rel, struct salvage_info *info, struct cp_error *e)
{
    enum cp_err err = pcap_file_check_path(rel, e);
    if (err != CP_OK)
        return err;
    const char *name = NULL;
    int dirfd = sv_open_dir(rootfd, rel, &name);
    if (dirfd < 0)
        return errno == ENOENT ? cp_fail(e, CP_ENOTFOUND, "", "", "no directory for %s", rel)
                               : cp_fail(e, CP_EIO, "", "", "cannot open the directory of %s: %s",
                                         rel, strerror(errno));
    char partial[PCAP_FILE_SEGMENT_MAX + 16];
    snprintf(partial, sizeof(partial), ".%s" PCAP_FILE_PARTIAL_SUFFIX, name);
    int is_partial = 1;
    int fd = openat(dirfd, partial, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        /* Completed just before the crash: the file is whole; only read it. */
        is_partial = 0;
        fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    }
    if (fd < 0) {
        int oerr = errno;
        close(dirfd);
        return oerr == ENOENT ? cp_fail(e, CP_ENOTFOUND, "", "", "no file for %s", rel)
                              : cp_fail(e, CP_EIO, "", "", "cannot open the file of %s: %s", rel,
                                        strerror(oerr));
    }
    struct sv_scan sc;
    struct stat st;
    int scan = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? sv_scan(fd, &sc) : -1;
    memset(info, 0, sizeof(*info));
    if (scan == -2) {
        err = cp_fail(e, CP_EIO, "", "", "cannot read %s: %s", rel, strerror(errno));
    } else if (scan == -1) {
        char aside[PCAP_FILE_SEGMENT_MAX + 32];
        snprintf(aside, sizeof(aside), "%s" SALVAGE_SUFFIX_UNREADABLE, name);
        int moved = is_partial && renameat2(dirfd, partial, dirfd, aside, RENAME_NOREPLACE) == 0;
        if (moved)
            (void)fsync(dirfd);
        log_warnx("event=capture_file_unreadable file=\"%s\" partial=%s set_aside=\"%s\"", rel,
                  is_partial ? "yes" : "no", moved ? aside : "-");
        err = cp_fail(e, CP_EINVAL, "", "", "%s is not a pcap file", rel);
    } else if (is_partial &&
               ((sc.keep < (uint64_t)st.st_size && ftruncate(fd, (off_t)sc.keep) != 0) ||
                fsync(fd) != 0)) {
        err = cp_fail(e, CP_EIO, "", "", "cannot cut %s: %s", rel, strerror(errno));
    } else if (is_partial) {
        const char *final = name;
        char alt[PCAP_FILE_SEGMENT_MAX + 32];
        int r = renameat2(dirfd, partial, dirfd, name, RENAME_NOREPLACE);
        if (r != 0 && errno == EEXIST) {
            snprintf(alt, sizeof(alt), "%s" SALVAGE_SUFFIX_EXISTS, name);
            final = alt;
            r = renameat2(dirfd, partial, dirfd, alt, RENAME_NOREPLACE);
        }
        if (r != 0) {
            err = cp_fail(e, CP_EIO, "", "", "cannot rename the partial file of %s: %s", rel,
                          strerror(errno));
        } else {
            (void)fsync(dirfd);
            sv_sibling(rel, name, final, "", info->path, sizeof(info->path));
        }
    } else {
        snprintf(info->path, sizeof(info->path), "%s", rel);
    }
    if (err == CP_OK) {
        info->size = sc.keep;
        info->packets = sc.packets;
        info->bytes = sc.bytes;
        info->cut = is_partial ? (uint64_t)st.st_size - sc.keep : 0;
        info->first_packet_ms = sc.first_ms;
        sv_hex(sc.md, 32, info->sha256);
        log_info("event=capture_file_salvaged file=\"%s\" from_partial=%s packets=%llu "
                 "bytes=%llu cut=%llu",
                 info->path, is_partial ? "yes" : "no", (unsigned long long)info->packets,
                 (unsigned long long)info->size, (unsigned long long)info->cut);
    }
    close(fd);
    close(dirfd);
    return err;
}

/* ---- the sweep --------------------------------------------------------------------------- */

struct sv_sweep {
    int rootfd;
    unsigned found;
    unsigned long entries;
};

/* dirfd (taken) is the directory at prefix (relative to the root, "" or ending in '/'). */
static void sv_walk(struct sv_sweep *sw, int dirfd, const char *prefix, int depth)
{
    DIR *d = fdopendir(dirfd);
    if (!d) {
        close(dirfd);
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL && sw->entries < SALVAGE_MAX_ENTRIES) {
        sw->entries++;
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        char rel[CAPTURE_PATH_MAX_LEN + 2];
        size_t len = strlen(n);
        if (S_ISDIR(st.st_mode)) {
            if (depth + 1 >= SALVAGE_MAX_DEPTH ||
                snprintf(rel, sizeof(rel), "%s%s/", prefix, n) >= (int)sizeof(rel) - 1)
                continue;
            int sub = openat(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (sub >= 0)
                sv_walk(sw, sub, rel, depth + 1);
            continue;
        }
        if (!S_ISREG(st.st_mode) || n[0] != '.' || len <= 1 + SV_PARTIAL_LEN ||
            strcmp(n + len - SV_PARTIAL_LEN, PCAP_FILE_PARTIAL_SUFFIX) != 0)
            continue;
        /* ".<name>.partial" -> <name> */
        if (snprintf(rel, sizeof(rel), "%s%.*s", prefix, (int)(len - 1 - SV_PARTIAL_LEN), n + 1) >=
            (int)sizeof(rel))
            continue;
        sw->found++;
        struct salvage_info info;
        struct cp_error e = {{0}, {0}, {0}};
        log_warnx("event=capture_file_stray partial=\"%s%s\" hint=\"no session owns it: "
                  "salvaged, not reported\"",
                  prefix, n);
        if (salvage_file(sw->rootfd, rel, &info, &e) != CP_OK)
            log_warnx("event=capture_file_not_salvaged file=\"%s\" detail=\"%s\"", rel, e.message);
    }
    closedir(d);
}

unsigned salvage_sweep(int rootfd)
{
    struct sv_sweep sw = {.rootfd = rootfd};
    int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
    if (fd >= 0)
        sv_walk(&sw, fd, "", 0);
    return sw.found;
}
