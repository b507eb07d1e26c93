/*-------------------------------------------------------------------------
 *
 * stats.c
 *	  Counters, gauges and latency histograms in shared memory, and the
 *	  bounded proposal queues: the hot path's side of kommander.stats,
 *	  kommander.latency and kommander.peers (stats_views.c reads them).
 *
 * Lock protocol: none on the hot path.  Counters and histogram buckets are
 * atomics that any process adds to.  A partition's figures live at the
 * index of its entry in kmd_shared->partitions; `owner' says whose they
 * are, and the first process that counts for a partition that took over
 * an entry (a merged-away one's) starts its figures from zero, under
 * kmd_shared->lock (or from the partition's own Raft worker).  Each
 * process remembers where a partition's figures are, so that it takes
 * kmd_shared->lock only the first time it counts for a partition.
 *
 * Latency: each operation has a histogram of fixed log-scale buckets (two
 * per power of two, from 16 us to about 134 s) per slice of
 * LAT_SLICE_SECS seconds; the current and the previous slice make the
 * window the views read.  A slice is cleared by the first process that
 * records into it once its time has come, so a sample that races with the
 * clearing may be lost: the figures are estimates.
 *
 * Everything starts from zero when the server starts.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/stats.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "errcodes.h"
#include "events.h"
#include "guc.h"
#include "raft/raft.h"
#include "stats.h"

#define LAT_BUCKETS 48
#define LAT_SLICES 2
#define LAT_SLICE_SECS 30

typedef struct HistSlice
{
	pg_atomic_uint64 epoch;		/* which slice of time it holds */
	pg_atomic_uint64 max_us;
	pg_atomic_uint32 buckets[LAT_BUCKETS];
} HistSlice;

typedef struct Hist
{
	HistSlice	slices[LAT_SLICES];
} Hist;

/* One partition's figures, at the index of its entry in kmd_shared->partitions */
typedef struct PartStats
{
	pg_atomic_uint32 owner;		/* partition_id + 1 whose figures these are */
	pg_atomic_uint32 queue_depth;	/* never cleared: enter and leave pair */
	pg_atomic_uint32 queue_peak;
	pg_atomic_uint64 counters[KMD_STAT_NODE_ONLY];
	Hist		hist[KMD_LAT_NODE_ONLY];

	/* written by the partition's Raft worker only */
	uint64		sample_index;	/* proposal being timed to its commit, or 0 */
	TimestampTz sample_at;
	TimestampTz leaderless_since;	/* 0: a leader is known, or not timed */
	pg_atomic_uint32 peers_seq; /* odd while the worker writes peers[] */
	uint32		n_peers;
	KmdPeerProgress peers[KMD_MAX_NODES];
} PartStats;

typedef struct StatsShared
{
	pg_atomic_uint64 counters[KMD_NUM_STATS];
	Hist		hist[KMD_NUM_LATENCY_OPS];
	pg_atomic_uint32 queue_depth;
	pg_atomic_uint32 queue_peak;
	pg_atomic_uint32 worker_depth[KMD_MAX_WORKERS];
	pg_atomic_uint32 worker_peak[KMD_MAX_WORKERS];
	int			max_partitions;
	PartStats	parts[FLEXIBLE_ARRAY_MEMBER];
} StatsShared;

static StatsShared *stats = NULL;

