/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The Raft worker: one background process hosting the Raft groups of
 *	  every partition that hashes to it, in a single event loop.
 *
 * One iteration: step the batches peers delivered into our inbox (peers.c),
 * tick the groups when a tick is due, take requests from backends' slots
 * (serve.c serves them and the ones peers forward), collect every group's
 * ready batch, send the leaders' appends, persist all new entries and hard
 * states in ONE transaction (one WAL flush covers every partition: group
 * commit), send the messages that needed that durability, tell the apply
 * worker how far each partition is committed, and advance.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "balance.h"
#include "barrier.h"
#include "command.h"
#include "errcodes.h"
#include "events.h"
#include "guc.h"
#include "lease.h"
#include "peers.h"
#include "shmem.h"
#include "serve.h"
#include "snapshot.h"
#include "stats.h"
#include "storage.h"
#include "worker.h"
#include "xact.h"

static int	worker_no = -1;
static HTAB *groups = NULL;
static MemoryContext raft_cxt = NULL;
static MemoryContext loop_cxt = NULL;
static uint64 seen_map_version = 0;
static bool groups_missing = true;

/*
 * Some group may have a ready batch or a changed status.  Set by whatever
 * calls into a group (a message, a request, a tick of an awake group, a
 * membership step, a transfer, a start); cleared once process_ready and
 * publish_status have looked at every group.  An idle iteration skips both.
 */
static bool groups_dirty = true;

/* Sends held for the next iteration (see hold_sends); held by the last one */
static bool holding = false;
static bool held = false;

int
kmd_worker_number(void)
{
	return worker_no;
}

void
kmd_groups_touched(void)
{
	groups_dirty = true;
}

/* ------------------------------------------------------------------------
 * The core's memory lives in a context of its own
 * ------------------------------------------------------------------------
 */
static void *
raft_pg_alloc(void *ctx, size_t size)
{
	return MemoryContextAllocExtended(raft_cxt, Max(size, 1), MCXT_ALLOC_HUGE);
}

static void *
raft_pg_realloc(void *ctx, void *p, size_t size)
{
	return repalloc_huge(p, Max(size, 1));
}

static void
raft_pg_free(void *ctx, void *p)
{
	pfree(p);
}

static const raft_allocator pg_allocator = {
	raft_pg_alloc, raft_pg_realloc, raft_pg_free, NULL
};

/* ------------------------------------------------------------------------
 * Groups
 * ------------------------------------------------------------------------
 */
KmdGroup *
kmd_group_find(int32 partition_id)
{
	return hash_search(groups, &partition_id, HASH_FIND, NULL);
}

HTAB *
kmd_worker_groups(void)
{
	return groups;
}

static void
fill_options(raft_options *opts)
{
	uint64		seed = ((uint64) MyProcPid << 32) ^ (uint64) GetCurrentTimestamp();

	raft_options_init(opts, (raft_id) kmd_shared->local_node_id, seed);
	opts->heartbeat_ticks = 1;
	opts->election_ticks = Max(2, kmd_election_timeout / kmd_heartbeat_interval);
	opts->max_msg_entries = kmd_max_batch_entries;
	/* one append always fits in a batch a peer's inbox takes */
	opts->max_msg_bytes = Min(kmd_max_batch_bytes, KMD_MAX_BATCH / 2);
	opts->max_inflight = kmd_max_inflight_batches;
	opts->allocator = &pg_allocator;
	/* idle partitions cost nothing: the nodes' keepalives watch liveness */
	opts->quiesce = true;
}

/* Start the group of a partition from its durable state. */
static void
group_start(int32 partition_id)
{
	raft_durable state;
	raft_options opts;
	KmdGroup   *g;
	KmdPartition *part;
	bool		found;
	bool		image_wanted;
	uint64		images;

	/* a partition gone from shared memory since it was listed: nothing to run */
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(partition_id);
	LWLockRelease(kmd_shared->lock);
	if (part == NULL)
		return;

	/*
	 * Before the load: an image installed meanwhile restarts the group.
	 * The load reads the tables as they are now, not as the snapshot of
	 * the transaction that starts every group: an image committed since
	 * would be counted and not loaded.
	 */
	images = pg_atomic_read_u64(&part->images);
	PushActiveSnapshot(GetLatestSnapshot());
	kmd_storage_load(partition_id, &state, &image_wanted);
	PopActiveSnapshot();
	fill_options(&opts);
	g = hash_search(groups, &partition_id, HASH_ENTER, &found);
	Assert(!found);
	g->r = raft_new(&opts, &state);
	if (g->r == NULL)
	{
		hash_search(groups, &partition_id, HASH_REMOVE, NULL);
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("durable Raft state of partition %d is inconsistent", partition_id)));
	}
	groups_dirty = true;
	g->durable_last = raft_last_index(g->r);
	g->durable_term = state.hard_state.term;
	g->durable_vote = state.hard_state.vote;
	g->commit_unsaved = false;
	memset(&g->rec, 0, sizeof(g->rec));
	g->behind_woken = 0;
	memset(&g->merge, 0, sizeof(g->merge));
	g->barrier_for = 0;
	g->barrier_index = 0;
	g->barrier_term = 0;
	g->image_wanted = image_wanted;
	g->parked = false;
	g->awaiting_image = false;
	g->images_seen = images;
	g->has_snapshot_msg = false;

	/* the entry is this group's until it stops, unless it went meanwhile */
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	if (part->partition_id != partition_id || part->state == KMD_PART_GONE)
	{
		LWLockRelease(kmd_shared->lock);
		raft_free(g->r);
		hash_search(groups, &partition_id, HASH_REMOVE, NULL);
		return;
	}
	part->hosted = true;
	LWLockRelease(kmd_shared->lock);
	g->part = part;
	g->unhosted_by = RAFT_NONE;
	g->unhosted_until = 0;
	g->lost_warned_at = 0;
	g->handoff_tried = 0;
	g->handover_to = RAFT_NONE;
	g->handover_term = 0;
	g->prevotes_counted = 0;
	g->idle_last = 0;
	g->idle_since = 0;
	g->forget_index = 0;

	/*
	 * A group with a log whose state must come from an image (an image of
	 * the system partition brought DDL, and this node stopped before the
	 * partition's own came): no leader sends it a snapshot, so ask now.
	 * Any node will do: the install refuses an image older than what this
	 * node applied, and asks the next one.  Asked before the commit index
	 * is published, which the apply worker would otherwise apply up to,
	 * onto rows the image is to replace.
	 */
	if (image_wanted && raft_get_conf(g->r)->n > 0)
		kmd_image_ask_any(partition_id);
	kmd_images_adopt(g);
	pg_atomic_write_u64(&part->commit_index, state.hard_state.commit);
	elog(DEBUG1, "kommander worker %d started partition %d at term " UINT64_FORMAT
		 ", last index " UINT64_FORMAT, worker_no, partition_id,
		 state.hard_state.term, g->durable_last);
}

