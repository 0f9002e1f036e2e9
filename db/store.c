/*
 * The SQLite store behind db/store.h: opening and pragmas, the migration runner, the
 * group-commit writer thread, the read-connection pool and the per-connection statement cache.
 * Nothing here knows a table; db/<table>.c files hold the SQL.
 *
 * Locking: one mutex (store.mu) guards the write queue, the pool of free read connections and
 * the closing state. It is never held while SQLite runs: the writer takes a batch off the queue
 * under the lock, runs it without, then retakes the lock only to hand out the results. A
 * connection is used by one thread at a time (the writer's by the writer thread alone, a
 * reader's by whichever caller took it from the pool), so connections are opened NOMUTEX.
 */
#include "db/store.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define MEMORY_PATH ":memory:"
#define MEMORY_DIR  "/tmp/netwatch-db-XXXXXX"
#define MEMORY_FILE "store.db"
#define LOG_SQL_MAX 160 /* characters of SQL text quoted in a log line */

/*
 * Transaction-control statements, kept prepared on every connection outside the statement
 * cache: eviction never touches them and a batch of writes costs no parsing.
 */
enum ctl {
    CTL_BEGIN_READ,  /* deferred: the read snapshot starts at the first read */
    CTL_BEGIN_WRITE, /* IMMEDIATE: take the write lock up front, never upgrade mid-batch */
    CTL_COMMIT,
    CTL_ROLLBACK,
    CTL_SAVEPOINT, /* one per job, so a failing job is undone alone */
    CTL_RELEASE,
    CTL_ROLLBACK_TO, /* undoes the job but leaves the savepoint open: RELEASE follows */
    CTL_COUNT
};

static const char *const ctl_sql[CTL_COUNT] = {
    [CTL_BEGIN_READ] = "BEGIN",
    [CTL_BEGIN_WRITE] = "BEGIN IMMEDIATE",
    [CTL_COMMIT] = "COMMIT",
    [CTL_ROLLBACK] = "ROLLBACK",
    [CTL_SAVEPOINT] = "SAVEPOINT job",
    [CTL_RELEASE] = "RELEASE job",
    [CTL_ROLLBACK_TO] = "ROLLBACK TO job",
};

enum conn_role { ROLE_WRITER, ROLE_READER };

/* One cached prepared statement. */
struct stmt_slot {
    const char *key;  /* the caller's SQL pointer (a string literal), the fast lookup key */
    sqlite3_stmt *st; /* owned; its own copy of the text (sqlite3_sql) is the slow key */
    uint64_t used;    /* conn.job of the last job that asked for it: the LRU clock */
};

struct db_conn {
    sqlite3 *db;         /* owned */
    enum conn_role role; /* for pragmas and logs */
    uint64_t job;        /* jobs started on this connection; slots used == job are pinned */
    int nslots;          /* slots in use, filled from 0 */
    sqlite3_stmt *ctl[CTL_COUNT]; /* owned, see enum ctl */
    /*
     * A plain array, scanned linearly: 128 pointer compares cost less than hashing the text,
     * and the set of SQL texts is fixed at compile time (STYLE.md: SQL is constant), so it is
     * small. The bound keeps a program that somehow builds SQL at runtime from growing the
     * cache without end: it then recycles slots instead.
     */
    struct stmt_slot slots[DB_STMT_CACHE_MAX];
};

/* A write job; lives on the caller's stack while the caller waits for it. */
struct db_job {
    db_job_fn fn;
    void *arg;               /* borrowed from the caller */
    struct cp_error *e;      /* the caller's, or scratch */
    enum cp_err result;      /* written by the writer thread before done */
    int done;                /* set under store.mu once result is final and durable */
    pthread_cond_t cv;       /* the caller waits on it (with store.mu) for done */
    struct db_job *next;     /* queue link */
    struct cp_error scratch; /* e when the caller passed none */
};

/* Which synchronisation objects were initialised, so cleanup destroys exactly those. */
enum {
    SYNC_MU = 1 << 0,
    SYNC_WORK = 1 << 1,
    SYNC_SPACE = 1 << 2,
    SYNC_READER = 1 << 3,
    SYNC_IDLE = 1 << 4,
};

struct db_store {
    char *path;               /* owned: the database file in use */
    char *tmpdir;             /* owned: the directory of a ":memory:" database, else NULL */
    int schema_version;       /* user_version after open; constant afterwards */
    struct db_conn *writer;   /* owned; touched only by the writer thread once it runs */
    struct db_conn **readers; /* owned array of nreaders owned connections */
    int nreaders;
    struct db_conn **idle_readers; /* owned array: a stack of the nidle free readers */
    int nidle;
    unsigned sync; /* SYNC_* flags */

