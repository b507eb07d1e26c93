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
 * An error is the command's outcome unless it is a failure of this node
 * (failure.c tells them apart): that rolls back only the command, and its
 * partition stops at the entry and is tried again after a backoff while
 * the other partitions go on.  Locks are waited for at most
 * APPLY_LOCK_TIMEOUT_MS each time (lock_timeout), so a session holding a
 * lock on a row delays that row's partition only.  An entry this node
 * cannot decode stops its partition.  An error outside any command (this
 * worker's own reads and writes of the log, the applied indexes and the
 * request ids) rolls back the iteration, which is tried again in this
 * process after a backoff (recover).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/apply.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "barrier.h"
#include "command.h"
#include "errcodes.h"
#include "events.h"
#include "failure.h"
#include "guc.h"
#include "keyrange.h"
#include "lease.h"
#include "raft/raft.h"
#include "requests.h"
#include "rows.h"
#include "shmem.h"
#include "snapshot.h"
#include "stats.h"
#include "storage.h"
#include "syscommand.h"
#include "xact.h"

/*
 * Entries read per partition and iteration, at most: no more commands fit
 * in one transaction (room_for_command), and a backlog is read from the
 * log again for every transaction.
 */
#define APPLY_BATCH PGPROC_MAX_CACHED_SUBXIDS

/*
 * Subtransactions with an xid a command takes: its own, and a batch's
 * (rows_apply.c).  An applier's exception blocks come on top.
 */
#define COMMAND_SUBXIDS 2

/*
 * The longest a command waits for a lock before its partition steps aside
 * (the other partitions go on) and tries again after a backoff (failure.c).
 */
#define APPLY_LOCK_TIMEOUT_MS "100"

/* how deep a command may recurse (max_stack_depth, kB) on every node */
#define APPLY_STACK_DEPTH_KB 2048

bool		kmd_applying = false;

/* The outcome of one entry, to hand to its proposer after the commit. */
typedef struct Outcome
{
	int32		slot;
	uint32		gen;
	char		sqlstate[6];
	char	   *errmsg;
	char	   *errdetail;
	char	   *errhint;		/* not remembered with a request id */
	uint64		index;
	uint64		term;
	int32		partition_id;	/* whose log holds `index', when not the
								 * entry's partition (a replayed outcome) */
	bool		applied;
	char	   *result;
	bool		ran;			/* apply_command ran it */
	bool		raised;			/* and its outcome is an error it raised */
	int64		apply_us;		/* how long it ran, reruns included */
} Outcome;

/* An entry applied, for the figures of kommander.stats and latency. */
typedef struct Ran
{
	int32		partition_id;
	bool		raised;
	int64		apply_us;
} Ran;

/*
 * What an iteration owes after its commit; lives in `cxt', not in SPI's.
 * The figures of the entries it applied are published only then: an
 * iteration rolled back applies them again.
 */
typedef struct Pending
{
	MemoryContext cxt;
	List	   *outcomes;
	List	   *ran;			/* Ran, in `cxt' */
	bool		catalog_changed;
	bool		stop_partition; /* the map changed: apply no further entry of
								 * this partition before the caches follow */
	bool		failed;			/* a failure of this node stopped the
								 * partition at its current entry */
	bool		holds_moved;	/* a partition is held for a barrier, or
								 * no longer, where it was not */
} Pending;


/*
 * The outcomes of a committed iteration that changed the catalog, until
 * the catalog is read into shared memory and they are answered: if that
 * read fails, the next iteration's take_up() answers them.  In `owed_cxt'.
 */
static MemoryContext owed_cxt = NULL;
static List *owed = NIL;

/* Tell the proposers waiting in `outcomes' (Outcome) what became of them. */
static void
answer(List *outcomes)
{
	ListCell   *lc;

	foreach(lc, outcomes)
	{
		Outcome    *o = lfirst(lc);

		(void) kmd_slot_complete(o->slot, o->gen, o->sqlstate, o->errmsg, o->errdetail, o->errhint,
								 o->index, o->term, o->applied, o->result,
								 o->result ? Min(strlen(o->result), KMD_MAX_RESULT) : 0,
								 o->partition_id);
	}
}

static char *
owed_strdup(const char *s)
{
	return s != NULL ? MemoryContextStrdup(owed_cxt, s) : NULL;
}

/* Keep a copy of `outcomes' as the owed ones, instead of any before. */
static void
owe(List *outcomes)
{
	ListCell   *lc;

	if (owed_cxt == NULL)
		owed_cxt = AllocSetContextCreate(TopMemoryContext, "kommander owed outcomes",
										 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(owed_cxt);
	owed = NIL;
	foreach(lc, outcomes)
	{
		Outcome    *o = lfirst(lc);
		Outcome    *copy = MemoryContextAlloc(owed_cxt, sizeof(Outcome));
		MemoryContext old;

		*copy = *o;
		copy->errmsg = owed_strdup(o->errmsg);
		copy->errdetail = owed_strdup(o->errdetail);
		copy->errhint = owed_strdup(o->errhint);
		copy->result = owed_strdup(o->result);
		old = MemoryContextSwitchTo(owed_cxt);
		owed = lappend(owed, copy);
		MemoryContextSwitchTo(old);
	}
}

static SPIPlanPtr plan_read = NULL;

/*
 * Does the transaction have room for another command?  Each runs in a
 * subtransaction of its own; past PGPROC_MAX_CACHED_SUBXIDS of them with
 * an xid, a transaction overflows its cache of them in the process array,
 * and every snapshot the server takes while it runs, in any session, must
 * look its recent xids up in pg_subtrans.
 */
static bool
room_for_command(void)
{
	TransactionId *children;

	return xactGetCommittedChildren(&children) + COMMAND_SUBXIDS <= PGPROC_MAX_CACHED_SUBXIDS;
}

static SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare \"%s\"", sql);
	return plan;
}

/* ------------------------------------------------------------------------
 * One entry
 * ------------------------------------------------------------------------
 */

/*
 * Run the command of an entry, after deleting the rows of the partitions
 * of `clear' (apply_without); errors are raised.  Returns what a system
 * command changed (KMD_SYS_*), for the caller to act on once it stands.
 */
