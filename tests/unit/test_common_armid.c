/* Check suite for common/armid: resource id parsing, name validators, region normalisation. */
#include "common/armid.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUB    "6a5b3e1c-0d2f-4e8a-9b7c-1d2e3f4a5b6c"
#define PREFIX "/subscriptions/" SUB "/resourceGroups/MyRG/providers/"
#define TARGET "properties.target"

static void id_sentinel(struct armid *id)
{
    memset(id, 0, sizeof(*id));
    snprintf(id->name, sizeof(id->name), "%s", "untouched");
}

/* ---- armid_parse: accepted ---- */

START_TEST(parse_vm)
{
    struct armid id;
    ck_assert_int_eq(
        armid_parse(PREFIX "Microsoft.Compute/virtualMachines/myVM-01", &id, NULL, TARGET), CP_OK);
    ck_assert_int_eq(id.kind, ARMID_VM);
    ck_assert_str_eq(id.sub, SUB);
    ck_assert_str_eq(id.rg, "MyRG");
    ck_assert_str_eq(id.name, "myVM-01");
}
END_TEST

START_TEST(parse_vmss)
{
    struct armid id;
    ck_assert_int_eq(armid_parse(PREFIX "Microsoft.Compute/virtualMachineScaleSets/scale_set1", &id,
                                 NULL, TARGET),
                     CP_OK);
    ck_assert_int_eq(id.kind, ARMID_VMSS);
    ck_assert_str_eq(id.name, "scale_set1");
}
END_TEST

START_TEST(parse_storage)
{
    struct armid id;
    ck_assert_int_eq(armid_parse(PREFIX "Microsoft.Storage/storageAccounts/pcstore", &id, NULL,
                                 "properties.storageLocation.storageId"),
                     CP_OK);
    ck_assert_int_eq(id.kind, ARMID_STORAGE);
    ck_assert_str_eq(id.rg, "MyRG");
    ck_assert_str_eq(id.name, "pcstore");
}
END_TEST

START_TEST(parse_fixed_segments_any_case_names_keep_case)
{
    struct armid id;
    ck_assert_int_eq(
        armid_parse("/SUBSCRIPTIONS/6A5B3E1C-0D2F-4E8A-9B7C-1D2E3F4A5B6C/resourcegroups/"
                    "Rg.(Prod)_1/PROVIDERS/microsoft.compute/VIRTUALMACHINES/Web.Vm_",
                    &id, NULL, TARGET),
        CP_OK);
    ck_assert_int_eq(id.kind, ARMID_VM);
    ck_assert_str_eq(id.sub, "6A5B3E1C-0D2F-4E8A-9B7C-1D2E3F4A5B6C");
    ck_assert_str_eq(id.rg, "Rg.(Prod)_1");
    ck_assert_str_eq(id.name, "Web.Vm_");
    ck_assert_int_eq(
        armid_parse(PREFIX "MICROSOFT.STORAGE/STORAGEACCOUNTS/Acct1", &id, NULL, TARGET), CP_OK);
    ck_assert_int_eq(id.kind, ARMID_STORAGE);
    ck_assert_int_eq(
        armid_parse(PREFIX "microsoft.compute/virtualmachinescalesets/ss", &id, NULL, TARGET),
        CP_OK);
    ck_assert_int_eq(id.kind, ARMID_VMSS);
}
END_TEST

START_TEST(parse_single_trailing_slash)
{
    struct armid id;
    ck_assert_int_eq(
        armid_parse(PREFIX "Microsoft.Compute/virtualMachines/vm1/", &id, NULL, TARGET), CP_OK);
    ck_assert_str_eq(id.name, "vm1");
}
END_TEST