    pthread_mutex_t mu;       /* guards the fields below, up to writer_tid */
    pthread_cond_t work_cv;   /* writer: a job was queued, or stopping */
    pthread_cond_t space_cv;  /* callers: the queue dropped below DB_WRITE_QUEUE_MAX */
    pthread_cond_t reader_cv; /* callers: a read connection came back, or stopping */
    pthread_cond_t idle_cv;   /* close: the last caller left */
    struct db_job *head;      /* queue of jobs not yet taken, oldest first */
    struct db_job *tail;
    int queued;         /* jobs in the queue, <= DB_WRITE_QUEUE_MAX */
    int active;         /* callers inside db_store_write() / db_store_read() */
    int stopping;       /* db_store_close() began: refuse new work */
    int writer_running; /* writer_tid is a live thread to join */
    pthread_t writer_tid;

    struct db_job *batch[DB_WRITE_BATCH_MAX]; /* writer thread only: the batch being run */
};

/* ---- small SQLite helpers ---- */

enum cp_err db_err(int rc)
{
    switch (rc) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE:
        return CP_OK;
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return CP_EEXIST;
    default:
        break;
    }
    /* The low byte of an extended code is its primary code. */
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
        return CP_EINVAL;
    case SQLITE_NOMEM:
        return CP_ENOMEM;
    default:
        return CP_EIO;
    }
}

enum cp_err db_bind_text(sqlite3_stmt *st, int idx, const char *s)
{
    if (!st)
        return CP_EINVAL;
    int rc = s ? sqlite3_bind_text(st, idx, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, idx);
    return db_err(rc);
}

