-- One holiday per site and date (an all-sites holiday counts as site 0), so that the
-- site file, keyed by site and date, exports what it imports, and two admins adding the
-- same day at once cannot both succeed. Keep in step with
-- migrations/sqlite/2026-12-10-000400_holiday_per_site_and_date/up.sql.

-- Holidays already stored twice are merged into the first, whose name keeps the others'
-- ("Christmas Day / Company closure"), so no name is lost.
UPDATE holidays SET name = name || ' / ' || (
    SELECT string_agg(o.name, ' / ' ORDER BY o.id) FROM holidays AS o
    WHERE COALESCE(o.site_id, 0) = COALESCE(holidays.site_id, 0)
      AND o.date = holidays.date AND o.id > holidays.id
)
WHERE id IN (
    SELECT MIN(id) FROM holidays GROUP BY COALESCE(site_id, 0), date HAVING COUNT(*) > 1
);
DELETE FROM holidays WHERE id NOT IN (
    SELECT MIN(id) FROM holidays GROUP BY COALESCE(site_id, 0), date
);

CREATE UNIQUE INDEX holidays_one_per_site_and_date ON holidays (COALESCE(site_id, 0), date);
