-- The last run of each job that runs once for all instances sharing the database
-- (server/jobs.rs), so that it survives a restart and every instance shows it. Keep in
-- step with migrations/sqlite/2026-12-09-000030_job_runs/up.sql.

-- due_at is the scheduled time the run was for: an instance that finds its due time
-- already recorded knows another instance ran it and does not run it again.
CREATE TABLE job_runs (
    job TEXT NOT NULL PRIMARY KEY,
    due_at TIMESTAMP NOT NULL,
    started_at TIMESTAMP NOT NULL,
    duration_ms BIGINT NOT NULL,
    succeeded BOOLEAN NOT NULL,
    detail TEXT NOT NULL,
    instance TEXT NOT NULL
);
