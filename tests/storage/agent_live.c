/*
 * agent_live.c - captures uploaded to blob storage by the real netwatch-agent, end to end: the
 * real netwatchd (storage account registered with `netwatchd storage add`, captures created
 * through its API), the real agent capturing marked UDP datagrams on loopback, and a real
 * Azurite as the storage account.
 *
 *   it_storage_agent <netwatchd> <netwatch-agent> <node> <azurite blob main.js>
 *
 * The agent runs with --upload-block-size 1024, so every capture file of a few hundred KB goes
 * up as hundreds of Put Block requests (each with Content-MD5) and one Put Block List.
 *   (a) Storage only (storageId, no local path): Stopped/Manual once the blob is committed; the
 *       blob at storagePath is byte-identical (SHA-256, size) to the file the agent captured
 *       (its completion lists the blob URL with the file's size and SHA-256); the private temp
 *       directory under the capture root is gone; the blob was staged in blocks.
 *   (b) Both (storageId and filePath): the local file stays, and the blob's SHA-256 is the local
 *       file's.
 *   (c) Azurite stopped (SIGTERM) mid-upload and started again 1 s later on the same port: the
 *       upload completes through the uploader's retries and the blob is identical.
 *   (d) the agent SIGKILLed mid-upload and started again: it resumes from its queue and journal;
 *       Azurite saw each block at most once more than once (the block in flight when it died),
 *       far from the whole file twice; the blob is identical.
 *   (e) an account registered with a wrong key (--no-verify): Azurite refuses the SAS (403), the
 *       session ends Error/StorageFailed with the uploader's message, and the captured file is
 *       kept in the agent's temp directory.
 *   (f) the account removed (`storage remove`) while a Storage-only capture runs: the grant is
 *       refused, the session ends Error/StorageFailed, local data kept.
 *   (g) continuous capture, Storage only: a ring of 2 files of 3,000 bytes (packets cut to 128
 *       bytes) fed about 10 files' worth: while the session still runs, the blobs of its first
 * files exist (each file is uploaded as it rotates out, although the ring deletes it); stopped,
 * every file the ring made (blob file n - 1 for ring file n) is a blob identical to what the
 * completion lists, and the private directory is gone. (i) Storage only, the agent SIGKILLed while
 * capturing and started again: the part salvaged from the first life is blob file 0 (storagePath),
 * the part the resumed session writes is file 1 (storagePath with "_1"), both identical to the
 * completion's entries; the private directory is gone. (j) a long ring, Storage only: 300 datagrams
 * cut to 128 bytes into files of 200 bytes (one datagram each; small frames, so the kernel's buffer
 * holds them while the ring rotates): every file is a blob; captureDetails.uploadedBytes is the sum
 * of the blobs' sizes (the agent's queue keeps only the newest 256 committed files and counts the
 * others); the completion lists the newest 256. (h) grants that expire under the upload: netwatchd
 * restarted with --storage-grant-seconds 2; a 1.5 MB file (about 1,500 blocks) outlives several
 * grants: each 403 after expiry makes the agent ask for a fresh grant and resume with its journal;
 * the blob is identical.
 */
/* _GNU_SOURCE: memmem. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/agent_proc.h"
#include "tests/integration/captures.h"
#include "tests/integration/harness.h"
#include "tests/storage/azurite.h"
#include "tests/storage/blob_fixture.h"

#define API     "2024-07-01"
#define WAIT_MS 30000
#define BLOCK   1024

static struct nw_azurite az;
static struct nw_server srv;
static const char *agent_bin;
static pid_t agent;
static char nw[NW_WATCHER_MAX], store_ok[300], store_bad[300], root[NW_PATH_MAX];

static const char *const agent_args[] = {
    "--interfaces", "lo", "--progress-interval", "1", "--upload-block-size", "1024", NULL};

static int cli(char *const argv[])
{
    char log[NW_PATH_MAX + 16];
    snprintf(log, sizeof(log), "%s/cli.log", srv.dir);
    return nw_run(argv, log, NULL, 0);
}

/* Registers storage account `name` (Azurite's account, key from key_text) as *id. */
static int add_account(const char *name, const char *key_text, int verify, char *id, size_t n)
{
    char key[NW_PATH_MAX + 32];
    snprintf(key, sizeof(key), "%s/%s.key", srv.dir, name);
    FILE *f = fopen(key, "w");
    if (!NW_CHECK(f != NULL, "key file"))
        return -1;
    fprintf(f, "%s\n", key_text);
    fclose(f);
    snprintf(id, n,
             "/subscriptions/%s/resourceGroups/rg1/providers/Microsoft.Storage/storageAccounts/%s",
             srv.sub, name);
    char *add[] = {srv.bin,
                   "storage",
                   "add",
                   id,
                   "--key-file",
                   key,
                   "--account",
                   NW_AZURITE_ACCOUNT,
                   "--endpoint",
                   az.endpoint,
                   "--db",
                   srv.db,
                   verify ? NULL : "--no-verify",
                   NULL};
    return NW_CHECK(cli(add) == 0, "storage add %s", name) ? 0 : -1;
}

