/*
 * The agent channel: every message netwatchd and netwatch-agent exchange, their limits, and the
 * one codec both binaries use (docs/agent-protocol.md is the prose version of this header).
 *
 * WIRE FORMAT (version 1)
 *
 * Transport. One WebSocket (RFC 6455) per agent, dialled by the agent to PROTO_CHANNEL_PATH
 * with subprotocol PROTO_SUBPROTOCOL and "Authorization: Bearer <agent token>". Text frames
 * only; each frame is exactly one message; a message is at most PROTO_MAX_MESSAGE bytes. A
 * larger frame closes the channel with PROTO_CLOSE_TOO_BIG (1009); a binary frame or a message
 * proto_decode refuses closes it with PROTO_CLOSE_UNSUPPORTED (1003).
 *
 * Message. A UTF-8 JSON object (RFC 8259) with a string member "type". Keys are unique (a
 * repeated key is refused); members a version does not know are ignored, so a later minor
 * addition does not break an older peer; a type it does not know is refused. Encoded compactly
 * (no blanks), "type" first.
 *
 * Value rules, applied to every field below:
 *   int      a JSON integer (no fraction, no exponent) in the stated range; every count and
 *            seq fits int64
 *   seq      int >= 1: a per-agent report sequence number (the agent keeps it across restarts)
 *   uuid     a lower-case GUID, 8-4-4-4-12 hex digits, as the server makes them (36 chars)
 *   name     1..max bytes, no control characters (U+0000..U+001F, U+007F)
 *   text     0..max bytes of any UTF-8 (free text for people: error messages)
 *   enum     one of the listed strings, matched exactly (case-sensitive)
 *   array    at most the stated number of elements; "?" marks an optional member, and an
 *            optional array that is absent is empty. null is never a valid value.
 *
 * Messages (direction, members):
 *   hello      A->S  protocols:[int 1..INT_MAX] (1..PROTO_MAX_PROTOCOLS), agentVersion:name(64),
 *                    hostname:name(255), os:name(32),
 *                    interfaces?:[{name:name(64), addresses?:[IPv4|IPv6 text]
 *                    (PROTO_MAX_ADDRESSES)}] (PROTO_MAX_INTERFACES),
 *                    sessions?:{running?:[uuid], finished?:[uuid]} (PROTO_MAX_SESSIONS in
 *                    all), unackedFrom:seq,
 *                    identity?:{resourceId:armId(PROTO_RESOURCE_ID_MAX),
 *                    instanceId?:ARM resource name (1..80)}: the machine the agent was told
 *                    it runs on; instanceId is required with a scale-set id, refused with a
 *                    VM id (absent: not stated, nothing is checked)
 *   welcome    S->A  protocol:int>=1, heartbeatSeconds:int 1..PROTO_HEARTBEAT_MAX,
 *                    lastAppliedSeq:int>=0, stop?:[uuid] (PROTO_MAX_SESSIONS)
 *   start      S->A  commandId:uuid, captureId:uuid, name:ARM resource name (1..80),
 *                    spec:object (the normalised PacketCaptureParameters api/ produced)
 *   stop       S->A  commandId:uuid, captureId:uuid, reason:stopReason
 *   ack        A->S  seq, commandId:uuid, ok:bool, at?:int>=0 (epoch ms the command took effect),
 *                    and only when ok is true: filter?:text(PROTO_FILTER_MAX), the pcap
 *                    expression a started capture installed ("" = every packet; absent: not
 *                    said, as for a stop); only when ok is false: code:PcError,
 *                    message?:text(1024)
 *   progress   A->S  seq, captureId:uuid, packets, bytes, drops, files: int>=0,
 *                    firstPacketAt?:int>=0 (epoch ms of the first packet; absent: none yet),
 *                    uploadedBytes?:int>=0 (bytes committed to blob storage; absent: none)
 *   completed  A->S  seq, captureId:uuid, stopReason:stopReason,
 *                    files?:[{path:name(2048), bytes:int>=0, sha256?:64 lower-case hex}]
 *                    (PROTO_MAX_FILES)
 *   error      A->S  seq, captureId:uuid, code:PcError, message?:text(1024)
 *   reply      S->A  seq, ok:bool, and only when ok is false: code:1..64 ASCII letters/digits,
 *                    message?:text(1024)
 *   blobRequest A->S id:int>=1, captureId:uuid, file:int 0..PROTO_FILE_INDEX_MAX
 *   blobGrant  S->A  id:int>=1, ok:bool, and when ok: url:http(s) URL(4096), expiresAt:int>=0;
 *                    when not ok: code:name(64), message?:text(1024)
 *
 *   armId:      /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/
 *               virtualMachines/{name} or .../virtualMachineScaleSets/{name} (common/armid.h)
 *   stopReason: Manual | TimeExceeded | SessionBytesExceeded | SessionDeleted | AgentStopped
 *   PcError:    InternalError | AgentStopped | CaptureFailed | LocalFileFailed | StorageFailed
 *
 * Sizes. Each member has its bound and the whole message PROTO_MAX_MESSAGE. What a peer must
 * be able to say always fits: PROTO_MAX_SESSIONS ids take 40 KiB (39 bytes each on the wire),
 * which is why hello.sessions is grouped by state rather than one object per session. Lists
 * that only inform (hello.interfaces, completed.files) may be trimmed by the sender to fit.
 *
 * Sequence. hello first (the server closes with 4002 when proto_negotiate finds no version in
 * common, and with 4004 when hello.identity is not the machine the token was registered for),
 * welcome back; then commands (start, stop) and reports (ack, progress, completed,
 * error) in any order. Every report gets a reply with its seq once it is durable on the server
 * (or was applied before). Commands are repeated after a reconnect until acked; an agent answers
 * a commandId it has seen with the same ack.
 *
 * Threading: no global mutable state; every function is thread-safe. Links common + jansson.
 */
