/*-------------------------------------------------------------------------
 *
 * balance.c
 *	  Counting the leaderships of user partitions per voter from shared
 *	  memory, to spread leaders evenly (kmd_rebalance, and the workers'
 *	  automatic balancer); the choices are the host's rules
 *	  (src/host/balance.c).
 *
 * Only voters this node has heard from within an election timeout count: a
 * node that is down can lead nothing, and a transfer to it would only keep
 * its partitions awake until the transfer times out.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/balance.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/timestamp.h"

#include "balance.h"
#include "guc.h"

void
kmd_leader_load(host_load *l)
{
	TimestampTz now = GetCurrentTimestamp();

	host_load_init(l);
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
		if (kmd_shared->nodes[i].node_id != 0 && kmd_shared->nodes[i].role == KMD_NODE_VOTER &&
			kmd_node_heard(&kmd_shared->nodes[i], now, kmd_election_timeout))
			host_load_voter(l, (raft_id) kmd_shared->nodes[i].node_id);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];

		if (part->partition_id > 0 && part->state == KMD_PART_ACTIVE && part->leader != 0)
			host_load_partition(l, (raft_id) part->leader);
	}
	LWLockRelease(kmd_shared->lock);
	host_load_done(l);
}