static const char *const stat_names[KMD_NUM_STATS] = {
	[KMD_STAT_PROPOSALS] = "proposals",
	[KMD_STAT_FORWARDED] = "proposals_forwarded",
	[KMD_STAT_REJECTED_FENCED] = "proposals_rejected_fenced",
	[KMD_STAT_REJECTED_FROZEN] = "proposals_rejected_frozen",
	[KMD_STAT_REJECTED_NO_QUORUM] = "proposals_rejected_no_quorum",
	[KMD_STAT_REJECTED_OVERLOADED] = "proposals_rejected_overloaded",
	[KMD_STAT_OUTCOME_UNKNOWN] = "proposals_outcome_unknown",
	[KMD_STAT_COMMITS] = "commits",
	[KMD_STAT_APPLIES] = "applies",
	[KMD_STAT_APPLY_ERRORS] = "apply_errors",
	[KMD_STAT_ELECTIONS_STARTED] = "elections_started",
	[KMD_STAT_ELECTIONS_WON] = "elections_won",
	[KMD_STAT_PREVOTES] = "prevotes_started",
	[KMD_STAT_LEADER_CHANGES] = "leader_changes",
	[KMD_STAT_LOG_ENTRIES] = "log_entries_appended",
	[KMD_STAT_COMPACTIONS] = "log_compactions",
	[KMD_STAT_IMAGES_INSTALLED] = "images_installed",
	[KMD_STAT_IMAGES_FAILED] = "images_failed",
	[KMD_STAT_STALE_COMPLETIONS] = "stale_completions",
	[KMD_STAT_HEARTBEATS_SENT] = "heartbeats_sent",
	[KMD_STAT_MESSAGES_SENT] = "messages_sent",
	[KMD_STAT_MESSAGES_RECEIVED] = "messages_received",
	[KMD_STAT_BATCHES_SENT] = "batches_sent",
	[KMD_STAT_BATCHES_RECEIVED] = "batches_received",
	[KMD_STAT_BYTES_SENT] = "bytes_sent",
	[KMD_STAT_BYTES_RECEIVED] = "bytes_received",
	[KMD_STAT_BATCHES_REFUSED] = "batches_refused",
	[KMD_STAT_BATCHES_DROPPED] = "batches_dropped",
	[KMD_STAT_LOG_APPENDS] = "log_append_batches",
	[KMD_STAT_WAL_FLUSHES] = "wal_flushes",
	[KMD_STAT_COMPACTION_PASSES] = "compaction_passes",
	[KMD_STAT_SNAPSHOTS_SENT] = "snapshots_sent",
	[KMD_STAT_IMAGES_SENT] = "images_sent",
	[KMD_STAT_BALANCER_MOVES] = "balancer_moves",
	[KMD_STAT_STALL_HANDOFFS] = "stall_handoffs",
	[KMD_STAT_DIRECT_WRITES] = "rows_written_directly",
};

static const char *const latency_names[KMD_NUM_LATENCY_OPS] = {
	[KMD_LAT_PROPOSE] = "propose",
	[KMD_LAT_COMMIT] = "commit",
	[KMD_LAT_APPLY] = "apply",
	[KMD_LAT_ELECTION] = "election",
	[KMD_LAT_LOG_APPEND] = "log_append",
	[KMD_LAT_PEER_ROUND_TRIP] = "peer_round_trip",
};

const char *
kmd_stat_name(KmdStat stat)
{
	return stat_names[stat];
}

const char *
kmd_latency_name(KmdLatencyOp op)
{
	return latency_names[op];
}

/* ------------------------------------------------------------------------
 * Shared memory
 * ------------------------------------------------------------------------
 */
Size
kmd_stats_shmem_size(void)
{
	return add_size(offsetof(StatsShared, parts),
					mul_size(kmd_max_partitions, sizeof(PartStats)));
}

static void
hist_init(Hist *h)
{
	for (int s = 0; s < LAT_SLICES; s++)
	{
		pg_atomic_init_u64(&h->slices[s].epoch, 0);
		pg_atomic_init_u64(&h->slices[s].max_us, 0);
		for (int b = 0; b < LAT_BUCKETS; b++)
			pg_atomic_init_u32(&h->slices[s].buckets[b], 0);
	}
}

