-- Agents as `netwatchd agent add` and a hello would leave them (migrations/0002_agents.sql).
INSERT INTO agents (id, resource_id, resource_key, sub_key, instance_id, instance_key, token_hash,
    created_ms, revoked_ms, connected, connected_ms, last_seen_ms, agent_version, os, hostname,
    addresses_json, last_applied_seq)
VALUES ('44444444-4444-4444-8444-444444444444', '/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm9', '/subscriptions/{sub}/resourcegroups/rg1/providers/microsoft.compute/virtualmachines/vm9', '{sub}', NULL, '',
    'dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd', 1767225700000, 1767312000000, 1, 1767229200000, 1767229300000,
    '0.1.0', 'linux', 'vm9', '[]', 7);
INSERT INTO agents (id, resource_id, resource_key, sub_key, instance_id, instance_key, token_hash,
    created_ms, revoked_ms, connected, connected_ms, last_seen_ms, agent_version, os, hostname,
    addresses_json, last_applied_seq)
VALUES ('11111111-1111-4111-8111-111111111111', '/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachines/vm1', '/subscriptions/{sub}/resourcegroups/rg1/providers/microsoft.compute/virtualmachines/vm1', '{sub}', NULL, '',
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 1767225600000, NULL, 1, 1767229200000, 1767229215000,
    '0.2.0', 'linux', 'vm1.internal', '[{"name":"eth0","addresses":["10.0.0.4","fe80::1"]},{"name":"lo","addresses":["127.0.0.1"]}]', 7);
