/*
 * The hub loop behind hub.h: one thread, one epoll set holding every channel socket, an eventfd
 * for work handed over by other threads, a timerfd for heartbeats.
 *
 * Work from other threads goes through hub->lock: hub_adopt appends to the adopt list;
 * hub_send/hub_close find the channel in the id map and append to its own queue, putting the
 * channel on the ready list. Whoever makes a list non-empty writes the eventfd once
 * (wake_pending), and the hub thread takes the lists whole under the lock, then works without
 * it, so a callback may call hub_send/hub_close without deadlocking.
 *
 * A channel is freed only by the hub thread, and only after it has left the map and the ready
 * list (both under the lock), so no other thread can reach a freed channel. Within one loop
 * iteration a torn-down channel is only marked dead: events already taken from epoll_wait may
 * still point at it, so it is freed ("buried") at the end of the iteration.
 */
#include "server/hub.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "common/log.h"

#define HUB_EVENTS        256  /* epoll events taken per wait */
#define HUB_STOP_GRACE_MS 1000 /* hub_stop: how long peers get to answer our close */
#define HUB_CLOSE_WAIT_MS 5000 /* longest wait for the peer's close after ours */
#define HUB_REASON_MAX    123  /* RFC 6455: a close frame's reason fits in 123 bytes */
#define HUB_BUCKETS_MIN   1024 /* id map buckets to start with (a power of two) */
#define HUB_TICK_MIN_MS   5
/* After this many channels opened or closed, and a second without any, freed memory is given
 * back to the system (see trim_after_churn). */
#define HUB_TRIM_CHURN    1024
#define HUB_TRIM_QUIET_MS 1000

/* One message queued by hub_send, not yet given to wslay. */
struct hub_msg {
    struct hub_msg *next;
    size_t len;
    char data[];
};

struct chan {
    struct hub *hub;
    /* Hub thread only. */
    int fd;
    hub_release_fn release;
    void *release_arg;
    wslay_event_context_ptr ws;
    uint32_t events;           /* epoll interest registered now */
    int64_t last_rx_ms;        /* last byte received */
    int64_t last_ping_ms;      /* last ping queued */
    int64_t close_deadline_ms; /* 0: not closing; else torn down at this time at the latest */
    unsigned char *pre;        /* bytes read past the HTTP request: served before the socket */
    size_t pre_len, pre_off;
    int opened;               /* on_open called, on_close not yet */
    int rejected;             /* a binary frame came: nothing more is delivered */
    int dead;                 /* torn down: freed at the end of the loop iteration */
    const char *ending;       /* why the channel is closing, for the log line */
    struct chan *prev, *next; /* every channel the hub thread holds */
    struct chan *gnext;       /* graveyard */
    struct chan *wnext;       /* the hub thread's work list, taken from the ready list */
    struct hub_msg *take;     /* messages taken from out_head */
    int take_overflow;
    uint16_t take_code;
    char take_reason[HUB_REASON_MAX + 1];
    char agent_id[HUB_AGENT_ID_MAX];
    /* Guarded by hub->lock. */
    int in_map;
    struct chan *hnext; /* id map chain */
    struct chan *anext; /* adopt list */
    int ready;
    struct chan *rprev, *rnext; /* ready list */
    struct hub_msg *out_head, *out_tail;
    unsigned out_n;
    int overflow;        /* hub_send found the queue full: close with 1008 */
    uint16_t close_code; /* hub_close asked for this code (0: not asked) */
    char close_reason[HUB_REASON_MAX + 1];
    /* Messages waiting inside wslay: stored by the hub thread, read by hub_send. */
    atomic_uint wq;
};

