/*-------------------------------------------------------------------------
 *
 * fixture.h
 *	  A deterministic cluster of Raft cores for the core unit tests: a
 *	  synchronous network whose links can be cut, disks that keep exactly
 *	  what each ready batch made durable, and crash/restart.
 *
 * Unlike the simulator, nothing here is random: a test says which node
 * ticks and when messages move, and asserts exact outcomes.  Hooks let a
 * test lose chosen messages, deliver only some, and look at every ready
 * batch a node hands out.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/fixture.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_TEST_FIXTURE_H
#define KOMMANDER_TEST_FIXTURE_H

#include "raft.h"

#define FX_MAX_NODES 8

/* A message in flight: a deep copy owned by the fixture. */
typedef struct fx_msg
{
	raft_message m;
	raft_snapshot_meta snap;
} fx_msg;

typedef struct fx_node
{
	raft	   *r;
	raft_options opts;
	bool		up;

	/* the disk */
	raft_hard_state hs;
	raft_snapshot_meta snap;
	raft_entry *log;			/* snap.index + 1 .. */
	size_t		n_log;

	/* what the state machine applied, in order */
	raft_entry *applied;
	size_t		n_applied;
	raft_index	applied_index;

	/* reads released to this node */
	raft_read_state reads[64];
	size_t		n_reads;
} fx_node;

struct fixture;

/* Picks messages: which ones are lost, or which ones to deliver. */
typedef bool (*fx_msg_pred) (const raft_message *m, void *ctx);

/* Sees each ready batch a node hands out, before the fixture handles it. */
typedef void (*fx_ready_fn) (struct fixture *f, raft_id id,
							 const raft_ready *rd, void *ctx);

typedef struct fixture
{
	int			n;				/* nodes are ids 1..n */
	fx_node		nodes[FX_MAX_NODES + 1];
	bool		cut[FX_MAX_NODES + 1][FX_MAX_NODES + 1];	/* from, to */
	fx_msg	   *q;				/* messages in flight, in send order */
	size_t		nq;
	size_t		capq;
	uint64_t	delivered;		/* counters, for assertions */
	uint64_t	sent_by_type[RAFT_MSG_TYPE_MAX + 1];

	/* optional hooks, NULL when unused */
	fx_msg_pred drop;			/* messages it picks are lost at delivery,
								 * on top of `cut' */
	void	   *drop_ctx;
	fx_ready_fn on_ready;
	void	   *on_ready_ctx;
} fixture;

/*
 * A cluster of `n' nodes whose first `voters' are voters and the rest
 * learners.  `opts_fn', if given, adjusts each node's options.
 */
fixture    *fx_new(int n, int voters, void (*opts_fn) (raft_options *));
void		fx_free(fixture *f);

/* Node `id' joins the fixture with an empty configuration (it learns it). */
void		fx_add_empty_node(fixture *f, raft_id id);

raft	   *fx_raft(fixture *f, raft_id id);

/* Handle every node's ready batch: persist, apply, queue messages. */
void		fx_flush(fixture *f);

/* Deliver queued messages (and the ones they cause) until none is left, at
 * most `max' deliveries (0: no limit).  Returns how many were delivered. */
size_t		fx_deliver_all(fixture *f, size_t max);

/* Deliver only the messages queued now, not the ones they cause. */
size_t		fx_deliver_once(fixture *f);

/* Drop every queued message. */
void		fx_drop_all(fixture *f);

/* Tick one node `times' times, flushing after each. */
void		fx_tick(fixture *f, raft_id id, int times);

/* Tick every live node once and flush. */
void		fx_tick_all(fixture *f);

/* Tick node `id' until it starts an election, then run the cluster until
 * quiet.  Returns the leader afterwards (RAFT_NONE if none). */
raft_id		fx_elect(fixture *f, raft_id id);

/* The node every live node agrees is leader of the highest term, or 0. */
raft_id		fx_leader(fixture *f);

/* Propose `s' on `id' and return the raft_propose() result. */
int			fx_propose(fixture *f, raft_id id, const char *s);

/* Cut / heal the link in both directions, or isolate a node from all. */
void		fx_cut(fixture *f, raft_id a, raft_id b);
void		fx_heal(fixture *f, raft_id a, raft_id b);
void		fx_isolate(fixture *f, raft_id id);
void		fx_heal_all(fixture *f);

/* Crash (losing nothing durable; in-flight messages to it are dropped) and
 * restart from the disk. */
void		fx_crash(fixture *f, raft_id id);
void		fx_restart(fixture *f, raft_id id);

/* The data of entry `i' the node applied, as a string ("" for no data). */
const char *fx_applied_str(fixture *f, raft_id id, size_t i);

/* Number of NORMAL entries a node applied. */
size_t		fx_applied_normal(fixture *f, raft_id id);

/* cmocka teardown: frees the fixture a test left in *state. */
int			fx_teardown(void **state);

/*
 * Replace node `id''s disk by a hard state and a log whose entries have the
 * given terms (indexes 1..n after a snapshot marker at 0; each entry's data
 * reads "index:term"), then restart it from that disk.
 */
void		fx_set_disk(fixture *f, raft_id id, raft_term term, raft_id vote,
						raft_index commit, const raft_term *terms, size_t n);

/* raft_compact() on node `id', and the host's part: persist the new marker
 * and delete the compacted entries from the disk.  Returns the rc. */
int			fx_compact(fixture *f, raft_id id, raft_index index);

/* Step a message into node `id' and flush; returns the raft_step() rc. */
int			fx_step(fixture *f, raft_id id, const raft_message *m);

/* `ticks' rounds of: tick every live node, deliver until quiet. */
void		fx_run(fixture *f, int ticks);

/*
 * Tick node `id' until it campaigns, then deliver one batch at a time until
 * it wins or nothing is left.  Unlike fx_elect(), the new leader's first
 * appends stay queued.  Returns whether `id' is leader.
 */
bool		fx_campaign(fixture *f, raft_id id);

/* Deliver, in order, the queued messages `pred' picks; keep the others
 * queued.  Returns how many were delivered (or lost on a cut link). */
size_t		fx_deliver_if(fixture *f, fx_msg_pred pred, void *ctx);

/* Queued messages of `type' from `from' to `to' (0 matches any). */
size_t		fx_queued(fixture *f, uint32_t type, raft_id from, raft_id to);

#endif