START_TEST(parse_longest_names)
{
    char buf[ARMID_MAX_LEN + 1];
    char rg[91];
    char name[81];
    struct armid id;
    memset(rg, 'r', 90);
    rg[90] = '\0';
    memset(name, 'n', 80);
    name[80] = '\0';
    int n = snprintf(buf, sizeof(buf),
                     "/subscriptions/" SUB "/resourceGroups/%s/providers/Microsoft.Compute/"
                     "virtualMachines/%s",
                     rg, name);
    ck_assert_int_lt(n, (int)sizeof(buf));
    ck_assert_int_eq(armid_parse(buf, &id, NULL, TARGET), CP_OK);
    ck_assert_str_eq(id.rg, rg);
    ck_assert_str_eq(id.name, name);
}
END_TEST

/* ---- armid_parse: refused ---- */

static const struct {
    const char *in;
    const char *why; /* must appear in the message */
} bad_ids[] = {
    {"", "start with '/subscriptions/'"},
    {"subscriptions/" SUB "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
     "start with '/subscriptions/'"},
    {"/", "empty segment"},
    {PREFIX "Microsoft.Compute/virtualMachines/vm//", "empty segment"},
    {"/subscriptions/" SUB "//resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
     "empty segment"},
    {PREFIX "Microsoft.Compute/virtualMachines/vm/extensions/x", "segments after"},
    {PREFIX "Microsoft.Compute/virtualMachines/vm/x", "segments after"},
    {PREFIX "Microsoft.Compute/virtualMachines", "expected /subscriptions/"},
    {PREFIX "Microsoft.Compute/virtualMachines/", "expected /subscriptions/"},
    {"/subscriptions/" SUB "/resourceGroups/rg", "expected /subscriptions/"},
    {"/subscription/" SUB "/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
     "expected /subscriptions/"},
    {"/subscriptions/" SUB "/resourceGroup/rg/providers/Microsoft.Compute/virtualMachines/vm",
     "expected /subscriptions/"},
    {"/subscriptions/" SUB "/resourceGroups/rg/provider/Microsoft.Compute/virtualMachines/vm",
     "expected /subscriptions/"},
    {PREFIX "Microsoft.Network/networkInterfaces/nic1", "resource type must be"},
    {PREFIX "Microsoft.Compute/disks/d1", "resource type must be"},
    {PREFIX "Microsoft.Storage/virtualMachines/vm", "resource type must be"},
    {PREFIX "Microsoft.ComputeX/virtualMachines/vm", "resource type must be"},
    {"/subscriptions/not-a-guid/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
     "not a GUID"},
    {"/subscriptions/{" SUB "}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm",
     "not a GUID"},
    {"/subscriptions/6a5b3e1c0d2f4e8a9b7c1d2e3f4a5b6c/resourceGroups/rg/providers/"
     "Microsoft.Compute/virtualMachines/vm",
     "not a GUID"},
    {"/subscriptions/" SUB "/resourceGroups/rg./providers/Microsoft.Compute/virtualMachines/vm",
     "resource group name"},
    {"/subscriptions/" SUB "/resourceGroups/r%20g/providers/Microsoft.Compute/virtualMachines/vm",
     "resource group name"},
    {PREFIX "Microsoft.Compute/virtualMachines/-vm", "resource name"},
    {PREFIX "Microsoft.Compute/virtualMachines/vm.", "resource name"},
    {PREFIX "Microsoft.Compute/virtualMachines/v m", "resource name"},
    {PREFIX "Microsoft.Compute/virtualMachines/vm?x=1", "resource name"},
};

START_TEST(parse_refused)
{
    struct armid id;
    struct cp_error e;
    memset(&e, 0, sizeof(e));
    id_sentinel(&id);
    const char *in = bad_ids[_i].in;
    ck_assert_msg(armid_parse(in, &id, &e, TARGET) == CP_EINVAL, "accepted '%s'", in);
    ck_assert_str_eq(id.name, "untouched");
    ck_assert_str_eq(e.code, "InvalidPropertyValue");
    ck_assert_str_eq(e.target, TARGET);
    ck_assert_msg(strstr(e.message, bad_ids[_i].why) != NULL, "message for '%s': %s", in,
                  e.message);
}
END_TEST

