/*
 * The capture engine behind capture.h: opening the libpcap handles, the capture thread's poll
 * loop (one selectable fd per handle plus an eventfd for stop), limits, statistics and the
 * result. Files are agent/capture_ring.c's job (one file, or a ring of them).
 */
/* _GNU_SOURCE: pcap.h needs the BSD u_int/u_char types, and net/if.h's IFF_LOOPBACK is a BSD
 * name; glibc declares both only beyond strict POSIX. */
#define _GNU_SOURCE
#include "agent/capture.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "agent/capture_ring.h"
#include "agent/pcap_file.h"
#include "common/log.h"

#define CAP_CODE_PCAP     "CaptureFailed"
#define CAP_CODE_FILE     "LocalFileFailed"
#define CAP_CODE_INTERNAL "InternalError"
#define CAP_NAME_MAX      64   /* bytes of an interface name we keep */
#define CAP_TICK_MS       1000 /* statistics refresh while idle */
#define CAP_DRAIN_ROUNDS  16   /* pcap_dispatch calls per handle when draining at the end */
#define CAP_PCAP_TIMEOUT  100  /* ms; unused in immediate mode, set for old kernels' sake */

struct capture_handle {
    pcap_t *p;               /* owned; NULL once closed */
    char name[CAP_NAME_MAX]; /* for messages */
    int fd;                  /* pcap_get_selectable_fd */
    int active;              /* still read; 0 after a failure in the default set */
    struct pcap_stat last;   /* last pcap_stats that succeeded */
    struct capture *c;       /* back pointer for the packet callback */
};

struct capture {
    /* Fixed once started. */
    struct capture_handle h[CAPTURE_MAX_INTERFACES];
    size_t n_handles;
    int given_list;      /* interfaces were named by the caller */
    int rootfd;          /* capture root, O_DIRECTORY */
    int stop_fd;         /* eventfd: capture_stop writes, the thread polls */
    int done_fd;         /* eventfd: the thread writes once at the end */
    uint64_t byte_limit; /* 0 = none */
    int has_deadline;
    struct timespec start_mono, deadline_mono;
    pthread_t thread;
    int thread_started;
    int joined;

    /* Capture thread only (and the owner after join). */
    struct capture_out *out;
    uint64_t packets, bytes;
    int64_t first_ms; /* the first packet's time, epoch ms */
    int stopping;     /* set in the callback: no more writes */
    enum capture_stop_reason reason;
    enum capture_error error;
    char message[CP_ERROR_MESSAGE_MAX];

    /* Shared: capture_progress reads it from any thread. */
    pthread_mutex_t mu;
    struct capture_stats progress;

    /* The outcome, complete once joined. */
    struct capture_result result;
};

/* ---- time ---- */

static struct timespec cap_now(clockid_t clk)
{
    struct timespec t;
    clock_gettime(clk, &t);
    return t;
}

