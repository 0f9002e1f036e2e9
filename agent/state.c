/* The state file behind agent/state.h. */
#include "agent/state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/durable.h"
#include "common/log.h"

#define STATE_FILE     "seq"
#define STATE_FILE_MAX 256 /* bytes; the file holds two short lines */

static enum cp_err state_path(const struct agent_state *st, const char *name, char *out,
                              size_t outsz, struct cp_error *e)
{
    if (snprintf(out, outsz, "%s/%s", st->dir, name) >= (int)outsz)
        return cp_fail(e, CP_EINVAL, "", "state-dir", "state-dir: path too long");
    return CP_OK;
}

/* Replaces the file atomically (agent/durable.h). */
static enum cp_err state_save(const struct agent_state *st, uint64_t next, uint64_t acked,
                              struct cp_error *e)
{
    char text[STATE_FILE_MAX];
    int n =
        snprintf(text, sizeof(text), "next_seq=%" PRIu64 "\nacked_seq=%" PRIu64 "\n", next, acked);
    return durable_write(st->dir, STATE_FILE, text, (size_t)n, e);
}

static int parse_u64(const char *s, const char *key, uint64_t *out)
{
    size_t klen = strlen(key);
    if (strncmp(s, key, klen) != 0 || s[klen] != '=')
        return -1;
    const char *v = s + klen + 1;
    if (*v < '0' || *v > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || (*end != '\n' && *end != '\0'))
        return -1;
    *out = x;
    return 0;
}

enum cp_err agent_state_open(const char *dir, struct agent_state *st, struct cp_error *e)
{
    memset(st, 0, sizeof(*st));
    size_t dlen = strlen(dir);
    if (dlen == 0 || dlen >= sizeof(st->dir))
        return cp_fail(e, CP_EINVAL, "", "state-dir", "state-dir: empty or too long");
    memcpy(st->dir, dir, dlen + 1);
    enum cp_err derr = durable_mkdir(dir, e);
    if (derr != CP_OK)
        return derr;
    char path[AGENT_PATH_MAX + 16];
    enum cp_err err = state_path(st, STATE_FILE, path, sizeof(path), e);
    if (err != CP_OK)
        return err;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno != ENOENT)
            return cp_fail(e, CP_EIO, "", "state-dir", "cannot read %s: %s", path, strerror(errno));
        st->next_seq = 1;
        st->acked_seq = 0;
        return state_save(st, st->next_seq, st->acked_seq, e);
    }
    char text[STATE_FILE_MAX + 1];
    size_t n = fread(text, 1, STATE_FILE_MAX, f);
    int bad = ferror(f) || !feof(f);
    fclose(f);
    text[n] = '\0';
    const char *second = strchr(text, '\n');
    uint64_t next = 0, acked = 0;
    if (bad || !second || parse_u64(text, "next_seq", &next) != 0 ||
        parse_u64(second + 1, "acked_seq", &acked) != 0 || next == 0 || acked >= next ||
        next > (uint64_t)INT64_MAX / 2) {
        /* Starting over at 1 would make the server take new reports for ones it has applied.
         * The current time in microseconds is far above any seq handed out one at a time
         * since 1970 (and above an earlier recovery's, unless the clock went back), so the
         * sequence goes on from there. */
        durable_set_aside(st->dir, st->dir, STATE_FILE, "state",
                          "the report sequence does not parse");
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        next = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
        acked = 0; /* the next welcome says what the server has applied */
        log_warnx("event=seq_recovered next_seq=%" PRIu64, next);
        enum cp_err serr = state_save(st, next, acked, e);
        if (serr != CP_OK)
            return serr;
    }
    st->next_seq = next;
    st->acked_seq = acked;
    return CP_OK;
}

enum cp_err agent_state_take_seq(struct agent_state *st, uint64_t *seq, struct cp_error *e)
{
    enum cp_err err = state_save(st, st->next_seq + 1, st->acked_seq, e);
    if (err != CP_OK)
        return err;
    *seq = st->next_seq++;
    return CP_OK;
}

enum cp_err agent_state_set_acked(struct agent_state *st, uint64_t seq, struct cp_error *e)
{
    if (seq <= st->acked_seq || seq >= st->next_seq)
        return CP_OK;
    enum cp_err err = state_save(st, st->next_seq, seq, e);
    if (err == CP_OK)
        st->acked_seq = seq;
    return err;
}

uint64_t agent_state_unacked_from(const struct agent_state *st)
{
    return st->acked_seq + 1;
}