#ifndef NW_PROTO_PROTO_H
#define NW_PROTO_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* ---- version and endpoint ---- */

#define PROTO_VERSION      1 /* the newest version this build speaks */
#define PROTO_VERSION_MIN  1 /* the oldest version this build still speaks */
#define PROTO_SUBPROTOCOL  "netwatch.agent.v1"
#define PROTO_CHANNEL_PATH "/agent/v1/channel"

/* ---- channel limits and timing ---- */

#define PROTO_MAX_MESSAGE       65536 /* bytes per message (one text frame) */
#define PROTO_MAX_QUEUE         256   /* messages queued to one agent; past that: close */
#define PROTO_HEARTBEAT_SECONDS 15    /* server ping interval (welcome.heartbeatSeconds) */
#define PROTO_HEARTBEAT_MAX     3600  /* largest heartbeatSeconds a welcome may carry */
#define PROTO_SILENCE_FACTOR    3     /* silent for this many heartbeats: peer is gone */
#define PROTO_BACKOFF_MIN_MS    500   /* first reconnect delay (full jitter below it) */
#define PROTO_BACKOFF_MAX_MS    30000 /* reconnect delay cap */

/* ---- field bounds (string maxima are bytes, excluding the NUL) ---- */

#define PROTO_MAX_PROTOCOLS     16   /* hello.protocols entries */
#define PROTO_MAX_SESSIONS      1024 /* hello.sessions and welcome.stop entries */
#define PROTO_MAX_INTERFACES    64   /* hello.interfaces entries */
#define PROTO_MAX_ADDRESSES     32   /* addresses per interface */
#define PROTO_MAX_FILES         256  /* completed.files entries */
#define PROTO_ID_LEN            36   /* a GUID: 8-4-4-4-12 */
#define PROTO_ID_SIZE           (PROTO_ID_LEN + 1)
#define PROTO_AGENT_VERSION_MAX 64
#define PROTO_HOSTNAME_MAX      255
#define PROTO_OS_MAX            32
#define PROTO_IFNAME_MAX        64
#define PROTO_ADDRESS_MAX       45 /* INET6_ADDRSTRLEN - 1 */
#define PROTO_NAME_MAX          80 /* capture name: an ARM resource name */
#define PROTO_PATH_MAX          2048
#define PROTO_SHA256_HEX        64
#define PROTO_CODE_MAX          64
#define PROTO_MESSAGE_MAX       1024
#define PROTO_RESOURCE_ID_MAX   512        /* hello.identity.resourceId (ARMID_MAX_LEN) */
#define PROTO_INSTANCE_ID_MAX   80         /* hello.identity.instanceId: an ARM resource name */
#define PROTO_URL_MAX           4096       /* blobGrant.url: a blob URL with its SAS query */
#define PROTO_FILE_INDEX_MAX    1000000000 /* blobRequest.file */
/* ack.filter: a whole expression (BPF_EXPR_MAX, common/bpf_expr.h, is no larger) leaves room in
 * PROTO_MAX_MESSAGE for the rest of the ack, so an expression is never trimmed. */
