/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  kommander's shared memory: node identity and roster cache, per
 *	  partition state, proposal slots and worker inboxes.
 *
 * Lock protocol: KmdShared->lock (an LWLock) protects the node identity,
 * the roster cache and the partition table; each field says who writes it.
 * Fields written by exactly one process and read by others without the lock
 * are marked "atomic" (pg_atomic_uint64) or are read as a whole under the
 * lock.  A proposal slot and an inbox are each protected by an LWLock of
 * their own (never a spinlock: a command or a result is copied, and memory
 * allocated, while it is held).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/shmem.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_SHMEM_H
#define KOMMANDER_SHMEM_H

#include "datatype/timestamp.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/latch.h"
#include "storage/lwlock.h"

#define KMD_MAX_NODES		32		/* RAFT_MAX_MEMBERS */
#define KMD_MAX_WORKERS		16
#define KMD_NUM_SLOTS		256
#define KMD_MAX_COMMAND		(64 * 1024) /* encoded command in a slot */
#define KMD_MAX_RESULT		(16 * 1024) /* result text in a slot */
#define KMD_CONNINFO_LEN	1024
#define KMD_INBOX_SIZE		(8 * 1024 * 1024)	/* a Raft worker's inbox */
/* The largest batch a peer sends: an inbox holds several. */
#define KMD_MAX_BATCH		(KMD_INBOX_SIZE / 4)
#define KMD_ERRMSG_LEN		512
#define KMD_STALL_LEN		256		/* the error a stalled partition shows */

/* Roster roles, as stored in kommander.roster.role */
typedef enum KmdNodeRole
{
	KMD_NODE_VOTER = 1,
	KMD_NODE_LEARNER = 2,
	KMD_NODE_REMOVING = 3
} KmdNodeRole;

/* One node of the roster, cached from kommander.roster by the apply worker. */
typedef struct KmdNode
{
	int32		node_id;		/* 0: unused entry */
	int32		role;			/* KmdNodeRole */
	char		name[NAMEDATALEN];
	char		conninfo[KMD_CONNINFO_LEN];
	char		peer_role[NAMEDATALEN];	/* its peers' login role, or "" */
	pg_atomic_uint64 last_contact;	/* TimestampTz of the last batch
									 * received from it (deliver) */
	pg_atomic_uint64 batches_dropped;	/* its batches an inbox here had no
										 * room for (deliver) */
} KmdNode;

/*
 * A peer's host names as addresses (resolve.c): resolved by the resolver,
 * a process of its own that may wait for DNS where a Raft worker, or the
 * launcher that starts the workers again, must not.
 */
typedef struct KmdAddress
{
	int32		node_id;		/* 0: unused entry */
	char		conninfo[KMD_CONNINFO_LEN]; /* the conninfo resolved */
	/* libpq's host, hostaddr and port lists for it (each "": none found) */
	char		host[KMD_CONNINFO_LEN];
	char		hostaddr[KMD_CONNINFO_LEN];
	char		port[KMD_CONNINFO_LEN]; /* "": the conninfo's own */
	char		error[256];		/* why it could not be resolved, or "" */
	TimestampTz resolved_at;
} KmdAddress;

/* Partition states, as stored in kommander.partition_map.state */
typedef enum KmdPartState
{
	KMD_PART_ACTIVE = 1,
	KMD_PART_FROZEN = 2,		/* merge under way: proposals get K0004 */
	KMD_PART_GONE = 3
} KmdPartState;

/*
 * Where a partition is in getting an image of its state from another node
 * (snapshot.c): asked for (by its Raft worker, whose leader sent a snapshot
 * the log cannot replace, or by the apply worker, blocked on a merge whose
 * right partition no node serves any more), then ready once the Raft
 * worker has parked the group (it steps and persists nothing of it), then
 * none again when the apply worker has installed it.  A try that failed
 * leaves it waiting: the Raft worker lets the group run again, holding its
 * campaigns (it votes, and acknowledges when its log is whole, so the
 * others keep their majority, but never leads, as its entries are not
 * applied), until the apply worker asks again at the next try.
 */
typedef enum KmdImageState
{
	KMD_IMAGE_NONE = 0,
	KMD_IMAGE_ASKED,
	KMD_IMAGE_READY,
	KMD_IMAGE_WAITING
} KmdImageState;

/*
 * Why a partition does not move on here (kommander.partitions.stalled):
 * its apply waits for a failure of this node to pass and is tried again
 * after a backoff, or its apply stopped at an entry this node cannot
 * decode, or its Raft group is offline (its durable state here is
 * inconsistent).
 */
typedef enum KmdStall
{
	KMD_STALL_NONE = 0,
	KMD_STALL_RETRYING,
	KMD_STALL_STOPPED,
	KMD_STALL_OFFLINE
} KmdStall;