static int64_t cap_ms_between(struct timespec a, struct timespec b)
{
    return (int64_t)(b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
}

/* ---- handles ---- */

static void cap_handle_close(struct capture_handle *h)
{
    if (h->p) {
        pcap_close(h->p);
        h->p = NULL;
    }
    h->active = 0;
    h->fd = -1;
}

/*
 * Opens one interface for capture: snap length, not promiscuous, immediate, non-blocking,
 * filtered. Fills *h on success; leaves nothing open on failure. *bad_filter (may be NULL) tells
 * a filter pcap would not compile from an interface that would not open.
 */
static enum cp_err cap_handle_open(const char *name, int snaplen, const char *filter,
                                   struct capture_handle *h, int *bad_filter, struct cp_error *e)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    errbuf[0] = '\0';
    if (strlen(name) >= CAP_NAME_MAX)
        return cp_fail(e, CP_EINVAL, CAP_CODE_PCAP, NULL, "Interface name '%.64s...' is too long.",
                       name);
    pcap_t *p = pcap_create(name, errbuf);
    if (!p)
        return cp_fail(e, CP_EIO, CAP_CODE_PCAP, NULL, "Cannot open interface %s: %s", name,
                       errbuf);
    enum cp_err err = CP_OK;
    /* The setters fail only on an activated handle; this one is not. */
    (void)pcap_set_snaplen(p, snaplen);
    (void)pcap_set_promisc(p, 0);
    (void)pcap_set_immediate_mode(p, 1);
    (void)pcap_set_timeout(p, CAP_PCAP_TIMEOUT);
    (void)pcap_set_buffer_size(p, CAPTURE_BUFFER_BYTES);
    int rc = pcap_activate(p);
    if (rc < 0) {
        const char *detail = rc == PCAP_ERROR ? pcap_geterr(p) : pcap_statustostr(rc);
        if (rc == PCAP_ERROR_NO_SUCH_DEVICE)
            err =
                cp_fail(e, CP_EINVAL, CAP_CODE_PCAP, NULL, "No interface %s to capture on.", name);
        else if (rc == PCAP_ERROR_PERM_DENIED)
            err = cp_fail(e, CP_EIO, CAP_CODE_PCAP, NULL,
                          "Capturing on %s is not permitted (the agent needs CAP_NET_RAW): %s",
                          name, pcap_geterr(p));
        else
            err = cp_fail(e, CP_EIO, CAP_CODE_PCAP, NULL, "Cannot capture on %s: %s", name, detail);
        goto fail;
    }
    if (rc > 0)
        log_warnx("event=capture_open_warning iface=%s warning=\"%s\"", name, pcap_statustostr(rc));
    if (pcap_setnonblock(p, 1, errbuf) != 0) {
        err = cp_fail(e, CP_EIO, CAP_CODE_PCAP, NULL, "Cannot make %s non-blocking: %s", name,
                      errbuf);
        goto fail;
    }
    int fd = pcap_get_selectable_fd(p);
    if (fd < 0) {
        err = cp_fail(e, CP_EIO, CAP_CODE_PCAP, NULL, "Interface %s has no pollable fd.", name);
        goto fail;
    }
    if (filter && filter[0]) {
        struct bpf_program prog;
        if (pcap_compile(p, &prog, filter, 1, PCAP_NETMASK_UNKNOWN) != 0) {
            if (bad_filter)
                *bad_filter = 1;
            err = cp_fail(e, CP_EINVAL, CAP_CODE_PCAP, NULL,
                          "The capture filter does not compile on %s: %s", name, pcap_geterr(p));
            goto fail;
        }
        rc = pcap_setfilter(p, &prog);
        pcap_freecode(&prog);
        if (rc != 0) {
            err = cp_fail(e, CP_EIO, CAP_CODE_PCAP, NULL, "Cannot set the filter on %s: %s", name,
                          pcap_geterr(p));
            goto fail;
        }
    }
    memset(h, 0, sizeof(*h));
    h->p = p;
    h->fd = fd;
    h->active = 1;
    snprintf(h->name, sizeof(h->name), "%s", name);
    return CP_OK;

fail:
    pcap_close(p);
    return err;
}

/* The caller's list: every name must open, with one link type. */
static enum cp_err cap_open_given(struct capture *c, const struct capture_params *p, int snaplen,
                                  struct cp_error *e)
{
    for (size_t i = 0; i < p->n_interfaces; i++) {
        if (!p->interfaces[i] || !p->interfaces[i][0])
            return cp_fail(e, CP_EINVAL, CAP_CODE_PCAP, NULL, "Interface %zu has no name.", i);
        enum cp_err err = cap_handle_open(p->interfaces[i], snaplen, p->filter, &c->h[i], NULL, e);
        if (err != CP_OK)
            return err;
        c->n_handles = i + 1;
        int dlt = pcap_datalink(c->h[i].p);
        int want = pcap_datalink(c->h[0].p);
        if (dlt != want)
            return cp_fail(e, CP_EINVAL, CAP_CODE_PCAP, NULL,
                           "Interface %s has link type %s, %s has %s; one pcap file holds one.",
                           c->h[i].name, pcap_datalink_val_to_name(dlt), c->h[0].name,
                           pcap_datalink_val_to_name(want));
    }
    return CP_OK;
}

