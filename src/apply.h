/*-------------------------------------------------------------------------
 *
 * apply.h
 *	  The apply worker: turns committed log entries into rows of control
 *	  tables, once, in log order, and answers the local backends waiting
 *	  for them.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/apply.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_APPLY_H
#define KOMMANDER_APPLY_H

#include "fmgr.h"

/* true while this process applies entries: lets it write control tables */
extern bool kmd_applying;

extern PGDLLEXPORT void kmd_apply_main(Datum arg);

/*
 * Reload the shared-memory caches of the node identity, the roster and the
 * partition map from kommander.local, kommander.roster and
 * kommander.partition_map.  Needs a transaction; connects SPI itself.
 */
extern void kmd_catalog_refresh(void);

/*
 * Report at `elevel', with SQLSTATE K0005, that this node is no member
 * because its data went back (kmd_shared->went_back_from is set).
 */
extern void kmd_report_went_back(int elevel);

#endif							/* KOMMANDER_APPLY_H */
