/*
 * Check suite for db/store.c: migrations, the group-commit writer, the reader pool, the
 * statement cache and the small helpers. Each test gets a fresh file database in a mkdtemp
 * directory under /tmp (removed afterwards) and its own migration arrays, so nothing here
 * depends on the migrations folder but test_embedded_migrations.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/store.h"

static char test_dir[64];
static char test_path[128];

static void remove_db_files(const char *path)
{
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    char f[256];
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        snprintf(f, sizeof(f), "%s%s", path, suffix[i]);
        unlink(f);
    }
}

static void setup(void)
{
    snprintf(test_dir, sizeof(test_dir), "/tmp/nw-test-db-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(test_dir));
    snprintf(test_path, sizeof(test_path), "%s/test.db", test_dir);
}

static void teardown(void)
{
    remove_db_files(test_path);
    rmdir(test_dir);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- migrations used by the tests ---- */

/* 0003 depends on 0002 having run first: "order" ends at 23 only in order 2, 3. */
static const struct db_migration base_m[] = {
    {1, "0001_tables.sql",
     "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);\n"
     "CREATE TABLE kv (k TEXT PRIMARY KEY, n INTEGER NOT NULL);\n"},
    {2, "0002_seed.sql",
     "INSERT INTO kv (k, n) VALUES ('order', 2);\n"
     "INSERT INTO kv (k, n) VALUES ('count', 0);\n"},
    {3, "0003_order.sql", "UPDATE kv SET n = n * 10 + 3 WHERE k = 'order';"},
    {4, "0004_four.sql", "INSERT INTO kv (k, n) VALUES ('four', 4);"},
};

static struct db_store *open_store(const struct db_migration *m, int count, int readers)
{
    struct db_store_options opt = {test_path, readers, 0};
    struct db_store *s = NULL;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = db_store_open_with(&opt, m, count, &s, &e);
    ck_assert_msg(err == CP_OK, "open failed: %s", e.message);
    ck_assert_ptr_nonnull(s);
    return s;
}

/* ---- jobs ---- */

/* Reads one integer: sql (a literal) with an optional text ?1. */
struct qint {
    const char *sql;
    const char *arg;
    long long out;
};

static enum cp_err qint_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct qint *q = arg;
    sqlite3_stmt *st = db_conn_stmt(c, q->sql);
    if (!st)
        return cp_fail(e, CP_EIO, NULL, NULL, "prepare failed");
    if (q->arg && db_bind_text(st, 1, q->arg) != CP_OK)
        return CP_EIO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        q->out = sqlite3_column_int64(st, 0);
        return CP_OK;
    }
    if (rc == SQLITE_DONE)
        return cp_fail(e, CP_ENOTFOUND, "NotFound", NULL, "no row");
    return cp_fail(e, db_err(rc), NULL, NULL, "%s", sqlite3_errmsg(db_conn_handle(c)));
}

static long long read_int(struct db_store *s, const char *sql, const char *arg)
{
    struct qint q = {sql, arg, -1};
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = db_store_read(s, qint_job, &q, &e);
    ck_assert_msg(err == CP_OK, "read %s: %s %s", sql, cp_err_name(err), e.message);
    return q.out;
}

#define SQL_KV      "SELECT n FROM kv WHERE k = ?1"
#define SQL_COUNT_T "SELECT count(*) FROM t"

/* Runs sql (a literal) with text ?1, then returns ret: a job that did its work and then
 * failed must leave nothing behind. */
struct wexec {
    const char *sql;
    const char *text;
    enum cp_err ret;
};

static enum cp_err exec_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct wexec *w = arg;
    sqlite3_stmt *st = db_conn_stmt(c, w->sql);
    if (!st)
        return cp_fail(e, CP_EIO, NULL, NULL, "prepare failed");
    if (db_bind_text(st, 1, w->text) != CP_OK)
        return CP_EIO;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return cp_fail(e, db_err(rc), NULL, NULL, "%s", sqlite3_errmsg(db_conn_handle(c)));
    if (w->ret != CP_OK)
        return cp_fail(e, w->ret, "TestFailure", NULL, "asked to fail after %s", w->text);
    return CP_OK;
}

#define SQL_INSERT_T "INSERT INTO t (v) VALUES (?1)"
#define SQL_T_HAS    "SELECT count(*) FROM t WHERE v = ?1"

static enum cp_err write_text(struct db_store *s, const char *text, enum cp_err ret,
                              struct cp_error *e)
{
    struct wexec w = {SQL_INSERT_T, text, ret};
    return db_store_write(s, exec_job, &w, e);
}

static int count_commit(void *arg)
{
    (*(int *)arg)++;
    return 0; /* 0: let the commit go on */
}

/* Holds the writer thread inside a job until opened, so that other jobs pile up behind it and
 * are then taken as one batch. Also installs the commit counter. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int entered;
    int open;
    int *commits;  /* if set, counts commits of the writer connection */
    long delay_ms; /* extra wait once opened */
    struct db_store *s;
    enum cp_err result;
};

static void gate_init(struct gate *g, struct db_store *s, int *commits)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->s = s;
    g->commits = commits;
}

static enum cp_err gate_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct gate *g = arg;
    if (g->commits)
        sqlite3_commit_hook(db_conn_handle(c), count_commit, g->commits);
    pthread_mutex_lock(&g->mu);
    g->entered = 1;
    pthread_cond_broadcast(&g->cv);
    while (!g->open)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    if (g->delay_ms)
        sleep_ms(g->delay_ms);
    struct wexec w = {SQL_INSERT_T, "gate", CP_OK};
    return exec_job(c, &w, e);
}