/*
 * One partition.  Routing fields (lo, hi, generation, state) are written by
 * the apply worker under KmdShared->lock from kommander.partition_map; Raft
 * fields by the owning Raft worker; applied_* by the apply worker.
 */
typedef struct KmdPartition
{
	int32		partition_id;	/* -1: unused entry */
	int32		state;			/* KmdPartState */
	int64		lo;				/* key-hash range [lo, hi]; inclusive bounds */
	int64		hi;
	uint64		generation;
	uint64		frozen_at;		/* index of the freeze entry, when frozen */
	TimestampTz image_installed_at; /* when an image of it was last installed
									 * here, 0: never */

	/* Raft worker, under lock */
	int32		role;			/* raft_role, or -1 when not started */
	int32		leader;			/* node id, 0 if none known */
	bool		is_learner;
	int32		voters;			/* voters of the group's configuration */
	int32		n_members;		/* members of the group's configuration */
	int32		member_ids[KMD_MAX_NODES];	/* their node ids */
	int32		member_roles[KMD_MAX_NODES];	/* and their raft_member_role */
	bool		conf_committed;	/* that configuration is committed */
	bool		quiesced;		/* idle: no heartbeats, no timers */
	uint64		term;
	uint64		last_index;
	uint64		snapshot_index;

	/*
	 * A Raft worker runs a group on this entry (under lock): the entry of
	 * a partition gone is taken by a new one only once no group holds it,
	 * since a group writes into its entry (commit_index, its status)
	 */
	bool		hosted;

	/* images, under lock: see KmdImageState */
	int32		image_state;
	int32		image_from;		/* the node to copy it from */
	int32		image_failed_from;	/* the node of the last try, which
									 * failed: its snapshot messages do
									 * not take the next try back to it */
	uint64		image_min;		/* it must reach at least this index */
	TimestampTz image_since;	/* when it was asked for */
	bool		image_untold;	/* one committed here, its group not yet
								 * told (apply worker: tell_installed) */
	pg_atomic_uint64 images;	/* images installed (apply worker) */

	/*
	 * Raft worker: the commit index this node knows, whose entries are
	 * durable here (kommander.hard_state may hold a lower one: see
	 * needs_sync in worker.c)
	 */
	pg_atomic_uint64 commit_index;
	/*
	 * Raft worker: how far the group has committed as this node knows
	 * (raft_group_commit): higher than commit_index while this node's log
	 * is behind what its leader told it
	 */
	pg_atomic_uint64 group_commit;
	/* apply worker */
	pg_atomic_uint64 applied_index;
	pg_atomic_uint64 applied_term;

	/*
	 * Stalls, under lock: the apply worker's (retrying or stopped, with
	 * when to try again) and the Raft worker's (offline), each with the
	 * error that caused it and since when.
	 */
	int32		apply_stall;	/* KmdStall, apply worker */
	int32		apply_tries;	/* failures in a row */
	TimestampTz apply_retry_at;
	TimestampTz apply_stalled_since;
	char		apply_error[KMD_STALL_LEN];
	bool		offline;		/* Raft worker: the group is not started */
	int32		offline_tries;	/* failed starts in a row */
	TimestampTz offline_since;
	TimestampTz offline_retry_at;	/* when to try to start it again */
	char		offline_error[KMD_STALL_LEN];

	/*
	 * Where the apply worker holds the partition for a DDL or registration
	 * (barrier.c), under lock: the system index a barrier entry it stopped
	 * at covers, or the right partition of a merge it stopped at; 0 when it
	 * is not held there.
	 */
	uint64		held_barrier;
	int32		held_merge;
} KmdPartition;

/* Slot life cycle: FREE -> RESERVED -> PENDING (backend) -> SENT (worker)
 * -> DONE -> FREE (backend) */
typedef enum KmdSlotState
{
	KMD_SLOT_FREE = 0,
	KMD_SLOT_PENDING,			/* waiting for the Raft worker */
	KMD_SLOT_SENT,				/* proposed locally or forwarded */
	KMD_SLOT_DONE,				/* result or error filled in */
	KMD_SLOT_RESERVED			/* taken by a backend, being filled in */
} KmdSlotState;

/* What a slot asks of the Raft worker */
typedef enum KmdSlotKind
{
	KMD_REQ_PROPOSE = 1,		/* replicate `command' */
	KMD_REQ_READ_INDEX,			/* ReadIndex; result: read_index */
	KMD_REQ_TRANSFER,			/* leadership to node `arg' */
	KMD_REQ_PROMOTE_CHECK,		/* is node `arg' within promote_max_lag? */
	KMD_REQ_MEMBER_CHECK		/* has the group let node `arg' go? */
} KmdSlotKind;

