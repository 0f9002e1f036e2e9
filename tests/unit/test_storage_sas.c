/*
 * Check suite for storage/sas: the SAS tokens netwatchd signs for Azure Blob Storage.
 *
 * The expected signatures were computed independently of this code, with the openssl tool over
 * a string to sign written out by hand from Azure's documented layout, e.g. for the blob case:
 *   KEYHEX=$(printf %s "$NW_AZURITE_KEY" | base64 -d | xxd -p -c 200)
 *   printf 'cw\n2026-03-17T03:00:00Z\n2026-03-17T04:00:00Z\n/blob/devstoreaccount1/...\n\n\n'\
 *          'https\n2022-11-02\nb\n\n\n\n\n\n\n' |
 *       openssl dgst -sha256 -mac HMAC -macopt hexkey:$KEYHEX -binary | base64
 * tests/storage/sas_live.c checks that Azurite accepts (and refuses) what is built here.
 */
#include "storage/sas.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

/* Azurite's published development key (not a secret). */
#define DEV_KEY                                                                                    \
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
#define T0 1773716400000LL /* 2026-03-17T03:00:00Z */
#define T1 1773720000000LL /* 2026-03-17T04:00:00Z */
#define BLOB                                                                                       \
    "subscriptions/s1/resourcegroups/rg/providers/microsoft.compute/virtualmachines/vm1/2026/03/"  \
    "17/packetcapture_03_00_00_000.cap"

static struct storage_sas_blob blob_params(void)
{
    struct storage_sas_blob p = {
        .account = "devstoreaccount1",
        .container = "network-watcher-logs",
        .blob = BLOB,
        .permissions = "cw",
        .start_ms = T0,
        .expiry_ms = T1,
        .protocol = STORAGE_SAS_HTTPS,
    };
    return p;
}

/* RFC 4231 test case 2 style key (20 x 0x0b) and "Hi There": HMAC-SHA256 b0344c61...32cff7. */
START_TEST(sign_rfc4231_vector)
{
    char out[64];
    struct cp_error e = {0};

    ck_assert_int_eq(
        storage_sas_sign("CwsLCwsLCwsLCwsLCwsLCwsLCws=", "Hi There", out, sizeof(out), &e), CP_OK);
    ck_assert_str_eq(out, "sDRMYdjbOFNcqK/OrwvxK4gdwgDJgz2nJuk3bC4yz/c=");
}
END_TEST

START_TEST(sign_rejects_bad_keys)
{
    static const char *bad[] = {"", "abc", "!!!!", "====", NULL};
    char out[64];
    struct cp_error e = {0};

    for (size_t i = 0; bad[i]; i++) {
        ck_assert_int_eq(storage_sas_sign(bad[i], "x", out, sizeof(out), &e), CP_EINVAL);
        ck_assert_str_eq(e.code, "InvalidStorageKey");
        /* The message never quotes the key. */
        ck_assert_ptr_null(strstr(e.message, bad[i][0] ? bad[i] : "\x01"));
    }
    ck_assert_int_eq(storage_sas_sign(NULL, "x", out, sizeof(out), &e), CP_EINVAL);
    ck_assert_int_eq(storage_sas_sign(DEV_KEY, "x", out, 44, &e), CP_EINVAL);
}
END_TEST

START_TEST(blob_token_known_answer)
{
    struct storage_sas_blob p = blob_params();
    struct cp_error e = {0};
    char *tok = NULL;

    ck_assert_int_eq(storage_sas_blob_token(&p, DEV_KEY, &tok, &e), CP_OK);
    ck_assert_str_eq(tok, "sv=2022-11-02&spr=https&st=2026-03-17T03%3A00%3A00Z"
                          "&se=2026-03-17T04%3A00%3A00Z&sr=b&sp=cw"
                          "&sig=edMEi09wFDqBbeGEcpqtiyk9un09cg3E5zW7rlbHNr8%3D");
    free(tok);
}
END_TEST