static void *gate_thread(void *arg)
{
    struct gate *g = arg;
    g->result = db_store_write(g->s, gate_job, g, NULL);
    return NULL;
}

static void gate_wait_entered(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->entered)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void wait_queued(struct db_store *s, int n)
{
    for (int i = 0; i < 20000 && db_store_queued_writes(s) < n; i++)
        sleep_ms(1);
    ck_assert_int_eq(db_store_queued_writes(s), n);
}

/* ---- migrations ---- */

START_TEST(test_migrations_in_order)
{
    struct db_store *s = open_store(base_m, 3, 2);
    ck_assert_int_eq(db_store_schema_version(s), 3);
    ck_assert_int_eq(read_int(s, "PRAGMA user_version", NULL), 3);
    ck_assert_int_eq(read_int(s, SQL_KV, "order"), 23);
    ck_assert_int_eq(read_int(s, SQL_KV, "count"), 0);
    ck_assert_int_eq(read_int(s, "PRAGMA foreign_keys", NULL), 1);
    ck_assert_int_eq(read_int(s, "PRAGMA synchronous", NULL), 2); /* FULL */
    db_store_close(s);

    /* Reopened with one more: only 0004 runs (0003 again would make "order" 233). */
    s = open_store(base_m, 4, 2);
    ck_assert_int_eq(db_store_schema_version(s), 4);
    ck_assert_int_eq(read_int(s, "PRAGMA user_version", NULL), 4);
    ck_assert_int_eq(read_int(s, SQL_KV, "order"), 23);
    ck_assert_int_eq(read_int(s, SQL_KV, "four"), 4);
    db_store_close(s);

    /* Nothing to do: same version, same data. */
    s = open_store(base_m, 4, 1);
    ck_assert_int_eq(db_store_schema_version(s), 4);
    ck_assert_int_eq(read_int(s, "SELECT count(*) FROM kv", NULL), 3);
    db_store_close(s);
}
END_TEST

START_TEST(test_wal_mode)
{
    struct db_store *s = open_store(base_m, 1, 1);
    db_store_close(s);
    /* journal_mode is a property of the file: check it with a plain connection. */
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(test_path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
}
END_TEST

START_TEST(test_newer_database_refused)
{
    struct db_store *s = open_store(base_m, 3, 1);
    db_store_close(s);

    struct db_store_options opt = {test_path, 1, 0};
    struct cp_error e = {{0}, {0}, {0}};
    s = NULL;
    ck_assert_int_eq(db_store_open_with(&opt, base_m, 2, &s, &e), CP_EIO);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(e.message, "schema version 3") != NULL, "message: %s", e.message);
    ck_assert_msg(strstr(e.message, "version 2") != NULL, "message: %s", e.message);
    ck_assert_msg(strstr(e.message, "refusing") != NULL, "message: %s", e.message);

    /* No migrations at all is "newest 0": also refused. */
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(db_store_open_with(&opt, NULL, 0, &s, &e), CP_EIO);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(e.message, "schema version 3") != NULL, "message: %s", e.message);

    /* The refusal changed nothing. */
    s = open_store(base_m, 3, 1);
    ck_assert_int_eq(read_int(s, "PRAGMA user_version", NULL), 3);
    db_store_close(s);
}
END_TEST

START_TEST(test_failed_migration_keeps_version)
{
    struct db_store *s = open_store(base_m, 2, 1);
    db_store_close(s);

    static const struct db_migration bad[] = {
        {1, "0001_tables.sql", "SELECT 1"}, /* already applied: must not run again */
        {2, "0002_seed.sql", "SELECT 1"},
        {3, "0003_half.sql",
         "CREATE TABLE half (x INTEGER);\n"
         "INSERT INTO half VALUES (1);\n"
         "INSERT INTO nosuch VALUES (1);\n"},
        {4, "0004_never.sql", "CREATE TABLE never (x INTEGER);"},
    };
    struct db_store_options opt = {test_path, 1, 0};
    struct cp_error e = {{0}, {0}, {0}};
    s = NULL;
    ck_assert_int_eq(db_store_open_with(&opt, bad, 4, &s, &e), CP_EIO);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(e.message, "0003_half.sql") != NULL, "message: %s", e.message);
    ck_assert_msg(strstr(e.message, "nosuch") != NULL, "message: %s", e.message);
    ck_assert_msg(strstr(e.message, "schema version 2") != NULL, "message: %s", e.message);

    s = open_store(base_m, 2, 1);
    ck_assert_int_eq(db_store_schema_version(s), 2);
    ck_assert_int_eq(read_int(s, "PRAGMA user_version", NULL), 2);
    ck_assert_int_eq(
        read_int(s, "SELECT count(*) FROM sqlite_master WHERE name IN ('half', 'never')", NULL), 0);
    ck_assert_int_eq(read_int(s, SQL_KV, "order"), 2);
    db_store_close(s);
}
END_TEST

START_TEST(test_migration_with_commit_refused)
{
    static const struct db_migration m[] = {
        {1, "0001_commit.sql", "CREATE TABLE a (x INTEGER); COMMIT;"},
    };
    struct db_store_options opt = {test_path, 1, 0};
    struct cp_error e = {{0}, {0}, {0}};
    struct db_store *s = NULL;
    ck_assert_int_eq(db_store_open_with(&opt, m, 1, &s, &e), CP_EIO);
    ck_assert_ptr_null(s);
    ck_assert_msg(strstr(e.message, "BEGIN/COMMIT") != NULL, "message: %s", e.message);
}
END_TEST

