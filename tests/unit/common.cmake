# Check suites for common/ (one per module), linked against nw_common.
nw_unit_test(test_common_netfilter nw_common)
nw_unit_test(test_common_armid nw_common)
nw_unit_test(test_common_capture_path nw_common)
nw_unit_test(test_common_apiversion nw_common)
nw_unit_test(test_common_timefmt nw_common)
