/*
 * Check suite for agent/spec.c's reading of the limits and of continuous capture: what each
 * PacketCaptureParameters spec (as api/ stores it) becomes for the capture engine, the meaning
 * of 0 in captureSettings, and the refusals. No network, no root.
 */
#include "agent/spec.h"

#include <check.h>
#include <string.h>

#include "tests/capture/test_fixture.h"

#define LOCAL "\"storageLocation\":{\"storagePath\":\"\",\"localPath\":\"/var/captures/a/r.cap\"}"

/* Reads spec into *s; returns what agent_spec_read returned, e filled on a refusal. */
static int read_spec(const char *spec, struct agent_spec *s, struct cp_error *e)
{
    memset(e, 0, sizeof(*e));
    return agent_spec_read(spec, s, e);
}

START_TEST(ordinary_limits)
{
    struct agent_spec s;
    struct cp_error e;
    ck_assert_int_eq(read_spec("{\"bytesToCapturePerPacket\":64,\"totalBytesPerSession\":1000,"
                               "\"timeLimitInSeconds\":30,\"storageLocation\":{\"filePath\":"
                               "\"/var/captures/x.cap\"}}",
                               &s, &e),
                     0);
    ck_assert_str_eq(s.file, "x.cap");
    ck_assert_uint_eq(s.snaplen, 64);
    ck_assert_uint_eq(s.byte_limit, 1000);
    ck_assert_uint_eq(s.time_limit_s, 30);
    ck_assert_int_eq(s.continuous, 0);
    ck_assert_int_eq(s.ring, 0);
    agent_spec_clear(&s);
}
END_TEST

START_TEST(ring_settings)
{
    struct agent_spec s;
    struct cp_error e;
    ck_assert_int_eq(read_spec("{" LOCAL ",\"continuousCapture\":true,\"captureSettings\":"
                               "{\"fileCount\":3,\"fileSizeInBytes\":4096,"
                               "\"sessionTimeLimitInSeconds\":60},\"totalBytesPerSession\":10}",
                               &s, &e),
                     0);
    ck_assert_str_eq(s.file, "a/r.cap");
    ck_assert_int_eq(s.ring, 1);
    ck_assert_uint_eq(s.ring_files, 3);
    ck_assert_uint_eq(s.ring_file_size, 4096);
    ck_assert_uint_eq(s.time_limit_s, 60);
    ck_assert_uint_eq(s.byte_limit, 0); /* a ring is bounded by its files, not a byte total */
    agent_spec_clear(&s);
}
END_TEST

START_TEST(ring_zeros_and_defaults)
{
    struct agent_spec s;
    struct cp_error e;
    /* 0: the default file count and size (a ring is always bounded), the longest session. */
    ck_assert_int_eq(read_spec("{" LOCAL ",\"continuousCapture\":true,\"captureSettings\":"
                               "{\"fileCount\":0,\"fileSizeInBytes\":0,"
                               "\"sessionTimeLimitInSeconds\":0}}",
                               &s, &e),
                     0);
    ck_assert_uint_eq(s.ring_files, 10);
    ck_assert_uint_eq(s.ring_file_size, 104857600);
    ck_assert_uint_eq(s.time_limit_s, 604800);
    agent_spec_clear(&s);
    /* Absent: Azure's defaults. */
    ck_assert_int_eq(read_spec("{" LOCAL ",\"continuousCapture\":true}", &s, &e), 0);
    ck_assert_uint_eq(s.ring_files, 10);
    ck_assert_uint_eq(s.ring_file_size, 104857600);
    ck_assert_uint_eq(s.time_limit_s, 86400);
    agent_spec_clear(&s);
}
END_TEST

START_TEST(continuous_false_is_one_file)
{
    struct agent_spec s;
    struct cp_error e;
    ck_assert_int_eq(read_spec("{" LOCAL ",\"continuousCapture\":false,\"captureSettings\":"
                               "{\"fileCount\":10,\"fileSizeInBytes\":104857600,"
                               "\"sessionTimeLimitInSeconds\":120}}",
                               &s, &e),
                     0);
    ck_assert_int_eq(s.continuous, 1);
    ck_assert_int_eq(s.ring, 0);
    ck_assert_uint_eq(s.time_limit_s, 120);
    ck_assert_uint_eq(s.byte_limit, 0);
    agent_spec_clear(&s);
}
END_TEST

START_TEST(refusals)
{
    struct agent_spec s;
    struct cp_error e;
    ck_assert_int_eq(read_spec("{" LOCAL ",\"continuousCapture\":\"yes\"}", &s, &e), -1);
    ck_assert_str_eq(e.code, "CaptureFailed");
    agent_spec_clear(&s);
    ck_assert_int_eq(read_spec("{" LOCAL ",\"continuousCapture\":true,\"captureSettings\":"
                               "{\"fileCount\":10001}}",
                               &s, &e),
                     -1);
    ck_assert_str_eq(e.code, "CaptureFailed");
    ck_assert_str_eq(e.target, "fileCount");
    agent_spec_clear(&s);
    ck_assert_int_eq(read_spec("{" LOCAL ",\"continuousCapture\":true,\"captureSettings\":"
                               "{\"sessionTimeLimitInSeconds\":604801}}",
                               &s, &e),
                     -1);
    agent_spec_clear(&s);
}
END_TEST

/* storageLocation: File, Both, Storage only (docs/storage.md) and neither. */
#define STORE                                                                                      \
    "\"storageId\":\"/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/"              \
    "storageAccounts/a\""

START_TEST(storage_modes)
{
    struct agent_spec s;
    struct cp_error e;
    ck_assert_int_eq(read_spec("{" LOCAL "}", &s, &e), 0);
    ck_assert_int_eq(s.upload, SPEC_UPLOAD_NONE);
    agent_spec_upload_file(&s, "0f8fad5b-d9cb-469f-a165-70867728950e");
    ck_assert_str_eq(s.file, "a/r.cap"); /* only storage only has a private file */
    agent_spec_clear(&s);
    ck_assert_int_eq(
        read_spec("{\"storageLocation\":{" STORE ",\"filePath\":\"/var/captures/b.cap\"}}", &s, &e),
        0);
    ck_assert_int_eq(s.upload, SPEC_UPLOAD_BOTH);
    ck_assert_str_eq(s.file, "b.cap");
    agent_spec_clear(&s);
    ck_assert_int_eq(read_spec("{\"storageLocation\":{" STORE ",\"storagePath\":\"https://"
                               "a.blob.core.windows.net/x.cap\"}}",
                               &s, &e),
                     0);
    ck_assert_int_eq(s.upload, SPEC_UPLOAD_ONLY);
    ck_assert_str_eq(s.file, "");
    agent_spec_upload_file(&s, "0f8fad5b-d9cb-469f-a165-70867728950e");
    ck_assert_str_eq(s.file, ".netwatch-upload/0f8fad5b-d9cb-469f-a165-70867728950e/capture.cap");
    agent_spec_clear(&s);
    ck_assert_int_eq(read_spec("{\"storageLocation\":{\"storagePath\":\"\"}}", &s, &e), -1);
    ck_assert_str_eq(e.code, "StorageFailed");
    agent_spec_clear(&s);
}
END_TEST

int main(void)
{
    const TTest *cases[] = {ordinary_limits,
                            ring_settings,
                            ring_zeros_and_defaults,
                            continuous_false_is_one_file,
                            refusals,
                            storage_modes,
                            NULL};
    return tfx_run(tfx_suite("agent_spec", NULL, NULL, cases)) ? 1 : 0;
}
