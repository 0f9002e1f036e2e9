/* Check suite for proto/: the agent channel's names, codec (round trips and every refusal),
 * version negotiation, and a bounded mutation test of the decoder. */
#include "proto/proto.h"

#include <check.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dynbuf.h"

#define ID1 "0f8fad5b-d9cb-469f-a165-70867728950e"
#define ID2 "7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define ID3 "16fd2706-8baf-433b-82eb-8c7fada847da"

#define SHA "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers ---- */

static void copy(char *dst, size_t n, const char *src)
{
    ck_assert_uint_lt(strlen(src), n);
    memcpy(dst, src, strlen(src) + 1);
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    ck_assert_ptr_nonnull(d);
    return d;
}

static enum cp_err decode_str(const char *json, struct proto_msg *m, struct cp_error *e)
{
    return proto_decode(json, strlen(json), m, e);
}

static void decode_ok(const char *json, struct proto_msg *m)
{
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = decode_str(json, m, &e);
    ck_assert_msg(err == CP_OK, "decode refused %s: %s", json, e.message);
}

/* A message pre-filled with a sentinel, so a test can see decode left it alone. */
static void sentinel(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_PROGRESS;
    m->progress.seq = 4242;
}

static void assert_sentinel(const struct proto_msg *m)
{
    ck_assert_int_eq(m->type, PROTO_PROGRESS);
    ck_assert_int_eq(m->progress.seq, 4242);
}

/*
 * Encodes m, decodes the text into *back, and checks the text is a fixed point (encoding back
 * gives the same bytes). Returns the text (caller frees).
 */
static char *round_trip(const struct proto_msg *m, struct proto_msg *back)
{
    char *s = proto_encode(m);
    ck_assert_msg(s != NULL, "encode refused a valid %s", proto_type_name(m->type));
    ck_assert_uint_le(strlen(s), PROTO_MAX_MESSAGE);
    decode_ok(s, back);
    ck_assert_int_eq(back->type, m->type);
    char *again = proto_encode(back);
    ck_assert_ptr_nonnull(again);
    ck_assert_str_eq(again, s);
    free(again);
    return s;
}

/* ---- the messages used by round trips and as mutation seeds ---- */

static void make_hello(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    struct proto_hello *h = &m->hello;
    m->type = PROTO_HELLO;
    h->protocols[0] = 1;
    h->protocols[1] = 2;
    h->n_protocols = 2;
    copy(h->agent_version, sizeof(h->agent_version), "0.2.0");
    copy(h->hostname, sizeof(h->hostname), "vm1.internal.cloudapp.net");
    copy(h->os, sizeof(h->os), "linux");
    h->n_interfaces = 2;
    h->interfaces = calloc(2, sizeof(*h->interfaces));
    ck_assert_ptr_nonnull(h->interfaces);
    copy(h->interfaces[0].name, sizeof(h->interfaces[0].name), "eth0");
    copy(h->interfaces[0].addresses[0], PROTO_ADDRESS_MAX + 1, "10.0.0.4");
    copy(h->interfaces[0].addresses[1], PROTO_ADDRESS_MAX + 1, "fe80::1");
    h->interfaces[0].n_addresses = 2;
    copy(h->interfaces[1].name, sizeof(h->interfaces[1].name), "lo");
    h->interfaces[1].n_addresses = 0;
    h->n_sessions = 2;
    h->sessions = calloc(2, sizeof(*h->sessions));
    ck_assert_ptr_nonnull(h->sessions);
    copy(h->sessions[0].capture_id, PROTO_ID_SIZE, ID1);
    h->sessions[0].state = PROTO_SESSION_RUNNING;
    copy(h->sessions[1].capture_id, PROTO_ID_SIZE, ID2);
    h->sessions[1].state = PROTO_SESSION_FINISHED;
    h->unacked_from = 17;
}

static void make_welcome(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_WELCOME;
    m->welcome.protocol = 1;
    m->welcome.heartbeat_seconds = PROTO_HEARTBEAT_SECONDS;
    m->welcome.last_applied_seq = 16;
    m->welcome.n_stop = 2;
    m->welcome.stop = calloc(2, sizeof(*m->welcome.stop));
    ck_assert_ptr_nonnull(m->welcome.stop);
    copy(m->welcome.stop[0], PROTO_ID_SIZE, ID1);
    copy(m->welcome.stop[1], PROTO_ID_SIZE, ID3);
}

#define SPEC                                                                                       \
    "{\"target\":\"/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/"         \
    "providers/Microsoft.Compute/virtualMachines/vm1\",\"bytesToCapturePerPacket\":0,"             \
    "\"totalBytesPerSession\":1073741824,\"timeLimitInSeconds\":18000,\"storageLocation\":{"       \
    "\"filePath\":\"/var/captures/pc1.cap\"},\"filters\":[{\"protocol\":\"TCP\",\"localPort\":"    \
    "\"80;443\",\"note\":\"caf\u00e9 \\\"q\\\" \\\\ /\"}]}"

static void make_start(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_START;
    copy(m->start.command_id, PROTO_ID_SIZE, ID1);
    copy(m->start.capture_id, PROTO_ID_SIZE, ID2);
    copy(m->start.name, sizeof(m->start.name), "pc1");
    m->start.spec = xstrdup(SPEC);
}

static void make_stop(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_STOP;
    copy(m->stop.command_id, PROTO_ID_SIZE, ID3);
    copy(m->stop.capture_id, PROTO_ID_SIZE, ID2);
    m->stop.reason = PROTO_STOP_MANUAL;
}

static void make_ack_ok(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_ACK;
    m->ack.seq = 18;
    copy(m->ack.command_id, PROTO_ID_SIZE, ID1);
    m->ack.ok = 1;
    m->ack.at = INT64_C(1773718655429);
}

static void make_ack_fail(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_ACK;
    m->ack.seq = 19;
    copy(m->ack.command_id, PROTO_ID_SIZE, ID3);
    m->ack.ok = 0;
    m->ack.code = PROTO_PC_CAPTURE_FAILED;
    copy(m->ack.message, sizeof(m->ack.message), "eth9: No such device\n(pcap_activate)");
}

static void make_progress(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_PROGRESS;
    m->progress.seq = 20;
    copy(m->progress.capture_id, PROTO_ID_SIZE, ID2);
    m->progress.packets = 1200;
    m->progress.bytes = INT64_MAX;
    m->progress.drops = 0;
    m->progress.files = 1;
    m->progress.first_packet_at = 1773718655429;
    m->progress.uploaded_bytes = 834211;
}

static void make_completed(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_COMPLETED;
    m->completed.seq = 21;
    copy(m->completed.capture_id, PROTO_ID_SIZE, ID2);
    m->completed.stop_reason = PROTO_STOP_TIME_EXCEEDED;
    m->completed.n_files = 2;
    m->completed.files = calloc(2, sizeof(*m->completed.files));
    ck_assert_ptr_nonnull(m->completed.files);
    m->completed.files[0].path = xstrdup("/var/captures/pc1_0.cap");
    m->completed.files[0].bytes = 834211;
    copy(m->completed.files[0].sha256, sizeof(m->completed.files[0].sha256), SHA);
    m->completed.files[1].path = xstrdup("/var/captures/pc1_1.cap");
    m->completed.files[1].bytes = 0;
}

static void make_error(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_ERROR;
    m->error.seq = 22;
    copy(m->error.capture_id, PROTO_ID_SIZE, ID1);
    m->error.code = PROTO_PC_LOCAL_FILE_FAILED;
    copy(m->error.message, sizeof(m->error.message), "disk full");
}

static void make_reply_ok(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_REPLY;
    m->reply.seq = 20;
    m->reply.ok = 1;
}

static void make_reply_fail(struct proto_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = PROTO_REPLY;
    m->reply.seq = 23;
    m->reply.ok = 0;
    copy(m->reply.code, sizeof(m->reply.code), PROTO_REPLY_NOT_YOUR_SESSION);
    copy(m->reply.message, sizeof(m->reply.message), "capture " ID1 " is not yours");
}

static void (*const makers[])(struct proto_msg *) = {
    make_hello,    make_welcome,   make_start, make_stop,     make_ack_ok,     make_ack_fail,
    make_progress, make_completed, make_error, make_reply_ok, make_reply_fail,
};

/* ---- names ---- */

START_TEST(names_round_trip)
{
    for (int t = PROTO_HELLO; t <= PROTO_BLOB_GRANT; t++) {
        enum proto_type back = PROTO_NONE;
        ck_assert_ptr_nonnull(proto_type_name((enum proto_type)t));
        ck_assert_int_eq(proto_type_parse(proto_type_name((enum proto_type)t), &back), 0);
        ck_assert_int_eq(back, t);
    }
    for (int r = PROTO_STOP_MANUAL; r <= PROTO_STOP_AGENT_STOPPED; r++) {
        enum proto_stop_reason back = PROTO_STOP_NONE;
        ck_assert_int_eq(
            proto_stop_reason_parse(proto_stop_reason_name((enum proto_stop_reason)r), &back), 0);
        ck_assert_int_eq(back, r);
    }
    for (int c = PROTO_PC_INTERNAL_ERROR; c <= PROTO_PC_STORAGE_FAILED; c++) {
        enum proto_pc_error back = PROTO_PC_NONE;
        ck_assert_int_eq(proto_pc_error_parse(proto_pc_error_name((enum proto_pc_error)c), &back),
                         0);
        ck_assert_int_eq(back, c);
    }
    for (int s = PROTO_SESSION_RUNNING; s <= PROTO_SESSION_FINISHED; s++) {
        enum proto_session_state back = PROTO_SESSION_NONE;
        ck_assert_int_eq(
            proto_session_state_parse(proto_session_state_name((enum proto_session_state)s), &back),
            0);
        ck_assert_int_eq(back, s);
    }
}
END_TEST

START_TEST(names_are_the_documented_ones)
{
    ck_assert_str_eq(proto_type_name(PROTO_HELLO), "hello");
    ck_assert_str_eq(proto_type_name(PROTO_COMPLETED), "completed");
    ck_assert_str_eq(proto_type_name(PROTO_REPLY), "reply");
    ck_assert_str_eq(proto_type_name(PROTO_BLOB_REQUEST), "blobRequest");
    ck_assert_str_eq(proto_type_name(PROTO_BLOB_GRANT), "blobGrant");
    ck_assert_str_eq(proto_stop_reason_name(PROTO_STOP_MANUAL), "Manual");
    ck_assert_str_eq(proto_stop_reason_name(PROTO_STOP_TIME_EXCEEDED), "TimeExceeded");
    ck_assert_str_eq(proto_stop_reason_name(PROTO_STOP_SESSION_BYTES_EXCEEDED),
                     "SessionBytesExceeded");
    ck_assert_str_eq(proto_stop_reason_name(PROTO_STOP_SESSION_DELETED), "SessionDeleted");
    ck_assert_str_eq(proto_stop_reason_name(PROTO_STOP_AGENT_STOPPED), "AgentStopped");
    ck_assert_str_eq(proto_pc_error_name(PROTO_PC_INTERNAL_ERROR), "InternalError");
    ck_assert_str_eq(proto_pc_error_name(PROTO_PC_AGENT_STOPPED), "AgentStopped");
    ck_assert_str_eq(proto_pc_error_name(PROTO_PC_CAPTURE_FAILED), "CaptureFailed");
    ck_assert_str_eq(proto_pc_error_name(PROTO_PC_LOCAL_FILE_FAILED), "LocalFileFailed");
    ck_assert_str_eq(proto_pc_error_name(PROTO_PC_STORAGE_FAILED), "StorageFailed");
    ck_assert_str_eq(proto_session_state_name(PROTO_SESSION_RUNNING), "running");
    ck_assert_str_eq(proto_session_state_name(PROTO_SESSION_FINISHED), "finished");
    ck_assert_int_eq(PROTO_CLOSE_REVOKED, 4001);
    ck_assert_int_eq(PROTO_CLOSE_NO_PROTOCOL, 4002);
    ck_assert_int_eq(PROTO_CLOSE_TOO_BIG, 1009);
    ck_assert_int_eq(PROTO_CLOSE_UNSUPPORTED, 1003);
    ck_assert_str_eq(PROTO_SUBPROTOCOL, "netwatch.agent.v1");
    ck_assert_str_eq(PROTO_CHANNEL_PATH, "/agent/v1/channel");
}
END_TEST

