-- The account the request names, as `netwatchd storage add` registers it (default endpoint).
INSERT INTO storage_accounts (resource_key, resource_id, account_name, blob_endpoint, shared_key, created_ms)
VALUES ('/subscriptions/{sub}/resourcegroups/rg2/providers/microsoft.storage/storageaccounts/pcstore',
        '/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Storage/storageAccounts/pcstore',
        'pcstore', 'https://pcstore.blob.core.windows.net', 'a2V5', 0);
