# The agent's side of filter/: capture_start refuses, on the real handle, a program the kernel
# would not run (needs CAP_NET_RAW to open lo: we run as root, CI too).
if(TARGET nw_agent)
    nw_unit_test(test_agent_filter nw_agent nw_test_fixture)
endif()
