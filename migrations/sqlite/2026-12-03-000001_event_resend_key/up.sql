-- The resend key in the order events arrive, and each reader's highest event number kept
-- apart. Keep in step with migrations/postgres/2026-12-03-000001_event_resend_key/up.sql.

-- Ordered by reader first, the key had an insertion point per reader: with 1,000 readers
-- a group commit of 512 events changed about 400 of its pages, each written whole to the
-- WAL. By the reader's time first (a reader's clock is close to everyone else's), new keys
-- land on the last page or two. A resend repeats all three columns, so it is still one
-- lookup, and the three stay unique together.
--
-- The key ordered by reader also answered "the highest number this reader used" (where a
-- Modbus reader's numbering continues, and above which an event cannot be a resend). That
-- is now a row per reader, raised in the same transaction as the events.
CREATE TABLE event_reader_marks (
    reader_id TEXT PRIMARY KEY NOT NULL,
    highest_seq BIGINT NOT NULL
) WITHOUT ROWID;
INSERT INTO event_reader_marks (reader_id, highest_seq)
    SELECT reader_id, max(seq) FROM events
    WHERE reader_id IS NOT NULL AND seq IS NOT NULL
    GROUP BY reader_id;
DROP INDEX events_reader_seq;
CREATE UNIQUE INDEX events_resend ON events(reader_ts, reader_id, seq);
