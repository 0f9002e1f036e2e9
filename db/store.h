/*
 * The SQLite store: opening, pragmas, the migration runner, one group-commit writer thread, a
 * pool of read connections and per-connection prepared-statement caches. It knows nothing of
 * the tables; db/<table>.c files hold the SQL and run inside the jobs handed to this API.
 *
 * Threads. Every write is a job run on the single writer thread, on the only connection that
 * writes; jobs queued by different callers are committed together as one transaction (group
 * commit), each inside its own SAVEPOINT so that one failing job does not sink the others.
 * A caller gets its answer only once that transaction is durable (synchronous=FULL: the WAL is
 * fsynced at every commit). Reads run in the caller's thread on a pooled read connection; WAL
 * lets them proceed while the writer writes, each read job seeing one snapshot.
 *
 * Bounds. DB_WRITE_QUEUE_MAX queued write jobs (callers wait beyond it), DB_WRITE_BATCH_MAX
 * jobs per transaction, DB_READERS_MAX read connections, DB_STMT_CACHE_MAX cached statements
 * per connection.
 *
 * Test databases: the path ":memory:" gives a private throwaway database file in a fresh
 * directory under /tmp, removed by db_store_close(). It behaves like a file database (WAL, one
 * snapshot per read, writer and readers on separate connections: a true SQLite :memory:
 * database cannot be shared that way) except that it is not fsynced (synchronous=OFF).
 */
#ifndef NW_DB_STORE_H
#define NW_DB_STORE_H

#include <stddef.h>
#include <sqlite3.h>

#include "common/err.h"
#include "db/migrations.h"

#define DB_WRITE_QUEUE_MAX 4096 /* queued write jobs; db_store_write() waits when full */
#define DB_WRITE_BATCH_MAX 256  /* jobs committed in one transaction at most */
#define DB_READERS_DEFAULT 4    /* read connections when options.readers is 0 */
#define DB_READERS_MAX     64   /* read connections at most */
#define DB_BUSY_DEFAULT_MS 5000 /* busy_timeout when options.busy_timeout_ms is 0 */
#define DB_STMT_CACHE_MAX  128  /* cached prepared statements per connection */

struct db_store; /* opaque */
struct db_conn;  /* one SQLite connection plus its statement cache; used by one thread at a time */

struct db_store_options {
    const char *path;    /* file path, or ":memory:" for a throwaway test database; borrowed */
    int readers;         /* read connections, 1..DB_READERS_MAX; 0 means 4 */
    int busy_timeout_ms; /* how long a connection waits for a lock; <= 0 means 5000 */
};

/*
 * Opens (creating) the database, sets WAL, foreign_keys=ON, busy_timeout, synchronous=FULL
 * (durable on power loss: each group commit fsyncs the WAL), applies db_migrations[] in order,
 * each in its own transaction that also sets PRAGMA user_version; refuses (CP_EIO, e->message
 * says so clearly, naming both versions) a database whose user_version is newer than the
 * newest migration. Starts the writer thread.
 * On success *out is an owned store, freed by db_store_close(); on failure *out is untouched,
 * e (may be NULL) says why: CP_EINVAL for bad options or a malformed migration list, CP_EIO
 * for anything SQLite or the system refused (including a failed migration, which leaves the
 * schema at the last migration that succeeded), CP_ENOMEM. Call from one thread.
 */
enum cp_err db_store_open(const struct db_store_options *opt, struct db_store **out,
                          struct cp_error *e) CP_MUST_USE;
/* Same, applying the given migrations (borrowed for the call; strictly increasing versions,
 * all > 0) instead of the embedded ones (tests). */
enum cp_err db_store_open_with(const struct db_store_options *opt, const struct db_migration *m,
                               int count, struct db_store **out, struct cp_error *e) CP_MUST_USE;
/*
 * Drains queued writes, stops the writer, closes every connection. NULL is a no-op.
 * Calls already in progress finish first (queued writes are committed, running reads end);
 * callers still waiting for queue space or for a read connection get CP_EBUSY. No call on s
 * may start once db_store_close() has been called: s is freed before it returns.
 */
