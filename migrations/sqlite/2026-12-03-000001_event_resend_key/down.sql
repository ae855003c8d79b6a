DROP INDEX events_resend;
CREATE UNIQUE INDEX events_reader_seq ON events(reader_id, seq, reader_ts);
DROP TABLE event_reader_marks;