/*
 * An offline partition's group is started again after 10 s, doubling up to
 * 5 min while it fails: its state may have been repaired.
 */
#define OFFLINE_RETRY_MIN_MS 10000
#define OFFLINE_RETRY_MAX_MS 300000

/*
 * Start the group of a partition, or take the partition offline on this
 * node when its durable state cannot be loaded (inconsistent, malformed):
 * the worker's other partitions go on, and the group is tried again later.
 * A failure of the node itself (kmd_node_failure_code) is raised: the
 * worker stops and is started again.  Returns whether the group started.
 */
static bool
group_start_or_offline(int32 partition_id)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile bool started = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		KmdPartition *part;
		int			tries = 0;

		group_start(partition_id);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
		part = kmd_partition_find(partition_id);
		if (part != NULL && part->offline)
		{
			part->offline = false;
			tries = part->offline_tries;
			part->offline_tries = 0;
		}
		LWLockRelease(kmd_shared->lock);
		if (tries > 0)
			ereport(LOG,
					(errmsg("kommander: partition %d is online again on this node", partition_id)));
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		KmdPartition *part;
		char	   *error;

		started = false;
		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		if (kmd_node_failure_code(edata->sqlerrcode) &&
			edata->sqlerrcode != ERRCODE_DATA_CORRUPTED)
			PG_RE_THROW();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;

		error = psprintf("%s: %s", unpack_sql_state(edata->sqlerrcode), edata->message);
		LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
		part = kmd_partition_find(partition_id);
		if (part != NULL)
		{
			TimestampTz now = GetCurrentTimestamp();
			int			delay = OFFLINE_RETRY_MIN_MS;

			if (!part->offline)
			{
				part->offline = true;
				part->offline_since = now;
				part->offline_tries = 0;
			}
			for (int i = 0; i < part->offline_tries && delay < OFFLINE_RETRY_MAX_MS; i++)
				delay *= 2;
			part->offline_tries++;
			part->offline_retry_at = TimestampTzPlusMilliseconds(now, Min(delay, OFFLINE_RETRY_MAX_MS));
			kmd_copy_text(part->offline_error, error, sizeof(part->offline_error));
		}
		LWLockRelease(kmd_shared->lock);
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("kommander: partition %d is offline on this node: %s",
						partition_id, edata->message),
				 errdetail("Its durable Raft state here (kommander.log, kommander.hard_state, kommander.snapshot) cannot be loaded; the other partitions go on."),
				 errhint("Repair that state, or remove this node and join it again; the partition is tried again every few minutes.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return started;
}

/* Stop a group; its partition's entry in shared memory shows no role. */
static void
group_stop(KmdGroup *g)
{
	int32		partition_id = g->partition_id;
	KmdPartition *part = g->part;

	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	if (part->partition_id == partition_id)
	{
		part->role = -1;
		part->hosted = false;
		part->leader = 0;
		part->image_state = KMD_IMAGE_NONE;
	}
	LWLockRelease(kmd_shared->lock);
	raft_free(g->r);
	hash_search(groups, &partition_id, HASH_REMOVE, NULL);
	kmd_lease_tick_forget(partition_id);
	groups_dirty = true;
}

KmdGroup *
kmd_group_restart(KmdGroup *g)
{
	int32		partition_id = g->partition_id;
	MemoryContext cxt;

	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	if (g->part->partition_id == partition_id)
		g->part->hosted = false;
	LWLockRelease(kmd_shared->lock);
	raft_free(g->r);
	hash_search(groups, &partition_id, HASH_REMOVE, NULL);
	cxt = kmd_xact_begin();
	group_start(partition_id);
	kmd_xact_commit(cxt);
	return kmd_group_find(partition_id);
}

/*
 * Stop the groups of merged-away partitions and delete their durable
 * state: a node that applied the merge has applied the right partition up
 * to its freeze, and a node behind on it takes an image of the survivor.
 * At startup also the state left by a crash before that.
 */
