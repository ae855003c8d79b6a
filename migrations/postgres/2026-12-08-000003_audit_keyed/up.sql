-- The audit log's entries are numbered from 1, and each says whether it is chained with the
-- appliance key (HMAC-SHA256) or, as every entry before this migration, with SHA-256 alone.
-- Keep in step with migrations/sqlite/2026-12-08-000003_audit_keyed/up.sql.
--
-- An entry numbered below 1 (one that
-- `audit verify` could not see before this version: forged) stops the migration, and the
-- appliance with it, until it is looked into: `SELECT * FROM audit_log WHERE seq < 1`.
ALTER TABLE audit_log ADD CONSTRAINT audit_log_seq_from_1 CHECK (seq >= 1);
ALTER TABLE audit_log ADD COLUMN keyed BOOLEAN NOT NULL DEFAULT FALSE;
