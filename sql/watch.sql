-- Seeing inside and watching: the views over shared memory and the change
-- feed of the output plugin "kommander".  Runs after single_node, on the
-- node it bootstrapped (wal_level = logical, test/regress.conf).

-- the views' shape
SELECT attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'kommander.stats'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'kommander.latency'::regclass AND attnum > 0 ORDER BY attnum;
SELECT attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'kommander.peers'::regclass AND attnum > 0 ORDER BY attnum;

-- the node's counters and gauges, once each; then those of every partition
SELECT name FROM kommander.stats WHERE partition_id IS NULL ORDER BY name;
SELECT name, count(*) = (SELECT count(*) FROM kommander.partitions) AS every_partition
  FROM kommander.stats WHERE partition_id IS NOT NULL GROUP BY name ORDER BY name;
SELECT count(*) AS negative FROM kommander.stats WHERE value < 0;

-- a proposal moves the counters of the node and of its partition, and the
-- propose latency
SELECT kmd_ddl($$CREATE TABLE public.watched (id text PRIMARY KEY, n int, doc jsonb, ok boolean, note text)$$) > 0 AS ddl_done;
SELECT kmd_register_table('watched');
CREATE TEMP TABLE seen AS
  SELECT name, coalesce(partition_id, -1) AS partition_id, value FROM kommander.stats;
SELECT kmd_propose('w1', '{"op":"insert","table":"watched","row":{"id":"w1","n":1}}') > 0 AS ok;
SELECT s.name, s.partition_id IS NULL AS node, s.value > seen.value AS moved
  FROM kommander.stats s JOIN seen ON seen.name = s.name AND seen.partition_id = coalesce(s.partition_id, -1)
 WHERE s.name IN ('proposals', 'commits', 'applies', 'log_entries_appended', 'log_append_batches')
   AND (s.partition_id IS NULL OR s.partition_id = (SELECT partition_id FROM kmd_route('w1')))
 ORDER BY 1, 2;
SELECT operation, partition_id IS NULL AS node, count > 0 AS counted,
       p50_ms <= p90_ms AND p90_ms <= p99_ms AND p99_ms <= max_ms AS ordered
  FROM kommander.latency
 WHERE operation IN ('propose', 'commit', 'apply', 'log_append')
   AND (partition_id IS NULL OR partition_id = (SELECT partition_id FROM kmd_route('w1')))
 ORDER BY 1, 2;
SELECT operation FROM kommander.latency WHERE partition_id IS NULL ORDER BY 1;

-- a fenced proposal and its counter
SELECT value AS fenced_before FROM kommander.stats
 WHERE name = 'proposals_rejected_fenced' AND partition_id IS NULL \gset
SELECT err($$SELECT kmd_propose('w1', '{"op":"upsert","table":"watched","row":{"id":"w1"}}', 123456)$$);
SELECT value - :fenced_before AS fenced FROM kommander.stats
 WHERE name = 'proposals_rejected_fenced' AND partition_id IS NULL;

-- a node alone leads no other member: no peers
SELECT count(*) AS peers FROM kommander.peers;

-- the queue bound is a setting
SHOW kommander.max_queued_proposals;

-- the change feed: allowed where the server lists the plugins it allows,
-- a slot, then writes of every kind
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_settings WHERE name = 'output_plugin_libraries') THEN
        SET output_plugin_libraries = 'pgoutput', 'test_decoding', 'kommander';
    END IF;
END
$$;
SELECT 'created' FROM pg_create_logical_replication_slot('watch_regress', 'kommander');
SELECT kmd_propose('w2', '{"op":"insert","table":"watched","row":{"id":"w2","n":2,"doc":{"a":[1,2]},"ok":true,"note":"say \"hi\""}}') > 0 AS ok;
SELECT kmd_propose('w2', '{"op":"update","table":"watched","key":{"id":"w2"},"set":{"n":3}}') > 0 AS ok;
SELECT kmd_propose('w1', '{"op":"delete","table":"watched","key":{"id":"w1"}}') > 0 AS ok;
SELECT kmd_propose('w3', '{"op":"batch","commands":[{"op":"insert","table":"watched","row":{"id":"w3","n":1.5e3}},{"op":"update","table":"watched","key":{"id":"w3"},"set":{"note":null}}]}') > 0 AS ok;
-- a command that fails changes nothing and shows nothing
SELECT err($$SELECT kmd_propose('w2', '{"op":"insert","table":"watched","row":{"id":"w2"}}')$$);
-- what is not a control table's change made by an entry is not in the feed
CREATE TABLE public.plain (id int PRIMARY KEY);
INSERT INTO public.plain VALUES (1);
SELECT data::jsonb - 'lsn' - 'index' - 'term' - 'partition' AS change
  FROM pg_logical_slot_peek_changes('watch_regress', NULL, NULL);
