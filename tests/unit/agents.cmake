# Check suite for the agent registry (core/agents.c, db/agent.c, migrations/0002) and token
# hashing (core/token_hash.c, OpenSSL). With netwatchd built, the suite also runs
# `netwatchd agent add|revoke|list` (NW_NETWATCHD).
nw_unit_test(test_agents nw_core)
if(TARGET netwatchd)
    set_property(TEST unit.test_agents APPEND PROPERTY
        ENVIRONMENT "NW_NETWATCHD=$<TARGET_FILE:netwatchd>")
endif()
