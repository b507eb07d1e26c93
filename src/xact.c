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
#include "pgstat.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "xact.h"

/* how often a worker sends its table statistics, as a backend does */
#define STATS_INTERVAL_MS 1000

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

/*
 * Forced, as a backend's idle timeout forces it: unforced, the statistics
 * wait a second after the last send measured from the end of the last
 * transaction, a time an idle worker never moves past.
 */
void
kmd_xact_report_stats(void)
{
	static TimestampTz last_sent = 0;
	TimestampTz now = GetCurrentTimestamp();

	if (!TimestampDifferenceExceeds(last_sent, now, STATS_INTERVAL_MS))
		return;
	(void) pgstat_report_stat(true);
	last_sent = now;
}
