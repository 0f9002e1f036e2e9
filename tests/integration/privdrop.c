/*
 * privdrop.c - the real netwatch-agent gives up its privileges and still captures (issue 4,
 * docs/agent.md "Privileges"), read from the kernel's view of the process (/proc/PID/status):
 *
 *   (a) started as root with --user nobody (the token file stays root's 0600): every uid and
 *       gid is nobody's, no-new-privs is set, CAP_NET_RAW is the only permitted capability and
 *       the only one in the bounding set, nothing is effective, inheritable or ambient; a
 *       capture started after that drop opens on the loopback interface, holds the packets
 *       sent, and its file is nobody's, mode 0640; while it runs no thread has a capability
 *       effective (the raise around pcap_activate was lowered);
 *   (b) started as nobody the way systemd's AmbientCapabilities= does it (setpriv: ambient
 *       CAP_NET_RAW and, too much, CAP_NET_ADMIN; bounding set CAP_NET_RAW): the agent keeps
 *       CAP_NET_RAW permitted only, drops CAP_NET_ADMIN and the ambient set, and captures;
 *   (c) --user root and a user that does not exist are refused at start (exit 1, logged).
 *
 *   it_privdrop NETWATCHD NETWATCH_AGENT
 */
#include "tests/integration/agent_proc.h"
#include "tests/integration/captures.h"
#include "tests/integration/harness.h"
#include "tests/integration/pcap_count.h"
#include "tests/integration/traffic.h"

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define WAIT_MS     15000
#define NET_RAW_BIT 0x2000ULL /* 1 << CAP_NET_RAW (13) */

static struct nw_server srv;
static const char *agent_bin;
static char nw[NW_WATCHER_MAX], agent_id[64];
static uid_t nobody_uid;
static gid_t nobody_gid;

/* The value of "Key:" in /proc/<pid>[/task/<tid>]/status into out; 0, or -1 when absent. */
static int status_field(const char *status_path, const char *key, char *out, size_t outsz)
{
    FILE *f = fopen(status_path, "r");
    if (!f)
        return -1;
    char line[512];
    size_t klen = strlen(key);
    int rc = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            char *v = line + klen + 1;
            v += strspn(v, " \t");
            size_t n = strcspn(v, "\n");
            while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--; /* "Groups:" ends with a blank */
            v[n] = '\0';
            snprintf(out, outsz, "%s", v);
            rc = 0;
            break;
        }
    }
    fclose(f);
    return rc;
}

/* A capability set ("CapEff" ...) of a status file as a number; UINT64_MAX when unreadable. */
static uint64_t cap_set(const char *status_path, const char *key)
{
    char v[64];
    if (status_field(status_path, key, v, sizeof(v)) != 0)
        return UINT64_MAX;
    return strtoull(v, NULL, 16);
}

/* The process-wide checks of (a) and (b): what the drop must have left. */
static void check_dropped(pid_t pid, const char *what)
{
    char path[64], v[128], want[128];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", (unsigned)nobody_uid, (unsigned)nobody_uid,
             (unsigned)nobody_uid, (unsigned)nobody_uid);
    NW_CHECK(status_field(path, "Uid", v, sizeof(v)) == 0 && strcmp(v, want) == 0,
             "%s: Uid %s, want %s", what, v, want);
    snprintf(want, sizeof(want), "%u\t%u\t%u\t%u", (unsigned)nobody_gid, (unsigned)nobody_gid,
             (unsigned)nobody_gid, (unsigned)nobody_gid);
    NW_CHECK(status_field(path, "Gid", v, sizeof(v)) == 0 && strcmp(v, want) == 0,
             "%s: Gid %s, want %s", what, v, want);
    /* initgroups' list for nobody: its own group alone. */
    snprintf(want, sizeof(want), "%u", (unsigned)nobody_gid);
    NW_CHECK(status_field(path, "Groups", v, sizeof(v)) == 0 && strcmp(v, want) == 0,
             "%s: Groups '%s', want '%s'", what, v, want);
    NW_CHECK(status_field(path, "NoNewPrivs", v, sizeof(v)) == 0 && strcmp(v, "1") == 0,
             "%s: NoNewPrivs %s, want 1", what, v);
    uint64_t prm = cap_set(path, "CapPrm"), eff = cap_set(path, "CapEff");
    uint64_t inh = cap_set(path, "CapInh"), amb = cap_set(path, "CapAmb");
    uint64_t bnd = cap_set(path, "CapBnd");
    NW_CHECK(prm == NET_RAW_BIT, "%s: CapPrm %llx, want cap_net_raw only (2000)", what,
             (unsigned long long)prm);
    NW_CHECK(eff == 0 && inh == 0 && amb == 0, "%s: CapEff %llx CapInh %llx CapAmb %llx, want 0",
             what, (unsigned long long)eff, (unsigned long long)inh, (unsigned long long)amb);
    NW_CHECK(bnd == NET_RAW_BIT, "%s: CapBnd %llx, want cap_net_raw only (2000)", what,
             (unsigned long long)bnd);
}

