-- Idempotent proposals: a command's "request_id".  Runs after primitives,
-- on its cluster.

SELECT kmd_propose('req-1', '{"op":"insert","table":"jobs","row":{"id":"req-1","state":"queued"}}') > 0 AS inserted;

-- the first time, applied; the same id again returns the first outcome,
-- index included, and adds nothing
CREATE TEMP TABLE firsts AS
SELECT kmd_propose_result('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"attempts":{"add":1}},"request_id":"r-1"}') AS r;
SELECT kmd_propose_result('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"attempts":{"add":1}},"request_id":"r-1"}') = r AS same_answer
  FROM firsts;
SELECT kmd_propose('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"attempts":{"add":1}},"request_id":"r-1"}') = (r->>'index')::bigint AS same_index
  FROM firsts;
SELECT attempts FROM jobs WHERE id = 'req-1';

-- another id is another request
SELECT kmd_propose('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"attempts":{"add":1}},"request_id":"r-2"}') > 0 AS applied;
SELECT attempts FROM jobs WHERE id = 'req-1';

-- a compare-and-set that did not hold: the retry says so too, with the row
-- as it was then, although the row has changed since
SELECT r - 'index' - 'term' - 'partition' AS answer
  FROM kmd_propose_result('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"state":"running"},"if":{"state":"done"},"request_id":"r-3"}') r;
SELECT kmd_propose('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"state":"done"}}') > 0 AS changed;
SELECT r - 'index' - 'term' - 'partition' AS answer
  FROM kmd_propose_result('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"state":"running"},"if":{"state":"done"},"request_id":"r-3"}') r;
SELECT state FROM jobs WHERE id = 'req-1';

-- a command that failed: the retry fails the same way, and is not run again
SELECT err($$SELECT kmd_propose('req-1', '{"op":"insert","table":"jobs","row":{"id":"req-1","state":"x"},"request_id":"r-4"}')$$);
SELECT kmd_propose('req-1', '{"op":"delete","table":"jobs","key":{"id":"req-1"}}') > 0 AS deleted;
SELECT err($$SELECT kmd_propose('req-1', '{"op":"insert","table":"jobs","row":{"id":"req-1","state":"x"},"request_id":"r-4"}')$$);
SELECT count(*) AS rows FROM jobs WHERE id = 'req-1';

-- a batch and an applier call take an id too
SELECT (kmd_propose_result('req-1', '{"op":"batch","request_id":"r-5","commands":[
    {"op":"insert","table":"jobs","row":{"id":"req-1","state":"queued"}},
    {"op":"call","applier":"entry_time"}]}') - 'index' - 'term' - 'partition' - 'result') AS answer;
SELECT (kmd_propose_result('req-1', '{"op":"batch","request_id":"r-5","commands":[
    {"op":"insert","table":"jobs","row":{"id":"req-1","state":"queued"}},
    {"op":"call","applier":"entry_time"}]}') - 'index' - 'term' - 'partition' - 'result') AS retried;

-- the same id for another command of the same key: K0011, nothing applied
SELECT err($$SELECT kmd_propose('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"attempts":{"add":100}},"request_id":"r-1"}')$$);
SELECT attempts FROM jobs WHERE id = 'req-1';
-- ids are per key: the same id with another key is another request
SELECT kmd_propose('req-2', '{"op":"insert","table":"jobs","row":{"id":"req-2","state":"queued"},"request_id":"r-1"}') > 0 AS inserted;

-- a retry is the same request although the proposer decides a default
-- such as gen_random_uuid() anew: the first outcome, one row
SELECT kmd_ddl($$CREATE TABLE public.tokens (id text PRIMARY KEY, token uuid NOT NULL DEFAULT gen_random_uuid())$$) > 0 AS ddl_done;
SELECT kmd_register_table('public.tokens');
CREATE TEMP TABLE token_firsts AS
SELECT kmd_propose_result('tok-1', '{"op":"insert","table":"tokens","row":{"id":"tok-1"},"request_id":"r-6"}') AS r;
SELECT kmd_propose_result('tok-1', '{"op":"insert","table":"tokens","row":{"id":"tok-1"},"request_id":"r-6"}') = r AS same_answer
  FROM token_firsts;
