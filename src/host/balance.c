/*-------------------------------------------------------------------------
 *
 * balance.c
 *	  The balancer's choice: how many leaderships of user partitions each
 *	  voter should have, and to which voter an over-loaded one hands a
 *	  partition (kmd_rebalance, and the Raft workers' automatic balancer).
 *
 * A voter leading more than its share (the partitions divided by the
 * voters, rounded up) hands partitions to voters leading fewer than their
 * share; both sides of a move improve, so moves converge.  Only voters
 * heard from lately count: a node that is down can lead nothing, and a
 * transfer to it would only keep its partitions awake until the transfer
 * times out.
 *
 * A leader whose node cannot apply a group's entries hands that group to
 * the most up-to-date voter that answers (host_handoff_to): the group's
 * leases count down where entries are applied, and its proposals wait
 * for their apply.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/host/balance.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "host.h"

void
host_load_init(host_load *l)
{
	memset(l, 0, sizeof(*l));
}

void
host_load_voter(host_load *l, raft_id id)
{
	if (l->n_voters < HOST_MAX_NODES && host_load_index(l, id) < 0)
		l->voters[l->n_voters++] = id;
}

void
host_load_partition(host_load *l, raft_id leader)
{
	int			v = host_load_index(l, leader);

	l->partitions++;
	if (v >= 0)
		l->load[v]++;
}

void
host_load_done(host_load *l)
{
	l->target = l->n_voters > 0 ? (l->partitions + l->n_voters - 1) / l->n_voters : 0;
}

int
host_load_index(const host_load *l, raft_id id)
{
	for (int v = 0; v < l->n_voters; v++)
		if (l->voters[v] == id)
			return v;
	return -1;
}

int
host_least_loaded(const host_load *l)
{
	int			best = -1;

	for (int v = 0; v < l->n_voters; v++)
		if (best < 0 || l->load[v] < l->load[best])
			best = v;
	return best >= 0 && l->load[best] < l->target ? best : -1;
}

int
host_balance_to(const host_load *l, raft_id self)
{
	int			v = host_load_index(l, self);

	if (v < 0 || l->load[v] <= l->target)
		return -1;
	return host_least_loaded(l);
}

raft_id
host_handoff_to(const raft *r, const host_heard *heard)
{
	const raft_conf *conf = raft_get_conf(r);
	raft_id		best = RAFT_NONE;
	raft_index	best_match = 0;

	for (uint32_t i = 0; i < conf->n && i < RAFT_MAX_MEMBERS; i++)
	{
		raft_id		id = conf->members[i].id;
		raft_progress pr;

		if (id == raft_self(r) || raft_conf_role(conf, id) != RAFT_VOTER ||
			(heard != NULL && !host_heard_has(heard, id)) ||
			raft_get_progress(r, id, &pr) != RAFT_OK || pr.lost)
			continue;
		if (best == RAFT_NONE || pr.match > best_match)
		{
			best = id;
			best_match = pr.match;
		}
	}
	return best;
}
