/*-------------------------------------------------------------------------
 *
 * peers.c
 *	  A Raft worker's traffic with the other nodes: one batch per peer for
 *	  the messages of all its groups in an iteration, node-level keepalives,
 *	  and stepping the batches peers delivered into its inbox.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/peers.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "storage/lwlock.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "guc.h"
#include "peers.h"
#include "serve.h"
#include "shmem.h"
#include "stats.h"
#include "transport.h"
#include "wire.h"
#include "worker.h"

static KmdTransport transport;

/* Batches to peers, built during one iteration */
typedef struct PeerBatches
{
	int			n;
	KmdOutBatch b[KMD_MAX_NODES];
} PeerBatches;

static PeerBatches out;

/* whether a queued message points into a group's log */
static bool out_refs_log = false;

/* When this worker last sent each peer a batch */
typedef struct LastSent
{
	int32		node_id;		/* 0: free */
	TimestampTz at;
} LastSent;

static LastSent last_sent[KMD_MAX_NODES];

/*
 * Answers to requests peers forwarded here, whose batch was dropped before
 * any of it was queued, or that their node returned (no inbox there had
 * room): each goes again with the next batch to its node (a returned one
 * a heartbeat interval later), as long as the request may still wait for
 * it (kommander.propose_timeout), instead of leaving it to wait that long
 * for nothing and end with an outcome unknown.  Never one that may have
 * reached a worker of its node: an answer `retry' that came twice could
 * send its request to the leader twice.  At most HELD_ANSWERS, their
 * messages cut to HELD_MESSAGE bytes.
 */
#define HELD_ANSWERS 256
#define HELD_MESSAGE 256

typedef struct HeldAnswer
{
	int32		to_node;
	TimestampTz since;			/* when it was first dropped or returned */
	TimestampTz not_before;		/* returned: not sent again before then */
	bool		in_batch;		/* in a batch of this flush */
	int32		partition_id;
	int32		origin_slot;
	uint32		origin_gen;
	bool		retry;
	bool		not_hosted;
	char		sqlstate[6];
	char		message[HELD_MESSAGE];
	uint64		index;
} HeldAnswer;

static HeldAnswer held_answers[HELD_ANSWERS];
static int	n_held_answers = 0;

/*
 * The entry of `node_id'; a new one takes over the entry sent to longest ago
 * (a node gone from the roster: the others get a batch every idle interval).
 * Node ids are never reused, so they cannot index an array.
 */
static LastSent *
last_sent_for(int32 node_id)
{
	LastSent   *take = NULL;

	for (int i = 0; i < KMD_MAX_NODES; i++)
	{
		LastSent   *e = &last_sent[i];

		if (e->node_id == node_id)
			return e;
		if (take == NULL || (take->node_id != 0 &&
							 (e->node_id == 0 || e->at < take->at)))
			take = e;
	}
	take->node_id = node_id;
	take->at = 0;
	return take;
}

static void take_returned(int32 node_id, const char *data, uint32 len);

void
kmd_peers_start(int worker_no)
{
	kmd_transport_init(&transport, worker_no, take_returned);
}

void
kmd_peers_stop(void)
{
	kmd_transport_shutdown(&transport);
}

void
kmd_peers_poll(bool sync)
{
	if (sync)
		kmd_transport_sync(&transport);
	kmd_transport_poll(&transport);
}

int
kmd_peers_wait_events(KmdPeerWait *waits, long *retry)
{
	TimestampTz due = 0;

	*retry = kmd_transport_next_timeout(&transport);
	/* a returned answer is sent again once due */
	for (int i = 0; i < n_held_answers; i++)
		if (held_answers[i].not_before != 0 &&
			(due == 0 || held_answers[i].not_before < due))
			due = held_answers[i].not_before;
	if (due != 0)
	{
		long		ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), due);

		if (*retry < 0 || ms < *retry)
			*retry = ms;
	}
	return kmd_transport_wait_events(&transport, waits);
}

bool
kmd_peer_connected(int32 node_id)
{
	return kmd_transport_connected(&transport, node_id);
}

KmdOutBatch *
kmd_batch_for(int32 node_id)
{
	for (int i = 0; i < out.n; i++)
		if (out.b[i].to_node == node_id)
			return &out.b[i];
	if (out.n == KMD_MAX_NODES)
		return NULL;
	kmd_batch_init(&out.b[out.n], node_id);
	return &out.b[out.n++];
}

