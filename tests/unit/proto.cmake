# Check suite for proto/ (the agent channel codec), linked against nw_proto.
nw_unit_test(test_proto nw_proto)
nw_unit_test(test_proto_ws nw_proto)
