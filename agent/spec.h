/*
 * A start's spec (the normalised PacketCaptureParameters api/ produced) read into the plain
 * values the capture engine takes (agent/capture.h).
 *
 * The local file (storageLocation.filePath, else localPath) must be under CAPTURE_ROOT_LINUX
 * ("/var/captures/"): the rest of the path is the file's path under the agent's capture root
 * (--capture-root). A Windows path or any other prefix is refused (CaptureFailed).
 *
 * Blob storage (docs/storage.md): storageLocation.storageId set and a local path = Both (the
 * files are uploaded and stay); storageId and no local path = Storage only (the files are
 * written under SPEC_UPLOAD_DIR/<captureId>/ in the capture root, agent_spec_upload_file, and
 * removed once uploaded); neither = refused (StorageFailed). Filters compile to
 * one pcap expression (common/bpf_expr.h) with this machine's addresses taken when the spec is
 * read.
 *
 * continuousCapture given (true or false): the session lasts captureSettings.
 * sessionTimeLimitInSeconds (0 = the longest Azure allows, 7 days; netwatchd's backstop counts 0
 * the same way), and totalBytesPerSession / timeLimitInSeconds do not apply (api/ leaves them
 * out, as Azure does). true: a ring (agent/capture.h) of fileCount files of fileSizeInBytes each;
 * 0 for either means its default (10 files, 104857600 bytes), so a ring is always bounded.
 * false: one file at localPath.
 *
 * Threading: no shared state.
 */
#ifndef NW_AGENT_SPEC_H
#define NW_AGENT_SPEC_H

#include <stdint.h>

#include "common/capture_path.h"
#include "common/err.h"

#define SPEC_ROOT_PREFIX CAPTURE_ROOT_LINUX "/"

#define SPEC_RING_FILES_DEFAULT 10
#define SPEC_RING_FILES_MAX     10000
#define SPEC_RING_SIZE_DEFAULT  104857600ULL
#define SPEC_RING_TIME_DEFAULT  86400
#define SPEC_RING_TIME_MAX      604800 /* 7 days: also what 0 means */

/* Storage only: where the files wait for their upload, under the capture root. */
#define SPEC_UPLOAD_DIR  ".netwatch-upload"
#define SPEC_UPLOAD_BASE "capture.cap"

enum agent_spec_upload {
    SPEC_UPLOAD_NONE = 0, /* a local file only */
    SPEC_UPLOAD_ONLY,     /* storageId without a local path: uploaded, then removed */
    SPEC_UPLOAD_BOTH,     /* storageId and a local path: uploaded and kept */
};

struct agent_spec {
    char file[CAPTURE_PATH_MAX_LEN + 1]; /* relative to the capture root */
    uint32_t snaplen;                    /* bytesToCapturePerPacket; 0 = whole packets */
    uint64_t byte_limit;                 /* totalBytesPerSession; 0 = none */
    uint32_t time_limit_s;               /* timeLimitInSeconds; 0 = none */
    char *filter;                        /* owned; NULL = every packet */
    int continuous;                      /* continuousCapture given (true or false) */
    int ring;                            /* continuousCapture true */
    uint32_t ring_files;                 /* fileCount, >= 1 when ring */
    uint64_t ring_file_size;             /* fileSizeInBytes, >= 1 when ring */
    enum agent_spec_upload upload;       /* ONLY: file is "" until agent_spec_upload_file */
};

/* Reads spec (borrowed, JSON text) into *out (caller-owned; agent_spec_clear it, also after a
 * failure). Refusals: -1 with e filled, e->code the PcError to answer (CaptureFailed,
 * StorageFailed, InternalError). */
int agent_spec_read(const char *spec, struct agent_spec *out, struct cp_error *e);

void agent_spec_clear(struct agent_spec *s);

/* Storage only: sets s->file to SPEC_UPLOAD_DIR/<capture_id>/SPEC_UPLOAD_BASE, the session's
 * private place under the capture root. Other modes: unchanged. */
void agent_spec_upload_file(struct agent_spec *s, const char *capture_id);

#endif
