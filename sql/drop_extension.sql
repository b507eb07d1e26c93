-- DROP EXTENSION kommander CASCADE takes this node out of its cluster: the
-- guard triggers go, the control tables stay, with their rows, as ordinary
-- tables.  Runs last, on the node single_node bootstrapped.
SELECT count(*) AS guarded_tables FROM pg_trigger WHERE tgname = 'kommander_guard';
SELECT count(*) AS rows_before FROM jobs;
DROP EXTENSION kommander CASCADE;
SELECT count(*) AS guarded_tables FROM pg_trigger WHERE tgname = 'kommander_guard';
SELECT count(*) AS rows_after FROM jobs;
SELECT count(*) AS kommander_schema FROM pg_namespace WHERE nspname = 'kommander';
-- ordinary tables now: written and altered like any other
INSERT INTO jobs (id, state) VALUES ('local', 'x');
ALTER TABLE jobs ADD COLUMN local_only int;
DROP TABLE guarded;
SELECT id, state FROM jobs WHERE id = 'local';
