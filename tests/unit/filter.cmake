# Check suite for filter/ (the shared filter-set -> BPF program check, libpcap).
nw_unit_test(test_filter nw_filter)
