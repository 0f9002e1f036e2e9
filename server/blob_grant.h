/*
 * Answers an agent's blobRequest (docs/agent-protocol.md): a short-lived SAS URL that lets the
 * agent create and write exactly one blob, the one file `file` of its session goes to
 * (storage/blob_name.h), signed here with the storage account's key (core/storage_accounts.h),
 * which never leaves the server.
 *
 * The SAS allows "cw" (create, write: Put Blob, Put Block, Put Block List) and nothing else, from
 * BLOB_GRANT_SKEW_MS before now (clocks differ) until the grant's lifetime after
 * (BLOB_GRANT_LIFETIME_MS unless --storage-grant-seconds says otherwise). An upload
 * that outlives it gets 403 from the blob service and asks again; blocks already staged stay.
 * http:// is allowed in the SAS only when the registered endpoint is itself http:// (an emulator
 * such as Azurite); a real account's SAS is https only.
 */
#ifndef NW_SERVER_BLOB_GRANT_H
#define NW_SERVER_BLOB_GRANT_H

#include "core/core.h"
#include "proto/proto.h"

#define BLOB_GRANT_LIFETIME_MS (15 * 60 * 1000)
#define BLOB_GRANT_SKEW_MS     (5 * 60 * 1000)

/*
 * Fills *out (zeroed first; type PROTO_BLOB_GRANT, id of rq) for agent agent_id's request rq
 * (borrowed): ok with url (malloc'ed: the caller frees out->url) and expires_at, or not ok with
 * code PROTO_GRANT_NOT_YOUR_SESSION, PROTO_GRANT_NO_STORAGE or PROTO_GRANT_STORAGE_FAILED and a
 * message for the agent's StorageFailed. Logs the grant (never the URL: it is a credential).
 * Called on a glue shard thread.
 */
void blob_grant_answer(struct core *core, const char *agent_id, const struct proto_blob_request *rq,
                       int64_t lifetime_ms, struct proto_msg *out);

#endif
