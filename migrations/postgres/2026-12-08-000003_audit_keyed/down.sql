-- Keyed entries no longer verify with the previous version (SHA-256 alone).
ALTER TABLE audit_log DROP COLUMN keyed;
ALTER TABLE audit_log DROP CONSTRAINT audit_log_seq_from_1;
