/*-------------------------------------------------------------------------
 *
 * guc.h
 *	  kommander's settings (GUCs); README.md documents each with its range.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/guc.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_GUC_H
#define KOMMANDER_GUC_H

extern char *kmd_database;
extern int	kmd_workers;		/* as set: 0 lets the node choose */
extern int	kmd_n_workers;		/* the Raft workers this node runs */
extern int	kmd_max_partitions;
extern int	kmd_election_timeout;	/* ms */
extern int	kmd_heartbeat_interval; /* ms */
extern int	kmd_propose_timeout;	/* ms */
extern int	kmd_max_batch_entries;
extern int	kmd_max_batch_bytes;
extern int	kmd_max_inflight_batches;
extern int	kmd_snapshot_threshold;
extern int	kmd_promote_max_lag;
extern int	kmd_balance_interval;	/* ms, 0: off */
extern int	kmd_max_queued_proposals;
extern int	kmd_request_retention;	/* ms */
extern int	kmd_image_timeout;	/* ms, 0: without limit */
extern int	kmd_max_leases;

extern void kmd_define_gucs(void);

#endif							/* KOMMANDER_GUC_H */
