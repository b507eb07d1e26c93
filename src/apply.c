/*-------------------------------------------------------------------------
 *
 * apply.c
 *	  The apply worker: reads committed entries from kommander.log in log
 *	  order and applies them, then answers the local backends that wait.
 *
 * One transaction per loop iteration applies a batch of entries of every
 * partition with work and advances kommander.applied in the same
 * transaction, so each entry is applied exactly once across crashes.  Each
 * command runs in a subtransaction: a failing command changes nothing and
 * fails identically on every node.  Only after the commit are the waiting
 * proposers answered, so their next SELECT sees what they proposed.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/apply.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"

#include "apply.h"
#include "command.h"
#include "errcodes.h"
#include "guc.h"
#include "raft/raft.h"
#include "rows.h"
#include "shmem.h"
#include "storage.h"

/* Entries applied per partition and iteration, at most */
#define APPLY_BATCH 1000

bool		kmd_applying = false;

/* The outcome of one entry, to hand to its proposer after the commit. */
typedef struct Outcome
{
	int32		slot;
	uint32		gen;
	char		sqlstate[6];
	char	   *errmsg;
	char	   *errdetail;
	uint64		index;
	uint64		term;
	bool		applied;
	char	   *result;
} Outcome;

/* What an iteration owes after its commit; lives in `cxt', not in SPI's. */
typedef struct Pending
{
	MemoryContext cxt;
	List	   *outcomes;
	bool		catalog_changed;
	bool		stop_partition; /* the map changed: apply no further entry of
								 * this partition before the caches follow */
} Pending;

static SPIPlanPtr plan_read = NULL;
static SPIPlanPtr plan_applied = NULL;

static SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare \"%s\"", sql);
	return plan;
}

/* ------------------------------------------------------------------------
 * System commands
 * ------------------------------------------------------------------------
 */
static void
exec_sql(const char *sql, int nargs, Oid *types, Datum *values, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);

	if (rc < 0 || (expect != 0 && rc != expect))
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
}

static void
apply_register_table(const KmdCommand *cmd, uint64 index)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	Oid			relid;
	bool		isnull;
	char	   *qualname;

	if (cmd->n_args < 1)
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("table registration names no table")));
	values[0] = CStringGetTextDatum(cmd->args[0]);
	values[1] = Int64GetDatum((int64) index);
	if (SPI_execute_with_args("SELECT $1::regclass::oid", 1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not resolve %s", cmd->args[0]);
	relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
										  get_rel_name(relid));
	{
		Oid			t[1] = {OIDOID};
		Datum		v[1] = {ObjectIdGetDatum(relid)};

		exec_sql("SELECT 1 FROM pg_index WHERE indrelid = $1 AND indisprimary", 1, t, v, SPI_OK_SELECT);
		if (SPI_processed == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
					 errmsg("table %s has no primary key", qualname)));
		exec_sql("SELECT 1 FROM pg_trigger WHERE tgrelid = $1 AND tgname = 'kommander_guard'",
				 1, t, v, SPI_OK_SELECT);
		if (SPI_processed == 0)
			exec_sql(psprintf("CREATE TRIGGER kommander_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
							  "ON %s FOR EACH STATEMENT EXECUTE FUNCTION kommander.control_table_guard()",
							  qualname), 0, NULL, NULL, SPI_OK_UTILITY);
	}
	values[0] = ObjectIdGetDatum(relid);
	types[0] = OIDOID;
	exec_sql("INSERT INTO kommander.tables VALUES ($1::regclass, $2) ON CONFLICT (relid) DO NOTHING",
			 2, types, values, SPI_OK_INSERT);
}

