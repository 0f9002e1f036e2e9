/*
 * blob_name.h - which blob each capture file goes to: the naming rule of docs/storage.md.
 *
 * A capture's storagePath (api/capture_params.c) is the URL of its blob, or for a scale-set
 * capture on several instances the folder its instances write under, in the container
 * network-watcher-logs. File k (0 the first) of the session on one machine goes to:
 *
 *   storagePath ends in ".cap"   (a VM, or a scale set with one included instance)
 *       k = 0:  {path}.cap                    the URL storagePath shows
 *       k > 0:  {path}_{k}.cap                a ring's later files, a resumed session's parts
 *   otherwise (a scale set's folder)
 *       k = 0:  {folder}/{instance}.cap
 *       k > 0:  {folder}/{instance}_{k}.cap
 *
 * where {path}/{folder} is storagePath after ".../network-watcher-logs/". The rule depends only
 * on what the capture stored at create time, so every grant for a file names the same blob,
 * whatever endpoint the account is registered with later.
 */
#ifndef NW_STORAGE_BLOB_NAME_H
#define NW_STORAGE_BLOB_NAME_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/*
 * Writes the blob name (container-relative, not URL-encoded) of file `file` of the session on
 * `instance` ("" or NULL for a VM) into out (outsz bytes; STORAGE_BLOB_NAME_MAX + 1 always fits).
 * storage_path and instance are borrowed. Errors (e filled, code "StorageFailed"): CP_EINVAL when
 * storage_path has no network-watcher-logs container, a folder path has no instance, file < 0 or
 * the instance holds a '/'; CP_ETOOBIG when the name would pass STORAGE_BLOB_NAME_MAX or outsz.
 */
enum cp_err storage_blob_name(const char *storage_path, const char *instance, int64_t file,
                              char *out, size_t outsz, struct cp_error *e) CP_MUST_USE;

#endif
