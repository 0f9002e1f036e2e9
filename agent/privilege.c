/*
 * The privilege drop behind privilege.h, with libcap: the user switch, the capability sets, the
 * checks of the end state, and the raise/lower around pcap_activate.
 */
/* _GNU_SOURCE: getresuid/getresgid and getgrouplist are glibc extensions; pcap.h needs the BSD
 * u_int/u_char types. */
#define _GNU_SOURCE
#include "agent/privilege.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pcap/pcap.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "common/log.h"

#define PRIV_CODE       "PrivilegeDrop"
#define PRIV_PWBUF      16384 /* getpwnam_r's buffer: a passwd entry is far smaller */
#define PRIV_GROUPS_MAX 1024  /* supplementary groups we carry over */

/* Built once by privilege_drop (single-threaded), read-only afterwards. NULL before it. */
static cap_t priv_lowered; /* permitted CAP_NET_RAW (if held), nothing effective */
static cap_t priv_raised;  /* the same with CAP_NET_RAW effective; NULL: nothing to raise */

/* Threads of this process, from /proc; -1 when /proc cannot tell. */
static int priv_thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (de->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int priv_has(cap_t c, cap_value_t v, cap_flag_t set)
{
    cap_flag_value_t f = CAP_CLEAR;
    return cap_get_flag(c, v, set, &f) == 0 && f == CAP_SET;
}

/* The account to become: uid, gid and its groups (initgroups' list, bounded). */
struct priv_user {
    uid_t uid;
    gid_t gid;
    gid_t groups[PRIV_GROUPS_MAX];
    int ngroups;
};

static enum cp_err priv_lookup(const char *name, struct priv_user *u, struct cp_error *e)
{
    char *buf = malloc(PRIV_PWBUF);
    if (!buf)
        return cp_fail(e, CP_ENOMEM, PRIV_CODE, "user", "out of memory");
    struct passwd pw, *res = NULL;
    int rc = getpwnam_r(name, &pw, buf, PRIV_PWBUF, &res);
    if (rc != 0 || !res) {
        free(buf);
        return cp_fail(e, CP_EINVAL, PRIV_CODE, "user", "user: no user '%s'%s%s", name,
                       rc ? ": " : "", rc ? strerror(rc) : "");
    }
    u->uid = pw.pw_uid;
    u->gid = pw.pw_gid;
    u->ngroups = PRIV_GROUPS_MAX;
    rc = getgrouplist(name, pw.pw_gid, u->groups, &u->ngroups);
    free(buf);
    if (u->uid == 0)
        return cp_fail(e, CP_EINVAL, PRIV_CODE, "user",
                       "user: '%s' is uid 0; the agent runs as an unprivileged user", name);
    if (rc < 0)
        return cp_fail(e, CP_EINVAL, PRIV_CODE, "user", "user: '%s' is in more than %d groups",
                       name, PRIV_GROUPS_MAX);
    return CP_OK;
}

/* Empties the bounding set but CAP_NET_RAW. Needs CAP_SETPCAP effective; 0 or -1. */
static int priv_narrow_bound(void)
{
    cap_value_t max = cap_max_bits();
    for (cap_value_t v = 0; v < max; v++)
        if (v != CAP_NET_RAW && cap_get_bound(v) > 0 && cap_drop_bound(v) != 0)
            return -1;
    return 0;
}

static int priv_bound_narrow(void)
{
    cap_value_t max = cap_max_bits();
    for (cap_value_t v = 0; v < max; v++)
        if (v != CAP_NET_RAW && cap_get_bound(v) > 0)
            return 0;
    return 1;
}

/* 1 when this thread's supplementary groups are not exactly u's (in any order). */
static int priv_groups_differ(const struct priv_user *u)
{
    gid_t now[PRIV_GROUPS_MAX];
    int n = getgroups(PRIV_GROUPS_MAX, now);
    if (n != u->ngroups)
        return 1;
    for (int i = 0; i < n; i++) {
        int found = 0;
        for (int j = 0; j < u->ngroups && !found; j++)
            found = now[i] == u->groups[j];
        if (!found)
            return 1;
    }
    return 0;
}

/* The end state, read back from the kernel: exactly what was planned, or an error. */
static enum cp_err priv_verify(const struct priv_user *u, struct cp_error *e)
{
    cap_t now = cap_get_proc();
    if (!now)
        return cp_fail(e, CP_EIO, PRIV_CODE, NULL, "cannot read the capabilities: %s",
                       strerror(errno));
    int same = cap_compare(now, priv_lowered) == 0;
    cap_free(now);
    if (!same)
        return cp_fail(e, CP_EINVAL, PRIV_CODE, NULL,
                       "capabilities other than CAP_NET_RAW (permitted) are still held");
    cap_value_t max = cap_max_bits();
    for (cap_value_t v = 0; v < max; v++)
        if (cap_get_ambient(v) > 0)
            return cp_fail(e, CP_EINVAL, PRIV_CODE, NULL, "an ambient capability is still set");
    if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
        return cp_fail(e, CP_EINVAL, PRIV_CODE, NULL, "no-new-privs is not set");
    uid_t r, ef, s;
    gid_t gr, ge, gs;
    if (getresuid(&r, &ef, &s) != 0 || getresgid(&gr, &ge, &gs) != 0)
        return cp_fail(e, CP_EIO, PRIV_CODE, NULL, "cannot read the uids: %s", strerror(errno));
    if (u && (r != u->uid || ef != u->uid || s != u->uid || gr != u->gid || ge != u->gid ||
              gs != u->gid))
        return cp_fail(e, CP_EINVAL, PRIV_CODE, "user", "uids or gids are not the user's");
    if (u && priv_groups_differ(u))
        return cp_fail(e, CP_EINVAL, PRIV_CODE, "user", "supplementary groups are not the user's");
    /* OpenSSH's check: a process that dropped uid 0 must not be able to take it back. */
    if (r != 0 && ef != 0 && s != 0 && (setuid(0) == 0 || seteuid(0) == 0))
        return cp_fail(e, CP_EINVAL, PRIV_CODE, NULL, "uid 0 could be taken back");
    return CP_OK;
}

enum cp_err privilege_drop(const char *user, struct privilege_state *out, struct cp_error *e)
{
    enum cp_err err = CP_OK;
    struct priv_user *u = NULL;
    cap_t cur = NULL;
    if (priv_lowered)
        return cp_fail(e, CP_EINVAL, PRIV_CODE, NULL, "privileges were dropped already");
    /* libcap (without libpsx) and the raw set*id calls it makes act on this thread only. */
    int threads = priv_thread_count();
    if (threads > 1)
        return cp_fail(e, CP_EINVAL, PRIV_CODE, NULL,
                       "privileges must be dropped before any thread starts (%d running)", threads);
    if (user && user[0]) {
        u = calloc(1, sizeof(*u));
        if (!u)
            return cp_fail(e, CP_ENOMEM, PRIV_CODE, NULL, "out of memory");
        err = priv_lookup(user, u, e);
        if (err != CP_OK)
            goto cleanup;
    }
    cur = cap_get_proc();
    if (!cur) {
        err = cp_fail(e, CP_EIO, PRIV_CODE, NULL, "cannot read the capabilities: %s",
                      strerror(errno));
        goto cleanup;
    }
    uid_t r, ef, s;
    if (getresuid(&r, &ef, &s) != 0) {
        err = cp_fail(e, CP_EIO, PRIV_CODE, NULL, "cannot read the uids: %s", strerror(errno));
        goto cleanup;
    }
    int switching = u && (r != u->uid || ef != u->uid || s != u->uid);
    if (switching &&
        (!priv_has(cur, CAP_SETUID, CAP_PERMITTED) || !priv_has(cur, CAP_SETGID, CAP_PERMITTED))) {
        err = cp_fail(e, CP_EINVAL, PRIV_CODE, "user",
                      "user: becoming '%s' needs the agent started as root (it runs as uid %u)",
                      user, (unsigned)ef);
        goto cleanup;
    }
    int net_raw = priv_has(cur, CAP_NET_RAW, CAP_PERMITTED);

    /* Nothing this process executes may gain privileges (setuid bits, file capabilities). */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        err = cp_fail(e, CP_EIO, PRIV_CODE, NULL, "cannot set no-new-privs: %s", strerror(errno));
        goto cleanup;
    }
    /* The bounding set while CAP_SETPCAP is still effective (as root; under systemd the unit's
     * CapabilityBoundingSet= has done it). */
    if (priv_has(cur, CAP_SETPCAP, CAP_EFFECTIVE) && priv_narrow_bound() != 0) {
        err = cp_fail(e, CP_EIO, PRIV_CODE, NULL, "cannot shrink the bounding set: %s",
                      strerror(errno));
        goto cleanup;
    }
    if (CAP_AMBIENT_SUPPORTED() && cap_reset_ambient() != 0) {
        err = cp_fail(e, CP_EIO, PRIV_CODE, NULL, "cannot clear the ambient capabilities: %s",
                      strerror(errno));
        goto cleanup;
    }
    /* cap_setuid keeps the permitted set across the change (PR_SET_KEEPCAPS), so CAP_NET_RAW
     * survives it; everything else goes just below. */
    if (switching &&
        (cap_setgroups(u->gid, (size_t)u->ngroups, u->groups) != 0 || cap_setuid(u->uid) != 0)) {
        err =
            cp_fail(e, CP_EIO, PRIV_CODE, "user", "cannot become '%s': %s", user, strerror(errno));
        goto cleanup;
    }

    cap_value_t raw[1] = {CAP_NET_RAW};
    priv_lowered = cap_init(); /* all clear */
    if (!priv_lowered || (net_raw && cap_set_flag(priv_lowered, CAP_PERMITTED, 1, raw, CAP_SET))) {
        err = cp_fail(e, CP_ENOMEM, PRIV_CODE, NULL, "out of memory");
        goto cleanup;
    }
    if (net_raw) {
        priv_raised = cap_dup(priv_lowered);
        if (!priv_raised || cap_set_flag(priv_raised, CAP_EFFECTIVE, 1, raw, CAP_SET) != 0) {
            err = cp_fail(e, CP_ENOMEM, PRIV_CODE, NULL, "out of memory");
            goto cleanup;
        }
    }
    if (cap_set_proc(priv_lowered) != 0) {
        err = cp_fail(e, CP_EIO, PRIV_CODE, NULL, "cannot drop the capabilities: %s",
                      strerror(errno));
        goto cleanup;
    }
    err = priv_verify(u, e);
    if (err != CP_OK)
        goto cleanup;
    out->uid = getuid();
    out->gid = getgid();
    out->switched = switching;
    out->net_raw = net_raw;
    out->bound_narrow = priv_bound_narrow();
    out->as_root = out->uid == 0;

cleanup:
    if (err != CP_OK) {
        /* The caller exits; nothing may raise from a half-made plan meanwhile. */
        cap_free(priv_raised);
        priv_raised = NULL;
    }
    cap_free(cur);
    free(u);
    return err;
}

int privilege_pcap_activate(struct pcap *p)
{
    if (!priv_raised)
        return pcap_activate(p); /* no drop made, or no CAP_NET_RAW to raise */
    if (cap_set_proc(priv_raised) != 0)
        log_warn("event=capability_raise_failed cap=cap_net_raw"); /* activate says EPERM */
    int rc = pcap_activate(p);
    int saved = errno;
    if (cap_set_proc(priv_lowered) != 0) {
        log_error("event=capability_lower_failed cap=cap_net_raw errno=%d", errno);
        abort();
    }
    errno = saved;
    return rc;
}
