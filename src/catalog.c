/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Shared-memory caches of the node identity, the roster and the
 *	  partition map, reloaded from kommander.local, kommander.roster and
 *	  kommander.partition_map.
 *
 * The apply worker reloads them after applying a change of the roster or
 * the map; the launcher and backends reload them when they find the cache
 * empty.  Readers take kmd_shared->lock shared.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/catalog.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_authid.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/uuid.h"

#include "apply.h"
#include "errcodes.h"
#include "identity.h"
#include "shmem.h"

typedef struct NodeRow
{
	int32		node_id;
	int32		role;
	char		name[NAMEDATALEN];
	char		conninfo[KMD_CONNINFO_LEN];
	char		peer_role[NAMEDATALEN];
} NodeRow;

typedef struct PartRow
{
	int32		partition_id;
	int64		lo;
	int64		hi;
	uint64		generation;
	int32		state;
	uint64		frozen_at;
	uint64		applied_index;	/* kommander.applied, 0 without a row */
	uint64		applied_term;
} PartRow;

static int
role_code(const char *role)
{
	if (strcmp(role, "voter") == 0)
		return KMD_NODE_VOTER;
	if (strcmp(role, "learner") == 0)
		return KMD_NODE_LEARNER;
	return KMD_NODE_REMOVING;
}

static int
state_code(const char *state)
{
	if (strcmp(state, "active") == 0)
		return KMD_PART_ACTIVE;
	if (strcmp(state, "frozen") == 0)
		return KMD_PART_FROZEN;
	return KMD_PART_GONE;
}

/* What kmd_catalog_refresh reads. */
typedef struct Catalog
{
	bool		member;
	uint32		went_back_from; /* the timeline it joined on, if it moved */
	int32		local_id;
	pg_uuid_t	cluster_id;
	NodeRow    *nodes;
	int			n_nodes;
	uint64		roster_index;	/* the system partition's applied index then */
	PartRow    *parts;
	int			n_parts;
} Catalog;

/*
 * Read the identity, the roster and the map.  The rows go to `cxt':
 * SPI_finish() frees what was allocated in between, and they are used
 * after it.
 */
