/*-------------------------------------------------------------------------
 *
 * deliver.c
 *	  kommander.deliver(bytea): the receiving end of the peer channel.
 *	  Runs in the backend a peer's Raft worker is connected to, checks
 *	  who sent the batch, and copies it into the inboxes of the local Raft
 *	  workers that own its partitions.
 *
 * It refuses a caller without kommander_peer, a batch too large for an
 * inbox (before unpacking it), a malformed batch, a batch of another wire
 * version, of another cluster, for another node or from a node outside the
 * roster, a batch from a node whose peer role (roster) is not the
 * session's, a batch whose messages are not the sender's or whose
 * forwarded requests the sender could not have made, and one that lists
 * more offline partitions than a node can have.  It never waits: a
 * full inbox drops the batch, and a peer stream returns to its sender the
 * forwarded requests and the answers to them in it, to be sent again.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/deliver.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "libpq/libpq.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
#include "utils/wait_event.h"

#include "apply.h"
#include "errcodes.h"
#include "guc.h"
#include "identity.h"
#include "serve.h"
#include "shmem.h"
#include "stats.h"
#include "wire.h"

PG_FUNCTION_INFO_V1(kmd_deliver);
PG_FUNCTION_INFO_V1(kmd_peer_stream);

static char *
uuid_text(const uint8 *id)
{
	pg_uuid_t	u;

	memcpy(u.data, id, UUID_LEN);
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&u)));
}

static void
malformed(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_PROTOCOL_VIOLATION),
			 errmsg("malformed kommander batch"),
			 errdetail_internal("%s", detail)));
}

/*
 * Is the batch's sender who it says, and what it holds what that node
 * could have sent?  When the roster names the login role a node's peers
 * use, only a session of that role delivers for that node, and a session
 * of it for no other.  Every Raft message must be from the sender and for
 * this node, and every forwarded request one the sender could have made
 * (kmd_forward_problem).
 */
static void
check_sender(const Kommander__Batch *b)
{
	kmd_check_peer_session(b->from_node, "deliver batches from");

	for (size_t i = 0; i < b->n_messages; i++)
	{
		const Kommander__GroupMessage *gm = b->messages[i];

		if (gm == NULL || gm->msg == NULL)
			malformed("A group message is empty.");
		if (gm->msg->from != b->from_node || gm->msg->to != b->to_node)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("batch from node %u refused", b->from_node),
					 errdetail("A message of partition %d in it is from node %u to node %u.",
							   gm->partition_id, gm->msg->from, gm->msg->to)));
	}
	for (size_t i = 0; i < b->n_forwards; i++)
	{
		char	   *why;

		if (b->forwards[i] == NULL)
			malformed("A forwarded request is empty.");
		why = kmd_forward_problem(b->forwards[i], (int32) b->from_node);
		if (why != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("batch from node %u refused", b->from_node),
					 errdetail_internal("%s", why)));
	}
	if (b->n_offline > (size_t) kmd_shared->max_partitions)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("batch from node %u refused", b->from_node),
				 errdetail("It lists %zu partitions offline on that node; a node has at most %d.",
						   b->n_offline, kmd_shared->max_partitions)));
}

/*
 * May this session deliver batches at all?  A caller needs kommander_peer
 * and the node must be a member; `refresh' reads the catalog first when
 * it is not, as a bootstrap or join may just have committed.
 */
static void
check_caller(bool refresh)
{
	if (!superuser() &&
		!has_privs_of_role(GetUserId(), get_role_oid("kommander_peer", false)))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to deliver kommander messages"),
				 errhint("Grant the role kommander_peer to the role peers connect as.")));
	if (kmd_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_NOT_MEMBER),
				 errmsg("kommander is not loaded on this node")));
	if (!kmd_shared->member && refresh)
		kmd_catalog_refresh();
	if (!kmd_shared->member)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_NOT_MEMBER),
				 errmsg("this node is not a member of a kommander cluster")));
}

/*
 * Raises unless node `from', which sent a batch, is a member; notes it as
 * heard from now if `heard'.
 */
static int32 last_sender = 0;	/* the node a batch last came from */

