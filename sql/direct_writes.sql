-- The rows of inserts and upserts are written without an SQL statement
-- where the table allows: what they store, and how they fail, must be what
-- the statement stores and how it fails.  Two tables alike, one of which
-- has a trigger of its own (so the statement writes it), get the same
-- commands.  Runs after single_node, on its cluster.

SELECT kmd_ddl($$CREATE DOMAIN public.dw_pos AS int CHECK (VALUE > 0)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE FUNCTION public.dw_noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END'$$) > 0 AS ddl_done;
SELECT kmd_ddl(format($$CREATE TABLE public.%s (
    id text PRIMARY KEY,
    n numeric(10,2) CHECK (n >= 0),
    at timestamptz,
    tags text[],
    doc jsonb,
    short varchar(8),
    flag boolean,
    pos dw_pos,
    state text NOT NULL DEFAULT 'new',
    created timestamptz DEFAULT '2026-06-01 12:00:00+00',
    big text)$$, t)) > 0 AS ddl_done
  FROM (VALUES ('dw_direct'), ('dw_statement')) v(t);
SELECT kmd_ddl($$CREATE TRIGGER own AFTER INSERT OR UPDATE ON public.dw_statement
                 FOR EACH STATEMENT EXECUTE FUNCTION public.dw_noop()$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.dw_direct'), kmd_register_table('public.dw_statement');

-- stored(table, id): the row's bytes as the page holds them
CREATE EXTENSION pageinspect;
CREATE FUNCTION stored(rel regclass, id text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    at point;
BEGIN
    EXECUTE format('SELECT ctid::text::point FROM %s WHERE id = $1', rel) INTO at USING id;
    RETURN (SELECT coalesce(p.t_bits, '') || ' ' || p.t_data::text
              FROM heap_page_items(get_raw_page(rel::text, at[0]::int)) p WHERE p.lp = at[1]);
END
$$;

CREATE FUNCTION direct_writes() RETURNS bigint LANGUAGE sql AS
  $$SELECT value FROM kommander.stats WHERE name = 'rows_written_directly' AND partition_id IS NULL$$;

-- dw(key, command[, pair]): the command proposed to both tables of the
-- pair (its table "T"); their outcomes, which must be the same but for the
-- table's name
CREATE FUNCTION dw(key text, command text, pair text DEFAULT 'dw') RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    a text := err(format('SELECT kmd_propose(%L, %L)', key, replace(command, '"T"', '"' || pair || '_direct"')));
    b text := err(format('SELECT kmd_propose(%L, %L)', key, replace(command, '"T"', '"' || pair || '_statement"')));
BEGIN
    IF replace(a, pair || '_direct', pair || '_statement') IS DISTINCT FROM b THEN
        RETURN 'DIFFERENT: ' || a || ' | ' || b;
    END IF;
    RETURN b;
END
$$;

-- the statement writes the table with a trigger of its own, not this path
SELECT direct_writes() AS before \gset
SELECT kmd_propose('s0', '{"op":"insert","table":"dw_statement","row":{"id":"s0","n":1}}') > 0 AS ok;
SELECT direct_writes() - :before AS written_directly;
SELECT kmd_propose('s0', '{"op":"insert","table":"dw_direct","row":{"id":"s0","n":1}}') > 0 AS ok;
SELECT direct_writes() - :before AS written_directly;

-- inserts: every type, the defaults of columns not named, a large value
SELECT dw('a', '{"op":"insert","table":"T","row":{"id":"a","n":"12.5","at":"2026-01-02 03:04:05+02","tags":["x","y z"],"doc":{"k":[1,2.50,null]},"short":"abc","flag":true,"pos":3}}');
SELECT dw('b', '{"op":"insert","table":"T","row":{"id":"b","n":7,"state":"queued","big":"' || repeat('abcdefgh', 1000) || '"},"defaults":{"created":"2026-12-04 10:00:00+00","state":"not this"}}');
SELECT dw('c', '{"op":"upsert","table":"T","row":{"id":"c","short":null,"doc":"text in jsonb","big":"' || repeat('abcdefgh', 1000) || '"}}');
-- upserts of rows that exist: only the named columns change
SELECT dw('a', '{"op":"upsert","table":"T","row":{"id":"a","n":0,"tags":[]}}');
SELECT dw('b', '{"op":"upsert","table":"T","row":{"id":"b","big":null,"state":"done","pos":9}}');
-- an upsert of the key alone leaves the row be
SELECT dw('c', '{"op":"upsert","table":"T","row":{"id":"c"}}');

-- failures: the same SQLSTATE and message, nothing written
SELECT dw('a', '{"op":"insert","table":"T","row":{"id":"a","n":1}}');
SELECT dw('d', '{"op":"upsert","table":"T","row":{"id":"d","n":-1}}');
SELECT dw('a', '{"op":"upsert","table":"T","row":{"id":"a","n":-1}}');
SELECT dw('d', '{"op":"upsert","table":"T","row":{"id":"d","state":null}}');
SELECT dw('d', '{"op":"insert","table":"T","row":{"id":"d","short":"much too long"}}');
SELECT dw('d', '{"op":"insert","table":"T","row":{"id":"d","pos":0}}');
SELECT dw('d', '{"op":"insert","table":"T","row":{"id":"d","n":"twelve"}}');
SELECT dw('d', '{"op":"insert","table":"T","row":{"id":"d","n":123456789.5}}');

-- in a batch: one key written twice sees its first write; a batch that
-- fails leaves nothing
SELECT dw('e', '{"op":"batch","commands":[
    {"op":"upsert","table":"T","row":{"id":"e","n":1}},
    {"op":"upsert","table":"T","row":{"id":"e","n":2,"flag":false}},
    {"op":"update","table":"T","key":{"id":"e"},"set":{"n":{"add":10}}}]}');
SELECT dw('f', '{"op":"batch","commands":[
    {"op":"insert","table":"T","row":{"id":"f","n":1}},
    {"op":"update","table":"T","key":{"id":"f"},"set":{"n":2},"if":{"n":5},"strict":true}]}');
SELECT dw('f', '{"op":"batch","commands":[
    {"op":"insert","table":"T","row":{"id":"f","n":1}},
    {"op":"insert","table":"T","row":{"id":"f","n":2}}]}');

