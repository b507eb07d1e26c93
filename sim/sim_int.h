/*-------------------------------------------------------------------------
 *
 * sim_int.h
 *	  The simulator's internal state, shared by cluster.c (nodes, network,
 *	  disks, event loop), client.c (clients), nemesis.c (faults), check.c
 *	  (tracing and invariants), partition.c (split and merge of
 *	  partitions, routing, the range-coverage invariant), roster.c (the
 *	  cluster's roster, which partition leaders bring their groups to) and
 *	  image.c (compaction and partition images).
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/sim_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_SIM_INT_H
#define KOMMANDER_SIM_INT_H

#include "heap.h"
#include "host/host.h"
#include "linearizability.h"
#include "prng.h"
#include "raft.h"
#include "sim.h"

#define TICK_MS 10
#define ELECTION_TICKS 10
#define KEYS 4					/* keys per group */
#define PKEYS 16				/* keys of the whole map, partition mode */
#define HASH_SPACE 65536		/* key hashes are 0 .. HASH_SPACE - 1 */
#define MAX_CLIENTS 8
#define CLIENT_TIMEOUT_MS 3000
#define CLIENT_SILENCE_MS 200	/* a read unanswered this long is resent */
#define COMPACT_EVERY 40
#define LIVENESS_BOUND_MS 30000
#define TRACE_RING 48
#define PROMOTE_MAX_LAG 16		/* kommander.promote_max_lag, for short logs */
#define LIN_BUDGET 2000000		/* search steps per key; see lin_check() */
#define COMPACT_BATCH 8			/* kommander.max_batch_entries: a log is
								 * compacted once it holds this many entries
								 * past the threshold behind applied */

/* ------------------------------------------------------------------------
 * The key-value state machine; its snapshot image is the struct itself.
 *
 * In partition mode each group is a partition: its state also holds its
 * piece of the partition map (range, generation, state), it holds the
 * values of the keys whose hash falls in its range, and the map of a node
 * is the union of its groups' pieces.
 * ------------------------------------------------------------------------
 */
typedef enum part_state
{
	PART_NONE = 0,				/* not a partition (plain mode) */
	PART_ACTIVE,
	PART_FROZEN,				/* takes nothing more: a merge is coming */
	PART_MERGED					/* absorbed by its left neighbour */
} part_state;

typedef struct kv_state
{
	uint64_t	val[PKEYS];		/* plain mode uses the first KEYS */
	uint64_t	last_seq[MAX_CLIENTS];	/* dedup: a retried command */
	uint64_t	last_out[MAX_CLIENTS];	/* is answered, not applied again */
	/* partition mode */
	uint32_t	pstate;			/* part_state */
	uint32_t	lo;				/* range [lo, hi) of key hashes */
	uint32_t	hi;
	uint64_t	gen;			/* grows with every split and merge */
	uint64_t	freeze_index;	/* where it froze, when PART_FROZEN */
	uint32_t	merged_into;	/* the partition that took it in, when
								 * PART_MERGED */
	/*
	 * what an image carries of the map, as the runtime's does: the
	 * partitions this one's log split off (own_children), those merged into
	 * it and into them (absorbed), the partitions split off by any of
	 * these (children), and each child's piece of the map as it started
	 */
	uint64_t	own_children;	/* bit per partition id */
	uint64_t	children;
	uint64_t	absorbed;
	uint32_t	child_lo[SIM_MAX_GROUPS];
	uint32_t	child_hi[SIM_MAX_GROUPS];
	uint32_t	child_gen[SIM_MAX_GROUPS];
} kv_state;

/* Command kinds beyond the client's LIN_PUT and LIN_CAS */
#define CMD_SPLIT 10
#define CMD_FREEZE 11
#define CMD_MERGE 12

/* Output of a command refused by the partition's generation or state */
#define KV_FENCED UINT64_MAX

typedef struct kv_cmd
{
	uint32_t	kind;			/* LIN_PUT, LIN_CAS or CMD_* */
	uint32_t	client;
	uint64_t	seq;
	uint64_t	key;
	uint64_t	value;
	uint64_t	expect;
	/* partition mode */
	uint64_t	gen;			/* the generation the router saw */
	uint32_t	other;			/* split: the new partition; merge: the
								 * right one */
	uint32_t	mid;			/* split: the new partition's first hash */
	uint64_t	other_gen;		/* merge: the right partition's generation */
	uint64_t	other_index;	/* merge: the right partition's freeze entry */
} kv_cmd;