START_TEST(names_refuse_none_range_case_and_null)
{
    ck_assert_ptr_null(proto_type_name(PROTO_NONE));
    ck_assert_ptr_null(proto_type_name((enum proto_type)99));
    ck_assert_ptr_null(proto_type_name((enum proto_type) - 1));
    ck_assert_ptr_null(proto_stop_reason_name(PROTO_STOP_NONE));
    ck_assert_ptr_null(proto_pc_error_name(PROTO_PC_NONE));
    ck_assert_ptr_null(proto_session_state_name(PROTO_SESSION_NONE));
    ck_assert_ptr_null(proto_session_state_name((enum proto_session_state)3));

    enum proto_type t = PROTO_ACK;
    ck_assert_int_eq(proto_type_parse("Hello", &t), -1);
    ck_assert_int_eq(proto_type_parse("", &t), -1);
    ck_assert_int_eq(proto_type_parse(NULL, &t), -1);
    ck_assert_int_eq(t, PROTO_ACK);
    enum proto_stop_reason r = PROTO_STOP_MANUAL;
    ck_assert_int_eq(proto_stop_reason_parse("manual", &r), -1);
    ck_assert_int_eq(proto_stop_reason_parse("Manual ", &r), -1);
    enum proto_pc_error c = PROTO_PC_NONE;
    ck_assert_int_eq(proto_pc_error_parse("NotYourSession", &c), -1);
    ck_assert_int_eq(c, PROTO_PC_NONE);
    enum proto_session_state s = PROTO_SESSION_NONE;
    ck_assert_int_eq(proto_session_state_parse("Running", &s), -1);
}
END_TEST

/* ---- round trips ---- */

START_TEST(round_trip_hello)
{
    struct proto_msg m, b;
    make_hello(&m);
    char *s = round_trip(&m, &b);
    ck_assert_uint_eq(b.hello.n_protocols, 2);
    ck_assert_int_eq(b.hello.protocols[0], 1);
    ck_assert_int_eq(b.hello.protocols[1], 2);
    ck_assert_str_eq(b.hello.agent_version, "0.2.0");
    ck_assert_str_eq(b.hello.hostname, "vm1.internal.cloudapp.net");
    ck_assert_str_eq(b.hello.os, "linux");
    ck_assert_uint_eq(b.hello.n_interfaces, 2);
    ck_assert_str_eq(b.hello.interfaces[0].name, "eth0");
    ck_assert_uint_eq(b.hello.interfaces[0].n_addresses, 2);
    ck_assert_str_eq(b.hello.interfaces[0].addresses[0], "10.0.0.4");
    ck_assert_str_eq(b.hello.interfaces[0].addresses[1], "fe80::1");
    ck_assert_str_eq(b.hello.interfaces[1].name, "lo");
    ck_assert_uint_eq(b.hello.interfaces[1].n_addresses, 0);
    ck_assert_uint_eq(b.hello.n_sessions, 2);
    ck_assert_str_eq(b.hello.sessions[0].capture_id, ID1);
    ck_assert_int_eq(b.hello.sessions[0].state, PROTO_SESSION_RUNNING);
    ck_assert_str_eq(b.hello.sessions[1].capture_id, ID2);
    ck_assert_int_eq(b.hello.sessions[1].state, PROTO_SESSION_FINISHED);
    ck_assert_int_eq(b.hello.unacked_from, 17);
    /* compact, "type" first */
    ck_assert_str_eq(s, "{\"type\":\"hello\",\"protocols\":[1,2],\"agentVersion\":\"0.2.0\","
                        "\"hostname\":\"vm1.internal.cloudapp.net\",\"os\":\"linux\","
                        "\"interfaces\":[{\"name\":\"eth0\",\"addresses\":[\"10.0.0.4\","
                        "\"fe80::1\"]},{\"name\":\"lo\",\"addresses\":[]}],"
                        "\"sessions\":{\"running\":[\"" ID1 "\"],\"finished\":[\"" ID2 "\"]},"
                        "\"unackedFrom\":17}");
    free(s);
    proto_msg_clear(&m);
    proto_msg_clear(&b);
}
END_TEST

#define VM_ID                                                                                      \
    "/subscriptions/" ID1 "/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
#define VMSS_ID                                                                                    \
    "/subscriptions/" ID1 "/resourceGroups/rg1/providers/Microsoft.Compute/"                       \
    "virtualMachineScaleSets/ss1"

/* hello.identity: a VM id alone, a scale-set id with its instance, and none (not on the wire). */
START_TEST(round_trip_hello_identity)
{
    struct proto_msg m, b;
    make_hello(&m);
    copy(m.hello.identity.resource_id, sizeof(m.hello.identity.resource_id), VM_ID);
    char *s = round_trip(&m, &b);
    ck_assert_str_eq(b.hello.identity.resource_id, VM_ID);
    ck_assert_str_eq(b.hello.identity.instance_id, "");
    ck_assert_ptr_nonnull(strstr(s, ",\"identity\":{\"resourceId\":\"" VM_ID "\"}"));
    free(s);
    proto_msg_clear(&b);

    copy(m.hello.identity.resource_id, sizeof(m.hello.identity.resource_id), VMSS_ID);
    copy(m.hello.identity.instance_id, sizeof(m.hello.identity.instance_id), "7");
    s = round_trip(&m, &b);
    ck_assert_str_eq(b.hello.identity.resource_id, VMSS_ID);
    ck_assert_str_eq(b.hello.identity.instance_id, "7");
    ck_assert_ptr_nonnull(
        strstr(s, "\"identity\":{\"resourceId\":\"" VMSS_ID "\",\"instanceId\":\"7\"}"));
    free(s);
    proto_msg_clear(&b);

    /* the casing is the agent's: ARM ids compare case-insensitively, the server does that */
    decode_ok(
        "{\"type\":\"hello\",\"protocols\":[1],\"agentVersion\":\"1\",\"hostname\":\"h\","
        "\"os\":\"linux\",\"unackedFrom\":1,\"identity\":{\"resourceId\":\"/SUBSCRIPTIONS/" ID1
        "/resourcegroups/RG1/providers/microsoft.compute/VIRTUALMACHINES/VM1/\","
        "\"future\":1}}",
        &b);
    ck_assert_str_eq(b.hello.identity.resource_id,
                     "/SUBSCRIPTIONS/" ID1 "/resourcegroups/RG1/providers/microsoft.compute/"
                     "VIRTUALMACHINES/VM1/");
    proto_msg_clear(&b);

    /* an instance without a resource id is not a message */
    m.hello.identity.resource_id[0] = '\0';
    ck_assert_ptr_null(proto_encode(&m));
    m.hello.identity.instance_id[0] = '\0';
    s = round_trip(&m, &b);
    ck_assert_ptr_null(strstr(s, "identity"));
    ck_assert_str_eq(b.hello.identity.resource_id, "");
    free(s);
    proto_msg_clear(&b);
    proto_msg_clear(&m);
}
END_TEST

START_TEST(round_trip_welcome)
{
    struct proto_msg m, b;
    make_welcome(&m);
    char *s = round_trip(&m, &b);
    ck_assert_int_eq(b.welcome.protocol, 1);
    ck_assert_int_eq(b.welcome.heartbeat_seconds, 15);
    ck_assert_int_eq(b.welcome.last_applied_seq, 16);
    ck_assert_uint_eq(b.welcome.n_stop, 2);
    ck_assert_str_eq(b.welcome.stop[0], ID1);
    ck_assert_str_eq(b.welcome.stop[1], ID3);
    ck_assert_str_eq(s, "{\"type\":\"welcome\",\"protocol\":1,\"heartbeatSeconds\":15,"
                        "\"lastAppliedSeq\":16,\"stop\":[\"" ID1 "\",\"" ID3 "\"]}");
    free(s);
    proto_msg_clear(&m);
    proto_msg_clear(&b);
}
END_TEST

START_TEST(round_trip_start_keeps_spec)
{
    struct proto_msg m, b;
    make_start(&m);
    char *s = round_trip(&m, &b);
    ck_assert_str_eq(b.start.command_id, ID1);
    ck_assert_str_eq(b.start.capture_id, ID2);
    ck_assert_str_eq(b.start.name, "pc1");
    /* the spec was already compact jansson text, so it comes back byte for byte */
    ck_assert_str_eq(b.start.spec, SPEC);
    free(s);
    proto_msg_clear(&m);
    proto_msg_clear(&b);
}
END_TEST

START_TEST(start_spec_is_compacted)
{
    struct proto_msg m, b;
    make_start(&m);
    free(m.start.spec);
    m.start.spec = xstrdup(" { \"a\" : [ 1 , 2 ] ,\n \"b\" : { } } ");
    char *s = proto_encode(&m);
    ck_assert_ptr_nonnull(s);
    decode_ok(s, &b);
    ck_assert_str_eq(b.start.spec, "{\"a\":[1,2],\"b\":{}}");
    free(s);
    proto_msg_clear(&m);
    proto_msg_clear(&b);
}
END_TEST

START_TEST(round_trip_stop)
{
    for (int r = PROTO_STOP_MANUAL; r <= PROTO_STOP_AGENT_STOPPED; r++) {
        struct proto_msg m, b;
        make_stop(&m);
        m.stop.reason = (enum proto_stop_reason)r;
        char *s = round_trip(&m, &b);
        ck_assert_str_eq(b.stop.command_id, ID3);
        ck_assert_str_eq(b.stop.capture_id, ID2);
        ck_assert_int_eq(b.stop.reason, r);
        free(s);
        proto_msg_clear(&b);
    }
}
END_TEST

START_TEST(round_trip_ack)
{
    struct proto_msg m, b;
    make_ack_ok(&m);
    char *s = round_trip(&m, &b);
    ck_assert_int_eq(b.ack.seq, 18);
    ck_assert_str_eq(b.ack.command_id, ID1);
    ck_assert_int_eq(b.ack.ok, 1);
    ck_assert_int_eq(b.ack.at, INT64_C(1773718655429));
    ck_assert_int_eq(b.ack.code, PROTO_PC_NONE);
    ck_assert_str_eq(b.ack.message, "");
    ck_assert_str_eq(s, "{\"type\":\"ack\",\"seq\":18,\"commandId\":\"" ID1
                        "\",\"ok\":true,\"at\":1773718655429}");
    free(s);
    proto_msg_clear(&b);

    make_ack_fail(&m);
    s = round_trip(&m, &b);
    ck_assert_int_eq(b.ack.seq, 19);
    ck_assert_int_eq(b.ack.ok, 0);
    ck_assert_int_eq(b.ack.at, 0);
    ck_assert_int_eq(b.ack.code, PROTO_PC_CAPTURE_FAILED);
    ck_assert_str_eq(b.ack.message, "eth9: No such device\n(pcap_activate)");
    ck_assert_ptr_nonnull(strstr(s, "\"code\":\"CaptureFailed\""));
    ck_assert_ptr_null(strstr(s, "\"at\""));
    free(s);
    proto_msg_clear(&b);

    /* a failing ack without a message omits it */
    make_ack_fail(&m);
    m.ack.message[0] = '\0';
    s = round_trip(&m, &b);
    ck_assert_ptr_null(strstr(s, "message"));
    free(s);
    proto_msg_clear(&b);
}
END_TEST

