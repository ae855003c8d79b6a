-- Events keep the context they were decided in (SQLite). Keep in step with
-- migrations/postgres/2026-12-09-000001_event_context/up.sql.
--
-- A door can move to another zone, and a zone's anti-passback can change, so where and
-- under which policy a swipe was decided cannot be worked out later from today's rows: it
-- is written with the event. On rows recorded before this migration site_id, zone_id,
-- antipassback_zone_id and policy_version stay NULL (the door's zone today is not
-- necessarily the zone it was in then); direction is taken from the swipe's reader (a
-- reader's direction is fixed when it is registered) and reason_code from the decision
-- stored in detail. risk_score and risk_reasons are NULL until the risk engine scores.
ALTER TABLE events ADD COLUMN site_id BIGINT;
ALTER TABLE events ADD COLUMN zone_id BIGINT;
-- The anti-passback zone the door counted for (its zone or the nearest ancestor with
-- anti-passback), on swipes: presence is rebuilt at start from its granted ones.
ALTER TABLE events ADD COLUMN antipassback_zone_id BIGINT;
ALTER TABLE events ADD COLUMN direction TEXT;
-- Why a swipe was answered as it was: the decision's reason kind (`entitled`,
-- `door_unlocked`, `free_access_schedule`, `soft_antipassback`, `no_entitlement`, ...).
ALTER TABLE events ADD COLUMN reason_code TEXT;
-- The audit sequence number the policy in force was built from (`LivePolicy::version`).
ALTER TABLE events ADD COLUMN policy_version BIGINT;
ALTER TABLE events ADD COLUMN risk_score DOUBLE;
-- JSON, as the risk engine will write it.
ALTER TABLE events ADD COLUMN risk_reasons TEXT;

UPDATE events SET direction = (
        SELECT r.direction FROM readers r WHERE r.reader_id = events.reader_id
    )
    WHERE kind = 'swipe' AND reader_id IS NOT NULL;
UPDATE events SET reason_code = COALESCE(
        json_extract(detail, '$.kind'),
        json_extract(detail, '$.decision.kind')
    )
    WHERE kind = 'swipe' AND json_valid(detail);

CREATE INDEX events_zone_at ON events(zone_id, at);
-- Only the swipes at doors under anti-passback: what the presence rebuild reads.
CREATE INDEX events_antipassback_at ON events(antipassback_zone_id, at)
    WHERE antipassback_zone_id IS NOT NULL;
