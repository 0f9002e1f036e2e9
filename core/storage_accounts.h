/*
 * The storage-account registry: which Microsoft.Storage/storageAccounts ids captures may upload
 * to, where each account's blob service is, and the shared key the server signs SAS URLs with.
 * Rules live here; SQL in db/storage_account.c.
 *
 * - An account is registered by an operator (`netwatchd storage add`, server/storage_cli.c),
 *   never through the public API: the API only refers to it by storageId. Ids match
 *   case-insensitively (ARM ids are case-insensitive); the registered casing is kept for display.
 * - Registering an id again replaces its endpoint and key (key rotation); captures created
 *   earlier keep their storagePath, and SAS URLs are signed with the key current at signing.
 * - The account name is the one signatures and Azure's blob host use. By default it is the id's
 *   resource name, lower-cased, and the endpoint https://{name}.blob.core.windows.net; an
 *   emulator or sovereign cloud gives both (Azurite: devstoreaccount1 at
 *   http://127.0.0.1:10000/devstoreaccount1).
 * - The key is a secret: only core_storage_account_key() reads it, into a buffer the caller
 *   wipes (OPENSSL_cleanse). Nothing here logs it or puts it in an error message.
 *
 * Functions take the store, not struct core, so that the CLI can use them without a running
 * server. Every function may be called from any thread. e may be NULL; on failure it gets an
 * ARM-style code and a message meant for an operator or API client.
 */
#ifndef NW_CORE_STORAGE_ACCOUNTS_H
#define NW_CORE_STORAGE_ACCOUNTS_H

#include "common/err.h"
#include "db/storage_account.h"
#include "db/store.h"

#define CORE_STORAGE_CONTAINER "network-watcher-logs" /* Azure's container for captures */

/* What an operator registers; all borrowed. */
struct core_storage_account_new {
    const char *resource_id;   /* .../providers/Microsoft.Storage/storageAccounts/{name} */
    const char *account_name;  /* NULL or "" = the id's name, lower-cased; 3-24 of [a-z0-9] */
    const char *blob_endpoint; /* NULL or "" = https://{account}.blob.core.windows.net; else an
                                * http(s) URL without query or fragment; one trailing '/' is
                                * dropped */
    const char *shared_key;    /* base64 of the account key (decodes to 1-128 bytes) */
};

/*
 * Validates a and fills *row with what would be stored (defaults applied; created_ms 0), without
 * touching the store: the CLI proves the endpoint and key work (storage/container.h) before it
 * registers anything. Errors as core_storage_account_add's CP_EINVAL.
 */
enum cp_err core_storage_account_check(const struct core_storage_account_new *a,
                                       struct db_storage_account *row,
                                       struct cp_error *e) CP_MUST_USE;

/*
 * Registers the account, or replaces the registration of the same id (*replaced = 1; may be
 * NULL). out (may be NULL) is the account as stored. Durable before it returns.
 * Errors: CP_EINVAL ("InvalidPropertyValue": not a storage-account id, a bad name, endpoint or
 * key; the message says which, never quoting the key), CP_EIO, CP_ENOMEM, CP_EBUSY.
 */
enum cp_err core_storage_account_add(struct db_store *s, const struct core_storage_account_new *a,
                                     struct db_storage_account *out, int *replaced,
                                     struct cp_error *e) CP_MUST_USE;

/* Removes the registration. Captures already created keep their storagePath; their uploads
 * fail (StorageFailed) when a SAS can no longer be signed. CP_EINVAL for a malformed id,
 * CP_ENOTFOUND when it is not registered. */
enum cp_err core_storage_account_remove(struct db_store *s, const char *resource_id,
                                        struct cp_error *e) CP_MUST_USE;

/*
 * The registered account for storage_id (any casing) into out. target names the field for
 * messages (e.g. "properties.storageLocation.storageId"; may be NULL). Errors: CP_EINVAL
 * ("InvalidPropertyValue") for a malformed id, an id that is not a storage account, or one that
 * is not registered (the message says it must be registered with `netwatchd storage add`);
 * CP_EIO, CP_EBUSY.
 */
enum cp_err core_storage_account_find(struct db_store *s, const char *storage_id,
                                      const char *target, struct db_storage_account *out,
                                      struct cp_error *e) CP_MUST_USE;

/* The account's shared key (base64) into key (size keysz >= DB_STORAGE_KEY_MAX), for the SAS
 * signer. The caller wipes it. Errors as core_storage_account_find. */
enum cp_err core_storage_account_key(struct db_store *s, const char *storage_id, char *key,
                                     size_t keysz, struct cp_error *e) CP_MUST_USE;

/* Calls each for every registered account (ordered by id), without keys. */
enum cp_err core_storage_account_list(struct db_store *s, db_storage_account_each_fn each,
                                      void *arg, struct cp_error *e) CP_MUST_USE;

#endif
