/*
 * bench_trivial_responder: the baseline that bench/api/run.sh measures netwatchd against.
 *
 * It answers every request, whatever the method or path, with 200 and one fixed JSON body about
 * the size of a packet capture resource. It does nothing else, so its rate is what libmicrohttpd
 * and the loopback stack can do on this machine: the ceiling netwatchd's GET rate is compared to.
 *
 * Why the same threading model as netwatchd (internal polling thread, epoll, a pool of 2 workers
 * by default): the comparison is only fair when the transport is configured alike; the gap then
 * is the cost of netwatchd's routing, auth, store and JSON work.
 *
 * Usage: bench_trivial_responder PORT [--threads N] [--ready-file PATH]
 *   PORT          TCP port on 127.0.0.1; 0 picks a free one.
 *   --threads N   MHD_OPTION_THREAD_POOL_SIZE (1..64, default 2).
 *   --ready-file  once serving, write the bound port number (and a newline) to PATH.
 * Runs until SIGINT or SIGTERM; exits 0 then, 1 on a start-up error, 2 on a usage error.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <microhttpd.h>

#define TR_DEFAULT_THREADS 2
#define TR_MAX_THREADS     64

/*
 * A capture as GET .../packetCaptures/{name} would return it (about 600 bytes). Static, so
 * responses borrow it (MHD_RESPMEM_PERSISTENT) and no request allocates a body.
 */
static const char tr_body[] =
    "{\"name\":\"pc1\","
    "\"id\":\"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.Network/networkWatchers/nw/packetCaptures/pc1\","
    "\"etag\":\"W/\\\"8d7e2f4c-1b3a-4c5d-9e6f-7a8b9c0d1e2f\\\"\","
    "\"properties\":{\"provisioningState\":\"Failed\","
    "\"target\":\"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
    "Microsoft.Compute/virtualMachines/vm1\","
    "\"targetType\":\"AzureVM\",\"bytesToCapturePerPacket\":0,"
    "\"totalBytesPerSession\":1073741824,\"timeLimitInSeconds\":18000,"
    "\"storageLocation\":{\"filePath\":\"/var/captures/pc1.cap\",\"storagePath\":\"\"},"
    "\"filters\":[],\"scope\":{\"include\":[],\"exclude\":[]}}}";

/* Marks a request whose first handler call has been seen; its address is the only state. */
static int tr_seen;

/*
 * MHD calls this at least twice per request (see libmicrohttpd's minimal_example.c): once with
 * the headers, then once per body chunk, then once more with *upload_data_size == 0. The body of
 * a PUT or POST is discarded; the reply is queued on the last call.
 */
static enum MHD_Result tr_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;

    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;

    if (*req_cls == NULL) {
        *req_cls = &tr_seen;
        return MHD_YES;
    }
    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }

    resp = MHD_create_response_from_buffer(sizeof(tr_body) - 1, (void *)(uintptr_t)tr_body,
                                           MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                "application/json; charset=utf-8") != MHD_YES) {
        MHD_destroy_response(resp);
        return MHD_NO;
    }
    ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Parses a whole decimal string in [lo, hi] into *out; returns 0, or -1 leaving *out alone. */
static int tr_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Writes "PORT\n" to path through a temporary name, so a reader never sees a partial file. */
static int tr_write_ready(const char *path, unsigned port)
{
    char tmp[PATH_MAX];
    FILE *f = NULL;
    int n;

    n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return -1;
    f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    if (fprintf(f, "%u\n", port) < 0) {
        fclose(f);
        remove(tmp);
        return -1;
    }
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        remove(tmp);
        return -1;
    }
    return 0;
}

static void tr_usage(void)
{
    fprintf(stderr, "usage: bench_trivial_responder PORT [--threads N] [--ready-file PATH]\n");
}

int main(int argc, char **argv)
{
    struct MHD_Daemon *daemon = NULL;
    const union MHD_DaemonInfo *info;
    struct sockaddr_in addr;
    const char *ready_file = NULL;
    long port = -1;
    long threads = TR_DEFAULT_THREADS;
    sigset_t sigs;
    int sig = 0;
    int rc = 1;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            if (tr_parse_long(argv[++i], 1, TR_MAX_THREADS, &threads) != 0) {
                fprintf(stderr, "bench_trivial_responder: --threads wants 1..%d\n", TR_MAX_THREADS);
                return 2;
            }
        } else if (strcmp(argv[i], "--ready-file") == 0 && i + 1 < argc) {
            ready_file = argv[++i];
        } else if (port < 0 && tr_parse_long(argv[i], 0, 65535, &port) == 0) {
            continue;
        } else {
            tr_usage();
            return 2;
        }
    }
    if (port < 0) {
        tr_usage();
        return 2;
    }

    /*
     * Block the stop signals before MHD starts its threads, so they inherit the mask and only
     * sigwait() below ever sees SIGINT/SIGTERM. SIGPIPE is ignored: a client may hang up.
     */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &sigs, NULL) != 0) {
        fprintf(stderr, "bench_trivial_responder: pthread_sigmask failed\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    daemon = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
                              (uint16_t)port, NULL, NULL, tr_handler, NULL, MHD_OPTION_SOCK_ADDR,
                              (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE,
                              (unsigned int)threads, MHD_OPTION_END);
    if (daemon == NULL) {
        fprintf(stderr, "bench_trivial_responder: cannot listen on 127.0.0.1:%ld\n", port);
        goto cleanup;
    }

    info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0) {
        fprintf(stderr, "bench_trivial_responder: cannot read the bound port\n");
        goto cleanup;
    }
    if (ready_file != NULL && tr_write_ready(ready_file, info->port) != 0) {
        fprintf(stderr, "bench_trivial_responder: cannot write %s: %s\n", ready_file,
                strerror(errno));
        goto cleanup;
    }

    if (sigwait(&sigs, &sig) != 0) {
        fprintf(stderr, "bench_trivial_responder: sigwait failed\n");
        goto cleanup;
    }
    rc = 0;

cleanup:
    if (daemon != NULL)
        MHD_stop_daemon(daemon);
    return rc;
}
