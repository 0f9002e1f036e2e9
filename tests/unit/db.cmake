nw_unit_test(test_db_store nw_db)
