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
SELECT state, attempts FROM jobs WHERE id = 'prim-1';