static int
run_command(const KmdCommand *cmd, const KmdApplyContext *ctx, List *clear,
			bool *applied, StringInfo result)
{
	int			changed = 0;

	*applied = true;
	SPI_connect();
	if (clear != NIL)
		kmd_image_clear(clear);
	if (cmd->kind == KMD_CMD_ROWS)
	{
		Jsonb	   *j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
														   CStringGetDatum(cmd->payload)));

		kmd_rows_apply(j, cmd->key, ctx, applied, result);
	}
	else if (cmd->kind == KMD_CMD_LEASE)
		kmd_lease_apply(cmd, ctx, applied, result);
	else
	{
		changed = kmd_syscommand_apply(cmd, ctx->partition_id, ctx->index, result);
		kmd_events_syscommand(cmd, ctx->partition_id, ctx->index, result->data, changed);
	}
	SPI_finish();
	return changed;
}

/*
 * Close the cursors the command left open (a PL/pgSQL OPEN in an applier
 * or a trigger, never closed): they would live on to the end of the apply
 * transaction, where a later command could fetch from them on a node
 * whose transaction took both commands, and fail (34000) on one that
 * committed between them.  Nothing but user code opens one here, and a
 * check for an open portal costs nothing when there is none.
 */
static void
close_cursors(void)
{
	MemoryContext outer = CurrentMemoryContext;
	List	   *names = NIL;
	ListCell   *lc;

	if (ThereAreNoReadyPortals())
		return;
	SPI_connect();
	if (SPI_execute("SELECT name FROM pg_catalog.pg_cursors", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_cursors");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		MemoryContext spi = MemoryContextSwitchTo(outer);

		/* copied out: SPI_finish frees what was allocated since SPI_connect */
		names = lappend(names, pstrdup(name));
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	foreach(lc, names)
	{
		Portal		portal = GetPortalByName(lfirst(lc));

		if (PortalIsValid(portal))
			SPI_cursor_close(portal);
	}
}

/*
 * Apply one command in a subtransaction (with the rows of the partitions
 * of `clear' deleted first: apply_without).  An error that is the command's
 * outcome rolls it back and is recorded for the proposer (the pattern of
 * PL/pgSQL's exception blocks); so are deferred constraints, checked when
 * the command ends.  A failure of this node (see the file's header) rolls
 * it back too, but is not its outcome: returns false with the failure in
 * *failure, and the entry must be applied again.
 */
static bool
apply_command(const KmdCommand *cmd, const KmdApplyContext *ctx, List *clear,
			  Outcome *out, Pending *pending, KmdFailure *failure)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	StringInfoData result;
	ErrorContextCallback errcb;
	volatile bool node_failed = false;
	TimestampTz start = GetCurrentTimestamp();

	out->ran = true;
	out->raised = false;
	initStringInfo(&result);
	/* the rows it may write: its partition's, at this point of the log */
	kmd_apply_range.partition_id = ctx->partition_id;
	kmd_shared->apply_partition = ctx->partition_id;
	kmd_apply_range.lo = 1;
	kmd_apply_range.hi = 0;
	kmd_apply_range.user_command = cmd->kind == KMD_CMD_ROWS;
	kmd_apply_range.rules = cmd->rules;
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	{
		KmdPartition *part = kmd_partition_find(ctx->partition_id);

		if (part != NULL && ctx->partition_id > 0)
		{
			kmd_apply_range.lo = part->lo;
			kmd_apply_range.hi = part->hi;
		}
	}
	LWLockRelease(kmd_shared->lock);
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		int			changed;

		/*
		 * Settings a command changes (a SET in kmd_ddl's statement, an
		 * applier's set_config) end with it: they would otherwise stay in
		 * this session, which other nodes' apply workers, restarted since,
		 * do not share.
		 */
		int			nest = NewGUCNestLevel();

		/*
		 * The change feed: what follows is this entry's.  In the entry's own
		 * subtransaction: decoding orders the changes of different
		 * subtransactions by their positions in the WAL, and a message's is
		 * its end, the start of the row after it.
		 */
		kmd_feed_mark_entry(ctx->partition_id, ctx->index, ctx->term);
		kmd_failures_watch(&errcb);
		kmd_rows_forget_deferred();
		changed = run_command(cmd, ctx, clear, &out->applied, &result);

		/*
		 * A deferred constraint is the command's, not the iteration's; it
		 * fires as the role that queued it (whatever is left was queued by
		 * kommander's own writes).
		 */
		kmd_rows_fire_deferred();
		AfterTriggerFireDeferred();
		close_cursors();
		AtEOXact_GUC(false, nest);
		kmd_failures_unwatch(&errcb);
		if (kmd_failure_caught(failure))
		{
			RollbackAndReleaseCurrentSubTransaction();
			node_failed = true;
		}
		else
		{
			ReleaseCurrentSubTransaction();
			if (changed & KMD_SYS_CATALOG)
				pending->catalog_changed = true;
			if (changed & KMD_SYS_MAP)
				pending->stop_partition = true;
		}
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (!node_failed)
		{
			strcpy(out->sqlstate, "00000");
			out->result = result.len > 0 ? MemoryContextStrdup(pending->cxt, result.data) : NULL;
		}
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
		if (kmd_failure_of_node(edata, failure))
			node_failed = true;
		else
		{
			strlcpy(out->sqlstate, unpack_sql_state(edata->sqlerrcode), sizeof(out->sqlstate));
			out->errmsg = edata->message ? MemoryContextStrdup(pending->cxt, edata->message) : NULL;
			out->errdetail = edata->detail ? MemoryContextStrdup(pending->cxt, edata->detail) : NULL;
			out->errhint = edata->hint ? MemoryContextStrdup(pending->cxt, edata->hint) : NULL;
			out->applied = false;
			out->raised = true;
		}
		FreeErrorData(edata);
	}
	PG_END_TRY();
	kmd_apply_range.partition_id = -1;
	kmd_apply_range.user_command = false;
	kmd_apply_range.rules = 0;
	kmd_shared->apply_partition = -1;
	out->apply_us += GetCurrentTimestamp() - start;
	return !node_failed;
}

