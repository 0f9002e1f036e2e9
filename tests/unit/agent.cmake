# Check suites for the agent's own state (agent/spool.c, agent/durable.c) and its reading of a
# start's spec (agent/spec.c) and the upload queue's records (agent/uploads.c): no network, no
# root.
if(TARGET nw_agent)
    nw_unit_test(test_agent_spool nw_agent nw_test_fixture)
    nw_unit_test(test_agent_spec nw_agent nw_test_fixture)
    nw_unit_test(test_agent_uploads nw_agent nw_test_fixture)
endif()
