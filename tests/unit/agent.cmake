# Check suites for the agent's own state (agent/spool.c, agent/durable.c): no network, no root.
if(TARGET nw_agent)
    nw_unit_test(test_agent_spool nw_agent nw_test_fixture)
endif()