void db_store_close(struct db_store *s);
/* The schema version (PRAGMA user_version) after the migrations of open. Thread-safe. */
int db_store_schema_version(struct db_store *s);
/* Write jobs queued and not yet taken by the writer, for metrics (and tests). Thread-safe. */
int db_store_queued_writes(struct db_store *s);

/*
 * A job: runs the SQL of one logical operation on c (borrowed for the call only: never keep c
 * or its statements afterwards). Returns CP_OK to keep its changes, anything else to have them
 * rolled back; e is never NULL inside a job (the store passes a scratch one if the caller gave
 * none). A job must not run BEGIN/COMMIT/ROLLBACK/SAVEPOINT itself, nor call db_store_write()
 * (that would wait on its own thread) nor nest db_store_read() (the pool may be empty).
 */
typedef enum cp_err (*db_job_fn)(struct db_conn *c, void *arg, struct cp_error *e);
/*
 * Runs fn on the writer thread inside a transaction and returns fn's result once the
 * transaction is durable. Several callers' jobs are batched into one transaction (group
 * commit): each job runs in its own SAVEPOINT, so a job that returns != CP_OK is rolled back
 * alone and its error returned to its caller, while the others commit. If the COMMIT itself
 * fails every job in the batch gets CP_EIO. Blocks the caller. Thread-safe. e may be NULL.
 * Bounded queue (DB_WRITE_QUEUE_MAX jobs): when full, callers wait.
 * arg is borrowed and touched only by fn on the writer thread while the caller waits.
 * Errors besides fn's own: CP_EINVAL (fn NULL, or called from inside a write job), CP_EBUSY
 * (the store is closing), CP_EIO (BEGIN/SAVEPOINT/COMMIT failed; SQLite rolled the whole
 * transaction back under a job).
 */
enum cp_err db_store_write(struct db_store *s, db_job_fn fn, void *arg,
                           struct cp_error *e) CP_MUST_USE;
/*
 * Runs fn in the calling thread on a pooled read connection inside a read transaction
 * (BEGIN ... COMMIT) so all its reads see one snapshot. Waits for a free connection when all
 * are in use. The connection is query_only: writes through it fail. Thread-safe. e may be
 * NULL. Returns fn's result, or CP_EBUSY (closing), CP_EIO (BEGIN/COMMIT failed).
 */
enum cp_err db_store_read(struct db_store *s, db_job_fn fn, void *arg,
                          struct cp_error *e) CP_MUST_USE;

/*
 * A prepared statement for constant SQL text, cached per connection (keyed by the text
 * pointer, then text compare), reset and with bindings cleared; owned by the connection: never
 * finalize it. Returns NULL on prepare failure (logs the SQLite error once).
 * sql must stay valid as long as the store (a string literal). The statement is valid until
 * the job returns; the store resets every statement left running when a job ends. Asking
 * again for the same SQL within a job resets the statement (finish iterating first).
 * At most DB_STMT_CACHE_MAX statements per connection: beyond that the one least recently
 * used by an earlier job is finalized; a single job using more than that many distinct
 * statements gets NULL.
 */
sqlite3_stmt *db_conn_stmt(struct db_conn *c, const char *sql);
/* The connection's handle (borrowed), e.g. for sqlite3_changes(). Never close it. */
sqlite3 *db_conn_handle(struct db_conn *c);
/* Maps an SQLite result code (primary or extended) to enum cp_err: SQLITE_OK/ROW/DONE ->
 * CP_OK, SQLITE_CONSTRAINT_UNIQUE/PRIMARYKEY -> CP_EEXIST, other constraint -> CP_EINVAL,
 * NOMEM -> CP_ENOMEM, else CP_EIO. Connections use extended result codes. */
enum cp_err db_err(int rc);
/* Small helpers used by table code: */
/* Binds s (copied: SQLITE_TRANSIENT) at idx; NULL binds NULL. Returns db_err() of the bind. */
enum cp_err db_bind_text(sqlite3_stmt *st, int idx, const char *s);
/* Copies column text into out (size outsz, truncated safely, "" for NULL). Truncation never
 * splits a UTF-8 sequence. */
void db_column_copy(sqlite3_stmt *st, int col, char *out, size_t outsz);

#endif
