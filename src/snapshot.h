/*-------------------------------------------------------------------------
 *
 * snapshot.h
 *	  Partition images copied from a peer and installed by the apply
 *	  worker (snapshot.c).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/snapshot.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_SNAPSHOT_H
#define KOMMANDER_SNAPSHOT_H

#include "nodes/pg_list.h"

/*
 * Apply worker, outside a transaction: copy and install one image whose
 * group its Raft worker has parked, if any is due.  True when one was
 * installed; a failure is logged and tried again later.
 */
extern bool kmd_images_install(void);

/*
 * Ask for an image of `partition_id' from node `from', at `min_index' or
 * later (the apply worker, for a merge no longer served by any node).
 */
extern void kmd_image_ask(int32 partition_id, int32 from, uint64 min_index);

/* The same, of any other member, at any index this node has not passed. */
extern void kmd_image_ask_any(int32 partition_id);

/*
 * The apply worker, in its transaction, SPI connected: delete the rows of
 * every control table in the ranges of `partitions' (a List of int32 ids;
 * NIL: every row), which their images are to replace.
 */
extern void kmd_image_clear(List *partitions);

#endif							/* KOMMANDER_SNAPSHOT_H */
