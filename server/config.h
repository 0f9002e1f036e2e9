/*
 * netwatchd configuration: one table of settings (name, type, default, bounds, environment
 * variable, help). Precedence: defaults < environment < flags. Validated once at start-up
 * and read-only afterwards.
 */
#ifndef NW_SERVER_CONFIG_H
#define NW_SERVER_CONFIG_H

#include <stdio.h>

#include "common/err.h"

#define CONFIG_PATH_MAX 1024

struct config {
    char listen[128];                 /* host:port; port 0 = any free port */
    char db[CONFIG_PATH_MAX];         /* SQLite database file */
    char public_url[512];             /* base of monitor URLs; "" = http://<listen address> */
    char log_level[16];               /* debug | info | warn | error */
    char token_file[CONFIG_PATH_MAX]; /* API bearer tokens (hashed) */
    char tls_cert[CONFIG_PATH_MAX];   /* PEM certificate (chain) file; "" = plain HTTP */
    char tls_key[CONFIG_PATH_MAX];    /* PEM private key file */
    char ready_file[CONFIG_PATH_MAX]; /* written with the bound port once serving; "" = none */
    long threads;                     /* HTTP worker threads */
    long write_workers;               /* threads for requests that wait on a commit */
    long max_connections;             /* concurrent HTTP connections of API clients */
    long max_agents;                  /* connected agents (the hub's channels) */
    long agent_heartbeat;             /* seconds between pings to agents */
    long dispatch_deadline_seconds;   /* an agent's time to ack a start */
    long backstop_grace;              /* seconds past a session's time limit before it is ended */
    long storage_grant_seconds;       /* lifetime of the SAS URLs agents upload with */
    int check_config;                 /* validate and exit */
    int help;
};

/* Fills c from defaults, the environment, then argv (argv[first..argc)). Errors name the
 * setting. */
enum cp_err config_load(struct config *c, int argc, char **argv, int first,
                        struct cp_error *e) CP_MUST_USE;
void config_usage(FILE *out);

#endif