struct hub {
    struct hub_ops ops;
    unsigned heartbeat_ms, timeout_ms, max_queue, tick_ms, max_channels;
    size_t max_message;
    int ep, wake_fd, timer_fd;
    pthread_t thread;
    int running; /* the thread was started and not yet joined (owner thread only) */
    /* Hub thread only. */
    struct chan *all;
    struct chan *graveyard;
    int stopping;
    int64_t stop_deadline_ms;
    unsigned churn; /* channels opened or closed since the last trim */
    int64_t last_churn_ms;
    /* Guarded by lock. */
    pthread_mutex_t lock;
    int accepting;
    int stop;
    int wake_pending;
    struct chan **buckets;
    size_t nbuckets, nmap;
    struct chan *adopt_head, *adopt_tail;
    unsigned nadopt; /* on the adopt list */
    struct chan *ready_head, *ready_tail;
    /* Counters. */
    atomic_uint channels;
    atomic_ullong opened, closed, msgs_in, msgs_out;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- id map and lists (callers hold hub->lock) -------------------------------------------- */

static size_t id_hash(const char *s)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static struct chan *map_find(struct hub *h, const char *id)
{
    for (struct chan *c = h->buckets[id_hash(id) & (h->nbuckets - 1)]; c; c = c->hnext) {
        if (strcmp(c->agent_id, id) == 0)
            return c;
    }
    return NULL;
}

static void map_remove(struct hub *h, struct chan *ch)
{
    struct chan **pp = &h->buckets[id_hash(ch->agent_id) & (h->nbuckets - 1)];
    while (*pp && *pp != ch)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = ch->hnext;
        h->nmap--;
    }
    ch->hnext = NULL;
    ch->in_map = 0;
}

/* Doubles the buckets when the map gets as full as it is wide; on no memory it stays as it is
 * (chains just get longer). */
static void map_grow(struct hub *h)
{
    size_t n = h->nbuckets * 2;
    struct chan **b = calloc(n, sizeof(*b));
    if (!b)
        return;
    for (size_t i = 0; i < h->nbuckets; i++) {
        struct chan *c = h->buckets[i];
        while (c) {
            struct chan *next = c->hnext;
            size_t k = id_hash(c->agent_id) & (n - 1);
            c->hnext = b[k];
            b[k] = c;
            c = next;
        }
    }
    free(h->buckets);
    h->buckets = b;
    h->nbuckets = n;
}

static void map_insert(struct hub *h, struct chan *ch)
{
    if (h->nmap >= h->nbuckets)
        map_grow(h);
    size_t k = id_hash(ch->agent_id) & (h->nbuckets - 1);
    ch->hnext = h->buckets[k];
    h->buckets[k] = ch;
    ch->in_map = 1;
    h->nmap++;
}

/* No room for another channel of agent_id: max_channels are open or being adopted, and none is
 * agent_id's to replace. */
static int full(struct hub *h, const char *agent_id)
{
    return h->nmap + h->nadopt >= h->max_channels && !map_find(h, agent_id);
}

/* Puts ch on the ready list; returns 1 when the caller must wake the loop (after unlocking). */
static int ready_add(struct hub *h, struct chan *ch)
{
    if (!ch->ready) {
        ch->ready = 1;
        ch->rnext = NULL;
        ch->rprev = h->ready_tail;
        if (h->ready_tail)
            h->ready_tail->rnext = ch;
        else
            h->ready_head = ch;
        h->ready_tail = ch;
    }
    if (h->wake_pending)
        return 0;
    h->wake_pending = 1;
    return 1;
}

static void ready_remove(struct hub *h, struct chan *ch)
{
    if (!ch->ready)
        return;
    if (ch->rprev)
        ch->rprev->rnext = ch->rnext;
    else
        h->ready_head = ch->rnext;
    if (ch->rnext)
        ch->rnext->rprev = ch->rprev;
    else
        h->ready_tail = ch->rprev;
    ch->ready = 0;
    ch->rprev = ch->rnext = NULL;
}

static void wake(struct hub *h)
{
    uint64_t one = 1;
    ssize_t w = write(h->wake_fd, &one, sizeof(one));
    (void)w; /* EAGAIN only when the counter is about to overflow: the loop is awake anyway */
}

static void msgs_free(struct hub_msg *m)
{
    while (m) {
        struct hub_msg *next = m->next;
        free(m);
        m = next;
    }
}

/* --- wslay callbacks (hub thread, inside wslay_event_recv/send) --------------------------- */

