/*
 * What the agent's file-level Check suites (tests/capture, tests/unit/test_agent_spool.c,
 * tests/channel) share: temporary directories made and removed, a file's SHA-256, and running
 * one suite. Each helper fails the running case (ck_assert) rather than returning an error.
 */
#ifndef NW_TESTS_CAPTURE_TEST_FIXTURE_H
#define NW_TESTS_CAPTURE_TEST_FIXTURE_H

#include <check.h>
#include <stddef.h>

/* Makes a fresh directory named prefix + "-XXXXXX" (e.g. "/tmp/nw-salvage") and writes its
 * name into out (outsz bytes). */
void tfx_mkdtemp(char *out, size_t outsz, const char *prefix);

/* A descriptor (O_DIRECTORY, close-on-exec) for the directory path; the caller closes it. */
int tfx_open_dir(const char *path);

/* Removes path and everything below it (rm -rf: a case may leave any shape behind). */
void tfx_rm_rf(const char *path);

/* The SHA-256 of the file at path, as 64 lowercase hex digits and a NUL. */
void tfx_sha256_file(const char *path, char out[65]);

/* Entries of the directory path (dot files aside); -1 when it cannot be opened. */
int tfx_count_entries(const char *path);

/* A suite named name of one test case: cases (a NULL-ended list), each run between setup and
 * teardown (either may be NULL). */
Suite *tfx_suite(const char *name, void (*setup)(void), void (*teardown)(void),
                 const TTest *const cases[]);

/* Runs every case of s (taken) and returns how many failed. */
int tfx_run(Suite *s);

#endif
