/*
 * The capture engine: one packet-capture session on this machine, from opening libpcap to a
 * finished pcap file under the capture root.
 *
 * The caller maps the session's JSON spec (PacketCaptureParameters) to struct capture_params:
 * plain C values and one pcap filter expression (common/bpf_expr.h, with this machine's
 * addresses from capture_local_addrs()). capture_start opens everything synchronously, so a
 * refusal (CaptureFailed, LocalFileFailed) is known before the start is acknowledged, then runs
 * the capture loop on a thread of its own until a limit, a stop or an error ends it.
 *
 * Interfaces. Given a list, exactly those are opened; any failure fails the start. Without a
 * list the default set is every interface pcap_findalldevs(3PCAP) lists that
 *   - is up, and is a kernel network interface of this network namespace (if_nametoindex);
 *     pseudo-devices such as nflog, nfqueue, usbmon, dbus or bluetooth are not;
 *   - is not "any" (it would see every packet a second time) and not loopback: Azure captures
 *     what crosses the machine's NICs, and loopback would fill captures with local chatter;
 *     name "lo" explicitly to capture it;
 *   - virtual interfaces (bridges, veth, tun, VLANs) that are up ARE included: they are this
 *     machine's. A packet that crosses several of them (a container's veth, then the bridge,
 *     then the NIC) is written once per interface, as with tcpdump -i any.
 * The set is fixed at start: an interface added later is not captured. One pcap file has one link
 * type, so interfaces whose link type differs from the file's (the first interface's, Ethernet
 * preferred in the default set) are skipped with a warning in the default set and fail the start
 * in a given list (pcapng would lift this; not this issue). In the default set an interface that
 * fails later (removed, down) is dropped with a warning while others remain; in a given list it
 * ends the capture with CaptureFailed.
 * Handles are not promiscuous (the machine's own traffic is what a session asks for). They are
 * not in immediate mode: the kernel hands packets over in blocks (TPACKET_V3), when a block is
 * full or at most 250 ms after its first packet, which costs one wake-up per block instead of
 * one per packet and lets the CAPTURE_BUFFER_BYTES ring hold as many packets as fit in its bytes
 * (bench/capture/README.md has the figures). A manual or timed stop still writes every packet
 * the kernel received before it, and none it received after: the capture reads on until the
 * kernel has handed over the last block (at most about 300 ms, and only while packets are
 * pending). A byte limit, likewise, is seen up to 250 ms after the packet that reaches it.
 *
 * Limits. snaplen = bytesToCapturePerPacket (0 = whole packets, CAPTURE_SNAPLEN_MAX; larger
 * values are clamped to it). byte_limit = totalBytesPerSession counts the packet data written:
 * the sum of caplen of the packets in the file, NOT the 24-byte file header nor the 16-byte
 * record headers. The session stops (SessionBytesExceeded) when that sum reaches the limit or
 * when the next packet would take it past the limit; that packet is not written, so the sum never
 * exceeds the limit. time_limit_s = timeLimitInSeconds stops the session (TimeExceeded) that long
 * after capture_start returned. For both, 0 means no limit: how Azure's 0 maps is the caller's.
 *
 * Files. Without a ring: one standard pcap file (agent/pcap_file.h: created as
 * ".<name>.partial", mode 0640, renamed to its final name only when complete; no path out of the
 * root; never replacing a file). On an error the partial file is removed and no file is reported.
 *
 * Ring (continuous capture, capture_params.ring set; agent/capture_ring.h has the details): the
 * files are named after file_path with a sequence number and the UTC time the file was started,
 * "a/x.cap" -> "a/x_000001_20261126T131500Z.cap", "a/x_000002_...", each written and completed
 * like the single file above. A file's size on disk (the 24-byte file header and the 16-byte
 * record headers included) never passes ring->file_size, except a file whose single packet alone
 * is bigger: before a packet that would take the current file past the size, that file is
 * completed (flushed, fsynced, renamed, directory fsynced) and the next one started. At most
 * ring->file_count completed files are kept: when one more completes, the oldest is deleted. On
 * disk at any time: up to file_count completed files plus the one being written. The session's
 * duration is time_limit_s / time_limit_ms as for a single file; byte_limit, if set, counts every
 * file written. The start is refused (CP_EEXIST) when a file of the same ring name with a sequence
 * number >= first_seq already exists. On an error the file being written is removed, the
 * completed ones stay on disk and none is reported. capture_result.files lists the files kept,
 * oldest first (prior ones included).
 *
 * Threading: capture_start, capture_wait, capture_result and capture_free from the owning
 * thread; capture_stop, capture_progress and capture_done_fd from any thread.
 */