static void
sender_node(uint32 from, bool heard)
{
	KmdNode    *node;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	node = kmd_node_find((int32) from);
	if (node != NULL && heard)
		pg_atomic_write_u64(&node->last_contact, (uint64) GetCurrentTimestamp());
	LWLockRelease(kmd_shared->lock);
	if (node == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("batch from node %u, which is not a member of this cluster", from)));
	if (heard)
		last_sender = (int32) from;
}

/*
 * One more batch from node `from' dropped; returns how many so far.  Its
 * roster entry is found again: the node may have been removed since the
 * batch came, its entry taken by another.
 */
static uint64
count_dropped(uint32 from)
{
	KmdNode    *node;
	uint64		dropped = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	node = kmd_node_find((int32) from);
	if (node != NULL)
		dropped = pg_atomic_add_fetch_u64(&node->batches_dropped, 1);
	LWLockRelease(kmd_shared->lock);
	return dropped;
}

/*
 * What of batch `b' the workers marked in `refused' would have served, for
 * the sender to send again: its forwarded requests, without their
 * commands (the sender's slots hold them), and its answers to requests of
 * this node that still wait for them.  Raft messages are not returned:
 * Raft sends again what is lost.  Appended to `out' as a stream message;
 * nothing when there is nothing to return.
 */
static void
return_refused(const Kommander__Batch *b, const bool *refused, StringInfo out)
{
	KmdOutBatch r;
	char	   *packed;
	uint32		len;

	kmd_batch_init(&r, (int32) b->from_node);
	for (size_t i = 0; i < b->n_forwards; i++)
	{
		const Kommander__Forward *f = b->forwards[i];

		if (refused[kmd_worker_for_partition(f->partition_id)])
			kmd_batch_add_forward(&r, f->partition_id, f->kind, f->origin_slot,
								  f->origin_gen, f->arg, NULL, 0);
	}
	for (size_t i = 0; i < b->n_results; i++)
	{
		const Kommander__ForwardResult *res = b->results[i];

		if (res != NULL && refused[kmd_worker_for_partition(res->partition_id)] &&
			kmd_slot_waits(res->origin_slot, res->origin_gen))
			kmd_batch_add_result(&r, res->partition_id, res->origin_slot,
								 res->origin_gen, res->retry, res->not_hosted,
								 res->sqlstate, res->message, res->index);
	}
	if (r.n_forwards == 0 && r.n_results == 0)
		return;
	packed = kmd_batch_pack(&r, kmd_shared->cluster_id, kmd_shared->local_node_id, SIZE_MAX, &len);
	appendStringInfoChar(out, KMD_STREAM_RETURNED);
	appendBinaryStringInfo(out, packed, (int) len);
}

/*
 * Check one packed batch and copy it into the inboxes of the Raft workers
 * its partitions belong to; false if an inbox had no room for it.  Then,
 * if `returned' is given, what the refused part held for the sender to
 * send again is appended to it (return_refused).
 */
