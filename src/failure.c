/*-------------------------------------------------------------------------
 *
 * failure.c
 *	  Failures of this node while the apply worker applies a command, told
 *	  from the command's outcome, and the partitions they hold back here.
 *
 * An error is the command's outcome, the same on every node, unless it is
 * a failure of this node: one whose SQLSTATE Postgres uses for a failure
 * of the server (kmd_node_failure_code: resources, a cancel, a lock not
 * granted in time, a deadlock, I/O, corrupt data) and that Postgres raised.
 * User code can raise any SQLSTATE, and what PL/pgSQL's RAISE raises
 * (the error's origin is pl_exec.c) is the outcome.  An error context
 * callback counts such failures as they are raised, so one that the
 * command's own code catches (EXCEPTION WHEN OTHERS) still makes the whole
 * command a failure of this node: another node ran the same code without
 * it.  Other procedural languages re-raise Postgres's errors as their own:
 * there, an error with such a SQLSTATE counts as a failure of the node,
 * and so does one that user code raises and catches itself.
 *
 * A failure of this node holds back the command's partition at that entry
 * here; it is tried again after a backoff, while the other partitions go
 * on.  An entry this node cannot decode stops its partition until the
 * apply worker starts again.  Both show in kommander.partitions.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/failure.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "errcodes.h"
#include "failure.h"

/*
 * The backoff of a partition retrying after a failure of this node doubles
 * from RETRY_MIN_MS up to RETRY_LOCK_MAX_MS after a lock, a deadlock or a
 * cancel (they pass soon), up to RETRY_MAX_MS after the rest.
 */
#define RETRY_MIN_MS 100
#define RETRY_LOCK_MAX_MS 1000
#define RETRY_MAX_MS 10000

/* Was this error raised by user code, with PL/pgSQL's RAISE? */
static bool
raised_by_user(const ErrorData *edata)
{
	return edata->filename != NULL && strcmp(edata->filename, "pl_exec.c") == 0;
}

/* Node failures raised while the watched command runs, and the last one's */
static int	failures_raised = 0;
static int	last_failure_code = 0;

/*
 * An error context callback: count an error of this node's kind as it is
 * raised, even if the command catches it.  Not a warning or notice (this
 * runs only where one is logged, which is a node's setting), nor what
 * PL/pgSQL's RAISE raises: that is the command's own doing.
 */
static void
count_failures(void *arg)
{
	int			code = geterrcode();
	MemoryContext old;
	ErrorData  *edata;
	bool		counts;

	if (!kmd_node_failure_code(code))
		return;
	/* the report is copied out of ErrorContext, where callbacks run */
	old = MemoryContextSwitchTo(TopMemoryContext);
	edata = CopyErrorData();
	MemoryContextSwitchTo(old);
	counts = edata->elevel >= ERROR && !raised_by_user(edata);
	FreeErrorData(edata);
	if (counts)
	{
		failures_raised++;
		last_failure_code = code;
	}
}

void
kmd_failures_watch(ErrorContextCallback *cb)
{
	failures_raised = 0;
	cb->callback = count_failures;
	cb->arg = NULL;
	cb->previous = error_context_stack;
	error_context_stack = cb;
}

void
kmd_failures_unwatch(ErrorContextCallback *cb)
{
	error_context_stack = cb->previous;
}

bool
kmd_failure_caught(KmdFailure *failure)
{
	if (failures_raised == 0)
		return false;
	failure->sqlerrcode = last_failure_code;
	failure->message = psprintf("the command caught an error of this node (SQLSTATE %s) and went on",
								unpack_sql_state(last_failure_code));
	return true;
}

bool
kmd_failure_of_node(const ErrorData *edata, KmdFailure *failure)
{
	/* the error itself was counted as it was raised, if it is one */
	bool		of_node = kmd_node_failure_code(edata->sqlerrcode) && !raised_by_user(edata);

	if (!of_node && failures_raised == 0)
		return false;
	failure->sqlerrcode = of_node ? edata->sqlerrcode : last_failure_code;
	failure->message = of_node ? pstrdup(edata->message ? edata->message : "") :
		psprintf("the command caught an error of this node (SQLSTATE %s), then failed",
				 unpack_sql_state(last_failure_code));
	return true;
}

