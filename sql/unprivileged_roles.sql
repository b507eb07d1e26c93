-- What roles may do: row-level security is refused on control tables, and
-- a call needs EXECUTE on its applier.  Runs after single_node, on the node
-- it bootstrapped.
CREATE ROLE regress_alice;
SELECT kmd_ddl($$CREATE TABLE public.secured (id text PRIMARY KEY, owner text, claimed int NOT NULL DEFAULT 0)$$) > 0 AS ddl_done;

-- a table with row-level security enabled (or forced) is not registered
SELECT kmd_ddl($$ALTER TABLE public.secured ENABLE ROW LEVEL SECURITY$$) > 0 AS ddl_done;
SELECT kmd_register_table('secured');
SELECT err($$SELECT kmd_register_table('secured')$$);
SELECT kmd_ddl($$ALTER TABLE public.secured DISABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('secured')$$);
SELECT count(*) AS registered FROM kommander.tables WHERE relid = 'secured'::regclass;
SELECT kmd_ddl($$ALTER TABLE public.secured NO FORCE ROW LEVEL SECURITY$$) > 0 AS ddl_done;
SELECT kmd_register_table('secured');
-- and a control table does not get it later, not even through kmd_ddl
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.secured ENABLE ROW LEVEL SECURITY')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.secured FORCE ROW LEVEL SECURITY')$$);
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'secured'::regclass;

