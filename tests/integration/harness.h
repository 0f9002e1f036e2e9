/*
 * harness.h - runs the real netwatchd for the integration and API tests.
 *
 * Owns: a private temp dir per server (db, token file, ready file, server log), the child
 * process (fork/exec, stopped with SIGTERM or SIGKILL, restarted on the same db), and one
 * libcurl request helper that returns status, headers and the body parsed as JSON.
 *
 * Every reply whose body is JSON is appended as one line
 *   {"method":"PUT","path":"/subscriptions/...","status":201,"body":{...}}
 * to the file named by $NW_REPLIES_LOG when it is set; tests/node/validate-replies.mjs checks
 * those lines against openapi.yaml. Lines are written with one write(2) on an O_APPEND fd, so
 * tests running in parallel (ctest -j) never interleave them.
 *
 * Threading: nw_harness_init() once from main before any thread; afterwards nw_http() and
 * nw_server_request() may be called from several threads at once (one curl handle per call).
 * The nw_server functions that start/stop the child are for one thread only.
 */
#ifndef NW_TESTS_HARNESS_H
#define NW_TESTS_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#define NW_PATH_MAX  1024
#define NW_TOKEN_MAX 512
#define NW_GUID_LEN  36

/* Seconds the server gets to write its ready file, and to exit after SIGTERM. */
#define NW_READY_TIMEOUT_S 10
#define NW_STOP_TIMEOUT_S  15

struct nw_header {
    char *name;  /* owned, as received */
    char *value; /* owned, leading/trailing blanks removed */
};

struct nw_response {
    long status;               /* HTTP status; 0 when the transfer failed */
    struct nw_header *headers; /* owned; headers of the final response only */
    size_t nheaders;
    char *body;      /* owned, NUL-terminated (never NULL after nw_http returns) */
    size_t body_len; /* bytes in body, excluding the NUL */
    json_t *json;    /* owned; body parsed as any JSON value, NULL when empty/not JSON */
    char error[256]; /* curl's message when status is 0 */
};

struct nw_request {
    const char *method;         /* "GET", "PUT", ... */
    const char *target;         /* path and query, e.g. "/subscriptions/..?api-version=.." */
    const char *const *headers; /* NULL-terminated "Name: value" list, borrowed; may be NULL */
    const char *body;           /* borrowed; NULL = no body (POST/PUT still send length 0) */
    size_t body_len;
    const char *token; /* bearer token to send; NULL = no Authorization header from us */
    long timeout_ms;   /* 0 = 20 s */
};

/* Once per process, before threads: curl_global_init, jansson hash seed, SIGPIPE ignored. */
void nw_harness_init(void);

/* Sends req to base_url ("http://127.0.0.1:PORT"). Fills *out (call nw_response_free).
 * Returns 0 when a response arrived, -1 on transport failure (out->error says why). */
int nw_http(const char *base_url, const struct nw_request *req, struct nw_response *out);

void nw_response_free(struct nw_response *r);

/* Header value by case-insensitive name (the last one if repeated); borrowed, NULL if absent. */
const char *nw_response_header(const struct nw_response *r, const char *name);

/* Fresh random GUID, lower case. out must hold NW_GUID_LEN + 1 bytes. */
void nw_guid(char *out);

/* Reads a whole file into a NUL-terminated heap buffer (caller frees). NULL on error. */
char *nw_read_file(const char *path, size_t *len);
/* Removes path and everything under it (symlinks not followed). 0, or -1 when something stayed. */
int nw_remove_tree(const char *path);

/* "https://host:1/a/b?x=y" -> "/a/b?x=y" (a pointer into url, borrowed); url itself when it
 * already starts with '/'; NULL when it is neither. */
const char *nw_url_target(const char *url);

/* Value at a dotted path ("properties.scope.include", array steps as numbers), borrowed;
 * NULL when a step is missing. nw_json_str: the same when it is a string, else NULL. */
json_t *nw_json_get(json_t *root, const char *dotted);
const char *nw_json_str(json_t *root, const char *dotted);

/* 1 when e is a weak etag W/"<guid>". */
int nw_is_weak_etag(const char *e);

/* 1 when s is a GUID (8-4-4-4-12 hex digits). */
int nw_is_guid(const char *s);