START_TEST(test_bad_arguments)
{
    static const struct db_migration unordered[] = {
        {2, "0002_a.sql", "SELECT 1"},
        {1, "0001_b.sql", "SELECT 1"},
    };
    static const struct db_migration zero[] = {{0, "0000_a.sql", "SELECT 1"}};
    static const struct db_migration nosql[] = {{1, "0001_a.sql", NULL}};
    struct db_store_options opt = {test_path, 1, 0};
    struct cp_error e = {{0}, {0}, {0}};
    struct db_store *s = NULL;
    ck_assert_int_eq(db_store_open_with(&opt, unordered, 2, &s, &e), CP_EINVAL);
    ck_assert_msg(strstr(e.message, "0001_b.sql") != NULL, "message: %s", e.message);
    ck_assert_int_eq(db_store_open_with(&opt, zero, 1, &s, &e), CP_EINVAL);
    ck_assert_int_eq(db_store_open_with(&opt, nosql, 1, &s, &e), CP_EINVAL);
    ck_assert_int_eq(db_store_open_with(&opt, base_m, -1, &s, &e), CP_EINVAL);
    ck_assert_int_eq(db_store_open_with(NULL, base_m, 1, &s, &e), CP_EINVAL);
    struct db_store_options nopath = {NULL, 1, 0};
    ck_assert_int_eq(db_store_open_with(&nopath, base_m, 1, &s, &e), CP_EINVAL);
    struct db_store_options many = {test_path, DB_READERS_MAX + 1, 0};
    ck_assert_int_eq(db_store_open_with(&many, base_m, 1, &s, &e), CP_EINVAL);
    struct db_store_options nodir = {"/nonexistent-dir/x/y.db", 1, 0};
    ck_assert_int_eq(db_store_open_with(&nodir, base_m, 1, &s, &e), CP_EIO);
    ck_assert_ptr_null(s);
    /* Nothing was created by the refused opens. */
    ck_assert_int_eq(access(test_path, F_OK), -1);
    db_store_close(NULL);
    ck_assert_int_eq(db_store_schema_version(NULL), 0);
}
END_TEST

START_TEST(test_embedded_migrations)
{
    struct db_store_options opt = {":memory:", 0, 0};
    struct cp_error e = {{0}, {0}, {0}};
    struct db_store *s = NULL;
    ck_assert_msg(db_store_open(&opt, &s, &e) == CP_OK, "open: %s", e.message);
    int newest = db_migration_count > 0 ? db_migrations[db_migration_count - 1].version : 0;
    ck_assert_int_eq(db_store_schema_version(s), newest);
    ck_assert_int_eq(read_int(s, "PRAGMA user_version", NULL), newest);
    /* The sentinel is there and not counted. */
    ck_assert_int_eq(db_migrations[db_migration_count].version, 0);
    ck_assert_ptr_null(db_migrations[db_migration_count].sql);
    db_store_close(s);
}
END_TEST

/* ---- writes and reads ---- */

START_TEST(test_write_then_read)
{
    struct db_store *s = open_store(base_m, 3, 2);
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(write_text(s, "hello", CP_OK, &e), CP_OK);
    ck_assert_str_eq(e.message, ""); /* untouched on success */
    ck_assert_int_eq(read_int(s, SQL_T_HAS, "hello"), 1);
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), 1);

    /* A job that fails after writing leaves nothing, and its error reaches the caller. */
    ck_assert_int_eq(write_text(s, "nope", CP_ECONFLICT, &e), CP_ECONFLICT);
    ck_assert_str_eq(e.code, "TestFailure");
    ck_assert_str_eq(e.message, "asked to fail after nope");
    ck_assert_int_eq(read_int(s, SQL_T_HAS, "nope"), 0);
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), 1);

    /* Duplicate primary key: extended codes are on, so it is CP_EEXIST. */
    struct wexec dup = {"INSERT INTO kv (k, n) VALUES (?1, 1)", "order", CP_OK};
    ck_assert_int_eq(db_store_write(s, exec_job, &dup, &e), CP_EEXIST);
    ck_assert_int_eq(read_int(s, SQL_KV, "order"), 23);
    /* NOT NULL: another constraint, CP_EINVAL. e may be NULL. */
    struct wexec nul = {SQL_INSERT_T, NULL, CP_OK};
    ck_assert_int_eq(db_store_write(s, exec_job, &nul, NULL), CP_EINVAL);
    /* The store goes on after failures. */
    ck_assert_int_eq(write_text(s, "again", CP_OK, NULL), CP_OK);
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), 2);

    /* A read job's own error comes back with its detail. */
    struct qint q = {SQL_KV, "absent", -1};
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(db_store_read(s, qint_job, &q, &e), CP_ENOTFOUND);
    ck_assert_str_eq(e.code, "NotFound");
    ck_assert_int_eq(db_store_read(s, qint_job, &q, NULL), CP_ENOTFOUND);
    db_store_close(s);
}
END_TEST

static enum cp_err nested_write_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)c;
    (void)e;
    struct gate *g = arg; /* only s is used */
    struct cp_error inner = {{0}, {0}, {0}};
    g->result = db_store_write(g->s, exec_job, NULL, &inner);
    return CP_OK;
}