static ssize_t ws_recv(wslay_event_context_ptr ws, uint8_t *buf, size_t len, int flags, void *user)
{
    struct chan *ch = user;
    (void)flags;
    if (ch->pre_off < ch->pre_len) {
        size_t n = ch->pre_len - ch->pre_off;
        if (n > len)
            n = len;
        memcpy(buf, ch->pre + ch->pre_off, n);
        ch->pre_off += n;
        ch->last_rx_ms = now_ms();
        return (ssize_t)n;
    }
    for (;;) {
        ssize_t r = recv(ch->fd, buf, len, 0);
        if (r > 0) {
            ch->last_rx_ms = now_ms();
            return r;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
        } else {
            if (!ch->ending)
                ch->ending = r == 0 ? "peer disconnected" : "receive failed";
            wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

static ssize_t ws_send(wslay_event_context_ptr ws, const uint8_t *data, size_t len, int flags,
                       void *user)
{
    struct chan *ch = user;
    int f = MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0);
    for (;;) {
        ssize_t r = send(ch->fd, data, len, f);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wslay_event_set_error(ws, WSLAY_ERR_WOULDBLOCK);
        } else {
            if (!ch->ending)
                ch->ending = "send failed";
            wslay_event_set_error(ws, WSLAY_ERR_CALLBACK_FAILURE);
        }
        return -1;
    }
}

/* Refuses binary frames as soon as one starts, before its payload is buffered. */
static void ws_frame_start(wslay_event_context_ptr ws,
                           const struct wslay_event_on_frame_recv_start_arg *arg, void *user)
{
    struct chan *ch = user;
    if (arg->opcode != WSLAY_BINARY_FRAME || ch->rejected)
        return;
    static const char reason[] = "binary frames are not accepted";
    ch->rejected = 1;
    if (!ch->ending)
        ch->ending = "binary frame";
    (void)wslay_event_queue_close(ws, HUB_CLOSE_UNSUPPORTED, (const uint8_t *)reason,
                                  sizeof(reason) - 1);
    wslay_event_shutdown_read(ws);
}

static void ws_message(wslay_event_context_ptr ws, const struct wslay_event_on_msg_recv_arg *arg,
                       void *user)
{
    struct chan *ch = user;
    struct hub *h = ch->hub;
    (void)ws;
    if (arg->opcode == WSLAY_TEXT_FRAME) {
        if (!ch->opened || ch->rejected)
            return;
        atomic_fetch_add(&h->msgs_in, 1);
        if (h->ops.on_message)
            h->ops.on_message(h->ops.ctx, ch->agent_id, (const char *)arg->msg, arg->msg_length);
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        if (!ch->ending)
            ch->ending = "peer closed";
    }
}

/* --- channel life (hub thread) ------------------------------------------------------------- */

/* The channel leaves the id map; on_close if on_open was called. */
static void chan_detach(struct hub *h, struct chan *ch)
{
    pthread_mutex_lock(&h->lock);
    if (ch->in_map)
        map_remove(h, ch);
    pthread_mutex_unlock(&h->lock);
    if (!ch->opened)
        return;
    ch->opened = 0;
    atomic_fetch_sub(&h->channels, 1);
    atomic_fetch_add(&h->closed, 1);
    h->churn++;
    h->last_churn_ms = now_ms();
    if (h->ops.on_close)
        h->ops.on_close(h->ops.ctx, ch->agent_id);
}

/* Ends the channel now: detaches it, gives the socket back, marks it dead. */
static void chan_teardown(struct hub *h, struct chan *ch)
{
    if (ch->dead)
        return;
    chan_detach(h, ch);
    ch->dead = 1;
    if (ch->ws)
        log_info("event=agent_channel_closed agent=%s reason=\"%s\" code_sent=%u "
                 "code_received=%u channels=%u",
                 ch->agent_id, ch->ending ? ch->ending : "closed",
                 (unsigned)wslay_event_get_status_code_sent(ch->ws),
                 (unsigned)wslay_event_get_status_code_received(ch->ws), atomic_load(&h->channels));
    if (ch->events)
        epoll_ctl(h->ep, EPOLL_CTL_DEL, ch->fd, NULL);
    ch->events = 0;
    if (ch->release)
        ch->release(ch->release_arg, ch->fd);
    else
        close(ch->fd);
    ch->fd = -1;
    pthread_mutex_lock(&h->lock);
    ready_remove(h, ch);
    struct hub_msg *m = ch->out_head;
    ch->out_head = ch->out_tail = NULL;
    ch->out_n = 0;
    pthread_mutex_unlock(&h->lock);
    msgs_free(m);
    msgs_free(ch->take);
    ch->take = NULL;
    ch->gnext = h->graveyard;
    h->graveyard = ch;
}

/* Frees the channels torn down during this loop iteration. */
static void bury(struct hub *h)
{
    while (h->graveyard) {
        struct chan *ch = h->graveyard;
        h->graveyard = ch->gnext;
        if (ch->prev)
            ch->prev->next = ch->next;
        else if (h->all == ch)
            h->all = ch->next;
        if (ch->next)
            ch->next->prev = ch->prev;
        wslay_event_context_free(ch->ws);
        free(ch->pre);
        free(ch);
    }
}

/* Sends what wslay holds, then sets the epoll interest: read while wslay reads, write only
 * while it has something to write. A channel that does neither is finished. */
static void chan_flush(struct hub *h, struct chan *ch)
{
    if (ch->dead)
        return;
    if (wslay_event_want_write(ch->ws) && wslay_event_send(ch->ws) != 0) {
        chan_teardown(h, ch);
        return;
    }
    atomic_store(&ch->wq, (unsigned)wslay_event_get_queued_msg_count(ch->ws));
    int want_r = wslay_event_want_read(ch->ws);
    int want_w = wslay_event_want_write(ch->ws);
    if (!want_r && !want_w) {
        chan_teardown(h, ch);
        return;
    }
    uint32_t ev = (want_r ? EPOLLIN : 0u) | (want_w ? EPOLLOUT : 0u);
    if (ev != ch->events) {
        struct epoll_event e = {.events = ev, .data.ptr = ch};
        if (epoll_ctl(h->ep, EPOLL_CTL_MOD, ch->fd, &e) != 0) {
            ch->ending = "epoll failed";
            chan_teardown(h, ch);
            return;
        }
        ch->events = ev;
    }
}

/* Starts the closing handshake (on_close now), then waits up to HUB_CLOSE_WAIT_MS for the
 * peer's close. */
static void chan_close(struct hub *h, struct chan *ch, uint16_t code, const char *reason,
                       const char *why)
{
    if (ch->dead)
        return;
    if (!ch->ending)
        ch->ending = why;
    chan_detach(h, ch);
    size_t rlen = strlen(reason);
    if (rlen > HUB_REASON_MAX)
        rlen = HUB_REASON_MAX;
    (void)wslay_event_queue_close(ch->ws, code, (const uint8_t *)reason, rlen);
    if (!ch->close_deadline_ms) {
        unsigned wait = h->timeout_ms < HUB_CLOSE_WAIT_MS ? h->timeout_ms : HUB_CLOSE_WAIT_MS;
        ch->close_deadline_ms = now_ms() + wait;
    }
    chan_flush(h, ch);
}

/* Socket readiness for ch. */
static void chan_io(struct hub *h, struct chan *ch, uint32_t events)
{
    if (ch->dead)
        return;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (wslay_event_want_read(ch->ws)) {
            if (wslay_event_recv(ch->ws) != 0) {
                chan_teardown(h, ch);
                return;
            }
        } else if (events & (EPOLLHUP | EPOLLERR)) {
            if (!ch->ending)
                ch->ending = "peer disconnected";
            chan_teardown(h, ch);
            return;
        }
    }
    chan_flush(h, ch);
}

