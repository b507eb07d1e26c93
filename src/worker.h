/*-------------------------------------------------------------------------
 *
 * worker.h
 *	  The Raft worker: one process hosting the Raft groups of the
 *	  partitions that hash to it, in one event loop.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/worker.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_WORKER_H
#define KOMMANDER_WORKER_H

#include "fmgr.h"
#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "host/host.h"
#include "raft/raft.h"

/* One partition's Raft group inside a worker */
typedef struct KmdGroup
{
	int32		partition_id;
	raft	   *r;
	uint64		durable_last;	/* last index in kommander.log */
	raft_term	durable_term;	/* term and vote in kommander.hard_state */
	raft_id		durable_vote;
	bool		commit_unsaved; /* a new commit index not written yet, */
	raft_hard_state unsaved;	/* in this hard state (see process_ready) */
	host_reconcile_state rec;	/* membership reconciliation, leader only
								 * (times in ms, kmd_host_ms) */
	uint64		behind_woken;	/* ms when a member behind last woke it */
	host_merge_watch merge;		/* a frozen right neighbour (partition.c) */
	uint64		barrier_for;	/* system index of the last barrier entry
								 * proposed here (barrier.c), 0 if none */
	raft_index	barrier_index;	/* its log index */
	raft_term	barrier_term;	/* and its term */
	struct KmdPartition *part;	/* its shared-memory entry (never moves) */
	raft_id		unhosted_by;	/* a leader whose node said the group does */
	TimestampTz unhosted_until; /* not run there; no forwards to it until */
	TimestampTz lost_warned_at; /* last warning of a member whose log went
								 * back (progress.c) */
	TimestampTz handoff_tried;	/* last try to hand the lead on while this
								 * node's apply of the group stalled */
	raft_id		handover_to;	/* the voter a leaving leader last handed */
	raft_term	handover_term;	/* over to, and in which term */
	uint64		prevotes_counted;	/* raft_prevotes_started, in the stats */
	raft_index	idle_last;		/* the last index of its log when seen, */
	TimestampTz idle_since;		/* since when it has been so (a leader), */
	raft_index	forget_index;	/* and where its last "forget" went */

	/* images (compact.c) */
	bool		image_wanted;	/* its state must come from an image first */
	bool		parked;			/* an image is on its way: the group steps,
								 * ticks and persists nothing until it is in */
	bool		awaiting_image; /* its entries wait for an image: it holds
								 * its campaigns, feeds the apply worker
								 * nothing and serves no request here */
	uint64		images_seen;	/* part->images when the group started */
	bool		has_snapshot_msg;	/* the leader's snapshot, answered once
									 * the image is in */
	raft_message snapshot_msg;
	raft_snapshot_meta snapshot_meta;
} KmdGroup;

extern PGDLLEXPORT void kmd_worker_main(Datum arg);

/*
 * reconcile.c: a step toward the roster in a led group's configuration;
 * true once the two are in line
 */
extern bool kmd_reconcile_group(KmdGroup *g);

/*
 * reconcile.c: the inputs of the host's rules (src/host) from shared
 * memory: the roster as this node has it, the nodes it heard from within
 * an election timeout, a partition's members as this node holds them
 * (false if it has no such partition), and a time in ms.
 */
extern void kmd_host_roster(host_roster *ro);
extern void kmd_host_heard(host_heard *h, TimestampTz now);
extern bool kmd_host_members(int32 partition_id, host_members *m);
extern uint64 kmd_host_ms(TimestampTz t);

/*
 * worker.c, for serve.c and peers.c: this worker's number and groups; a
 * caller that stepped a group marks the groups touched so the loop looks
 * at their ready batches.
 */
extern int	kmd_worker_number(void);
extern KmdGroup *kmd_group_find(int32 partition_id);
extern void kmd_groups_touched(void);
extern HTAB *kmd_worker_groups(void);

/*
 * Start a group again from its durable state (an image was installed under
 * it); returns the new group, NULL if its partition is gone.
 */
extern KmdGroup *kmd_group_restart(KmdGroup *g);

/*
 * compact.c: log compaction and the Raft worker's side of partition images.
 * kmd_image_intercept() takes a leader's snapshot message that only an
 * image can answer, and parks the group; kmd_images_step() moves parked
 * groups along (once per loop iteration, after the ready batches);
 * kmd_compact_groups() compacts the logs that have grown past
 * kommander.snapshot_threshold.
 */
extern bool kmd_image_intercept(KmdGroup *g, const raft_message *m);
extern void kmd_images_adopt(KmdGroup *g);	/* a group starts */
extern void kmd_images_step(void);
extern void kmd_images_forget(KmdGroup *g);	/* a parked group stops */
extern void kmd_compact_groups(TimestampTz now);

/* partition.c: commit a merge left half-way, in a group this worker leads */
extern void kmd_finish_merge(KmdGroup *g, TimestampTz now);

/* Encode a slot's read-index context, and back. */
#define KMD_READ_CONTEXT(slot, gen) (((uint64) (uint32) (slot) << 32) | (uint32) (gen))
#define KMD_READ_SLOT(ctx) ((int) ((ctx) >> 32))
#define KMD_READ_GEN(ctx) ((uint32) ((ctx) & 0xffffffff))

#endif							/* KOMMANDER_WORKER_H */
