/*
 * netwatch-agent configuration: one table of settings (name, type, default, environment
 * variable NETWATCH_AGENT_*, help), as server/config.c. Precedence: defaults < environment <
 * flags. Validated once at start-up and read-only afterwards.
 *
 * --server takes http://host:port (plain WebSocket) or https://host:port (wss: the server's
 * certificate is verified against the system store, or --ca-file alone, and its host name).
 *
 * --resource-id (a VM id, or a scale-set id with --instance-id) is checked at start-up the way
 * the server checks hello.identity, so a typo stops the agent here instead of at every hello.
 */
#ifndef NW_AGENT_CONFIG_H
#define NW_AGENT_CONFIG_H

#include <stdio.h>

#include "common/err.h"

#define AGENT_PATH_MAX         1024
#define AGENT_HOST_MAX         256
#define AGENT_RESOURCE_ID_SIZE 513 /* an ARM id, at most PROTO_RESOURCE_ID_MAX characters */
#define AGENT_INSTANCE_ID_SIZE 81  /* a scale-set instance: an ARM resource name */
#define AGENT_USER_SIZE        65  /* a user name (useradd allows 32 characters) */

struct agent_config {
    char server[512];                  /* http(s)://host:port of netwatchd */
    char token_file[AGENT_PATH_MAX];   /* file holding this agent's bearer token */
    char state_dir[AGENT_PATH_MAX];    /* the agent's own state (report sequence numbers) */
    char capture_root[AGENT_PATH_MAX]; /* capture files only under here */
    char ca_file[AGENT_PATH_MAX];      /* https: PEM CAs trusted instead of the system's; "" */
    char interfaces[1024];             /* "eth0,eth1": capture on these; "" = engine's default */
    /* The machine this agent runs on, checked by the server against the token's registration
     * (hello.identity); "" = not stated. instance_id only with a scale-set resource_id. */
    char resource_id[AGENT_RESOURCE_ID_SIZE];
    char instance_id[AGENT_INSTANCE_ID_SIZE];
    char user[AGENT_USER_SIZE]; /* run as this user once started as root; "" = keep the uid */
    char log_level[16];         /* debug | info | warn | error */
    long progress_interval;     /* seconds between progress reports; 0 = none */
    long upload_block_size;     /* bytes per Put Block of blob uploads (docs/storage.md) */
    int help;
    /* Derived from server by agent_config_load. */
    char host[AGENT_HOST_MAX]; /* name or address, without IPv6 brackets */
    unsigned port;
    int tls; /* 1 for https:// */
};

/* Fills c from defaults, the environment, then argv[first..argc). Errors name the setting. */
enum cp_err agent_config_load(struct agent_config *c, int argc, char **argv, int first,
                              struct cp_error *e) CP_MUST_USE;
void agent_config_usage(FILE *out);

/* Splits "http://host:port[/]" or "https://host:port[/]" ("[v6]" allowed) into host, port
 * (default 80 or 443) and tls (0 or 1). CP_EINVAL with e filled for anything else. */
enum cp_err agent_parse_server_url(const char *url, char *host, size_t hostsz, unsigned *port,
                                   int *tls, struct cp_error *e) CP_MUST_USE;

/* Reads the agent token: the file's first line, blanks trimmed, at most out_size - 1 bytes.
 * Never logs the token. CP_EIO (unreadable), CP_EINVAL (empty or too long). */
enum cp_err agent_read_token(const char *path, char *out, size_t out_size,
                             struct cp_error *e) CP_MUST_USE;

#endif
