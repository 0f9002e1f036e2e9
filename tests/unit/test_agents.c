/*
 * Check suite for the agent registry: core/agents.c (and so db/agent.c and the 0002 migration)
 * on a throwaway store; token hashing against a known SHA-256 vector; and, when
 * NW_NETWATCHD names the built daemon, `netwatchd agent add|revoke|list` end to end.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/token_hash.h"
#include "core/agents.h"

#define SUB_A "0b7c4a4e-1111-4a4a-8a8a-000000000001"
#define SUB_B "0b7c4a4e-2222-4b4b-9b9b-000000000002"
#define VM1                                                                                        \
    "/subscriptions/" SUB_A "/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1"
#define VM2                                                                                        \
    "/subscriptions/" SUB_A "/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm2"
#define SS1                                                                                        \
    "/subscriptions/" SUB_A "/resourceGroups/rg1/providers/Microsoft.Compute/"                     \
    "virtualMachineScaleSets/ss1"
#define VMB                                                                                        \
    "/subscriptions/" SUB_B "/resourceGroups/rgb/providers/Microsoft.Compute/virtualMachines/vmb"
#define STORAGE                                                                                    \
    "/subscriptions/" SUB_A "/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/st1"

#define TOKEN_1 "nwa_1111111111111111111111111111111111111111111111111111111111111111"
#define TOKEN_2 "nwa_2222222222222222222222222222222222222222222222222222222222222222"
#define TOKEN_3 "nwa_3333333333333333333333333333333333333333333333333333333333333333"
#define TOKEN_4 "nwa_4444444444444444444444444444444444444444444444444444444444444444"

static struct db_store *store;

static void open_store(void)
{
    struct db_store_options o = {.path = ":memory:", .readers = 2, .busy_timeout_ms = 0};
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(db_store_open(&o, &store, &e), CP_OK);
}

static void close_store(void)
{
    db_store_close(store);
    store = NULL;
}

/*
 * Files go under one scratch directory that main() makes before the tests and removes, whatever
 * is in it, after them: a failing test (its forked child exits at the failed assertion) leaves
 * nothing behind in /tmp.
 */
static char scratch[64];

/* A fresh directory under scratch, its path in out. */
static void scratch_dir(char *out, size_t n)
{
    ck_assert_int_lt(snprintf(out, n, "%s/t-XXXXXX", scratch), (int)n);
    ck_assert_ptr_nonnull(mkdtemp(out));
}

static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;
    while (d && (de = readdir(d))) {
        char p[512];
        struct stat st;
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
            snprintf(p, sizeof(p), "%s/%s", path, de->d_name) >= (int)sizeof(p))
            continue;
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(p);
        else
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(path);
}

/* Registers and returns the new agent's id in id (37 bytes). */
static void add(const char *rid, const char *instance, const char *token, char *id)
{
    struct db_agent a;
    struct cp_error e = {{0}, {0}, {0}};
    enum cp_err err = core_agent_register(store, rid, instance, token, &a, &e);
    ck_assert_msg(err == CP_OK, "register %s: %s %s", rid, cp_err_name(err), e.message);
    if (id)
        memcpy(id, a.id, DB_AGENT_ID_LEN);
    db_agent_clear(&a);
}

static enum cp_err count_each(const struct db_agent *a, void *arg)
{
    (void)a;
    (*(int *)arg)++;
    return CP_OK;
}

/* ---- token hashing ---- */