static int cap_default_candidate(const pcap_if_t *d)
{
    if (strcmp(d->name, "any") == 0)
        return 0; /* every packet again */
    if (d->flags & PCAP_IF_LOOPBACK)
        return 0; /* not a NIC; name it to capture it */
    if (!(d->flags & PCAP_IF_UP))
        return 0;
    /* nflog, usbmon, dbus... are no kernel netdevs; neither is a name from another netns. */
    return if_nametoindex(d->name) != 0;
}

/* The default set (capture.h): tolerant of interfaces that fail, but at least one must open. */
static enum cp_err cap_open_default(struct capture *c, int snaplen, const char *filter,
                                    struct cp_error *e)
{
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_if_t *all = NULL;
    if (pcap_findalldevs(&all, errbuf) != 0)
        return cp_fail(e, CP_EIO, CAP_CODE_PCAP, NULL, "Cannot list interfaces: %s", errbuf);
    enum cp_err err = CP_OK;
    struct cp_error first;
    memset(&first, 0, sizeof(first));
    int failures = 0;
    for (pcap_if_t *d = all; d && c->n_handles < CAPTURE_MAX_INTERFACES; d = d->next) {
        if (!cap_default_candidate(d))
            continue;
        struct cp_error one;
        struct capture_handle *h = &c->h[c->n_handles];
        int bad_filter = 0;
        if (cap_handle_open(d->name, snaplen, filter, h, &bad_filter, &one) != CP_OK) {
            /* A filter that does not compile is the caller's error, not the interface's. */
            if (bad_filter) {
                *e = one;
                err = CP_EINVAL;
                goto cleanup;
            }
            log_warnx("event=capture_iface_skipped iface=%s reason=\"%s\"", d->name, one.message);
            if (!failures++)
                first = one;
            continue;
        }
        c->n_handles++;
    }
    if (c->n_handles == 0) {
        err = failures ? cp_fail(e, CP_EIO, CAP_CODE_PCAP, NULL, "%s", first.message)
                       : cp_fail(e, CP_EIO, CAP_CODE_PCAP, NULL,
                                 "No interface to capture on: none is up.");
        goto cleanup;
    }
    /* One link type per file: Ethernet if any interface has it, else the first's. */
    int want = pcap_datalink(c->h[0].p);
    for (size_t i = 0; i < c->n_handles; i++)
        if (pcap_datalink(c->h[i].p) == DLT_EN10MB)
            want = DLT_EN10MB;
    size_t kept = 0;
    for (size_t i = 0; i < c->n_handles; i++) {
        int dlt = pcap_datalink(c->h[i].p);
        if (dlt != want) {
            log_warnx("event=capture_iface_skipped iface=%s reason=\"link type %s, the file "
                      "holds %s\"",
                      c->h[i].name, pcap_datalink_val_to_name(dlt),
                      pcap_datalink_val_to_name(want));
            cap_handle_close(&c->h[i]);
            continue;
        }
        if (kept != i) {
            c->h[kept] = c->h[i];
            memset(&c->h[i], 0, sizeof(c->h[i]));
            c->h[i].fd = -1;
        }
        kept++;
    }
    c->n_handles = kept;

cleanup:
    pcap_freealldevs(all);
    return err;
}

/* ---- the capture thread ---- */

static void cap_fail(struct capture *c, enum capture_error err, const char *msg)
{
    if (c->error != CAPTURE_ERR_NONE)
        return; /* the first error is the one to report */
    c->error = err;
    snprintf(c->message, sizeof(c->message), "%s", msg);
    c->stopping = 1;
}

/*
 * Where every packet goes. The byte limit is applied here; a ring moves on to its next file
 * inside capture_out_write.
 */
