-- Back to one actor string per entry and scope-less tokens. Entries hashed with version 2
-- (over their provenance too) no longer verify with the previous version, and every token
-- acts with its admin's full role again.
ALTER TABLE api_tokens DROP COLUMN scope;
ALTER TABLE audit_log DROP COLUMN hash_version;
ALTER TABLE audit_log DROP COLUMN via_detail;
ALTER TABLE audit_log DROP COLUMN via;
ALTER TABLE audit_log DROP COLUMN approved_by_name;
ALTER TABLE audit_log DROP COLUMN approved_by_id;
ALTER TABLE audit_log DROP COLUMN on_behalf_of_name;
ALTER TABLE audit_log DROP COLUMN on_behalf_of_id;
ALTER TABLE audit_log DROP COLUMN requested_by_name;
ALTER TABLE audit_log DROP COLUMN requested_by_id;
ALTER TABLE audit_log DROP COLUMN requested_by_kind;
