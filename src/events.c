/*-------------------------------------------------------------------------
 *
 * events.c
 *	  What a node tells those who watch it: a NOTIFY on channel
 *	  kommander_events with a small JSON object when this node sees a
 *	  leader change, a partition map change (split, freeze, merge, an
 *	  image installed) or a roster change; the same object as a logical
 *	  message for the change feed; and the marks that tell the output
 *	  plugin which entry produced the row changes that follow.
 *
 * A NOTIFY is sent when its transaction commits, so each event rides on
 * the transaction that made the change it reports: the apply worker's for
 * map and roster changes (an entry whose command fails takes its event
 * along when its subtransaction rolls back), and a short transaction of
 * the Raft worker for the leader changes it saw in an iteration.  An
 * event is never worth stopping for: one that the NOTIFY queue has no
 * room for is left out, with a warning, and so are the Raft worker's
 * when its commit would wait for the queue's lock.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/events.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/async.h"
#include "fmgr.h"
#include "replication/message.h"
#include "replication/origin.h"
#include "replication/slot.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "events.h"
#include "shmem.h"
#include "syscommand.h"

/* The longest the Raft worker's events wait for the NOTIFY queue's lock */
#define EVENTS_LOCK_TIMEOUT_MS "10"

/* Past this share of the NOTIFY queue in use, events are left out. */
#define QUEUE_USAGE_LIMIT 0.5

static bool
queue_has_room(void)
{
	static TimestampTz warned = 0;
	LOCAL_FCINFO(fcinfo, 0);
	double		usage;

	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	usage = DatumGetFloat8(pg_notification_queue_usage(fcinfo));
	if (usage < QUEUE_USAGE_LIMIT)
		return true;
	if (TimestampDifferenceExceeds(warned, GetCurrentTimestamp(), 60000))
	{
		warned = GetCurrentTimestamp();
		ereport(WARNING,
				(errmsg("kommander: the NOTIFY queue is %.0f%% full; events on channel %s are left out",
						usage * 100, KMD_EVENTS_CHANNEL),
				 errhint("A session that listens and stays in a transaction holds the queue back.")));
	}
	return false;
}

void
kmd_event(const char *json)
{
	if (queue_has_room())
		Async_Notify(KMD_EVENTS_CHANNEL, json);
	if (XLogLogicalInfoActive())
	{
		StringInfoData msg;

		initStringInfo(&msg);
		appendStringInfoChar(&msg, 'V');
		appendStringInfoString(&msg, json);
		(void) LogLogicalMessage(KMD_FEED_PREFIX, msg.data, msg.len, true);
		pfree(msg.data);
	}
}

void
kmd_events_syscommand(const KmdCommand *cmd, int32 partition_id, uint64 index,
					  const char *result, int changed)
{
	StringInfoData buf;
	int32		right;
	uint64		frozen_at;
	const char *change = NULL;

	initStringInfo(&buf);
	switch ((KmdCommandKind) cmd->kind)
	{
		case KMD_CMD_SPLIT:
			appendStringInfo(&buf, "{\"event\":\"split\",\"partition\":%d,\"index\":" UINT64_FORMAT
							 ",\"new_partition\":%d}", partition_id, index,
							 result != NULL ? atoi(result) : 0);
			break;
		case KMD_CMD_FREEZE:
			appendStringInfo(&buf, "{\"event\":\"freeze\",\"partition\":%d,\"index\":" UINT64_FORMAT "}",
							 partition_id, index);
			break;
		case KMD_CMD_MERGE:
			if (!kmd_merge_args(cmd, &right, &frozen_at))
				break;
			appendStringInfo(&buf, "{\"event\":\"merge\",\"partition\":%d,\"index\":" UINT64_FORMAT
							 ",\"merged\":%d}", partition_id, index, right);
			break;
		case KMD_CMD_NODE_ADD:
			change = "add";
			break;
		case KMD_CMD_NODE_PROMOTE:
			change = "promote";
			break;
		case KMD_CMD_NODE_REMOVE:
			/* its first step marks the node, its second takes it out */
			change = (changed & KMD_SYS_MARKED) ? "removing" : "remove";
			break;
		case KMD_CMD_DDL:
			/*
			 * What it changed in rows by the catalog alone (a partition
			 * attached, detached or dropped) or by rewriting a table is in
			 * no row change of the feed.  The index only: a statement may
			 * be longer than a notification takes.
			 */
			appendStringInfo(&buf, "{\"event\":\"ddl\",\"index\":" UINT64_FORMAT "}", index);
			break;
		case KMD_CMD_ROWS:
		case KMD_CMD_REGISTER_TABLE:
		case KMD_CMD_REGISTER_APPLIER:
		case KMD_CMD_ALLOC_PARTITION:
		case KMD_CMD_BARRIER:
		case KMD_CMD_LEASE:
			break;
	}
	/* a roster change already made (replayed by a joined node) says nothing */
	if (change != NULL && cmd->n_args >= 1 && (changed & KMD_SYS_ROSTER))
	{
		appendStringInfo(&buf, "{\"event\":\"roster\",\"change\":\"%s\",\"index\":" UINT64_FORMAT
						 ",\"node_name\":", change, index);
		escape_json(&buf, cmd->args[0]);
		appendStringInfoChar(&buf, '}');
	}
	if (buf.len > 0)
		kmd_event(buf.data);
	pfree(buf.data);
}

