/* Stepping helpers shared by the table files: one row into a struct, or every row to a
 * callback, with SQLITE_DONE and errors mapped the same way everywhere. */
#ifndef NW_DB_ROWS_H
#define NW_DB_ROWS_H

#include "db/store.h"

/* Reads the current row of st into out. */
typedef enum cp_err (*db_row_read_fn)(sqlite3_stmt *st, void *out);

/* Steps st once: a row is read into out (CP_OK), no row is CP_ENOTFOUND. Resets st. */
enum cp_err db_row_one(sqlite3_stmt *st, db_row_read_fn read, void *out) CP_MUST_USE;

/* Steps st to the end: each row is read into row (caller's scratch struct), handed to
 * visit(row, arg), then released with clear(row). Stops at the first error. Resets st. */
enum cp_err db_row_each(sqlite3_stmt *st, db_row_read_fn read, void *row, size_t row_size,
                        enum cp_err (*visit)(void *row, void *arg), void *arg,
                        void (*clear)(void *row)) CP_MUST_USE;

#endif
