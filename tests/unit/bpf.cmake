# Check suites for common/bpf_expr: the expression text (libc only), and the same expressions
# compiled and run by libpcap (the agent's dependency; the imported target is per directory, so
# it is looked up again here).
nw_unit_test(test_bpf_expr nw_common)
pkg_check_modules(PCAP REQUIRED IMPORTED_TARGET libpcap)
nw_unit_test(test_bpf_expr_pcap nw_common PkgConfig::PCAP)