START_TEST(parse_refuses_null)
{
    struct armid id;
    struct cp_error e;
    id_sentinel(&id);
    ck_assert_int_eq(armid_parse(NULL, &id, &e, TARGET), CP_EINVAL);
    ck_assert_str_eq(e.code, "InvalidPropertyValue");
    ck_assert_str_eq(e.target, TARGET);
    ck_assert_str_eq(id.name, "untouched");
    ck_assert_int_eq(armid_parse(NULL, &id, NULL, NULL), CP_EINVAL);
}
END_TEST

START_TEST(parse_refuses_overlong_names)
{
    char buf[2 * ARMID_MAX_LEN];
    char longer[92];
    struct armid id;
    struct cp_error e;

    memset(longer, 'r', 91);
    longer[91] = '\0';
    snprintf(buf, sizeof(buf),
             "/subscriptions/" SUB "/resourceGroups/%s/providers/Microsoft.Compute/"
             "virtualMachines/vm",
             longer);
    ck_assert_int_eq(armid_parse(buf, &id, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "longer than 90"));

    longer[81] = '\0';
    snprintf(buf, sizeof(buf), PREFIX "Microsoft.Compute/virtualMachines/%s", longer);
    ck_assert_int_eq(armid_parse(buf, &id, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "longer than 80"));

    memset(buf, 'a', sizeof(buf) - 1);
    buf[0] = '/';
    buf[sizeof(buf) - 1] = '\0';
    ck_assert_int_eq(armid_parse(buf, &id, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "longer than 512"));
    ck_assert_ptr_nonnull(strstr(e.message, "...'"));
}
END_TEST

/* ---- GUIDs ---- */

START_TEST(guid_forms)
{
    ck_assert_int_eq(armid_is_guid(SUB), 1);
    ck_assert_int_eq(armid_is_guid("6A5B3E1C-0D2F-4E8A-9B7C-1D2E3F4A5B6C"), 1);
    ck_assert_int_eq(armid_is_guid("6a5B3e1C-0d2F-4E8a-9b7C-1D2e3F4a5B6c"), 1);
    ck_assert_int_eq(armid_is_guid("00000000-0000-0000-0000-000000000000"), 1);
    ck_assert_int_eq(armid_is_guid("ffffffff-ffff-ffff-ffff-ffffffffffff"), 1);

    ck_assert_int_eq(armid_is_guid(NULL), 0);
    ck_assert_int_eq(armid_is_guid(""), 0);
    ck_assert_int_eq(armid_is_guid("{" SUB "}"), 0);
    ck_assert_int_eq(armid_is_guid("6a5b3e1c0d2f4e8a9b7c1d2e3f4a5b6c"), 0);
    ck_assert_int_eq(armid_is_guid("6a5b3e1c-0d2f-4e8a-9b7c-1d2e3f4a5b6"), 0);   /* 35 */
    ck_assert_int_eq(armid_is_guid("6a5b3e1c-0d2f-4e8a-9b7c-1d2e3f4a5b6cd"), 0); /* 37 */
    ck_assert_int_eq(armid_is_guid("6a5b3e1g-0d2f-4e8a-9b7c-1d2e3f4a5b6c"), 0);  /* 'g' */
    ck_assert_int_eq(armid_is_guid("6a5b3e1-c0d2f-4e8a-9b7c-1d2e3f4a5b6c"), 0);  /* dash moved */
    ck_assert_int_eq(armid_is_guid("6a5b3e1c_0d2f_4e8a_9b7c_1d2e3f4a5b6c"), 0);
    ck_assert_int_eq(armid_is_guid(" 6a5b3e1c-0d2f-4e8a-9b7c-1d2e3f4a5b6c"), 0);
    ck_assert_int_eq(armid_is_guid("6a5b3e1c-0d2f-4e8a-9b7c-1d2e3f4a5b6c "), 0);
}
END_TEST