/* ack.filter: the expression a start installed; whole up to PROTO_FILTER_MAX, only when ok. */
START_TEST(ack_filter)
{
    struct proto_msg m, b;
    make_ack_ok(&m);
    m.ack.filter = (char *)"tcp and (src port 80 or dst port 80)";
    char *s = round_trip(&m, &b);
    ck_assert_str_eq(b.ack.filter, "tcp and (src port 80 or dst port 80)");
    ck_assert_ptr_nonnull(strstr(s, ",\"filter\":\"tcp and (src port 80 or dst port 80)\""));
    free(s);
    proto_msg_clear(&b);

    /* "" (every packet) is said, not left out; NULL is not said. */
    m.ack.filter = (char *)"";
    s = round_trip(&m, &b);
    ck_assert_str_eq(b.ack.filter, "");
    free(s);
    proto_msg_clear(&b);
    m.ack.filter = NULL;
    s = round_trip(&m, &b);
    ck_assert_ptr_null(b.ack.filter);
    ck_assert_ptr_null(strstr(s, "filter"));
    free(s);
    proto_msg_clear(&b);

    /* The largest expression fits one message with the largest other members. */
    char *big = malloc(PROTO_FILTER_MAX + 2);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', PROTO_FILTER_MAX);
    big[PROTO_FILTER_MAX] = '\0';
    m.ack.filter = big;
    m.ack.seq = INT64_MAX;
    m.ack.at = INT64_MAX;
    s = round_trip(&m, &b);
    ck_assert_uint_eq(strlen(b.ack.filter), PROTO_FILTER_MAX);
    ck_assert_uint_lt(strlen(s), PROTO_MAX_MESSAGE);
    proto_msg_clear(&b);

    /* One byte more: not encoded, and refused when sent anyway. */
    big[PROTO_FILTER_MAX] = 'x';
    big[PROTO_FILTER_MAX + 1] = '\0';
    ck_assert_ptr_null(proto_encode(&m));
    char *at = strstr(s, "\"filter\":\"") + strlen("\"filter\":\"");
    size_t head = (size_t)(at - s);
    char *over = malloc(strlen(s) + 2);
    ck_assert_ptr_nonnull(over);
    memcpy(over, s, head);
    over[head] = 'x';
    strcpy(over + head + 1, s + head);
    struct cp_error e = {{0}, {0}, {0}};
    sentinel(&b);
    ck_assert_int_eq(decode_str(over, &b, &e), CP_EINVAL);
    assert_sentinel(&b);
    ck_assert_str_eq(e.target, "filter");
    ck_assert_ptr_nonnull(strstr(e.message, "at most"));
    free(over);
    free(s);
    free(big);

    /* Only on a successful ack, and only a string. */
    ck_assert_int_eq(decode_str("{\"type\":\"ack\",\"seq\":1,\"commandId\":\"" ID1
                                "\",\"ok\":false,\"code\":\"CaptureFailed\",\"filter\":\"\"}",
                                &b, &e),
                     CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "only allowed when ok is true"));
    ck_assert_int_eq(decode_str("{\"type\":\"ack\",\"seq\":1,\"commandId\":\"" ID1
                                "\",\"ok\":true,\"filter\":5}",
                                &b, &e),
                     CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "must be a string"));
}
END_TEST

START_TEST(round_trip_progress)
{
    struct proto_msg m, b;
    make_progress(&m);
    char *s = round_trip(&m, &b);
    ck_assert_int_eq(b.progress.seq, 20);
    ck_assert_str_eq(b.progress.capture_id, ID2);
    ck_assert_int_eq(b.progress.packets, 1200);
    ck_assert_int_eq(b.progress.bytes, INT64_MAX);
    ck_assert_int_eq(b.progress.drops, 0);
    ck_assert_int_eq(b.progress.files, 1);
    ck_assert_int_eq(b.progress.uploaded_bytes, 834211);
    ck_assert_int_eq(proto_msg_seq(&b), 20);
    free(s);
    proto_msg_clear(&b);
    /* Nothing uploaded: the member is left out (it is optional, 0 when absent). */
    make_progress(&m);
    m.progress.uploaded_bytes = 0;
    s = round_trip(&m, &b);
    ck_assert_ptr_null(strstr(s, "uploadedBytes"));
    ck_assert_int_eq(b.progress.uploaded_bytes, 0);
    free(s);
    proto_msg_clear(&b);
}
END_TEST

START_TEST(round_trip_completed)
{
    struct proto_msg m, b;
    make_completed(&m);
    char *s = round_trip(&m, &b);
    ck_assert_int_eq(b.completed.seq, 21);
    ck_assert_str_eq(b.completed.capture_id, ID2);
    ck_assert_int_eq(b.completed.stop_reason, PROTO_STOP_TIME_EXCEEDED);
    ck_assert_uint_eq(b.completed.n_files, 2);
    ck_assert_str_eq(b.completed.files[0].path, "/var/captures/pc1_0.cap");
    ck_assert_int_eq(b.completed.files[0].bytes, 834211);
    ck_assert_str_eq(b.completed.files[0].sha256, SHA);
    ck_assert_str_eq(b.completed.files[1].path, "/var/captures/pc1_1.cap");
    ck_assert_int_eq(b.completed.files[1].bytes, 0);
    ck_assert_str_eq(b.completed.files[1].sha256, "");
    free(s);
    proto_msg_clear(&m);
    proto_msg_clear(&b);
}
END_TEST

START_TEST(round_trip_error)
{
    struct proto_msg m, b;
    make_error(&m);
    char *s = round_trip(&m, &b);
    ck_assert_int_eq(b.error.seq, 22);
    ck_assert_str_eq(b.error.capture_id, ID1);
    ck_assert_int_eq(b.error.code, PROTO_PC_LOCAL_FILE_FAILED);
    ck_assert_str_eq(b.error.message, "disk full");
    ck_assert_str_eq(s, "{\"type\":\"error\",\"seq\":22,\"captureId\":\"" ID1
                        "\",\"code\":\"LocalFileFailed\",\"message\":\"disk full\"}");
    free(s);
    proto_msg_clear(&b);
}
END_TEST

START_TEST(round_trip_reply)
{
    struct proto_msg m, b;
    make_reply_ok(&m);
    char *s = round_trip(&m, &b);
    ck_assert_int_eq(b.reply.seq, 20);
    ck_assert_int_eq(b.reply.ok, 1);
    ck_assert_str_eq(s, "{\"type\":\"reply\",\"seq\":20,\"ok\":true}");
    free(s);

    make_reply_fail(&m);
    s = round_trip(&m, &b);
    ck_assert_int_eq(b.reply.seq, 23);
    ck_assert_int_eq(b.reply.ok, 0);
    ck_assert_str_eq(b.reply.code, "NotYourSession");
    ck_assert_str_eq(b.reply.message, "capture " ID1 " is not yours");
    ck_assert_int_eq(proto_msg_seq(&b), 23);
    free(s);
}
END_TEST

START_TEST(round_trip_blob_request_and_grant)
{
    struct proto_msg m, b;
    memset(&m, 0, sizeof(m));
    m.type = PROTO_BLOB_REQUEST;
    m.blob_request.id = 7;
    copy(m.blob_request.capture_id, PROTO_ID_SIZE, ID1);
    m.blob_request.file = 3;
    char *s = round_trip(&m, &b);
    ck_assert_str_eq(s, "{\"type\":\"blobRequest\",\"id\":7,\"captureId\":\"" ID1 "\",\"file\":3}");
    ck_assert_int_eq(b.blob_request.file, 3);
    ck_assert_int_eq(proto_msg_seq(&b), 0); /* not a report */
    free(s);
    proto_msg_clear(&b);

    char url[] = "http://127.0.0.1:10000/devstoreaccount1/network-watcher-logs/a.cap?sv=x&sig=y";
    memset(&m, 0, sizeof(m));
    m.type = PROTO_BLOB_GRANT;
    m.blob_grant.id = 7;
    m.blob_grant.ok = 1;
    m.blob_grant.url = url;
    m.blob_grant.expires_at = 1773718655429;
    s = round_trip(&m, &b);
    ck_assert_str_eq(b.blob_grant.url, url);
    ck_assert_ptr_ne(b.blob_grant.url, url); /* decoded: owned */
    ck_assert_int_eq(b.blob_grant.expires_at, 1773718655429);
    free(s);
    proto_msg_clear(&b);

    memset(&m, 0, sizeof(m));
    m.type = PROTO_BLOB_GRANT;
    m.blob_grant.id = 8;
    copy(m.blob_grant.code, sizeof(m.blob_grant.code), PROTO_GRANT_NO_STORAGE);
    copy(m.blob_grant.message, sizeof(m.blob_grant.message), "no storage account");
    s = round_trip(&m, &b);
    ck_assert_int_eq(b.blob_grant.ok, 0);
    ck_assert_ptr_null(b.blob_grant.url);
    ck_assert_str_eq(b.blob_grant.code, "NoStorage");
    free(s);
    proto_msg_clear(&b);

    /* A grant without its URL, or with a URL that is not http(s), is never sent. */
    memset(&m, 0, sizeof(m));
    m.type = PROTO_BLOB_GRANT;
    m.blob_grant.id = 9;
    m.blob_grant.ok = 1;
    ck_assert_ptr_null(proto_encode(&m));
    m.blob_grant.url = (char *)(uintptr_t) "file:///etc/passwd";
    ck_assert_ptr_null(proto_encode(&m));
}
END_TEST

START_TEST(round_trip_empty_arrays_and_bounds)
{
    /* the smallest and the largest values every bound allows */
    struct proto_msg m, b;
    memset(&m, 0, sizeof(m));
    m.type = PROTO_HELLO;
    m.hello.n_protocols = PROTO_MAX_PROTOCOLS;
    for (int i = 0; i < PROTO_MAX_PROTOCOLS; i++)
        m.hello.protocols[i] = i == 0 ? INT_MAX : i;
    memset(m.hello.agent_version, 'v', PROTO_AGENT_VERSION_MAX);
    memset(m.hello.hostname, 'h', PROTO_HOSTNAME_MAX);
    memset(m.hello.os, 'o', PROTO_OS_MAX);
    m.hello.unacked_from = INT64_MAX;
    char *s = round_trip(&m, &b);
    ck_assert_uint_eq(b.hello.n_interfaces, 0);
    ck_assert_ptr_null(b.hello.interfaces);
    ck_assert_uint_eq(b.hello.n_sessions, 0);
    ck_assert_ptr_null(b.hello.sessions);
    ck_assert_uint_eq(strlen(b.hello.hostname), PROTO_HOSTNAME_MAX);
    ck_assert_int_eq(b.hello.protocols[0], INT_MAX);
    ck_assert_int_eq(b.hello.unacked_from, INT64_MAX);
    free(s);
    proto_msg_clear(&b);

    memset(&m, 0, sizeof(m));
    m.type = PROTO_WELCOME;
    m.welcome.protocol = 1;
    m.welcome.heartbeat_seconds = PROTO_HEARTBEAT_MAX;
    s = round_trip(&m, &b);
    ck_assert_uint_eq(b.welcome.n_stop, 0);
    ck_assert_ptr_null(b.welcome.stop);
    ck_assert_int_eq(b.welcome.last_applied_seq, 0);
    free(s);
    proto_msg_clear(&b);

    memset(&m, 0, sizeof(m));
    m.type = PROTO_COMPLETED;
    m.completed.seq = 1;
    copy(m.completed.capture_id, PROTO_ID_SIZE, ID1);
    m.completed.stop_reason = PROTO_STOP_SESSION_BYTES_EXCEEDED;
    s = round_trip(&m, &b);
    ck_assert_uint_eq(b.completed.n_files, 0);
    free(s);
    proto_msg_clear(&b);

    memset(&m, 0, sizeof(m));
    m.type = PROTO_ERROR;
    m.error.seq = 1;
    copy(m.error.capture_id, PROTO_ID_SIZE, ID1);
    m.error.code = PROTO_PC_INTERNAL_ERROR;
    memset(m.error.message, 'x', PROTO_MESSAGE_MAX);
    s = round_trip(&m, &b);
    ck_assert_uint_eq(strlen(b.error.message), PROTO_MESSAGE_MAX);
    free(s);
    proto_msg_clear(&b);
}
END_TEST

