/*
 * The local capture file rule: where on the target machine a capture may be written
 * (PacketCaptureStorageLocation.filePath and .localPath).
 *
 * Linux paths must live under CAPTURE_ROOT_LINUX and be plain: no '.' or '..' segments and no
 * empty segments, so that the agent never has to resolve anything to know where a file lands.
 * Windows drive paths ("C:\captures\x.cap") are accepted on syntax alone, as Azure does; the
 * agent decides what to do with them. Both kinds must name a file ending ".cap" (any case).
 *
 * libc only; no global state; thread-safe.
 */
#ifndef NW_COMMON_CAPTURE_PATH_H
#define NW_COMMON_CAPTURE_PATH_H

#include "common/err.h"

#define CAPTURE_ROOT_LINUX   "/var/captures"
#define CAPTURE_PATH_MAX_LEN 1024 /* bytes, excluding the NUL */

/*
 * Accepts either
 *   - a Linux path "/var/captures/<segments>/<name>.cap": strictly under the root (not the root
 *     itself), no "." or ".." segments, no empty segments ("//"), or
 *   - a Windows drive path "X:\<segments>\<name>.cap": an ASCII drive letter, ':', '\', no "." or
 *     ".." segments, no empty segments, none of < > : " / | ? * after the drive;
 * in both cases at most CAPTURE_PATH_MAX_LEN bytes, no control characters, and a file name of at
 * least one character before a ".cap" suffix matched case-insensitively.
 * path is borrowed; NULL and "" are refused. target (may be NULL) names the field.
 * Returns CP_OK, or CP_EINVAL with e (if not NULL) filled: code "InvalidPropertyValue", the
 * given target, and a message saying which rule failed.
 */
enum cp_err capture_path_check(const char *path, struct cp_error *e,
                               const char *target) CP_MUST_USE;

#endif
