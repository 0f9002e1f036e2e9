-- 0006: the capture filter each session's agent installed: the pcap expression of its start's
-- ack (ack.filter, docs/agent-protocol.md), built from the session's filters with that
-- machine's addresses. NULL until the agent said it; '' when the session captures every packet.
-- Up to 60 KiB, so the session reads that the hot paths copy (db/session.h) leave it out; GET
-- and queryStatus read it by itself (db_session_filters_by_capture).
ALTER TABLE capture_sessions ADD COLUMN filter_expression TEXT;