static void
feed_mark(char kind, int32 partition_id, uint64 index, uint64 term)
{
	char		msg[64];

	if (!XLogLogicalInfoActive())
		return;
	snprintf(msg, sizeof(msg), "%c%d " UINT64_FORMAT " " UINT64_FORMAT,
			 kind, partition_id, index, term);
	(void) LogLogicalMessage(KMD_FEED_PREFIX, msg, strlen(msg), true);

	/*
	 * Decoding orders the changes of a transaction's subtransactions by
	 * their WAL positions, a message's being its end and a row change's
	 * its start; at a tie the order is arbitrary.  The first row after the
	 * mark, written in a subtransaction below the mark's (a batch's
	 * command, an applier's exception block), would tie with it, and could
	 * come out before it as the previous entry's.  A record in between,
	 * which the plugin skips, puts the mark strictly first.
	 */
	(void) LogLogicalMessage(KMD_FEED_PREFIX, "-", 1, true);
}

/*
 * A transaction of a replication origin carries that origin's commit time
 * in its commit record (and commit timestamp), which a process that took
 * an origin sets for each transaction, as a subscription's apply worker
 * does with the remote commit's: otherwise the first commit carries none
 * and every later one the first one's.
 */
static void
stamp_commit(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PARALLEL_PRE_COMMIT)
		replorigin_session_origin_timestamp = GetCurrentTimestamp();
}

void
kmd_feed_origin_setup(const char *name)
{
	MemoryContext cxt = CurrentMemoryContext;

	Assert(strncmp(name, KMD_FEED_ORIGIN_PREFIX, strlen(KMD_FEED_ORIGIN_PREFIX)) == 0);
	if (!XLogLogicalInfoActive() || max_replication_slots == 0)
		return;
	StartTransactionCommand();
	BeginInternalSubTransaction(NULL);
	PG_TRY();
	{
		RepOriginId id = replorigin_by_name(name, true);

		if (id == InvalidRepOriginId)
			id = replorigin_create(name);
		replorigin_session_setup(id);
		replorigin_session_origin = id;
		RegisterXactCallback(stamp_commit, NULL);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		replorigin_session_origin = InvalidRepOriginId;
		ereport(WARNING,
				(errmsg("kommander: could not take replication origin \"%s\": %s", name, edata->message),
				 errdetail("The change feed leaves out the marks and events of this process."),
				 errhint("Raise max_replication_slots: each kommander worker takes an origin's slot when wal_level is logical.")));
	}
	PG_END_TRY();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
}

void
kmd_feed_mark_entry(int32 partition_id, uint64 index, uint64 term)
{
	feed_mark('E', partition_id, index, term);
}

void
kmd_feed_mark_image(int32 partition_id, uint64 index, uint64 term)
{
	char		json[128];

	feed_mark('I', partition_id, index, term);
	snprintf(json, sizeof(json), "{\"event\":\"image\",\"partition\":%d,\"index\":" UINT64_FORMAT "}",
			 partition_id, index);
	kmd_event(json);
}

void
kmd_feed_mark_cleared(int32 partition_id, uint64 index, uint64 term)
{
	feed_mark('I', partition_id, index, term);
}

/* ------------------------------------------------------------------------
 * Leader changes, seen by a Raft worker
 * ------------------------------------------------------------------------
 */
typedef struct LeaderEvent
{
	int32		partition_id;
	int32		leader;
	uint64		term;
} LeaderEvent;

static LeaderEvent *leader_events = NULL;
static int	n_leader_events = 0;
static int	max_leader_events = 0;

void
kmd_events_leader(int32 partition_id, uint64 term, int32 leader)
{
	if (n_leader_events == max_leader_events)
	{
		max_leader_events = Max(16, max_leader_events * 2);
		leader_events = leader_events == NULL ?
			MemoryContextAlloc(TopMemoryContext, sizeof(LeaderEvent) * max_leader_events) :
			repalloc(leader_events, sizeof(LeaderEvent) * max_leader_events);
	}
	leader_events[n_leader_events].partition_id = partition_id;
	leader_events[n_leader_events].leader = leader;
	leader_events[n_leader_events].term = term;
	n_leader_events++;
}

void
kmd_events_flush(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	StringInfoData buf;
	char	  (*names)[NAMEDATALEN];
	int			n = n_leader_events;

	if (n == 0)
		return;
	n_leader_events = 0;

	names = palloc0(sizeof(*names) * n);
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < n; i++)
	{
		KmdNode    *node = kmd_node_find(leader_events[i].leader);

		if (node != NULL)
			strlcpy(names[i], node->name, NAMEDATALEN);
	}
	LWLockRelease(kmd_shared->lock);

	initStringInfo(&buf);
	PG_TRY();
	{
		StartTransactionCommand();
		/* nothing here needs to be durable before the loop goes on */
		(void) set_config_option("synchronous_commit", "off", PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);

		/*
		 * Nor waits for long: its commit takes the NOTIFY queue's lock,
		 * which any session of the server that notified holds until its
		 * own commit is done, a wait for a synchronous standby's apply
		 * included, and the Raft groups of this worker would wait with it.
		 */
		(void) set_config_option("lock_timeout", EVENTS_LOCK_TIMEOUT_MS, PGC_SUSET,
								 PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);
		for (int i = 0; i < n; i++)
		{
			resetStringInfo(&buf);
			appendStringInfo(&buf, "{\"event\":\"leader\",\"partition\":%d,\"term\":" UINT64_FORMAT
							 ",\"leader_id\":%d,\"leader_name\":",
							 leader_events[i].partition_id, leader_events[i].term,
							 leader_events[i].leader);
			if (names[i][0] != '\0')
				escape_json(&buf, names[i]);
			else
				appendStringInfoString(&buf, "null");
			appendStringInfoChar(&buf, '}');
			kmd_event(buf.data);
		}
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		ereport(WARNING,
				(errmsg("kommander: could not send %d leader change events", n),
				 errdetail_internal("%s", edata->message)));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}
