-- The apply worker names the functions and operators of its statements
-- with their schemas: what a role that may create objects in public plants
-- there, to be called by a statement the apply worker runs as a table's
-- owner, is never called.  Runs after single_node, on the node it
-- bootstrapped.
CREATE ROLE regress_planter;
GRANT CREATE ON SCHEMA public TO regress_planter;
SELECT kmd_ddl($$CREATE TABLE public.planted (id varchar(20) PRIMARY KEY, state varchar(20), n int NOT NULL DEFAULT 0)$$) > 0 AS ddl_done;
SELECT kmd_register_table('planted');
SELECT kmd_propose('p1', '{"op":"insert","table":"planted","row":{"id":"p1","state":"new"}}') > 0 AS inserted;
SELECT kmd_propose('p2', '{"op":"insert","table":"planted","row":{"id":"p2","state":"new"}}') > 0 AS inserted;

-- an "=" for varchar, which Postgres prefers to text's (an exact match)
SET ROLE regress_planter;
CREATE FUNCTION public.planted_eq(a varchar, b varchar) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'planted = called by %', current_user;
END $$;
CREATE OPERATOR public.= (LEFTARG = varchar, RIGHTARG = varchar, FUNCTION = public.planted_eq);
RESET ROLE;
-- it catches what a session with public in its search_path runs
SELECT err($$SELECT 'a'::varchar = 'a'::varchar$$);
-- but not an update's key, nor its "if", nor its "add"
SELECT kmd_propose('p1', '{"op":"update","table":"planted","key":{"id":"p1"},"set":{"state":"done","n":{"add":2}},"if":{"state":"new"}}') > 0 AS updated;
-- an "if" on a null: IS NOT DISTINCT FROM
SELECT kmd_propose('p2', '{"op":"update","table":"planted","key":{"id":"p2"},"set":{"state":null}}') > 0 AS updated;
SELECT kmd_propose('p2', '{"op":"update","table":"planted","key":{"id":"p2"},"set":{"n":7},"if":{"state":null}}') > 0 AS updated;
SELECT kmd_propose_result('p2', '{"op":"update","table":"planted","key":{"id":"p2"},"set":{"n":8},"if":{"state":"new"}}')->'applied' AS applied;
-- nor a delete, nor a row a revoked lease takes with it
SELECT kmd_propose('p1', '{"op":"delete","table":"planted","key":{"id":"p1"},"if":{"state":"done"}}') > 0 AS deleted;
CREATE TEMP TABLE planted_lease AS SELECT kmd_lease_grant('30 s', 'p3') AS id;
SELECT kmd_propose('p3', format('{"op":"insert","table":"planted","row":{"id":"p3"},"lease":%s}', id)::jsonb) > 0 AS attached
  FROM planted_lease;
SELECT kmd_lease_revoke(id) FROM planted_lease;
SELECT id, state, n FROM public.planted ORDER BY id;

-- functions of the table's row type, which Postgres prefers to the
-- polymorphic ones of pg_catalog
SET ROLE regress_planter;
CREATE FUNCTION public.jsonb_populate_record(r public.planted, j jsonb) RETURNS public.planted
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'planted jsonb_populate_record called by %', current_user;
END $$;
CREATE FUNCTION public.to_jsonb(r public.planted) RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'planted to_jsonb called by %', current_user;
END $$;
RESET ROLE;
SELECT err($$SELECT jsonb_populate_record(NULL::public.planted, '{}')$$);
SELECT err($$SELECT to_jsonb(p) FROM public.planted p$$);
SELECT kmd_propose('p2', '{"op":"update","table":"planted","key":{"id":"p2"},"set":{"state":"done"}}') > 0 AS updated;
-- nor the row an update that did not hold reads back
SELECT kmd_propose_result('p2', '{"op":"update","table":"planted","key":{"id":"p2"},"set":{"state":"again"},"if":{"state":"new"}}')->'current' AS current;

