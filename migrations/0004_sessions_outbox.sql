-- 0004: one session per machine that runs a capture, and the outbox of commands to agents.
--
-- A capture on a VM has one session; a capture on a scale set has one per selected instance
-- with an active agent. The session's id is the captureId its agent knows. The capture row
-- keeps the aggregate of its sessions (core/sessions.c writes both in one transaction).
--
-- The outbox holds every command owed to an agent. A row is written in the transaction of the
-- create, stop or delete that owes it; it is sent when new and again after each hello until it
-- is acked; it is acked in the transaction that applies its effect (the agent's ack of a start,
-- the end of the session for a stop), or when it no longer applies (a start of a session that
-- was stopped or deleted before it began). Its id is the commandId the agent deduplicates.
-- session_id has no foreign key on purpose: a stop owed for a deleted capture outlives it.
--
-- packet_captures.agent_id (0003) is no longer written: the sessions say which agents run a
-- capture. Rows of 0003 are carried over below (session id = the capture's create operation
-- id, which is the captureId those agents were given; command ids as they were sent).
--
-- Portable subset as before: epoch-ms times from the application, no INSERT OR REPLACE.

CREATE TABLE capture_sessions (
    id              TEXT    PRIMARY KEY,        -- GUID, lower case: the agent's captureId
    capture_id      INTEGER NOT NULL REFERENCES packet_captures (id) ON DELETE CASCADE,
    agent_id        TEXT    NOT NULL,           -- agents.id of the agent that runs it
    instance_id     TEXT    NOT NULL,           -- scale-set instance as registered; '' for a VM
    status          TEXT    NOT NULL,           -- NotStarted | Running | Stopped | Error
    stop_reason     TEXT,                       -- set when Stopped
    error_code      TEXT,                       -- a PcError, set when Error
    error_message   TEXT,                       -- why, for people
    packets         INTEGER NOT NULL DEFAULT 0, -- totals of the latest progress report
    bytes           INTEGER NOT NULL DEFAULT 0,
    drops           INTEGER NOT NULL DEFAULT 0,
    files           INTEGER NOT NULL DEFAULT 0,
    time_limit_ms   INTEGER NOT NULL,           -- the session's own time limit
    created_ms      INTEGER NOT NULL,           -- requested (the create)
    dispatched_ms   INTEGER,                    -- its start first handed to the channel
    started_ms      INTEGER,                    -- the agent's ack (agent clock when given)
    first_packet_ms INTEGER,                    -- from progress (agent clock)
    ended_ms        INTEGER,                    -- Stopped or Error
    progress_ms     INTEGER,                    -- the latest progress report arrived
    backstop_ms     INTEGER                     -- while Running: time limit due (server clock)
);
CREATE INDEX capture_sessions_by_capture ON capture_sessions (capture_id);
CREATE INDEX capture_sessions_by_agent ON capture_sessions (agent_id, status);
-- Timers: a start not acked by its deadline, a Running session past its time limit.
CREATE INDEX capture_sessions_start_due ON capture_sessions (created_ms)
    WHERE status = 'NotStarted';
CREATE INDEX capture_sessions_backstop_due ON capture_sessions (backstop_ms)
    WHERE status = 'Running';

CREATE TABLE agent_outbox (
    id          TEXT    PRIMARY KEY,            -- GUID, lower case: the commandId
    agent_id    TEXT    NOT NULL,               -- the agent it is for
    session_id  TEXT    NOT NULL,               -- capture_sessions.id it concerns
    kind        TEXT    NOT NULL,               -- start | stop
    stop_reason TEXT,                           -- stop only: Manual | SessionDeleted | ...
    state       TEXT    NOT NULL,               -- pending | sent | acked
    created_ms  INTEGER NOT NULL,
    sent_ms     INTEGER,                        -- last handed to the agent's channel
    acked_ms    INTEGER                         -- settled
);
-- What is still owed to an agent, oldest first (sent after each hello).
CREATE INDEX agent_outbox_owed ON agent_outbox (agent_id, created_ms) WHERE state <> 'acked';
CREATE INDEX agent_outbox_by_session ON agent_outbox (session_id);
-- Acked rows are pruned after a while (core/sessions.c).
CREATE INDEX agent_outbox_acked ON agent_outbox (acked_ms) WHERE state = 'acked';

INSERT INTO capture_sessions (id, capture_id, agent_id, instance_id, status, stop_reason,
                              time_limit_ms, created_ms, started_ms, ended_ms, backstop_ms)
SELECT create_operation_id, id, agent_id, '',
       CASE WHEN provisioning_state = 'Updating' THEN 'NotStarted'
            WHEN provisioning_state = 'Failed' THEN 'Error'
            ELSE capture_status END,
       stop_reason, 604800000, created_ms, capture_start_ms,
       CASE WHEN unfinished = 0 THEN updated_ms END,
       CASE WHEN capture_status = 'Running' THEN updated_ms + 604800000 END
  FROM packet_captures WHERE agent_id IS NOT NULL;

INSERT INTO agent_outbox (id, agent_id, session_id, kind, state, created_ms)
SELECT create_operation_id, agent_id, create_operation_id, 'start', 'pending', created_ms
  FROM packet_captures WHERE agent_id IS NOT NULL AND provisioning_state = 'Updating';

INSERT INTO agent_outbox (id, agent_id, session_id, kind, stop_reason, state, created_ms)
SELECT stop_operation_id, agent_id, create_operation_id, 'stop', 'Manual', 'pending', updated_ms
  FROM packet_captures WHERE agent_id IS NOT NULL AND stop_operation_id IS NOT NULL;