START_TEST(test_misuse_refused)
{
    struct db_store *s = open_store(base_m, 3, 1);
    struct cp_error e = {{0}, {0}, {0}};
    /* A write on a read connection fails (query_only) instead of racing the writer. */
    struct wexec w = {SQL_INSERT_T, "via-reader", CP_OK};
    ck_assert_int_eq(db_store_read(s, exec_job, &w, &e), CP_EIO);
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), 0);
    /* A write from inside a write job would wait for itself: refused. */
    struct gate g;
    gate_init(&g, s, NULL);
    g.result = CP_OK;
    ck_assert_int_eq(db_store_write(s, nested_write_job, &g, &e), CP_OK);
    ck_assert_int_eq(g.result, CP_EINVAL);
    ck_assert_int_eq(db_store_write(s, NULL, NULL, &e), CP_EINVAL);
    ck_assert_int_eq(db_store_read(s, NULL, NULL, &e), CP_EINVAL);
    ck_assert_int_eq(db_store_write(NULL, exec_job, &w, &e), CP_EINVAL);
    db_store_close(s);
}
END_TEST

struct batch_worker {
    struct db_store *s;
    const char *sql; /* a literal; NULL means SQL_INSERT_T */
    char text[32];
    enum cp_err want; /* what the job returns */
    enum cp_err got;  /* what db_store_write returned */
    struct cp_error e;
};

static void *batch_worker_main(void *arg)
{
    struct batch_worker *w = arg;
    struct wexec x = {w->sql ? w->sql : SQL_INSERT_T, w->text, w->want};
    w->got = db_store_write(w->s, exec_job, &x, &w->e);
    return NULL;
}

START_TEST(test_failing_job_rolled_back_in_batch)
{
    enum { N = 8 };
    struct db_store *s = open_store(base_m, 3, 1);
    int commits = 0;
    struct gate g;
    gate_init(&g, s, &commits);
    pthread_t gt, th[N];
    struct batch_worker w[N];
    ck_assert_int_eq(pthread_create(&gt, NULL, gate_thread, &g), 0);
    gate_wait_entered(&g);
    for (int i = 0; i < N; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].s = s;
        snprintf(w[i].text, sizeof(w[i].text), "job-%d", i);
        w[i].want = i % 2 ? CP_ECONFLICT : CP_OK; /* odd jobs fail after inserting */
        ck_assert_int_eq(pthread_create(&th[i], NULL, batch_worker_main, &w[i]), 0);
    }
    wait_queued(s, N); /* all N wait behind the gate: they will be one batch */
    gate_open(&g);
    ck_assert_int_eq(pthread_join(gt, NULL), 0);
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);

    ck_assert_int_eq(g.result, CP_OK);
    /* One commit for the gate's batch, one for the N jobs together. */
    ck_assert_int_eq(commits, 2);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(w[i].got, w[i].want);
        ck_assert_int_eq(read_int(s, SQL_T_HAS, w[i].text), i % 2 ? 0 : 1);
        if (i % 2)
            ck_assert_str_eq(w[i].e.code, "TestFailure");
    }
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), 1 + N / 2);
    db_store_close(s);
}
END_TEST

START_TEST(test_commit_failure_fails_batch)
{
    /* A deferred foreign key is checked only at COMMIT: a job that breaks one makes the COMMIT
     * of its whole batch fail, so every job of the batch gets CP_EIO. */
    static const struct db_migration m[] = {
        {1, "0001_tables.sql", "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);"},
        {2, "0002_fk.sql",
         "CREATE TABLE p (id INTEGER PRIMARY KEY);\n"
         "CREATE TABLE ch (id INTEGER PRIMARY KEY, pid INTEGER NOT NULL\n"
         "    REFERENCES p (id) DEFERRABLE INITIALLY DEFERRED);\n"},
    };
    struct db_store *s = open_store(m, 2, 1);
    struct gate g;
    gate_init(&g, s, NULL);
    pthread_t gt, th[2];
    ck_assert_int_eq(pthread_create(&gt, NULL, gate_thread, &g), 0);
    gate_wait_entered(&g);
    struct batch_worker good = {.s = s, .text = "good", .want = CP_OK, .got = CP_OK};
    struct batch_worker orphan = {.s = s,
                                  .sql = "INSERT INTO ch (pid) VALUES (CAST(?1 AS INTEGER))",
                                  .text = "99",
                                  .want = CP_OK,
                                  .got = CP_OK};
    ck_assert_int_eq(pthread_create(&th[0], NULL, batch_worker_main, &good), 0);
    ck_assert_int_eq(pthread_create(&th[1], NULL, batch_worker_main, &orphan), 0);
    wait_queued(s, 2);
    gate_open(&g);
    ck_assert_int_eq(pthread_join(gt, NULL), 0);
    ck_assert_int_eq(pthread_join(th[0], NULL), 0);
    ck_assert_int_eq(pthread_join(th[1], NULL), 0);

    ck_assert_int_eq(g.result, CP_OK);
    ck_assert_int_eq(good.got, CP_EIO);
    ck_assert_int_eq(orphan.got, CP_EIO);
    ck_assert_msg(strstr(good.e.message, "COMMIT") != NULL, "message: %s", good.e.message);
    ck_assert_msg(strstr(good.e.message, "FOREIGN KEY") != NULL, "message: %s", good.e.message);
    ck_assert_int_eq(read_int(s, SQL_T_HAS, "gate"), 1);
    ck_assert_int_eq(read_int(s, SQL_T_HAS, "good"), 0);
    ck_assert_int_eq(read_int(s, "SELECT count(*) FROM ch", NULL), 0);
    /* The writer goes on with a clean connection. */
    ck_assert_int_eq(write_text(s, "after", CP_OK, NULL), CP_OK);
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), 2);
    db_store_close(s);
}
END_TEST

/* ---- concurrency ---- */

#define CW_THREADS 8
#define CW_JOBS    500

struct cw_arg {
    struct db_store *s;
    int id;
    int jobs;
    int ok;           /* jobs that returned CP_OK */
    enum cp_err last; /* last error seen */
    char last_msg[CP_ERROR_MESSAGE_MAX];
};

