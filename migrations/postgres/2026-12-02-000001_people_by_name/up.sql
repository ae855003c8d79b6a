-- People in name order, as the API and the console list them. Keep in step with
-- migrations/sqlite/2026-12-02-000001_people_by_name/up.sql.

-- Without it every list sorted the whole table and deep pages sorted offset + limit rows
-- (150-240 ms at 100,000 people); with it a page is a walk along this index.
CREATE INDEX people_name ON people(name, id);
