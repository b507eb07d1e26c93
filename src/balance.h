/*-------------------------------------------------------------------------
 *
 * balance.h
 *	  How the leaderships of user partitions are spread over the voters,
 *	  as this node sees them: the basis of kmd_rebalance and of the Raft
 *	  workers' rate-limited automatic balancer.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/balance.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_BALANCE_H
#define KOMMANDER_BALANCE_H

#include "shmem.h"

typedef struct KmdLeaderLoad
{
	int			n_voters;
	int32		voters[KMD_MAX_NODES];
	int			load[KMD_MAX_NODES];	/* active user partitions each leads */
	int			partitions;		/* active user partitions with a leader */
	int			target;			/* most any voter should lead */
} KmdLeaderLoad;

/*
 * Count, from shared memory, the leaderships of each voter this node has
 * heard from within an election timeout (itself included).
 */
extern void kmd_leader_load(KmdLeaderLoad *l);

/* Index in l->voters of `node', or -1. */
extern int	kmd_leader_load_index(const KmdLeaderLoad *l, int32 node);

/* The index of the least loaded voter if it leads fewer than target, or -1. */
extern int	kmd_least_loaded(const KmdLeaderLoad *l);

#endif							/* KOMMANDER_BALANCE_H */
