/*
 * netwatch-agent: runs on each machine and keeps one channel to netwatchd (agent/channel.h).
 * Wires config, the token (read once, never logged), the state directory and the channel; runs
 * until SIGTERM/SIGINT, then closes the channel with 1000 and exits.
 *
 * Commands (start/stop) go to the dispatcher (agent/dispatch.h), which runs the captures.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent/channel.h"
#include "agent/config.h"
#include "agent/dispatch.h"
#include "agent/state.h"
#include "common/log.h"

#define AGENT_TOKEN_MAX 512

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
