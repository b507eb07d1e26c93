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

#include "nodes/pg_list.h"
#include "utils/relcache.h"

/*
 * Install the hooks that refuse DDL on control tables outside the apply
 * worker (chaining the hooks installed before); from _PG_init.
 */
extern void kmd_guard_install(void);

/*
 * Refuse (42809, 42P16, 0A000) table `relid' as a control table: not a
 * table, no primary key, not logged, inheritance, a type, row-level
 * security, ALWAYS or REPLICA triggers, keys or generated columns that
 * the nodes could decide otherwise.  Needs a transaction.
 */
extern void kmd_check_registrable(Oid relid);

/*
 * Around a kmd_ddl statement, for the control tables `relids': before it,
 * the tables and partitions that lack a primary key or have REPLICA
 * IDENTITY NOTHING or USING INDEX (an older version allowed it); after
 * it, refuse (0A000) any other one that does.
 */
extern List *kmd_lost_keys_before(List *relids);
extern void kmd_refuse_lost_keys(List *relids, List *before);

/* Is `fn' kommander.`name'()? */
extern bool kmd_is_own_function(Oid fn, const char *name);
extern void kmd_refuse_lookalike_triggers(Relation rel);

/*
 * Is `relid' a control table, or a partition of one?  Reads the catalog
 * (the guard trigger): needs a transaction.
 */
extern bool kmd_is_control_table(Oid relid);

/*
 * Every table carrying the guard trigger: the control tables and their
 * partitions.  Reads pg_trigger: needs a transaction.
 */
extern List *kmd_control_tables(void);

/*
 * Refuse (0A000) table `rel', to register or to attach to a control table,
 * if a trigger of its own fires for replicas (enabled ALWAYS or REPLICA):
 * it would fire when a partition image is installed.
 */
extern void kmd_refuse_replica_triggers(Relation rel);

#endif							/* KOMMANDER_GUARD_H */
