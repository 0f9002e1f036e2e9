/*
 * Check suite for the agent's use of filter/filter.h (agent/capture.c): a filter expression
 * whose program passes the kernel's 4096 instructions is refused by capture_start on the real
 * loopback handle (CaptureFailed, nothing left in the capture root), where pcap_setfilter alone
 * would have filtered in user space; a program under the limit starts. Needs root (CAP_NET_RAW).
 */
#define _DEFAULT_SOURCE
#include "agent/capture.h"
#include "filter/filter.h"
#include "tests/capture/test_fixture.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "ip host 10.0.<i/250>.<i%250+1> or ..." with n hosts: about 4 instructions per host. */
static char *hosts(size_t n)
{
    char *s = malloc(n * 32 + 1);
    ck_assert_ptr_nonnull(s);
    size_t len = 0;
    s[0] = '\0';
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(s + len, "%sip host 10.0.%zu.%zu", i ? " or " : "", i / 250,
                               i % 250 + 1);
    return s;
}

static enum cp_err start_on_lo(const char *root, const char *filter, struct capture **c,
                               struct cp_error *e)
{
    static const char *const lo[] = {"lo"};
    struct capture_params p = {.root_dir = root,
                               .file_path = "f.cap",
                               .interfaces = lo,
                               .n_interfaces = 1,
                               .filter = filter};
    return capture_start(&p, c, e);
}

START_TEST(over_the_kernel_limit_is_refused)
{
    char root[256];
    tfx_mkdtemp(root, sizeof(root), "nw-agent-filter");
    char *expr = hosts(1300); /* about 5,000 instructions */
    struct capture *c = NULL;
    struct cp_error e;
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(start_on_lo(root, expr, &c, &e), CP_EINVAL);
    ck_assert_ptr_null(c);
    ck_assert_str_eq(e.code, "CaptureFailed");
    ck_assert_msg(strstr(e.message, "On lo: The filters compile to") &&
                      strstr(e.message, "the kernel runs at most 4096"),
                  "%s", e.message);
    ck_assert_int_eq(tfx_count_entries(root), 0);
    free(expr);

    /* Under the limit the same engine starts. */
    expr = hosts(100);
    ck_assert_msg(start_on_lo(root, expr, &c, &e) == CP_OK, "%s", e.message);
    capture_free(c);
    free(expr);
    tfx_rm_rf(root);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("agent_filter");
    TCase *tc = tcase_create("capture");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, over_the_kernel_limit_is_refused);
    suite_add_tcase(s, tc);
    return tfx_run(s);
}
