-- The SQL surface on one node bootstrapped alone: happy paths and bad input,
-- with the SQLSTATE of every error.
CREATE EXTENSION kommander;

-- err(sql): the SQLSTATE and message of a statement that must fail
CREATE FUNCTION err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;

-- not a member yet: K0005
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"t","row":{}}')$$);
SELECT err($$SELECT * FROM kmd_route('k')$$);
SELECT err($$SELECT kmd_add_node('n2', 'host=localhost')$$);
SELECT err($$SELECT kmd_read_barrier()$$);
SELECT err($$SELECT kmd_ddl('SELECT 1')$$);

-- bootstrap: bad input, then for real, then once too often
SELECT err($$SELECT kmd_bootstrap(NULL, 'host=localhost')$$);
SELECT err($$SELECT kmd_bootstrap('n1', NULL)$$);
SELECT err($$SELECT kmd_bootstrap('', 'host=localhost')$$);
SELECT err($$SELECT kmd_bootstrap(repeat('x', 64), 'host=localhost')$$);
SELECT err($$SELECT kmd_bootstrap('n1', 'not a conninfo')$$);
SELECT err($$SELECT kmd_bootstrap('n1', 'host=localhost', '')$$);
SELECT err($$SELECT kmd_bootstrap('n1', 'host=localhost', repeat('r', 64))$$);
-- kommander.join_local, which kmd_join calls, takes no node id but a positive one
SELECT err($$SELECT kommander.join_local(0, gen_random_uuid(), '[]', 0, 2)$$);
-- the conninfo must lead back to this server and database: the others use it
SELECT err($$SELECT kmd_bootstrap('n1', 'dbname=postgres')$$);
SELECT err($$SELECT kmd_bootstrap('n1', 'host=localhost port=1')$$);
SELECT node_id FROM kommander.local;
SELECT kmd_bootstrap('n1', 'dbname=' || current_database()) IS NOT NULL AS bootstrapped;
SELECT err($$SELECT kmd_bootstrap('n1', 'host=localhost')$$);
SELECT err($$SELECT kmd_join('n2', 'host=localhost', 'host=localhost')$$);
SELECT err($$SELECT kmd_join('n1', 'host=localhost', 'host=localhost', true, '')$$);
SELECT err($$SELECT kmd_join('n2', 'host=localhost', 'host=localhost', NULL)$$);
-- a join writes, through sessions of its own: not in a read-only transaction
BEGIN READ ONLY;
SELECT err($$SELECT kmd_join('n2', 'host=localhost', 'host=localhost')$$);
ROLLBACK;

-- the node is a voter and, once elected, leads both partitions
SELECT kmd_read_barrier() >= 0 AS leader_ready;
SELECT node_id, node_name, role, is_local, reachable FROM kommander.nodes;
SELECT partition_id, lo, hi, generation, state, role, leader_name
  FROM kommander.partitions;

-- key hashing and routing
SELECT kmd_key_hash('job-1') = kmd_key_hash('job-1') AS stable,
       kmd_key_hash('job-1') <> kmd_key_hash('job-2') AS differs,
       kmd_key_hash('') AS empty_key_hash;
SELECT kmd_key_hash(NULL) IS NULL AS null_hash;
SELECT partition_id, generation, leader FROM kmd_route('job-1');
SELECT err($$SELECT * FROM kmd_route(NULL)$$);