static void capture_output_write(struct capture *c, struct capture_handle *h,
                                 const struct pcap_pkthdr *ph, const u_char *bytes)
{
    uint64_t len = ph->caplen;
    if (c->byte_limit && c->bytes + len > c->byte_limit) {
        c->reason = CAPTURE_STOP_BYTES;
        c->stopping = 1;
        pcap_breakloop(h->p);
        return;
    }
    struct cp_error e;
    enum cp_err err = capture_out_write(c->out, ph, bytes, &e);
    if (err != CP_OK) {
        cap_fail(c, err == CP_ENOMEM ? CAPTURE_ERR_INTERNAL : CAPTURE_ERR_LOCAL_FILE_FAILED,
                 e.message);
        pcap_breakloop(h->p);
        return;
    }
    if (c->packets == 0)
        c->first_ms = (int64_t)ph->ts.tv_sec * 1000 + ph->ts.tv_usec / 1000;
    c->packets++;
    c->bytes += len;
    if (c->byte_limit && c->bytes == c->byte_limit) {
        c->reason = CAPTURE_STOP_BYTES;
        c->stopping = 1;
        pcap_breakloop(h->p);
    }
}

static void cap_on_packet(u_char *user, const struct pcap_pkthdr *ph, const u_char *bytes)
{
    struct capture_handle *h = (struct capture_handle *)user;
    if (h->c->stopping)
        return; /* the rest of this batch comes after the end */
    capture_output_write(h->c, h, ph, bytes);
}

/* One handle failed: the end of a given list's capture, a warning in the default set. */
static void cap_handle_failed(struct capture *c, struct capture_handle *h, const char *why)
{
    char msg[CP_ERROR_MESSAGE_MAX];
    snprintf(msg, sizeof(msg), "Capture on %s failed: %s", h->name, why);
    size_t active = 0;
    for (size_t i = 0; i < c->n_handles; i++)
        active += c->h[i].active ? 1 : 0;
    if (c->given_list || active <= 1) {
        cap_fail(c, CAPTURE_ERR_CAPTURE_FAILED, msg);
    } else {
        /* The default set lives with interfaces coming and going (containers). */
        log_warnx("event=capture_iface_dropped iface=%s reason=\"%s\"", h->name, msg);
        h->active = 0;
    }
}

/* Reads what one handle has. Returns the packets read, or -1 after the handle failed (handled
 * here). */
static int cap_dispatch(struct capture *c, struct capture_handle *h)
{
    int rc = pcap_dispatch(h->p, -1, cap_on_packet, (u_char *)h);
    if (rc >= 0 || rc == PCAP_ERROR_BREAK)
        return rc > 0 ? rc : 0;
    cap_handle_failed(c, h, pcap_geterr(h->p));
    return -1;
}

static void cap_refresh_stats(struct capture *c)
{
    struct capture_stats s;
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < c->n_handles; i++) {
        struct capture_handle *h = &c->h[i];
        struct pcap_stat ps;
        if (h->p && h->active && pcap_stats(h->p, &ps) == 0)
            h->last = ps;
        s.received += h->last.ps_recv;
        s.drops += (uint64_t)h->last.ps_drop + h->last.ps_ifdrop;
    }
    s.packets = c->packets;
    s.bytes = c->bytes;
    s.first_packet_ms = c->first_ms;
    size_t kept = 0;
    if (c->out)
        (void)capture_out_files(c->out, &kept);
    s.files = (uint32_t)kept;
    pthread_mutex_lock(&c->mu);
    c->progress = s;
    pthread_mutex_unlock(&c->mu);
}

/* Everything the kernel already delivered, so a stop loses nothing it had. */
static void cap_drain(struct capture *c)
{
    for (size_t i = 0; i < c->n_handles && !c->stopping; i++)
        for (int round = 0; round < CAP_DRAIN_ROUNDS && c->h[i].active && !c->stopping; round++)
            if (cap_dispatch(c, &c->h[i]) <= 0)
                break;
}

