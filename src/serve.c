/*-------------------------------------------------------------------------
 *
 * serve.c
 *	  Requests in the Raft worker: proposals, read barriers, leader
 *	  transfers, promote and member checks taken from local backends' slots
 *	  or forwarded by peers; served by a local leader, forwarded to the leader
 *	  otherwise, and answered to the slot or to the forwarding node.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/serve.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "command.h"
#include "errcodes.h"
#include "guc.h"
#include "host/host.h"
#include "peers.h"
#include "serve.h"
#include "shmem.h"
#include "stats.h"
#include "worker.h"

/* ------------------------------------------------------------------------
 * Slots: requests of local backends
 * ------------------------------------------------------------------------
 */

/* Move a slot from state `from' to `to', if it still holds the same request. */
static void
slot_set_state(int slot_no, uint32 gen, int from, int to)
{
	KmdSlot    *slot = kmd_slot(slot_no);

	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	if (slot->generation == gen && slot->state == from)
	{
		slot->state = to;
		if (to == KMD_SLOT_SENT)
			slot->sent_at = GetCurrentTimestamp();
	}
	LWLockRelease(slot->lock);
}

/*
 * Whether the request kmd_serve_slots is serving went to a leader (ours
 * or a peer); when not, the slot it claimed is pending again.
 */
static bool request_sent = false;

static void
mark_sent(const KmdRequest *req)
{
	if (req->from == 0)
	{
		request_sent = true;
		slot_set_state(req->slot, req->gen, KMD_SLOT_PENDING, KMD_SLOT_SENT);
	}
}

/*
 * A read index asked an election timeout ago and not answered is asked
 * again: the question or its answer was lost (the leader's node
 * restarted, a connection broke), and a follower's core does not track
 * the reads it sent.  Asking twice is harmless: the first answer
 * completes the slot, a later one finds it done.
 */
static void
read_ask_again(KmdSlot *slot, TimestampTz now)
{
	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	if (slot->state == KMD_SLOT_SENT && slot->kind == KMD_REQ_READ_INDEX &&
		TimestampDifferenceExceeds(slot->sent_at, now, kmd_election_timeout))
		slot->state = KMD_SLOT_PENDING;
	LWLockRelease(slot->lock);
}

void
kmd_slot_fail(int slot_no, uint32 gen, int sqlerrcode, const char *msg)
{
	(void) kmd_slot_complete(slot_no, gen, unpack_sql_state(sqlerrcode), msg,
							 NULL, NULL, 0, 0, false, NULL, 0, 0);
}

/*
 * Is `node' within promote_max_lag of our log in group `g' (leader only),
 * having answered (host_caught_up)?
 */
static bool
learner_caught_up(KmdGroup *g, int64 node)
{
	return host_caught_up(g->r, (raft_id) node, (uint64) kmd_promote_max_lag);
}

/*
 * Has group `g', which we lead, let `node' go: is our configuration
 * committed and without it (host_lets_go)?
 */
static bool
member_let_go(KmdGroup *g, int64 node)
{
	host_members m;

	host_members_of(g->r, &m);
	return host_lets_go(&m, (raft_id) node);
}

static void
reply_to(const KmdRequest *req, bool retry, bool not_hosted, int sqlerrcode,
		 const char *msg, uint64 index)
{
	if (req->from == 0)
	{
		if (retry)
			return;				/* stays pending */
		(void) kmd_slot_complete(req->slot, req->gen,
								 sqlerrcode ? unpack_sql_state(sqlerrcode) : "00000",
								 msg, NULL, NULL, index, 0, true, NULL, 0, 0);
	}
	else
	{
		KmdOutBatch *b = kmd_batch_for(req->from);

		if (b != NULL)
			kmd_batch_add_result(b, req->partition_id, req->slot, req->gen, retry,
								 not_hosted,
								 sqlerrcode ? unpack_sql_state(sqlerrcode) : "00000",
								 msg, index);
	}
}

static void
reply(const KmdRequest *req, bool retry, int sqlerrcode, const char *msg, uint64 index)
{
	reply_to(req, retry, false, sqlerrcode, msg, index);
}

/*
 * A local proposal or read barrier of a partition whose group is offline
 * on this node (its durable state here cannot be loaded) fails now: this
 * node does not know the partition's leader to hand it to, and the other
 * nodes serve the partition.  (The checks that callers retry, transfers,
 * promote and member checks, wait for their timeout as before.)
 */
