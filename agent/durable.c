/* The durable small files behind agent/durable.h. */
#include "agent/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

#define DURABLE_PATH_MAX 4096

enum cp_err durable_mkdir(const char *dir, struct cp_error *e)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return cp_fail(e, CP_EIO, "", "state-dir", "cannot create %s: %s", dir, strerror(errno));
    struct stat st;
    if (lstat(dir, &st) != 0)
        return cp_fail(e, CP_EIO, "", "state-dir", "cannot stat %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return cp_fail(e, CP_EINVAL, "", "state-dir", "%s is not a directory", dir);
    /* A directory made under a loose umask, or by an older agent, is tightened. */
    if ((st.st_mode & 07777) != 0700 && chmod(dir, 0700) != 0)
        return cp_fail(e, CP_EIO, "", "state-dir", "cannot make %s private: %s", dir,
                       strerror(errno));
    return CP_OK;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void sync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd); /* a rename or unlink is durable once its directory is */
        close(dfd);
    }
}

enum cp_err durable_write(const char *dir, const char *name, const char *data, size_t len,
                          struct cp_error *e)
{
    char path[DURABLE_PATH_MAX], tmp[DURABLE_PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path) ||
        snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >= (int)sizeof(tmp))
        return cp_fail(e, CP_EINVAL, "", "state-dir", "state-dir: path too long");
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return cp_fail(e, CP_EIO, "", "state-dir", "cannot write %s: %s", tmp, strerror(errno));
    int ok = fchmod(fd, 0600) == 0 && write_all(fd, data, len) == 0 && fsync(fd) == 0;
    int saved = errno;
    ok &= close(fd) == 0;
    if (ok && rename(tmp, path) == 0) {
        sync_dir(dir);
        return CP_OK;
    }
    if (ok)
        saved = errno;
    unlink(tmp);
    return cp_fail(e, CP_EIO, "", "state-dir", "cannot write %s: %s", path, strerror(saved));
}

enum cp_err durable_read(const char *path, size_t max, char **out, size_t *len, struct cp_error *e)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return cp_fail(e, CP_ENOTFOUND, "", "state-dir", "%s is absent", path);
        return cp_fail(e, CP_EIO, "", "state-dir", "cannot read %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
        close(fd);
        return cp_fail(e, CP_ETOOBIG, "", "state-dir",
                       "%s is not a regular file of at most %zu bytes", path, max);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return cp_fail(e, CP_ENOMEM, "", "", "out of memory");
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != (size_t)st.st_size) {
        free(buf);
        return cp_fail(e, CP_EIO, "", "state-dir", "cannot read all of %s", path);
    }
    buf[got] = '\0';
    *out = buf;
    *len = got;
    return CP_OK;
}

enum cp_err durable_remove(const char *dir, const char *name, struct cp_error *e)
{
    char path[DURABLE_PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return cp_fail(e, CP_EINVAL, "", "state-dir", "state-dir: path too long");
    if (unlink(path) != 0 && errno != ENOENT)
        return cp_fail(e, CP_EIO, "", "state-dir", "cannot remove %s: %s", path, strerror(errno));
    sync_dir(dir);
    return CP_OK;
}

void durable_set_aside(const char *state_dir, const char *dir, const char *name, const char *tag,
                       const char *why)
{
    char from[DURABLE_PATH_MAX], cdir[DURABLE_PATH_MAX], to[DURABLE_PATH_MAX];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    struct cp_error e = {{0}, {0}, {0}};
    if (snprintf(from, sizeof(from), "%s/%s", dir, name) >= (int)sizeof(from) ||
        snprintf(cdir, sizeof(cdir), "%s/" DURABLE_CORRUPT_DIR, state_dir) >= (int)sizeof(cdir) ||
        snprintf(to, sizeof(to), "%s/%s-%s.%lld", cdir, tag, name, ms) >= (int)sizeof(to)) {
        log_warnx("event=state_file_ignored file=\"%s/%s\" reason=\"%s\" set_aside=no", dir, name,
                  why);
        return;
    }
    if (durable_mkdir(cdir, &e) != CP_OK || rename(from, to) != 0) {
        log_warnx("event=state_file_ignored file=\"%s\" reason=\"%s\" set_aside=no detail=\"%s\"",
                  from, why, e.message[0] ? e.message : strerror(errno));
        return;
    }
    sync_dir(dir);
    sync_dir(cdir);
    log_warnx("event=state_file_set_aside file=\"%s\" moved_to=\"%s\" reason=\"%s\"", from, to,
              why);
}
