/*
 * bench_capture_expr: the pcap expression netwatch-agent captures with for one
 * PacketCaptureFilter, built the way the agent builds it (agent/spec.c): bpf_filter_spec_parse,
 * this network namespace's addresses from capture_local_addrs, bpf_expr_build. bench/capture
 * gives the same expression to tcpdump, so both capture exactly the same packets.
 *
 * Usage: bench_capture_expr PROTOCOL LOCAL_IP REMOTE_IP LOCAL_PORT REMOTE_PORT
 *   each as in the API ("" = unset). Prints the expression and a newline; exit 1 if refused.
 */
#include <stdio.h>
#include <stdlib.h>

#include "agent/capture.h"
#include "common/bpf_expr.h"

int main(int argc, char **argv)
{
    if (argc != 6) {
        fprintf(stderr, "usage: bench_capture_expr PROTOCOL LOCAL_IP REMOTE_IP LOCAL_PORT "
                        "REMOTE_PORT\n");
        return 2;
    }
    static struct bpf_filter_spec spec;
    static struct nf_ip_set local;
    struct cp_error e;
    char *expr = NULL;
    if (bpf_filter_spec_parse(argv[1], argv[2], argv[3], argv[4], argv[5], 0, &spec, &e) != CP_OK ||
        capture_local_addrs(&local, &e) != CP_OK ||
        bpf_expr_build(&spec, 1, &local, &expr, &e) != CP_OK) {
        fprintf(stderr, "bench_capture_expr: %s: %s\n", e.code, e.message);
        return 1;
    }
    printf("%s\n", expr);
    free(expr);
    return 0;
}
