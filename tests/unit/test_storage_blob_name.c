/* Check suite for storage/blob_name.c: which blob each capture file goes to. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "storage/blob_name.h"
#include "storage/sas.h"

#define VM_PATH                                                                                    \
    "https://acct.blob.core.windows.net/network-watcher-logs/subscriptions/s/resourcegroups/rg/"   \
    "providers/microsoft.compute/virtualmachines/vm1/2026/11/26/packetcapture_13_24_02_633.cap"
#define VM_BLOB                                                                                    \
    "subscriptions/s/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1/2026/11/"   \
    "26/packetcapture_13_24_02_633"
#define SS_PATH                                                                                    \
    "http://127.0.0.1:10000/devstoreaccount1/network-watcher-logs/subscriptions/s/resourcegroups/" \
    "rg/providers/microsoft.compute/virtualmachinescalesets/ss1/2026/11/26/"                       \
    "packetcapture_13_24_02_633"

static char out[STORAGE_BLOB_NAME_MAX + 1];

START_TEST(vm_files)
{
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(storage_blob_name(VM_PATH, "", 0, out, sizeof(out), &e), CP_OK);
    ck_assert_str_eq(out, VM_BLOB ".cap");
    ck_assert_int_eq(storage_blob_name(VM_PATH, NULL, 1, out, sizeof(out), &e), CP_OK);
    ck_assert_str_eq(out, VM_BLOB "_1.cap");
    ck_assert_int_eq(storage_blob_name(VM_PATH, "7", 12345, out, sizeof(out), &e), CP_OK);
    ck_assert_str_eq(out, VM_BLOB "_12345.cap"); /* a file path ignores the instance */
}
END_TEST

START_TEST(scale_set_folder)
{
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(storage_blob_name(SS_PATH, "3", 0, out, sizeof(out), &e), CP_OK);
    ck_assert_str_eq(out,
                     "subscriptions/s/resourcegroups/rg/providers/microsoft.compute/"
                     "virtualmachinescalesets/ss1/2026/11/26/packetcapture_13_24_02_633/3.cap");
    ck_assert_int_eq(storage_blob_name(SS_PATH, "3", 2, out, sizeof(out), &e), CP_OK);
    ck_assert_ptr_nonnull(strstr(out, "packetcapture_13_24_02_633/3_2.cap"));
    /* A folder path needs an instance, and one that cannot make a path of its own. */
    ck_assert_int_eq(storage_blob_name(SS_PATH, "", 0, out, sizeof(out), &e), CP_EINVAL);
    ck_assert_str_eq(e.code, "StorageFailed");
    ck_assert_int_eq(storage_blob_name(SS_PATH, "../x", 0, out, sizeof(out), &e), CP_EINVAL);
}
END_TEST

START_TEST(refusals)
{
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(storage_blob_name("", "", 0, out, sizeof(out), &e), CP_EINVAL);
    ck_assert_int_eq(storage_blob_name(NULL, "", 0, out, sizeof(out), &e), CP_EINVAL);
    ck_assert_int_eq(storage_blob_name("https://a/other/x.cap", "", 0, out, sizeof(out), &e),
                     CP_EINVAL);
    ck_assert_int_eq(storage_blob_name(VM_PATH, "", -1, out, sizeof(out), &e), CP_EINVAL);
    char small[16];
    ck_assert_int_eq(storage_blob_name(VM_PATH, "", 0, small, sizeof(small), &e), CP_ETOOBIG);
    /* A name over Azure's 1,024 characters is refused even with room for it. */
    static char longpath[1400], big[1400];
    memset(longpath, 0, sizeof(longpath));
    strcpy(longpath, "https://a/network-watcher-logs/");
    memset(longpath + strlen(longpath), 'x', 1100);
    strcat(longpath, ".cap");
    ck_assert_int_eq(storage_blob_name(longpath, "", 0, big, sizeof(big), &e), CP_ETOOBIG);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("storage_blob_name");
    TCase *t = tcase_create("names");
    tcase_add_test(t, vm_files);
    tcase_add_test(t, scale_set_folder);
    tcase_add_test(t, refusals);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