static void
refuse_if_offline(const KmdRequest *req)
{
	KmdPartition *part;
	char		why[KMD_STALL_LEN] = "";
	bool		offline;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(req->partition_id);
	offline = part != NULL && part->offline;
	if (offline)
		memcpy(why, part->offline_error, sizeof(why));
	LWLockRelease(kmd_shared->lock);
	if (offline)
		(void) kmd_slot_complete(req->slot, req->gen, unpack_sql_state(ERRCODE_KMD_NO_QUORUM),
								 psprintf("partition %d is offline on this node", req->partition_id),
								 psprintf("Its durable Raft state here cannot be loaded (%s); send the request through another node.", why),
								 NULL, 0, 0, false, NULL, 0, 0);
}

/* Has the node of `leader' said lately that it does not run the group? */
static bool
leader_unhosted(const KmdGroup *g, raft_id leader)
{
	return g->unhosted_by == leader && GetCurrentTimestamp() < g->unhosted_until;
}

/*
 * Handle one request, ours or forwarded by `from' (0: a local slot).  One
 * that must wait (no leader known, leader busy) stays pending, or is
 * answered `retry' to the node that forwarded it.
 */
void
kmd_serve_request(const KmdRequest *req)
{
	KmdGroup   *g = kmd_group_find(req->partition_id);
	raft_id		leader;
	int			rc;
	raft_index	index;
	raft_term	term;

	kmd_groups_touched();
	if (g == NULL)
	{
		if (kmd_partition_state(req->partition_id) == KMD_PART_GONE)
			reply(req, false, ERRCODE_KMD_PARTITION_FROZEN,
				  "partition is gone: it was merged into its neighbour", 0);
		else if (req->from != 0)
		{
			/*
			 * The forwarding node takes this node for the leader, but the
			 * group does not run here (offline, or not started yet): that
			 * node wakes its copy, which elects another leader unless this
			 * one comes back first, and the request waits there.
			 */
			reply_to(req, true, true, 0, NULL, 0);
		}
		else if (req->kind == KMD_REQ_PROPOSE || req->kind == KMD_REQ_READ_INDEX)
			refuse_if_offline(req);
		return;					/* local: not started yet; the backend times out */
	}
	/*
	 * A group waiting for an image serves nothing yet: ask again later
	 * (a proposal would commit, and wait for an apply that cannot come).
	 */
	if (g->parked || g->awaiting_image)
	{
		reply(req, true, 0, NULL, 0);
		return;
	}
	leader = raft_leader(g->r);

	if (raft_get_role(g->r) != RAFT_LEADER && req->kind != KMD_REQ_READ_INDEX)
	{
		if (req->from != 0 || leader == RAFT_NONE || leader == raft_self(g->r))
		{
			reply(req, true, 0, NULL, 0);
			return;
		}
		/*
		 * Forward to the leader: its answer comes back as a result.  Not
		 * while we have no connection to it: the request would be lost and
		 * its outcome reported unknown, so it waits here instead.
		 */
		if (!kmd_peer_connected((int32) leader))
			return;
		if (leader_unhosted(g, leader))
			return;
		{
			KmdOutBatch *b = kmd_batch_for((int32) leader);

			if (b == NULL)
				return;
			kmd_batch_add_forward(b, req->partition_id, req->kind, req->slot,
								  req->gen, req->arg, req->command, req->command_len);
			/* counted in proposals_forwarded once it goes out (peers.c) */
			mark_sent(req);
		}
		return;
	}

	switch (req->kind)
	{
		case KMD_REQ_PROPOSE:
			/*
			 * Only the proposer's node waits for a row command's outcome:
			 * the other followers learn of its commit with the next append
			 * or heartbeat.  Every node acts on the others (DDL, roster,
			 * splits, merges, leases) as soon as they commit.
			 */
			rc = raft_propose_for(g->r, req->arg != KMD_CMD_ROWS ? RAFT_NONE :
								  req->from == 0 ? raft_self(g->r) : (raft_id) req->from,
								  req->command, req->command_len, &index, &term);
			if (rc != RAFT_OK)
				reply(req, true, 0, NULL, 0);
			else
				mark_sent(req);
			if (rc == RAFT_OK)
				kmd_stats_proposed(req->partition_id, index);
			/* the outcome reaches the proposer through its own apply */
			break;
		case KMD_REQ_READ_INDEX:
			/*
			 * A follower's read goes to the leader in a message: not while
			 * there is no connection to it (the message would be lost, and
			 * the read wait for its timeout), nor to one that said it does
			 * not run the group.  It stays pending meanwhile.
			 */
			if (raft_get_role(g->r) != RAFT_LEADER &&
				(!kmd_peer_connected((int32) leader) || leader_unhosted(g, leader)))
				break;
			rc = raft_read_index(g->r, KMD_READ_CONTEXT(req->slot, req->gen));
			if (rc == RAFT_OK)
				mark_sent(req);
			break;
		case KMD_REQ_TRANSFER:
			if (req->arg == (int64) raft_self(g->r))
				reply(req, false, 0, NULL, 0);
			else
			{
				rc = raft_transfer_leader(g->r, (raft_id) req->arg);
				if (rc == RAFT_OK)
					reply(req, false, 0, NULL, 0);
				else
					reply(req, false, ERRCODE_INVALID_PARAMETER_VALUE,
						  "leadership can only move to a voter of the partition", 0);
			}
			break;
		case KMD_REQ_PROMOTE_CHECK:
			if (learner_caught_up(g, req->arg))
				reply(req, false, 0, NULL, 0);
			else
				reply(req, false, ERRCODE_KMD_LEARNER_LAGGING,
					  "the learner has not caught up yet", 0);
			break;
		case KMD_REQ_MEMBER_CHECK:
			if (member_let_go(g, req->arg))
				reply(req, false, 0, NULL, 0);
			else
				reply(req, false, ERRCODE_KMD_NO_QUORUM,
					  "the node is still a member of the partition's committed configuration", 0);
			break;
	}
}