/*
 * A request of a backend to a Raft worker, and its answer.  Protected by
 * `lock'; `generation' grows each time the slot is taken, so a late answer
 * for an abandoned request (cancel, timeout) is recognised and dropped.  It
 * starts at a random value at every startup, so that a late answer from a
 * peer to a request of an earlier run (a forward, a read index) is unlikely
 * to match one of this run; entries in the log carry boot_id as well.
 */
typedef struct KmdSlot
{
	LWLock	   *lock;			/* of the tranche "kommander slots" */
	int32		state;			/* KmdSlotState */
	uint32		generation;
	int32		kind;			/* KmdSlotKind */
	int32		partition_id;
	int32		owner_pid;
	int64		arg;
	TimestampTz deadline;		/* the backend gives up then */
	TimestampTz sent_at;		/* when a Raft worker last marked it SENT */
	TimestampTz not_before;		/* pending, but not forwarded again before
								 * then: a peer returned it (no room) */
	int32		returns;		/* how often a peer returned it */
	ConditionVariable cv;		/* signalled when state becomes DONE */

	/*
	 * The buffers lie apart from the slots (KmdSlotBuffers), so that a
	 * Raft worker's scan for pending slots reads a few cache lines and not
	 * one page per slot.
	 */

	/* request */
	uint32		command_len;
	char	   *command;		/* KMD_MAX_COMMAND bytes */

	/* answer */
	char		sqlstate[6];	/* "00000" on success */
	char	   *errmsg;			/* KMD_ERRMSG_LEN bytes */
	char	   *errdetail;		/* KMD_ERRMSG_LEN bytes */
	char	   *errhint;		/* KMD_ERRMSG_LEN bytes */
	uint64		index;
	uint64		term;
	int32		index_partition;	/* whose log holds `index', when not the
									 * request's partition; else 0 */
	bool		applied;		/* false: a condition did not hold */
	uint32		result_len;
	char	   *result;			/* KMD_MAX_RESULT bytes: jsonb text, or empty */
} KmdSlot;

/* What a slot's buffers point to */
typedef struct KmdSlotBuffers
{
	char		command[KMD_MAX_COMMAND];
	char		errmsg[KMD_ERRMSG_LEN];
	char		errdetail[KMD_ERRMSG_LEN];
	char		errhint[KMD_ERRMSG_LEN];
	char		result[KMD_MAX_RESULT];
} KmdSlotBuffers;

/*
 * A Raft worker's inbox: a byte ring of length-prefixed batches written by
 * the peer channel's backends (deliver.c) and read by the worker.
 */
typedef struct KmdInbox
{
	LWLock	   *lock;			/* of the tranche "kommander rings" */
	uint64		head;			/* next byte to read (worker) */
	uint64		tail;			/* next byte to write (deliver) */
	uint64		dropped;		/* batches refused for lack of room */
	Size		size;
	/* followed by `size' bytes of data */
} KmdInbox;

/* One Raft worker process's public face */
typedef struct KmdWorker
{
	pid_t		pid;			/* 0 when not running; under `lock' exclusive,
								 * by kmd_claim_process */
	Latch	   *latch;			/* set to wake it */
	uint32		generation;		/* bumped at every start */
	KmdInbox   *inbox;			/* batches from peers, for the worker */
	KmdInbox   *feed;			/* committed entries, for the apply worker */
} KmdWorker;

/* A record of a worker's feed: a committed entry, durable in kommander.log */
typedef struct KmdFeedEntry
{
	int32		partition_id;
	uint32		kind;			/* raft_entry_type */
	uint64		index;
	uint64		term;
	/* followed by the entry's data */
} KmdFeedEntry;