#ifndef NW_AGENT_CAPTURE_H
#define NW_AGENT_CAPTURE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/capture_path.h"
#include "common/err.h"
#include "common/netfilter.h"

#define CAPTURE_SNAPLEN_MAX    262144 /* libpcap's own maximum, and ours */
#define CAPTURE_MAX_INTERFACES 64
/* The kernel buffer of each interface: CAPTURE_BUFFER_TOTAL shared by the interfaces of a
 * capture, but never more than CAPTURE_BUFFER_BYTES nor less than CAPTURE_BUFFER_MIN (tcpdump's
 * default) each. Locked kernel memory, so bounded; bench/capture/README.md has the figures. */
#define CAPTURE_BUFFER_BYTES (8 * 1024 * 1024)
#define CAPTURE_BUFFER_MIN   (2 * 1024 * 1024)
#define CAPTURE_BUFFER_TOTAL (32 * 1024 * 1024)

/* A completed file: path relative to the root, size on disk, SHA-256 (hex). */
struct capture_file {
    char path[CAPTURE_PATH_MAX_LEN + 1];
    uint64_t size;
    char sha256[65];
};

/* Continuous capture (captureSettings), above. */
struct capture_ring {
    uint32_t file_count;              /* completed files kept, >= 1 */
    uint64_t file_size;               /* bytes per file on disk, headers included, >= 1 */
    uint32_t first_seq;               /* sequence number of the first file written; 0 = 1 */
    const struct capture_file *prior; /* files of this ring kept from before (a session resumed
                                         after a restart), oldest first; they count toward
                                         file_count and are deleted in turn. Borrowed. */
    size_t n_prior;
    /* Optional: called on the capture thread with each file of the ring as it is completed
     * (the last one too), before any older file is deleted, so a caller can keep a file the
     * ring will delete (blob uploads link it: agent/dispatch_upload.c). f is borrowed for the
     * call. */
    void (*on_file)(void *arg, const struct capture_file *f);
    void *on_file_arg;
};

struct capture_params {
    const char *root_dir;            /* capture root, e.g. CAPTURE_ROOT_LINUX; must exist */
    const char *file_path;           /* relative to root_dir: "pc1.cap", "a/b/pc1.cap"; a ring's
                                        base name */
    uint32_t snaplen;                /* bytesToCapturePerPacket; 0 = CAPTURE_SNAPLEN_MAX */
    uint64_t byte_limit;             /* totalBytesPerSession (sum of caplen); 0 = none */
    uint32_t time_limit_s;           /* timeLimitInSeconds; 0 = none */
    uint64_t time_limit_ms;          /* when not 0, the limit in ms instead (a resumed session's
                                        time left) */
    const char *const *interfaces;   /* names, or NULL for the default set */
    size_t n_interfaces;             /* entries in interfaces; 0 = the default set */
    const char *filter;              /* pcap expression; NULL or "" = every packet */
    const struct capture_ring *ring; /* NULL: one file; else continuous capture (borrowed) */
};

enum capture_stop_reason {
    CAPTURE_STOP_NONE = 0, /* still running, or ended by an error */
    CAPTURE_STOP_MANUAL,   /* capture_stop (or capture_free while running) */
    CAPTURE_STOP_TIME,     /* time_limit_s elapsed */
    CAPTURE_STOP_BYTES,    /* byte_limit reached */
};

