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
 * The same for every key of table `relid' and its partitions (their
 * foreign keys, those referencing them, their unique indexes and
 * exclusion constraints), counting them as control tables: before the
 * table is registered, or attached to a control table.
 */
extern void kmd_keys_check_table(Oid relid);

/*
 * The primary key index of relation `relid' as the catalogs hold it now,
 * its own command's changes included (valid, immediate and live, as the
 * relcache takes it), or InvalidOid.  Takes no lock on the relation: a
 * session's lock on it holds back no apply.
 */
extern Oid	kmd_primary_key_index(Oid relid);

/*
 * True while an image of the system partition replays kmd_ddl statements
 * (snapshot.c): they passed on the nodes that ran them, in the log's
 * order, where the tables registered meanwhile were not registered yet;
 * the replay registers them after all of it, so it checks no key.
 */
extern bool kmd_keys_replaying;

#endif							/* KOMMANDER_TABLE_KEYS_H */
