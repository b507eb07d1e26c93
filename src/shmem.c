/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  Allocation and small helpers for kommander's shared memory: the
 *	  partition table, proposal slots, worker inboxes and the roster cache.
 *
 * The layout and the lock protocol are described in shmem.h.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/shmem.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "shmem.h"
#include "stats.h"

#define KMD_FEED_SIZE (4 * 1024 * 1024)

KmdShared  *kmd_shared = NULL;

static Size
ring_total_size(Size size)
{
	return MAXALIGN(sizeof(KmdInbox)) + MAXALIGN(size);
}

static Size
shmem_size(void)
{
	Size		size = MAXALIGN(sizeof(KmdShared));

	size = add_size(size, mul_size(kmd_max_partitions, sizeof(KmdPartition)));
	size = add_size(size, mul_size(KMD_NUM_SLOTS, MAXALIGN(sizeof(KmdSlot))));
	size = add_size(size, mul_size(KMD_NUM_SLOTS, MAXALIGN(sizeof(KmdSlotBuffers))));
	size = add_size(size, mul_size(kmd_n_workers, ring_total_size(KMD_INBOX_SIZE)));
	size = add_size(size, mul_size(kmd_n_workers, ring_total_size(KMD_FEED_SIZE)));
	return size;
}

static KmdInbox *
ring_init(char *p, Size size, LWLock *lock)
{
	KmdInbox   *ring = (KmdInbox *) p;

	ring->lock = lock;
	ring->head = ring->tail = ring->dropped = 0;
	ring->size = size;
	return ring;
}

/* shmem_request_hook: reserve our memory and our lock. */
void
kmd_shmem_request(void)
{
	RequestAddinShmemSpace(shmem_size());
	RequestNamedLWLockTranche("kommander", 1);
	RequestNamedLWLockTranche("kommander slots", KMD_NUM_SLOTS);
	RequestNamedLWLockTranche("kommander rings", 2 * kmd_n_workers);
}

/*
 * A random number for this run of the node; the clock and the pid when the
 * strong source fails, still different from one run to the next.
 */
static uint64
boot_random(void)
{
	uint64		r;

	if (!pg_strong_random(&r, sizeof(r)))
		r = (uint64) GetCurrentTimestamp() * 6364136223846793005ULL + (uint64) MyProcPid;
	return r;
}

