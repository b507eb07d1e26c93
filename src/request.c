/*-------------------------------------------------------------------------
 *
 * request.c
 *	  A backend's side of a request to the Raft worker: take a slot in
 *	  shared memory, fill it, wake the worker, wait on the slot's condition
 *	  variable, and give the slot back whatever happens.
 *
 * A cancel, an error or a timeout frees the slot; the worker or the apply
 * worker recognise a late answer by the slot's generation and drop it, so
 * nothing is left behind in shared memory.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/request.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "errcodes.h"
#include "guc.h"
#include "request.h"
#include "shmem.h"
#include "stats.h"

void
kmd_require_member(void)
{
	if (kmd_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kommander is not loaded"),
				 errhint("Add kommander to shared_preload_libraries and restart the server.")));
	if (!kmd_shared->member)
		kmd_catalog_refresh();	/* a bootstrap or join may just have committed */
	if (!kmd_shared->member && kmd_shared->went_back_from != 0)
		kmd_report_went_back(ERROR);
	if (!kmd_shared->member && RecoveryInProgress())
		ereport(ERROR,
				(errcode(ERRCODE_KMD_NOT_MEMBER),
				 errmsg("this server is a standby: kommander does not run here"),
				 errhint("Call it on a node of the cluster.")));
	if (!kmd_shared->member)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_NOT_MEMBER),
				 errmsg("this node is not a member of a kommander cluster"),
				 errhint("Run kmd_bootstrap() or kmd_join() first.")));

	/*
	 * An applier, trigger or default run by the apply worker runs on every
	 * node: a request from there would be made once per node (a proposal
	 * proposed three times, a lease granted with each node's own id), and
	 * would wait for the apply worker that makes it.
	 */
	if (kmd_applying)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("kommander's functions cannot be called while a command is applied"),
				 errdetail("What a command does runs on every node; a request made from there would be made once per node."),
				 errhint("Propose the follow-up command from the client, with what the applier returned.")));
}

/* A free slot, taken; -1 when all are in use. */
static pg_noinline int
slot_acquire(uint32 *gen)
{
	for (int i = 0; i < KMD_NUM_SLOTS; i++)
	{
		KmdSlot    *slot = kmd_slot(i);

		if (slot->state != KMD_SLOT_FREE)
			continue;
		LWLockAcquire(slot->lock, LW_EXCLUSIVE);
		if (slot->state == KMD_SLOT_FREE)
		{
			slot->state = KMD_SLOT_RESERVED;
			*gen = ++slot->generation;
			slot->owner_pid = MyProcPid;
			slot->not_before = 0;
			slot->returns = 0;
			LWLockRelease(slot->lock);
			return i;
		}
		LWLockRelease(slot->lock);
	}
	return -1;
}

static void
slot_release(int slot_no)
{
	KmdSlot    *slot = kmd_slot(slot_no);

	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	slot->state = KMD_SLOT_FREE;
	slot->owner_pid = 0;
	LWLockRelease(slot->lock);
}

/*
 * The slot this backend waits on, and its place in a partition's queue:
 * given back at exit too.  A FATAL error (pg_terminate_backend, a lost
 * client, a shutdown) leaves the process without unwinding PG_TRY blocks.
 */
static int	held_slot = -1;
static int32 held_partition;
static int	held_ticket = -1;
static bool held_queue = false;

static void
release_at_exit(int code, Datum arg)
{
	if (held_slot < 0)
		return;
	ConditionVariableCancelSleep();
	LWLockReleaseAll();
	slot_release(held_slot);
	if (held_queue)
		kmd_queue_leave(held_partition, held_ticket);
	held_slot = -1;
}

/* Note what the backend holds until request_wait gives it back. */
static void
hold(int slot_no, int32 partition_id, int ticket, bool queued)
{
	static bool registered = false;

	if (!registered)
	{
		before_shmem_exit(release_at_exit, (Datum) 0);
		registered = true;
	}
	held_partition = partition_id;
	held_ticket = ticket;
	held_queue = queued;
	held_slot = slot_no;
}