-- a call needs EXECUTE on the applier function, as the proposing role: a
-- function is executable by PUBLIC unless revoked
CREATE FUNCTION public.secured_claim(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$
  UPDATE public.secured SET claimed = claimed + 1 WHERE id = ctx.key
  RETURNING jsonb_build_object('claimed', claimed)
$$;
SELECT kmd_register_applier('claim', 'public.secured_claim(jsonb, kommander.apply_context)');
GRANT INSERT ON secured TO regress_alice;
SET ROLE regress_alice;
SELECT kmd_propose('s1', '{"op":"insert","table":"secured","row":{"id":"s1","owner":"alice"}}') > 0 AS ok;
SELECT err($$SELECT kmd_propose('s1', '{"op":"update","table":"secured","key":{"id":"s1"},"set":{"owner":"mallory"}}')$$);
SELECT (kmd_propose_result('s1', '{"op":"call","applier":"claim"}'))->'result' AS result;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION public.secured_claim(jsonb, kommander.apply_context) FROM PUBLIC;
SET ROLE regress_alice;
SELECT err($$SELECT kmd_propose('s1', '{"op":"call","applier":"claim"}')$$);
SELECT err($$SELECT kmd_propose('s1', '{"op":"batch","commands":[{"op":"call","applier":"claim"}]}')$$);
RESET ROLE;
-- nor does the caller's search_path choose the function checked: an
-- operator of its own there cannot make "claim" look up another applier
CREATE FUNCTION public.alice_own(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$SELECT '1'::jsonb$$;
SELECT kmd_register_applier('mine', 'public.alice_own(jsonb, kommander.apply_context)');
CREATE SCHEMA alice_ops AUTHORIZATION regress_alice;
SET ROLE regress_alice;
CREATE FUNCTION alice_ops.eq(text, text) RETURNS bool LANGUAGE sql
  AS $$SELECT $1 OPERATOR(pg_catalog.=) 'mine'$$;
CREATE OPERATOR alice_ops.= (LEFTARG = text, RIGHTARG = text, FUNCTION = alice_ops.eq);
SET search_path = alice_ops, pg_catalog;
SELECT public.err($$SELECT public.kmd_propose('s1', '{"op":"call","applier":"claim"}')$$);
RESET search_path;
RESET ROLE;
DROP SCHEMA alice_ops CASCADE;
-- nor does a table of a role's own pass for a control table by a guard
-- trigger the role put on it (it is registered nowhere, so no image
-- carries it)
CREATE TABLE public.alice_t (id text PRIMARY KEY);
ALTER TABLE public.alice_t OWNER TO regress_alice;
SET ROLE regress_alice;
SELECT err($$CREATE TRIGGER kommander_guard BEFORE INSERT ON public.alice_t
  FOR EACH STATEMENT EXECUTE FUNCTION kommander.control_table_guard()$$);
SELECT err($$CREATE TRIGGER kommander_key_range AFTER INSERT ON public.alice_t
  FOR EACH ROW EXECUTE FUNCTION kommander.control_row_guard()$$);
RESET ROLE;
DROP TABLE public.alice_t;
SELECT * FROM secured;
GRANT EXECUTE ON FUNCTION public.secured_claim(jsonb, kommander.apply_context) TO regress_alice;
SET ROLE regress_alice;
SELECT (kmd_propose_result('s1', '{"op":"call","applier":"claim"}'))->'result' AS result;
RESET ROLE;

-- an "if" or an "add" reads the row, and a condition that does not hold
-- answers with it: they need SELECT as well (42501 without)
GRANT UPDATE ON secured TO regress_alice;
SET ROLE regress_alice;
SELECT kmd_propose('s1', '{"op":"update","table":"secured","key":{"id":"s1"},"set":{"owner":"bob"}}') > 0 AS updated;
SELECT err($$SELECT kmd_propose_result('s1', '{"op":"update","table":"secured","key":{"id":"s1"},"set":{"owner":"carol"},"if":{"owner":"nobody"}}')$$);
SELECT err($$SELECT kmd_propose('s1', '{"op":"update","table":"secured","key":{"id":"s1"},"set":{"claimed":{"add":1}}}')$$);
RESET ROLE;
GRANT SELECT ON secured TO regress_alice;
SET ROLE regress_alice;
SELECT kmd_propose_result('s1', '{"op":"update","table":"secured","key":{"id":"s1"},"set":{"owner":"carol"},"if":{"owner":"nobody"}}')->'current'->>'owner' AS current_owner;
RESET ROLE;
REVOKE SELECT, UPDATE ON secured FROM regress_alice;

-- what the apply worker read as the table's owner reaches a caller that
-- may read the table only: the row of a condition that did not hold (a
-- batch's delete of a row gone), the failing row of an error's detail
CREATE FUNCTION err_detail(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    d text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS d = PG_EXCEPTION_DETAIL;
    RETURN SQLSTATE || ': ' || coalesce(nullif(d, ''), '(no detail)');
END
$$;
GRANT DELETE, UPDATE ON secured TO regress_alice;
SET ROLE regress_alice;
SELECT r->'failed' AS failed, r->'current' AS current
  FROM kmd_propose_result('s1', '{"op":"batch","commands":[
    {"op":"delete","table":"secured","key":{"id":"s1"}},
    {"op":"delete","table":"secured","key":{"id":"s1"}}]}') r;
SELECT err_detail($$SELECT kmd_propose('s1', '{"op":"update","table":"secured","key":{"id":"s1"},"set":{"claimed":null}}')$$);
RESET ROLE;
GRANT SELECT ON secured TO regress_alice;
SET ROLE regress_alice;
SELECT r->'failed' AS failed, r->'current'->>'owner' AS current_owner
  FROM kmd_propose_result('s1', '{"op":"batch","commands":[
    {"op":"delete","table":"secured","key":{"id":"s1"}},
    {"op":"delete","table":"secured","key":{"id":"s1"}}]}') r;
SELECT err_detail($$SELECT kmd_propose('s1', '{"op":"update","table":"secured","key":{"id":"s1"},"set":{"claimed":null}}')$$);
RESET ROLE;
REVOKE SELECT, UPDATE, DELETE ON secured FROM regress_alice;
SELECT id, owner FROM secured;

-- a conninfo's password is seen by superusers only: kommander.nodes masks
-- it for others, who may read the roster's other columns only
SELECT kommander.visible_conninfo('host=10.0.0.1 password=secret') AS superuser_sees;
SET ROLE regress_alice;
SELECT kommander.visible_conninfo('host=10.0.0.1 port=5432 dbname=app user=kommander password=secret') AS masked;
SELECT kommander.visible_conninfo($$host=10.0.0.1 password='it\'s a secret' application_name='my app'$$) AS masked_quoted;
SELECT kommander.visible_conninfo('postgresql://kommander:secret@10.0.0.1:5432/app?sslmode=verify-full') AS masked_uri;
SELECT kommander.visible_conninfo('host=10.0.0.1 sslpassword=secret sslkey=/etc/kommander/key') AS masked_sslpassword;
SELECT kommander.visible_conninfo($$host=10.0.0.1 dbname='host=10.0.0.2 password=secret'$$) AS masked_inner;
-- libpq expands a dbname once: one inside it is a name, masked whole when
-- it looks like a conninfo, not read as deep as the text nests them
SELECT kommander.visible_conninfo($$dbname='dbname=\'host=10.0.0.3 password=secret\''$$) AS masked_twice;
SELECT kommander.visible_conninfo(repeat('dbname=', 100000) || 'x') AS nested_deep;
SELECT kommander.visible_conninfo('host=10.0.0.1  port=5432') AS no_password_as_written;
SELECT kommander.visible_conninfo('not a conninfo password=secret') AS unparsable;
SELECT node_id, node_name, conninfo, role FROM kommander.nodes;
SELECT node_id, node_name, role FROM kommander.roster;
SELECT err($$SELECT conninfo FROM kommander.roster$$);
SELECT err($$SELECT * FROM kommander.roster$$);
SELECT partition_id, leader_name FROM kommander.partitions WHERE partition_id = 0;
RESET ROLE;
SELECT node_name, conninfo FROM kommander.roster;

-- a role that may register tables and appliers registers its own only:
-- a registered table is read-only to sessions, and an applier runs as
-- its function's owner
GRANT EXECUTE ON FUNCTION kmd_register_table(regclass), kmd_register_applier(text, regprocedure) TO regress_alice;
GRANT CREATE ON SCHEMA public TO regress_alice;
SELECT kmd_ddl($$CREATE TABLE public.not_alices (id text PRIMARY KEY)$$) > 0 AS ddl_done;
CREATE FUNCTION public.not_alices_fn(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$ SELECT args $$;
SET ROLE regress_alice;
SELECT err($$SELECT kmd_register_table('public.not_alices')$$);
SELECT err($$SELECT kmd_register_applier('not_alices', 'public.not_alices_fn(jsonb, kommander.apply_context)')$$);
CREATE FUNCTION public.alices_fn(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$ SELECT args $$;
SELECT kmd_register_applier('alices', 'public.alices_fn(jsonb, kommander.apply_context)');
-- nor a name that calls another owner's function: its callers' arguments
-- would reach her function
SELECT err($$SELECT kmd_register_applier('claim', 'public.alices_fn(jsonb, kommander.apply_context)')$$);
-- her own name she points at another function of hers; once the function
-- is dropped, at any function of hers
CREATE FUNCTION public.alices_fn2(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$ SELECT args $$;
SELECT kmd_register_applier('alices', 'public.alices_fn2(jsonb, kommander.apply_context)');
-- (a session drops no registered applier's function: that node alone
-- would fail its calls, K0010)
SELECT err($$DROP FUNCTION public.alices_fn2(jsonb, kommander.apply_context)$$);
RESET ROLE;
SELECT kmd_ddl($$DROP FUNCTION public.alices_fn2(jsonb, kommander.apply_context)$$) > 0 AS ddl_done;
SET ROLE regress_alice;
SELECT kmd_register_applier('alices', 'public.alices_fn(jsonb, kommander.apply_context)');
RESET ROLE;
SELECT name, fn::regprocedure AS still FROM kommander.appliers WHERE name = 'claim';
-- a superuser passes the proposer's check, but applying keeps a name with
-- its function's owner, as on every node whatever the proposer saw
SELECT err($$SELECT kmd_register_applier('alices', 'public.secured_claim(jsonb, kommander.apply_context)')$$);
SELECT name, fn::regprocedure AS still FROM kommander.appliers WHERE name = 'alices';
SELECT kmd_ddl($$ALTER TABLE public.not_alices OWNER TO regress_alice$$) > 0 AS ddl_done;
SET ROLE regress_alice;
SELECT kmd_register_table('public.not_alices');
RESET ROLE;
SELECT relid::regclass AS alices_table FROM kommander.tables WHERE relid = 'public.not_alices'::regclass;
SELECT name, fn::regprocedure AS alices_applier FROM kommander.appliers WHERE name LIKE '%alices';
-- a session may not take from an owner what the apply worker writes its
-- rows and calls its appliers with: this node alone would fail commands
-- every other node applies (K0010); kmd_ddl may, on every node alike
REVOKE INSERT ON public.not_alices FROM regress_alice;
REVOKE USAGE ON SCHEMA public FROM PUBLIC;
REVOKE ALL ON FUNCTION public.alices_fn(jsonb, kommander.apply_context) FROM PUBLIC, regress_alice;
REVOKE ALL ON FUNCTION public.alices_fn(jsonb, kommander.apply_context) FROM PUBLIC;
-- checked at commit: a REVOKE and the GRANT that gives the privilege back
-- in one transaction pass (pg_dump writes such pairs)
BEGIN;
REVOKE ALL ON public.not_alices FROM regress_alice;
GRANT ALL ON public.not_alices TO regress_alice;
COMMIT;
BEGIN;
REVOKE UPDATE ON public.not_alices FROM regress_alice;
COMMIT;
SELECT has_table_privilege('regress_alice', 'public.not_alices', 'UPDATE') AS alice_updates;
-- what the transaction did is counted, not what other transactions did
-- meanwhile (a kmd_ddl it waited for), nor what a savepoint rolled back
CREATE TABLE public.plain_t (x int);
BEGIN;
GRANT SELECT ON public.plain_t TO PUBLIC;
SELECT kmd_ddl($$REVOKE DELETE ON public.not_alices FROM regress_alice$$) > 0 AS ddl_done;
COMMIT;
SELECT has_table_privilege('regress_alice', 'public.not_alices', 'DELETE') AS alice_deletes;
SELECT kmd_ddl($$GRANT DELETE ON public.not_alices TO regress_alice$$) > 0 AS ddl_done;
BEGIN;
SAVEPOINT s;
REVOKE UPDATE ON public.not_alices FROM regress_alice;
ROLLBACK TO SAVEPOINT s;
COMMIT;
DROP TABLE public.plain_t;
REVOKE SELECT ON public.not_alices FROM PUBLIC;
GRANT SELECT ON public.not_alices TO PUBLIC;
GRANT USAGE ON SCHEMA public TO regress_alice;
REVOKE USAGE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO PUBLIC;
SELECT kmd_ddl($$REVOKE DELETE ON public.not_alices FROM regress_alice$$) > 0 AS ddl_done;
SELECT has_table_privilege('regress_alice', 'public.not_alices', 'DELETE') AS alice_deletes;
SELECT kmd_ddl($$GRANT DELETE ON public.not_alices TO regress_alice$$) > 0 AS ddl_done;
REVOKE CREATE ON SCHEMA public FROM regress_alice;
REVOKE EXECUTE ON FUNCTION kmd_register_table(regclass), kmd_register_applier(text, regprocedure) FROM regress_alice;
SELECT kmd_ddl($$DROP TABLE public.not_alices$$) > 0 AS ddl_done;
SELECT err($$DROP OWNED BY regress_alice$$);
SELECT kmd_ddl($$DROP FUNCTION public.alices_fn(jsonb, kommander.apply_context)$$) > 0 AS ddl_done;
DROP OWNED BY regress_alice;
DROP ROLE regress_alice;
