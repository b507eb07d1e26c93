-- kmd_ddl runs its statement, on every node, as the role that called it:
-- that role owns what it creates and can grant or alter no more than it
-- may.  A row command needs the caller's privilege for each command of a
-- batch.  Runs after single_node, on the node it bootstrapped.
CREATE ROLE regress_ddl;
GRANT EXECUTE ON FUNCTION kmd_ddl(text) TO regress_ddl;
GRANT CREATE ON SCHEMA public TO regress_ddl;

SET ROLE regress_ddl;
SELECT kmd_ddl('CREATE TABLE public.owned (id text PRIMARY KEY)') > 0 AS created;
-- not its table, nor its privilege to grant
SELECT err($$SELECT kmd_ddl('GRANT DELETE ON public.jobs TO regress_ddl')$$);
SELECT err($$SELECT kmd_ddl('ALTER ROLE regress_ddl SUPERUSER')$$);
SELECT err($$SELECT kmd_ddl('SET ROLE NONE')$$);
SELECT err($$SELECT kmd_ddl('SET SESSION AUTHORIZATION DEFAULT')$$);
RESET ROLE;

-- a domain's check calls the table owner's code: reading a row back (the
-- row of a batch whose condition failed) and noting a row of a lease run
-- it as the owner, never as the apply worker's superuser
SET ROLE regress_ddl;
SELECT kmd_ddl($$CREATE FUNCTION public.not_as_superuser(v int) RETURNS bool LANGUAGE plpgsql AS
  'BEGIN IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
     RAISE EXCEPTION ''domain check run by superuser %'', current_user; END IF; RETURN true; END';
  CREATE DOMAIN public.checked_int AS int CHECK (public.not_as_superuser(VALUE));
  CREATE TABLE public.checked (id public.checked_int PRIMARY KEY, v int)$$) > 0 AS created;
RESET ROLE;
SELECT kmd_register_table('public.checked');
SELECT kmd_propose('1', '{"op":"insert","table":"checked","row":{"id":1,"v":1}}') > 0 AS inserted;
SELECT kmd_propose_result('1', '{"op":"batch","commands":[{"op":"update","table":"checked","key":{"id":1},"set":{"v":2},"if":{"v":5}}]}')
       - 'index' - 'term' - 'partition' AS not_held;
SELECT kmd_lease_grant('30 s', '1') AS checked_lease \gset
SELECT kmd_propose('1', format('{"op":"upsert","table":"checked","row":{"id":1,"v":3},"lease":%s}', :checked_lease)::jsonb) > 0 AS attached;
SELECT kmd_lease_revoke(:checked_lease);
SELECT count(*) AS checked_rows FROM checked;
-- REASSIGN OWNED would change a control table's owner, who applies its
-- commands, on this node alone
CREATE ROLE regress_heir;
SELECT err($$REASSIGN OWNED BY regress_ddl TO regress_heir$$);
SELECT pg_get_userbyid(relowner) AS checked_owner FROM pg_class WHERE oid = 'public.checked'::regclass;
DROP ROLE regress_heir;
SELECT kmd_ddl('DROP TABLE public.checked; DROP DOMAIN public.checked_int; DROP FUNCTION public.not_as_superuser(int)') > 0 AS dropped;

SELECT tableowner FROM pg_tables WHERE tablename = 'owned';
SELECT has_table_privilege('regress_ddl', 'jobs', 'DELETE') AS may_delete_jobs;
SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_ddl';
SELECT command, role FROM kommander.ddl WHERE role = 'regress_ddl' ORDER BY idx;
-- the apply worker's session still runs as its own role afterwards
SELECT kmd_ddl('CREATE TABLE public.after_ddl (id text PRIMARY KEY)') > 0 AS created;
SELECT tableowner = current_user AS owned_by_caller FROM pg_tables WHERE tablename = 'after_ddl';

-- each command of a batch needs the caller's privilege on its table, and
-- an upsert both INSERT and UPDATE
CREATE ROLE regress_batch;
GRANT INSERT ON jobs TO regress_batch;
SET ROLE regress_batch;
SELECT err($$SELECT kmd_propose('ddl-b', '{"op":"batch","commands":[{"op":"insert","table":"jobs","row":{"id":"ddl-b","state":"new"}},{"op":"delete","table":"jobs","key":{"id":"ddl-b"}}]}')$$);
SELECT err($$SELECT kmd_propose('ddl-b', '{"op":"batch","commands":[{"op":"insert","table":"jobs","row":{"id":"ddl-b","state":"new"}},{"op":"upsert","table":"jobs","row":{"id":"ddl-b","state":"x"}}]}')$$);
SELECT err($$SELECT kmd_propose('ddl-b', '{"op":"upsert","table":"jobs","row":{"id":"ddl-b","state":"x"}}')$$);
RESET ROLE;
SELECT count(*) AS batch_rows FROM jobs WHERE id = 'ddl-b';

-- a setting that kmd_ddl's statement or an applier changes ends with its
-- command: the apply worker's session keeps none, which the apply
-- workers of other nodes, restarted since, would not share
SELECT kmd_ddl($$CREATE FUNCTION public.setting_of(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS 'SELECT to_jsonb(current_setting(args->>''name''))'$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE FUNCTION public.set_setting(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS 'SELECT to_jsonb(set_config(args->>''name'', args->>''value'', false))'$$) > 0 AS ddl_done;
SELECT kmd_register_applier('setting_of', 'public.setting_of(jsonb, kommander.apply_context)');
SELECT kmd_register_applier('set_setting', 'public.set_setting(jsonb, kommander.apply_context)');
SELECT kmd_ddl('SET transform_null_equals = on') > 0 AS ddl_done;
SELECT kmd_propose_result('set-1', '{"op":"call","applier":"setting_of","args":{"name":"transform_null_equals"}}')->'result' AS after_ddl_set;
SELECT kmd_ddl('SET LOCAL transform_null_equals = on') > 0 AS ddl_done;
SELECT kmd_propose_result('set-1', '{"op":"call","applier":"setting_of","args":{"name":"transform_null_equals"}}')->'result' AS after_ddl_set_local;
SELECT kmd_propose_result('set-1', '{"op":"call","applier":"set_setting","args":{"name":"transform_null_equals","value":"on"}}')->'result' AS set_by_applier;
SELECT kmd_propose_result('set-1', '{"op":"call","applier":"setting_of","args":{"name":"transform_null_equals"}}')->'result' AS after_applier_set;
-- within one statement of kmd_ddl, the setting holds
SELECT kmd_ddl($$SET search_path = regress_elsewhere, public; CREATE SCHEMA regress_elsewhere; CREATE TABLE in_elsewhere (id int)$$) > 0 AS ddl_done;
SELECT to_regclass('regress_elsewhere.in_elsewhere') IS NOT NULL AS created_there;
SELECT kmd_ddl('DROP SCHEMA regress_elsewhere CASCADE') > 0 AS dropped;

SELECT kmd_ddl('DROP TABLE public.owned, public.after_ddl') > 0 AS dropped;
DROP OWNED BY regress_ddl, regress_batch;
DROP ROLE regress_ddl, regress_batch;
