/*-------------------------------------------------------------------------
 *
 * reconcile.c
 *	  The reconciler: in each Raft group a worker leads, one step at a time
 *	  toward the roster's membership.
 *
 * The steps are the host's rules (src/host/reconcile.c, which the
 * simulator runs too): a node the roster no longer keeps is removed (the
 * leader, if it is that node, hands its leadership over first, after a
 * voter is added and promoted if it is the only one), a node it keeps is
 * added as a learner, a caught-up learner it names a voter is promoted.
 * What is here gathers their inputs from shared memory and the group's log
 * and does the step: a removal waits while a split or a freeze in the log
 * still needs the member (host_split_holds, host_freeze_holds), and in
 * the system partition while any user partition's group has it.  No step is
 * taken on a roster behind the system partition's log this node knows.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/reconcile.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "command.h"
#include "guc.h"
#include "host/host.h"
#include "shmem.h"
#include "worker.h"

/* ------------------------------------------------------------------------
 * Inputs of the host's rules
 * ------------------------------------------------------------------------
 */
void
kmd_host_roster(host_roster *ro)
{
	ro->n = 0;
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES && ro->n < HOST_MAX_NODES; i++)
	{
		KmdNode    *node = &kmd_shared->nodes[i];

		if (node->node_id == 0)
			continue;
		ro->ids[ro->n] = (raft_id) node->node_id;
		ro->roles[ro->n++] = node->role == KMD_NODE_VOTER ? HOST_VOTER :
			node->role == KMD_NODE_LEARNER ? HOST_LEARNER : HOST_REMOVING;
	}
	LWLockRelease(kmd_shared->lock);
}

/* The nodes this node heard from within an election timeout of `now'. */
void
kmd_host_heard(host_heard *h, TimestampTz now)
{
	h->n = 0;
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES && h->n < HOST_MAX_NODES; i++)
		if (kmd_shared->nodes[i].node_id != 0 &&
			kmd_node_heard(&kmd_shared->nodes[i], now, kmd_election_timeout))
			h->ids[h->n++] = (raft_id) kmd_shared->nodes[i].node_id;
	LWLockRelease(kmd_shared->lock);
}

/*
 * The members of a partition's group as its worker here last showed them;
 * committed only while the group runs here.  False for a partition this
 * node does not have, or has merged away.
 */
bool
kmd_host_members(int32 partition_id, host_members *m)
{
	KmdPartition *part;
	bool		found;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(partition_id);
	found = part != NULL && part->state != KMD_PART_GONE;
	if (found)
	{
		m->committed = part->conf_committed && part->role >= 0;
		m->n = 0;
		for (int i = 0; i < part->n_members && m->n < RAFT_MAX_MEMBERS; i++)
			m->ids[m->n++] = (raft_id) part->member_ids[i];
	}
	LWLockRelease(kmd_shared->lock);
	return found;
}

uint64
kmd_host_ms(TimestampTz t)
{
	return t > 0 ? (uint64) (t / 1000) : 0;
}

/* ------------------------------------------------------------------------
 * What holds a leaving member
 * ------------------------------------------------------------------------
 */

/* The splits and the last freeze in a group's log, read once per step. */
typedef struct LogMarks
{
	KmdGroup   *g;
	bool		read;
	int			n_splits;
	raft_index *split_at;
	int32	   *split_child;
	raft_index	frozen_at;		/* the last freeze entry, 0 if none */
} LogMarks;

static void
read_marks(LogMarks *lm)
{
	KmdGroup   *g = lm->g;
	int			cap = 8;

	lm->read = true;
	lm->n_splits = 0;
	lm->frozen_at = 0;
	lm->split_at = palloc(sizeof(raft_index) * cap);
	lm->split_child = palloc(sizeof(int32) * cap);
	for (raft_index i = raft_first_index(g->r); i <= raft_last_index(g->r); i++)
	{
		const raft_entry *e;
		KmdCommand	cmd;

		if (raft_entry_at(g->r, i, &e) != RAFT_OK || e->type != RAFT_ENTRY_NORMAL ||
			!kmd_command_decode((const char *) e->data, (uint32) e->len, &cmd))
			continue;
		if (cmd.kind == KMD_CMD_FREEZE)
			lm->frozen_at = i;
		else if (cmd.kind == KMD_CMD_SPLIT && cmd.n_args >= 1)
		{
			if (lm->n_splits == cap)
			{
				cap *= 2;
				lm->split_at = repalloc(lm->split_at, sizeof(raft_index) * cap);
				lm->split_child = repalloc(lm->split_child, sizeof(int32) * cap);
			}
			lm->split_at[lm->n_splits] = i;
			lm->split_child[lm->n_splits++] = (int32) strtol(cmd.args[0], NULL, 10);
		}
	}
}

/*
 * Is `x' a voter of the partition that takes this one in when it merges:
 * the one whose range ends where this one's begins, or already covers it?
 */
static bool
votes_in_merge_target(KmdGroup *g, raft_id x)
{
	bool		votes = false;
	int64		lo;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	lo = g->part->lo;
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *p = &kmd_shared->partitions[i];

		if (p->partition_id <= 0 || p->partition_id == g->partition_id ||
			(p->state != KMD_PART_ACTIVE && p->state != KMD_PART_FROZEN) ||
			!(p->lo < lo && p->hi >= lo - 1))
			continue;
		for (int m = 0; m < p->n_members; m++)
			if (p->member_ids[m] == (int32) x)
				votes = p->member_roles[m] == RAFT_VOTER;
		break;
	}
	LWLockRelease(kmd_shared->lock);
	return votes;
}

