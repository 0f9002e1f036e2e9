/* The stepping helpers behind rows.h. */
#include "db/rows.h"

#include <string.h>

enum cp_err db_row_one(sqlite3_stmt *st, db_row_read_fn read, void *out)
{
    int rc = sqlite3_step(st);
    enum cp_err err;
    if (rc == SQLITE_ROW)
        err = read(st, out);
    else if (rc == SQLITE_DONE)
        err = CP_ENOTFOUND;
    else
        err = db_err(rc);
    sqlite3_reset(st);
    return err;
}

enum cp_err db_row_each(sqlite3_stmt *st, db_row_read_fn read, void *row, size_t row_size,
                        enum cp_err (*visit)(void *row, void *arg), void *arg,
                        void (*clear)(void *row))
{
    enum cp_err err = CP_OK;
    int rc = SQLITE_DONE;
    while (err == CP_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        memset(row, 0, row_size);
        err = read(st, row);
        if (err == CP_OK)
            err = visit(row, arg);
        clear(row);
    }
    if (err == CP_OK && rc != SQLITE_DONE)
        err = db_err(rc);
    sqlite3_reset(st);
    return err;
}
