/*
 * agent_proc.c - the real netwatch-agent as a test's child process (see agent_proc.h).
 */
#include "tests/integration/agent_proc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define API_VERSION "2024-07-01"

int nw_run(char *const argv[], const char *log, char *out, size_t outsz)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        int lfd = log ? open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600) : -1;
        dup2(fds[1], STDOUT_FILENO);
        if (lfd >= 0)
            dup2(lfd, STDERR_FILENO);
        close(fds[0]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    char sink[256];
    for (;;) {
        /* Read to EOF even past outsz, so the child never blocks on a full pipe. */
        int keep = out && n + 1 < outsz;
        ssize_t r = keep ? read(fds[0], out + n, outsz - 1 - n) : read(fds[0], sink, sizeof(sink));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (keep)
            n += (size_t)r;
    }
    close(fds[0]);
    if (out && outsz) {
        out[n] = '\0';
        while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
            out[--n] = '\0';
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

int nw_agent_add(struct nw_server *s, const char *vm, char *id, size_t idsz)
{
    char rid[256], token[NW_TOKEN_MAX], path[NW_PATH_MAX + 64], log[NW_PATH_MAX + 16];
    snprintf(rid, sizeof(rid),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/%s",
             s->sub, vm);
    snprintf(log, sizeof(log), "%s/cli.log", s->dir);
    char *argv[] = {s->bin, "agent", "add", rid, "--db", s->db, NULL};
    if (!NW_CHECK(nw_run(argv, log, token, sizeof(token)) == 0 && token[0], "agent add %s failed",
                  vm))
        return -1;
    snprintf(path, sizeof(path), "%s/%s.token", s->dir, vm);
    FILE *f = fopen(path, "w");
    if (!NW_CHECK(f != NULL, "cannot write %s", path))
        return -1;
    fprintf(f, "%s\n", token);
    fclose(f);
    /* The id comes from the list (the CLI prints the token alone on stdout). */
    char list[8192];
    char *largv[] = {s->bin, "agent", "list", "--db", s->db, NULL};
    if (!NW_CHECK(nw_run(largv, log, list, sizeof(list)) == 0, "agent list failed"))
        return -1;
    char *save = NULL;
    for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strstr(line, rid)) {
            snprintf(id, idsz, "%.36s", line);
            return 0;
        }
    }
    NW_CHECK(0, "agent %s not in `agent list`", vm);
    return -1;
}

const char *nw_agent_root(const struct nw_server *s, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/captures", s->dir);
    mkdir(out, 0750); /* the capture root is the operator's to create */
    return out;
}

pid_t nw_agent_start(const struct nw_server *s, const char *agent_bin, const char *vm,
                     const char *interfaces)
{
    const char *const extra[] = {"--interfaces", interfaces, NULL};
    return nw_agent_start_argv(s, agent_bin, vm, interfaces ? extra : NULL);
}

