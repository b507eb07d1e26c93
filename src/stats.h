/*-------------------------------------------------------------------------
 *
 * stats.h
 *	  kommander's counters, gauges and latency histograms in shared memory,
 *	  read by the views kommander.stats, kommander.latency and
 *	  kommander.peers; and the bounded proposal queues (admission control).
 *
 * Every call here is a few atomic operations on shared memory, without a
 * lock, so that the hot path may count what it does.  The figures start
 * from zero at every start of the server.  A counter that belongs to a
 * partition is added both to the partition's figure and to the node's.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/stats.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_STATS_H
#define KOMMANDER_STATS_H

#include "datatype/timestamp.h"

#include "raft/raft.h"
#include "shmem.h"

/*
 * The counters.  Those before KMD_STAT_NODE_ONLY are kept per partition as
 * well as for the node; the others for the node only.  stats.c names each
 * (the `name' column of kommander.stats).
 */
typedef enum KmdStat
{
	KMD_STAT_PROPOSALS,			/* proposals made on this node */
	KMD_STAT_FORWARDED,			/* of them, forwarded to a leader elsewhere */
	KMD_STAT_REJECTED_FENCED,	/* failed with K0001 */
	KMD_STAT_REJECTED_FROZEN,	/* failed with K0004 */
	KMD_STAT_REJECTED_NO_QUORUM,	/* no leader took them in time (K0002) */
	KMD_STAT_REJECTED_OVERLOADED,	/* their queue was full (K0007) */
	KMD_STAT_OUTCOME_UNKNOWN,	/* sent, no outcome in time (K0003) */
	KMD_STAT_COMMITS,			/* entries this node learnt committed */
	KMD_STAT_APPLIES,			/* entries applied here */
	KMD_STAT_APPLY_ERRORS,		/* commands whose outcome was an error */
	KMD_STAT_ELECTIONS_STARTED, /* campaigns of this node */
	KMD_STAT_ELECTIONS_WON,
	KMD_STAT_PREVOTES,			/* pre-vote rounds of this node */
	KMD_STAT_LEADER_CHANGES,	/* a new leader seen here */
	KMD_STAT_LOG_ENTRIES,		/* entries written to kommander.log */
	KMD_STAT_COMPACTIONS,		/* logs compacted */
	KMD_STAT_IMAGES_INSTALLED,
	KMD_STAT_IMAGES_FAILED,
	KMD_STAT_NODE_ONLY,
	KMD_STAT_STALE_COMPLETIONS = KMD_STAT_NODE_ONLY,	/* answers for requests
														 * no longer waiting */
	KMD_STAT_HEARTBEATS_SENT,
	KMD_STAT_MESSAGES_SENT,		/* Raft messages */
	KMD_STAT_MESSAGES_RECEIVED,
	KMD_STAT_BATCHES_SENT,		/* peer batches (stream messages) */
	KMD_STAT_BATCHES_RECEIVED,
	KMD_STAT_BYTES_SENT,
	KMD_STAT_BYTES_RECEIVED,
	KMD_STAT_BATCHES_REFUSED,	/* by a peer: an error, or no room */
	KMD_STAT_BATCHES_DROPPED,	/* not sent: no connection, or no room */
	KMD_STAT_LOG_APPENDS,		/* the Raft workers' log transactions */
	KMD_STAT_WAL_FLUSHES,		/* of them, those that waited for the WAL */
	KMD_STAT_COMPACTION_PASSES,
	KMD_STAT_SNAPSHOTS_SENT,	/* Raft snapshot messages */
	KMD_STAT_IMAGES_SENT,		/* images copied out to a peer */
	KMD_STAT_BALANCER_MOVES,	/* leaderships handed over by the balancer */
	KMD_STAT_STALL_HANDOFFS,	/* by a leader whose node did not apply */
	KMD_STAT_DIRECT_WRITES,		/* rows applied without an SQL statement */
	KMD_NUM_STATS
} KmdStat;

/* Timed operations.  Those before KMD_LAT_NODE_ONLY also per partition. */
typedef enum KmdLatencyOp
{
	KMD_LAT_PROPOSE,			/* kmd_propose and friends: call to answer */
	KMD_LAT_COMMIT,				/* on the leader: proposed to committed */
	KMD_LAT_APPLY,				/* one entry in the apply worker */
	KMD_LAT_ELECTION,			/* no leader known to a leader known */
	KMD_LAT_NODE_ONLY,
	KMD_LAT_LOG_APPEND = KMD_LAT_NODE_ONLY, /* a Raft worker's log transaction */
	KMD_LAT_PEER_ROUND_TRIP,	/* a batch to a peer and its answer */
	KMD_NUM_LATENCY_OPS
} KmdLatencyOp;

