/*-------------------------------------------------------------------------
 *
 * foreign_keys.h
 *	  Which foreign keys a control table may take part in.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/foreign_keys.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_FOREIGN_KEYS_H
#define KOMMANDER_FOREIGN_KEYS_H

/*
 * Refuse (0A000) constraint `conoid', just created by the current
 * command, if it is a foreign key whose check could come out differently
 * on different nodes: one between a control table and a table that is
 * not, or between control tables whose rows it ties may be in different
 * partitions.  Other constraints pass.
 */
extern void kmd_foreign_key_check(Oid conoid);

/*
 * The same for every foreign key of table `relid' or referencing it,
 * counting `relid' as a control table: before it is registered.
 */
extern void kmd_foreign_keys_check_table(Oid relid);

#endif							/* KOMMANDER_FOREIGN_KEYS_H */
