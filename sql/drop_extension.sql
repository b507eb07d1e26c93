-- DROP EXTENSION kommander CASCADE takes this node out of its cluster: the
-- guard triggers and the appliers go, the control tables stay, with their
-- rows, as ordinary tables.  Runs last, on the node single_node bootstrapped.
CREATE TEMP TABLE control_tables AS SELECT relid::oid AS oid FROM kommander.tables;
CREATE TEMP TABLE appliers AS SELECT fn::oid AS oid FROM kommander.appliers;
SELECT count(*) > 0 AS has_control_tables FROM control_tables t JOIN pg_trigger g ON g.tgrelid = t.oid;
SELECT count(*) > 0 AS has_appliers FROM appliers a JOIN pg_proc p ON p.oid = a.oid;
SELECT count(*) AS rows_before FROM jobs;
SET client_min_messages = warning;
DROP EXTENSION kommander CASCADE;
RESET client_min_messages;
SELECT count(*) AS guard_triggers FROM pg_trigger WHERE tgname = 'kommander_guard';
SELECT count(*) AS appliers_left FROM appliers a JOIN pg_proc p ON p.oid = a.oid;
SELECT count(*) AS rows_after FROM jobs;
SELECT count(*) AS kommander_schema FROM pg_namespace WHERE nspname = 'kommander';
-- ordinary tables now: written and altered like any other
INSERT INTO jobs (id, state) VALUES ('local', 'x');
ALTER TABLE jobs ADD COLUMN local_only int;
DROP TABLE guarded;
SELECT id, state FROM jobs WHERE id = 'local';
