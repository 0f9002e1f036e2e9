/*
 * Check suite for agent/spool.c and agent/durable.c: a session and a report written and loaded
 * back alike, the modes of what is written (0700 directories, 0600 files), and every kind of bad
 * file set aside into corrupt/ (never deleted, never loaded) while the good ones still load.
 */
#include "agent/spool.h"

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
#define CMD_A "11111111-1111-4111-8111-111111111111"

static char dir[64];

static void setup(void)
{
    log_level = LOG_LEVEL_ERROR;
    tfx_mkdtemp(dir, sizeof(dir), "/tmp/nw-spool");
}

static void teardown(void)
{
    tfx_rm_rf(dir);
}

struct got {
    struct spool_session s[4];
    int n_sessions;
    uint64_t seqs[8];
    char *reports[8];
    int n_reports;
};

static void got_session(void *arg, struct spool_session *s)
{
    struct got *g = arg;
    ck_assert_int_lt(g->n_sessions, 4);
    g->s[g->n_sessions++] = *s;
}

static void got_report(void *arg, uint64_t seq, const struct proto_msg *m, char *json)
{
    struct got *g = arg;
    ck_assert_int_lt(g->n_reports, 8);
    ck_assert_int_eq((uint64_t)proto_msg_seq(m), seq);
    g->seqs[g->n_reports] = seq;
    g->reports[g->n_reports++] = json;
}

static void got_free(struct got *g)
{
    for (int i = 0; i < g->n_sessions; i++)
        spool_session_clear(&g->s[i]);
    for (int i = 0; i < g->n_reports; i++)
        free(g->reports[i]);
    memset(g, 0, sizeof(*g));
}

static void session_a(struct spool_session *s)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->command_id, sizeof(s->command_id), "%s", CMD_A);
    snprintf(s->capture_id, sizeof(s->capture_id), "%s", CAP_A);
    snprintf(s->name, sizeof(s->name), "pc1");
    s->spec = strdup("{\"timeLimitInSeconds\":60,\"storageLocation\":{\"filePath\":"
                     "\"/var/captures/pc1.cap\"}}");
    s->started_ms = 1773718655429;
    snprintf(s->partial, sizeof(s->partial), "pc1.1.cap");
    s->next_index = 2;
    ck_assert_int_eq(spool_session_add_file(s, "pc1.cap", 1234,
                                            "00112233445566778899aabbccddeeff00112233445566778899"
                                            "aabbccddeeff"),
                     CP_OK);
    s->packets = 10;
    s->bytes = 1050;
    s->drops = 3;
    s->cur_drops = 1;
    s->first_packet_ms = 1773718655500;
    s->stop_reason = PROTO_STOP_SESSION_DELETED;
    snprintf(s->stop_command_id, sizeof(s->stop_command_id), "%s", CMD_A);
}

static int mode_of(const char *path)
{
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    return (int)(st.st_mode & 07777);
}

/* Entries in dir/sub (dot files aside); 0 when there is no such directory. */
static int count_files(const char *sub)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, sub);
    int n = tfx_count_entries(p);
    return n < 0 ? 0 : n;
}