/* Inserts one row and bumps the counter in the same job: any snapshot sees them agree. */
static enum cp_err count_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    const char *text = arg;
    sqlite3_stmt *st = db_conn_stmt(c, SQL_INSERT_T);
    if (!st || db_bind_text(st, 1, text) != CP_OK)
        return cp_fail(e, CP_EIO, NULL, NULL, "prepare/bind");
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return cp_fail(e, db_err(rc), NULL, NULL, "insert: %s", sqlite3_errmsg(db_conn_handle(c)));
    st = db_conn_stmt(c, "UPDATE kv SET n = n + 1 WHERE k = 'count'");
    if (!st)
        return cp_fail(e, CP_EIO, NULL, NULL, "prepare");
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return cp_fail(e, db_err(rc), NULL, NULL, "update: %s", sqlite3_errmsg(db_conn_handle(c)));
    return sqlite3_changes(db_conn_handle(c)) == 1 ? CP_OK : CP_ENOTFOUND;
}

static void *cw_main(void *p)
{
    struct cw_arg *a = p;
    for (int i = 0; i < a->jobs; i++) {
        char text[32];
        snprintf(text, sizeof(text), "w%d-%d", a->id, i);
        struct cp_error e = {{0}, {0}, {0}};
        enum cp_err err = db_store_write(a->s, count_job, text, &e);
        if (err == CP_OK) {
            a->ok++;
        } else {
            a->last = err;
            snprintf(a->last_msg, sizeof(a->last_msg), "%s", e.message);
        }
    }
    return NULL;
}

START_TEST(test_concurrent_writers)
{
    struct db_store *s = open_store(base_m, 3, 2);
    int commits = 0;
    struct gate g;
    gate_init(&g, s, &commits);
    g.open = 1;
    ck_assert_int_eq(db_store_write(s, gate_job, &g, NULL), CP_OK); /* installs the counter */
    ck_assert_int_eq(commits, 1);
    commits = 0;

    pthread_t th[CW_THREADS];
    struct cw_arg a[CW_THREADS];
    for (int i = 0; i < CW_THREADS; i++) {
        memset(&a[i], 0, sizeof(a[i]));
        a[i].s = s;
        a[i].id = i;
        a[i].jobs = CW_JOBS;
        ck_assert_int_eq(pthread_create(&th[i], NULL, cw_main, &a[i]), 0);
    }
    for (int i = 0; i < CW_THREADS; i++)
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
    for (int i = 0; i < CW_THREADS; i++)
        ck_assert_msg(a[i].ok == CW_JOBS, "thread %d: %d ok, last %s: %s", i, a[i].ok,
                      cp_err_name(a[i].last), a[i].last_msg);
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), 1 + CW_THREADS * CW_JOBS);
    ck_assert_int_eq(read_int(s, SQL_KV, "count"), CW_THREADS * CW_JOBS);
    ck_assert_int_eq(read_int(s, "SELECT count(DISTINCT v) FROM t", NULL),
                     1 + CW_THREADS * CW_JOBS);
    ck_assert_int_eq(read_int(s, SQL_T_HAS, "w7-499"), 1);
    /* Group commit: fewer transactions than jobs, none over the batch cap. */
    ck_assert_int_lt(commits, CW_THREADS * CW_JOBS);
    ck_assert_int_ge(commits, CW_THREADS * CW_JOBS / DB_WRITE_BATCH_MAX);
    db_store_close(s);

    /* Durable: a fresh open sees every row. */
    s = open_store(base_m, 3, 1);
    ck_assert_int_eq(read_int(s, SQL_KV, "count"), CW_THREADS * CW_JOBS);
    db_store_close(s);
}
END_TEST

struct snap {
    long long rows;
    long long count;
};

/* Two statements, a pause between them: they agree only if both read one snapshot. */
static enum cp_err snap_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct snap *sn = arg;
    struct qint q1 = {SQL_COUNT_T, NULL, -1};
    struct qint q2 = {SQL_KV, "count", -1};
    enum cp_err err = qint_job(c, &q1, e);
    if (err != CP_OK)
        return err;
    sleep_ms(1);
    if ((err = qint_job(c, &q2, e)) != CP_OK)
        return err;
    sn->rows = q1.out;
    sn->count = q2.out;
    return CP_OK;
}

struct rd_arg {
    struct db_store *s;
    volatile int *stop; /* read under stop_mu */
    pthread_mutex_t *stop_mu;
    int reads;
    int failures;
    int torn;       /* snapshots where rows != count */
    int backwards;  /* a later read saw fewer rows */
    long long last; /* rows seen last */
};

static void *rd_main(void *p)
{
    struct rd_arg *a = p;
    for (;;) {
        pthread_mutex_lock(a->stop_mu);
        int stop = *a->stop;
        pthread_mutex_unlock(a->stop_mu);
        if (stop)
            break;
        struct snap sn = {-1, -1};
        if (db_store_read(a->s, snap_job, &sn, NULL) != CP_OK) {
            a->failures++;
            continue;
        }
        a->reads++;
        if (sn.rows != sn.count)
            a->torn++;
        if (sn.rows < a->last)
            a->backwards++;
        a->last = sn.rows;
    }
    return NULL;
}

