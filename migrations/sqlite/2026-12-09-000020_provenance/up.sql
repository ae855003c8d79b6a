-- Provenance of every change, and API token scopes.
-- Keep in step with migrations/postgres/2026-12-09-000020_provenance/up.sql.
--
-- Each audit entry records who asked for the change (requested_by_*: its kind, the id and
-- name of the admin, token, OS user … and, for a token, the admin it acts for in
-- on_behalf_of_*), who approved it when approval is required (approved_by_*), and through
-- what (via: console, api, cli, import; via_detail: the imported file). hash_version says
-- which fields the entry's hash covers: 1, the fields before provenance (every entry
-- written before this migration); 2, those and the provenance columns.
ALTER TABLE audit_log ADD COLUMN requested_by_kind TEXT NOT NULL DEFAULT 'recorded';
ALTER TABLE audit_log ADD COLUMN requested_by_id BIGINT;
ALTER TABLE audit_log ADD COLUMN requested_by_name TEXT NOT NULL DEFAULT '';
ALTER TABLE audit_log ADD COLUMN on_behalf_of_id BIGINT;
ALTER TABLE audit_log ADD COLUMN on_behalf_of_name TEXT;
ALTER TABLE audit_log ADD COLUMN approved_by_id BIGINT;
ALTER TABLE audit_log ADD COLUMN approved_by_name TEXT;
ALTER TABLE audit_log ADD COLUMN via TEXT NOT NULL DEFAULT 'unknown';
ALTER TABLE audit_log ADD COLUMN via_detail TEXT;
ALTER TABLE audit_log ADD COLUMN hash_version INTEGER NOT NULL DEFAULT 1;

-- Entries from before keep their actor text and their version-1 hash; their provenance is
-- read from the actor as well as it can be (the same mapping as
-- `Provenance::from_recorded_actor`, which `audit verify` checks them against): `cli:USER`
-- is the CLI user USER; the sign-in lockout and the first-admin setup are the appliance and
-- the setup code's holder, through the console; any other actor is an admin's username,
-- through the console or the API (not told apart before), kept as recorded.
UPDATE audit_log SET requested_by_kind = 'cli_user', requested_by_name = substr(actor, 5),
    via = 'cli'
    WHERE substr(actor, 1, 4) = 'cli:';
UPDATE audit_log SET requested_by_kind = 'appliance', requested_by_name = actor,
    via = 'console'
    WHERE actor = 'sign-in lockout';
UPDATE audit_log SET requested_by_kind = 'setup_code', via = 'console'
    WHERE actor = 'first-admin setup';
UPDATE audit_log SET requested_by_name = actor WHERE requested_by_kind = 'recorded';

-- What a token may do: read_only (every GET) or full (what its admin's role allows).
-- Tokens issued before scopes keep doing what they did: full.
ALTER TABLE api_tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'full';
