-- A foreign key that a control table takes part in must check the same on
-- every node: between control tables only, and tying their routing
-- columns, so that the rows it ties are in one partition whatever splits
-- and merges come.  Runs after single_node, on its cluster.
SELECT kmd_ddl($$CREATE TABLE public.fk_queues (name text PRIMARY KEY, note text);
  CREATE TABLE public.fk_jobs (queue text, id text, PRIMARY KEY (queue, id));
  CREATE TABLE public.fk_tree (id text PRIMARY KEY, parent text);
  CREATE TABLE public.fk_nums (n numeric PRIMARY KEY);
  CREATE TABLE public.fk_num_kids (n numeric, id text, PRIMARY KEY (n, id));
  CREATE TABLE public.fk_ints (n int PRIMARY KEY);
  CREATE TABLE public.fk_big_kids (n bigint, id text, PRIMARY KEY (n, id));
  CREATE TABLE public.fk_lookup (code text PRIMARY KEY)$$) > 0 AS ddl_done;
SELECT kmd_register_table(t) FROM (VALUES ('public.fk_queues'::regclass), ('public.fk_jobs'),
  ('public.fk_tree'), ('public.fk_nums'), ('public.fk_num_kids'), ('public.fk_ints'),
  ('public.fk_big_kids')) v(t);

-- routing column to routing column: one partition, allowed
SELECT kmd_ddl($$ALTER TABLE public.fk_jobs ADD CONSTRAINT jobs_queue
  FOREIGN KEY (queue) REFERENCES public.fk_queues ON DELETE CASCADE$$) > 0 AS ddl_done;
SELECT kmd_propose('q1', '{"op":"insert","table":"fk_queues","row":{"name":"q1"}}') > 0 AS ok;
SELECT kmd_propose('q1', '{"op":"insert","table":"fk_jobs","row":{"queue":"q1","id":"j1"}}') > 0 AS ok;
SELECT err($$SELECT kmd_propose('q2', '{"op":"insert","table":"fk_jobs","row":{"queue":"q2","id":"j1"}}')$$);
SELECT kmd_propose('q1', '{"op":"delete","table":"fk_queues","key":{"name":"q1"}}') > 0 AS cascaded;
SELECT count(*) AS jobs_left FROM fk_jobs;

-- a key that may tie rows of two partitions is refused, on every node
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.fk_tree ADD FOREIGN KEY (parent) REFERENCES public.fk_tree')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.fk_jobs ADD FOREIGN KEY (id) REFERENCES public.fk_queues')$$);
-- so is one whose equal values may be different text (1.0 and 1.00 route apart)
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.fk_num_kids ADD FOREIGN KEY (n) REFERENCES public.fk_nums')$$);
-- or of another type
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.fk_big_kids ADD FOREIGN KEY (n) REFERENCES public.fk_ints')$$);
-- a table that is no control table holds each node's own rows: no key
-- between it and a control table, either way
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.fk_jobs ADD FOREIGN KEY (queue) REFERENCES public.fk_lookup')$$);
SELECT err($$SELECT kmd_ddl('CREATE TABLE public.fk_local (q text REFERENCES public.fk_queues)')$$);
SELECT count(*) AS refused_keys FROM pg_constraint WHERE contype = 'f' AND conname <> 'jobs_queue'
   AND conrelid::regclass::text LIKE 'fk_%';
SELECT count(*) AS no_local_table FROM pg_class WHERE relname = 'fk_local';

-- nor is a table registered while it has such a key
SELECT kmd_ddl($$CREATE TABLE public.fk_plain (id text PRIMARY KEY, code text REFERENCES public.fk_lookup);
  CREATE TABLE public.fk_tree2 (id text PRIMARY KEY, parent text REFERENCES public.fk_tree2)$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('public.fk_plain')$$);
SELECT err($$SELECT kmd_register_table('public.fk_lookup')$$);
SELECT err($$SELECT kmd_register_table('public.fk_tree2')$$);
SELECT count(*) AS registered FROM kommander.tables
 WHERE relid::text IN ('fk_plain', 'fk_lookup', 'fk_tree2');
SELECT kmd_ddl($$ALTER TABLE public.fk_plain DROP CONSTRAINT fk_plain_code_fkey$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.fk_plain');

SELECT kmd_ddl($$DROP TABLE public.fk_jobs, public.fk_queues, public.fk_tree, public.fk_nums,
  public.fk_num_kids, public.fk_ints, public.fk_big_kids, public.fk_plain, public.fk_tree2,
  public.fk_lookup$$) > 0 AS ddl_done;