START_TEST(blob_url_encodes_each_segment)
{
    struct storage_sas_blob p = blob_params();
    struct cp_error e = {0};
    char *url = NULL;

    p.blob = "dir one/a+b.cap";
    p.start_ms = 0;
    p.protocol = STORAGE_SAS_HTTPS_HTTP;
    ck_assert_int_eq(
        storage_sas_blob_url("http://127.0.0.1:10000/devstoreaccount1", &p, DEV_KEY, &url, &e),
        CP_OK);
    ck_assert_msg(strncmp(url,
                          "http://127.0.0.1:10000/devstoreaccount1/network-watcher-logs/"
                          "dir%20one/a%2Bb.cap?sv=2022-11-02&spr=https%2Chttp&se=",
                          strlen("http://127.0.0.1:10000/devstoreaccount1/network-watcher-logs/"
                                 "dir%20one/a%2Bb.cap?sv=2022-11-02&spr=https%2Chttp&se=")) == 0,
                  "url %s", url);
    ck_assert_ptr_null(strstr(url, "&st="));
    ck_assert_ptr_nonnull(strstr(url, "&sr=b&sp=cw&sig="));
    free(url);

    ck_assert_int_eq(storage_sas_blob_url("http://x/", &p, DEV_KEY, &url, &e), CP_EINVAL);
    ck_assert_int_eq(storage_sas_blob_url("", &p, DEV_KEY, &url, &e), CP_EINVAL);
}
END_TEST

START_TEST(blob_token_rejects_bad_input)
{
    static const char *bad_blobs[] = {"",       "/a", "a/",   "a//b", "a/./b",
                                      "a/../b", "..", "a\nb", "a\\b", NULL};
    static const char *bad_perms[] = {"", "wc", "cww", "x", "cwr", NULL};
    static const char *bad_containers[] = {"ab", "-abc", "abc-", "a--b", "ABC", "a_b", NULL};
    struct storage_sas_blob p;
    struct cp_error e = {0};
    char *tok = (char *)"untouched";

    for (size_t i = 0; bad_blobs[i]; i++) {
        p = blob_params();
        p.blob = bad_blobs[i];
        ck_assert_int_eq(storage_sas_blob_token(&p, DEV_KEY, &tok, &e), CP_EINVAL);
        ck_assert_str_eq(e.code, "InvalidBlobName");
    }
    for (size_t i = 0; bad_perms[i]; i++) {
        p = blob_params();
        p.permissions = bad_perms[i];
        ck_assert_int_eq(storage_sas_blob_token(&p, DEV_KEY, &tok, &e), CP_EINVAL);
        ck_assert_str_eq(e.code, "InvalidSasPermissions");
    }
    for (size_t i = 0; bad_containers[i]; i++) {
        p = blob_params();
        p.container = bad_containers[i];
        ck_assert_int_eq(storage_sas_blob_token(&p, DEV_KEY, &tok, &e), CP_EINVAL);
    }
    p = blob_params();
    p.account = "Dev";
    ck_assert_int_eq(storage_sas_blob_token(&p, DEV_KEY, &tok, &e), CP_EINVAL);
    p = blob_params();
    p.expiry_ms = p.start_ms;
    ck_assert_int_eq(storage_sas_blob_token(&p, DEV_KEY, &tok, &e), CP_EINVAL);
    ck_assert_str_eq(e.code, "InvalidSasTime");
    p = blob_params();
    ck_assert_int_eq(storage_sas_blob_token(&p, "not base64", &tok, &e), CP_EINVAL);
    /* Out-parameter written only on success. */
    ck_assert_str_eq(tok, "untouched");
}
END_TEST

START_TEST(account_token_known_answer)
{
    struct storage_sas_account p = {
        .account = "devstoreaccount1",
        .services = "b",
        .resource_types = "c",
        .permissions = "c",
        .start_ms = 0,
        .expiry_ms = T1,
        .protocol = STORAGE_SAS_HTTPS_HTTP,
    };
    struct cp_error e = {0};
    char *tok = NULL;

    ck_assert_int_eq(storage_sas_account_token(&p, DEV_KEY, &tok, &e), CP_OK);
    ck_assert_str_eq(tok, "sv=2022-11-02&ss=b&srt=c&spr=https%2Chttp&se=2026-03-17T04%3A00%3A00Z"
                          "&sp=c&sig=tUxUFFXmUfWaL0L7PTAS9ZvSfWTc9wwcUhOAJvVZ%2FzA%3D");
    free(tok);

    p.resource_types = "oc";
    ck_assert_int_eq(storage_sas_account_token(&p, DEV_KEY, &tok, &e), CP_EINVAL);
    p.resource_types = "c";
    p.services = "x";
    ck_assert_int_eq(storage_sas_account_token(&p, DEV_KEY, &tok, &e), CP_EINVAL);
}
END_TEST

static Suite *sas_suite(void)
{
    Suite *s = suite_create("storage_sas");
    TCase *tc = tcase_create("sas");
    tcase_add_test(tc, sign_rfc4231_vector);
    tcase_add_test(tc, sign_rejects_bad_keys);
    tcase_add_test(tc, blob_token_known_answer);
    tcase_add_test(tc, blob_url_encodes_each_segment);
    tcase_add_test(tc, blob_token_rejects_bad_input);
    tcase_add_test(tc, account_token_known_answer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sas_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
