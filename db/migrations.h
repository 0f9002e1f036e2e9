/*
 * The schema migrations compiled into the binary.
 *
 * cmake/EmbedSql.cmake turns migrations/NNNN_name.sql into db_migrations[] at build time
 * (build/db/migrations_embedded.c), sorted by NNNN, which is the PRAGMA user_version the
 * database has once that file is applied. The array always ends with a {0, 0, 0} sentinel so
 * that it is valid C11 even with no migration at all; db_migration_count does not count it.
 * Migrations are forward-only and never edited once merged (STYLE.md).
 */
#ifndef NW_DB_MIGRATIONS_H
#define NW_DB_MIGRATIONS_H

struct db_migration {
    int version;      /* NNNN of the file name: the user_version after this migration; > 0 */
    const char *name; /* file name, e.g. "0001_init.sql", for logs and errors */
    const char *sql;  /* the whole file; may hold several statements; no BEGIN/COMMIT */
};

/* Borrowed, static, ordered by strictly increasing version. */
extern const struct db_migration db_migrations[];
extern const int db_migration_count;

#endif
