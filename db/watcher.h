/*
 * The network_watchers table: one row per watcher, at most one per subscription and region.
 *
 * Every function runs on a connection handed out by db_store_write() or db_store_read() and
 * so inside that job's transaction. Keys (sub_key, rg_key, name_key) are lower case.
 */
#ifndef NW_DB_WATCHER_H
#define NW_DB_WATCHER_H

#include <stdint.h>

#include "common/err.h"
#include "db/store.h"

#define DB_ETAG_MAX 40

struct db_watcher {
    int64_t id;
    char sub[64];  /* caller's casing */
    char rg[91];   /* caller's casing, last written */
    char name[81]; /* caller's casing, last written */
    char region[65];
    char etag[DB_ETAG_MAX];
    int64_t version;
    int64_t created_ms;
    int64_t updated_ms;
    char *tags_json; /* owned; freed by db_watcher_clear() */
};

/* Frees what w owns and zeroes it. */
void db_watcher_clear(struct db_watcher *w);

/* Looks a watcher up by its keys; CP_ENOTFOUND when absent. out is cleared first; caller clears. */
enum cp_err db_watcher_get(struct db_conn *c, const char *sub_key, const char *rg_key,
                           const char *name_key, struct db_watcher *out) CP_MUST_USE;
/* The watcher of a subscription in a region, if any (CP_ENOTFOUND). */
enum cp_err db_watcher_get_by_region(struct db_conn *c, const char *sub_key, const char *region,
                                     struct db_watcher *out) CP_MUST_USE;
/* Inserts w (keys derived from its names) and sets w->id. CP_EEXIST on a key or region clash. */
enum cp_err db_watcher_insert(struct db_conn *c, struct db_watcher *w) CP_MUST_USE;
/* Writes names, tags, etag, version and updated_ms of w if the stored version is still
 * expected_version (compare-and-set); CP_ECONFLICT when it moved, CP_ENOTFOUND when gone. */
enum cp_err db_watcher_update(struct db_conn *c, const struct db_watcher *w,
                              int64_t expected_version) CP_MUST_USE;
/* Gives the watcher a new etag (its captures' etag too) and bumps its version. */
enum cp_err db_watcher_touch(struct db_conn *c, int64_t id, const char *etag,
                             int64_t now_ms) CP_MUST_USE;
/* Deletes the watcher; its captures go with it (foreign key cascade). */
enum cp_err db_watcher_delete(struct db_conn *c, int64_t id) CP_MUST_USE;

/* Calls each() for every watcher of a subscription (rg_key NULL) or of one resource group, in
 * name order. The row is borrowed for the call. A non-zero return from each() stops the walk
 * and is returned as CP_EIO unless it is a valid enum cp_err. */
typedef enum cp_err (*db_watcher_each_fn)(const struct db_watcher *w, void *arg);
enum cp_err db_watcher_list(struct db_conn *c, const char *sub_key, const char *rg_key,
                            db_watcher_each_fn each, void *arg) CP_MUST_USE;

#endif