/*
 * Apply again a kmd_ddl statement that ran on the other nodes and failed
 * here, without the rows of the partitions in `stale', which wait for
 * images: those are this node's from before the statement, not the rows
 * it ran on elsewhere, and their images replace them (kmd_image_clear).
 * The rows go in the statement's subtransaction: they come back if it
 * fails again.  The first outcome in `out' gives way to the new one; returns as
 * apply_command.
 */
static bool
apply_without(List *stale, const KmdCommand *cmd, const KmdApplyContext *ctx,
			  Outcome *out, Pending *pending, KmdFailure *failure)
{
	ereport(LOG,
			(errmsg("kommander: the kmd_ddl statement at system index " UINT64_FORMAT
					" ran on the other nodes and failed here: running it again without the rows of partitions that wait for images",
					ctx->index),
			 errdetail_internal("%s", out->errmsg ? out->errmsg : "")));
	out->errmsg = NULL;
	out->errdetail = NULL;
	out->errhint = NULL;
	out->result = NULL;
	return apply_command(cmd, ctx, stale, out, pending, failure);
}

/*
 * A command with a request id seen before (requests.c): its first outcome
 * goes to `out', and nothing is applied.  Also forgets old ids.
 */
static bool
replayed(const KmdCommand *cmd, const KmdApplyContext *ctx, Outcome *out,
		 Pending *pending)
{
	KmdRequestOutcome first;
	int64		lo = 1;
	int64		hi = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	{
		KmdPartition *part = kmd_partition_find(ctx->partition_id);

		if (part != NULL)
		{
			lo = part->lo;
			hi = part->hi;
		}
	}
	LWLockRelease(kmd_shared->lock);
	if (!kmd_requests_replay(cmd, ctx, lo, hi, &first))
		return false;
	memcpy(out->sqlstate, first.sqlstate, sizeof(out->sqlstate));
	out->errmsg = first.errmsg ? MemoryContextStrdup(pending->cxt, first.errmsg) : NULL;
	out->errdetail = first.errdetail ? MemoryContextStrdup(pending->cxt, first.errdetail) : NULL;
	out->index = first.index;
	out->term = first.term;
	out->partition_id = first.partition_id != ctx->partition_id ? first.partition_id : 0;
	out->applied = first.applied;
	out->result = first.result ? MemoryContextStrdup(pending->cxt, first.result) : NULL;
	return true;
}

