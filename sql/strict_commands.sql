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