#define PROTO_FILTER_MAX (60 * 1024)

/* reply.code the server sends for a report about a session the agent does not own. */
#define PROTO_REPLY_NOT_YOUR_SESSION "NotYourSession"

/* WebSocket close codes the channel uses. */
enum proto_close_code {
    PROTO_CLOSE_UNSUPPORTED = 1003, /* binary frame, or a message proto_decode refused */
    PROTO_CLOSE_TOO_BIG = 1009,     /* frame over PROTO_MAX_MESSAGE */
    PROTO_CLOSE_REVOKED = 4001,     /* the agent's credential was revoked */
    PROTO_CLOSE_NO_PROTOCOL = 4002, /* hello offered no version this server speaks */
    PROTO_CLOSE_NOT_APPLIED = 4003, /* a report could not be stored: send it again after hello */
    /* hello.identity is not the machine the agent's token was registered for (a token copied to
     * another machine, or a wrong --resource-id): fix the setting or the token, then retry. */
    PROTO_CLOSE_WRONG_IDENTITY = 4004,
};

/* ---- enums and their wire names ---- */

enum proto_type {
    PROTO_NONE = 0, /* an empty struct proto_msg; never on the wire */
    PROTO_HELLO,
    PROTO_WELCOME,
    PROTO_START,
    PROTO_STOP,
    PROTO_ACK,
    PROTO_PROGRESS,
    PROTO_COMPLETED,
    PROTO_ERROR,
    PROTO_REPLY,
    PROTO_BLOB_REQUEST, /* agent asks for a write-only SAS URL for one file of a session */
    PROTO_BLOB_GRANT,   /* the server's answer to one blobRequest */
};

/* stopReason: why a capture ended (also stop.reason). */
enum proto_stop_reason {
    PROTO_STOP_NONE = 0, /* not set; never on the wire */
    PROTO_STOP_MANUAL,
    PROTO_STOP_TIME_EXCEEDED,
    PROTO_STOP_SESSION_BYTES_EXCEEDED,
    PROTO_STOP_SESSION_DELETED,
    PROTO_STOP_AGENT_STOPPED,
};

/* Azure's PcError: what went wrong with a capture (error.code, and ack.code when ok is false). */
enum proto_pc_error {
    PROTO_PC_NONE = 0, /* not set; never on the wire */
    PROTO_PC_INTERNAL_ERROR,
    PROTO_PC_AGENT_STOPPED,
    PROTO_PC_CAPTURE_FAILED,
    PROTO_PC_LOCAL_FILE_FAILED,
    PROTO_PC_STORAGE_FAILED,
};

/* A session's state in hello: which list of hello.sessions names it. */
enum proto_session_state {
    PROTO_SESSION_NONE = 0, /* not set; never on the wire */
    PROTO_SESSION_RUNNING,  /* "running": capturing now */
    PROTO_SESSION_FINISHED, /* "finished": ended, its completed/error not yet acknowledged */
};

/*
 * Wire name of a value ("hello", "TimeExceeded", "CaptureFailed", "running"): a static string,
 * or NULL for *_NONE and values out of range.
 */
const char *proto_type_name(enum proto_type t);
const char *proto_stop_reason_name(enum proto_stop_reason r);
const char *proto_pc_error_name(enum proto_pc_error c);
const char *proto_session_state_name(enum proto_session_state s);

/*
 * Reads a wire name (borrowed; exact, case-sensitive match) into *out.
 * Returns 0, or -1 for NULL or an unknown name (*out is then untouched).
 */
int proto_type_parse(const char *s, enum proto_type *out);
int proto_stop_reason_parse(const char *s, enum proto_stop_reason *out);
int proto_pc_error_parse(const char *s, enum proto_pc_error *out);
int proto_session_state_parse(const char *s, enum proto_session_state *out);

/* ---- messages ---- */

