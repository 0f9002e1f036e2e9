-- The capture runs on vm1's agent, which reported progress; netwatchd starts with every agent
-- disconnected, so the running capture shows Unknown.
INSERT INTO agents (id, resource_id, resource_key, sub_key, instance_id, instance_key, token_hash,
    created_ms)
VALUES ('40000000-0000-4000-8000-000000000001',
        '/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachines/vm1',
        '/subscriptions/{sub}/resourcegroups/rg2/providers/microsoft.compute/virtualmachines/vm1',
        '{sub}', NULL, '', 'c000000000000000000000000000000000000000000000000000000000000001',
        1767225000000);
UPDATE packet_captures SET provisioning_state = 'Succeeded', capture_status = 'Running',
    capture_start_ms = 1767225600000, unfinished = 1;
INSERT INTO capture_sessions (id, capture_id, agent_id, instance_id, status, packets, bytes,
    drops, files, time_limit_ms, created_ms, dispatched_ms, started_ms, first_packet_ms,
    progress_ms, backstop_ms, uploaded_bytes)
SELECT '50000000-0000-4000-8000-000000000001', id, '40000000-0000-4000-8000-000000000001', '',
    'Running', 1200, 834211, 3, 1, 18000000, 1767225599000, 1767225599500, 1767225600000,
    1767225600100, 1767225610000, 4102444800000, 500000 FROM packet_captures;
-- The counter the server keeps beside the rows it writes (migrations/0005_capture_quota.sql).
INSERT INTO capture_quota (sub_key, region, unfinished)
SELECT sub_key, region, count(*) FROM packet_captures WHERE unfinished = 1 GROUP BY sub_key, region
ON CONFLICT (sub_key, region) DO UPDATE SET unfinished = excluded.unfinished;
