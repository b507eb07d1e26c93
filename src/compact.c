/*-------------------------------------------------------------------------
 *
 * compact.c
 *	  The Raft worker's side of bounded logs: compacting each group's log
 *	  behind what this node has applied, and parking a group while an image
 *	  of its partition is installed under it (snapshot.c installs it).
 *
 * A group's log is compacted up to kommander.snapshot_threshold entries
 * behind the applied index, once the log holds a batch more than that, in
 * a transaction of its own (its commit flushes the WAL of the apply
 * worker's asynchronous commits before it, so the marker never passes a
 * durable apply).
 *
 * A leader whose log no longer holds what a follower needs sends it a
 * snapshot message.  The follower's group is parked: it steps, ticks,
 * proposes and persists nothing, so that the apply worker may rewrite its
 * durable state.  Once the image is installed the group starts again from
 * that state and answers the leader's message with its new commit index.
 * Between a failed try and the next the group runs, holding its campaigns
 * (shmem.h, KMD_IMAGE_WAITING), and snapshot messages only name the next
 * try's source.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/compact.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "storage/lwlock.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "shmem.h"
#include "stats.h"
#include "storage.h"
#include "worker.h"
#include "xact.h"

/* groups of this worker parked now, and the image events seen so far */
static int	n_parked = 0;
static uint64 events_seen = 0;

/*
 * Could snapshot message `m' be from the group's leader?  The core checks
 * a message's term and sender before it acts on one, and drops what fails;
 * an image is asked for before the core sees the message, so the same is
 * asked here: not of a term behind the group's, and in the group's own
 * term not to a leader (a term has one) nor from another node than the
 * leader the group follows.  A member that sent one anyway (a bug, a
 * tampered node) would otherwise park the group and raise the index its
 * image must reach past anything any node has.
 */
static bool
from_leader(KmdGroup *g, const raft_message *m)
{
	raft_id		leader = raft_leader(g->r);

	if (m->type != RAFT_MSG_SNAPSHOT || m->snapshot == NULL ||
		m->term < raft_get_term(g->r))
		return false;
	if (m->term > raft_get_term(g->r))
		return true;
	return raft_get_role(g->r) != RAFT_LEADER &&
		(leader == RAFT_NONE || leader == m->from);
}

/*
 * Does a leader's message ask for what only an image can give?  A snapshot
 * message the core would answer by itself (its index already committed
 * here, or its entry held here) needs none; a marker at index 0 carries a
 * configuration and the log replays from its start, unless this group's
 * state must come from an image anyway.
 */
static bool
needs_image(KmdGroup *g, const raft_message *m)
{
	raft_term	t;

	if (!from_leader(g, m))
		return false;
	if (g->image_wanted)
		return true;
	if (m->snapshot->index == 0)
		return false;
	if (raft_get_conf(g->r)->n == 0)
		return true;			/* a joining node's group */
	if (m->snapshot->index <= raft_commit_index(g->r))
		return false;
	return !(raft_term_at(g->r, m->snapshot->index, &t) == RAFT_OK &&
			 t == m->snapshot->term);
}

static void
save_snapshot_msg(KmdGroup *g, const raft_message *m)
{
	g->snapshot_msg = *m;
	g->snapshot_meta = *m->snapshot;
	g->snapshot_msg.snapshot = &g->snapshot_meta;
	g->snapshot_msg.entries = NULL;
	g->snapshot_msg.n_entries = 0;
	g->snapshot_msg.snapshot_data = NULL;
	g->snapshot_msg.snapshot_len = 0;
	g->has_snapshot_msg = true;
}

static void
park(KmdGroup *g)
{
	if (!g->parked)
	{
		g->parked = true;
		n_parked++;
	}
	/* the image brings its own commit index */
	g->commit_unsaved = false;
}

void
kmd_images_forget(KmdGroup *g)
{
	if (g->parked)
	{
		g->parked = false;
		n_parked--;
	}
}

/*
 * The sender of snapshot message `m' is the one the next try of the
 * partition's image copies from, unless the last try failed with it (its
 * manifest waited on a lock, say); the image must reach the message's
 * index.  Lock held.
 */
static void
take_sender(KmdPartition *part, const raft_message *m)
{
	if ((int32) m->from != part->image_failed_from)
		part->image_from = (int32) m->from;
	part->image_min = Max(part->image_min, m->snapshot->index);
}

