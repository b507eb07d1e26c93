/*-------------------------------------------------------------------------
 *
 * plans.h
 *	  SPI statements run through plans kept by their text: a statement
 *	  the apply path or a proposal builds again and again (the same table,
 *	  the same columns) is parsed and planned once per process.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/plans.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_PLANS_H
#define KOMMANDER_PLANS_H

/*
 * As SPI_execute_with_args (SPI connected), through a plan kept for this
 * text and these argument types.  Kept plans follow DDL as Postgres's plan
 * cache does; at most a few hundred are kept, then they start afresh.
 */
extern int	kmd_plan_execute(const char *sql, int nargs, Oid *types, Datum *values,
							 const char *nulls, bool read_only, long count);

#endif							/* KOMMANDER_PLANS_H */
