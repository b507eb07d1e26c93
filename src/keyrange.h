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
} KmdKeyRange;

/* Set by the apply worker around each command it applies. */
extern KmdKeyRange kmd_apply_range;

#endif							/* KOMMANDER_KEYRANGE_H */