struct nw_server {
    char bin[NW_PATH_MAX];          /* netwatchd */
    char dir[NW_PATH_MAX / 2];      /* private temp dir, removed by nw_server_cleanup */
    char db[NW_PATH_MAX];           /* dir/netwatch.db */
    char token_file[NW_PATH_MAX];   /* dir/tokens */
    char ready_file[NW_PATH_MAX];   /* dir/ready */
    char log_file[NW_PATH_MAX];     /* dir/server.log: the child's stdout and stderr */
    char public_url[NW_PATH_MAX];   /* passed as --public-url when not empty */
    const char *log_level;          /* --log-level; default "info" */
    char sub[NW_GUID_LEN + 1];      /* subscription the default token may use */
    char othersub[NW_GUID_LEN + 1]; /* a subscription it may not use */
    char token[NW_TOKEN_MAX];       /* bearer token for sub */
    char base_url[64];              /* "http://127.0.0.1:PORT" while running */
    int port;
    pid_t pid;  /* 0 when not running */
    int starts; /* how many times nw_server_start succeeded */
};

/* Makes the temp dir, picks sub/othersub (random GUIDs) and adds the default token for sub.
 * bin is the netwatchd path. Returns 0 or -1 (message on stderr). */
int nw_server_init(struct nw_server *s, const char *bin);

/* Runs `netwatchd token add --token-file ... --subscriptions subs` and copies the printed token
 * into out (outsz bytes). subs is "GUID[,GUID...]" or "*". Returns 0 or -1. */
int nw_server_add_token(struct nw_server *s, const char *subs, char *out, size_t outsz);

/* Forks/execs the server on s->db and waits (<= NW_READY_TIMEOUT_S) for the port in the ready
 * file. Returns 0 or -1 (the server log is printed on failure). */
int nw_server_start(struct nw_server *s);

/* The same on 127.0.0.1:port (0: any free port; a restart passes the old one, which the
 * agents dial) with extra options after the usual flags (NULL-terminated, may be NULL). */
int nw_server_start_on(struct nw_server *s, int port, const char *const *extra);

/* Like nw_server_start with args (not including argv[0]; NULL-terminated) instead of the
 * usual flags, and env ("NAME=value", NULL-terminated, may be NULL) added to the child's
 * environment. The ready file must still be s->ready_file. */
int nw_server_start_argv(struct nw_server *s, const char *const *args, const char *const *env);

/* SIGTERM and wait. Returns 0 when the server exited with status 0 within NW_STOP_TIMEOUT_S,
 * -1 otherwise (then it is SIGKILLed and its log printed). */
int nw_server_stop(struct nw_server *s);

/* Same with another signal (SIGINT must also shut down cleanly). */
int nw_server_stop_signal(struct nw_server *s, int sig);

/* SIGKILL and reap, for crash tests. Returns 0 or -1. */
int nw_server_kill(struct nw_server *s);

/* Kills a running server and removes the temp dir (kept when $NW_KEEP_TMP is set). */
void nw_server_cleanup(struct nw_server *s);

/* Prints the last max_bytes of the server log to stderr. */
void nw_server_dump_log(const struct nw_server *s, size_t max_bytes);

/* Request with the default token (token == NULL) or the one given; body may be NULL. JSON
 * bodies get Content-Type: application/json. Returns as nw_http. */
int nw_server_request(const struct nw_server *s, const char *method, const char *target,
                      const char *body, const char *token, struct nw_response *out);

/* Polls an Azure-AsyncOperation URL (absolute or a path) until its status is terminal or
 * timeout_s passes. Returns the final status body (owned) or NULL. */
json_t *nw_server_wait_operation(const struct nw_server *s, const char *aao_url, int timeout_s);

/* Polls a Location URL until it answers something other than 202 (or timeout_s passes) and
 * returns that response in *out. Returns 0 or -1. */
int nw_server_wait_location(const struct nw_server *s, const char *location_url, int timeout_s,
                            struct nw_response *out);

/* Failure counting for the plain-C tests: prints "FAIL file:line: expr: message" and
 * returns 0. */
extern int nw_failures;
int nw_check_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Evaluates to 1 when cond holds, else reports and evaluates to 0. */
#define NW_CHECK(cond, ...) ((cond) ? 1 : nw_check_fail(__FILE__, __LINE__, #cond, __VA_ARGS__))

/* Milliseconds from a monotonic clock. */
long long nw_now_ms(void);
void nw_sleep_ms(long ms);

#endif