static void
apply_register_applier(const KmdCommand *cmd)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];

	if (cmd->n_args < 2)
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("applier registration is incomplete")));
	values[0] = CStringGetTextDatum(cmd->args[0]);
	values[1] = CStringGetTextDatum(cmd->args[1]);
	exec_sql("SELECT 1 FROM pg_proc WHERE oid = $2::regprocedure "
			 "AND pronargs = 2 AND proargtypes[0] = 'jsonb'::regtype "
			 "AND proargtypes[1] = 'kommander.apply_context'::regtype "
			 "AND prorettype = 'jsonb'::regtype AND NOT proretset",
			 2, types, values, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("applier function must be fn(jsonb, kommander.apply_context) returning jsonb")));
	exec_sql("INSERT INTO kommander.appliers VALUES ($1, $2::regprocedure) "
			 "ON CONFLICT (name) DO UPDATE SET fn = EXCLUDED.fn",
			 2, types, values, SPI_OK_INSERT);
}

/* Roster changes; the new node's id goes to `result'. */
static void
apply_roster(const KmdCommand *cmd, StringInfo result)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		isnull;

	if (cmd->n_args < (cmd->kind == KMD_CMD_NODE_ADD ? 2 : 1))
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("roster change is incomplete")));
	values[0] = CStringGetTextDatum(cmd->args[0]);
	values[1] = CStringGetTextDatum(cmd->n_args > 1 ? cmd->args[1] : "");
	switch (cmd->kind)
	{
		case KMD_CMD_NODE_ADD:
			exec_sql("SELECT node_id, conninfo = $2 FROM kommander.roster WHERE node_name = $1",
					 2, types, values, SPI_OK_SELECT);
			if (SPI_processed > 0)
			{
				int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
				bool		same = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

				if (!same)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_OBJECT),
							 errmsg("a node named \"%s\" is already in the roster", cmd->args[0])));
				appendStringInfo(result, "%d", id);
				return;
			}
			exec_sql("INSERT INTO kommander.roster "
					 "SELECT coalesce(max(node_id), 0) + 1, $1, $2, 'learner' FROM kommander.roster "
					 "RETURNING node_id", 2, types, values, SPI_OK_INSERT_RETURNING);
			appendStringInfo(result, "%d",
							 DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)));
			return;
		case KMD_CMD_NODE_PROMOTE:
			exec_sql("UPDATE kommander.roster SET role = 'voter' WHERE node_name = $1",
					 1, types, values, SPI_OK_UPDATE);
			break;
		case KMD_CMD_NODE_REMOVE:
			/* first 'removing' (the groups let it go), then out of the roster */
			exec_sql("DELETE FROM kommander.roster WHERE node_name = $1 AND role = 'removing'",
					 1, types, values, SPI_OK_DELETE);
			if (SPI_processed == 0)
				exec_sql("UPDATE kommander.roster SET role = 'removing' WHERE node_name = $1",
						 1, types, values, SPI_OK_UPDATE);
			break;
	}
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("node \"%s\" is not in the roster", cmd->args[0])));
}

/* The system partition hands out partition ids; the new id goes to `result'. */
static void
apply_alloc_partition(StringInfo result)
{
	bool		isnull;

	exec_sql("UPDATE kommander.counters SET value = value + 1 "
			 "WHERE name = 'next_partition_id' RETURNING value - 1",
			 0, NULL, NULL, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed != 1)
		elog(ERROR, "kommander.counters has no next_partition_id");
	appendStringInfo(result, INT64_FORMAT,
					 DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)));
}

/*
 * A split, applied at the same index of the partition's log on every node:
 * the partition keeps [lo, at), a new partition takes [at, hi), both at the
 * next generation; the new partition's group starts empty with the
 * configuration in force at this index.  No row moves.
 */
