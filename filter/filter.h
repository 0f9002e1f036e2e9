/*
 * The filter set as one BPF program: the check that netwatchd runs when a capture is created and
 * netwatch-agent runs on every handle it opens, so a filter set the agent cannot install is a
 * 400 at the API rather than a capture that fails (or silently filters in user space) later.
 *
 * Why a library of its own: compiling needs libpcap, and common/ is libc only (STYLE.md §2).
 * This folder sits beside common/ (filter -> common + libpcap); api/ and agent/ both link it.
 * The header names no libpcap type the API side would have to include: the agent passes its
 * pcap_t and struct bpf_program through their struct tags (struct pcap, struct bpf_program).
 *
 * What "fits" means (facts, measured with libpcap 1.10 on Linux 6.x):
 *   - The kernel attaches a classic BPF program of at most FILTER_MAX_INSNS (BPF_MAXINSNS,
 *     4096) instructions (SO_ATTACH_FILTER returns EINVAL past that). libpcap then does NOT
 *     fail: pcap_setfilter returns 0, prints "Warning: Kernel filter failed: Invalid argument"
 *     to stderr and filters every packet in user space after copying it out of the kernel.
 *     So the limit is checked here, before pcap_setfilter.
 *   - pcap_compile's time grows steeply with the number of port tests ("port N",
 *     "portrange a-b"): 256 of them take about 0.5 s, 512 about 1.5 to 3 s, 1024 about 10 s
 *     (one core). A create request must not hold a server thread for that long, so more than
 *     FILTER_MAX_PORT_TESTS port tests are refused before compiling, counted in the expression.
 *     Address tests are cheap (2,000 compile in about 0.1 s); the expression's own bound
 *     (BPF_EXPR_MAX) limits them.
 *   - The program size depends on the link type by a few instructions (DLT_RAW needs about 3
 *     more than DLT_EN10MB); the server compiles for Ethernet, the agent for its real handle.
 *
 * "This machine's addresses" (an unset localIPAddress) are known only to the agent. The server
 * builds the expression with FILTER_STANDIN_ADDRS instead: the shape of a typical Linux VM
 * (loopback, one IPv4 address, an IPv6 link-local and a global address), so every code path of
 * the builder runs. A machine with more addresses makes a bigger program; the agent then refuses
 * the start (CaptureFailed) with the same message this check would give.
 *
 * Threading: no global state; libpcap's compiler is reentrant since 1.8.
 */
#ifndef NW_FILTER_FILTER_H
#define NW_FILTER_FILTER_H

#include <stddef.h>

#include "common/bpf_expr.h"
#include "common/err.h"
#include "common/netfilter.h"

#define FILTER_MAX_INSNS      4096 /* BPF_MAXINSNS: the kernel's classic BPF limit */
#define FILTER_MAX_PORT_TESTS 256  /* "port"/"portrange" tests in one expression */
#define FILTER_STANDIN_ADDRS  "127.0.0.0/8;::1;192.0.2.1;fe80::1;2001:db8::1"
#define FILTER_CODE           "InvalidPropertyValue"
#define FILTER_TARGET         "properties.filters"

struct pcap;
struct bpf_program;

/*
 * Compiles expr (borrowed; "" or NULL = every packet, nothing compiled) on p (borrowed; a live
 * handle or a pcap_open_dead one) as the agent installs it: optimised, netmask unknown. On
 * success *prog holds the program (bf_len 0 for an empty expr) and the caller pcap_freecode()s
 * it; *prog is untouched on failure.
 * Errors (e filled, code FILTER_CODE, target FILTER_TARGET; nothing to free):
 *   CP_EINVAL  more than FILTER_MAX_PORT_TESTS port tests, pcap_compile refused expr (its
 *              message is quoted), or the program has more than FILTER_MAX_INSNS instructions.
 */
enum cp_err filter_compile(struct pcap *p, const char *expr, struct bpf_program *prog,
                           struct cp_error *e) CP_MUST_USE;

/* Port tests ("port N", "portrange a-b") in an expression bpf_expr_build wrote. */
size_t filter_port_tests(const char *expr);

/* The server's stand-in for this machine's addresses (FILTER_STANDIN_ADDRS) into *out. */
void filter_standin_addrs(struct nf_ip_set *out);

/*
 * The create-time check: builds the expression of filters[0..n) (borrowed) with the stand-in
 * addresses, exactly as the agent builds it, and compiles it for Ethernet with filter_compile.
 * *insns (may be NULL) gets the instruction count (0 = no program: every packet).
 * Errors: those of bpf_expr_build (CP_ETOOBIG is turned into CP_EINVAL, a request error) and of
 * filter_compile; CP_ENOMEM. e filled, target FILTER_TARGET.
 */
enum cp_err filter_check(const struct bpf_filter_spec *filters, size_t n, unsigned *insns,
                         struct cp_error *e) CP_MUST_USE;

#endif