START_TEST(token_hash_known_vector)
{
    char hex[CORE_TOKEN_HEX_LEN];
    ck_assert_int_eq(core_token_hash_hex("abc", 3, hex), 0);
    ck_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

/* ---- register ---- */

START_TEST(token_format)
{
    ck_assert_int_eq(core_agent_token_well_formed(TOKEN_1), 1);
    ck_assert_int_eq(core_agent_token_well_formed(NULL), 0);
    ck_assert_int_eq(core_agent_token_well_formed("nwa_"), 0);
    ck_assert_int_eq(
        core_agent_token_well_formed(
            "nwa_111111111111111111111111111111111111111111111111111111111111111"), /* 63 */
        0);
    ck_assert_int_eq(
        core_agent_token_well_formed(
            "nwa_11111111111111111111111111111111111111111111111111111111111111111"), /* 65 */
        0);
    ck_assert_int_eq(
        core_agent_token_well_formed(
            "nwa_111111111111111111111111111111111111111111111111111111111111111A"), /* upper */
        0);
    ck_assert_int_eq(
        core_agent_token_well_formed(
            "nw_11111111111111111111111111111111111111111111111111111111111111111"), /* API */
        0);
}
END_TEST

START_TEST(register_vm)
{
    open_store();
    struct db_agent a;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(core_agent_register(store, VM1, NULL, TOKEN_1, &a, &e), CP_OK);
    ck_assert_int_eq(armid_is_guid(a.id), 1);
    ck_assert_str_eq(a.resource_id, VM1);
    ck_assert_str_eq(a.instance_id, "");
    ck_assert_int_eq(a.revoked, 0);
    ck_assert_int_eq(a.connected, 0);
    ck_assert_int_gt(a.created_ms, 0);
    ck_assert_int_eq(a.last_seen_ms, 0);
    ck_assert_int_eq(a.last_applied_seq, 0);
    ck_assert_str_eq(a.addresses_json, "[]");

    /* As read back from the store; the given casing is kept. */
    struct db_agent got;
    ck_assert_int_eq(core_agent_get(store, NULL, a.id, &got, &e), CP_OK);
    ck_assert_str_eq(got.id, a.id);
    ck_assert_str_eq(got.resource_id, VM1);
    ck_assert_int_eq(got.created_ms, a.created_ms);
    db_agent_clear(&got);
    db_agent_clear(&a);

    /* "" instance is no instance, and a trailing '/' is the same VM. */
    ck_assert_int_eq(core_agent_register(store, VM2 "/", "", TOKEN_2, &a, &e), CP_OK);
    ck_assert_str_eq(a.resource_id, VM2);
    db_agent_clear(&a);
    close_store();
}
END_TEST

START_TEST(register_duplicate_refused)
{
    open_store();
    char id[DB_AGENT_ID_LEN];
    add(VM1, NULL, TOKEN_1, id);
    struct db_agent a;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(core_agent_register(store, VM1, NULL, TOKEN_2, &a, &e), CP_EEXIST);
    ck_assert_str_eq(e.code, "AgentAlreadyRegistered");
    ck_assert_ptr_nonnull(strstr(e.message, id)); /* names the agent to revoke */
    /* The same VM in other casings (ARM ids are case-insensitive) and with a trailing '/'. */
    char upper[sizeof(VM1)];
    for (size_t i = 0; i < sizeof(VM1); i++)
        upper[i] = (char)(VM1[i] >= 'a' && VM1[i] <= 'z' ? VM1[i] - 'a' + 'A' : VM1[i]);
    ck_assert_int_eq(core_agent_register(store, upper, NULL, TOKEN_2, &a, &e), CP_EEXIST);
    ck_assert_int_eq(core_agent_register(store, VM1 "/", NULL, TOKEN_2, &a, &e), CP_EEXIST);

    /* Scale-set instances: one agent per instance, instance ids case-insensitive. */
    add(SS1, "inst-a", TOKEN_3, NULL);
    add(SS1, "0", TOKEN_4, NULL);
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(core_agent_register(store, SS1, "INST-A", TOKEN_2, &a, &e), CP_EEXIST);
    ck_assert_str_eq(e.code, "AgentAlreadyRegistered");
    close_store();
}
END_TEST

START_TEST(register_invalid)
{
    open_store();
    struct db_agent a;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(core_agent_register(store, STORAGE, NULL, TOKEN_1, &a, &e), CP_EINVAL);
    ck_assert_str_eq(e.code, "InvalidResourceId");
    ck_assert_int_eq(core_agent_register(store, VM1, "3", TOKEN_1, &a, &e), CP_EINVAL);
    ck_assert_str_eq(e.code, "InvalidInstanceId");
    ck_assert_int_eq(core_agent_register(store, SS1, NULL, TOKEN_1, &a, &e), CP_EINVAL);
    ck_assert_str_eq(e.code, "MissingInstanceId");
    ck_assert_int_eq(core_agent_register(store, SS1, "", TOKEN_1, &a, &e), CP_EINVAL);
    ck_assert_int_eq(core_agent_register(store, SS1, "a/b", TOKEN_1, &a, &e), CP_EINVAL);
    ck_assert_int_eq(core_agent_register(store, SS1, "-1", TOKEN_1, &a, &e), CP_EINVAL);
    ck_assert_int_eq(core_agent_register(store, "vm1", NULL, TOKEN_1, &a, &e), CP_EINVAL);
    ck_assert_int_eq(core_agent_register(store, "", NULL, TOKEN_1, &a, &e), CP_EINVAL);
    ck_assert_int_eq(core_agent_register(store, NULL, NULL, TOKEN_1, &a, &e), CP_EINVAL);
    ck_assert_int_eq(core_agent_register(store, VM1 "/extra", NULL, TOKEN_1, &a, &e), CP_EINVAL);
    ck_assert_int_eq(core_agent_register(store, VM1, NULL, "secret", &a, &e), CP_EINVAL);
    ck_assert_str_eq(e.code, "InvalidToken");
    /* Nothing was recorded. */
    int n = 0;
    ck_assert_int_eq(core_agent_list(store, NULL, count_each, &n, &e), CP_OK);
    ck_assert_int_eq(n, 0);
    close_store();
}
END_TEST

/* ---- revoke, re-add ---- */

START_TEST(revoke_and_readd)
{
    open_store();
    char id[DB_AGENT_ID_LEN], id2[DB_AGENT_ID_LEN];
    add(VM1, NULL, TOKEN_1, id);
    struct db_agent a;
    struct cp_error e = {{0}, {0}, {0}};
    int was = -1;
    ck_assert_int_eq(core_agent_revoke(store, id, &a, &was, &e), CP_OK);
    ck_assert_int_eq(was, 0);
    ck_assert_int_eq(a.revoked, 1);
    ck_assert_int_gt(a.revoked_ms, 0);
    int64_t revoked_ms = a.revoked_ms;
    db_agent_clear(&a);

    /* Again: nothing changes, and it says so. Upper-case ids are the same id. */
    char upper[DB_AGENT_ID_LEN];
    for (int i = 0; i < DB_AGENT_ID_LEN; i++)
        upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 'a' + 'A' : id[i]);
    ck_assert_int_eq(core_agent_revoke(store, upper, &a, &was, &e), CP_OK);
    ck_assert_int_eq(was, 1);
    ck_assert_int_eq(a.revoked_ms, revoked_ms);
    db_agent_clear(&a);

    /* The VM can be registered again: a new agent, the old one stays revoked. */
    add(VM1, NULL, TOKEN_2, id2);
    ck_assert_str_ne(id, id2);
    ck_assert_int_eq(core_agent_get(store, NULL, id, &a, &e), CP_OK);
    ck_assert_int_eq(a.revoked, 1);
    db_agent_clear(&a);
    ck_assert_int_eq(core_agent_get(store, NULL, id2, &a, &e), CP_OK);
    ck_assert_int_eq(a.revoked, 0);
    db_agent_clear(&a);
    int n = 0;
    ck_assert_int_eq(core_agent_list(store, NULL, count_each, &n, &e), CP_OK);
    ck_assert_int_eq(n, 2);

    /* By resource id (other casing), then nothing active is left to revoke. */
    ck_assert_int_eq(core_agent_revoke_resource(store, VM1, NULL, &a, &e), CP_OK);
    ck_assert_str_eq(a.id, id2);
    ck_assert_int_eq(a.revoked, 1);
    db_agent_clear(&a);
    ck_assert_int_eq(core_agent_revoke_resource(store, VM1, NULL, NULL, &e), CP_ENOTFOUND);
    /* Re-adding after that works too: the index holds among active agents only. */
    add(VM1, NULL, TOKEN_3, NULL);

    /* Unknown and malformed ids. */
    ck_assert_int_eq(
        core_agent_revoke(store, "00000000-0000-4000-8000-000000000000", NULL, NULL, &e),
        CP_ENOTFOUND);
    ck_assert_int_eq(core_agent_revoke(store, "not-a-guid", NULL, NULL, &e), CP_ENOTFOUND);
    ck_assert_int_eq(core_agent_revoke(store, NULL, NULL, NULL, &e), CP_ENOTFOUND);
    close_store();
}
END_TEST

