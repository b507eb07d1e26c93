-- A command of kmd_propose writes only control tables: a write to any
-- other table, from an applier or a trigger, fails the command (K0011,
-- naming the table) and changes nothing; TRUNCATE and temporary tables
-- are refused to every command.  kmd_ddl may write other tables.  Runs
-- after single_node, on the node it bootstrapped.

SELECT kmd_ddl('CREATE TABLE public.audit (id text PRIMARY KEY, note text)') > 0 AS created;
SELECT kmd_ddl($$INSERT INTO public.audit VALUES ('seed', 'by kmd_ddl')$$) > 0 AS kmd_ddl_writes;

CREATE FUNCTION public.side_write(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE args->>'sql' USING ctx.key;
  RETURN NULL;
END
$$;
SELECT kmd_register_applier('side_write', 'public.side_write(jsonb, kommander.apply_context)');

CREATE FUNCTION side(sql text) RETURNS text LANGUAGE sql AS $$
  SELECT err(format('SELECT kmd_propose(%L, %L)', 'cw-1',
                    jsonb_build_object('op', 'call', 'applier', 'side_write',
                                       'args', jsonb_build_object('sql', sql))))
$$;

-- an applier writing a table that is not a control table
SELECT side('INSERT INTO public.audit VALUES ($1, ''insert'')');
SELECT side('UPDATE public.audit SET note = ''update''');
SELECT side('DELETE FROM public.audit');
SELECT side('WITH d AS (DELETE FROM public.audit RETURNING 1) SELECT count(*) FROM d');
SELECT side('MERGE INTO public.audit a USING (SELECT $1 AS id) s ON a.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id, ''merge'')');
SELECT side('TRUNCATE public.audit');
SELECT side('CREATE TABLE public.made AS SELECT 1 AS n');
SELECT side('CREATE TEMP TABLE scratch (n int)');
SELECT side('CREATE VIEW pg_temp.seen AS SELECT 1 AS n');
-- nor leave other state in the apply worker's session past the command
SELECT side('PREPARE p AS SELECT 1');
SELECT side('DECLARE c CURSOR WITH HOLD FOR SELECT 1');
SELECT side('LISTEN somewhere');
-- nor take advisory locks, which are one node's (another session there
-- may hold one), session-level or not; kmd_ddl none for the session
SELECT side('SELECT pg_advisory_lock(1)');
SELECT side('SELECT pg_try_advisory_xact_lock(1, 2)');
SELECT side('SELECT pg_advisory_unlock_all()');
SELECT err($$SELECT kmd_ddl('SELECT pg_advisory_lock(7)')$$);
-- kmd_ddl may wait for one for its transaction, which ends with it, but
-- not try one: another session of one node may hold it
SELECT kmd_ddl('SELECT pg_advisory_xact_lock(7)') > 0 AS ddl_done;
SELECT err($$SELECT kmd_ddl('SELECT pg_try_advisory_xact_lock(7)')$$);
SELECT count(*) AS advisory_locks_held FROM pg_locks WHERE locktype = 'advisory';
-- nor run DDL, which only kmd_ddl runs, at the same point of every
-- partition's log on every node
SELECT side('ALTER TABLE public.jobs ADD COLUMN sneaky int');
SELECT side('CREATE TABLE public.made_here (n int)');
SELECT side('GRANT SELECT ON public.audit TO PUBLIC');
SELECT side('DROP TABLE public.audit');
SELECT side('EXPLAIN (ANALYZE) CREATE TABLE public.made_here AS SELECT 1 AS n');
-- nor reads a node's file into rows
SELECT side('COPY public.jobs FROM ''/dev/null''');
SELECT count(*) AS sneaky_columns FROM pg_attribute
 WHERE attrelid = 'public.jobs'::regclass AND attname = 'sneaky';
SELECT to_regclass('public.made_here') IS NULL AS not_made, to_regclass('public.audit') IS NOT NULL AS kept;
-- but sets, notifies and runs blocks
SELECT side('SET LOCAL work_mem = ''8MB''');
SELECT side('DO $d$ BEGIN PERFORM 1; END $d$');
-- nor call a function whose value is one node's
SELECT side('SELECT random()');
SELECT side('SELECT gen_random_uuid()');
SELECT side('SELECT clock_timestamp()');
SELECT side('SELECT pg_current_xact_id()');
-- constraint modes would outlive the command in the apply transaction
SELECT side('SET CONSTRAINTS ALL DEFERRED');
-- TRUNCATE of a control table would empty every partition
SELECT side('TRUNCATE public.jobs');
SELECT count(*) > 0 AS jobs_kept FROM jobs;

-- a trigger of a control table writing elsewhere
SELECT kmd_ddl('CREATE TABLE public.logged (id text PRIMARY KEY)') > 0 AS created;
SELECT kmd_ddl($$CREATE FUNCTION public.logged_audit() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN INSERT INTO public.audit VALUES (NEW.id, ''trigger''); RETURN NULL; END'$$) > 0 AS created;
SELECT kmd_ddl('CREATE TRIGGER logged_audit AFTER INSERT ON public.logged FOR EACH ROW EXECUTE FUNCTION public.logged_audit()') > 0 AS created;
SELECT kmd_register_table('public.logged');
SELECT err($$SELECT kmd_propose('cw-2', '{"op":"insert","table":"logged","row":{"id":"cw-2"}}')$$);
SELECT count(*) AS logged_rows FROM logged;

-- nothing was written
SELECT * FROM audit;

-- kmd_ddl neither truncates a control table nor makes temporary tables
SELECT err($$SELECT kmd_ddl('TRUNCATE public.jobs')$$);
SELECT err($$SELECT kmd_ddl('CREATE TEMP TABLE scratch (n int)')$$);
-- nor any object in its temporary schema, which would be found there
-- first by the apply worker's own reads of catalogs, as its superuser
SELECT err($$SELECT kmd_ddl('CREATE TABLE pg_temp.scratch (n int)')$$);
SELECT err($$SELECT kmd_ddl('CREATE VIEW pg_temp.pg_trigger AS SELECT 0::oid AS tgrelid, ''kommander_guard''::name AS tgname')$$);
SELECT err($$SELECT kmd_ddl('CREATE FUNCTION pg_temp.f() RETURNS int LANGUAGE sql AS ''SELECT 1''')$$);
SELECT err($$SELECT kmd_ddl('DO ''BEGIN CREATE SEQUENCE pg_temp.s; EXCEPTION WHEN others THEN NULL; END''')$$);
SELECT err($$SELECT kmd_ddl('PREPARE p AS SELECT 1')$$);
SELECT err($$SELECT kmd_ddl('DECLARE c CURSOR FOR SELECT 1')$$);
SELECT kmd_ddl($$UPDATE public.audit SET note = 'updated by kmd_ddl'$$) > 0 AS kmd_ddl_writes;
SELECT * FROM audit;