/* Called from the shmem_startup_hook, with AddinShmemInitLock held. */
void
kmd_stats_shmem_startup(void)
{
	bool		found;

	stats = ShmemInitStruct("kommander stats", kmd_stats_shmem_size(), &found);
	if (found)
		return;
	for (int i = 0; i < KMD_NUM_STATS; i++)
		pg_atomic_init_u64(&stats->counters[i], 0);
	for (int i = 0; i < KMD_NUM_LATENCY_OPS; i++)
		hist_init(&stats->hist[i]);
	pg_atomic_init_u32(&stats->queue_depth, 0);
	pg_atomic_init_u32(&stats->queue_peak, 0);
	for (int i = 0; i < KMD_MAX_WORKERS; i++)
	{
		pg_atomic_init_u32(&stats->worker_depth[i], 0);
		pg_atomic_init_u32(&stats->worker_peak[i], 0);
	}
	stats->max_partitions = kmd_max_partitions;
	for (int p = 0; p < kmd_max_partitions; p++)
	{
		PartStats  *ps = &stats->parts[p];

		pg_atomic_init_u32(&ps->owner, 0);
		pg_atomic_init_u32(&ps->queue_depth, 0);
		pg_atomic_init_u32(&ps->queue_peak, 0);
		for (int i = 0; i < KMD_STAT_NODE_ONLY; i++)
			pg_atomic_init_u64(&ps->counters[i], 0);
		for (int i = 0; i < KMD_LAT_NODE_ONLY; i++)
			hist_init(&ps->hist[i]);
		ps->sample_index = 0;
		ps->sample_at = 0;
		ps->leaderless_since = 0;
		pg_atomic_init_u32(&ps->peers_seq, 0);
		ps->n_peers = 0;
	}
}

/* ------------------------------------------------------------------------
 * Where a partition's figures are
 * ------------------------------------------------------------------------
 */
#define CACHE_SIZE 1024

typedef struct CacheEntry
{
	int32		partition_id;	/* -1: empty */
	int32		index;
} CacheEntry;

static CacheEntry cache[CACHE_SIZE];
static bool cache_ready = false;

static void
hist_clear(Hist *h)
{
	for (int s = 0; s < LAT_SLICES; s++)
	{
		pg_atomic_write_u64(&h->slices[s].epoch, 0);
		pg_atomic_write_u64(&h->slices[s].max_us, 0);
		for (int b = 0; b < LAT_BUCKETS; b++)
			pg_atomic_write_u32(&h->slices[s].buckets[b], 0);
	}
}

/* `owner' while a process clears the figures for their new partition */
#define CLAIMING PG_UINT32_MAX

/*
 * The figures at `index' become those of `partition_id', from zero.  The
 * entry must be that partition's for as long as this runs (the caller
 * holds kmd_shared->lock, or runs the partition's group): a process that
 * found the index for a partition before its entry was taken over would
 * otherwise clear the new partition's figures and take them back.  Of two
 * processes counting first for a partition at once, one clears; the other
 * waits for it, or its count would be cleared.
 */
static PartStats *
claim(int index, int32 partition_id)
{
	PartStats  *ps = &stats->parts[index];
	uint32		old;

	for (;;)
	{
		old = pg_atomic_read_u32(&ps->owner);
		if (old == (uint32) partition_id + 1)
			return ps;
		if (old != CLAIMING && pg_atomic_compare_exchange_u32(&ps->owner, &old, CLAIMING))
			break;
		pg_spin_delay();
	}
	for (int i = 0; i < KMD_STAT_NODE_ONLY; i++)
		pg_atomic_write_u64(&ps->counters[i], 0);
	for (int i = 0; i < KMD_LAT_NODE_ONLY; i++)
		hist_clear(&ps->hist[i]);
	pg_atomic_write_u32(&ps->queue_peak, pg_atomic_read_u32(&ps->queue_depth));
	ps->sample_index = 0;
	ps->leaderless_since = 0;
	ps->n_peers = 0;
	pg_write_barrier();
	pg_atomic_write_u32(&ps->owner, (uint32) partition_id + 1);
	return ps;
}