-- one entry per change here, in log order, each with its entry's position
SELECT count(*) AS changes,
       bool_and((data::jsonb->>'index')::bigint > 0 AND (data::jsonb->>'term')::bigint > 0) AS positioned,
       count(DISTINCT data::jsonb->>'lsn') AS transactions_at_most
  FROM pg_logical_slot_peek_changes('watch_regress', NULL, NULL);
SELECT bool_and(i > prev) AS log_order
  FROM (SELECT (data::jsonb->>'index')::bigint AS i,
               lag((data::jsonb->>'index')::bigint) OVER (ORDER BY ordinality) AS prev
          FROM pg_logical_slot_peek_changes('watch_regress', NULL, NULL) WITH ORDINALITY
         WHERE data::jsonb->>'partition' = (SELECT partition_id::text FROM kmd_route('w2'))) s
 WHERE prev IS NOT NULL AND i <> prev;

-- include-system: a merge (its freeze, then the merge) is an event too
SELECT kmd_merge(l.partition_id, r.partition_id) > 0 AS merged
  FROM kommander.partitions l JOIN kommander.partitions r ON r.lo = l.hi
 WHERE l.partition_id > 0 ORDER BY l.partition_id LIMIT 1;
-- the apply worker commits without waiting for the WAL flush, and decoding
-- reads only flushed WAL: wait until the WAL writer has flushed it
CREATE PROCEDURE wait_flushed() LANGUAGE plpgsql AS $$
DECLARE
    target pg_lsn := pg_current_wal_insert_lsn();
BEGIN
    WHILE pg_current_wal_flush_lsn() < target LOOP
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
CALL wait_flushed();
SELECT data::jsonb->>'op' AS op, data::jsonb->>'event' AS event
  FROM pg_logical_slot_peek_changes('watch_regress', NULL, NULL, 'include-system', 'true')
 WHERE data::jsonb->>'op' = 'event' AND data::jsonb->>'event' <> 'leader';
SELECT count(*) AS events_without_the_option
  FROM pg_logical_slot_peek_changes('watch_regress', NULL, NULL)
 WHERE data::jsonb->>'op' = 'event';
SELECT err($$SELECT * FROM pg_logical_slot_peek_changes('watch_regress', NULL, NULL, 'include-system', 'maybe')$$);
SELECT err($$SELECT * FROM pg_logical_slot_peek_changes('watch_regress', NULL, NULL, 'no-such-option', 'true')$$);
-- consumed once: nothing the second time
SELECT count(*) > 0 AS consumed FROM pg_logical_slot_get_changes('watch_regress', NULL, NULL);
SELECT count(*) AS again FROM pg_logical_slot_get_changes('watch_regress', NULL, NULL);
SELECT pg_drop_replication_slot('watch_regress');
DROP TABLE public.plain;