/* ---- resource group names ---- */

START_TEST(rg_names)
{
    char n90[91];
    char n91[92];
    memset(n90, 'a', 90);
    n90[90] = '\0';
    memset(n91, 'a', 91);
    n91[91] = '\0';

    ck_assert_int_eq(armid_valid_rg_name("rg"), 1);
    ck_assert_int_eq(armid_valid_rg_name("a"), 1);
    ck_assert_int_eq(armid_valid_rg_name("NetworkWatcherRG"), 1);
    ck_assert_int_eq(armid_valid_rg_name("my-rg_(1).x"), 1);
    ck_assert_int_eq(armid_valid_rg_name("(rg)"), 1);
    ck_assert_int_eq(armid_valid_rg_name(".rg"), 1);
    ck_assert_int_eq(armid_valid_rg_name("-"), 1);
    ck_assert_int_eq(armid_valid_rg_name(n90), 1);

    ck_assert_int_eq(armid_valid_rg_name(n91), 0);
    ck_assert_int_eq(armid_valid_rg_name(NULL), 0);
    ck_assert_int_eq(armid_valid_rg_name(""), 0);
    ck_assert_int_eq(armid_valid_rg_name("rg."), 0);
    ck_assert_int_eq(armid_valid_rg_name("."), 0);
    ck_assert_int_eq(armid_valid_rg_name("r g"), 0);
    ck_assert_int_eq(armid_valid_rg_name("rg!"), 0);
    ck_assert_int_eq(armid_valid_rg_name("rg/x"), 0);
    ck_assert_int_eq(armid_valid_rg_name("r\xc3\xa9g"), 0); /* non-ASCII */
}
END_TEST

/* ---- resource names ---- */

START_TEST(resource_names)
{
    char n80[81];
    char n81[82];
    memset(n80, 'v', 80);
    n80[80] = '\0';
    memset(n81, 'v', 81);
    n81[81] = '\0';

    ck_assert_int_eq(armid_valid_resource_name("vm1"), 1);
    ck_assert_int_eq(armid_valid_resource_name("a"), 1);
    ck_assert_int_eq(armid_valid_resource_name("7"), 1);
    ck_assert_int_eq(armid_valid_resource_name("vm_"), 1);
    ck_assert_int_eq(armid_valid_resource_name("my.vm-1"), 1);
    ck_assert_int_eq(armid_valid_resource_name("NetworkWatcher_westus2"), 1);
    ck_assert_int_eq(armid_valid_resource_name(n80), 1);

    ck_assert_int_eq(armid_valid_resource_name(n81), 0);
    ck_assert_int_eq(armid_valid_resource_name(NULL), 0);
    ck_assert_int_eq(armid_valid_resource_name(""), 0);
    ck_assert_int_eq(armid_valid_resource_name("-vm"), 0);
    ck_assert_int_eq(armid_valid_resource_name("_vm"), 0);
    ck_assert_int_eq(armid_valid_resource_name(".vm"), 0);
    ck_assert_int_eq(armid_valid_resource_name("vm-"), 0);
    ck_assert_int_eq(armid_valid_resource_name("vm."), 0);
    ck_assert_int_eq(armid_valid_resource_name("_"), 0);
    ck_assert_int_eq(armid_valid_resource_name("v m"), 0);
    ck_assert_int_eq(armid_valid_resource_name("vm(1)"), 0);
    ck_assert_int_eq(armid_valid_resource_name("vm/1"), 0);
}
END_TEST

/* ---- regions ---- */