void
kmd_serve_unsent(int32 slot, uint32 gen)
{
	if (slot >= 0 && slot < KMD_NUM_SLOTS)
		slot_set_state(slot, gen, KMD_SLOT_SENT, KMD_SLOT_PENDING);
}

/* The earliest time a returned request may go again; 0: none waits. */
static TimestampTz returned_wake_at = 0;

static void
wake_at(TimestampTz at)
{
	if (returned_wake_at == 0 || at < returned_wake_at)
		returned_wake_at = at;
}

/*
 * Whether pending `slot' was returned by a peer and may not go again yet
 * (noted for the worker's wake-up); the clock is read, into *now, only
 * for such a slot.
 */
static bool
held_back(const KmdSlot *slot, TimestampTz *now)
{
	if (slot->not_before == 0)
		return false;
	if (*now == 0)
		*now = GetCurrentTimestamp();
	if (slot->not_before <= *now)
		return false;
	wake_at(slot->not_before);
	return true;
}

void
kmd_serve_returned(int32 slot_no, uint32 gen, int32 partition_id, uint32 kind)
{
	KmdSlot    *slot;
	TimestampTz at = 0;

	if (slot_no < 0 || slot_no >= KMD_NUM_SLOTS)
		return;
	slot = kmd_slot(slot_no);
	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	if (slot->generation == gen && slot->state == KMD_SLOT_SENT &&
		slot->partition_id == partition_id && slot->kind == (int32) kind)
	{
		int64		delay;

		slot->returns++;
		delay = Min((int64) kmd_heartbeat_interval << Min(slot->returns - 1, 4),
					kmd_election_timeout);
		at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), delay);
		slot->not_before = at;
		slot->state = KMD_SLOT_PENDING;
	}
	LWLockRelease(slot->lock);
	if (at != 0)
		wake_at(at);
}

TimestampTz
kmd_serve_wake_at(void)
{
	return returned_wake_at;
}

bool
kmd_slot_waits(int32 slot_no, uint32 gen)
{
	KmdSlot    *slot;

	if (slot_no < 0 || slot_no >= KMD_NUM_SLOTS)
		return false;
	slot = kmd_slot(slot_no);
	return slot->generation == gen && slot->state == KMD_SLOT_SENT;
}

