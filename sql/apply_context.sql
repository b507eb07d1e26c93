-- What an applier learns about the entry it applies: every field of
-- kommander.apply_context, the time included, which the proposing node
-- decides once and the entry carries.  Runs after single_node, on the node
-- it bootstrapped.

SELECT attnum, attname, format_type(atttypid, atttypmod) AS type
  FROM pg_attribute WHERE attrelid = 'kommander.apply_context'::regclass AND attnum > 0
 ORDER BY attnum;

CREATE FUNCTION public.context_of(args jsonb, ctx kommander.apply_context) RETURNS jsonb
LANGUAGE sql AS $$ SELECT to_jsonb(ctx) $$;
SELECT kmd_register_applier('context_of', 'public.context_of(jsonb, kommander.apply_context)');

CREATE TEMP TABLE window_start AS SELECT clock_timestamp() AS t;
CREATE TEMP TABLE answer AS
  SELECT kmd_propose_result('ctx-1', '{"op":"call","applier":"context_of"}') AS r;
CREATE TEMP TABLE window_end AS SELECT clock_timestamp() AS t;

SELECT r->'result'->>'key' AS key,
       (r->'result'->>'partition_id')::int = (r->>'partition')::int AS same_partition,
       (r->'result'->>'index')::bigint = (r->>'index')::bigint AS same_index,
       (r->'result'->>'term')::bigint = (r->>'term')::bigint AS same_term,
       (r->'result'->>'origin_node')::int AS origin_node,
       (r->'result'->>'at')::timestamptz BETWEEN (SELECT t FROM window_start)
                                             AND (SELECT t FROM window_end) AS at_in_window
  FROM answer;

-- the time is the entry's: a second call sees a later one, not the first
SELECT (kmd_propose_result('ctx-1', '{"op":"call","applier":"context_of"}')->'result'->>'at')::timestamptz
       > (SELECT (r->'result'->>'at')::timestamptz FROM answer) AS later;