static void
read_rows(Catalog *cat, MemoryContext cxt)
{
	memset(cat, 0, sizeof(*cat));
	SPI_connect();
	if (SPI_execute("SELECT node_id, cluster_id, timeline FROM kommander.local", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.local");
	if (SPI_processed == 1)
	{
		bool		isnull;
		int64		timeline;

		cat->member = true;
		cat->local_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		memcpy(&cat->cluster_id,
			   DatumGetUUIDP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)),
			   sizeof(cat->cluster_id));
		timeline = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		if (!isnull && timeline != (int64) GetWALInsertionTimeLine())
		{
			cat->member = false;
			cat->went_back_from = (uint32) timeline;
		}
	}

	/* with the applied index of the same snapshot: see kmd_catalog_refresh */
	if (SPI_execute("SELECT node_id, node_name, conninfo, role, coalesce(peer_role, ''), "
					"coalesce((SELECT applied_index FROM kommander.applied WHERE partition_id = 0), 0) "
					"FROM kommander.roster ORDER BY node_id",
					true, KMD_MAX_NODES) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.roster");
	cat->nodes = MemoryContextAllocZero(cxt, sizeof(NodeRow) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		cat->nodes[cat->n_nodes].node_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		strlcpy(cat->nodes[cat->n_nodes].name, SPI_getvalue(tup, desc, 2), NAMEDATALEN);
		strlcpy(cat->nodes[cat->n_nodes].conninfo, SPI_getvalue(tup, desc, 3), KMD_CONNINFO_LEN);
		cat->nodes[cat->n_nodes].role = role_code(SPI_getvalue(tup, desc, 4));
		strlcpy(cat->nodes[cat->n_nodes].peer_role, SPI_getvalue(tup, desc, 5), NAMEDATALEN);
		cat->roster_index = (uint64) DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
		cat->n_nodes++;
	}

	/*
	 * In the order of their ids: when not all of them fit, the system
	 * partition and the oldest ones are those hosted, whatever the plan.
	 */
	if (SPI_execute("SELECT m.partition_id, m.lo, m.hi, m.generation, m.state, coalesce(m.frozen_at, 0), "
					"coalesce(a.applied_index, 0), coalesce(a.applied_term, 0) "
					"FROM kommander.partition_map m LEFT JOIN kommander.applied a USING (partition_id) "
					"ORDER BY m.partition_id",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.partition_map");
	cat->parts = MemoryContextAlloc(cxt, sizeof(PartRow) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		cat->parts[cat->n_parts].partition_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		d = SPI_getbinval(tup, desc, 2, &isnull);
		cat->parts[cat->n_parts].lo = isnull ? PG_INT64_MIN : DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		/* hi is exclusive in the table, inclusive in shared memory */
		cat->parts[cat->n_parts].hi = isnull ? PG_INT64_MAX : DatumGetInt64(d) - 1;
		cat->parts[cat->n_parts].generation = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		cat->parts[cat->n_parts].state = state_code(SPI_getvalue(tup, desc, 5));
		cat->parts[cat->n_parts].frozen_at = DatumGetInt64(SPI_getbinval(tup, desc, 6, &isnull));
		cat->parts[cat->n_parts].applied_index = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
		cat->parts[cat->n_parts].applied_term = DatumGetInt64(SPI_getbinval(tup, desc, 8, &isnull));
		cat->n_parts++;
	}
	SPI_finish();
}

/*
 * read_rows as the bootstrap superuser: a backend may refresh for any role
 * (kmd_require_member, deliver), and the roster is not PUBLIC's to read (a
 * conninfo may hold a password).
 */
static void
read_catalog(Catalog *cat, MemoryContext cxt)
{
	Oid			save_userid;
	int			save_sec;
	int			nest;

	/*
	 * Nor is the caller's search_path its statements': a schema of the
	 * caller's ahead of pg_catalog would hand them its operators.
	 */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	nest = kmd_safe_search_path();
	PG_TRY();
	{
		read_rows(cat, cxt);
		AtEOXact_GUC(true, nest);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
}

void
kmd_catalog_refresh(void)
{
	bool		member;
	int32		local_id;
	pg_uuid_t	cluster_id;
	NodeRow    *nodes;
	int			n_nodes;
	PartRow    *parts;
	int			n_parts;
	bool		roster_changed = false;
	bool		map_changed = false;
	int			no_room = 0;
	int			left_out_before;
	bool		same_cluster;
	bool		roster_stale;
	Catalog		cat;

	/*
	 * A standby is no member: nothing runs there, and what it read before a
	 * promotion must not make the promoted server one without the timeline
	 * check below.
	 */
	if (RecoveryInProgress())
		return;
	read_catalog(&cat, CurrentMemoryContext);
	member = cat.member;
	local_id = cat.local_id;
	cluster_id = cat.cluster_id;
	nodes = cat.nodes;
	n_nodes = cat.n_nodes;
	parts = cat.parts;
	n_parts = cat.n_parts;

	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);

	/*
	 * A node on another WAL timeline than the one it took its identity on
	 * went back to an older state (a restore to a point in time, a standby
	 * promoted in its place): it may have lost entries it acknowledged and
	 * votes it cast, so it is not a member.  An operator who knows better
	 * sets the noted timeline to the new one, and the next refresh takes it.
	 */
	kmd_shared->went_back_from = cat.went_back_from;
	if (cat.went_back_from != 0)
	{
		kmd_shared->member = false;
		LWLockRelease(kmd_shared->lock);
		return;
	}

	/*
	 * A node gets an identity once (kmd_bootstrap, kmd_join) and keeps it:
	 * a refresh that finds none read a snapshot from before it committed
	 * (a backend racing a join), and must not take it away.
	 */
	if (kmd_shared->member && !member)
	{
		LWLockRelease(kmd_shared->lock);
		return;
	}
	same_cluster = kmd_shared->member && member &&
		kmd_shared->local_node_id == local_id &&
		memcmp(kmd_shared->cluster_id, cluster_id.data, 16) == 0;
	kmd_shared->member = member;
	kmd_shared->local_node_id = local_id;
	memcpy(kmd_shared->cluster_id, cluster_id.data, 16);

	/*
	 * The roster only moves forward too (as the map below): a refresh that
	 * read it in an older snapshot than the last one (a peer's session
	 * racing the apply worker) must not put back a node removed since, or
	 * take out one added, for the reconciler to act on.
	 */
	roster_stale = same_cluster && cat.roster_index < kmd_shared->roster_index;
	if (!roster_stale)
		kmd_shared->roster_index = cat.roster_index;

	/* roster: keep last_contact of the nodes that stay */
	for (int i = 0; i < KMD_MAX_NODES && !roster_stale; i++)
	{
		KmdNode    *node = &kmd_shared->nodes[i];
		bool		keep = false;

		for (int j = 0; j < n_nodes && node->node_id != 0; j++)
			if (nodes[j].node_id == node->node_id)
				keep = true;
		if (!keep && node->node_id != 0)
		{
			node->node_id = 0;
			pg_atomic_write_u64(&node->last_contact, 0);
			roster_changed = true;
		}
	}
	for (int j = 0; j < n_nodes && !roster_stale; j++)
	{
		KmdNode    *node = kmd_node_find(nodes[j].node_id);

		if (node == NULL)
		{
			for (int i = 0; i < KMD_MAX_NODES && node == NULL; i++)
				if (kmd_shared->nodes[i].node_id == 0)
					node = &kmd_shared->nodes[i];
			if (node == NULL)
				continue;		/* more than KMD_MAX_NODES: cannot happen */
			node->node_id = nodes[j].node_id;
			pg_atomic_write_u64(&node->last_contact, 0);
			pg_atomic_write_u64(&node->batches_dropped, 0);
			roster_changed = true;
		}
		if (node->role != nodes[j].role || strcmp(node->name, nodes[j].name) != 0 ||
			strcmp(node->conninfo, nodes[j].conninfo) != 0 ||
			strcmp(node->peer_role, nodes[j].peer_role) != 0)
			roster_changed = true;
		node->role = nodes[j].role;
		strlcpy(node->name, nodes[j].name, NAMEDATALEN);
		strlcpy(node->conninfo, nodes[j].conninfo, KMD_CONNINFO_LEN);
		strlcpy(node->peer_role, nodes[j].peer_role, NAMEDATALEN);
	}

	for (int j = 0; j < n_parts; j++)
	{
		KmdPartition *part = kmd_partition_find(parts[j].partition_id);

		if (part == NULL)
		{
			/* a tombstone needs no entry: unknown partitions count as gone */
			if (parts[j].state == KMD_PART_GONE)
				continue;
			part = kmd_partition_add(parts[j].partition_id);
			if (part == NULL)
			{
				no_room++;
				continue;
			}

			/*
			 * Applied before on this node, then left out (no room at a
			 * restart) until a merge freed an entry: it goes on from
			 * there.  Nothing advances the applied index of a partition
			 * that is not in shared memory, so any snapshot reads it.
			 */
			pg_atomic_write_u64(&part->applied_index, parts[j].applied_index);
			pg_atomic_write_u64(&part->applied_term, parts[j].applied_term);
			map_changed = true;
		}

		/*
		 * A partition's generation and state only move forward; a refresh
		 * that read an older snapshot than the last one (a backend racing
		 * the apply worker) must not take them back.
		 */
		if (same_cluster &&
			(parts[j].generation < part->generation ||
			 (parts[j].generation == part->generation && parts[j].state < part->state)))
			continue;
		if (part->lo != parts[j].lo || part->hi != parts[j].hi ||
			part->generation != parts[j].generation || part->state != parts[j].state)
			map_changed = true;
		part->lo = parts[j].lo;
		part->hi = parts[j].hi;
		part->generation = parts[j].generation;
		part->state = parts[j].state;
		part->frozen_at = parts[j].frozen_at;
	}
	kmd_shared->n_frozen = 0;
	for (int i = 0; i < kmd_shared->partitions_used; i++)
		if (kmd_shared->partitions[i].partition_id >= 0 &&
			kmd_shared->partitions[i].state == KMD_PART_FROZEN)
			kmd_shared->n_frozen++;
	if (roster_changed)
		kmd_shared->roster_version++;
	if (map_changed)
		kmd_shared->map_version++;
	/*
	 * A backend's refresh may have read the map before a partition was
	 * added: only the apply worker, which adds them, lowers the count.
	 */
	left_out_before = kmd_shared->n_left_out;
	if (MyProcPid == kmd_shared->apply_pid || no_room > left_out_before)
		kmd_shared->n_left_out = no_room;
	LWLockRelease(kmd_shared->lock);

	/*
	 * Partitions beyond kommander.max_partitions are not served here, and
	 * the rest goes on: failing would stop this node's apply altogether.
	 * DDL barriers wait for them (barrier.c), and the apply worker reads
	 * the map again until they fit (a merged-away partition's entry is
	 * free once its group stopped).
	 */
	if (no_room > 0 && no_room != left_out_before)
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg_plural("%d partition does not fit in kommander.max_partitions (%d) on this node",
							   "%d partitions do not fit in kommander.max_partitions (%d) on this node",
							   no_room, no_room, kmd_shared->max_partitions),
				 errdetail("This node does not host them, and applies no kmd_ddl or registration until it does."),
				 errhint("Raise kommander.max_partitions on this node and restart it.")));

	if (roster_changed || map_changed)
	{
		for (int i = 0; i < kmd_shared->n_workers; i++)
			kmd_wake_worker(i);
		kmd_wake_launcher();
	}
}

void
kmd_report_went_back(int elevel)
{
	ereport(elevel,
			(errcode(ERRCODE_KMD_NOT_MEMBER),
			 errmsg("this node is not a member of a kommander cluster: its data went back"),
			 errdetail("It took its identity on WAL timeline %u and runs on timeline %u: "
					   "restored to an earlier point or promoted from a standby, it may "
					   "lack entries and votes the other nodes count on.",
					   kmd_shared->went_back_from, GetWALInsertionTimeLine()),
			 errhint("Remove it with kmd_remove_node() on another member and join a "
					 "fresh server in its place.")));
}