/* The examples of docs/agent-protocol.md, with real GUIDs for "<uuid>". */
static const char *const doc_examples[] = {
    "{\"type\":\"hello\",\"protocols\":[1],\"agentVersion\":\"0.2.0\",\"hostname\":\"vm1\","
    "\"os\":\"linux\",\n \"interfaces\":[{\"name\":\"eth0\",\"addresses\":[\"10.0.0.4\","
    "\"fe80::1\"]}],\n \"sessions\":{\"running\":[\"" ID1 "\"]},\n"
    " \"unackedFrom\":17}",
    "{\"type\":\"hello\",\"protocols\":[1],\"agentVersion\":\"0.2.0\",\"hostname\":\"vm1\","
    "\"os\":\"linux\",\n \"interfaces\":[{\"name\":\"eth0\",\"addresses\":[\"10.0.0.4\","
    "\"fe80::1\"]}],\n \"sessions\":{\"running\":[\"" ID1 "\"]},\n"
    " \"unackedFrom\":17,\n \"identity\":{\"resourceId\":\"/subscriptions/" ID2
    "/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1\"}}",
    "{\"type\":\"welcome\",\"protocol\":1,\"heartbeatSeconds\":15,\"lastAppliedSeq\":16,\n"
    " \"stop\":[\"" ID2 "\"]}",
    "{\"type\":\"start\",\"commandId\":\"" ID1 "\",\"captureId\":\"" ID2 "\",\"name\":\"pc1\",\n"
    " \"spec\":{ \"...\": \"the normalised PacketCaptureParameters\" }}",
    "{\"type\":\"stop\",\"commandId\":\"" ID1 "\",\"captureId\":\"" ID2 "\",\"reason\":\"Manual\"}",
    "{\"type\":\"ack\",\"seq\":18,\"commandId\":\"" ID1 "\",\"ok\":true,\"at\":1773718655429}",
    "{\"type\":\"ack\",\"seq\":19,\"commandId\":\"" ID1 "\",\"ok\":false,\"code\":"
    "\"CaptureFailed\",\"message\":\"...\"}",
    "{\"type\":\"progress\",\"seq\":20,\"captureId\":\"" ID1 "\",\"packets\":1200,\"bytes\":834211,"
    "\"drops\":0,\"files\":1}",
    "{\"type\":\"completed\",\"seq\":21,\"captureId\":\"" ID1
    "\",\"stopReason\":\"TimeExceeded\",\n"
    " \"files\":[{\"path\":\"/var/captures/pc1.cap\",\"bytes\":834211,\"sha256\":\"" SHA "\"}]}",
    "{\"type\":\"error\",\"seq\":22,\"captureId\":\"" ID1 "\",\"code\":\"LocalFileFailed\","
    "\"message\":\"disk full\"}",
    "{\"type\":\"reply\",\"seq\":20,\"ok\":true}",
    "{\"type\":\"reply\",\"seq\":21,\"ok\":false,\"code\":\"NotYourSession\",\"message\":\"no\"}",
    "{\"type\":\"blobRequest\",\"id\":4,\"captureId\":\"" ID1 "\",\"file\":0}",
    "{\"type\":\"blobGrant\",\"id\":4,\"ok\":true,\n"
    " \"url\":\"https://acct.blob.core.windows.net/network-watcher-logs/.../"
    "packetcapture_16_39_41_077.cap?sv=2021-08-06&sr=b&sp=cw&se=...&sig=...\",\n"
    " \"expiresAt\":1773722255429}",
    "{\"type\":\"blobGrant\",\"id\":5,\"ok\":false,\"code\":\"NoStorage\","
    "\"message\":\"...\"}",
};

START_TEST(doc_examples_decode)
{
    struct proto_msg m;
    decode_ok(doc_examples[_i], &m);
    char *s = proto_encode(&m);
    ck_assert_ptr_nonnull(s);
    free(s);
    proto_msg_clear(&m);
}
END_TEST

START_TEST(unknown_members_are_ignored)
{
    struct proto_msg m;
    decode_ok("{\"future\":{\"x\":[1,2,{\"y\":null}]},\"type\":\"progress\",\"seq\":5,"
              "\"captureId\":\"" ID1 "\",\"packets\":1,\"bytes\":2,\"drops\":3,\"files\":4,"
              "\"rate\":1.5,\"extra\":null}",
              &m);
    ck_assert_int_eq(m.type, PROTO_PROGRESS);
    ck_assert_int_eq(m.progress.seq, 5);
    ck_assert_int_eq(m.progress.drops, 3);
    char *s = proto_encode(&m);
    ck_assert_ptr_null(strstr(s, "future"));
    free(s);
    proto_msg_clear(&m);

    decode_ok(
        "{\"type\":\"hello\",\"protocols\":[1],\"agentVersion\":\"1\",\"hostname\":\"h\","
        "\"os\":\"linux\",\"unackedFrom\":1,\"interfaces\":[{\"name\":\"eth0\",\"mtu\":1500}],"
        "\"sessions\":{\"finished\":[\"" ID1 "\"],\"paused\":[\"" ID2 "\"]}}",
        &m);
    ck_assert_uint_eq(m.hello.n_interfaces, 1);
    ck_assert_uint_eq(m.hello.interfaces[0].n_addresses, 0);
    ck_assert_uint_eq(m.hello.n_sessions, 1); /* a state this version does not know is ignored */
    ck_assert_int_eq(m.hello.sessions[0].state, PROTO_SESSION_FINISHED);
    proto_msg_clear(&m);
}
END_TEST

START_TEST(message_text_may_hold_anything_utf8)
{
    struct proto_msg m;
    decode_ok("{\"type\":\"error\",\"seq\":1,\"captureId\":\"" ID1 "\",\"code\":\"CaptureFailed\","
              "\"message\":\"tab\\there\\nnew line \\u00e9 \\ud83d\\ude00\"}",
              &m);
    ck_assert_str_eq(m.error.message, "tab\there\nnew line \xc3\xa9 \xf0\x9f\x98\x80");
    proto_msg_clear(&m);
    /* an empty message is the same as none */
    decode_ok("{\"type\":\"error\",\"seq\":1,\"captureId\":\"" ID1 "\",\"code\":\"CaptureFailed\","
              "\"message\":\"\"}",
              &m);
    ck_assert_str_eq(m.error.message, "");
    proto_msg_clear(&m);
}
END_TEST

/* ---- refusals ---- */

struct refusal {
    const char *json;
    const char *target; /* expected e.target */
    const char *needle; /* expected in e.message */
};

#define HELLO_HEAD                                                                                 \
    "{\"type\":\"hello\",\"protocols\":[1],\"agentVersion\":\"0.2.0\",\"os\":\"linux\""
#define HELLO_OK   HELLO_HEAD ",\"hostname\":\"vm1\",\"unackedFrom\":1"
#define PROG_HEAD  "{\"type\":\"progress\",\"captureId\":\"" ID1 "\",\"packets\":1,\"bytes\":1"
#define ACK_HEAD   "{\"type\":\"ack\",\"seq\":3,\"commandId\":\"" ID1 "\""
#define START_HEAD "{\"type\":\"start\",\"commandId\":\"" ID1 "\",\"captureId\":\"" ID2 "\""
#define DONE_HEAD  "{\"type\":\"completed\",\"seq\":3,\"captureId\":\"" ID1 "\""
#define WELC_HEAD  "{\"type\":\"welcome\",\"protocol\":1,\"heartbeatSeconds\":15"
#define REPLY_HEAD "{\"type\":\"reply\",\"seq\":3"
#define ERR_HEAD   "{\"type\":\"error\",\"seq\":3,\"captureId\":\"" ID1 "\""
#define BREQ_HEAD  "{\"type\":\"blobRequest\",\"captureId\":\"" ID1 "\""
#define GRANT_HEAD "{\"type\":\"blobGrant\",\"id\":2"

