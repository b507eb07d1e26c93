/*-------------------------------------------------------------------------
 *
 * storage.h
 *	  The Raft log, hard state and snapshot marker of each partition, kept
 *	  in the tables kommander.log, kommander.hard_state and
 *	  kommander.snapshot, made durable by Postgres's own WAL.
 *
 * Every function here runs inside the caller's transaction and uses SPI;
 * the caller connects SPI and holds a snapshot.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/storage.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_STORAGE_H
#define KOMMANDER_STORAGE_H

#include "nodes/pg_list.h"

#include "raft/raft.h"

/* Create the durable state of a new group: empty log, marker at index 0. */
extern void kmd_storage_create_group(int32 partition_id, const raft_conf *conf);

/* Does the group have durable state on this node? */
extern bool kmd_storage_group_exists(int32 partition_id);

/*
 * Read a group's durable state; entries are palloc'd in the current context.
 * *image_wanted: its state must come from another node's image before its
 * log is applied (kommander.snapshot.image_wanted).
 */
extern void kmd_storage_load(int32 partition_id, raft_durable *out,
							 bool *image_wanted);

/*
 * The entries and hard states of one worker loop's ready batches, written
 * at kmd_storage_flush, together (a loop over many groups paid two
 * statements per group).  Zero it before use; what it holds is allocated
 * in the current memory context.
 */
typedef struct KmdStorageBatch
{
	int			n_entries;
	List	   *entries;		/* of KmdLogRow * */
	int			n_hard;
	int			max_hard;
	Datum	   *hard;			/* n_hard rows: partition, term, vote, commit */
} KmdStorageBatch;

/*
 * Make a ready batch's snapshot marker and entries durable (the caller
 * commits): the marker at once, the entries into `b', written by
 * kmd_storage_flush, which the caller runs before it commits.  Its hard
 * state is the caller's to put in `b' (kmd_storage_save_hard_state) or
 * not.  `durable_last' is the last index already in the table; it is
 * updated.
 */
extern void kmd_storage_save(KmdStorageBatch *b, int32 partition_id,
							 const raft_ready *rd, uint64 *durable_last);

/* Put a hard state into `b'. */
extern void kmd_storage_save_hard_state(KmdStorageBatch *b, int32 partition_id,
										const raft_hard_state *hs);

/* Write what kmd_storage_save put into `b'; it is empty after. */
extern void kmd_storage_flush(KmdStorageBatch *b);

/*
 * Update rows of kommander.`relname' (n rows of natts values) by their
 * primary key, without a statement; found[i] says whether row i was there
 * (NULL: a missing row is an error).
 */
extern void kmd_storage_update_by_key(const char *relname, int natts, int n,
									  const Datum *rows, bool *found);

/*
 * Log compaction: move the snapshot marker forward from `from' to `meta'
 * (never back) and delete the entries between them; those up to `from'
 * went with the compaction that moved the marker there.
 */
extern void kmd_storage_compact(int32 partition_id, uint64 from,
								const raft_snapshot_meta *meta);

/* Delete every row of a group's durable state (a merged-away partition). */
extern void kmd_storage_drop_group(int32 partition_id);

/*
 * The configuration of a group in force at `index' (which must not be
 * before its snapshot marker), from its durable marker and log: the same on
 * every member.
 */
extern void kmd_storage_conf_at(int32 partition_id, uint64 index, raft_conf *conf);

/* The configuration encoding of kommander.snapshot.conf. */
extern bytea *kmd_conf_encode(const raft_conf *conf);
extern bool kmd_conf_decode(const char *data, int len, raft_conf *conf);

#endif							/* KOMMANDER_STORAGE_H */
