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
 *	- A partition stopped at a merge (the merge entry itself, not a barrier
 *	  before it) whose right partition is held before its freeze is held
 *	  too (the right one cannot be drained before the
 *	  barrier; the cut in the left partition is the merge entry, which no
 *	  node passes before the right partition's later entries, hence before
 *	  the barrier).  Not one whose right partition is held after its
 *	  freeze (its leader wrote the barrier entry before it applied the
 *	  merge): drained, it no longer holds the left one, which goes on to
 *	  its own cut, past the merge, as on a node where the right one was
 *	  drained before the left one reached the merge.  (The left one may
 *	  have stopped there still, having read how far the right one was
 *	  applied before the iteration that drained it was published.)
 *	- A partition waiting for an image is held: the image replaces its
 *	  rows, and an image is installed only where the same barriers were
 *	  applied as where it was taken (snapshot.c).  So is the left
 *	  partition of a merge, stopped at it, whose right partition waits
 *	  for an image: where the right one's cut falls, before its freeze
 *	  or after it, decides whether the left one's entries past the merge
 *	  come before the barrier or after it, and only the image knows; the
 *	  left one is bound to an image too.  So is the right
 *	  partition of a merge at which, or ahead of which, a partition waits
 *	  for an image: the image, taken after the merge, holds its rows, and
 *	  a node that missed the merge may never see the right partition reach
 *	  anything, its group being stopped everywhere else (apply.c,
 *	  merge_ahead).  Counted so, it applies nothing more here: the barrier
 *	  binds it to an image of its own (asked for, and noted in
 *	  kommander.snapshot for a restart), unless the left partition's image
 *	  retires it first; applied after the barrier, its entries before the
 *	  cut would part this node from the others.
 *	- So is a partition another node has merged away while it has no
 *	  leader here and makes no progress (a node that joined after the
 *	  merge created it again replaying the map; one down across the merge
 *	  may hold the partition it went into at a barrier entry far before
 *	  the merge).  Nobody serves its log any more: the apply worker asks
 *	  the other nodes (kmd_barrier_ask_unserved), and then binds it to an
 *	  image as above; the partition it went into takes an image when it
 *	  reaches the merge.
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

#include "lib/stringinfo.h"
#include "storage/latch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "barrier.h"
#include "command.h"
#include "guc.h"
#include "raft/raft.h"
#include "remote.h"
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

/*
 * Has `right', the right partition of a merge, been applied here up to its
 * freeze?  Lock held.
 */
static bool
drained(KmdPartition *right)
{
	return right->state == KMD_PART_FROZEN &&
		pg_atomic_read_u64(&right->applied_index) >= right->frozen_at;
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

/*
 * A partition that holds a barrier here while no leader serves it: it may
 * have been merged away in the cluster before this node got its log to
 * the barrier's entry (a node that joined after the merge, whose replay
 * of the map created it again; one that was down across the merge).  Its
 * group stopped on the nodes that applied the merge, so it would never
 * get there.  Kept by the apply worker for the barrier it waits for.
 */
typedef struct Unserved
{
	int32		partition_id;
	uint64		applied;		/* its applied index when last seen */
	TimestampTz since;			/* since when it made no progress without a leader */
	bool		gone;			/* a node's map has it merged away (for good) */
} Unserved;

#define MAX_UNSERVED 64

static Unserved unserved[MAX_UNSERVED];
static int	n_unserved;
static TimestampTz unserved_asked;	/* when a node was last asked of them */
static int32 unserved_asked_node;	/* the node asked last */
static int	unserved_fruitless; /* asks in a row that found none gone */

static Unserved *
unserved_find(int32 partition_id)
{
	for (int i = 0; i < n_unserved; i++)
		if (unserved[i].partition_id == partition_id)
			return &unserved[i];
	return NULL;
}

/*
 * The partitions without a leader that held the barrier this time, with
 * their applied indexes: each keeps the time since which it made no
 * progress, the others are dropped, except those known gone.
 */
static void
unserved_note(const int32 *ids, const uint64 *applied, int n)
{
	Unserved	next[MAX_UNSERVED];
	int			n_next = 0;
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < n_unserved; i++)
		if (unserved[i].gone)
			next[n_next++] = unserved[i];
	for (int i = 0; i < n && n_next < MAX_UNSERVED; i++)
	{
		Unserved   *u = unserved_find(ids[i]);

		if (u != NULL && u->gone)
			continue;
		if (u != NULL && u->applied == applied[i])
			next[n_next] = *u;
		else
		{
			next[n_next].partition_id = ids[i];
			next[n_next].applied = applied[i];
			next[n_next].since = now;
			next[n_next].gone = false;
		}
		n_next++;
	}
	memcpy(unserved, next, sizeof(Unserved) * n_next);
	n_unserved = n_next;
}