START_TEST(revoke_scale_set_instance)
{
    open_store();
    char a_id[DB_AGENT_ID_LEN], b_id[DB_AGENT_ID_LEN];
    add(SS1, "Inst-A", TOKEN_1, a_id);
    add(SS1, "inst-b", TOKEN_2, b_id);
    struct db_agent a;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(core_agent_revoke_resource(store, SS1, NULL, &a, &e), CP_EINVAL);
    ck_assert_int_eq(core_agent_revoke_resource(store, SS1, "inst-a", &a, &e), CP_OK);
    ck_assert_str_eq(a.id, a_id);
    ck_assert_str_eq(a.instance_id, "Inst-A"); /* as registered */
    db_agent_clear(&a);
    ck_assert_int_eq(core_agent_get(store, NULL, b_id, &a, &e), CP_OK);
    ck_assert_int_eq(a.revoked, 0);
    db_agent_clear(&a);
    close_store();
}
END_TEST

/* ---- authenticate ---- */

START_TEST(authenticate)
{
    open_store();
    char id[DB_AGENT_ID_LEN];
    add(VM1, NULL, TOKEN_1, id);
    add(SS1, "7", TOKEN_2, NULL);
    struct db_agent a;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(core_agent_authenticate(store, TOKEN_1, &a, &e), CP_OK);
    ck_assert_str_eq(a.id, id);
    ck_assert_str_eq(a.resource_id, VM1);
    db_agent_clear(&a);
    ck_assert_int_eq(core_agent_authenticate(store, TOKEN_2, &a, &e), CP_OK);
    ck_assert_str_eq(a.instance_id, "7");
    db_agent_clear(&a);

    ck_assert_int_eq(core_agent_authenticate(store, TOKEN_3, &a, &e), CP_EAUTH);
    ck_assert_str_eq(e.code, "AgentUnknown");
    ck_assert_int_eq(core_agent_authenticate(store, "", &a, &e), CP_EAUTH);
    ck_assert_int_eq(core_agent_authenticate(store, NULL, &a, &e), CP_EAUTH);
    char big[CORE_AGENT_TOKEN_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ck_assert_int_eq(core_agent_authenticate(store, big, &a, &e), CP_EAUTH);
    /* A prefix or an extension of a real token is another token. */
    ck_assert_int_eq(core_agent_authenticate(store, TOKEN_1 "0", &a, &e), CP_EAUTH);

    ck_assert_int_eq(core_agent_revoke(store, id, NULL, NULL, &e), CP_OK);
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(core_agent_authenticate(store, TOKEN_1, &a, &e), CP_EAUTH);
    ck_assert_str_eq(e.code, "AgentRevoked");
    close_store();
}
END_TEST

/* The registry survives a restart: what was registered authenticates after reopening. */
START_TEST(durable_across_reopen)
{
    char dir[128], path[160];
    scratch_dir(dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/n.db", dir);
    struct db_store_options o = {.path = path, .readers = 1, .busy_timeout_ms = 0};
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(db_store_open(&o, &store, &e), CP_OK);
    ck_assert_int_ge(db_store_schema_version(store), 2);
    char id[DB_AGENT_ID_LEN];
    add(VM1, NULL, TOKEN_1, id);
    close_store();
    ck_assert_int_eq(db_store_open(&o, &store, &e), CP_OK);
    struct db_agent a;
    ck_assert_int_eq(core_agent_authenticate(store, TOKEN_1, &a, &e), CP_OK);
    ck_assert_str_eq(a.id, id);
    db_agent_clear(&a);
    close_store();
}
END_TEST

/* ---- channel state ---- */

START_TEST(hello_seen_disconnect)
{
    open_store();
    char id[DB_AGENT_ID_LEN];
    add(VM1, NULL, TOKEN_1, id);
    const char *ifs = "[{\"name\":\"eth0\",\"addresses\":[\"10.0.0.4\",\"fe80::1\"]}]";
    struct core_agent_hello h = {"0.2.0", "linux", "vm1.internal", ifs};
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(core_agent_hello(store, id, &h, &e), CP_OK);
    struct db_agent a;
    ck_assert_int_eq(core_agent_get(store, NULL, id, &a, &e), CP_OK);
    ck_assert_int_eq(a.connected, 1);
    ck_assert_int_gt(a.connected_ms, 0);
    ck_assert_int_eq(a.last_seen_ms, a.connected_ms);
    ck_assert_str_eq(a.agent_version, "0.2.0");
    ck_assert_str_eq(a.os, "linux");
    ck_assert_str_eq(a.hostname, "vm1.internal");
    ck_assert_str_eq(a.addresses_json, ifs);
    int64_t first_seen = a.last_seen_ms;
    db_agent_clear(&a);

    nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    ck_assert_int_eq(core_agent_seen(store, id, &e), CP_OK);
    ck_assert_int_eq(core_agent_get(store, NULL, id, &a, &e), CP_OK);
    ck_assert_int_gt(a.last_seen_ms, first_seen);
    ck_assert_int_eq(a.connected_ms, first_seen);
    db_agent_clear(&a);

    ck_assert_int_eq(core_agent_disconnected(store, id, &e), CP_OK);
    ck_assert_int_eq(core_agent_get(store, NULL, id, &a, &e), CP_OK);
    ck_assert_int_eq(a.connected, 0);
    ck_assert_int_gt(a.last_seen_ms, first_seen); /* kept */
    ck_assert_str_eq(a.agent_version, "0.2.0");
    db_agent_clear(&a);

    /* A later hello without interfaces or version: unknown again, not stale. */
    struct core_agent_hello bare = {NULL, "linux", "vm1", NULL};
    ck_assert_int_eq(core_agent_hello(store, id, &bare, &e), CP_OK);
    ck_assert_int_eq(core_agent_get(store, NULL, id, &a, &e), CP_OK);
    ck_assert_str_eq(a.agent_version, "");
    ck_assert_str_eq(a.addresses_json, "[]");
    ck_assert_int_eq(a.connected, 1);
    db_agent_clear(&a);
    close_store();
}
END_TEST

START_TEST(hello_refused)
{
    open_store();
    char id[DB_AGENT_ID_LEN];
    add(VM1, NULL, TOKEN_1, id);
    struct cp_error e = {{0}, {0}, {0}};
    struct core_agent_hello esc = {"0.2.0", "linux", "vm1\x1b[2J", NULL};
    ck_assert_int_eq(core_agent_hello(store, id, &esc, &e), CP_EINVAL);
    ck_assert_str_eq(e.target, "hostname");
    char long_version[DB_AGENT_VERSION_MAX + 1];
    memset(long_version, '1', sizeof(long_version) - 1);
    long_version[sizeof(long_version) - 1] = '\0';
    struct core_agent_hello lv = {long_version, "linux", "vm1", NULL};
    ck_assert_int_eq(core_agent_hello(store, id, &lv, &e), CP_EINVAL);
    long_version[DB_AGENT_VERSION_MAX - 1] = '\0'; /* just fits */
    ck_assert_int_eq(core_agent_hello(store, id, &lv, &e), CP_OK);
    /* UTF-8 is fine (proto allows it); broken UTF-8 and C1 controls (CSI) are not. */
    struct core_agent_hello utf8 = {"0.2.0", "linux", "h\xc3\xb4te-\xe2\x82\xac-\xf0\x9f\x90\xb3",
                                    NULL};
    ck_assert_int_eq(core_agent_hello(store, id, &utf8, &e), CP_OK);
    const char *bad[] = {"h\xc3(",
                         "h\xc2\x9b"
                         "2J",
                         "\xc0\xaf",
                         "\xe0\x80\xaf",
                         "\xed\xa0\x80",
                         "\xf4\x90\x80\x80",
                         "\xff",
                         "x\x7f",
                         "x\xe2\x82"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct core_agent_hello b = {"0.2.0", bad[i], "vm1", NULL};
        ck_assert_msg(core_agent_hello(store, id, &b, &e) == CP_EINVAL, "bad[%zu] accepted", i);
    }
    /* A multi-byte character may not straddle the bound. */
    char host[DB_AGENT_HOSTNAME_MAX + 1];
    memset(host, 'h', DB_AGENT_HOSTNAME_MAX - 2);
    memcpy(host + DB_AGENT_HOSTNAME_MAX - 2, "\xc3\xa9", 3); /* 256 bytes */
    struct core_agent_hello straddle = {"0.2.0", "linux", host, NULL};
    ck_assert_int_eq(core_agent_hello(store, id, &straddle, &e), CP_EINVAL);
    host[DB_AGENT_HOSTNAME_MAX - 3] = '\0'; /* 253 bytes */
    ck_assert_int_eq(core_agent_hello(store, id, &straddle, &e), CP_OK);

    /* Unknown agent; revoked agent: the hub closes the channel on CP_EAUTH. */
    struct core_agent_hello ok = {"0.2.0", "linux", "vm1", NULL};
    ck_assert_int_eq(core_agent_hello(store, "00000000-0000-4000-8000-000000000000", &ok, &e),
                     CP_ENOTFOUND);
    ck_assert_int_eq(core_agent_seen(store, "00000000-0000-4000-8000-000000000000", &e),
                     CP_ENOTFOUND);
    ck_assert_int_eq(core_agent_revoke(store, id, NULL, NULL, &e), CP_OK);
    ck_assert_int_eq(core_agent_hello(store, id, &ok, &e), CP_EAUTH);
    ck_assert_str_eq(e.code, "AgentRevoked");
    ck_assert_int_eq(core_agent_seen(store, id, &e), CP_EAUTH);
    /* Disconnect is recorded whatever the state, so a closing channel never fails. */
    ck_assert_int_eq(core_agent_disconnected(store, id, &e), CP_OK);
    close_store();
}
END_TEST

/* ---- reads ---- */

struct seen_ids {
    int n;
    char ids[8][DB_AGENT_ID_LEN];
};

static enum cp_err collect(const struct db_agent *a, void *arg)
{
    struct seen_ids *s = arg;
    if (s->n < 8)
        memcpy(s->ids[s->n], a->id, DB_AGENT_ID_LEN);
    s->n++;
    return CP_OK;
}

START_TEST(list_by_subscription)
{
    open_store();
    char a1[DB_AGENT_ID_LEN], a2[DB_AGENT_ID_LEN], b1[DB_AGENT_ID_LEN];
    /* Apart in time, so that "oldest first" is one order (ties go by id). */
    add(VM1, NULL, TOKEN_1, a1);
    nanosleep(&(struct timespec){0, 3 * 1000 * 1000}, NULL);
    add(VMB, NULL, TOKEN_2, b1);
    nanosleep(&(struct timespec){0, 3 * 1000 * 1000}, NULL);
    add(SS1, "0", TOKEN_3, a2);
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(core_agent_revoke(store, a2, NULL, NULL, &e), CP_OK);

    struct seen_ids s = {0};
    ck_assert_int_eq(core_agent_list(store, SUB_A, collect, &s, &e), CP_OK);
    ck_assert_int_eq(s.n, 2); /* revoked ones are listed too, oldest first */
    ck_assert_str_eq(s.ids[0], a1);
    ck_assert_str_eq(s.ids[1], a2);

    memset(&s, 0, sizeof(s));
    char upper_b[] = SUB_B;
    for (char *p = upper_b; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 'a' + 'A' : *p);
    ck_assert_int_eq(core_agent_list(store, upper_b, collect, &s, &e), CP_OK);
    ck_assert_int_eq(s.n, 1);
    ck_assert_str_eq(s.ids[0], b1);

    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(
        core_agent_list(store, "0b7c4a4e-3333-4c4c-8c8c-000000000003", collect, &s, &e), CP_OK);
    ck_assert_int_eq(s.n, 0);
    memset(&s, 0, sizeof(s));
    ck_assert_int_eq(core_agent_list(store, NULL, collect, &s, &e), CP_OK);
    ck_assert_int_eq(s.n, 3);

    /* get: found in its own subscription only. */
    struct db_agent a;
    ck_assert_int_eq(core_agent_get(store, SUB_A, a1, &a, &e), CP_OK);
    db_agent_clear(&a);
    ck_assert_int_eq(core_agent_get(store, upper_b, b1, &a, &e), CP_OK);
    db_agent_clear(&a);
    memset(&e, 0, sizeof(e));
    ck_assert_int_eq(core_agent_get(store, SUB_A, b1, &a, &e), CP_ENOTFOUND);
    ck_assert_str_eq(e.code, "NotFound");
    ck_assert_int_eq(core_agent_get(store, NULL, "nope", &a, &e), CP_ENOTFOUND);
    close_store();
}
END_TEST

/* A visitor's error stops the walk and is returned. */
static enum cp_err stop_at_first(const struct db_agent *a, void *arg)
{
    (void)a;
    (*(int *)arg)++;
    return CP_ENOMEM;
}

START_TEST(list_stops_on_visitor_error)
{
    open_store();
    add(VM1, NULL, TOKEN_1, NULL);
    add(VM2, NULL, TOKEN_2, NULL);
    int n = 0;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(core_agent_list(store, SUB_A, stop_at_first, &n, &e), CP_ENOMEM);
    ck_assert_int_eq(n, 1);
    close_store();
}
END_TEST

/* db_agent_advance_seq, the exactly-once seam for the hub. */
struct seq_job {
    const char *id;
    int64_t seq;
    int advanced;
};

static enum cp_err seq_run(struct db_conn *c, void *arg, struct cp_error *e)
{
    (void)e;
    struct seq_job *j = arg;
    return db_agent_advance_seq(c, j->id, j->seq, &j->advanced);
}

START_TEST(advance_seq)
{
    open_store();
    char id[DB_AGENT_ID_LEN];
    add(VM1, NULL, TOKEN_1, id);
    struct seq_job j = {id, 1, -1};
    ck_assert_int_eq(db_store_write(store, seq_run, &j, NULL), CP_OK);
    ck_assert_int_eq(j.advanced, 1);
    j.seq = 1;
    ck_assert_int_eq(db_store_write(store, seq_run, &j, NULL), CP_OK);
    ck_assert_int_eq(j.advanced, 0); /* a repeat: acknowledge, do not apply */
    j.seq = 5;
    ck_assert_int_eq(db_store_write(store, seq_run, &j, NULL), CP_OK);
    ck_assert_int_eq(j.advanced, 1);
    j.seq = 3;
    ck_assert_int_eq(db_store_write(store, seq_run, &j, NULL), CP_OK);
    ck_assert_int_eq(j.advanced, 0);
    struct db_agent a;
    struct cp_error e = {{0}, {0}, {0}};
    ck_assert_int_eq(core_agent_get(store, NULL, id, &a, &e), CP_OK);
    ck_assert_int_eq(a.last_applied_seq, 5);
    db_agent_clear(&a);
    struct seq_job unknown = {"00000000-0000-4000-8000-000000000000", 1, -1};
    ck_assert_int_eq(db_store_write(store, seq_run, &unknown, NULL), CP_ENOTFOUND);
    ck_assert_int_eq(core_agent_revoke(store, id, NULL, NULL, &e), CP_OK);
    j.seq = 6;
    ck_assert_int_eq(db_store_write(store, seq_run, &j, NULL), CP_ENOTFOUND);
    close_store();
}
END_TEST

/* ---- the CLI, when NW_NETWATCHD is set ---- */

static const char *netwatchd;
static char cli_dir[128];
static char cli_db[160];

struct cli_out {
    int status;
    char out[4096];
    char err[4096];
};

static void read_all(int fd, char *buf, size_t n)
{
    size_t used = 0;
    ssize_t r;
    while (used + 1 < n &&
           ((r = read(fd, buf + used, n - 1 - used)) > 0 || (r < 0 && errno == EINTR)))
        used += r > 0 ? (size_t)r : 0;
    buf[used] = '\0';
}

/* Runs netwatchd with args (NULL-terminated, after argv[0]); env_db sets NETWATCH_DB. */
static void cli(struct cli_out *o, const char *env_db, const char *const *args)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)(uintptr_t)netwatchd;
    for (; *args && n < 15; args++)
        argv[n++] = (char *)(uintptr_t)*args;
    argv[n] = NULL;
    char out_path[160], err_path[160];
    snprintf(out_path, sizeof(out_path), "%s/out", cli_dir);
    snprintf(err_path, sizeof(err_path), "%s/err", cli_dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0)
            _exit(126);
        if (env_db)
            setenv("NETWATCH_DB", env_db, 1);
        else
            unsetenv("NETWATCH_DB");
        execv(netwatchd, argv);
        _exit(127);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    o->status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int fo = open(out_path, O_RDONLY), fe = open(err_path, O_RDONLY);
    ck_assert_int_ge(fo, 0);
    ck_assert_int_ge(fe, 0);
    read_all(fo, o->out, sizeof(o->out));
    read_all(fe, o->err, sizeof(o->err));
    close(fo);
    close(fe);
}

