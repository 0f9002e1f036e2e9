/* The settings-table engine behind settings.h. */
#include "common/settings.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static enum cp_err apply(void *cfg, const struct settings_entry *s, const char *value,
                         const char *from, struct cp_error *e)
{
    char *field = (char *)cfg + s->offset;
    if (s->type == SETTINGS_STRING) {
        size_t len = strlen(value);
        if (len >= s->size)
            return cp_fail(e, CP_EINVAL, "", s->name, "%s (%s): longer than %zu characters",
                           s->name, from, s->size - 1);
        memcpy(field, value, len + 1);
        return CP_OK;
    }
    if (s->type == SETTINGS_FLAG) {
        *(int *)(void *)field = 1;
        return CP_OK;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || !*value || *end || v < s->min || v > s->max)
        return cp_fail(e, CP_EINVAL, "", s->name, "%s (%s): expected an integer from %ld to %ld",
                       s->name, from, s->min, s->max);
    *(long *)(void *)field = v;
    return CP_OK;
}

static const struct settings_entry *find(const struct settings_entry *t, size_t n, const char *name,
                                         size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (strlen(t[i].name) == len && strncmp(t[i].name, name, len) == 0)
            return &t[i];
    }
    return NULL;
}

enum cp_err settings_load(const struct settings_entry *t, size_t n, void *cfg, int argc,
                          char **argv, int first, struct cp_error *e)
{
    enum cp_err err = CP_OK;
    for (size_t i = 0; i < n && err == CP_OK; i++) {
        if (t[i].type != SETTINGS_FLAG)
            err = apply(cfg, &t[i], t[i].def, "default", e);
    }
    for (size_t i = 0; i < n && err == CP_OK; i++) {
        const char *v = t[i].env ? getenv(t[i].env) : NULL;
        if (v)
            err = apply(cfg, &t[i], v, t[i].env, e);
    }
    for (int a = first; a < argc && err == CP_OK; a++) {
        const char *arg = argv[a];
        if (strncmp(arg, "--", 2) != 0)
            return cp_fail(e, CP_EINVAL, "", "", "unexpected argument '%s'", arg);
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        const struct settings_entry *s = find(t, n, name, eq ? (size_t)(eq - name) : strlen(name));
        if (!s)
            return cp_fail(e, CP_EINVAL, "", "", "unknown option '%s' (see --help)", arg);
        const char *value = eq ? eq + 1 : NULL;
        if (s->type != SETTINGS_FLAG && !value) {
            if (a + 1 >= argc)
                return cp_fail(e, CP_EINVAL, "", s->name, "--%s needs a value", s->name);
            value = argv[++a];
        }
        err = apply(cfg, s, value ? value : "1", "flag", e);
    }
    return err;
}

void settings_usage(const struct settings_entry *t, size_t n, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "  --%-16s %s\n", t[i].name, t[i].help);
        if (t[i].type != SETTINGS_FLAG)
            fprintf(out, "  %-18s (%s, default '%s')\n", "", t[i].env, t[i].def);
    }
}
