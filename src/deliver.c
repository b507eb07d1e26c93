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
 * roster.  It never waits: a full inbox drops the batch.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/deliver.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "apply.h"
#include "errcodes.h"
#include "shmem.h"
#include "wire.h"

PG_FUNCTION_INFO_V1(kmd_deliver);

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

Datum
kmd_deliver(PG_FUNCTION_ARGS)
{
	bytea	   *raw = PG_GETARG_BYTEA_PP(0);
	const char *data = VARDATA_ANY(raw);
	uint32		len = VARSIZE_ANY_EXHDR(raw);
	MemoryContext cxt;
	MemoryContext old;
	Kommander__Batch *b;
	bool		targets[KMD_MAX_WORKERS] = {false};
	bool		all = true;
	KmdNode    *sender;
	uint32		from_node;

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
	if (!kmd_shared->member)
		kmd_catalog_refresh();	/* a bootstrap or join may just have committed */
	if (!kmd_shared->member)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_NOT_MEMBER),
				 errmsg("this node is not a member of a kommander cluster")));

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

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	sender = kmd_node_find((int32) b->from_node);
	if (sender != NULL)
		pg_atomic_write_u64(&sender->last_contact, (uint64) GetCurrentTimestamp());
	LWLockRelease(kmd_shared->lock);
	if (sender == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("batch from node %u, which is not a member of this cluster",
						b->from_node)));

	for (size_t i = 0; i < b->n_messages; i++)
		if (b->messages[i] != NULL)
			targets[kmd_worker_for_partition(b->messages[i]->partition_id)] = true;
	for (size_t i = 0; i < b->n_forwards; i++)
		if (b->forwards[i] != NULL)
			targets[kmd_worker_for_partition(b->forwards[i]->partition_id)] = true;
	for (size_t i = 0; i < b->n_results; i++)
		if (b->results[i] != NULL)
			targets[kmd_worker_for_partition(b->results[i]->partition_id)] = true;
	from_node = b->from_node;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);

	for (int w = 0; w < kmd_shared->n_workers; w++)
	{
		if (!targets[w])
			continue;
		if (kmd_inbox_put(kmd_shared->workers[w].inbox, data, len))
			kmd_wake_worker(w);
		else
			all = false;
	}
	if (!all)
	{
		uint64		dropped = pg_atomic_add_fetch_u64(&sender->batches_dropped, 1);

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
	PG_RETURN_BOOL(all);
}
