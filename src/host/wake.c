/*-------------------------------------------------------------------------
 *
 * wake.c
 *	  When the host wakes a resting group (raft.h, Quiescence): a follower
 *	  whose leader's node fell silent, a leader that rested without a node
 *	  heard again or with a member behind.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/host/wake.c
 *
 *-------------------------------------------------------------------------
 */
#include "host.h"

#ifdef RAFT_SIM_BUGS
#define FLAW(flaws, f) (((flaws) & (f)) != 0)
#else
#define FLAW(flaws, f) ((void) (flaws), false)
#endif

bool
host_member_behind(const raft *r, const host_heard *heard)
{
	const raft_conf *conf = raft_get_conf(r);
	raft_index	last = raft_last_index(r);

	for (uint32_t i = 0; i < conf->n; i++)
	{
		raft_id		id = conf->members[i].id;
		raft_progress pr;

		if (id != raft_self(r) && host_heard_has(heard, id) &&
			raft_get_progress(r, id, &pr) == RAFT_OK && pr.match < last)
			return true;
	}
	return false;
}

bool
host_leader_wakes(const raft *r, const host_heard *heard, bool regained,
				  uint64_t now, uint64_t *behind_woken, uint64_t behind_every,
				  uint32_t flaws)
{
	if (!raft_quiesced(r) || raft_get_role(r) != RAFT_LEADER)
		return false;
	if (regained)
		return true;
	if (FLAW(flaws, HOST_FLAW_LATE_MEMBER) || now < *behind_woken + behind_every ||
		!host_member_behind(r, heard))
		return false;
	*behind_woken = now;
	return true;
}

bool
host_follower_wakes(const raft *r, const host_heard *heard)
{
	return raft_quiesced(r) && raft_get_role(r) != RAFT_LEADER &&
		!host_heard_has(heard, raft_leader(r));
}
