/* The storage-account registry (see core/storage_accounts.h): validation and the store jobs. */
#include "core/storage_accounts.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "common/armid.h"
#include "common/strutil.h"
#include "common/timefmt.h"

#define KEY_BYTES_MAX 128 /* Azure's keys are 64 bytes; leave room, refuse nonsense */

/* The id's lower-cased canonical form into key (DB_STORAGE_ID_MAX), and its parts into *id. */
static enum cp_err storage_key(const char *resource_id, const char *target, struct armid *id,
                               char key[DB_STORAGE_ID_MAX], struct cp_error *e)
{
    if (armid_parse(resource_id, id, e, target) != CP_OK)
        return CP_EINVAL;
    if (id->kind != ARMID_STORAGE)
        return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", target ? target : "",
                       "The id must be a storage account id "
                       "(.../providers/Microsoft.Storage/storageAccounts/{name}).");
    char raw[DB_STORAGE_ID_MAX];
    snprintf(raw, sizeof(raw),
             "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.Storage/storageAccounts/%s",
             id->sub, id->rg, id->name);
    return str_lower_copy(key, DB_STORAGE_ID_MAX, raw) == 0
               ? CP_OK
               : cp_fail(e, CP_EINVAL, "InvalidPropertyValue", target ? target : "",
                         "The storage account id is too long.");
}

/* Azure account names are 3-24 lower-case letters and digits (Azurite's devstoreaccount1 too);
 * the SAS signer (storage/sas.h) holds to the same bound. */
static int valid_account_name(const char *s)
{
    size_t n = strlen(s);
    if (n < 3 || n > 24)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
            return 0;
    return 1;
}

/* An http(s) URL with a host, no spaces, query or fragment; copied without a trailing '/'. */
static int copy_endpoint(const char *s, char out[DB_STORAGE_ENDPOINT_MAX])
{
    size_t scheme = strncmp(s, "https://", 8) == 0 ? 8 : strncmp(s, "http://", 7) == 0 ? 7 : 0;
    size_t n = strlen(s);
    if (!scheme || n <= scheme || s[scheme] == '/' || n >= DB_STORAGE_ENDPOINT_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] == 0x7f || s[i] == '?' || s[i] == '#' || s[i] == '\\')
            return 0;
    if (s[n - 1] == '/')
        n--;
    memcpy(out, s, n);
    out[n] = '\0';
    return 1;
}

/* The key must be base64 that decodes to 1..KEY_BYTES_MAX bytes; decoded by OpenSSL and wiped. */
static int valid_key(const char *k)
{
    size_t n = k ? strlen(k) : 0;
    if (n == 0 || n % 4 != 0 || n >= DB_STORAGE_KEY_MAX)
        return 0;
    unsigned char raw[DB_STORAGE_KEY_MAX];
    int got = EVP_DecodeBlock(raw, (const unsigned char *)k, (int)n);
    OPENSSL_cleanse(raw, sizeof(raw));
    return got > 0 && got <= KEY_BYTES_MAX + 2; /* DecodeBlock counts padding as zero bytes */
}

struct put_job {
    const char *key_id;
    const struct db_storage_account *a;
    const char *shared_key;
    int replaced;
};

static enum cp_err put_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct put_job *job = arg;
    return db_storage_account_put(c, job->key_id, job->a, job->shared_key, &job->replaced);
}

enum cp_err core_storage_account_check(const struct core_storage_account_new *a,
                                       struct db_storage_account *row, struct cp_error *e)
{
    struct armid id;
    char key_id[DB_STORAGE_ID_MAX];
    if (storage_key(a->resource_id, "storageId", &id, key_id, e) != CP_OK)
        return CP_EINVAL;
    memset(row, 0, sizeof(*row));
    str_copy(row->resource_id, sizeof(row->resource_id), a->resource_id);
    /* A trailing '/' that armid_parse tolerated is not part of the id shown back. */
    size_t n = strlen(row->resource_id);
    if (n && row->resource_id[n - 1] == '/')
        row->resource_id[n - 1] = '\0';
    if (a->account_name && a->account_name[0]) {
        if (str_copy(row->account_name, sizeof(row->account_name), a->account_name) != 0 ||
            !valid_account_name(row->account_name))
            return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "accountName",
                           "The account name must be 3-24 lower-case letters and digits.");
    } else if (str_lower_copy(row->account_name, sizeof(row->account_name), id.name) != 0 ||
               !valid_account_name(row->account_name)) {
        return cp_fail(
            e, CP_EINVAL, "InvalidPropertyValue", "accountName",
            "The id's name is not a storage account name (3-24 lower-case letters and digits); "
            "give the account name.");
    }
    if (a->blob_endpoint && a->blob_endpoint[0]) {
        if (!copy_endpoint(a->blob_endpoint, row->blob_endpoint))
            return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "blobEndpoint",
                           "The blob endpoint must be an http:// or https:// URL with a host and "
                           "no query, fragment or spaces.");
    } else {
        snprintf(row->blob_endpoint, sizeof(row->blob_endpoint), "https://%s.blob.core.windows.net",
                 row->account_name);
    }
    if (!valid_key(a->shared_key))
        return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", "sharedKey",
                       "The shared key must be the account key in base64, as the portal shows "
                       "it.");
    return CP_OK;
}

