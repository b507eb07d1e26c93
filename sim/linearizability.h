/*-------------------------------------------------------------------------
 *
 * linearizability.h
 *	  A linearizability checker for client histories of a key-value map
 *	  (put, get, compare-and-set), after Wing & Gong and Lowe's WGL search
 *	  with memoisation, as in Porcupine.  Plain C99, libc only.
 *
 * The model: a map from uint64 keys to uint64 values, every key initially
 * absent, which reads as 0.  Keys are independent (locality, Herlihy &
 * Wing 1990; P-compositionality, Horn & Kroening 2015), so each key's
 * sub-history is checked on its own.
 *
 * Real time: operation a precedes operation b iff a.ret < b.call.  Equal
 * times overlap: an operation returning at t is concurrent with one called
 * at t.  A discrete-event simulator processes several events in the same
 * millisecond in an order the timestamps do not record, so the checker
 * assumes the order that allows more; it never accuses a correct system.
 *
 * An operation whose outcome is unknown (ret == LIN_PENDING: its client
 * timed out or crashed) may take effect at any moment after its call, or
 * never.  A pending get tells nothing and is ignored.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/linearizability.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_LINEARIZABILITY_H
#define KOMMANDER_LINEARIZABILITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum lin_kind
{
	LIN_PUT = 1,				/* key := value */
	LIN_GET = 2,				/* output := key's value */
	LIN_CAS = 3					/* if key == expect then key := value */
} lin_kind;

/* Response time of an operation whose outcome is unknown. */
#define LIN_PENDING UINT64_MAX

/*
 * One client operation.  Values are opaque; 0 means "absent", so a get of
 * an absent key outputs 0 and a CAS expecting 0 succeeds on an absent key.
 */
typedef struct lin_op
{
	uint32_t	client;			/* for messages only */
	uint64_t	key;
	uint32_t	kind;			/* lin_kind */
	uint64_t	value;			/* PUT: value written; CAS: new value */
	uint64_t	expect;			/* CAS: expected current value (0: absent) */
	uint64_t	output;			/* GET: value read (0: absent); CAS: nonzero
								 * if it swapped, 0 if not; ignored when
								 * pending */
	uint64_t	call;			/* invocation time */
	uint64_t	ret;			/* response time (>= call), or LIN_PENDING */
} lin_op;

typedef struct lin_result
{
	bool		ok;				/* false: a key is not linearizable, or an
								 * operation is malformed */
	bool		gave_up;		/* the budget ran out on some key; such a
								 * key counts as linearizable */
	uint64_t	bad_key;		/* when !ok: the key at fault */
	char		why[256];		/* when !ok: "key K: ..." naming the
								 * operation that could not take effect;
								 * when only gave_up: which key; else "" */
} lin_result;

/*
 * Check that the history `ops[0..n)' (in any order) is linearizable.
 *
 * `budget' bounds the search steps spent on each key: one step looks at
 * one event of the key's history or one pending operation.  A history of
 * n operations from c clients needs about n * c steps when little is
 * ambiguous; the simulator's 2000000 (tens of milliseconds) leaves room
 * for thousands of operations per key with many timeouts, even to prove a
 * violation.  A key whose search runs out is inconclusive: it sets
 * gave_up and does not make ok false.  Keys are checked in ascending
 * order and the first violation stops the check.  The result depends only
 * on the set of operations, not on their order in `ops'.  Memory is freed
 * before returning; on allocation failure the process exits with status 2.
 */
lin_result	lin_check(const lin_op *ops, size_t n, uint64_t budget);

#endif							/* KOMMANDER_LINEARIZABILITY_H */