void db_column_copy(sqlite3_stmt *st, int col, char *out, size_t outsz)
{
    if (!out || outsz == 0)
        return;
    const unsigned char *t = st ? sqlite3_column_text(st, col) : NULL;
    if (!t) {
        out[0] = '\0';
        return;
    }
    size_t n = (size_t)sqlite3_column_bytes(st, col); /* after column_text: the UTF-8 length */
    if (n >= outsz) {
        n = outsz - 1;
        /* t[n] is the first byte left out; while it continues a character, that character
         * started inside the copy: drop it whole rather than keep half of it. */
        while (n > 0 && (t[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(out, t, n);
    out[n] = '\0';
}

sqlite3 *db_conn_handle(struct db_conn *c)
{
    return c ? c->db : NULL;
}

/* Steps a transaction-control statement once; SQLITE_OK or the SQLite error. */
static int ctl_run(struct db_conn *c, enum ctl which)
{
    int rc = sqlite3_step(c->ctl[which]);
    sqlite3_reset(c->ctl[which]);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Runs a pragma returning one integer. */
static int pragma_int(sqlite3 *db, const char *sql, int *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        } else if (rc == SQLITE_DONE) {
            rc = SQLITE_ERROR; /* the pragma is not compiled in */
        }
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- statement cache ---- */

sqlite3_stmt *db_conn_stmt(struct db_conn *c, const char *sql)
{
    if (!c || !sql)
        return NULL;
    struct stmt_slot *hit = NULL;
    /* Pointer first: call sites pass literals, so this nearly always finds the slot at once.
     * The text still decides (one strcmp, noise next to running the statement), so a caller
     * that breaks the literal rule gets a wrong-text miss, never someone else's statement.
     * The same text from another translation unit may sit at another address: scan by text. */
    for (int i = 0; i < c->nslots && !hit; i++)
        if (c->slots[i].key == sql && strcmp(sqlite3_sql(c->slots[i].st), sql) == 0)
            hit = &c->slots[i];
    for (int i = 0; i < c->nslots && !hit; i++)
        if (strcmp(sqlite3_sql(c->slots[i].st), sql) == 0)
            hit = &c->slots[i];
    if (hit) {
        /* reset's result repeats the last step's error, which that step's caller handled. */
        sqlite3_reset(hit->st);
        sqlite3_clear_bindings(hit->st);
        hit->used = c->job;
        return hit->st;
    }

    struct stmt_slot *slot = NULL;
    if (c->nslots < DB_STMT_CACHE_MAX) {
        slot = &c->slots[c->nslots];
    } else {
        /* Full: recycle the least recently used statement of an earlier job. The current job
         * may still hold any statement it was given, so those are never finalized. */
        for (int i = 0; i < c->nslots; i++)
            if (c->slots[i].used < c->job && (!slot || c->slots[i].used < slot->used))
                slot = &c->slots[i];
        if (!slot) {
            log_error("component=db event=stmt_cache_full conn=%s max=%d sql=\"%.*s\"",
                      c->role == ROLE_WRITER ? "writer" : "reader", DB_STMT_CACHE_MAX, LOG_SQL_MAX,
                      sql);
            return NULL;
        }
    }

    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK || !st) {
        /* !st with SQLITE_OK: the text held no statement at all. */
        log_error("component=db event=prepare_failed conn=%s rc=%d error=\"%s\" sql=\"%.*s\"",
                  c->role == ROLE_WRITER ? "writer" : "reader", rc,
                  rc != SQLITE_OK ? sqlite3_errmsg(c->db) : "no statement", LOG_SQL_MAX, sql);
        sqlite3_finalize(st);
        return NULL;
    }
    /* A second statement in the text would silently never run: refuse it. */
    while (tail &&
           (*tail == ' ' || *tail == '\n' || *tail == '\t' || *tail == '\r' || *tail == ';'))
        tail++;
    if (tail && *tail) {
        log_error("component=db event=prepare_failed conn=%s error=\"more than one statement\""
                  " sql=\"%.*s\"",
                  c->role == ROLE_WRITER ? "writer" : "reader", LOG_SQL_MAX, sql);
        sqlite3_finalize(st);
        return NULL;
    }
    if (slot == &c->slots[c->nslots])
        c->nslots++;
    else
        sqlite3_finalize(slot->st);
    slot->key = sql;
    slot->st = st;
    slot->used = c->job;
    return st;
}

/* Marks the start of a job on c: statements handed out from now on are pinned until the next. */
static void conn_job_begin(struct db_conn *c)
{
    c->job++;
}

/* Resets every statement the job left mid-step, so none holds a read cursor (or the snapshot)
 * open past the job, and a later ROLLBACK TO or COMMIT sees no running statement. */
static void conn_job_end(struct db_conn *c)
{
    sqlite3_stmt *st = NULL;
    while ((st = sqlite3_next_stmt(c->db, st)) != NULL)
        if (sqlite3_stmt_busy(st))
            sqlite3_reset(st);
}

/* ---- connections ---- */

static void conn_close(struct db_conn *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->nslots; i++)
        sqlite3_finalize(c->slots[i].st);
    for (int i = 0; i < CTL_COUNT; i++)
        sqlite3_finalize(c->ctl[i]);
    if (c->db && sqlite3_close(c->db) != SQLITE_OK) {
        /* A job kept a statement of its own: say so, and let SQLite close once it goes. */
        log_error("component=db event=close_busy conn=%s error=\"%s\"",
                  c->role == ROLE_WRITER ? "writer" : "reader", sqlite3_errmsg(c->db));
        sqlite3_close_v2(c->db);
    }
    free(c);
}

/* Runs pragmas that return nothing we need; fills e on failure. */
static enum cp_err conn_exec(struct db_conn *c, const char *sql, struct cp_error *e)
{
    char *msg = NULL;
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);
    if (rc == SQLITE_OK)
        return CP_OK;
    enum cp_err err = cp_fail(e, db_err(rc) == CP_ENOMEM ? CP_ENOMEM : CP_EIO, NULL, NULL,
                              "store: \"%s\" failed: %s", sql, msg ? msg : sqlite3_errstr(rc));
    sqlite3_free(msg);
    return err;
}

/*
 * Opens one connection to path with the store's pragmas. The writer creates the file and turns
 * WAL on (a property of the file, so readers find it on); readers are query_only, so a job that
 * writes on a read connection fails at once instead of racing the writer for the lock.
 * memory: a throwaway test database, not fsynced.
 */
static enum cp_err conn_open(const char *path, enum conn_role role, int busy_ms, int memory,
                             struct db_conn **out, struct cp_error *e)
{
    enum cp_err err = CP_OK;
    struct db_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return cp_fail(e, CP_ENOMEM, NULL, NULL, "store: out of memory opening %s", path);
    c->role = role;
    /* NOMUTEX: one thread at a time per connection is the store's rule, so SQLite's own
     * per-connection mutex would only cost. PRIVATECACHE: shared cache would bring table
     * locks (SQLITE_LOCKED) that busy_timeout does not wait out. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_PRIVATECACHE;
    if (role == ROLE_WRITER)
        flags |= SQLITE_OPEN_CREATE;
    int rc = sqlite3_open_v2(path, &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        err = cp_fail(e, CP_EIO, NULL, NULL, "store: cannot open database %s: %s", path,
                      c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
        goto cleanup;
    }
    /* Extended codes let db_err() tell a duplicate key (CP_EEXIST) from other constraints. */
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_timeout(c->db, busy_ms);

    if (role == ROLE_WRITER) {
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
        if (rc == SQLITE_OK)
            rc = sqlite3_step(st);
        /* The pragma answers with the mode now in force: anything but wal means readers would
         * block the writer (or an in-memory file), which the design does not allow. */
        const unsigned char *mode = rc == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
        int wal = mode && strcmp((const char *)mode, "wal") == 0;
        if (!wal)
            err = cp_fail(e, CP_EIO, NULL, NULL, "store: cannot put %s in WAL mode: %s", path,
                          rc == SQLITE_ROW ? (mode ? (const char *)mode : "no mode")
                                           : sqlite3_errmsg(c->db));
        sqlite3_finalize(st);
        if (err != CP_OK)
            goto cleanup;
    }
    if ((err = conn_exec(c, "PRAGMA foreign_keys=ON", e)) != CP_OK)
        goto cleanup;
    int fk = 0;
    if (pragma_int(c->db, "PRAGMA foreign_keys", &fk) != SQLITE_OK || fk != 1) {
        err = cp_fail(e, CP_EIO, NULL, NULL,
                      "store: this SQLite does not enforce foreign keys (%s)", path);
        goto cleanup;
    }
    /* FULL in WAL mode fsyncs the WAL at every commit: a group commit is durable on power loss
     * before any of its callers is answered. */
    if ((err = conn_exec(c, memory ? "PRAGMA synchronous=OFF" : "PRAGMA synchronous=FULL", e)) !=
        CP_OK)
        goto cleanup;
    if (role == ROLE_READER && (err = conn_exec(c, "PRAGMA query_only=ON", e)) != CP_OK)
        goto cleanup;
    for (int i = 0; i < CTL_COUNT; i++) {
        rc = sqlite3_prepare_v3(c->db, ctl_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &c->ctl[i], NULL);
        if (rc != SQLITE_OK) {
            err = cp_fail(e, db_err(rc) == CP_ENOMEM ? CP_ENOMEM : CP_EIO, NULL, NULL,
                          "store: cannot prepare %s: %s", ctl_sql[i], sqlite3_errmsg(c->db));
            goto cleanup;
        }
    }
    *out = c;
    return CP_OK;

cleanup:
    conn_close(c);
    return err;
}

/* ---- migrations ---- */

static enum cp_err migrations_check(const struct db_migration *m, int count, struct cp_error *e)
{
    int prev = 0;
    for (int i = 0; i < count; i++) {
        if (!m[i].sql || m[i].version <= prev)
            return cp_fail(e, CP_EINVAL, NULL, NULL,
                           "store: migration %s (version %d) is out of order or empty: versions "
                           "must be > 0 and strictly increasing",
                           m[i].name ? m[i].name : "?", m[i].version);
        prev = m[i].version;
    }
    return CP_OK;
}

static enum cp_err refuse_newer(const char *path, int found, int newest, struct cp_error *e)
{
    return cp_fail(e, CP_EIO, NULL, NULL,
                   "store: database %s has schema version %d, newer than version %d, the newest "
                   "this build knows; refusing to open it (run the netwatchd that wrote it, or a "
                   "newer one)",
                   path, found, newest);
}

/*
 * Brings the schema up to the newest migration, one transaction per migration so that a
 * failure leaves the database at the last good version with user_version telling which.
 */
static enum cp_err migrate(struct db_store *s, const struct db_migration *m, int count,
                           struct cp_error *e)
{
    sqlite3 *db = s->writer->db;
    int newest = count > 0 ? m[count - 1].version : 0;
    int cur = 0;
    int rc = pragma_int(db, "PRAGMA user_version", &cur);
    if (rc != SQLITE_OK)
        return cp_fail(e, CP_EIO, NULL, NULL, "store: cannot read the schema version of %s: %s",
                       s->path, sqlite3_errmsg(db));
    if (cur > newest)
        return refuse_newer(s->path, cur, newest, e);

    for (int i = 0; i < count; i++) {
        if (m[i].version <= cur)
            continue;
        char *msg = NULL;
        const char *step = "BEGIN IMMEDIATE";
        int now = 0;
        rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &msg);
        /* Another process may have migrated while this one waited for the lock: look again
         * with the lock held. */
        if (rc == SQLITE_OK) {
            step = "PRAGMA user_version";
            rc = pragma_int(db, "PRAGMA user_version", &now);
        }
        if (rc == SQLITE_OK && now >= m[i].version) {
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
            if (rc == SQLITE_OK) {
                cur = now;
                continue;
            }
            step = "COMMIT";
        } else if (rc == SQLITE_OK) {
            step = "its SQL";
            rc = sqlite3_exec(db, m[i].sql, NULL, NULL, &msg);
            if (rc == SQLITE_OK && sqlite3_get_autocommit(db)) {
                /* The file ended our transaction itself: its changes are already in. */
                rc = SQLITE_MISUSE;
                msg = sqlite3_mprintf("the migration must not contain BEGIN/COMMIT/ROLLBACK");
            }
        }
        if (rc == SQLITE_OK && now < m[i].version) {
            /* PRAGMA values cannot be bound; the value is an int from the compiled-in table. */
            char set[64];
            snprintf(set, sizeof(set), "PRAGMA user_version = %d", m[i].version);
            step = "PRAGMA user_version";
            rc = sqlite3_exec(db, set, NULL, NULL, &msg);
            if (rc == SQLITE_OK) {
                step = "COMMIT";
                rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &msg);
            }
        }
        if (rc != SQLITE_OK) {
            enum cp_err err =
                cp_fail(e, CP_EIO, NULL, NULL,
                        "store: migration %s (version %d) failed at %s: %s; %s stays at schema "
                        "version %d",
                        m[i].name ? m[i].name : "?", m[i].version, step,
                        msg ? msg : sqlite3_errmsg(db), s->path, cur);
            sqlite3_free(msg);
            if (!sqlite3_get_autocommit(db))
                (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return err;
        }
        cur = m[i].version;
        log_info("component=db event=migrated name=%s version=%d", m[i].name ? m[i].name : "?",
                 cur);
    }
    if (cur > newest) /* only if another process raced past us with a newer build */
        return refuse_newer(s->path, cur, newest, e);
    s->schema_version = cur;
    return CP_OK;
}

/* ---- writer thread ---- */

/* Fails jobs [from, to) of a transaction that did not commit: whatever they did is gone. */
static void fail_jobs(struct db_conn *c, struct db_job **jobs, int from, int to, const char *step,
                      int rc)
{
    const char *why = rc == SQLITE_OK ? "the transaction was rolled back" : sqlite3_errmsg(c->db);
    log_error("component=db event=batch_failed step=\"%s\" jobs=%d rc=%d error=\"%s\"", step,
              to - from, rc, why);
    for (int i = from; i < to; i++)
        jobs[i]->result = cp_fail(jobs[i]->e, CP_EIO, NULL, NULL,
                                  "store: the write was not committed (%s: %s)", step, why);
}

/*
 * Runs one batch on the writer connection. Normally one transaction: BEGIN IMMEDIATE, then per
 * job SAVEPOINT, fn, RELEASE (or ROLLBACK TO + RELEASE when fn failed), then COMMIT. If SQLite
 * drops the transaction under a job (some I/O, full-disk and out-of-memory errors roll back
 * everything), the jobs run so far fail and the rest go on in a new transaction.
 */
static void run_batch(struct db_store *s, struct db_job **jobs, int n)
{
    struct db_conn *c = s->writer;
    int i = 0;
    while (i < n) {
        /* A failure below may have left a transaction open; never build on it. */
        if (!sqlite3_get_autocommit(c->db))
            (void)ctl_run(c, CTL_ROLLBACK);
        int rc = ctl_run(c, CTL_BEGIN_WRITE);
        if (rc != SQLITE_OK) {
            fail_jobs(c, jobs, i, n, "BEGIN", rc);
            return;
        }
        int first = i;
        const char *broken = NULL; /* the step that left this transaction unusable */
        while (i < n && !broken) {
            struct db_job *j = jobs[i++];
            if ((rc = ctl_run(c, CTL_SAVEPOINT)) != SQLITE_OK) {
                broken = "SAVEPOINT";
                break;
            }
            conn_job_begin(c);
            j->result = j->fn(c, j->arg, j->e);
            conn_job_end(c);
            if (sqlite3_get_autocommit(c->db)) {
                broken = "job"; /* SQLite rolled the transaction back (or the job ended it) */
                rc = SQLITE_OK;
                break;
            }
            if (j->result == CP_OK && (rc = ctl_run(c, CTL_RELEASE)) != SQLITE_OK)
                j->result = cp_fail(j->e, CP_EIO, NULL, NULL, "store: RELEASE failed: %s",
                                    sqlite3_errmsg(c->db));
            if (j->result != CP_OK) {
                if ((rc = ctl_run(c, CTL_ROLLBACK_TO)) != SQLITE_OK)
                    broken = "ROLLBACK TO";
                else if ((rc = ctl_run(c, CTL_RELEASE)) != SQLITE_OK)
                    broken = "RELEASE";
            }
        }
        if (broken) {
            fail_jobs(c, jobs, first, i, broken, rc); /* first: it quotes the SQLite error */
            if (!sqlite3_get_autocommit(c->db))
                (void)ctl_run(c, CTL_ROLLBACK);
            continue;
        }
        rc = ctl_run(c, CTL_COMMIT);
        if (rc != SQLITE_OK) {
            /* e.g. a deferred foreign key, or the disk: COMMIT may leave the transaction open. */
            fail_jobs(c, jobs, first, i, "COMMIT", rc);
            if (!sqlite3_get_autocommit(c->db))
                (void)ctl_run(c, CTL_ROLLBACK);
        }
    }
}

static void *writer_main(void *arg)
{
    struct db_store *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->head && !s->stopping)
            pthread_cond_wait(&s->work_cv, &s->mu);
        if (!s->head)
            break; /* stopping, and everything queued is done: the drain is over */
        /* Take all that gathered while the last batch ran (up to the cap): that is the group
         * in group commit, one fsync for all of them. */
        int n = 0;
        while (s->head && n < DB_WRITE_BATCH_MAX) {
            s->batch[n++] = s->head;
            s->head = s->head->next;
        }
        if (!s->head)
            s->tail = NULL;
        s->queued -= n;
        pthread_cond_broadcast(&s->space_cv);
        pthread_mutex_unlock(&s->mu);

        log_debug("component=db event=batch jobs=%d", n);
        run_batch(s, s->batch, n);

        pthread_mutex_lock(&s->mu);
        /* Under the lock: a caller cannot see done, return and free its job before we are
         * through with the list. */
        for (int i = 0; i < n; i++) {
            s->batch[i]->done = 1;
            pthread_cond_signal(&s->batch[i]->cv);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Called with s->mu held by a caller leaving db_store_write()/db_store_read(). */
static void caller_leave(struct db_store *s)
{
    s->active--;
    if (s->active == 0 && s->stopping)
        pthread_cond_broadcast(&s->idle_cv);
}

enum cp_err db_store_write(struct db_store *s, db_job_fn fn, void *arg, struct cp_error *e)
{
    if (!s || !fn)
        return cp_fail(e, CP_EINVAL, NULL, NULL, "store: write without a store or a job");
    struct db_job job;
    memset(&job, 0, sizeof(job));
    job.fn = fn;
    job.arg = arg;
    job.e = e ? e : &job.scratch;
    if (pthread_cond_init(&job.cv, NULL) != 0)
        return cp_fail(e, CP_ENOMEM, NULL, NULL, "store: cannot create a condition variable");

    enum cp_err err;
    pthread_mutex_lock(&s->mu);
    s->active++;
    if (s->writer_running && pthread_equal(pthread_self(), s->writer_tid)) {
        err = cp_fail(e, CP_EINVAL, NULL, NULL,
                      "store: db_store_write() called from a write job would wait for itself");
        goto leave;
    }
    while (s->queued >= DB_WRITE_QUEUE_MAX && !s->stopping)
        pthread_cond_wait(&s->space_cv, &s->mu);
    if (s->stopping) {
        err = cp_fail(e, CP_EBUSY, NULL, NULL, "store: closing, the write was not queued");
        goto leave;
    }
    if (s->tail)
        s->tail->next = &job;
    else
        s->head = &job;
    s->tail = &job;
    s->queued++;
    pthread_cond_signal(&s->work_cv);
    while (!job.done)
        pthread_cond_wait(&job.cv, &s->mu);
    err = job.result;
leave:
    caller_leave(s);
    pthread_mutex_unlock(&s->mu);
    pthread_cond_destroy(&job.cv);
    return err;
}

/* ---- readers ---- */

static enum cp_err run_read(struct db_conn *c, db_job_fn fn, void *arg, struct cp_error *e)
{
    if (!sqlite3_get_autocommit(c->db))
        (void)ctl_run(c, CTL_ROLLBACK); /* left open by an earlier failure */
    int rc = ctl_run(c, CTL_BEGIN_READ);
    if (rc != SQLITE_OK)
        return cp_fail(e, db_err(rc) == CP_ENOMEM ? CP_ENOMEM : CP_EIO, NULL, NULL,
                       "store: cannot begin a read: %s", sqlite3_errmsg(c->db));
    conn_job_begin(c);
    enum cp_err err = fn(c, arg, e);
    conn_job_end(c);
    /* Nothing to keep: COMMIT only ends the snapshot, so the WAL can be checkpointed past it. */
    rc = ctl_run(c, CTL_COMMIT);
    if (rc != SQLITE_OK) {
        if (err == CP_OK)
            err = cp_fail(e, CP_EIO, NULL, NULL, "store: cannot end a read: %s",
                          sqlite3_errmsg(c->db));
        if (!sqlite3_get_autocommit(c->db))
            (void)ctl_run(c, CTL_ROLLBACK);
    }
    return err;
}

enum cp_err db_store_read(struct db_store *s, db_job_fn fn, void *arg, struct cp_error *e)
{
    if (!s || !fn)
        return cp_fail(e, CP_EINVAL, NULL, NULL, "store: read without a store or a job");
    struct cp_error scratch;
    if (!e) {
        memset(&scratch, 0, sizeof(scratch));
        e = &scratch;
    }
    pthread_mutex_lock(&s->mu);
    s->active++;
    while (s->nidle == 0 && !s->stopping)
        pthread_cond_wait(&s->reader_cv, &s->mu);
    if (s->stopping) {
        caller_leave(s);
        pthread_mutex_unlock(&s->mu);
        return cp_fail(e, CP_EBUSY, NULL, NULL, "store: closing, the read did not run");
    }
    struct db_conn *c = s->idle_readers[--s->nidle];
    pthread_mutex_unlock(&s->mu);

    enum cp_err err = run_read(c, fn, arg, e);

    pthread_mutex_lock(&s->mu);
    s->idle_readers[s->nidle++] = c;
    pthread_cond_signal(&s->reader_cv);
    caller_leave(s);
    pthread_mutex_unlock(&s->mu);
    return err;
}

/* ---- open / close ---- */

/* Frees everything s owns; the writer thread must not be running. */
static void store_free(struct db_store *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->nreaders; i++)
        conn_close(s->readers[i]);
    /* Last: the last connection to close checkpoints the WAL into the file and removes it. */
    conn_close(s->writer);
    if (s->tmpdir && s->path) {
        static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
        char f[512];
        for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
            snprintf(f, sizeof(f), "%s%s", s->path, suffix[i]);
            if (unlink(f) != 0 && errno != ENOENT)
                log_warn("component=db event=unlink_failed path=%s", f);
        }
    }
    if (s->tmpdir && rmdir(s->tmpdir) != 0)
        log_warn("component=db event=rmdir_failed path=%s", s->tmpdir);
    if (s->sync & SYNC_MU)
        pthread_mutex_destroy(&s->mu);
    if (s->sync & SYNC_WORK)
        pthread_cond_destroy(&s->work_cv);
    if (s->sync & SYNC_SPACE)
        pthread_cond_destroy(&s->space_cv);
    if (s->sync & SYNC_READER)
        pthread_cond_destroy(&s->reader_cv);
    if (s->sync & SYNC_IDLE)
        pthread_cond_destroy(&s->idle_cv);
    free(s->readers);
    free(s->idle_readers);
    free(s->tmpdir);
    free(s->path);
    free(s);
}

