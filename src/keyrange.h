/*-------------------------------------------------------------------------
 *
 * keyrange.h
 *	  The key range of the entry being applied, which every row it writes
 *	  must lie in (keyrange.c).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/keyrange.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_KEYRANGE_H
#define KOMMANDER_KEYRANGE_H

typedef struct KmdKeyRange
{
	int32		partition_id;	/* -1: no entry is being applied */
	int64		lo;				/* inclusive bounds of the key hash */
	int64		hi;
	bool		user_command;	/* a command of kmd_propose (rows, appliers):
								 * it writes control tables only */
	uint32		rules;			/* its entry's rules (KMD_RULE_*, command.h) */
} KmdKeyRange;

/* Set by the apply worker around each command it applies. */
extern KmdKeyRange kmd_apply_range;

/*
 * Install the hooks that refuse, while a command is applied, writes to
 * tables it may not write (chaining the hooks installed before); from
 * _PG_init.
 */
extern void kmd_keyrange_install(void);

/*
 * Does this session's temporary schema hold anything?  No command leaves
 * an object there, nor does a statement an image replays.
 */
extern bool kmd_temp_schema_in_use(void);

#endif							/* KOMMANDER_KEYRANGE_H */