/* PUTs capture name on vm1 (UDP to port) with storageLocation location and the properties in
 * extra ("" or members each followed by ','), and waits for the create to succeed; storagePath
 * into path. */
static int put_capture_with(const char *name, const char *location, const char *extra, int port,
                            char *path, size_t n)
{
    char t[700], body[1600];
    snprintf(body, sizeof(body),
             "{\"properties\":{\"target\":\"/subscriptions/%s/resourceGroups/rg1/providers/"
             "Microsoft.Compute/virtualMachines/vm1\",\"storageLocation\":%s,%s"
             "\"filters\":[{\"protocol\":\"UDP\",\"localPort\":\"%d\"}]}}",
             srv.sub, location, extra, port);
    snprintf(t, sizeof(t), "%s/packetCaptures/%s?api-version=" API, nw, name);
    struct nw_response r;
    long code = nw_server_request(&srv, "PUT", t, body, NULL, &r) == 0 ? r.status : 0;
    const char *aao = nw_response_header(&r, "Azure-AsyncOperation");
    const char *p = nw_json_str(r.json, "properties.storageLocation.storagePath");
    char op[600];
    snprintf(op, sizeof(op), "%s", aao ? aao : "");
    snprintf(path, n, "%s", p ? p : "");
    int ok = NW_CHECK(code == 201 && op[0], "PUT %s: %ld %.300s", name, code, r.body ? r.body : "");
    nw_response_free(&r);
    return ok && nw_operation_ends(&srv, op, 15, "Succeeded", NULL, NULL) ? 0 : -1;
}

static int put_capture(const char *name, const char *location, int port, char *path, size_t n)
{
    return put_capture_with(name, location, "", port, path, n);
}

/* A Storage-only ring of 2 files of file_size bytes (packets cut to 128 bytes) for seconds. */
static int put_ring(const char *name, int file_size, int seconds, int port, char *path, size_t n)
{
    char loc[400], extra[300];
    snprintf(loc, sizeof(loc), "{\"storageId\":\"%s\"}", store_ok);
    snprintf(extra, sizeof(extra),
             "\"bytesToCapturePerPacket\":128,\"continuousCapture\":true,"
             "\"captureSettings\":{\"fileCount\":2,\"fileSizeInBytes\":%d,"
             "\"sessionTimeLimitInSeconds\":%d},",
             file_size, seconds);
    return put_capture_with(name, loc, extra, port, path, n);
}

/* The blob name (container-relative) of a storagePath URL. */
static const char *blob_of(const char *path)
{
    const char *c = strstr(path, "/" NW_BLOB_CONTAINER "/");
    return c ? c + strlen(NW_BLOB_CONTAINER) + 2 : path;
}

static json_t *query(const char *name)
{
    char t[700];
    snprintf(t, sizeof(t), "%s/packetCaptures/%s/queryStatus?api-version=" API, nw, name);
    struct nw_response r;
    json_t *j = NULL;
    if (nw_server_request(&srv, "POST", t, NULL, NULL, &r) == 0 && r.status == 200 && r.json)
        j = json_incref(r.json);
    nw_response_free(&r);
    return j;
}

