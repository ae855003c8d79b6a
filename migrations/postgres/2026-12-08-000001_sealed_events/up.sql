-- Sealed events (docs/protocol.md) and seqs matched by (reader, seq) alone (PostgreSQL).
-- Keep in step with migrations/sqlite/2026-12-08-000001_sealed_events/up.sql, which says
-- why existing MQTT readers are marked legacy.
ALTER TABLE readers ADD COLUMN legacy BOOLEAN NOT NULL DEFAULT FALSE;
UPDATE readers SET legacy = TRUE WHERE protocol = 'mqtt';
ALTER TABLE events ADD COLUMN content_digest BIGINT;
