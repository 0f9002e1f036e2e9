# Check suite for the storage-account registry (core/storage_accounts.c, db/storage_account.c,
# migrations/0007).
nw_unit_test(test_storage_accounts nw_core)
