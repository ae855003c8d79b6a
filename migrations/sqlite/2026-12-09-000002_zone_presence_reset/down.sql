ALTER TABLE zones DROP COLUMN presence_reset;
