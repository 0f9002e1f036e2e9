/* A scripted agent on the real channel code (see script_agent.h). */
#include "tests/integration/script_agent.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent/channel.h"
#include "tests/integration/harness.h"

static void send_report(struct script_agent *a, struct channel *ch, struct proto_msg *m)
{
    uint64_t seq = 0;
    struct cp_error e = {{0}, {0}, {0}};
    if (!NW_CHECK(agent_state_take_seq(&a->state, &seq, &e) == CP_OK, "seq: %s", e.message))
        return;
    m->ack.seq = (int64_t)seq;
    char *text = proto_encode(m);
    NW_CHECK(text && channel_send(ch, text, strlen(text)) == CP_OK, "scripted ack not sent");
    free(text);
}

static void on_message(void *ctx, struct channel *ch, const struct proto_msg *msg)
{
    struct script_agent *a = ctx;
    if (msg->type == PROTO_START) {
        pthread_mutex_lock(&a->mu);
        int seen = 0;
        for (size_t i = 0; i < a->n_captures; i++)
            seen |= strcmp(a->captures[i], msg->start.capture_id) == 0;
        if (!seen && a->n_captures < SCRIPT_AGENT_CAPTURES)
            snprintf(a->captures[a->n_captures++], PROTO_ID_SIZE, "%s", msg->start.capture_id);
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->mu);
        struct proto_msg ack = {.type = PROTO_ACK};
        snprintf(ack.ack.command_id, sizeof(ack.ack.command_id), "%s", msg->start.command_id);
        ack.ack.ok = 1;
        send_report(a, ch, &ack);
        return;
    }
    /* Kept as a copy that owns its parts: encode and decode again. */
    char *text = proto_encode(msg);
    struct proto_msg copy = {0};
    if (text && proto_decode(text, strlen(text), &copy, NULL) == CP_OK) {
        pthread_mutex_lock(&a->mu);
        if (a->n_inbox < SCRIPT_AGENT_INBOX)
            a->inbox[a->n_inbox++] = copy;
        else
            proto_msg_clear(&copy);
        pthread_cond_broadcast(&a->cond);
        pthread_mutex_unlock(&a->mu);
    }
    free(text);
}

static void on_wake(void *ctx, struct channel *ch)
{
    struct script_agent *a = ctx;
    uint64_t n;
    if (read(a->wake_fd, &n, sizeof(n)) != sizeof(n) || !ch)
        return; /* between connections: the queue waits for the next wake */
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; i < a->n_outbox; i++) {
        NW_CHECK(channel_send(ch, a->outbox[i], strlen(a->outbox[i])) == CP_OK,
                 "scripted send failed");
        free(a->outbox[i]);
    }
    a->n_outbox = 0;
    pthread_mutex_unlock(&a->mu);
}

static size_t hello_sessions(void *ctx, struct proto_session *out, size_t max)
{
    struct script_agent *a = ctx;
    pthread_mutex_lock(&a->mu);
    size_t n = a->n_captures < max ? a->n_captures : max;
    for (size_t i = 0; i < n; i++) {
        snprintf(out[i].capture_id, sizeof(out[i].capture_id), "%s", a->captures[i]);
        out[i].state = PROTO_SESSION_RUNNING;
    }
    pthread_mutex_unlock(&a->mu);
    return n;
}

static void *agent_main(void *arg)
{
    struct script_agent *a = arg;
    struct channel_handler h = {.ctx = a,
                                .on_message = on_message,
                                .wake_fd = a->wake_fd,
                                .on_wake = on_wake,
                                .hello_sessions = hello_sessions};
    struct channel_options o = {.host = "127.0.0.1",
                                .port = a->port,
                                .token = a->token,
                                .state = &a->state,
                                .handler = &h,
                                .stop_fd = a->stop_fd,
                                .backoff_min_ms = 100,
                                .backoff_max_ms = 500,
                                .connect_timeout_ms = 5000};
    a->run_err = channel_run(&o);
    return NULL;
}