SELECT (kmd_propose_result('tok-2', '{"op":"batch","request_id":"r-7","commands":[
    {"op":"upsert","table":"tokens","row":{"id":"tok-2"}},
    {"op":"call","applier":"entry_time"}]}') - 'result') = (kmd_propose_result('tok-2', '{"op":"batch","request_id":"r-7","commands":[
    {"op":"upsert","table":"tokens","row":{"id":"tok-2"}},
    {"op":"call","applier":"entry_time"}]}') - 'result') AS batch_same_answer;
SELECT count(*) AS rows, count(DISTINCT token) AS tokens FROM tokens;
-- a token given in the row is another command all the same
SELECT err($$SELECT kmd_propose('tok-1', '{"op":"insert","table":"tokens","row":{"id":"tok-1","token":"00000000-0000-0000-0000-000000000000"},"request_id":"r-6"}')$$);

-- a key long enough for its outcome to be remembered: the retry answers
-- it (hex: a key the index could not compress)
CREATE TEMP TABLE long_keys AS
SELECT left(string_agg(md5(i::text), '' ORDER BY i), 2000) AS k2000,
       string_agg(md5(i::text), '' ORDER BY i) AS k3200
  FROM generate_series(1, 100) i;
SELECT kmd_propose(k2000, format('{"op":"call","applier":"entry_time","request_id":"%s"}', repeat('i', 200))::jsonb)
     = kmd_propose(k2000, format('{"op":"call","applier":"entry_time","request_id":"%s"}', repeat('i', 200))::jsonb) AS long_key_same_index
  FROM long_keys;
-- a longer one with an id is refused before it is proposed (K0011): no
-- node could remember its outcome, and its apply transaction would fail
SELECT err(format($$SELECT kmd_propose('%s', '{"op":"call","applier":"entry_time","request_id":"r-8"}')$$, k3200)) FROM long_keys;
SELECT err(format($$SELECT kmd_propose('%s', '{"op":"call","applier":"entry_time","request_id":"r-8"}')$$, left(k3200, 2001))) FROM long_keys;
-- and without an id it is just a key
SELECT kmd_propose(k3200, '{"op":"call","applier":"entry_time"}') > 0 AS long_key_applied FROM long_keys;

-- what the partition remembers (superusers read it)
SELECT left(key, 12) AS key, left(request_id, 12) AS request_id, applied, sqlstate FROM kommander.requests ORDER BY key, request_id;

-- bad request ids: K0011
SELECT err($$SELECT kmd_propose('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"attempts":1},"request_id":7}')$$);
SELECT err($$SELECT kmd_propose('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"attempts":1},"request_id":""}')$$);
SELECT err($$SELECT kmd_propose('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"attempts":1},"request_id":null}')$$);
SELECT err(format($$SELECT kmd_propose('req-1', '{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"attempts":1},"request_id":"%s"}')$$, repeat('x', 201)));
-- only the whole command carries one, not a command of a batch
SELECT err($$SELECT kmd_propose('req-1', '{"op":"batch","commands":[{"op":"update","table":"jobs","key":{"id":"req-1"},"set":{"attempts":1},"request_id":"r-9"}]}')$$);
-- the retention: a setting of the proposing node, in milliseconds
SHOW kommander.request_retention;
SELECT err($$SET kommander.request_retention = '10 ms'$$);

-- old outcomes are forgotten by entries of every kind, one in 64 by
-- index: here only a lease's keepalives follow the row command
ALTER SYSTEM SET kommander.request_retention = '1s';
SELECT pg_reload_conf();
SELECT pg_sleep(0.5);
SHOW kommander.request_retention;
SELECT kmd_lease_grant('1 min', 'quiet-1') AS quiet_lease \gset
SELECT kmd_propose('quiet-1', '{"op":"call","applier":"entry_time","request_id":"q-1"}') > 0 AS remembered;
SELECT count(*) AS quiet_outcomes FROM kommander.requests WHERE key = 'quiet-1';
-- (a keepalive every 0.25 s while the outcome ages: the partition is
-- never idle for the retention, which would have its leader forget)
SELECT count(*) FILTER (WHERE kmd_lease_keepalive(:quiet_lease) > '0') AS slow_keepalives
  FROM (SELECT pg_sleep(0.25) FROM generate_series(1, 6)) s;
SELECT count(*) FILTER (WHERE kmd_lease_keepalive(:quiet_lease) > '0') AS keepalives FROM generate_series(1, 70);
SELECT count(*) AS quiet_outcomes_left FROM kommander.requests WHERE key = 'quiet-1';
SELECT kmd_lease_revoke(:quiet_lease);
ALTER SYSTEM RESET kommander.request_retention;
SELECT pg_reload_conf();
