/*-------------------------------------------------------------------------
 *
 * sim.h
 *	  The deterministic simulator: many nodes and Raft groups in one
 *	  process, with a simulated network, disk and clock all driven by one
 *	  seeded PRNG, and safety invariants checked after every step.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/sim.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_SIM_H
#define KOMMANDER_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define SIM_MAX_NODES 7
#define SIM_MAX_GROUPS 64

/* Faults the nemesis may inject (--faults) */
#define SIM_F_DROP		0x01	/* lose messages */
#define SIM_F_DUP		0x02	/* deliver some twice */
#define SIM_F_REORDER	0x04	/* widely varying delays */
#define SIM_F_DELAY		0x08	/* long delays for a while */
#define SIM_F_PARTITION 0x10	/* symmetric, asymmetric, isolated node or
								 * leader */
#define SIM_F_CRASH		0x20	/* crash a node, losing unsynced writes */
#define SIM_F_FSYNC		0x40	/* slow fsync */
#define SIM_F_STALL		0x80	/* a node stops processing for a while */
#define SIM_F_ALL		0xff

/* Deliberate bugs of the simulator's partition host (--bug), next to RAFT_BUG_* */
#define SIM_BUG_NO_FENCING		0x100	/* writes ignore the generation */
#define SIM_BUG_EARLY_MERGE		0x200	/* merge without waiting for the freeze */
#define SIM_BUG_STALE_READ		0x400	/* reads ignore splits and freezes */
#define SIM_BUG_SPLIT_OVERLAP	0x800	/* the split partition keeps its range */
#define SIM_BUG_REUSE_ID		0x1000	/* a server joins under the id of the
										 * removed one it replaces */
#define SIM_BUG_REMOVE_EARLY	0x2000	/* a leader removes a member that groups
										 * split off from its own still name */
#define SIM_BUG_LATE_MEMBER		0x4000	/* a resting leader is not woken for a
										 * member whose group starts late */
#define SIM_BUG_LEAVE_EARLY		0x8000	/* a node leaves the roster on a view of
										 * the groups that may not be committed */
#define SIM_BUG_LONE_VOTER		0x10000 /* a leaving leader that is the only
										 * voter waits for one to hand over to */
#define SIM_BUG_STALE_RECONCILE 0x20000 /* a leader that lost and won back the
										 * lead trusts its last reconcile */
#define SIM_BUG_STRAND_MERGE	0x40000 /* a merge commits while a member of
										 * the left partition may lack the
										 * right one's log */
#define SIM_BUG_PROMOTE_UNHEARD 0x80000 /* a learner that never answered is
										 * promoted when the log is short */
#define SIM_BUG_IMAGE_INDEX		0x100000	/* an image is installed at the index
											 * of the snapshot message, not the
											 * one its rows were read at */
#define SIM_BUG_SILENT_QUORUM	0x200000	/* a leader removes a voter though
											 * the voters left hold no majority
											 * that answers */

typedef struct sim_config
{
	uint64_t	seed;
	int			nodes;			/* 3..7 */
	int			groups;			/* 1..64 */
	uint64_t	steps;			/* events of the faulty phase */
	uint32_t	faults;			/* SIM_F_* */
	uint32_t	bugs;			/* RAFT_BUG_*, SIM_BUG_* */
	bool		membership;		/* membership changes and leader transfers */
	bool		partitions;		/* groups are partitions of one key space,
								 * split and merged by the nemesis */
	uint32_t	compact;		/* partition mode: entries a node keeps
								 * behind what it applied when it compacts
								 * (kommander.snapshot_threshold); 0 never */
	bool		no_host_moves;	/* partition mode: no merge finisher and no
								 * balancer, the nemesis alone moves */
	bool		trace;			/* print every event */
	const char *ignore;			/* an invariant not checked (--ignore), to
								 * let a deliberate bug reach another */
	int			clients;
	FILE	   *history;		/* if set, the client history is written
								 * there as JSON lines (history.h) */
} sim_config;

typedef struct sim_result
{
	bool		ok;
	uint64_t	steps;			/* events processed */
	uint64_t	messages;		/* Raft messages delivered */
	uint64_t	sim_ms;			/* simulated time at the end */
	uint64_t	digest;
	uint64_t	liveness_ms;	/* heal to every group leading and
								 * committing */
	uint64_t	ops;			/* client operations completed */
	uint64_t	pending_ops;	/* with unknown outcome */
	bool		lin_gave_up;	/* the linearizability search ran out of
								 * budget on some key: nothing is proved */
	uint64_t	splits;			/* partition mode: splits and merges applied */
	uint64_t	merges;
	uint64_t	roster_changes; /* partition mode: joins, promotions, removals */
	uint64_t	compactions;	/* partition mode: logs compacted */
	uint64_t	images;			/* partition mode: images installed */
	uint64_t	images_cut;		/* transfers cut short (a crash, a cut link,
								 * a source that cannot serve), tried again */
	char		invariant[64];	/* the one violated */
	char		detail[512];
	uint64_t	violation_step;
} sim_result;

/* Parse a --faults list ("drop,crash", "all", "none"); -1 on error. */
int			sim_parse_faults(const char *list, uint32_t *faults);

/* Map a --bug name, or a list of names joined by commas, to RAFT_BUG_* and
 * SIM_BUG_* flags; 0 when a name is unknown. */
uint32_t	sim_parse_bug(const char *list);

/*
 * Run one seed.  With cfg->trace the trace goes to `out'; on a violation
 * the last events are printed there too.
 */
void		sim_run(const sim_config *cfg, sim_result *res, FILE *out);

#endif							/* KOMMANDER_SIM_H */