pid_t nw_agent_start_argv(const struct nw_server *s, const char *agent_bin, const char *vm,
                          const char *const *extra)
{
    char token[NW_PATH_MAX + 64], state[NW_PATH_MAX + 64], root[NW_PATH_MAX + 16];
    char log[NW_PATH_MAX + 64];
    snprintf(token, sizeof(token), "%s/%s.token", s->dir, vm);
    snprintf(state, sizeof(state), "%s/%s.state", s->dir, vm);
    snprintf(log, sizeof(log), "%s/%s.agent.log", s->dir, vm);
    nw_agent_root(s, root, sizeof(root));
    const char *argv[9 + 16 + 1] = {agent_bin, "--server",    s->base_url, "--token-file",
                                    token,     "--state-dir", state,       "--capture-root",
                                    root};
    size_t n = 9;
    for (size_t i = 0; extra && extra[i]; i++) {
        if (!NW_CHECK(n + 1 < sizeof(argv) / sizeof(argv[0]), "too many agent options"))
            return -1;
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        /* No agent outlives a crashed or timed-out test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        signal(SIGPIPE, SIG_DFL);
        /* execv's argv is not const for history's sake; it does not write to it. */
        execv(agent_bin, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    NW_CHECK(pid > 0, "fork failed");
    return pid > 0 ? pid : -1;
}

int nw_agent_stop(pid_t pid)
{
    int status = 0;
    if (pid <= 0)
        return -1;
    kill(pid, SIGCONT);
    kill(pid, SIGTERM);
    long long end = nw_now_ms() + 5000;
    while (nw_now_ms() < end) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
        if (w < 0 && errno != EINTR)
            return -1;
        nw_sleep_ms(20);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

void nw_agent_kill(pid_t pid)
{
    int status;
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
}

int nw_agent_connected(const struct nw_server *s, const char *id)
{
    char t[512];
    snprintf(t, sizeof(t),
             "/subscriptions/%s/providers/Netwatch/agents/%s?api-version=" API_VERSION, s->sub, id);
    struct nw_response r;
    int c = -1;
    if (nw_server_request(s, "GET", t, NULL, NULL, &r) == 0 && r.status == 200)
        c = json_is_true(nw_json_get(r.json, "properties.connected"));
    nw_response_free(&r);
    return c;
}

int nw_agent_wait_connected(const struct nw_server *s, const char *id, int want, long timeout_ms)
{
    long long end = nw_now_ms() + timeout_ms;
    for (;;) {
        if (nw_agent_connected(s, id) == want)
            return 1;
        if (nw_now_ms() >= end)
            return 0;
        nw_sleep_ms(50);
    }
}

int nw_file_count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    if (!f)
        return 0;
    while (getline(&line, &cap, f) >= 0)
        n += strstr(line, needle) != NULL;
    free(line);
    fclose(f);
    return n;
}

int nw_file_wait_lines(const char *path, const char *needle, int n, long timeout_ms)
{
    long long end = nw_now_ms() + timeout_ms;
    for (;;) {
        if (nw_file_count_lines(path, needle) >= n)
            return 1;
        if (nw_now_ms() >= end)
            return 0;
        nw_sleep_ms(20);
    }
}

int nw_agent_log_count(const struct nw_server *s, const char *vm, const char *needle)
{
    char log[NW_PATH_MAX + 64];
    snprintf(log, sizeof(log), "%s/%s.agent.log", s->dir, vm);
    return nw_file_count_lines(log, needle);
}

int nw_agent_wait_log(const struct nw_server *s, const char *vm, const char *needle, int n,
                      long timeout_ms)
{
    char log[NW_PATH_MAX + 64];
    snprintf(log, sizeof(log), "%s/%s.agent.log", s->dir, vm);
    return nw_file_wait_lines(log, needle, n, timeout_ms);
}

void nw_agent_dump_logs(const struct nw_server *s, size_t max_bytes)
{
    static const char suffix[] = ".agent.log";
    const size_t sl = sizeof(suffix) - 1;
    DIR *d = opendir(s->dir);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name), len = 0;
        if (n < sl || strcmp(e->d_name + n - sl, suffix) != 0)
            continue;
        char path[NW_PATH_MAX + 300];
        snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
        char *text = nw_read_file(path, &len);
        if (text)
            fprintf(stderr, "----- %s (end) -----\n%s\n", path,
                    len > max_bytes ? text + len - max_bytes : text);
        free(text);
    }
    if (d)
        closedir(d);
}

int nw_agent_test_begin(int argc, char **argv, struct nw_server *s, const char **agent_bin)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s NETWATCHD NETWATCH_AGENT\n", argv[0]);
        return 2;
    }
    *agent_bin = argv[2];
    return nw_server_init(s, argv[1]) == 0 && nw_server_start(s) == 0 ? 0 : 1;
}

int nw_agent_test_end(struct nw_server *s, const char *name)
{
    if (nw_server_stop(s) != 0)
        NW_CHECK(0, "netwatchd did not stop cleanly");
    if (nw_failures) {
        nw_server_dump_log(s, 4000);
        nw_agent_dump_logs(s, 6000);
    }
    nw_server_cleanup(s);
    printf("%s %s: %d failure(s)\n", nw_failures ? "FAIL" : "ok", name, nw_failures);
    return nw_failures ? 1 : 0;
}
