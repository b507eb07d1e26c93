-- A proposal and the caller's transaction.  Runs after single_node, on its
-- cluster.

-- a proposal is not part of the caller's transaction: committed by the
-- cluster, it stays after a ROLLBACK
BEGIN;
SELECT kmd_propose('tx-1', '{"op":"insert","table":"jobs","row":{"id":"tx-1","state":"queued"}}') > 0 AS proposed;
SELECT state FROM jobs WHERE id = 'tx-1';
ROLLBACK;
SELECT state FROM jobs WHERE id = 'tx-1';

-- a caller in REPEATABLE READ does not see its own write: its snapshot
-- was taken before the write was applied
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT count(*) FROM jobs WHERE id = 'tx-2';
SELECT kmd_propose('tx-2', '{"op":"insert","table":"jobs","row":{"id":"tx-2","state":"queued"}}') > 0 AS proposed;
SELECT count(*) FROM jobs WHERE id = 'tx-2';
COMMIT;
SELECT count(*) FROM jobs WHERE id = 'tx-2';

-- at READ COMMITTED the next statement sees it
BEGIN;
SELECT kmd_propose('tx-3', '{"op":"insert","table":"jobs","row":{"id":"tx-3","state":"queued"}}') > 0 AS proposed;
SELECT count(*) FROM jobs WHERE id = 'tx-3';
COMMIT;

-- a transaction that holds the lock its proposal's apply needs: the
-- apply worker waits for it, so the proposal fails at once instead of at
-- kommander.propose_timeout (its outcome unknown: it is committed), and
-- applies once the transaction ends
BEGIN;
SELECT state FROM jobs WHERE id = 'tx-1' FOR UPDATE;
SELECT err($$SELECT kmd_propose('tx-1', '{"op":"update","table":"jobs","key":{"id":"tx-1"},"set":{"state":"locked"}}')$$);
-- as does a barrier, which waits for this node to apply
SELECT err($$SELECT kmd_read_barrier('tx-1')$$);
ROLLBACK;
SELECT kmd_read_barrier('tx-1') > 0 AS barrier;
SELECT state FROM jobs WHERE id = 'tx-1';
-- a DDL on a table the transaction read
BEGIN;
SELECT count(*) > 0 AS read FROM jobs;
SELECT err($$SELECT kmd_ddl('ALTER TABLE public.jobs ADD COLUMN locked_out int')$$);
ROLLBACK;
SELECT kmd_read_barrier() > 0 AS barrier;
SELECT count(*) AS added FROM pg_attribute WHERE attrelid = 'public.jobs'::regclass AND attname = 'locked_out';
SELECT kmd_ddl('ALTER TABLE public.jobs DROP COLUMN locked_out') > 0 AS ddl_done;

-- leave the cluster's rows as they were
SELECT count(*) AS deleted FROM (VALUES ('tx-1'), ('tx-2'), ('tx-3')) k(id),
  LATERAL kmd_propose(k.id, jsonb_build_object('op', 'delete', 'table', 'jobs', 'key', jsonb_build_object('id', k.id)));
