/*-------------------------------------------------------------------------
 *
 * serve.h
 *	  Requests in the Raft worker (serve.c).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/serve.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_SERVE_H
#define KOMMANDER_SERVE_H

#include "wire.h"

/* One request, from a local slot (from == 0) or forwarded by node `from' */
typedef struct KmdRequest
{
	int			kind;			/* KmdSlotKind */
	int32		partition_id;
	int32		slot;			/* in the origin node's slot array */
	uint32		gen;			/* the slot's generation */
	int64		arg;			/* a node id (transfer, checks); the
								 * command's KmdCommandKind (proposals; 0:
								 * not said) */
	char	   *command;
	uint32		command_len;
	int32		from;			/* forwarding node, 0 if local */
} KmdRequest;

extern void kmd_serve_request(const KmdRequest *req);
extern void kmd_serve_slots(void);

/*
 * The forward of local slot `slot' (of generation `gen') never left this
 * node (its batch was dropped): the request is pending again, to go with
 * a later batch, instead of waiting for an answer that cannot come and
 * ending with an outcome unknown (K0003).
 */
extern void kmd_serve_unsent(int32 slot, uint32 gen);

/*
 * The forward of local slot `slot' (of generation `gen', for that
 * partition and of that kind) reached the leader's node, whose inbox had
 * no room for it, and came back: it is pending again, but goes again only
 * a heartbeat interval later, doubled at every return of the request up
 * to sixteen intervals or an election timeout, so that a node whose Raft
 * worker is stuck is not sent the same requests over and over.
 */
extern void kmd_serve_returned(int32 slot, uint32 gen, int32 partition_id,
							   uint32 kind);

/* When the earliest returned request may go again (the worker must be
 * awake then); 0 when none waits. */
extern TimestampTz kmd_serve_wake_at(void);

/*
 * Whether local slot `slot' still waits, at generation `gen', for a
 * leader's answer to its forward; read without the slot's lock, so only a
 * hint (an answer is checked under the lock when it arrives).
 */
extern bool kmd_slot_waits(int32 slot, uint32 gen);

/* The answer to a request this node sent node `from' (forwarded, or a read index). */
extern void kmd_serve_result(const Kommander__ForwardResult *res, int32 from);
/* Node `from' says that it does not run the partition's group. */
extern void kmd_serve_peer_offline(int32 partition_id, int32 from);

/*
 * Node `from' asked this node, which does not run the partition's group,
 * for a read index (`context': its read's slot and generation): answer
 * that the group does not run here, as a forwarded request is answered.
 */
extern void kmd_serve_not_hosted(int32 partition_id, int32 from, uint64 context);
extern void kmd_slot_fail(int slot_no, uint32 gen, int sqlerrcode, const char *msg);

/*
 * Why a request that node `from_node' forwards is one that node could not
 * have made through SQL (a palloc'd sentence), or NULL when it could: a
 * kind that is forwarded; for a proposal, a command that decodes, comes
 * from that node and its slot, has the arguments the SQL functions give
 * its kind, and goes to the system partition if and only if it is a
 * system partition command.  The peer channel (deliver.c) refuses a batch
 * that holds one (the Raft worker trusts what it let through).
 */
extern char *kmd_forward_problem(const Kommander__Forward *f, int32 from_node);

#endif							/* KOMMANDER_SERVE_H */