/* shmem_startup_hook: create or attach. */
void
kmd_shmem_startup(void)
{
	bool		found;
	char	   *p;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	kmd_shared = ShmemInitStruct("kommander", shmem_size(), &found);
	if (!found)
	{
		memset(kmd_shared, 0, sizeof(KmdShared));
		kmd_shared->lock = &(GetNamedLWLockTranche("kommander"))->lock;
		kmd_shared->boot_id = boot_random();
		kmd_shared->n_workers = kmd_n_workers;
		kmd_shared->max_partitions = kmd_max_partitions;
		kmd_shared->apply_partition = -1;
		pg_atomic_init_u64(&kmd_shared->image_events, 0);
		pg_atomic_init_u64(&kmd_shared->barrier_wanted, 0);
		ConditionVariableInit(&kmd_shared->applied_cv);
		ConditionVariableInit(&kmd_shared->leader_cv);
		for (int i = 0; i < KMD_MAX_NODES; i++)
		{
			pg_atomic_init_u64(&kmd_shared->nodes[i].last_contact, 0);
			pg_atomic_init_u64(&kmd_shared->nodes[i].batches_dropped, 0);
		}

		p = (char *) kmd_shared + MAXALIGN(sizeof(KmdShared));
		kmd_shared->partitions = (KmdPartition *) p;
		for (int i = 0; i < kmd_max_partitions; i++)
		{
			KmdPartition *part = &kmd_shared->partitions[i];

			memset(part, 0, sizeof(*part));
			part->partition_id = -1;
			part->role = -1;
			pg_atomic_init_u64(&part->images, 0);
			pg_atomic_init_u64(&part->commit_index, 0);
			pg_atomic_init_u64(&part->group_commit, 0);
			pg_atomic_init_u64(&part->applied_index, 0);
			pg_atomic_init_u64(&part->applied_term, 0);
		}
		p += kmd_max_partitions * sizeof(KmdPartition);

		kmd_shared->slots = (KmdSlot *) p;
		for (int i = 0; i < KMD_NUM_SLOTS; i++)
		{
			KmdSlot    *slot = (KmdSlot *) (p + i * MAXALIGN(sizeof(KmdSlot)));

			KmdSlotBuffers *buf = (KmdSlotBuffers *)
				(p + KMD_NUM_SLOTS * MAXALIGN(sizeof(KmdSlot)) +
				 i * MAXALIGN(sizeof(KmdSlotBuffers)));

			memset(slot, 0, sizeof(KmdSlot));
			slot->generation = (uint32) boot_random();
			slot->lock = &GetNamedLWLockTranche("kommander slots")[i].lock;
			ConditionVariableInit(&slot->cv);
			slot->command = buf->command;
			slot->errmsg = buf->errmsg;
			slot->errdetail = buf->errdetail;
			slot->errhint = buf->errhint;
			slot->result = buf->result;
			slot->errmsg[0] = slot->errdetail[0] = slot->errhint[0] = '\0';
		}
		p += KMD_NUM_SLOTS * MAXALIGN(sizeof(KmdSlot));
		p += KMD_NUM_SLOTS * MAXALIGN(sizeof(KmdSlotBuffers));

		for (int i = 0; i < kmd_n_workers; i++)
		{
			LWLockPadded *locks = GetNamedLWLockTranche("kommander rings");

			kmd_shared->workers[i].inbox = ring_init(p, KMD_INBOX_SIZE, &locks[2 * i].lock);
			p += ring_total_size(KMD_INBOX_SIZE);
			kmd_shared->workers[i].feed = ring_init(p, KMD_FEED_SIZE, &locks[2 * i + 1].lock);
			p += ring_total_size(KMD_FEED_SIZE);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * `src' (NULL: empty) into `dst' of `size' bytes, cut between two
 * characters: one cut in the middle would make the error or the view that
 * carries it fail to convert to a client's encoding, another error in its
 * place.
 */
void
kmd_copy_text(char *dst, const char *src, int size)
{
	int			len = src != NULL ? strlen(src) : 0;

	if (len >= size)
		len = pg_mbcliplen(src, len, size - 1);
	if (len > 0)
		memcpy(dst, src, len);
	dst[len] = '\0';
}

/* The slot array is not a C array of KmdSlot: entries are MAXALIGNed. */
KmdSlot *
kmd_slot(int i)
{
	return (KmdSlot *) ((char *) kmd_shared->slots + i * MAXALIGN(sizeof(KmdSlot)));
}

KmdPartition *
kmd_partition_find(int32 partition_id)
{
	Assert(LWLockHeldByMe(kmd_shared->lock));
	for (int i = 0; i < kmd_shared->partitions_used; i++)
		if (kmd_shared->partitions[i].partition_id == partition_id)
			return &kmd_shared->partitions[i];
	return NULL;
}

KmdPartition *
kmd_partition_add(int32 partition_id)
{
	KmdPartition *part = kmd_partition_find(partition_id);

	KmdPartition *gone = NULL;

	Assert(LWLockHeldByMeInMode(kmd_shared->lock, LW_EXCLUSIVE));
	if (part != NULL)
		return part;
	part = NULL;
	for (int i = 0; i < kmd_shared->max_partitions && part == NULL; i++)
	{
		KmdPartition *p = &kmd_shared->partitions[i];

		if (p->partition_id == -1)
			part = p;
		else if (gone == NULL && p->state == KMD_PART_GONE && !p->hosted)
			gone = p;
	}
	if (part == NULL)
		part = gone;			/* a tombstone whose group has stopped */
	if (part == NULL)
		return NULL;
	kmd_shared->partitions_used = Max(kmd_shared->partitions_used,
									  (int) (part - kmd_shared->partitions) + 1);
	part->partition_id = partition_id;
	part->state = KMD_PART_ACTIVE;
	part->lo = part->hi = 0;
	part->generation = 0;
	part->frozen_at = 0;
	part->image_installed_at = 0;
	part->role = -1;
	part->hosted = false;
	part->leader = 0;
	part->is_learner = false;
	part->voters = 0;
	part->n_members = 0;
	part->conf_committed = false;
	part->quiesced = false;
	part->term = 0;
	part->last_index = 0;
	part->snapshot_index = 0;
	part->image_state = KMD_IMAGE_NONE;
	part->image_from = 0;
	part->image_failed_from = 0;
	part->image_min = 0;
	part->image_since = 0;
	part->image_untold = false;
	part->apply_stall = KMD_STALL_NONE;
	part->apply_tries = 0;
	part->offline = false;
	part->offline_tries = 0;
	part->held_barrier = 0;
	part->held_merge = 0;
	pg_atomic_write_u64(&part->commit_index, 0);
	pg_atomic_write_u64(&part->group_commit, 0);
	pg_atomic_write_u64(&part->applied_index, 0);
	pg_atomic_write_u64(&part->applied_term, 0);
	return part;
}

int
kmd_partition_room(void)
{
	int			room = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->max_partitions; i++)
		if (kmd_shared->partitions[i].partition_id == -1 ||
			(kmd_shared->partitions[i].state == KMD_PART_GONE &&
			 !kmd_shared->partitions[i].hosted))
			room++;
	LWLockRelease(kmd_shared->lock);
	return room;
}

bool
kmd_node_heard(const KmdNode *node, TimestampTz now, int ms)
{
	TimestampTz last = (TimestampTz) pg_atomic_read_u64((pg_atomic_uint64 *) &node->last_contact);

	if (node->node_id == kmd_shared->local_node_id)
		return true;
	return last != 0 && !TimestampDifferenceExceeds(last, now, ms);
}

KmdNode *
kmd_node_find(int32 node_id)
{
	Assert(LWLockHeldByMe(kmd_shared->lock));
	for (int i = 0; i < KMD_MAX_NODES; i++)
		if (kmd_shared->nodes[i].node_id == node_id && node_id != 0)
			return &kmd_shared->nodes[i];
	return NULL;
}

int32
kmd_other_node(void)
{
	int32		other = 0;

	Assert(LWLockHeldByMe(kmd_shared->lock));
	for (int i = 0; i < KMD_MAX_NODES && other == 0; i++)
		if (kmd_shared->nodes[i].node_id != 0 &&
			kmd_shared->nodes[i].node_id != kmd_shared->local_node_id)
			other = kmd_shared->nodes[i].node_id;
	return other;
}

int
kmd_other_nodes(void)
{
	int			n = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
		if (kmd_shared->nodes[i].node_id != 0 &&
			kmd_shared->nodes[i].node_id != kmd_shared->local_node_id)
			n++;
	LWLockRelease(kmd_shared->lock);
	return n;
}

bool
kmd_node_conninfo(int32 node_id, char *conninfo)
{
	KmdNode    *node;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	node = kmd_node_find(node_id);
	if (node != NULL)
		strlcpy(conninfo, node->conninfo, KMD_CONNINFO_LEN);
	LWLockRelease(kmd_shared->lock);
	return node != NULL;
}

uint64
kmd_partition_applied(int32 partition_id)
{
	KmdPartition *part;
	uint64		applied = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(partition_id);
	if (part != NULL)
		applied = pg_atomic_read_u64(&part->applied_index);
	LWLockRelease(kmd_shared->lock);
	return applied;
}

uint64
kmd_partition_generation(int32 partition_id)
{
	KmdPartition *part;
	uint64		generation = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(partition_id);
	if (part != NULL)
		generation = part->generation;
	LWLockRelease(kmd_shared->lock);
	return generation;
}

int32
kmd_partition_state(int32 partition_id)
{
	KmdPartition *part;
	int32		state = KMD_PART_GONE;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(partition_id);
	if (part != NULL)
		state = part->state;
	LWLockRelease(kmd_shared->lock);
	return state;
}

int
kmd_worker_for_partition(int32 partition_id)
{
	return (int) ((uint32) partition_id % (uint32) kmd_shared->n_workers);
}

void
kmd_wake_worker(int worker)
{
	Latch	   *latch = kmd_shared->workers[worker].latch;

	if (latch != NULL)
		SetLatch(latch);
}

void
kmd_wake_apply(void)
{
	Latch	   *latch = kmd_shared->apply_latch;

	if (latch != NULL)
		SetLatch(latch);
}

/* Give back the slot kmd_claim_process took, at exit. */
static void
release_process(int code, Datum arg)
{
	pid_t	   *pid = (pid_t *) DatumGetPointer(arg);

	LWLockReleaseAll();
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	if (*pid == MyProcPid)
		*pid = 0;
	LWLockRelease(kmd_shared->lock);
}

/*
 * A launcher that stops (terminated, or failed) leaves the workers it
 * started running; the one started after it stops them before it starts
 * its own (launcher.c), but one the stopped launcher asked for may still
 * be starting.  Whichever comes second here stops.
 */
void
kmd_claim_process(pid_t *pid, const char *what)
{
	pid_t		holder;

	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	holder = *pid;
	if (holder == 0 || holder == MyProcPid || (kill(holder, 0) != 0 && errno == ESRCH))
		*pid = MyProcPid;
	else
	{
		LWLockRelease(kmd_shared->lock);
		ereport(LOG,
				(errmsg("kommander %s already runs in process %d; this copy stops",
						what, (int) holder)));
		proc_exit(0);
	}
	LWLockRelease(kmd_shared->lock);
	/*
	 * Given back late in the exit, after what later callbacks hold (the
	 * replication origin events.c takes): a copy started once it is free
	 * must find them free too.
	 */
	on_shmem_exit(release_process, PointerGetDatum(pid));
}

void
kmd_wake_launcher(void)
{
	Latch	   *latch = kmd_shared->launcher_latch;

	if (latch != NULL)
		SetLatch(latch);
}

bool
kmd_slot_complete(int slot_no, uint32 generation, const char *sqlstate,
				  const char *errmsg, const char *errdetail, const char *errhint, uint64 index,
				  uint64 term, bool applied, const char *result,
				  uint32 result_len, int32 partition_id)
{
	KmdSlot    *slot;

	if (slot_no < 0 || slot_no >= KMD_NUM_SLOTS)
		return false;
	slot = kmd_slot(slot_no);
	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	if (slot->generation != generation ||
		(slot->state != KMD_SLOT_PENDING && slot->state != KMD_SLOT_SENT))
	{
		LWLockRelease(slot->lock);
		kmd_stat_add(KMD_STAT_STALE_COMPLETIONS, -1, 1);
		return false;
	}
	strlcpy(slot->sqlstate, sqlstate ? sqlstate : "00000", sizeof(slot->sqlstate));
	kmd_copy_text(slot->errmsg, errmsg, KMD_ERRMSG_LEN);
	kmd_copy_text(slot->errdetail, errdetail, KMD_ERRMSG_LEN);
	kmd_copy_text(slot->errhint, errhint, KMD_ERRMSG_LEN);
	slot->index = index;
	slot->term = term;
	slot->index_partition = partition_id;
	slot->applied = applied;
	if (result_len > KMD_MAX_RESULT)
		result_len = 0;			/* the caller checks sizes; never overflow */
	if (result_len > 0)
		memcpy(slot->result, result, result_len);
	slot->result_len = result_len;
	slot->state = KMD_SLOT_DONE;
	LWLockRelease(slot->lock);
	ConditionVariableBroadcast(&slot->cv);
	return true;
}

bool
kmd_inbox_put(KmdInbox *inbox, const char *data, uint32 len)
{
	char	   *ring = (char *) inbox + MAXALIGN(sizeof(KmdInbox));
	uint64		need = sizeof(uint32) + len;
	uint32		hdr = len;

	LWLockAcquire(inbox->lock, LW_EXCLUSIVE);
	if (inbox->tail - inbox->head + need > inbox->size)
	{
		inbox->dropped++;
		LWLockRelease(inbox->lock);
		return false;
	}
	for (uint64 i = 0; i < sizeof(uint32); i++)
		ring[(inbox->tail + i) % inbox->size] = ((char *) &hdr)[i];
	inbox->tail += sizeof(uint32);
	{
		uint64		off = inbox->tail % inbox->size;
		uint64		first = Min((uint64) len, inbox->size - off);

		memcpy(ring + off, data, first);
		memcpy(ring, data + first, len - first);
	}
	inbox->tail += len;
	LWLockRelease(inbox->lock);
	return true;
}

bool
kmd_inbox_get(KmdInbox *inbox, char **buf, uint32 *len)
{
	char	   *ring = (char *) inbox + MAXALIGN(sizeof(KmdInbox));
	uint32		hdr;

	LWLockAcquire(inbox->lock, LW_EXCLUSIVE);
	if (inbox->head == inbox->tail)
	{
		LWLockRelease(inbox->lock);
		return false;
	}
	for (uint64 i = 0; i < sizeof(uint32); i++)
		((char *) &hdr)[i] = ring[(inbox->head + i) % inbox->size];
	/* taken out only once copied: a failed allocation leaves it in place */
	*buf = palloc(hdr > 0 ? hdr : 1);
	{
		uint64		off = (inbox->head + sizeof(uint32)) % inbox->size;
		uint64		first = Min((uint64) hdr, inbox->size - off);

		memcpy(*buf, ring + off, first);
		memcpy(*buf + first, ring, hdr - first);
	}
	inbox->head += sizeof(uint32) + hdr;
	*len = hdr;
	LWLockRelease(inbox->lock);
	return true;
}
