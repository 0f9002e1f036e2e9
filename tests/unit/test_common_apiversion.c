/* Check suite for common/apiversion: the ARM api-version form and the supported list. */
#include "common/apiversion.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const char *const well_formed[] = {
    "2024-05-01",
    "2016-09-01",
    "1999-12-31",
    "2024-05-01-preview",
    "2021-02-01-privatepreview",
    "2020-01-01-alpha",
    "2020-01-01-beta",
    "2020-01-01-rc",
    "2024-05-01-Preview",
    "2024-05-01-RC",
};

START_TEST(form_accepted)
{
    ck_assert_msg(apiversion_well_formed(well_formed[_i]) == 1, "refused '%s'", well_formed[_i]);
}
END_TEST

static const char *const malformed[] = {
    "",
    "2024",
    "2024-5-01",
    "24-05-01",
    "2024-05-1",
    "2024-13-01",
    "2024-00-10",
    "2024-01-32",
    "2024-01-00",
    "2024/05/01",
    "20240501",
    "abcd-ef-gh",
    "2024-05-01-",
    "2024-05-01-foo",
    "2024-05-01-previewx",
    "2024-05-01preview",
    "2024-05-01-preview-preview",
    " 2024-05-01",
    "2024-05-01 ",
    "2024-05-01\n",
    "+024-05-01",
    "2024-05-01-private-preview",
};

START_TEST(form_refused)
{
    ck_assert_msg(apiversion_well_formed(malformed[_i]) == 0, "accepted '%s'", malformed[_i]);
}
END_TEST

START_TEST(form_null_and_long)
{
    char buf[200];
    ck_assert_int_eq(apiversion_well_formed(NULL), 0);
    memset(buf, 'x', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    memcpy(buf, "2024-05-01-preview", 18);
    ck_assert_int_eq(apiversion_well_formed(buf), 0);
}
END_TEST

START_TEST(supported_versions)
{
    /* What real clients send (docs: CLI 2022-01-01, PowerShell 2024-07-01, Pulumi 2024-05-01,
     * JS SDK 2026-01-01), the ends of the range, and a few in between. */
    static const char *const yes[] = {
        "2016-09-01", "2016-12-01", "2017-08-01", "2018-10-01", "2019-11-01", "2020-03-01",
        "2021-02-01", "2022-01-01", "2022-05-01", "2023-05-01", "2024-05-01", "2024-07-01",
        "2024-10-01", "2025-07-01", "2025-09-01", "2026-01-01", "2026-03-01"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ck_assert_msg(apiversion_supported(yes[i]) == 1, "refused %s", yes[i]);
}
END_TEST

START_TEST(unsupported_versions)
{
    static const char *const no[] = {
        "2015-06-15",         "2016-03-30",         "2016-06-01", "2016-10-01",  "2017-01-01",
        "2018-03-01",         "2019-01-01",         "2019-10-01", "2021-01-01",  "2022-03-01",
        "2023-01-01",         "2024-09-01",         "2025-11-01", "2026-02-01",  "2026-04-01",
        "2024-05-01-preview", "2024-05-01 ",        "2024-05-1",  "2024-05-010", "",
        "2026-03-01x",        "2022-01-01-preview",
    };
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ck_assert_msg(apiversion_supported(no[i]) == 0, "accepted '%s'", no[i]);
    ck_assert_int_eq(apiversion_supported(NULL), 0);
}
END_TEST

START_TEST(list_contents)
{
    const char *list = apiversion_list();
    ck_assert_ptr_nonnull(list);
    ck_assert_int_eq(strncmp(list, "2026-03-01, 2026-01-01, 2025-09-01, ", 36), 0);
    size_t len = strlen(list);
    const char *tail = "2017-03-01, 2016-12-01, 2016-09-01";
    ck_assert_uint_ge(len, strlen(tail));
    ck_assert_str_eq(list + len - strlen(tail), tail);

    /* Every entry is "YYYY-MM-DD", supported, well formed, strictly older than the previous. */
    size_t count = 0;
    char prev[11] = "9999-99-99";
    for (const char *p = list;;) {
        char v[11];
        memcpy(v, p, 10);
        v[10] = '\0';
        ck_assert_msg(apiversion_supported(v) == 1, "listed but unsupported: %s", v);
        ck_assert_int_eq(apiversion_well_formed(v), 1);
        ck_assert_msg(strcmp(v, prev) < 0, "out of order: %s after %s", v, prev);
        memcpy(prev, v, sizeof(prev));
        count++;
        if (p[10] == '\0')
            break;
        ck_assert_int_eq(strncmp(p + 10, ", ", 2), 0);
        p += 12;
    }
    ck_assert_uint_eq(count, 59);
    ck_assert_uint_eq(len, 59 * 10 + 58 * 2);
    ck_assert_ptr_eq(apiversion_list(), list); /* static storage */
}
END_TEST

static Suite *apiversion_suite(void)
{
    Suite *s = suite_create("common_apiversion");
    TCase *tf = tcase_create("form");
    tcase_add_loop_test(tf, form_accepted, 0, (int)(sizeof(well_formed) / sizeof(well_formed[0])));
    tcase_add_loop_test(tf, form_refused, 0, (int)(sizeof(malformed) / sizeof(malformed[0])));
    tcase_add_test(tf, form_null_and_long);
    suite_add_tcase(s, tf);

    TCase *ts = tcase_create("supported");
    tcase_add_test(ts, supported_versions);
    tcase_add_test(ts, unsupported_versions);
    tcase_add_test(ts, list_contents);
    suite_add_tcase(s, ts);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(apiversion_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
