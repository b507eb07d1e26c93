-- The keys of a control table must check the same on every node: a
-- foreign key between control tables only, tying their routing columns,
-- and a unique key holding the routing column, so that the rows a key
-- compares are in one partition whatever splits and merges come.  Runs
-- after single_node, on its cluster.
SELECT kmd_ddl($$CREATE TABLE public.fk_queues (name text PRIMARY KEY, note text);
  CREATE TABLE public.fk_jobs (queue text, id text, PRIMARY KEY (queue, id));
  CREATE TABLE public.fk_tree (id text PRIMARY KEY, parent text);
  CREATE TABLE public.fk_ints (n int PRIMARY KEY);
  CREATE TABLE public.fk_big_kids (n bigint, id text, PRIMARY KEY (n, id));
  CREATE TABLE public.fk_lookup (code text PRIMARY KEY)$$) > 0 AS ddl_done;
SELECT kmd_register_table(t) FROM (VALUES ('public.fk_queues'::regclass), ('public.fk_jobs'),
  ('public.fk_tree'), ('public.fk_ints'),
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

-- A unique key must hold the routing column: one that does not compares
-- rows of different partitions, and which of two is kept would depend on
-- the order a node applied them in
SELECT kmd_ddl($$CREATE TABLE public.uk_users (id text PRIMARY KEY, email text, tenant text)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.uk_users');
SELECT err($$SELECT kmd_ddl('CREATE UNIQUE INDEX uk_email ON public.uk_users (email)')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.uk_users ADD CONSTRAINT uk_email UNIQUE (email)')$$);
SELECT err($$SELECT kmd_ddl('CREATE UNIQUE INDEX uk_lower ON public.uk_users (lower(id))')$$);
SELECT err($$SELECT kmd_ddl('CREATE EXTENSION IF NOT EXISTS btree_gist;
  ALTER TABLE public.uk_users ADD CONSTRAINT uk_excl EXCLUDE USING gist (tenant WITH =)')$$);
SELECT count(*) AS pk_index_only FROM pg_index WHERE indrelid = 'public.uk_users'::regclass;
-- one that holds it (with its =) compares rows of one routing key
SELECT kmd_ddl($$CREATE UNIQUE INDEX uk_id_email ON public.uk_users (email, id)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE EXTENSION IF NOT EXISTS btree_gist;
  ALTER TABLE public.uk_users ADD CONSTRAINT uk_excl EXCLUDE USING gist (id WITH =, tenant WITH =)$$) > 0 AS ddl_done;
SELECT count(*) AS kept_indexes FROM pg_index WHERE indrelid = 'public.uk_users'::regclass;
-- nor is a table registered whose unique key does not, or whose routing
-- column's equal values may be different text (numeric 1.0 and 1.00)
SELECT kmd_ddl($$CREATE TABLE public.uk_plain (id text PRIMARY KEY, email text UNIQUE);
  CREATE TABLE public.uk_num (n numeric PRIMARY KEY)$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('public.uk_plain')$$);
SELECT err($$SELECT kmd_register_table('public.uk_num')$$);
SELECT count(*) AS registered FROM kommander.tables WHERE relid::text IN ('uk_plain', 'uk_num');
-- the keys of a partitioned table's partitions are its own: at
-- registration, and when a partition comes in by ATTACH
SELECT kmd_ddl($$CREATE TABLE public.uk_parted (id text PRIMARY KEY, email text) PARTITION BY HASH (id);
  CREATE TABLE public.uk_parted_0 PARTITION OF public.uk_parted FOR VALUES WITH (MODULUS 2, REMAINDER 0);
  CREATE UNIQUE INDEX uk_parted_0_email ON public.uk_parted_0 (email)$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('public.uk_parted')$$);
SELECT kmd_ddl($$DROP INDEX public.uk_parted_0_email$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.uk_parted');
SELECT kmd_ddl($$CREATE TABLE public.uk_parted_1 (id text PRIMARY KEY, email text UNIQUE)$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.uk_parted ATTACH PARTITION public.uk_parted_1 FOR VALUES WITH (MODULUS 2, REMAINDER 1)')$$);
SELECT count(*) AS attached FROM pg_inherits WHERE inhrelid = 'public.uk_parted_1'::regclass;

SELECT kmd_ddl($$DROP TABLE public.fk_jobs, public.fk_queues, public.fk_tree, public.fk_ints, public.fk_big_kids, public.fk_plain, public.fk_tree2,
  public.fk_lookup, public.uk_users, public.uk_plain, public.uk_num, public.uk_parted,
  public.uk_parted_1;
  DROP EXTENSION btree_gist$$) > 0 AS ddl_done;
