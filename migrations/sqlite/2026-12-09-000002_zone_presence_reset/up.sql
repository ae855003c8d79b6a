-- A zone's daily anti-passback reset: the local time of day ("HH:MM", on its site's clock)
-- at which everyone counted inside it is forgotten; NULL for none (SQLite). Keep in step
-- with migrations/postgres/2026-12-09-000002_zone_presence_reset/up.sql.
ALTER TABLE zones ADD COLUMN presence_reset TEXT;
