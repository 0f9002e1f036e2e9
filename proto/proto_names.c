/* Wire names of the protocol's enums (message types, stopReason, PcError, session states). */
#include "proto/proto.h"

#include <string.h>

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static const char *const type_names[] = {
    [PROTO_HELLO] = "hello",
    [PROTO_WELCOME] = "welcome",
    [PROTO_START] = "start",
    [PROTO_STOP] = "stop",
    [PROTO_ACK] = "ack",
    [PROTO_PROGRESS] = "progress",
    [PROTO_COMPLETED] = "completed",
    [PROTO_ERROR] = "error",
    [PROTO_REPLY] = "reply",
    [PROTO_BLOB_REQUEST] = "blobRequest",
    [PROTO_BLOB_GRANT] = "blobGrant",
};

static const char *const stop_reason_names[] = {
    [PROTO_STOP_MANUAL] = "Manual",
    [PROTO_STOP_TIME_EXCEEDED] = "TimeExceeded",
    [PROTO_STOP_SESSION_BYTES_EXCEEDED] = "SessionBytesExceeded",
    [PROTO_STOP_SESSION_DELETED] = "SessionDeleted",
    [PROTO_STOP_AGENT_STOPPED] = "AgentStopped",
};

static const char *const pc_error_names[] = {
    [PROTO_PC_INTERNAL_ERROR] = "InternalError", [PROTO_PC_AGENT_STOPPED] = "AgentStopped",
    [PROTO_PC_CAPTURE_FAILED] = "CaptureFailed", [PROTO_PC_LOCAL_FILE_FAILED] = "LocalFileFailed",
    [PROTO_PC_STORAGE_FAILED] = "StorageFailed",
};

static const char *const session_state_names[] = {
    [PROTO_SESSION_RUNNING] = "running",
    [PROTO_SESSION_FINISHED] = "finished",
};

/* Index 0 of every table is the *_NONE value and has no name (NULL). */
static const char *name_of(const char *const *names, size_t n, int v)
{
    if (v <= 0 || (size_t)v >= n)
        return NULL;
    return names[v];
}

/* The index of s in names, or -1. */
static int index_of(const char *const *names, size_t n, const char *s)
{
    if (!s)
        return -1;
    for (size_t i = 1; i < n; i++) {
        if (names[i] && strcmp(names[i], s) == 0)
            return (int)i;
    }
    return -1;
}

const char *proto_type_name(enum proto_type t)
{
    return name_of(type_names, COUNT(type_names), (int)t);
}

const char *proto_stop_reason_name(enum proto_stop_reason r)
{
    return name_of(stop_reason_names, COUNT(stop_reason_names), (int)r);
}

const char *proto_pc_error_name(enum proto_pc_error c)
{
    return name_of(pc_error_names, COUNT(pc_error_names), (int)c);
}

const char *proto_session_state_name(enum proto_session_state s)
{
    return name_of(session_state_names, COUNT(session_state_names), (int)s);
}

int proto_type_parse(const char *s, enum proto_type *out)
{
    int i = index_of(type_names, COUNT(type_names), s);
    if (i < 0)
        return -1;
    *out = (enum proto_type)i;
    return 0;
}

int proto_stop_reason_parse(const char *s, enum proto_stop_reason *out)
{
    int i = index_of(stop_reason_names, COUNT(stop_reason_names), s);
    if (i < 0)
        return -1;
    *out = (enum proto_stop_reason)i;
    return 0;
}

int proto_pc_error_parse(const char *s, enum proto_pc_error *out)
{
    int i = index_of(pc_error_names, COUNT(pc_error_names), s);
    if (i < 0)
        return -1;
    *out = (enum proto_pc_error)i;
    return 0;
}

int proto_session_state_parse(const char *s, enum proto_session_state *out)
{
    int i = index_of(session_state_names, COUNT(session_state_names), s);
    if (i < 0)
        return -1;
    *out = (enum proto_session_state)i;
    return 0;
}