/* Waits until name has ended; 1 when it ended as want_status with want (stopReason or error). */
static int ended_as(const char *name, const char *want_status, const char *want, long ms)
{
    long long end = nw_now_ms() + ms;
    json_t *j = NULL;
    const char *st = NULL;
    while (nw_now_ms() < end) {
        json_decref(j);
        j = query(name);
        st = nw_json_str(j, "packetCaptureStatus");
        if (st && strcmp(st, "Running") != 0 && strcmp(st, "Unknown") != 0 &&
            strcmp(st, "NotStarted") != 0)
            break;
        nw_sleep_ms(200);
    }
    const char *why =
        strcmp(want_status, "Error") == 0
            ? json_string_value(json_array_get(json_object_get(j, "packetCaptureError"), 0))
            : nw_json_str(j, "stopReason");
    int ok = NW_CHECK(st && why && strcmp(st, want_status) == 0 && strcmp(why, want) == 0,
                      "%s ended %s/%s, want %s/%s", name, st ? st : "-", why ? why : "-",
                      want_status, want);
    json_decref(j);
    return ok;
}

/* n datagrams of about 1000 bytes to port, paced so loopback capture keeps up. */
static void send_traffic(int port, const char *tag, int n)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    char msg[1100];
    for (int i = 0; fd >= 0 && i < n; i++) {
        int len = snprintf(msg, sizeof(msg), "netwatch:%s:%d:", tag, i);
        memset(msg + len, 'x', 1000);
        (void)sendto(fd, msg, (size_t)len + 1000, 0, (struct sockaddr *)&to, sizeof(to));
        if (i % 20 == 19)
            nw_sleep_ms(5);
    }
    if (fd >= 0)
        close(fd);
    nw_sleep_ms(1000); /* written once the capture thread has seen them */
}

/* captureDetails.uploadedBytes of name (-1 when queryStatus did not answer). */
static long long uploaded_of(const char *name)
{
    json_t *j = query(name);
    json_t *v = nw_json_get(j, "captureDetails.uploadedBytes");
    long long n = json_is_integer(v) ? (long long)json_integer_value(v) : -1;
    json_decref(j);
    return n;
}

static int stop_capture(const char *name)
{
    char loc[700];
    return NW_CHECK(nw_capture_stop(&srv, nw, name, loc, sizeof(loc), NULL, 0) == 0, "stop %s",
                    name);
}