static char *
copy_text(const char *s, size_t len)
{
	char	   *p = palloc(len + 1);

	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

/*
 * A wait for this node's apply worker checks, once it has lasted
 * SELF_CHECK_AFTER_MS, every SELF_CHECK_EVERY_MS whether the worker, in a
 * command of the partition waited for, waits for a lock of this very
 * backend: then it waits for nothing that can come.  The worker waits
 * 100 ms for a lock each time it tries (apply.c), the checks come more
 * often.
 */
#define SELF_CHECK_AFTER_MS 500
#define SELF_CHECK_EVERY_MS 40

/*
 * Is this node's apply worker, running a command of `partition_id',
 * waiting for a lock this backend holds?  Checked no sooner than
 * *next_check, which moves on.
 */
static bool
apply_waits_for_me(int32 partition_id, TimestampTz *next_check)
{
	TimestampTz now = GetCurrentTimestamp();
	pid_t		pid = kmd_shared->apply_pid;
	MemoryContext cxt;
	MemoryContext old;
	ArrayType  *blockers;
	Datum	   *pids;
	int			n;
	bool		found = false;

	if (now < *next_check)
		return false;
	*next_check = TimestampTzPlusMilliseconds(now, SELF_CHECK_EVERY_MS);
	if (pid == 0 || pid == MyProcPid || kmd_shared->apply_partition != partition_id)
		return false;
	/* the lock manager's picture is as large as the server's backends */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "kommander self check",
								ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(cxt);
	blockers = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(pid)));
	deconstruct_array(blockers, INT4OID, sizeof(int32), true, TYPALIGN_INT, &pids, NULL, &n);
	for (int i = 0; i < n && !found; i++)
		found = DatumGetInt32(pids[i]) == MyProcPid;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return found;
}

/* How long to sleep, at most `remaining' ms, until `next_check'. */
static long
self_check_sleep(TimestampTz next_check, long remaining)
{
	long		until = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), next_check);

	return Min(remaining, Max(until, 1));
}

/*
 * The error of a wait that apply_waits_for_me() found endless: a proposal
 * `sent' (its outcome unknown: it may be committed), or not, or a wait
 * for this node to apply (`sent' too: a barrier, which changed nothing).
 */
static void
raise_waits_for_me(int32 partition_id, bool sent, bool barrier)
{
	ereport(ERROR,
			(errcode(sent && !barrier ? ERRCODE_KMD_OUTCOME_UNKNOWN : ERRCODE_LOCK_NOT_AVAILABLE),
			 errmsg("the apply worker waits for a lock this transaction holds"),
			 barrier ?
			 errdetail("This node applies partition %d no further until this transaction ends.",
					   partition_id) :
			 sent ?
			 errdetail("The request on partition %d was sent and may be committed: this node applies it once this transaction ends.",
					   partition_id) :
			 errdetail("The request on partition %d was not sent.", partition_id),
			 errhint("End the transaction that locks control tables or their rows before proposing or waiting for a barrier.")));
}

/*
 * Can a proposal made at `start', still waiting for partition
 * `partition_id', be applied no more?  So when the partition was merged
 * away here after this node applied its entries to its freeze, with no
 * image of it installed since `start': the one apply worker answered every
 * entry it applied before it applied the merge, and the partition's log
 * grows no further.  Not when entries since came by an image (this node
 * did not apply, nor answer, what they held), nor when the partition's
 * end came by an image of the partition it went into (never frozen here,
 * or not applied to its freeze).
 */
static bool
merged_away_here(int32 partition_id, TimestampTz start)
{
	KmdPartition *part;
	bool		away;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(partition_id);
	away = part != NULL && part->state == KMD_PART_GONE && part->frozen_at > 0 &&
		pg_atomic_read_u64(&part->applied_index) >= part->frozen_at &&
		part->image_installed_at < start;
	LWLockRelease(kmd_shared->lock);
	return away;
}

