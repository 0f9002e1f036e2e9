-- 0007: the storage-account registry (core/storage_accounts.h). A capture whose
-- storageLocation.storageId names one of these rows uploads to that account; any other
-- storageId is refused at create time.
--
-- shared_key is the account key the server signs per-blob SAS URLs with. It is a secret: it is
-- written by `netwatchd storage add`, read only by the SAS signer, and never selected by the
-- listing statements (db/storage_account.c keeps it out of struct db_storage_account).
CREATE TABLE storage_accounts (
    resource_key  TEXT    PRIMARY KEY,  -- the storageAccounts resource id, lower-cased
    resource_id   TEXT    NOT NULL,     -- as registered (its casing is shown back)
    account_name  TEXT    NOT NULL,     -- the name SAS signatures use (/blob/{account}/...)
    blob_endpoint TEXT    NOT NULL,     -- base URL of the account's blob service, no trailing '/'
    shared_key    TEXT    NOT NULL,     -- base64 account key
    created_ms    INTEGER NOT NULL
);