/* The completion's entry for file (a path or blob URL, as the agent logs it): bytes and sha. */
static int completion_of(const char *file, long long *bytes, char sha[65])
{
    char path[NW_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/vm1.agent.log", srv.dir);
    size_t len = 0;
    char *log = nw_read_file(path, &len);
    char needle[2200];
    snprintf(needle, sizeof(needle), "event=capture_file captureId=");
    int found = 0;
    for (char *p = log; p && (p = strstr(p, needle)) != NULL; p++) {
        char *eol = strchr(p, '\n');
        char want[2100];
        snprintf(want, sizeof(want), "file=\"%s\" ", file);
        char *f = strstr(p, want);
        if (!f || (eol && f > eol))
            continue;
        char *b = strstr(f, "bytes="), *s = strstr(f, "sha256=");
        if (b && s && (!eol || s < eol)) {
            *bytes = atoll(b + 6);
            snprintf(sha, 65, "%.64s", s + 7);
            found = 1;
        }
    }
    free(log);
    return NW_CHECK(found, "the agent's completion lists no %s", file);
}

static int blob_is(const char *blob, long long bytes, const char *sha)
{
    char *body = NULL, got[65] = "";
    size_t len = 0;
    long st = nw_blob_download(&az, NW_BLOB_CONTAINER, blob, &body, &len);
    if (st == 200)
        nw_sha256_hex(body ? body : "", len, got);
    free(body);
    return NW_CHECK(st == 200 && (long long)len == bytes && strcmp(got, sha) == 0,
                    "blob %s: status %ld, %zu bytes (want %lld), sha256 %s (want %s)", blob, st,
                    len, bytes, got, sha);
}

static void sha256_file(const char *path, char out[65], long long *size)
{
    size_t len = 0;
    char *data = nw_read_file(path, &len);
    out[0] = '\0';
    *size = data ? (long long)len : -1;
    if (data)
        nw_sha256_hex(data, len, out);
    free(data);
}

/* Put Block requests Azurite answered 201 for blob. */
static long put_blocks(const char *blob)
{
    char path[1200];
    snprintf(path, sizeof(path), "/%s/%s?", NW_BLOB_CONTAINER, blob);
    const char *needles[] = {path, "comp=block&", "\" 201 ", NULL};
    return nw_azurite_count(&az, needles);
}

static int wait_blocks(const char *blob, long n, long ms)
{
    long long end = nw_now_ms() + ms;
    while (put_blocks(blob) < n && nw_now_ms() < end)
        nw_sleep_ms(10);
    return put_blocks(blob) >= n;
}

/* The agent's private directory of storage-only captures: entries in it. */
static int temp_entries(void)
{
    char dir[NW_PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/.netwatch-upload", root);
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *de; d && (de = readdir(d)) != NULL;)
        n += de->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

/* A temp capture file (storage only, kept after a failure) whose size > 24; its path. */
static int kept_file(char *out, size_t n)
{
    char dir[NW_PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/.netwatch-upload", root);
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *de; d && !found && (de = readdir(d)) != NULL;) {
        if (de->d_name[0] == '.')
            continue;
        struct stat sb;
        int w = snprintf(out, n, "%s/%s/capture.cap", dir, de->d_name);
        found = w > 0 && (size_t)w < n && stat(out, &sb) == 0 && sb.st_size > 24;
    }
    if (d)
        closedir(d);
    return found;
}

/* (a) */
static void storage_only(void)
{
    int port = 31000 + (int)(getpid() % 20000);
    char loc[400], path[1200];
    snprintf(loc, sizeof(loc), "{\"storageId\":\"%s\"}", store_ok);
    if (put_capture("so1", loc, port, path, sizeof(path)) != 0)
        return;
    send_traffic(port, "so", 300);
    NW_CHECK(temp_entries() == 1, "no private directory while capturing (%d)", temp_entries());
    stop_capture("so1");
    if (!ended_as("so1", "Stopped", "Manual", WAIT_MS))
        return;
    long long bytes = 0;
    char sha[65] = "";
    if (completion_of(path, &bytes, sha)) {
        /* Hundreds of blocks (a loaded machine may drop some of the 300 datagrams). */
        NW_CHECK(bytes > 100 * 1000, "the capture holds %lld bytes for 300 KB sent", bytes);
        blob_is(blob_of(path), bytes, sha);
        NW_CHECK(uploaded_of("so1") == bytes, "captureDetails.uploadedBytes %lld, want %lld",
                 uploaded_of("so1"), bytes);
        long blocks = put_blocks(blob_of(path));
        NW_CHECK(blocks >= (bytes + BLOCK - 1) / BLOCK, "%ld Put Block for %lld bytes", blocks,
                 bytes);
        fprintf(stderr, "storage only: %lld bytes in %ld blocks, sha256 %s\n", bytes, blocks, sha);
    }
    NW_CHECK(temp_entries() == 0, "the private directory of so1 is still there (%d entries)",
             temp_entries());
}

/* (b) */
static void both(void)
{
    int port = 32000 + (int)(getpid() % 20000);
    char loc[600], path[1200], local[NW_PATH_MAX + 32];
    snprintf(loc, sizeof(loc), "{\"storageId\":\"%s\",\"filePath\":\"/var/captures/both1.cap\"}",
             store_ok);
    if (put_capture("both1", loc, port, path, sizeof(path)) != 0)
        return;
    send_traffic(port, "both", 200);
    stop_capture("both1");
    if (!ended_as("both1", "Stopped", "Manual", WAIT_MS))
        return;
    snprintf(local, sizeof(local), "%s/both1.cap", root);
    char sha[65];
    long long size;
    sha256_file(local, sha, &size);
    if (NW_CHECK(size > 100 * 1000, "%s: %lld bytes", local, size))
        blob_is(blob_of(path), size, sha);
    long long bytes = 0;
    char listed[65] = "";
    if (completion_of("/var/captures/both1.cap", &bytes, listed))
        NW_CHECK(bytes == size && strcmp(listed, sha) == 0, "the completion lists %lld %s", bytes,
                 listed);
}

/* (c) */
static void storage_outage(void)
{
    int port = 33000 + (int)(getpid() % 20000);
    char loc[600], path[1200], local[NW_PATH_MAX + 32];
    snprintf(loc, sizeof(loc), "{\"storageId\":\"%s\",\"filePath\":\"/var/captures/out1.cap\"}",
             store_ok);
    if (put_capture("out1", loc, port, path, sizeof(path)) != 0)
        return;
    send_traffic(port, "out", 1500);
    stop_capture("out1");
    if (!NW_CHECK(wait_blocks(blob_of(path), 100, WAIT_MS), "no 100 blocks of out1 staged"))
        return;
    NW_CHECK(nw_azurite_stop(&az) == 0, "Azurite did not stop");
    long at_stop = put_blocks(blob_of(path));
    nw_sleep_ms(1000);
    NW_CHECK(nw_azurite_start(&az, az.port) == 0, "Azurite did not start again");
    if (!ended_as("out1", "Stopped", "Manual", 90000))
        return;
    snprintf(local, sizeof(local), "%s/out1.cap", root);
    char sha[65];
    long long size;
    sha256_file(local, sha, &size);
    blob_is(blob_of(path), size, sha);
    NW_CHECK(nw_agent_log_count(&srv, "vm1", "event=upload_committed") >= 3 &&
                 at_stop < (size + BLOCK - 1) / BLOCK,
             "the outage came after the upload (%ld of %lld blocks)", at_stop,
             (size + BLOCK - 1) / BLOCK);
    fprintf(stderr, "outage: %ld of %lld blocks staged when Azurite stopped\n", at_stop,
            (size + BLOCK - 1) / BLOCK);
}

/* (d) */
static void agent_killed(void)
{
    int port = 34000 + (int)(getpid() % 20000);
    char loc[600], path[1200], local[NW_PATH_MAX + 32];
    snprintf(loc, sizeof(loc), "{\"storageId\":\"%s\",\"filePath\":\"/var/captures/kill1.cap\"}",
             store_ok);
    if (put_capture("kill1", loc, port, path, sizeof(path)) != 0)
        return;
    send_traffic(port, "kill", 1500);
    stop_capture("kill1");
    if (!NW_CHECK(wait_blocks(blob_of(path), 200, WAIT_MS), "no 200 blocks of kill1 staged"))
        return;
    /* Progress reports carry the bytes uploaded so far (one a second). */
    long long end = nw_now_ms() + 5000, up = 0;
    while ((up = uploaded_of("kill1")) <= 0 && nw_now_ms() < end)
        nw_sleep_ms(100);
    NW_CHECK(up > 0, "no uploadedBytes while kill1 was uploading (%lld)", up);
    nw_agent_kill(agent);
    nw_sleep_ms(300); /* Azurite logs a request once answered */
    long before = put_blocks(blob_of(path));
    agent = nw_agent_start_argv(&srv, agent_bin, "vm1", agent_args);
    if (!ended_as("kill1", "Stopped", "Manual", 60000))
        return;
    snprintf(local, sizeof(local), "%s/kill1.cap", root);
    char sha[65];
    long long size;
    sha256_file(local, sha, &size);
    blob_is(blob_of(path), size, sha);
    NW_CHECK(uploaded_of("kill1") == size, "uploadedBytes %lld at the end, want %lld",
             uploaded_of("kill1"), size);
    long blocks = (long)((size + BLOCK - 1) / BLOCK), total = put_blocks(blob_of(path));
    NW_CHECK(before < blocks, "the agent was killed after its upload (%ld of %ld)", before, blocks);
    /* At most the block in flight at the kill goes twice. */
    NW_CHECK(total >= blocks && total <= blocks + 1,
             "%ld Put Block for %ld blocks (%ld before the kill)", total, blocks, before);
    NW_CHECK(nw_agent_log_count(&srv, "vm1", "event=upload_queue_restored") >= 1,
             "the restarted agent did not restore its queue");
    fprintf(stderr, "agent killed after %ld of %ld blocks: %ld Put Block in all\n", before, blocks,
            total);
}

/* (e) */
static void refused(void)
{
    int port = 35000 + (int)(getpid() % 20000);
    char loc[400], path[1200], kept[NW_PATH_MAX + 200];
    snprintf(loc, sizeof(loc), "{\"storageId\":\"%s\"}", store_bad);
    if (put_capture("bad1", loc, port, path, sizeof(path)) != 0)
        return;
    send_traffic(port, "bad", 100);
    stop_capture("bad1");
    if (!ended_as("bad1", "Error", "StorageFailed", WAIT_MS))
        return;
    NW_CHECK(nw_agent_log_count(&srv, "vm1", "status 403") >= 1,
             "the agent's log does not show the 403");
    NW_CHECK(kept_file(kept, sizeof(kept)), "the captured file was not kept");
    char *body = NULL;
    size_t len = 0;
    NW_CHECK(nw_blob_download(&az, NW_BLOB_CONTAINER, blob_of(path), &body, &len) == 404,
             "a blob exists for a refused SAS");
    free(body);
    /* The agent's message is what the capture shows. */
    json_t *j = query("bad1");
    char *text = j ? json_dumps(j, 0) : NULL;
    const char *msg = text ? strstr(text, "errorMessage") : NULL;
    NW_CHECK(msg && strstr(msg, "403") && strstr(msg, "kept"),
             "queryStatus does not carry the uploader's message: %.900s", msg ? msg : text);
    free(text);
    json_decref(j);
}

/* (f) */
static void removed(void)
{
    int port = 36000 + (int)(getpid() % 20000);
    char loc[400], path[1200], id[300];
    if (add_account("gone", NW_AZURITE_KEY, 1, id, sizeof(id)) != 0)
        return;
    snprintf(loc, sizeof(loc), "{\"storageId\":\"%s\"}", id);
    if (put_capture("gone1", loc, port, path, sizeof(path)) != 0)
        return;
    char *rm[] = {srv.bin, "storage", "remove", id, "--db", srv.db, NULL};
    NW_CHECK(cli(rm) == 0, "storage remove");
    send_traffic(port, "gone", 50);
    stop_capture("gone1");
    if (!ended_as("gone1", "Error", "StorageFailed", WAIT_MS))
        return;
    NW_CHECK(nw_agent_log_count(&srv, "vm1", "event=blob_grant_refused") >= 1,
             "the agent did not log the refused grant");
}

/* Blob k of a capture whose file 0 goes to blob0 ("x.cap" -> "x_k.cap"). */
static void blob_k(const char *blob0, int k, char *out, size_t n)
{
    if (k == 0)
        snprintf(out, n, "%s", blob0);
    else
        snprintf(out, n, "%.*s_%d.cap", (int)(strlen(blob0) - 4), blob0, k);
}

static int blob_exists(const char *blob)
{
    char *body = NULL;
    size_t len = 0;
    long st = nw_blob_download(&az, NW_BLOB_CONTAINER, blob, &body, &len);
    free(body);
    return st == 200;
}

/* (g) */
static void ring(void)
{
    int port = 37000 + (int)(getpid() % 20000);
    char path[1200], blob[1300], url[1500];
    if (put_ring("ring1", 3000, 120, port, path, sizeof(path)) != 0)
        return;
    const char *blob0 = blob_of(path);
    send_traffic(port, "ring", 200);
    /* The first files are in storage while the capture still runs. */
    long long end = nw_now_ms() + WAIT_MS;
    char second[1300];
    blob_k(blob0, 1, second, sizeof(second));
    while (!(blob_exists(blob0) && blob_exists(second)) && nw_now_ms() < end)
        nw_sleep_ms(200);
    NW_CHECK(blob_exists(blob0) && blob_exists(second), "blobs 0 and 1 of ring1 missing");
    NW_CHECK(nw_capture_is(&srv, nw, "ring1", "Running", NULL),
             "ring1 is no longer running while its first files are uploaded");
    stop_capture("ring1");
    if (!ended_as("ring1", "Stopped", "Manual", WAIT_MS))
        return;
    int k = 0;
    for (;; k++) {
        blob_k(blob0, k, blob, sizeof(blob));
        snprintf(url, sizeof(url), "%.*s%s", (int)(blob0 - path), path, blob);
        long long bytes = 0;
        char sha[65] = "";
        if (!blob_exists(blob))
            break;
        if (completion_of(url, &bytes, sha))
            blob_is(blob, bytes, sha);
        NW_CHECK(bytes <= 3000, "ring file %d is %lld bytes, over 3000", k, bytes);
    }
    NW_CHECK(k >= 8, "only %d ring files went to storage for about 10 files' worth", k);
    NW_CHECK(temp_entries() == 0, "the private directory of ring1 is still there");
    fprintf(stderr, "ring: %d files in storage, each checked against the completion\n", k);
}

/* (i) */
static void resumed_parts(void)
{
    int port = 39000 + (int)(getpid() % 20000);
    char loc[400], path[1200], blob[1300], url[1500];
    snprintf(loc, sizeof(loc), "{\"storageId\":\"%s\"}", store_ok);
    if (put_capture("parts1", loc, port, path, sizeof(path)) != 0)
        return;
    send_traffic(port, "life1", 100);
    int before = nw_agent_log_count(&srv, "vm1", "event=capture_resumed");
    nw_agent_kill(agent);
    agent = nw_agent_start_argv(&srv, agent_bin, "vm1", agent_args);
    NW_CHECK(nw_agent_wait_log(&srv, "vm1", "event=capture_resumed", before + 1, WAIT_MS),
             "parts1 was not resumed");
    send_traffic(port, "life2", 100);
    stop_capture("parts1");
    if (!ended_as("parts1", "Stopped", "Manual", WAIT_MS))
        return;
    const char *blob0 = blob_of(path);
    for (int k = 0; k < 2; k++) {
        blob_k(blob0, k, blob, sizeof(blob));
        snprintf(url, sizeof(url), "%.*s%s", (int)(blob0 - path), path, blob);
        long long bytes = 0;
        char sha[65] = "";
        if (completion_of(url, &bytes, sha)) {
            NW_CHECK(bytes > 50 * 1000, "part %d holds %lld bytes for 100 KB sent", k, bytes);
            blob_is(blob, bytes, sha);
        }
    }
    blob_k(blob0, 2, blob, sizeof(blob));
    NW_CHECK(!blob_exists(blob), "a third part went to storage");
    NW_CHECK(temp_entries() == 0, "the private directory of parts1 is still there");
}

/* (j) */
static void long_ring(void)
{
    int port = 40000 + (int)(getpid() % 20000);
    char path[1200], blob[1300];
    if (put_ring("ring2", 200, 300, port, path, sizeof(path)) != 0)
        return;
    send_traffic(port, "long", 300);
    /* Each file costs the ring a few fsyncs: let it write (and upload) them before the stop. */
    const char *blob0 = blob_of(path);
    long long end = nw_now_ms() + 60000;
    blob_k(blob0, 279, blob, sizeof(blob));
    while (!blob_exists(blob) && nw_now_ms() < end)
        nw_sleep_ms(500);
    stop_capture("ring2");
    if (!ended_as("ring2", "Stopped", "Manual", 120000))
        return;
    long long sum = 0;
    int n = 0;
    for (;; n++) {
        char *data = NULL;
        size_t len = 0;
        blob_k(blob0, n, blob, sizeof(blob));
        long st = nw_blob_download(&az, NW_BLOB_CONTAINER, blob, &data, &len);
        free(data);
        if (st != 200)
            break;
        sum += (long long)len;
    }
    NW_CHECK(n >= 280, "%d ring files in storage for 300 one-datagram files", n);
    NW_CHECK(uploaded_of("ring2") == sum, "uploadedBytes %lld, the blobs hold %lld",
             uploaded_of("ring2"), sum);
    char prefix[1300];
    snprintf(prefix, sizeof(prefix), "file=\"%.*s", (int)(strlen(path) - 4), path);
    int listed = nw_agent_log_count(&srv, "vm1", prefix);
    NW_CHECK(listed == 256, "the completion lists %d files of %d, want the newest 256", listed, n);
    NW_CHECK(temp_entries() == 0, "the private directory of ring2 is still there");
    fprintf(stderr, "long ring: %d files, %lld bytes in storage, %d listed\n", n, sum, listed);
}

/* (h) */
static void expiring_grants(const char *agent_id)
{
    int port = 38000 + (int)(getpid() % 20000);
    static const char *const short_grants[] = {"--storage-grant-seconds", "2", NULL};
    if (!NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not stop") ||
        !NW_CHECK(nw_server_start_on(&srv, srv.port, short_grants) == 0,
                  "netwatchd did not start again on port %d", srv.port) ||
        !NW_CHECK(nw_agent_wait_connected(&srv, agent_id, 1, WAIT_MS), "the agent is not back"))
        return;
    char loc[600], path[1200], local[NW_PATH_MAX + 32];
    snprintf(loc, sizeof(loc), "{\"storageId\":\"%s\",\"filePath\":\"/var/captures/exp1.cap\"}",
             store_ok);
    if (put_capture("exp1", loc, port, path, sizeof(path)) != 0)
        return;
    int before = nw_agent_log_count(&srv, "vm1", "event=upload_regrant");
    send_traffic(port, "exp", 1500);
    stop_capture("exp1");
    if (!ended_as("exp1", "Stopped", "Manual", 120000))
        return;
    snprintf(local, sizeof(local), "%s/exp1.cap", root);
    char sha[65];
    long long size;
    sha256_file(local, sha, &size);
    blob_is(blob_of(path), size, sha);
    int regrants = nw_agent_log_count(&srv, "vm1", "event=upload_regrant") - before;
    long blocks = (long)((size + BLOCK - 1) / BLOCK), total = put_blocks(blob_of(path));
    NW_CHECK(regrants >= 1, "no fresh grant was asked for (%d)", regrants);
    /* A resume sends only what the journal does not list: at most the refused block again per
     * grant. */
    NW_CHECK(total >= blocks && total <= blocks + regrants, "%ld Put Block for %ld blocks", total,
             blocks);
    fprintf(stderr, "expiring grants: %d fresh grants for %ld blocks, %ld Put Block accepted\n",
            regrants, blocks, total);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: %s NETWATCHD NETWATCH_AGENT NODE AZURITE_MAIN_JS\n", argv[0]);
        return 2;
    }
    nw_harness_init();
    agent_bin = argv[2];
    if (nw_azurite_init(&az, argv[3], argv[4]) != 0 || nw_azurite_start(&az, 0) != 0 ||
        nw_server_init(&srv, argv[1]) != 0) {
        nw_server_cleanup(&srv);
        nw_azurite_cleanup(&az);
        printf("FAIL storage agent: cannot prepare Azurite and netwatchd\n");
        return 1;
    }
    char id[64];
    nw_agent_root(&srv, root, sizeof(root));
    if (add_account("capstore", NW_AZURITE_KEY, 1, store_ok, sizeof(store_ok)) == 0 &&
        add_account("wrongkey",
                    "a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2"
                    "tra2traw==",
                    0, store_bad, sizeof(store_bad)) == 0 &&
        NW_CHECK(nw_server_start(&srv) == 0, "netwatchd did not start") &&
        nw_agent_add(&srv, "vm1", id, sizeof(id)) == 0 && nw_watcher_put(&srv, nw) == 0) {
        agent = nw_agent_start_argv(&srv, agent_bin, "vm1", agent_args);
        if (NW_CHECK(nw_agent_wait_connected(&srv, id, 1, WAIT_MS), "the agent did not connect")) {
            storage_only();
            ring();
            resumed_parts();
            long_ring();
            both();
            refused();
            removed();
            storage_outage();
            agent_killed();
            expiring_grants(id);
        }
        NW_CHECK(nw_agent_stop(agent) == 0, "agent did not exit 0 within 5 s of SIGTERM");
    }
    if (srv.pid)
        NW_CHECK(nw_server_stop(&srv) == 0, "netwatchd did not stop cleanly");
    if (nw_failures) {
        nw_server_dump_log(&srv, 6000);
        nw_agent_dump_logs(&srv, 12000);
        nw_azurite_dump_log(&az, 3000);
    }
    nw_server_cleanup(&srv);
    nw_azurite_cleanup(&az);
    printf("%s storage agent: %d failure(s)\n", nw_failures ? "FAIL" : "ok", nw_failures);
    return nw_failures ? 1 : 0;
}