bool
kmd_barrier_ready(uint64 sys_index, List **image_bound)
{
	bool		ready = true;
	uint64		wanted;
	int32		ids[MAX_UNSERVED];
	uint64		applied[MAX_UNSERVED];
	int			n_leaderless = 0;

	*image_bound = NIL;
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	/* one that could not be hosted here has not reached the barrier */
	if (kmd_shared->n_left_out > 0)
		ready = false;
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];
		KmdPartition *right;
		Unserved   *u;
		bool		seen = false;

		if (part->partition_id <= 0 || part->state == KMD_PART_GONE ||
			part->held_barrier >= sys_index)
			continue;

		/*
		 * Its rows come from an image: also one asked for in memory only
		 * (a leader's log that starts past this node's, or a binding of an
		 * iteration that rolled back), which a restart would forget, and
		 * the partition apply its own log after the barrier.  So do the
		 * rows of one merged away elsewhere: the image of the partition it
		 * went into brings them.
		 */
		u = unserved_find(part->partition_id);
		if (part->image_state != KMD_IMAGE_NONE || merged_by_image(part->partition_id) ||
			(u != NULL && u->gone))
		{
			*image_bound = lappend_int(*image_bound, part->partition_id);
			continue;
		}
		/*
		 * Stopped at a merge itself: not held at an earlier barrier with
		 * a merge ahead (merge_ahead, for merged_by_image), whose entries
		 * up to the merge other nodes may have applied before this one.
		 */
		right = part->held_merge > 0 && part->held_barrier == 0 ?
			kmd_partition_find(part->held_merge) : NULL;

		/*
		 * Its right partition waits for an image, not drained yet: whether
		 * its cut comes before its freeze (this one's cut is the merge) or
		 * after it (this one goes on past the merge to its own) is the
		 * image's, not this node's, to know.  Its rows come from an image
		 * too, which retires the right one.
		 */
		if (right != NULL && right->image_state != KMD_IMAGE_NONE && !drained(right))
		{
			*image_bound = lappend_int(*image_bound, part->partition_id);
			continue;
		}
		if (right != NULL && right->held_barrier >= sys_index && !drained(right))
			continue;
		ready = false;
		if (right != NULL)
			part = right;
		if (part->leader != 0)
			continue;
		for (int j = 0; j < n_leaderless && !seen; j++)
			seen = ids[j] == part->partition_id;
		if (!seen && n_leaderless < MAX_UNSERVED)
		{
			ids[n_leaderless] = part->partition_id;
			applied[n_leaderless++] = pg_atomic_read_u64(&part->applied_index);
		}
	}
	LWLockRelease(kmd_shared->lock);
	if (ready)
	{
		/* the marks stay until the barrier is applied: its outcome may wait */
		unserved_fruitless = 0;
		return true;
	}
	unserved_note(ids, applied, n_leaderless);
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

/* A question to another node, on a connection to it (ask_node) */
typedef int (*AskFn) (PGconn *conn, int32 from, void *arg);

/*
 * Run `ask' on a connection to node `from' as this node's peer role, each
 * wait limited to one election timeout (a node that does not answer holds
 * the apply worker that long); returns what it returns, or -1 with the
 * failure logged (`what': what was asked).  No transaction open.
 */
static int
ask_node(int32 from, const char *what, AskFn ask, void *arg)
{
	char		conninfo[KMD_CONNINFO_LEN];
	PGconn	   *volatile conn = NULL;
	volatile int result = -1;
	MemoryContext cxt = CurrentMemoryContext;
	int			limit_before;

	if (!kmd_node_conninfo(from, conninfo))
		return -1;

	limit_before = kmd_remote_set_timeout(kmd_election_timeout);
	PG_TRY();
	{
		conn = kmd_remote_connect_peer(conninfo, psprintf("node %d", from));
		result = ask(conn, from, arg);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		ereport(LOG,
				(errmsg("kommander: could not ask node %d %s", from, what),
				 edata->detail ? errdetail_internal("%s %s", edata->message, edata->detail) :
				 errdetail_internal("%s", edata->message)));
		FreeErrorData(edata);
		result = -1;
	}
	PG_END_TRY();
	if (conn != NULL)
		PQfinish(conn);
	(void) kmd_remote_set_timeout(limit_before);
	return result;
}

