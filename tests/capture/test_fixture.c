/*
 * Temporary directories, file digests and the suite runner for the agent's file-level Check
 * suites (see test_fixture.h).
 */
#include "tests/capture/test_fixture.h"

#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

void tfx_mkdtemp(char *out, size_t outsz, const char *prefix)
{
    int n = snprintf(out, outsz, "%s-XXXXXX", prefix);
    ck_assert_msg(n > 0 && (size_t)n < outsz, "no room for %s-XXXXXX", prefix);
    ck_assert_msg(mkdtemp(out) != NULL, "mkdtemp %s", out);
}

int tfx_open_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ck_assert_int_ge(fd, 0);
    return fd;
}

void tfx_rm_rf(const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", "--", path, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
}

void tfx_sha256_file(const char *path, char out[65])
{
    FILE *fp = fopen(path, "rb");
    ck_assert_ptr_nonnull(fp);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
    unsigned char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
        ck_assert_int_eq(EVP_DigestUpdate(ctx, buf, n), 1);
    fclose(fp);
    unsigned char md[32];
    unsigned len = 0;
    ck_assert_int_eq(EVP_DigestFinal_ex(ctx, md, &len), 1);
    EVP_MD_CTX_free(ctx);
    ck_assert_uint_eq(len, sizeof(md));
    for (unsigned i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

int tfx_count_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

Suite *tfx_suite(const char *name, void (*setup)(void), void (*teardown)(void),
                 const TTest *const cases[])
{
    Suite *s = suite_create(name);
    TCase *t = tcase_create(name);
    tcase_add_checked_fixture(t, setup, teardown);
    for (size_t i = 0; cases[i]; i++)
        tcase_add_test(t, cases[i]);
    suite_add_tcase(s, t);
    return s;
}

int tfx_run(Suite *s)
{
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed;
}
