-- Agents as `netwatchd agent add` and a hello would leave them (migrations/0002_agents.sql).
INSERT INTO agents (id, resource_id, resource_key, sub_key, instance_id, instance_key, token_hash,
    created_ms, revoked_ms, connected, connected_ms, last_seen_ms, agent_version, os, hostname,
    addresses_json, last_applied_seq)
VALUES ('22222222-2222-4222-8222-222222222222', '/subscriptions/{sub}/resourceGroups/rg1/providers/Microsoft.Compute/virtualMachineScaleSets/ss1', '/subscriptions/{sub}/resourcegroups/rg1/providers/microsoft.compute/virtualmachinescalesets/ss1', '{sub}', 'Inst-3', 'inst-3',
    'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 1767225660000, NULL, 0, NULL, NULL,
    NULL, NULL, NULL, '[]', 7);
UPDATE agents SET addresses_json = 'not json' WHERE id = '22222222-2222-4222-8222-222222222222';