static void cli_setup(void)
{
    scratch_dir(cli_dir, sizeof(cli_dir));
    snprintf(cli_db, sizeof(cli_db), "%s/netwatch.db", cli_dir);
}

START_TEST(cli_add_list_revoke)
{
    cli_setup();
    struct cli_out o;
    const char *add_vm[] = {"agent", "add", VM1, "--db", cli_db, NULL};
    cli(&o, NULL, add_vm);
    ck_assert_msg(o.status == 0, "add: %d %s", o.status, o.err);
    /* stdout: the token alone; stderr: the agent id. */
    ck_assert_uint_eq(strlen(o.out), CORE_AGENT_TOKEN_LEN); /* with its newline */
    o.out[CORE_AGENT_TOKEN_LEN - 1] = '\0';
    ck_assert_int_eq(core_agent_token_well_formed(o.out), 1);
    char token[CORE_AGENT_TOKEN_LEN];
    memcpy(token, o.out, sizeof(token));
    char id[DB_AGENT_ID_LEN];
    ck_assert_int_eq(sscanf(o.err, "agent %36s registered", id), 1);
    ck_assert_int_eq(armid_is_guid(id), 1);
    char hash[CORE_TOKEN_HEX_LEN];
    ck_assert_int_eq(core_token_hash_hex(token, strlen(token), hash), 0);

    /* A second one for the same VM is refused, with the reason and exit status 1. */
    cli(&o, NULL, add_vm);
    ck_assert_int_eq(o.status, 1);
    ck_assert_ptr_nonnull(strstr(o.err, "already registered"));
    ck_assert_str_eq(o.out, "");

    /* NETWATCH_DB is the default --db, as for the server. */
    const char *add_ss[] = {"agent", "add", SS1, "--instance", "4", NULL};
    cli(&o, cli_db, add_ss);
    ck_assert_msg(o.status == 0, "add ss: %d %s", o.status, o.err);

    const char *list[] = {"agent", "list", "--db", cli_db, NULL};
    cli(&o, NULL, list);
    ck_assert_int_eq(o.status, 0);
    ck_assert_ptr_nonnull(strstr(o.out, id));
    ck_assert_ptr_nonnull(strstr(o.out, VM1));
    ck_assert_ptr_nonnull(strstr(o.out, "\t4\tactive\tno\t-\t-\n"));
    ck_assert_ptr_null(strstr(o.out, token + 4)); /* never the token */
    ck_assert_ptr_null(strstr(o.out, hash));      /* nor its hash */

    /* The daemon's core sees what the CLI wrote. */
    struct db_store_options so = {.path = cli_db, .readers = 1, .busy_timeout_ms = 0};
    struct cp_error e = {{0}, {0}, {0}};
    struct db_agent a;
    ck_assert_int_eq(db_store_open(&so, &store, &e), CP_OK);
    ck_assert_int_eq(core_agent_authenticate(store, token, &a, &e), CP_OK);
    ck_assert_str_eq(a.id, id);
    db_agent_clear(&a);
    close_store();

    const char *revoke[] = {"agent", "revoke", id, "--db", cli_db, NULL};
    cli(&o, NULL, revoke);
    ck_assert_msg(o.status == 0, "revoke: %d %s", o.status, o.err);
    ck_assert_ptr_nonnull(strstr(o.err, "revoked"));
    cli(&o, NULL, revoke);
    ck_assert_int_eq(o.status, 0);
    ck_assert_ptr_nonnull(strstr(o.err, "already revoked"));
    const char *revoke_ss[] = {"agent", "revoke", SS1, "--instance", "4", "--db", cli_db, NULL};
    cli(&o, NULL, revoke_ss);
    ck_assert_msg(o.status == 0, "revoke ss: %d %s", o.status, o.err);
    cli(&o, NULL, revoke_ss);
    ck_assert_int_eq(o.status, 1); /* nothing active left for that instance */

    ck_assert_int_eq(db_store_open(&so, &store, &e), CP_OK);
    ck_assert_int_eq(core_agent_authenticate(store, token, &a, &e), CP_EAUTH);
    close_store();

    /* Re-adding the revoked VM works. */
    cli(&o, NULL, add_vm);
    ck_assert_msg(o.status == 0, "re-add: %d %s", o.status, o.err);
}
END_TEST

