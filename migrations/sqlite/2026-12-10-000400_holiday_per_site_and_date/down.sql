-- Merged holidays stay merged: their names say what they were.
DROP INDEX holidays_one_per_site_and_date;
