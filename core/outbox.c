/*
 * The commands owed to agents (the outbox), as core sees them: written in the job of the request
 * that owes them, sent after the commit (core_cmd_ids_send), listed for the channel after a hello
 * and marked sent once on their way (core/session_timers.c prunes the acknowledged ones).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/log.h"
#include "common/strutil.h"
#include "common/timefmt.h"
#include "core/core_int.h"
#include "core/ids.h"
#include "db/agent.h"

/* --- owed commands --- */

void core_cmd_ids_free(struct core_cmd_ids *l)
{
    free(l->ids);
    memset(l, 0, sizeof(*l));
}

static enum cp_err cmd_ids_add(struct core_cmd_ids *l, const char *id)
{
    if (!l)
        return CP_OK;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        void *more = realloc(l->ids, cap * sizeof(*l->ids));
        if (!more)
            return CP_ENOMEM;
        l->ids = more;
        l->cap = cap;
    }
    str_copy(l->ids[l->n++], DB_COMMAND_ID_MAX, id);
    return CP_OK;
}

void core_cmd_ids_send(struct core *core, struct core_cmd_ids *l)
{
    for (size_t i = 0; i < l->n; i++)
        core_dispatch_push_command(core->dispatch, l->ids[i]);
    core_cmd_ids_free(l);
}

/* Writes a command owed to agent_id about session_id (reason: stops only), with id as its
 * commandId (NULL: a fresh GUID). */
enum cp_err core_owe_as(struct db_conn *c, const char *id, const char *agent_id,
                        const char *session_id, const char *kind, const char *reason, int64_t now,
                        struct core_cmd_ids *out)
{
    struct db_command cmd;
    memset(&cmd, 0, sizeof(cmd));
    if (id)
        str_copy(cmd.id, sizeof(cmd.id), id);
    else
        core_guid(cmd.id);
    str_copy(cmd.agent_id, sizeof(cmd.agent_id), agent_id);
    str_copy(cmd.session_id, sizeof(cmd.session_id), session_id);
    str_copy(cmd.kind, sizeof(cmd.kind), kind);
    str_copy(cmd.stop_reason, sizeof(cmd.stop_reason), reason ? reason : "");
    str_copy(cmd.state, sizeof(cmd.state), "pending");
    cmd.created_ms = now;
    enum cp_err err = db_outbox_insert(c, &cmd);
    if (err == CP_OK)
        err = cmd_ids_add(out, cmd.id);
    return err;
}

enum cp_err core_owe(struct db_conn *c, const char *agent_id, const char *session_id,
                     const char *kind, const char *reason, int64_t now, struct core_cmd_ids *out)
{
    return core_owe_as(c, NULL, agent_id, session_id, kind, reason, now, out);
}

/* --- the outbox, seen from the channel --- */

struct owed_job {
    const char *agent_id;
    db_command_each_fn each;
    void *arg;
};

static enum cp_err owed_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct owed_job *job = arg;
    return db_outbox_list_owed(c, job->agent_id, job->each, job->arg);
}

enum cp_err core_agent_owed(struct core *core, const char *agent_id, db_command_each_fn each,
                            void *arg, struct cp_error *e)
{
    struct owed_job job = {agent_id, each, arg};
    return db_store_read(core->store, owed_run, &job, e);
}

struct sent_job {
    const char (*ids)[DB_COMMAND_ID_MAX];
    size_t n;
};

static enum cp_err sent_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct sent_job *job = arg;
    int64_t now = timefmt_now_ms();
    enum cp_err err = CP_OK;
    for (size_t i = 0; err == CP_OK && i < job->n; i++) {
        struct db_command cmd;
        err = db_outbox_get(c, job->ids[i], &cmd);
        if (err == CP_ENOTFOUND) {
            err = CP_OK;
            continue;
        }
        if (err == CP_OK)
            err = db_outbox_mark_sent(c, cmd.id, now);
        if (err == CP_OK && strcmp(cmd.kind, "start") == 0)
            err = db_session_set_dispatched(c, cmd.session_id, now);
        db_command_clear(&cmd);
    }
    return err;
}

enum cp_err core_commands_sent(struct core *core, const char (*ids)[DB_COMMAND_ID_MAX], size_t n,
                               struct cp_error *e)
{
    if (n == 0)
        return CP_OK;
    struct sent_job job = {ids, n};
    return db_store_write(core->store, sent_run, &job, e);
}
