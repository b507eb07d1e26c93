/*-------------------------------------------------------------------------
 *
 * stats_views.c
 *	  The functions behind the views kommander.stats, kommander.latency
 *	  and kommander.peers: this node's counters and gauges, its latency
 *	  percentiles over the last minute or so, and the progress of the
 *	  members of the groups it leads, read from shared memory (stats.c).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/stats_views.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "utils/builtins.h"

#include "raft/raft.h"
#include "shmem.h"
#include "stats.h"

PG_FUNCTION_INFO_V1(kmd_stat_values);
PG_FUNCTION_INFO_V1(kmd_latency_values);
PG_FUNCTION_INFO_V1(kmd_peer_status);

/* A live partition of this node, as the views list it */
typedef struct LivePartition
{
	int32		partition_id;
	int			index;			/* in kmd_shared->partitions */
	uint64		unapplied;		/* committed here, not yet applied here */
	int32		role;
	uint64		last_index;
} LivePartition;

/* The live partitions, by id; *n says how many. */
static LivePartition *
live_partitions(int *n)
{
	LivePartition *parts = palloc(sizeof(LivePartition) * Max(kmd_shared->max_partitions, 1));

	*n = 0;
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];
		uint64		commit;
		uint64		applied;

		if (part->partition_id < 0 || part->state == KMD_PART_GONE)
			continue;
		commit = pg_atomic_read_u64(&part->commit_index);
		applied = pg_atomic_read_u64(&part->applied_index);
		parts[*n].partition_id = part->partition_id;
		parts[*n].index = i;
		parts[*n].unapplied = commit > applied ? commit - applied : 0;
		parts[*n].role = part->role;
		parts[*n].last_index = part->last_index;
		(*n)++;
	}
	LWLockRelease(kmd_shared->lock);
	return parts;
}

static void
put_stat(ReturnSetInfo *rsinfo, const char *name, int32 partition_id, uint64 value)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	values[0] = CStringGetTextDatum(name);
	if (partition_id >= 0)
		values[1] = Int32GetDatum(partition_id);
	else
		nulls[1] = true;
	values[2] = Int64GetDatum((int64) Min(value, (uint64) PG_INT64_MAX));
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * kommander.stat_values(): (name, partition_id, value), the node's rows
 * (partition_id NULL) first, then each live partition's.
 */
Datum
kmd_stat_values(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LivePartition *parts;
	int			n;
	uint64		unapplied = 0;
	uint32		depth;
	uint32		peak;

	InitMaterializedSRF(fcinfo, 0);
	if (kmd_shared == NULL)
		return (Datum) 0;
	parts = live_partitions(&n);

	for (int s = 0; s < KMD_NUM_STATS; s++)
		put_stat(rsinfo, kmd_stat_name(s), -1, kmd_stats_node_value(s));
	kmd_stats_queue(-1, -1, -1, &depth, &peak);
	put_stat(rsinfo, "queue_depth", -1, depth);
	put_stat(rsinfo, "queue_peak", -1, peak);
	for (int i = 0; i < n; i++)
		unapplied += parts[i].unapplied;
	put_stat(rsinfo, "unapplied_entries", -1, unapplied);
	for (int w = 0; w < kmd_shared->n_workers; w++)
	{
		char		name[64];

		kmd_stats_queue(w, -1, -1, &depth, &peak);
		snprintf(name, sizeof(name), "queue_depth_worker_%d", w);
		put_stat(rsinfo, name, -1, depth);
		snprintf(name, sizeof(name), "queue_peak_worker_%d", w);
		put_stat(rsinfo, name, -1, peak);
	}

	for (int i = 0; i < n; i++)
	{
		for (int s = 0; s < KMD_STAT_NODE_ONLY; s++)
			put_stat(rsinfo, kmd_stat_name(s), parts[i].partition_id,
					 kmd_stats_partition_value(parts[i].index, parts[i].partition_id, s));
		kmd_stats_queue(-1, parts[i].index, parts[i].partition_id, &depth, &peak);
		put_stat(rsinfo, "queue_depth", parts[i].partition_id, depth);
		put_stat(rsinfo, "queue_peak", parts[i].partition_id, peak);
		put_stat(rsinfo, "unapplied_entries", parts[i].partition_id, parts[i].unapplied);
	}
	return (Datum) 0;
}

