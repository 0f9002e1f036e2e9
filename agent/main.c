/*
 * netwatch-agent: runs on each machine and keeps one channel to netwatchd (agent/channel.h).
 * Wires config, the token (read once, never logged), the state directory and the channel; runs
 * until SIGTERM/SIGINT, then closes the channel with 1000 and exits.
 *
 * Commands (start/stop) go to the dispatcher (agent/dispatch.h), which runs the captures.
 *
 * Privileges (agent/privilege.h): the token is read with the rights the agent was started with
 * (it may stay root's), then, before the state directory is touched and before any thread
 * exists, the agent becomes --user with only CAP_NET_RAW left, permitted but not effective.
 */
#include <curl/curl.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/channel.h"
#include "agent/config.h"
#include "agent/dispatch.h"
#include "agent/privilege.h"
#include "agent/state.h"
#include "common/log.h"

#define AGENT_TOKEN_MAX 512

/* Drops privileges (privilege_drop) and says what is left; 0, or -1 after logging why. */
static int drop_privileges(const struct agent_config *cfg)
{
    struct privilege_state ps;
    struct cp_error e = {{0}, {0}, {0}};
    if (privilege_drop(cfg->user, &ps, &e) != CP_OK) {
        log_error("event=privilege_drop_failed detail=\"%s\"", e.message);
        return -1;
    }
    log_info("event=privileges_dropped uid=%u gid=%u switched=%d capabilities=%s "
             "bounding_narrow=%d no_new_privs=1",
             (unsigned)ps.uid, (unsigned)ps.gid, ps.switched, ps.net_raw ? "cap_net_raw=p" : "none",
             ps.bound_narrow);
    if (ps.as_root)
        log_warnx("event=running_as_root detail=\"started as root without --user: uid 0 is kept "
                  "(without capabilities it still owns root's files); give --user\"");
    if (!ps.net_raw)
        log_warnx("event=no_net_raw detail=\"CAP_NET_RAW is not permitted: every capture will "
                  "fail CaptureFailed (start as root with --user, or grant CAP_NET_RAW)\"");
    if (!ps.bound_narrow)
        log_warnx("event=bounding_set_wide detail=\"the bounding set holds more than "
                  "CAP_NET_RAW (no CAP_SETPCAP to shrink it); no-new-privs is set\"");
    /* Checked at load with the start-up rights; it is read at each connect, with these. */
    if (cfg->ca_file[0] && access(cfg->ca_file, R_OK) != 0) {
        log_error("event=ca_file_unreadable path=\"%s\" detail=\"%s\"", cfg->ca_file,
                  strerror(errno));
        return -1;
    }
    /* The capture root may not exist yet (every start then fails LocalFileFailed), but one the
     * agent cannot write is an operator's mistake worth a line at start. */
    if (access(cfg->capture_root, F_OK) == 0 && access(cfg->capture_root, W_OK | X_OK) != 0)
        log_warnx("event=capture_root_unwritable path=\"%s\" uid=%u detail=\"%s\"",
                  cfg->capture_root, (unsigned)ps.uid, strerror(errno));
    return 0;
}

int main(int argc, char **argv)
{
    struct agent_config cfg;
    struct cp_error e = {{0}, {0}, {0}};
    if (agent_config_load(&cfg, argc, argv, 1, &e) != CP_OK) {
        fprintf(stderr, "netwatch-agent: %s\n", e.message);
        return 2;
    }
    if (cfg.help) {
        agent_config_usage(stdout);
        return 0;
    }
    enum log_level lvl = LOG_LEVEL_INFO;
    log_level_parse(cfg.log_level, &lvl);
    log_level = lvl;
    /* Whatever the agent writes is its own: capture files 0640, directories 0750 at most. */
    umask(027);

    /* Once, before any thread: the upload worker (agent/uploads.h) uses libcurl. */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        log_error("event=curl_init_failed");
        return 1;
    }
    char token[AGENT_TOKEN_MAX];
    if (agent_read_token(cfg.token_file, token, sizeof(token), &e) != CP_OK) {
        log_error("event=token_unusable detail=\"%s\"", e.message);
        return 1;
    }
    if (drop_privileges(&cfg) != 0) {
        memset(token, 0, sizeof(token));
        return 1;
    }
    struct agent_state state;
    if (agent_state_open(cfg.state_dir, &state, &e) != CP_OK) {
        log_error("event=state_unusable detail=\"%s\"", e.message);
        memset(token, 0, sizeof(token));
        return 1;
    }
    /* SIGTERM/SIGINT become a readable fd: the channel loop polls it and closes with 1000. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        log_warn("event=signalfd_failed");
        memset(token, 0, sizeof(token));
        return 1;
    }
    log_info("event=agent_starting version=%s server=%s:%u state_dir=\"%s\" capture_root=\"%s\" "
             "interfaces=\"%s\" progress_interval_s=%ld next_seq=%llu resource_id=\"%s\" "
             "instance_id=\"%s\"",
             AGENT_VERSION, cfg.host, cfg.port, cfg.state_dir, cfg.capture_root, cfg.interfaces,
             cfg.progress_interval, (unsigned long long)state.next_seq, cfg.resource_id,
             cfg.instance_id);

    struct dispatch *disp = NULL;
    struct dispatch_options dopt = {.capture_root = cfg.capture_root,
                                    .interfaces = cfg.interfaces,
                                    .state = &state,
                                    .progress_interval_s = (unsigned)cfg.progress_interval,
                                    .upload_block_size = (size_t)cfg.upload_block_size};
    if (dispatch_new(&dopt, &disp, &e) != CP_OK) {
        log_error("event=dispatch_unusable detail=\"%s\"", e.message);
        close(sfd);
        memset(token, 0, sizeof(token));
        return 1;
    }
    struct channel_handler handler;
    dispatch_handler(disp, &handler);
    struct channel_options o = {.host = cfg.host,
                                .port = cfg.port,
                                .tls = cfg.tls,
                                .ca_file = cfg.ca_file,
                                .token = token,
                                .state = &state,
                                .handler = &handler,
                                .stop_fd = sfd,
                                .resource_id = cfg.resource_id,
                                .instance_id = cfg.instance_id};
    enum cp_err err = channel_run(&o);
    struct signalfd_siginfo si;
    ssize_t r = read(sfd, &si, sizeof(si));
    log_info("event=agent_stopped signal=%d", r == (ssize_t)sizeof(si) ? (int)si.ssi_signo : 0);
    dispatch_free(disp); /* running captures end with their files complete */
    close(sfd);
    memset(token, 0, sizeof(token));
    curl_global_cleanup();
    return err == CP_OK ? 0 : 1;
}