bool
kmd_image_intercept(KmdGroup *g, const raft_message *m)
{
	KmdPartition *part = g->part;

	if (g->parked)
	{
		/*
		 * Nothing reaches a parked group.  A newer snapshot message (a
		 * retry, or a new leader's) is kept to be answered, and the image
		 * is then copied from its sender.
		 */
		if (from_leader(g, m) &&
			(!g->has_snapshot_msg || m->term >= g->snapshot_msg.term))
		{
			save_snapshot_msg(g, m);
			LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
			if (part->image_state != KMD_IMAGE_NONE)
				take_sender(part, m);
			LWLockRelease(kmd_shared->lock);
		}
		return true;
	}
	/*
	 * One in the group's term that no leader could have sent reaches the
	 * core neither: a follower's would take its sender for the leader and
	 * reset the log to its index, past what this node can apply.
	 */
	if (m->type == RAFT_MSG_SNAPSHOT && m->term == raft_get_term(g->r) && !from_leader(g, m))
		return true;
	if (!needs_image(g, m))
		return false;

	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	if (part->image_state == KMD_IMAGE_WAITING)
	{
		/* between two tries: the next copies from this leader */
		take_sender(part, m);
		LWLockRelease(kmd_shared->lock);
		return true;
	}
	if (part->image_state == KMD_IMAGE_NONE)
	{
		part->image_since = GetCurrentTimestamp();
		part->image_failed_from = 0;
		part->image_from = (int32) m->from;
		part->image_min = m->snapshot->index;
	}
	else
		take_sender(part, m);	/* asked again since a failed try */
	part->image_state = KMD_IMAGE_ASKED;
	LWLockRelease(kmd_shared->lock);
	save_snapshot_msg(g, m);
	park(g);
	elog(LOG, "kommander: partition %d needs an image of node %u at index " UINT64_FORMAT
		 " or later: its leader's log starts after this node's",
		 g->partition_id, m->from, m->snapshot->index);
	return true;
}

/*
 * A group starts (or starts again) while its partition's image is in
 * flight (asked for, perhaps being installed by the apply worker right now,
 * or installed since the group's durable state was read) or waited for:
 * the first is parked before it persists anything (and started again from
 * the image once it is in), and both wait for the image without leading.
 */
void
kmd_images_adopt(KmdGroup *g)
{
	int32		state;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	state = g->part->image_state;
	LWLockRelease(kmd_shared->lock);
	if (state == KMD_IMAGE_ASKED || state == KMD_IMAGE_READY ||
		pg_atomic_read_u64(&g->part->images) != g->images_seen)
	{
		park(g);
		g->has_snapshot_msg = false;
	}
	if (state != KMD_IMAGE_NONE || g->image_wanted)
	{
		g->awaiting_image = true;
		raft_hold_campaign(g->r, true);
	}
}

void
kmd_images_step(void)
{
	uint64		events = pg_atomic_read_u64(&kmd_shared->image_events);
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;
	int32		restart[64];
	int			n_restart = 0;

	if (n_parked == 0 && events == events_seen)
		return;
	events_seen = events;

	hash_seq_init(&seq, kmd_worker_groups());
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		KmdPartition *part = g->part;
		int32		state;

		LWLockAcquire(kmd_shared->lock, LW_SHARED);
		state = part->image_state;
		LWLockRelease(kmd_shared->lock);

		if (!g->parked)
		{
			/*
			 * The apply worker asks: park first, hand over next time.  Or
			 * an image was installed since the group loaded its state, which
			 * it may have read before the image's commit (a worker started
			 * meanwhile): park, and start again from the image next time.
			 */
			if (state == KMD_IMAGE_ASKED ||
				pg_atomic_read_u64(&part->images) != g->images_seen)
			{
				park(g);
				g->has_snapshot_msg = false;
			}
			continue;
		}
		if (state == KMD_IMAGE_WAITING && raft_get_role(g->r) != RAFT_LEADER)
		{
			/*
			 * A try failed (its source is behind, or down): until the next,
			 * the group votes (and, when its log is whole, acknowledges), so
			 * that a node down elsewhere does not cost the partition its
			 * majority, but its entries are not applied here, so it may not
			 * lead.  A leader stays parked: its followers elect another.
			 */
			kmd_images_forget(g);
			g->has_snapshot_msg = false;
			g->awaiting_image = true;
			raft_hold_campaign(g->r, true);
			continue;
		}
		if (state == KMD_IMAGE_ASKED && !raft_has_ready(g->r))
		{
			/* nothing of the group is left to persist: its state is free */
			LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
			if (part->image_state == KMD_IMAGE_ASKED)
				part->image_state = KMD_IMAGE_READY;
			LWLockRelease(kmd_shared->lock);
			kmd_wake_apply();
		}
		else if (state == KMD_IMAGE_NONE &&
				 pg_atomic_read_u64(&part->images) != g->images_seen &&
				 n_restart < lengthof(restart))
			restart[n_restart++] = g->partition_id;
	}

	/* the image is in: start again from it, and tell the leader */
	for (int i = 0; i < n_restart; i++)
	{
		KmdGroup   *old = kmd_group_find(restart[i]);
		raft_message m;
		raft_snapshot_meta meta;
		bool		answer = old->has_snapshot_msg;

		if (answer)
		{
			m = old->snapshot_msg;
			meta = old->snapshot_meta;
			m.snapshot = &meta;
		}
		n_parked--;
		g = kmd_group_restart(old);

		/*
		 * The leader's last snapshot message may be newer than the image
		 * (it compacted further while the image was copied): then it asks
		 * for another image, not for the core to take its marker.
		 */
		if (g != NULL && answer && !kmd_image_intercept(g, &m))
			(void) raft_step(g->r, &m);
		elog(LOG, "kommander: partition %d continues from its image at index " UINT64_FORMAT,
			 restart[i], g != NULL ? raft_first_index(g->r) - 1 : 0);
	}
	if (n_restart > 0)
		kmd_groups_touched();
}