static int cap_poll_timeout(const struct capture *c)
{
    if (!c->has_deadline)
        return CAP_TICK_MS;
    int64_t left = cap_ms_between(cap_now(CLOCK_MONOTONIC), c->deadline_mono);
    if (left < 0)
        return 0;
    return left + 1 < CAP_TICK_MS ? (int)left + 1 : CAP_TICK_MS; /* +1: never wake just short */
}

static int cap_deadline_passed(const struct capture *c)
{
    if (!c->has_deadline)
        return 0;
    struct timespec now = cap_now(CLOCK_MONOTONIC);
    return now.tv_sec > c->deadline_mono.tv_sec ||
           (now.tv_sec == c->deadline_mono.tv_sec && now.tv_nsec >= c->deadline_mono.tv_nsec);
}

static void cap_run(struct capture *c)
{
    struct pollfd fds[CAPTURE_MAX_INTERFACES + 1];
    struct timespec last_stats = cap_now(CLOCK_MONOTONIC);
    while (!c->stopping) {
        fds[0] = (struct pollfd){.fd = c->stop_fd, .events = POLLIN};
        for (size_t i = 0; i < c->n_handles; i++)
            fds[i + 1] = (struct pollfd){.fd = c->h[i].active ? c->h[i].fd : -1, .events = POLLIN};
        int n = poll(fds, c->n_handles + 1, cap_poll_timeout(c));
        if (n < 0 && errno != EINTR) {
            char msg[128];
            snprintf(msg, sizeof(msg), "poll failed: %s", strerror(errno));
            cap_fail(c, CAPTURE_ERR_INTERNAL, msg);
            break;
        }
        uint64_t before = c->packets;
        for (size_t i = 0; n > 0 && i < c->n_handles && !c->stopping; i++) {
            short ev = fds[i + 1].revents;
            if (!c->h[i].active || !ev)
                continue;
            /* libpcap turns a socket error into a dispatch error; an error condition it does
             * not report would make poll return at once forever, so it ends the handle too. */
            if (cap_dispatch(c, &c->h[i]) == 0 && (ev & (POLLERR | POLLHUP | POLLNVAL)))
                cap_handle_failed(c, &c->h[i],
                                  if_nametoindex(c->h[i].name) == 0
                                      ? "the interface no longer exists"
                                      : "the capture socket reported an error (interface down?)");
        }
        if (n > 0 && (fds[0].revents & POLLIN)) {
            c->reason = CAPTURE_STOP_MANUAL;
            break;
        }
        if (!c->stopping && cap_deadline_passed(c)) {
            c->reason = CAPTURE_STOP_TIME;
            break;
        }
        if (c->packets != before && !c->error) {
            struct cp_error e;
            if (capture_out_flush(c->out, &e) != CP_OK)
                cap_fail(c, CAPTURE_ERR_LOCAL_FILE_FAILED, e.message);
        }
        struct timespec now = cap_now(CLOCK_MONOTONIC);
        if (cap_ms_between(last_stats, now) >= CAP_TICK_MS) {
            cap_refresh_stats(c);
            last_stats = now;
        }
    }
    if (c->reason == CAPTURE_STOP_MANUAL || c->reason == CAPTURE_STOP_TIME)
        cap_drain(c);
}