-- an "=" of oid and the reg types, which pg_catalog does not have: the
-- statements that kmd_ddl and registrations run after them
SET ROLE regress_planter;
CREATE FUNCTION public.planted_oid_eq(a oid, b regclass) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'planted oid = regclass called by %', current_user;
END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regclass, FUNCTION = public.planted_oid_eq);
CREATE FUNCTION public.planted_proc_eq(a oid, b regprocedure) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'planted oid = regprocedure called by %', current_user;
END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regprocedure, FUNCTION = public.planted_proc_eq);
CREATE FUNCTION public.planted_type_eq(a oid, b regtype) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'planted oid = regtype called by %', current_user;
END $$;
CREATE OPERATOR public.= (LEFTARG = oid, RIGHTARG = regtype, FUNCTION = public.planted_type_eq);
RESET ROLE;
SELECT err($$SELECT 1 FROM pg_class c WHERE c.oid = 'pg_class'::regclass$$);
SELECT kmd_ddl($$CREATE TABLE public.planted_more (id text PRIMARY KEY)$$) > 0 AS ddl_done;
CREATE FUNCTION public.planted_applier(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$ SELECT args $$;
SELECT kmd_register_applier('planted_applier', 'public.planted_applier(jsonb, kommander.apply_context)');
SELECT name FROM kommander.appliers WHERE name = 'planted_applier';
-- an overload of the applier with one argument more, which has a default:
-- a call by name no longer knows which function it means (42725), and
-- would fail on the node that has the overload; the applier is called by
-- the function registered, not by its name
SET ROLE regress_planter;
CREATE FUNCTION public.planted_applier(args jsonb, ctx kommander.apply_context, extra int DEFAULT 0)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'planted applier called by %', current_user;
END $$;
RESET ROLE;
SELECT err($$SELECT public.planted_applier('{}'::jsonb, NULL::kommander.apply_context)$$);
SELECT kmd_propose_result('p4', '{"op":"call","applier":"planted_applier","args":{"a":1}}')->'result' AS result;
DROP FUNCTION public.planted_applier(jsonb, kommander.apply_context, int);
SELECT kmd_ddl($$DROP TABLE public.planted_more$$) > 0 AS ddl_done;

DROP OPERATOR public.= (oid, regclass);
DROP OPERATOR public.= (oid, regprocedure);
DROP OPERATOR public.= (oid, regtype);
DROP FUNCTION public.planted_oid_eq(oid, regclass);
DROP FUNCTION public.planted_proc_eq(oid, regprocedure);
DROP FUNCTION public.planted_type_eq(oid, regtype);
DROP OPERATOR public.= (varchar, varchar);
DROP FUNCTION public.planted_eq(varchar, varchar);
DROP FUNCTION public.jsonb_populate_record(public.planted, jsonb);
DROP FUNCTION public.to_jsonb(public.planted);
REVOKE CREATE ON SCHEMA public FROM regress_planter;
DROP ROLE regress_planter;

-- nor do the Raft workers take a search_path their database gives them
-- (its owner may set one): its operators would run as their superuser
SELECT current_database() AS db \gset
CREATE SCHEMA regress_hijack;
CREATE TABLE regress_hijack.me AS SELECT pg_backend_pid() AS pid;
CREATE TABLE regress_hijack.calls (backend text);
CREATE FUNCTION regress_hijack.int4_eq(a int4, b int4) RETURNS bool LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM regress_hijack.me WHERE pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()) THEN
    INSERT INTO regress_hijack.calls SELECT backend_type FROM pg_catalog.pg_stat_activity
     WHERE pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid();
  END IF;
  RETURN a OPERATOR(pg_catalog.=) b;
END $$;
CREATE OPERATOR regress_hijack.= (LEFTARG = int4, RIGHTARG = int4, FUNCTION = regress_hijack.int4_eq);
-- (pg_stat_activity is read once per transaction unless its snapshot is
-- cleared: the new workers are looked for in a fresh one each time)
CREATE FUNCTION pg_temp.restart_raft_workers() RETURNS bool LANGUAGE plpgsql AS $$
DECLARE
  old int[] := (SELECT array_agg(pid) FROM pg_stat_activity WHERE backend_type = 'kommander raft worker');
  deadline timestamptz := clock_timestamp() + interval '60 s';
  failure text;
  seen text;
BEGIN
  PERFORM pg_terminate_backend(pid) FROM unnest(old) pid;
  LOOP
    PERFORM pg_stat_clear_snapshot();
    seen := (SELECT string_agg(pid || ' ' || coalesce(wait_event, 'running'), ', ') FROM pg_stat_activity
              WHERE backend_type = 'kommander raft worker');
    BEGIN
      IF (SELECT count(*) FROM pg_stat_activity
           WHERE backend_type = 'kommander raft worker' AND pid <> ALL (old)) = cardinality(old) THEN
        PERFORM kmd_propose('hijack', '{"op":"upsert","table":"planted","row":{"id":"hijack","state":"w"}}');
        RETURN true;
      END IF;
    EXCEPTION WHEN others THEN
      failure := SQLSTATE || ': ' || SQLERRM;
    END;
    IF clock_timestamp() > deadline THEN
      -- what went wrong, in the diff of a run that fails
      RAISE NOTICE 'no write after the restart: % (old workers %, now %; partitions: %)', failure, old, seen,
        (SELECT string_agg(format('%s %s term %s applied %s', partition_id, role, term, applied_index), ', ')
           FROM kommander.partitions);
      RETURN false;
    END IF;
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
ALTER DATABASE :"db" SET search_path = regress_hijack, pg_catalog;
SELECT pg_temp.restart_raft_workers() AS written_after_a_restart;
SELECT count(*) AS calls_of_the_planted_operator FROM regress_hijack.calls;
ALTER DATABASE :"db" RESET search_path;
SELECT pg_temp.restart_raft_workers() AS written_after_a_restart;
DROP SCHEMA regress_hijack CASCADE;
SELECT kmd_propose('hijack', '{"op":"delete","table":"planted","key":{"id":"hijack"}}') > 0 AS deleted;
