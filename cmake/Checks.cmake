# Project-wide checks that are not C unit tests: formatting, the OpenAPI contract, the official
# Azure SDK against the real binary. Registered only in the main (non-sanitizer) build tree.
add_test(NAME lint.clang-format COMMAND ${CMAKE_SOURCE_DIR}/scripts/check-format.sh)
set_tests_properties(lint.clang-format PROPERTIES LABELS "lint")

if(EXISTS ${CMAKE_SOURCE_DIR}/tests/node/lint-openapi.sh)
    add_test(NAME lint.openapi COMMAND ${CMAKE_SOURCE_DIR}/tests/node/lint-openapi.sh)
    set_tests_properties(lint.openapi PROPERTIES LABELS "lint" TIMEOUT 120)
endif()

if(EXISTS ${CMAKE_SOURCE_DIR}/tests/node/run-sdk-test.sh)
    add_test(NAME sdk.azure-arm-network
             COMMAND ${CMAKE_SOURCE_DIR}/tests/node/run-sdk-test.sh $<TARGET_FILE:netwatchd>)
    set_tests_properties(sdk.azure-arm-network PROPERTIES LABELS "sdk" TIMEOUT 180)
endif()