static bool
deliver_batch(const char *data, uint32 len, StringInfo returned)
{
	MemoryContext cxt;
	MemoryContext old;
	Kommander__Batch *b;
	bool		targets[KMD_MAX_WORKERS] = {false};
	bool		refused[KMD_MAX_WORKERS] = {false};
	bool		all = true;
	uint32		from_node;

	if (len > KMD_MAX_BATCH_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("kommander batch too large"),
				 errdetail("The batch has %u bytes; a node takes at most %d.",
						   len, KMD_MAX_BATCH_BYTES)));

	cxt = AllocSetContextCreate(CurrentMemoryContext, "kommander deliver",
								ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);
	b = kmd_batch_unpack(data, len);
	if (b == NULL)
		malformed("The bytes are not a kommander batch.");
	if (b->version != KMD_WIRE_VERSION)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("kommander batch of wire version %u", b->version),
				 errdetail("This node speaks version %d.", KMD_WIRE_VERSION)));
	if (b->cluster_id.len != UUID_LEN ||
		memcmp(b->cluster_id.data, kmd_shared->cluster_id, UUID_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("batch from another cluster"),
				 b->cluster_id.len == UUID_LEN ?
				 errdetail("The batch is for cluster %s; this node belongs to cluster %s.",
						   uuid_text(b->cluster_id.data), uuid_text(kmd_shared->cluster_id)) :
				 errdetail("The batch carries no valid cluster id.")));
	if ((int32) b->to_node != kmd_shared->local_node_id)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("batch for node %u delivered to node %d", b->to_node,
						kmd_shared->local_node_id)));

	(void) sender_node(b->from_node, false);
	check_sender(b);
	/* heard from only once it is surely the sender: a refused batch says nothing */
	sender_node(b->from_node, true);

	for (size_t i = 0; i < b->n_messages; i++)
		if (b->messages[i] != NULL)
			targets[kmd_worker_for_partition(b->messages[i]->partition_id)] = true;
	for (size_t i = 0; i < b->n_forwards; i++)
		if (b->forwards[i] != NULL)
			targets[kmd_worker_for_partition(b->forwards[i]->partition_id)] = true;
	for (size_t i = 0; i < b->n_results; i++)
		if (b->results[i] != NULL)
			targets[kmd_worker_for_partition(b->results[i]->partition_id)] = true;
	for (size_t i = 0; i < b->n_offline; i++)
		if (b->offline[i] >= 0)
			targets[kmd_worker_for_partition(b->offline[i])] = true;
	from_node = b->from_node;
	MemoryContextSwitchTo(old);
	kmd_stat_add(KMD_STAT_BATCHES_RECEIVED, -1, 1);
	kmd_stat_add(KMD_STAT_BYTES_RECEIVED, -1, len);

	for (int w = 0; w < kmd_shared->n_workers; w++)
	{
		if (!targets[w])
			continue;
		if (kmd_inbox_put(kmd_shared->workers[w].inbox, data, len))
			kmd_wake_worker(w);
		else
		{
			refused[w] = true;
			all = false;
		}
	}
	if (!all && returned != NULL)
	{
		old = MemoryContextSwitchTo(cxt);
		return_refused(b, refused, returned);
		MemoryContextSwitchTo(old);
	}
	MemoryContextDelete(cxt);
	if (!all)
	{
		uint64		dropped = count_dropped(from_node);

		/*
		 * Raft sends again what is lost, but a full inbox means this node
		 * falls behind its peers: counted in kommander.nodes, logged at
		 * the first drop and at every power of ten.
		 */
		for (uint64 p = 1; p <= dropped; p *= 10)
			if (p == dropped)
				ereport(LOG,
						(errmsg("kommander: no room for a batch of %u bytes from node %u in a Raft worker's inbox",
								len, from_node),
						 errdetail("Batches from that node dropped so far: " UINT64_FORMAT ".", dropped)));
	}
	return all;
}

/*
 * kommander.deliver(batch): one batch, in a call of its own.
 */
Datum
kmd_deliver(PG_FUNCTION_ARGS)
{
	bytea	   *raw = PG_GETARG_BYTEA_PP(0);

	check_caller(true);
	PG_RETURN_BOOL(deliver_batch(VARDATA_ANY(raw), VARSIZE_ANY_EXHDR(raw), NULL));
}

/* messages a peer stream reads before it looks at its commit and interrupts */
#define STREAM_READ_MAX 64

/*
 * Election timeouts a peer stream may hear nothing: its sender's worker
 * sends a keepalive every quarter election timeout (worker 0) or every two
 * (the others), and gives a stream up after as many without an answer.
 */
#define STREAM_SILENCE_TIMEOUTS 10

/*
 * End the session quietly, as a backend does when its client goes: the
 * peer stopped, or closed the connection.
 */
static pg_attribute_noreturn() void
stream_exit(void)
{
	whereToSendOutput = DestNone;
	proc_exit(0);
}

/*
 * Read the rest of a message whose type byte was read: its length word and
 * its body, at most a kind byte and the largest batch.  False if the
 * connection ended first (a peer's worker that stops may cut a message
 * off); a length no message of the stream has ends the session.
 */
