/* Check suite for common/capture_path: where a local capture file may be written. */
#include "common/capture_path.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define TARGET "properties.storageLocation.filePath"

static const char *const good_paths[] = {
    "/var/captures/a.cap",      "/var/captures/capture1.cap",   "/var/captures/sub/dir/b.CAP",
    "/var/captures/x.Cap",      "/var/captures/..a.cap", /* a name starting with dots is not a '..'
                                                            segment */
    "/var/captures/a..b/c.cap", "/var/captures/.hidden/x.cap",  "/var/captures/with space/x y.cap",
    "C:\\Captures\\myVM_1.cap", "D:\\capture\\pc1.cap",         "c:\\a.cap",
    "z:\\deep\\er\\x.CAP",      "C:\\Program Files\\nw\\x.cap",
};

START_TEST(accepted)
{
    struct cp_error e;
    memset(&e, 0, sizeof(e));
    const char *p = good_paths[_i];
    ck_assert_msg(capture_path_check(p, &e, TARGET) == CP_OK, "refused '%s': %s", p, e.message);
    ck_assert_str_eq(e.code, ""); /* e untouched on success */
}
END_TEST

static const struct {
    const char *in;
    const char *why; /* must appear in the message */
} bad_paths[] = {
    {"", "required"},
    {"/var/captures", "must name a .cap file under /var/captures/"},
    {"/var/captures/", "must name a file ending in .cap"},
    {"/var/captures/../etc/x.cap", "'..' segments"},
    {"/var/captures/./a.cap", "'..' segments"},
    {"/var/captures/a/../b.cap", "'..' segments"},
    {"/var/captures/a/..", "'..' segments"},
    {"/var/captures/a/.", "'..' segments"},
    {"/var/captures//a.cap", "empty segment"},
    {"/var/captures/a//b.cap", "empty segment"},
    {"/var/capturesX/a.cap", "under /var/captures/"},
    {"/var/capture/a.cap", "under /var/captures/"},
    {"/VAR/CAPTURES/a.cap", "under /var/captures/"},
    {"/tmp/a.cap", "under /var/captures/"},
    {"//var/captures/a.cap", "under /var/captures/"},
    {"/var/captures/a.pcap", "end in .cap"},
    {"/var/captures/a.cap.txt", "end in .cap"},
    {"/var/captures/a.ca", "end in .cap"},
    {"/var/captures/acap", "end in .cap"},
    {"/var/captures/.cap", "end in .cap"},
    {"/var/captures/a.cap/", "must name a file ending in .cap"},
    {"/var/captures/a\n.cap", "control character"},
    {"/var/captures/a\t.cap", "control character"},
    {"/var/captures/a\x7f.cap", "control character"},
    {"var/captures/a.cap", "expected a Linux path"},
    {"a.cap", "expected a Linux path"},
    {"C:a.cap", "expected a Linux path"},
    {"C:/a.cap", "expected a Linux path"},
    {"1:\\a.cap", "expected a Linux path"},
    {"\\\\server\\share\\a.cap", "expected a Linux path"},
    {"CC:\\a.cap", "expected a Linux path"},
    {"C:\\..\\a.cap", "'..' segments"},
    {"C:\\a\\..\\b.cap", "'..' segments"},
    {"C:\\a\\.\\b.cap", "'..' segments"},
    {"C:\\dir\\\\a.cap", "empty segment"},
    {"C:\\", "must name a file ending in .cap"},
    {"C:\\dir\\", "must name a file ending in .cap"},
    {"C:\\a.pcap", "end in .cap"},
    {"C:\\a|b.cap", "cannot contain"},
    {"C:\\a:b.cap", "cannot contain"},
    {"C:\\a/b.cap", "cannot contain"},
    {"C:\\a?.cap", "cannot contain"},
    {"C:\\a\r.cap", "control character"},
};

START_TEST(refused)
{
    struct cp_error e;
    memset(&e, 0, sizeof(e));
    const char *p = bad_paths[_i].in;
    ck_assert_msg(capture_path_check(p, &e, TARGET) == CP_EINVAL, "accepted '%s'", p);
    ck_assert_str_eq(e.code, "InvalidPropertyValue");
    ck_assert_str_eq(e.target, TARGET);
    ck_assert_msg(strstr(e.message, bad_paths[_i].why) != NULL, "message for '%s': %s", p,
                  e.message);
}
END_TEST

START_TEST(refuses_null_and_tolerates_no_detail)
{
    struct cp_error e;
    ck_assert_int_eq(capture_path_check(NULL, &e, TARGET), CP_EINVAL);
    ck_assert_str_eq(e.code, "InvalidPropertyValue");
    ck_assert_str_eq(e.target, TARGET);
    ck_assert_int_eq(capture_path_check(NULL, NULL, NULL), CP_EINVAL);
    ck_assert_int_eq(capture_path_check("/tmp/x.cap", NULL, NULL), CP_EINVAL);
    ck_assert_int_eq(capture_path_check("/var/captures/x.cap", NULL, NULL), CP_OK);
}
END_TEST

START_TEST(message_quotes_the_path)
{
    struct cp_error e;
    ck_assert_int_eq(capture_path_check("/var/captures/../etc/x.cap", &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "'/var/captures/../etc/x.cap'"));
    ck_assert_ptr_nonnull(strstr(e.message, TARGET));
}
END_TEST

START_TEST(length_bound)
{
    /* Exactly 1024 bytes is accepted, 1025 is not. */
    char buf[CAPTURE_PATH_MAX_LEN + 2];
    static const char root[] = "/var/captures/";
    struct cp_error e;
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, root, sizeof(root) - 1);
    memcpy(buf + CAPTURE_PATH_MAX_LEN - 4, ".cap", 4);
    buf[CAPTURE_PATH_MAX_LEN] = '\0';
    ck_assert_uint_eq(strlen(buf), 1024);
    ck_assert_int_eq(capture_path_check(buf, &e, TARGET), CP_OK);

    memset(buf, 'a', sizeof(buf));
    memcpy(buf, root, sizeof(root) - 1);
    memcpy(buf + CAPTURE_PATH_MAX_LEN + 1 - 4, ".cap", 4);
    buf[CAPTURE_PATH_MAX_LEN + 1] = '\0';
    ck_assert_uint_eq(strlen(buf), 1025);
    ck_assert_int_eq(capture_path_check(buf, &e, TARGET), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "longer than 1024"));
    ck_assert_ptr_nonnull(strstr(e.message, "...'")); /* quoted, cut short */
}
END_TEST

static Suite *capture_path_suite(void)
{
    Suite *s = suite_create("common_capture_path");
    TCase *tc = tcase_create("rule");
    tcase_add_loop_test(tc, accepted, 0, (int)(sizeof(good_paths) / sizeof(good_paths[0])));
    tcase_add_loop_test(tc, refused, 0, (int)(sizeof(bad_paths) / sizeof(bad_paths[0])));
    tcase_add_test(tc, refuses_null_and_tolerates_no_detail);
    tcase_add_test(tc, message_quotes_the_path);
    tcase_add_test(tc, length_bound);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(capture_path_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
