/*-------------------------------------------------------------------------
 *
 * pg_shim.h
 *	  The few Postgres symbols src/wire.c needs, for building it outside a
 *	  server (the fuzz targets and the wire test): palloc and friends on
 *	  malloc, and an elog that reports and aborts at ERROR.
 *
 * Nothing the decoders run may raise an ERROR on any input: in the Raft
 * worker an ERROR stops the worker, so a peer's bytes could stop it again
 * and again.  The shim makes such an ERROR a crash the fuzzer reports.
 * palloc keeps Postgres's limit (MaxAllocSize), and counts what it holds,
 * so a target can bound what one input makes the decoders allocate.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/fuzz/pg_shim.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_PG_SHIM_H
#define KOMMANDER_PG_SHIM_H

#include <stddef.h>

/*
 * Outside the server there is no libpgport: print with the C library's
 * functions, which port.h renames to its own.
 */
#undef printf
#undef fprintf
#undef snprintf
#undef vsnprintf
#undef vfprintf

/*
 * Free everything palloc'd since the last reset, as resetting the worker
 * loop's memory context does, and start counting the peak afresh.
 */
void		pg_shim_reset(void);

/* Bytes palloc'd and not freed now, and the most since the last reset. */
size_t		pg_shim_held(void);
size_t		pg_shim_peak(void);

#endif							/* KOMMANDER_PG_SHIM_H */
