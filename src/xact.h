/*-------------------------------------------------------------------------
 *
 * xact.h
 *	  The transactions a kommander background worker runs by itself: begun
 *	  with SPI connected and a snapshot, committed back into the memory
 *	  context the caller had.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/xact.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_XACT_H
#define KOMMANDER_XACT_H

#include "utils/palloc.h"

/*
 * Start a transaction, connect SPI and push a snapshot.  Returns the
 * caller's memory context, to hand to kmd_xact_commit().  What is allocated
 * in between lives in SPI's context and is freed by the commit: copy out
 * what must outlive it.
 */
extern MemoryContext kmd_xact_begin(void);

/*
 * Finish SPI, pop the snapshot, commit, and make `cxt' current again (a
 * commit leaves TopMemoryContext current, where every later allocation of
 * a loop would stay for good).
 */
extern void kmd_xact_commit(MemoryContext cxt);

/*
 * Hand the rows this process inserted, updated and deleted since the last
 * call to the cumulative statistics, which is what autovacuum decides by;
 * a backend does it when it goes idle, a background worker must do it
 * itself.  Sends at most once a second: call it between transactions in
 * every iteration of a worker's loop, idle ones too, so the counts of a
 * last burst of writes go out.
 */
extern void kmd_xact_report_stats(void);

#endif							/* KOMMANDER_XACT_H */
