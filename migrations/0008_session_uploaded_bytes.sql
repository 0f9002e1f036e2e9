-- 0008: how much of a session's capture files the blob service holds (progress.uploadedBytes,
-- docs/agent-protocol.md), shown as captureDetails.uploadedBytes. 0 for a session with no
-- storage account, or before its first upload.
ALTER TABLE capture_sessions ADD COLUMN uploaded_bytes INTEGER NOT NULL DEFAULT 0;
