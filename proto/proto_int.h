/*
 * proto/ internals shared by its files: the typed member readers that enforce the value rules
 * of proto.h, and the tree-level decoder that proto_decode and proto_encode both run (so that
 * encode never produces what decode would refuse). Not for use outside proto/.
 */
#ifndef NW_PROTO_PROTO_INT_H
#define NW_PROTO_PROTO_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "proto/proto.h"

#define PROTO_TARGET_MAX 96 /* longest member path we build, "interfaces[63].addresses[31]" */

/* What a reader needs to word an error: the message type and the caller's detail. */
struct proto_rd {
    const char *type; /* wire name of the message being read, or "message" */
    struct cp_error *e;
};

/* Flags for proto_rd_str. */
#define PROTO_F_REQUIRED 0x1 /* absent is an error (otherwise dst is left as is) */
#define PROTO_F_NAME     0x2 /* 1..max bytes, no control characters (else: text, 0..max) */

/*
 * Each reader looks up member key of obj (borrowed) and names it "<prefix>.<key>" (or "<key>"
 * when prefix is "") in errors. Results are written only on success. Every reader returns
 * CP_OK or CP_EINVAL (rd->e filled).
 */

/* Writes "<type>: <target> <fmt...>" and target to rd->e; returns CP_EINVAL. */
enum cp_err proto_rd_fail(const struct proto_rd *rd, const char *target, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Joins prefix and key into buf (size n): "key", "prefix.key"; truncated if too long. */
const char *proto_rd_path(char *buf, size_t n, const char *prefix, const char *key);

/* A JSON integer in min..max; absent and optional (required == 0) leaves *out as is. */
enum cp_err proto_rd_int(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                         const char *key, int required, int64_t min, int64_t max,
                         int64_t *out) CP_MUST_USE;

/* A required JSON boolean, as 0 or 1. */
enum cp_err proto_rd_bool(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                          const char *key, int *out) CP_MUST_USE;

/* A string that fits dst (size dstsz, so at most dstsz - 1 bytes); flags PROTO_F_*. */
enum cp_err proto_rd_str(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                         const char *key, unsigned flags, char *dst, size_t dstsz) CP_MUST_USE;

/* The same rules for a value that is not an object member (an array element); target names
 * it. v may be NULL (absent). */
enum cp_err proto_rd_str_value(const struct proto_rd *rd, const json_t *v, const char *target,
                               unsigned flags, char *dst, size_t dstsz) CP_MUST_USE;

/* A required lower-case GUID into dst (PROTO_ID_SIZE bytes). */
enum cp_err proto_rd_id(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                        const char *key, char *dst) CP_MUST_USE;
enum cp_err proto_rd_id_value(const struct proto_rd *rd, const json_t *v, const char *target,
                              char *dst) CP_MUST_USE;

/* An array of at most max elements: *out borrowed from obj; absent and optional gives NULL. */
enum cp_err proto_rd_array(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                           const char *key, int required, size_t max,
                           const json_t **out) CP_MUST_USE;

/* A JSON object (required): *out borrowed from obj. */
enum cp_err proto_rd_object(const struct proto_rd *rd, const json_t *obj, const char *prefix,
                            const char *key, const json_t **out) CP_MUST_USE;

/* 1 when s is 36 characters of lower-case 8-4-4-4-12 hex GUID, else 0. */
int proto_is_id(const char *s);

/*
 * Reads the message object root (borrowed) into *out (caller-owned, written only on success;
 * owns what it points to then). Returns CP_OK, CP_EINVAL or CP_ENOMEM as proto_decode.
 */
enum cp_err proto_from_json(const json_t *root, struct proto_msg *out,
                            struct cp_error *e) CP_MUST_USE;

#endif