typedef struct KmdShared
{
	LWLock	   *lock;

	/*
	 * This run of the node, random, written once at startup: an entry
	 * proposed before a restart and applied after it answers no request of
	 * the new run, whose slot generations start afresh.
	 */
	uint64		boot_id;

	/* node identity: written by kmd_bootstrap/kmd_join and at startup */
	bool		member;			/* this node belongs to a cluster */
	int32		local_node_id;
	uint8		cluster_id[16];
	uint32		went_back_from; /* not 0: the WAL timeline the node joined
								 * on, which it left (then not a member) */

	/* bumped (under lock) whenever the roster or the partition map changes */
	uint64		roster_version;
	uint64		map_version;
	int			n_frozen;		/* partitions frozen, as of the last refresh */
	int			n_left_out;		/* partitions of the map without an entry
								 * here (kommander.max_partitions), as of
								 * the last refresh: DDL barriers wait */

	/*
	 * Bumped by the apply worker when it asks for an image or installs one:
	 * the Raft workers look at their groups' image states only when it moves
	 * (or while a group of theirs is parked).
	 */
	pg_atomic_uint64 image_events;

	/*
	 * The system partition index of the DDL or registration the apply
	 * worker waits to apply, until every partition is held for it: the
	 * leaders here put a barrier entry in their partitions' logs
	 * (barrier.c).  0 before the first.
	 */
	pg_atomic_uint64 barrier_wanted;

	Latch	   *launcher_latch;
	Latch	   *apply_latch;
	pid_t		apply_pid;		/* as KmdWorker.pid */
	/* apply worker: the partition of the command it runs, -1 between */
	volatile int32 apply_partition;
	int			n_workers;		/* kommander.workers, fixed at start */
	KmdWorker	workers[KMD_MAX_WORKERS];

	KmdNode		nodes[KMD_MAX_NODES];
	uint64		roster_index;	/* the system partition's applied index the
								 * roster above was read at */

	/*
	 * The peers' conninfos that name hosts, resolved: written under `lock'
	 * exclusive by the resolver, read under `lock' by the Raft workers.
	 */
	KmdAddress	addresses[KMD_MAX_NODES];
	/* set by a Raft worker that needs the resolver; the launcher starts it */
	volatile bool resolver_wanted;
	Latch	   *resolver_latch;
	pid_t		resolver_pid;	/* as KmdWorker.pid */

	/* broadcast by the apply worker whenever an applied index moves */
	ConditionVariable applied_cv;
	/* broadcast by Raft workers whenever a leader or role changes */
	ConditionVariable leader_cv;

	int			max_partitions;
	KmdPartition *partitions;	/* max_partitions entries */
	/*
	 * Entries at or after this one have never held a partition: scans for
	 * partitions stop here.  Grows only; written under `lock' exclusive by
	 * kmd_partition_add, read under `lock'.
	 */
	int			partitions_used;
	KmdSlot    *slots;			/* KMD_NUM_SLOTS MAXALIGNed entries: use kmd_slot() */
} KmdShared;

extern KmdShared *kmd_shared;

extern void kmd_shmem_request(void);
extern void kmd_shmem_startup(void);

/* Helpers; the caller holds kmd_shared->lock where noted. */
extern KmdSlot *kmd_slot(int i);
extern KmdPartition *kmd_partition_find(int32 partition_id);	/* lock held */
/*
 * A new entry, under the lock held exclusive; NULL when all are taken.  The
 * entry of a merged-away partition is taken over when no other is free.
 */
extern KmdPartition *kmd_partition_add(int32 partition_id);
extern void kmd_copy_text(char *dst, const char *src, int size);
/* How many more live partitions this node can hold. */
extern int	kmd_partition_room(void);
extern KmdNode *kmd_node_find(int32 node_id);	/* lock held */
/* Some member of the roster other than this node, or 0 (lock held). */
extern int32 kmd_other_node(void);
/* How many members of the roster other than this node (takes the lock). */
extern int	kmd_other_nodes(void);
/* Copy node `node_id''s conninfo (KMD_CONNINFO_LEN); false if not in the roster. */
extern bool kmd_node_conninfo(int32 node_id, char *conninfo);

/* Did this node get a batch from `node' within `ms'?  Always true of itself. */
extern bool kmd_node_heard(const KmdNode *node, TimestampTz now, int ms);
extern int	kmd_worker_for_partition(int32 partition_id);

/* A partition's applied index here and its generation (0 if unknown). */
extern uint64 kmd_partition_applied(int32 partition_id);
extern uint64 kmd_partition_generation(int32 partition_id);
extern int32 kmd_partition_state(int32 partition_id); /* KMD_PART_GONE if unknown */

/*
 * Take the process slot `*pid' (a Raft worker's, the apply worker's, the
 * resolver's) for this process, named `what' in the log, until it exits;
 * exits at once (code 0) if a live process holds it.  Two copies of a
 * worker would vote twice as one node, or apply a command twice.
 */
extern void kmd_claim_process(pid_t *pid, const char *what);

/* Wake the worker owning a partition, the apply worker, the launcher. */
extern void kmd_wake_worker(int worker);
extern void kmd_wake_apply(void);
extern void kmd_wake_launcher(void);

/*
 * Complete a slot if it still belongs to request `generation'.
 * `partition_id': the partition whose log holds entry `index' when it is
 * not the request's own (a request id's first outcome, applied before a
 * split or merge moved the key), else 0.
 */
extern bool kmd_slot_complete(int slot, uint32 generation, const char *sqlstate,
							  const char *errmsg, const char *errdetail,
							  const char *errhint,
							  uint64 index, uint64 term, bool applied,
							  const char *result, uint32 result_len,
							  int32 partition_id);

/* Inbox: returns false when it has no room (the batch is dropped). */
extern bool kmd_inbox_put(KmdInbox *inbox, const char *data, uint32 len);
/* Takes the next batch into *buf (palloc'd in the current context). */
extern bool kmd_inbox_get(KmdInbox *inbox, char **buf, uint32 *len);

#endif							/* KOMMANDER_SHMEM_H */