/* ------------------------------------------------------------------------
 * Nodes, groups, disks
 * ------------------------------------------------------------------------
 */
typedef struct waiter
{
	uint64_t	index;			/* proposal: where it went; read: read index */
	uint64_t	term;			/* proposal only */
	uint32_t	client;
	uint64_t	seq;
	bool		is_read;
	uint64_t	key;
	uint64_t	gen;			/* read, partition mode: routed generation */
} waiter;

typedef struct group
{
	raft	   *r;
	bool		exists;			/* the node hosts it (partition mode: not
								 * before it applied the split creating it) */

	/* the disk */
	raft_hard_state hs;
	raft_snapshot_meta snap;
	kv_state	snap_kv;
	raft_entry *log;			/* snap.index + 1 .., data owned */
	size_t		n_log;
	size_t		cap_log;

	/* a ready batch waiting for its fsync */
	bool		pending;
	uint64_t	fsync_at;		/* when that fsync completes */
	raft_ready	rd;

	/* the state machine; durable in partition mode, as tables are */
	kv_state	kv;
	uint64_t	applied;
	uint64_t	handed;			/* partition mode: committed entries the core
								 * handed over, applied up to here in order */

	/* clients waiting on this group here */
	waiter	   *waiters;
	size_t		n_waiters;
	size_t		cap_waiters;

	/* invariant bookkeeping for this incarnation */
	uint64_t	max_commit;
	int			last_role;

	/*
	 * partition mode, images (image.c): the group is parked while an image
	 * of its partition is on its way (it steps, ticks and proposes
	 * nothing); image_wanted, durable, marks a group whose state must come
	 * from an image (a partition split off, known from another's image)
	 */
	bool		parked;
	bool		image_wanted;
	int			image_from;		/* the node to copy it from next */
	uint64_t	image_min;		/* at this index or later */
	uint32_t	image_serial;	/* the transfer under way */
	uint64_t	image_backoff;	/* ms before the next try */
	bool		has_snap_msg;	/* the snapshot message to answer after */
	raft_message snap_msg;
	raft_snapshot_meta snap_msg_meta;
	uint64_t	merge_wait_index;	/* a merge at this index waits here */
	uint64_t	merge_wait_applied; /* for the right partition applied so far */
	uint64_t	merge_wait_since;

	/* partition mode, the leader's reconciler (roster.c) */
	uint64_t	reconciled_roster;	/* roster version last looked at, 0 none */
	raft_term	reconciled_term;	/* in the lead of this term */
	uint64_t	last_reconcile; /* when, in simulated ms */
	bool		in_line;		/* the configuration matched the roster */
	/* partition mode, the leader's reconciler (roster.c) and its watch
	 * of a frozen right neighbour (partition.c) */
	host_reconcile_state rec;
	host_merge_watch merge;
} group;

typedef struct node
{
	bool		up;
	uint64_t	last_heard[SIM_MAX_NODES + 1];	/* from each peer host */
	bool		lost[SIM_MAX_NODES + 1];	/* silent at the last tick */
	uint64_t	balanced;		/* partition mode: when it last balanced */
	uint32_t	ticks;
	uint32_t	incarnation;
	uint64_t	stalled_until;
	uint64_t	slow_fsync_until;
	group		g[SIM_MAX_GROUPS];
} node;

typedef struct client
{
	bool		busy;
	uint64_t	seq;
	size_t		hist;			/* index of the op in the history */
	int			group;
	uint64_t	key;			/* of the current or last operation */
	uint64_t	deadline;
	uint64_t	sent;			/* when the request last went out */
	int			hint;			/* node to try next, 0 for any */
} client;

/*
 * Partition mode: a node's place in the cluster's roster, as the runtime's
 * kommander.roster has it.  Absent is a server outside the cluster: it hosts
 * nothing it may use, and no member talks to it.  A node is a place for a
 * server (s->nodes); the Raft id of the server there (s->ident) changes
 * when a new server joins there.
 */
