/*
 * cli.c - the netwatchd command line: --check-config, configuration from NETWATCH_* env vars,
 * SIGINT shutdown, --public-url in monitor URLs, and `token add` scoping.
 *
 *   it_cli NETWATCHD
 */
#include "tests/integration/harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define API "2024-07-01"

static struct nw_server srv;

#define WANT_STATUS(r, want, what)                                                                 \
    NW_CHECK((r)->status == (want), "%s: want %ld, got %ld: %.600s", (what), (long)(want),         \
             (r)->status, (r)->body ? (r)->body : "")

/* Runs netwatchd with args (NULL-terminated, without argv[0]) and returns its exit status
 * (-1 when it did not exit within 10 s or died of a signal). Output goes to the server log. */
static int run(const char *const *args)
{
    const char *argv[24];
    int argc = 0, status = 0, fd;
    pid_t pid;
    long long deadline = nw_now_ms() + 10000;

    argv[argc++] = srv.bin;
    for (size_t i = 0; args[i] && argc < 23; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;
    fd = open(srv.log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        unsetenv("NETWATCH_LISTEN");
        unsetenv("NETWATCH_DB");
        unsetenv("NETWATCH_TOKEN_FILE");
        unsetenv("NETWATCH_PUBLIC_URL");
        unsetenv("NETWATCH_LOG_LEVEL");
        execv(srv.bin, (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    if (fd >= 0)
        close(fd);
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        if (nw_now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return -1;
        }
        nw_sleep_ms(10);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void check_config(void)
{
    const char *ok[] = {"--check-config", "--listen",     "127.0.0.1:0", "--db",  srv.db,
                        "--token-file",   srv.token_file, "--log-level", "debug", NULL};
    const char *bad_level[] = {"--check-config", "--listen",     "127.0.0.1:0", "--db",   srv.db,
                               "--token-file",   srv.token_file, "--log-level", "chatty", NULL};
    const char *bad_listen[] = {"--check-config", "--listen",     "not-an-address", "--db",
                                srv.db,           "--token-file", srv.token_file,   NULL};
    const char *bad_port[] = {"--check-config", "--listen",     "127.0.0.1:99999", "--db",
                              srv.db,           "--token-file", srv.token_file,    NULL};
    const char *bad_flag[] = {"--check-config", "--no-such-flag", NULL};
    int rc;

    rc = run(ok);
    NW_CHECK(rc == 0, "--check-config with a valid configuration exited %d (want 0)", rc);
    NW_CHECK(access(srv.ready_file, F_OK) != 0, "--check-config wrote the ready file");
    rc = run(bad_level);
    NW_CHECK(rc > 0, "--check-config --log-level chatty exited %d (want non-zero)", rc);
    rc = run(bad_listen);
    NW_CHECK(rc > 0, "--check-config --listen not-an-address exited %d (want non-zero)", rc);
    rc = run(bad_port);
    NW_CHECK(rc > 0, "--check-config --listen 127.0.0.1:99999 exited %d (want non-zero)", rc);
    rc = run(bad_flag);
    NW_CHECK(rc > 0, "an unknown flag exited %d (want non-zero)", rc);
}

/* Serves from env vars alone (only the ready file is a flag) and stops on SIGINT. */
static void env_config_and_sigint(void)
{
    char e_listen[] = "NETWATCH_LISTEN=127.0.0.1:0";
    char e_db[NW_PATH_MAX + 16], e_tok[NW_PATH_MAX + 32], e_level[] = "NETWATCH_LOG_LEVEL=warn";
    const char *env[5];
    const char *args[] = {"--ready-file", srv.ready_file, NULL};
    struct nw_response r;
    char t[400];

    snprintf(e_db, sizeof(e_db), "NETWATCH_DB=%s", srv.db);
    snprintf(e_tok, sizeof(e_tok), "NETWATCH_TOKEN_FILE=%s", srv.token_file);
    env[0] = e_listen;
    env[1] = e_db;
    env[2] = e_tok;
    env[3] = e_level;
    env[4] = NULL;
    if (!NW_CHECK(nw_server_start_argv(&srv, args, env) == 0,
                  "netwatchd did not start from NETWATCH_* variables"))
        return;
    snprintf(t, sizeof(t),
             "/subscriptions/%s/providers/Microsoft.Network/networkWatchers?api-version=" API,
             srv.sub);
    if (nw_server_request(&srv, "GET", t, NULL, NULL, &r) == 0)
        WANT_STATUS(&r, 200, "list from an env-configured server");
    else
        NW_CHECK(0, "no reply from an env-configured server: %s", r.error);
    nw_response_free(&r);
    NW_CHECK(nw_server_stop_signal(&srv, SIGINT) == 0, "netwatchd did not exit 0 on SIGINT");
}

static void public_url_and_tokens(void)
{
    char sub2[NW_GUID_LEN + 1], two[NW_TOKEN_MAX], star[NW_TOKEN_MAX], subs[80];
    char t[600], body[600];
    struct nw_response r;

    nw_guid(sub2);
    snprintf(subs, sizeof(subs), "%s,%s", srv.sub, sub2);
    if (!NW_CHECK(nw_server_add_token(&srv, subs, two, sizeof(two)) == 0, "token add A,B") ||
        !NW_CHECK(nw_server_add_token(&srv, "*", star, sizeof(star)) == 0, "token add '*'"))
        return;
    NW_CHECK(strcmp(two, star) != 0 && strcmp(two, srv.token) != 0, "token add repeated a token");
    snprintf(srv.public_url, sizeof(srv.public_url), "https://nw.example.test");
    if (!NW_CHECK(nw_server_start(&srv) == 0, "netwatchd did not start with --public-url"))
        return;

    /* /healthz needs no token. */
    if (nw_server_request(&srv, "GET", "/healthz", NULL, "", &r) == 0)
        WANT_STATUS(&r, 200, "GET /healthz without a token");
    nw_response_free(&r);

    /* Monitor URLs start with the public URL. */
    snprintf(t, sizeof(t),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/"
             "nw1?api-version=" API,
             srv.sub);
    nw_server_request(&srv, "PUT", t, "{\"location\":\"westus\"}", NULL, &r);
    WANT_STATUS(&r, 201, "PUT watcher");
    nw_response_free(&r);
    snprintf(t, sizeof(t),
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Network/networkWatchers/"
             "nw1/packetCaptures/pc1?api-version=" API,
             srv.sub);
    snprintf(body, sizeof(body),
             "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/rg2/providers/"
             "Microsoft.Compute/virtualMachines/vm1\",\"storageLocation\":{\"filePath\":"
             "\"/var/captures/pc1.cap\"}}}",
             srv.sub);
    nw_server_request(&srv, "PUT", t, body, NULL, &r);
    if (WANT_STATUS(&r, 201, "PUT capture")) {
        char want[300];
        const char *aao = nw_response_header(&r, "Azure-AsyncOperation");
        snprintf(want, sizeof(want),
                 "https://nw.example.test/subscriptions/%s/providers/Microsoft.Network/locations/"
                 "westus/operations/",
                 srv.sub);
        NW_CHECK(aao && strncmp(aao, want, strlen(want)) == 0,
                 "Azure-AsyncOperation %s does not start with %s", aao ? aao : "absent", want);
    }
    nw_response_free(&r);

    /* Token scopes: A,B may use A and B only; '*' any subscription. */
    char other[NW_GUID_LEN + 1];
    nw_guid(other);
    const char *subs_to_try[] = {srv.sub, sub2, other};
    const long want_two[] = {200, 200, 403};
    for (size_t i = 0; i < 3; i++) {
        snprintf(t, sizeof(t),
                 "/subscriptions/%s/providers/Microsoft.Network/networkWatchers?api-version=" API,
                 subs_to_try[i]);
        nw_server_request(&srv, "GET", t, NULL, two, &r);
        NW_CHECK(r.status == want_two[i], "token A,B on subscription #%zu: %ld (want %ld)", i,
                 r.status, want_two[i]);
        nw_response_free(&r);
        nw_server_request(&srv, "GET", t, NULL, star, &r);
        NW_CHECK(r.status == 200, "token '*' on subscription #%zu: %ld (want 200)", i, r.status);
        nw_response_free(&r);
        nw_server_request(&srv, "GET", t, NULL, "not-a-token", &r);
        NW_CHECK(r.status == 401, "unknown token on subscription #%zu: %ld (want 401)", i,
                 r.status);
        nw_response_free(&r);
    }
    NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not exit 0 on SIGTERM");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s NETWATCHD\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    if (nw_server_init(&srv, argv[1]) != 0) {
        nw_server_cleanup(&srv);
        printf("FAIL cli: cannot prepare netwatchd\n");
        return 1;
    }
    check_config();
    env_config_and_sigint();
    public_url_and_tokens();
    if (nw_failures)
        nw_server_dump_log(&srv, 8000);
    nw_server_cleanup(&srv);
    printf("%s cli: %d failure(s)\n", nw_failures ? "FAIL" : "PASS", nw_failures);
    return nw_failures ? 1 : 0;
}
