-- The command language held strictly: unknown fields, empty keys.  Runs
-- after single_node, on the node it bootstrapped.

-- err(sql): the SQLSTATE and message of a statement that must fail, and
-- its hint when it has one
CREATE OR REPLACE FUNCTION err_hint(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    hint text;
BEGIN
    EXECUTE sql;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN SQLSTATE || ': ' || SQLERRM || coalesce(E'\nhint: ' || nullif(hint, ''), '');
END
$$;

SELECT kmd_ddl($$CREATE TABLE public.tasks (id text PRIMARY KEY, state text NOT NULL, n int NOT NULL DEFAULT 0)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.tasks');
SELECT kmd_propose('t1', '{"op":"insert","table":"tasks","row":{"id":"t1","state":"new"}}') > 0 AS ok;

-- a misspelt "if" is refused, not run as an unconditional update
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"update","table":"tasks","key":{"id":"t1"},"set":{"state":"done"},"iff":{"state":"running"}}')$$);
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"update","table":"tasks","key":{"id":"t1"},"set":{"state":"done"},"if":{"state":"running"},"strcit":true}')$$);
-- a condition put in "key" is refused, not left unchecked
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"delete","table":"tasks","key":{"id":"t1","state":"done"}}')$$);
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"update","table":"tasks","key":{"id":"t1","state":"running"},"set":{"state":"done"}}')$$);
SELECT id, state FROM tasks WHERE id = 't1';
-- a date or time value with a word its input reads as the moment it runs
-- ("now", "today", "tomorrow", "yesterday") would be read by every node
-- at its own moment: refused where proposed, in any part of a command
SELECT kmd_ddl($$CREATE TYPE public.stamp AS (note text, at timestamptz)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TABLE public.clocked (id text PRIMARY KEY, at timestamptz, day date,
  ats timestamptz[], span tstzrange, s public.stamp, note text)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.clocked');
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"insert","table":"clocked","row":{"id":"c1","at":"now"}}')$$);
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"upsert","table":"clocked","row":{"id":"c1","day":" Today"}}')$$);
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"insert","table":"clocked","row":{"id":"c1","ats":["2026-01-01","NOW"]}}')$$);
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"insert","table":"clocked","row":{"id":"c1","ats":"{epoch,now}"}}')$$);
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"insert","table":"clocked","row":{"id":"c1","ats":[["epoch"],["now"]]}}')$$);
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"insert","table":"clocked","row":{"id":"c1","span":"[yesterday,)"}}')$$);
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"insert","table":"clocked","row":{"id":"c1","s":{"note":"x","at":"tomorrow 10:00"}}}')$$);
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"insert","table":"clocked","row":{"id":"c1","s":"(x,now)"}}')$$);
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"update","table":"clocked","key":{"id":"c1"},"set":{"at":"now"}}')$$);
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"delete","table":"clocked","key":{"id":"c1"},"if":{"day":"today"}}')$$);
SELECT err_hint($$SELECT kmd_propose('c1', '{"op":"batch","commands":[
         {"op":"insert","table":"clocked","row":{"id":"c1"}},
         {"op":"update","table":"clocked","key":{"id":"c1"},"set":{"at":"now"}}]}')$$);
-- text that holds the words, constants, and the time itself are taken
SELECT kmd_propose('c1', '{"op":"insert","table":"clocked","row":{"id":"c1","note":"now",
  "s":{"note":"today","at":"2026-01-01 10:00+00"},"at":"2026-12-01 00:00+00","day":"epoch",
  "ats":["infinity"],"span":"[2026-01-01,infinity)"}}') > 0 AS ok;
SELECT id, at, day, ats, span, s, note FROM clocked;
SELECT kmd_propose('c1', '{"op":"update","table":"clocked","key":{"id":"c1"},"set":{"at":{"now_plus":"0 s"}}}') > 0 AS ok;
SELECT at > '2026-12-01 00:00+00' AS at_moved FROM clocked;
-- a read-only transaction proposes nothing
BEGIN READ ONLY;
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"update","table":"tasks","key":{"id":"t1"},"set":{"state":"read-only"}}')$$);
SELECT err_hint($$SELECT kmd_ddl('CREATE TABLE public.not_in_read_only (id int PRIMARY KEY)')$$);
SELECT err_hint($$SELECT kmd_lease_grant('30 s', 't1')$$);
-- a read barrier writes nothing
SELECT kmd_read_barrier('t1') > 0 AS barrier_read_only;
COMMIT;
SET default_transaction_read_only = on;
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"update","table":"tasks","key":{"id":"t1"},"set":{"state":"read-only"}}')$$);
RESET default_transaction_read_only;
SELECT id, state FROM tasks WHERE id = 't1';
SELECT count(*) AS not_created FROM pg_class WHERE relname = 'not_in_read_only';
-- an update keeps the row's key: the key routes it, and keeps its lease
-- and request ids
-- and routes it (a key of the same partition as t1: no range refuses it)
SELECT err_hint(format($$SELECT kmd_propose('t1', '{"op":"update","table":"tasks","key":{"id":"t1"},"set":{"id":"%s"}}')$$, k))
  FROM (SELECT 't' || i AS k FROM generate_series(2, 1000) i) s
 WHERE (SELECT partition_id FROM kmd_route(k)) = (SELECT partition_id FROM kmd_route('t1'))
 ORDER BY k LIMIT 1;
