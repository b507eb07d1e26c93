/*-------------------------------------------------------------------------
 *
 * partition.c
 *	  Elastic partitions: kmd_split, kmd_create_partitions, kmd_merge,
 *	  kmd_rebalance, and the Raft worker's finishing of a merge left
 *	  half-way.
 *
 * A split takes a new partition id from the system partition, then goes
 * into the split partition's own log, so that every node cuts at the same
 * index (apply.c does the cut).  No row moves: every node holds every row.
 * A merge freezes the right partition in its own log, then commits in the
 * left partition's log; if the caller goes away in between, the leader of
 * the left partition commits it.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/partition.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "balance.h"
#include "command.h"
#include "errcodes.h"
#include "guc.h"
#include "request.h"
#include "shmem.h"
#include "worker.h"

PG_FUNCTION_INFO_V1(kmd_split);
PG_FUNCTION_INFO_V1(kmd_create_partitions);

/* A user partition's routing state, copied from shared memory. */
typedef struct PartView
{
	int32		id;
	int32		state;
	int64		lo;
	int64		hi;				/* inclusive */
	uint64		generation;
	uint64		frozen_at;		/* the freeze entry's index, when frozen */
} PartView;

static bool
part_view(int32 partition_id, PartView *v)
{
	KmdPartition *part;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(partition_id);
	if (part != NULL)
	{
		v->id = part->partition_id;
		v->state = part->state;
		v->lo = part->lo;
		v->hi = part->hi;
		v->generation = part->generation;
		v->frozen_at = part->frozen_at;
	}
	LWLockRelease(kmd_shared->lock);
	return part != NULL;
}

/*
 * Refuse a split this node has no room for: every partition it has holds
 * an entry of kommander.max_partitions, and a merged-away one holds its
 * entry until its group has stopped (kmd_partition_add).
 */
static void
no_room(int wanted)
{
	int			room = kmd_partition_room();

	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg_plural("no room for %d more partition on this node",
						   "no room for %d more partitions on this node",
						   wanted, wanted),
			 errdetail("kommander.max_partitions is %d and %d entries are free; a merged-away partition keeps its entry until its group has stopped.",
					   kmd_shared->max_partitions, room),
			 errhint("Raise kommander.max_partitions on every node (a restart each).")));
}

/* Split `partition_id' so that a new partition starts at hash `at'. */
static int32
split_partition(int32 partition_id, int64 at, bool at_given)
{
	PartView	v;
	KmdCommand	cmd;
	KmdOutcome	out;
	int32		new_id;
	char		id_text[32];
	char		at_text[32];

	if (partition_id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the system partition cannot be split")));
	if (!part_view(partition_id, &v) || v.state != KMD_PART_ACTIVE)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partition %d is not an active partition", partition_id),
				 errhint("See kommander.partitions.")));
	if (!at_given)
	{
		if (v.lo == v.hi)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("partition %d owns a single hash and cannot be split", partition_id)));
		/*
		 * The midpoint rounded down, without overflow (the distance fits in
		 * uint64): the right half starts after it.
		 */
		at = v.lo + (int64) (((uint64) v.hi - (uint64) v.lo) / 2) + 1;
	}
	if (at <= v.lo || at > v.hi)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("split point " INT64_FORMAT " is not inside partition %d", at, partition_id),
				 errdetail("Partition %d owns hashes from " INT64_FORMAT " to " INT64_FORMAT
						   "; the split point must be above the first.",
						   partition_id, v.lo, v.hi)));

	if (kmd_partition_room() < 1)
		no_room(1);

	/* a cluster-wide unique id, from the system partition */
	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = KMD_CMD_ALLOC_PARTITION;
	cmd.sys_index = kmd_partition_applied(0);
	kmd_propose_command(0, &cmd, &out);
	new_id = out.result ? atoi(out.result) : 0;
	if (new_id <= 0)
		elog(ERROR, "the system partition handed out no partition id");

	/* the cut itself, in the partition's log, fenced by its generation */
	snprintf(id_text, sizeof(id_text), "%d", new_id);
	snprintf(at_text, sizeof(at_text), INT64_FORMAT, at);
	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = KMD_CMD_SPLIT;
	cmd.generation = v.generation;
	cmd.sys_index = kmd_partition_applied(0);
	cmd.n_args = 2;
	cmd.args[0] = id_text;
	cmd.args[1] = at_text;
	kmd_propose_command(partition_id, &cmd, &out);
	return new_id;
}

