/*-------------------------------------------------------------------------
 *
 * linearizability.h
 *	  A linearizability checker for histories of a key-value register map
 *	  (put, get, compare-and-set), after Wing & Gong and Lowe's WGL search
 *	  with memoisation, as in Porcupine.
 *
 * Keys are independent (P-compositionality), so each key's sub-history is
 * checked on its own.  An operation whose outcome is unknown (its client
 * timed out) may take effect at any time after its call, or never.
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
	LIN_PUT = 1,
	LIN_GET = 2,
	LIN_CAS = 3
} lin_kind;

/* Response time of an operation whose outcome is unknown. */
#define LIN_PENDING UINT64_MAX

typedef struct lin_op
{
	uint32_t	client;			/* for messages only */
	uint64_t	key;
	uint32_t	kind;			/* lin_kind */
	uint64_t	value;			/* PUT: value written; CAS: new value */
	uint64_t	expect;			/* CAS: expected current value (0: absent) */
	uint64_t	output;			/* GET: value read (0: absent); CAS: 1 if it
								 * swapped */
	uint64_t	call;			/* invocation time */
	uint64_t	ret;			/* response time, or LIN_PENDING; an operation
								 * that returned at t precedes one called
								 * after t (at t + 1 or later) */
} lin_op;

typedef struct lin_result
{
	bool		ok;				/* linearizable (or inconclusive) */
	bool		gave_up;		/* the search budget ran out on some key */
	uint64_t	bad_key;		/* the key that is not linearizable */
	char		why[256];
} lin_result;

/*
 * Check `ops' (any order).  `budget' bounds the search steps per key; when
 * it runs out the key counts as linearizable and gave_up is set.
 */
lin_result	lin_check(const lin_op *ops, size_t n, uint64_t budget);

#endif							/* KOMMANDER_LINEARIZABILITY_H */
