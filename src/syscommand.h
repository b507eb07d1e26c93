/*-------------------------------------------------------------------------
 *
 * syscommand.h
 *	  The system commands of the log (DDL, registrations, roster changes,
 *	  partition split, freeze and merge) as the apply worker applies them.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/syscommand.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_SYSCOMMAND_H
#define KOMMANDER_SYSCOMMAND_H

#include "lib/stringinfo.h"

#include "command.h"

/* What applying a system command changed (kmd_syscommand_apply) */
#define KMD_SYS_CATALOG	0x01	/* roster or partition map: reload the caches */
#define KMD_SYS_MAP		0x02	/* partition map: apply no further entry of
								 * this partition before the caches follow */
#define KMD_SYS_ROSTER	0x04	/* the roster changed (a roster command
								 * can change nothing: see apply_roster) */
#define KMD_SYS_MARKED	0x08	/* with KMD_SYS_ROSTER: a removal's first
								 * step, which marks the node */

/*
 * Apply a system command committed at `index' of `partition_id'; the caller
 * runs it in a subtransaction with SPI connected.  Errors are raised and
 * undo the command.  Returns KMD_SYS_* flags.
 */
extern int	kmd_syscommand_apply(const KmdCommand *cmd, int32 partition_id,
								 uint64 index, StringInfo result);

/*
 * Run a kmd_ddl statement committed at system index `index' as `role' (the
 * role that called kmd_ddl; NULL for an entry that names none: as the
 * apply worker's superuser) and record it in kommander.ddl with the entry's
 * `rules' (KMD_RULE_*), which an image's replay of it follows (SPI
 * connected, in the caller's subtransaction).  A role this node does not
 * have fails the statement.
 */
extern void kmd_syscommand_ddl(uint64 index, const char *sql, const char *role,
							   uint32 rules);

/*
 * Make a registered table a control table here: the guard trigger, and
 * read access for the role peers copy images with.
 */
extern void kmd_syscommand_guard_table(Oid relid);

/*
 * The arguments of a merge command: the right partition and the index of
 * its freeze.  false when they are malformed.
 */
extern bool kmd_merge_args(const KmdCommand *cmd, int32 *right, uint64 *frozen_at);

#endif							/* KOMMANDER_SYSCOMMAND_H */