typedef enum roster_role
{
	ROSTER_ABSENT = 0,
	ROSTER_LEARNER,
	ROSTER_VOTER,
	ROSTER_REMOVING				/* groups let it go, then it leaves the roster */
} roster_role;

/* What the checkers know of a group across all nodes */
typedef struct group_truth
{
	uint64_t   *term;			/* committed entries: term, data hash */
	uint64_t   *hash;
	uint64_t   *commit_term;	/* lowest term of a node seen committing it */
	bool	   *acked;			/* a client was told it is done */
	uint64_t   *state_hash;		/* partition mode: state after applying it,
								 * 0 until a node applied it */
	size_t		len;			/* indexes 1..len known */
	size_t		cap;
	uint32_t   *leader_of_term; /* node leading each term, 0 if none seen */
	size_t		n_terms;
} group_truth;

/* Event types */
enum
{
	EV_MSG = 1,					/* a Raft message arrives */
	EV_TICK,					/* a node's clock ticks */
	EV_FSYNC,					/* a ready batch is durable */
	EV_CLIENT,					/* a client acts, resends or times out */
	EV_REQUEST,					/* a client's request reaches a node */
	EV_REPLY,					/* a node's answer reaches a client */
	EV_NEMESIS,					/* inject a fault */
	EV_RESTART,					/* a crashed node comes back */
	EV_HEAL,					/* network faults end */
	EV_PING,					/* node-level liveness between hosts */
	EV_RESEND,					/* a refused client tries again */
	EV_CHASE,					/* the nemesis cuts off a new leader */
	EV_IMAGE					/* a partition image transfer moves on */
};

typedef struct msg_blob
{
	int			group;
	int			from;			/* the node that sent it */
	raft_message m;
	raft_snapshot_meta snap;
	/* a snapshot's image (plain mode), or entries and their data, follow */
} msg_blob;

typedef struct request
{
	uint32_t	client;
	uint64_t	seq;
	uint32_t	kind;
	int			group;			/* partition mode: set by the node's router */
	uint64_t	key;
	uint64_t	value;
	uint64_t	expect;
	uint64_t	gen;			/* partition mode: routed generation */
	/* reply */
	int			status;			/* 0 done, 1 retry, 2 route again later */
	uint64_t	output;
	int			hint;
} request;

typedef struct trace_rec
{
	uint64_t	time;
	uint32_t	type;
	uint32_t	node;
	uint32_t	group;
	uint64_t	a;
	uint64_t	b;
} trace_rec;

typedef struct sim
{
	sim_config	cfg;
	sim_result *res;
	FILE	   *out;
	prng		rng;
	uint64_t	now;
	uint64_t	step;
	heap		events;
	node		nodes[SIM_MAX_NODES + 1];	/* ids 1..nodes */
	client		clients[MAX_CLIENTS];
	group_truth truth[SIM_MAX_GROUPS];

	/* network */
	bool		blocked[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1];
	uint32_t	drop_pm;		/* per mille */
	uint32_t	dup_pm;
	uint64_t	max_delay;
	bool		chaos;			/* this seed's fault profile is harsh */
	bool		quiesce;		/* this seed's groups quiesce when idle */
	bool		faults_on;
	uint64_t	chase_until;	/* until then a chase or a node away holds
								 * the network (nemesis.c) */
	int			chase_group;	/* chased group, -1 when a node is away */

	/* partition mode */
	int			next_partition; /* ids are never reused */
	uint64_t   *range_of_gen[SIM_MAX_GROUPS];	/* (lo << 32 | hi) + 1 by
												 * generation, 0 unknown */
	size_t		n_gens[SIM_MAX_GROUPS];
	int			merge_right;	/* the right partition of a merge under way,
								 * or -1 */
	uint64_t	merges;			/* splits and merges applied somewhere */
	uint64_t	splits;
	uint64_t	gone;			/* partitions merged away (bit per id): a
								 * merge applied somewhere */
	int			image_party[2]; /* sender and receiver of a transfer under
								 * way, which the nemesis likes to crash */
	uint32_t	roster[SIM_MAX_NODES + 1];	/* roster_role by node */
	uint64_t	roster_version; /* grows with every roster change, from 1 */
	uint64_t	roster_changes; /* roster changes made */
	raft_id		ident[SIM_MAX_NODES + 1];	/* Raft id of the server at each
											 * node: a server that joins gets a
											 * new one */
	raft_id		next_ident;

	/* history */
	lin_op	   *hist;
	size_t		n_hist;
	size_t		cap_hist;

	bool		failed;
	trace_rec	ring[TRACE_RING];
	uint64_t	n_trace;
} sim;