-- what the two tables hold is the same, to the byte; and what could be
-- was written without a statement
SELECT direct_writes() - :before AS written_directly;
SELECT id, to_jsonb(d) - 'big' AS row, length(d.big) AS big,
       stored('dw_direct', id) = stored('dw_statement', id) AS same_bytes
  FROM dw_direct d FULL JOIN dw_statement s USING (id) ORDER BY id;

-- an upsert's row is checked whole, defaults included, before the row it
-- conflicts with is looked for; system columns are refused
SELECT kmd_ddl(format($$CREATE TABLE public.%s (id text PRIMARY KEY, req int NOT NULL,
                                                c int DEFAULT 0 CHECK (c > 0), b int)$$, t)) > 0 AS ddl_done
  FROM (VALUES ('dw2_direct'), ('dw2_statement')) v(t);
SELECT kmd_ddl($$CREATE TRIGGER own AFTER INSERT OR UPDATE ON public.dw2_statement
                 FOR EACH STATEMENT EXECUTE FUNCTION public.dw_noop()$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.dw2_direct'), kmd_register_table('public.dw2_statement');
SELECT direct_writes() AS before \gset
SELECT dw('x1', '{"op":"insert","table":"T","row":{"id":"x1","req":1,"c":1,"b":1}}', 'dw2');
SELECT dw('x1', '{"op":"upsert","table":"T","row":{"id":"x1","b":2}}', 'dw2');
SELECT dw('x1', '{"op":"upsert","table":"T","row":{"id":"x1","req":5,"b":3}}', 'dw2');
SELECT dw('x2', '{"op":"insert","table":"T","row":{"id":"x2","req":1,"c":1,"xmin":"7"}}', 'dw2');
SELECT dw('x1', '{"op":"upsert","table":"T","row":{"id":"x1","req":1,"c":1,"ctid":"(0,1)"}}', 'dw2');
SELECT dw('x1', '{"op":"upsert","table":"T","row":{"id":"x1","req":2,"c":2}}', 'dw2');
SELECT direct_writes() - :before AS written_directly;
SELECT id, to_jsonb(d) AS row, stored('dw2_direct', id) = stored('dw2_statement', id) AS same_bytes
  FROM dw2_direct d FULL JOIN dw2_statement s USING (id) ORDER BY id;

-- columns of NOT NULL domains: a command's values are read for the
-- columns it names only, so a column it leaves out takes its default and
-- the row's other commands work; one without a default, or a null, fails
-- as SQL's INSERT and UPDATE fail
SELECT kmd_ddl($$CREATE DOMAIN public.dw_state AS text NOT NULL DEFAULT 'new'$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE DOMAIN public.dw_req AS int NOT NULL$$) > 0 AS ddl_done;
SELECT kmd_ddl(format($$CREATE TABLE public.%s (id text PRIMARY KEY, state dw_state, req dw_req, n int)$$, t)) > 0 AS ddl_done
  FROM (VALUES ('dw4_direct'), ('dw4_statement')) v(t);
SELECT kmd_ddl($$CREATE TRIGGER own AFTER INSERT OR UPDATE ON public.dw4_statement
                 FOR EACH STATEMENT EXECUTE FUNCTION public.dw_noop()$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.dw4_direct'), kmd_register_table('public.dw4_statement');
SELECT direct_writes() AS before \gset
SELECT dw('z1', '{"op":"insert","table":"T","row":{"id":"z1","req":1}}', 'dw4');
SELECT dw('z2', '{"op":"insert","table":"T","row":{"id":"z2"}}', 'dw4');
SELECT dw('z2', '{"op":"insert","table":"T","row":{"id":"z2","req":null}}', 'dw4');
SELECT dw('z2', '{"op":"insert","table":"T","row":{"id":"z2","req":null,"state":null}}', 'dw4');
SELECT dw('z2', '{"op":"upsert","table":"T","row":{"id":"z2","n":1}}', 'dw4');
-- (an upsert's row to insert is checked whole, as in SQL, also when its
-- row exists)
SELECT dw('z1', '{"op":"upsert","table":"T","row":{"id":"z1","n":5}}', 'dw4');
SELECT dw('z3', '{"op":"upsert","table":"T","row":{"id":"z3","req":3,"state":"queued"}}', 'dw4');
SELECT dw('z1', '{"op":"update","table":"T","key":{"id":"z1"},"set":{"n":5}}', 'dw4');
SELECT dw('z1', '{"op":"update","table":"T","key":{"id":"z1"},"set":{"state":"done"},"if":{"n":5},"strict":true}', 'dw4');
SELECT dw('z1', '{"op":"update","table":"T","key":{"id":"z1"},"set":{"n":{"add":1}},"if":{"state":"done"},"strict":true}', 'dw4');
SELECT dw('z1', '{"op":"update","table":"T","key":{"id":"z1"},"set":{"state":null}}', 'dw4');
SELECT t, r - 'index' - 'term' - 'partition' AS answer
  FROM (VALUES ('dw4_direct'), ('dw4_statement')) v(t),
       kmd_propose_result('z1', format('{"op":"update","table":"%s","key":{"id":"z1"},"set":{"n":0},"if":{"state":"new"}}', t)::jsonb) r;
SELECT dw('z3', '{"op":"delete","table":"T","key":{"id":"z3"},"if":{"state":"queued"},"strict":true}', 'dw4');
SELECT direct_writes() - :before AS written_directly;
SELECT id, to_jsonb(d) AS row, stored('dw4_direct', id) = stored('dw4_statement', id) AS same_bytes
  FROM dw4_direct d FULL JOIN dw4_statement s USING (id) ORDER BY id;

-- an upsert finds its row as ON CONFLICT on the key's columns does:
-- through every unique index of those columns, here one that compares
-- names without their case, so BOB's upsert updates bob's row
SELECT kmd_ddl($$CREATE COLLATION public.dw_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)$$) > 0 AS ddl_done;
SELECT kmd_ddl(format($$CREATE TABLE public.%1$s (id text, name text, n int, PRIMARY KEY (id, name));
                        CREATE UNIQUE INDEX %1$s_ci ON public.%1$s (id, name COLLATE public.dw_ci)$$, t)) > 0 AS ddl_done
  FROM (VALUES ('dw5_direct'), ('dw5_statement')) v(t);
SELECT kmd_ddl($$CREATE TRIGGER own AFTER INSERT OR UPDATE ON public.dw5_statement
                 FOR EACH STATEMENT EXECUTE FUNCTION public.dw_noop()$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.dw5_direct'), kmd_register_table('public.dw5_statement');
SELECT dw('w1', '{"op":"insert","table":"T","row":{"id":"w1","name":"bob","n":1}}', 'dw5');
SELECT dw('w1', '{"op":"upsert","table":"T","row":{"id":"w1","name":"BOB","n":2}}', 'dw5');
SELECT dw('w1', '{"op":"upsert","table":"T","row":{"id":"w1","name":"ann","n":3}}', 'dw5');
SELECT id, to_jsonb(d) AS row FROM dw5_direct d ORDER BY name;
SELECT kmd_ddl('DROP TABLE public.dw5_direct, public.dw5_statement') > 0 AS ddl_done;

-- an upsert that inserts its row checks it once, as the statement does (a
-- check's function runs once): each table's check counts its calls in a
-- column of dw_calls
SELECT kmd_ddl($$CREATE TABLE public.dw_calls (id text PRIMARY KEY, direct int NOT NULL, statement int NOT NULL)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.dw_calls');
SELECT kmd_ddl($$CREATE FUNCTION public.dw_count(path text, k text) RETURNS boolean LANGUAGE plpgsql AS
  'BEGIN UPDATE public.dw_calls SET direct = direct + (path = ''direct'')::int,
                                   statement = statement + (path = ''statement'')::int WHERE id = k;
         RETURN true; END'$$) > 0 AS ddl_done;
SELECT kmd_ddl(format($$CREATE TABLE public.dw6_%1$s (id text PRIMARY KEY, n int CHECK (public.dw_count(%1$L, id)))$$, t)) > 0 AS ddl_done
  FROM (VALUES ('direct'), ('statement')) v(t);
SELECT kmd_ddl($$CREATE TRIGGER own AFTER INSERT OR UPDATE ON public.dw6_statement
                 FOR EACH STATEMENT EXECUTE FUNCTION public.dw_noop()$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.dw6_direct'), kmd_register_table('public.dw6_statement');
SELECT kmd_propose('v1', '{"op":"insert","table":"dw_calls","row":{"id":"v1","direct":0,"statement":0}}') > 0 AS ok;
SELECT dw('v1', '{"op":"upsert","table":"T","row":{"id":"v1","n":1}}', 'dw6');
SELECT direct, statement FROM dw_calls WHERE id = 'v1';
SELECT dw('v1', '{"op":"upsert","table":"T","row":{"id":"v1","n":2}}', 'dw6');
SELECT direct, statement FROM dw_calls WHERE id = 'v1';
SELECT kmd_ddl('DROP TABLE public.dw6_direct, public.dw6_statement, public.dw_calls') > 0 AS ddl_done;

-- a trigger of the guard's name that is not the guard is the table's own:
-- the table is not registered (it was, with no guard), nor written
SELECT kmd_ddl($$CREATE TABLE public.dw3 (id text PRIMARY KEY, n int)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TRIGGER kommander_guard AFTER INSERT ON public.dw3
                 FOR EACH STATEMENT EXECUTE FUNCTION public.dw_noop()$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_register_table('public.dw3')$$);
SELECT direct_writes() AS before \gset
SELECT err($$SELECT kmd_propose('y', '{"op":"insert","table":"dw3","row":{"id":"y","n":1}}')$$);
SELECT direct_writes() - :before AS written_directly, count(*) AS rows FROM dw3;
SELECT kmd_ddl('DROP TABLE public.dw3') > 0 AS ddl_done;

-- the names commands write a table by follow renames of it and of its
-- schema (a backend and the apply worker remember them per table)
SELECT kmd_ddl('CREATE SCHEMA dw_s') > 0 AS ddl_done;
SELECT kmd_ddl('CREATE TABLE dw_s.t (id text PRIMARY KEY, n int)') > 0 AS ddl_done;
SELECT kmd_register_table('dw_s.t');
SELECT kmd_propose('r', '{"op":"insert","table":"dw_s.t","row":{"id":"r","n":1}}') > 0 AS ok;
SELECT kmd_propose('r', '{"op":"update","table":"dw_s.t","key":{"id":"r"},"set":{"n":2}}') > 0 AS ok;
SELECT kmd_ddl('ALTER SCHEMA dw_s RENAME TO dw_s2') > 0 AS ddl_done;
SELECT kmd_propose('r', '{"op":"update","table":"dw_s2.t","key":{"id":"r"},"set":{"n":3}}') > 0 AS ok;
SELECT kmd_ddl('ALTER TABLE dw_s2.t RENAME TO u') > 0 AS ddl_done;
SELECT r - 'index' - 'term' - 'partition' AS answer
  FROM kmd_propose_result('r', '{"op":"update","table":"dw_s2.u","key":{"id":"r"},"set":{"n":4},"if":{"n":5}}') r;
SELECT kmd_propose('r', '{"op":"update","table":"dw_s2.u","key":{"id":"r"},"set":{"n":5}}') > 0 AS ok;
SELECT * FROM dw_s2.u;

-- the apply worker updates its row of kommander.applied without a
-- statement; a missing row it inserts again
SELECT partition_id AS part FROM kmd_route('r') \gset
DELETE FROM kommander.applied WHERE partition_id = :part;
SELECT kmd_propose('r', '{"op":"update","table":"dw_s2.u","key":{"id":"r"},"set":{"n":6}}') > 0 AS ok;
SELECT a.applied_index = p.applied_index AS saved
  FROM kommander.applied a JOIN kommander.partitions p USING (partition_id)
 WHERE partition_id = :part;
SELECT kmd_propose('r', '{"op":"update","table":"dw_s2.u","key":{"id":"r"},"set":{"n":7}}') > 0 AS ok;
SELECT a.applied_index = p.applied_index AS saved
  FROM kommander.applied a JOIN kommander.partitions p USING (partition_id)
 WHERE partition_id = :part;

-- leave the cluster's rows as they were
SELECT count(*) AS deleted FROM (VALUES ('s0'), ('a'), ('b'), ('c'), ('e')) k(id),
  LATERAL (VALUES ('dw_direct'), ('dw_statement')) t(t),
  LATERAL kmd_propose(k.id, jsonb_build_object('op', 'delete', 'table', t.t, 'key', jsonb_build_object('id', k.id)));