-- a control table keeps a primary key and a replica identity that lasts,
-- the key or FULL (0A000 otherwise, at the registration and after each
-- kmd_ddl statement, partitions included): a
-- publication made on one node alone would make the updates and deletes
-- of a table without one fail on that node only (NOTHING, or another
-- index's identity once that index is dropped)
SELECT kmd_ddl($$CREATE TABLE public.ident (id text, sub int, alt int NOT NULL, n int,
  PRIMARY KEY (id, sub), UNIQUE (id, alt))$$) > 0 AS ddl_done;
SELECT kmd_ddl($$ALTER TABLE public.ident REPLICA IDENTITY USING INDEX ident_id_alt_key$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('ident')$$);
SELECT kmd_ddl($$ALTER TABLE public.ident REPLICA IDENTITY NOTHING$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('ident')$$);
SELECT kmd_ddl($$ALTER TABLE public.ident REPLICA IDENTITY DEFAULT$$) > 0 AS ddl_done;
SELECT kmd_register_table('ident');
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.ident REPLICA IDENTITY NOTHING')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.ident REPLICA IDENTITY USING INDEX ident_id_alt_key')$$);
SELECT kmd_ddl($$ALTER TABLE public.ident REPLICA IDENTITY FULL$$) > 0 AS full_kept;
SELECT relreplident FROM pg_class WHERE oid = 'public.ident'::regclass;
SELECT kmd_ddl($$CREATE TABLE public.ident_parted (id text PRIMARY KEY) PARTITION BY HASH (id);
  CREATE TABLE public.ident_p0 PARTITION OF public.ident_parted FOR VALUES WITH (MODULUS 2, REMAINDER 0);
  CREATE TABLE public.ident_p1 (id text PRIMARY KEY);
  ALTER TABLE public.ident_p0 REPLICA IDENTITY NOTHING;
  ALTER TABLE public.ident_p1 REPLICA IDENTITY NOTHING$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('ident_parted')$$);
SELECT kmd_ddl($$ALTER TABLE public.ident_p0 REPLICA IDENTITY DEFAULT$$) > 0 AS ddl_done;
SELECT kmd_register_table('ident_parted');
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.ident_parted ATTACH PARTITION public.ident_p1 FOR VALUES WITH (MODULUS 2, REMAINDER 1)')$$);
SELECT err($$SELECT kmd_ddl('CREATE TABLE public.ident_p2 PARTITION OF public.ident_parted FOR VALUES WITH (MODULUS 2, REMAINDER 1);
  ALTER TABLE public.ident_p2 REPLICA IDENTITY NOTHING')$$);
SELECT count(*) AS ident_p2_left FROM pg_class WHERE relname = 'ident_p2';
-- nor a primary key dropped (a table without one has no identity either)
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.ident DROP CONSTRAINT ident_pkey')$$);
-- (a deferrable one is none: Postgres takes no such key for the table's)
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.ident DROP CONSTRAINT ident_pkey, ADD PRIMARY KEY (id) DEFERRABLE')$$);
SELECT kmd_ddl($$ALTER TABLE public.ident DROP CONSTRAINT ident_pkey, ADD PRIMARY KEY (id, alt)$$) > 0 AS key_replaced;
SELECT kmd_ddl($$DROP TABLE public.ident, public.ident_parted, public.ident_p1$$) > 0 AS dropped;

-- a table that is no control table but has a trigger of the guard's name:
-- what a kmd_ddl statement writes in it is not in the feed
SELECT kmd_ddl($$CREATE TABLE public.lookalike (id int PRIMARY KEY)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE FUNCTION public.nothing() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TRIGGER kommander_guard AFTER INSERT ON public.lookalike
  FOR EACH STATEMENT EXECUTE FUNCTION public.nothing()$$) > 0 AS ddl_done;
SELECT 'created' FROM pg_create_logical_replication_slot('lookalike_feed', 'kommander');
SELECT kmd_ddl($$INSERT INTO public.lookalike VALUES (1)$$) > 0 AS ddl_done;
CALL wait_flushed();
SELECT count(*) AS lookalike_changes FROM pg_logical_slot_get_changes('lookalike_feed', NULL, NULL)
 WHERE data::jsonb->>'table' = 'public.lookalike';
SELECT pg_drop_replication_slot('lookalike_feed');
SELECT kmd_ddl($$DROP TABLE public.lookalike$$) > 0 AS ddl_done;

-- code the apply worker runs writes no logical message: one prefixed
-- "kommander" would pass for the worker's mark of an entry
CREATE FUNCTION public.forge(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$ SELECT to_jsonb(pg_logical_emit_message(true, 'kommander', 'I1 999999 1')::text) $$;
SELECT kmd_register_applier('forge', 'public.forge(jsonb, kommander.apply_context)');
SELECT err($$SELECT kmd_propose('w9', '{"op":"call","applier":"forge"}')$$);
-- a client session still may
SELECT pg_logical_emit_message(true, 'other', 'x') IS NOT NULL AS emitted;
