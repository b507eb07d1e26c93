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
	int64		arg;
	char	   *command;
	uint32		command_len;
	int32		from;			/* forwarding node, 0 if local */
} KmdRequest;

extern void kmd_serve_request(const KmdRequest *req);
extern void kmd_serve_slots(void);
extern void kmd_serve_result(const Kommander__ForwardResult *res);
extern void kmd_slot_fail(int slot_no, uint32 gen, int sqlerrcode, const char *msg);

#endif							/* KOMMANDER_SERVE_H */
