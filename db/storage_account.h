/*
 * The storage_accounts table (migrations/0007_storage_accounts.sql): the blob-storage accounts
 * captures may upload to, keyed by their lower-cased Microsoft.Storage/storageAccounts id.
 *
 * The account key is a secret. It is written by db_storage_account_put() and read only by
 * db_storage_account_key(), into a caller buffer the caller wipes; struct db_storage_account
 * has no field for it, so listing or showing an account cannot leak it.
 *
 * Every function runs on a connection handed out by db_store_write() or db_store_read().
 */
#ifndef NW_DB_STORAGE_ACCOUNT_H
#define NW_DB_STORAGE_ACCOUNT_H

#include <stdint.h>

#include "common/armid.h"
#include "common/err.h"
#include "db/store.h"

#define DB_STORAGE_ID_MAX       (ARMID_MAX_LEN + 1) /* resource id + NUL */
#define DB_STORAGE_ACCOUNT_MAX  65                  /* account name: 3-64 characters + NUL */
#define DB_STORAGE_ENDPOINT_MAX 513                 /* blob endpoint URL + NUL */
#define DB_STORAGE_KEY_MAX      257                 /* base64 key + NUL (Azure's are 88) */

struct db_storage_account {
    char resource_id[DB_STORAGE_ID_MAX];         /* as registered */
    char account_name[DB_STORAGE_ACCOUNT_MAX];   /* what SAS signatures name */
    char blob_endpoint[DB_STORAGE_ENDPOINT_MAX]; /* e.g. https://acct.blob.core.windows.net */
    int64_t created_ms;
};

/*
 * Inserts the account, or replaces the row with the same resource_key (a key rotation or an
 * endpoint change). a and shared_key are borrowed. *replaced (may be NULL) is 1 when a row was
 * replaced. CP_EINVAL when a field is empty or too long.
 */
enum cp_err db_storage_account_put(struct db_conn *c, const char *resource_key,
                                   const struct db_storage_account *a, const char *shared_key,
                                   int *replaced) CP_MUST_USE;

/* Removes the account; CP_ENOTFOUND when there is none. */
enum cp_err db_storage_account_delete(struct db_conn *c, const char *resource_key) CP_MUST_USE;

/* The account (out overwritten); CP_ENOTFOUND when there is none. */
enum cp_err db_storage_account_get(struct db_conn *c, const char *resource_key,
                                   struct db_storage_account *out) CP_MUST_USE;

/* The account's key into key (size keysz, which must hold DB_STORAGE_KEY_MAX); the caller
 * wipes it after use. CP_ENOTFOUND when there is no such account. */
enum cp_err db_storage_account_key(struct db_conn *c, const char *resource_key, char *key,
                                   size_t keysz) CP_MUST_USE;

typedef enum cp_err (*db_storage_account_each_fn)(const struct db_storage_account *a, void *arg);

/* Calls each for every account, ordered by resource_key; stops at the first error it returns. */
enum cp_err db_storage_account_list(struct db_conn *c, db_storage_account_each_fn each,
                                    void *arg) CP_MUST_USE;

#endif