static const struct wslay_event_callbacks ws_callbacks = {
    .recv_callback = ws_recv,
    .send_callback = ws_send,
    .on_frame_recv_start_callback = ws_frame_start,
    .on_msg_recv_callback = ws_message,
};

/* Frees a channel that never reached the loop, giving its socket back. */
static void chan_discard(struct chan *ch)
{
    if (ch->release)
        ch->release(ch->release_arg, ch->fd);
    else
        close(ch->fd);
    wslay_event_context_free(ch->ws);
    free(ch->pre);
    free(ch);
}

/* An adopted socket joins the loop: wslay context, epoll, id map (closing an older channel of
 * the same agent first), on_open, then whatever already arrived. */
static void chan_open(struct hub *h, struct chan *ch)
{
    int fl = fcntl(ch->fd, F_GETFL);
    int one = 1;
    /* MHD turns Nagle back on for an upgraded socket; our messages are small and latency
     * matters more. Fails harmlessly on a socketpair (TLS). */
    (void)setsockopt(ch->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = ch};
    if (fl < 0 || fcntl(ch->fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        wslay_event_context_server_init(&ch->ws, &ws_callbacks, ch) != 0 ||
        epoll_ctl(h->ep, EPOLL_CTL_ADD, ch->fd, &e) != 0) {
        log_warn("event=agent_channel_refused agent=%s reason=\"cannot set up the socket\"",
                 ch->agent_id);
        chan_discard(ch);
        return;
    }
    ch->events = EPOLLIN;
    wslay_event_config_set_max_recv_msg_length(ch->ws, h->max_message);
    ch->last_rx_ms = ch->last_ping_ms = now_ms();
    ch->next = h->all;
    if (h->all)
        h->all->prev = ch;
    h->all = ch;

    pthread_mutex_lock(&h->lock);
    struct chan *old = map_find(h, ch->agent_id);
    if (old)
        map_remove(h, old);
    map_insert(h, ch);
    pthread_mutex_unlock(&h->lock);
    if (old)
        chan_close(h, old, HUB_CLOSE_POLICY, "replaced by a newer channel", "replaced");
    ch->opened = 1;
    atomic_fetch_add(&h->channels, 1);
    atomic_fetch_add(&h->opened, 1);
    h->churn++;
    h->last_churn_ms = ch->last_rx_ms;
    log_info("event=agent_channel_open agent=%s channels=%u", ch->agent_id,
             atomic_load(&h->channels));
    if (h->ops.on_open)
        h->ops.on_open(h->ops.ctx, ch->agent_id);
    chan_io(h, ch, EPOLLIN);
}

/* Hands ch's taken messages to wslay, then acts on a close or an overflow. */
static void chan_work(struct hub *h, struct chan *ch)
{
    struct hub_msg *m = ch->take;
    ch->take = NULL;
    if (!ch->dead && !ch->take_overflow) {
        for (struct hub_msg *p = m; p; p = p->next) {
            struct wslay_event_msg wm = {WSLAY_TEXT_FRAME, (const uint8_t *)p->data, p->len};
            int r = wslay_event_queue_msg(ch->ws, &wm);
            if (r == WSLAY_ERR_NO_MORE_MSG)
                break; /* closing: the rest is dropped, the outbox resends */
            if (r != 0) {
                ch->ending = "out of memory";
                chan_teardown(h, ch);
                break;
            }
            atomic_fetch_add(&h->msgs_out, 1);
        }
    }
    msgs_free(m);
    if (ch->dead)
        return;
    if (ch->take_overflow) {
        log_warnx("event=agent_queue_full agent=%s max_queue=%u", ch->agent_id, h->max_queue);
        chan_close(h, ch, HUB_CLOSE_POLICY, "send queue full", "send queue full");
    } else if (ch->take_code) {
        chan_close(h, ch, ch->take_code, ch->take_reason, "closed by the server");
    } else {
        chan_flush(h, ch);
    }
}

/* Takes what other threads handed over and acts on it. */
static void take_work(struct hub *h)
{
    uint64_t n;
    ssize_t r = read(h->wake_fd, &n, sizeof(n));
    (void)r;
    pthread_mutex_lock(&h->lock);
    h->wake_pending = 0;
    struct chan *adopted = h->adopt_head;
    h->adopt_head = h->adopt_tail = NULL;
    h->nadopt = 0;
    struct chan *work = NULL, **tail = &work;
    for (struct chan *ch = h->ready_head; ch; ch = ch->rnext) {
        ch->ready = 0;
        ch->take = ch->out_head;
        ch->out_head = ch->out_tail = NULL;
        ch->out_n = 0;
        ch->take_overflow = ch->overflow;
        ch->take_code = ch->close_code;
        memcpy(ch->take_reason, ch->close_reason, sizeof(ch->take_reason));
        ch->wnext = NULL;
        *tail = ch;
        tail = &ch->wnext;
    }
    for (struct chan *ch = work; ch; ch = ch->wnext)
        ch->rprev = ch->rnext = NULL;
    h->ready_head = h->ready_tail = NULL;
    int stop = h->stop;
    pthread_mutex_unlock(&h->lock);

    while (adopted) {
        struct chan *ch = adopted;
        adopted = ch->anext;
        if (stop)
            chan_discard(ch);
        else
            chan_open(h, ch);
    }
    for (struct chan *ch = work; ch; ch = ch->wnext)
        chan_work(h, ch);
    if (stop && !h->stopping) {
        h->stopping = 1;
        h->stop_deadline_ms = now_ms() + HUB_STOP_GRACE_MS;
        for (struct chan *ch = h->all; ch; ch = ch->next)
            chan_close(h, ch, HUB_CLOSE_GOING_AWAY, "server shutting down", "hub stopping");
    }
}

/* Many agents arriving or leaving at once (a restart of netwatchd or of a fleet: 10,000
 * reconnecting within a second) leave the HTTP threads' malloc arenas full of freed
 * connection memory (MHD's 32 KiB pools, request states) that glibc keeps resident:
 * measured, 10,000 agents held ~200 MiB after such a storm against ~110 MiB after a gentle
 * ramp. Once the burst is over, malloc_trim hands the free pages back. */
static void trim_after_churn(struct hub *h, int64_t now)
{
    if (h->churn < HUB_TRIM_CHURN || now - h->last_churn_ms < HUB_TRIM_QUIET_MS)
        return;
    unsigned churn = h->churn;
    h->churn = 0;
    int trimmed = malloc_trim(0);
    log_info("event=hub_memory_trimmed channels_changed=%u released=%d channels=%u", churn, trimmed,
             atomic_load(&h->channels));
}

/* The timer: closing deadlines, silent channels, pings. */
static void heartbeat(struct hub *h)
{
    uint64_t n;
    ssize_t r = read(h->timer_fd, &n, sizeof(n));
    (void)r;
    int64_t now = now_ms();
    for (struct chan *ch = h->all; ch; ch = ch->next) {
        if (ch->dead)
            continue;
        if (ch->close_deadline_ms) {
            if (now >= ch->close_deadline_ms) {
                if (!ch->ending)
                    ch->ending = "close not answered";
                chan_teardown(h, ch);
            }
            continue;
        }
        if (now - ch->last_rx_ms >= (int64_t)h->timeout_ms) {
            log_warnx("event=agent_heartbeat_timeout agent=%s silent_ms=%lld", ch->agent_id,
                      (long long)(now - ch->last_rx_ms));
            ch->ending = "heartbeat timeout";
            chan_detach(h, ch);
            static const char reason[] = "heartbeat timeout";
            (void)wslay_event_queue_close(ch->ws, HUB_CLOSE_GOING_AWAY, (const uint8_t *)reason,
                                          sizeof(reason) - 1);
            if (wslay_event_want_write(ch->ws))
                (void)wslay_event_send(ch->ws); /* one try: the peer is likely gone */
            chan_teardown(h, ch);
            continue;
        }
        if (now - ch->last_ping_ms >= (int64_t)h->heartbeat_ms) {
            struct wslay_event_msg ping = {WSLAY_PING, NULL, 0};
            ch->last_ping_ms = now;
            if (wslay_event_queue_msg(ch->ws, &ping) == 0)
                chan_flush(h, ch);
        }
    }
    trim_after_churn(h, now);
}

static void *hub_main(void *arg)
{
    struct hub *h = arg;
    struct epoll_event evs[HUB_EVENTS];
    for (;;) {
        int n = epoll_wait(h->ep, evs, HUB_EVENTS, h->stopping ? 20 : -1);
        if (n < 0) {
            if (errno != EINTR)
                log_warn("event=hub_epoll_failed");
            continue;
        }
        int work = 0, tick = 0;
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &h->wake_fd)
                work = 1;
            else if (p == &h->timer_fd)
                tick = 1;
            else
                chan_io(h, p, evs[i].events);
        }
        if (work)
            take_work(h);
        if (tick)
            heartbeat(h);
        bury(h);
        if (h->stopping) {
            if (h->all && now_ms() >= h->stop_deadline_ms) {
                for (struct chan *ch = h->all; ch; ch = ch->next) {
                    if (!ch->ending)
                        ch->ending = "hub stopped";
                    chan_teardown(h, ch);
                }
                bury(h);
            }
            if (!h->all)
                break;
        }
    }
    return NULL;
}