static void
stop_gone_groups(bool startup)
{
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;
	int32		ids[256];
	int			n = 0;

	hash_seq_init(&seq, groups);
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		bool		gone;

		LWLockAcquire(kmd_shared->lock, LW_SHARED);
		gone = g->part->partition_id != g->partition_id ||
			g->part->state == KMD_PART_GONE;
		LWLockRelease(kmd_shared->lock);
		if (gone && n < lengthof(ids))
			ids[n++] = g->partition_id;
	}
	for (int i = 0; i < n; i++)
	{
		g = kmd_group_find(ids[i]);
		if (g->parked)
			kmd_images_forget(g);
		group_stop(g);
	}
	if (n > 0 || startup)
	{
		MemoryContext cxt = kmd_xact_begin();

		if (startup)
		{
			if (SPI_execute("SELECT m.partition_id FROM kommander.partition_map m "
							"JOIN kommander.hard_state h USING (partition_id) WHERE m.state = 'gone'",
							true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read kommander.partition_map");
			for (uint64 i = 0; i < SPI_processed && n < lengthof(ids); i++)
			{
				bool		isnull;
				int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
															 SPI_tuptable->tupdesc, 1, &isnull));

				if (kmd_worker_for_partition(id) == worker_no)
					ids[n++] = id;
			}
		}
		for (int i = 0; i < n; i++)
			kmd_storage_drop_group(ids[i]);
		kmd_xact_commit(cxt);
		for (int i = 0; i < n; i++)
			elog(DEBUG1, "kommander worker %d dropped merged-away partition %d",
				 worker_no, ids[i]);
	}
}

/*
 * Start the groups of partitions that hash to this worker and have durable
 * state here.  Partitions whose state is not there yet (a bootstrap still
 * committing) are retried later, as are those beyond one pass's batch.
 * Merged-away partitions stop.
 */
static void
sync_groups(bool force)
{
	int32		ids[1024];
	int			n = 0;
	uint64		version;
	MemoryContext cxt;
	bool		offline_waits = false;
	TimestampTz now = GetCurrentTimestamp();

	/* nothing to look for unless the map moved or a group was missing */
	if (kmd_shared->map_version == seen_map_version && !groups_missing && !force)
		return;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	version = kmd_shared->map_version;
	/* not a member yet (or a refresh raced a join): groups need an id */
	if (!kmd_shared->member || kmd_shared->local_node_id <= 0)
	{
		LWLockRelease(kmd_shared->lock);
		groups_missing = true;
		return;
	}
	for (int i = 0; i < kmd_shared->partitions_used && n < lengthof(ids); i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];

		/* a merged-away partition runs no group, here or anywhere */
		if (part->partition_id < 0 || part->state == KMD_PART_GONE ||
			kmd_worker_for_partition(part->partition_id) != worker_no ||
			kmd_group_find(part->partition_id) != NULL)
			continue;
		/* an offline partition waits for its next try */
		if (part->offline && part->offline_retry_at > now)
		{
			offline_waits = true;
			continue;
		}
		ids[n++] = part->partition_id;
	}
	LWLockRelease(kmd_shared->lock);

	seen_map_version = version;
	groups_missing = (n == lengthof(ids)) || offline_waits;
	stop_gone_groups(false);
	if (n == 0)
		return;

	cxt = kmd_xact_begin();
	for (int i = 0; i < n; i++)
	{
		if (!kmd_storage_group_exists(ids[i]) || !group_start_or_offline(ids[i]))
			groups_missing = true;
	}
	kmd_xact_commit(cxt);
}

/* ------------------------------------------------------------------------
 * Ready batches
 * ------------------------------------------------------------------------
 */
/*
 * Hand newly committed entries to the apply worker through shared memory,
 * so that it does not read them back from the table.  What does not fit is
 * left out: the apply worker then reads the table.
 */
static void
feed_committed(int32 partition_id, const raft_ready *rd)
{
	KmdInbox   *feed = kmd_shared->workers[worker_no].feed;

	for (size_t i = 0; i < rd->n_committed; i++)
	{
		const raft_entry *e = &rd->committed[i];
		uint32		len = sizeof(KmdFeedEntry) + e->len;
		char	   *rec = palloc(len);
		KmdFeedEntry *h = (KmdFeedEntry *) rec;

		h->partition_id = partition_id;
		h->kind = e->type;
		h->index = e->index;
		h->term = e->term;
		if (e->len > 0)
			memcpy(rec + sizeof(KmdFeedEntry), e->data, e->len);
		if (!kmd_inbox_put(feed, rec, len))
			break;
		pfree(rec);
	}
}

typedef struct GroupReady
{
	KmdGroup   *g;
	raft_ready	rd;
	bool		early;			/* nothing to write now; announced before
								 * the write: see below */
} GroupReady;

/*
 * Must this batch be durable before its messages go out?  Entries, a
 * snapshot marker, a term or a vote must; a commit index alone need not:
 * a restart learns it again from the leader (and takes its snapshot's
 * index for committed until then).  So a new commit index is written
 * with a new term or vote, or else by save_commits() at the next tick, in
 * a transaction that does not wait for its flush, whether or not the
 * batch that brought it writes entries.  (It was an fsync on every
 * write's path, then a transaction of its own per write and node, then
 * a row updated per group and write.)
 */
static bool
needs_sync(const KmdGroup *g, const raft_ready *rd)
{
	return rd->has_snapshot || rd->n_entries > 0 ||
		(rd->has_hard_state && (rd->hard_state.term != g->durable_term ||
								rd->hard_state.vote != g->durable_vote));
}

/*
 * Steps 3-5 for one group, once what its batch asks to be durable is:
 * send its acknowledgements, publish its commit index, hand its committed
 * entries to the apply worker and answer its reads.
 */
