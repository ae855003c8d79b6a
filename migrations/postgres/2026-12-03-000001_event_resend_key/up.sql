-- The resend key in the order events arrive, and each reader's highest event number kept
-- apart. Keep in step with migrations/sqlite/2026-12-03-000001_event_resend_key/up.sql,
-- which says why.
CREATE TABLE event_reader_marks (
    reader_id TEXT PRIMARY KEY,
    highest_seq BIGINT NOT NULL
);
INSERT INTO event_reader_marks (reader_id, highest_seq)
    SELECT reader_id, max(seq) FROM events
    WHERE reader_id IS NOT NULL AND seq IS NOT NULL
    GROUP BY reader_id;
DROP INDEX events_reader_seq;
CREATE UNIQUE INDEX events_resend ON events(reader_ts, reader_id, seq);