static void write_file(const char *rel, const char *text)
{
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    FILE *f = fopen(p, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(round_trip)
{
    struct spool *sp = NULL;
    struct cp_error e = {{0}, {0}, {0}};
    umask(022); /* a loose umask: what is written is private anyway */
    ck_assert_int_eq(spool_open(dir, &sp, &e), CP_OK);
    struct spool_session a;
    session_a(&a);
    ck_assert_int_eq(spool_session_save(sp, &a, &e), CP_OK);
    static const char ack[] =
        "{\"type\":\"ack\",\"seq\":7,\"commandId\":\"" CMD_A "\",\"ok\":true,\"at\":1773718655429}";
    static const char done[] = "{\"type\":\"completed\",\"seq\":9,\"captureId\":\"" CAP_A
                               "\",\"stopReason\":\"TimeExceeded\"}";
    ck_assert_int_eq(spool_report_save(sp, 9, done, strlen(done), &e), CP_OK);
    ck_assert_int_eq(spool_report_save(sp, 7, ack, strlen(ack), &e), CP_OK);

    char p[256];
    snprintf(p, sizeof(p), "%s/sessions", dir);
    ck_assert_int_eq(mode_of(p), 0700);
    snprintf(p, sizeof(p), "%s/reports", dir);
    ck_assert_int_eq(mode_of(p), 0700);
    snprintf(p, sizeof(p), "%s/sessions/" CAP_A ".json", dir);
    ck_assert_int_eq(mode_of(p), 0600);
    snprintf(p, sizeof(p), "%s/reports/00000000000000000007.json", dir);
    ck_assert_int_eq(mode_of(p), 0600);

    struct got g;
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(spool_load(sp, got_session, got_report, &g, &e), CP_OK);
    ck_assert_int_eq(g.n_sessions, 1);
    struct spool_session *b = &g.s[0];
    ck_assert_str_eq(b->command_id, a.command_id);
    ck_assert_str_eq(b->capture_id, a.capture_id);
    ck_assert_str_eq(b->name, a.name);
    ck_assert_str_eq(b->spec, a.spec);
    ck_assert_int_eq(b->started_ms, a.started_ms);
    ck_assert_str_eq(b->partial, a.partial);
    ck_assert_uint_eq(b->next_index, 2);
    ck_assert_uint_eq(b->n_files, 1);
    ck_assert_str_eq(b->files[0].path, "pc1.cap");
    ck_assert_uint_eq(b->files[0].size, 1234);
    ck_assert_str_eq(b->files[0].sha256, a.files[0].sha256);
    ck_assert_uint_eq(b->packets, 10);
    ck_assert_uint_eq(b->bytes, 1050);
    ck_assert_uint_eq(b->drops, 3);
    ck_assert_uint_eq(b->cur_drops, 1);
    ck_assert_int_eq(b->first_packet_ms, a.first_packet_ms);
    ck_assert_int_eq(b->stop_reason, PROTO_STOP_SESSION_DELETED);
    ck_assert_str_eq(b->stop_command_id, CMD_A);
    /* Reports come back in seq order, text unchanged. */
    ck_assert_int_eq(g.n_reports, 2);
    ck_assert_uint_eq(g.seqs[0], 7);
    ck_assert_str_eq(g.reports[0], ack);
    ck_assert_uint_eq(g.seqs[1], 9);
    ck_assert_str_eq(g.reports[1], done);
    got_free(&g);

    /* Removed ones are gone. */
    ck_assert_int_eq(spool_report_remove(sp, 7, &e), CP_OK);
    ck_assert_int_eq(spool_session_remove(sp, CAP_A, &e), CP_OK);
    ck_assert_int_eq(spool_load(sp, got_session, got_report, &g, &e), CP_OK);
    ck_assert_int_eq(g.n_sessions, 0);
    ck_assert_int_eq(g.n_reports, 1);
    ck_assert_uint_eq(g.seqs[0], 9);
    got_free(&g);
    spool_session_clear(&a);
    spool_free(sp);
}
END_TEST

START_TEST(corrupt_files_set_aside)
{
    struct spool *sp = NULL;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(spool_open(dir, &sp, &e), CP_OK);
    struct spool_session a;
    session_a(&a);
    ck_assert_int_eq(spool_session_save(sp, &a, &e), CP_OK);
    static const char ack[] =
        "{\"type\":\"ack\",\"seq\":7,\"commandId\":\"" CMD_A "\",\"ok\":true}";
    ck_assert_int_eq(spool_report_save(sp, 7, ack, strlen(ack), &e), CP_OK);
    /* Not JSON; a session under another id's name; a spec that is not an object; a report
     * whose seq is not its name's; a report the protocol refuses; an unexpected name; and a
     * temporary file an interrupted write left. */
    write_file("sessions/" CAP_B ".json", "{\"version\":1,\"commandId\":");
    char *text = NULL;
    {
        char p[256];
        snprintf(p, sizeof(p), "%s/sessions/" CAP_A ".json", dir);
        FILE *f = fopen(p, "r");
        ck_assert_ptr_nonnull(f);
        text = calloc(1, 8192);
        ck_assert_int_gt(fread(text, 1, 8191, f), 0);
        fclose(f);
    }
    write_file("sessions/33333333-3333-4333-8333-333333333333.json", text);
    free(text);
    write_file("sessions/44444444-4444-4444-8444-444444444444.json",
               "{\"version\":1,\"commandId\":\"" CMD_A "\",\"captureId\":"
               "\"44444444-4444-4444-8444-444444444444\",\"name\":\"x\",\"spec\":[],"
               "\"startedAt\":1,\"partial\":\"\",\"nextIndex\":1,\"files\":[],\"packets\":0,"
               "\"bytes\":0,\"drops\":0,\"curDrops\":0,\"firstPacketAt\":0,\"finalSeq\":0,"
               "\"stopCommandId\":\"\",\"stopReason\":\"\"}");
    write_file("reports/00000000000000000008.json", ack);
    write_file("reports/00000000000000000010.json",
               "{\"type\":\"ack\",\"seq\":10,\"commandId\":\"not-a-guid\",\"ok\":true}");
    write_file("reports/banana.json", "{}");
    write_file("reports/.00000000000000000011.json.tmp", "{\"type\":");

    struct got g;
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(spool_load(sp, got_session, got_report, &g, &e), CP_OK);
    ck_assert_int_eq(g.n_sessions, 1);
    ck_assert_str_eq(g.s[0].capture_id, CAP_A);
    ck_assert_int_eq(g.n_reports, 1);
    ck_assert_uint_eq(g.seqs[0], 7);
    got_free(&g);
    /* Six files set aside, none deleted; the temporary removed; the good ones stay. */
    ck_assert_int_eq(count_files("corrupt"), 6);
    ck_assert_int_eq(count_files("sessions"), 1);
    ck_assert_int_eq(count_files("reports"), 1);
    char p[256];
    snprintf(p, sizeof(p), "%s/reports/.00000000000000000011.json.tmp", dir);
    ck_assert_int_ne(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/corrupt", dir);
    ck_assert_int_eq(mode_of(p), 0700);
    /* Loading again finds the same, and nothing more to set aside. */
    ck_assert_int_eq(spool_load(sp, got_session, got_report, &g, &e), CP_OK);
    ck_assert_int_eq(g.n_sessions, 1);
    ck_assert_int_eq(g.n_reports, 1);
    got_free(&g);
    ck_assert_int_eq(count_files("corrupt"), 6);
    spool_session_clear(&a);
    spool_free(sp);
}
END_TEST

START_TEST(bounds)
{
    struct spool *sp = NULL;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(spool_open(dir, &sp, &e), CP_OK);
    struct spool_session a;
    session_a(&a);
    /* A report larger than a message, and more files than a report lists, are refused. */
    char *big = malloc(PROTO_MAX_MESSAGE + 2);
    memset(big, 'x', PROTO_MAX_MESSAGE + 1);
    big[PROTO_MAX_MESSAGE + 1] = '\0';
    ck_assert_int_eq(spool_report_save(sp, 3, big, strlen(big), &e), CP_ETOOBIG);
    free(big);
    while (a.n_files < PROTO_MAX_FILES)
        ck_assert_int_eq(spool_session_add_file(&a, "pc1.cap", 1, ""), CP_OK);
    ck_assert_int_eq(spool_session_add_file(&a, "pc1.cap", 1, ""), CP_ETOOBIG);
    ck_assert_int_eq(spool_session_save(sp, &a, &e), CP_OK);
    struct got g;
    memset(&g, 0, sizeof(g));
    ck_assert_int_eq(spool_load(sp, got_session, got_report, &g, &e), CP_OK);
    ck_assert_int_eq(g.n_sessions, 1);
    ck_assert_uint_eq(g.s[0].n_files, PROTO_MAX_FILES);
    got_free(&g);
    spool_session_clear(&a);
    spool_free(sp);
}
END_TEST

int main(void)
{
    const TTest *cases[] = {round_trip, corrupt_files_set_aside, bounds, NULL};
    return tfx_run(tfx_suite("agent_spool", setup, teardown, cases)) ? 1 : 0;
}