/* --- public -------------------------------------------------------------------------------- */

enum cp_err hub_new(const struct hub_options *opt, const struct hub_ops *ops, struct hub **out)
{
    struct hub_options o = opt ? *opt : (struct hub_options){0};
    struct hub *h = calloc(1, sizeof(*h));
    if (!h)
        return CP_ENOMEM;
    h->ops = *ops;
    h->heartbeat_ms = o.heartbeat_ms ? o.heartbeat_ms : HUB_HEARTBEAT_MS;
    h->timeout_ms = o.timeout_ms ? o.timeout_ms : 3 * h->heartbeat_ms;
    h->max_queue = o.max_queue ? o.max_queue : HUB_MAX_QUEUE;
    h->max_message = o.max_message ? o.max_message : HUB_MAX_MESSAGE;
    h->max_channels = o.max_channels ? o.max_channels : HUB_MAX_CHANNELS;
    unsigned base = h->heartbeat_ms < h->timeout_ms ? h->heartbeat_ms : h->timeout_ms;
    h->tick_ms = base / 3 > HUB_TICK_MIN_MS ? base / 3 : HUB_TICK_MIN_MS;
    h->ep = h->wake_fd = h->timer_fd = -1;
    h->nbuckets = HUB_BUCKETS_MIN;
    if (pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h);
        return CP_ENOMEM;
    }
    if (!(h->buckets = calloc(h->nbuckets, sizeof(*h->buckets)))) {
        hub_free(h);
        return CP_ENOMEM;
    }
    *out = h;
    return CP_OK;
}

