/*-------------------------------------------------------------------------
 *
 * barrier.h
 *	  DDL and registrations crossed by every partition at the same point
 *	  of its log, on every node.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/barrier.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KMD_BARRIER_H
#define KMD_BARRIER_H

#include "command.h"
#include "nodes/pg_list.h"
#include "worker.h"

/*
 * The system index of the last DDL or registration that changed this
 * node's state, as an SQL expression: two nodes where it is the same
 * applied the same barriers (an image may go from one to the other).
 */
#define KMD_BARRIERS_APPLIED \
	"greatest(coalesce((SELECT max(idx) FROM kommander.ddl), 0), " \
	"coalesce((SELECT max(registered) FROM kommander.tables), 0), " \
	"coalesce((SELECT max(registered) FROM kommander.appliers), 0))"

/* Is a system command of this kind a barrier (DDL, a registration)? */
extern bool kmd_barrier_kind(uint32 kind);

/* The system index a barrier entry covers; false if it names none. */
extern bool kmd_barrier_arg(const KmdCommand *cmd, uint64 *sys_index);

/*
 * Apply worker: may the barrier at `sys_index' of the system partition be
 * applied now?  If not, the leaders here are asked for barrier entries.
 * If so, *image_bound lists the partitions counted as held only because
 * an image will replace their rows (one is asked for, they were merged
 * into a partition that waits for one, or another node merged them away:
 * kmd_barrier_ask_unserved): the caller binds them to images,
 * durably, in the transaction that applies the barrier.
 */
extern bool kmd_barrier_ready(uint64 sys_index, List **image_bound);

/*
 * Apply worker, between iterations (no transaction open): ask another
 * node (each in turn) whether the partitions that held the barrier
 * kmd_barrier_ready() last found not ready, without a leader here and
 * without progress for three election timeouts, were merged away;
 * kmd_barrier_ready() counts those as image-bound until the barrier is
 * applied (then they are bound to images for good).  Asks
 * every three election timeouts, less often after each round of the
 * nodes that found none.  True if it asked (the wait may have taken a
 * wake-up of the latch: the caller goes round again).
 */
extern bool kmd_barrier_ask_unserved(void);

/* What the nodes that applied a kmd_ddl statement did with it */
typedef enum KmdDdlOutcome
{
	KMD_DDL_UNKNOWN,			/* not known yet: kmd_barrier_ask_ddl asks */
	KMD_DDL_RAN,
	KMD_DDL_FAILED,
	KMD_DDL_OWN					/* no other node could tell: this node's own */
} KmdDdlOutcome;

/*
 * Apply worker: did the kmd_ddl statement at `sys_index' run on the other
 * nodes?  Asked when partitions here wait for images as it applies: their
 * rows here are not those at the statement, and one whose outcome depends
 * on rows could come out otherwise.  KMD_DDL_UNKNOWN: the next
 * kmd_barrier_ask_ddl() asks; KMD_DDL_OWN: three rounds of every other
 * node could not tell (none reachable, none that applied it yet, none
 * that lets this node read which statements ran), or there is no other
 * node: the statement runs here.
 */
extern KmdDdlOutcome kmd_barrier_ddl_outcome(uint64 sys_index);

/*
 * Apply worker, between iterations (no transaction open): ask another
 * node (each in turn, every election timeout) for the statements it ran,
 * when kmd_barrier_ddl_outcome() wants one it does not know.  True if it
 * asked.
 */
extern bool kmd_barrier_ask_ddl(void);

/*
 * Apply worker: where a partition stopped (0, 0: it is not held); true if
 * that changed.
 */
extern bool kmd_barrier_hold(int32 partition_id, uint64 barrier, int32 merge_right);

/*
 * Apply worker, at start and after a failed iteration: no partition is
 * held by a process gone, nor known merged away before it is asked again.
 */
extern void kmd_barrier_reset(void);

/* Raft worker, on a tick of a group it leads: a barrier entry if wanted. */
extern bool kmd_barrier_propose(KmdGroup *g, TimestampTz now);

#endif							/* KMD_BARRIER_H */
