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

SELECT kmd_ddl('DROP TABLE public.owned, public.after_ddl') > 0 AS dropped;
DROP OWNED BY regress_ddl, regress_batch;
DROP ROLE regress_ddl, regress_batch;