static void
apply_split(const KmdCommand *cmd, int32 partition_id, uint64 index, StringInfo result)
{
	Oid			types[4] = {INT4OID, INT8OID, INT8OID, INT4OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	int64		new_id;
	int64		at;
	int64		lo;
	bool		hi_null;
	int64		hi = 0;
	bool		isnull;
	raft_conf	conf;
	char	   *end;

	if (cmd->n_args < 2 || partition_id == 0)
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("malformed split command")));
	new_id = strtoll(cmd->args[0], &end, 10);
	at = strtoll(cmd->args[1], &end, 10);
	if (new_id <= 0 || new_id > PG_INT32_MAX)
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("invalid new partition id in split command")));

	values[0] = Int32GetDatum(partition_id);
	exec_sql("SELECT lo, hi FROM kommander.partition_map WHERE partition_id = $1 AND state = 'active'",
			 1, types, values, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR, (errcode(ERRCODE_KMD_PARTITION_FROZEN),
						errmsg("partition %d is not active", partition_id)));
	lo = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &hi_null);

		if (!hi_null)
			hi = DatumGetInt64(d);
	}
	if (at <= lo || (!hi_null && at >= hi))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("split point " INT64_FORMAT " is not inside partition %d", at, partition_id)));

	kmd_storage_conf_at(partition_id, index, &conf);

	values[0] = Int32GetDatum(partition_id);
	values[1] = Int64GetDatum(at);
	values[2] = Int64GetDatum((int64) cmd->generation + 1);
	exec_sql("UPDATE kommander.partition_map SET hi = $2, generation = $3 WHERE partition_id = $1",
			 3, types, values, SPI_OK_UPDATE);
	values[0] = Int32GetDatum((int32) new_id);
	values[1] = Int64GetDatum(at);
	values[2] = Int64GetDatum(hi);
	nulls[2] = hi_null ? 'n' : ' ';
	values[3] = Int64GetDatum((int64) cmd->generation + 1);
	types[3] = INT8OID;
	if (SPI_execute_with_args("INSERT INTO kommander.partition_map VALUES ($1, $2, $3, $4, 'active')",
							  4, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record partition " INT64_FORMAT, new_id);
	kmd_storage_create_group((int32) new_id, &conf);
	appendStringInfo(result, INT64_FORMAT, new_id);
}

/* The first step of a merge: the right partition takes no more commands. */
static void
apply_freeze(int32 partition_id, uint64 index, StringInfo result)
{
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		values[2];

	values[0] = Int32GetDatum(partition_id);
	values[1] = Int64GetDatum((int64) index);
	exec_sql("UPDATE kommander.partition_map SET state = 'frozen', frozen_at = $2 "
			 "WHERE partition_id = $1 AND partition_id > 0 AND state = 'active'",
			 2, types, values, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partition %d is not an active user partition", partition_id)));
	appendStringInfo(result, UINT64_FORMAT, index);
}

/* The arguments of a merge: the right partition and its freeze index. */
static bool
merge_args(const KmdCommand *cmd, int32 *right, uint64 *frozen_at)
{
	char	   *end;
	long long	r;
	unsigned long long f;

	if (cmd->n_args < 2)
		return false;
	r = strtoll(cmd->args[0], &end, 10);
	if (*end != '\0' || r <= 0 || r > PG_INT32_MAX)
		return false;
	f = strtoull(cmd->args[1], &end, 10);
	if (*end != '\0')
		return false;
	*right = (int32) r;
	*frozen_at = f;
	return true;
}

/*
 * The last step of a merge, in the left partition's log once every node
 * has applied the right partition up to its freeze: the left partition takes
 * the right one's range at a new generation, the right one is gone.
 */
static void
apply_merge(const KmdCommand *cmd, int32 left, StringInfo result)
{
	Oid			types[4] = {INT4OID, INT4OID, INT8OID, INT8OID};
	Datum		values[4];
	int32		right;
	uint64		frozen_at;

	if (!merge_args(cmd, &right, &frozen_at))
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("malformed merge command")));
	values[0] = Int32GetDatum(left);
	values[1] = Int32GetDatum(right);
	values[2] = Int64GetDatum((int64) frozen_at);
	values[3] = Int64GetDatum((int64) cmd->generation + 1);
	exec_sql("SELECT 1 FROM kommander.partition_map l, kommander.partition_map r "
			 "WHERE l.partition_id = $1 AND r.partition_id = $2 AND l.state = 'active' "
			 "AND r.state = 'frozen' AND r.frozen_at = $3 AND l.hi = r.lo",
			 3, types, values, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partitions %d and %d cannot be merged", left, right),
				 errdetail("The left one must be active, the right one frozen for this merge and adjacent above it.")));
	exec_sql("UPDATE kommander.partition_map SET hi = (SELECT hi FROM kommander.partition_map WHERE partition_id = $2), "
			 "generation = $4 WHERE partition_id = $1",
			 4, types, values, SPI_OK_UPDATE);
	exec_sql("UPDATE kommander.partition_map SET state = 'gone' WHERE partition_id = $2",
			 2, types, values, SPI_OK_UPDATE);
	appendStringInfo(result, "%d", left);
}

