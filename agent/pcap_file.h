/*
 * One pcap output file under the capture root, written so that no path escapes the root and no
 * reader ever sees a half-written file under its final name.
 *
 *   - The root is an open directory fd (O_DIRECTORY); everything else is *at() relative to it.
 *   - The relative path is plain: no leading '/', no empty, "." or ".." segments.
 *   - Missing directories are made with mkdirat, one component at a time (mode 0750, set with
 *     fchmod like the file's), and each is opened with O_NOFOLLOW|O_DIRECTORY: a symlink anywhere
 *     on the path is refused, even one that points back inside the root. The root itself is
 *     opened by the caller and may be a symlink: it is the operator's.
 *   - Data goes to ".<name>.partial" in the final directory (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0640
 *     set with fchmod so the umask cannot change it). Commit flushes, fsyncs, renames it to
 *     <name> without replacing anything (renameat2 RENAME_NOREPLACE, or link+unlink where the file
 *     system lacks it) and fsyncs the directory. A final name that already exists is refused at
 *     open, and again at commit if it appeared meanwhile.
 *   - Abort (or any failure) unlinks the partial file: an incomplete capture leaves nothing
 *     behind. A crash leaves ".<name>.partial", which the agent may sweep at startup.
 *
 * The file is standard pcap (microsecond timestamps, libpcap's pcap_dump format), written through
 * a stdio stream of our own (fopencookie) so that a failed write keeps its errno (ENOSPC) and the
 * size and SHA-256 of the file are known without reading it back.
 *
 * Includers need the BSD types pcap.h uses (define _GNU_SOURCE or _DEFAULT_SOURCE first).
 * Not thread-safe: one thread uses a pcap_file at a time.
 */
#ifndef NW_AGENT_PCAP_FILE_H
#define NW_AGENT_PCAP_FILE_H

#include <pcap/pcap.h>
#include <stdint.h>

#include "common/capture_path.h"
#include "common/err.h"

#define PCAP_FILE_PARTIAL_SUFFIX ".partial"
#define PCAP_FILE_SEGMENT_MAX    246 /* bytes per path segment: NAME_MAX less "." ".partial" */

/* A finished file, as the completion report needs it. */
struct pcap_file_info {
    char path[CAPTURE_PATH_MAX_LEN + 1]; /* relative to the capture root, as given */
    uint64_t size;                       /* bytes in the file, headers included */
    char sha256[65];                     /* lower-case hex digest of the whole file */
};

struct pcap_file;

/*
 * Checks rel (borrowed) against the rules above without touching the disk.
 * Returns CP_OK or CP_EINVAL with e (if not NULL) filled, code "LocalFileFailed".
 */
enum cp_err pcap_file_check_path(const char *rel, struct cp_error *e) CP_MUST_USE;

/*
 * Creates the directories and the partial file of rel under rootfd (borrowed; it stays the
 * caller's) and writes the pcap file header for linktype (a DLT_ value) and snaplen.
 * On success *out is owned by the caller: end it with pcap_file_commit or pcap_file_abort.
 * Errors (e code "LocalFileFailed" unless said): CP_EINVAL (bad path, a symlink or non-directory
 * on the way), CP_EEXIST (the final name exists), CP_EIO (a system call failed; the message has
 * strerror), CP_ENOMEM (code "InternalError"). Nothing is left on disk but directories made.
 */
enum cp_err pcap_file_open(int rootfd, const char *rel, int linktype, int snaplen,
                           struct pcap_file **out, struct cp_error *e) CP_MUST_USE;

/*
 * The directory that holds rel under rootfd, made as pcap_file_open makes it (same rules: no
 * symlink, no escape): an fd of it (O_DIRECTORY, close-on-exec; the caller closes it) into *dirfd
 * and rel's final segment into name (PCAP_FILE_SEGMENT_MAX + 1 bytes). For callers that list or
 * remove files beside a capture file (the ring of agent/capture_ring.h). Errors as pcap_file_open.
 */
enum cp_err pcap_file_open_dir(int rootfd, const char *rel, int *dirfd, char *name,
                               struct cp_error *e) CP_MUST_USE;

/* Appends one record (buffered). A write error is kept and reported by the next flush. */
void pcap_file_write(struct pcap_file *f, const struct pcap_pkthdr *h, const u_char *bytes);

/* Pushes buffered records to the kernel. CP_EIO (e: "LocalFileFailed", strerror) on failure;
 * the file is then unusable and should be aborted. */
enum cp_err pcap_file_flush(struct pcap_file *f, struct cp_error *e) CP_MUST_USE;

/* Bytes handed to the kernel so far plus those still buffered. */
uint64_t pcap_file_size(const struct pcap_file *f);

/*
 * Completes the file as described above and fills *info (caller-owned; written only on success).
 * Takes f: it is freed whatever the outcome, and on failure the partial file is unlinked.
 * Errors as pcap_file_open (CP_EEXIST if the final name appeared, CP_EIO otherwise).
 */
enum cp_err pcap_file_commit(struct pcap_file *f, struct pcap_file_info *info,
                             struct cp_error *e) CP_MUST_USE;

/* Closes and unlinks the partial file; frees f. NULL is a no-op. */
void pcap_file_abort(struct pcap_file *f);

#endif