static bool
read_body(StringInfo msg)
{
	uint32		len;

	if (pq_getbytes((char *) &len, 4) == EOF)
		return false;
	len = pg_ntoh32(len);
	if (len < 4 || len - 4 > 1 + KMD_MAX_BATCH_BYTES)
		ereport(FATAL,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("kommander peer stream lost its framing"),
				 errdetail("A message of %u bytes; the longest is %d.",
						   len < 4 ? 0 : len - 4, 1 + KMD_MAX_BATCH_BYTES)));
	len -= 4;
	enlargeStringInfo(msg, (int) len);
	if (len > 0 && pq_getbytes(msg->data, len) == EOF)
		return false;
	msg->len = (int) len;
	msg->data[len] = '\0';
	pq_endmsgread();
	return true;
}

/*
 * Answer a batch of the stream, if it is the timed one or was refused.
 */
static bool
answer(bool timed, bool all)
{
	char		reply[2] = {KMD_STREAM_ANSWER, 0};

	if (!timed && all)
		return false;
	reply[1] = (timed ? KMD_ANSWER_TIMED : 0) | (all ? 0 : KMD_ANSWER_REFUSED);
	pq_putmessage('d', reply, sizeof(reply));
	return true;
}

/*
 * Read and deliver the messages the client has sent that can be read
 * without waiting, at most STREAM_READ_MAX, so that the caller's commit
 * comes under a steady stream too; returns how many batches, or -1 when
 * the client ended the copy.  Each batch is checked as kommander.deliver
 * checks one, with the caches brought up to date first, so that a role or
 * privilege revoked meanwhile delivers nothing more.
 */