SELECT * FROM tasks;

-- every op takes its own fields and no other
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"insert","table":"tasks","row":{"id":"t1","state":"x"},"key":{"id":"t1"}}')$$);
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"insert","table":"tasks","row":{"id":"t1","state":"x"},"strict":true}')$$);
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"upsert","table":"tasks","row":{"id":"t1","state":"x"},"if":{"state":"new"}}')$$);
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"delete","table":"tasks","key":{"id":"t1"},"set":{"state":"x"}}')$$);
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"call","applier":"bump","args":{},"table":"tasks"}')$$);
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"batch","commands":[{"op":"delete","table":"tasks","key":{"id":"t1"}}],"row":{}}')$$);
-- inside a batch too, where the error's context says which command
SELECT err_hint($$SELECT kmd_propose('t1', '{"op":"batch","commands":[{"op":"delete","table":"tasks","key":{"id":"t1"}},{"op":"delete","table":"tasks","key":{"id":"t1"},"Strict":true}]}')$$);
SELECT kmd_propose('t1', '{"op":"batch","commands":[{"op":"delete","table":"tasks","key":{"id":"t1"}},{"op":"delete","table":"tasks","key":{"id":"t1"},"Strict":true}]}');
SELECT * FROM tasks;

-- the fields each op takes are accepted
SELECT kmd_propose('t1', '{"op":"update","table":"tasks","key":{"id":"t1"},"set":{"n":1},"if":{"state":"new"},"strict":true}') > 0 AS ok;
SELECT kmd_propose('t2', '{"op":"upsert","table":"tasks","row":{"id":"t2","state":"new"}}') > 0 AS ok;
SELECT kmd_propose('t2', '{"op":"delete","table":"tasks","key":{"id":"t2"},"if":{"state":"new"},"strict":false}') > 0 AS ok;
SELECT kmd_propose('t1', '{"op":"batch","strict":true,"commands":[{"op":"update","table":"tasks","key":{"id":"t1"},"set":{"n":2}}]}') > 0 AS ok;
SELECT * FROM tasks;

-- an empty routing key is refused
SELECT err_hint($$SELECT kmd_propose('', '{"op":"insert","table":"tasks","row":{"id":"","state":"x"}}')$$);
SELECT err_hint($$SELECT kmd_propose_result('', '{"op":"call","applier":"bump","args":{"by":1}}')$$);
SELECT count(*) AS empty_id_rows FROM tasks WHERE id = '';

-- a batch is all or nothing, its conditions included: when the condition of
-- one command does not hold, nothing is applied and "failed" says which
CREATE FUNCTION public.task_add(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$
  UPDATE public.tasks SET n = n + (args->>'by')::int WHERE id = ctx.key
  RETURNING jsonb_build_object('n', n)
$$;
SELECT kmd_register_applier('task_add', 'public.task_add(jsonb, kommander.apply_context)');
SELECT kmd_propose('t3', '{"op":"insert","table":"tasks","row":{"id":"t3","state":"new"}}') > 0 AS ok;
SELECT r->'applied' AS applied, r->'failed' AS failed, r->'result' AS result
  FROM kmd_propose_result('t3', '{"op":"batch","commands":[
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"n":10}},
         {"op":"call","applier":"task_add","args":{"by":5}},
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"state":"running"},"if":{"state":"claimed"}},
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"n":30}}]}') AS r;
SELECT * FROM tasks WHERE id = 't3';
SELECT r->'applied' AS applied, r->'failed' AS failed
  FROM kmd_propose_result('t3', '{"op":"batch","commands":[
         {"op":"delete","table":"tasks","key":{"id":"t3"},"if":{"state":"running"}},
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"n":10}}]}') AS r;
SELECT * FROM tasks WHERE id = 't3';
-- without kmd_propose_result, the index comes back as for any condition
SELECT kmd_propose('t3', '{"op":"batch","commands":[
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"n":10}},
         {"op":"delete","table":"tasks","key":{"id":"t3"},"if":{"n":99}}]}') > 0 AS ok;
