# Check suites for storage/ (the SAS signer, the blob naming rule), linked against nw_storage.
if(TARGET nw_storage)
    nw_unit_test(test_storage_sas nw_storage)
    nw_unit_test(test_storage_blob_name nw_storage)
endif()
