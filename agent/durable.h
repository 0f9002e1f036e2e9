/*
 * Small durable files in the agent's state directory (agent/state.h, agent/spool.h): private
 * directories, atomic replacement, bounded reads, and setting a bad file aside.
 *
 *   - Directories are 0700 and files 0600 whatever the umask (fchmod after creation): the state
 *     holds capture specs and report texts, nobody else's business.
 *   - durable_write replaces a file atomically: a temporary ".<name>.tmp" in the same directory,
 *     written whole, fsync, rename over the name, fsync of the directory. A crash leaves the old
 *     file or the new one, never a mix (a stray ".tmp" at worst, removed by the next write).
 *   - durable_set_aside moves a file that does not parse into <state-dir>/corrupt/ instead of
 *     deleting it, so an operator can look at it; the agent carries on without it.
 *
 * Threading: no shared state; callers serialise writes to one file.
 */
#ifndef NW_AGENT_DURABLE_H
#define NW_AGENT_DURABLE_H

#include <stddef.h>

#include "common/err.h"

#define DURABLE_CORRUPT_DIR "corrupt" /* under the state directory */

/* Creates dir (one level) if absent and makes it 0700. CP_EIO (e: strerror) on failure, or
 * CP_EINVAL when it exists and is not a directory. */
enum cp_err durable_mkdir(const char *dir, struct cp_error *e) CP_MUST_USE;

/* Replaces dir/name (name: one path segment) with len bytes of data, mode 0600, as above.
 * CP_EINVAL (path too long), CP_EIO (e: what failed, strerror). */
enum cp_err durable_write(const char *dir, const char *name, const char *data, size_t len,
                          struct cp_error *e) CP_MUST_USE;

/* Reads the whole of path, at most max bytes, into *out (malloc'ed, NUL-terminated; caller
 * frees) and its length into *len. CP_ENOTFOUND (absent), CP_ETOOBIG (larger than max, or not a
 * regular file), CP_EIO, CP_ENOMEM. */
enum cp_err durable_read(const char *path, size_t max, char **out, size_t *len,
                         struct cp_error *e) CP_MUST_USE;

/* Removes dir/name and fsyncs dir; an absent file is CP_OK. CP_EIO otherwise. */
enum cp_err durable_remove(const char *dir, const char *name, struct cp_error *e) CP_MUST_USE;

/* Moves dir/name to <state_dir>/corrupt/<tag>-<name>.<epoch ms> and logs it with why (the file
 * stays for an operator; nothing is deleted). When even that fails the file is left where it is
 * and the failure is logged: the caller ignores the file either way. */
void durable_set_aside(const char *state_dir, const char *dir, const char *name, const char *tag,
                       const char *why);

#endif
