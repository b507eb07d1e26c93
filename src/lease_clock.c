/*-------------------------------------------------------------------------
 *
 * lease_clock.c
 *	  When a lease is due: each node's countdown of every lease, in shared
 *	  memory, and the expiry entries the leader of a lease's partition
 *	  proposes (lease.c applies them).
 *
 * Time.  Which lease is due is decided by the leader of its partition
 * alone, on its own clock, as etcd does: every node keeps in shared memory
 * a deadline per lease, set to its clock plus the TTL when it applies the
 * grant or a keepalive (and when its apply worker starts, or installs an
 * image); the Raft worker of the partition's leader proposes an expiry
 * entry once the deadline has passed.  A node that takes the lead first
 * moves every deadline to at least one election timeout from then.  The
 * expiry entry names the keepalive it saw last (its index), and applying
 * it does nothing if a keepalive came between: a keepalive committed
 * before the expiry always wins.  No node ever deletes anything on its own
 * clock: only committed entries do.
 *
 * Room.  Shared memory counts down twice kommander.max_leases leases (the
 * limit is the proposing node's, and grants through several nodes at
 * once may pass it).  A lease that finds no room waits in
 * kommander.lease_state only, and gets a slot, with its whole TTL from
 * then, at the end of an apply transaction that finds one free
 * (kmd_lease_clock_settle): it expires late, never early.
 *
 * Splits.  A lease and the rows attached to it start in one partition; a
 * split may then part them.  The entry that ends the lease deletes the
 * rows of its own partition and notes, on each node, the lease and the
 * keys of the rows left elsewhere; the leader of each partition holding
 * such rows proposes a "drop" entry there, which deletes them.  The note
 * lives in shared memory and in kommander.lease_orphans, written and
 * deleted by the same entries, which the apply worker reads again when it
 * starts: a node restarting in between forgets nothing.  Shared memory
 * holds LEASE_ORPHANS notes (one per routing key's hash); those that find
 * no room wait in the table until drops make some.
 *
 * Lock protocol: LeaseTable.lock (LWLock) guards the slots and the
 * orphans.  The apply worker writes them; the Raft workers read them and
 * write `deadline' and `proposed'.  `count' is read without the lock, as
 * a hint only.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/lease_clock.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "lease.h"
#include "raft/raft.h"
#include "routing.h"
#include "shmem.h"
#include "worker.h"
#include "xact.h"

/* One lease as this node counts its time. */
typedef struct LeaseSlot
{
	int64		id;				/* 0: free */
	int64		hash;			/* of the id's text: the owning partition */
	int64		ttl_ms;
	uint64		renewed_idx;	/* the entry of the grant or last keepalive */
	TimestampTz deadline;		/* this node's clock: when it is due */
	TimestampTz proposed;		/* when this node last proposed its expiry */
} LeaseSlot;

/*
 * Rows attached to a lease that ended, left in another partition: a split
 * since they were attached put them there.  The leader of that partition
 * proposes a "drop" entry there, which deletes them.
 */
typedef struct LeaseOrphan
{
	int64		id;				/* the lease; 0: free */
	int64		hash;			/* of a routing key of such a row */
	TimestampTz proposed;		/* when this node last proposed the drop */
} LeaseOrphan;

#define LEASE_ORPHANS 256

typedef struct LeaseTable
{
	LWLock	   *lock;
	pg_atomic_uint32 count;		/* slots and orphans in use */
	bool		orphans_left_out;	/* notes that found no free orphan */
	TimestampTz orphans_loaded_at;	/* when load_orphans last ran */
	bool		slots_left_out; /* leases that found no free slot */
	int			slots_used;		/* the slots in use are among the first
								 * slots_used: scans stop there */
	LeaseOrphan orphans[LEASE_ORPHANS];
	LeaseSlot	slots[FLEXIBLE_ARRAY_MEMBER];	/* lease_slots() of them */
} LeaseTable;

static LeaseTable *leases = NULL;

/* kmd_lease_clock_notes_changed was called in this apply transaction */
static bool notes_changed = false;

static void load_left_out(void);
static void load_orphans(bool led_first);