static void
announce(GroupReady *gr, bool *wake_apply)
{
	raft_ready *rd = &gr->rd;
	KmdPartition *part;

	/* 3. what is now durable may be announced and applied */
	for (size_t j = 0; j < rd->n_persist_messages; j++)
		kmd_peers_queue(gr->g->partition_id, &rd->persist_messages[j]);
	part = gr->g->part;
	if (rd->has_hard_state &&
		pg_atomic_read_u64(&part->commit_index) < rd->hard_state.commit)
	{
		/* only this worker writes it: no lock needed */
		pg_atomic_write_u64(&part->commit_index, rd->hard_state.commit);
		*wake_apply = true;
	}
#ifdef KMD_BROKEN_EARLY_COMMIT

	/*
	 * A deliberately broken build, for scripts/nemesis.sh --broken only:
	 * a leader takes what it holds durably for committed, so it applies
	 * and answers a proposal that no quorum holds yet.  The nemesis test
	 * must catch it.
	 */
	if (raft_get_role(gr->g->r) == RAFT_LEADER &&
		pg_atomic_read_u64(&part->commit_index) < gr->g->durable_last)
	{
		pg_atomic_write_u64(&part->commit_index, gr->g->durable_last);
		*wake_apply = true;
	}
#endif
	/* entries that wait for an image would only fill the feed */
	if (!gr->g->awaiting_image)
		feed_committed(gr->g->partition_id, rd);
	kmd_stats_ready(gr->g->partition_id, rd);
	for (size_t j = 0; j < rd->n_reads; j++)
	{
		const raft_read_state *rs = &rd->reads[j];

		if (rs->index == 0)
			kmd_slot_fail(KMD_READ_SLOT(rs->context), KMD_READ_GEN(rs->context),
					  ERRCODE_KMD_NO_QUORUM, "leadership changed during a read barrier");
		else
			(void) kmd_slot_complete(KMD_READ_SLOT(rs->context),
									 KMD_READ_GEN(rs->context), "00000", NULL,
									 NULL, NULL, rs->index, 0, true, NULL, 0, 0);
	}
}

/*
 * May the messages queued after the write (acknowledgements, answers to
 * votes) go out with the next iteration's, instead of now?  `appended':
 * this iteration sent a leader's messages before its write.  A node that
 * leads some partitions and follows others sends each peer its appends
 * before its write and its acknowledgements after it: two batches per
 * peer and iteration, where one would do.  So when
 * input is waiting already (the latch is set: a proposal, a batch from a
 * peer) and this iteration sent a leader's messages before its write (so
 * the next one likely will too; a node that only follows, or leads an
 * idle group, gains nothing from waiting), what is queued waits for the
 * next iteration's first send, at most one iteration, and only if none of
 * it points into a group's log.
 */
static bool
hold_sends(bool appended)
{
	return !held && appended && MyLatch->is_set && kmd_peers_may_hold();
}

/* qsort: GroupReady by partition id */
static int
ready_by_partition(const void *a, const void *b)
{
	int32		x = ((const GroupReady *) a)->g->partition_id;
	int32		y = ((const GroupReady *) b)->g->partition_id;

	return (x > y) - (x < y);
}

/*
 * Collect, persist, send and advance the ready batches of every group, in
 * the durability order of raft.h.  Returns whether a group has more;
 * *worked says whether any group had something.
 */
