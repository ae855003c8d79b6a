-- The audit log's entries are numbered from 1, and each says whether it is chained with the
-- appliance key (HMAC-SHA256) or, as every entry before this migration, with SHA-256 alone.
-- Keep in step with migrations/postgres/2026-12-08-000003_audit_keyed/up.sql.
--
-- SQLite adds a CHECK only by rebuilding the table. An entry numbered below 1 (one that
-- `audit verify` could not see before this version: forged) stops the migration, and the
-- appliance with it, until it is looked into: `SELECT * FROM audit_log WHERE seq < 1`.
CREATE TABLE audit_log_keyed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq BIGINT NOT NULL UNIQUE CHECK (seq >= 1),
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT,
    summary TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    keyed BOOLEAN NOT NULL DEFAULT 0 CHECK (keyed IN (0, 1))
);
INSERT INTO audit_log_keyed
    (id, seq, at, actor, action, entity, entity_id, summary, before_json, after_json,
     prev_hash, hash, keyed)
    SELECT id, seq, at, actor, action, entity, entity_id, summary, before_json, after_json,
        prev_hash, hash, 0
    FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_keyed RENAME TO audit_log;
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_entity ON audit_log(entity, entity_id);
