/*
 * Check suite for the storage-account registry: core/storage_accounts.c (and so
 * db/storage_account.c and the 0007 migration) on a throwaway store. The CLI and the API's use
 * of it run against the real netwatchd in tests/integration/storage_accounts.c.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "core/storage_accounts.h"

#define SUB "0b7c4a4e-1111-4a4a-8a8a-000000000001"
#define ST1                                                                                        \
    "/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/St1"
#define KEY                                                                                        \
    "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2traw=="

static struct db_store *store;

static void open_store(void)
{
    struct db_store_options o = {.path = ":memory:", .readers = 2, .busy_timeout_ms = 0};
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(db_store_open(&o, &store, &e), CP_OK);
}

static void close_store(void)
{
    db_store_close(store);
    store = NULL;
}

static enum cp_err add(const char *id, const char *account, const char *endpoint, const char *key,
                       struct db_storage_account *out, int *replaced, struct cp_error *e)
{
    struct core_storage_account_new n = {id, account, endpoint, key};
    return core_storage_account_add(store, &n, out, replaced, e);
}

START_TEST(defaults_from_the_id)
{
    struct db_storage_account a, got;
    struct cp_error e = {{0}, {0}, {0}};
    int replaced = -1;
    ck_assert_int_eq(add(ST1, NULL, NULL, KEY, &a, &replaced, &e), CP_OK);
    ck_assert_int_eq(replaced, 0);
    ck_assert_str_eq(a.account_name, "st1");
    ck_assert_str_eq(a.blob_endpoint, "https://st1.blob.core.windows.net");
    ck_assert_str_eq(a.resource_id, ST1);
    /* Found in any casing; the registered casing is shown. */
    char lower[256];
    for (size_t i = 0; i <= strlen(ST1); i++)
        lower[i] = (char)(ST1[i] >= 'A' && ST1[i] <= 'Z' ? ST1[i] + 32 : ST1[i]);
    ck_assert_int_eq(core_storage_account_find(store, lower, "t", &got, &e), CP_OK);
    ck_assert_str_eq(got.resource_id, ST1);
    char key[DB_STORAGE_KEY_MAX];
    ck_assert_int_eq(core_storage_account_key(store, lower, key, sizeof(key), &e), CP_OK);
    ck_assert_str_eq(key, KEY);
}
END_TEST

START_TEST(second_add_replaces)
{
    struct db_storage_account a;
    struct cp_error e = {{0}, {0}, {0}};
    int replaced = 0;
    ck_assert_int_eq(add(ST1, NULL, NULL, KEY, NULL, NULL, &e), CP_OK);
    ck_assert_int_eq(add(ST1 "/", "devstoreaccount1", "http://127.0.0.1:10000/devstoreaccount1/",
                         "a2V5", &a, &replaced, &e),
                     CP_OK);
    ck_assert_int_eq(replaced, 1);
    ck_assert_str_eq(a.resource_id, ST1); /* the tolerated trailing '/' is not kept */
    ck_assert_str_eq(a.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
    char key[DB_STORAGE_KEY_MAX];
    ck_assert_int_eq(core_storage_account_key(store, ST1, key, sizeof(key), &e), CP_OK);
    ck_assert_str_eq(key, "a2V5");
}
END_TEST

START_TEST(bad_registrations_change_nothing)
{
    static const struct {
        const char *id, *account, *endpoint, *key, *target;
    } bad[] = {
        {"/subscriptions/" SUB "/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/v",
         NULL, NULL, KEY, "storageId"},
        {"not an id", NULL, NULL, KEY, "storageId"},
        {ST1, "UPPER", NULL, KEY, "accountName"},
        {ST1, "ab", NULL, KEY, "accountName"},
        {ST1, "with-dash", NULL, KEY, "accountName"},
        {ST1, "abcdefghijklmnopqrstuvwxy", NULL, KEY, "accountName"},
        {ST1, NULL, "ftp://host", KEY, "blobEndpoint"},
        {ST1, NULL, "https://", KEY, "blobEndpoint"},
        {ST1, NULL, "https:///path", KEY, "blobEndpoint"},
        {ST1, NULL, "https://h/x?sv=1", KEY, "blobEndpoint"},
        {ST1, NULL, "https://h/a b", KEY, "blobEndpoint"},
        {ST1, NULL, NULL, "", "sharedKey"},
        {ST1, NULL, NULL, "abc", "sharedKey"},
        {ST1, NULL, NULL, "a2V5!!!!", "sharedKey"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cp_error e = {{0}, {0}, {0}};
        ck_assert_msg(add(bad[i].id, bad[i].account, bad[i].endpoint, bad[i].key, NULL, NULL, &e) ==
                          CP_EINVAL,
                      "case %zu accepted", i);
        ck_assert_str_eq(e.target, bad[i].target);
        ck_assert_msg(!strstr(e.message, "a2tr") && !strstr(e.message, "a2V5"),
                      "case %zu: the message quotes the key", i);
    }
    struct db_storage_account got;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(
        core_storage_account_find(store, ST1, "properties.storageLocation.storageId", &got, &e),
        CP_EINVAL);
    ck_assert_str_eq(e.code, "InvalidPropertyValue");
    ck_assert_str_eq(e.target, "properties.storageLocation.storageId");
    ck_assert_ptr_nonnull(strstr(e.message, "not registered"));
}
END_TEST

static enum cp_err count(const struct db_storage_account *a, void *arg)
{
    (void)a;
    ++*(int *)arg;
    return CP_OK;
}

START_TEST(remove_and_list)
{
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(add(ST1, NULL, NULL, KEY, NULL, NULL, &e), CP_OK);
    int n = 0;
    ck_assert_int_eq(core_storage_account_list(store, count, &n, &e), CP_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(core_storage_account_remove(store, ST1, &e), CP_OK);
    ck_assert_int_eq(core_storage_account_remove(store, ST1, &e), CP_ENOTFOUND);
    n = 0;
    ck_assert_int_eq(core_storage_account_list(store, count, &n, &e), CP_OK);
    ck_assert_int_eq(n, 0);
    char key[DB_STORAGE_KEY_MAX];
    ck_assert_int_eq(core_storage_account_key(store, ST1, key, sizeof(key), &e), CP_EINVAL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("storage_accounts");
    TCase *t = tcase_create("registry");
    tcase_add_checked_fixture(t, open_store, close_store);
    tcase_add_test(t, defaults_from_the_id);
    tcase_add_test(t, second_add_replaces);
    tcase_add_test(t, bad_registrations_change_nothing);
    tcase_add_test(t, remove_and_list);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