int script_agent_start(struct script_agent *a, unsigned port, const char *token,
                       const char *state_dir)
{
    memset(a, 0, sizeof(*a));
    a->stop_fd = a->wake_fd = -1;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cond, NULL);
    a->port = port;
    snprintf(a->token, sizeof(a->token), "%s", token);
    (void)mkdir(state_dir, 0700);
    struct cp_error e = {{0}, {0}, {0}};
    a->stop_fd = eventfd(0, EFD_CLOEXEC);
    a->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!NW_CHECK(a->stop_fd >= 0 && a->wake_fd >= 0 &&
                      agent_state_open(state_dir, &a->state, &e) == CP_OK,
                  "scripted agent state: %s", e.message))
        return -1;
    if (!NW_CHECK(pthread_create(&a->thread, NULL, agent_main, a) == 0, "scripted agent thread"))
        return -1;
    a->running = 1;
    return 0;
}

void script_agent_stop(struct script_agent *a)
{
    if (a->running) {
        uint64_t one = 1;
        NW_CHECK(write(a->stop_fd, &one, sizeof(one)) == sizeof(one), "stop the scripted agent");
        pthread_join(a->thread, NULL);
        NW_CHECK(a->run_err == CP_OK, "the scripted channel ended with %s",
                 cp_err_name(a->run_err));
        a->running = 0;
    }
    for (size_t i = 0; i < a->n_inbox; i++)
        proto_msg_clear(&a->inbox[i]);
    for (size_t i = 0; i < a->n_outbox; i++)
        free(a->outbox[i]);
    a->n_inbox = a->n_outbox = 0;
    if (a->stop_fd >= 0)
        close(a->stop_fd);
    if (a->wake_fd >= 0)
        close(a->wake_fd);
    a->stop_fd = a->wake_fd = -1;
    pthread_cond_destroy(&a->cond);
    pthread_mutex_destroy(&a->mu);
}

static struct timespec deadline(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

int script_agent_wait_capture(struct script_agent *a, size_t n, char out[PROTO_ID_SIZE], long ms)
{
    struct timespec until = deadline(ms);
    int rc = 0;
    pthread_mutex_lock(&a->mu);
    while (a->n_captures <= n && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&a->cond, &a->mu, &until);
    int got = a->n_captures > n;
    if (got)
        snprintf(out, PROTO_ID_SIZE, "%s", a->captures[n]);
    pthread_mutex_unlock(&a->mu);
    return got ? 0 : -1;
}

int script_agent_send(struct script_agent *a, const struct proto_msg *m)
{
    char *text = proto_encode(m);
    if (!text)
        return -1;
    pthread_mutex_lock(&a->mu);
    int ok = a->n_outbox < SCRIPT_AGENT_OUTBOX;
    if (ok)
        a->outbox[a->n_outbox++] = text;
    pthread_mutex_unlock(&a->mu);
    if (!ok) {
        free(text);
        return -1;
    }
    uint64_t one = 1;
    return write(a->wake_fd, &one, sizeof(one)) == sizeof(one) ? 0 : -1;
}

int script_agent_wait_msg(struct script_agent *a, enum proto_type t,
                          int (*match)(const struct proto_msg *m, void *arg), void *arg,
                          struct proto_msg *out, long ms)
{
    struct timespec until = deadline(ms);
    int rc = 0, found = -1;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        for (size_t i = 0; i < a->n_inbox && found < 0; i++)
            if (a->inbox[i].type == t && (!match || match(&a->inbox[i], arg)))
                found = (int)i;
        if (found >= 0 || rc == ETIMEDOUT)
            break;
        rc = pthread_cond_timedwait(&a->cond, &a->mu, &until);
    }
    char *text = found >= 0 ? proto_encode(&a->inbox[found]) : NULL;
    pthread_mutex_unlock(&a->mu);
    int ok = text && proto_decode(text, strlen(text), out, NULL) == CP_OK;
    free(text);
    return ok ? 0 : -1;
}
