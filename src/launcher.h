/*-------------------------------------------------------------------------
 *
 * launcher.h
 *	  The launcher background worker, which starts and restarts the Raft
 *	  workers and the apply worker.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/launcher.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_LAUNCHER_H
#define KOMMANDER_LAUNCHER_H

#include "fmgr.h"

/* Called from _PG_init. */
extern void kmd_launcher_register(void);

extern PGDLLEXPORT void kmd_launcher_main(Datum arg);

#endif							/* KOMMANDER_LAUNCHER_H */