/* The partition ids qsort orders indexes into (by_partition) */
static const int32 *sorting_ids;

static int
by_partition(const void *a, const void *b)
{
	int32		x = sorting_ids[*(const int *) a];
	int32		y = sorting_ids[*(const int *) b];

	return (x > y) - (x < y);
}

/*
 * Compact what has grown past the threshold.  At most once a second: the
 * threshold is in entries, and a pass costs a transaction.
 */
void
kmd_compact_groups(TimestampTz now)
{
	static TimestampTz last = 0;
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;
	int32	   *ids = NULL;
	uint64	   *froms = NULL;
	raft_snapshot_meta *metas = NULL;
	int			n = 0;
	int			cap = 0;
	uint64		keep = (uint64) kmd_snapshot_threshold;
	uint64		step = (uint64) kmd_max_batch_entries;

	if (!TimestampDifferenceExceeds(last, now, 1000))
		return;
	last = now;

	hash_seq_init(&seq, kmd_worker_groups());
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		uint64		applied = pg_atomic_read_u64(&g->part->applied_index);
		uint64		marker = raft_first_index(g->r) - 1;

		if (g->parked || g->image_wanted || applied < marker + keep + step)
			continue;
		if (raft_compact(g->r, applied - keep) != RAFT_OK)
			continue;
		if (n == cap)
		{
			cap = cap ? cap * 2 : 16;
			ids = ids ? repalloc(ids, sizeof(int32) * cap) : palloc(sizeof(int32) * cap);
			froms = froms ? repalloc(froms, sizeof(uint64) * cap) : palloc(sizeof(uint64) * cap);
			metas = metas ? repalloc(metas, sizeof(raft_snapshot_meta) * cap) :
				palloc(sizeof(raft_snapshot_meta) * cap);
		}
		ids[n] = g->partition_id;
		froms[n] = marker;
		metas[n] = *raft_snapshot(g->r);
		n++;
	}
	if (n > 0)
	{
		MemoryContext cxt;
		int		   *order = palloc(sizeof(int) * n);

		/*
		 * Their rows of kommander.snapshot in partition order, as every
		 * transaction that updates several takes them: the apply worker's
		 * marking of partitions for images would otherwise deadlock with
		 * this one (the detector ending one of the two workers).
		 */
		for (int i = 0; i < n; i++)
			order[i] = i;
		sorting_ids = ids;
		qsort(order, n, sizeof(int), by_partition);
		cxt = kmd_xact_begin();
		for (int k = 0; k < n; k++)
		{
			int			i = order[k];

			kmd_storage_compact(ids[i], froms[i], &metas[i]);
		}
		kmd_xact_commit(cxt);
		kmd_stat_add(KMD_STAT_COMPACTION_PASSES, -1, 1);
		for (int i = 0; i < n; i++)
			kmd_stat_add(KMD_STAT_COMPACTIONS, ids[i], 1);
		kmd_groups_touched();
	}
}