static const struct refusal refusals[] = {
    /* blobRequest and blobGrant */
    {BREQ_HEAD ",\"file\":0}", "id", "required"},
    {BREQ_HEAD ",\"id\":0,\"file\":0}", "id", ""},
    {BREQ_HEAD ",\"id\":1,\"file\":-1}", "file", ""},
    {BREQ_HEAD ",\"id\":1,\"file\":1000000001}", "file", ""},
    {BREQ_HEAD ",\"id\":1}", "file", "required"},
    {GRANT_HEAD ",\"ok\":true,\"expiresAt\":1}", "url", "required"},
    {GRANT_HEAD ",\"ok\":true,\"url\":\"http://h/b\"}", "expiresAt", "required"},
    {GRANT_HEAD ",\"ok\":true,\"expiresAt\":1,\"url\":\"ftp://h/b\"}", "url", "http"},
    {GRANT_HEAD ",\"ok\":true,\"expiresAt\":1,\"url\":\"http://h/a b\"}", "url", "spaces"},
    {GRANT_HEAD ",\"ok\":true,\"expiresAt\":1,\"url\":\"http://h/b\",\"code\":\"X\"}", "code",
     "only"},
    {GRANT_HEAD ",\"ok\":false,\"code\":\"NoStorage\",\"url\":\"http://h/b\"}", "url", "only"},
    {GRANT_HEAD ",\"ok\":false}", "code", "required"},
    /* not a message at all */
    {"[]", "", "JSON object"},
    {"[{\"type\":\"reply\",\"seq\":1,\"ok\":true}]", "", "JSON object"},
    {"5", "", "not valid JSON"},
    {"\"hello\"", "", "not valid JSON"},
    {"null", "", "not valid JSON"},
    {"true", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"seq\":1,\"ok\":true", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"seq\":1,\"ok\":tr", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"seq\":1,\"ok\":true}}", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"seq\":1,\"ok\":true} x", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"seq\":1,\"ok\":true,\"seq\":2}", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"seq\":01,\"ok\":true}", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"seq\":1,\"ok\":true,}", "", "not valid JSON"},
    {"{'type':'reply'}", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"x\":\"a\\u0000b\",\"seq\":1,\"ok\":true}", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"x\":\"\xff\",\"seq\":1,\"ok\":true}", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"x\":\"a\tb\",\"seq\":1,\"ok\":true}", "", "not valid JSON"},
    {"{\"type\":\"reply\",\"seq\":99999999999999999999,\"ok\":true}", "", "not valid JSON"},
    /* the type */
    {"{}", "type", "is required"},
    {"{\"seq\":1}", "type", "is required"},
    {"{\"type\":5}", "type", "must be a string"},
    {"{\"type\":null}", "type", "must be a string"},
    {"{\"type\":\"\"}", "type", "must not be empty"},
    {"{\"type\":\"hola\"}", "type", "unknown message type \"hola\""},
    {"{\"type\":\"Hello\"}", "type", "unknown message type"},
    {"{\"type\":\"none\"}", "type", "unknown message type"},
    /* wrong JSON types */
    {REPLY_HEAD ",\"ok\":\"true\"}", "ok", "reply: ok must be true or false"},
    {REPLY_HEAD ",\"ok\":1}", "ok", "must be true or false"},
    {"{\"type\":\"reply\",\"seq\":\"3\",\"ok\":true}", "seq", "must be an integer"},
    {"{\"type\":\"reply\",\"seq\":3.0,\"ok\":true}", "seq", "must be an integer"},
    {"{\"type\":\"reply\",\"seq\":1e3,\"ok\":true}", "seq", "must be an integer"},
    {"{\"type\":\"reply\",\"seq\":null,\"ok\":true}", "seq", "must be an integer"},
    {PROG_HEAD ",\"seq\":1,\"drops\":true,\"files\":0}", "drops", "must be an integer"},
    {HELLO_HEAD ",\"hostname\":5,\"unackedFrom\":1}", "hostname", "must be a string"},
    {HELLO_HEAD ",\"hostname\":null,\"unackedFrom\":1}", "hostname", "must be a string"},
    {"{\"type\":\"hello\",\"protocols\":1,\"agentVersion\":\"0.2.0\",\"hostname\":\"h\","
     "\"os\":\"linux\",\"unackedFrom\":1}",
     "protocols", "must be an array"},
    {"{\"type\":\"hello\",\"protocols\":[1.0],\"agentVersion\":\"0.2.0\",\"hostname\":\"h\","
     "\"os\":\"linux\",\"unackedFrom\":1}",
     "protocols[0]", "integer version"},
    {"{\"type\":\"hello\",\"protocols\":[\"1\"],\"agentVersion\":\"0.2.0\",\"hostname\":\"h\","
     "\"os\":\"linux\",\"unackedFrom\":1}",
     "protocols[0]", "integer version"},
    {HELLO_OK ",\"interfaces\":{}}", "interfaces", "must be an array"},
    {HELLO_OK ",\"interfaces\":[\"eth0\"]}", "interfaces[0]", "must be an object"},
    {HELLO_OK ",\"interfaces\":[{\"name\":\"eth0\",\"addresses\":\"10.0.0.1\"}]}",
     "interfaces[0].addresses", "must be an array"},
    {HELLO_OK ",\"interfaces\":[{\"name\":\"eth0\",\"addresses\":[4]}]}",
     "interfaces[0].addresses[0]", "must be a string"},
    {HELLO_OK ",\"sessions\":[\"" ID1 "\"]}", "sessions", "hello: sessions must be an object"},
    {HELLO_OK ",\"sessions\":null}", "sessions", "must be an object"},
    {HELLO_OK ",\"sessions\":{\"running\":\"" ID1 "\"}}", "sessions.running", "must be an array"},
    {HELLO_OK ",\"sessions\":{\"finished\":[{\"captureId\":\"" ID1 "\"}]}}", "sessions.finished[0]",
     "must be a string"},
    {START_HEAD ",\"name\":\"pc1\",\"spec\":\"{}\"}", "spec", "start: spec must be an object"},
    {START_HEAD ",\"name\":\"pc1\",\"spec\":[]}", "spec", "must be an object"},
    {DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":[{\"path\":\"/p.cap\",\"bytes\":\"1\"}]}",
     "files[0].bytes", "must be an integer"},
    {DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":[\"/p.cap\"]}", "files[0]",
     "must be an object"},
    {WELC_HEAD ",\"lastAppliedSeq\":0,\"stop\":[7]}", "stop[0]", "must be a string"},
    /* missing required members */
    {HELLO_HEAD ",\"unackedFrom\":1}", "hostname", "hello: hostname is required"},
    {"{\"type\":\"hello\",\"agentVersion\":\"0.2.0\",\"hostname\":\"h\",\"os\":\"linux\","
     "\"unackedFrom\":1}",
     "protocols", "is required"},
    {HELLO_HEAD ",\"hostname\":\"h\"}", "unackedFrom", "is required"},
    {HELLO_OK ",\"interfaces\":[{\"addresses\":[]}]}", "interfaces[0].name", "is required"},
    {"{\"type\":\"welcome\",\"heartbeatSeconds\":15,\"lastAppliedSeq\":0}", "protocol",
     "is required"},
    {WELC_HEAD "}", "lastAppliedSeq", "is required"},
    {START_HEAD ",\"name\":\"pc1\"}", "spec", "is required"},
    {START_HEAD ",\"spec\":{}}", "name", "is required"},
    {"{\"type\":\"start\",\"captureId\":\"" ID2 "\",\"name\":\"pc1\",\"spec\":{}}", "commandId",
     "is required"},
    {"{\"type\":\"stop\",\"commandId\":\"" ID1 "\",\"captureId\":\"" ID2 "\"}", "reason",
     "is required"},
    {ACK_HEAD "}", "ok", "is required"},
    {"{\"type\":\"ack\",\"commandId\":\"" ID1 "\",\"ok\":true}", "seq", "ack: seq is required"},
    {ACK_HEAD ",\"ok\":false}", "code", "is required"},
    {ACK_HEAD ",\"ok\":false,\"message\":\"x\"}", "code", "is required"},
    {PROG_HEAD ",\"seq\":1,\"files\":0}", "drops", "progress: drops is required"},
    {DONE_HEAD ",\"files\":[]}", "stopReason", "is required"},
    {DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":[{\"bytes\":1}]}", "files[0].path",
     "is required"},
    {DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":[{\"path\":\"/p.cap\"}]}", "files[0].bytes",
     "is required"},
    {ERR_HEAD ",\"message\":\"x\"}", "code", "error: code is required"},
    {"{\"type\":\"error\",\"seq\":3,\"code\":\"InternalError\"}", "captureId", "is required"},
    {REPLY_HEAD ",\"ok\":false}", "code", "reply: code is required"},
    {"{\"type\":\"reply\",\"ok\":true}", "seq", "is required"},
    /* seq and counts */
    {"{\"type\":\"reply\",\"seq\":0,\"ok\":true}", "seq", "must be at least 1, not 0"},
    {"{\"type\":\"reply\",\"seq\":-1,\"ok\":true}", "seq", "must be at least 1"},
    {PROG_HEAD ",\"seq\":0,\"drops\":0,\"files\":0}", "seq", "at least 1"},
    {HELLO_HEAD ",\"hostname\":\"h\",\"unackedFrom\":0}", "unackedFrom", "at least 1"},
    {PROG_HEAD ",\"seq\":1,\"drops\":-1,\"files\":0}", "drops", "must be at least 0, not -1"},
    {"{\"type\":\"progress\",\"seq\":1,\"captureId\":\"" ID1 "\",\"packets\":-5,\"bytes\":1,"
     "\"drops\":0,\"files\":0}",
     "packets", "at least 0"},
    {PROG_HEAD ",\"seq\":1,\"drops\":0,\"files\":-9223372036854775808}", "files", "at least 0"},
    {PROG_HEAD ",\"seq\":1,\"drops\":0,\"files\":0,\"uploadedBytes\":-1}", "uploadedBytes",
     "at least 0"},
    {PROG_HEAD ",\"seq\":1,\"drops\":0,\"files\":0,\"uploadedBytes\":\"5\"}", "uploadedBytes", ""},
    {DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":[{\"path\":\"/p.cap\",\"bytes\":-1}]}",
     "files[0].bytes", "at least 0"},
    {WELC_HEAD ",\"lastAppliedSeq\":-1}", "lastAppliedSeq", "at least 0"},
    {ACK_HEAD ",\"ok\":true,\"at\":-1}", "at", "at least 0"},
    /* other bounds */
    {"{\"type\":\"welcome\",\"protocol\":0,\"heartbeatSeconds\":15,\"lastAppliedSeq\":0}",
     "protocol", "must be 1..2147483647, not 0"},
    {"{\"type\":\"welcome\",\"protocol\":2147483648,\"heartbeatSeconds\":15,\"lastAppliedSeq\":0}",
     "protocol", "must be 1..2147483647"},
    {"{\"type\":\"welcome\",\"protocol\":1,\"heartbeatSeconds\":0,\"lastAppliedSeq\":0}",
     "heartbeatSeconds", "must be 1..3600, not 0"},
    {"{\"type\":\"welcome\",\"protocol\":1,\"heartbeatSeconds\":3601,\"lastAppliedSeq\":0}",
     "heartbeatSeconds", "must be 1..3600"},
    {"{\"type\":\"hello\",\"protocols\":[],\"agentVersion\":\"0.2.0\",\"hostname\":\"h\","
     "\"os\":\"linux\",\"unackedFrom\":1}",
     "protocols", "at least one version"},
    {"{\"type\":\"hello\",\"protocols\":[0],\"agentVersion\":\"0.2.0\",\"hostname\":\"h\","
     "\"os\":\"linux\",\"unackedFrom\":1}",
     "protocols[0]", "integer version"},
    {"{\"type\":\"hello\",\"protocols\":[1,-2],\"agentVersion\":\"0.2.0\",\"hostname\":\"h\","
     "\"os\":\"linux\",\"unackedFrom\":1}",
     "protocols[1]", "integer version"},
    {"{\"type\":\"hello\",\"protocols\":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],\"agentVersion\":"
     "\"0.2.0\",\"hostname\":\"h\",\"os\":\"linux\",\"unackedFrom\":1}",
     "protocols", "has 17 entries, more than 16"},
    {HELLO_HEAD ",\"hostname\":\"\",\"unackedFrom\":1}", "hostname", "must not be empty"},
    {HELLO_HEAD ",\"hostname\":\"vm\\n1\",\"unackedFrom\":1}", "hostname", "control characters"},
    {HELLO_HEAD ",\"hostname\":\"vm\\u007f\",\"unackedFrom\":1}", "hostname", "control characters"},
    {HELLO_OK ",\"interfaces\":[{\"name\":\"eth0\",\"addresses\":[\"10.0.0.256\"]}]}",
     "interfaces[0].addresses[0]", "IPv4 or IPv6 address"},
    {HELLO_OK ",\"interfaces\":[{\"name\":\"eth0\",\"addresses\":[\"fe80::1%eth0\"]}]}",
     "interfaces[0].addresses[0]", "IPv4 or IPv6 address"},
    {HELLO_OK ",\"interfaces\":[{\"name\":\"eth0\",\"addresses\":[\"\"]}]}",
     "interfaces[0].addresses[0]", "must not be empty"},
    {HELLO_OK ",\"interfaces\":[{\"name\":\"eth0\",\"addresses\":[\"ffff:ffff:ffff:ffff:"
              "ffff:ffff:255.255.255.2555\"]}]}",
     "interfaces[0].addresses[0]", "longer than 45 bytes"},
    {START_HEAD ",\"name\":\"pc 1\",\"spec\":{}}", "name", "ARM resource name"},
    {START_HEAD ",\"name\":\"-pc\",\"spec\":{}}", "name", "ARM resource name"},
    {START_HEAD ",\"name\":\"p1234567890123456789012345678901234567890123456789012345678901234"
                "5678901234567890\",\"spec\":{}}", /* 81 */
     "name", "longer than 80 bytes"},
    {"{\"type\":\"stop\",\"commandId\":\"" ID1 "\",\"captureId\":\"" ID2
     "\",\"reason\":\"manual\"}",
     "reason", "must be Manual, TimeExceeded"},
    {DONE_HEAD ",\"stopReason\":\"Done\"}", "stopReason", "must be Manual"},
    {ERR_HEAD ",\"code\":\"DiskFull\"}", "code", "must be InternalError, AgentStopped"},
    {ACK_HEAD ",\"ok\":false,\"code\":\"NotYourSession\"}", "code", "must be InternalError"},
    {ACK_HEAD ",\"ok\":true,\"code\":\"CaptureFailed\"}", "code", "only allowed when ok is false"},
    {ACK_HEAD ",\"ok\":true,\"message\":\"fine\"}", "message", "only allowed when ok is false"},
    {REPLY_HEAD ",\"ok\":true,\"code\":\"X\"}", "code", "only allowed when ok is false"},
    {REPLY_HEAD ",\"ok\":false,\"code\":\"Not Yours\"}", "code", "ASCII letters and digits"},
    {REPLY_HEAD ",\"ok\":false,\"code\":\"\"}", "code", "must not be empty"},
    {REPLY_HEAD ",\"ok\":false,\"code\":\"X\",\"message\":5}", "message", "must be a string"},
    {DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":[{\"path\":\"\",\"bytes\":1}]}",
     "files[0].path", "must not be empty"},
    {DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":[{\"path\":\"/p.cap\",\"bytes\":1,\"sha256\":"
               "\"abc\"}]}",
     "files[0].sha256", "64 lower-case hex digits"},
    {DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":[{\"path\":\"/p.cap\",\"bytes\":1,\"sha256\":"
               "\"\"}]}",
     "files[0].sha256", "64 lower-case hex digits"},
    {DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":[{\"path\":\"/p.cap\",\"bytes\":1,\"sha256\":"
               "\"9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08\"}]}",
     "files[0].sha256", "64 lower-case hex digits"},
    /* GUIDs */
    {"{\"type\":\"stop\",\"commandId\":\"0F8FAD5B-D9CB-469F-A165-70867728950E\",\"captureId\":"
     "\"" ID2 "\",\"reason\":\"Manual\"}",
     "commandId", "lower-case GUID"},
    {"{\"type\":\"stop\",\"commandId\":\"" ID1 "\",\"captureId\":\"{" ID2 "}\",\"reason\":"
     "\"Manual\"}",
     "captureId", "lower-case GUID"},
    {ERR_HEAD ",\"code\":\"InternalError\",\"captureId\":5}", "", "not valid JSON"},
    {"{\"type\":\"error\",\"seq\":3,\"captureId\":\"0f8fad5b-d9cb-469f-a165-70867728950\","
     "\"code\":\"InternalError\"}",
     "captureId", "lower-case GUID"},
    {"{\"type\":\"error\",\"seq\":3,\"captureId\":\"0f8fad5b-d9cb-469f-a165-70867728950e0\","
     "\"code\":\"InternalError\"}",
     "captureId", "lower-case GUID"},
    {"{\"type\":\"error\",\"seq\":3,\"captureId\":\"0f8fad5bd9cb-469f-a165-70867728950e0\","
     "\"code\":\"InternalError\"}",
     "captureId", "lower-case GUID"},
    {"{\"type\":\"error\",\"seq\":3,\"captureId\":\"0f8fad5g-d9cb-469f-a165-70867728950e\","
     "\"code\":\"InternalError\"}",
     "captureId", "lower-case GUID"},
    {"{\"type\":\"error\",\"seq\":3,\"captureId\":\"\",\"code\":\"InternalError\"}", "captureId",
     "lower-case GUID"},
    {"{\"type\":\"error\",\"seq\":3,\"captureId\":[],\"code\":\"InternalError\"}", "captureId",
     "must be a string"},
    {WELC_HEAD ",\"lastAppliedSeq\":0,\"stop\":[\"" ID1 "\",\"x\"]}", "stop[1]", "lower-case GUID"},
    {HELLO_OK ",\"sessions\":{\"running\":[\"" ID2 "\"],\"finished\":[\"" ID1
              "\",\"not-a-guid\"]}}",
     "sessions.finished[1]", "hello: sessions.finished[1] must be a lower-case GUID"},
    /* hello.identity */
    {HELLO_OK ",\"identity\":\"" VM_ID "\"}", "identity", "hello: identity must be an object"},
    {HELLO_OK ",\"identity\":null}", "identity", "must be an object"},
    {HELLO_OK ",\"identity\":{}}", "identity.resourceId", "is required"},
    {HELLO_OK ",\"identity\":{\"instanceId\":\"0\"}}", "identity.resourceId", "is required"},
    {HELLO_OK ",\"identity\":{\"resourceId\":\"\"}}", "identity.resourceId", "must not be empty"},
    {HELLO_OK ",\"identity\":{\"resourceId\":5}}", "identity.resourceId", "must be a string"},
    {HELLO_OK ",\"identity\":{\"resourceId\":\"vm1\"}}", "identity.resourceId",
     "must be a virtual machine or scale set resource id"},
    {HELLO_OK ",\"identity\":{\"resourceId\":\"/subscriptions/" ID1
              "/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/sa1\"}}",
     "identity.resourceId", "must be a virtual machine or a scale set id"},
    {HELLO_OK ",\"identity\":{\"resourceId\":\"" VM_ID "/extra\"}}", "identity.resourceId",
     "not a valid resource id"},
    {HELLO_OK ",\"identity\":{\"resourceId\":\"" VM_ID "\",\"instanceId\":\"0\"}}",
     "identity.instanceId", "is only for a scale set id"},
    {HELLO_OK ",\"identity\":{\"resourceId\":\"" VMSS_ID "\"}}", "identity.instanceId",
     "is required with a scale set id"},
    {HELLO_OK ",\"identity\":{\"resourceId\":\"" VMSS_ID "\",\"instanceId\":\"\"}}",
     "identity.instanceId", "must not be empty"},
    {HELLO_OK ",\"identity\":{\"resourceId\":\"" VMSS_ID "\",\"instanceId\":\"a/b\"}}",
     "identity.instanceId", "a resource name"},
    {HELLO_OK ",\"identity\":{\"resourceId\":\"" VMSS_ID "\",\"instanceId\":7}}",
     "identity.instanceId", "must be a string"},
};