/* Take every pending request of this worker's partitions. */
void
kmd_serve_slots(void)
{
	/* a command is copied here under the slot's lock, allocated after */
	static char command[KMD_MAX_COMMAND];
	TimestampTz now = 0;

	returned_wake_at = 0;
	for (int i = 0; i < KMD_NUM_SLOTS; i++)
	{
		KmdSlot    *slot = kmd_slot(i);
		KmdRequest	req;

		/* unlocked peeks; re-checked under the lock */
		if (slot->state == KMD_SLOT_SENT && slot->kind == KMD_REQ_READ_INDEX &&
			kmd_worker_for_partition(slot->partition_id) == kmd_worker_number())
		{
			if (now == 0)
				now = GetCurrentTimestamp();
			read_ask_again(slot, now);
		}
		if (slot->state != KMD_SLOT_PENDING ||
			kmd_worker_for_partition(slot->partition_id) != kmd_worker_number())
			continue;
		if (held_back(slot, &now))
			continue;

		/*
		 * Claimed before it is served: a backend whose wait ends meanwhile
		 * finds it sent (outcome unknown), never pending (K0002, "no
		 * leader took it"), while it may be proposed.
		 */
		LWLockAcquire(slot->lock, LW_EXCLUSIVE);
		if (slot->state != KMD_SLOT_PENDING ||
			kmd_worker_for_partition(slot->partition_id) != kmd_worker_number() ||
			held_back(slot, &now))
		{
			LWLockRelease(slot->lock);
			continue;
		}
		slot->state = KMD_SLOT_SENT;
		slot->sent_at = GetCurrentTimestamp();
		req.kind = slot->kind;
		req.partition_id = slot->partition_id;
		req.slot = i;
		req.gen = slot->generation;
		req.arg = slot->arg;
		req.command_len = Min(slot->command_len, KMD_MAX_COMMAND);
		memcpy(command, slot->command, req.command_len);
		req.from = 0;
		LWLockRelease(slot->lock);

		req.command = palloc(Max(req.command_len, 1));
		memcpy(req.command, command, req.command_len);
		request_sent = false;
		kmd_serve_request(&req);
		/* not sent (waits for a leader), nor answered: pending again */
		if (!request_sent)
			slot_set_state(i, req.gen, KMD_SLOT_SENT, KMD_SLOT_PENDING);
	}
}

/*
 * Node `from' does not run the partition's group (it answered a request
 * not_hosted, or listed the partition offline).  If this node's copy takes
 * it for the leader, a follower at rest would wait for that node to fall
 * silent, which it need not do (its other groups run): the copy wakes, so
 * that its election timer runs and, unless the leader is heard from
 * first, the live copies elect another.  No request (a forwarded one, a
 * follower's read index) goes to that node for an election timeout.
 */
void
kmd_serve_peer_offline(int32 partition_id, int32 from)
{
	KmdGroup   *g = kmd_group_find(partition_id);

	if (g == NULL || g->parked || raft_leader(g->r) != (raft_id) from)
		return;
	if (raft_quiesced(g->r))
		raft_unquiesce(g->r);
	g->unhosted_by = (raft_id) from;
	g->unhosted_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													kmd_election_timeout);
}

/* The answer to a request this node sent node `from'. */
void
kmd_serve_result(const Kommander__ForwardResult *res, int32 from)
{
	if (res->retry && res->not_hosted)
		kmd_serve_peer_offline(res->partition_id, from);
	if (res->origin_slot < 0 || res->origin_slot >= KMD_NUM_SLOTS)
		return;
	if (res->retry)
	{
		/* back to pending: asked again at the next iteration */
		slot_set_state(res->origin_slot, res->origin_gen, KMD_SLOT_SENT, KMD_SLOT_PENDING);
		return;
	}
	(void) kmd_slot_complete(res->origin_slot, res->origin_gen,
							 res->sqlstate && strlen(res->sqlstate) == 5 ? res->sqlstate : "XX000",
							 res->message, NULL, NULL, res->index, 0, true, NULL, 0, 0);
}

void
kmd_serve_not_hosted(int32 partition_id, int32 from, uint64 context)
{
	KmdOutBatch *b;

	if (kmd_partition_state(partition_id) == KMD_PART_GONE)
		return;
	b = kmd_batch_for(from);
	if (b != NULL)
		kmd_batch_add_result(b, partition_id, KMD_READ_SLOT(context),
							 KMD_READ_GEN(context), true, true, "00000", NULL, 0);
}