/* ------------------------------------------------------------------------
 * One entry
 * ------------------------------------------------------------------------
 */

/* Run the command of an entry; errors are raised. */
static void
run_command(const KmdCommand *cmd, const KmdApplyContext *ctx, bool *applied,
			StringInfo result, Pending *pending)
{
	*applied = true;
	SPI_connect();
	switch (cmd->kind)
	{
		case KMD_CMD_ROWS:
			{
				Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
																   CStringGetDatum(cmd->payload)));

				kmd_rows_apply(j, cmd->key, ctx, applied, result);
			}
			break;
		case KMD_CMD_DDL:
			if (SPI_execute(cmd->payload, false, 0) < 0)
				elog(ERROR, "could not run replicated DDL");
			break;
		case KMD_CMD_REGISTER_TABLE:
			apply_register_table(cmd, ctx->index);
			break;
		case KMD_CMD_REGISTER_APPLIER:
			apply_register_applier(cmd);
			break;
		case KMD_CMD_NODE_ADD:
		case KMD_CMD_NODE_PROMOTE:
		case KMD_CMD_NODE_REMOVE:
			apply_roster(cmd, result);
			pending->catalog_changed = true;
			break;
		case KMD_CMD_ALLOC_PARTITION:
			apply_alloc_partition(result);
			break;
		case KMD_CMD_SPLIT:
			apply_split(cmd, ctx->partition_id, ctx->index, result);
			pending->catalog_changed = true;
			pending->stop_partition = true;
			break;
		case KMD_CMD_FREEZE:
			apply_freeze(ctx->partition_id, ctx->index, result);
			pending->catalog_changed = true;
			pending->stop_partition = true;
			break;
		case KMD_CMD_MERGE:
			apply_merge(cmd, ctx->partition_id, result);
			pending->catalog_changed = true;
			pending->stop_partition = true;
			break;
	}
	SPI_finish();
}

/*
 * Apply one command in a subtransaction; on error, roll it back and record
 * the error for the proposer.  The pattern of PL/pgSQL's exception blocks.
 */
static void
apply_command(const KmdCommand *cmd, const KmdApplyContext *ctx, Outcome *out,
			  Pending *pending)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	StringInfoData result;

	initStringInfo(&result);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		run_command(cmd, ctx, &out->applied, &result, pending);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		strcpy(out->sqlstate, "00000");
		out->result = result.len > 0 ? MemoryContextStrdup(pending->cxt, result.data) : NULL;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		SPI_restore_connection();
		strlcpy(out->sqlstate, unpack_sql_state(edata->sqlerrcode), sizeof(out->sqlstate));
		out->errmsg = edata->message ? MemoryContextStrdup(pending->cxt, edata->message) : NULL;
		out->errdetail = edata->detail ? MemoryContextStrdup(pending->cxt, edata->detail) : NULL;
		out->applied = false;
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/* ------------------------------------------------------------------------
 * Where entries come from: the Raft workers' feeds, else the log table
 * ------------------------------------------------------------------------
 */
typedef struct Entry
{
	uint64		index;
	uint64		term;
	int			kind;
	char	   *data;			/* NULL when the entry has none */
	uint32		len;
} Entry;

typedef struct FeedKey
{
	int32		partition_id;
	uint64		index;
} FeedKey;

typedef struct FeedItem
{
	FeedKey		key;
	uint64		term;
	int			kind;
	uint32		len;
	char	   *data;			/* in feed_cxt */
} FeedItem;

static HTAB *feed_cache = NULL;
static MemoryContext feed_cxt = NULL;