/* cluster.c: nodes, groups, events */
uint64_t	kv_apply(kv_state *kv, const kv_cmd *c);
void		schedule(sim *s, uint64_t at, uint32_t type, uint32_t node_id, uint32_t grp,
					 uint64_t arg, void *payload);
uint64_t	net_delay(sim *s);
void		group_start(sim *s, int nid, int gi);
void		group_process(sim *s, int nid, int gi);
void		node_crash(sim *s, int nid);

/* check.c: tracing and invariants */
void		trace(sim *s, uint32_t type, uint32_t node_id, uint32_t grp, uint64_t a, uint64_t b);
void		violation(sim *s, const char *invariant, const char *fmt,...);
void		check_committed_entry(sim *s, int node_id, int gi, const raft_entry *e,
								  const char *what);
void		check_group(sim *s, int nid, int gi, raft_term term_before, int role_before);
bool		all_groups_live(sim *s);
bool		members_caught_up(sim *s, char *why, size_t len);

/* client.c: clients and the answers they wait for */
void		client_timer(sim *s, int ci, uint64_t seq);
void		client_send(sim *s, int ci);
void		on_request(sim *s, int nid, request *r);
void		on_reply(sim *s, request *r);
void		reply_client(sim *s, int nid, request *req, int status, uint64_t output);
void		waiter_add(group *g, const waiter *w);
void		answer_waiters(sim *s, int nid, int gi, const raft_entry *applied_entry, uint64_t output);

/* nemesis.c: faults */
raft_id		leader_of(sim *s, int gi);
void		heal_network(sim *s);
void		nemesis(sim *s);
void		nemesis_new_leader(sim *s, int nid, int gi);
void		nemesis_chase(sim *s, int nid, int gi, raft_term term, uint32_t incarnation);

/* partition.c */
void		part_host_initial(sim *s, int nid, const raft_conf *conf);
void		part_init(sim *s, const raft_conf *conf);
uint32_t	part_hash(uint64_t key);
int			part_route(sim *s, int nid, uint64_t key, bool read, uint64_t *gen);
bool		part_readable(sim *s, const group *g, uint64_t key, uint64_t gen);
void		part_apply_committed(sim *s, int nid, int gi);
void		part_check_map(sim *s, int nid);
bool		part_converged(sim *s, char *why, size_t len);
void		part_nemesis(sim *s);
void		part_retire(sim *s, int nid, int pid, int into);
void		part_check_state(sim *s, int nid, int pid, const char *invariant);

/* image.c */
void		image_compact(sim *s, int nid, int gi);
bool		image_intercept(sim *s, int nid, int gi, const raft_message *m);
void		image_ask(sim *s, int nid, int gi, int from, uint64_t min_index);
void		image_event(sim *s, int nid, int gi, uint64_t arg, void *payload);
void		image_check(sim *s, int nid);
void		part_finish_merge(sim *s, int nid, int gi);
void		part_balance(sim *s, int nid);

/* roster.c */
void		roster_init(sim *s, int members);
int			roster_node(const sim *s, raft_id id);
bool		roster_member(const sim *s, int nid);
bool		roster_listed(const sim *s, int nid);
void		roster_change(sim *s);
void		roster_reconcile(sim *s, int nid, int gi);
void		roster_heard(const sim *s, int nid, host_heard *h);
uint32_t	roster_flaws(const sim *s);
bool		roster_merge_ready(sim *s, int nid, int left, int right);
void		roster_conf_at(const group *g, uint64_t index, raft_conf *conf);
bool		roster_converged(sim *s, char *why, size_t len);

#endif							/* KOMMANDER_SIM_INT_H */