static bool
process_ready(bool *worked)
{
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;
	GroupReady *ready;
	int			n = 0;
	int			n_snapshots = 0;
	int			cap = 16;
	bool		persist = false;
	bool		more = false;
	bool		wake_apply = false;
	bool		appended = false;

	ready = palloc(sizeof(GroupReady) * cap);
	hash_seq_init(&seq, groups);
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		if (!raft_has_ready(g->r))
			continue;
		if (n == cap)
		{
			cap *= 2;
			ready = repalloc(ready, sizeof(GroupReady) * cap);
		}
		ready[n].g = g;
		raft_ready_get(g->r, &ready[n].rd);
		ready[n].early = !needs_sync(g, &ready[n].rd);
		if (ready[n].rd.has_snapshot)
			n_snapshots++;
		if (!ready[n].early)
			persist = true;
		else if (ready[n].rd.has_hard_state)
		{
			/* a new commit index alone, written later: see needs_sync */
			g->commit_unsaved = true;
			g->unsaved = ready[n].rd.hard_state;
		}
		n++;
	}
	*worked = n > 0;
	if (n == 0)
		return false;

	/*
	 * Snapshot markers of several groups: their rows of kommander.snapshot
	 * in partition order, as compaction and the apply worker take them
	 * (hash order could deadlock with the apply worker's marking of
	 * partitions for images, the detector ending one of the two).
	 */
	if (n_snapshots > 1)
		qsort(ready, n, sizeof(GroupReady), ready_by_partition);

	/*
	 * A batch that needs no flush (a new commit index, and nothing else to
	 * persist but the hard state that carries it) holds nothing that is not
	 * durable already: its committed entries were written by earlier
	 * batches.  So it is announced before the write (which does not write
	 * its commit index: see needs_sync), and before the sends: the apply
	 * worker starts on a leader's new commit while its followers are told
	 * of it.  A restart may then find a commit index behind the applied
	 * one; it learns the commit again from the leader, and the apply worker
	 * waits.
	 */
	for (int i = 0; i < n; i++)
		if (ready[i].early)
			announce(&ready[i], &wake_apply);
	if (wake_apply)
	{
		kmd_wake_apply();
		wake_apply = false;
	}

	/*
	 * 1. the leaders' appends may go before our own write (§10.2.1); the
	 * early batches above took step 3 first, holding nothing not durable
	 */
	for (int i = 0; i < n; i++)
	{
		for (size_t j = 0; j < ready[i].rd.n_messages; j++)
			kmd_peers_queue(ready[i].g->partition_id, &ready[i].rd.messages[j]);
		if (ready[i].rd.n_messages > 0 && raft_get_role(ready[i].g->r) == RAFT_LEADER)
			appended = true;
	}
	kmd_peers_flush();

	/* 2. one transaction, one WAL flush, for every group */
	if (persist)
	{
		TimestampTz start = GetCurrentTimestamp();
		MemoryContext cxt = kmd_xact_begin();
		KmdStorageBatch batch = {0};

		for (int i = 0; i < n; i++)
		{
			KmdGroup   *g = ready[i].g;

			if (ready[i].early)
				continue;
			kmd_storage_save(&batch, g->partition_id, &ready[i].rd, &g->durable_last);
			if (!ready[i].rd.has_hard_state)
				continue;
			/* a new commit index alone waits for the tick: see needs_sync */
			if (ready[i].rd.hard_state.term == g->durable_term &&
				ready[i].rd.hard_state.vote == g->durable_vote)
			{
				g->commit_unsaved = true;
				g->unsaved = ready[i].rd.hard_state;
				continue;
			}
			kmd_storage_save_hard_state(&batch, g->partition_id, &ready[i].rd.hard_state);
			g->commit_unsaved = false;
		}
		kmd_storage_flush(&batch);
		kmd_xact_commit(cxt);
		kmd_stats_log_append(start, true);
		for (int i = 0; i < n; i++)
			if (!ready[i].early && ready[i].rd.has_hard_state)
			{
				ready[i].g->durable_term = ready[i].rd.hard_state.term;
				ready[i].g->durable_vote = ready[i].rd.hard_state.vote;
			}
	}

	for (int i = 0; i < n; i++)
		if (!ready[i].early)
			announce(&ready[i], &wake_apply);
	holding = hold_sends(appended);
	if (!holding)
		kmd_peers_flush();
	if (wake_apply)
		kmd_wake_apply();

	for (int i = 0; i < n; i++)
	{
		raft_advance(ready[i].g->r, &ready[i].rd);
		more |= raft_has_ready(ready[i].g->r);
	}
	return more;
}

/*
 * Write the commit indexes process_ready() left unsaved and no write of
 * their group has carried since: at each tick, so a group that went quiet
 * has its last commit index in kommander.hard_state a tick later.  The
 * transaction does not wait for its flush.  A parked group writes nothing
 * (an image is on its way, with its own commit index).
 */
static void
save_commits(void)
{
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;
	MemoryContext cxt = NULL;
	KmdStorageBatch batch = {0};
	TimestampTz start = 0;

	hash_seq_init(&seq, groups);
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		if (!g->commit_unsaved || g->parked)
			continue;
		if (cxt == NULL)
		{
			start = GetCurrentTimestamp();
			cxt = kmd_xact_begin();
		}
		kmd_storage_save_hard_state(&batch, g->partition_id, &g->unsaved);
		g->commit_unsaved = false;
	}
	if (cxt == NULL)
		return;
	kmd_storage_flush(&batch);
	(void) set_config_option("synchronous_commit", "off", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
	kmd_xact_commit(cxt);
	kmd_stats_log_append(start, false);
}

/*
 * Show each group's state to backends (views, routing).  This worker is the
 * only writer of these fields, so it compares without the lock and takes it
 * only when something changed.
 */
static void
publish_status(void)
{
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;
	bool		leader_changed = false;
	bool		locked = false;

	hash_seq_init(&seq, groups);
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		KmdPartition *part = g->part;
		const raft_conf *conf = raft_get_conf(g->r);
		int32		member_ids[KMD_MAX_NODES];
		int32		member_roles[KMD_MAX_NODES];
		int			n_members = 0;
		raft_index	group_commit = raft_group_commit(g->r);

		/* an atomic of its own, written without the lock */
		if (pg_atomic_read_u64(&part->group_commit) != group_commit)
			pg_atomic_write_u64(&part->group_commit, group_commit);
		/* every round, also those that leave the role and term as they were */
		if (raft_prevotes_started(g->r) != g->prevotes_counted)
		{
			kmd_stat_add(KMD_STAT_PREVOTES, g->partition_id,
						 raft_prevotes_started(g->r) - g->prevotes_counted);
			g->prevotes_counted = raft_prevotes_started(g->r);
		}
		for (uint32 i = 0; i < conf->n && n_members < KMD_MAX_NODES; i++)
		{
			member_ids[n_members] = (int32) conf->members[i].id;
			member_roles[n_members++] = (int32) conf->members[i].role;
		}
		if (part->role == (int32) raft_get_role(g->r) &&
			part->leader == (int32) raft_leader(g->r) &&
			part->term == raft_get_term(g->r) &&
			part->last_index == raft_last_index(g->r) &&
			part->snapshot_index == raft_first_index(g->r) - 1 &&
			part->voters == (int32) raft_conf_voters(conf) &&
			part->n_members == n_members &&
			memcmp(part->member_ids, member_ids, sizeof(int32) * n_members) == 0 &&
			memcmp(part->member_roles, member_roles, sizeof(int32) * n_members) == 0 &&
			part->conf_committed == (raft_conf_index(g->r) <= raft_commit_index(g->r)) &&
			part->quiesced == raft_quiesced(g->r))
			continue;
		if (!locked)
		{
			LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
			locked = true;
		}
		if (part->leader != (int32) raft_leader(g->r) ||
			part->role != (int32) raft_get_role(g->r))
			leader_changed = true;
		if (part->role != (int32) raft_get_role(g->r) ||
			part->leader != (int32) raft_leader(g->r) ||
			part->term != raft_get_term(g->r))
			kmd_stats_group_changed(part, g->partition_id, part->role, raft_get_role(g->r),
									part->leader, raft_leader(g->r), part->term,
									raft_get_term(g->r));
		part->role = raft_get_role(g->r);
		part->leader = raft_leader(g->r);
		part->term = raft_get_term(g->r);
		part->last_index = raft_last_index(g->r);
		part->snapshot_index = raft_first_index(g->r) - 1;
		part->is_learner = raft_conf_role(conf, raft_self(g->r)) != RAFT_VOTER;
		part->voters = (int32) raft_conf_voters(conf);
		part->n_members = n_members;
		memcpy(part->member_ids, member_ids, sizeof(int32) * n_members);
		memcpy(part->member_roles, member_roles, sizeof(int32) * n_members);
		part->conf_committed = raft_conf_index(g->r) <= raft_commit_index(g->r);
		part->quiesced = raft_quiesced(g->r);
	}
	if (locked)
		LWLockRelease(kmd_shared->lock);
	if (leader_changed)
		ConditionVariableBroadcast(&kmd_shared->leader_cv);
}