void
kmd_peers_queue(int32 partition_id, const raft_message *m)
{
	KmdOutBatch *b = kmd_batch_for((int32) m->to);

	if (b != NULL)
		kmd_batch_add_raft(b, partition_id, m);
	if (m->n_entries > 0 || m->type == RAFT_MSG_SNAPSHOT)
		out_refs_log = true;
	kmd_stat_add(KMD_STAT_MESSAGES_SENT, -1, 1);
	if (m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_SNAPSHOT)
		kmd_stat_add(m->type == RAFT_MSG_HEARTBEAT ? KMD_STAT_HEARTBEATS_SENT :
					 KMD_STAT_SNAPSHOTS_SENT, -1, 1);
}

/*
 * Hold answer `r' to node `to_node', to be sent again from `not_before' on
 * (0: with the next flush).  An answer held already stays held, from when
 * it first was.
 */
static void
hold_answer(int32 to_node, const Kommander__ForwardResult *r, TimestampTz now,
			TimestampTz not_before)
{
	HeldAnswer *h = NULL;

	for (int j = 0; j < n_held_answers && h == NULL; j++)
		if (held_answers[j].to_node == to_node &&
			held_answers[j].origin_slot == r->origin_slot &&
			held_answers[j].origin_gen == r->origin_gen)
			h = &held_answers[j];
	if (h != NULL)
	{
		h->in_batch = false;
		h->not_before = not_before;
		return;
	}
	if (n_held_answers == HELD_ANSWERS)
		return;
	h = &held_answers[n_held_answers++];
	h->to_node = to_node;
	h->since = now;
	h->not_before = not_before;
	h->in_batch = false;
	h->partition_id = r->partition_id;
	h->origin_slot = r->origin_slot;
	h->origin_gen = r->origin_gen;
	h->retry = r->retry;
	h->not_hosted = r->not_hosted;
	strlcpy(h->sqlstate, r->sqlstate ? r->sqlstate : "00000", sizeof(h->sqlstate));
	/* cut between characters, as the message is text */
	h->message[0] = '\0';
	if (r->message != NULL)
		strlcpy(h->message, r->message,
				pg_mbcliplen(r->message, strlen(r->message), sizeof(h->message) - 1) + 1);
	h->index = r->index;
}

/* Hold the answers of batch `b', dropped before any of it was queued. */
static void
hold_answers(const KmdOutBatch *b)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < b->n_results; i++)
		hold_answer(b->to_node, b->results[i], now, 0);
}

/*
 * What node `node_id' returned of a batch from this worker that no inbox
 * there had room for (transport.c calls it): its forwards, which reached
 * no worker there, go again (kmd_serve_returned), and so do its answers to
 * that node's requests, a heartbeat interval from now.  A returned batch
 * that does not unpack, or is not from that node to this one in this
 * cluster, is ignored, as is what is not of this worker's partitions.
 */
static void
take_returned(int32 node_id, const char *data, uint32 len)
{
	Kommander__Batch *b = kmd_batch_unpack(data, len);
	TimestampTz now = GetCurrentTimestamp();

	if (b == NULL || b->version != KMD_WIRE_VERSION ||
		b->cluster_id.len != UUID_LEN ||
		memcmp(b->cluster_id.data, kmd_shared->cluster_id, UUID_LEN) != 0 ||
		(int32) b->from_node != node_id ||
		(int32) b->to_node != kmd_shared->local_node_id)
		return;
	for (size_t i = 0; i < b->n_forwards; i++)
	{
		const Kommander__Forward *f = b->forwards[i];

		if (f != NULL && kmd_worker_for_partition(f->partition_id) == kmd_worker_number())
			kmd_serve_returned(f->origin_slot, f->origin_gen, f->partition_id, f->kind);
	}
	for (size_t i = 0; i < b->n_results; i++)
		if (b->results[i] != NULL &&
			kmd_worker_for_partition(b->results[i]->partition_id) == kmd_worker_number())
			hold_answer(node_id, b->results[i], now,
						TimestampTzPlusMilliseconds(now, kmd_heartbeat_interval));
}

/*
 * Batch `b' was queued, or lost with its connection: the held answers it
 * carried are gone.
 */
static void
answers_gone(const KmdOutBatch *b)
{
	int			n = 0;

	for (int i = 0; i < n_held_answers; i++)
	{
		HeldAnswer *h = &held_answers[i];
		bool		carried = false;

		for (int j = 0; j < b->n_results && h->in_batch && h->to_node == b->to_node && !carried; j++)
			carried = b->results[j]->origin_slot == h->origin_slot &&
				b->results[j]->origin_gen == h->origin_gen;
		if (!carried)
			held_answers[n++] = *h;
	}
	n_held_answers = n;
}

/*
 * Put the held answers into this flush's batches, but for returned ones
 * not yet due, and those whose requests waited too long already, or whose
 * node has no batch (more peers than a worker sends to): they are
 * forgotten.
 */
