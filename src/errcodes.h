/*-------------------------------------------------------------------------
 *
 * errcodes.h
 *	  kommander's SQLSTATEs, class K0 (API.md, Errors).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/errcodes.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_ERRCODES_H
#define KOMMANDER_ERRCODES_H

#include "utils/elog.h"

#define ERRCODE_KMD_STALE_GENERATION	MAKE_SQLSTATE('K','0','0','0','1')
#define ERRCODE_KMD_NO_QUORUM			MAKE_SQLSTATE('K','0','0','0','2')
#define ERRCODE_KMD_OUTCOME_UNKNOWN		MAKE_SQLSTATE('K','0','0','0','3')
#define ERRCODE_KMD_PARTITION_FROZEN	MAKE_SQLSTATE('K','0','0','0','4')
#define ERRCODE_KMD_NOT_MEMBER			MAKE_SQLSTATE('K','0','0','0','5')
#define ERRCODE_KMD_LEARNER_LAGGING		MAKE_SQLSTATE('K','0','0','0','6')
#define ERRCODE_KMD_OVERLOADED			MAKE_SQLSTATE('K','0','0','0','7')
#define ERRCODE_KMD_DIRECT_WRITE		MAKE_SQLSTATE('K','0','0','1','0')
#define ERRCODE_KMD_MALFORMED_COMMAND	MAKE_SQLSTATE('K','0','0','1','1')
#define ERRCODE_KMD_CONDITION_FAILED	MAKE_SQLSTATE('K','0','0','1','2')
#define ERRCODE_KMD_LEASE_NOT_FOUND		MAKE_SQLSTATE('K','0','0','1','3')

/*
 * Is `sqlerrcode' one that Postgres raises for a failure of this server
 * rather than of a statement: resources running out (53), a cancel or a
 * timeout (57), a lock not granted in time or a deadlock, an I/O or system
 * error (58), corrupt data?  Such an error of one node says nothing of the
 * command being applied: another node applies it without that failure.
 * Who raised it still matters (apply.c): user code may raise any SQLSTATE.
 */
static inline bool
kmd_node_failure_code(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_INSUFFICIENT_RESOURCES:
		case ERRCODE_OPERATOR_INTERVENTION:
		case ERRCODE_SYSTEM_ERROR:
			return true;
		default:
			return sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE ||
				sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
				sqlerrcode == ERRCODE_DATA_CORRUPTED ||
				sqlerrcode == ERRCODE_INDEX_CORRUPTED;
	}
}

#endif							/* KOMMANDER_ERRCODES_H */