enum cp_err core_storage_account_add(struct db_store *s, const struct core_storage_account_new *a,
                                     struct db_storage_account *out, int *replaced,
                                     struct cp_error *e)
{
    struct db_storage_account row;
    if (core_storage_account_check(a, &row, e) != CP_OK)
        return CP_EINVAL;
    struct armid id;
    char key_id[DB_STORAGE_ID_MAX];
    if (storage_key(a->resource_id, "storageId", &id, key_id, e) != CP_OK)
        return CP_EINVAL;
    row.created_ms = timefmt_now_ms();
    struct put_job job = {key_id, &row, a->shared_key, 0};
    enum cp_err err = db_store_write(s, put_run, &job, e);
    if (err != CP_OK)
        return err;
    if (out)
        *out = row;
    if (replaced)
        *replaced = job.replaced;
    return CP_OK;
}

static enum cp_err delete_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    return db_storage_account_delete(c, arg);
}

enum cp_err core_storage_account_remove(struct db_store *s, const char *resource_id,
                                        struct cp_error *e)
{
    struct armid id;
    char key_id[DB_STORAGE_ID_MAX];
    if (storage_key(resource_id, "storageId", &id, key_id, e) != CP_OK)
        return CP_EINVAL;
    enum cp_err err = db_store_write(s, delete_run, key_id, e);
    if (err == CP_ENOTFOUND)
        return cp_fail(e, err, "StorageAccountNotRegistered", "storageId",
                       "No storage account is registered under %s.", resource_id);
    return err;
}

struct find_job {
    const char *key_id;
    struct db_storage_account *out;
    char *key;
    size_t keysz;
};

static enum cp_err find_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct find_job *job = arg;
    return job->out ? db_storage_account_get(c, job->key_id, job->out)
                    : db_storage_account_key(c, job->key_id, job->key, job->keysz);
}

static enum cp_err lookup(struct db_store *s, const char *storage_id, const char *target,
                          struct find_job *job, struct cp_error *e)
{
    struct armid id;
    char key_id[DB_STORAGE_ID_MAX];
    if (storage_key(storage_id, target, &id, key_id, e) != CP_OK)
        return CP_EINVAL;
    job->key_id = key_id;
    enum cp_err err = db_store_read(s, find_run, job, e);
    if (err == CP_ENOTFOUND)
        return cp_fail(e, CP_EINVAL, "InvalidPropertyValue", target ? target : "",
                       "The storage account %s is not registered with this server; an operator "
                       "registers it with `netwatchd storage add`.",
                       id.name);
    return err;
}

enum cp_err core_storage_account_find(struct db_store *s, const char *storage_id,
                                      const char *target, struct db_storage_account *out,
                                      struct cp_error *e)
{
    struct find_job job = {NULL, out, NULL, 0};
    return lookup(s, storage_id, target, &job, e);
}

enum cp_err core_storage_account_key(struct db_store *s, const char *storage_id, char *key,
                                     size_t keysz, struct cp_error *e)
{
    if (keysz < DB_STORAGE_KEY_MAX)
        return cp_fail(e, CP_EINVAL, "InternalError", "", "The key buffer is too small.");
    struct find_job job = {NULL, NULL, key, keysz};
    return lookup(s, storage_id, "storageId", &job, e);
}

struct list_job {
    db_storage_account_each_fn each;
    void *arg;
};

static enum cp_err list_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct list_job *job = arg;
    return db_storage_account_list(c, job->each, job->arg);
}

enum cp_err core_storage_account_list(struct db_store *s, db_storage_account_each_fn each,
                                      void *arg, struct cp_error *e)
{
    struct list_job job = {each, arg};
    return db_store_read(s, list_run, &job, e);
}