-- control tables, created everywhere through the system partition
SELECT kmd_ddl($$CREATE TABLE public.jobs (id text PRIMARY KEY, state text NOT NULL, attempts int DEFAULT 0)$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_ddl(NULL)$$);
SELECT err($$SELECT kmd_ddl('   ')$$);
-- what does not parse, holds no statement or cannot run in the apply is
-- refused where it is proposed: it takes no entry of the system log
SELECT applied_index AS system_applied FROM kommander.applied WHERE partition_id = 0 \gset
SELECT kmd_ddl('CREATE TABLE broken (');
SELECT err($$SELECT kmd_ddl('-- nothing but a comment')$$);
SELECT err($$SELECT kmd_ddl('/* nothing */ ; ;')$$);
SELECT err($$SELECT kmd_ddl('COMMIT')$$);
SELECT err($$SELECT kmd_ddl('COPY public.jobs FROM STDIN')$$);
-- nor what runs only outside a transaction block (it would fail on
-- every node, after a barrier across every partition)
SELECT err($$SELECT kmd_ddl('VACUUM public.jobs')$$);
SELECT err($$SELECT kmd_ddl('CREATE INDEX CONCURRENTLY jobs_x ON public.jobs (id)')$$);
SELECT err($$SELECT kmd_ddl('REINDEX TABLE CONCURRENTLY public.jobs')$$);
SELECT err($$SELECT kmd_ddl('ANALYZE public.jobs; ALTER SYSTEM SET work_mem = ''8MB''')$$);
SELECT applied_index = :system_applied AS took_no_entry
  FROM kommander.applied WHERE partition_id = 0;