static void cap_finish(struct capture *c)
{
    cap_refresh_stats(c);
    for (size_t i = 0; i < c->n_handles; i++)
        cap_handle_close(&c->h[i]); /* give the kernel rings back before the file work */
    struct capture_result *r = &c->result;
    struct cp_error e;
    if (c->error == CAPTURE_ERR_NONE) {
        enum cp_err err = capture_out_commit(c->out, &e);
        if (err != CP_OK)
            cap_fail(c, err == CP_ENOMEM ? CAPTURE_ERR_INTERNAL : CAPTURE_ERR_LOCAL_FILE_FAILED,
                     e.message);
    }
    if (c->error == CAPTURE_ERR_NONE) {
        r->files = capture_out_files(c->out, &r->n_files);
    } else {
        capture_out_abort(c->out);
        size_t kept = 0;
        (void)capture_out_files(c->out, &kept);
        if (kept) { /* a ring's completed files stay on disk, unreported: say so */
            size_t len = strlen(c->message);
            snprintf(c->message + len, sizeof(c->message) - len,
                     " The %zu completed files of the continuous capture stay on disk.", kept);
        }
        r->n_files = 0;
    }
    pthread_mutex_lock(&c->mu);
    c->progress.files = (uint32_t)r->n_files;
    r->stats = c->progress;
    pthread_mutex_unlock(&c->mu);
    r->error = c->error;
    r->reason = c->error == CAPTURE_ERR_NONE ? c->reason : CAPTURE_STOP_NONE;
    snprintf(r->message, sizeof(r->message), "%s", c->message);
    r->stopped = cap_now(CLOCK_REALTIME);
    int64_t ms = cap_ms_between(c->start_mono, cap_now(CLOCK_MONOTONIC));
    r->duration_ms = ms > 0 ? (uint64_t)ms : 0;
    log_info("event=capture_ended file=\"%s\" reason=%s error=%s packets=%llu bytes=%llu "
             "drops=%llu duration_ms=%llu",
             r->n_files ? r->files[r->n_files - 1].path : "-",
             r->reason ? capture_stop_reason_name(r->reason) : "-",
             r->error ? capture_error_name(r->error) : "-", (unsigned long long)r->stats.packets,
             (unsigned long long)r->stats.bytes, (unsigned long long)r->stats.drops,
             (unsigned long long)r->duration_ms);
}

static void *cap_thread(void *arg)
{
    struct capture *c = arg;
    cap_run(c);
    cap_finish(c);
    uint64_t one = 1;
    /* An eventfd write of 1 fails only if the counter would overflow; it is written once. */
    (void)!write(c->done_fd, &one, sizeof(one));
    return NULL;
}

/* ---- public ---- */