static int sync_init(struct db_store *s)
{
    if (pthread_mutex_init(&s->mu, NULL) != 0)
        return -1;
    s->sync |= SYNC_MU;
    pthread_cond_t *cv[] = {&s->work_cv, &s->space_cv, &s->reader_cv, &s->idle_cv};
    unsigned flag[] = {SYNC_WORK, SYNC_SPACE, SYNC_READER, SYNC_IDLE};
    for (size_t i = 0; i < sizeof(cv) / sizeof(cv[0]); i++) {
        if (pthread_cond_init(cv[i], NULL) != 0)
            return -1;
        s->sync |= flag[i];
    }
    return 0;
}

/* Sets s->path (and s->tmpdir for ":memory:"). */
static enum cp_err store_path(struct db_store *s, const char *path, struct cp_error *e)
{
    if (strcmp(path, MEMORY_PATH) != 0) {
        if (!(s->path = strdup(path)))
            return cp_fail(e, CP_ENOMEM, NULL, NULL, "store: out of memory");
        return CP_OK;
    }
    /* A file of its own in a fresh private directory: a real SQLite :memory: database lives
     * in one connection, and the writer and readers need to share it. */
    if (!(s->tmpdir = strdup(MEMORY_DIR)))
        return cp_fail(e, CP_ENOMEM, NULL, NULL, "store: out of memory");
    if (!mkdtemp(s->tmpdir)) {
        enum cp_err err =
            cp_fail(e, CP_EIO, NULL, NULL, "store: mkdtemp %s: %s", MEMORY_DIR, strerror(errno));
        free(s->tmpdir);
        s->tmpdir = NULL;
        return err;
    }
    size_t n = strlen(s->tmpdir) + sizeof("/" MEMORY_FILE);
    if (!(s->path = malloc(n)))
        return cp_fail(e, CP_ENOMEM, NULL, NULL, "store: out of memory");
    snprintf(s->path, n, "%s/%s", s->tmpdir, MEMORY_FILE);
    return CP_OK;
}