START_TEST(cli_usage_errors)
{
    cli_setup();
    struct cli_out o;
    const char *none[] = {"agent", NULL};
    const char *bogus[] = {"agent", "frobnicate", NULL};
    const char *add_nothing[] = {"agent", "add", "--db", cli_db, NULL};
    const char *list_extra[] = {"agent", "list", VM1, "--db", cli_db, NULL};
    const char *unknown_opt[] = {"agent", "add", VM1, "--token", "x", "--db", cli_db, NULL};
    const char *id_with_instance[] = {
        "agent", "revoke", "00000000-0000-4000-8000-000000000000", "--instance", "1", "--db",
        cli_db,  NULL};
    const char *const *cases[] = {none,       bogus,       add_nothing,
                                  list_extra, unknown_opt, id_with_instance};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cli(&o, NULL, cases[i]);
        ck_assert_msg(o.status == 2, "case %zu: status %d", i, o.status);
        ck_assert_str_eq(o.out, "");
    }
    const char *help[] = {"agent", "--help", NULL};
    cli(&o, NULL, help);
    ck_assert_int_eq(o.status, 0);
    ck_assert_ptr_nonnull(strstr(o.out, "netwatchd agent add"));
    /* Refusals of core are exit status 1 with core's message. */
    const char *storage[] = {"agent", "add", STORAGE, "--db", cli_db, NULL};
    cli(&o, NULL, storage);
    ck_assert_int_eq(o.status, 1);
    ck_assert_ptr_nonnull(strstr(o.err, "virtual machine"));
    ck_assert_str_eq(o.out, "");
    const char *unknown[] = {"agent", "revoke", "00000000-0000-4000-8000-000000000000",
                             "--db",  cli_db,   NULL};
    cli(&o, NULL, unknown);
    ck_assert_int_eq(o.status, 1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("agents");
    TCase *tc = tcase_create("token_hash");
    tcase_add_test(tc, token_hash_known_vector);
    suite_add_tcase(s, tc);

    tc = tcase_create("registry");
    tcase_add_test(tc, token_format);
    tcase_add_test(tc, register_vm);
    tcase_add_test(tc, register_duplicate_refused);
    tcase_add_test(tc, register_invalid);
    tcase_add_test(tc, revoke_and_readd);
    tcase_add_test(tc, revoke_scale_set_instance);
    tcase_add_test(tc, authenticate);
    tcase_add_test(tc, durable_across_reopen);
    tcase_add_test(tc, hello_seen_disconnect);
    tcase_add_test(tc, hello_refused);
    tcase_add_test(tc, list_by_subscription);
    tcase_add_test(tc, list_stops_on_visitor_error);
    tcase_add_test(tc, advance_seq);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    netwatchd = getenv("NW_NETWATCHD");
    if (netwatchd && *netwatchd && access(netwatchd, X_OK) == 0) {
        tc = tcase_create("cli");
        tcase_add_test(tc, cli_add_list_revoke);
        tcase_add_test(tc, cli_usage_errors);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
    } else {
        printf("NW_NETWATCHD is not an executable netwatchd: the CLI cases are skipped\n");
    }

    snprintf(scratch, sizeof(scratch), "/tmp/nw-agents-XXXXXX");
    if (!mkdtemp(scratch)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    rm_tree(scratch);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
