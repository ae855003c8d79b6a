-- Events imported from a previous access system (PostgreSQL). Keep in step with
-- migrations/sqlite/2026-12-10-000100_imported_events/up.sql, which says what each
-- column holds.
ALTER TABLE events ADD COLUMN origin TEXT NOT NULL DEFAULT 'live'
    CHECK (origin IN ('live', 'imported'));
ALTER TABLE events ADD COLUMN import_key BIGINT;
CREATE UNIQUE INDEX events_import_key ON events(import_key) WHERE import_key IS NOT NULL;