/*
 * The automatic balancer, rate-limited to one transfer per worker and
 * kommander.balance_interval: if this node leads more than its share of the
 * user partitions, one of this worker's partitions goes to the least loaded
 * voter (host_balance_to).
 */
static void
balance(void)
{
	static TimestampTz last = 0;
	TimestampTz now = GetCurrentTimestamp();
	host_load	l;
	int			to;
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;

	if (kmd_balance_interval <= 0 ||
		!TimestampDifferenceExceeds(last, now, kmd_balance_interval))
		return;
	last = now;
	kmd_leader_load(&l);
	to = host_balance_to(&l, (raft_id) kmd_shared->local_node_id);
	if (to < 0)
		return;

	hash_seq_init(&seq, groups);
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		/* never over a transfer under way: kmd_transfer_leader's, say */
		if (g->partition_id > 0 && !g->parked && raft_get_role(g->r) == RAFT_LEADER &&
			raft_transferee(g->r) == RAFT_NONE &&
			kmd_partition_state(g->partition_id) == KMD_PART_ACTIVE &&
			raft_conf_role(raft_get_conf(g->r), l.voters[to]) == RAFT_VOTER &&
			raft_transfer_leader(g->r, l.voters[to]) == RAFT_OK)
		{
			groups_dirty = true;
			kmd_stat_add(KMD_STAT_BALANCER_MOVES, g->partition_id, 1);
			elog(DEBUG1, "kommander: handing partition %d to node %u to balance leaders",
				 g->partition_id, l.voters[to]);
			hash_seq_term(&seq);
			break;
		}
	}
}

/*
 * A group led here whose entries this node's apply worker has been held
 * back from (a lock a session holds, an entry it cannot decode; failure.c)
 * for HANDOFF_STALL election timeouts goes to the most up-to-date voter
 * that answers: the group's leases count down where its entries are
 * applied, so none granted or renewed meanwhile would expire, and a
 * leader that applies serves reads and merges.  Tried again as often
 * while the stall lasts.
 */
#define HANDOFF_STALL 4

static void
hand_off_if_stalled(KmdGroup *g, const host_heard *alive, TimestampTz now)
{
	TimestampTz since = 0;
	raft_id		to;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	if (g->part->apply_stall == KMD_STALL_RETRYING || g->part->apply_stall == KMD_STALL_STOPPED)
		since = g->part->apply_stalled_since;
	LWLockRelease(kmd_shared->lock);
	if (since == 0 ||
		!TimestampDifferenceExceeds(Max(since, g->handoff_tried), now,
									HANDOFF_STALL * kmd_election_timeout))
		return;
	g->handoff_tried = now;
	to = host_handoff_to(g->r, alive);
	if (to == RAFT_NONE || raft_transfer_leader(g->r, to) != RAFT_OK)
		return;
	groups_dirty = true;
	kmd_stat_add(KMD_STAT_STALL_HANDOFFS, g->partition_id, 1);
	ereport(LOG,
			(errmsg("kommander: handing partition %d to node %u: this node has not applied its entries for %ld ms",
					g->partition_id, to, (long) ((now - since) / 1000)),
			 errhint("kommander.partitions shows the error that holds the partition back here.")));
}

/*
 * How often an idle node shows it is alive, and how often a worker whose
 * groups all rest wakes up: often enough that a peer is never taken for
 * silent (no word within an election timeout) while it is up.
 */
static int
idle_interval(void)
{
	return Max(kmd_heartbeat_interval, kmd_election_timeout / 4);
}

/*
 * Tick every group; returns whether some group is awake (not quiesced), in
 * which case the next tick is due in a heartbeat interval, else in an idle
 * interval.
 */
