DROP INDEX events_import_key;
ALTER TABLE events DROP COLUMN import_key;
ALTER TABLE events DROP COLUMN origin;
