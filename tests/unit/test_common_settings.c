/* Check suite for common/settings.c: precedence (default < environment < flag), both flag
 * forms, bounds and refusals. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/settings.h"

struct cfg {
    char name[8];
    long count;
    int verbose;
};

static const struct settings_entry table[] = {
    SETTINGS_STR(struct cfg, name, "name", "NWT_NAME", "dflt", "a name"),
    SETTINGS_NUM(struct cfg, count, "count", "NWT_COUNT", "3", 1, 10, "a count"),
    SETTINGS_FLAG(struct cfg, verbose, "verbose", "talk more"),
};
#define N (sizeof(table) / sizeof(table[0]))

static enum cp_err load(struct cfg *c, int argc, char **argv, struct cp_error *e)
{
    memset(c, 0, sizeof(*c));
    return settings_load(table, N, c, argc, argv, 1, e);
}

START_TEST(defaults_env_flags)
{
    struct cfg c;
    char *none[] = {"prog"};
    unsetenv("NWT_NAME");
    unsetenv("NWT_COUNT");
    ck_assert_int_eq(load(&c, 1, none, NULL), CP_OK);
    ck_assert_str_eq(c.name, "dflt");
    ck_assert_int_eq(c.count, 3);
    ck_assert_int_eq(c.verbose, 0);
    setenv("NWT_NAME", "env", 1);
    setenv("NWT_COUNT", "7", 1);
    ck_assert_int_eq(load(&c, 1, none, NULL), CP_OK);
    ck_assert_str_eq(c.name, "env");
    ck_assert_int_eq(c.count, 7);
    char *flags[] = {"prog", "--name", "flag", "--count=9", "--verbose"};
    ck_assert_int_eq(load(&c, 5, flags, NULL), CP_OK);
    ck_assert_str_eq(c.name, "flag");
    ck_assert_int_eq(c.count, 9);
    ck_assert_int_eq(c.verbose, 1);
    unsetenv("NWT_NAME");
    unsetenv("NWT_COUNT");
}
END_TEST

START_TEST(refusals)
{
    struct cfg c;
    struct cp_error e;
    char *big[] = {"prog", "--count", "11"};
    ck_assert_int_eq(load(&c, 3, big, &e), CP_EINVAL);
    ck_assert_str_eq(e.target, "count");
    char *word[] = {"prog", "--count=x"};
    ck_assert_int_eq(load(&c, 2, word, &e), CP_EINVAL);
    char *longname[] = {"prog", "--name", "12345678"}; /* 8 chars do not fit char[8] */
    ck_assert_int_eq(load(&c, 3, longname, &e), CP_EINVAL);
    ck_assert_str_eq(e.target, "name");
    char *missing[] = {"prog", "--name"};
    ck_assert_int_eq(load(&c, 2, missing, &e), CP_EINVAL);
    char *unknown[] = {"prog", "--nope"};
    ck_assert_int_eq(load(&c, 2, unknown, &e), CP_EINVAL);
    ck_assert(strstr(e.message, "--nope") != NULL);
    char *bare[] = {"prog", "positional"};
    ck_assert_int_eq(load(&c, 2, bare, &e), CP_EINVAL);
    setenv("NWT_COUNT", "0", 1);
    char *none[] = {"prog"};
    ck_assert_int_eq(load(&c, 1, none, &e), CP_EINVAL);
    ck_assert(strstr(e.message, "NWT_COUNT") != NULL);
    unsetenv("NWT_COUNT");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("common_settings");
    TCase *tc = tcase_create("settings");
    tcase_add_test(tc, defaults_env_flags);
    tcase_add_test(tc, refusals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