START_TEST(refused)
{
    const struct refusal *r = &refusals[_i];
    struct proto_msg m;
    struct cp_error e = {{0}, {0}, {0}};
    sentinel(&m);
    enum cp_err err = decode_str(r->json, &m, &e);
    ck_assert_msg(err == CP_EINVAL, "case %d accepted (%d): %s", _i, (int)err, r->json);
    assert_sentinel(&m);
    ck_assert_str_eq(e.code, "InvalidMessage");
    ck_assert_msg(strcmp(e.target, r->target) == 0, "case %d: target \"%s\", want \"%s\"", _i,
                  e.target, r->target);
    ck_assert_msg(strstr(e.message, r->needle) != NULL, "case %d: message \"%s\" lacks \"%s\"", _i,
                  e.message, r->needle);
}
END_TEST

START_TEST(refused_without_error_detail)
{
    struct proto_msg m;
    sentinel(&m);
    ck_assert_int_eq(decode_str("{\"type\":\"reply\",\"seq\":0,\"ok\":true}", &m, NULL), CP_EINVAL);
    ck_assert_int_eq(decode_str("{", &m, NULL), CP_EINVAL);
    ck_assert_int_eq(decode_str("{\"type\":\"x\"}", &m, NULL), CP_EINVAL);
    assert_sentinel(&m);
}
END_TEST

START_TEST(empty_and_binary_input)
{
    struct proto_msg m;
    struct cp_error e = {{0}, {0}, {0}};
    sentinel(&m);
    ck_assert_int_eq(proto_decode("", 0, &m, &e), CP_EINVAL);
    ck_assert_str_eq(e.message, "the message is empty");
    ck_assert_int_eq(proto_decode(NULL, 0, &m, &e), CP_EINVAL);
    ck_assert_int_eq(proto_decode("   ", 3, &m, &e), CP_EINVAL);
    /* a NUL inside the buffer, and a valid message followed by a NUL */
    static const char nul_inside[] = "{\"type\":\"reply\",\0\"seq\":1,\"ok\":true}";
    ck_assert_int_eq(proto_decode(nul_inside, sizeof(nul_inside) - 1, &m, &e), CP_EINVAL);
    static const char nul_after[] = "{\"type\":\"reply\",\"seq\":1,\"ok\":true}";
    ck_assert_int_eq(proto_decode(nul_after, sizeof(nul_after), &m, &e), CP_EINVAL);
    assert_sentinel(&m);
    /* len bounds what is read: the same buffer without its NUL decodes */
    ck_assert_int_eq(proto_decode(nul_after, sizeof(nul_after) - 1, &m, &e), CP_OK);
    ck_assert_int_eq(m.type, PROTO_REPLY);
    proto_msg_clear(&m);
}
END_TEST

/* A progress message padded with an unknown member to exactly len bytes. */
static char *padded_progress(size_t len)
{
    static const char head[] = "{\"type\":\"progress\",\"seq\":1,\"captureId\":\"" ID1
                               "\",\"packets\":1,\"bytes\":1,\"drops\":0,\"files\":0,\"pad\":\"";
    size_t fixed = sizeof(head) - 1 + 2; /* head + "\"}" */
    ck_assert_uint_gt(len, fixed);
    char *s = malloc(len + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, head, sizeof(head) - 1);
    memset(s + sizeof(head) - 1, 'p', len - fixed);
    memcpy(s + len - 2, "\"}", 3);
    ck_assert_uint_eq(strlen(s), len);
    return s;
}

START_TEST(message_size_limit)
{
    struct proto_msg m;
    struct cp_error e = {{0}, {0}, {0}};
    char *s = padded_progress(PROTO_MAX_MESSAGE);
    ck_assert_int_eq(proto_decode(s, PROTO_MAX_MESSAGE, &m, &e), CP_OK);
    proto_msg_clear(&m);
    free(s);

    s = padded_progress(PROTO_MAX_MESSAGE + 1);
    sentinel(&m);
    ck_assert_int_eq(proto_decode(s, PROTO_MAX_MESSAGE + 1, &m, &e), CP_ETOOBIG);
    assert_sentinel(&m);
    ck_assert_str_eq(e.code, "MessageTooLarge");
    ck_assert_ptr_nonnull(strstr(e.message, "65536"));
    free(s);
}
END_TEST

/* n ids "<i>-d9cb-...", comma-separated, numbered from first. */
static void add_ids(struct dynbuf *b, size_t first, size_t n)
{
    for (size_t i = first; i < first + n; i++)
        dynbuf_printf(b, "%s\"%08zx-d9cb-469f-a165-70867728950e\"", i > first ? "," : "", i);
}

/* A hello holding running + finished sessions, or (welcome) a welcome with running stop ids. */
static char *many_sessions(size_t running, size_t finished, int welcome)
{
    struct dynbuf b;
    dynbuf_init(&b, 1 << 20);
    if (welcome) {
        dynbuf_addstr(&b, WELC_HEAD ",\"lastAppliedSeq\":0,\"stop\":[");
        add_ids(&b, 0, running);
        dynbuf_addstr(&b, "]}");
    } else {
        dynbuf_addstr(&b, HELLO_OK ",\"sessions\":{\"running\":[");
        add_ids(&b, 0, running);
        dynbuf_addstr(&b, "],\"finished\":[");
        add_ids(&b, running, finished);
        dynbuf_addstr(&b, "]}}");
    }
    char *s = dynbuf_take(&b);
    ck_assert_ptr_nonnull(s);
    return s;
}

START_TEST(session_count_limit)
{
    struct proto_msg m;
    struct cp_error e = {{0}, {0}, {0}};
    char *s = many_sessions(1000, PROTO_MAX_SESSIONS - 1000, 0);
    ck_assert_uint_le(strlen(s), PROTO_MAX_MESSAGE);
    decode_ok(s, &m);
    ck_assert_uint_eq(m.hello.n_sessions, PROTO_MAX_SESSIONS);
    ck_assert_int_eq(m.hello.sessions[999].state, PROTO_SESSION_RUNNING);
    ck_assert_int_eq(m.hello.sessions[1023].state, PROTO_SESSION_FINISHED);
    ck_assert_str_eq(m.hello.sessions[1023].capture_id, "000003ff-d9cb-469f-a165-70867728950e");
    /* and it encodes again within the message limit */
    char *again = proto_encode(&m);
    ck_assert_ptr_nonnull(again);
    free(again);
    proto_msg_clear(&m);
    free(s);

    /* too many in all, though each list is within the bound */
    s = many_sessions(600, 425, 0);
    ck_assert_uint_le(strlen(s), PROTO_MAX_MESSAGE);
    ck_assert_int_eq(decode_str(s, &m, &e), CP_EINVAL);
    ck_assert_str_eq(e.target, "sessions");
    ck_assert_ptr_nonnull(strstr(e.message, "hello: sessions has 1025 captures, more than 1024"));
    free(s);
    /* too many in one list */
    s = many_sessions(0, PROTO_MAX_SESSIONS + 1, 0);
    ck_assert_int_eq(decode_str(s, &m, &e), CP_EINVAL);
    ck_assert_str_eq(e.target, "sessions.finished");
    ck_assert_ptr_nonnull(strstr(e.message, "has 1025 entries, more than 1024"));
    free(s);

    s = many_sessions(PROTO_MAX_SESSIONS, 0, 1);
    decode_ok(s, &m);
    ck_assert_uint_eq(m.welcome.n_stop, PROTO_MAX_SESSIONS);
    proto_msg_clear(&m);
    free(s);
    s = many_sessions(PROTO_MAX_SESSIONS + 1, 0, 1);
    ck_assert_int_eq(decode_str(s, &m, &e), CP_EINVAL);
    ck_assert_str_eq(e.target, "stop");
    free(s);
}
END_TEST

