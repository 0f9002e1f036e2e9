-- 10000 captures that count against the per-subscription-and-region limit (see migrations/0001_init.sql).
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10000)
INSERT INTO packet_captures (watcher_id, name_key, name, sub_key, region, target, properties_json,
    provisioning_state, capture_status, stop_reason, capture_errors_json, unfinished,
    capture_start_ms, create_operation_id, created_ms, updated_ms)
SELECT w.id, 'seed' || n.i, 'seed' || n.i, w.sub_key, w.region, '/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachines/vm1', '{}',
    'Failed', 'NotStarted', NULL, '[]', 0, NULL, 'seed-op-' || n.i, 1700000000000, 1700000000000
FROM n, network_watchers w WHERE w.name_key = 'nw1' AND w.region = 'westus';
-- The counter the server keeps beside the rows it writes (migrations/0005_capture_quota.sql).
INSERT INTO capture_quota (sub_key, region, unfinished)
SELECT sub_key, region, count(*) FROM packet_captures WHERE unfinished = 1 GROUP BY sub_key, region
ON CONFLICT (sub_key, region) DO UPDATE SET unfinished = excluded.unfinished;