/* Remember the outcome of a command with a request id (requests.c). */
static void
remember(const KmdCommand *cmd, const KmdApplyContext *ctx, const Outcome *out)
{
	KmdRequestOutcome o;

	memcpy(o.sqlstate, out->sqlstate, sizeof(o.sqlstate));
	o.errmsg = out->errmsg;
	o.errdetail = out->errdetail;
	o.index = out->index;
	o.term = out->term;
	o.partition_id = ctx->partition_id;
	o.applied = out->applied;
	o.result = out->result;
	kmd_requests_remember(cmd, ctx, &o);
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

/*
 * What the cache holds, in bytes, and its bound: past it the rest stays in
 * the rings (the Raft workers then drop what does not fit, and those
 * entries are read from the log table), so commits outrunning applies
 * cannot grow this process.
 */
static Size feed_bytes = 0;
#define FEED_CACHE_BYTES (8 * 1024 * 1024)

static Size
item_bytes(const FeedItem *item)
{
	return sizeof(FeedItem) + Max(item->len, 1);
}

/*
 * Forget cached entries a partition no longer needs: applied here (an
 * image can move past entries never applied one by one) or of a partition
 * gone from shared memory.
 */
static void
feed_purge(void)
{
	HASH_SEQ_STATUS seq;
	FeedItem   *item;

	hash_seq_init(&seq, feed_cache);
	while ((item = hash_seq_search(&seq)) != NULL)
		if (item->key.index <= kmd_partition_applied(item->key.partition_id) ||
			kmd_partition_state(item->key.partition_id) == KMD_PART_GONE)
		{
			feed_bytes -= item_bytes(item);
			pfree(item->data);
			hash_search(feed_cache, &item->key, HASH_REMOVE, NULL);
		}
}

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
	if (feed_bytes >= FEED_CACHE_BYTES)
		feed_purge();
	for (int w = 0; w < kmd_shared->n_workers; w++)
	{
		char	   *rec;
		uint32		len;

		while (feed_bytes < FEED_CACHE_BYTES &&
			   kmd_inbox_get(kmd_shared->workers[w].feed, &rec, &len))
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
			{
				feed_bytes -= item_bytes(item);
				pfree(item->data);
			}
			item->term = h->term;
			item->kind = (int) h->kind;
			item->len = len - sizeof(KmdFeedEntry);
			item->data = MemoryContextAlloc(feed_cxt, Max(item->len, 1));
			memcpy(item->data, rec + sizeof(KmdFeedEntry), item->len);
			feed_bytes += item_bytes(item);
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
			feed_bytes -= item_bytes(item);
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

/* A merge that waits for its right partition: since when, and how far */
typedef struct BlockedMerge
{
	int32		left;
	uint64		right_applied;
	TimestampTz since;
} BlockedMerge;

static BlockedMerge blocked[16];

/*
 * Must the merge at `index' of partition `left', proposed at `generation',
 * wait?  Until the right partition is applied here up to its freeze.  A
 * right partition merged already (a tombstone here) does not hold it; one
 * not created here yet does.  When the right partition makes no progress
 * here (the nodes that applied the merge stopped its group, so nobody
 * serves it any more) for three election timeouts without a leader, or a
 * whole kommander.propose_timeout with one, an image of the left
 * partition, which holds the right one's rows, is asked for instead.  So
 * it is when the tombstone says the right partition went into this very
 * partition while the left one, at this merge's generation, still ends
 * where the right one starts: the tombstone came with another image, from
 * a node that applied this merge, and the rows the merge takes in are
 * gone with it; applied here, the merge would fail on this node only.
 */
static bool
merge_waits(int32 left, uint64 index, uint64 generation, int32 right, uint64 frozen_at)
{
	KmdPartition *part;
	bool		known;
	int32		state = KMD_PART_GONE;
	uint64		applied = 0;
	bool		leaderless = false;
	TimestampTz now = GetCurrentTimestamp();
	BlockedMerge *b = NULL;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(right);
	known = part != NULL;
	if (known)
	{
		state = part->state;
		applied = pg_atomic_read_u64(&part->applied_index);
		leaderless = part->leader == 0;
	}
	LWLockRelease(kmd_shared->lock);
	if (!known || state == KMD_PART_GONE)
	{
		Oid			types[3] = {INT4OID, INT4OID, INT8OID};
		Datum		values[3];
		bool		isnull;

		values[0] = Int32GetDatum(right);
		values[1] = Int32GetDatum(left);
		values[2] = Int64GetDatum((int64) generation);
		if (SPI_execute_with_args("SELECT r.state = 'gone', coalesce(r.merged_into = $2 AND l.hi = r.lo "
								  "  AND l.generation = $3 AND l.state = 'active', false) "
								  "FROM kommander.partition_map r "
								  "LEFT JOIN kommander.partition_map l ON l.partition_id = $2 "
								  "WHERE r.partition_id = $1",
								  3, types, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read kommander.partition_map");
		if (SPI_processed == 0 ||
			!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			return true;		/* not created here yet */
		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
			return false;		/* merged already: stale, alike everywhere */
		/* gone here into this partition, not taken in: nobody serves it */
		applied = 0;
		leaderless = true;
	}
	else if (applied >= frozen_at)
		return false;

	for (int i = 0; i < lengthof(blocked) && b == NULL; i++)
		if (blocked[i].left == left)
			b = &blocked[i];
	for (int i = 0; i < lengthof(blocked) && b == NULL; i++)
		if (blocked[i].left == 0 || TimestampDifferenceExceeds(blocked[i].since, now, 60000))
			b = &blocked[i];
	if (b == NULL)
		return true;
	if (b->left != left || b->right_applied != applied)
	{
		b->left = left;
		b->right_applied = applied;
		b->since = now;
	}
	else if (TimestampDifferenceExceeds(b->since, now,
										leaderless ? 3 * kmd_election_timeout : kmd_propose_timeout))
	{
		int32		from = 0;

		/* from the left partition's leader, or any other node */
		LWLockAcquire(kmd_shared->lock, LW_SHARED);
		part = kmd_partition_find(left);
		if (part != NULL && part->leader != kmd_shared->local_node_id)
			from = part->leader;
		if (from == 0)
			from = kmd_other_node();
		LWLockRelease(kmd_shared->lock);
		b->since = now;
		if (from != 0)
		{
			ereport(LOG,
					(errmsg("kommander: the merge of partition %d into partition %d waits for partition %d, which makes no progress here; asking node %d for an image of partition %d",
							right, left, right, from, left)));
			kmd_image_ask(left, from, index);
		}
	}
	return true;
}

/*
 * Partitions a barrier counted as held because an image will replace their
 * rows (barrier.c): each waits for an image of its own from now on, also
 * after a restart (kommander.snapshot), and applies nothing more here
 * meanwhile.  The image of the partition they were merged into, when it
 * comes first, retires them.  In the transaction that applies the barrier.
 */
static void
bind_to_images(List *partitions)
{
	ListCell   *lc;

	/* their rows in partition order, as compaction takes them */
	list_sort(partitions, list_int_cmp);
	foreach(lc, partitions)
	{
		int32		partition_id = lfirst_int(lc);
		Oid			types[1] = {INT4OID};
		Datum		values[1] = {Int32GetDatum(partition_id)};

		if (SPI_execute_with_args("UPDATE kommander.snapshot SET image_wanted = true "
								  "WHERE partition_id = $1", 1, types, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not mark partition %d as waiting for an image", partition_id);
		kmd_image_ask_any(partition_id);
	}
	list_free(partitions);
}

/*
 * The right partition of a merge that comes after where partition `left'
 * is held for a barrier (`entries' from `next' on), when the merge waits
 * for it here; 0 otherwise.  The nodes that applied the merge stopped the
 * right partition's group, so here it may never reach the barrier, nor
 * the barrier's entry in its log: merge_waits then asks for an image of
 * the left partition already, and while one is asked for the right
 * partition counts as held (barrier.c), its rows being the image's to
 * replace.  Only the first split or merge ahead counts, and only at the
 * left partition's generation: a later one, or a stale one, may never be
 * applied.
 */
static int32
merge_ahead(int32 left, Entry *entries, int next, int n)
{
	for (int i = next; i < n; i++)
	{
		KmdCommand	cmd;
		int32		right;
		uint64		frozen_at;

		if (entries[i].kind != RAFT_ENTRY_NORMAL ||
			!kmd_command_decode(entries[i].data, entries[i].len, &cmd))
			continue;
		if (cmd.kind == KMD_CMD_SPLIT)
			return 0;
		if (cmd.kind != KMD_CMD_MERGE)
			continue;
		if (cmd.generation != kmd_partition_generation(left) ||
			!kmd_merge_args(&cmd, &right, &frozen_at))
			return 0;
		return merge_waits(left, entries[i].index, cmd.generation, right, frozen_at) ? right : 0;
	}
	return 0;
}

/*
 * Apply the committed entries of one partition after `from', up to `to'.
 * Returns the last index applied (and its term in *term).
 */
static uint64
apply_partition(int32 partition_id, uint64 from, uint64 to, uint64 *term,
				Pending *pending, bool was_held)
{
	uint64		done = from;
	int			n;
	Entry	   *entries = load_entries(partition_id, from, to, &n);
	KmdFailure	failure;
	uint64		held_barrier = 0;
	int32		held_merge = 0;

	for (int i = 0; i < n; i++)
	{
		uint64		idx = entries[i].index;
		uint64		t = entries[i].term;
		int			kind = entries[i].kind;
		KmdCommand	cmd;
		KmdApplyContext ctx;
		Outcome    *out;
		KmdDdlOutcome elsewhere;
		List	   *stale = NIL;

		if (idx != done + 1)
			break;				/* a hole: the log is not there yet */

		/*
		 * What the entries before this one wrote, seen by every read made
		 * for it: read-only ones read with the transaction's active
		 * snapshot, which otherwise keeps the command id it was taken
		 * with, and a node that applies several entries in one transaction
		 * (catching up) would read there what a node that applied them one
		 * by one does not.
		 */
		CommandCounterIncrement();
		UpdateActiveSnapshotCommandId();

		/*
		 * An entry this node cannot read (a newer version's, during a
		 * rolling upgrade) stops the partition here: the nodes that can
		 * read it apply it, and skipping it would part this node from them.
		 */
		if (kind != RAFT_ENTRY_NORMAL && kind != RAFT_ENTRY_NOOP && kind != RAFT_ENTRY_CONF)
		{
			kmd_stall_stop(partition_id, idx, t, psprintf("its entry type %d is unknown to this node", kind));
			pending->failed = true;
			break;
		}
		if (kind == RAFT_ENTRY_NORMAL &&
			!kmd_command_decode(entries[i].data, entries[i].len, &cmd))
		{
			char	   *why = kmd_command_problem(entries[i].data, entries[i].len);

			kmd_stall_stop(partition_id, idx, t, why ? why : "it is not a kommander command");
			pending->failed = true;
			break;
		}
		if (kind == RAFT_ENTRY_NORMAL)
		{
			uint64		barrier;

			elsewhere = KMD_DDL_UNKNOWN;

			/*
			 * A DDL or registration waits until every partition is held
			 * for it (barrier.c); a barrier entry holds its partition until
			 * the system partition has applied what it names.
			 */
			if (partition_id == 0 && kmd_barrier_kind(cmd.kind))
			{
				List	   *image_bound;

				if (!kmd_barrier_ready(idx, &image_bound))
					break;

				/*
				 * Rows here that wait for images are not those at the
				 * statement: its outcome is the other nodes'.
				 */
				if (image_bound != NIL && cmd.kind == KMD_CMD_DDL &&
					(elsewhere = kmd_barrier_ddl_outcome(idx)) == KMD_DDL_UNKNOWN)
				{
					list_free(image_bound);
					break;
				}
				if (elsewhere == KMD_DDL_RAN)
					stale = list_copy(image_bound);
				bind_to_images(image_bound);
			}
			if (partition_id != 0 && cmd.kind == KMD_CMD_BARRIER &&
				kmd_barrier_arg(&cmd, &barrier) && barrier > kmd_partition_applied(0))
			{
				held_barrier = barrier;
				held_merge = merge_ahead(partition_id, entries, i + 1, n);
				break;
			}
			/*
			 * A command never runs before the DDL it depends on: its
			 * proposer had applied the system partition up to sys_index,
			 * so a barrier up to there is held here too (barrier.c).
			 */
			if (partition_id != 0 && cmd.sys_index > kmd_partition_applied(0))
			{
				held_barrier = cmd.sys_index;
				held_merge = merge_ahead(partition_id, entries, i, n);
				break;
			}
			/*
			 * A merge waits until the right partition is drained here; not
			 * one that its fencing below refuses (a split or merge of the
			 * left partition came first), whose outcome needs nothing of the
			 * right one, as merge_ahead skips it.
			 */
			if (cmd.kind == KMD_CMD_MERGE &&
				cmd.generation == kmd_partition_generation(partition_id) &&
				kmd_partition_state(partition_id) == KMD_PART_ACTIVE)
			{
				int32		right;
				uint64		frozen_at;

				if (kmd_merge_args(&cmd, &right, &frozen_at) &&
					merge_waits(partition_id, idx, cmd.generation, right, frozen_at))
				{
					held_merge = right;
					break;
				}
			}
			if (!room_for_command())
				break;			/* the next transaction's */
			out = MemoryContextAllocZero(pending->cxt, sizeof(Outcome));
			out->index = idx;
			out->term = t;
			out->slot = cmd.origin_node == kmd_shared->local_node_id &&
				cmd.origin_boot == kmd_shared->boot_id ? cmd.origin_slot : -1;
			out->gen = cmd.origin_gen;
			ctx.partition_id = partition_id;
			ctx.index = idx;
			ctx.term = t;
			ctx.origin_node = cmd.origin_node;
			ctx.key = cmd.key;
			ctx.proposed_at = cmd.proposed_at;
			ctx.rules = cmd.rules;
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
			else if (partition_id != 0 && replayed(&cmd, &ctx, out, pending))
				;				/* a retry: its first outcome, nothing applied */
			else if (elsewhere == KMD_DDL_FAILED)
			{
				strcpy(out->sqlstate, "55000");
				out->errmsg = "the statement failed on the other nodes";
				out->errdetail = "Partitions waited for images on this node, whose rows decide its outcome; it did not run here.";
			}
			else if (!apply_command(&cmd, &ctx, NIL, out, pending, &failure) ||
					 (elsewhere == KMD_DDL_RAN && strcmp(out->sqlstate, "00000") != 0 &&
					  !apply_without(stale, &cmd, &ctx, out, pending, &failure)))
			{
				kmd_stall_retry(partition_id, idx, &failure);
				pending->failed = true;
				break;
			}
			else if ((elsewhere == KMD_DDL_RAN && strcmp(out->sqlstate, "00000") != 0) ||
					 elsewhere == KMD_DDL_OWN)
			{
				/*
				 * Tried again, it would fail again: the images wait for the
				 * system partition to pass it.  The partitions that wait
				 * for images may then refuse them (other barriers applied).
				 * (One that ran elsewhere failed here without the rows of
				 * those partitions too: apply_without.)
				 */
				ereport(WARNING,
						(errmsg("kommander: the kmd_ddl statement at system index " UINT64_FORMAT " %s here while partitions wait for images",
								idx, strcmp(out->sqlstate, "00000") == 0 ? "ran" : "failed"),
						 errdetail(elsewhere == KMD_DDL_OWN ?
								   "No other node could tell what it did there: this node's own outcome stands, which the rows of those partitions here may have decided." :
								   "It ran on the other nodes: this node's outcome differs, and its partitions may refuse the images they wait for."),
						 errhint("If images of those partitions are refused (\"could not install an image\" in the log), remove this node and join it again.")));
			}
			else if (partition_id != 0 &&
					 strcmp(out->sqlstate, "40001") != 0)
				remember(&cmd, &ctx, out);	/* not an outcome that asks for a retry */
			if (out->ran || out->slot >= 0)
			{
				MemoryContext old = MemoryContextSwitchTo(pending->cxt);

				if (out->ran)
				{
					Ran		   *ran = palloc(sizeof(Ran));

					ran->partition_id = partition_id;
					ran->raised = out->raised;
					ran->apply_us = out->apply_us;
					pending->ran = lappend(pending->ran, ran);
				}
				if (out->slot >= 0)
					pending->outcomes = lappend(pending->outcomes, out);
				MemoryContextSwitchTo(old);
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
	if (partition_id != 0 && (was_held || held_barrier != 0 || held_merge != 0) &&
		kmd_barrier_hold(partition_id, held_barrier, held_merge))
		pending->holds_moved = true;
	return done;
}

typedef struct Work
{
	int32		partition_id;
	int			entry;			/* its entry of kmd_shared->partitions */
	uint64		from;
	uint64		to;
	uint64		done;
	uint64		term;
	bool		failed;			/* a failure of this node stopped it */
	bool		held;			/* held for a barrier when it started */
	bool		skipped;		/* no command was left for it */
} Work;

/*
 * Record the applied index and term of every partition of `work' that got
 * further; returns whether any did.  The rows are there (a group's start
 * made them) and are updated without a statement; one missing is
 * inserted by one.
 */
static bool
save_applied(const Work *work, int n)
{
	Datum	   *rows = palloc(sizeof(Datum) * 3 * n);
	bool	   *found = palloc(sizeof(bool) * n);
	int			k = 0;
	Oid			types[3] = {INT4OID, INT8OID, INT8OID};

	for (int i = 0; i < n; i++)
		if (work[i].done > work[i].from)
		{
			rows[3 * k] = Int32GetDatum(work[i].partition_id);
			rows[3 * k + 1] = Int64GetDatum((int64) work[i].done);
			rows[3 * k + 2] = Int64GetDatum((int64) work[i].term);
			k++;
		}
	if (k == 0)
		return false;
	kmd_storage_update_by_key("applied", 3, k, rows, found);
	for (int i = 0; i < k; i++)
		if (!found[i] &&
			SPI_execute_with_args("INSERT INTO kommander.applied VALUES ($1, $2, $3) "
								  "ON CONFLICT (partition_id) DO UPDATE SET "
								  "applied_index = EXCLUDED.applied_index, "
								  "applied_term = EXCLUDED.applied_term",
								  3, types, &rows[3 * i], NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not save the applied index of partition %d",
				 DatumGetInt32(rows[3 * i]));
	return true;
}

/* Does the partition of `w' wait for an image now? */
static bool
image_asked(const Work *w)
{
	KmdPartition *part;
	bool		asked;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = &kmd_shared->partitions[w->entry];
	asked = part->partition_id != w->partition_id || part->image_state != KMD_IMAGE_NONE;
	LWLockRelease(kmd_shared->lock);
	return asked;
}

/*
 * Apply what every partition has committed; true if anything was applied
 * or a partition is held for a barrier where it was not (look again).
 * A partition waiting for its next try after a failure of this node is
 * left out: *next_try is lowered to when the first of them is due.
 */
static bool
apply_all(TimestampTz *next_try)
{
	static uint32 rotation = 0;
	Work	   *work = palloc(sizeof(Work) * kmd_shared->max_partitions);
	int			n = 0;
	Pending		pending = {CurrentMemoryContext, NIL, NIL, false, false, false, false};
	bool		progress = false;
	ListCell   *lc;
	MemoryContext cxt;
	TimestampTz now = GetCurrentTimestamp();
	int32	   *recovered = NULL;
	int			n_recovered = 0;
	int			tries;

	drain_feeds();
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];
		uint64		commit = pg_atomic_read_u64(&part->commit_index);
		uint64		applied = pg_atomic_read_u64(&part->applied_index);

		/* one whose image is asked for waits for it (its rows are replaced) */
		if (part->partition_id >= 0 && part->state != KMD_PART_GONE && commit > applied &&
			part->image_state == KMD_IMAGE_NONE && kmd_stall_allows(part, now, next_try))
		{
			work[n].failed = false;
			work[n].skipped = false;
			work[n].held = part->held_barrier != 0 || part->held_merge != 0;
			work[n].partition_id = part->partition_id;
			work[n].entry = i;
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

	cxt = kmd_xact_begin();
	if (plan_read == NULL)
	{
		Oid			types[3] = {INT4OID, INT8OID, INT8OID};

		plan_read = keep_plan("SELECT idx, term, kind, data FROM kommander.log "
							  "WHERE partition_id = $1 AND idx > $2 AND idx <= $3 ORDER BY idx",
							  3, types);
	}

	kmd_applying = true;
	PG_TRY();
	{
		/*
		 * The system partition first: user entries may wait for it.  The
		 * partitions after it in turns, so that none waits for the commands
		 * of a transaction while another has a backlog.
		 */
		rotation++;
		for (int pass = 0; pass < 2; pass++)
			for (int j = 0; j < n; j++)
			{
				int			i = (int) ((j + rotation) % n);

				if ((work[i].partition_id == 0) != (pass == 0))
					continue;
				if (pass == 1 && image_asked(&work[i]))
				{
					/*
					 * Asked for since the list was made: a barrier the
					 * system partition applied in pass 0 counted it as
					 * held, so none of its entries comes after the DDL.
					 */
					work[i].skipped = true;
					continue;
				}
				if (!room_for_command())
				{
					work[i].skipped = true;
					continue;
				}
				pending.failed = false;
				work[i].done = apply_partition(work[i].partition_id, work[i].from,
											   work[i].to, &work[i].term, &pending,
											   work[i].held);
				work[i].failed = pending.failed;
				feed_forget(work[i].partition_id, work[i].from, work[i].done);
			}
	}
	PG_FINALLY();
	{
		kmd_applying = false;
	}
	PG_END_TRY();

	/* outside the entries: an error here is this node's, not a command's */
	kmd_lease_clock_settle();
	if (save_applied(work, n))
		progress = true;

	/*
	 * The commit of a transaction that notified (an event, user code's
	 * NOTIFY) takes the database's NOTIFY queue lock, which another
	 * session's commit holds for as long as that commit takes (waiting for
	 * a synchronous standby, say).  Waiting for it is no failure of this
	 * node: every command is done.  Back to the timeout after, or at the
	 * abort of a commit that fails.
	 */
	SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	kmd_xact_commit(cxt);
	SetConfigOption("lock_timeout", APPLY_LOCK_TIMEOUT_MS, PGC_SUSET, PGC_S_OVERRIDE);

	/* the figures of the entries, before anyone sees them applied */
	foreach(lc, pending.ran)
	{
		Ran		   *ran = lfirst(lc);

		if (ran->raised)
			kmd_stat_add(KMD_STAT_APPLY_ERRORS, ran->partition_id, 1);
		kmd_latency_record(KMD_LAT_APPLY, ran->partition_id, ran->apply_us);
	}

	if (pending.catalog_changed)
	{
		owe(pending.outcomes);
		cxt = kmd_xact_begin();
		kmd_catalog_refresh();
		kmd_xact_commit(cxt);
		owe(NIL);
	}

	/* now visible: publish, then answer the proposers */
	recovered = palloc(sizeof(int32) * 2 * n);
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < n; i++)
	{
		KmdPartition *part = kmd_partition_find(work[i].partition_id);

		if (part == NULL)
			continue;
		if (work[i].done > work[i].from)
		{
			pg_atomic_write_u64(&part->applied_term, work[i].term);
			pg_atomic_write_u64(&part->applied_index, work[i].done);
			kmd_stat_add(KMD_STAT_APPLIES, work[i].partition_id, work[i].done - work[i].from);
		}
		if (!work[i].failed && !work[i].skipped && (tries = kmd_stall_clear(part)) > 0)
		{
			recovered[2 * n_recovered] = part->partition_id;
			recovered[2 * n_recovered + 1] = tries;
			n_recovered++;
		}
	}
	LWLockRelease(kmd_shared->lock);
	for (int i = 0; i < n_recovered; i++)
		ereport(LOG,
				(errmsg("kommander: partition %d applies again after %d failed tries",
						recovered[2 * i], recovered[2 * i + 1])));
	answer(pending.outcomes);
	if (progress)
		ConditionVariableBroadcast(&kmd_shared->applied_cv);
	/* a barrier the system partition waits for may be ready now */
	return progress || pending.holds_moved;
}

/* Load kommander.applied into shared memory. */
static void
load_applied(void)
{
	MemoryContext cxt = kmd_xact_begin();

	kmd_catalog_refresh();
	kmd_leases_load();
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
	kmd_xact_commit(cxt);
}

/*
 * Give commands the same recursion limit as on every other node, so that
 * 54001 (stack depth limit exceeded), an outcome, is everywhere the same.
 * A node whose stack cannot take it keeps its own and says so: there a
 * command that recurses deep fails alone.
 */
static void
pin_stack_depth(void)
{
	long		rlimit = get_stack_depth_rlimit();

	if (rlimit < 0 || rlimit - STACK_DEPTH_SLOP >= APPLY_STACK_DEPTH_KB * 1024L)
	{
		SetConfigOption("max_stack_depth", CppAsString2(APPLY_STACK_DEPTH_KB),
						PGC_SUSET, PGC_S_OVERRIDE);
		return;
	}
	ereport(WARNING,
			(errmsg("kommander: the apply worker keeps max_stack_depth %d kB: the stack limit of this server is %ld kB",
					max_stack_depth, rlimit / 1024),
			 errdetail("Commands recurse up to %d kB deep on other nodes; one that recurses deeper than this node allows fails here only.",
					   APPLY_STACK_DEPTH_KB),
			 errhint("Start the server with a stack limit (ulimit -s) of at least %ld kB.",
					 (APPLY_STACK_DEPTH_KB * 1024L + STACK_DEPTH_SLOP) / 1024)));
}

/*
 * After an error of an iteration outside any command (reading the log,
 * the request ids, the applied indexes; a lock on them not granted in
 * time, a cancel between two commands): roll back, and drop what this
 * process keeps across iterations that the failed one may have left half
 * made (the feed cache, the merges' waiting times); the next iteration
 * takes up the rest from the tables (take_up) before it applies anything.
 * Partitions stalled or stopped stay so, each with its own backoff.
 * Returns how long to wait before the next iteration: 100 ms, doubling
 * while iterations keep failing, up to 1 s after a lock, a deadlock or a
 * cancel and 10 s after the rest.
 */
static long
recover(MemoryContext loop_cxt, int failures)
{
	ErrorData  *edata;
	bool		lock;
	long		delay = 100;

	HOLD_INTERRUPTS();
	MemoryContextSwitchTo(TopMemoryContext);
	edata = CopyErrorData();
	FlushErrorState();
	LWLockReleaseAll();
	ConditionVariableCancelSleep();
	pgstat_report_wait_end();
	AbortOutOfAnyTransaction();
	kmd_applying = false;
	kmd_apply_range.partition_id = -1;
	kmd_apply_range.user_command = false;
	kmd_apply_range.rules = 0;
	kmd_shared->apply_partition = -1;
	MemoryContextReset(loop_cxt);
	if (feed_cxt != NULL)
		MemoryContextDelete(feed_cxt);
	feed_cxt = NULL;
	feed_cache = NULL;
	feed_bytes = 0;
	memset(blocked, 0, sizeof(blocked));
	RESUME_INTERRUPTS();

	lock = edata->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		edata->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		edata->sqlerrcode == ERRCODE_QUERY_CANCELED;
	for (int i = 1; i < failures && delay < 10000; i++)
		delay *= 2;
	delay = Min(delay, lock ? 1000 : 10000);
	/* the first failure, and then every tenth: a lock may be held long */
	if (failures % 10 == 1)
		ereport(LOG,
				(errmsg("kommander: the apply worker rolled back its transaction; it tries again in %ld ms",
						delay),
				 errdetail("Try %d failed with SQLSTATE %s: %s", failures,
						   unpack_sql_state(edata->sqlerrcode),
						   edata->message ? edata->message : "")));
	FreeErrorData(edata);
	return delay;
}

/*
 * Before the first iteration after a failed one: what that one may have
 * changed in shared memory before it rolled back, read again from the
 * tables.  Its commit may have been done (a failure after it), so the
 * applied indexes come from kommander.applied; a partition held for a DDL
 * barrier is held again when its entries are applied again.  The
 * proposers of a commit whose read of the catalog failed are answered
 * once it is read.
 */
static void
take_up(void)
{
	kmd_barrier_reset();
	load_applied();
	if (owed != NIL)
	{
		answer(owed);
		owe(NIL);
		ConditionVariableBroadcast(&kmd_shared->applied_cv);
	}
}

static void
apply_exit(int code, Datum arg)
{
	kmd_shared->apply_latch = NULL;
	kmd_shared->apply_partition = -1;
}

void
kmd_apply_main(Datum arg)
{
	MemoryContext loop_cxt;
	volatile TimestampTz last_refresh;
	volatile int failures = 0;	/* iterations in a row that failed */
	volatile TimestampTz resume_at = 0; /* no iteration before, after one failed */

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(kmd_database, NULL, 0);
	/*
	 * Nothing of this node's configuration (postgresql.conf, ALTER DATABASE
	 * or ROLE) may make a command fail or act differently here only.
	 */
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	/* Postgres raises no serialization failure of its own at this level */
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	/* a lock wait is a failure of this node: its partition steps aside */
	SetConfigOption("lock_timeout", APPLY_LOCK_TIMEOUT_MS, PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("session_replication_role", "origin", PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * pg_temp last: otherwise searched first for types and relations, by
	 * statements of the worker's own too.  No command leaves a temporary
	 * object (keyrange.c); were one to, it would not stand in for
	 * another.
	 */
	SetConfigOption("search_path", "public, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	/* nor how a text value becomes a stored one, or a stored one text */
	SetConfigOption("TimeZone", "UTC", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("DateStyle", "ISO, MDY", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("IntervalStyle", "postgres", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("extra_float_digits", "3", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("bytea_output", "hex", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lc_monetary", "C", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lc_numeric", "C", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lc_time", "C", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("timezone_abbreviations", "Default", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("array_nulls", "on", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("xmloption", "content", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("xmlbinary", "base64", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_toast_compression", "pglz", PGC_SUSET, PGC_S_OVERRIDE);
	/* nor where a kmd_ddl statement puts a table, how it stores it, who may read large objects */
	SetConfigOption("default_tablespace", "", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_table_access_method", "heap", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lo_compat_privileges", "off", PGC_SUSET, PGC_S_OVERRIDE);
	/* nor how the text of a kmd_ddl statement or an applier reads */
	SetConfigOption("standard_conforming_strings", "on", PGC_SUSET, PGC_S_OVERRIDE);
	/* safe_encoding's refusal depends on client_encoding, which a node may set */
	SetConfigOption("backslash_quote", "on", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("transform_null_equals", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("check_function_bodies", "on", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("plpgsql.variable_conflict", "error", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("plpgsql.extra_errors", "none", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("plpgsql.check_asserts", "on", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("plpgsql.print_strict_params", "off", PGC_SUSET, PGC_S_OVERRIDE);
	/* an error of a command is its outcome, not the end of this process */
	SetConfigOption("exit_on_error", "off", PGC_SUSET, PGC_S_OVERRIDE);
	pin_stack_depth();
	/* nor what functions without a configuration or a limit answer */
	SetConfigOption("default_text_search_config", "pg_catalog.simple", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("quote_all_identifiers", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("gin_fuzzy_search_limit", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("row_security", "on", PGC_SUSET, PGC_S_OVERRIDE);
	/* an error kept as an outcome (kommander.requests) reads alike */
	SetConfigOption("lc_messages", "C", PGC_SUSET, PGC_S_OVERRIDE);
	/* durability of an apply comes from the log, which is replayed */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);

	kmd_claim_process(&kmd_shared->apply_pid, "apply worker");
	kmd_feed_origin_setup(KMD_FEED_ORIGIN_PREFIX "apply");

	/* stalls are this process's: a new one tries every partition again */
	kmd_stall_reset();
	kmd_barrier_reset();
	kmd_shared->apply_latch = MyLatch;
	before_shmem_exit(apply_exit, 0);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "kommander apply loop",
									 ALLOCSET_DEFAULT_SIZES);
	load_applied();
	elog(LOG, "kommander apply worker started");
	last_refresh = GetCurrentTimestamp();

	for (;;)
	{
		MemoryContext old;
		volatile bool more = false;
		TimestampTz next_try = DT_NOEND;
		long		timeout = 1000;

		/*
		 * A cancel stops the command it interrupts, which is tried again;
		 * between commands there is nothing to cancel.
		 */
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* after a failed iteration, its backoff first */
		if (resume_at != 0)
		{
			long		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), resume_at);

			if (remaining > 0)
			{
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 remaining, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				continue;
			}
			resume_at = 0;
		}
		MemoryContextReset(loop_cxt);
		old = MemoryContextSwitchTo(loop_cxt);
		PG_TRY();
		{
			if (failures > 0)
				take_up();
			/* partitions that did not fit may fit now, each second */
			if (kmd_shared->n_left_out > 0 &&
				TimestampDifferenceExceeds(last_refresh, GetCurrentTimestamp(), 1000))
			{
				MemoryContext cxt = kmd_xact_begin();

				kmd_catalog_refresh();
				kmd_xact_commit(cxt);
				last_refresh = GetCurrentTimestamp();
			}
			(void) kmd_lease_orphans_rotate();
			more = kmd_images_install();

			/*
			 * An image replays the statements of kmd_ddl under the checks
			 * of their apply, which refuse temporary objects; one left in
			 * this session all the same would fail every later command's
			 * statements (a command must leave the schema empty).  A new
			 * process has none.
			 */
			if (kmd_temp_schema_in_use())
			{
				ereport(LOG,
						(errmsg("kommander: the apply worker's session holds temporary objects; the worker starts anew")));
				proc_exit(1);
			}
			more |= apply_all(&next_try);
			more |= kmd_barrier_ask_unserved();
			more |= kmd_barrier_ask_ddl();
			failures = 0;
		}
		PG_CATCH();
		{
			failures++;
			resume_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													recover(loop_cxt, failures));
			more = true;		/* the backoff above */
		}
		PG_END_TRY();
		MemoryContextSwitchTo(old);
		kmd_xact_report_stats();
		if (more)
			continue;
		if (next_try != DT_NOEND)
			timeout = Max(Min(timeout, TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
																	   next_try)), 1);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