/* No thread of pid has a capability effective. Returns the number of threads seen. */
static int check_threads_lowered(pid_t pid, const char *what)
{
    char dir[64];
    snprintf(dir, sizeof(dir), "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (!NW_CHECK(d != NULL, "%s: cannot list %s", what, dir))
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[64 + 2 * sizeof(de->d_name)];
        snprintf(path, sizeof(path), "%s/%s/status", dir, de->d_name);
        uint64_t eff = cap_set(path, "CapEff");
        if (eff == UINT64_MAX)
            continue; /* the thread ended meanwhile */
        n++;
        NW_CHECK(eff == 0, "%s: thread %s has CapEff %llx", what, de->d_name,
                 (unsigned long long)eff);
    }
    closedir(d);
    return n;
}

/* Runs capture `name` on vm1 to completion with n marked datagrams; checks its file. */
static void capture_once(pid_t agent, const char *name, int port, int n, const char *what)
{
    char extra[48];
    snprintf(extra, sizeof(extra), "\"timeLimitInSeconds\":60,");
    struct nw_created c;
    if (!NW_CHECK(nw_capture_put(&srv, nw, name, "vm1", port, extra, &c) == 0 &&
                      nw_operation_ends(&srv, c.aao, 15, "Succeeded", NULL, NULL),
                  "%s: the capture %s did not start after the drop", what, name))
        return;
    nw_sleep_ms(300);
    nw_send_udp(port, name, n);
    nw_sleep_ms(1200);
    /* The handle is open and its thread polls it: nothing is effective anywhere. */
    int threads = check_threads_lowered(agent, what);
    NW_CHECK(threads >= 2, "%s: %d thread(s), want the capture thread too", what, threads);

    char loc[700];
    if (!NW_CHECK(nw_capture_stop(&srv, nw, name, loc, sizeof(loc), NULL, 0) == 0 &&
                      nw_stop_done(&srv, loc, 20),
                  "%s: stopping %s failed", what, name))
        return;
    NW_CHECK(nw_capture_is(&srv, nw, name, "Stopped", "Manual"), "%s: %s did not end Stopped", what,
             name);
    char path[NW_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/captures/%s.cap", srv.dir, name);
    int got = nw_pcap_count(path, name);
    NW_CHECK(got == n, "%s: %s.cap holds %d of the %d packets", what, name, got, n);
    struct stat sb;
    if (NW_CHECK(stat(path, &sb) == 0, "%s: no %s", what, path))
        NW_CHECK(sb.st_uid == nobody_uid && (sb.st_mode & 07777) == 0640,
                 "%s: %s.cap is uid %u mode %o, want nobody's 0640", what, name,
                 (unsigned)sb.st_uid, (unsigned)(sb.st_mode & 07777));
}

/* Starts argv (argv[0] a path) with its output appended to vm1's agent log. */
static pid_t spawn(const char *const *argv)
{
    char log[NW_PATH_MAX + 64];
    snprintf(log, sizeof(log), "%s/vm1.agent.log", srv.dir);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    return pid;
}

/* The temp dir is root's 0700: nobody needs to pass through it to its state and captures. */
static int prepare_dirs(char *state, size_t statesz)
{
    char root[NW_PATH_MAX + 16];
    nw_agent_root(&srv, root, sizeof(root));
    snprintf(state, statesz, "%s/vm1.state", srv.dir);
    mkdir(state, 0700);
    return chmod(srv.dir, 0711) == 0 && chown(root, nobody_uid, nobody_gid) == 0 &&
                   chown(state, nobody_uid, nobody_gid) == 0
               ? 0
               : -1;
}

/* (a) root, --user nobody. */
static void root_with_user(void)
{
    static const char *const extra[] = {"--interfaces", "lo", "--user", "nobody", NULL};
    char token[NW_PATH_MAX + 64];
    snprintf(token, sizeof(token), "%s/vm1.token", srv.dir);
    struct stat sb;
    /* Read before the drop: nobody could not. */
    NW_CHECK(chmod(token, 0600) == 0 && stat(token, &sb) == 0 && sb.st_uid == 0,
             "cannot make the token file root's alone");
    pid_t agent = nw_agent_start_argv(&srv, agent_bin, "vm1", extra);
    if (!NW_CHECK(nw_agent_wait_connected(&srv, agent_id, 1, WAIT_MS) == 1,
                  "(a) the agent did not connect"))
        goto done;
    check_dropped(agent, "(a) root --user nobody");
    capture_once(agent, "pa", 23000 + (int)(getpid() % 20000), 6, "(a)");
    char seq[NW_PATH_MAX + 64];
    snprintf(seq, sizeof(seq), "%s/vm1.state/seq", srv.dir);
    NW_CHECK(stat(seq, &sb) == 0 && sb.st_uid == nobody_uid && (sb.st_mode & 07777) == 0600,
             "(a) the state file seq is not nobody's 0600");
done:
    NW_CHECK(nw_agent_stop(agent) == 0, "(a) the agent did not exit 0 on SIGTERM");
    nw_agent_wait_connected(&srv, agent_id, 0, WAIT_MS);
}

/* (b) nobody with ambient capabilities, as systemd starts the unit. */
static void ambient_as_systemd(void)
{
    char token[NW_PATH_MAX + 64], copy[NW_PATH_MAX + 64], state[NW_PATH_MAX + 64];
    char root[NW_PATH_MAX + 16];
    snprintf(token, sizeof(token), "%s/vm1.token", srv.dir);
    snprintf(copy, sizeof(copy), "%s/vm1.token.nobody", srv.dir); /* systemd: LoadCredential= */
    snprintf(state, sizeof(state), "%s/vm1.state", srv.dir);
    nw_agent_root(&srv, root, sizeof(root));
    char *cp[] = {"/bin/cp", token, copy, NULL};
    if (!NW_CHECK(nw_run(cp, NULL, NULL, 0) == 0 && chown(copy, nobody_uid, nobody_gid) == 0,
                  "(b) cannot hand the token to nobody"))
        return;
    /* nobody execs the binary itself here: from a copy in the temp dir, so that the test does
     * not depend on the checkout's path being open to other users (a clone under /root is not). */
    char bin[NW_PATH_MAX + 64];
    snprintf(bin, sizeof(bin), "%s/netwatch-agent", srv.dir);
    char *cpbin[] = {"/bin/cp", (char *)(uintptr_t)agent_bin, bin, NULL};
    if (!NW_CHECK(nw_run(cpbin, NULL, NULL, 0) == 0 && chmod(bin, 0755) == 0,
                  "(b) cannot copy the agent for nobody"))
        return;
    char reuid[32], regid[32];
    snprintf(reuid, sizeof(reuid), "--reuid=%u", (unsigned)nobody_uid);
    snprintf(regid, sizeof(regid), "--regid=%u", (unsigned)nobody_gid);
    const char *argv[] = {"/usr/bin/setpriv",
                          reuid,
                          regid,
                          "--clear-groups",
                          "--inh-caps=+net_raw,+net_admin",
                          "--ambient-caps=+net_raw,+net_admin",
                          "--bounding-set=-all,+net_raw,+net_admin",
                          "--",
                          bin,
                          "--server",
                          srv.base_url,
                          "--token-file",
                          copy,
                          "--state-dir",
                          state,
                          "--capture-root",
                          root,
                          "--interfaces",
                          "lo",
                          NULL};
    if (!NW_CHECK(access(argv[0], X_OK) == 0, "(b) %s is missing (util-linux)", argv[0]))
        return;
    pid_t agent = spawn(argv);
    if (!NW_CHECK(agent > 0 && nw_agent_wait_connected(&srv, agent_id, 1, WAIT_MS) == 1,
                  "(b) the agent did not connect"))
        goto done;
    /* The bounding set came with CAP_NET_ADMIN and the agent, without CAP_SETPCAP, cannot
     * shrink it: everything else must hold, and it says so. */
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)agent);
    uint64_t prm = cap_set(path, "CapPrm"), eff = cap_set(path, "CapEff");
    uint64_t amb = cap_set(path, "CapAmb"), inh = cap_set(path, "CapInh");
    NW_CHECK(prm == NET_RAW_BIT && eff == 0 && amb == 0 && inh == 0,
             "(b) CapPrm %llx CapEff %llx CapAmb %llx CapInh %llx, want 2000 0 0 0",
             (unsigned long long)prm, (unsigned long long)eff, (unsigned long long)amb,
             (unsigned long long)inh);
    NW_CHECK(nw_agent_log_count(&srv, "vm1", "event=bounding_set_wide") == 1,
             "(b) the wide bounding set was not reported");
    capture_once(agent, "pb", 24000 + (int)(getpid() % 20000), 4, "(b)");