void
kmd_stall_retry(int32 partition_id, uint64 index, const KmdFailure *failure)
{
	KmdPartition *part;
	bool		lock = failure->sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
		failure->sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		failure->sqlerrcode == ERRCODE_QUERY_CANCELED;
	TimestampTz now = GetCurrentTimestamp();
	int			tries = 0;
	int			delay = RETRY_MIN_MS;
	char	   *error = psprintf("%s: %s", unpack_sql_state(failure->sqlerrcode), failure->message);

	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	part = kmd_partition_find(partition_id);
	if (part != NULL)
	{
		if (part->apply_stall != KMD_STALL_RETRYING)
		{
			part->apply_stall = KMD_STALL_RETRYING;
			part->apply_stalled_since = now;
			part->apply_tries = 0;
		}
		tries = ++part->apply_tries;
		for (int i = 1; i < tries && delay < RETRY_MAX_MS; i++)
			delay *= 2;
		delay = Min(delay, lock ? RETRY_LOCK_MAX_MS : RETRY_MAX_MS);
		part->apply_retry_at = TimestampTzPlusMilliseconds(now, delay);
		kmd_copy_text(part->apply_error, error, sizeof(part->apply_error));
	}
	LWLockRelease(kmd_shared->lock);

	/* the first failure, and then every tenth: a lock may be held long */
	if (tries % 10 == 1)
		ereport(LOG,
				(errmsg("kommander: partition %d waits at entry " UINT64_FORMAT " for a failure of this node to pass; next try in %d ms",
						partition_id, index, delay),
				 errdetail("Try %d failed with SQLSTATE %s: %s", tries,
						   unpack_sql_state(failure->sqlerrcode), failure->message)));
}

void
kmd_stall_stop(int32 partition_id, uint64 index, uint64 term, const char *why)
{
	KmdPartition *part;
	char	   *error;

	error = psprintf("%s: partition %d cannot apply entry " UINT64_FORMAT " (term " UINT64_FORMAT "): %s",
					 unpack_sql_state(ERRCODE_PROTOCOL_VIOLATION), partition_id, index, term, why);
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	part = kmd_partition_find(partition_id);
	if (part != NULL)
	{
		part->apply_stall = KMD_STALL_STOPPED;
		part->apply_stalled_since = GetCurrentTimestamp();
		kmd_copy_text(part->apply_error, error, sizeof(part->apply_error));
	}
	LWLockRelease(kmd_shared->lock);
	ereport(WARNING,
			(errcode(ERRCODE_PROTOCOL_VIOLATION),
			 errmsg("kommander: partition %d cannot apply entry " UINT64_FORMAT " (term " UINT64_FORMAT "): %s",
					partition_id, index, term, why),
			 errdetail("The partition applies nothing more on this node; the other partitions go on."),
			 errhint("Upgrade kommander on this node to the version of the node that proposed the entry, then restart it.")));
}

bool
kmd_stall_allows(const KmdPartition *part, TimestampTz now, TimestampTz *next_try)
{
	if (part->apply_stall == KMD_STALL_STOPPED)
		return false;
	if (part->apply_stall == KMD_STALL_RETRYING && part->apply_retry_at > now)
	{
		*next_try = Min(*next_try, part->apply_retry_at);
		return false;
	}
	return true;
}

int
kmd_stall_clear(KmdPartition *part)
{
	int			tries = part->apply_tries;

	Assert(LWLockHeldByMeInMode(kmd_shared->lock, LW_EXCLUSIVE));
	if (part->apply_stall != KMD_STALL_RETRYING)
		return 0;
	part->apply_stall = KMD_STALL_NONE;
	part->apply_tries = 0;
	part->apply_error[0] = '\0';
	return tries;
}

void
kmd_stall_reset(void)
{
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		kmd_shared->partitions[i].apply_stall = KMD_STALL_NONE;
		kmd_shared->partitions[i].apply_tries = 0;
	}
	LWLockRelease(kmd_shared->lock);
}