static void
send_held_answers(void)
{
	TimestampTz now;
	int			n = 0;

	if (n_held_answers == 0)
		return;
	now = GetCurrentTimestamp();
	for (int i = 0; i < n_held_answers; i++)
	{
		HeldAnswer *h = &held_answers[i];
		KmdOutBatch *b;

		if (TimestampDifferenceExceeds(h->since, now, kmd_propose_timeout))
			continue;
		if (h->not_before > now)
		{
			held_answers[n++] = *h;
			continue;
		}
		if ((b = kmd_batch_for(h->to_node)) == NULL)
			continue;
		h->not_before = 0;
		kmd_batch_add_result(b, h->partition_id, h->origin_slot, h->origin_gen, h->retry,
							 h->not_hosted, h->sqlstate, h->message, h->index);
		h->in_batch = true;
		held_answers[n++] = *h;
	}
	n_held_answers = n;
}

/*
 * Send a batch, split in two until each part packs below KMD_MAX_BATCH (a
 * receiver's inbox refuses what it has no room for, and a batch larger
 * than the inbox would never fit).  The parts point into the batch's own
 * arrays.  Sized before anything is packed: the appends of a loop that
 * catches followers up may come to more than one allocation holds.
 */
static void
send_batch(KmdOutBatch *b)
{
	char	   *data;
	uint32		len;
	KmdOutBatch first;
	KmdOutBatch rest;

	data = kmd_batch_pack(b, kmd_shared->cluster_id, kmd_shared->local_node_id,
						  b->n_msgs + b->n_forwards + b->n_results <= 1 ? SIZE_MAX : KMD_MAX_BATCH,
						  &len);
	if (data != NULL)
	{
		KmdSendResult sent;

		sent = kmd_transport_send(&transport, b->to_node, data, len);
		/* copied or gone: a loop's parts would otherwise hold the whole batch */
		pfree(data);

		if (sent == KMD_SEND_QUEUED)
			last_sent_for(b->to_node)->at = GetCurrentTimestamp();
		else
			kmd_stat_add(KMD_STAT_BATCHES_DROPPED, -1, 1);
		if (sent == KMD_SEND_DROPPED)
			hold_answers(b);
		else
			answers_gone(b);
		for (int i = 0; i < b->n_forwards; i++)
		{
			Kommander__Forward *f = b->forwards[i];

			/*
			 * Raft retransmits its messages; a forward that surely never
			 * left waits to go again (one that may have left stays sent:
			 * its outcome is unknown)
			 */
			if (sent == KMD_SEND_DROPPED)
				kmd_serve_unsent(f->origin_slot, f->origin_gen);
			else if (f->kind == KMD_REQ_PROPOSE)
				kmd_stat_add(KMD_STAT_FORWARDED, f->partition_id, 1);
		}
		return;
	}

	/* the first part takes half of the first kind that has items */
	first = *b;
	rest = *b;
	rest.n_offline = 0;
	first.n_msgs = first.n_forwards = first.n_results = 0;
	if (b->n_msgs > 0)
	{
		first.n_msgs = Max(b->n_msgs / 2, 1);
		rest.msgs = b->msgs + first.n_msgs;
		rest.n_msgs = b->n_msgs - first.n_msgs;
	}
	else if (b->n_forwards > 0)
	{
		first.n_forwards = Max(b->n_forwards / 2, 1);
		rest.forwards = b->forwards + first.n_forwards;
		rest.n_forwards = b->n_forwards - first.n_forwards;
	}
	else
	{
		first.n_results = b->n_results / 2;
		rest.results = b->results + first.n_results;
		rest.n_results = b->n_results - first.n_results;
	}
	send_batch(&first);
	send_batch(&rest);
}

void
kmd_peers_flush(void)
{
	send_held_answers();
	for (int i = 0; i < out.n; i++)
	{
		KmdOutBatch *b = &out.b[i];

		if (kmd_batch_is_empty(b) && !b->keepalive)
			continue;
		send_batch(b);
	}
	out.n = 0;
	out_refs_log = false;
}

bool
kmd_peers_may_hold(void)
{
	return out.n > 0 && !out_refs_log;
}