/*
 * AskFn: which of `arg' (a list "1, 2") does the node have merged away?
 * Marks them gone, returns how many.
 */
static int
gone_there(PGconn *conn, int32 from, void *arg)
{
	const char *params[1] = {arg};
	PGresult   *res;
	int			found = 0;

	res = kmd_remote_exec(conn, "SELECT partition_id FROM kommander.partition_map "
						  "WHERE state = 'gone' AND partition_id = "
						  "ANY (pg_catalog.string_to_array($1, ', ')::int[])",
						  1, params);
	for (int i = 0; i < PQntuples(res); i++)
	{
		Unserved   *u = unserved_find(atoi(PQgetvalue(res, i, 0)));

		if (u != NULL && !u->gone)
		{
			u->gone = true;
			found++;
			ereport(LOG,
					(errmsg("kommander: partition %d makes no progress here without a leader, and node %d merged it away",
							u->partition_id, from),
					 errdetail("The DDL or registration that waits for it goes on; its rows wait for an image of the partition it went into.")));
		}
	}
	PQclear(res);
	return found;
}

/* The node after `last', in the order of ids; 0 if alone. */
pg_noinline static int32
next_node_to_ask(int32 last)
{
	int32		next = 0;
	int32		lowest = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
	{
		int32		id = kmd_shared->nodes[i].node_id;

		if (id == 0 || id == kmd_shared->local_node_id)
			continue;
		if (id > last && (next == 0 || id < next))
			next = id;
		if (lowest == 0 || id < lowest)
			lowest = id;
	}
	LWLockRelease(kmd_shared->lock);
	return next != 0 ? next : lowest;
}

bool
kmd_barrier_ask_unserved(void)
{
	TimestampTz now;
	int			wait_ms = 3 * kmd_election_timeout;
	int			n_others;
	StringInfoData ids;
	int32		from;
	int			found;
	bool		due = false;

	/* nothing noted: the common case, every iteration of the apply worker */
	if (n_unserved == 0)
		return false;
	/* the system partition got past the barrier some other way (an image) */
	if (kmd_partition_applied(0) >= pg_atomic_read_u64(&kmd_shared->barrier_wanted))
	{
		n_unserved = 0;
		unserved_fruitless = 0;
		return false;
	}
	now = GetCurrentTimestamp();
	n_others = kmd_other_nodes();

	/*
	 * Asked every three election timeouts while the nodes answer none gone,
	 * less often after each round of them all (a partition without a
	 * leader that was not merged away: its nodes are down or cut off).
	 */
	if (n_others == 0 ||
		!TimestampDifferenceExceeds(unserved_asked, now,
									wait_ms << Min(unserved_fruitless / n_others, 4)))
		return false;
	for (int i = 0; i < n_unserved && !due; i++)
		due = !unserved[i].gone && TimestampDifferenceExceeds(unserved[i].since, now, wait_ms);
	if (!due)
		return false;
	initStringInfo(&ids);
	for (int i = 0; i < n_unserved; i++)
		if (!unserved[i].gone && TimestampDifferenceExceeds(unserved[i].since, now, wait_ms))
			appendStringInfo(&ids, "%s%d", ids.len > 0 ? ", " : "", unserved[i].partition_id);

	/* the nodes in turn: one that has not applied the merge says nothing */
	from = next_node_to_ask(unserved_asked_node);
	unserved_asked = now;
	unserved_asked_node = from;

	found = ask_node(from, psprintf("whether it merged away partitions %s", ids.data),
					 gone_there, ids.data);
	unserved_fruitless = found > 0 ? 0 : unserved_fruitless + 1;
	pfree(ids.data);
	/* the wait may have taken a wake-up of this process's latch */
	return true;
}

/*
 * What the other nodes did with each kmd_ddl statement, as the node asked
 * last told it: the system partition applied up to ddl_known_to there, and
 * the statements from ddl_known_from on that ran, by system index (the
 * rest failed there).  The apply worker's own, in TopMemoryContext.
 */
static uint64 ddl_wanted;		/* a statement whose outcome is wanted, 0: none */
static uint64 ddl_known_from;
static uint64 ddl_known_to;
static uint64 *ddl_ran;
static int	n_ddl_ran;
static TimestampTz ddl_asked;	/* when a node was last asked */
static int32 ddl_asked_node;	/* the node asked last */
static int	ddl_unanswered;		/* asks about ddl_wanted none answered */

