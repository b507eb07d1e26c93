-- Leases: granted, kept alive, revoked; rows attached to them; bad input
-- with its SQLSTATE.  Runs after request_ids, on its cluster: one node,
-- several partitions.

SELECT kmd_ddl($$CREATE TABLE public.claims (job text PRIMARY KEY, owner text)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.claims');

-- a lease for the partition of key c1, and three keys of that partition
CREATE TEMP TABLE l AS SELECT kmd_lease_grant('30 s', 'c1') AS id;
CREATE TEMP TABLE k AS
SELECT (array_agg(key ORDER BY i))[1] AS k1, (array_agg(key ORDER BY i))[2] AS k2,
       (array_agg(key ORDER BY i))[3] AS k3
  FROM (SELECT i, 'c' || i AS key FROM generate_series(1, 1000) i) s, LATERAL kmd_route(s.key) r
 WHERE r.partition_id = (SELECT partition_id FROM kmd_route('c1'));
SELECT k1 = 'c1' AS first_is_c1 FROM k;
SELECT id > 0 AS granted FROM l;
SELECT kmd_lease_keepalive(id) AS time_left FROM l;
SELECT ttl, rows, partition_id = (SELECT partition_id FROM kmd_route('c1')) AS partition_of_c1, expires_at = renewed_at + ttl AS expires_after_ttl,
       renewed_at >= granted_at AS renewed,
       countdown_ends > now() AND countdown_ends <= now() + ttl AS counted_down_here
  FROM kommander.leases WHERE id = (SELECT id FROM l);
SELECT kommander.lease_countdown(1) IS NULL AS no_countdown_of_an_unknown_lease;
SELECT has_function_privilege('public', 'kommander.lease_countdown(bigint)', 'EXECUTE') AS anyone_counts;

-- rows join the lease with "lease": an insert, an upsert, an update
SELECT kmd_propose(k1, format('{"op":"insert","table":"claims","row":{"job":"%s","owner":"w1"},"lease":%s}', k1, id)::jsonb) > 0 AS attached FROM l, k;
SELECT kmd_propose(k2, format('{"op":"upsert","table":"claims","row":{"job":"%s","owner":"w1"},"lease":%s}', k2, id)::jsonb) > 0 AS attached FROM l, k;
SELECT kmd_propose(k3, format('{"op":"insert","table":"claims","row":{"job":"%s"}}', k3)::jsonb) > 0 AS not_attached FROM k;
SELECT kmd_propose(k3, format('{"op":"update","table":"claims","key":{"job":"%s"},"set":{"owner":"w1"},"lease":%s}', k3, id)::jsonb) > 0 AS attached FROM l, k;
SELECT rows FROM kommander.leases WHERE id = (SELECT id FROM l);
-- an update that names no lease keeps the row's; null detaches it
SELECT kmd_propose(k1, format('{"op":"update","table":"claims","key":{"job":"%s"},"set":{"owner":"w2"}}', k1)::jsonb) > 0 AS kept FROM k;
SELECT kmd_propose(k2, format('{"op":"update","table":"claims","key":{"job":"%s"},"set":{"owner":"w2"},"lease":null}', k2)::jsonb) > 0 AS detached FROM k;
SELECT rows FROM kommander.leases WHERE id = (SELECT id FROM l);
SELECT r.key = k.k1 OR r.key = k.k3 AS attached_key, r.tbl, r.pk = jsonb_build_object('job', r.key) AS pk
  FROM kommander.lease_rows r, k ORDER BY r.key;
-- a row of another partition cannot join it (K0011)
SELECT regexp_replace(err(format($$SELECT kmd_propose('zz', '{"op":"insert","table":"claims","row":{"job":"zz"},"lease":%s}')$$, id)), '\d{6,}', 'ID')
  FROM l WHERE (SELECT partition_id FROM kmd_route('zz')) <> (SELECT partition_id FROM kmd_route('c1'));

-- revoked: its rows are deleted by the same entry, the others stay
SELECT kmd_lease_revoke(id) FROM l;
SELECT job = k2 AS only_the_detached_row_is_left, owner FROM claims, k ORDER BY job;
SELECT count(*) AS leases FROM kommander.leases;
SELECT count(*) AS attachments FROM kommander.lease_rows;

-- a lease that is gone: K0013
SELECT regexp_replace(err(format('SELECT kmd_lease_keepalive(%s)', id)), '\d{6,}', 'ID') FROM l;
SELECT regexp_replace(err(format('SELECT kmd_lease_revoke(%s)', id)), '\d{6,}', 'ID') FROM l;
-- (c1: a key of the lease's partition; another's would be refused for that)
SELECT regexp_replace(err(format($$SELECT kmd_propose('c1', '{"op":"insert","table":"claims","row":{"job":"c1"},"lease":%s}')$$, id)), '\d{6,}', 'ID') FROM l;
SELECT count(*) AS no_c1 FROM claims WHERE job = 'c1';

-- an upsert that names no lease detaches its row, also as the first write
-- of a lease's row after the table of attachments was empty
CREATE TEMP TABLE l6 AS SELECT kmd_lease_grant('1 min', 'c1') AS id;
SELECT kmd_propose(k1, format('{"op":"upsert","table":"claims","row":{"job":"%s","owner":"w3"},"lease":%s}', k1, id)::jsonb) > 0 AS attached FROM l6, k;
SELECT kmd_propose(k1, format('{"op":"upsert","table":"claims","row":{"job":"%s","owner":"w4"}}', k1)::jsonb) > 0 AS detached FROM k;
SELECT count(*) AS attachments FROM kommander.lease_rows;
SELECT kmd_lease_revoke(id) FROM l6;
SELECT owner AS kept_after_revoke FROM claims, k WHERE job = k1;

-- a lease for the partition of a key
CREATE TEMP TABLE l5 AS SELECT kmd_lease_grant('1 min', 'c5') AS id;
SELECT (SELECT partition_id FROM kommander.leases WHERE id = l5.id)
     = (SELECT partition_id FROM kmd_route('c5')) AS same_partition FROM l5;
SELECT kmd_lease_revoke(id) FROM l5;

-- bad input
SELECT err($$SELECT kmd_lease_grant(NULL)$$);
SELECT err($$SELECT kmd_lease_grant('0 s')$$);
SELECT err($$SELECT kmd_lease_grant('-5 s')$$);
SELECT err($$SELECT kmd_lease_grant('500 ms')$$);
SELECT err($$SELECT kmd_lease_grant('1 mon')$$);
SELECT err($$SELECT kmd_lease_grant('31 days')$$);
-- (the whole counts, not its fields: 30 days are in range, however written)
SELECT err($$SELECT kmd_lease_revoke(kmd_lease_grant('32 days -48 hours', 'c1'))$$);
SELECT err($$SELECT kmd_lease_grant('29 days 48 hours 1 second')$$);
SELECT err($$SELECT kmd_lease_grant('10 s', '')$$);
SELECT err($$SELECT kmd_lease_keepalive(NULL)$$);
SELECT err($$SELECT kmd_lease_keepalive(0)$$);
SELECT err($$SELECT kmd_lease_revoke(-1)$$);
SELECT err($$SELECT kmd_lease_keepalive(12345)$$);
SELECT err($$SELECT kmd_propose('c6', '{"op":"insert","table":"claims","row":{"job":"c6"},"lease":"12"}')$$);
SELECT err($$SELECT kmd_propose('c6', '{"op":"insert","table":"claims","row":{"job":"c6"},"lease":1.5}')$$);
SELECT err($$SELECT kmd_propose('c6', '{"op":"insert","table":"claims","row":{"job":"c6"},"lease":-3}')$$);
SELECT err($$SELECT kmd_propose('c6', '{"op":"insert","table":"claims","row":{"job":"c6"},"lease":null}')$$);
SELECT err($$SELECT kmd_propose('c6', '{"op":"delete","table":"claims","key":{"job":"c6"},"lease":12}')$$);
-- what a command does runs on every node: an applier can neither grant a
-- lease nor propose (0A000, the command's outcome), and nothing is made
SELECT kmd_ddl($ddl$
CREATE FUNCTION public.asks_kommander(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS $f$
BEGIN
  IF args->>'what' = 'lease' THEN
    RETURN to_jsonb(kmd_lease_grant('10 s'));
  END IF;
  RETURN to_jsonb(kmd_propose('c7', '{"op":"insert","table":"claims","row":{"job":"c7"}}'));
END $f$
$ddl$) > 0 AS ddl_done;
SELECT kmd_register_applier('asks_kommander', 'public.asks_kommander(jsonb, kommander.apply_context)');
SELECT count(*) AS leases_then FROM kommander.leases \gset
SELECT err($$SELECT kmd_propose('c7', '{"op":"call","applier":"asks_kommander","args":{"what":"lease"}}')$$);
SELECT err($$SELECT kmd_propose('c7', '{"op":"call","applier":"asks_kommander","args":{"what":"propose"}}')$$);
SELECT count(*) - :leases_then AS leases_granted FROM kommander.leases;
SELECT count(*) AS c7_rows FROM claims WHERE job = 'c7';

-- not granted to PUBLIC
CREATE ROLE lease_nobody;
SET ROLE lease_nobody;
SELECT err($$SELECT kmd_lease_grant('10 s')$$);
RESET ROLE;
DROP ROLE lease_nobody;

-- the rows of a lease that ends are deleted as their table's owner, as a
-- row command deletes them: the table's triggers run with its privileges,
-- not the apply worker's
CREATE ROLE regress_lease_owner;
GRANT EXECUTE ON FUNCTION kmd_ddl(text) TO regress_lease_owner;
GRANT CREATE ON SCHEMA public TO regress_lease_owner;
SET ROLE regress_lease_owner;
SELECT kmd_ddl($$CREATE TABLE public.held (id text PRIMARY KEY, note text)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE FUNCTION public.held_deleted() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
     RAISE EXCEPTION ''held row deleted by superuser %'', current_user; END IF; RETURN OLD; END'$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TRIGGER held_deleted BEFORE DELETE ON public.held
  FOR EACH ROW EXECUTE FUNCTION public.held_deleted()$$) > 0 AS ddl_done;
RESET ROLE;
SELECT kmd_register_table('public.held');
SELECT kmd_lease_grant('30 s', 'h1') AS held_lease \gset
SELECT kmd_propose('h1', format('{"op":"insert","table":"held","row":{"id":"h1"},"lease":%s}', :held_lease)::jsonb) > 0 AS attached;
SELECT kmd_lease_revoke(:held_lease);
SELECT count(*) AS held_rows_left FROM held;
-- a row an applier deletes leaves its lease, and so does one it gives
-- another key, while one it only updates stays: the lease's end deletes
-- no row written under their keys later
SET ROLE regress_lease_owner;
SELECT kmd_ddl($ddl$
CREATE FUNCTION public.held_rewrite(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS $f$
BEGIN
  IF args->>'do' = 'delete' THEN
    DELETE FROM public.held WHERE id = args->>'id';
  ELSIF args->>'do' = 'rekey' THEN
    UPDATE public.held SET id = args->>'to' WHERE id = args->>'id';
  ELSIF args->>'do' = 'touch' THEN
    UPDATE public.held SET note = 'touched' WHERE id = args->>'id';
  ELSIF args->>'do' = 'delete parted' THEN
    DELETE FROM public.parted_held WHERE id = args->>'id';
  ELSE
    INSERT INTO public.held VALUES (args->>'id', 'written again');
  END IF;
  RETURN NULL;
END $f$
$ddl$) > 0 AS ddl_done;
RESET ROLE;
SELECT kmd_register_applier('held_rewrite', 'public.held_rewrite(jsonb, kommander.apply_context)');
CREATE TEMP TABLE rk AS
SELECT (array_agg(k ORDER BY i))[1] AS a, (array_agg(k ORDER BY i))[2] AS b,
       (array_agg(k ORDER BY i))[3] AS c, (array_agg(k ORDER BY i))[4] AS d
  FROM (SELECT i, 'r' || i AS k FROM generate_series(1, 1000) i) s
 WHERE (SELECT partition_id FROM kmd_route(k)) = (SELECT partition_id FROM kmd_route('h1'));
SELECT kmd_lease_grant('30 s', 'h1') AS held_lease \gset
SELECT bool_and(kmd_propose(k, format('{"op":"insert","table":"held","row":{"id":"%s"},"lease":%s}', k, :held_lease)::jsonb) > 0) AS attached
  FROM rk, unnest(ARRAY[a, b, d]) k;
SELECT kmd_propose(a, format('{"op":"call","applier":"held_rewrite","args":{"do":"delete","id":"%s"}}', a)::jsonb) > 0 AS deleted,
       kmd_propose(b, format('{"op":"call","applier":"held_rewrite","args":{"do":"rekey","id":"%s","to":"%s"}}', b, c)::jsonb) > 0 AS rekeyed,
       kmd_propose(d, format('{"op":"call","applier":"held_rewrite","args":{"do":"touch","id":"%s"}}', d)::jsonb) > 0 AS touched
  FROM rk;
SELECT rows AS still_attached FROM kommander.leases WHERE id = :held_lease;
SELECT pk->>'id' = d AS attached_is_d FROM kommander.lease_rows, rk WHERE lease = :held_lease;
SELECT kmd_propose(a, format('{"op":"call","applier":"held_rewrite","args":{"do":"insert","id":"%s"}}', a)::jsonb) > 0 AS written_again
  FROM rk;
SELECT kmd_lease_revoke(:held_lease);
SELECT CASE id WHEN a THEN 'a' WHEN c THEN 'c' ELSE id END AS kept, note FROM held, rk ORDER BY 1;
SELECT bool_and(kmd_propose(k, format('{"op":"delete","table":"held","key":{"id":"%s"}}', k)::jsonb) > 0) AS cleaned_up
  FROM rk, unnest(ARRAY[a, c]) k;
-- a row of a partition of a partitioned table leaves its lease too
SET ROLE regress_lease_owner;
SELECT kmd_ddl($$CREATE TABLE public.parted_held (id text PRIMARY KEY) PARTITION BY HASH (id);
  CREATE TABLE public.parted_held_0 PARTITION OF public.parted_held FOR VALUES WITH (MODULUS 2, REMAINDER 0);
  CREATE TABLE public.parted_held_1 PARTITION OF public.parted_held FOR VALUES WITH (MODULUS 2, REMAINDER 1)$$) > 0 AS ddl_done;
RESET ROLE;
SELECT kmd_register_table('public.parted_held');
SELECT kmd_lease_grant('30 s', 'h1') AS held_lease \gset
SELECT kmd_propose(a, format('{"op":"insert","table":"parted_held","row":{"id":"%s"},"lease":%s}', a, :held_lease)::jsonb) > 0 AS attached,
       kmd_propose(a, format('{"op":"call","applier":"held_rewrite","args":{"do":"delete parted","id":"%s"}}', a)::jsonb) > 0 AS deleted
  FROM rk;
SELECT rows AS parted_still_attached FROM kommander.leases WHERE id = :held_lease;
SELECT kmd_lease_revoke(:held_lease);
SELECT kmd_ddl('DROP TABLE public.parted_held') > 0 AS ddl_done;
-- whatever settings the applier runs with, its delete finds the key the
-- lease noted
SET ROLE regress_lease_owner;
SELECT kmd_ddl($ddl$CREATE TABLE public.held_at (id text, at timestamptz, PRIMARY KEY (id, at));
CREATE FUNCTION public.held_at_delete(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql SET TimeZone = 'Asia/Kolkata' SET DateStyle = 'SQL, DMY' AS $f$
BEGIN
  DELETE FROM public.held_at WHERE id = args->>'id';
  RETURN NULL;
END $f$$ddl$) > 0 AS ddl_done;
RESET ROLE;
SELECT kmd_register_table('public.held_at');
SELECT kmd_register_applier('held_at_delete', 'public.held_at_delete(jsonb, kommander.apply_context)');
SELECT kmd_lease_grant('30 s', 'h1') AS held_lease \gset
SELECT kmd_propose(a, format('{"op":"insert","table":"held_at","row":{"id":"%s","at":"2026-01-01 00:00:00+00"},"lease":%s}', a, :held_lease)::jsonb) > 0 AS attached,
       kmd_propose(a, format('{"op":"call","applier":"held_at_delete","args":{"id":"%s"}}', a)::jsonb) > 0 AS deleted
  FROM rk;
SELECT rows AS at_still_attached FROM kommander.leases WHERE id = :held_lease;
SELECT kmd_lease_revoke(:held_lease);
SELECT kmd_ddl('DROP TABLE public.held_at; DROP FUNCTION public.held_at_delete(jsonb, kommander.apply_context)') > 0 AS ddl_done;
-- nor does the search_path it runs with choose the operators of the
-- detach, which runs as the apply worker's role: an operator of the
-- applier's owner would run as that role
SET ROLE regress_lease_owner;
SELECT kmd_ddl($ddl$CREATE FUNCTION public.owners_eq(text, text) RETURNS boolean
LANGUAGE plpgsql AS $f$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'the owner''s operator ran as superuser %', current_user;
  END IF;
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END $f$;
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.owners_eq);
CREATE FUNCTION public.held_delete_own_path(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql SET search_path = public, pg_catalog AS $f$
BEGIN
  DELETE FROM public.held WHERE id OPERATOR(pg_catalog.=) (args->>'id');
  RETURN NULL;
END $f$$ddl$) > 0 AS ddl_done;
RESET ROLE;
SELECT kmd_register_applier('held_delete_own_path', 'public.held_delete_own_path(jsonb, kommander.apply_context)');
SELECT kmd_lease_grant('30 s', 'h1') AS held_lease \gset
SELECT kmd_propose(a, format('{"op":"insert","table":"held","row":{"id":"%s"},"lease":%s}', a, :held_lease)::jsonb) > 0 AS attached
  FROM rk;
SELECT err(format($$SELECT kmd_propose('%s', '{"op":"call","applier":"held_delete_own_path","args":{"id":"%s"}}')$$, a, a))
  FROM rk;
SELECT count(*) AS held_a_rows FROM held, rk WHERE id = a;
SELECT rows AS own_path_still_attached FROM kommander.leases WHERE id = :held_lease;
SELECT kmd_lease_revoke(:held_lease);
SELECT kmd_ddl('DROP FUNCTION public.held_delete_own_path(jsonb, kommander.apply_context); DROP OPERATOR public.= (text, text); DROP FUNCTION public.owners_eq(text, text)') > 0 AS ddl_done;
-- and the key it finds is written as the table's owner: a cast of the
-- owner's type to json is the owner's code, never the superuser's
SET ROLE regress_lease_owner;
SELECT kmd_ddl($ddl$CREATE TYPE public.lease_mood AS ENUM ('calm', 'busy');
CREATE FUNCTION public.lease_mood_json(public.lease_mood) RETURNS json
LANGUAGE plpgsql AS $f$
BEGIN
  IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'the owner''s cast ran as superuser %', current_user;
  END IF;
  RETURN pg_catalog.to_json($1::text);
END $f$;
CREATE CAST (public.lease_mood AS json) WITH FUNCTION public.lease_mood_json(public.lease_mood);
CREATE TABLE public.held_mood (id text, mood public.lease_mood, PRIMARY KEY (id, mood));
CREATE FUNCTION public.held_mood_delete(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql AS $f$
BEGIN
  DELETE FROM public.held_mood WHERE id = args->>'id';
  RETURN NULL;
END $f$$ddl$) > 0 AS ddl_done;
RESET ROLE;
SELECT kmd_register_table('public.held_mood');
SELECT kmd_register_applier('held_mood_delete', 'public.held_mood_delete(jsonb, kommander.apply_context)');
SELECT kmd_lease_grant('30 s', 'h1') AS held_lease \gset
SELECT kmd_propose(a, format('{"op":"insert","table":"held_mood","row":{"id":"%s","mood":"calm"},"lease":%s}', a, :held_lease)::jsonb) > 0 AS attached
  FROM rk;
SELECT err(format($$SELECT kmd_propose('%s', '{"op":"call","applier":"held_mood_delete","args":{"id":"%s"}}')$$, a, a))
  FROM rk;
SELECT count(*) AS held_mood_rows FROM held_mood;
SELECT rows AS mood_still_attached FROM kommander.leases WHERE id = :held_lease;
SELECT kmd_lease_revoke(:held_lease);
SELECT kmd_ddl('DROP TABLE public.held_mood; DROP FUNCTION public.held_mood_delete(jsonb, kommander.apply_context); DROP CAST (public.lease_mood AS json); DROP FUNCTION public.lease_mood_json(public.lease_mood); DROP TYPE public.lease_mood') > 0 AS ddl_done;
SELECT kmd_ddl('DROP FUNCTION public.held_rewrite(jsonb, kommander.apply_context)') > 0 AS ddl_done;
-- a row whose table refuses to let it go stays, no longer attached: the
-- lease ends all the same
SELECT kmd_ddl($$CREATE FUNCTION public.held_refused() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN RAISE EXCEPTION ''% stays'', OLD.id; END'$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TRIGGER held_refused BEFORE DELETE ON public.held
  FOR EACH ROW WHEN (OLD.note = 'keep') EXECUTE FUNCTION public.held_refused()$$) > 0 AS ddl_done;
CREATE TEMP TABLE hk AS
SELECT (array_agg(k ORDER BY i))[1] AS keep_k, (array_agg(k ORDER BY i))[2] AS go_k
  FROM (SELECT i, 'h' || i AS k FROM generate_series(10, 1000) i) s
 WHERE (SELECT partition_id FROM kmd_route(k)) = (SELECT partition_id FROM kmd_route('h10'));
SELECT kmd_lease_grant('30 s', 'h10') AS held_lease \gset
SELECT kmd_propose(keep_k, format('{"op":"insert","table":"held","row":{"id":"%s","note":"keep"},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached,
       kmd_propose(go_k, format('{"op":"insert","table":"held","row":{"id":"%s","note":"go"},"lease":%s}', go_k, :held_lease)::jsonb) > 0 AS attached
  FROM hk;
SELECT kmd_lease_revoke(:held_lease);
SELECT id = keep_k AS kept_is_the_refused_one, note FROM held, hk ORDER BY id;
SELECT count(*) AS lease_left FROM kommander.leases WHERE id = :held_lease;
SELECT count(*) AS attachments_left FROM kommander.lease_rows WHERE lease = :held_lease;
-- so is one that a deferred constraint refuses to let go, at the end of
-- the command: the lease ends all the same, and is not counted down again
SELECT kmd_ddl($$CREATE FUNCTION public.held_later() RETURNS trigger LANGUAGE plpgsql AS
  'BEGIN RAISE EXCEPTION ''% stays, later'', OLD.id; END'$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE CONSTRAINT TRIGGER held_later AFTER DELETE ON public.held
  DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.note = 'later')
  EXECUTE FUNCTION public.held_later()$$) > 0 AS ddl_done;
SELECT kmd_lease_grant('30 s', 'h10') AS held_lease \gset
SELECT kmd_propose(go_k, format('{"op":"insert","table":"held","row":{"id":"%s","note":"later"},"lease":%s}', go_k, :held_lease)::jsonb) > 0 AS attached
  FROM hk;
SELECT kmd_lease_revoke(:held_lease);
SELECT note AS kept_by_a_deferred_refusal FROM held, hk WHERE id = go_k;
SELECT count(*) AS lease_left FROM kommander.leases WHERE id = :held_lease;
SELECT count(*) AS attachments_left FROM kommander.lease_rows WHERE lease = :held_lease;
-- the rows follow their table renamed or moved by kmd_ddl, and go with
-- it dropped: a table created later under its name has none of them
SELECT kmd_ddl('DROP TRIGGER held_later ON public.held') > 0 AS ddl_done;
SELECT kmd_lease_grant('30 s', 'h10') AS held_lease \gset
SELECT kmd_propose(keep_k, format('{"op":"upsert","table":"held","row":{"id":"%s","note":"moved"},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached
  FROM hk;
SELECT kmd_ddl('CREATE SCHEMA elsewhere; GRANT USAGE, CREATE ON SCHEMA elsewhere TO regress_lease_owner') > 0 AS ddl_done;
SELECT kmd_ddl('ALTER TABLE public.held RENAME TO held2') > 0 AS renamed;
SELECT kmd_ddl('ALTER TABLE public.held2 SET SCHEMA elsewhere') > 0 AS moved;
SELECT tbl AS attached_to FROM kommander.lease_rows WHERE lease = :held_lease;
SELECT kmd_lease_revoke(:held_lease);
SELECT count(*) AS moved_row_left FROM elsewhere.held2, hk WHERE id = keep_k;
SELECT kmd_ddl('CREATE TABLE public.gone (id text PRIMARY KEY)') > 0 AS ddl_done;
SELECT kmd_register_table('public.gone');
SELECT kmd_lease_grant('30 s', 'h10') AS held_lease \gset
SELECT kmd_propose(keep_k, format('{"op":"insert","table":"gone","row":{"id":"%s"},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached
  FROM hk;
SELECT kmd_ddl('DROP TABLE public.gone') > 0 AS dropped;
SELECT count(*) AS attachments_left FROM kommander.lease_rows WHERE lease = :held_lease;
SELECT kmd_ddl('CREATE TABLE public.gone (id text PRIMARY KEY)') > 0 AS ddl_done;
SELECT kmd_register_table('public.gone');
SELECT kmd_propose(keep_k, format('{"op":"insert","table":"gone","row":{"id":"%s"}}', keep_k)::jsonb) > 0 AS not_attached
  FROM hk;
SELECT kmd_lease_revoke(:held_lease);
SELECT count(*) AS new_table_row_left FROM public.gone;
SELECT kmd_ddl('DROP TABLE public.gone') > 0 AS dropped;
-- names passed from one table to another in one statement: each row
-- follows its own table
SELECT kmd_ddl('CREATE TABLE public.sa (id text PRIMARY KEY); CREATE TABLE public.sb (id text PRIMARY KEY)') > 0 AS ddl_done;
SELECT kmd_register_table('public.sa');
SELECT kmd_register_table('public.sb');
SELECT kmd_lease_grant('30 s', 'h10') AS held_lease \gset
SELECT kmd_propose(keep_k, format('{"op":"insert","table":"sa","row":{"id":"%s"},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached,
       kmd_propose(go_k, format('{"op":"insert","table":"sb","row":{"id":"%s"},"lease":%s}', go_k, :held_lease)::jsonb) > 0 AS attached,
       kmd_propose(keep_k, format('{"op":"insert","table":"sb","row":{"id":"%s"},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached_too
  FROM hk;
SELECT kmd_ddl('ALTER TABLE public.sa RENAME TO st; ALTER TABLE public.sb RENAME TO sa; ALTER TABLE public.st RENAME TO sb') > 0 AS swapped;
SELECT r.tbl, r.key = hk.keep_k AS is_keep_k FROM kommander.lease_rows r, hk
 WHERE r.lease = :held_lease ORDER BY r.tbl, r.key = hk.keep_k;
SELECT kmd_lease_revoke(:held_lease);
SELECT (SELECT count(*) FROM public.sa) + (SELECT count(*) FROM public.sb) AS swapped_rows_left;
SELECT kmd_ddl('DROP TABLE public.sa; DROP TABLE public.sb') > 0 AS dropped;
-- a primary key that kmd_ddl changes: the rows are noted under the new
-- key (the old one's columns read under their new names and types), so
-- that the lease's end deletes its own rows only, and a detach by the new
-- key finds its row
SELECT kmd_ddl('CREATE TABLE public.pk (id text PRIMARY KEY, n int NOT NULL, note text)') > 0 AS ddl_done;
SELECT kmd_register_table('public.pk');
SELECT kmd_lease_grant('30 s', 'h10') AS held_lease \gset
SELECT kmd_propose(keep_k, format('{"op":"insert","table":"pk","row":{"id":"%s","n":1},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached,
       kmd_propose(go_k, format('{"op":"insert","table":"pk","row":{"id":"%s","n":1},"lease":%s}', go_k, :held_lease)::jsonb) > 0 AS attached
  FROM hk;
SELECT kmd_ddl('ALTER TABLE public.pk DROP CONSTRAINT pk_pkey, ADD PRIMARY KEY (id, n)') > 0 AS key_widened;
SELECT kmd_ddl('ALTER TABLE public.pk RENAME COLUMN id TO ident') > 0 AS key_column_renamed;
SELECT kmd_ddl('ALTER TABLE public.pk ALTER COLUMN n TYPE text') > 0 AS key_column_retyped;
SELECT r.key = hk.keep_k AS is_keep_k, r.pk - 'ident' AS pk, r.pk->>'ident' = r.key AS ident_noted
  FROM kommander.lease_rows r, hk WHERE r.lease = :held_lease ORDER BY 1;
SELECT kmd_propose(keep_k, format('{"op":"insert","table":"pk","row":{"ident":"%s","n":"2"}}', keep_k)::jsonb) > 0 AS not_attached,
       kmd_propose(go_k, format('{"op":"update","table":"pk","key":{"ident":"%s","n":"1"},"set":{"note":"x"},"lease":null}', go_k)::jsonb) > 0 AS detached
  FROM hk;
SELECT kmd_lease_revoke(:held_lease);
SELECT ident = keep_k AS is_keep_k, n, note FROM public.pk, hk ORDER BY 1, 2;
-- refused while rows are held under it (0A000): a key dropped with no
-- other, a column of the old key dropped in the call that changes it, an
-- old key that finds two rows once changed; nothing of the call is left
SELECT kmd_lease_grant('30 s', 'h10') AS held_lease \gset
SELECT kmd_propose(keep_k, format('{"op":"update","table":"pk","key":{"ident":"%s","n":"2"},"set":{"note":"y"},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached
  FROM hk;
SELECT err('SELECT kmd_ddl(''ALTER TABLE public.pk DROP CONSTRAINT pk_pkey'')');
SELECT err('SELECT kmd_ddl(''ALTER TABLE public.pk DROP CONSTRAINT pk_pkey, ADD PRIMARY KEY (ident), DROP COLUMN n'')');
SELECT kmd_ddl('ALTER TABLE public.pk DROP CONSTRAINT pk_pkey, ADD PRIMARY KEY (ident)') > 0 AS key_narrowed;
SELECT kmd_ddl('ALTER TABLE public.pk DROP COLUMN n') > 0 AS old_key_column_dropped_after;
SELECT pk - 'ident' AS pk FROM kommander.lease_rows WHERE lease = :held_lease;
-- a key whose first column changes gives the held row another routing
-- key, maybe another partition than its lease's, where the lease's end
-- could not delete it: refused too, as is a new type of the column that
-- writes the key as other text
SELECT kmd_ddl('ALTER TABLE public.pk ADD COLUMN r text NOT NULL DEFAULT ''x''') > 0 AS column_added;
SELECT err('SELECT kmd_ddl(''ALTER TABLE public.pk DROP CONSTRAINT pk_pkey, ADD PRIMARY KEY (r, ident)'')');
SELECT err('SELECT kmd_ddl(''ALTER TABLE public.pk ALTER COLUMN ident TYPE char(12)'')');
SELECT kmd_ddl('ALTER TABLE public.pk ALTER COLUMN ident TYPE varchar(40)') > 0 AS same_text;
SELECT r.key = hk.keep_k AS is_keep_k FROM kommander.lease_rows r, hk WHERE r.lease = :held_lease AND r.tbl = 'public.pk';
SELECT kmd_ddl('CREATE TABLE public.pkn (id text, v numeric(10,2), n int NOT NULL, PRIMARY KEY (id, v))') > 0 AS ddl_done;
SELECT kmd_register_table('public.pkn');
SELECT kmd_propose(keep_k, format('{"op":"insert","table":"pkn","row":{"id":"%s","v":1.25,"n":1},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached,
       kmd_propose(keep_k, format('{"op":"insert","table":"pkn","row":{"id":"%s","v":1.30,"n":2},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached
  FROM hk;
SELECT regexp_replace(err('SELECT kmd_ddl(''ALTER TABLE public.pkn DROP CONSTRAINT pkn_pkey, ALTER COLUMN v TYPE numeric(10,0), ADD PRIMARY KEY (id, v, n)'')'), 'h\d+', 'KEY', 'g');
SELECT format_type(atttypid, atttypmod) AS v_kept FROM pg_attribute
 WHERE attrelid = 'public.pkn'::regclass AND attname = 'v';
-- a key column's modifier changed, with the table renamed in the same
-- call: the row is found by its old value converted as the column was,
-- and a detach by the new key finds it; a new type computed by USING is
-- refused
-- (as the table's owner, who may not read kommander's tables; USING is
-- refused also after a rename in the same call)
SET ROLE regress_lease_owner;
SELECT kmd_ddl('CREATE TABLE public.pkt (id text, v numeric(10,2), note text, PRIMARY KEY (id, v))') > 0 AS ddl_done;
RESET ROLE;
SELECT kmd_register_table('public.pkt');
SELECT kmd_propose(keep_k, format('{"op":"insert","table":"pkt","row":{"id":"%s","v":1.25},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached
  FROM hk;
SET ROLE regress_lease_owner;
SELECT err('SELECT kmd_ddl(''ALTER TABLE public.pkt ALTER COLUMN v TYPE numeric(10,0) USING v * 10'')');
SELECT err('SELECT kmd_ddl(''ALTER TABLE public.pkt RENAME TO pkt3; ALTER TABLE public.pkt3 ALTER COLUMN v TYPE numeric(10,0) USING v * 10'')');
SELECT kmd_ddl('ALTER TABLE public.pkt RENAME TO pkt2; ALTER TABLE public.pkt2 ALTER COLUMN v TYPE numeric(10,0)') > 0 AS rounded;
RESET ROLE;
SELECT tbl, pk - 'id' AS pk FROM kommander.lease_rows WHERE lease = :held_lease AND tbl = 'public.pkt2';
SELECT kmd_propose(keep_k, format('{"op":"update","table":"pkt2","key":{"id":"%s","v":1},"set":{"note":"x"},"lease":null}', keep_k)::jsonb) > 0 AS detached
  FROM hk;
SELECT count(*) AS pkt2_attachments FROM kommander.lease_rows WHERE lease = :held_lease AND tbl = 'public.pkt2';
SELECT kmd_lease_revoke(:held_lease);
SELECT (SELECT count(*) FROM public.pk) AS pk_rows_left, (SELECT count(*) FROM public.pkn) AS pkn_rows_left,
       (SELECT count(*) FROM public.pkt2) AS pkt2_rows_left;
SELECT kmd_ddl('DROP TABLE public.pk, public.pkn, public.pkt2') > 0 AS dropped;
-- the key a lease notes: of a column changed by kmd_ddl since, and of a
-- key whose column the proposer's defaults gave; a row with a column of a
-- NOT NULL domain goes too
CREATE TEMP TABLE ik AS
SELECT (array_agg(i ORDER BY i))[1] AS ik1, (array_agg(i ORDER BY i))[2] AS ik2
  FROM generate_series(1, 1000) i
 WHERE (SELECT partition_id FROM kmd_route(i::text)) = (SELECT partition_id FROM kmd_route('h10'));
SELECT kmd_ddl($$CREATE TABLE public.li (id int PRIMARY KEY);
  CREATE TABLE public.lq (queue text, id uuid DEFAULT gen_random_uuid(), PRIMARY KEY (queue, id));
  CREATE DOMAIN public.ld_req AS int NOT NULL;
  CREATE TABLE public.ld (id text PRIMARY KEY, req public.ld_req)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.li');
SELECT kmd_register_table('public.lq');
SELECT kmd_register_table('public.ld');
SELECT kmd_lease_grant('30 s', 'h10') AS held_lease \gset
SELECT kmd_propose(ik1::text, format('{"op":"insert","table":"li","row":{"id":%s},"lease":%s}', ik1, :held_lease)::jsonb) > 0 AS attached
  FROM ik;
SELECT kmd_ddl('ALTER TABLE public.li ALTER COLUMN id TYPE bigint') > 0 AS altered;
SELECT kmd_propose(ik2::text, format('{"op":"insert","table":"li","row":{"id":%s},"lease":%s}', ik2, :held_lease)::jsonb) > 0 AS attached_after_the_type_changed
  FROM ik;
SELECT kmd_propose(keep_k, format('{"op":"insert","table":"lq","row":{"queue":"%s"},"lease":%s}', keep_k, :held_lease)::jsonb) > 0 AS attached_with_a_decided_id
  FROM hk;
SELECT kmd_propose('h10', format('{"op":"insert","table":"ld","row":{"id":"h10","req":1},"lease":%s}', :held_lease)::jsonb) > 0 AS attached_with_a_domain;
SELECT tbl, pk ? 'id' AND pk->>'id' IS NOT NULL AS key_noted FROM kommander.lease_rows
 WHERE lease = :held_lease ORDER BY tbl, pk::text;
SELECT kmd_lease_revoke(:held_lease);
SELECT (SELECT count(*) FROM public.li) + (SELECT count(*) FROM public.lq) +
       (SELECT count(*) FROM public.ld) AS rows_left;
SELECT kmd_ddl('DROP TABLE public.li, public.lq, public.ld; DROP DOMAIN public.ld_req') > 0 AS dropped;
-- a key column that a constant default would fill is named: the lease
-- notes the row under the key the command gives, and would never find it
SELECT kmd_ddl($$CREATE TABLE public.lc (id text, n int DEFAULT 0, note text, PRIMARY KEY (id, n))$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.lc');
SELECT kmd_lease_grant('30 s', 'h10') AS held_lease \gset
SELECT err(format($$SELECT kmd_propose('h10', '{"op":"insert","table":"lc","row":{"id":"h10"},"lease":%s}')$$, :held_lease));
SELECT kmd_propose('h10', format('{"op":"insert","table":"lc","row":{"id":"h10","n":0},"lease":%s}', :held_lease)::jsonb) > 0 AS attached_with_its_whole_key;
-- attaching a row takes DELETE on its table, which the lease's end does:
-- a role without it cannot have someone else's row deleted through its
-- own lease (an upsert of a row's key alone changes nothing else)
SELECT kmd_propose('h10', '{"op":"insert","table":"lc","row":{"id":"h10","n":5}}') > 0 AS someone_elses_row;
CREATE ROLE regress_lease_nodelete;
GRANT INSERT, UPDATE ON public.lc TO regress_lease_nodelete;
GRANT EXECUTE ON FUNCTION kmd_lease_grant(interval, text), kmd_lease_revoke(bigint) TO regress_lease_nodelete;
SET ROLE regress_lease_nodelete;
SELECT kmd_lease_grant('30 s', 'h10') AS own_lease \gset
SELECT err(format($$SELECT kmd_propose('h10', '{"op":"upsert","table":"lc","row":{"id":"h10","n":5},"lease":%s}')$$, :own_lease));
SELECT err(format($$SELECT kmd_propose('h10', '{"op":"update","table":"lc","key":{"id":"h10","n":5},"set":{"note":"mine"},"lease":%s}')$$, :own_lease));
SELECT kmd_lease_revoke(:own_lease);
RESET ROLE;
SELECT kmd_lease_revoke(:held_lease);
SELECT n AS lc_rows_left FROM public.lc ORDER BY n;
SELECT kmd_ddl('DROP TABLE public.lc') > 0 AS dropped;
DROP OWNED BY regress_lease_nodelete;
DROP ROLE regress_lease_nodelete;
SELECT kmd_ddl('DROP TABLE elsewhere.held2') > 0 AS dropped;
SELECT kmd_ddl('DROP SCHEMA elsewhere') > 0 AS dropped;
SELECT kmd_ddl('DROP FUNCTION public.held_refused()') > 0 AS dropped;
SELECT kmd_ddl('DROP FUNCTION public.held_later()') > 0 AS dropped;
DROP OWNED BY regress_lease_owner;
DROP ROLE regress_lease_owner;

-- the README's job queue, as written there
SELECT kmd_ddl($$CREATE TABLE public.queue (id text PRIMARY KEY, state text NOT NULL DEFAULT 'queued',
                 attempts int NOT NULL DEFAULT 0, last_claim timestamptz, result jsonb)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TABLE public.queue_claims (job text PRIMARY KEY, worker text NOT NULL,
                 deadline timestamptz)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.queue');
SELECT kmd_register_table('public.queue_claims');
SELECT kmd_propose('job-7', '{"op":"insert","table":"queue","row":{"id":"job-7"},
                              "request_id":"enqueue-job-7"}') = kmd_propose('job-7', '{"op":"insert","table":"queue","row":{"id":"job-7"},
                              "request_id":"enqueue-job-7"}') AS enqueued_once;
SELECT id FROM queue j WHERE state = 'queued'
   AND NOT EXISTS (SELECT 1 FROM queue_claims c WHERE c.job = j.id) LIMIT 1;
SELECT kmd_lease_grant('30 s', 'job-7') AS lease \gset
SELECT r - 'index' - 'term' - 'partition' AS claimed
  FROM kmd_propose_result('job-7', format('{"op":"batch","request_id":"w1-claim-job-7-%s","commands":[
  {"op":"insert","table":"queue_claims","row":{"job":"job-7","worker":"w1"},"lease":%s},
  {"op":"update","table":"queue_claims","key":{"job":"job-7"},"set":{"deadline":{"now_plus":"30 s"}}},
  {"op":"update","table":"queue","key":{"id":"job-7"},
   "set":{"attempts":{"add":1},"last_claim":{"now_plus":"0 s"}},"if":{"state":"queued"}}]}',
  :lease, :lease)::jsonb) r;
-- another worker's claim: 23505, nothing of its batch applied
SELECT err($$SELECT kmd_propose('job-7', '{"op":"batch","commands":[
  {"op":"insert","table":"queue_claims","row":{"job":"job-7","worker":"w2"}},
  {"op":"update","table":"queue","key":{"id":"job-7"},"set":{"attempts":{"add":1}},"if":{"state":"queued"}}]}')$$);
SELECT kmd_lease_keepalive(:lease) AS time_left;
SELECT worker, deadline - q.last_claim AS deadline_after_claim, attempts
  FROM queue_claims c JOIN queue q ON q.id = c.job;
SELECT r - 'index' - 'term' - 'partition' AS done
  FROM kmd_propose_result('job-7', format('{"op":"batch","request_id":"w1-done-job-7-%s","commands":[
  {"op":"delete","table":"queue_claims","key":{"job":"job-7"},"if":{"worker":"w1"},"strict":true},
  {"op":"update","table":"queue","key":{"id":"job-7"},"set":{"state":"done","result":{"ok":true}}}]}',
  :lease)::jsonb) r;
SELECT kmd_lease_revoke(:lease);
SELECT id, state, attempts, result FROM queue;
SELECT count(*) AS claims FROM queue_claims;

-- the leader's clock looks at the slots of leases in use only: a lease
-- granted in a slot that others freed, below the highest and at the
-- top, still expires
SELECT count(*) AS leases_before FROM kommander.leases \gset
CREATE TEMP TABLE slots AS
SELECT i, kmd_lease_grant('30 s', 'c1') AS id FROM generate_series(1, 3) i;
SELECT kmd_lease_revoke(id) FROM slots WHERE i = 3;
SELECT kmd_lease_revoke(id) FROM slots WHERE i = 2;
CREATE TEMP TABLE short AS
SELECT kmd_lease_grant('1 s', 'c1') AS a, kmd_lease_grant('1 s', 'c1') AS b;
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + interval '60 s';
BEGIN
    WHILE EXISTS (SELECT 1 FROM kommander.leases l, short s WHERE l.id IN (s.a, s.b)) LOOP
        IF clock_timestamp() > deadline THEN
            RAISE EXCEPTION 'the short leases did not expire';
        END IF;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT count(*) - :leases_before AS leases_left FROM kommander.leases;
SELECT kmd_lease_revoke(id) FROM slots WHERE i = 1;

-- a key's values written otherwise while the control table stays as it
-- is (an enum's value renamed, a composite type's attributes or the
-- columns of a table whose row type the key has): a lease's note would
-- no longer name its row, nor route it to the lease's partition
SELECT kmd_ddl($$CREATE TYPE public.shade AS ENUM ('red', 'blue')$$) > 0 AS ddl_done;
SELECT kmd_ddl('CREATE DOMAIN public.spot_w AS int') > 0 AS ddl_done;
SELECT kmd_ddl('CREATE TYPE public.spot AS (x int, w public.spot_w)') > 0 AS ddl_done;
SELECT kmd_ddl('CREATE DOMAIN public.spot_d AS public.spot') > 0 AS ddl_done;
SELECT kmd_ddl('CREATE TABLE public.spot_parts (x int)') > 0 AS ddl_done;
SELECT kmd_ddl('CREATE TABLE public.spot_kid () INHERITS (public.spot_parts)') > 0 AS ddl_done;
SELECT kmd_ddl('CREATE TABLE public.by_shade (s public.shade PRIMARY KEY)') > 0 AS ddl_done;
SELECT kmd_ddl('CREATE TABLE public.by_spot (id text, p public.spot_d, n int, PRIMARY KEY (id, p))') > 0 AS ddl_done;
SELECT kmd_ddl('CREATE TABLE public.by_part (id text, p public.spot_kid[], PRIMARY KEY (id, p))') > 0 AS ddl_done;
SELECT kmd_register_table('public.by_shade'), kmd_register_table('public.by_spot'),
       kmd_register_table('public.by_part');
SELECT kmd_lease_grant('60 s', 'red') AS shade_lease \gset
SELECT kmd_propose('red', format('{"op":"insert","table":"by_shade","row":{"s":"red"},"lease":%s}', :shade_lease)::jsonb) > 0 AS attached,
       kmd_propose('red', format('{"op":"insert","table":"by_spot","row":{"id":"red","p":{"x":1}},"lease":%s}', :shade_lease)::jsonb) > 0 AS attached,
       kmd_propose('red', format('{"op":"insert","table":"by_part","row":{"id":"red","p":[{"x":1}]},"lease":%s}', :shade_lease)::jsonb) > 0 AS attached;
SELECT tbl, key, pk FROM kommander.lease_rows WHERE lease = :shade_lease ORDER BY tbl;
SELECT err($$SELECT kmd_ddl('ALTER TYPE public.shade RENAME VALUE ''red'' TO ''crimson''')$$);
SELECT err($$SELECT kmd_ddl('ALTER TYPE public.spot ADD ATTRIBUTE y int')$$);
SELECT err($$SELECT kmd_ddl('ALTER TYPE public.spot RENAME ATTRIBUTE x TO z')$$);
SELECT err($$SELECT kmd_ddl('DROP DOMAIN public.spot_w CASCADE')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.spot_kid ADD COLUMN y int')$$);
-- (and through the table it inherits from)
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.spot_parts ADD COLUMN y int')$$);
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.spot_parts RENAME COLUMN x TO z')$$);
-- what writes no held key otherwise goes through
SELECT kmd_ddl($$ALTER TYPE public.shade ADD VALUE 'green'$$) > 0 AS value_added,
       kmd_ddl('ALTER TABLE public.by_spot ADD COLUMN m int') > 0 AS table_altered;
SELECT s::text, t.p::text, q.p::text FROM public.by_shade, public.by_spot t, public.by_part q;
-- with the lease ended, its rows are gone and the types change
SELECT kmd_lease_revoke(:shade_lease);
SELECT kmd_ddl($$ALTER TYPE public.shade RENAME VALUE 'red' TO 'crimson'$$) > 0 AS renamed,
       kmd_ddl('ALTER TYPE public.spot RENAME ATTRIBUTE x TO z') > 0 AS renamed;
SELECT (SELECT count(*) FROM public.by_shade) + (SELECT count(*) FROM public.by_spot)
       + (SELECT count(*) FROM public.by_part) AS rows_left;