/* Count a proposal that failed for a reason kommander.stats shows. */
static void
count_outcome(int32 partition_id, int final_state, const KmdOutcome *out)
{
	if (final_state == KMD_SLOT_PENDING ||
		(final_state == KMD_SLOT_DONE && strcmp(out->sqlstate, "K0002") == 0))
		kmd_stat_add(KMD_STAT_REJECTED_NO_QUORUM, partition_id, 1);
	else if (final_state == KMD_SLOT_SENT)
		kmd_stat_add(KMD_STAT_OUTCOME_UNKNOWN, partition_id, 1);
	else if (final_state == KMD_SLOT_DONE &&
			 strcmp(out->sqlstate, "K0001") == 0)
		kmd_stat_add(KMD_STAT_REJECTED_FENCED, partition_id, 1);
	else if (final_state == KMD_SLOT_DONE &&
			 strcmp(out->sqlstate, "K0004") == 0)
		kmd_stat_add(KMD_STAT_REJECTED_FROZEN, partition_id, 1);
}

/*
 * Withdraw the request in `slot' if no worker has taken it yet, under the
 * lock the worker claims it under: one not taken is never proposed after
 * this.  Returns the state the slot was in (KMD_SLOT_PENDING: withdrawn).
 */
static int
withdraw(KmdSlot *slot)
{
	int			state;

	LWLockAcquire(slot->lock, LW_EXCLUSIVE);
	state = slot->state;
	if (state == KMD_SLOT_PENDING)
		slot->state = KMD_SLOT_RESERVED;
	LWLockRelease(slot->lock);
	return state;
}

/*
 * An error (a cancel: statement_timeout, pg_cancel_backend) interrupted
 * the wait for proposal `slot'.  One the worker had not taken yet is
 * withdrawn, and the error stands: nothing was proposed.  One it had
 * taken may be committed and applied on every node whatever this backend
 * does now, so a cancel becomes K0003, as a timeout does: the caller must
 * not take the cancel for "nothing happened" and propose it again.  One
 * answered already is answered: returns true, the cancel dropped, for
 * the caller to read the answer.  Returns false for other errors and
 * withdrawn requests, which the caller throws again.
 */
static bool
cancelled_after_send(KmdSlot *slot, int32 partition_id)
{
	int			state;
	ErrorData  *edata;
	MemoryContext old;

	if (geterrcode() != ERRCODE_QUERY_CANCELED)
		return false;
	state = withdraw(slot);
	if (state == KMD_SLOT_PENDING)
		return false;
	if (state == KMD_SLOT_DONE)
	{
		FlushErrorState();
		return true;
	}
	/* out of ErrorContext, which FlushErrorState empties */
	old = MemoryContextSwitchTo(CurTransactionContext);
	edata = CopyErrorData();
	FlushErrorState();
	MemoryContextSwitchTo(old);
	count_outcome(partition_id, KMD_SLOT_SENT, NULL);
	ereport(ERROR,
			(errcode(ERRCODE_KMD_OUTCOME_UNKNOWN),
			 errmsg("proposal outcome unknown: the wait for partition %d was cancelled", partition_id),
			 errdetail("The cancel (%s) came after the proposal had left this backend: it may be committed and applied on every node.",
					   edata->message ? edata->message : "a query cancel"),
			 errhint("Read the rows before proposing it again, or give the command a request_id and retry it.")));
	return false;				/* not reached */
}

/* Wait for `slot''s answer at most `ms'; see cancelled_after_send. */
static void
sleep_on_slot(KmdSlot *slot, int kind, int32 partition_id, long ms)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		(void) ConditionVariableTimedSleep(&slot->cv, ms, PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
	PG_CATCH();
	{
		if (kind != KMD_REQ_PROPOSE || !cancelled_after_send(slot, partition_id))
			PG_RE_THROW();
		/* answered: the loop reads it */
		MemoryContextSwitchTo(cxt);
	}
	PG_END_TRY();
}

/*
 * Hand a request to the worker and wait for its outcome; returns the slot's
 * last state, KMD_SLOT_DONE when *out holds an outcome.
 */