PG_FUNCTION_INFO_V1(kmd_lease_countdown);

/* How many leases this node counts down at once. */
static int
lease_slots(void)
{
	return 2 * kmd_max_leases;
}

static Size
lease_table_size(void)
{
	return add_size(offsetof(LeaseTable, slots), mul_size(lease_slots(), sizeof(LeaseSlot)));
}

void
kmd_lease_shmem_request(void)
{
	RequestAddinShmemSpace(lease_table_size());
	RequestNamedLWLockTranche("kommander leases", 1);
}

void
kmd_lease_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	leases = ShmemInitStruct("kommander leases", lease_table_size(), &found);
	if (!found)
	{
		memset(leases, 0, lease_table_size());
		leases->lock = &(GetNamedLWLockTranche("kommander leases"))->lock;
		pg_atomic_init_u32(&leases->count, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

int64
kmd_lease_hash(int64 id)
{
	char		text[32];

	snprintf(text, sizeof(text), INT64_FORMAT, id);
	return kmd_hash_key(text, strlen(text));
}

/*
 * The slot of lease `id', or a free one (NULL if none, and the lease is
 * left out); lock held.
 */
static LeaseSlot *
slot_for(int64 id, bool create)
{
	LeaseSlot  *free_slot = NULL;

	for (int i = 0; i < leases->slots_used; i++)
	{
		if (leases->slots[i].id == id)
			return &leases->slots[i];
		if (free_slot == NULL && leases->slots[i].id == 0)
			free_slot = &leases->slots[i];
	}
	if (!create)
		return NULL;
	if (free_slot == NULL && leases->slots_used < lease_slots())
		free_slot = &leases->slots[leases->slots_used++];
	if (free_slot == NULL)
	{
		leases->slots_left_out = true;
		return NULL;
	}
	free_slot->id = id;
	free_slot->hash = kmd_lease_hash(id);
	pg_atomic_fetch_add_u32(&leases->count, 1);
	return free_slot;
}

/* A grant or keepalive applied here: its whole TTL from now. */
void
kmd_lease_clock_renew(int64 id, int64 ttl_ms, uint64 index)
{
	LeaseSlot  *s;

	LWLockAcquire(leases->lock, LW_EXCLUSIVE);
	s = slot_for(id, true);
	if (s != NULL)
	{
		s->ttl_ms = ttl_ms;
		s->renewed_idx = index;
		s->deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ttl_ms);
		s->proposed = 0;
	}
	LWLockRelease(leases->lock);
}

/*
 * kommander.lease_countdown(id): when this node's countdown of lease `id'
 * ends, by its clock (the leases view's countdown_ends); NULL for a lease
 * it does not count down.  It acts on it only while it leads the lease's
 * partition, and taking the lead gives each lease at least an election
 * timeout more.
 */
Datum
kmd_lease_countdown(PG_FUNCTION_ARGS)
{
	int64		id = PG_GETARG_INT64(0);
	TimestampTz deadline = 0;
	LeaseSlot  *s;

	/* kommander not preloaded here: nothing counts down */
	if (leases == NULL)
		PG_RETURN_NULL();
	LWLockAcquire(leases->lock, LW_SHARED);
	s = slot_for(id, false);
	if (s != NULL)
		deadline = s->deadline;
	LWLockRelease(leases->lock);
	if (deadline == 0)
		PG_RETURN_NULL();
	PG_RETURN_TIMESTAMPTZ(deadline);
}

/*
 * A merge applied here: the partition on the left takes over the leases of
 * the one on the right, which could not be kept alive while it was frozen
 * (keepalives fail with K0004 until the merge is done).  Each lease of
 * that range [lo, hi) (hi_null: unbounded) gets its whole TTL from now,
 * unless its countdown ends later: a merge, like a new leader, never
 * shortens a lease.
 */
void
kmd_lease_clock_merged(int64 lo, bool hi_null, int64 hi)
{
	TimestampTz now = GetCurrentTimestamp();

	LWLockAcquire(leases->lock, LW_EXCLUSIVE);
	for (int i = 0; i < leases->slots_used; i++)
	{
		LeaseSlot  *s = &leases->slots[i];

		if (s->id == 0 || s->hash < lo || (!hi_null && s->hash >= hi))
			continue;
		s->deadline = Max(s->deadline, TimestampTzPlusMilliseconds(now, s->ttl_ms));
	}
	LWLockRelease(leases->lock);
}

/* How many leases this node counts down. */
int
kmd_lease_clock_held(void)
{
	int			n = 0;

	LWLockAcquire(leases->lock, LW_SHARED);
	for (int i = 0; i < leases->slots_used; i++)
		if (leases->slots[i].id != 0)
			n++;
	LWLockRelease(leases->lock);
	return n;
}

void
kmd_lease_clock_forget(int64 id)
{
	LeaseSlot  *s;

	LWLockAcquire(leases->lock, LW_EXCLUSIVE);
	s = slot_for(id, false);
	if (s != NULL)
	{
		memset(s, 0, sizeof(*s));
		pg_atomic_fetch_sub_u32(&leases->count, 1);
		while (leases->slots_used > 0 && leases->slots[leases->slots_used - 1].id == 0)
			leases->slots_used--;
	}
	LWLockRelease(leases->lock);
}

/*
 * The apply worker, after the entries of its transaction: if leases wait
 * for a slot and one is free, they take the free ones (load_left_out).
 * Outside every entry, so that an error here is the node's, never an
 * entry's outcome.  SPI connected.
 */
void
kmd_lease_clock_settle(void)
{
	bool		due = false;

	if (notes_changed)
	{
		load_orphans(false);
		notes_changed = false;
	}

	LWLockAcquire(leases->lock, LW_SHARED);
	if (leases->slots_left_out)
	{
		due = leases->slots_used < lease_slots();
		for (int i = 0; i < leases->slots_used && !due; i++)
			due = leases->slots[i].id == 0;
	}
	LWLockRelease(leases->lock);
	if (due)
		load_left_out();
}

/*
 * Rows of ended lease `id' are left where `hash' routes.  A note that
 * finds every orphan in use is kept in kommander.lease_orphans only, and
 * read from there once drops free some (load_orphans).
 */
void
kmd_lease_clock_orphan(int64 id, int64 hash)
{
	bool		noted = false;

	LWLockAcquire(leases->lock, LW_EXCLUSIVE);
	for (int i = 0; i < LEASE_ORPHANS && !noted; i++)
		if (leases->orphans[i].id == 0)
		{
			leases->orphans[i].id = id;
			leases->orphans[i].hash = hash;
			leases->orphans[i].proposed = 0;
			pg_atomic_fetch_add_u32(&leases->count, 1);
			noted = true;
		}
	if (!noted)
		leases->orphans_left_out = true;
	LWLockRelease(leases->lock);
}

/* The ranges of the user partitions this node leads: lo[] and hi[], bigint[] */
static void
led_ranges(Datum *values)
{
	Datum	   *lo = palloc(sizeof(Datum) * Max(kmd_shared->max_partitions, 1));
	Datum	   *hi = palloc(sizeof(Datum) * Max(kmd_shared->max_partitions, 1));
	int			n = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used && n < kmd_shared->max_partitions; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];

		if (part->partition_id <= 0 || part->state != KMD_PART_ACTIVE ||
			part->leader != kmd_shared->local_node_id)
			continue;
		lo[n] = Int64GetDatum(part->lo);
		hi[n++] = Int64GetDatum(part->hi);
	}
	LWLockRelease(kmd_shared->lock);
	values[0] = PointerGetDatum(construct_array(lo, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[1] = PointerGetDatum(construct_array(hi, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/*
 * The orphans as kommander.lease_orphans, which holds every note, has
 * them: the first LEASE_ORPHANS of them, by lease, or `led_first', those
 * of the partitions this node leads first (only a leader proposes a drop;
 * a scan of every note, where the other order reads the first ones of
 * the primary key's index).  SPI connected.
 */
static void
load_orphans(bool led_first)
{
	bool		isnull;
	Oid			types[2] = {INT8ARRAYOID, INT8ARRAYOID};
	Datum		values[2] = {0, 0};

	if (led_first)
		led_ranges(values);

	LWLockAcquire(leases->lock, LW_EXCLUSIVE);
	for (int i = 0; i < LEASE_ORPHANS; i++)
		if (leases->orphans[i].id != 0)
		{
			memset(&leases->orphans[i], 0, sizeof(LeaseOrphan));
			pg_atomic_fetch_sub_u32(&leases->count, 1);
		}
	leases->orphans_left_out = false;
	leases->orphans_loaded_at = GetCurrentTimestamp();
	LWLockRelease(leases->lock);

	/* not read-only: the notes this transaction wrote must be seen */
	if (SPI_execute_with_args(psprintf("SELECT lease, key_hash FROM kommander.lease_orphans o "
									   "ORDER BY %s lease, key_hash LIMIT %d",
									   led_first ?
									   "NOT EXISTS (SELECT 1 FROM ROWS FROM (pg_catalog.unnest($1), "
									   "pg_catalog.unnest($2)) AS r (lo, hi) "
									   "WHERE o.key_hash BETWEEN r.lo AND r.hi)," : "",
									   LEASE_ORPHANS + 1),
							  led_first ? 2 : 0, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.lease_orphans");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];

		kmd_lease_clock_orphan(DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull)),
							   DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull)));
	}
}

/*
 * A command deleted notes of kommander.lease_orphans; its subtransaction
 * may still roll back, so memory takes the table's notes again at the end
 * of the apply transaction (kmd_lease_clock_settle).
 */
void
kmd_lease_clock_notes_changed(void)
{
	notes_changed = true;
}

/*
 * The notes left out of memory wait in kommander.lease_orphans for the
 * room drops make, and memory is taken again from the table only then.
 * Each node's memory may hold only notes of partitions other nodes lead
 * (each took the notes of the lease whose end it applied first), whose
 * leaders' memories hold only those of the partitions it leads: no drop
 * would ever come.  So when notes were left out and memory was not taken
 * again for ten election timeouts, the apply worker takes it again, the
 * notes of the partitions this node leads first.  Outside a transaction;
 * true if it took them.
 */
bool
kmd_lease_orphans_rotate(void)
{
	bool		due;
	MemoryContext cxt;

	if (leases == NULL)
		return false;
	LWLockAcquire(leases->lock, LW_SHARED);
	due = leases->orphans_left_out &&
		TimestampDifferenceExceeds(leases->orphans_loaded_at, GetCurrentTimestamp(),
								   10 * kmd_election_timeout);
	LWLockRelease(leases->lock);
	if (!due)
		return false;
	cxt = kmd_xact_begin();
	load_orphans(true);
	kmd_xact_commit(cxt);
	return true;
}

/*
 * The rows of ended lease `id' in [lo, hi] are dropped (and so are their
 * notes in kommander.lease_orphans).  SPI connected.
 */
void
kmd_lease_clock_dropped(int64 id, int64 lo, int64 hi)
{
	bool		left_out;

	LWLockAcquire(leases->lock, LW_EXCLUSIVE);
	for (int i = 0; i < LEASE_ORPHANS; i++)
		if (leases->orphans[i].id == id && leases->orphans[i].hash >= lo &&
			leases->orphans[i].hash <= hi)
		{
			memset(&leases->orphans[i], 0, sizeof(LeaseOrphan));
			pg_atomic_fetch_sub_u32(&leases->count, 1);
		}
	left_out = leases->orphans_left_out;
	LWLockRelease(leases->lock);
	if (left_out)
		load_orphans(false);
}

static int
int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

static int
slot_id_cmp(const void *a, const void *b)
{
	int64		x = ((const LeaseSlot *) a)->id;
	int64		y = ((const LeaseSlot *) b)->id;

	return x < y ? -1 : x > y ? 1 : 0;
}

/*
 * A slot for a row (id, ttl_ms, renewed_idx) of kommander.lease_state,
 * counted down from `now' for its whole TTL.
 */
static void
fill_slot(LeaseSlot *s, HeapTuple tup, TupleDesc desc, TimestampTz now)
{
	bool		isnull;

	memset(s, 0, sizeof(*s));
	s->id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	s->hash = kmd_lease_hash(s->id);
	s->ttl_ms = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	s->renewed_idx = (uint64) DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
	s->deadline = TimestampTzPlusMilliseconds(now, s->ttl_ms);
}

/*
 * Count the leases of kommander.lease_state down from now, but for those
 * this node counted already from the same renewal (an image of another
 * partition installed, the apply worker started again): their countdown
 * goes on where it was, or a node installing images more often than a
 * lease's TTL would never expire it.
 */
void
kmd_leases_load(void)
{
	TimestampTz now = GetCurrentTimestamp();
	LeaseSlot  *old;
	int			n_old = 0;
	int			used = 0;

	kmd_lease_rows_forget();
	if (SPI_execute("SELECT id, ttl_ms, renewed_idx FROM kommander.lease_state",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.lease_state");
	old = palloc(sizeof(LeaseSlot) * lease_slots());
	LWLockAcquire(leases->lock, LW_EXCLUSIVE);
	for (int i = 0; i < leases->slots_used; i++)
		if (leases->slots[i].id != 0)
			old[n_old++] = leases->slots[i];
	qsort(old, n_old, sizeof(LeaseSlot), slot_id_cmp);
	memset(leases->slots, 0, sizeof(LeaseSlot) * lease_slots());
	memset(leases->orphans, 0, sizeof(leases->orphans));
	pg_atomic_write_u32(&leases->count, 0);

	/*
	 * Those counted already first: with more leases than room, a lease
	 * keeps its slot, and one left out stays out.
	 */
	for (int pass = 0; pass < 2; pass++)
		for (uint64 i = 0; i < SPI_processed && used < lease_slots(); i++)
		{
			LeaseSlot	row;
			LeaseSlot  *was;

			fill_slot(&row, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, now);
			was = bsearch(&row, old, n_old, sizeof(LeaseSlot), slot_id_cmp);
			if ((was != NULL) != (pass == 0))
				continue;
			if (was != NULL && was->renewed_idx == row.renewed_idx)
			{
				row.deadline = was->deadline;
				row.proposed = was->proposed;
			}
			leases->slots[used++] = row;
			pg_atomic_fetch_add_u32(&leases->count, 1);
		}
	leases->slots_used = used;
	leases->slots_left_out = SPI_processed > (uint64) used;
	LWLockRelease(leases->lock);
	pfree(old);

	/* the rows ended leases left elsewhere, as this node noted them */
	load_orphans(false);
}

/*
 * Slots came free while leases waited for one: the leases of
 * kommander.lease_state without a slot take them, each counted down from
 * now for its whole TTL.  SPI connected.
 */
static void
load_left_out(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int64	   *counted;
	int			n_counted = 0;
	int			next = 0;

	/* not read-only: the leases this transaction ended must be gone */
	if (SPI_execute("SELECT id, ttl_ms, renewed_idx FROM kommander.lease_state",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.lease_state");
	/* only the apply worker, this process, gives leases slots */
	counted = palloc(sizeof(int64) * lease_slots());
	LWLockAcquire(leases->lock, LW_SHARED);
	for (int i = 0; i < leases->slots_used; i++)
		if (leases->slots[i].id != 0)
			counted[n_counted++] = leases->slots[i].id;
	LWLockRelease(leases->lock);
	qsort(counted, n_counted, sizeof(int64), int64_cmp);

	LWLockAcquire(leases->lock, LW_EXCLUSIVE);
	leases->slots_left_out = false;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		LeaseSlot	row;

		fill_slot(&row, SPI_tuptable->vals[i], SPI_tuptable->tupdesc, now);
		if (bsearch(&row.id, counted, n_counted, sizeof(int64), int64_cmp) != NULL)
			continue;
		/* the next free slot: one pass over them for all the rows */
		while (next < leases->slots_used && leases->slots[next].id != 0)
			next++;
		if (next >= lease_slots())
		{
			leases->slots_left_out = true;
			break;
		}
		if (next == leases->slots_used)
			leases->slots_used++;
		leases->slots[next] = row;
		pg_atomic_fetch_add_u32(&leases->count, 1);
	}
	LWLockRelease(leases->lock);
	pfree(counted);
}

/* ------------------------------------------------------------------------
 * The leader's clock
 * ------------------------------------------------------------------------
 */

/* The term in which this Raft worker last led each partition. */
typedef struct LedTerm
{
	int32		partition_id;
	raft_term	term;
} LedTerm;

static HTAB *led_terms = NULL;

void
kmd_lease_tick_forget(int32 partition_id)
{
	if (led_terms != NULL)
		(void) hash_search(led_terms, &partition_id, HASH_REMOVE, NULL);
}

/* A partition this worker leads, as one tick sees it */
typedef struct LedRange
{
	KmdGroup   *g;
	int64		lo;
	int64		hi;
	uint64		generation;
	bool		new_term;		/* led in a term this worker had not seen */
	bool		led_before;		/* in an earlier term */
	int			n;				/* entries to propose */
	int64		due[16];
	uint64		renewed[16];
	const char *what[16];
} LedRange;

static int
led_range_cmp(const void *a, const void *b)
{
	const LedRange *x = a;
	const LedRange *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
}

/* The range of `led' (sorted by lo) holding `hash', or NULL. */
static LedRange *
led_range_of(LedRange *led, int n, int64 hash)
{
	int			first = 0;
	int			last = n - 1;

	/* the last range starting at or before the hash */
	while (first <= last)
	{
		int			mid = first + (last - first) / 2;

		if (led[mid].lo <= hash)
			first = mid + 1;
		else
			last = mid - 1;
	}
	if (last < 0 || hash > led[last].hi)
		return NULL;
	return &led[last];
}

/*
 * Propose to group `g', which this worker leads, the lease entry `op' of
 * lease `id' with `arg', at partition generation `generation'; Raft's
 * answer, with the entry's index in *index.
 */
static int
propose_lease(KmdGroup *g, uint64 generation, const char *op, int64 id, uint64 arg,
			  uint32 rules, TimestampTz now, raft_index *index)
{
	KmdCommand	cmd;
	char	   *data;
	uint32		len;
	raft_term	term;
	int			rc;

	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = KMD_CMD_LEASE;
	cmd.origin_node = kmd_shared->local_node_id;
	cmd.origin_slot = -1;
	cmd.proposed_at = now;
	cmd.request_retention = kmd_request_retention;
	cmd.generation = generation;
	cmd.sys_index = kmd_partition_applied(0);
	cmd.key = psprintf(INT64_FORMAT, id);
	cmd.n_args = 3;
	cmd.args[0] = (char *) op;
	cmd.args[1] = cmd.key;
	cmd.args[2] = psprintf(UINT64_FORMAT, arg);
	cmd.rules = rules;
	data = kmd_command_encode(&cmd, &len);
	rc = raft_propose(g->r, data, len, index, &term);
	pfree(data);
	return rc;
}

/* Propose the entries that `r' collected; false if Raft refused the first. */
static bool
propose_due(LedRange *r, TimestampTz now)
{
	for (int i = 0; i < r->n; i++)
	{
		raft_index	index;

		/* the triggers of the rows it deletes, contained as a command's */
		if (propose_lease(r->g, r->generation, r->what[i], r->due[i], r->renewed[i],
						  KMD_RULE_CONTAINED_CODE, now, &index) != RAFT_OK)
			return i > 0;
	}
	return r->n > 0;
}

bool
kmd_lease_forget_if_idle(KmdGroup *g, TimestampTz now)
{
	raft_index	last = raft_last_index(g->r);

	if (last != g->idle_last || g->idle_since == 0)
	{
		g->idle_last = last;
		g->idle_since = now;
		return false;
	}
	if (last == g->forget_index || g->parked || g->awaiting_image ||
		!TimestampDifferenceExceeds(g->idle_since, now, kmd_request_retention) ||
		kmd_partition_state(g->partition_id) != KMD_PART_ACTIVE)
		return false;
	/* a node that does not know the op stops at the entry: an unknown rule */
	return propose_lease(g, kmd_partition_generation(g->partition_id), "forget", 0, 0,
						 KMD_RULE_IDLE_FORGET, now, &g->forget_index) == RAFT_OK;
}

/*
 * One pass over the slots and the notes for all the partitions led here:
 * each finds its partition by its hash, so that a tick costs the same
 * with one led partition as with a thousand.
 */
bool
kmd_lease_tick(KmdGroup **groups, int n_groups, TimestampTz now)
{
	LedRange   *led;
	int			n = 0;
	bool		proposed = false;

	if (leases == NULL || pg_atomic_read_u32(&leases->count) == 0 || n_groups == 0)
		return false;
	if (led_terms == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(LedTerm);
		led_terms = hash_create("kommander lease terms", 64, &ctl, HASH_ELEM | HASH_BLOBS);
	}
	led = palloc0(sizeof(LedRange) * n_groups);
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < n_groups; i++)
	{
		KmdGroup   *g = groups[i];

		if (g->part == NULL)
			continue;
		led[n].g = g;
		led[n].lo = g->part->lo;
		led[n].hi = g->part->hi;
		led[n++].generation = g->part->generation;
	}
	LWLockRelease(kmd_shared->lock);
	for (int i = 0; i < n; i++)
	{
		bool		found;
		LedTerm    *t = hash_search(led_terms, &led[i].g->partition_id, HASH_ENTER, &found);

		led[i].new_term = !found || t->term != raft_get_term(led[i].g->r);
		led[i].led_before = found;
		t->term = raft_get_term(led[i].g->r);
	}
	qsort(led, n, sizeof(LedRange), led_range_cmp);

	LWLockAcquire(leases->lock, LW_EXCLUSIVE);
	for (int i = 0; i < leases->slots_used; i++)
	{
		LeaseSlot  *s = &leases->slots[i];
		LedRange   *r;

		if (s->id == 0 || (r = led_range_of(led, n, s->hash)) == NULL)
			continue;
		/* a new leader: at least one election timeout for every lease */
		if (r->new_term)
			s->deadline = Max(s->deadline, TimestampTzPlusMilliseconds(now, kmd_election_timeout));
#ifdef KMD_BROKEN_LEASE_GRACE

		/*
		 * A deliberately broken build, for scripts/nemesis.sh --broken lease
		 * only: a new leader gives every lease one election timeout, no
		 * more, so that a lease just renewed ends early after a leader
		 * change (one this worker saw: not the first term it led).  The
		 * nemesis test's lease checks must catch it.
		 */
		if (r->new_term && r->led_before)
			s->deadline = TimestampTzPlusMilliseconds(now, kmd_election_timeout);
#endif
		if (s->deadline > now || r->n >= lengthof(r->due) ||
			(s->proposed != 0 && !TimestampDifferenceExceeds(s->proposed, now, kmd_propose_timeout)))
			continue;
		s->proposed = now;
		r->what[r->n] = "expire";
		r->due[r->n] = s->id;
		r->renewed[r->n++] = s->renewed_idx;
	}
	for (int i = 0; i < LEASE_ORPHANS; i++)
	{
		LeaseOrphan *o = &leases->orphans[i];
		LedRange   *r;
		bool		seen = false;

		if (o->id == 0 || (r = led_range_of(led, n, o->hash)) == NULL ||
			r->n >= lengthof(r->due) ||
			(o->proposed != 0 && !TimestampDifferenceExceeds(o->proposed, now, kmd_propose_timeout)))
			continue;
		o->proposed = now;
		for (int j = 0; j < r->n; j++)
			seen |= r->due[j] == o->id && r->what[j][0] == 'd';
		if (seen)
			continue;
		r->what[r->n] = "drop";
		r->due[r->n] = o->id;
		r->renewed[r->n++] = 0;
	}
	LWLockRelease(leases->lock);

	for (int i = 0; i < n; i++)
		proposed |= propose_due(&led[i], now);
	pfree(led);
	return proposed;
}
