-- The event log: every swipe, door state change, alarm and reader fault (SQLite).
-- Keep in step with migrations/postgres/2026-11-25-000001_events/up.sql.
-- Append-only: the appliance never updates or deletes a row except by the retention job.

CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TIMESTAMP NOT NULL,
    reader_id TEXT,
    seq BIGINT,
    reader_ts TIMESTAMP,
    kind TEXT NOT NULL,
    door_id BIGINT,
    person_id BIGINT,
    credential_id BIGINT,
    presented TEXT,
    result TEXT,
    deny_code TEXT,
    decision_id TEXT,
    command TEXT,
    detail TEXT NOT NULL DEFAULT ''
);
-- A reader's event is handled once: a resend after a reconnect has the same seq and ts.
CREATE UNIQUE INDEX events_reader_seq ON events(reader_id, seq, reader_ts);
CREATE INDEX events_at ON events(at);
CREATE INDEX events_person_at ON events(person_id, at);
CREATE INDEX events_door_at ON events(door_id, at);
CREATE INDEX events_kind_at ON events(kind, at);
CREATE INDEX events_result_at ON events(result, at);