START_TEST(test_reads_during_writes)
{
    enum { WRITERS = 4, JOBS = 200, READERS = 3 };
    struct db_store *s = open_store(base_m, 3, 2); /* fewer connections than readers: they wait */
    volatile int stop = 0;
    pthread_mutex_t stop_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_t wt[WRITERS], rt[READERS];
    struct cw_arg wa[WRITERS];
    struct rd_arg ra[READERS];
    for (int i = 0; i < READERS; i++) {
        memset(&ra[i], 0, sizeof(ra[i]));
        ra[i].s = s;
        ra[i].stop = &stop;
        ra[i].stop_mu = &stop_mu;
        ck_assert_int_eq(pthread_create(&rt[i], NULL, rd_main, &ra[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++) {
        memset(&wa[i], 0, sizeof(wa[i]));
        wa[i].s = s;
        wa[i].id = i;
        wa[i].jobs = JOBS;
        ck_assert_int_eq(pthread_create(&wt[i], NULL, cw_main, &wa[i]), 0);
    }
    for (int i = 0; i < WRITERS; i++)
        ck_assert_int_eq(pthread_join(wt[i], NULL), 0);
    pthread_mutex_lock(&stop_mu);
    stop = 1;
    pthread_mutex_unlock(&stop_mu);
    for (int i = 0; i < READERS; i++)
        ck_assert_int_eq(pthread_join(rt[i], NULL), 0);

    for (int i = 0; i < WRITERS; i++)
        ck_assert_int_eq(wa[i].ok, JOBS);
    for (int i = 0; i < READERS; i++) {
        ck_assert_int_gt(ra[i].reads, 0);
        ck_assert_int_eq(ra[i].failures, 0);
        ck_assert_int_eq(ra[i].torn, 0);
        ck_assert_int_eq(ra[i].backwards, 0);
    }
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), WRITERS * JOBS);
    db_store_close(s);
}
END_TEST

START_TEST(test_close_drains)
{
    enum { N = 32 };
    struct db_store *s = open_store(base_m, 3, 1);
    struct gate g;
    gate_init(&g, s, NULL);
    g.delay_ms = 50; /* lets db_store_close() begin while the N jobs are still queued */
    pthread_t gt, th[N];
    struct batch_worker w[N];
    ck_assert_int_eq(pthread_create(&gt, NULL, gate_thread, &g), 0);
    gate_wait_entered(&g);
    for (int i = 0; i < N; i++) {
        memset(&w[i], 0, sizeof(w[i]));
        w[i].s = s;
        snprintf(w[i].text, sizeof(w[i].text), "drain-%d", i);
        w[i].want = CP_OK;
        w[i].got = CP_EIO;
        ck_assert_int_eq(pthread_create(&th[i], NULL, batch_worker_main, &w[i]), 0);
    }
    wait_queued(s, N);
    gate_open(&g);
    db_store_close(s); /* returns only once all N are committed and their callers are out */
    ck_assert_int_eq(pthread_join(gt, NULL), 0);
    ck_assert_int_eq(g.result, CP_OK);
    for (int i = 0; i < N; i++) {
        ck_assert_int_eq(pthread_join(th[i], NULL), 0);
        ck_assert_int_eq(w[i].got, CP_OK);
    }
    s = open_store(base_m, 3, 1);
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), N + 1);
    ck_assert_int_eq(read_int(s, SQL_T_HAS, "drain-31"), 1);
    db_store_close(s);
}
END_TEST

START_TEST(test_memory_path)
{
    struct db_store_options opt = {":memory:", 2, 0};
    struct cp_error e = {{0}, {0}, {0}};
    struct db_store *s = NULL;
    ck_assert_msg(db_store_open_with(&opt, base_m, 3, &s, &e) == CP_OK, "open: %s", e.message);
    ck_assert_int_eq(db_store_schema_version(s), 3);
    ck_assert_int_eq(write_text(s, "mem", CP_OK, NULL), CP_OK);
    /* The readers share the writer's database (a plain :memory: would not). */
    ck_assert_int_eq(read_int(s, SQL_T_HAS, "mem"), 1);
    ck_assert_int_eq(read_int(s, "PRAGMA synchronous", NULL), 0); /* OFF: throwaway */
    db_store_close(s);

    /* A second one is a different database. */
    ck_assert_msg(db_store_open_with(&opt, base_m, 3, &s, &e) == CP_OK, "open: %s", e.message);
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), 0);
    db_store_close(s);
}
END_TEST

/* ---- statement cache ---- */

static char cache_sql[DB_STMT_CACHE_MAX + 16][32];

static int count_stmts(struct db_conn *c)
{
    int n = 0;
    for (sqlite3_stmt *st = sqlite3_next_stmt(db_conn_handle(c), NULL); st;
         st = sqlite3_next_stmt(db_conn_handle(c), st))
        n++;
    return n;
}

struct cache_step {
    int phase;
    int base;       /* statements on the connection before the cache was used */
    int nonnull;    /* db_conn_stmt() calls that returned a statement */
    int first_null; /* index of the first NULL, or -1 */
    int stmts;      /* statements on the connection after the phase */
    sqlite3_stmt *a, *b;
    int a_val, b_null;
};