static int
request_wait(int kind, int32 partition_id, int64 arg, KmdCommand *cmd,
			 KmdOutcome *out)
{
	uint32		gen;
	int			slot_no;
	KmdSlot    *slot;
	TimestampTz start;
	TimestampTz deadline;
	volatile int ticket = -1;
	volatile int final_state = KMD_SLOT_PENDING;
	volatile bool waited = false;	/* to an answer or the deadline */
	volatile bool blocked = false;	/* by this backend's own lock */
	volatile bool merged_away = false;	/* applied nowhere, ever */
	TimestampTz next_check;
	char	   *volatile data = NULL;
	volatile uint32 len = 0;

	memset(out, 0, sizeof(*out));
	/* a proposal writes on every node, as the caller's transaction cannot */
	if (kind == KMD_REQ_PROPOSE && XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot propose in a read-only transaction"),
				 errdetail("A proposal writes on every node of the cluster.")));
	start = GetCurrentTimestamp();
	deadline = TimestampTzPlusMilliseconds(start, kmd_propose_timeout);
	next_check = TimestampTzPlusMilliseconds(start, SELF_CHECK_AFTER_MS);
	/* a proposal waits in its partition's queue, or fails now (K0007) */
	if (kind == KMD_REQ_PROPOSE)
		ticket = kmd_queue_enter(partition_id);
	slot_no = slot_acquire(&gen);
	if (slot_no < 0)
	{
		if (kind == KMD_REQ_PROPOSE)
		{
			kmd_queue_leave(partition_id, ticket);
			kmd_stat_add(KMD_STAT_REJECTED_OVERLOADED, partition_id, 1);
		}
		ereport(ERROR,
				(errcode(ERRCODE_KMD_OVERLOADED),
				 errmsg("too many kommander requests in progress, retry later"),
				 errdetail("All %d request slots of this node are in use.", KMD_NUM_SLOTS),
				 errhint("Retry after a pause, or propose less at once.")));
	}
	hold(slot_no, partition_id, ticket, kind == KMD_REQ_PROPOSE);
	if (kind == KMD_REQ_PROPOSE)
		kmd_stat_add(KMD_STAT_PROPOSALS, partition_id, 1);
	slot = kmd_slot(slot_no);

	PG_TRY();
	{
		if (cmd != NULL)
		{
			uint32		n;

			cmd->origin_node = kmd_shared->local_node_id;
			cmd->origin_slot = slot_no;
			cmd->origin_gen = gen;
			cmd->origin_boot = kmd_shared->boot_id;
			/* the time appliers see, decided once, here (apply_context.at) */
			cmd->proposed_at = GetCurrentTimestamp();
			cmd->rules = KMD_RULE_WIDE_DEFAULTS | KMD_RULE_CONTAINED_CODE |
				KMD_RULE_APPLY_CHECKS;
			data = kmd_command_encode(cmd, &n);
			len = n;
			if (len > KMD_MAX_COMMAND)
				ereport(ERROR,
						(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						 errmsg("command is too large"),
						 errdetail("The encoded command has %u bytes; the limit is %d.",
								   len, KMD_MAX_COMMAND)));
		}

		LWLockAcquire(slot->lock, LW_EXCLUSIVE);
		slot->kind = kind;
		slot->partition_id = partition_id;
		slot->arg = arg;
		slot->deadline = deadline;
		slot->command_len = len;
		if (len > 0)
			memcpy(slot->command, (char *) data, len);
		slot->result_len = 0;
		slot->state = KMD_SLOT_PENDING;
		LWLockRelease(slot->lock);
		kmd_wake_worker(kmd_worker_for_partition(partition_id));

		ConditionVariablePrepareToSleep(&slot->cv);
		for (;;)
		{
			long		remaining;
			int			state;

			LWLockAcquire(slot->lock, LW_SHARED);
			state = slot->state;
			LWLockRelease(slot->lock);
			final_state = state;
			if (state == KMD_SLOT_DONE)
			{
				/*
				 * Done is final until we free the slot: nobody writes it
				 * now, so the answer is read without the lock (and so
				 * without allocating under it).
				 */
				memcpy(out->sqlstate, slot->sqlstate, sizeof(out->sqlstate));
				out->sqlstate[5] = '\0';
				out->errmsg = pstrdup(slot->errmsg);
				out->errdetail = slot->errdetail[0] ? pstrdup(slot->errdetail) : NULL;
				out->errhint = slot->errhint[0] ? pstrdup(slot->errhint) : NULL;
				out->index = slot->index;
				out->term = slot->term;
				out->index_partition = slot->index_partition;
				out->applied = slot->applied;
				out->result = slot->result_len > 0 ?
					copy_text(slot->result, slot->result_len) : NULL;
				break;
			}
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (kind == KMD_REQ_PROPOSE && state == KMD_SLOT_SENT &&
				GetCurrentTimestamp() >= next_check && merged_away_here(partition_id, start))
			{
				merged_away = true;
				remaining = 0;
			}
			if (kind == KMD_REQ_PROPOSE && apply_waits_for_me(partition_id, &next_check))
			{
				blocked = true;
				remaining = 0;
			}
			if (remaining <= 0)
			{
				final_state = withdraw(slot);
				if (final_state == KMD_SLOT_DONE)
					continue;	/* answered just now: read it */
				break;
			}
			sleep_on_slot(slot, kind, partition_id,
						  kind == KMD_REQ_PROPOSE ? self_check_sleep(next_check, remaining) : remaining);
		}
		ConditionVariableCancelSleep();
		waited = true;
		if (merged_away && final_state == KMD_SLOT_SENT)
		{
			strlcpy(out->sqlstate, unpack_sql_state(ERRCODE_KMD_PARTITION_FROZEN),
					sizeof(out->sqlstate));
			out->errmsg = psprintf("partition %d was merged into its neighbour before the request was applied",
								   partition_id);
			out->errdetail = pstrdup("This node applied the partition to its end without it: nothing was applied.");
			final_state = KMD_SLOT_DONE;
		}
		if (blocked && final_state != KMD_SLOT_DONE)
			raise_waits_for_me(partition_id, final_state != KMD_SLOT_PENDING, false);
	}
	PG_FINALLY();
	{
		held_slot = -1;
		slot_release(slot_no);
		if (kind == KMD_REQ_PROPOSE)
		{
			kmd_queue_leave(partition_id, ticket);
			if (waited)
			{
				kmd_latency_since(KMD_LAT_PROPOSE, partition_id, start);
				count_outcome(partition_id, final_state, out);
			}
		}
	}
	PG_END_TRY();
	return final_state;
}