enum capture_error {
    CAPTURE_ERR_NONE = 0,
    CAPTURE_ERR_CAPTURE_FAILED,    /* libpcap could not open, filter or read */
    CAPTURE_ERR_LOCAL_FILE_FAILED, /* the file could not be made, written or completed */
    CAPTURE_ERR_INTERNAL,          /* out of memory, thread or event fd failure */
};

struct capture_stats {
    uint64_t packets;        /* packets written to the file */
    uint64_t bytes;          /* sum of their caplen: what byte_limit counts */
    uint64_t received;       /* packets that passed the filter (pcap_stats ps_recv, all handles) */
    uint64_t drops;          /* lost in the kernel: ps_drop + ps_ifdrop, all handles */
    uint32_t files;          /* completed files kept (a ring's prior ones included) */
    int64_t first_packet_ms; /* epoch ms of the first packet written (its pcap time); 0 = none */
};

struct capture_result {
    enum capture_stop_reason reason;    /* set when error == CAPTURE_ERR_NONE */
    enum capture_error error;           /* CAPTURE_ERR_NONE when it stopped cleanly */
    char message[CP_ERROR_MESSAGE_MAX]; /* what failed, when error is set */
    struct capture_stats stats;
    struct timespec started, stopped; /* CLOCK_REALTIME: captureStartTime and the end */
    uint64_t duration_ms;             /* CLOCK_MONOTONIC, start to stop */
    const struct capture_file *files; /* n_files entries, owned by the capture */
    size_t n_files;
};

struct capture;

/*
 * Starts a session. p and everything it points to are borrowed for the call only.
 * On success *out is owned by the caller (capture_free) and the capture is running.
 * Errors (nothing left on disk but directories made; e filled, code an Azure PcError):
 *   CP_EINVAL   bad parameters, an unknown interface, a filter pcap cannot compile, a refused
 *               path ("CaptureFailed" or "LocalFileFailed");
 *   CP_EEXIST   the final file name already exists, or a ring file at or past first_seq
 *               ("LocalFileFailed");
 *   CP_EIO      libpcap or the file system failed ("CaptureFailed" / "LocalFileFailed");
 *   CP_ENOMEM   ("InternalError").
 */
enum cp_err capture_start(const struct capture_params *p, struct capture **out,
                          struct cp_error *e) CP_MUST_USE;

/* Asks the capture to stop (reason Manual unless it already ended). Returns at once; idempotent;
 * any thread. */
void capture_stop(struct capture *c);

/* Blocks until the capture has ended and its file is complete. Idempotent. */
void capture_wait(struct capture *c);

/* An fd that becomes readable (and stays so) once the capture has ended, for the caller's
 * poll/epoll loop; do not read or close it. Any thread. */
int capture_done_fd(const struct capture *c);

/* A snapshot of the counters while running (drops refresh about once a second). Any thread. */
void capture_progress(struct capture *c, struct capture_stats *out);

/* The outcome, valid after capture_wait until capture_free; NULL before. */
const struct capture_result *capture_result(const struct capture *c);

/* Stops (Manual) and waits if still running, then frees everything. NULL is a no-op. */
void capture_free(struct capture *c);

/* "Manual", "TimeExceeded", "SessionBytesExceeded"; "" for NONE. Static strings. */
const char *capture_stop_reason_name(enum capture_stop_reason r);

/* "CaptureFailed", "LocalFileFailed", "InternalError"; "" for NONE. Static strings. */
const char *capture_error_name(enum capture_error err);

/*
 * This machine's addresses for bpf_expr_build's local_addrs, from getifaddrs(3) in the
 * caller's network namespace: every IPv4 and IPv6 address of every interface (up or not, link-
 * local included), each as a single address, except loopback interfaces, whose whole prefix is
 * local (127.0.0.0/8 answers on lo). *out is written only on success.
 * Errors: CP_EIO (getifaddrs failed), CP_ETOOBIG (more than NF_MAX_ITEMS distinct items);
 * e code "CaptureFailed".
 */
enum cp_err capture_local_addrs(struct nf_ip_set *out, struct cp_error *e) CP_MUST_USE;

#endif
