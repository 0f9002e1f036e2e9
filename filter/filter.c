/* The compile-and-check behind filter/filter.h. */
/* pcap.h uses the BSD u_int/u_char types, which glibc declares only under _DEFAULT_SOURCE. */
#define _DEFAULT_SOURCE
#include "filter/filter.h"

#include <linux/bpf_common.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

/* The kernel's limit (its UAPI header) and ours must agree. */
_Static_assert(FILTER_MAX_INSNS == BPF_MAXINSNS, "FILTER_MAX_INSNS is the kernel's BPF_MAXINSNS");

#define FILTER_SNAPLEN 262144 /* the agent's largest snap length; no effect on the program size */

size_t filter_port_tests(const char *expr)
{
    /* bpf_expr_build writes "port" only as the keyword of "port N" and "portrange a-b". */
    size_t n = 0;
    for (const char *s = expr; s && (s = strstr(s, "port")) != NULL; s += 4)
        n++;
    return n;
}

enum cp_err filter_compile(struct pcap *p, const char *expr, struct bpf_program *prog,
                           struct cp_error *e)
{
    if (!expr || !expr[0]) {
        memset(prog, 0, sizeof(*prog));
        return CP_OK;
    }
    size_t ports = filter_port_tests(expr);
    if (ports > FILTER_MAX_PORT_TESTS)
        return cp_fail(e, CP_EINVAL, FILTER_CODE, FILTER_TARGET,
                       "The filters need %zu port comparisons (both directions of every port "
                       "of every filter); at most %d are accepted, since compiling more takes "
                       "libpcap seconds. Use port ranges (a-b) or fewer filters.",
                       ports, FILTER_MAX_PORT_TESTS);
    struct bpf_program out;
    /* Optimised, as the agent installs it; the netmask matters only to "ip broadcast". */
    if (pcap_compile(p, &out, expr, 1, PCAP_NETMASK_UNKNOWN) != 0)
        return cp_fail(e, CP_EINVAL, FILTER_CODE, FILTER_TARGET,
                       "The filters do not compile to a BPF program: %s.", pcap_geterr(p));
    if (out.bf_len > FILTER_MAX_INSNS) {
        unsigned len = out.bf_len;
        pcap_freecode(&out);
        return cp_fail(e, CP_EINVAL, FILTER_CODE, FILTER_TARGET,
                       "The filters compile to %u BPF instructions; the kernel runs at most %d. "
                       "Use fewer filters, fewer list items or address and port ranges.",
                       len, FILTER_MAX_INSNS);
    }
    *prog = out;
    return CP_OK;
}

void filter_standin_addrs(struct nf_ip_set *out)
{
    /* A constant the unit tests parse too: it cannot fail. */
    if (nf_parse_ips(FILTER_STANDIN_ADDRS, out, NULL, NULL) != CP_OK)
        out->n = 0;
}

enum cp_err filter_check(const struct bpf_filter_spec *filters, size_t n, unsigned *insns,
                         struct cp_error *e)
{
    struct nf_ip_set *local = calloc(1, sizeof(*local)); /* ~2.3 KiB: off small stacks */
    char *expr = NULL;
    pcap_t *p = NULL;
    enum cp_err err;
    if (!local) {
        err = cp_fail(e, CP_ENOMEM, "InternalError", FILTER_TARGET, "Out of memory.");
        goto cleanup;
    }
    filter_standin_addrs(local);
    err = bpf_expr_build(filters, n, local, &expr, e);
    if (err == CP_ETOOBIG)
        err = CP_EINVAL; /* the message says why; for the API it is a bad request */
    if (err != CP_OK)
        goto cleanup;
    if (!(p = pcap_open_dead(DLT_EN10MB, FILTER_SNAPLEN))) {
        err = cp_fail(e, CP_ENOMEM, "InternalError", FILTER_TARGET, "Out of memory.");
        goto cleanup;
    }
    struct bpf_program prog;
    if ((err = filter_compile(p, expr, &prog, e)) != CP_OK)
        goto cleanup;
    if (insns)
        *insns = prog.bf_len;
    pcap_freecode(&prog);
cleanup:
    if (p)
        pcap_close(p);
    free(expr);
    free(local);
    return err;
}