static bool
tick_all(void)
{
	static host_heard was_alive;
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;
	host_heard	alive;
	bool		regained = false;
	TimestampTz now = GetCurrentTimestamp();
	uint64		now_ms = kmd_host_ms(now);
	uint64		roster_version;
	bool		any_frozen;
	bool		any_stalled = false;
	bool		awake = false;
	KmdGroup  **led = palloc(sizeof(KmdGroup *) * Max(hash_get_num_entries(groups), 1));
	int			n_led = 0;

	/*
	 * Worker 0 tells the peers that this node lives; every other worker
	 * keeps its own streams heard, which the peers end after ten election
	 * timeouts of silence (a worker whose groups all rest sends nothing).
	 */
	if (worker_no == 0)
	{
		kmd_peers_keepalives(idle_interval());
		kmd_peers_tell_offline(idle_interval());
	}
	else
		kmd_peers_keepalives(2 * kmd_election_timeout);
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	roster_version = kmd_shared->roster_version;
	any_frozen = kmd_shared->n_frozen > 0;
	for (int i = 0; i < kmd_shared->partitions_used && !any_stalled; i++)
		any_stalled = kmd_shared->partitions[i].apply_stall == KMD_STALL_RETRYING ||
			kmd_shared->partitions[i].apply_stall == KMD_STALL_STOPPED;
	LWLockRelease(kmd_shared->lock);
	kmd_host_heard(&alive, now);

	/* a node heard from again: leaders here may have rested without it */
	for (uint32 i = 0; i < alive.n; i++)
		regained |= !host_heard_has(&was_alive, alive.ids[i]);
	was_alive = alive;

	hash_seq_init(&seq, groups);
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		/* a parked group waits for its image, timers and all */
		if (g->parked)
			continue;
		/*
		 * A quiesced follower wakes when its leader's node falls silent, a
		 * quiesced leader when a node is heard again or a member is behind,
		 * for that at most every ten election timeouts.
		 */
		if (host_follower_wakes(g->r, &alive) ||
			host_leader_wakes(g->r, &alive, regained, now_ms, &g->behind_woken,
							  10 * (uint64) kmd_election_timeout, 0))
			raft_unquiesce(g->r);
		/* only an awake group does something on a tick */
		if (!raft_quiesced(g->r))
		{
			groups_dirty = true;
			raft_tick(g->r);
		}

		/*
		 * Membership follows the roster: on taking the lead, on a roster
		 * change, in a new term, and each second while steps remain.
		 */
		if (host_reconcile_due(&g->rec, g->r, raft_get_term(g->r), roster_version,
							   now_ms, 1000))
		{
			groups_dirty = true;
			host_reconciled(&g->rec, kmd_reconcile_group(g), raft_get_term(g->r),
							roster_version, now_ms);
		}
		/* a DDL or registration the apply worker here waits for */
		if (raft_get_role(g->r) == RAFT_LEADER && g->partition_id > 0 &&
			kmd_barrier_propose(g, now))
			groups_dirty = true;
		/* a merge whose caller went away after the freeze */
		if (any_frozen && raft_get_role(g->r) == RAFT_LEADER && g->partition_id > 0)
		{
			groups_dirty = true;
			kmd_finish_merge(g, now);
		}
		if (raft_get_role(g->r) == RAFT_LEADER && g->partition_id > 0)
		{
			led[n_led++] = g;
			if (kmd_lease_forget_if_idle(g, now))
				groups_dirty = true;
		}
		else
		{
			g->idle_since = 0;
			g->forget_index = 0;
		}
		if (any_stalled && raft_get_role(g->r) == RAFT_LEADER)
			hand_off_if_stalled(g, &alive, now);
		awake |= !raft_quiesced(g->r);
	}
	/* leases of the partitions led here whose time is up (lease_clock.c) */
	if (kmd_lease_tick(led, n_led, now))
		groups_dirty = true;
	return awake;
}

/*
 * Barrier entries in the partitions led here, as soon as the apply worker
 * asks for them (the ticks propose again what a new leader cut).
 */
static void
barrier_groups(void)
{
	static uint64 seen = 0;
	uint64		wanted = pg_atomic_read_u64(&kmd_shared->barrier_wanted);
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;

	if (wanted == seen)
		return;
	seen = wanted;
	hash_seq_init(&seq, groups);
	while ((g = hash_seq_search(&seq)) != NULL)
		if (raft_get_role(g->r) == RAFT_LEADER && g->partition_id > 0 &&
			kmd_barrier_propose(g, GetCurrentTimestamp()))
			groups_dirty = true;
}

/* Is some group awake?  Then ticks come every heartbeat interval. */
static bool
any_awake(void)
{
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;

	hash_seq_init(&seq, groups);
	while ((g = hash_seq_search(&seq)) != NULL)
		if (!raft_quiesced(g->r))
		{
			hash_seq_term(&seq);
			return true;
		}
	return false;
}

/* ------------------------------------------------------------------------
 * Main loop
 * ------------------------------------------------------------------------
 */
static void
worker_exit(int code, Datum arg)
{
	/*
	 * An error is FATAL in this process, which exits without an abort:
	 * a lock it held (kmd_shared->lock, shared) would hold the exclusive
	 * one below, and every process after it, for good.
	 */
	LWLockReleaseAll();
	kmd_peers_stop();
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	kmd_shared->workers[worker_no].latch = NULL;
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];

		if (part->partition_id >= 0 &&
			kmd_worker_for_partition(part->partition_id) == worker_no)
		{
			part->role = -1;
			part->hosted = false;
			part->leader = 0;
		}
	}
	LWLockRelease(kmd_shared->lock);
}