enum cp_err db_store_open_with(const struct db_store_options *opt, const struct db_migration *m,
                               int count, struct db_store **out, struct cp_error *e)
{
    if (!opt || !opt->path || !opt->path[0] || !out || count < 0 || (count > 0 && !m))
        return cp_fail(e, CP_EINVAL, NULL, NULL, "store: no database path or bad arguments");
    int readers = opt->readers == 0 ? DB_READERS_DEFAULT : opt->readers;
    if (readers < 1 || readers > DB_READERS_MAX)
        return cp_fail(e, CP_EINVAL, NULL, NULL, "store: readers must be 1..%d, not %d",
                       DB_READERS_MAX, opt->readers);
    int busy_ms = opt->busy_timeout_ms > 0 ? opt->busy_timeout_ms : DB_BUSY_DEFAULT_MS;
    enum cp_err err = migrations_check(m, count, e);
    if (err != CP_OK)
        return err;
    if (!sqlite3_threadsafe())
        return cp_fail(e, CP_EIO, NULL, NULL, "store: SQLite was built without thread support");

    struct db_store *s = calloc(1, sizeof(*s));
    if (!s)
        return cp_fail(e, CP_ENOMEM, NULL, NULL, "store: out of memory");
    if (sync_init(s) != 0) {
        err = cp_fail(e, CP_ENOMEM, NULL, NULL, "store: cannot create mutex or condition");
        goto cleanup;
    }
    int memory = strcmp(opt->path, MEMORY_PATH) == 0;
    if ((err = store_path(s, opt->path, e)) != CP_OK)
        goto cleanup;
    if ((err = conn_open(s->path, ROLE_WRITER, busy_ms, memory, &s->writer, e)) != CP_OK)
        goto cleanup;
    if ((err = migrate(s, m, count, e)) != CP_OK)
        goto cleanup;

    s->readers = calloc((size_t)readers, sizeof(*s->readers));
    s->idle_readers = calloc((size_t)readers, sizeof(*s->idle_readers));
    if (!s->readers || !s->idle_readers) {
        err = cp_fail(e, CP_ENOMEM, NULL, NULL, "store: out of memory");
        goto cleanup;
    }
    for (; s->nreaders < readers; s->nreaders++) {
        err = conn_open(s->path, ROLE_READER, busy_ms, memory, &s->readers[s->nreaders], e);
        if (err != CP_OK)
            goto cleanup;
        s->idle_readers[s->nidle++] = s->readers[s->nreaders];
    }

    /* The writer starts with every signal blocked, so process signals (SIGTERM...) go to the
     * threads that handle them, never to this one. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->writer_tid, NULL, writer_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        err = cp_fail(e, CP_EIO, NULL, NULL, "store: cannot start the writer thread: %s",
                      strerror(rc));
        goto cleanup;
    }
    s->writer_running = 1;
    *out = s;
    return CP_OK;

cleanup:
    store_free(s);
    return err;
}

enum cp_err db_store_open(const struct db_store_options *opt, struct db_store **out,
                          struct cp_error *e)
{
    return db_store_open_with(opt, db_migrations, db_migration_count, out, e);
}

void db_store_close(struct db_store *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->work_cv);
    pthread_cond_broadcast(&s->space_cv);
    pthread_cond_broadcast(&s->reader_cv);
    pthread_mutex_unlock(&s->mu);
    /* The writer leaves only once the queue is empty: queued writes are committed. */
    if (s->writer_running)
        pthread_join(s->writer_tid, NULL);
    /* Callers still inside (a running read, a writer about to wake with its result) must be
     * out before the mutex and connections go. */
    pthread_mutex_lock(&s->mu);
    while (s->active > 0)
        pthread_cond_wait(&s->idle_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    store_free(s);
}

int db_store_schema_version(struct db_store *s)
{
    return s ? s->schema_version : 0;
}

int db_store_queued_writes(struct db_store *s)
{
    if (!s)
        return 0;
    pthread_mutex_lock(&s->mu);
    int n = s->queued;
    pthread_mutex_unlock(&s->mu);
    return n;
}