void
kmd_request(int kind, int32 partition_id, int64 arg, KmdCommand *cmd,
			KmdOutcome *out)
{
	int			final_state = request_wait(kind, partition_id, arg, cmd, out);

	if (final_state == KMD_SLOT_DONE)
		return;
	/* a read that got no answer changed nothing, whether it was sent or not */
	if (kind == KMD_REQ_READ_INDEX)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_NO_QUORUM),
				 errmsg("no leader of partition %d answered the read barrier", partition_id),
				 errdetail("No read index came from a leader within kommander.propose_timeout (%d ms).",
						   kmd_propose_timeout),
				 errhint("A read barrier changes nothing: retry it; check kommander.nodes for unreachable nodes.")));
	if (final_state == KMD_SLOT_SENT)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_OUTCOME_UNKNOWN),
				 errmsg("outcome of the request on partition %d is unknown", partition_id),
				 errdetail("It was handed to a leader but no outcome arrived within kommander.propose_timeout (%d ms).",
						   kmd_propose_timeout),
				 errhint("Read the current state before retrying.")));
	ereport(ERROR,
			(errcode(ERRCODE_KMD_NO_QUORUM),
			 errmsg("no leader of partition %d took the request", partition_id),
			 errdetail("No leader was reachable within kommander.propose_timeout (%d ms).",
					   kmd_propose_timeout),
			 errhint("Retry later; check kommander.nodes for unreachable nodes.")));
}

void
kmd_request_outcome(int kind, int32 partition_id, int64 arg, KmdCommand *cmd,
					KmdOutcome *out)
{
	int			final_state = request_wait(kind, partition_id, arg, cmd, out);

	if (final_state == KMD_SLOT_DONE)
		return;
	strlcpy(out->sqlstate,
			unpack_sql_state(final_state == KMD_SLOT_SENT ? ERRCODE_KMD_OUTCOME_UNKNOWN :
							 ERRCODE_KMD_NO_QUORUM),
			sizeof(out->sqlstate));
	out->errmsg = psprintf("no outcome of the request on partition %d within kommander.propose_timeout",
						   partition_id);
}

