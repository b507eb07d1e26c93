/*-------------------------------------------------------------------------
 *
 * guard.h
 *	  The K0010 guard on control tables: writes and DDL from sessions.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/guard.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_GUARD_H
#define KOMMANDER_GUARD_H

/*
 * Install the hooks that refuse DDL on control tables outside the apply
 * worker (chaining the hooks installed before); from _PG_init.
 */
extern void kmd_guard_install(void);

/* Is `fn' kommander.`name'()? */
extern bool kmd_is_own_function(Oid fn, const char *name);

/*
 * Is `relid' a control table, or a partition of one?  Reads the catalog
 * (the guard trigger): needs a transaction.
 */
extern bool kmd_is_control_table(Oid relid);

#endif							/* KOMMANDER_GUARD_H */