static int
index_cmp(const void *a, const void *b)
{
	uint64		x = *(const uint64 *) a;
	uint64		y = *(const uint64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

KmdDdlOutcome
kmd_barrier_ddl_outcome(uint64 sys_index)
{
	if (sys_index > ddl_known_to || sys_index < ddl_known_from)
	{
		int			n_others = kmd_other_nodes();

		if (ddl_wanted != sys_index)
			ddl_unanswered = 0;
		ddl_wanted = sys_index;

		/*
		 * Three rounds of every other node, none of them able to tell (a
		 * node that has not applied the statement yet may soon), or none
		 * to ask.
		 */
		return n_others == 0 || ddl_unanswered >= 3 * n_others ?
			KMD_DDL_OWN : KMD_DDL_UNKNOWN;
	}
	return bsearch(&sys_index, ddl_ran, n_ddl_ran, sizeof(uint64), index_cmp) != NULL ?
		KMD_DDL_RAN : KMD_DDL_FAILED;
}

/*
 * AskFn: how far the node applied the system partition, and which kmd_ddl
 * statements ran there; keeps the answer (1) if it covers ddl_wanted.
 */
static int
ddl_there(PGconn *conn, int32 from, void *arg)
{
	char		from_index[32];
	const char *params[1] = {from_index};
	PGresult   *res;
	uint64		applied;
	int			covered = 0;

	/* one statement: one snapshot of both */
	snprintf(from_index, sizeof(from_index), UINT64_FORMAT, ddl_wanted);
	res = kmd_remote_exec(conn, "SELECT coalesce((SELECT applied_index FROM kommander.applied "
						  "WHERE partition_id = 0), 0), "
						  "(SELECT count(*) FROM kommander.ddl WHERE idx >= $1::bigint), "
						  "(SELECT coalesce(pg_catalog.string_agg(idx::text, ',' ORDER BY idx), '') "
						  "FROM kommander.ddl WHERE idx >= $1::bigint)", 1, params);
	if (PQntuples(res) != 1 || PQnfields(res) != 3)
	{
		PQclear(res);
		elog(ERROR, "node %d answered no list of statements", from);
	}
	applied = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	if (applied >= ddl_wanted)
	{
		long		count = strtol(PQgetvalue(res, 0, 1), NULL, 10);
		const char *list = PQgetvalue(res, 0, 2);
		uint64	   *ran = MemoryContextAlloc(TopMemoryContext,
											 sizeof(uint64) * Max(count, 1));
		int			n = 0;

		while (*list != '\0' && n < count)
		{
			char	   *end;

			ran[n++] = strtoull(list, &end, 10);
			list = *end == ',' ? end + 1 : end;
		}
		if (ddl_ran != NULL)
			pfree(ddl_ran);
		ddl_ran = ran;
		n_ddl_ran = n;
		ddl_known_from = ddl_wanted;
		ddl_known_to = applied;
		covered = 1;
	}
	PQclear(res);
	return covered;
}

bool
kmd_barrier_ask_ddl(void)
{
	int32		from;

	if (ddl_wanted != 0 && kmd_partition_applied(0) >= ddl_wanted)
		ddl_wanted = 0;			/* got past it some other way */
	if (ddl_wanted == 0 || (ddl_wanted >= ddl_known_from && ddl_wanted <= ddl_known_to) ||
		!TimestampDifferenceExceeds(ddl_asked, GetCurrentTimestamp(), kmd_election_timeout))
		return false;
	/* the nodes in turn: one that has not applied the statement says nothing */
	from = next_node_to_ask(ddl_asked_node);
	ddl_asked = GetCurrentTimestamp();
	ddl_asked_node = from;
	if (from == 0)
		return false;
	if (ask_node(from, "which kmd_ddl statements ran there", ddl_there, NULL) <= 0)
		ddl_unanswered++;
	else
		ereport(LOG,
				(errmsg("kommander: node %d told the outcome of the kmd_ddl statement at system index " UINT64_FORMAT,
						from, ddl_wanted),
				 errdetail("Partitions wait for images here, whose rows are not those at the statement: its outcome here is the other nodes'.")));
	/* the wait may have taken a wake-up of this process's latch */
	return true;
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
	n_unserved = 0;
	unserved_fruitless = 0;
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
