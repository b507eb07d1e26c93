/*-------------------------------------------------------------------------
 *
 * barrier.c
 *	  DDL and registrations crossed by every partition at the same point
 *	  of its log, on every node.
 *
 * A row command is applied in its partition's log, a kmd_ddl or a
 * registration in the system partition's; each node applies the logs at
 * its own pace.  Were the DDL applied whenever the system partition gets
 * there, a row committed at about the same time could be applied before it
 * on one node and after it on another, and the nodes would part.  So the
 * system partition's DDL and registrations (barriers) wait, and every
 * user partition's log is cut where they fall in it:
 *
 *	- The apply worker that reaches a barrier at system index S applies it
 *	  only once every live user partition is held for it here; until then
 *	  it publishes S (barrier_wanted) and the system partition waits.
 *	- The leader of each user partition then appends a barrier entry to its
 *	  log naming S (KMD_CMD_BARRIER), unless one is there already.
 *	- A partition that reaches a barrier entry naming S' stops there (held)
 *	  while the system partition has not applied S'; past it otherwise.
 *	  So does a partition that reaches a command whose proposer had
 *	  applied the system partition up to S' (its sys_index): that command
 *	  may depend on everything up to S'.  The first such entry with
 *	  S' >= S is where the partition's log is cut for S, on every node
 *	  alike: what comes before is applied before the barrier, what comes
 *	  after, after it.
 *	- A partition stopped at a merge whose right partition is held is held
 *	  too (the right one cannot be drained before the barrier; the cut in
 *	  the left partition is the merge entry, which no node passes before
 *	  the right partition's later entries, hence before the barrier).
 *	- A partition waiting for an image is held: the image replaces its
 *	  rows, and an image is installed only where the same barriers were
 *	  applied as where it was taken (snapshot.c).  So is the right
 *	  partition of a merge at which, or ahead of which, a partition waits
 *	  for an image: the image, taken after the merge, holds its rows, and
 *	  a node that missed the merge may never see the right partition reach
 *	  anything, its group being stopped everywhere else (apply.c,
 *	  merge_ahead).  Counted so, it applies nothing more here: the barrier
 *	  binds it to an image of its own (asked for, and noted in
 *	  kommander.snapshot for a restart), unless the left partition's image
 *	  retires it first; applied after the barrier, its entries before the
 *	  cut would part this node from the others.
 *
 * A command proposed by a node that applied S before the partition's
 * barrier entry was written (the partition was held there for an image,
 * or at a merge) cuts the log itself, being the first entry that holds
 * the partition for S.  A split created after its parent's cut needs no
 * barrier entry; one created before it was created on every node before
 * the barrier, and gets its own.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/barrier.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/latch.h"
#include "utils/timestamp.h"

#include "barrier.h"
#include "command.h"
#include "guc.h"
#include "raft/raft.h"
#include "shmem.h"
#include "wire.h"
#include "worker.h"

bool
kmd_barrier_kind(uint32 kind)
{
	return kind == KMD_CMD_DDL || kind == KMD_CMD_REGISTER_TABLE ||
		kind == KMD_CMD_REGISTER_APPLIER;
}

bool
kmd_barrier_arg(const KmdCommand *cmd, uint64 *sys_index)
{
	char	   *end;

	if (cmd->n_args != 1 || cmd->args[0][0] < '0' || cmd->args[0][0] > '9')
		return false;
	errno = 0;
	*sys_index = strtoull(cmd->args[0], &end, 10);
	return *end == '\0' && errno == 0 && *sys_index > 0;
}

/* Is `part' held for `sys_index'?  Lock held. */
static bool
held_alone(const KmdPartition *part, uint64 sys_index)
{
	return part->held_barrier >= sys_index || part->image_state != KMD_IMAGE_NONE;
}

/*
 * Is `right' the right partition of a merge that a partition waiting for
 * an image stopped at or saw ahead (apply.c, merge_ahead)?  Its rows are
 * the image's to replace.  Lock held.
 */
static bool
merged_by_image(int32 right)
{
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *left = &kmd_shared->partitions[i];

		if (left->partition_id > 0 && left->held_merge == right &&
			left->image_state != KMD_IMAGE_NONE)
			return true;
	}
	return false;
}

