/* Check suite for common/timefmt: epoch milliseconds and their RFC 3339 rendering. */
#include "common/timefmt.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const struct {
    int64_t ms;
    const char *want;
} cases[] = {
    {0, "1970-01-01T00:00:00.0000000Z"},
    {1, "1970-01-01T00:00:00.0010000Z"},
    {999, "1970-01-01T00:00:00.9990000Z"},
    {1773718655429, "2026-03-17T03:37:35.4290000Z"},
    {1709208000123, "2024-02-29T12:00:00.1230000Z"}, /* leap day */
    {951782400000, "2000-02-29T00:00:00.0000000Z"},
    {-1, "1969-12-31T23:59:59.9990000Z"},
    {-1000, "1969-12-31T23:59:59.0000000Z"},
    {-1001, "1969-12-31T23:59:58.9990000Z"},
    {253402300799999, "9999-12-31T23:59:59.9990000Z"},
    {-62167219200000, "0000-01-01T00:00:00.0000000Z"},
};

START_TEST(rfc3339_values)
{
    char out[TIMEFMT_RFC3339_LEN];
    memset(out, 'x', sizeof(out));
    timefmt_rfc3339(cases[_i].ms, out, sizeof(out));
    ck_assert_str_eq(out, cases[_i].want);
}
END_TEST

START_TEST(rfc3339_out_of_range_is_empty)
{
    char out[TIMEFMT_RFC3339_LEN];
    memset(out, 'x', sizeof(out));
    timefmt_rfc3339(253402300800000, out, sizeof(out)); /* year 10000 */
    ck_assert_str_eq(out, "");
    memset(out, 'x', sizeof(out));
    timefmt_rfc3339(-62167219200001, out, sizeof(out)); /* year -1 */
    ck_assert_str_eq(out, "");
    memset(out, 'x', sizeof(out));
    timefmt_rfc3339(INT64_MAX, out, sizeof(out));
    ck_assert_str_eq(out, "");
    memset(out, 'x', sizeof(out));
    timefmt_rfc3339(INT64_MIN, out, sizeof(out));
    ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(rfc3339_buffer_sizes)
{
    char out[TIMEFMT_RFC3339_LEN];
    memset(out, 'x', sizeof(out));
    timefmt_rfc3339(0, out, 29); /* 28 characters + NUL: just enough */
    ck_assert_str_eq(out, "1970-01-01T00:00:00.0000000Z");
    memset(out, 'x', sizeof(out));
    timefmt_rfc3339(0, out, 28); /* one short: empty, never truncated */
    ck_assert_str_eq(out, "");
    ck_assert_int_eq(out[1], 'x');
    memset(out, 'x', sizeof(out));
    timefmt_rfc3339(0, out, 1);
    ck_assert_int_eq(out[0], '\0');
    memset(out, 'x', sizeof(out));
    timefmt_rfc3339(0, out, 0); /* nothing written at all */
    ck_assert_int_eq(out[0], 'x');
    timefmt_rfc3339(0, NULL, 0);
}
END_TEST

START_TEST(now_ms_is_wall_clock)
{
    int64_t before = (int64_t)time(NULL) * 1000;
    int64_t now = timefmt_now_ms();
    int64_t after = (int64_t)time(NULL) * 1000 + 999;
    ck_assert_int_ge(now, before);
    ck_assert_int_le(now, after);
    ck_assert_int_gt(now, 1700000000000); /* after 2023-11-14 */
    int64_t later = timefmt_now_ms();
    ck_assert_int_ge(later, now);

    char out[TIMEFMT_RFC3339_LEN];
    timefmt_rfc3339(now, out, sizeof(out));
    ck_assert_uint_eq(strlen(out), 28);
    ck_assert_int_eq(out[10], 'T');
    ck_assert_int_eq(out[27], 'Z');
    ck_assert_str_eq(out + 23, "0000Z");
}
END_TEST

static Suite *timefmt_suite(void)
{
    Suite *s = suite_create("common_timefmt");
    TCase *tc = tcase_create("timefmt");
    tcase_add_loop_test(tc, rfc3339_values, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, rfc3339_out_of_range_is_empty);
    tcase_add_test(tc, rfc3339_buffer_sizes);
    tcase_add_test(tc, now_ms_is_wall_clock);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(timefmt_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
