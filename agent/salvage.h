/*
 * Salvage of capture files an agent crash left unfinished (agent/pcap_file.h writes
 * ".<name>.partial" and renames it to <name> only when complete).
 *
 * A partial file is read record by record (the 24-byte pcap file header, then 16-byte record
 * headers each followed by caplen bytes, caplen at most 262144, libpcap's limit). The file is
 * truncated after the last whole record, fsynced, and renamed to its final name without
 * replacing anything (if <name> exists: "<name>.salvaged"), then the directory is fsynced: the
 * result is a pcap file libpcap reads to its end, holding exactly the packets that were whole.
 * A partial whose file header is missing or not pcap is renamed to "<name>.unreadable" and left
 * for an operator (never deleted).
 *
 * Threading: no shared state.
 */
#ifndef NW_AGENT_SALVAGE_H
#define NW_AGENT_SALVAGE_H

#include <stdint.h>

#include "common/capture_path.h"
#include "common/err.h"

#define SALVAGE_SUFFIX_EXISTS     ".salvaged"
#define SALVAGE_SUFFIX_UNREADABLE ".unreadable"
#define SALVAGE_MAX_DEPTH         32      /* directory levels the sweep descends */
#define SALVAGE_MAX_ENTRIES       1000000 /* directory entries the sweep looks at, in all */

struct salvage_info {
    char path[CAPTURE_PATH_MAX_LEN + 1]; /* the file as it now is, relative to the root */
    uint64_t size;                       /* bytes in it */
    uint64_t packets;                    /* whole records */
    uint64_t bytes;                      /* sum of their caplen */
    uint64_t cut;                        /* bytes cut from the end (a record torn by the crash) */
    int64_t first_packet_ms;             /* the first record's time, epoch ms; 0 = no record */
    char sha256[65];                     /* of the whole file as kept, lower-case hex */
};

/*
 * The file rel (its final name, relative to rootfd, borrowed) of a session: its partial is
 * salvaged as above; without a partial, a file already under the final name (completed just
 * before the crash) is only read. *info is filled on success.
 * Returns CP_OK; CP_ENOTFOUND (neither exists); CP_EINVAL (unreadable: a partial is set aside as
 * "<name>.unreadable"; a bad rel); CP_EIO (e: what failed); CP_ENOMEM.
 */
enum cp_err salvage_file(int rootfd, const char *rel, struct salvage_info *info,
                         struct cp_error *e) CP_MUST_USE;

/* Salvages every ".<name>.partial" under rootfd (not following symlinks; at most
 * SALVAGE_MAX_DEPTH levels and SALVAGE_MAX_ENTRIES entries), each logged. Call it when no
 * capture is writing under the root. Returns the number of partial files found. */
unsigned salvage_sweep(int rootfd);

#endif
