-- The SQL surface on one node bootstrapped alone: happy paths and bad input.
CREATE EXTENSION kommander;

-- not a member yet
SELECT kmd_propose('k', '{"op":"insert","table":"t","row":{}}');
SELECT * FROM kmd_route('k');
SELECT kmd_add_node('n2', 'host=localhost');

-- bootstrap: bad input, then for real
SELECT kmd_bootstrap(NULL, 'host=localhost');
SELECT kmd_bootstrap('', 'host=localhost');
SELECT kmd_bootstrap('n1', 'not a conninfo');
SELECT kmd_bootstrap('n1', 'host=localhost') IS NOT NULL AS bootstrapped;
SELECT kmd_bootstrap('n1', 'host=localhost');

-- the node is a voter and leads both partitions
SELECT node_id, node_name, role, is_local FROM kommander.nodes;
SELECT kmd_read_barrier() >= 0 AS leader_ready;
SELECT partition_id, lo, hi, generation, state, role, leader_name
  FROM kommander.partitions;

-- key hashing and routing
SELECT kmd_key_hash('job-1') = kmd_key_hash('job-1') AS stable,
       kmd_key_hash('job-1') <> kmd_key_hash('job-2') AS differs;
SELECT partition_id, generation, leader FROM kmd_route('job-1');
SELECT * FROM kmd_route(NULL);

-- a control table, created everywhere through the system partition
SELECT kmd_ddl($$CREATE TABLE public.jobs (id text PRIMARY KEY, state text NOT NULL, attempts int DEFAULT 0)$$) > 0 AS ddl_done;
SELECT kmd_ddl(NULL);
SELECT kmd_ddl('   ');
SELECT kmd_ddl('CREATE TABLE broken (');
SELECT kmd_register_table('jobs');
SELECT relid FROM kommander.tables;
SELECT kmd_ddl($$CREATE TABLE public.nopk (id text)$$) > 0 AS ddl_done;
SELECT kmd_register_table('nopk');
SELECT kmd_register_table(NULL);

-- writes
SELECT kmd_propose('job-1', '{"op":"insert","table":"jobs","row":{"id":"job-1","state":"new"}}') > 0 AS ok;
SELECT * FROM jobs;
SELECT kmd_propose('job-1', '{"op":"insert","table":"jobs","row":{"id":"job-1","state":"dup"}}');
SELECT kmd_propose('job-2', '{"op":"upsert","table":"jobs","row":{"id":"job-2","state":"new"}}') > 0 AS ok;
SELECT kmd_propose('job-2', '{"op":"upsert","table":"jobs","row":{"id":"job-2","state":"running"}}') > 0 AS ok;
SELECT * FROM jobs ORDER BY id;

-- compare-and-set
SELECT (kmd_propose_result('job-1', '{"op":"update","table":"jobs","key":{"id":"job-1"},"set":{"state":"running"},"if":{"state":"new"}}'))->'applied' AS applied;
SELECT (kmd_propose_result('job-1', '{"op":"update","table":"jobs","key":{"id":"job-1"},"set":{"state":"done"},"if":{"state":"new"}}'))->'applied' AS applied;
SELECT kmd_propose('job-1', '{"op":"update","table":"jobs","key":{"id":"job-1"},"set":{"state":"done"},"if":{"state":"new"},"strict":true}');
SELECT * FROM jobs ORDER BY id;
SELECT (r->>'partition')::int AS partition, r->'applied' AS applied, r->'result' AS result
  FROM kmd_propose_result('job-2', '{"op":"delete","table":"jobs","key":{"id":"job-2"},"if":{"state":"running"}}') AS r;
SELECT * FROM jobs ORDER BY id;

-- batch: all or nothing
SELECT kmd_propose('job-3', '{"op":"batch","commands":[{"op":"insert","table":"jobs","row":{"id":"job-3","state":"a"}},{"op":"update","table":"jobs","key":{"id":"job-3"},"set":{"state":"b"}}]}') > 0 AS ok;
SELECT kmd_propose('job-4', '{"op":"batch","commands":[{"op":"insert","table":"jobs","row":{"id":"job-4","state":"a"}},{"op":"insert","table":"jobs","row":{"id":"job-4","state":"dup"}}]}');
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
SELECT kmd_register_applier('bad', 'kmd_key_hash(text)');
SELECT kmd_propose('job-1', '{"op":"call","applier":"nope","args":{}}');

-- malformed commands: K0011, naming the field
SELECT kmd_propose(NULL, '{"op":"insert"}');
SELECT kmd_propose('k', NULL);
SELECT kmd_propose('k', '[]');
SELECT kmd_propose('k', '{"op":"explode"}');
SELECT kmd_propose('k', '{"op":"insert","row":{"id":"k"}}');
SELECT kmd_propose('k', '{"op":"insert","table":"jobs"}');
SELECT kmd_propose('k', '{"op":"insert","table":"no_such_table","row":{"id":"k"}}');
SELECT kmd_propose('k', '{"op":"insert","table":"nopk","row":{"id":"k"}}');
SELECT kmd_propose('k', '{"op":"insert","table":"jobs","row":{"id":"other","state":"x"}}');
SELECT kmd_propose('k', '{"op":"insert","table":"jobs","row":{"id":"k","nosuchcol":1}}');
SELECT kmd_propose('k', '{"op":"update","table":"jobs","set":{"state":"x"}}');
SELECT kmd_propose('k', '{"op":"batch","commands":[]}');

-- fencing: a stale expected generation
SELECT kmd_propose('job-9', '{"op":"insert","table":"jobs","row":{"id":"job-9","state":"x"}}', 999);
SELECT count(*) FROM jobs WHERE id = 'job-9';

-- direct writes to a control table are refused
INSERT INTO jobs VALUES ('direct', 'x');
UPDATE jobs SET state = 'x';
DELETE FROM jobs;
TRUNCATE jobs;

-- leadership and membership on a single node
SELECT kmd_transfer_leader(1, 'n1');
SELECT kmd_transfer_leader(1, 'nobody');
SELECT kmd_promote_node('nobody');
SELECT kmd_remove_node('n1');

-- the raw transport refuses garbage
SELECT kommander.deliver('\x00ff');

SELECT partition_id, commit_index = applied_index AS caught_up FROM kommander.partitions;