struct proto_iface {
    char name[PROTO_IFNAME_MAX + 1];                            /* "eth0" */
    size_t n_addresses;                                         /* entries used in addresses */
    char addresses[PROTO_MAX_ADDRESSES][PROTO_ADDRESS_MAX + 1]; /* IP text, as received */
};

struct proto_session {
    char capture_id[PROTO_ID_SIZE];
    enum proto_session_state state;
};

/* What the agent was told about the machine it runs on (hello.identity). */
struct proto_identity {
    char resource_id[PROTO_RESOURCE_ID_MAX + 1]; /* VM or scale-set id; "" = not stated */
    char instance_id[PROTO_INSTANCE_ID_MAX + 1]; /* scale-set instance; "" for a VM */
};

struct proto_hello {
    int protocols[PROTO_MAX_PROTOCOLS]; /* versions the agent speaks, as offered */
    size_t n_protocols;                 /* 1..PROTO_MAX_PROTOCOLS */
    char agent_version[PROTO_AGENT_VERSION_MAX + 1];
    char hostname[PROTO_HOSTNAME_MAX + 1];
    char os[PROTO_OS_MAX + 1];
    struct proto_iface *interfaces; /* n_interfaces entries (NULL when 0) */
    size_t n_interfaces;
    struct proto_session *sessions; /* n_sessions (NULL when 0); decoded: running first */
    size_t n_sessions;
    int64_t unacked_from;           /* first seq the agent has not seen replied to */
    struct proto_identity identity; /* resource_id "" when the hello states none */
};

struct proto_welcome {
    int protocol;                /* the version chosen for this channel */
    int heartbeat_seconds;       /* server ping interval */
    int64_t last_applied_seq;    /* 0 when nothing was applied yet */
    char (*stop)[PROTO_ID_SIZE]; /* n_stop capture ids to stop (NULL when 0) */
    size_t n_stop;
};

struct proto_start {
    char command_id[PROTO_ID_SIZE];
    char capture_id[PROTO_ID_SIZE];
    char name[PROTO_NAME_MAX + 1];
    char *spec; /* the PacketCaptureParameters object as compact JSON text */
};

struct proto_stop {
    char command_id[PROTO_ID_SIZE];
    char capture_id[PROTO_ID_SIZE];
    enum proto_stop_reason reason;
};

struct proto_ack {
    int64_t seq;
    char command_id[PROTO_ID_SIZE];
    int ok;                              /* 1: done (a start is running); 0: refused or failed */
    int64_t at;                          /* epoch ms the command took effect; 0 = not given */
    enum proto_pc_error code;            /* ok == 0 only; PROTO_PC_NONE when ok */
    char message[PROTO_MESSAGE_MAX + 1]; /* ok == 0 only; "" = none */
    char *filter; /* ok == 1 only: the installed expression, "" = all; NULL = not said */
};

struct proto_progress {
    int64_t seq;
    char capture_id[PROTO_ID_SIZE];
    int64_t packets, bytes, drops, files; /* totals so far, all >= 0 */
    int64_t first_packet_at;              /* epoch ms of the first packet; 0 = none yet */
    int64_t uploaded_bytes; /* bytes of the session's files the blob service holds; 0 = none */
};

struct proto_file {
    char *path;                        /* local path or blob name, 1..PROTO_PATH_MAX */
    int64_t bytes;                     /* >= 0 */
    char sha256[PROTO_SHA256_HEX + 1]; /* lower-case hex, "" = not given */
};

struct proto_completed {
    int64_t seq;
    char capture_id[PROTO_ID_SIZE];
    enum proto_stop_reason stop_reason;
    struct proto_file *files; /* n_files entries (NULL when 0) */
    size_t n_files;
};

struct proto_error {
    int64_t seq;
    char capture_id[PROTO_ID_SIZE];
    enum proto_pc_error code;
    char message[PROTO_MESSAGE_MAX + 1]; /* "" = none */
};

struct proto_reply {
    int64_t seq; /* the report this answers */
    int ok;
    char code[PROTO_CODE_MAX + 1];       /* ok == 0 only, e.g. PROTO_REPLY_NOT_YOUR_SESSION */
    char message[PROTO_MESSAGE_MAX + 1]; /* ok == 0 only; "" = none */
};

/* blobRequest: agent -> server, not a report (no seq, never spooled): a request the agent
 * repeats after a reconnect if it got no grant. */
