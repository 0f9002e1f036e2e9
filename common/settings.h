/*
 * Table-driven settings for the binaries (netwatchd, netwatch-agent): each setting is a row
 * (flag name, environment variable, type, where it lives in the caller's config struct,
 * default, bounds, help). Precedence: default < environment < flag. Both `--name value` and
 * `--name=value` are accepted. The table is data, so --help and validation never drift apart.
 */
#ifndef NW_COMMON_SETTINGS_H
#define NW_COMMON_SETTINGS_H

#include <stddef.h>
#include <stdio.h>

#include "common/err.h"

enum settings_type { SETTINGS_STRING, SETTINGS_LONG, SETTINGS_FLAG };

struct settings_entry {
    const char *name; /* --name */
    const char *env;  /* environment variable, or NULL */
    enum settings_type type;
    size_t offset; /* of the field in the config struct: char[] (string), long, int (flag) */
    size_t size;   /* strings: the char[] size */
    const char *def;
    long min, max; /* numbers: bounds */
    const char *help;
};

#define SETTINGS_STR(type, field, name, env, def, help)                                            \
    {                                                                                              \
        name, env, SETTINGS_STRING, offsetof(type, field), sizeof(((type *)0)->field), def, 0, 0,  \
            help                                                                                   \
    }
#define SETTINGS_NUM(type, field, name, env, def, min, max, help)                                  \
    {                                                                                              \
        name, env, SETTINGS_LONG, offsetof(type, field), 0, def, min, max, help                    \
    }
#define SETTINGS_FLAG(type, field, name, help)                                                     \
    {                                                                                              \
        name, NULL, SETTINGS_FLAG, offsetof(type, field), 0, "0", 0, 1, help                       \
    }

/* Fills the config struct at cfg (the caller zeroes it first) from the n rows of table: the
 * defaults, then the environment, then argv[first..argc). e names the setting on failure. */
enum cp_err settings_load(const struct settings_entry *table, size_t n, void *cfg, int argc,
                          char **argv, int first, struct cp_error *e) CP_MUST_USE;
/* Prints one entry per setting: flag, help, environment variable and default. */
void settings_usage(const struct settings_entry *table, size_t n, FILE *out);

#endif