void
kmd_peers_receive(void)
{
	int			worker_no = kmd_worker_number();
	KmdInbox   *inbox = kmd_shared->workers[worker_no].inbox;
	char	   *data;
	uint32		len;

	while (kmd_inbox_get(inbox, &data, &len))
	{
		Kommander__Batch *b = kmd_batch_unpack(data, len);

		if (b == NULL)
			continue;			/* deliver() checked it; never trust twice */
		kmd_groups_touched();
		for (size_t i = 0; i < b->n_messages; i++)
		{
			Kommander__GroupMessage *gm = b->messages[i];
			raft_message m;
			raft_snapshot_meta snap;
			KmdGroup   *g;
			int			rc;

			if (gm == NULL || kmd_worker_for_partition(gm->partition_id) != worker_no)
				continue;
			kmd_stat_add(KMD_STAT_MESSAGES_RECEIVED, -1, 1);
			g = kmd_group_find(gm->partition_id);
			if (g == NULL)
			{
				/* a follower's read barrier asks a leader that is not here */
				if (gm->msg != NULL && gm->msg->type == RAFT_MSG_READ_INDEX)
					kmd_serve_not_hosted(gm->partition_id, (int32) b->from_node,
										 gm->msg->context);
				continue;
			}
			if (!kmd_raft_message_from_pb(gm->msg, &m, &snap))
				continue;
			/* a parked group, or a snapshot only an image can answer */
			if (kmd_image_intercept(g, &m))
				continue;
			rc = raft_step(g->r, &m);
			if (rc != RAFT_OK)
				elog(DEBUG1, "kommander: partition %d refused a %s message from node %u: %s",
					 gm->partition_id, raft_msg_type_name(m.type), m.from, raft_strerror(rc));
		}
		for (size_t i = 0; i < b->n_forwards; i++)
		{
			Kommander__Forward *f = b->forwards[i];
			KmdRequest	req;

			if (f == NULL || kmd_worker_for_partition(f->partition_id) != worker_no ||
				f->kind < KMD_REQ_PROPOSE || f->kind > KMD_REQ_MEMBER_CHECK ||
				f->kind == KMD_REQ_READ_INDEX)
				continue;
			req.kind = f->kind;
			req.partition_id = f->partition_id;
			req.slot = f->origin_slot;
			req.gen = f->origin_gen;
			req.arg = f->arg;
			req.command = (char *) f->command.data;
			req.command_len = (uint32) f->command.len;
			req.from = (int32) b->from_node;
			kmd_serve_request(&req);
		}
		for (size_t i = 0; i < b->n_results; i++)
			if (b->results[i] != NULL &&
				kmd_worker_for_partition(b->results[i]->partition_id) == worker_no)
				kmd_serve_result(b->results[i], (int32) b->from_node);
		for (size_t i = 0; i < b->n_offline; i++)
			if (b->offline[i] >= 0 &&
				kmd_worker_for_partition(b->offline[i]) == worker_no)
				kmd_serve_peer_offline(b->offline[i], (int32) b->from_node);
	}
}

/* The ids of the other nodes of the roster; kmd_shared->lock held. */
static int
roster_peers(int32 *peers)
{
	int			n = 0;

	for (int i = 0; i < KMD_MAX_NODES; i++)
		if (kmd_shared->nodes[i].node_id != 0 &&
			kmd_shared->nodes[i].node_id != kmd_shared->local_node_id)
			peers[n++] = kmd_shared->nodes[i].node_id;
	return n;
}

void
kmd_peers_tell_offline(int interval)
{
	static TimestampTz told_at;
	TimestampTz now = GetCurrentTimestamp();
	int32	   *ids = NULL;
	int			n = 0;
	int32		peers[KMD_MAX_NODES];
	int			n_peers = 0;

	if (!TimestampDifferenceExceeds(told_at, now, interval))
		return;
	told_at = now;
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
		if (kmd_shared->partitions[i].partition_id >= 0 &&
			kmd_shared->partitions[i].offline)
		{
			/* in the loop's memory, which lives until the batches went out */
			if (ids == NULL)
				ids = palloc(sizeof(int32) * kmd_shared->partitions_used);
			ids[n++] = kmd_shared->partitions[i].partition_id;
		}
	if (n > 0)
		n_peers = roster_peers(peers);
	LWLockRelease(kmd_shared->lock);
	for (int i = 0; i < n_peers; i++)
	{
		KmdOutBatch *b = kmd_batch_for(peers[i]);

		if (b == NULL)
			continue;
		b->keepalive = true;
		b->offline = ids;
		b->n_offline = n;
	}
}

void
kmd_peers_keepalives(int interval)
{
	TimestampTz now = GetCurrentTimestamp();
	int32		peers[KMD_MAX_NODES];
	int			n;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	n = roster_peers(peers);
	LWLockRelease(kmd_shared->lock);
	for (int i = 0; i < n; i++)
		if (TimestampDifferenceExceeds(last_sent_for(peers[i])->at, now, interval))
		{
			KmdOutBatch *b = kmd_batch_for(peers[i]);

			if (b != NULL)
				b->keepalive = true;
		}
}