static int
read_messages(MemoryContext batch_cxt, Oid procedure)
{
	int			batches = 0;
	bool		answered = false;

	while (batches < STREAM_READ_MAX)
	{
		unsigned char type;
		int			r;
		MemoryContext old;
		StringInfoData msg;
		StringInfoData returned;
		bool		timed;

		pq_startmsgread();
		r = pq_getbyte_if_available(&type);
		if (r == 0)
		{
			pq_endmsgread();
			break;
		}
		if (r < 0)
			stream_exit();
		/* each message in memory of its own, however large the last was */
		MemoryContextReset(batch_cxt);
		old = MemoryContextSwitchTo(batch_cxt);
		initStringInfo(&msg);
		if (!read_body(&msg))
			stream_exit();		/* cut off: the peer closed the connection */
		switch (type)
		{
			case 'd':
				if (msg.len < 1 || (msg.data[0] != KMD_STREAM_BATCH &&
									msg.data[0] != KMD_STREAM_TIMED))
					malformed("A message of the peer stream is not a batch.");
				timed = msg.data[0] == KMD_STREAM_TIMED;
				AcceptInvalidationMessages();
				check_caller(false);
				if (pg_proc_aclcheck(procedure, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
					ereport(ERROR,
							(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
							 errmsg("permission denied for procedure kommander.peer_stream()"),
							 errdetail("The privilege was revoked while the stream ran.")));
				initStringInfo(&returned);
				if (answer(timed, deliver_batch(msg.data + 1, msg.len - 1, &returned)))
					answered = true;
				if (returned.len > 0)
				{
					pq_putmessage('d', returned.data, returned.len);
					answered = true;
				}
				InvalidateCatalogSnapshot();
				MemoryContextSwitchTo(old);
				batches++;
				CHECK_FOR_INTERRUPTS();
				continue;
			case 'c':			/* CopyDone: the client ends the stream */
				MemoryContextSwitchTo(old);
				pq_putemptymessage('c');
				pq_flush();
				return -1;
			case 'X':			/* Terminate */
				stream_exit();
		}
		ereport(FATAL,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("unexpected message type 0x%02X on a kommander peer stream", type)));
	}
	if (answered)
		pq_flush();
	return batches;
}

/*
 * CALL kommander.peer_stream(): the peer channel as one long call.  The
 * connection turns to COPY BOTH mode and every CopyData message the client
 * sends is a batch (wire.h), delivered as kommander.deliver would deliver
 * it, without a statement, a transaction or an answer of its own.  The
 * call holds no snapshot (it commits the CALL's at once, and lets go of
 * the catalog snapshot a batch's checks take), so the server's vacuum is
 * not held back, and it commits again a second after a batch, so that its
 * transaction is never old.  It returns when the client ends the copy;
 * closing the connection ends the session.
 */
Datum
kmd_peer_stream(PG_FUNCTION_ARGS)
{
	CallContext *call = (CallContext *) fcinfo->context;
	StringInfoData response;
	MemoryContext batch_cxt;
	TimestampTz last_commit;
	TimestampTz last_heard;
	bool		dirty = false;	/* a batch came since the last commit */
	int			batches = STREAM_READ_MAX;	/* read by the last round; the
												 * first reads what came with
												 * the CALL */

	check_caller(true);
	if (call == NULL || !IsA(call, CallContext) || call->atomic)
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("kommander.peer_stream() cannot run inside a transaction block"),
				 errhint("CALL it as a statement of its own.")));
	if (whereToSendOutput != DestRemote)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("kommander.peer_stream() needs a client connection")));

	disable_timeout(STATEMENT_TIMEOUT, false);
	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	SPI_commit();
	last_commit = GetCurrentTimestamp();
	last_heard = last_commit;
	batch_cxt = AllocSetContextCreate(CurrentMemoryContext, "kommander peer stream",
									  ALLOCSET_DEFAULT_SIZES);

	/* CopyBothResponse: text format, no columns */
	pq_beginmessage(&response, 'W');
	pq_sendbyte(&response, 0);
	pq_sendint16(&response, 0);
	pq_endmessage(&response);
	pq_flush();

	for (;;)
	{
		WaitEvent	event;
		int			silence = STREAM_SILENCE_TIMEOUTS * kmd_election_timeout;
		long		timeout;

		/*
		 * A sender that went without closing the connection (its host
		 * down, the network cut) leaves the stream silent: it ends, which
		 * frees its connection slot, where the kernel would notice the
		 * peer gone after hours.  The sender's worker opens a new one.
		 */
		if (TimestampDifferenceExceeds(last_heard, GetCurrentTimestamp(), silence))
		{
			if (last_sender != 0)
				ereport(LOG,
						(errmsg("kommander: the peer stream of node %d heard nothing for %d ms; it ends",
								last_sender, silence)));
			else
				ereport(LOG,
						(errmsg("kommander: a peer stream heard nothing for %d ms; it ends",
								silence)));
			stream_exit();
		}
		timeout = Max(0, silence - TimestampDifferenceMilliseconds(last_heard,
																  GetCurrentTimestamp()));

		/*
		 * Wait only when everything received is read: messages left by a
		 * full round may already be in the backend's buffer, where the
		 * socket no longer shows them.
		 */
		if (batches < STREAM_READ_MAX)
		{
			if (dirty)
				timeout = Min(timeout,
							  Max(0, 1000 - TimestampDifferenceMilliseconds(last_commit,
																		  GetCurrentTimestamp())));
			ModifyWaitEvent(FeBeWaitSet, FeBeWaitSetSocketPos, WL_SOCKET_READABLE, NULL);
			if (WaitEventSetWait(FeBeWaitSet, timeout, &event, 1, PG_WAIT_EXTENSION) == 1 &&
				(event.events & WL_POSTMASTER_DEATH))
				ereport(FATAL,
						(errcode(ERRCODE_ADMIN_SHUTDOWN),
						 errmsg("terminating connection due to unexpected postmaster exit")));
			ResetLatch(MyLatch);
		}
		CHECK_FOR_INTERRUPTS();

		batches = read_messages(batch_cxt, fcinfo->flinfo->fn_oid);
		if (batches < 0)
			break;
		if (batches > 0)
			last_heard = GetCurrentTimestamp();
		dirty |= batches > 0;
		if (dirty && TimestampDifferenceExceeds(last_commit, GetCurrentTimestamp(), 1000))
		{
			SPI_commit();
			last_commit = GetCurrentTimestamp();
			dirty = false;
		}
	}
	MemoryContextDelete(batch_cxt);
	SPI_finish();
	PG_RETURN_VOID();
}