static enum cp_err cache_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct cache_step *cs = arg;
    cs->first_null = -1;
    int from = 0, to = 0;
    switch (cs->phase) {
    case 0:
        cs->base = count_stmts(c);
        /* Same pointer, then same text at another address: one statement, reset, cleared. */
        cs->a = db_conn_stmt(c, "SELECT ?1");
        sqlite3_bind_int(cs->a, 1, 42);
        if (sqlite3_step(cs->a) == SQLITE_ROW)
            cs->a_val = sqlite3_column_int(cs->a, 0);
        char copy[16];
        snprintf(copy, sizeof(copy), "%s", "SELECT ?1");
        cs->b = db_conn_stmt(c, copy);
        if (sqlite3_step(cs->b) == SQLITE_ROW)
            cs->b_null = sqlite3_column_type(cs->b, 0) == SQLITE_NULL;
        cs->stmts = count_stmts(c);
        return CP_OK;
    case 1: /* bad SQL, two statements, empty: NULL, nothing cached */
        cs->a = db_conn_stmt(c, "SELEC nonsense");
        cs->b = db_conn_stmt(c, "SELECT 1; SELECT 2");
        cs->nonnull = db_conn_stmt(c, "  ") != NULL;
        cs->stmts = count_stmts(c);
        return CP_OK;
    case 2: /* fill to the cap (one slot already holds "SELECT ?1") */
        from = 0;
        to = DB_STMT_CACHE_MAX - 1;
        break;
    case 3: /* beyond the cap across jobs: slots of earlier jobs are recycled */
        from = DB_STMT_CACHE_MAX - 1;
        to = DB_STMT_CACHE_MAX + 9;
        break;
    case 4: /* beyond the cap within one job: the statement that does not fit is NULL */
        from = 0;
        to = DB_STMT_CACHE_MAX + 1;
        break;
    default:
        break;
    }
    for (int i = from; i < to; i++) {
        if (db_conn_stmt(c, cache_sql[i]))
            cs->nonnull++;
        else if (cs->first_null < 0)
            cs->first_null = i - from;
    }
    cs->stmts = count_stmts(c);
    return CP_OK;
}

START_TEST(test_stmt_cache)
{
    for (int i = 0; i < DB_STMT_CACHE_MAX + 16; i++)
        snprintf(cache_sql[i], sizeof(cache_sql[i]), "SELECT %d", i);
    struct db_store *s = open_store(base_m, 1, 1); /* one reader: every job on the same conn */
    struct cache_step cs;

    memset(&cs, 0, sizeof(cs));
    ck_assert_int_eq(db_store_read(s, cache_job, &cs, NULL), CP_OK);
    int base = cs.base;
    ck_assert_ptr_nonnull(cs.a);
    ck_assert_ptr_eq(cs.a, cs.b);
    ck_assert_int_eq(cs.a_val, 42);
    ck_assert_int_eq(cs.b_null, 1);
    ck_assert_int_eq(cs.stmts, base + 1);

    memset(&cs, 0, sizeof(cs));
    cs.phase = 1;
    ck_assert_int_eq(db_store_read(s, cache_job, &cs, NULL), CP_OK);
    ck_assert_ptr_null(cs.a);
    ck_assert_ptr_null(cs.b);
    ck_assert_int_eq(cs.nonnull, 0);
    ck_assert_int_eq(cs.stmts, base + 1);

    memset(&cs, 0, sizeof(cs));
    cs.phase = 2;
    ck_assert_int_eq(db_store_read(s, cache_job, &cs, NULL), CP_OK);
    ck_assert_int_eq(cs.nonnull, DB_STMT_CACHE_MAX - 1);
    ck_assert_int_eq(cs.first_null, -1);
    ck_assert_int_eq(cs.stmts, base + DB_STMT_CACHE_MAX);

    memset(&cs, 0, sizeof(cs));
    cs.phase = 3;
    ck_assert_int_eq(db_store_read(s, cache_job, &cs, NULL), CP_OK);
    ck_assert_int_eq(cs.nonnull, 10);
    ck_assert_int_eq(cs.first_null, -1);
    ck_assert_int_eq(cs.stmts, base + DB_STMT_CACHE_MAX); /* bounded */

    memset(&cs, 0, sizeof(cs));
    cs.phase = 4;
    ck_assert_int_eq(db_store_read(s, cache_job, &cs, NULL), CP_OK);
    ck_assert_int_eq(cs.nonnull, DB_STMT_CACHE_MAX);
    ck_assert_int_eq(cs.first_null, DB_STMT_CACHE_MAX);
    ck_assert_int_eq(cs.stmts, base + DB_STMT_CACHE_MAX);

    /* Recycled statements still answer correctly. */
    ck_assert_int_eq(read_int(s, cache_sql[3], NULL), 3);
    ck_assert_int_eq(read_int(s, cache_sql[DB_STMT_CACHE_MAX + 5], NULL), DB_STMT_CACHE_MAX + 5);
    db_store_close(s);
}
END_TEST

/* A job that leaves a SELECT mid-way: the store resets it, so the snapshot does not linger. */
static enum cp_err leave_running_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)arg;
    (void)e;
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT v FROM t");
    return st && sqlite3_step(st) == SQLITE_ROW ? CP_OK : CP_EIO;
}

static enum cp_err busy_stmts_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    int *busy = arg;
    *busy = 0;
    for (sqlite3_stmt *st = sqlite3_next_stmt(db_conn_handle(c), NULL); st;
         st = sqlite3_next_stmt(db_conn_handle(c), st))
        *busy += sqlite3_stmt_busy(st) != 0;
    return CP_OK;
}

START_TEST(test_running_statement_reset)
{
    struct db_store *s = open_store(base_m, 3, 1);
    ck_assert_int_eq(write_text(s, "a", CP_OK, NULL), CP_OK);
    ck_assert_int_eq(write_text(s, "b", CP_OK, NULL), CP_OK);
    ck_assert_int_eq(db_store_read(s, leave_running_job, NULL, NULL), CP_OK);
    int busy = -1;
    ck_assert_int_eq(db_store_read(s, busy_stmts_job, &busy, NULL), CP_OK);
    ck_assert_int_eq(busy, 0);
    /* Same on the writer. */
    ck_assert_int_eq(db_store_write(s, leave_running_job, NULL, NULL), CP_OK);
    busy = -1;
    ck_assert_int_eq(db_store_write(s, busy_stmts_job, &busy, NULL), CP_OK);
    ck_assert_int_eq(busy, 0);
    /* And the reader sees later writes (its snapshot ended with its job). */
    ck_assert_int_eq(write_text(s, "c", CP_OK, NULL), CP_OK);
    ck_assert_int_eq(read_int(s, SQL_COUNT_T, NULL), 3);
    db_store_close(s);
}
END_TEST

