/*-------------------------------------------------------------------------
 *
 * xact.c
 *	  The transactions a kommander background worker runs by itself (the
 *	  Raft workers' log writes, the apply worker's batches, the launcher's
 *	  checks): begun with SPI and a snapshot, committed back into the
 *	  caller's memory context.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/xact.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/snapmgr.h"

#include "xact.h"

MemoryContext
kmd_xact_begin(void)
{
	MemoryContext cxt = CurrentMemoryContext;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	return cxt;
}

void
kmd_xact_commit(MemoryContext cxt)
{
	if (SPI_finish() != SPI_OK_FINISH)
		elog(ERROR, "SPI_finish failed");
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
}
