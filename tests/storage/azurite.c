/*
 * azurite.c - starts and stops Azurite's blob service for the storage tests (see azurite.h).
 */
#define _XOPEN_SOURCE 700 /* nftw */
#include "tests/storage/azurite.h"

#include "tests/integration/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* What Azurite prints on stdout once its listening socket is bound. */
#define LISTENS_MARK "successfully listens on http://127.0.0.1:"

int nw_azurite_init(struct nw_azurite *a, const char *node, const char *main_js)
{
    const char *tmp = getenv("TMPDIR");

    memset(a, 0, sizeof(*a));
    if (access(node, X_OK) != 0) {
        fprintf(stderr, "azurite: node (%s) is not executable: %s\n", node, strerror(errno));
        return -1;
    }
    if (access(main_js, R_OK) != 0) {
        fprintf(stderr,
                "azurite: %s is missing (%s); run `make node-deps` (npm ci in tests/azurite)\n",
                main_js, strerror(errno));
        return -1;
    }
    snprintf(a->node, sizeof(a->node), "%s", node);
    snprintf(a->main_js, sizeof(a->main_js), "%s", main_js);
    snprintf(a->dir, sizeof(a->dir), "%s/nw-azurite.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(a->dir) == NULL) {
        fprintf(stderr, "azurite: mkdtemp: %s\n", strerror(errno));
        a->dir[0] = '\0';
        return -1;
    }
    snprintf(a->workspace, sizeof(a->workspace), "%s/workspace", a->dir);
    snprintf(a->log_file, sizeof(a->log_file), "%s/azurite.log", a->dir);
    if (mkdir(a->workspace, 0700) != 0) {
        fprintf(stderr, "azurite: mkdir %s: %s\n", a->workspace, strerror(errno));
        return -1;
    }
    return 0;
}

/* The port of the last "listens on" line written after offset, or 0. */
static int listening_port(const struct nw_azurite *a, size_t offset)
{
    size_t len = 0;
    char *log = nw_read_file(a->log_file, &len);
    int port = 0;

    if (log == NULL)
        return 0;
    for (char *p = log + (offset < len ? offset : len); (p = strstr(p, LISTENS_MARK)) != NULL;) {
        p += strlen(LISTENS_MARK);
        char *end = NULL;
        long v = strtol(p, &end, 10);
        if (end != p && v > 0 && v < 65536)
            port = (int)v;
    }
    free(log);
    return port;
}

int nw_azurite_start(struct nw_azurite *a, int port)
{
    char port_arg[16];
    struct stat st;
    size_t offset = 0;
    pid_t parent = getpid();
    long long deadline;
    int fd;

    if (a->pid != 0) {
        fprintf(stderr, "azurite: already running\n");
        return -1;
    }
    /* A restart appends to the same log; only a "listens" line after this offset counts. */
    if (stat(a->log_file, &st) == 0)
        offset = (size_t)st.st_size;
    snprintf(port_arg, sizeof(port_arg), "%d", port);
    fd = open(a->log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
        fprintf(stderr, "azurite: open %s: %s\n", a->log_file, strerror(errno));
        return -1;
    }
    a->pid = fork();
    if (a->pid < 0) {
        a->pid = 0;
        close(fd);
        return -1;
    }
    if (a->pid == 0) {
        /* No emulator outlives a crashed or timed-out test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        /* Telemetry off: the emulator would otherwise try to reach the internet. No --silent:
         * the access log is what nw_azurite_count reads. */
        execl(a->node, a->node, a->main_js, "--blobHost", "127.0.0.1", "--blobPort", port_arg,
              "--location", a->workspace, "--disableTelemetry", (char *)NULL);
        _exit(127);
    }
    close(fd);

    deadline = nw_now_ms() + NW_AZURITE_READY_TIMEOUT_S * 1000LL;
    while (nw_now_ms() < deadline) {
        int status;
        if (waitpid(a->pid, &status, WNOHANG) == a->pid) {
            fprintf(stderr, "azurite: exited before listening (status %d)\n", status);
            a->pid = 0;
            nw_azurite_dump_log(a, 4096);
            return -1;
        }
        int got = listening_port(a, offset);
        if (got > 0) {
            a->port = got;
            snprintf(a->base_url, sizeof(a->base_url), "http://127.0.0.1:%d", got);
            snprintf(a->endpoint, sizeof(a->endpoint), "%s/%s", a->base_url, NW_AZURITE_ACCOUNT);
            return 0;
        }
        nw_sleep_ms(20);
    }
    fprintf(stderr, "azurite: not listening within %d s\n", NW_AZURITE_READY_TIMEOUT_S);
    nw_azurite_kill(a);
    nw_azurite_dump_log(a, 4096);
    return -1;
}

static int reap(struct nw_azurite *a, long timeout_ms)
{
    long long deadline = nw_now_ms() + timeout_ms;
    int status;

    for (;;) {
        pid_t w = waitpid(a->pid, &status, WNOHANG);
        if (w == a->pid) {
            a->pid = 0;
            return 0;
        }
        if (w < 0 && errno != EINTR)
            return -1;
        if (nw_now_ms() >= deadline)
            return -1;
        nw_sleep_ms(10);
    }
}

int nw_azurite_stop(struct nw_azurite *a)
{
    if (a->pid == 0)
        return 0;
    kill(a->pid, SIGTERM);
    if (reap(a, NW_AZURITE_STOP_TIMEOUT_S * 1000L) == 0)
        return 0;
    fprintf(stderr, "azurite: ignored SIGTERM for %d s; killing it\n", NW_AZURITE_STOP_TIMEOUT_S);
    nw_azurite_kill(a);
    return -1;
}

int nw_azurite_kill(struct nw_azurite *a)
{
    if (a->pid == 0)
        return 0;
    kill(a->pid, SIGKILL);
    return reap(a, 10000);
}

void nw_azurite_cleanup(struct nw_azurite *a)
{
    const char *keep = getenv("NW_KEEP_TMP");

    nw_azurite_kill(a);
    if (a->dir[0] == '\0')
        return;
    if (keep && *keep)
        fprintf(stderr, "azurite: keeping %s\n", a->dir);
    else if (nw_remove_tree(a->dir) != 0)
        fprintf(stderr, "azurite: could not remove %s\n", a->dir);
    a->dir[0] = '\0';
}

long nw_azurite_count(const struct nw_azurite *a, const char *const *needles)
{
    char *log = nw_read_file(a->log_file, NULL);
    long count = 0;

    if (log == NULL)
        return -1;
    for (char *line = log; *line;) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        int all = 1;
        for (size_t i = 0; needles[i] && all; i++)
            all = strstr(line, needles[i]) != NULL;
        count += all;
        if (nl == NULL)
            break;
        line = nl + 1;
    }
    free(log);
    return count;
}

void nw_azurite_dump_log(const struct nw_azurite *a, size_t max_bytes)
{
    size_t len = 0;
    char *log = nw_read_file(a->log_file, &len);

    if (log == NULL)
        return;
    fprintf(stderr, "--- azurite log (last %zu bytes) ---\n%s\n---\n", max_bytes,
            len > max_bytes ? log + len - max_bytes : log);
    free(log);
}
