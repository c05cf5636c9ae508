-- Placeholder on branch pgmigrate only: numbers 0008 and 0009 are reserved for migrations of other branches,
-- and the runner wants contiguous numbers. Drop this file at merge, when the real 0008 lands.
SELECT 1;