/* Move what the Raft workers fed us into the cache, skipping the applied. */
static void
drain_feeds(void)
{
	if (feed_cache == NULL)
	{
		HASHCTL		ctl;

		feed_cxt = AllocSetContextCreate(TopMemoryContext, "kommander apply feed",
										 ALLOCSET_DEFAULT_SIZES);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(FeedKey);
		ctl.entrysize = sizeof(FeedItem);
		ctl.hcxt = feed_cxt;
		feed_cache = hash_create("kommander apply feed", 1024, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	for (int w = 0; w < kmd_shared->n_workers; w++)
	{
		char	   *rec;
		uint32		len;

		while (kmd_inbox_get(kmd_shared->workers[w].feed, &rec, &len))
		{
			KmdFeedEntry *h = (KmdFeedEntry *) rec;
			FeedKey		key;
			FeedItem   *item;
			bool		found;

			if (len < sizeof(KmdFeedEntry) ||
				h->index <= kmd_partition_applied(h->partition_id))
				continue;
			memset(&key, 0, sizeof(key));
			key.partition_id = h->partition_id;
			key.index = h->index;
			item = hash_search(feed_cache, &key, HASH_ENTER, &found);
			if (found)
				pfree(item->data);
			item->term = h->term;
			item->kind = (int) h->kind;
			item->len = len - sizeof(KmdFeedEntry);
			item->data = MemoryContextAlloc(feed_cxt, Max(item->len, 1));
			memcpy(item->data, rec + sizeof(KmdFeedEntry), item->len);
			pfree(rec);
		}
	}
}

/* Forget cached entries of a partition up to `index' (applied). */
static void
feed_forget(int32 partition_id, uint64 from, uint64 to)
{
	for (uint64 i = from + 1; i <= to; i++)
	{
		FeedKey		key;
		FeedItem   *item;

		memset(&key, 0, sizeof(key));
		key.partition_id = partition_id;
		key.index = i;
		item = hash_search(feed_cache, &key, HASH_FIND, NULL);
		if (item != NULL)
		{
			pfree(item->data);
			hash_search(feed_cache, &key, HASH_REMOVE, NULL);
		}
	}
}

/*
 * The committed entries of a partition after `from', up to `to' (at most
 * APPLY_BATCH): from the feed cache while it holds them in order, else from
 * the log table.
 */
static Entry *
load_entries(int32 partition_id, uint64 from, uint64 to, int *n)
{
	uint64		last = Min(to, from + APPLY_BATCH);
	Entry	   *entries = palloc(sizeof(Entry) * (last - from + 1));
	Datum		values[3];

	*n = 0;
	for (uint64 i = from + 1; i <= last; i++)
	{
		FeedKey		key;
		FeedItem   *item;

		memset(&key, 0, sizeof(key));
		key.partition_id = partition_id;
		key.index = i;
		item = hash_search(feed_cache, &key, HASH_FIND, NULL);
		if (item == NULL)
			break;
		entries[*n].index = i;
		entries[*n].term = item->term;
		entries[*n].kind = item->kind;
		entries[*n].data = item->data;
		entries[*n].len = item->len;
		(*n)++;
	}
	if (*n > 0)
		return entries;

	values[0] = Int32GetDatum(partition_id);
	values[1] = Int64GetDatum((int64) from);
	values[2] = Int64GetDatum((int64) last);
	if (SPI_execute_plan(plan_read, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the log of partition %d", partition_id);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		entries[*n].index = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		entries[*n].term = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		entries[*n].kind = DatumGetInt16(SPI_getbinval(tup, desc, 3, &isnull));
		d = SPI_getbinval(tup, desc, 4, &isnull);
		entries[*n].data = NULL;
		entries[*n].len = 0;
		if (!isnull)
		{
			bytea	   *b = DatumGetByteaPCopy(d);

			entries[*n].data = VARDATA_ANY(b);
			entries[*n].len = VARSIZE_ANY_EXHDR(b);
		}
		(*n)++;
	}
	return entries;
}

/*
 * Apply the committed entries of one partition after `from', up to `to'.
 * Returns the last index applied (and its term in *term).
 */
static uint64
apply_partition(int32 partition_id, uint64 from, uint64 to, uint64 *term,
				Pending *pending)
{
	uint64		done = from;
	int			n;
	Entry	   *entries = load_entries(partition_id, from, to, &n);

	for (int i = 0; i < n; i++)
	{
		uint64		idx = entries[i].index;
		uint64		t = entries[i].term;
		int			kind = entries[i].kind;
		KmdCommand	cmd;
		Outcome    *out;

		if (idx != done + 1)
			break;				/* a hole: the log is not there yet */

		if (kind == RAFT_ENTRY_NORMAL && entries[i].data != NULL)
		{
			bool		ok = kmd_command_decode(entries[i].data, entries[i].len, &cmd);

			out = MemoryContextAllocZero(pending->cxt, sizeof(Outcome));
			out->index = idx;
			out->term = t;
			if (!ok)
			{
				elog(WARNING, "kommander: partition %d entry " UINT64_FORMAT " is not a command",
					 partition_id, idx);
				pfree(out);
			}
			else
			{
				KmdApplyContext ctx;

				/* a row command never runs before the DDL it depends on */
				if (partition_id != 0 && cmd.sys_index > kmd_partition_applied(0))
					break;
				/* a merge waits until the right partition is drained here */
				if (cmd.kind == KMD_CMD_MERGE)
				{
					int32		right;
					uint64		frozen_at;

					if (merge_args(&cmd, &right, &frozen_at) &&
						kmd_partition_applied(right) < frozen_at)
						break;
				}
				out->slot = cmd.origin_node == kmd_shared->local_node_id ? cmd.origin_slot : -1;
				out->gen = cmd.origin_gen;
				ctx.partition_id = partition_id;
				ctx.index = idx;
				ctx.term = t;
				ctx.origin_node = cmd.origin_node;
				ctx.key = cmd.key;
				if (partition_id != 0 && cmd.kind != KMD_CMD_FREEZE &&
					kmd_partition_state(partition_id) != KMD_PART_ACTIVE)
				{
					strcpy(out->sqlstate, "K0004");
					out->errmsg = "partition is frozen or gone";
					out->errdetail = "A merge of the partition came first; nothing was applied.";
				}
				else if (partition_id != 0 && cmd.generation != kmd_partition_generation(partition_id))
				{
					strcpy(out->sqlstate, "K0001");
					out->errmsg = "partition generation changed";
					out->errdetail = "A split or merge of the partition came first; nothing was applied.";
				}
				else
					apply_command(&cmd, &ctx, out, pending);
				if (out->slot >= 0)
				{
					MemoryContext old = MemoryContextSwitchTo(pending->cxt);

					pending->outcomes = lappend(pending->outcomes, out);
					MemoryContextSwitchTo(old);
				}
			}
		}
		done = idx;
		*term = t;
		if (pending->stop_partition)
		{
			pending->stop_partition = false;
			break;
		}
	}
	return done;
}

static void
save_applied(int32 partition_id, uint64 index, uint64 term)
{
	Datum		values[3];

	values[0] = Int32GetDatum(partition_id);
	values[1] = Int64GetDatum((int64) index);
	values[2] = Int64GetDatum((int64) term);
	if (SPI_execute_plan(plan_applied, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not save the applied index of partition %d", partition_id);
}

typedef struct Work
{
	int32		partition_id;
	uint64		from;
	uint64		to;
	uint64		done;
	uint64		term;
} Work;

/* Apply what every partition has committed; true if anything was applied. */
static bool
apply_all(void)
{
	Work	   *work = palloc(sizeof(Work) * kmd_shared->max_partitions);
	int			n = 0;
	Pending		pending = {CurrentMemoryContext, NIL, false, false};
	bool		progress = false;
	ListCell   *lc;

	drain_feeds();
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->max_partitions; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];
		uint64		commit = pg_atomic_read_u64(&part->commit_index);
		uint64		applied = pg_atomic_read_u64(&part->applied_index);

		if (part->partition_id >= 0 && commit > applied)
		{
			work[n].partition_id = part->partition_id;
			work[n].from = applied;
			work[n].to = commit;
			work[n].done = applied;
			work[n].term = pg_atomic_read_u64(&part->applied_term);
			n++;
		}
	}
	LWLockRelease(kmd_shared->lock);
	if (n == 0)
		return false;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	/* durability of an apply comes from the log, which is replayed */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_SESSION);
	if (plan_read == NULL)
	{
		Oid			types[3] = {INT4OID, INT8OID, INT8OID};

		plan_read = keep_plan("SELECT idx, term, kind, data FROM kommander.log "
							  "WHERE partition_id = $1 AND idx > $2 AND idx <= $3 ORDER BY idx",
							  3, types);
		plan_applied = keep_plan("INSERT INTO kommander.applied VALUES ($1, $2, $3) "
								 "ON CONFLICT (partition_id) DO UPDATE SET applied_index = EXCLUDED.applied_index, "
								 "applied_term = EXCLUDED.applied_term",
								 3, types);
	}

	kmd_applying = true;
	PG_TRY();
	{
		/* the system partition first: user entries may wait for it */
		for (int pass = 0; pass < 2; pass++)
			for (int i = 0; i < n; i++)
			{
				if ((work[i].partition_id == 0) != (pass == 0))
					continue;
				work[i].done = apply_partition(work[i].partition_id, work[i].from,
											   work[i].to, &work[i].term, &pending);
				feed_forget(work[i].partition_id, work[i].from, work[i].done);
			}
	}
	PG_FINALLY();
	{
		kmd_applying = false;
	}
	PG_END_TRY();

	for (int i = 0; i < n; i++)
		if (work[i].done > work[i].from)
		{
			save_applied(work[i].partition_id, work[i].done, work[i].term);
			progress = true;
		}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();

	if (pending.catalog_changed)
	{
		StartTransactionCommand();
		PushActiveSnapshot(GetTransactionSnapshot());
		kmd_catalog_refresh();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}

	/* now visible: publish, then answer the proposers */
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < n; i++)
	{
		KmdPartition *part = kmd_partition_find(work[i].partition_id);

		if (part != NULL && work[i].done > work[i].from)
		{
			pg_atomic_write_u64(&part->applied_term, work[i].term);
			pg_atomic_write_u64(&part->applied_index, work[i].done);
		}
	}
	LWLockRelease(kmd_shared->lock);
	foreach(lc, pending.outcomes)
	{
		Outcome    *o = lfirst(lc);

		(void) kmd_slot_complete(o->slot, o->gen, o->sqlstate, o->errmsg, o->errdetail,
								 o->index, o->term, o->applied, o->result,
								 o->result ? Min(strlen(o->result), KMD_MAX_RESULT) : 0);
	}
	if (progress)
		ConditionVariableBroadcast(&kmd_shared->applied_cv);
	return progress;
}

/* Load kommander.applied into shared memory. */
static void
load_applied(void)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	kmd_catalog_refresh();
	SPI_connect();
	if (SPI_execute("SELECT partition_id, applied_index, applied_term FROM kommander.applied",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.applied");
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		HeapTuple	tup = SPI_tuptable->vals[i];
		KmdPartition *part = kmd_partition_find(DatumGetInt32(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull)));

		if (part == NULL)
			continue;
		pg_atomic_write_u64(&part->applied_index,
							DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull)));
		pg_atomic_write_u64(&part->applied_term,
							DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 3, &isnull)));
	}
	LWLockRelease(kmd_shared->lock);
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

static void
apply_exit(int code, Datum arg)
{
	kmd_shared->apply_latch = NULL;
	kmd_shared->apply_pid = 0;
}

void
kmd_apply_main(Datum arg)
{
	MemoryContext loop_cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(kmd_database, NULL, 0);

	kmd_shared->apply_pid = MyProcPid;
	kmd_shared->apply_latch = MyLatch;
	before_shmem_exit(apply_exit, 0);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "kommander apply loop",
									 ALLOCSET_DEFAULT_SIZES);
	load_applied();
	elog(LOG, "kommander apply worker started");

	for (;;)
	{
		MemoryContext old;
		bool		more;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		MemoryContextReset(loop_cxt);
		old = MemoryContextSwitchTo(loop_cxt);
		more = apply_all();
		MemoryContextSwitchTo(old);
		if (more)
			continue;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1000, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
