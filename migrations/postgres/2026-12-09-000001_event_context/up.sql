-- Events keep the context they were decided in (PostgreSQL). Keep in step with
-- migrations/sqlite/2026-12-09-000001_event_context/up.sql, which says what each column
-- holds and which stay NULL on rows recorded before.
ALTER TABLE events ADD COLUMN site_id BIGINT;
ALTER TABLE events ADD COLUMN zone_id BIGINT;
ALTER TABLE events ADD COLUMN antipassback_zone_id BIGINT;
ALTER TABLE events ADD COLUMN direction TEXT;
ALTER TABLE events ADD COLUMN reason_code TEXT;
ALTER TABLE events ADD COLUMN policy_version BIGINT;
ALTER TABLE events ADD COLUMN risk_score DOUBLE PRECISION;
ALTER TABLE events ADD COLUMN risk_reasons TEXT;

UPDATE events SET direction = r.direction
    FROM readers r
    WHERE r.reader_id = events.reader_id AND events.kind = 'swipe';
-- A swipe's detail is the decision as JSON (within a PIN lockout, under "decision").
UPDATE events SET reason_code = COALESCE(
        detail::jsonb ->> 'kind',
        detail::jsonb -> 'decision' ->> 'kind'
    )
    WHERE kind = 'swipe' AND detail LIKE '{%}';

CREATE INDEX events_zone_at ON events(zone_id, at);
CREATE INDEX events_antipassback_at ON events(antipassback_zone_id, at)
    WHERE antipassback_zone_id IS NOT NULL;