/* What a peer must be able to say fits in one message, next to generous informational lists. */
START_TEST(largest_required_content_fits)
{
    struct proto_msg m;
    make_hello(&m);
    free(m.hello.sessions);
    free(m.hello.interfaces);
    m.hello.n_protocols = PROTO_MAX_PROTOCOLS;
    for (int i = 0; i < PROTO_MAX_PROTOCOLS; i++)
        m.hello.protocols[i] = INT_MAX - i;
    memset(m.hello.agent_version, '"', PROTO_AGENT_VERSION_MAX); /* escapes double the size */
    memset(m.hello.hostname, '\\', PROTO_HOSTNAME_MAX);
    memset(m.hello.os, '"', PROTO_OS_MAX);
    m.hello.unacked_from = INT64_MAX;
    m.hello.n_sessions = PROTO_MAX_SESSIONS;
    m.hello.sessions = calloc(PROTO_MAX_SESSIONS, sizeof(*m.hello.sessions));
    ck_assert_ptr_nonnull(m.hello.sessions);
    for (size_t i = 0; i < PROTO_MAX_SESSIONS; i++) {
        snprintf(m.hello.sessions[i].capture_id, PROTO_ID_SIZE, "%08zx-d9cb-469f-a165-70867728950e",
                 i);
        m.hello.sessions[i].state = (i % 3) ? PROTO_SESSION_FINISHED : PROTO_SESSION_RUNNING;
    }
    /* 8 NICs with 8 full-length IPv6 addresses each */
    m.hello.n_interfaces = 8;
    m.hello.interfaces = calloc(8, sizeof(*m.hello.interfaces));
    ck_assert_ptr_nonnull(m.hello.interfaces);
    for (size_t i = 0; i < 8; i++) {
        memset(m.hello.interfaces[i].name, 'n', PROTO_IFNAME_MAX);
        m.hello.interfaces[i].n_addresses = 8;
        for (size_t j = 0; j < 8; j++)
            copy(m.hello.interfaces[i].addresses[j], PROTO_ADDRESS_MAX + 1,
                 "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
    }
    char *s = proto_encode(&m);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_lt(strlen(s), PROTO_MAX_MESSAGE);
    struct proto_msg b;
    decode_ok(s, &b);
    ck_assert_uint_eq(b.hello.n_sessions, PROTO_MAX_SESSIONS);
    free(s);
    proto_msg_clear(&b);
    proto_msg_clear(&m);

    /* a welcome stopping every session */
    make_welcome(&m);
    free(m.welcome.stop);
    m.welcome.n_stop = PROTO_MAX_SESSIONS;
    m.welcome.stop = calloc(PROTO_MAX_SESSIONS, sizeof(*m.welcome.stop));
    ck_assert_ptr_nonnull(m.welcome.stop);
    for (size_t i = 0; i < PROTO_MAX_SESSIONS; i++)
        snprintf(m.welcome.stop[i], PROTO_ID_SIZE, "%08zx-d9cb-469f-a165-70867728950e", i);
    m.welcome.last_applied_seq = INT64_MAX;
    s = proto_encode(&m);
    ck_assert_ptr_nonnull(s);
    free(s);
    proto_msg_clear(&m);
}
END_TEST

/* A reply with an unknown member nested depth arrays deep. */
static char *deep_reply(size_t depth)
{
    struct dynbuf b;
    dynbuf_init(&b, PROTO_MAX_MESSAGE);
    dynbuf_addstr(&b, "{\"type\":\"reply\",\"seq\":1,\"ok\":true,\"x\":");
    for (size_t i = 0; i < depth; i++)
        dynbuf_addstr(&b, "[");
    for (size_t i = 0; i < depth; i++)
        dynbuf_addstr(&b, "]");
    dynbuf_addstr(&b, "}");
    char *s = dynbuf_take(&b);
    ck_assert_ptr_nonnull(s);
    return s;
}

START_TEST(nesting_depth_is_bounded)
{
    /* jansson stops at JSON_PARSER_MAX_DEPTH (2048), so a 64 KiB message cannot recurse deeper */
    struct proto_msg m;
    struct cp_error e = {{0}, {0}, {0}};
    char *s = deep_reply(1000);
    decode_ok(s, &m);
    proto_msg_clear(&m);
    free(s);
    s = deep_reply(30000);
    ck_assert_uint_le(strlen(s), PROTO_MAX_MESSAGE);
    ck_assert_int_eq(decode_str(s, &m, &e), CP_EINVAL);
    ck_assert_ptr_nonnull(strstr(e.message, "not valid JSON"));
    free(s);
}
END_TEST

/* A hello with n interfaces of k addresses each, or a completed with n files. */
static char *many_items(size_t n, size_t k, int files)
{
    struct dynbuf b;
    dynbuf_init(&b, 1 << 20);
    dynbuf_addstr(&b, files ? DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":["
                            : HELLO_OK ",\"interfaces\":[");
    for (size_t i = 0; i < n; i++) {
        if (files) {
            dynbuf_printf(&b, "%s{\"path\":\"/var/captures/f%zu.cap\",\"bytes\":%zu}", i ? "," : "",
                          i, i);
            continue;
        }
        dynbuf_printf(&b, "%s{\"name\":\"eth%zu\",\"addresses\":[", i ? "," : "", i);
        for (size_t j = 0; j < k; j++)
            dynbuf_printf(&b, "%s\"10.0.%zu.%zu\"", j ? "," : "", i, j);
        dynbuf_addstr(&b, "]}");
    }
    dynbuf_addstr(&b, "]}");
    char *s = dynbuf_take(&b);
    ck_assert_ptr_nonnull(s);
    return s;
}

START_TEST(array_limits)
{
    struct proto_msg m;
    struct cp_error e = {{0}, {0}, {0}};
    char *s = many_items(PROTO_MAX_INTERFACES, 1, 0);
    decode_ok(s, &m);
    ck_assert_uint_eq(m.hello.n_interfaces, PROTO_MAX_INTERFACES);
    proto_msg_clear(&m);
    free(s);
    s = many_items(PROTO_MAX_INTERFACES + 1, 1, 0);
    ck_assert_int_eq(decode_str(s, &m, &e), CP_EINVAL);
    ck_assert_str_eq(e.target, "interfaces");
    free(s);

    s = many_items(2, PROTO_MAX_ADDRESSES, 0);
    decode_ok(s, &m);
    ck_assert_uint_eq(m.hello.interfaces[1].n_addresses, PROTO_MAX_ADDRESSES);
    ck_assert_str_eq(m.hello.interfaces[1].addresses[31], "10.0.1.31");
    proto_msg_clear(&m);
    free(s);
    s = many_items(2, PROTO_MAX_ADDRESSES + 1, 0);
    ck_assert_int_eq(decode_str(s, &m, &e), CP_EINVAL);
    ck_assert_str_eq(e.target, "interfaces[0].addresses");
    free(s);

    s = many_items(PROTO_MAX_FILES, 0, 1);
    decode_ok(s, &m);
    ck_assert_uint_eq(m.completed.n_files, PROTO_MAX_FILES);
    ck_assert_str_eq(m.completed.files[255].path, "/var/captures/f255.cap");
    proto_msg_clear(&m);
    free(s);
    s = many_items(PROTO_MAX_FILES + 1, 0, 1);
    ck_assert_int_eq(decode_str(s, &m, &e), CP_EINVAL);
    ck_assert_str_eq(e.target, "files");
    free(s);
}
END_TEST

START_TEST(string_limits)
{
    struct proto_msg m;
    struct cp_error e = {{0}, {0}, {0}};
    struct dynbuf b;
    static const struct {
        const char *head, *tail, *target;
        size_t max;
    } cases[] = {
        {HELLO_HEAD ",\"unackedFrom\":1,\"hostname\":\"", "\"}", "hostname", PROTO_HOSTNAME_MAX},
        {"{\"type\":\"hello\",\"protocols\":[1],\"hostname\":\"h\",\"os\":\"linux\","
         "\"unackedFrom\":1,\"agentVersion\":\"",
         "\"}", "agentVersion", PROTO_AGENT_VERSION_MAX},
        {"{\"type\":\"hello\",\"protocols\":[1],\"hostname\":\"h\",\"agentVersion\":\"1\","
         "\"unackedFrom\":1,\"os\":\"",
         "\"}", "os", PROTO_OS_MAX},
        {HELLO_OK ",\"interfaces\":[{\"name\":\"", "\"}]}", "interfaces[0].name", PROTO_IFNAME_MAX},
        {ERR_HEAD ",\"code\":\"InternalError\",\"message\":\"", "\"}", "message",
         PROTO_MESSAGE_MAX},
        {ACK_HEAD ",\"ok\":false,\"code\":\"InternalError\",\"message\":\"", "\"}", "message",
         PROTO_MESSAGE_MAX},
        {REPLY_HEAD ",\"ok\":false,\"code\":\"", "\"}", "code", PROTO_CODE_MAX},
        {DONE_HEAD ",\"stopReason\":\"Manual\",\"files\":[{\"bytes\":1,\"path\":\"", "\"}]}",
         "files[0].path", PROTO_PATH_MAX},
        {HELLO_OK ",\"identity\":{\"resourceId\":\"" VMSS_ID "\",\"instanceId\":\"", "\"}}",
         "identity.instanceId", PROTO_INSTANCE_ID_MAX},
    };
    for (size_t i = 0; i < COUNT(cases); i++) {
        for (size_t extra = 0; extra <= 1; extra++) {
            dynbuf_init(&b, 1 << 16);
            dynbuf_addstr(&b, cases[i].head);
            for (size_t j = 0; j < cases[i].max + extra; j++)
                dynbuf_addstr(&b, "a");
            dynbuf_addstr(&b, cases[i].tail);
            char *s = dynbuf_take(&b);
            ck_assert_ptr_nonnull(s);
            if (!extra) {
                decode_ok(s, &m);
                proto_msg_clear(&m);
            } else {
                ck_assert_int_eq(decode_str(s, &m, &e), CP_EINVAL);
                ck_assert_str_eq(e.target, cases[i].target);
                ck_assert_ptr_nonnull(strstr(e.message, "is longer than"));
            }
            free(s);
        }
    }
}
END_TEST

/* ---- encode refusals ---- */

START_TEST(encode_refuses_invalid_messages)
{
    struct proto_msg m;
    memset(&m, 0, sizeof(m));
    ck_assert_ptr_null(proto_encode(&m)); /* PROTO_NONE */
    ck_assert_ptr_null(proto_encode(NULL));
    m.type = (enum proto_type)42;
    ck_assert_ptr_null(proto_encode(&m));

    make_stop(&m);
    m.stop.reason = PROTO_STOP_NONE;
    ck_assert_ptr_null(proto_encode(&m));
    make_stop(&m);
    m.stop.capture_id[0] = 'X';
    ck_assert_ptr_null(proto_encode(&m));
    make_stop(&m);
    memset(m.stop.command_id, 'a', sizeof(m.stop.command_id)); /* no NUL in the field */
    ck_assert_ptr_null(proto_encode(&m));

    make_ack_fail(&m);
    m.ack.code = PROTO_PC_NONE;
    ck_assert_ptr_null(proto_encode(&m));
    make_ack_ok(&m);
    m.ack.seq = 0;
    ck_assert_ptr_null(proto_encode(&m));
    make_ack_ok(&m);
    m.ack.at = -5;
    ck_assert_ptr_null(proto_encode(&m));

    make_progress(&m);
    m.progress.drops = -1;
    ck_assert_ptr_null(proto_encode(&m));

    make_reply_fail(&m);
    m.reply.code[0] = '\0';
    ck_assert_ptr_null(proto_encode(&m));
    make_error(&m);
    memset(m.error.message, 'x', sizeof(m.error.message));
    ck_assert_ptr_null(proto_encode(&m));
    make_error(&m);
    copy(m.error.message, sizeof(m.error.message), "bad utf-8 \xc3");
    ck_assert_ptr_null(proto_encode(&m));

    make_welcome(&m);
    m.welcome.heartbeat_seconds = 0;
    ck_assert_ptr_null(proto_encode(&m));
    m.welcome.heartbeat_seconds = 15;
    m.welcome.n_stop = PROTO_MAX_SESSIONS + 1;
    ck_assert_ptr_null(proto_encode(&m));
    m.welcome.n_stop = 2;
    proto_msg_clear(&m);
    memset(&m, 0, sizeof(m));
    m.type = PROTO_WELCOME;
    m.welcome.protocol = 1;
    m.welcome.heartbeat_seconds = 15;
    m.welcome.n_stop = 1; /* but no array */
    ck_assert_ptr_null(proto_encode(&m));
}
END_TEST

START_TEST(encode_refuses_bad_hello)
{
    struct proto_msg m;
    make_hello(&m);
    m.hello.n_protocols = PROTO_MAX_PROTOCOLS + 1;
    ck_assert_ptr_null(proto_encode(&m));
    m.hello.n_protocols = 0;
    ck_assert_ptr_null(proto_encode(&m));
    m.hello.n_protocols = 1;
    m.hello.interfaces[0].n_addresses = PROTO_MAX_ADDRESSES + 1;
    ck_assert_ptr_null(proto_encode(&m));
    m.hello.interfaces[0].n_addresses = 1;
    copy(m.hello.interfaces[0].addresses[0], PROTO_ADDRESS_MAX + 1, "eth0");
    ck_assert_ptr_null(proto_encode(&m));
    copy(m.hello.interfaces[0].addresses[0], PROTO_ADDRESS_MAX + 1, "::1");
    m.hello.sessions[1].state = PROTO_SESSION_NONE;
    ck_assert_ptr_null(proto_encode(&m));
    m.hello.sessions[1].state = PROTO_SESSION_RUNNING;
    m.hello.hostname[0] = '\0';
    ck_assert_ptr_null(proto_encode(&m));
    copy(m.hello.hostname, sizeof(m.hello.hostname), "vm1");
    char *s = proto_encode(&m); /* repaired, it encodes */
    ck_assert_ptr_nonnull(s);
    free(s);
    proto_msg_clear(&m);
}
END_TEST

START_TEST(encode_refuses_bad_spec_and_name)
{
    static const char *const bad[] = {"", "[]", "5", "{", "{\"a\":1,\"a\":2}", "{} {}", "null"};
    struct proto_msg m;
    make_start(&m);
    for (size_t i = 0; i < COUNT(bad); i++) {
        free(m.start.spec);
        m.start.spec = xstrdup(bad[i]);
        ck_assert_msg(proto_encode(&m) == NULL, "spec %s encoded", bad[i]);
    }
    free(m.start.spec);
    m.start.spec = NULL;
    ck_assert_ptr_null(proto_encode(&m));
    m.start.spec = xstrdup("{}");
    copy(m.start.name, sizeof(m.start.name), "pc/1");
    ck_assert_ptr_null(proto_encode(&m));
    proto_msg_clear(&m);
}
END_TEST

START_TEST(encode_refuses_over_message_limit)
{
    /* 256 files with 2048-byte paths: every field in bounds, the whole far over 64 KiB */
    struct proto_msg m;
    memset(&m, 0, sizeof(m));
    m.type = PROTO_COMPLETED;
    m.completed.seq = 9;
    copy(m.completed.capture_id, PROTO_ID_SIZE, ID1);
    m.completed.stop_reason = PROTO_STOP_MANUAL;
    m.completed.n_files = PROTO_MAX_FILES;
    m.completed.files = calloc(PROTO_MAX_FILES, sizeof(*m.completed.files));
    ck_assert_ptr_nonnull(m.completed.files);
    for (size_t i = 0; i < PROTO_MAX_FILES; i++) {
        m.completed.files[i].path = malloc(PROTO_PATH_MAX + 1);
        ck_assert_ptr_nonnull(m.completed.files[i].path);
        memset(m.completed.files[i].path, 'p', PROTO_PATH_MAX);
        m.completed.files[i].path[PROTO_PATH_MAX] = '\0';
    }
    ck_assert_ptr_null(proto_encode(&m));
    m.completed.n_files = 20; /* 20 x 2 KiB fits */
    char *s = proto_encode(&m);
    ck_assert_ptr_nonnull(s);
    free(s);
    m.completed.n_files = PROTO_MAX_FILES;
    proto_msg_clear(&m);
    ck_assert_int_eq(m.type, PROTO_NONE);
}
END_TEST

START_TEST(clear_and_seq)
{
    proto_msg_clear(NULL);
    struct proto_msg m;
    memset(&m, 0, sizeof(m));
    proto_msg_clear(&m);
    ck_assert_int_eq(proto_msg_seq(&m), 0);
    for (size_t i = 0; i < COUNT(makers); i++) {
        makers[i](&m);
        int64_t seq = proto_msg_seq(&m);
        switch (m.type) {
        case PROTO_HELLO:
        case PROTO_WELCOME:
        case PROTO_START:
        case PROTO_STOP:
            ck_assert_int_eq(seq, 0);
            break;
        default:
            ck_assert_int_ge(seq, 18);
            break;
        }
        proto_msg_clear(&m);
        ck_assert_int_eq(m.type, PROTO_NONE);
        proto_msg_clear(&m); /* twice is harmless */
    }
}
END_TEST

/* ---- negotiation ---- */

START_TEST(negotiate)
{
    const int one[] = {1};
    const int newer_first[] = {3, 2, 1};
    const int only_newer[] = {2, 3};
    const int junk[] = {0, -1, INT_MIN, INT_MAX};
    const int repeated[] = {1, 1, 5, 1};
    ck_assert_int_eq(PROTO_VERSION, 1);
    ck_assert_int_eq(proto_negotiate(one, 1), 1);
    ck_assert_int_eq(proto_negotiate(newer_first, 3), 1);
    ck_assert_int_eq(proto_negotiate(only_newer, 2), -1);
    ck_assert_int_eq(proto_negotiate(junk, 4), -1);
    ck_assert_int_eq(proto_negotiate(repeated, 4), 1);
    ck_assert_int_eq(proto_negotiate(one, 0), -1);
    ck_assert_int_eq(proto_negotiate(NULL, 0), -1);
    ck_assert_int_eq(proto_negotiate(NULL, 3), -1);

    /* what a server does with a decoded hello */
    struct proto_msg m;
    make_hello(&m);
    ck_assert_int_eq(proto_negotiate(m.hello.protocols, m.hello.n_protocols), 1);
    proto_msg_clear(&m);
}
END_TEST

/* ---- mutation ---- */

/* xorshift64*: a fixed-seed generator, so a failure replays exactly. */
static uint64_t rng_state = UINT64_C(0x9e3779b97f4a7c15);

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * UINT64_C(0x2545f4914f6cdd1d);
}

