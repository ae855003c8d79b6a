-- Events imported from a previous access system (`gatehouse import --events`), told
-- apart from the ones this appliance decided (SQLite). Keep in step with
-- migrations/postgres/2026-12-10-000100_imported_events/up.sql.
--
-- origin: `live` for every event the appliance records itself (all rows before this
-- migration), `imported` for history brought in from a CSV. Both are read alike by the
-- history layer and the baselines; the column says which is which to an auditor.
ALTER TABLE events ADD COLUMN origin TEXT NOT NULL DEFAULT 'live'
    CHECK (origin IN ('live', 'imported'));
-- An imported row's natural key: a hash of what it says (time, person, card, door,
-- result, reason, direction) and of how many identical rows came before it in its file.
-- Unique, so importing the same file (or an overlapping export) again adds nothing.
ALTER TABLE events ADD COLUMN import_key BIGINT;
CREATE UNIQUE INDEX events_import_key ON events(import_key) WHERE import_key IS NOT NULL;