/* The index of `partition_id''s figures, or -1 when this node has no entry. */
static int
part_index(int32 partition_id)
{
	CacheEntry *c;
	KmdPartition *part;
	bool		locked;
	int			index = -1;

	if (stats == NULL || kmd_shared == NULL || partition_id < 0)
		return -1;
	if (!cache_ready)
	{
		for (int i = 0; i < CACHE_SIZE; i++)
			cache[i].partition_id = -1;
		cache_ready = true;
	}
	c = &cache[partition_id % CACHE_SIZE];
	if (c->partition_id == partition_id &&
		pg_atomic_read_u32(&stats->parts[c->index].owner) == (uint32) partition_id + 1)
		return c->index;

	/* the callers that observe groups may hold the lock already */
	locked = !LWLockHeldByMe(kmd_shared->lock);
	if (locked)
		LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(partition_id);
	if (part != NULL)
		index = (int) (part - kmd_shared->partitions);
	/* under the lock: the entry stays the partition's meanwhile */
	if (index >= 0 && index < stats->max_partitions)
		(void) claim(index, partition_id);
	else
		index = -1;
	if (locked)
		LWLockRelease(kmd_shared->lock);
	if (index < 0)
		return -1;
	c->partition_id = partition_id;
	c->index = index;
	return index;
}

/* ------------------------------------------------------------------------
 * Counters
 * ------------------------------------------------------------------------
 */
void
kmd_stat_add(KmdStat stat, int32 partition_id, uint64 n)
{
	int			index;

	if (stats == NULL || n == 0)
		return;
	pg_atomic_fetch_add_u64(&stats->counters[stat], n);
	if (stat < KMD_STAT_NODE_ONLY && (index = part_index(partition_id)) >= 0)
		pg_atomic_fetch_add_u64(&stats->parts[index].counters[stat], n);
}

uint64
kmd_stats_node_value(KmdStat stat)
{
	return stats != NULL ? pg_atomic_read_u64(&stats->counters[stat]) : 0;
}

uint64
kmd_stats_partition_value(int index, int32 partition_id, KmdStat stat)
{
	PartStats  *ps;

	if (stats == NULL || index < 0 || index >= stats->max_partitions ||
		stat >= KMD_STAT_NODE_ONLY)
		return 0;
	ps = &stats->parts[index];
	if (pg_atomic_read_u32(&ps->owner) != (uint32) partition_id + 1)
		return 0;
	return pg_atomic_read_u64(&ps->counters[stat]);
}

/* ------------------------------------------------------------------------
 * Latency histograms
 * ------------------------------------------------------------------------
 */

/* Two buckets per power of two: [2^m, 1.5 * 2^m) and [1.5 * 2^m, 2^(m+1)) */
static int
bucket_of(uint64 us)
{
	int			m;

	if (us < 16)
		return 0;
	m = pg_leftmost_one_pos64(us);
	if (m >= 27)
		return LAT_BUCKETS - 1;
	return 1 + 2 * (m - 4) + (int) ((us >> (m - 1)) & 1);
}

/* The middle of a bucket, in microseconds (the last one has none). */
static double
bucket_middle(int b)
{
	int			m;
	double		base;

	if (b == 0)
		return 8.0;
	m = 4 + (b - 1) / 2;
	base = (double) (UINT64CONST(1) << m);
	return (b - 1) % 2 == 0 ? base * 1.25 : base * 1.75;
}

static uint64
epoch_of(TimestampTz now)
{
	return (uint64) (now / ((TimestampTz) LAT_SLICE_SECS * USECS_PER_SEC));
}

static void
hist_add(Hist *h, uint64 epoch, uint64 us)
{
	HistSlice  *s = &h->slices[epoch % LAT_SLICES];
	uint64		e = pg_atomic_read_u64(&s->epoch);
	uint64		max;

	if (e != epoch)
	{
		if (e > epoch)
			return;				/* a late sample: its slice is gone */
		if (pg_atomic_compare_exchange_u64(&s->epoch, &e, epoch))
		{
			pg_atomic_write_u64(&s->max_us, 0);
			for (int b = 0; b < LAT_BUCKETS; b++)
				pg_atomic_write_u32(&s->buckets[b], 0);
		}
	}
	pg_atomic_fetch_add_u32(&s->buckets[bucket_of(us)], 1);
	max = pg_atomic_read_u64(&s->max_us);
	while (us > max && !pg_atomic_compare_exchange_u64(&s->max_us, &max, us))
		;
}

