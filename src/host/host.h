/*-------------------------------------------------------------------------
 *
 * host.h
 *	  The host's rules: the decisions a node takes around its Raft groups
 *	  (which member is behind, when a resting group wakes, the reconciler's
 *	  next step, when a half-done merge is finished, where the balancer
 *	  moves a leader), as pure functions of what the node knows.
 *
 * Like the core (src/raft), these rules do no I/O, read no clock and
 * include no postgres.h.  Both hosts link them: the Postgres runtime
 * (worker.c, reconcile.c, partition.c, balance.c, serve.c) gathers the
 * inputs from shared memory and its log, calls a rule and does what it
 * says; the simulator (sim/roster.c, sim/cluster.c, sim/partition.c) does
 * the same from its model of a node, so that what it tests is the code
 * that runs.  Times are milliseconds on a clock of the caller's.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/host/host.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_HOST_H
#define KOMMANDER_HOST_H

#include "raft/raft.h"

/* Largest number of nodes a rule looks at (the roster, the nodes heard). */
#define HOST_MAX_NODES RAFT_MAX_MEMBERS

/*
 * Deliberate defects of the rules, compiled in only with RAFT_SIM_BUGS
 * (the simulator's build): the flaws the runtime had, which the simulator
 * must go on catching.  The runtime passes 0.
 */
#define HOST_FLAW_LONE_VOTER		0x01	/* a leaving leader with no voter to
											 * hand over to waits for one */
#define HOST_FLAW_PROMOTE_UNHEARD	0x02	/* a learner that never answered is
											 * promoted on its lag alone */
#define HOST_FLAW_LATE_MEMBER		0x04	/* a resting leader wakes only when
											 * a node it lost is heard again */
#define HOST_FLAW_SILENT_QUORUM		0x08	/* a voter is removed though the
											 * voters left hold no majority
											 * that answers */

/* ------------------------------------------------------------------------
 * What a node knows
 * ------------------------------------------------------------------------
 */

/* A node's place in the roster (the system partition's kommander.roster). */
typedef enum host_role
{
	HOST_ABSENT = 0,			/* not in the roster */
	HOST_LEARNER,
	HOST_VOTER,
	HOST_REMOVING				/* groups let it go, then it leaves the roster */
} host_role;

/* The roster as this node has it, in a fixed order (the order of steps). */
typedef struct host_roster
{
	uint32_t	n;
	raft_id		ids[HOST_MAX_NODES];
	uint32_t	roles[HOST_MAX_NODES];	/* host_role */
} host_roster;

/* The nodes heard from lately (within the caller's liveness window). */
typedef struct host_heard
{
	uint32_t	n;
	raft_id		ids[HOST_MAX_NODES];
} host_heard;

/* The members of a group's configuration as some node holds it. */
typedef struct host_members
{
	bool		committed;		/* no leader can take it back */
	uint32_t	n;
	raft_id		ids[RAFT_MAX_MEMBERS];
} host_members;

/* Role of `id' in the roster, HOST_ABSENT if it is not there. */
uint32_t	host_roster_role(const host_roster *ro, raft_id id);

/* Is `id' a member the roster keeps: a learner or a voter, not leaving? */
bool		host_roster_keeps(const host_roster *ro, raft_id id);

/* Is `id' among the nodes heard from? */
bool		host_heard_has(const host_heard *h, raft_id id);

/* Is `id' among the members? */
bool		host_members_have(const host_members *m, raft_id id);

/* The members of the configuration `r' has, and whether it is committed. */
void		host_members_of(const raft *r, host_members *m);

/* ------------------------------------------------------------------------
 * Waking resting groups (quiescence, raft.h)
 * ------------------------------------------------------------------------
 */

/*
 * Does a member of the group `r' leads lack part of its log while its node
 * is heard from?  Then its group started there after the leader went to
 * rest without it (a node that joined, or that applied the split creating
 * the group late), or a one-way cut lost the heartbeat that would have
 * caught it up: nothing in the group would wake the leader.
 */
bool		host_member_behind(const raft *r, const host_heard *heard);

/*
 * Must the host wake the resting leader `r'?  When a node it had lost is
 * heard again (`regained': it may have rested without it), or when a
 * member is behind, at most every `behind_every' ms (*behind_woken, the
 * last such wake, is updated): a member that stays behind, its node not
 * hosting the group, would keep the leader awake for good.
 */