static void cap_destroy(struct capture *c)
{
    for (size_t i = 0; i < c->n_handles; i++)
        cap_handle_close(&c->h[i]);
    capture_out_free(c->out);
    if (c->rootfd >= 0)
        close(c->rootfd);
    if (c->stop_fd >= 0)
        close(c->stop_fd);
    if (c->done_fd >= 0)
        close(c->done_fd);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

static enum cp_err cap_check_params(const struct capture_params *p, struct cp_error *e)
{
    if (!p || !p->root_dir || !p->root_dir[0])
        return cp_fail(e, CP_EINVAL, CAP_CODE_FILE, NULL, "No capture root directory given.");
    if (p->ring && (p->ring->file_count == 0 || p->ring->file_size == 0))
        return cp_fail(e, CP_EINVAL, CAP_CODE_FILE, NULL,
                       "A continuous capture needs at least one file of at least one byte.");
    if (p->n_interfaces > CAPTURE_MAX_INTERFACES)
        return cp_fail(e, CP_EINVAL, CAP_CODE_PCAP, NULL, "More than %d interfaces.",
                       CAPTURE_MAX_INTERFACES);
    if (p->n_interfaces && !p->interfaces)
        return cp_fail(e, CP_EINVAL, CAP_CODE_PCAP, NULL, "Interface list missing.");
    return pcap_file_check_path(p->file_path, e);
}

enum cp_err capture_start(const struct capture_params *p, struct capture **out, struct cp_error *e)
{
    enum cp_err err = cap_check_params(p, e);
    if (err != CP_OK)
        return err;
    int snaplen =
        p->snaplen == 0 || p->snaplen > CAPTURE_SNAPLEN_MAX ? CAPTURE_SNAPLEN_MAX : (int)p->snaplen;
    struct capture *c = calloc(1, sizeof(*c));
    if (!c)
        return cp_fail(e, CP_ENOMEM, CAP_CODE_INTERNAL, NULL, "Out of memory.");
    c->rootfd = c->stop_fd = c->done_fd = -1;
    for (size_t i = 0; i < CAPTURE_MAX_INTERFACES; i++)
        c->h[i].fd = -1;
    pthread_mutex_init(&c->mu, NULL);
    c->byte_limit = p->byte_limit;

    /* Handles first: a capture that cannot open leaves nothing on disk. */
    c->given_list = p->n_interfaces > 0;
    err = c->given_list ? cap_open_given(c, p, snaplen, e)
                        : cap_open_default(c, snaplen, p->filter, e);
    if (err != CP_OK)
        goto fail;
    for (size_t i = 0; i < c->n_handles; i++)
        c->h[i].c = c;

    c->rootfd = open(p->root_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (c->rootfd < 0) {
        err = cp_fail(e, CP_EIO, CAP_CODE_FILE, NULL, "Cannot open the capture root %s: %s",
                      p->root_dir, strerror(errno));
        goto fail;
    }
    err = capture_out_open(c->rootfd, p->file_path, p->ring, pcap_datalink(c->h[0].p), snaplen,
                           &c->out, e);
    if (err != CP_OK)
        goto fail;

    c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    c->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->stop_fd < 0 || c->done_fd < 0) {
        err = cp_fail(e, CP_EIO, CAP_CODE_INTERNAL, NULL, "eventfd failed: %s", strerror(errno));
        goto fail;
    }

    c->result.started = cap_now(CLOCK_REALTIME);
    c->start_mono = cap_now(CLOCK_MONOTONIC);
    if (p->time_limit_ms) {
        c->has_deadline = 1;
        c->deadline_mono = c->start_mono;
        c->deadline_mono.tv_sec += (time_t)(p->time_limit_ms / 1000);
        c->deadline_mono.tv_nsec += (long)(p->time_limit_ms % 1000) * 1000000L;
        if (c->deadline_mono.tv_nsec >= 1000000000L) {
            c->deadline_mono.tv_sec++;
            c->deadline_mono.tv_nsec -= 1000000000L;
        }
    } else if (p->time_limit_s) {
        c->has_deadline = 1;
        c->deadline_mono = c->start_mono;
        c->deadline_mono.tv_sec += (time_t)p->time_limit_s;
    }
    int rc = pthread_create(&c->thread, NULL, cap_thread, c);
    if (rc != 0) {
        err = cp_fail(e, CP_ENOMEM, CAP_CODE_INTERNAL, NULL, "Cannot start the capture thread: %s",
                      strerror(rc));
        goto fail;
    }
    c->thread_started = 1;
    log_info("event=capture_started file=\"%s\" interfaces=%zu snaplen=%d byte_limit=%llu "
             "time_limit_s=%u ring_files=%u ring_file_size=%llu",
             p->file_path, c->n_handles, snaplen, (unsigned long long)p->byte_limit,
             p->time_limit_s, p->ring ? p->ring->file_count : 0,
             p->ring ? (unsigned long long)p->ring->file_size : 0ULL);
    *out = c;
    return CP_OK;

fail:
    cap_destroy(c);
    return err;
}

void capture_stop(struct capture *c)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is already huge: a stop is pending either way. */
    (void)!write(c->stop_fd, &one, sizeof(one));
}

void capture_wait(struct capture *c)
{
    if (c->thread_started && !c->joined) {
        pthread_join(c->thread, NULL);
        c->joined = 1;
    }
}

int capture_done_fd(const struct capture *c)
{
    return c->done_fd;
}

void capture_progress(struct capture *c, struct capture_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->progress;
    pthread_mutex_unlock(&c->mu);
}

const struct capture_result *capture_result(const struct capture *c)
{
    return c->joined ? &c->result : NULL;
}

void capture_free(struct capture *c)
{
    if (!c)
        return;
    if (c->thread_started && !c->joined) {
        capture_stop(c);
        capture_wait(c);
    }
    cap_destroy(c);
}

