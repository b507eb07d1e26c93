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
SELECT * FROM secured;
GRANT EXECUTE ON FUNCTION public.secured_claim(jsonb, kommander.apply_context) TO regress_alice;
SET ROLE regress_alice;
SELECT (kmd_propose_result('s1', '{"op":"call","applier":"claim"}'))->'result' AS result;
RESET ROLE;