static void
record_at(KmdLatencyOp op, int32 partition_id, int64 micros, TimestampTz now)
{
	uint64		epoch = epoch_of(now);
	uint64		us = micros > 0 ? (uint64) micros : 0;
	int			index;

	if (stats == NULL)
		return;
	hist_add(&stats->hist[op], epoch, us);
	if (op < KMD_LAT_NODE_ONLY && (index = part_index(partition_id)) >= 0)
		hist_add(&stats->parts[index].hist[op], epoch, us);
}

void
kmd_latency_record(KmdLatencyOp op, int32 partition_id, int64 micros)
{
	record_at(op, partition_id, micros, GetCurrentTimestamp());
}

void
kmd_latency_since(KmdLatencyOp op, int32 partition_id, TimestampTz start)
{
	TimestampTz now = GetCurrentTimestamp();

	record_at(op, partition_id, now - start, now);
}

bool
kmd_stats_latency(KmdLatencyOp op, int index, int32 partition_id,
				  KmdLatencySummary *out)
{
	Hist	   *h;
	uint64		counts[LAT_BUCKETS] = {0};
	uint64		max_us = 0;
	uint64		now_epoch = epoch_of(GetCurrentTimestamp());
	double		qs[3] = {0.5, 0.9, 0.99};
	double	   *outs[3] = {&out->p50_ms, &out->p90_ms, &out->p99_ms};

	memset(out, 0, sizeof(*out));
	if (stats == NULL)
		return false;
	if (index < 0)
		h = &stats->hist[op];
	else
	{
		if (op >= KMD_LAT_NODE_ONLY || index >= stats->max_partitions ||
			pg_atomic_read_u32(&stats->parts[index].owner) != (uint32) partition_id + 1)
			return false;
		h = &stats->parts[index].hist[op];
	}
	for (int s = 0; s < LAT_SLICES; s++)
	{
		HistSlice  *sl = &h->slices[s];
		uint64		e = pg_atomic_read_u64(&sl->epoch);

		if (e == 0 || e + LAT_SLICES <= now_epoch || e > now_epoch)
			continue;
		for (int b = 0; b < LAT_BUCKETS; b++)
		{
			uint32		c = pg_atomic_read_u32(&sl->buckets[b]);

			counts[b] += c;
			out->count += c;
		}
		max_us = Max(max_us, pg_atomic_read_u64(&sl->max_us));
	}
	if (out->count == 0)
		return false;
	for (int q = 0; q < 3; q++)
	{
		uint64		rank = (uint64) ceil(qs[q] * (double) out->count);
		uint64		seen = 0;
		double		us = (double) max_us;

		for (int b = 0; b < LAT_BUCKETS; b++)
		{
			seen += counts[b];
			if (seen >= rank)
			{
				if (b < LAT_BUCKETS - 1)
					us = Min(bucket_middle(b), (double) max_us);
				break;
			}
		}
		*outs[q] = us / 1000.0;
	}
	out->max_ms = (double) max_us / 1000.0;
	return true;
}

/* ------------------------------------------------------------------------
 * Proposal queues
 * ------------------------------------------------------------------------
 */
static void
raise_peak(pg_atomic_uint32 *peak, uint32 depth)
{
	uint32		p = pg_atomic_read_u32(peak);

	while (depth > p && !pg_atomic_compare_exchange_u32(peak, &p, depth))
		;
}

