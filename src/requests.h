/*-------------------------------------------------------------------------
 *
 * requests.h
 *	  Idempotent proposals: the outcome of each command that carries a
 *	  "request_id", remembered by its partition's state machine, so that a
 *	  retry returns it and applies nothing again (requests.c).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/requests.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_REQUESTS_H
#define KOMMANDER_REQUESTS_H

#include "command.h"
#include "rows.h"

/* The longest request id, in bytes */
#define KMD_REQUEST_ID_MAX 200

/*
 * The longest key of a command with a request id, in bytes: the key and
 * the id are the primary key of kommander.requests, whose btree takes
 * entries of about 2,700 bytes at most.  An outcome that could not be
 * remembered would fail the whole apply transaction on every node.
 */
#define KMD_REQUEST_KEY_MAX 2000

/* What a proposer is answered; strings palloc'd in the caller's context. */
typedef struct KmdRequestOutcome
{
	char		sqlstate[6];
	char	   *errmsg;
	char	   *errdetail;
	uint64		index;
	uint64		term;
	int32		partition_id;	/* whose log holds entry `index' */
	bool		applied;
	char	   *result;
} KmdRequestOutcome;

/*
 * Before an entry of a user partition is applied (SPI connected, in the
 * apply worker's transaction, outside the command's own subtransaction):
 * forget the outcomes older than the entry's time minus the retention its
 * proposer gave, within the partition's key range [lo, hi], and, for a
 * command with a request id, look it up.  True, with the first outcome in
 * *out, when the id was seen: the entry must then change nothing.  An id
 * seen with another command gives a K0011 outcome.
 */
extern bool kmd_requests_replay(const KmdCommand *cmd, const KmdApplyContext *ctx,
								int64 lo, int64 hi, KmdRequestOutcome *out);

/*
 * After a command with a request id was applied, or failed as its
 * outcome: remember that outcome (nothing for a command without an id).
 */
extern void kmd_requests_remember(const KmdCommand *cmd, const KmdApplyContext *ctx,
								  const KmdRequestOutcome *out);

#endif							/* KOMMANDER_REQUESTS_H */