Datum
kmd_split(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("partition_id must not be null")));
	kmd_require_member();
	PG_RETURN_INT32(split_partition(PG_GETARG_INT32(0),
									PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1),
									!PG_ARGISNULL(1)));
}

/* The active user partition owning the widest range, and how many there are. */
static int32
widest_partition(int *count)
{
	int32		best = -1;
	double		best_width = -1;

	*count = 0;
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];
		double		width;

		if (part->partition_id <= 0 || part->state != KMD_PART_ACTIVE)
			continue;
		(*count)++;
		width = (double) part->hi - (double) part->lo;
		if (width > best_width)
		{
			best_width = width;
			best = part->partition_id;
		}
	}
	LWLockRelease(kmd_shared->lock);
	return best;
}

Datum
kmd_create_partitions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		n;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("n must not be null")));
	n = PG_GETARG_INT32(0);
	kmd_require_member();
	/* more than this node has room for: 53400 below, as kmd_split's */
	if (n < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("n must be at least 1")));

	/* a set of a scalar: the tuple descriptor is ours to make */
	{
		TupleDesc	desc = CreateTemplateTupleDesc(1);
		MemoryContext old;

		if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
			!(rsinfo->allowedModes & SFRM_Materialize))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("kmd_create_partitions must be called where a set is accepted")));
		TupleDescInitEntry(desc, (AttrNumber) 1, "kmd_create_partitions", INT4OID, -1, 0);
		old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
		rsinfo->setDesc = CreateTupleDescCopy(desc);
		rsinfo->setResult = tuplestore_begin_heap(true, false, work_mem);
		rsinfo->returnMode = SFRM_Materialize;
		MemoryContextSwitchTo(old);
	}
	{
		int			count;

		(void) widest_partition(&count);
		if (n - count > kmd_partition_room())
			no_room(n - count);
	}
	for (;;)
	{
		int			count;
		int32		widest = widest_partition(&count);
		Datum		value;
		bool		isnull = false;

		if (count >= n || widest < 0)
			break;
		value = Int32GetDatum(split_partition(widest, 0, false));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, &value, &isnull);
	}
	return (Datum) 0;
}

PG_FUNCTION_INFO_V1(kmd_merge);
PG_FUNCTION_INFO_V1(kmd_rebalance);

/*
 * May the merge of `right' into `left' be proposed now?  The host's rule
 * (host_merge_ready) on the two configurations and the roster as this
 * node has them.
 */
static bool
merge_ready(int32 left, int32 right)
{
	host_members l;
	host_members r;
	host_roster ro;

	if (!kmd_host_members(left, &l) || !kmd_host_members(right, &r))
		return false;
	kmd_host_roster(&ro);
	return host_merge_ready(&l, &r, &ro);
}

/*
 * The partition that `right' was merged into, as this node's map tells
 * (a tombstone), or 0.  Read with the latest snapshot: a merge applied
 * while the caller waited counts, in any isolation level.
 */
