-- A command writes only rows of its own partition: the partition is the
-- unit of state (an image of it carries exactly the rows of its range).
-- Runs after single_node, on its cluster of many partitions.

-- two keys of different partitions
CREATE TEMP TABLE two AS
  SELECT (SELECT k FROM generate_series(1, 100) i, LATERAL (SELECT 'kr-' || i AS k) s
           WHERE (SELECT partition_id FROM kmd_route(k)) <> (SELECT partition_id FROM kmd_route('kr-0'))
           ORDER BY i LIMIT 1) AS other;

CREATE FUNCTION public.write_row(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$
INSERT INTO public.jobs (id, state) VALUES (args->>'id', 'written')
  ON CONFLICT (id) DO UPDATE SET state = 'written';
SELECT 'null'::jsonb
$$;
SELECT kmd_register_applier('write_row', 'public.write_row(jsonb, kommander.apply_context)');

-- an applier writing the row of its own key: fine
SELECT kmd_propose('kr-0', '{"op":"call","applier":"write_row","args":{"id":"kr-0"}}') > 0 AS own_row;
SELECT state FROM jobs WHERE id = 'kr-0';

-- the row of a key another partition owns: K0011, nothing written
SELECT regexp_replace(err(format($$SELECT kmd_propose('kr-0', '{"op":"call","applier":"write_row","args":{"id":"%s"}}')$$,
                                 other)), 'partition [0-9]+', 'partition P')
  FROM two;
SELECT count(*) AS other_rows FROM jobs, two WHERE id = other;

-- kmd_ddl writes no rows of control tables
SELECT err($$SELECT kmd_ddl('INSERT INTO public.jobs (id, state) VALUES (''kr-ddl'', ''x'')')$$);
SELECT count(*) AS ddl_rows FROM jobs WHERE id = 'kr-ddl';

-- a key whose stored text is not the text it was routed by: refused where
-- it is proposed (before, it was committed and failed on every node, or
-- wrote the row where its hash does not route)
SELECT kmd_ddl('CREATE TABLE public.nums (n int PRIMARY KEY)') > 0 AS created;
SELECT kmd_register_table('public.nums');
CREATE TEMP TABLE padded AS
  SELECT n FROM generate_series(1, 100) n
   WHERE (SELECT partition_id FROM kmd_route('00' || n)) <> (SELECT partition_id FROM kmd_route(n::text))
   ORDER BY n LIMIT 1;
SELECT regexp_replace(err(format($$SELECT kmd_propose('00%s', '{"op":"insert","table":"nums","row":{"n":"00%s"}}')$$,
                                 n, n)), 'partition [0-9]+|to -?[0-9]+', 'X', 'g')
  FROM padded;
SELECT count(*) AS nums FROM nums;
-- and one the type cannot read fails there too, with the type's error
SELECT err($$SELECT kmd_propose('x1', '{"op":"insert","table":"nums","row":{"n":"x1"}}')$$);
-- a varchar(n) drops the spaces past n: 'abc ' is the row abc
SELECT kmd_ddl('CREATE TABLE public.short_keys (k varchar(3) PRIMARY KEY)') > 0 AS created;
SELECT kmd_register_table('public.short_keys');
SELECT err($$SELECT kmd_propose('abc ', '{"op":"insert","table":"short_keys","row":{"k":"abc "}}')$$);
SELECT kmd_propose('abc', '{"op":"insert","table":"short_keys","row":{"k":"abc"}}') > 0 AS inserted;

-- a row's routing key is its key's text as the apply worker writes it,
-- whatever settings the applier runs with
SELECT kmd_ddl($ddl$CREATE TABLE public.stamps (at timestamptz PRIMARY KEY);
CREATE FUNCTION public.stamp(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE plpgsql SET TimeZone = 'Asia/Kolkata' SET DateStyle = 'SQL, DMY' AS $f$
BEGIN
  INSERT INTO public.stamps VALUES ((args->>'at')::timestamptz);
  RETURN NULL;
END $f$$ddl$) > 0 AS created;
SELECT kmd_register_table('public.stamps');
SELECT kmd_register_applier('stamp', 'public.stamp(jsonb, kommander.apply_context)');
-- a time whose text there routes elsewhere than its text in UTC
SET DateStyle = 'ISO, MDY';
SET TimeZone = 'UTC';
CREATE TEMP TABLE stamp_times AS
  SELECT timestamptz '2026-01-01 00:00:00+00' + i * interval '1 hour' AS t FROM generate_series(0, 200) i;
ALTER TABLE stamp_times ADD utc_text text;
UPDATE stamp_times SET utc_text = t::text;
SET DateStyle = 'SQL, DMY';
SET TimeZone = 'Asia/Kolkata';
CREATE TEMP TABLE stamp_key AS
  SELECT utc_text FROM stamp_times
   WHERE (SELECT partition_id FROM kmd_route(utc_text)) <> (SELECT partition_id FROM kmd_route(t::text))
   ORDER BY t LIMIT 1;
RESET DateStyle;
RESET TimeZone;
SELECT count(*) AS found FROM stamp_key;
SELECT kmd_propose(utc_text, jsonb_build_object('op', 'call', 'applier', 'stamp',
                   'args', jsonb_build_object('at', utc_text))) > 0 AS stamped
  FROM stamp_key;
SELECT count(*) AS stamps FROM stamps;