SELECT * FROM tasks WHERE id = 't3';
-- a condition sees what the commands before it did; each command's result
-- in order, null for a row command
SELECT r->'applied' AS applied, r->'failed' AS failed, r->'result' AS result
  FROM kmd_propose_result('t3', '{"op":"batch","commands":[
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"state":"claimed"},"if":{"state":"new"}},
         {"op":"call","applier":"task_add","args":{"by":5}},
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"state":"running"},"if":{"state":"claimed","n":5}},
         {"op":"call","applier":"task_add","args":{"by":1}}]}') AS r;
SELECT * FROM tasks WHERE id = 't3';
-- "strict" on a command, or on the whole batch, makes the failed condition
-- an error (K0012) that says which command; nothing is applied either way
SELECT err_hint($$SELECT kmd_propose('t3', '{"op":"batch","commands":[
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"n":0}},
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"n":1},"if":{"state":"new"},"strict":true}]}')$$);
SELECT kmd_propose_result('t3', '{"op":"batch","strict":true,"commands":[
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"n":0}},
         {"op":"call","applier":"task_add","args":{"by":5}},
         {"op":"delete","table":"tasks","key":{"id":"t3"},"if":{"state":"new"}}]}');
SELECT * FROM tasks WHERE id = 't3';
-- an error in any command rolls the whole batch back, as before
SELECT err_hint($$SELECT kmd_propose('t3', '{"op":"batch","commands":[
         {"op":"update","table":"tasks","key":{"id":"t3"},"set":{"n":0}},
         {"op":"insert","table":"tasks","row":{"id":"t3","state":"dup"}}]}')$$);
SELECT * FROM tasks WHERE id = 't3';

-- an applier's result comes back whole up to 16000 bytes of JSON text; a
-- larger one fails the command (54000) and changes nothing, whoever asks
CREATE FUNCTION public.task_big(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$
  UPDATE public.tasks SET n = n + 1 WHERE id = ctx.key
  RETURNING jsonb_build_object('pad', repeat('x', (args->>'size')::int))
$$;
SELECT kmd_register_applier('task_big', 'public.task_big(jsonb, kommander.apply_context)');
SELECT length(r->'result'->>'pad') AS pad, octet_length((r->'result')::text) AS result_bytes
  FROM kmd_propose_result('t3', '{"op":"call","applier":"task_big","args":{"size":15989}}') AS r;
SELECT err_hint($$SELECT kmd_propose_result('t3', '{"op":"call","applier":"task_big","args":{"size":15990}}')$$);
SELECT kmd_propose_result('t3', '{"op":"call","applier":"task_big","args":{"size":20000}}');
SELECT err_hint($$SELECT kmd_propose('t3', '{"op":"call","applier":"task_big","args":{"size":100000}}')$$);
SELECT err_hint($$SELECT kmd_propose_result('t3', '{"op":"batch","commands":[
         {"op":"call","applier":"task_big","args":{"size":9000}},
         {"op":"call","applier":"task_big","args":{"size":9000}}]}')$$);
SELECT * FROM tasks WHERE id = 't3';

-- a value its column refuses fails the command whether or not the key's
-- row exists (22P02), in the command's order (key, set, add, if): the
-- outcome does not hang on the plan a node's settings choose
SELECT err_hint($$SELECT kmd_propose_result('nobody', '{"op":"update","table":"tasks","key":{"id":"nobody"},"set":{"n":"many"}}')$$);
SELECT err_hint($$SELECT kmd_propose_result('nobody', '{"op":"update","table":"tasks","key":{"id":"nobody"},"set":{"n":{"add":1}},"if":{"n":"some"}}')$$);
SELECT err_hint($$SELECT kmd_propose_result('nobody', '{"op":"delete","table":"tasks","key":{"id":"nobody"},"if":{"n":"some"}}')$$);
SELECT err_hint($$SELECT kmd_propose_result('t3', '{"op":"update","table":"tasks","key":{"id":"t3"},"set":{"n":"many"},"if":{"n":"some"}}')$$);
SELECT err_hint($$SELECT kmd_propose_result('t3', '{"op":"delete","table":"tasks","key":{"id":"t3"},"if":{"n":"some"}}')$$);
SELECT * FROM tasks WHERE id = 't3';
