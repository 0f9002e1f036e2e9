/*
 * Check suite for agent/uploads.c's durable queue, without a network (the worker only waits
 * for grants nobody sends): files queued are written to <state>/uploads/<captureId>.json (0600)
 * and found again by a new queue (pending, ended and its reason, indexes, no duplicates); a
 * queue file that does not parse is set aside into corrupt/ while the good ones load;
 * uploads_forget removes the record and its journals.
 */
#include "agent/uploads.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/capture/test_fixture.h"

#define CAP_A "22222222-2222-4222-8222-222222222222"
#define CAP_B "66666666-6666-4666-8666-666666666666"
#define SHA   "5b8d05479ffec1c0ae5c09900c78f8ca54c4adda2f006d7726ca893780d78387"

static char dir[64];
static int events;

static void setup(void)
{
    log_level = LOG_LEVEL_ERROR;
    tfx_mkdtemp(dir, sizeof(dir), "/tmp/nw-uploads");
    events = 0;
}

static void teardown(void)
{
    tfx_rm_rf(dir);
}

static void on_event(void *arg, struct channel *ch, const char *capture_id, const char *failure)
{
    (void)arg, (void)ch, (void)capture_id, (void)failure;
    events++;
}

static struct uploads *open_queue(void)
{
    struct uploads_options o = {.state_dir = dir, .root = dir};
    struct uploads *u = NULL;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(uploads_new(&o, on_event, NULL, &u, &e), CP_OK);
    return u;
}

static int exists(const char *rel)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    return access(path, F_OK) == 0;
}

START_TEST(queue_survives_a_restart)
{
    struct uploads *u = open_queue();
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(uploads_add(u, CAP_A, 0, "a/pc1.cap", 1000, SHA, 0, &e), CP_OK);
    ck_assert_int_eq(uploads_add(u, CAP_A, 1, "a/pc1.1.cap", 24, "", 0, &e), CP_OK);
    ck_assert_int_eq(uploads_add(u, CAP_A, 1, "a/other.cap", 5, "", 0, &e), CP_OK); /* known */
    ck_assert_int_eq(
        uploads_add(u, CAP_B, 4, ".netwatch-upload/" CAP_B "/up/x_000005.cap", 7, "", 1, &e),
        CP_OK);
    ck_assert_int_eq(uploads_set_ended(u, CAP_A, PROTO_STOP_TIME_EXCEEDED), 0);
    struct stat sb;
    char rec[256];
    snprintf(rec, sizeof(rec), "%s/" UPLOADS_DIR "/" CAP_A ".json", dir);
    ck_assert_int_eq(stat(rec, &sb), 0);
    ck_assert_int_eq(sb.st_mode & 0777, 0600);
    uploads_free(u);

    u = open_queue();
    ck_assert_int_eq(uploads_known(u, CAP_A), 1);
    ck_assert_int_eq(uploads_pending(u, CAP_A), 2);
    ck_assert_int_eq(uploads_pending(u, CAP_B), 1);
    ck_assert_int_eq(uploads_has(u, CAP_B, 4), 1);
    ck_assert_int_eq(uploads_has(u, CAP_B, 3), 0);
    enum proto_stop_reason why = PROTO_STOP_NONE;
    ck_assert_int_eq(uploads_ended(u, CAP_A, &why), 1);
    ck_assert_int_eq(why, PROTO_STOP_TIME_EXCEEDED);
    ck_assert_int_eq(uploads_ended(u, CAP_B, &why), 0);
    ck_assert_uint_eq(uploads_bytes(u, CAP_A), 0);
    struct uploads_file *v = NULL;
    size_t n = 0;
    ck_assert_int_eq(uploads_files(u, CAP_A, &v, &n), CP_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(v[0].index, 0);
    ck_assert_str_eq(v[0].rel, "a/pc1.cap");
    ck_assert_uint_eq(v[0].size, 1000);
    ck_assert_str_eq(v[0].sha256, SHA);
    ck_assert_str_eq(v[0].blob, "");
    ck_assert_str_eq(v[1].rel, "a/pc1.1.cap"); /* the second add of index 1 changed nothing */
    free(v);
    char ids[4][PROTO_ID_SIZE];
    ck_assert_uint_eq(uploads_ids(u, ids, 4), 2);

    /* Forgotten: the record and its journals go; the files it named stay. */
    char journal[256];
    snprintf(journal, sizeof(journal), "%s/" UPLOADS_DIR "/" CAP_A ".1.journal", dir);
    FILE *f = fopen(journal, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    uploads_forget(u, CAP_A);
    ck_assert_int_eq(uploads_known(u, CAP_A), 0);
    ck_assert_int_eq(exists(UPLOADS_DIR "/" CAP_A ".json"), 0);
    ck_assert_int_eq(exists(UPLOADS_DIR "/" CAP_A ".1.journal"), 0);
    uploads_free(u);
    u = open_queue();
    ck_assert_int_eq(uploads_known(u, CAP_A), 0);
    ck_assert_int_eq(uploads_known(u, CAP_B), 1);
    uploads_free(u);
    ck_assert_int_eq(events, 0); /* nothing was uploaded or failed */
}
END_TEST

START_TEST(bad_record_set_aside)
{
    struct uploads *u = open_queue();
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(uploads_add(u, CAP_B, 0, "b.cap", 10, "", 0, &e), CP_OK);
    uploads_free(u);
    static const char *const bad[] = {
        "not json",
        "{\"version\":2,\"captureId\":\"" CAP_A "\",\"ended\":false,\"stopReason\":\"\","
        "\"doneBelow\":0,\"prunedBytes\":0,\"files\":[]}",
        "{\"version\":1,\"captureId\":\"" CAP_A "\",\"ended\":true,\"stopReason\":\"Sometime\","
        "\"doneBelow\":0,\"prunedBytes\":0,\"files\":[]}",
        "{\"version\":1,\"captureId\":\"" CAP_A "\",\"ended\":false,\"stopReason\":\"\","
        "\"doneBelow\":0,\"prunedBytes\":0,\"files\":[{\"index\":-1,\"path\":\"x\",\"bytes\":1,"
        "\"sha256\":\"\",\"blob\":\"\"}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char path[256], corrupt[256];
        snprintf(path, sizeof(path), "%s/" UPLOADS_DIR "/" CAP_A ".json", dir);
        FILE *f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs(bad[i], f);
        fclose(f);
        u = open_queue();
        ck_assert_msg(!uploads_known(u, CAP_A), "bad record %zu was loaded", i);
        ck_assert_int_eq(uploads_known(u, CAP_B), 1);
        uploads_free(u);
        ck_assert_int_eq(exists(UPLOADS_DIR "/" CAP_A ".json"), 0);
        snprintf(corrupt, sizeof(corrupt), "%s/corrupt", dir);
        ck_assert_int_eq(access(corrupt, F_OK), 0);
    }
}
END_TEST

int main(void)
{
    const TTest *cases[] = {queue_survives_a_restart, bad_record_set_aside, NULL};
    return tfx_run(tfx_suite("agent_uploads", setup, teardown, cases)) ? 1 : 0;
}