const char *capture_stop_reason_name(enum capture_stop_reason r)
{
    switch (r) {
    case CAPTURE_STOP_MANUAL:
        return "Manual";
    case CAPTURE_STOP_TIME:
        return "TimeExceeded";
    case CAPTURE_STOP_BYTES:
        return "SessionBytesExceeded";
    case CAPTURE_STOP_NONE:
        break;
    }
    return "";
}

const char *capture_error_name(enum capture_error err)
{
    switch (err) {
    case CAPTURE_ERR_CAPTURE_FAILED:
        return "CaptureFailed";
    case CAPTURE_ERR_LOCAL_FILE_FAILED:
        return "LocalFileFailed";
    case CAPTURE_ERR_INTERNAL:
        return "InternalError";
    case CAPTURE_ERR_NONE:
        break;
    }
    return "";
}

/* Adds r to s unless already there. Returns 0, or -1 when s is full. */
static int cap_addr_add(struct nf_ip_set *s, const struct nf_ip_range *r)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->r[i].family == r->family && memcmp(s->r[i].lo, r->lo, 16) == 0 &&
            memcmp(s->r[i].hi, r->hi, 16) == 0)
            return 0;
    if (s->n == NF_MAX_ITEMS)
        return -1;
    s->r[s->n++] = *r;
    return 0;
}

enum cp_err capture_local_addrs(struct nf_ip_set *out, struct cp_error *e)
{
    struct ifaddrs *all = NULL;
    if (getifaddrs(&all) != 0)
        return cp_fail(e, CP_EIO, CAP_CODE_PCAP, NULL, "Cannot list this machine's addresses: %s",
                       strerror(errno));
    struct nf_ip_set *s = calloc(1, sizeof(*s)); /* ~2.3 KiB: off the caller's stack */
    if (!s) {
        freeifaddrs(all);
        return cp_fail(e, CP_ENOMEM, CAP_CODE_INTERNAL, NULL, "Out of memory.");
    }
    enum cp_err err = CP_OK;
    for (struct ifaddrs *a = all; a; a = a->ifa_next) {
        if (!a->ifa_addr ||
            (a->ifa_addr->sa_family != AF_INET && a->ifa_addr->sa_family != AF_INET6))
            continue;
        struct nf_ip_range r;
        memset(&r, 0, sizeof(r));
        r.family = a->ifa_addr->sa_family;
        const uint8_t *addr, *mask = NULL;
        size_t len;
        if (r.family == AF_INET) {
            addr =
                (const uint8_t *)&((const struct sockaddr_in *)(const void *)a->ifa_addr)->sin_addr;
            if (a->ifa_netmask)
                mask = (const uint8_t *)&((const struct sockaddr_in *)(const void *)a->ifa_netmask)
                           ->sin_addr;
            len = 4;
        } else {
            addr = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)a->ifa_addr)
                       ->sin6_addr;
            if (a->ifa_netmask)
                mask = (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)a->ifa_netmask)
                           ->sin6_addr;
            len = 16;
        }
        /* On loopback the whole prefix is local (127.0.0.0/8 answers on lo). */
        int whole = (a->ifa_flags & IFF_LOOPBACK) && mask;
        for (size_t i = 0; i < len; i++) {
            r.lo[i] = whole ? (uint8_t)(addr[i] & mask[i]) : addr[i];
            r.hi[i] = whole ? (uint8_t)(addr[i] | (uint8_t)~mask[i]) : addr[i];
        }
        if (cap_addr_add(s, &r) != 0) {
            err = cp_fail(e, CP_ETOOBIG, CAP_CODE_PCAP, NULL,
                          "This machine has more than %d addresses; name localIPAddress in "
                          "the filters.",
                          NF_MAX_ITEMS);
            break;
        }
    }
    freeifaddrs(all);
    if (err == CP_OK)
        *out = *s;
    free(s);
    return err;
}
