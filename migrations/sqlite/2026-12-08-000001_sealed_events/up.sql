-- Sealed events (docs/protocol.md) and seqs matched by (reader, seq) alone (SQLite).
-- Keep in step with migrations/postgres/2026-12-08-000001_sealed_events/up.sql.

-- A reader marked legacy may send bare (v1) events; every other reader must seal them
-- (v2), so a new reader is sealed unless registered as legacy.
ALTER TABLE readers ADD COLUMN legacy BOOLEAN NOT NULL DEFAULT 0;
-- Readers registered before sealed events existed send bare events: marking them sealed
-- would refuse every swipe of every MQTT door at the upgrade. They keep working as legacy
-- readers; an admin clears the mark once a reader's firmware seals its events.
UPDATE readers SET legacy = 1 WHERE protocol = 'mqtt';

-- What a reader's event said (every field but the PIN's digits, see
-- message::content_digest): the same seq again with other content is a reused seq, not a
-- resend. NULL for rows recorded before, and for events that are not a reader's.
ALTER TABLE events ADD COLUMN content_digest BIGINT;