/* ---- helpers ---- */

START_TEST(test_db_err)
{
    ck_assert_int_eq(db_err(SQLITE_OK), CP_OK);
    ck_assert_int_eq(db_err(SQLITE_ROW), CP_OK);
    ck_assert_int_eq(db_err(SQLITE_DONE), CP_OK);
    ck_assert_int_eq(db_err(SQLITE_CONSTRAINT_UNIQUE), CP_EEXIST);
    ck_assert_int_eq(db_err(SQLITE_CONSTRAINT_PRIMARYKEY), CP_EEXIST);
    ck_assert_int_eq(db_err(SQLITE_CONSTRAINT_NOTNULL), CP_EINVAL);
    ck_assert_int_eq(db_err(SQLITE_CONSTRAINT_FOREIGNKEY), CP_EINVAL);
    ck_assert_int_eq(db_err(SQLITE_CONSTRAINT_CHECK), CP_EINVAL);
    ck_assert_int_eq(db_err(SQLITE_CONSTRAINT), CP_EINVAL);
    ck_assert_int_eq(db_err(SQLITE_NOMEM), CP_ENOMEM);
    ck_assert_int_eq(db_err(SQLITE_BUSY), CP_EIO);
    ck_assert_int_eq(db_err(SQLITE_IOERR_FSYNC), CP_EIO);
    ck_assert_int_eq(db_err(SQLITE_ERROR), CP_EIO);
}
END_TEST

struct copy_out {
    char h3[3], h4[4], h8[8], nul[4], abc[4], big[16], one[1];
    int bound_null;
};

static enum cp_err copy_job(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct copy_out *o = arg;
    /* char(233) is U+00E9, two bytes in UTF-8: "h\xC3\xA9llo" is 7 bytes. */
    sqlite3_stmt *st = db_conn_stmt(c, "SELECT 'h' || char(233) || 'llo', NULL, 'abcdef'");
    if (!st || sqlite3_step(st) != SQLITE_ROW)
        return CP_EIO;
    db_column_copy(st, 0, o->h3, sizeof(o->h3));
    db_column_copy(st, 0, o->h4, sizeof(o->h4));
    db_column_copy(st, 0, o->h8, sizeof(o->h8));
    db_column_copy(st, 1, o->nul, sizeof(o->nul));
    db_column_copy(st, 2, o->abc, sizeof(o->abc));
    db_column_copy(st, 2, o->big, sizeof(o->big));
    db_column_copy(st, 2, o->one, sizeof(o->one));
    db_column_copy(st, 2, o->one, 0); /* no room: nothing written */
    st = db_conn_stmt(c, "SELECT ?1 IS NULL");
    if (!st || db_bind_text(st, 1, NULL) != CP_OK || sqlite3_step(st) != SQLITE_ROW)
        return CP_EIO;
    o->bound_null = sqlite3_column_int(st, 0);
    return CP_OK;
}

START_TEST(test_column_copy_and_bind)
{
    struct db_store *s = open_store(base_m, 1, 1);
    struct copy_out o;
    memset(&o, 'x', sizeof(o));
    o.bound_null = -1;
    ck_assert_int_eq(db_store_read(s, copy_job, &o, NULL), CP_OK);
    ck_assert_str_eq(o.h3, "h");         /* "h\xC3" would split the character */
    ck_assert_str_eq(o.h4, "h\xC3\xA9"); /* the whole character fits */
    ck_assert_str_eq(o.h8, "h\xC3\xA9llo");
    ck_assert_str_eq(o.nul, "");
    ck_assert_str_eq(o.abc, "abc");
    ck_assert_str_eq(o.big, "abcdef");
    ck_assert_int_eq(o.one[0], '\0');
    ck_assert_int_eq(o.bound_null, 1);
    ck_assert_int_eq(db_bind_text(NULL, 1, "x"), CP_EINVAL);
    db_store_close(s);
}
END_TEST

static Suite *db_store_suite(void)
{
    Suite *s = suite_create("db_store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 100);
    tcase_add_test(tc, test_migrations_in_order);
    tcase_add_test(tc, test_wal_mode);
    tcase_add_test(tc, test_newer_database_refused);
    tcase_add_test(tc, test_failed_migration_keeps_version);
    tcase_add_test(tc, test_migration_with_commit_refused);
    tcase_add_test(tc, test_bad_arguments);
    tcase_add_test(tc, test_embedded_migrations);
    tcase_add_test(tc, test_write_then_read);
    tcase_add_test(tc, test_misuse_refused);
    tcase_add_test(tc, test_failing_job_rolled_back_in_batch);
    tcase_add_test(tc, test_commit_failure_fails_batch);
    tcase_add_test(tc, test_concurrent_writers);
    tcase_add_test(tc, test_reads_during_writes);
    tcase_add_test(tc, test_close_drains);
    tcase_add_test(tc, test_memory_path);
    tcase_add_test(tc, test_stmt_cache);
    tcase_add_test(tc, test_running_statement_reset);
    tcase_add_test(tc, test_db_err);
    tcase_add_test(tc, test_column_copy_and_bind);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(db_store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
