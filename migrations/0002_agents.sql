-- 0002: registered agents (netwatch-agent), one active per VM or per scale-set instance.
--
-- Same portable subset as 0001: epoch-ms times from the application, lower-cased *_key columns
-- behind unique indexes, no INSERT OR REPLACE. An agent is never deleted: revoking sets
-- revoked_ms, and the machine may then be registered again (a new row, a new id and token);
-- that is why uniqueness per machine holds among active rows only (a partial unique index,
-- which PostgreSQL has too).

CREATE TABLE agents (
    id               TEXT    PRIMARY KEY,           -- GUID, lower case
    resource_id      TEXT    NOT NULL,              -- VM or scale-set id as given (no trailing '/')
    resource_key     TEXT    NOT NULL,              -- resource_id lower-cased
    sub_key          TEXT    NOT NULL,              -- its subscription GUID, lower case (listing)
    instance_id      TEXT,                          -- scale-set instance id as given; NULL for a VM
    instance_key     TEXT    NOT NULL,              -- instance_id lower-cased; '' for a VM
    token_hash       TEXT    NOT NULL,              -- SHA-256 of the agent token, 64 lower-case hex
    created_ms       INTEGER NOT NULL,
    revoked_ms       INTEGER,                       -- NULL while active
    connected        INTEGER NOT NULL DEFAULT 0,    -- 1 while its channel is up
    connected_ms     INTEGER,                       -- when the channel last came up (hello)
    last_seen_ms     INTEGER,                       -- last hello, message or pong
    agent_version    TEXT,                          -- from hello; NULL until the first one
    os               TEXT,
    hostname         TEXT,
    addresses_json   TEXT    NOT NULL DEFAULT '[]', -- JSON array of {"name","addresses":[...]}
    last_applied_seq INTEGER NOT NULL DEFAULT 0     -- highest report seq applied (agent-protocol.md)
);
-- A presented token is hashed and looked up here; no two agents share a token.
CREATE UNIQUE INDEX agents_by_token ON agents (token_hash);
-- One active agent per VM, or per scale-set instance; revoked rows do not count.
CREATE UNIQUE INDEX agents_active_by_resource ON agents (resource_key, instance_key)
    WHERE revoked_ms IS NULL;
-- GET /subscriptions/{sub}/providers/Netwatch/agents.
CREATE INDEX agents_by_sub ON agents (sub_key, created_ms);