static int32
merged_into(int32 right)
{
	Oid			type = INT4OID;
	Datum		value = Int32GetDatum(right);
	SPIPlanPtr	plan;
	int32		into = 0;
	bool		isnull;

	SPI_connect();
	plan = SPI_prepare("SELECT merged_into FROM kommander.partition_map "
					   "WHERE partition_id = $1 AND state = 'gone'", 1, &type);
	if (plan == NULL ||
		SPI_execute_snapshot(plan, &value, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.partition_map");
	if (SPI_processed == 1)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			into = DatumGetInt32(d);
	}
	SPI_finish();
	return into;
}

/* The merge command: `left' at `generation' takes `right', frozen at `freeze'. */
static void
merge_command(KmdCommand *cmd, uint64 generation, int32 right, uint64 freeze)
{
	memset(cmd, 0, sizeof(*cmd));
	cmd->kind = KMD_CMD_MERGE;
	cmd->generation = generation;
	cmd->sys_index = kmd_partition_applied(0);
	cmd->proposed_at = GetCurrentTimestamp();
	cmd->n_args = 2;
	cmd->args[0] = psprintf("%d", right);
	cmd->args[1] = psprintf(UINT64_FORMAT, freeze);
}

Datum
kmd_merge(PG_FUNCTION_ARGS)
{
	int32		left;
	int32		right;
	PartView	l;
	PartView	r;
	KmdCommand	cmd;
	KmdOutcome	out;
	uint64		freeze;
	TimestampTz deadline;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("left_id and right_id must not be null")));
	left = PG_GETARG_INT32(0);
	right = PG_GETARG_INT32(1);
	kmd_require_member();
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kmd_propose_timeout);
	if (left <= 0 || right <= 0 || left == right)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("merge needs two different user partitions")));
	/* the same merge again, after it completed: done */
	if (merged_into(right) == left)
		PG_RETURN_INT32(left);

	/*
	 * Both partitions as they stand: the same merge asked again through a
	 * node that has not applied the freeze of the first try yet would
	 * freeze the right one a second time, which fails, and one that has
	 * not applied the merge itself (the cluster finished it) would propose
	 * it again at the left one's old generation.  The left one first: its
	 * merge, applied here, needs the right one to be applied here up to
	 * its freeze, and the right one's group stops once it is.
	 */
	if (part_view(left, &l) && part_view(right, &r) && r.state != KMD_PART_GONE)
	{
		(void) kmd_partition_barrier(left, deadline);
		if (merged_into(right) == left)
			PG_RETURN_INT32(left);
		(void) kmd_partition_barrier(right, deadline);
		if (merged_into(right) == left)
			PG_RETURN_INT32(left);
	}
	if (!part_view(left, &l) || l.state != KMD_PART_ACTIVE)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partition %d is not an active partition", left)));
	if (!part_view(right, &r) || r.state == KMD_PART_GONE)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partition %d does not exist", right)));
	if (l.hi == PG_INT64_MAX || l.hi + 1 != r.lo)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("partitions %d and %d are not adjacent", left, right),
				 errhint("The right partition's range must start where the left one's ends.")));

	/* 1. freeze the right partition: its later commands fail with K0004 */
	if (r.state == KMD_PART_ACTIVE)
	{
		memset(&cmd, 0, sizeof(cmd));
		cmd.kind = KMD_CMD_FREEZE;
		cmd.generation = r.generation;
		cmd.sys_index = kmd_partition_applied(0);
		kmd_propose_command(right, &cmd, &out);
		freeze = out.index;
	}
	else
		freeze = r.frozen_at;	/* an earlier merge stopped half-way */

	/*
	 * 2. the merge, applied everywhere only once the right one is drained,
	 * and proposed once every member of the left group is in the right one
	 */
	ConditionVariablePrepareToSleep(&kmd_shared->leader_cv);
	while (!merge_ready(left, right))
	{
		/* another call, or the cluster, finished it meanwhile */
		if (merged_into(right) == left)
		{
			ConditionVariableCancelSleep();
			PG_RETURN_INT32(left);
		}
		if (GetCurrentTimestamp() >= deadline)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_KMD_NO_QUORUM),
					 errmsg("partitions %d and %d do not have the same members yet", left, right),
					 errdetail("Partition %d is frozen; the merge waits until every member of partition %d is a member of partition %d that the roster keeps.",
							   right, left, right),
					 errhint("The cluster finishes the merge by itself; run kmd_merge() again to wait for it.")));
		}
		(void) ConditionVariableTimedSleep(&kmd_shared->leader_cv, 100, PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
	ConditionVariableCancelSleep();
	if (merged_into(right) == left)
		PG_RETURN_INT32(left);
	merge_command(&cmd, l.generation, right, freeze);
	kmd_propose_command(left, &cmd, &out);
	PG_RETURN_INT32(left);
}

