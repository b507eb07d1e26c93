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
#define ERRCODE_KMD_DIRECT_WRITE		MAKE_SQLSTATE('K','0','0','1','0')
#define ERRCODE_KMD_MALFORMED_COMMAND	MAKE_SQLSTATE('K','0','0','1','1')
#define ERRCODE_KMD_CONDITION_FAILED	MAKE_SQLSTATE('K','0','0','1','2')

#endif							/* KOMMANDER_ERRCODES_H */
