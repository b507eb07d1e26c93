/*-------------------------------------------------------------------------
 *
 * balance.h
 *	  How the leaderships of user partitions are spread over the voters,
 *	  as this node sees them: the basis of kmd_rebalance and of the Raft
 *	  workers' rate-limited automatic balancer, whose choices are the
 *	  host's rules (src/host/balance.c).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/balance.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_BALANCE_H
#define KOMMANDER_BALANCE_H

#include "host/host.h"
#include "shmem.h"

/*
 * Count, from shared memory, the leaderships of each voter this node has
 * heard from within an election timeout (itself included).
 */
extern void kmd_leader_load(host_load *l);

#endif							/* KOMMANDER_BALANCE_H */
