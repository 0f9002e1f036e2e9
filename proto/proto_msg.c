/* struct proto_msg lifetime: freeing what a decoded message owns, and the seq accessor. */
#include "proto/proto.h"

#include <stdlib.h>
#include <string.h>

void proto_msg_clear(struct proto_msg *m)
{
    if (!m)
        return;
    switch (m->type) {
    case PROTO_HELLO:
        free(m->hello.interfaces);
        free(m->hello.sessions);
        break;
    case PROTO_WELCOME:
        free(m->welcome.stop);
        break;
    case PROTO_START:
        free(m->start.spec);
        break;
    case PROTO_ACK:
        free(m->ack.filter);
        break;
    case PROTO_COMPLETED:
        for (size_t i = 0; m->completed.files && i < m->completed.n_files; i++)
            free(m->completed.files[i].path);
        free(m->completed.files);
        break;
    case PROTO_BLOB_GRANT:
        free(m->blob_grant.url);
        break;
    default:
        break; /* the other types own nothing */
    }
    memset(m, 0, sizeof(*m));
}

int64_t proto_msg_seq(const struct proto_msg *m)
{
    switch (m->type) {
    case PROTO_ACK:
        return m->ack.seq;
    case PROTO_PROGRESS:
        return m->progress.seq;
    case PROTO_COMPLETED:
        return m->completed.seq;
    case PROTO_ERROR:
        return m->error.seq;
    case PROTO_REPLY:
        return m->reply.seq;
    default:
        return 0;
    }
}
