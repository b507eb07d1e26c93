/*-------------------------------------------------------------------------
 *
 * failure.h
 *	  Failures of this node while the apply worker applies a command, told
 *	  from the command's outcome, and the partitions they hold back here
 *	  (kommander.partitions.stalled).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/failure.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_FAILURE_H
#define KOMMANDER_FAILURE_H

#include "datatype/timestamp.h"

#include "shmem.h"

/* A failure of this node while a command ran: not the command's outcome */
typedef struct KmdFailure
{
	int			sqlerrcode;
	char	   *message;
} KmdFailure;

/*
 * Watch the command about to run: `cb' (the caller's, it lives as long as
 * the command) is pushed on the error context stack and counts the errors
 * with a node failure's SQLSTATE raised from now on, also those the
 * command's own code catches.  Pop it with kmd_failures_unwatch when the
 * command returns; an error longjmp restores the stack by itself.
 */
extern void kmd_failures_watch(ErrorContextCallback *cb);
extern void kmd_failures_unwatch(ErrorContextCallback *cb);

/*
 * The command returned: did its code catch a failure of this node (then
 * *failure says which, and the command must be rolled back and tried
 * again)?
 */
extern bool kmd_failure_caught(KmdFailure *failure);

/*
 * The command raised `edata': is that, or what the command caught before,
 * a failure of this node (then *failure says which) rather than the
 * command's outcome?  A node failure's SQLSTATE raised by PL/pgSQL's RAISE
 * in user code is an outcome.
 */
extern bool kmd_failure_of_node(const ErrorData *edata, KmdFailure *failure);

/*
 * A failure of this node stopped `partition_id' at entry `index': show it
 * and let it be tried again after a backoff that grows with each failure
 * in a row.
 */
extern void kmd_stall_retry(int32 partition_id, uint64 index, const KmdFailure *failure);

/*
 * Partition `partition_id' cannot go past entry `index' (of `term') on
 * this node, because of `why' (an entry it cannot decode): it stops there,
 * which is shown and logged, until the apply worker starts again.
 */
extern void kmd_stall_stop(int32 partition_id, uint64 index, uint64 term, const char *why);

/*
 * May `part' be applied now (kmd_shared->lock held)?  Not while it waits
 * for its next try, nor once stopped; *next_try is lowered to when it may.
 */
extern bool kmd_stall_allows(const KmdPartition *part, TimestampTz now, TimestampTz *next_try);

/*
 * `part' was applied without a failure: it is not retrying any more
 * (kmd_shared->lock held exclusive).  Returns how many tries it took, 0
 * when it was not retrying.
 */
extern int	kmd_stall_clear(KmdPartition *part);

/* Forget every stall: a new apply worker tries every partition again. */
extern void kmd_stall_reset(void);

#endif							/* KOMMANDER_FAILURE_H */
