/*
 * azurite.h - runs Azurite's blob service (the Azure Storage emulator, tests/azurite, pinned by
 * npm) for the storage tests: one emulator per test binary, on 127.0.0.1.
 *
 * Owns: a private temp dir (the emulator's workspace and its log), the node child process
 * (fork/exec, killed with the test through PR_SET_PDEATHSIG), and the port it listens on. A
 * restart on the same port and workspace keeps the blobs and the staged blocks, like a storage
 * account that was unreachable for a while.
 *
 * The emulator's access log (one line per request: method, path and query, status) is its
 * stdout, kept in dir/azurite.log; nw_azurite_count counts lines in it, so a test can see what
 * a client really sent without trusting the client.
 *
 * The account is Azurite's documented development account (devstoreaccount1 and its published
 * key): fine for tests, never a secret.
 *
 * Threading: one thread drives one struct nw_azurite.
 */
#ifndef NW_TESTS_AZURITE_H
#define NW_TESTS_AZURITE_H

#include <stddef.h>
#include <sys/types.h>

#define NW_AZURITE_ACCOUNT "devstoreaccount1"
#define NW_AZURITE_KEY                                                                             \
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

/* Seconds the emulator gets to listen, and to exit after SIGTERM. */
#define NW_AZURITE_READY_TIMEOUT_S 30
#define NW_AZURITE_STOP_TIMEOUT_S  10

struct nw_azurite {
    char node[1024];      /* the node executable */
    char main_js[1024];   /* azurite's blob entry point (dist/src/blob/main.js) */
    char dir[512];        /* private temp dir, removed by nw_azurite_cleanup */
    char workspace[1024]; /* dir/workspace: --location */
    char log_file[1024];  /* dir/azurite.log: the child's stdout and stderr */
    char endpoint[128];   /* "http://127.0.0.1:PORT/devstoreaccount1" while running */
    char base_url[64];    /* "http://127.0.0.1:PORT" while running */
    int port;             /* kept after a stop, so a restart can reuse it */
    pid_t pid;            /* 0 when not running */
};

/* Makes the temp dir and checks that node and main_js exist (main_js missing: the message
 * says to run `make node-deps`). Returns 0 or -1 (message on stderr). */
int nw_azurite_init(struct nw_azurite *a, const char *node, const char *main_js);

/* Starts the emulator on port (0: any free port, read back from its "listens on" line) and
 * waits up to NW_AZURITE_READY_TIMEOUT_S for it. Returns 0 or -1 (log printed on failure). */
int nw_azurite_start(struct nw_azurite *a, int port);

/* SIGTERM and wait (SIGKILL after NW_AZURITE_STOP_TIMEOUT_S). Returns 0 or -1. */
int nw_azurite_stop(struct nw_azurite *a);

/* SIGKILL and reap: the emulator vanishes mid-request. Returns 0 or -1. */
int nw_azurite_kill(struct nw_azurite *a);

/* Kills a running emulator and removes the temp dir (kept when $NW_KEEP_TMP is set). */
void nw_azurite_cleanup(struct nw_azurite *a);

/* Lines of the access log containing every one of the NULL-terminated needles; -1 when the
 * log cannot be read. */
long nw_azurite_count(const struct nw_azurite *a, const char *const *needles);

/* Prints the last max_bytes of the emulator's log to stderr. */
void nw_azurite_dump_log(const struct nw_azurite *a, size_t max_bytes);

#endif
