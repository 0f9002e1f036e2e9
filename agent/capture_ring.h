/*
 * Where a capture's packets go (agent/capture.c's output): one pcap file, or a ring of them
 * (continuous capture; the rules are in agent/capture.h, "Ring"). Each file is an
 * agent/pcap_file.h file; this adds the names, the rotation by size and the deletion of the
 * oldest file.
 *
 * Ring file names. The base "a/x.cap" gives "a/x_<seq>_<UTC start>.cap": seq is the file's
 * sequence number in the session (1, 2, ...; at least 6 digits, zero-padded), the time is when
 * the file was started (YYYYMMDDTHHMMSSZ). A base without an extension gets no extension:
 * "a/x" -> "a/x_000001_20261126T131500Z". Every file of a ring is in the base's directory.
 *
 * Threading: a capture_out is used by one thread at a time (the capture thread while running).
 * The name functions have no state.
 */
#ifndef NW_AGENT_CAPTURE_RING_H
#define NW_AGENT_CAPTURE_RING_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "agent/capture.h"
#include "common/err.h"

#define CAPTURE_RING_STAMP_LEN 16 /* YYYYMMDDTHHMMSSZ */

/* The name of ring file seq of base (relative to the root) started at t, into out (n bytes).
 * 0, or -1 when it does not fit n or breaks the path rules (agent/pcap_file.h). */
int capture_ring_name(const char *base, uint32_t seq, time_t t, char *out, size_t n);

/* The sequence number of name (a bare file name) when it is a file of base's ring; 0 if not. */
uint32_t capture_ring_seq(const char *base, const char *name);

/* One file of a ring found on disk. */
struct capture_ring_entry {
    uint32_t seq;
    char path[CAPTURE_PATH_MAX_LEN + 1]; /* relative to the root */
};

/*
 * The files of base's ring under rootfd (completed ones: partial files are not listed), by seq,
 * oldest first: *out (malloc'ed, *n entries; NULL when none) owned by the caller.
 * Errors as pcap_file_open_dir, CP_EIO (the directory cannot be listed), CP_ENOMEM.
 */
enum cp_err capture_ring_list(int rootfd, const char *base, struct capture_ring_entry **out,
                              size_t *n, struct cp_error *e) CP_MUST_USE;

/* Deletes the ring file rel under rootfd (same path rules) and fsyncs its directory; a failure
 * other than "not there" is logged. */
void capture_ring_remove(int rootfd, const char *rel);

struct capture_out;
struct pcap_pkthdr; /* pcap/pcap.h, which needs the BSD types: includers need not have them */

/*
 * Starts the output: the file rel, or (ring not NULL) the first file of the ring of base rel,
 * after checking that every ring name fits and that no file of the ring at or past first_seq
 * exists (complete or partial). rootfd is borrowed and must outlive the output. On success *out
 * is the caller's (capture_out_free). Errors as pcap_file_open (CP_EEXIST: the name, or a ring
 * file, exists).
 */
enum cp_err capture_out_open(int rootfd, const char *rel, const struct capture_ring *ring,
                             int linktype, int snaplen, struct capture_out **out,
                             struct cp_error *e) CP_MUST_USE;

/* Writes one packet; in a ring, first moves on to the next file when this one would pass the
 * size (capture.h). CP_OK, or an error (e: LocalFileFailed, or InternalError for CP_ENOMEM)
 * after which the output only takes capture_out_abort. */
enum cp_err capture_out_write(struct capture_out *o, const struct pcap_pkthdr *h,
                              const unsigned char *bytes, struct cp_error *e) CP_MUST_USE;

/* Pushes the current file's buffered records to the kernel. Errors as capture_out_write. */
enum cp_err capture_out_flush(struct capture_out *o, struct cp_error *e) CP_MUST_USE;

/* Completes the file being written (it joins the files kept; a ring deletes its oldest past the
 * count). Errors as capture_out_write. */
enum cp_err capture_out_commit(struct capture_out *o, struct cp_error *e) CP_MUST_USE;

/* Removes the file being written, if any; completed files stay on disk. */
void capture_out_abort(struct capture_out *o);

/* The completed files kept, oldest first (*n of them); valid until the next call on o. */
const struct capture_file *capture_out_files(const struct capture_out *o, size_t *n);

/* Aborts what is being written and frees o. NULL is a no-op. */
void capture_out_free(struct capture_out *o);

#endif
