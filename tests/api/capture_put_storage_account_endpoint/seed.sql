-- Registered with an emulator's endpoint and account name (Azurite's layout).
INSERT INTO storage_accounts (resource_key, resource_id, account_name, blob_endpoint, shared_key, created_ms)
VALUES ('/subscriptions/{sub}/resourcegroups/rg2/providers/microsoft.storage/storageaccounts/pcstore',
        '/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Storage/storageAccounts/pcstore',
        'devstoreaccount1', 'http://127.0.0.1:10000/devstoreaccount1', 'a2V5', 0);