START_TEST(region_normalised)
{
    char out[ARMID_REGION_MAX + 1];
    ck_assert_int_eq(armid_normalize_region("West US 2", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "westus2");
    ck_assert_int_eq(armid_normalize_region("eastus", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "eastus");
    ck_assert_int_eq(armid_normalize_region("EASTUS", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "eastus");
    ck_assert_int_eq(armid_normalize_region("  West   Europe ", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "westeurope");
    ck_assert_int_eq(armid_normalize_region("Germany West Central", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "germanywestcentral");
}
END_TEST

START_TEST(region_length_and_buffer)
{
    char in[80];
    char out[ARMID_REGION_MAX + 1];
    memset(in, 'a', 64);
    in[64] = '\0';
    ck_assert_int_eq(armid_normalize_region(in, out, sizeof(out)), 0);
    ck_assert_uint_eq(strlen(out), 64);
    in[64] = 'a';
    in[65] = '\0';
    snprintf(out, sizeof(out), "%s", "keep");
    ck_assert_int_eq(armid_normalize_region(in, out, sizeof(out)), -1);
    ck_assert_str_eq(out, "keep");

    char small[7]; /* "westus2" needs 8 */
    snprintf(small, sizeof(small), "%s", "keep");
    ck_assert_int_eq(armid_normalize_region("West US 2", small, sizeof(small)), -1);
    ck_assert_str_eq(small, "keep");
    char exact[8];
    ck_assert_int_eq(armid_normalize_region("West US 2", exact, sizeof(exact)), 0);
    ck_assert_str_eq(exact, "westus2");
    ck_assert_int_eq(armid_normalize_region("westus", out, 0), -1);
}
END_TEST

START_TEST(region_refused)
{
    static const char *const bad[] = {"",         "   ",     "west-us", "west_us",
                                      "west\tus", "west.us", "westus!", "w\xc3\xa9st"};
    char out[ARMID_REGION_MAX + 1];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(out, sizeof(out), "%s", "keep");
        ck_assert_msg(armid_normalize_region(bad[i], out, sizeof(out)) == -1, "accepted '%s'",
                      bad[i]);
        ck_assert_str_eq(out, "keep");
    }
    ck_assert_int_eq(armid_normalize_region(NULL, out, sizeof(out)), -1);
    ck_assert_int_eq(armid_normalize_region("westus", NULL, 8), -1);
}
END_TEST

START_TEST(region_input_bound)
{
    /* Spaces count toward the 256-character input bound even though they are removed. */
    char in[300];
    char out[ARMID_REGION_MAX + 1];
    memset(in, ' ', sizeof(in));
    memcpy(in + 250, "eastus", 6);
    in[256] = '\0';
    ck_assert_int_eq(armid_normalize_region(in, out, sizeof(out)), 0);
    ck_assert_str_eq(out, "eastus");
    in[256] = ' ';
    in[257] = '\0';
    ck_assert_int_eq(armid_normalize_region(in, out, sizeof(out)), -1);
}
END_TEST

static Suite *armid_suite(void)
{
    Suite *s = suite_create("common_armid");
    TCase *tp = tcase_create("parse");
    tcase_add_test(tp, parse_vm);
    tcase_add_test(tp, parse_vmss);
    tcase_add_test(tp, parse_storage);
    tcase_add_test(tp, parse_fixed_segments_any_case_names_keep_case);
    tcase_add_test(tp, parse_single_trailing_slash);
    tcase_add_test(tp, parse_longest_names);
    tcase_add_loop_test(tp, parse_refused, 0, (int)(sizeof(bad_ids) / sizeof(bad_ids[0])));
    tcase_add_test(tp, parse_refuses_null);
    tcase_add_test(tp, parse_refuses_overlong_names);
    suite_add_tcase(s, tp);

    TCase *tn = tcase_create("names");
    tcase_add_test(tn, guid_forms);
    tcase_add_test(tn, rg_names);
    tcase_add_test(tn, resource_names);
    suite_add_tcase(s, tn);

    TCase *tr = tcase_create("region");
    tcase_add_test(tr, region_normalised);
    tcase_add_test(tr, region_length_and_buffer);
    tcase_add_test(tr, region_refused);
    tcase_add_test(tr, region_input_bound);
    suite_add_tcase(s, tr);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(armid_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
