/* blobRequest -> blobGrant (see server/blob_grant.h). */
#include "server/blob_grant.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/timefmt.h"
#include "core/storage_accounts.h"
#include "storage/blob_name.h"
#include "storage/sas.h"

static void refuse(struct proto_blob_grant *g, const char *code, const char *message)
{
    g->ok = 0;
    snprintf(g->code, sizeof(g->code), "%s", code);
    snprintf(g->message, sizeof(g->message), "%s", message);
}

/* The capture's storageId and storagePath (borrowed from props), or NULL ids when it has none. */
static void storage_of(json_t *props, const char **id, const char **path)
{
    json_t *sl = json_object_get(props, "storageLocation");
    *id = json_string_value(json_object_get(sl, "storageId"));
    *path = json_string_value(json_object_get(sl, "storagePath"));
}

/* Signs the URL for blob on the registered account storage_id. */
static enum cp_err sign(struct core *core, const char *storage_id, const char *blob, int64_t now,
                        int64_t lifetime_ms, char **url, struct cp_error *e)
{
    struct db_storage_account acct;
    char key[DB_STORAGE_KEY_MAX];
    enum cp_err err =
        core_storage_account_find(core_store(core), storage_id, "storageId", &acct, e);
    if (err == CP_OK)
        err = core_storage_account_key(core_store(core), storage_id, key, sizeof(key), e);
    if (err != CP_OK)
        return err;
    struct storage_sas_blob p = {
        .account = acct.account_name,
        .container = CORE_STORAGE_CONTAINER,
        .blob = blob,
        .permissions = "cw",
        .start_ms = now - BLOB_GRANT_SKEW_MS,
        .expiry_ms = now + lifetime_ms,
        .protocol = strncmp(acct.blob_endpoint, "http://", 7) == 0 ? STORAGE_SAS_HTTPS_HTTP
                                                                   : STORAGE_SAS_HTTPS,
    };
    err = storage_sas_blob_url(acct.blob_endpoint, &p, key, url, e);
    OPENSSL_cleanse(key, sizeof(key));
    return err;
}

void blob_grant_answer(struct core *core, const char *agent_id, const struct proto_blob_request *rq,
                       int64_t lifetime_ms, struct proto_msg *out)
{
    memset(out, 0, sizeof(*out));
    out->type = PROTO_BLOB_GRANT;
    struct proto_blob_grant *g = &out->blob_grant;
    g->id = rq->id;
    struct db_session s;
    struct db_capture cap;
    memset(&cap, 0, sizeof(cap));
    struct cp_error e = {{0}, {0}, {0}};
    if (core_session_of_agent(core, agent_id, rq->capture_id, &s, &cap, &e) != CP_OK) {
        refuse(g, PROTO_GRANT_NOT_YOUR_SESSION, e.message);
        db_capture_clear(&cap);
        return;
    }
    json_t *props = json_loads(cap.properties_json ? cap.properties_json : "", 0, NULL);
    const char *storage_id, *storage_path;
    storage_of(props, &storage_id, &storage_path);
    char blob[STORAGE_BLOB_NAME_MAX + 1];
    int64_t now = timefmt_now_ms();
    enum cp_err err;
    if (!storage_id) {
        refuse(g, PROTO_GRANT_NO_STORAGE, "The capture names no storage account.");
    } else if ((err = storage_blob_name(storage_path, s.instance_id, rq->file, blob, sizeof(blob),
                                        &e)) != CP_OK ||
               (err = sign(core, storage_id, blob, now, lifetime_ms, &g->url, &e)) != CP_OK) {
        log_warnx(
            "component=storage event=grant_refused agent=%s capture=%s file=%lld detail=\"%s\"",
            agent_id, rq->capture_id, (long long)rq->file, e.message);
        refuse(g, PROTO_GRANT_STORAGE_FAILED, e.message);
    } else {
        g->ok = 1;
        g->expires_at = now + lifetime_ms;
        log_info("component=storage event=grant agent=%s capture=%s file=%lld blob=\"%s\"",
                 agent_id, rq->capture_id, (long long)rq->file, blob);
    }
    json_decref(props);
    db_capture_clear(&cap);
}
