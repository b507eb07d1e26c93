/*-------------------------------------------------------------------------
 *
 * table_keys.h
 *	  The keys a control table may have: unique ones and foreign keys.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/table_keys.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_TABLE_KEYS_H
#define KOMMANDER_TABLE_KEYS_H

/*
 * Refuse (0A000) constraint `conoid', just created by the current
 * command, if its check could come out differently on different nodes: a
 * foreign key between a control table and a table that is not, or between
 * control tables whose rows it ties may be in different partitions; an
 * exclusion constraint of a control table that does not compare its
 * routing column with =.  Other constraints pass.
 */
extern void kmd_constraint_check(Oid conoid);

/*
 * Refuse (0A000) index `indexoid', just created by the current command,
 * if it is a unique index of a control table that does not hold its
 * routing column.  Another relation passes.
 */
extern void kmd_index_check(Oid indexoid);

/*
 * The same for every key of table `relid' (its foreign keys, those
 * referencing it, its unique indexes and exclusion constraints), counting
 * `relid' as a control table: before it is registered.
 */
extern void kmd_keys_check_table(Oid relid);

#endif							/* KOMMANDER_TABLE_KEYS_H */