static void
wait_for_events(TimestampTz next_tick, bool busy)
{
	/* kept from one wait to the next while the sockets stay the same */
	static WaitEventSet *set = NULL;
	static KmdPeerWait waiting[KMD_MAX_NODES];
	static int	n_waiting = -1;
	KmdPeerWait waits[KMD_MAX_NODES];
	int			n;
	bool		remake;
	WaitEvent	events[KMD_MAX_NODES + 2];
	long		timeout;
	long		retry;

	/*
	 * More to do: go round again at once.  Every source (latch, sockets,
	 * slots, inbox) is looked at by the loop itself, so a latch set before
	 * the reset is not lost.
	 */
	if (busy)
	{
		ResetLatch(MyLatch);
		return;
	}

	/*
	 * A set is an epoll descriptor: making one and closing it on every wait
	 * was a quarter of an idle-ish worker's time.  It is made again when a
	 * connection comes or goes or waits for something else, and at every
	 * wait while one is being set up (libpq may close its socket and open
	 * another under the same number, which the set would not see).
	 */
	n = kmd_peers_wait_events(waits, &retry);
	remake = set == NULL || n != n_waiting ||
		memcmp(waits, waiting, n * sizeof(KmdPeerWait)) != 0;
	for (int i = 0; i < n; i++)
		remake |= waits[i].connecting;
	if (remake)
	{
		if (set != NULL)
			FreeWaitEventSet(set);
		set = CreateWaitEventSet(TopMemoryContext, KMD_MAX_NODES + 2);
		AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		for (int i = 0; i < n; i++)
			AddWaitEventToSet(set, waits[i].events, waits[i].sock, NULL, NULL);
		memcpy(waiting, waits, n * sizeof(KmdPeerWait));
		n_waiting = n;
	}
	/* a returned request that may go again before the tick wakes it */
	if (kmd_serve_wake_at() != 0 && kmd_serve_wake_at() < next_tick)
		next_tick = kmd_serve_wake_at();
	timeout = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_tick);
	if (retry >= 0 && retry < timeout)
		timeout = retry;
	(void) WaitEventSetWait(set, timeout, events, lengthof(events), PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

void
kmd_worker_main(Datum arg)
{
	TimestampTz next_tick;
	HASHCTL		ctl;
	bool		busy = false;

	worker_no = DatumGetInt32(arg);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(kmd_database, NULL, 0);
	/* an acknowledged entry must survive a crash, whatever the defaults */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
	/* and no setting of the node, its database or role stops the log */
	SetConfigOption("default_transaction_read_only", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("default_transaction_isolation", "read committed", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("lock_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("statement_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("idle_in_transaction_session_timeout", "0", PGC_SUSET, PGC_S_OVERRIDE);
	/*
	 * Nor what its statements' names find: the database's owner may set
	 * a search_path for it whose operators would run as this superuser.
	 */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	if (worker_no < 0 || worker_no >= kmd_shared->n_workers)
		elog(FATAL, "kommander worker number %d out of range", worker_no);
	kmd_claim_process(&kmd_shared->workers[worker_no].pid,
					  psprintf("raft worker %d", worker_no));
	kmd_feed_origin_setup(psprintf(KMD_FEED_ORIGIN_PREFIX "worker %d", worker_no));

	raft_cxt = AllocSetContextCreate(TopMemoryContext, "kommander raft",
									 ALLOCSET_DEFAULT_SIZES);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "kommander worker loop",
									 ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int32);
	ctl.entrysize = sizeof(KmdGroup);
	ctl.hcxt = TopMemoryContext;
	groups = hash_create("kommander groups", 64, &ctl,
						 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	kmd_shared->workers[worker_no].latch = MyLatch;
	kmd_shared->workers[worker_no].generation++;
	/* partitions offline in the last run are tried again at once */
	for (int i = 0; i < kmd_shared->partitions_used; i++)
		if (kmd_shared->partitions[i].partition_id >= 0 &&
			kmd_worker_for_partition(kmd_shared->partitions[i].partition_id) == worker_no)
			kmd_shared->partitions[i].offline_retry_at = 0;
	LWLockRelease(kmd_shared->lock);
	before_shmem_exit(worker_exit, 0);

	kmd_peers_start(worker_no);
	stop_gone_groups(true);
	elog(LOG, "kommander worker %d started", worker_no);

	next_tick = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kmd_heartbeat_interval);
	for (;;)
	{
		MemoryContext old;
		bool		tick = false;
		bool		worked = false;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* held sends live in the last iteration's memory */
		if (!held)
			MemoryContextReset(loop_cxt);
		old = MemoryContextSwitchTo(loop_cxt);
		holding = false;

		if (GetCurrentTimestamp() >= next_tick)
			tick = true;
		sync_groups(tick && groups_missing);
		kmd_peers_poll(true);
		kmd_peers_receive();
		if (tick)
		{
			/* a worker whose groups all rest wakes up less often */
			next_tick = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													tick_all() ? kmd_heartbeat_interval :
													idle_interval());
			balance();
			kmd_compact_groups(GetCurrentTimestamp());
			save_commits();
		}
		kmd_serve_slots();
		barrier_groups();
		busy = false;
		if (groups_dirty)
		{
			groups_dirty = false;
			busy = process_ready(&worked);
			groups_dirty = busy;
			publish_status();
			kmd_events_flush();
			kmd_progress_touched();
		}
		kmd_progress_publish();
		kmd_images_step();
		/* replies to forwarded requests, keepalives; unless held */
		if (!holding)
			kmd_peers_flush();
		held = holding;
		kmd_peers_poll(false);

		/* a group woken since (a message, a proposal) ticks at full rate */
		if (worked &&
			next_tick > TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													kmd_heartbeat_interval) &&
			any_awake())
			next_tick = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													kmd_heartbeat_interval);

		kmd_xact_report_stats();
		/* held sends go out in the next iteration, which comes at once */
		wait_for_events(next_tick, busy || held);
		MemoryContextSwitchTo(old);
	}
}