/*
 * Called by the Raft worker on a tick, for a user partition it leads.  If
 * the right neighbour has stayed frozen for a whole propose timeout (the
 * kmd_merge that froze it timed out, was cancelled, or its node crashed),
 * propose the merge here (host_merge_due, host_merge_ready).  A second
 * merge of the same pair is refused at apply (the left generation moved
 * on), so racing a live kmd_merge or another try is harmless; nobody waits
 * for the outcome.
 */
void
kmd_finish_merge(KmdGroup *g, TimestampTz now)
{
	KmdPartition *left = g->part;
	int32		right = 0;
	uint64		freeze = 0;
	uint64		generation = 0;
	KmdCommand	cmd;
	char	   *data;
	uint32		len;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	if (left != NULL && left->partition_id > 0 && left->state == KMD_PART_ACTIVE &&
		left->hi != PG_INT64_MAX)
	{
		for (int i = 0; i < kmd_shared->partitions_used; i++)
		{
			KmdPartition *p = &kmd_shared->partitions[i];

			if (p->partition_id > 0 && p->state == KMD_PART_FROZEN &&
				p->lo == left->hi + 1 && p->frozen_at > 0)
			{
				right = p->partition_id;
				freeze = p->frozen_at;
			}
		}
		generation = left->generation;
	}
	LWLockRelease(kmd_shared->lock);

	if (!host_merge_due(g->r, &g->merge, right, kmd_host_ms(now), kmd_propose_timeout,
						kmd_partition_applied(g->partition_id)) ||
		!merge_ready(g->partition_id, right))
		return;
	merge_command(&cmd, generation, right, freeze);
	cmd.origin_node = kmd_shared->local_node_id;
	cmd.origin_slot = -1;
	data = kmd_command_encode(&cmd, &len);
	if (raft_propose(g->r, data, len, &g->merge.index, &g->merge.term) == RAFT_OK)
		ereport(LOG,
				(errmsg("kommander: finishing the merge of partition %d into partition %d",
						right, g->partition_id),
				 errdetail("Partition %d has been frozen for longer than kommander.propose_timeout.",
						   right)));
}

/*
 * Spread the leaders of the user partitions evenly over the voters: ask the
 * leaders of over-loaded nodes to hand partitions to the least loaded
 * voters.  Returns how many transfers it asked for.
 */
Datum
kmd_rebalance(PG_FUNCTION_ARGS)
{
	host_load	l;
	int32	   *ids;
	int32	   *leaders;
	int			n = 0;
	int			moves = 0;
	bool		unanswered[KMD_MAX_NODES] = {false};

	kmd_require_member();
	kmd_leader_load(&l);
	ids = palloc(sizeof(int32) * kmd_shared->max_partitions);
	leaders = palloc(sizeof(int32) * kmd_shared->max_partitions);
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];

		if (part->partition_id > 0 && part->state == KMD_PART_ACTIVE && part->leader != 0)
		{
			ids[n] = part->partition_id;
			leaders[n++] = part->leader;
		}
	}
	LWLockRelease(kmd_shared->lock);

	for (int i = 0; i < n; i++)
	{
		int			from = host_load_index(&l, (raft_id) leaders[i]);
		int			to = host_balance_to(&l, (raft_id) leaders[i]);
		KmdOutcome	out;

		if (to < 0 || unanswered[from])
			continue;
		kmd_request_outcome(KMD_REQ_TRANSFER, ids[i], (int64) l.voters[to], NULL, &out);
		if (strcmp(out.sqlstate, "00000") != 0)
		{
			/*
			 * The target may lag: the next call retries.  A leader that did
			 * not answer in time is left alone for the rest of this call.
			 */
			if (strcmp(out.sqlstate, "K0002") == 0 || strcmp(out.sqlstate, "K0003") == 0)
				unanswered[from] = true;
			continue;
		}
		l.load[from]--;
		l.load[to]++;
		moves++;
	}
	PG_RETURN_INT32(moves);
}