-- the statement is read as the apply worker reads it, whatever the caller's quoting
SET standard_conforming_strings = off;
SELECT kmd_ddl($$CREATE TABLE public.quoted (id text PRIMARY KEY DEFAULT 'a\')$$) > 0 AS ddl_done;
RESET standard_conforming_strings;
SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'public.quoted'::regclass;
SELECT kmd_ddl('DROP TABLE public.quoted') > 0 AS ddl_done;
SELECT kmd_register_table('jobs');
SELECT relid FROM kommander.tables;
SELECT kmd_ddl($$CREATE TABLE public.nopk (id text)$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('nopk')$$);
SELECT err($$SELECT kmd_register_table(NULL)$$);
SELECT err($$SELECT kmd_register_table('no_such_table')$$);
SELECT err($$SELECT kmd_register_table(4000000000::oid::regclass)$$);
-- kommander's own tables and the system catalogs are not control tables
SELECT err($$SELECT kmd_register_table('kommander.roster')$$);
SELECT err($$SELECT kmd_register_table('kommander.log')$$);
SELECT err($$SELECT kmd_register_table('pg_catalog.pg_class')$$);

-- writes, read back at once
SELECT kmd_propose('job-1', '{"op":"insert","table":"jobs","row":{"id":"job-1","state":"new"}}') > 0 AS ok;
SELECT * FROM jobs;
SELECT err($$SELECT kmd_propose('job-1', '{"op":"insert","table":"jobs","row":{"id":"job-1","state":"dup"}}')$$);
SELECT kmd_propose('job-2', '{"op":"upsert","table":"jobs","row":{"id":"job-2","state":"new"}}') > 0 AS ok;
SELECT kmd_propose('job-2', '{"op":"upsert","table":"jobs","row":{"id":"job-2","state":"running"}}') > 0 AS ok;
SELECT * FROM jobs ORDER BY id;

-- compare-and-set
SELECT (kmd_propose_result('job-1', '{"op":"update","table":"jobs","key":{"id":"job-1"},"set":{"state":"running"},"if":{"state":"new"}}'))->'applied' AS applied;
SELECT (kmd_propose_result('job-1', '{"op":"update","table":"jobs","key":{"id":"job-1"},"set":{"state":"done"},"if":{"state":"new"}}'))->'applied' AS applied;
SELECT err($$SELECT kmd_propose('job-1', '{"op":"update","table":"jobs","key":{"id":"job-1"},"set":{"state":"done"},"if":{"state":"new"},"strict":true}')$$);
SELECT * FROM jobs ORDER BY id;
SELECT (r->>'partition')::int AS partition, r->'applied' AS applied, r->'result' AS result,
       (r->>'index')::bigint > 0 AS has_index, (r->>'term')::bigint > 0 AS has_term
  FROM kmd_propose_result('job-2', '{"op":"delete","table":"jobs","key":{"id":"job-2"},"if":{"state":"running"}}') AS r;
SELECT * FROM jobs ORDER BY id;

-- batch: all or nothing
SELECT kmd_propose('job-3', '{"op":"batch","commands":[{"op":"insert","table":"jobs","row":{"id":"job-3","state":"a"}},{"op":"update","table":"jobs","key":{"id":"job-3"},"set":{"state":"b"}}]}') > 0 AS ok;
SELECT err($$SELECT kmd_propose('job-4', '{"op":"batch","commands":[{"op":"insert","table":"jobs","row":{"id":"job-4","state":"a"}},{"op":"insert","table":"jobs","row":{"id":"job-4","state":"dup"}}]}')$$);
SELECT * FROM jobs ORDER BY id;

-- appliers
CREATE FUNCTION public.bump(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$
  UPDATE public.jobs SET attempts = attempts + (args->>'by')::int WHERE id = ctx.key
  RETURNING jsonb_build_object('attempts', attempts)
$$;
SELECT kmd_register_applier('bump', 'public.bump(jsonb, kommander.apply_context)');
SELECT name, fn FROM kommander.appliers;
SELECT r->'result' AS result FROM kmd_propose_result('job-1', '{"op":"call","applier":"bump","args":{"by":2}}') AS r;
SELECT err($$SELECT kmd_register_applier('bad', 'kmd_key_hash(text)')$$);
SELECT err($$SELECT kmd_register_applier(NULL, 'kmd_key_hash(text)')$$);
-- a name no longer than a Postgres name (a few kilobytes failed every node's apply)
SELECT err($$SELECT kmd_register_applier(repeat('a', 64), 'public.bump(jsonb, kommander.apply_context)')$$);
-- an aggregate of the right arguments is not a function to call
CREATE FUNCTION public.agg_step(s jsonb, args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$ SELECT args $$;
CREATE AGGREGATE public.agg_applier(jsonb, kommander.apply_context) (SFUNC = public.agg_step, STYPE = jsonb);
SELECT err($$SELECT kmd_register_applier('agg', 'public.agg_applier(jsonb, kommander.apply_context)')$$);
-- an applier whose function was dropped
CREATE FUNCTION public.gone_soon(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$ SELECT args $$;
SELECT kmd_register_applier('gone_soon', 'public.gone_soon(jsonb, kommander.apply_context)');
SELECT kmd_ddl('DROP FUNCTION public.gone_soon(jsonb, kommander.apply_context)') > 0 AS dropped;
SELECT err($$SELECT kmd_propose('job-1', '{"op":"call","applier":"gone_soon"}')$$);
SELECT err($$SELECT kmd_propose('job-1', '{"op":"call","applier":"nope","args":{}}')$$);
CREATE FUNCTION public.fail(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'applier says no' USING ERRCODE = 'P0099'; END $$;
SELECT kmd_register_applier('fail', 'public.fail(jsonb, kommander.apply_context)');
SELECT err($$SELECT kmd_propose('job-1', '{"op":"call","applier":"fail"}')$$);
-- a SQLSTATE of this node's failures raised by the applier itself, caught
-- or as a warning, is the command's doing: it applies, nothing retries
CREATE FUNCTION public.own_raise(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
  BEGIN
    RAISE EXCEPTION 'mine' USING ERRCODE = 'lock_not_available';
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  RAISE WARNING 'also mine' USING ERRCODE = 'disk_full';
  RETURN '"ok"';
END $$;
SELECT kmd_register_applier('own_raise', 'public.own_raise(jsonb, kommander.apply_context)');
SELECT r->'result' AS result FROM kmd_propose_result('job-1', '{"op":"call","applier":"own_raise"}') AS r;

-- a failure of this node whose message is longer than
-- kommander.partitions.stall_error keeps is cut between two characters
-- (here a file not found, the name of which is 600 bytes of 'é')
CREATE TABLE public.stall_switch (fail boolean);
INSERT INTO public.stall_switch VALUES (true);
CREATE FUNCTION public.long_failure(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT fail FROM public.stall_switch) THEN
    PERFORM pg_catalog.lo_import('/nonexistent/' || pg_catalog.repeat('é', 300));
  END IF;
  RETURN '"ok"';
END $$;
SELECT kmd_register_applier('long_failure', 'public.long_failure(jsonb, kommander.apply_context)');
SET kommander.propose_timeout = '300ms';
SELECT err($$SELECT kmd_propose('stall-1', '{"op":"call","applier":"long_failure"}')$$);
RESET kommander.propose_timeout;
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
    WHILE NOT EXISTS (SELECT 1 FROM kommander.partitions WHERE stalled = 'retrying'
                         AND partition_id = (SELECT partition_id FROM kmd_route('stall-1'))) LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'the partition did not stall';
        END IF;
        PERFORM pg_sleep(0.05);
    END LOOP;
END
$$;
SELECT stalled, left(stall_error, 40) AS starts, octet_length(stall_error) BETWEEN 200 AND 255 AS cut,
       pg_catalog.convert_to(stall_error, 'UTF8') IS NOT NULL AS whole_characters
  FROM kommander.partitions WHERE partition_id = (SELECT partition_id FROM kmd_route('stall-1'));
-- a read barrier whose read index this node does not apply in time: K0002
-- (nothing was written; retry), not K0003 (a write's outcome unknown)
SET kommander.propose_timeout = '300ms';
SELECT left(err($$SELECT kmd_read_barrier('stall-1')$$), 5) AS sqlstate;
RESET kommander.propose_timeout;
UPDATE public.stall_switch SET fail = false;
SELECT kmd_read_barrier('stall-1') > 0 AS applied_again;
SELECT stalled FROM kommander.partitions WHERE partition_id = (SELECT partition_id FROM kmd_route('stall-1'));

-- malformed commands: K0011, naming the field
SELECT err($$SELECT kmd_propose(NULL, '{"op":"insert"}')$$);
SELECT err($$SELECT kmd_propose('k', NULL)$$);
SELECT err($$SELECT kmd_propose('k', '[]')$$);
SELECT err($$SELECT kmd_propose('k', '"insert"')$$);
SELECT err($$SELECT kmd_propose('k', '{}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"explode"}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":42}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","row":{"id":"k"}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"jobs"}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"jobs","row":[1]}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"no_such_table","row":{"id":"k"}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"","row":{"id":"k"}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"\"open","row":{"id":"k"}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"a.b.c.d","row":{"id":"k"}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"otherdb.public.t","row":{"id":"k"}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"nopk","row":{"id":"k"}}')$$);
-- the hints name the read barrier: the table may be another node's news
SELECT kmd_propose('k', '{"op":"insert","table":"no_such_table","row":{"id":"k"}}');
SELECT kmd_propose('k', '{"op":"insert","table":"nopk","row":{"id":"k"}}');
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"jobs","row":{"id":"other","state":"x"}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"jobs","row":{"state":"x"}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"insert","table":"jobs","row":{"id":"k","nosuchcol":1}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"update","table":"jobs","set":{"state":"x"}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"update","table":"jobs","key":{"id":"k"}}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"delete","table":"jobs","key":{"id":"k"},"if":"x"}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"delete","table":"jobs","key":{"id":"k"},"strict":"yes"}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"batch","commands":[]}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"batch","commands":[1]}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"batch","commands":[{"op":"batch","commands":[]}]}')$$);
SELECT err($$SELECT kmd_propose('k', '{"op":"call"}')$$);

-- fencing: a stale expected generation is refused and applies nothing
SELECT err($$SELECT kmd_propose('job-9', '{"op":"insert","table":"jobs","row":{"id":"job-9","state":"x"}}', 999)$$);
SELECT count(*) FROM jobs WHERE id = 'job-9';
SELECT kmd_propose('job-9', '{"op":"insert","table":"jobs","row":{"id":"job-9","state":"x"}}',
                   (SELECT generation FROM kmd_route('job-9'))) > 0 AS ok;

-- direct writes to a control table are refused with K0010
SELECT err($$INSERT INTO jobs VALUES ('direct', 'x')$$);
SELECT err($$UPDATE jobs SET state = 'x'$$);
SELECT err($$DELETE FROM jobs$$);
SELECT err($$TRUNCATE jobs$$);
SELECT count(*) FROM jobs;

-- reads
SELECT kmd_read_barrier('job-1') > 0 AS barrier;
SELECT kmd_read_barrier() > 0 AS barrier_all;

-- leadership and membership on a single node
SELECT kmd_transfer_leader(1, 'n1');
SELECT err($$SELECT kmd_transfer_leader(1, 'nobody')$$);
SELECT err($$SELECT kmd_transfer_leader(77, 'n1')$$);
SELECT err($$SELECT kmd_transfer_leader(NULL, 'n1')$$);
SELECT err($$SELECT kmd_promote_node('nobody')$$);
SELECT err($$SELECT kmd_promote_node(NULL)$$);
SELECT err($$SELECT kmd_remove_node('n1')$$);
SELECT err($$SELECT kmd_add_node('n1', 'host=elsewhere')$$);
SELECT err($$SELECT kmd_add_node('n9', 'host=elsewhere', '')$$);

-- the raw transport refuses garbage
SELECT err($$SELECT kommander.deliver('\x00ff')$$);
SELECT err($$SELECT kommander.deliver('')$$);

-- partitions: split at a point, at the midpoint (also of a range two hashes
-- wide below zero), merge back; bad input
SELECT err($$SELECT kmd_split(NULL)$$);
SELECT err($$SELECT kmd_split(0)$$);
SELECT err($$SELECT kmd_split(-1)$$);
SELECT err($$SELECT kmd_split(77)$$);
SELECT err($$SELECT kmd_split(1, -9223372036854775808)$$);
SELECT kmd_split(1, -2) AS right_of_minus_2;
SELECT kmd_split(2, 0) AS right_of_0;
SELECT kmd_split(2) AS midpoint_of_minus_2_and_minus_1;
SELECT err($$SELECT kmd_split(4)$$);
SELECT partition_id, lo, hi, generation, state FROM kommander.partitions WHERE partition_id > 0;
SELECT err($$SELECT kmd_merge(NULL, 2)$$);
SELECT err($$SELECT kmd_merge(2, 2)$$);
SELECT err($$SELECT kmd_merge(0, 1)$$);
SELECT err($$SELECT kmd_merge(1, 3)$$);
SELECT err($$SELECT kmd_merge(2, 77)$$);
SELECT kmd_merge(2, 4) AS merged;
-- the same merge again is done; another of the merged-away partition is not
SELECT kmd_merge(2, 4) AS merged_again;
SELECT err($$SELECT kmd_merge(3, 4)$$);
SELECT err($$SELECT kmd_split(4)$$);
SELECT partition_id, lo, hi, generation, state FROM kommander.partitions WHERE partition_id > 0;
SELECT err($$SELECT * FROM kmd_create_partitions(NULL)$$);
SELECT err($$SELECT * FROM kmd_create_partitions(0)$$);
SELECT err($$SELECT * FROM kmd_create_partitions(100000)$$);
SELECT err($$SELECT * FROM kmd_create_partitions(16)$$);
SELECT count(*) AS nothing_split FROM kommander.partitions WHERE partition_id > 0;
SELECT count(*) AS new_partitions FROM kmd_create_partitions(5);
-- a merged-away partition leaves a tombstone in the map and its entry of
-- kommander.max_partitions (16 here) to others; no split is proposed
-- without room for it
SELECT partition_id, state, merged_into FROM kommander.partition_map WHERE state = 'gone';
SELECT count(*) AS entries_taken FROM kommander.partitions;
SELECT count(*) AS made FROM kmd_create_partitions(15);
SELECT count(*) AS entries_taken_now FROM kommander.partitions;
SELECT err($$SELECT kmd_split(1)$$);
SELECT kmd_rebalance() AS moved_on_one_node;

-- everything committed is applied
SELECT partition_id, commit_index = applied_index AS caught_up FROM kommander.partitions;
