nw_unit_test(test_core_cache nw_core)