extern Size kmd_stats_shmem_size(void);
extern void kmd_stats_shmem_startup(void);

/* Add `n' to a counter, of `partition_id' (-1: the node's only). */
extern void kmd_stat_add(KmdStat stat, int32 partition_id, uint64 n);

/* Record one duration, in microseconds, or the time since `start'. */
extern void kmd_latency_record(KmdLatencyOp op, int32 partition_id, int64 micros);
extern void kmd_latency_since(KmdLatencyOp op, int32 partition_id, TimestampTz start);

/*
 * Admission control: a proposal of a backend takes a place in its
 * partition's queue before it takes a request slot, and gives it back
 * when it has its answer.  kmd_queue_enter() fails with K0007 (and counts
 * it) when kommander.max_queued_proposals proposals of this node already
 * wait for that partition; otherwise it returns what kmd_queue_leave()
 * takes back.
 */
extern int	kmd_queue_enter(int32 partition_id);
extern void kmd_queue_leave(int32 partition_id, int ticket);

/*
 * The Raft worker's observations (worker.c, serve.c):
 * kmd_stats_group_changed() sees a group's role, leader or term move
 * (elections, pre-votes, leader changes, election durations; it may run
 * with kmd_shared->lock held); kmd_stats_ready() counts what a group's
 * ready batch committed and appended; kmd_stats_proposed() and
 * kmd_stats_ready() time one proposal at a time per partition, on its
 * leader, from its append to its commit; kmd_stats_log_append() counts a
 * log transaction begun at `start'.
 */
extern void kmd_stats_group_changed(KmdPartition *part, int32 partition_id,
									int old_role, int new_role,
									int32 old_leader, int32 new_leader,
									uint64 old_term, uint64 new_term);
extern void kmd_stats_proposed(int32 partition_id, uint64 index);
extern void kmd_stats_ready(int32 partition_id, const raft_ready *rd);
extern void kmd_stats_log_append(TimestampTz start, bool flushed);

/*
 * A leader's view of one member of its group, for kommander.peers.  The
 * Raft worker publishes it (progress.c); stats_views.c reads it.  Zero it
 * before filling it in: published ones are compared whole.
 */
typedef struct KmdPeerProgress
{
	int32		node_id;
	uint32		state;			/* raft_progress_state */
	uint32		inflight;
	uint64		match;
	uint64		next;
} KmdPeerProgress;

/*
 * Publish the members' progress of the group of `partition_id' (n == 0
 * when this node does not lead it); true if the published one changed.
 */
extern bool kmd_stats_publish_peers(KmdPartition *part, int32 partition_id,
									const KmdPeerProgress *peers, int n);
/*
 * The Raft worker's loop: its groups may have moved; publish its leaders'
 * views now and then (progress.c).
 */
extern void kmd_progress_touched(void);
extern void kmd_progress_publish(void);
/* Read it back; returns how many, or -1 when it could not be read. */
extern int	kmd_stats_read_peers(int index, int32 partition_id, KmdPeerProgress *out);

/* For the views: one partition's figures, by its index in kmd_shared->partitions */
extern uint64 kmd_stats_node_value(KmdStat stat);
extern uint64 kmd_stats_partition_value(int index, int32 partition_id, KmdStat stat);
extern const char *kmd_stat_name(KmdStat stat);
extern const char *kmd_latency_name(KmdLatencyOp op);
/* queue depth and peak: of the node (worker -1, index -1), a worker, a partition */
extern void kmd_stats_queue(int worker, int index, int32 partition_id,
							uint32 *depth, uint32 *peak);

/* Latency over the window: count and percentiles in ms; false when empty */
typedef struct KmdLatencySummary
{
	uint64		count;
	double		p50_ms;
	double		p90_ms;
	double		p99_ms;
	double		max_ms;
} KmdLatencySummary;

extern bool kmd_stats_latency(KmdLatencyOp op, int index, int32 partition_id,
							  KmdLatencySummary *out);

#endif							/* KOMMANDER_STATS_H */