int
kmd_queue_enter(int32 partition_id)
{
	int			index = part_index(partition_id);
	int			worker = kmd_worker_for_partition(partition_id);
	uint32		depth;

	if (stats == NULL)
		return -1;
	if (index >= 0)
	{
		PartStats  *ps = &stats->parts[index];

		depth = pg_atomic_add_fetch_u32(&ps->queue_depth, 1);
		if (depth > (uint32) kmd_max_queued_proposals)
		{
			pg_atomic_fetch_sub_u32(&ps->queue_depth, 1);
			kmd_stat_add(KMD_STAT_REJECTED_OVERLOADED, partition_id, 1);
			ereport(ERROR,
					(errcode(ERRCODE_KMD_OVERLOADED),
					 errmsg("partition %d is overloaded, retry later", partition_id),
					 errdetail("%d proposals of this node already wait for it (kommander.max_queued_proposals).",
							   kmd_max_queued_proposals),
					 errhint("Retry after a pause, or propose less at once.")));
		}
		raise_peak(&ps->queue_peak, depth);
	}
	raise_peak(&stats->queue_peak, pg_atomic_add_fetch_u32(&stats->queue_depth, 1));
	raise_peak(&stats->worker_peak[worker],
			   pg_atomic_add_fetch_u32(&stats->worker_depth[worker], 1));
	return index;
}

void
kmd_queue_leave(int32 partition_id, int ticket)
{
	if (stats == NULL)
		return;
	if (ticket >= 0 && ticket < stats->max_partitions)
		pg_atomic_fetch_sub_u32(&stats->parts[ticket].queue_depth, 1);
	pg_atomic_fetch_sub_u32(&stats->queue_depth, 1);
	pg_atomic_fetch_sub_u32(&stats->worker_depth[kmd_worker_for_partition(partition_id)], 1);
}

void
kmd_stats_queue(int worker, int index, int32 partition_id, uint32 *depth, uint32 *peak)
{
	*depth = *peak = 0;
	if (stats == NULL)
		return;
	if (index >= 0)
	{
		PartStats  *ps = &stats->parts[index];

		if (index >= stats->max_partitions ||
			pg_atomic_read_u32(&ps->owner) != (uint32) partition_id + 1)
			return;
		*depth = pg_atomic_read_u32(&ps->queue_depth);
		*peak = pg_atomic_read_u32(&ps->queue_peak);
	}
	else if (worker >= 0)
	{
		*depth = pg_atomic_read_u32(&stats->worker_depth[worker]);
		*peak = pg_atomic_read_u32(&stats->worker_peak[worker]);
	}
	else
	{
		*depth = pg_atomic_read_u32(&stats->queue_depth);
		*peak = pg_atomic_read_u32(&stats->queue_peak);
	}
}

/* ------------------------------------------------------------------------
 * The Raft worker's observations
 * ------------------------------------------------------------------------
 */
static PartStats *
part_stats_of(KmdPartition *part, int32 partition_id)
{
	int			index;

	if (stats == NULL || kmd_shared == NULL)
		return NULL;
	index = (int) (part - kmd_shared->partitions);
	if (index < 0 || index >= stats->max_partitions)
		return NULL;
	return claim(index, partition_id);
}

void
kmd_stats_group_changed(KmdPartition *part, int32 partition_id, int old_role,
						int new_role, int32 old_leader, int32 new_leader,
						uint64 old_term, uint64 new_term)
{
	PartStats  *ps = part_stats_of(part, partition_id);
	TimestampTz now;

	if (ps == NULL)
		return;
	now = GetCurrentTimestamp();
	/* a campaign: a candidate in a new term (seen as one, or won at once) */
	if ((new_role == RAFT_CANDIDATE && (old_role != RAFT_CANDIDATE || new_term > old_term)) ||
		(new_role == RAFT_LEADER && old_role != RAFT_LEADER &&
		 old_role != RAFT_CANDIDATE && new_term > old_term))
		kmd_stat_add(KMD_STAT_ELECTIONS_STARTED, partition_id, 1);
	if (new_role == RAFT_LEADER && old_role != RAFT_LEADER)
		kmd_stat_add(KMD_STAT_ELECTIONS_WON, partition_id, 1);
	if (new_role != RAFT_LEADER)
		ps->sample_index = 0;

	/*
	 * An election, as this node sees it: from when its running group knows
	 * no leader (it campaigns, or heard of a new term) to when it knows one.
	 */
	if (old_role >= 0 && ps->leaderless_since == 0 &&
		(new_leader == 0 || new_role == RAFT_PRECANDIDATE || new_role == RAFT_CANDIDATE))
		ps->leaderless_since = now;
	if (new_leader != 0 && new_leader != old_leader)
	{
		kmd_stat_add(KMD_STAT_LEADER_CHANGES, partition_id, 1);
		kmd_events_leader(partition_id, new_term, new_leader);
		if (ps->leaderless_since != 0)
			record_at(KMD_LAT_ELECTION, partition_id, now - ps->leaderless_since, now);
	}
	if (new_leader != 0)
		ps->leaderless_since = 0;
}