/* ------------------------------------------------------------------------
 * Requests forwarded by peers, checked as local ones are
 * ------------------------------------------------------------------------
 */

/*
 * The arguments each command kind has when the SQL functions propose it,
 * and whether it belongs to the system partition.
 */
static const struct
{
	int			min_args;
	int			max_args;
	bool		system;
}			command_shapes[KMD_CMD_MAX + 1] = {
	[KMD_CMD_ROWS] = {0, 0, false},
	[KMD_CMD_DDL] = {1, 1, true},
	[KMD_CMD_REGISTER_TABLE] = {1, 1, true},
	[KMD_CMD_REGISTER_APPLIER] = {2, 2, true},
	[KMD_CMD_NODE_ADD] = {2, 4, true},
	[KMD_CMD_NODE_PROMOTE] = {1, 2, true},
	[KMD_CMD_NODE_REMOVE] = {1, 3, true},
	[KMD_CMD_ALLOC_PARTITION] = {0, 0, true},
	[KMD_CMD_SPLIT] = {2, 2, false},
	[KMD_CMD_FREEZE] = {0, 0, false},
	[KMD_CMD_MERGE] = {2, 2, false},
	/* proposed by a partition's leader itself, never forwarded */
	[KMD_CMD_BARRIER] = {-1, -1, false},
	[KMD_CMD_LEASE] = {3, 3, false},
};

char *
kmd_forward_problem(const Kommander__Forward *f, int32 from_node)
{
	KmdCommand	cmd;

	if (f->partition_id < 0)
		return psprintf("A forwarded request names partition %d.", f->partition_id);
	switch (f->kind)
	{
		case KMD_REQ_TRANSFER:
		case KMD_REQ_PROMOTE_CHECK:
		case KMD_REQ_MEMBER_CHECK:
			if (f->arg <= 0 || f->arg > PG_INT32_MAX)
				return psprintf("A forwarded request of kind %u names node " INT64_FORMAT ".",
								f->kind, f->arg);
			return NULL;
		case KMD_REQ_PROPOSE:
			break;
		default:
			return psprintf("Requests of kind %u are not forwarded.", f->kind);
	}
	if (f->command.len == 0 || f->command.len > KMD_MAX_COMMAND)
		return psprintf("A forwarded proposal has a command of %zu bytes.", f->command.len);
	if (!kmd_command_decode((const char *) f->command.data, (uint32) f->command.len, &cmd))
	{
		char	   *why = kmd_command_problem((const char *) f->command.data,
											  (uint32) f->command.len);

		return psprintf("A forwarded proposal's command does not decode: %s.",
						why ? why : "it is malformed");
	}
	if (cmd.origin_node != from_node || cmd.origin_slot != f->origin_slot ||
		cmd.origin_gen != f->origin_gen || cmd.origin_slot < 0 ||
		cmd.origin_slot >= KMD_NUM_SLOTS)
		return psprintf("A forwarded proposal's command comes from slot %d of node %d, not from a slot of node %d.",
						cmd.origin_slot, cmd.origin_node, from_node);
	if (f->arg != 0 && f->arg != (int64) cmd.kind)
		return psprintf("A forwarded proposal says its command is of kind " INT64_FORMAT ", but it is of kind %u.",
						f->arg, cmd.kind);
	if (command_shapes[cmd.kind].max_args < 0)
		return psprintf("Commands of kind %u are not forwarded.", cmd.kind);
	if (cmd.n_args < command_shapes[cmd.kind].min_args ||
		cmd.n_args > command_shapes[cmd.kind].max_args)
		return psprintf("A forwarded command of kind %u has %d arguments.", cmd.kind, cmd.n_args);
	if (command_shapes[cmd.kind].system != (f->partition_id == 0))
		return psprintf("A forwarded command of kind %u is for %s, not partition %d.", cmd.kind,
						command_shapes[cmd.kind].system ? "the system partition" : "a user partition",
						f->partition_id);
	if ((cmd.kind == KMD_CMD_ROWS || cmd.kind == KMD_CMD_DDL) && cmd.payload_len == 0)
		return psprintf("A forwarded command of kind %u is empty.", cmd.kind);
	if (cmd.kind == KMD_CMD_ROWS && cmd.key[0] == '\0')
		return pstrdup("A forwarded row command has no key.");
	return NULL;
}