static size_t rng_below(size_t n)
{
    return n ? (size_t)(rng() % n) : 0;
}

#define MUTATIONS 20000

/* One to four edits of s (len bytes) in buf (room for 4 * len + 16 bytes); returns the length. */
static size_t mutate(const char *s, size_t len, char *buf)
{
    static const char tokens[] = "{}[]\":,-01e.\\tfnu \x7f\xc3\xff";
    memcpy(buf, s, len);
    size_t n = len, edits = 1 + rng_below(4);
    for (size_t k = 0; k < edits && n > 0; k++) {
        size_t at = rng_below(n);
        switch (rng_below(6)) {
        case 0: /* flip one bit */
            buf[at] = (char)(buf[at] ^ (1u << rng_below(8)));
            break;
        case 1: /* any byte */
            buf[at] = (char)rng_below(256);
            break;
        case 2: /* a JSON-ish byte */
            buf[at] = tokens[rng_below(sizeof(tokens) - 1)];
            break;
        case 3: /* truncate */
            n = at;
            break;
        case 4: { /* duplicate a span in place (doubles it) */
            size_t span = 1 + rng_below(n - at < 16 ? n - at : 16);
            memmove(buf + at + span, buf + at, n - at);
            n += span;
            break;
        }
        default: { /* delete a span */
            size_t span = 1 + rng_below(n - at < 16 ? n - at : 16);
            memmove(buf + at, buf + at + span, n - at - span);
            n -= span;
            break;
        }
        }
    }
    return n;
}

START_TEST(mutated_messages_never_crash)
{
    char *seeds[COUNT(makers) + COUNT(doc_examples)];
    size_t nseeds = 0;
    for (size_t i = 0; i < COUNT(makers); i++) {
        struct proto_msg m;
        makers[i](&m);
        seeds[nseeds] = proto_encode(&m);
        ck_assert_ptr_nonnull(seeds[nseeds]);
        nseeds++;
        proto_msg_clear(&m);
    }
    for (size_t i = 0; i < COUNT(doc_examples); i++)
        seeds[nseeds++] = xstrdup(doc_examples[i]);

    size_t accepted = 0, n_refused = 0;
    for (int it = 0; it < MUTATIONS; it++) {
        const char *seed = seeds[rng_below(nseeds)];
        size_t len = strlen(seed);
        char *work = malloc(4 * len + 16);
        ck_assert_ptr_nonnull(work);
        size_t n = mutate(seed, len, work);
        /* an exact-size copy, so ASan sees any read past the end */
        char *exact = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(exact);
        memcpy(exact, work, n);
        free(work);

        struct proto_msg m;
        struct cp_error e = {{0}, {0}, {0}};
        enum cp_err err = proto_decode(exact, n, &m, &e);
        ck_assert_msg(err == CP_OK || err == CP_EINVAL, "iteration %d: %s", it, cp_err_name(err));
        if (err == CP_OK) {
            /* whatever decodes re-encodes, and that text is a fixed point */
            accepted++;
            char *s1 = proto_encode(&m);
            ck_assert_msg(s1 != NULL, "iteration %d: decoded but does not encode", it);
            struct proto_msg m2;
            decode_ok(s1, &m2);
            char *s2 = proto_encode(&m2);
            ck_assert_ptr_nonnull(s2);
            ck_assert_str_eq(s1, s2);
            free(s1);
            free(s2);
            proto_msg_clear(&m2);
            proto_msg_clear(&m);
        } else {
            n_refused++;
            ck_assert_str_eq(e.code, "InvalidMessage");
            ck_assert_uint_gt(strlen(e.message), 0);
        }
        free(exact);
    }
    /* the mutator must exercise both paths to mean anything */
    ck_assert_uint_gt(accepted, 100);
    ck_assert_uint_gt(n_refused, MUTATIONS / 2);
    for (size_t i = 0; i < nseeds; i++)
        free(seeds[i]);
}
END_TEST

static Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");

    TCase *tn = tcase_create("names");
    tcase_add_test(tn, names_round_trip);
    tcase_add_test(tn, names_are_the_documented_ones);
    tcase_add_test(tn, names_refuse_none_range_case_and_null);
    tcase_add_test(tn, negotiate);
    suite_add_tcase(s, tn);

    TCase *tr = tcase_create("round_trip");
    tcase_add_test(tr, round_trip_hello);
    tcase_add_test(tr, round_trip_hello_identity);
    tcase_add_test(tr, round_trip_welcome);
    tcase_add_test(tr, round_trip_start_keeps_spec);
    tcase_add_test(tr, start_spec_is_compacted);
    tcase_add_test(tr, round_trip_stop);
    tcase_add_test(tr, round_trip_ack);
    tcase_add_test(tr, ack_filter);
    tcase_add_test(tr, round_trip_progress);
    tcase_add_test(tr, round_trip_completed);
    tcase_add_test(tr, round_trip_error);
    tcase_add_test(tr, round_trip_reply);
    tcase_add_test(tr, round_trip_blob_request_and_grant);
    tcase_add_test(tr, round_trip_empty_arrays_and_bounds);
    tcase_add_loop_test(tr, doc_examples_decode, 0, (int)COUNT(doc_examples));
    tcase_add_test(tr, unknown_members_are_ignored);
    tcase_add_test(tr, message_text_may_hold_anything_utf8);
    tcase_add_test(tr, clear_and_seq);
    suite_add_tcase(s, tr);

    TCase *tf = tcase_create("refusals");
    tcase_add_loop_test(tf, refused, 0, (int)COUNT(refusals));
    tcase_add_test(tf, refused_without_error_detail);
    tcase_add_test(tf, empty_and_binary_input);
    tcase_add_test(tf, message_size_limit);
    tcase_add_test(tf, session_count_limit);
    tcase_add_test(tf, largest_required_content_fits);
    tcase_add_test(tf, nesting_depth_is_bounded);
    tcase_add_test(tf, array_limits);
    tcase_add_test(tf, string_limits);
    suite_add_tcase(s, tf);

    TCase *te = tcase_create("encode");
    tcase_add_test(te, encode_refuses_invalid_messages);
    tcase_add_test(te, encode_refuses_bad_hello);
    tcase_add_test(te, encode_refuses_bad_spec_and_name);
    tcase_add_test(te, encode_refuses_over_message_limit);
    suite_add_tcase(s, te);

    TCase *tm = tcase_create("mutation");
    tcase_set_timeout(tm, 60);
    tcase_add_test(tm, mutated_messages_never_crash);
    suite_add_tcase(s, tm);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