void
kmd_stats_proposed(int32 partition_id, uint64 index)
{
	int			i = part_index(partition_id);

	if (i < 0 || stats->parts[i].sample_index != 0)
		return;
	stats->parts[i].sample_at = GetCurrentTimestamp();
	stats->parts[i].sample_index = index;
}

void
kmd_stats_ready(int32 partition_id, const raft_ready *rd)
{
	int			i;

	if (stats == NULL || (rd->n_committed == 0 && rd->n_entries == 0))
		return;
	kmd_stat_add(KMD_STAT_COMMITS, partition_id, rd->n_committed);
	kmd_stat_add(KMD_STAT_LOG_ENTRIES, partition_id, rd->n_entries);
	i = part_index(partition_id);
	if (i >= 0 && rd->n_committed > 0 && stats->parts[i].sample_index != 0 &&
		rd->committed[rd->n_committed - 1].index >= stats->parts[i].sample_index)
	{
		kmd_latency_since(KMD_LAT_COMMIT, partition_id, stats->parts[i].sample_at);
		stats->parts[i].sample_index = 0;
	}
}

void
kmd_stats_log_append(TimestampTz start, bool flushed)
{
	kmd_stat_add(KMD_STAT_LOG_APPENDS, -1, 1);
	if (flushed)
		kmd_stat_add(KMD_STAT_WAL_FLUSHES, -1, 1);
	kmd_latency_since(KMD_LAT_LOG_APPEND, -1, start);
}

/* ------------------------------------------------------------------------
 * Members' progress, published by the Raft worker (a seqlock: it alone
 * writes; readers retry while it does)
 * ------------------------------------------------------------------------
 */
bool
kmd_stats_publish_peers(KmdPartition *part, int32 partition_id,
						const KmdPeerProgress *peers, int n)
{
	PartStats  *ps = part_stats_of(part, partition_id);

	if (ps == NULL)
		return false;
	if (ps->n_peers == (uint32) n &&
		memcmp(ps->peers, peers, sizeof(KmdPeerProgress) * n) == 0)
		return false;
	pg_atomic_fetch_add_u32(&ps->peers_seq, 1);
	ps->n_peers = (uint32) n;
	memcpy(ps->peers, peers, sizeof(KmdPeerProgress) * n);
	pg_write_barrier();
	pg_atomic_fetch_add_u32(&ps->peers_seq, 1);
	return true;
}

int
kmd_stats_read_peers(int index, int32 partition_id, KmdPeerProgress *out)
{
	PartStats  *ps;

	if (stats == NULL || index < 0 || index >= stats->max_partitions)
		return -1;
	ps = &stats->parts[index];
	for (int attempt = 0; attempt < 1000; attempt++)
	{
		uint32		before = pg_atomic_read_u32(&ps->peers_seq);
		uint32		n;

		if (before % 2 == 1)
			continue;
		pg_read_barrier();
		if (pg_atomic_read_u32(&ps->owner) != (uint32) partition_id + 1)
			return 0;
		n = Min(ps->n_peers, KMD_MAX_NODES);
		memcpy(out, ps->peers, sizeof(KmdPeerProgress) * n);
		pg_read_barrier();
		if (pg_atomic_read_u32(&ps->peers_seq) == before)
			return (int) n;
	}
	return -1;
}
