/*
 * A start's spec (the normalised PacketCaptureParameters api/ produced) read into the plain
 * values the capture engine takes (agent/capture.h).
 *
 * The local file (storageLocation.filePath, else localPath) must be under CAPTURE_ROOT_LINUX
 * ("/var/captures/"): the rest of the path is the file's path under the agent's capture root
 * (--capture-root). A Windows path or any other prefix, and continuousCapture, are refused
 * (CaptureFailed); a storage-only session (no local path) is refused with StorageFailed (no blob
 * upload yet). Filters compile to one pcap expression (common/bpf_expr.h) with this machine's
 * addresses taken when the spec is read.
 *
 * Threading: no shared state.
 */
#ifndef NW_AGENT_SPEC_H
#define NW_AGENT_SPEC_H

#include <stdint.h>

#include "common/capture_path.h"
#include "common/err.h"

#define SPEC_ROOT_PREFIX CAPTURE_ROOT_LINUX "/"

struct agent_spec {
    char file[CAPTURE_PATH_MAX_LEN + 1]; /* relative to the capture root */
    uint32_t snaplen;                    /* bytesToCapturePerPacket; 0 = whole packets */
    uint64_t byte_limit;                 /* totalBytesPerSession; 0 = none */
    uint32_t time_limit_s;               /* timeLimitInSeconds; 0 = none */
    char *filter;                        /* owned; NULL = every packet */
};

/* Reads spec (borrowed, JSON text) into *out (caller-owned; agent_spec_clear it, also after a
 * failure). Refusals: -1 with e filled, e->code the PcError to answer (CaptureFailed,
 * StorageFailed, InternalError). */
int agent_spec_read(const char *spec, struct agent_spec *out, struct cp_error *e);

void agent_spec_clear(struct agent_spec *s);

#endif