bool		host_leader_wakes(const raft *r, const host_heard *heard, bool regained,
							  uint64_t now, uint64_t *behind_woken,
							  uint64_t behind_every, uint32_t flaws);

/*
 * Must the host wake the resting follower `r'?  When its leader's node is
 * not heard from: a follower at rest cannot notice that its leader died.
 */
bool		host_follower_wakes(const raft *r, const host_heard *heard);

/* ------------------------------------------------------------------------
 * The reconciler: a group's configuration follows the roster
 * ------------------------------------------------------------------------
 */

/* When a leader last reconciled, and what it found. */
typedef struct host_reconcile_state
{
	uint64_t	roster;			/* roster version of the last step, 0 when not
								 * leading */
	raft_term	term;			/* the term it was taken in */
	uint64_t	last;			/* when */
	bool		in_line;		/* the configuration was the roster's */
} host_reconcile_state;

/*
 * Is a reconciliation step due in the group `r'?  On its leader only: on
 * taking the lead, on a roster change (`roster', the roster's version), in
 * a new term (the lead may have been lost and won back between two calls,
 * and a step of the last term truncated), and every `every' ms while steps
 * remain.  Resets the state of a group not led here.
 */
bool		host_reconcile_due(host_reconcile_state *st, const raft *r, raft_term term,
							   uint64_t roster, uint64_t now, uint64_t every);

/* Record a step taken: `in_line' is what host_reconcile_step returned. */
void		host_reconciled(host_reconcile_state *st, bool in_line, raft_term term,
							uint64_t roster, uint64_t now);

typedef enum host_action
{
	HOST_STEP_NONE = 0,			/* nothing to do now */
	HOST_STEP_TRANSFER,			/* hand the lead to `id' */
	HOST_STEP_REMOVE,			/* propose the removal of `id' */
	HOST_STEP_ADD_LEARNER,		/* propose `id' as a learner */
	HOST_STEP_PROMOTE			/* propose `id' as a voter */
} host_action;

typedef struct host_step
{
	host_action action;
	raft_id		id;
} host_step;

/*
 * Must the group keep member `id', which the roster no longer names, a
 * while longer?  The host's answer, from host_split_holds and
 * host_freeze_holds on what it knows of the group's log (the runtime also
 * keeps a leaving member in the system partition while a user
 * partition's group has it).
 */
typedef bool (*host_holds_fn) (void *arg, raft_id id);

/*
 * The next single-server step toward the roster in the group `r' leads:
 * first a member the roster no longer keeps leaves (unless `holds' keeps
 * it; the leader, if it is that member, hands over to a voter the roster
 * keeps: two leaving voters would hand the lead back and forth for ever;
 * with no such voter it goes on to promote one), then a node the roster
 * keeps is added as a learner, then a learner the roster names a voter is
 * promoted once caught up (host_caught_up, within `max_lag').  A voter
 * leaves only while the voters left hold a majority that answers: nodes
 * in `heard' (NULL: every node) that answered this leader.  `tried': the
 * voter the last hand-over of this term went to, which did not take the
 * lead (RAFT_NONE: none), is named again only when no other voter will
 * do: one may answer and acknowledge and still not campaign (it waits for
 * an image).  Returns true when the configuration is in line with the
 * roster; *step says what to do now, if anything.  An empty roster (not
 * loaded yet) is never in line.
 */
bool		host_reconcile_step(const raft *r, const host_roster *ro, const host_heard *heard,
								uint64_t max_lag, host_holds_fn holds, void *arg,
								uint32_t flaws, raft_id tried, host_step *step);

/*
 * Has the learner `id' caught up with the leader `r': within `max_lag'
 * entries of its log, and answered it (a match above 0)?  One that never
 * answered may not host the group at all, however short the log, and as a
 * voter would never vote; nor is one whose log went back since it answered
 * (its disk wiped or restored: raft_progress.lost), which holds none of
 * what its match says.  kmd_promote_node asks this too.
 */
bool		host_caught_up(const raft *r, raft_id id, uint64_t max_lag);

/*
 * Does the split at index `split_at' of a group's log hold member `x' in
 * that group?  A split starts its new group with the configuration in
 * force at its index; a member removed before it applied the split never
 * learns that it committed, never hosts the new group, and is a voter there
 * that never answers.  So the node must have applied the split (`applied',
 * its applied index), and the new group (`child', as this node holds it
 * committed; NULL when the split was refused at apply, or the new group is
 * merged away) must not count `x' any more.
 */
