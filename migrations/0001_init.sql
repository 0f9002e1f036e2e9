-- 0001: network watchers, packet captures and long-running operations.
--
-- Portable subset (SQLite now, PostgreSQL later): times are integer epoch milliseconds supplied
-- by the application; case-insensitive names are stored lower-cased in *_key columns with unique
-- indexes, beside the caller's casing; no INSERT OR REPLACE, no last_insert_rowid().

CREATE TABLE network_watchers (
    id          INTEGER PRIMARY KEY,
    sub_key     TEXT    NOT NULL,              -- subscription GUID, lower case
    rg_key      TEXT    NOT NULL,              -- resource group, lower case
    name_key    TEXT    NOT NULL,              -- watcher name, lower case
    rg          TEXT    NOT NULL,              -- resource group as the caller last wrote it
    name        TEXT    NOT NULL,              -- watcher name as the caller last wrote it
    sub         TEXT    NOT NULL,              -- subscription as the caller last wrote it
    region      TEXT    NOT NULL,              -- normalised location, e.g. westus2
    tags_json   TEXT    NOT NULL,              -- JSON object of string tags
    etag        TEXT    NOT NULL,              -- GUID; shown as W/"etag"; shared by its captures
    version     INTEGER NOT NULL,              -- bumped with every etag change (compare-and-set)
    created_ms  INTEGER NOT NULL,
    updated_ms  INTEGER NOT NULL
);
CREATE UNIQUE INDEX network_watchers_by_key ON network_watchers (sub_key, rg_key, name_key);
-- Azure allows one watcher per subscription and region.
CREATE UNIQUE INDEX network_watchers_by_region ON network_watchers (sub_key, region);

CREATE TABLE packet_captures (
    id                  INTEGER PRIMARY KEY,
    watcher_id          INTEGER NOT NULL REFERENCES network_watchers (id) ON DELETE CASCADE,
    name_key            TEXT    NOT NULL,      -- capture name, lower case
    name                TEXT    NOT NULL,      -- capture name as created
    sub_key             TEXT    NOT NULL,      -- copied from the watcher for the per-region limit
    region              TEXT    NOT NULL,      -- copied from the watcher for the per-region limit
    target              TEXT    NOT NULL,      -- VM or scale-set resource id, as given
    properties_json     TEXT    NOT NULL,      -- normalised PacketCaptureParameters, defaults filled
    provisioning_state  TEXT    NOT NULL,      -- Updating | Succeeded | Failed | Deleting
    capture_status      TEXT    NOT NULL,      -- NotStarted | Running | Stopped | Error | Unknown
    stop_reason         TEXT,                  -- NULL until stopped
    capture_errors_json TEXT    NOT NULL,      -- JSON array of PcError values
    unfinished          INTEGER NOT NULL,      -- 1 while it counts against the per-region limit
    capture_start_ms    INTEGER,               -- when the agent started it
    create_operation_id TEXT    NOT NULL,
    created_ms          INTEGER NOT NULL,
    updated_ms          INTEGER NOT NULL
);
CREATE UNIQUE INDEX packet_captures_by_key ON packet_captures (watcher_id, name_key);
CREATE UNIQUE INDEX packet_captures_by_create_operation ON packet_captures (create_operation_id);
CREATE INDEX packet_captures_unfinished ON packet_captures (sub_key, region) WHERE unfinished = 1;

-- Long-running operations behind Azure-AsyncOperation (.../operations/{id}) and
-- Location (.../operationResults/{id}). Kept after they end so late pollers get an answer.
CREATE TABLE operations (
    id            TEXT    PRIMARY KEY,         -- GUID, lower case
    sub_key       TEXT    NOT NULL,
    region        TEXT    NOT NULL,
    kind          TEXT    NOT NULL,            -- watcher.delete | capture.create | capture.delete | capture.stop
    resource_id   TEXT    NOT NULL,            -- the ARM id the operation acts on
    status        TEXT    NOT NULL,            -- InProgress | Succeeded | Failed
    error_code    TEXT,
    error_message TEXT,
    result_status INTEGER,                     -- HTTP status the Location monitor answers once done
    result_json   TEXT,                        -- its body; NULL for none
    api_version   TEXT    NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER
);
-- Start-up finds the operations still running (e.g. creates not yet dispatched).
CREATE INDEX operations_running ON operations (kind, start_ms) WHERE status = 'InProgress';
