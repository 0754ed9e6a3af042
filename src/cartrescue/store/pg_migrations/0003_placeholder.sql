-- 3: no change (the number is taken by a migration merged separately).
SELECT 1;