bool		host_split_holds(raft_index split_at, raft_index applied,
							 const host_members *child, raft_id x);

/*
 * Does the freeze at `frozen_at' of a partition's log (the leader `r')
 * hold member `x' in its group?  A voter of the merge target (the
 * partition that takes this one in, `votes_in_target') applies the merge
 * only once it has applied this partition up to the freeze: removed here
 * before it holds that much, it stops applying the target at the merge,
 * and the groups split off the target later wait for it for good.  A
 * learner there holds nothing up, and one that never answered this leader
 * (a match of 0) may never host the group: both are let go.
 */
bool		host_freeze_holds(const raft *r, raft_id x, raft_index frozen_at,
							  bool votes_in_target);

/*
 * Does the configuration `m', as a group's most up-to-date member (its
 * leader) has it, let node `x' go: committed, not empty, without `x'?
 * kmd_remove_node takes a node out of the roster only once every group's
 * leader answers yes: a view of its own may be empty (a node that joined),
 * stale or not committed.
 */
bool		host_lets_go(const host_members *m, raft_id x);

/* ------------------------------------------------------------------------
 * Merges
 * ------------------------------------------------------------------------
 */

/*
 * May the merge of a frozen partition (members `right') into its left
 * neighbour (members `left') go into the left one's log?  Only when every
 * member of the left configuration is a member the roster keeps and a
 * member of the right configuration, both committed: a node applies the
 * merge only once it has applied the right partition up to its freeze, so
 * a member of the left group outside the right one would never apply it,
 * and the groups split off the left one later would wait for it for good.
 */
bool		host_merge_ready(const host_members *left, const host_members *right,
							 const host_roster *ro);

/* A left partition's leader watching a frozen right neighbour. */
typedef struct host_merge_watch
{
	int32_t		right;			/* the frozen neighbour seen, 0 if none */
	uint64_t	seen;			/* since when, or since the last try */
	raft_index	index;			/* log index of the last try, 0 if none */
	raft_term	term;			/* and its term */
} host_merge_watch;

/*
 * Is it time for the leader `r' to commit the merge of its frozen right
 * neighbour `right' (0 if none) itself?  When the neighbour has stayed
 * frozen for `wait' ms (whoever froze it went away) and the last try, if
 * still in the log above `applied', is not still on its way.  The caller
 * then checks host_merge_ready, proposes, and stores the index and term of
 * the proposal in w->index and w->term.
 */
bool		host_merge_due(const raft *r, host_merge_watch *w, int32_t right,
						   uint64_t now, uint64_t wait, raft_index applied);

/* ------------------------------------------------------------------------
 * The balancer: leaderships spread over the voters
 * ------------------------------------------------------------------------
 */

/* The leaderships of user partitions per voter, as one node sees them. */
typedef struct host_load
{
	int			n_voters;
	raft_id		voters[HOST_MAX_NODES];
	int			load[HOST_MAX_NODES];	/* active user partitions each leads */
	int			partitions;		/* active user partitions with a leader */
	int			target;			/* most any voter should lead */
} host_load;

/* Start counting: no voters, no partitions. */
void		host_load_init(host_load *l);

/* A voter heard from lately (itself included), leading nothing yet. */
void		host_load_voter(host_load *l, raft_id id);

/* An active user partition led by `leader' (a voter counted or not). */
void		host_load_partition(host_load *l, raft_id leader);

/*
 * Done counting: the target is the partitions divided by the voters,
 * rounded up.  Both sides of a move from a voter above it to one below
 * it improve, so moves converge.
 */
void		host_load_done(host_load *l);

/* Index in l->voters of `id', or -1. */
int			host_load_index(const host_load *l, raft_id id);

/* The index of the least loaded voter if it leads fewer than target, or -1. */
int			host_least_loaded(const host_load *l);

/*
 * Where should `self' hand one of its partitions: the index of the least
 * loaded voter when `self' leads more than the target and that one fewer,
 * else -1.
 */
int			host_balance_to(const host_load *l, raft_id self);

/*
 * Whom should leader `r', whose node cannot apply the group's entries (a
 * failure of that node holds its apply back), hand the group to: the
 * voter with the longest log among the others heard lately (`heard', NULL:
 * all) and not found to have lost entries, RAFT_NONE if none.
 */
raft_id		host_handoff_to(const raft *r, const host_heard *heard);

#endif							/* KOMMANDER_HOST_H */