enum cp_err hub_start(struct hub *h)
{
    if (h->running)
        return CP_OK;
    struct itimerspec its = {
        .it_interval = {h->tick_ms / 1000, (long)(h->tick_ms % 1000) * 1000000L},
        .it_value = {h->tick_ms / 1000, (long)(h->tick_ms % 1000) * 1000000L},
    };
    struct epoll_event we = {.events = EPOLLIN, .data.ptr = &h->wake_fd};
    struct epoll_event te = {.events = EPOLLIN, .data.ptr = &h->timer_fd};
    if ((h->ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        (h->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0 ||
        (h->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK)) < 0 ||
        timerfd_settime(h->timer_fd, 0, &its, NULL) != 0 ||
        epoll_ctl(h->ep, EPOLL_CTL_ADD, h->wake_fd, &we) != 0 ||
        epoll_ctl(h->ep, EPOLL_CTL_ADD, h->timer_fd, &te) != 0) {
        log_warn("event=hub_start_failed");
        return CP_EIO;
    }
    pthread_mutex_lock(&h->lock);
    h->accepting = 1;
    pthread_mutex_unlock(&h->lock);
    if (pthread_create(&h->thread, NULL, hub_main, h) != 0) {
        pthread_mutex_lock(&h->lock);
        h->accepting = 0;
        pthread_mutex_unlock(&h->lock);
        return CP_ENOMEM;
    }
    h->running = 1;
    log_info("event=hub_started heartbeat_ms=%u timeout_ms=%u max_queue=%u max_message=%zu "
             "max_channels=%u",
             h->heartbeat_ms, h->timeout_ms, h->max_queue, h->max_message, h->max_channels);
    return CP_OK;
}

void hub_stop(struct hub *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->lock);
    h->accepting = 0;
    int need = 0;
    if (h->running) {
        h->stop = 1;
        need = !h->wake_pending;
        h->wake_pending = 1;
    }
    pthread_mutex_unlock(&h->lock);
    if (!h->running)
        return;
    if (need)
        wake(h);
    pthread_join(h->thread, NULL);
    h->running = 0;
    log_info("event=hub_stopped opened=%llu", (unsigned long long)atomic_load(&h->opened));
}

