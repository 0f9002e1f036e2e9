-- 0003: which agent runs a capture, and a stop waiting for that agent.
--
-- A capture on a VM with a registered agent is handed to that agent: agent_id is set in the
-- create's transaction. While the capture is Updating, its start command is pending: it is
-- (re)sent whenever the agent is connected, until the agent acknowledges it. A stop of a
-- running capture records its operation in stop_operation_id; the stop command is (re)sent
-- until the agent reports the capture ended, which also ends that operation.
ALTER TABLE packet_captures ADD COLUMN agent_id TEXT;
ALTER TABLE packet_captures ADD COLUMN stop_operation_id TEXT;
CREATE INDEX packet_captures_by_agent ON packet_captures (agent_id) WHERE agent_id IS NOT NULL;