done:
    NW_CHECK(nw_agent_stop(agent) == 0, "(b) the agent did not exit 0 on SIGTERM");
}

/* (c) users the agent must not become. */
static void refused_users(void)
{
    const char *users[] = {"root", "no-such-user-netwatch"};
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
        const char *const extra[] = {"--user", users[i], NULL};
        int before = nw_agent_log_count(&srv, "vm1", "event=privilege_drop_failed");
        pid_t agent = nw_agent_start_argv(&srv, agent_bin, "vm1", extra);
        int status = 0;
        long long end = nw_now_ms() + WAIT_MS;
        pid_t w = 0;
        while ((w = waitpid(agent, &status, WNOHANG)) == 0 && nw_now_ms() < end)
            nw_sleep_ms(20);
        if (!NW_CHECK(w == agent, "(c) --user %s: the agent is still running", users[i])) {
            nw_agent_kill(agent);
            continue;
        }
        NW_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1,
                 "(c) --user %s: exit status %d, want 1", users[i], status);
        NW_CHECK(nw_agent_log_count(&srv, "vm1", "event=privilege_drop_failed") == before + 1,
                 "(c) --user %s: no event=privilege_drop_failed", users[i]);
    }
}

int main(int argc, char **argv)
{
    int rc = nw_agent_test_begin(argc, argv, &srv, &agent_bin);
    if (rc != 0)
        return rc;
    struct passwd *pw = getpwnam("nobody");
    char state[NW_PATH_MAX + 64];
    int ok = NW_CHECK(geteuid() == 0, "this test starts the agent as root") &&
             NW_CHECK(pw != NULL, "no user nobody");
    if (ok) {
        nobody_uid = pw->pw_uid;
        nobody_gid = pw->pw_gid;
        ok = NW_CHECK(prepare_dirs(state, sizeof(state)) == 0, "cannot prepare the dirs") &&
             nw_agent_add(&srv, "vm1", agent_id, sizeof(agent_id)) == 0 &&
             nw_watcher_put(&srv, nw) == 0;
    }
    if (ok) {
        root_with_user();
        ambient_as_systemd();
        refused_users();
    }
    return nw_agent_test_end(&srv, "privdrop");
}
