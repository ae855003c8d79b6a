DROP TABLE admin_sessions;
ALTER TABLE admin_users DROP COLUMN locked_until;
ALTER TABLE admin_users DROP COLUMN failed_logins;