void
kmd_outcome_raise(const KmdOutcome *out)
{
	const char *s = out->sqlstate;

	if (strcmp(s, "00000") == 0)
		return;
	if (strlen(s) != 5)
		s = "XX000";
	ereport(ERROR,
			(errcode(MAKE_SQLSTATE(s[0], s[1], s[2], s[3], s[4])),
			 errmsg_internal("%s", out->errmsg && out->errmsg[0] ? out->errmsg : "kommander request failed"),
			 out->errdetail ? errdetail_internal("%s", out->errdetail) : 0,
			 out->errhint ? errhint("%s", out->errhint) : 0));
}

void
kmd_propose_command(int32 partition_id, KmdCommand *cmd, KmdOutcome *out)
{
	kmd_request(KMD_REQ_PROPOSE, partition_id, cmd->kind, cmd, out);
	kmd_outcome_raise(out);
}

/*
 * Has this node applied the merge that took `partition_id' away?  (Not
 * one it does not know or host: kmd_partition_state says gone for those.)
 */
static bool
gone_here(int32 partition_id)
{
	KmdPartition *part;
	bool		gone;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	part = kmd_partition_find(partition_id);
	gone = part != NULL && part->state == KMD_PART_GONE;
	LWLockRelease(kmd_shared->lock);
	return gone;
}

void
kmd_wait_applied(int32 partition_id, uint64 index, TimestampTz deadline)
{
	TimestampTz next_check = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
														 SELF_CHECK_AFTER_MS);

	ConditionVariablePrepareToSleep(&kmd_shared->applied_cv);
	for (;;)
	{
		long		remaining;

		if (kmd_partition_applied(partition_id) >= index || gone_here(partition_id))
			break;
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
		{
			/* a read: nothing was written whose outcome is unknown */
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_KMD_NO_QUORUM),
					 errmsg("partition %d did not apply index " UINT64_FORMAT " here in time",
							partition_id, index),
					 errdetail("A leader gave the read index; this node had not applied that far within kommander.propose_timeout (%d ms).",
							   kmd_propose_timeout),
					 errhint("A read barrier changes nothing: retry it, or read through another node; kommander.partitions shows whether this node applies the partition.")));
		}
		if (apply_waits_for_me(partition_id, &next_check))
		{
			ConditionVariableCancelSleep();
			raise_waits_for_me(partition_id, true, true);
		}
		(void) ConditionVariableTimedSleep(&kmd_shared->applied_cv,
										   self_check_sleep(next_check, remaining),
										   PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
	ConditionVariableCancelSleep();
}

/*
 * ReadIndex on one partition, then wait until this node has applied that
 * far.  Returns the read index; 0 once the partition is gone here.
 */
uint64
kmd_partition_barrier(int32 partition_id, TimestampTz deadline)
{
	KmdOutcome	out;

	for (;;)
	{
		long		remaining;

		if (gone_here(partition_id))
			return 0;
		kmd_request(KMD_REQ_READ_INDEX, partition_id, 0, NULL, &out);
		/* merged away meanwhile: whatever the answer, nothing to wait for */
		if (gone_here(partition_id))
			return 0;

		/*
		 * Leadership moved while the round was under way (a new partition
		 * still electing its leader, a transfer): ask again, until the
		 * deadline.
		 */
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (strcmp(out.sqlstate, "K0002") != 0 || remaining <= 0)
			break;
		/* prepared first: a first timed sleep would only prepare, and return */
		ConditionVariablePrepareToSleep(&kmd_shared->leader_cv);
		(void) ConditionVariableTimedSleep(&kmd_shared->leader_cv, Min(remaining, 100),
										   PG_WAIT_EXTENSION);
		ConditionVariableCancelSleep();
		CHECK_FOR_INTERRUPTS();
	}
	kmd_outcome_raise(&out);
	kmd_wait_applied(partition_id, out.index, deadline);
	return out.index;
}
