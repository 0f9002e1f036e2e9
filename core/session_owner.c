/*
 * One session and its capture, as the agent that runs it may see them: what the server needs to
 * answer an agent's request about its own session (a blobGrant's storage account and path).
 */
#include <string.h>

#include "core/core_int.h"

struct owner_job {
    const char *agent_id, *session_id;
    struct db_session *s;
    struct db_capture *cap;
};

static enum cp_err owner_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    struct owner_job *job = arg;
    enum cp_err err = db_session_get(c, job->session_id, job->s);
    if (err == CP_OK && strcmp(job->s->agent_id, job->agent_id) != 0)
        err = CP_ENOTFOUND; /* another agent's: said the same way as absent */
    if (err == CP_OK)
        err = db_capture_get_by_id(c, job->s->capture_id, job->cap);
    if (err == CP_ENOTFOUND)
        return cp_fail(e, CP_EFORBIDDEN, "NotYourSession", "",
                       "Capture %.40s is not assigned to this agent.", job->session_id);
    return err;
}

enum cp_err core_session_of_agent(struct core *core, const char *agent_id, const char *session_id,
                                  struct db_session *s, struct db_capture *cap, struct cp_error *e)
{
    struct owner_job job = {agent_id, session_id, s, cap};
    return db_store_read(core->store, owner_run, &job, e);
}