/*
 * Is `x' a member of a user partition's group, as this node's copies show
 * it?  The system partition keeps a leaving member until it is not: a
 * leaving node learns that it is leaving from the system partition's log,
 * and only then hands over the groups it leads, which until then never
 * let it go.  Dropped from the system partition first, a node that had
 * not applied its removal (its apply behind, its copy offline or cut off
 * from the system partition's leader) would never learn it.  A copy whose
 * configuration may not change here for long does not count: one not
 * running (offline), one waiting for an image, a frozen one (the merge
 * that ends it stops its group).  A configuration not committed yet
 * under a leader counts as holding: the change that took the member out
 * may be cut.
 */
static bool
member_of_user_group(raft_id x)
{
	bool		member = false;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used && !member; i++)
	{
		KmdPartition *p = &kmd_shared->partitions[i];

		if (p->partition_id <= 0 || p->state != KMD_PART_ACTIVE || p->role < 0 ||
			p->image_state != KMD_IMAGE_NONE)
			continue;
		member = !p->conf_committed && p->leader != 0;
		for (int m = 0; m < p->n_members && !member; m++)
			member = p->member_ids[m] == (int32) x;
	}
	LWLockRelease(kmd_shared->lock);
	return member;
}

/*
 * host_holds_fn: in the system partition, the user partitions' groups; in
 * a user partition, the splits, then the last freeze, of the group's log
 */
static bool
holds(void *arg, raft_id x)
{
	LogMarks   *lm = arg;
	raft_index	applied = kmd_partition_applied(lm->g->partition_id);

	if (lm->g->partition_id == 0)
		return member_of_user_group(x);
	if (!lm->read)
		read_marks(lm);
	for (int i = 0; i < lm->n_splits; i++)
	{
		host_members child;
		bool		has_child = kmd_host_members(lm->split_child[i], &child);

		if (host_split_holds(lm->split_at[i], applied, has_child ? &child : NULL, x))
			return true;
	}
	return lm->frozen_at > 0 &&
		host_freeze_holds(lm->g->r, x, lm->frozen_at, votes_in_merge_target(lm->g, x));
}

/*
 * Has this node applied every entry of the system partition it knows
 * committed, under a leader it knows?  One whose apply worker is held up,
 * or whose log is behind the commit index its leader told it (restarted,
 * cut off), has a roster behind the cluster's: leading a group on it, it
 * would add back a node removed since, or remove one added since.  (Not
 * waiting for its copy to be at rest, which any member behind, a joining
 * learner, or any read through the system partition keeps from it.)  A
 * node that has heard no leader's commit index since it started knows
 * only its own.
 */
static bool
roster_current(void)
{
	KmdPartition *sys;
	bool		current = false;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	sys = kmd_partition_find(0);
	if (sys != NULL && sys->leader != 0)
	{
		uint64		applied = pg_atomic_read_u64(&sys->applied_index);

		current = applied >= pg_atomic_read_u64(&sys->commit_index) &&
			applied >= pg_atomic_read_u64(&sys->group_commit);
	}
	LWLockRelease(kmd_shared->lock);
	return current;
}

/*
 * Take one step toward the roster's membership in a group this worker
 * leads.  Returns true when the group's configuration is in line with the
 * roster, false when there is more to do (the caller asks again later).
 */
bool
kmd_reconcile_group(KmdGroup *g)
{
	host_roster ro;
	host_heard	heard;
	host_step	step;
	LogMarks	lm;
	bool		in_line;
	int			rc = RAFT_OK;

	if (!roster_current())
		return false;			/* asked again in a second */
	memset(&lm, 0, sizeof(lm));
	lm.g = g;
	kmd_host_roster(&ro);
	kmd_host_heard(&heard, GetCurrentTimestamp());
	/*
	 * Still leading in the term of the last hand-over, which is no longer
	 * under way: it did not take.  (While it is, the step names the same
	 * voter, and the core keeps the transfer it has.)
	 */
	in_line = host_reconcile_step(g->r, &ro, &heard, (uint64) kmd_promote_max_lag, holds, &lm, 0,
								  g->handover_term == raft_get_term(g->r) &&
								  raft_transferee(g->r) == RAFT_NONE ? g->handover_to : RAFT_NONE,
								  &step);
	switch (step.action)
	{
		case HOST_STEP_NONE:
			break;
		case HOST_STEP_TRANSFER:
			if (raft_transfer_leader(g->r, step.id) == RAFT_OK)
			{
				g->handover_to = step.id;
				g->handover_term = raft_get_term(g->r);
			}
			break;
		case HOST_STEP_REMOVE:
			rc = raft_propose_conf(g->r, RAFT_CC_REMOVE, step.id, NULL, NULL);
			break;
		case HOST_STEP_ADD_LEARNER:
			rc = raft_propose_conf(g->r, RAFT_CC_ADD_LEARNER, step.id, NULL, NULL);
			break;
		case HOST_STEP_PROMOTE:
			rc = raft_propose_conf(g->r, RAFT_CC_ADD_VOTER, step.id, NULL, NULL);
			break;
	}
	if (rc != RAFT_OK && rc != RAFT_EBUSY)
		elog(DEBUG1, "kommander: partition %d: membership change refused: %s",
			 g->partition_id, raft_strerror(rc));
	return in_line;
}
