-- Control-plane primitives: what a compare-and-set that did not hold
-- shows.  Runs after single_node and key_range, on their cluster.

SELECT kmd_propose('prim-1', '{"op":"insert","table":"jobs","row":{"id":"prim-1","state":"queued"}}') > 0 AS inserted;

-- the condition holds: applied, nothing else
SELECT r - 'index' - 'term' - 'partition' AS answer
  FROM kmd_propose_result('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"state":"running"},"if":{"state":"queued"}}') r;

-- it does not: the row as it is comes back, no second read needed
SELECT r - 'index' - 'term' - 'partition' AS answer
  FROM kmd_propose_result('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"state":"running"},"if":{"state":"queued"}}') r;
SELECT r - 'index' - 'term' - 'partition' AS answer
  FROM kmd_propose_result('prim-1', '{"op":"delete","table":"jobs","key":{"id":"prim-1"},"if":{"state":"queued"}}') r;

-- no such row: current is null
SELECT r - 'index' - 'term' - 'partition' AS answer
  FROM kmd_propose_result('prim-none', '{"op":"update","table":"jobs","key":{"id":"prim-none"},"set":{"state":"x"},"if":{"state":"queued"}}') r;

-- in a batch: which command failed, and its row
SELECT r - 'index' - 'term' - 'partition' AS answer
  FROM kmd_propose_result('prim-1', '{"op":"batch","commands":[
    {"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"attempts":5}},
    {"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"state":"done"},"if":{"state":"queued"}}]}') r;
SELECT state, attempts FROM jobs WHERE id = 'prim-1';

-- increments: {"add": n} adds to the column as it is when applied
SELECT kmd_propose('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"attempts":{"add":1}}}') > 0 AS added;
SELECT kmd_propose('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"state":"retry","attempts":{"add":2}},"if":{"state":"running"}}') > 0 AS added_with_cas;
SELECT state, attempts FROM jobs WHERE id = 'prim-1';
-- a compare-and-set that did not hold adds nothing
SELECT r->'applied' AS applied, r->'current'->'attempts' AS attempts
  FROM kmd_propose_result('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"attempts":{"add":10}},"if":{"state":"running"}}') r;
-- bad operators: K0011, naming the column
SELECT err($$SELECT kmd_propose('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"attempts":{"times":2}}}')$$);
SELECT err($$SELECT kmd_propose('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"attempts":{"add":"one"}}}')$$);
SELECT err($$SELECT kmd_propose('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"attempts":{"add":1,"sub":1}}}')$$);
SELECT err($$SELECT kmd_propose('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"state":{"add":1}}}')$$);
-- and an operand the column's type cannot hold, which would fail when
-- applied, on every node
SELECT err($$SELECT kmd_propose('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"attempts":{"add":1.5}}}')$$);
SELECT err($$SELECT kmd_propose('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"attempts":{"add":1e10}}}')$$);
SELECT state, attempts FROM jobs WHERE id = 'prim-1';

-- now_plus: the entry's time, decided once by its proposer, plus an
-- interval; read the same way whatever the proposing session's settings
SELECT kmd_ddl($$CREATE TABLE public.timers (id text PRIMARY KEY, due timestamptz, due_local timestamp, n int)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.timers');
SELECT kmd_ddl($$CREATE FUNCTION public.entry_time(args jsonb, ctx kommander.apply_context) RETURNS jsonb
  LANGUAGE sql AS 'SELECT to_jsonb(ctx.at)'$$) > 0 AS ddl_done;
SELECT kmd_register_applier('entry_time', 'public.entry_time(jsonb, kommander.apply_context)');
SET TimeZone = 'America/New_York';
SET DateStyle = 'SQL, DMY';
SET IntervalStyle = 'sql_standard';
CREATE TEMP TABLE answer AS
SELECT kmd_propose_result('t1', '{"op":"batch","commands":[
    {"op":"insert","table":"timers","row":{"id":"t1","n":0}},
    {"op":"update","table":"timers","key":{"id":"t1"},
     "set":{"due":{"now_plus":"30 s"},"due_local":{"now_plus":"-1 2:00:00"},"n":{"add":1}}},
    {"op":"call","applier":"entry_time"}]}') AS r;
RESET TimeZone;
RESET DateStyle;
RESET IntervalStyle;
-- the entry's time plus 30 s; "-1 2:00:00" read as IntervalStyle postgres
-- reads it (minus a day, plus two hours), as UTC wall-clock time
SELECT t.due = (a.r->'result'->>2)::timestamptz + interval '30 seconds' AS due_is_entry_time_plus_30s,
       t.due_local = ((a.r->'result'->>2)::timestamptz AT TIME ZONE 'UTC') + make_interval(days => -1, hours => 2) AS due_local_in_utc,
       t.n
  FROM timers t, answer a WHERE t.id = 't1';
-- a later entry has a later time of its own
SELECT kmd_propose('t1', '{"op":"update","table":"timers","key":{"id":"t1"},"set":{"due_local":{"now_plus":"0 s"}}}') > 0 AS updated;
SELECT due_local > ((a.r->'result'->>2)::timestamptz AT TIME ZONE 'UTC') AS later
  FROM timers t, answer a WHERE t.id = 't1';
-- bad now_plus: K0011, naming the column, nothing applied
SELECT err($$SELECT kmd_propose('t1', '{"op":"update","table":"timers","key":{"id":"t1"},"set":{"due":{"now_plus":"soon"}}}')$$);
SELECT err($$SELECT kmd_propose('t1', '{"op":"update","table":"timers","key":{"id":"t1"},"set":{"due":{"now_plus":30}}}')$$);
SELECT err($$SELECT kmd_propose('t1', '{"op":"update","table":"timers","key":{"id":"t1"},"set":{"due":{"now_plus":"30 s","add":1}}}')$$);
SELECT err($$SELECT kmd_propose('t1', '{"op":"update","table":"timers","key":{"id":"t1"},"set":{"n":{"now_plus":"30 s"}}}')$$);
SELECT err($$SELECT kmd_propose('prim-1', '{"op":"update","table":"jobs","key":{"id":"prim-1"},"set":{"state":{"now_plus":"1 day"}}}')$$);
-- nor one that takes the time out of range, which would fail on every node
SELECT err($$SELECT kmd_propose('t1', '{"op":"update","table":"timers","key":{"id":"t1"},"set":{"due":{"now_plus":"100000000 years"}}}')$$);
SELECT err($$SELECT kmd_propose('t1', '{"op":"update","table":"timers","key":{"id":"t1"},"set":{"due":{"later":"30 s"}}}')$$);
SELECT n FROM timers WHERE id = 't1';

-- "if" compares each column as IS NOT DISTINCT FROM does: a composite of
-- nulls is not null, and a type without a btree class (box) compares with
-- its own "="
SELECT kmd_ddl($$CREATE TYPE public.prim_addr AS (street text, city text)$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TABLE public.places (id text PRIMARY KEY, addr prim_addr, area box, n int NOT NULL DEFAULT 0)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.places');
SELECT kmd_propose('p1', '{"op":"insert","table":"places","row":{"id":"p1","addr":{"street":null,"city":null},"area":"(1,1),(0,0)"}}') > 0 AS inserted;
SELECT kmd_propose('p2', '{"op":"insert","table":"places","row":{"id":"p2"}}') > 0 AS inserted;
SELECT kmd_propose_result('p1', '{"op":"update","table":"places","key":{"id":"p1"},"set":{"n":1},"if":{"addr":null}}')->'applied' AS null_addr_p1;
SELECT kmd_propose_result('p2', '{"op":"update","table":"places","key":{"id":"p2"},"set":{"n":1},"if":{"addr":null}}')->'applied' AS null_addr_p2;
SELECT kmd_propose_result('p1', '{"op":"update","table":"places","key":{"id":"p1"},"set":{"n":2},"if":{"addr":{"street":null,"city":null}}}')->'applied' AS nulls_addr_p1;
SELECT kmd_propose_result('p1', '{"op":"update","table":"places","key":{"id":"p1"},"set":{"n":3},"if":{"area":"(2,2),(1,1)"}}')->'applied' AS same_area_p1;
SELECT id, n FROM places ORDER BY id;

-- the operators of "set" take a domain as its base type: an object for a
-- domain over jsonb, "add" to one over int, "now_plus" to one over
-- timestamptz; "add" needs a "+" of the column's type (oid has none)
SELECT kmd_ddl($$CREATE DOMAIN public.prim_doc AS jsonb;
  CREATE DOMAIN public.prim_count AS int CHECK (VALUE >= 0);
  CREATE DOMAIN public.prim_when AS timestamptz$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TABLE public.tallies (id text PRIMARY KEY, doc prim_doc,
  n prim_count DEFAULT 0, due prim_when, o oid)$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.tallies');
SELECT kmd_propose('y1', '{"op":"insert","table":"tallies","row":{"id":"y1","o":1}}') > 0 AS inserted;
SELECT kmd_propose('y1', '{"op":"update","table":"tallies","key":{"id":"y1"},
  "set":{"doc":{"a":1},"n":{"add":2},"due":{"now_plus":"1 day"}}}') > 0 AS updated;
SELECT doc, n, due > now() AS later FROM tallies;
SELECT err($$SELECT kmd_propose('y1', '{"op":"update","table":"tallies","key":{"id":"y1"},"set":{"o":{"add":1}}}')$$);
SELECT err($$SELECT kmd_propose('y1', '{"op":"update","table":"tallies","key":{"id":"y1"},"set":{"n":{"add":-5}}}')$$);
-- the operand is read as a value of the column's type, typmod and domain
-- included, when applied: one they refuse fails where it is proposed,
-- not on every node (n would be 1 here, but -1 is no prim_count)
SELECT kmd_ddl($$ALTER TABLE public.tallies ADD COLUMN small numeric(3,1) DEFAULT 0$$) > 0 AS ddl_done;
SELECT last_index AS before FROM kommander.partitions p, kmd_route('y1') r WHERE p.partition_id = r.partition_id \gset
SELECT err($$SELECT kmd_propose('y1', '{"op":"update","table":"tallies","key":{"id":"y1"},"set":{"n":{"add":-1}}}')$$);
SELECT err($$SELECT kmd_propose('y1', '{"op":"update","table":"tallies","key":{"id":"y1"},"set":{"small":{"add":100}}}')$$);
SELECT err($$SELECT kmd_propose('y1', '{"op":"batch","commands":[{"op":"update","table":"tallies","key":{"id":"y1"},"set":{"n":{"add":1}}},
  {"op":"update","table":"tallies","key":{"id":"y1"},"set":{"n":{"add":-1}}}]}')$$);
SELECT last_index = :before AS nothing_proposed FROM kommander.partitions p, kmd_route('y1') r WHERE p.partition_id = r.partition_id;
SELECT kmd_propose('y1', '{"op":"update","table":"tallies","key":{"id":"y1"},"set":{"small":{"add":99.94}}}') > 0 AS rounded_as_applied;
SELECT n, small FROM tallies;
-- "if" on a column whose type has no equality (json) fails before it is
-- proposed, not on every node when applied
SELECT kmd_ddl($$ALTER TABLE public.tallies ADD COLUMN j json$$) > 0 AS ddl_done;
SELECT err($$SELECT kmd_propose('y1', '{"op":"delete","table":"tallies","key":{"id":"y1"},"if":{"j":null}}')$$);
SELECT err($$SELECT kmd_propose('y1', '{"op":"batch","commands":[{"op":"update","table":"tallies","key":{"id":"y1"},"set":{"n":1},"if":{"doc":{"a":1},"j":null}}]}')$$);
SELECT count(*) AS still_there FROM tallies;

-- a default whose function turns volatile through kmd_ddl is decided by
-- the proposer from the next command on (the proposer's backend id is
-- what it stores, not the apply worker's)
SELECT kmd_ddl($$CREATE FUNCTION public.prim_who() RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 0'$$) > 0 AS ddl_done;
SELECT kmd_ddl($$CREATE TABLE public.whom (id text PRIMARY KEY, who int DEFAULT public.prim_who())$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.whom');
SELECT kmd_propose('w1', '{"op":"insert","table":"whom","row":{"id":"w1"}}') > 0 AS inserted;
SELECT kmd_ddl($$CREATE OR REPLACE FUNCTION public.prim_who() RETURNS int LANGUAGE sql VOLATILE AS 'SELECT pg_backend_pid()'$$) > 0 AS ddl_done;
SELECT kmd_propose('w2', '{"op":"insert","table":"whom","row":{"id":"w2"}}') > 0 AS inserted;
SELECT id, who = 0 AS immutable_zero, who = pg_backend_pid() AS the_proposers FROM whom ORDER BY id;

-- an error's text cut to fit its slot is cut between two characters: a
-- client of another encoding gets the error's own SQLSTATE
SELECT kmd_propose(k, jsonb_build_object('op', 'insert', 'table', 'jobs', 'row',
         jsonb_build_object('id', k, 'state', 'queued'))) > 0 AS inserted
  FROM (SELECT 'xy' || repeat(chr(1046), 300) AS k) s;
\set VERBOSITY sqlstate
SET client_encoding = 'WIN1251';
SELECT kmd_propose(k, jsonb_build_object('op', 'insert', 'table', 'jobs', 'row',
         jsonb_build_object('id', k, 'state', 'queued'))) > 0 AS inserted
  FROM (SELECT 'xy' || repeat(chr(1046), 300) AS k) s;
RESET client_encoding;
\set VERBOSITY default

-- the row that comes back is written in the apply worker's settings,
-- whatever a statement trigger of the table set for the rest of the
-- command
SELECT kmd_ddl($ddl$CREATE TABLE public.stamped (id text PRIMARY KEY, at timestamptz, state text);
CREATE FUNCTION public.stamped_zone() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
  PERFORM pg_catalog.set_config('TimeZone', 'Asia/Kolkata', true);
  PERFORM pg_catalog.set_config('DateStyle', 'SQL, DMY', true);
  RETURN NULL;
END $f$;
CREATE TRIGGER stamped_zone BEFORE UPDATE ON public.stamped
  FOR EACH STATEMENT EXECUTE FUNCTION public.stamped_zone()$ddl$) > 0 AS ddl_done;
SELECT kmd_register_table('public.stamped');
SELECT kmd_propose('st-1', '{"op":"insert","table":"stamped","row":{"id":"st-1","at":"2026-01-01 10:00:00+00","state":"new"}}') > 0 AS inserted;
SELECT r->'applied' AS applied, r->'current'->'at' AS at
  FROM kmd_propose_result('st-1', '{"op":"update","table":"stamped","key":{"id":"st-1"},"set":{"state":"run"},"if":{"state":"old"}}') r;
