/*-------------------------------------------------------------------------
 *
 * history.h
 *	  Register histories as JSON lines: read one into the operations of
 *	  the linearizability checker (linearizability.h), or write the
 *	  simulator's.  Plain C99, libc only.
 *
 * One JSON object per line, one line per event of an operation, in the
 * order they happened for each process (empty lines are skipped):
 *
 *	{"process":1,"type":"invoke","f":"write","key":"a","value":3,"time":1000}
 *	{"process":1,"type":"ok","f":"write","key":"a","value":3,"time":1250}
 *	{"process":2,"type":"invoke","f":"cas","key":"a","value":[3,4],"time":1100}
 *	{"process":2,"type":"ok","f":"cas","key":"a","value":[3,4],"time":1300}
 *	{"process":3,"type":"invoke","f":"read","key":"a","value":null,"time":1310}
 *	{"process":3,"type":"ok","f":"read","key":"a","value":4,"time":1400}
 *
 *	process	the client: an integer or a string.  A process runs one
 *			operation at a time: "invoke", then one "ok", "fail" or "info".
 *	type	"invoke": the operation starts.  "ok": it took effect, and a
 *			read read `value'.  "fail": it certainly took no effect (it is
 *			left out).  "info": its outcome is unknown (a timeout, a lost
 *			connection): it may have taken effect at any moment after its
 *			invocation, or never; so may an operation still open at the end
 *			of the file.  A read whose outcome is unknown tells nothing.
 *	f		"read", "write" or "cas" (compare-and-set), on the invocation;
 *			a completion may repeat it and the key, which must then match.
 *	key		the register: a string or an integer (1 and "1" are two
 *			registers).  Registers are checked one by one, each starting
 *			out empty.
 *	value	write: the value written; cas: [expected, new]; read: the value
 *			read, on the "ok".  A value is any JSON scalar: null means empty
 *			(a read of an empty register reads null, a cas expecting null
 *			succeeds on it), strings are compared once unescaped, numbers
 *			by their text (1 and 1.0 differ), true and false as themselves.
 *	swapped	optional, on the "ok" of a cas: false when it was applied but
 *			its condition did not hold (kmd_propose_result's "applied":
 *			false), which is checked too; true by default.
 *	time	a non-negative integer from a monotonic clock, in any unit: an
 *			operation precedes another when it completed strictly before
 *			the other was invoked.  A completion is never before its
 *			invocation, and a process's next invocation never before its
 *			last completion.
 *
 * Other fields are ignored.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/history.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_HISTORY_H
#define KOMMANDER_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "linearizability.h"

/* How an operation of the file ended. */
typedef enum hist_end
{
	HIST_OK = 1,
	HIST_INFO,					/* "info": outcome unknown */
	HIST_OPEN					/* still running at the end of the file */
} hist_end;

/* Where an operation came from in the file, for messages. */
typedef struct hist_meta
{
	size_t		invoke_line;
	size_t		end_line;		/* 0 when open */
	uint32_t	end;			/* hist_end */
} hist_meta;

/*
 * A history read from a file.  ops[i].key, .value, .expect and .output
 * (for a read) are indexes into keys[] and values[]; value 0 is null
 * (empty).  ops[i].client indexes processes[].  Names are the JSON text as
 * first seen in the file.  "fail" operations are not in ops[].
 */
typedef struct history
{
	lin_op	   *ops;
	hist_meta  *meta;
	size_t		n_ops;
	char	  **keys;
	size_t		n_keys;
	char	  **values;			/* values[0] is "null" */
	size_t		n_values;
	char	  **processes;
	size_t		n_processes;
	size_t		n_failed;		/* "fail" operations left out */
} history;

/*
 * Read a history from `f' (named `name' in messages).  Returns 0, or -1
 * with "name:line: what is wrong" in err.  On success free it with
 * history_free(); on failure nothing is left to free.
 */
int			history_read(FILE *f, const char *name, history *h, char *err, size_t errlen);
void		history_free(history *h);

/*
 * Write operations `ops[0..n)' of the simulator (keys and values are
 * numbers, value 0 empty) as a history in the format above.  An operation
 * whose outcome is unknown ends with an "info" at the next invocation of
 * its client, or at `end'.
 */
void		history_write(FILE *out, const lin_op *ops, size_t n, uint64_t end);

#endif							/* KOMMANDER_HISTORY_H */