static void
put_latency(ReturnSetInfo *rsinfo, KmdLatencyOp op, int index, int32 partition_id,
			bool always)
{
	KmdLatencySummary sum;
	Datum		values[7];
	bool		nulls[7] = {false, false, false, false, false, false, false};
	bool		any = kmd_stats_latency(op, index, partition_id, &sum);

	if (!any && !always)
		return;
	values[0] = CStringGetTextDatum(kmd_latency_name(op));
	if (partition_id >= 0)
		values[1] = Int32GetDatum(partition_id);
	else
		nulls[1] = true;
	values[2] = Int64GetDatum((int64) sum.count);
	values[3] = Float8GetDatum(sum.p50_ms);
	values[4] = Float8GetDatum(sum.p90_ms);
	values[5] = Float8GetDatum(sum.p99_ms);
	values[6] = Float8GetDatum(sum.max_ms);
	for (int c = 3; c < 7; c++)
		nulls[c] = !any;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * kommander.latency_values(): (operation, partition_id, count, p50_ms,
 * p90_ms, p99_ms, max_ms) over the window: a row per operation for the
 * node, whether or not it happened, then a row per operation and live
 * partition where it did.
 */
Datum
kmd_latency_values(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LivePartition *parts;
	int			n;

	InitMaterializedSRF(fcinfo, 0);
	if (kmd_shared == NULL)
		return (Datum) 0;
	parts = live_partitions(&n);
	for (int op = 0; op < KMD_NUM_LATENCY_OPS; op++)
		put_latency(rsinfo, op, -1, -1, true);
	for (int i = 0; i < n; i++)
		for (int op = 0; op < KMD_LAT_NODE_ONLY; op++)
			put_latency(rsinfo, op, parts[i].index, parts[i].partition_id, false);
	return (Datum) 0;
}

static const char *
progress_state(uint32 state)
{
	switch ((raft_progress_state) state)
	{
		case RAFT_PROGRESS_PROBE:
			return "probe";
		case RAFT_PROGRESS_REPLICATE:
			return "replicate";
		case RAFT_PROGRESS_SNAPSHOT:
			return "snapshot";
	}
	return "unknown";
}

/*
 * kommander.peer_status(): (partition_id, node_id, match_index,
 * next_index, inflight, lag, state) for every other member of each group
 * this node leads, as its Raft worker last published it.
 */
Datum
kmd_peer_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	LivePartition *parts;
	int			n;
	KmdPeerProgress peers[KMD_MAX_NODES];

	InitMaterializedSRF(fcinfo, 0);
	if (kmd_shared == NULL)
		return (Datum) 0;
	parts = live_partitions(&n);
	for (int i = 0; i < n; i++)
	{
		int			n_peers;

		if (parts[i].role != RAFT_LEADER)
			continue;
		n_peers = kmd_stats_read_peers(parts[i].index, parts[i].partition_id, peers);
		for (int p = 0; p < n_peers; p++)
		{
			Datum		values[7];
			bool		nulls[7] = {false, false, false, false, false, false, false};

			values[0] = Int32GetDatum(parts[i].partition_id);
			values[1] = Int32GetDatum(peers[p].node_id);
			values[2] = Int64GetDatum((int64) peers[p].match);
			values[3] = Int64GetDatum((int64) peers[p].next);
			values[4] = Int32GetDatum((int32) peers[p].inflight);
			values[5] = Int64GetDatum(parts[i].last_index > peers[p].match ?
									  (int64) (parts[i].last_index - peers[p].match) : 0);
			values[6] = CStringGetTextDatum(progress_state(peers[p].state));
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}
