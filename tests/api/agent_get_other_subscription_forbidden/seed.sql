-- Agents as `netwatchd agent add` and a hello would leave them (migrations/0002_agents.sql).
INSERT INTO agents (id, resource_id, resource_key, sub_key, instance_id, instance_key, token_hash,
    created_ms, revoked_ms, connected, connected_ms, last_seen_ms, agent_version, os, hostname,
    addresses_json, last_applied_seq)
VALUES ('33333333-3333-4333-8333-333333333333', '/subscriptions/{othersub}/resourceGroups/rgx/providers/Microsoft.Compute/virtualMachines/vmx', '/subscriptions/{othersub}/resourcegroups/rgx/providers/microsoft.compute/virtualmachines/vmx', '{othersub}', NULL, '',
    'cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc', 1767225630000, NULL, 1, 1767229200000, 1767229200000,
    '0.2.0', 'linux', 'vmx', '[]', 7);
