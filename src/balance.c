/*-------------------------------------------------------------------------
 *
 * balance.c
 *	  Counting the leaderships of user partitions per voter, to spread
 *	  leaders evenly (kmd_rebalance, and the workers' automatic balancer).
 *
 * A voter leading more than its share (the number of partitions divided by
 * the number of voters, rounded up) hands partitions to voters leading
 * fewer than their share; both sides of a move improve, so moves converge.
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
kmd_leader_load(KmdLeaderLoad *l)
{
	TimestampTz now = GetCurrentTimestamp();

	memset(l, 0, sizeof(*l));
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
		if (kmd_shared->nodes[i].node_id != 0 && kmd_shared->nodes[i].role == KMD_NODE_VOTER &&
			kmd_node_heard(&kmd_shared->nodes[i], now, kmd_election_timeout))
			l->voters[l->n_voters++] = kmd_shared->nodes[i].node_id;
	for (int i = 0; i < kmd_shared->max_partitions; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];
		int			v;

		if (part->partition_id <= 0 || part->state != KMD_PART_ACTIVE || part->leader == 0)
			continue;
		l->partitions++;
		v = kmd_leader_load_index(l, part->leader);
		if (v >= 0)
			l->load[v]++;
	}
	LWLockRelease(kmd_shared->lock);
	l->target = l->n_voters > 0 ? (l->partitions + l->n_voters - 1) / l->n_voters : 0;
}

int
kmd_leader_load_index(const KmdLeaderLoad *l, int32 node)
{
	for (int v = 0; v < l->n_voters; v++)
		if (l->voters[v] == node)
			return v;
	return -1;
}

int
kmd_least_loaded(const KmdLeaderLoad *l)
{
	int			best = -1;

	for (int v = 0; v < l->n_voters; v++)
		if (best < 0 || l->load[v] < l->load[best])
			best = v;
	return best >= 0 && l->load[best] < l->target ? best : -1;
}
