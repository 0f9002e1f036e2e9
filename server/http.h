/*
 * The HTTP front: libmicrohttpd daemon, request bodies (bounded), translation between MHD and
 * struct api_request/api_response, the server's own routes (/healthz, /metrics, and the agent
 * channel upgrade GET /agent/v1/channel, whose sockets go to the hub), the request log line and
 * metrics.
 */
#ifndef NW_SERVER_HTTP_H
#define NW_SERVER_HTTP_H

#include "api/api.h"
#include "common/err.h"
#include "server/hub.h"
#include "server/metrics.h"

struct http_server;

struct http_options {
    unsigned threads;
    unsigned max_connections;  /* connections other than agent channels (0: no check) */
    unsigned max_agents;       /* the hub's max_channels: MHD accepts max_connections + this */
    unsigned write_workers;    /* threads for requests that wait on a commit; 0 = inline */
    const char *tls_cert_pem;  /* PEM certificate chain; NULL = plain HTTP */
    const char *tls_key_pem;   /* PEM private key, with tls_cert_pem */
    const struct api_ctx *api; /* borrowed */
    struct metrics *metrics;   /* borrowed */
    struct hub *hub;           /* borrowed, started; NULL: /agent/v1/channel answers 404. Stop
                                * it (hub_stop) before http_stop, free it after. */
};

/* Binds and listens on "host:port" (port 0: any free port) without serving yet, so the caller
 * learns the port (http_port) before the first request. */
enum cp_err http_bind(const char *listen, struct http_server **out, struct cp_error *e) CP_MUST_USE;
/* Starts serving on the bound socket. */
enum cp_err http_serve(struct http_server *h, const struct http_options *opt,
                       struct cp_error *e) CP_MUST_USE;
/* The port actually bound (useful with port 0). */
unsigned http_port(struct http_server *h);
/* Stops accepting, lets in-flight requests finish (up to grace_ms), then stops. NULL: no-op. */
void http_stop(struct http_server *h, int grace_ms);

/* Splits "host:port" or "[v6]:port" into host and port. Returns 0 or -1. */
int http_parse_listen(const char *listen, char *host, size_t hostsz, unsigned *port);

#endif