struct proto_blob_request {
    int64_t id;                     /* the agent's request number, 1.. (echoed by the grant) */
    char capture_id[PROTO_ID_SIZE]; /* a session of this agent's */
    int64_t file;                   /* which of the session's files: 0 the first, in order */
};

/* blobGrant: server -> agent, the answer to the blobRequest with the same id. */
struct proto_blob_grant {
    int64_t id;
    int ok;
    char *url;          /* ok only: the blob's URL with a SAS allowing create+write of that blob
                         * only, 1..PROTO_URL_MAX bytes; owned when decoded */
    int64_t expires_at; /* ok only: epoch ms the SAS expires (ask again after) */
    char code[PROTO_CODE_MAX + 1];       /* ok == 0 only: PROTO_GRANT_* */
    char message[PROTO_MESSAGE_MAX + 1]; /* ok == 0 only; "" = none */
};

/* blobGrant codes when ok is false. */
#define PROTO_GRANT_NOT_YOUR_SESSION "NotYourSession" /* no such session of this agent */
#define PROTO_GRANT_NO_STORAGE       "NoStorage"      /* the capture names no storage account */
#define PROTO_GRANT_STORAGE_FAILED   "StorageFailed"  /* the account is gone or cannot sign */

/*
 * One message. A zeroed struct (`struct proto_msg m = {0};`) is empty (PROTO_NONE).
 * Pointer members (hello.interfaces, hello.sessions, welcome.stop, start.spec, ack.filter,
 * completed.files and each files[i].path, blob_grant.url) are owned by the struct when
 * proto_decode filled it; a struct built by hand for proto_encode may point them anywhere, and
 * then must not be given to proto_msg_clear.
 */
struct proto_msg {
    enum proto_type type; /* selects the union member */
    union {
        struct proto_hello hello;
        struct proto_welcome welcome;
        struct proto_start start;
        struct proto_stop stop;
        struct proto_ack ack;
        struct proto_progress progress;
        struct proto_completed completed;
        struct proto_error error;
        struct proto_reply reply;
        struct proto_blob_request blob_request;
        struct proto_blob_grant blob_grant;
    };
};

/* Frees the owned parts of m (NULL is a no-op) and leaves it zeroed (PROTO_NONE). */
void proto_msg_clear(struct proto_msg *m);

/* The seq of a report (ack, progress, completed, error) or reply; 0 for other types. */
int64_t proto_msg_seq(const struct proto_msg *m);

/* ---- codec ---- */

/*
 * Decodes one message from buf (borrowed; len bytes, need not be NUL-terminated) into *out
 * (caller-owned; written only on success, then release it with proto_msg_clear).
 * Returns CP_OK;
 *   CP_ETOOBIG when len > PROTO_MAX_MESSAGE (close with PROTO_CLOSE_TOO_BIG), nothing parsed;
 *   CP_EINVAL for anything the wire format above refuses: not JSON, not an object, a repeated
 *     key, an unknown type, a missing member, a wrong JSON type, a value out of bounds;
 *   CP_ENOMEM when an allocation failed.
 * e (may be NULL) gets code "MessageTooLarge", "InvalidMessage" or "OutOfMemory", the member as
 * target ("interfaces[3].name"), and a message naming the type and member.
 */
enum cp_err proto_decode(const char *buf, size_t len, struct proto_msg *out,
                         struct cp_error *e) CP_MUST_USE;

/*
 * Encodes m (borrowed) as compact JSON. Returns a NUL-terminated string the caller frees with
 * free(), or NULL when m is not a message proto_decode would accept (a bound, an unset enum, a
 * string not NUL-terminated in its field, a spec that is not a JSON object, more than
 * PROTO_MAX_MESSAGE bytes) or memory ran out. So proto_decode(proto_encode(m)) always succeeds
 * and gives back m, normalised: ok as 0/1, spec in jansson's compact form, hello.sessions with
 * the running ones first.
 */
char *proto_encode(const struct proto_msg *m);

/* ---- versions ---- */

/*
 * The highest version in offered (borrowed, n entries) that this build speaks
 * (PROTO_VERSION_MIN..PROTO_VERSION), or -1 when there is none (close with
 * PROTO_CLOSE_NO_PROTOCOL). offered may be NULL when n is 0.
 */
int proto_negotiate(const int *offered, size_t n);

#endif
