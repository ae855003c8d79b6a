-- Back to the table without the CHECK and the keyed column. Keyed entries then no longer
-- verify (the previous version hashes every entry with SHA-256 alone).
CREATE TABLE audit_log_unkeyed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seq BIGINT NOT NULL UNIQUE,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    entity_id TEXT,
    summary TEXT NOT NULL,
    before_json TEXT,
    after_json TEXT,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_log_unkeyed
    (id, seq, at, actor, action, entity, entity_id, summary, before_json, after_json,
     prev_hash, hash)
    SELECT id, seq, at, actor, action, entity, entity_id, summary, before_json, after_json,
        prev_hash, hash
    FROM audit_log;
DROP TABLE audit_log;
ALTER TABLE audit_log_unkeyed RENAME TO audit_log;
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_entity ON audit_log(entity, entity_id);
