-- Alarm acknowledgements. Keep in step with migrations/postgres/2026-12-01-000002_alarms/up.sql.

-- An alarm (forced open, held open, tamper, reader offline) stays on the dashboard until
-- someone acknowledges it; the event itself is never changed.
CREATE TABLE alarm_acks (
    event_id BIGINT PRIMARY KEY,
    acked_by TEXT NOT NULL,
    acked_at TIMESTAMP NOT NULL
);