void hub_free(struct hub *h)
{
    if (!h)
        return;
    hub_stop(h);
    /* Adopted before a start that never came. */
    while (h->adopt_head) {
        struct chan *ch = h->adopt_head;
        h->adopt_head = ch->anext;
        chan_discard(ch);
    }
    if (h->ep >= 0)
        close(h->ep);
    if (h->wake_fd >= 0)
        close(h->wake_fd);
    if (h->timer_fd >= 0)
        close(h->timer_fd);
    free(h->buckets);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

enum cp_err hub_adopt(struct hub *h, int fd, const char *extra, size_t extra_len,
                      const char *agent_id, hub_release_fn release, void *release_arg)
{
    size_t idlen = agent_id ? strlen(agent_id) : 0;
    if (fd < 0 || idlen == 0 || idlen >= HUB_AGENT_ID_MAX)
        return CP_EINVAL;
    struct chan *ch = calloc(1, sizeof(*ch));
    if (!ch)
        return CP_ENOMEM;
    if (extra_len) {
        if (!(ch->pre = malloc(extra_len))) {
            free(ch);
            return CP_ENOMEM;
        }
        memcpy(ch->pre, extra, extra_len);
        ch->pre_len = extra_len;
    }
    ch->hub = h;
    ch->fd = fd;
    ch->release = release;
    ch->release_arg = release_arg;
    memcpy(ch->agent_id, agent_id, idlen + 1);
    atomic_init(&ch->wq, 0);
    pthread_mutex_lock(&h->lock);
    if (!h->accepting || full(h, agent_id)) {
        pthread_mutex_unlock(&h->lock);
        free(ch->pre);
        free(ch);
        return CP_EBUSY;
    }
    h->nadopt++;
    if (h->adopt_tail)
        h->adopt_tail->anext = ch;
    else
        h->adopt_head = ch;
    h->adopt_tail = ch;
    int need = !h->wake_pending;
    h->wake_pending = 1;
    pthread_mutex_unlock(&h->lock);
    if (need)
        wake(h);
    return CP_OK;
}

enum cp_err hub_authenticate(struct hub *h, const char *bearer_token, char agent_id[40],
                             struct cp_error *e)
{
    if (!h->ops.authenticate)
        return cp_fail(e, CP_EAUTH, "", "", "agent authentication is not configured");
    enum cp_err err = h->ops.authenticate(h->ops.ctx, bearer_token, agent_id, e);
    if (err != CP_OK)
        return err;
    agent_id[HUB_AGENT_ID_MAX - 1] = '\0';
    pthread_mutex_lock(&h->lock);
    int no_room = full(h, agent_id);
    pthread_mutex_unlock(&h->lock);
    if (no_room) {
        log_warnx("event=agent_channel_refused agent=%s reason=\"max agents connected\" "
                  "max_agents=%u",
                  agent_id, h->max_channels);
        return cp_fail(e, CP_EBUSY, "", "", "%u agents are connected, the most allowed",
                       h->max_channels);
    }
    return CP_OK;
}

enum cp_err hub_send(struct hub *h, const char *agent_id, const char *json, size_t len)
{
    if (len == 0 || len > h->max_message)
        return CP_ETOOBIG;
    struct hub_msg *m = malloc(sizeof(*m) + len);
    if (!m)
        return CP_ENOMEM;
    m->next = NULL;
    m->len = len;
    memcpy(m->data, json, len);
    enum cp_err err = CP_OK;
    int need = 0;
    pthread_mutex_lock(&h->lock);
    struct chan *ch = map_find(h, agent_id);
    if (!ch) {
        err = CP_ENOAGENT;
    } else if (ch->overflow || ch->out_n + atomic_load(&ch->wq) >= h->max_queue) {
        ch->overflow = 1;
        need = ready_add(h, ch);
        err = CP_EBUSY;
    } else {
        if (ch->out_tail)
            ch->out_tail->next = m;
        else
            ch->out_head = m;
        ch->out_tail = m;
        ch->out_n++;
        m = NULL;
        need = ready_add(h, ch);
    }
    pthread_mutex_unlock(&h->lock);
    free(m);
    if (need)
        wake(h);
    return err;
}

enum cp_err hub_close(struct hub *h, const char *agent_id, uint16_t code, const char *reason)
{
    if (!((code >= 1000 && code <= 1011 && code != 1004 && code != 1005 && code != 1006) ||
          (code >= 3000 && code <= 4999)))
        return CP_EINVAL;
    enum cp_err err = CP_OK;
    int need = 0;
    pthread_mutex_lock(&h->lock);
    struct chan *ch = map_find(h, agent_id);
    if (!ch) {
        err = CP_ENOAGENT;
    } else {
        if (!ch->close_code) {
            ch->close_code = code;
            size_t n = reason ? strlen(reason) : 0;
            if (n > HUB_REASON_MAX)
                n = HUB_REASON_MAX;
            if (n)
                memcpy(ch->close_reason, reason, n);
            ch->close_reason[n] = '\0';
        }
        need = ready_add(h, ch);
    }
    pthread_mutex_unlock(&h->lock);
    if (need)
        wake(h);
    return err;
}

void hub_stats(struct hub *h, struct hub_stats *out)
{
    out->channels = atomic_load(&h->channels);
    out->opened = atomic_load(&h->opened);
    out->closed = atomic_load(&h->closed);
    out->messages_in = atomic_load(&h->msgs_in);
    out->messages_out = atomic_load(&h->msgs_out);
}
