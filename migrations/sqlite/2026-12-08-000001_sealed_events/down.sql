ALTER TABLE events DROP COLUMN content_digest;
ALTER TABLE readers DROP COLUMN legacy;
