/*-------------------------------------------------------------------------
 *
 * request.h
 *	  How a backend asks its node's Raft worker for something (a proposal,
 *	  a read index, a leader transfer) and waits for the answer.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/request.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_REQUEST_H
#define KOMMANDER_REQUEST_H

#include "command.h"

typedef struct KmdOutcome
{
	char		sqlstate[6];
	char	   *errmsg;
	char	   *errdetail;
	char	   *errhint;
	uint64		index;
	uint64		term;
	int32		index_partition;	/* whose log holds `index' when not the
									 * request's partition, else 0 */
	bool		applied;
	char	   *result;			/* NUL-terminated jsonb text, or NULL */
} KmdOutcome;

/*
 * Hand a request to the Raft worker of `partition_id' and wait up to
 * kommander.propose_timeout for its outcome.  For KMD_REQ_PROPOSE, `cmd' is
 * encoded with this request's slot as its origin.  Raises K0002 when no
 * leader took the request in time and K0003 when it was sent but its
 * outcome is unknown; otherwise *out holds the outcome (which may be an
 * error: see kmd_outcome_raise).
 */
extern void kmd_request(int kind, int32 partition_id, int64 arg,
						KmdCommand *cmd, KmdOutcome *out);

/* As kmd_request, but a request that timed out comes back as its outcome. */
extern void kmd_request_outcome(int kind, int32 partition_id, int64 arg,
								KmdCommand *cmd, KmdOutcome *out);

/* Raise the error an outcome carries, if any. */
extern void kmd_outcome_raise(const KmdOutcome *out);

/* Propose a command and raise its error if it failed. */
extern void kmd_propose_command(int32 partition_id, KmdCommand *cmd, KmdOutcome *out);

/*
 * ReadIndex on one partition, then wait until this node has applied that
 * far (both until `deadline'); returns the read index, or 0 once the
 * partition is gone here (merged away: its keys are its neighbour's).
 */
extern uint64 kmd_partition_barrier(int32 partition_id, TimestampTz deadline);

/* Error unless this node belongs to a cluster (K0005). */
extern void kmd_require_member(void);

/* Wait until partition `partition_id' has applied `index' here, or is
 * gone here (merged away: it applies nothing more), or the deadline
 * passes (then K0002: a read barrier's wait, a read). */
extern void kmd_wait_applied(int32 partition_id, uint64 index, TimestampTz deadline);

#endif							/* KOMMANDER_REQUEST_H */