bool
kmd_barrier_ready(uint64 sys_index, List **image_bound)
{
	bool		ready = true;
	uint64		wanted;

	*image_bound = NIL;
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	/* one that could not be hosted here has not reached the barrier */
	if (kmd_shared->n_left_out > 0)
		ready = false;
	for (int i = 0; i < kmd_shared->partitions_used && ready; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];
		KmdPartition *right;

		if (part->partition_id <= 0 || part->state == KMD_PART_GONE ||
			part->held_barrier >= sys_index)
			continue;

		/*
		 * Its rows come from an image: also one asked for in memory only
		 * (a leader's log that starts past this node's, or a binding of an
		 * iteration that rolled back), which a restart would forget, and
		 * the partition apply its own log after the barrier.
		 */
		if (part->image_state != KMD_IMAGE_NONE || merged_by_image(part->partition_id))
		{
			*image_bound = lappend_int(*image_bound, part->partition_id);
			continue;
		}
		right = part->held_merge > 0 ? kmd_partition_find(part->held_merge) : NULL;
		ready = right != NULL && held_alone(right, sys_index);
	}
	LWLockRelease(kmd_shared->lock);
	if (ready)
		return true;
	list_free(*image_bound);
	*image_bound = NIL;

	/* ask the leaders here: wake the Raft workers the first time */
	wanted = pg_atomic_read_u64(&kmd_shared->barrier_wanted);
	if (wanted < sys_index)
	{
		pg_atomic_write_u64(&kmd_shared->barrier_wanted, sys_index);
		for (int w = 0; w < kmd_shared->n_workers; w++)
		{
			Latch	   *latch = kmd_shared->workers[w].latch;

			if (latch != NULL)
				SetLatch(latch);
		}
	}
	return false;
}

bool
kmd_barrier_hold(int32 partition_id, uint64 barrier, int32 merge_right)
{
	KmdPartition *part;
	bool		changed = false;

	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	part = kmd_partition_find(partition_id);
	if (part != NULL)
	{
		changed = part->held_barrier != barrier || part->held_merge != merge_right;
		part->held_barrier = barrier;
		part->held_merge = merge_right;
	}
	LWLockRelease(kmd_shared->lock);
	return changed;
}

void
kmd_barrier_reset(void)
{
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		kmd_shared->partitions[i].held_barrier = 0;
		kmd_shared->partitions[i].held_merge = 0;
	}
	LWLockRelease(kmd_shared->lock);
}

/*
 * A barrier entry for the DDL or registration the apply worker here waits
 * for, in the log of a partition this node leads (true if proposed):
 * unless the system
 * partition got past it, the partition is held at a barrier entry already,
 * or the last one proposed here is still in the log, not applied yet (a
 * lost one, cut by a new leader, is proposed again).
 */
bool
kmd_barrier_propose(KmdGroup *g, TimestampTz now)
{
	uint64		wanted = pg_atomic_read_u64(&kmd_shared->barrier_wanted);
	uint64		held;
	raft_term	term;
	KmdCommand	cmd;
	char	   *data;
	uint32		len;
	bool		proposed;

	if (wanted == 0 || g->partition_id <= 0 || g->parked ||
		kmd_partition_applied(0) >= wanted)
		return false;
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	held = g->part->held_barrier;
	LWLockRelease(kmd_shared->lock);
	if (held >= wanted)
		return false;
	if (g->barrier_for >= wanted &&
		g->barrier_index > kmd_partition_applied(g->partition_id) &&
		raft_term_at(g->r, g->barrier_index, &term) == RAFT_OK && term == g->barrier_term)
		return false;

	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = KMD_CMD_BARRIER;
	cmd.origin_node = kmd_shared->local_node_id;
	cmd.origin_slot = -1;
	cmd.origin_boot = kmd_shared->boot_id;
	cmd.proposed_at = now;
	cmd.sys_index = kmd_partition_applied(0);
	cmd.key = "";
	cmd.payload = "";
	cmd.n_args = 1;
	cmd.args[0] = psprintf(UINT64_FORMAT, wanted);
	data = kmd_command_encode(&cmd, &len);
	proposed = raft_propose(g->r, data, len, &g->barrier_index, &g->barrier_term) == RAFT_OK;
	if (proposed)
	{
		g->barrier_for = wanted;
		elog(DEBUG1, "kommander: barrier entry for system index " UINT64_FORMAT
			 " at index " UINT64_FORMAT " of partition %d",
			 wanted, (uint64) g->barrier_index, g->partition_id);
	}
	pfree(data);
	return proposed;
}
