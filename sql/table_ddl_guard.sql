-- A control table's definition changes only through kmd_ddl: DDL on it
-- from a session fails with K0010, however it reaches the table.  Runs
-- after single_node, on the node it bootstrapped.
SELECT kmd_ddl($$CREATE TABLE public.guarded (id text PRIMARY KEY, v text, w int)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE INDEX guarded_w ON public.guarded (w)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.guarded');
SELECT kmd_ddl($$CREATE SCHEMA app$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE DOMAIN app.short_text AS text CHECK (length(VALUE) < 10)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TABLE app.items (id text PRIMARY KEY, label app.short_text)$$) > 0 AS ddl_done;
SELECT kmd_register_table('app.items');
SELECT kmd_propose('g1', '{"op":"insert","table":"guarded","row":{"id":"g1","v":"a","w":1}}') > 0 AS ok;
CREATE FUNCTION public.local_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TABLE public.local_t (id text);

-- what the message says
ALTER TABLE guarded ADD COLUMN local_only int;
DROP SCHEMA app CASCADE;

-- statements that name a control table
SELECT err($$ALTER TABLE guarded ADD COLUMN local_only int$$);
SELECT err($$ALTER TABLE guarded DROP COLUMN w$$);
SELECT err($$ALTER TABLE guarded ALTER COLUMN v SET NOT NULL$$);
SELECT err($$ALTER TABLE guarded ALTER COLUMN w TYPE bigint$$);
SELECT err($$ALTER TABLE guarded ADD CONSTRAINT no_x CHECK (v <> 'x')$$);
SELECT err($$ALTER TABLE guarded DISABLE TRIGGER kommander_guard$$);
SELECT err($$ALTER TABLE guarded DISABLE TRIGGER ALL$$);
SELECT err($$ALTER TABLE guarded SET UNLOGGED$$);
SELECT err($$ALTER TABLE guarded REPLICA IDENTITY FULL$$);
-- a publication may publish a control table, but not filter its rows or
-- columns: its updates and deletes would fail on this node alone
SELECT err($$CREATE PUBLICATION local_pub FOR TABLE guarded WHERE (v <> '')$$);
SELECT err($$CREATE PUBLICATION local_pub FOR TABLE guarded (id, v)$$);
CREATE PUBLICATION local_pub FOR TABLE guarded;
SELECT err($$ALTER PUBLICATION local_pub SET TABLE guarded WHERE (v <> '')$$);
SELECT err($$ALTER PUBLICATION local_pub ADD TABLE app.items (id)$$);
SELECT kmd_propose('g1', '{"op":"update","table":"guarded","key":{"id":"g1"},"set":{"w":1}}') > 0 AS updated_while_published;
DROP PUBLICATION local_pub;
SELECT err($$ALTER TABLE guarded SET (fillfactor = 90), ADD COLUMN local_only int$$);
SELECT err($$ALTER TABLE guarded RENAME TO renamed$$);
SELECT err($$ALTER TABLE guarded RENAME COLUMN v TO v2$$);
SELECT err($$ALTER TABLE guarded RENAME CONSTRAINT guarded_pkey TO renamed$$);
SELECT err($$ALTER TABLE guarded SET SCHEMA app$$);
SELECT err($$ALTER INDEX guarded_w RENAME TO renamed$$);
SELECT err($$ALTER TRIGGER kommander_guard ON guarded RENAME TO renamed$$);
SELECT err($$CREATE INDEX ON guarded (v)$$);
SELECT err($$CREATE UNIQUE INDEX ON guarded (v)$$);
SELECT err($$CREATE TRIGGER local BEFORE INSERT ON guarded FOR EACH ROW EXECUTE FUNCTION local_trigger()$$);
SELECT err($$CREATE POLICY local ON guarded USING (true)$$);
SELECT err($$CREATE RULE local AS ON INSERT TO guarded DO INSTEAD NOTHING$$);
SELECT err($$CREATE TABLE local_child () INHERITS (guarded)$$);
-- a foreign table is a table too
CREATE FOREIGN DATA WRAPPER regress_dummy_fdw;
CREATE SERVER regress_dummy_server FOREIGN DATA WRAPPER regress_dummy_fdw;
SELECT err($$CREATE FOREIGN TABLE local_foreign_child () INHERITS (guarded) SERVER regress_dummy_server$$);
DROP SERVER regress_dummy_server;
DROP FOREIGN DATA WRAPPER regress_dummy_fdw;
SELECT err($$ALTER TABLE local_t INHERIT guarded$$);
SELECT err($$ALTER SCHEMA app RENAME TO app2$$);

-- drops, however they reach the table
SELECT err($$DROP TABLE guarded$$);
SELECT err($$DROP TABLE IF EXISTS local_t, guarded$$);
SELECT err($$DROP INDEX guarded_w$$);
SELECT err($$DROP TRIGGER kommander_guard ON guarded$$);
SELECT err($$DROP SCHEMA app CASCADE$$);
SELECT err($$DROP DOMAIN app.short_text CASCADE$$);
SELECT err($$DROP FUNCTION kommander.control_table_guard() CASCADE$$);

-- a foreign key from another table would let this node alone refuse a
-- replicated delete
SELECT err($$CREATE TABLE local_ref (id text REFERENCES guarded)$$);
SELECT err($$ALTER TABLE local_t ADD FOREIGN KEY (id) REFERENCES guarded$$);
CREATE TABLE local_ref (id text REFERENCES guarded);

-- nothing of the above happened
SELECT attname FROM pg_attribute WHERE attrelid = 'guarded'::regclass AND attnum > 0 ORDER BY attnum;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'guarded'::regclass ORDER BY tgname;
SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 'guarded'::regclass ORDER BY 1;
SELECT count(*) AS local_tables FROM pg_class WHERE relname IN ('local_child', 'local_ref', 'renamed');
SELECT * FROM guarded;
SELECT * FROM app.items;

-- what changes no command's outcome stays allowed: comments, grants,
-- storage and planner settings, maintenance, reading
COMMENT ON TABLE guarded IS 'a control table';
COMMENT ON COLUMN guarded.v IS 'a column';
GRANT SELECT ON guarded TO PUBLIC;
REVOKE SELECT ON guarded FROM PUBLIC;
ALTER TABLE guarded SET (fillfactor = 90);
ALTER TABLE guarded RESET (fillfactor);
ALTER TABLE guarded ALTER COLUMN v SET STATISTICS 500;
-- but not a column's storage or compression: with storage plain, a row
-- too big for a page would fail on this node alone
SELECT err($$ALTER TABLE guarded ALTER COLUMN v SET STORAGE PLAIN$$);
SELECT err($$ALTER TABLE guarded ALTER COLUMN v SET COMPRESSION pglz$$);
SELECT attstorage FROM pg_attribute WHERE attrelid = 'guarded'::regclass AND attname = 'v';
ALTER TABLE guarded CLUSTER ON guarded_pkey;
ALTER TABLE guarded SET WITHOUT CLUSTER;
ALTER INDEX guarded_w SET (fillfactor = 80);
VACUUM guarded;
ANALYZE guarded;
REINDEX TABLE guarded;
CLUSTER guarded USING guarded_pkey;
BEGIN;
LOCK TABLE guarded IN SHARE MODE;
COMMIT;
CREATE STATISTICS guarded_stats ON v, w FROM guarded;
DROP STATISTICS guarded_stats;
CREATE VIEW guarded_view AS SELECT id, v FROM guarded;
CREATE TABLE local_copy (LIKE guarded);
DROP VIEW guarded_view;
DROP TABLE local_copy;
SELECT obj_description('guarded'::regclass, 'pg_class') AS comment;

-- kmd_ddl changes control tables on every node, as before
SELECT kmd_ddl($$ALTER TABLE public.guarded ADD COLUMN note text$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE INDEX guarded_note ON public.guarded (note)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$ALTER TABLE public.guarded RENAME COLUMN w TO weight$$) > 0 AS ddl_done;
SELECT kmd_propose('g2', '{"op":"insert","table":"guarded","row":{"id":"g2","v":"b","weight":2,"note":"n"}}') > 0 AS ok;
SELECT * FROM guarded ORDER BY id;
SELECT kmd_ddl($$DROP TABLE app.items$$) > 0 AS ddl_done;
SELECT kmd_ddl($$DROP SCHEMA app CASCADE$$) > 0 AS ddl_done;
SELECT count(*) AS app_schema FROM pg_namespace WHERE nspname = 'app';

-- nor does kmd_ddl take away what keeps a control table alike on every
-- node: its guard trigger, a table without parent or children, logging
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded DISABLE TRIGGER kommander_guard')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded DISABLE TRIGGER ALL')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded ENABLE REPLICA TRIGGER kommander_guard')$$);
SELECT err($$SELECT kmd_ddl('DROP TRIGGER kommander_guard ON public.guarded')$$);
-- the guard fires ALWAYS: a session in the replica role (logical
-- replication's apply, a restore with triggers off) is refused too, and
-- kmd_ddl does not make it fire for origin sessions only
SELECT tgenabled FROM pg_trigger WHERE tgrelid = 'public.guarded'::regclass AND tgname = 'kommander_guard';
SET session_replication_role = replica;
SELECT err($$INSERT INTO public.guarded (id) VALUES ('local')$$);
SELECT err($$UPDATE public.guarded SET v = 'local'$$);
SELECT err($$DELETE FROM public.guarded$$);
SELECT err($$TRUNCATE public.guarded$$);
RESET session_replication_role;
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded ENABLE TRIGGER kommander_guard')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded ENABLE TRIGGER ALL')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded ENABLE TRIGGER USER')$$);
SELECT count(*) AS guarded_rows FROM public.guarded;
-- registering it again (which switches a guard made before over) changes nothing else
SELECT kmd_register_table('public.guarded');
SELECT count(*) AS guarded_rows FROM public.guarded;
SELECT err($$SELECT kmd_ddl('ALTER TRIGGER kommander_guard ON public.guarded RENAME TO g')$$);
-- nor its key-range trigger, which keeps each command in its partition
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded DISABLE TRIGGER kommander_key_range')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded ENABLE REPLICA TRIGGER kommander_key_range')$$);
SELECT err($$SELECT kmd_ddl('DROP TRIGGER kommander_key_range ON public.guarded')$$);
SELECT err($$SELECT kmd_ddl('ALTER TRIGGER kommander_key_range ON public.guarded RENAME TO k')$$);
-- a trigger of the table's own fires when commands are applied, never for
-- the replica role an image is installed as (its rows hold its effects)
SELECT kmd_ddl($$CREATE FUNCTION public.guarded_note() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END'$$) > 0 AS ddl_done;
SELECT kmd_ddl('CREATE TRIGGER noted BEFORE INSERT ON public.guarded FOR EACH ROW EXECUTE FUNCTION public.guarded_note()') > 0 AS ddl_done;
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded ENABLE ALWAYS TRIGGER noted')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded ENABLE REPLICA TRIGGER noted')$$);
SELECT kmd_ddl('DROP TRIGGER noted ON public.guarded') > 0 AS ddl_done;
SELECT kmd_ddl('CREATE TABLE public.replica_fired (id text PRIMARY KEY)') > 0 AS ddl_done;
SELECT kmd_ddl('CREATE TRIGGER noted BEFORE INSERT ON public.replica_fired FOR EACH ROW EXECUTE FUNCTION public.guarded_note();
  ALTER TABLE public.replica_fired ENABLE ALWAYS TRIGGER noted') > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('public.replica_fired')$$);
SELECT kmd_ddl('DROP TABLE public.replica_fired; DROP FUNCTION public.guarded_note()') > 0 AS ddl_done;
SELECT err($$SELECT kmd_ddl('CREATE TABLE public.guarded_child () INHERITS (public.guarded)')$$);
SELECT err($$SELECT kmd_ddl('CREATE TABLE public.guarded_parent (id text); ALTER TABLE public.guarded INHERIT public.guarded_parent')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded SET UNLOGGED')$$);
SELECT kmd_ddl(format('CREATE TYPE public.guarded_shape AS (%s)',
  (SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
     FROM pg_attribute WHERE attrelid = 'public.guarded'::regclass AND attnum > 0 AND NOT attisdropped))) > 0 AS ddl_done;
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded OF public.guarded_shape')$$);
SELECT string_agg(tgname || ' ' || tgenabled::text, ',' ORDER BY tgname) AS guard_triggers FROM pg_trigger
 WHERE tgrelid = 'public.guarded'::regclass AND tgname LIKE 'kommander%';
SELECT relpersistence, relhassubclass FROM pg_class WHERE oid = 'public.guarded'::regclass;
SELECT to_regclass('public.guarded_parent') IS NULL AS no_parent_left;
-- and a table is registered only when logged, without inheritance and of
-- no type (whose ALTER TYPE would change it on one node)
SELECT kmd_ddl($$CREATE TYPE public.typed_shape AS (id text, n int);
  CREATE TABLE public.typed_t OF public.typed_shape (PRIMARY KEY (id))$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('public.typed_t')$$);
SELECT kmd_ddl($$CREATE UNLOGGED TABLE public.unlogged_t (id text PRIMARY KEY)$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('public.unlogged_t')$$);
SELECT kmd_ddl($$CREATE TABLE public.base_t (id text PRIMARY KEY); CREATE TABLE public.child_t (id text PRIMARY KEY) INHERITS (public.base_t)$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('public.base_t')$$);
SELECT err($$SELECT kmd_register_table('public.child_t')$$);
SELECT kmd_ddl($$DROP TABLE public.unlogged_t, public.child_t, public.base_t$$) > 0 AS ddl_done;
-- a partitioned control table takes new partitions through kmd_ddl; a
-- control table does not become another table's partition
SELECT kmd_ddl($$CREATE TABLE public.parted (id text PRIMARY KEY, v text) PARTITION BY HASH (id);
  CREATE TABLE public.parted_0 PARTITION OF public.parted FOR VALUES WITH (MODULUS 2, REMAINDER 0)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.parted');
SELECT kmd_ddl($$CREATE TABLE public.parted_1 PARTITION OF public.parted FOR VALUES WITH (MODULUS 2, REMAINDER 1)$$) > 0 AS ddl_done;
SELECT kmd_propose('p1', '{"op":"insert","table":"parted","row":{"id":"p1","v":"x"}}') > 0 AS ok;
SELECT id, v FROM parted;
-- its partitions are guarded as it is, those added since too
SELECT err($$INSERT INTO parted_0 VALUES ('z', 'local')$$);
SELECT err($$DELETE FROM parted_1$$);
SELECT err($$TRUNCATE parted_1$$);
SET session_replication_role = replica;
SELECT err($$INSERT INTO parted_1 VALUES ('z', 'local')$$);
RESET session_replication_role;
SELECT count(*) AS parted_rows FROM parted;
-- a partition detached through kmd_ddl is a table of its own again
SELECT kmd_ddl($$ALTER TABLE public.parted DETACH PARTITION public.parted_1$$) > 0 AS ddl_done;
INSERT INTO parted_1 VALUES ('local', 'detached');
SELECT count(*) AS detached_rows FROM parted_1 WHERE id = 'local';
SELECT err($$INSERT INTO parted_0 VALUES ('z', 'local')$$);
SELECT err($$INSERT INTO parted VALUES ('z', 'local')$$);
SELECT kmd_ddl($$DROP TABLE public.parted_1$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TABLE public.outer_t (id text PRIMARY KEY, v text) PARTITION BY LIST (id)$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.outer_t ATTACH PARTITION public.guarded FOR VALUES IN (''g1'')')$$);
SELECT kmd_ddl($$DROP TABLE public.parted, public.outer_t$$) > 0 AS ddl_done;

-- DROP EXTENSION without CASCADE is refused: the guard triggers depend on it
SELECT err($$DROP EXTENSION kommander$$);
DROP TABLE local_t;
DROP FUNCTION local_trigger();

-- a generated column of a control table holding a date or time constant
-- ('now', read when each node ran the DDL) is refused, by kmd_ddl and by
-- the registration; a computed one, or a fixed date, is not
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.guarded ADD COLUMN fresh boolean GENERATED ALWAYS AS (''now''::timestamptz > ''2026-01-01''::timestamptz) STORED')$$);
SELECT kmd_ddl($$ALTER TABLE public.guarded ADD COLUMN until date GENERATED ALWAYS AS (make_date(2030, 1, 31)) STORED$$) > 0 AS fixed_date_added;
SELECT kmd_ddl($$CREATE TABLE public.stale (id text PRIMARY KEY, born date GENERATED ALWAYS AS ('today'::date) STORED)$$) > 0 AS created;
SELECT err($$SELECT kmd_register_table('public.stale')$$);
-- a NULL of a time type is no time read ('now' never gives one)
SELECT kmd_ddl($$ALTER TABLE public.guarded ADD COLUMN seen_at timestamptz,
  ADD COLUMN seen_if timestamptz GENERATED ALWAYS AS (CASE WHEN v IS NOT NULL THEN seen_at END) STORED$$) > 0 AS null_time_added;
-- nor can a partition bring one in when it is attached
SELECT kmd_ddl($$CREATE TABLE public.parted_g (id text PRIMARY KEY, d date) PARTITION BY LIST (id)$$) > 0 AS created;
SELECT kmd_register_table('public.parted_g');
SELECT kmd_ddl($$CREATE TABLE public.parted_g_a (id text PRIMARY KEY, d date GENERATED ALWAYS AS ('today'::date) STORED)$$) > 0 AS created;
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.parted_g ATTACH PARTITION public.parted_g_a FOR VALUES IN (''a'')')$$);
SELECT kmd_ddl($$DROP TABLE public.stale, public.parted_g, public.parted_g_a;
  ALTER TABLE public.guarded DROP COLUMN until, DROP COLUMN seen_if, DROP COLUMN seen_at$$) > 0 AS cleaned_up;

-- a trigger that only bears the guard's name is not taken for the guard:
-- the registration, or a partition's attach, would make no guard
SELECT kmd_ddl($$CREATE TABLE public.fake_guarded (id text PRIMARY KEY);
  CREATE FUNCTION public.noop_trigger() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
  CREATE TRIGGER kommander_guard BEFORE INSERT ON public.fake_guarded
    FOR EACH STATEMENT EXECUTE FUNCTION public.noop_trigger()$$) > 0 AS created;
SELECT err($$SELECT kmd_register_table('public.fake_guarded')$$);
SELECT count(*) AS registered FROM kommander.tables WHERE relid = 'public.fake_guarded'::regclass;
SELECT kmd_ddl($$CREATE TABLE public.parted_f (id text PRIMARY KEY) PARTITION BY LIST (id)$$) > 0 AS created;
SELECT kmd_register_table('public.parted_f');
SELECT kmd_ddl($$CREATE TABLE public.parted_f_a (id text PRIMARY KEY);
  CREATE TRIGGER kommander_guard BEFORE INSERT ON public.parted_f_a
    FOR EACH STATEMENT EXECUTE FUNCTION public.noop_trigger()$$) > 0 AS created;
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.parted_f ATTACH PARTITION public.parted_f_a FOR VALUES IN (''a'')')$$);
SELECT count(*) AS attached FROM pg_inherits WHERE inhrelid = 'public.parted_f_a'::regclass;
SELECT kmd_ddl($$DROP TABLE public.fake_guarded, public.parted_f, public.parted_f_a;
  DROP FUNCTION public.noop_trigger()$$) > 0 AS cleaned_up;
