/*-------------------------------------------------------------------------
 *
 * reconcile.c
 *	  The reconciler: in each Raft group a worker leads, one step at a time
 *	  toward the roster's membership.
 *
 * One single-server change at a time: a node the roster no longer names is
 * removed (from a frozen partition, not before a member of its merge target
 * has its log up to the freeze) (a leader that is to leave first hands its leadership over, after
 * adding and promoting a voter if it is the only one), a node it names is
 * added as a learner, and a caught-up learner the roster names a voter is
 * promoted.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/reconcile.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "guc.h"
#include "shmem.h"
#include "worker.h"

/*
 * Must this frozen partition keep member `id' a while longer?  While it is
 * a member of the merge target (the active partition whose range ends where
 * this one starts) that has answered but not yet received the log up to
 * the freeze: that node applies the merge only once it has applied this
 * partition that far, and the groups split off the target after the merge
 * would wait for it.
 */
static bool
held_for_merge(KmdGroup *g, raft_id id)
{
	bool		member = false;
	uint64		frozen_at = 0;
	raft_progress pr;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	if (g->part->state == KMD_PART_FROZEN)
	{
		frozen_at = g->part->frozen_at;
		for (int i = 0; i < kmd_shared->max_partitions && !member; i++)
		{
			KmdPartition *p = &kmd_shared->partitions[i];

			if (p->partition_id <= 0 || p->state != KMD_PART_ACTIVE ||
				p->hi == PG_INT64_MAX || p->hi + 1 != g->part->lo)
				continue;
			for (int m = 0; m < p->n_members; m++)
				member |= p->member_ids[m] == (int32) id;
		}
	}
	LWLockRelease(kmd_shared->lock);
	return member && raft_get_progress(g->r, id, &pr) == RAFT_OK &&
		pr.match > 0 && pr.match < frozen_at;
}

/*
 * Take one step toward the roster's membership in a group this worker
 * leads.  Returns true when the group's configuration is in line with the
 * roster, false when there is more to do (the caller asks again later).
 */
bool
kmd_reconcile_group(KmdGroup *g)
{
	int32		ids[KMD_MAX_NODES];
	int			roles[KMD_MAX_NODES];
	int			n = 0;
	const raft_conf *conf = raft_get_conf(g->r);
	raft_id		self = raft_self(g->r);
	int			rc = RAFT_OK;
	bool		in_line = true;
	bool		leaving = false;

	/* a node the roster marks 'removing' is to leave every group */
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
		if (kmd_shared->nodes[i].node_id != 0 &&
			kmd_shared->nodes[i].role != KMD_NODE_REMOVING)
		{
			ids[n] = kmd_shared->nodes[i].node_id;
			roles[n] = kmd_shared->nodes[i].role;
			n++;
		}
	LWLockRelease(kmd_shared->lock);
	if (n == 0)
		return false;			/* roster not loaded yet */

	/* members the roster no longer names leave; the leader hands over first */
	for (uint32 i = 0; i < conf->n; i++)
	{
		raft_id		id = conf->members[i].id;
		bool		in_roster = false;

		for (int j = 0; j < n; j++)
			if (ids[j] == (int32) id)
				in_roster = true;
		if (in_roster)
			continue;
		if (id == self)
		{
			/* to a voter the roster keeps */
			for (uint32 k = 0; k < conf->n; k++)
				for (int j = 0; j < n; j++)
					if (conf->members[k].id != self && conf->members[k].role == RAFT_VOTER &&
						ids[j] == (int32) conf->members[k].id)
					{
						(void) raft_transfer_leader(g->r, conf->members[k].id);
						return false;
					}
			/* no voter to hand over to yet: add and promote one first */
			leaving = true;
			continue;
		}
		if (held_for_merge(g, id))
		{
			in_line = false;
			continue;
		}
		rc = raft_propose_conf(g->r, RAFT_CC_REMOVE, id, NULL, NULL);
		goto done;
	}

	for (int j = 0; j < n; j++)
	{
		uint32		role = raft_conf_role(conf, (raft_id) ids[j]);
		raft_progress pr;

		if (role == 0)
		{
			rc = raft_propose_conf(g->r, RAFT_CC_ADD_LEARNER, (raft_id) ids[j], NULL, NULL);
			goto done;
		}
		if (role == RAFT_LEARNER && roles[j] == KMD_NODE_VOTER)
		{
			/* promoted once caught up; until then, look again later */
			in_line = false;
			if (raft_get_progress(g->r, (raft_id) ids[j], &pr) == RAFT_OK &&
				pr.match > 0 &&
				pr.match + (uint64) kmd_promote_max_lag >= raft_last_index(g->r))
			{
				rc = raft_propose_conf(g->r, RAFT_CC_ADD_VOTER, (raft_id) ids[j], NULL, NULL);
				goto done;
			}
		}
	}
	return in_line && !leaving;

done:
	if (rc != RAFT_OK && rc != RAFT_EBUSY)
		elog(DEBUG1, "kommander: partition %d: membership change refused: %s",
			 g->partition_id, raft_strerror(rc));
	return false;
}
