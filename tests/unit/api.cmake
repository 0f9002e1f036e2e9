nw_unit_test(test_api nw_api)
