/*-------------------------------------------------------------------------
 *
 * roster.c
 *	  Membership in partition mode, as the runtime has it: the cluster's
 *	  roster, which the operator changes (a node joins as a learner, is
 *	  promoted, is removed in two steps), and the reconciler of every
 *	  partition leader, which brings its group's configuration in line with
 *	  the roster one single-server change at a time (src/membership.c).
 *
 * The roster here is one truth every node reads at once, where the
 * runtime's is applied on the system partition and cached on each node.
 * The decisions are the runtime's own code, the host's rules of
 * src/host (which member may leave, the reconciler's next step, when a
 * merge may go in); what is here gathers their inputs from the model and
 * does what they say.  The seeded flaws of the runtime's membership
 * (--bug) are the old rules, kept here or behind the rules' flaws.
 *
 * Nodes outside the roster are refused by the transport, as the runtime's
 * kommander.deliver refuses them; a node that joins is a server with a
 * wiped disk, as kmd_join requires.  At the end, once healed, every group's
 * configuration must equal the roster.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/roster.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"

/* The first `members' nodes are the roster's voters; the others are outside. */
void
roster_init(sim *s, int members)
{
	for (int nid = 1; nid <= s->cfg.nodes; nid++)
		s->roster[nid] = nid <= members ? ROSTER_VOTER : ROSTER_ABSENT;
	s->roster_version = 1;
}

/*
 * The node where the server of Raft id `id' is, or 0.
 */
int
roster_node(const sim *s, raft_id id)
{
	int			found = 0;

	for (int nid = 1; nid <= s->cfg.nodes; nid++)
		if (s->ident[nid] == id && id != RAFT_NONE)
			found = nid;
	return found;
}

/* Is the node in the roster at all (the transport talks to it)? */
bool
roster_listed(const sim *s, int nid)
{
	return s->roster[nid] != ROSTER_ABSENT;
}

/* Is the node one that every group must have (not absent, not leaving)? */
bool
roster_member(const sim *s, int nid)
{
	return s->roster[nid] == ROSTER_VOTER || s->roster[nid] == ROSTER_LEARNER;
}

/* The roster as the host's rules read it: every node listed, in order. */
static void
roster_view(const sim *s, host_roster *ro)
{
	static const uint32_t roles[] = {HOST_ABSENT, HOST_LEARNER, HOST_VOTER, HOST_REMOVING};

	ro->n = 0;
	for (int nid = 1; nid <= s->cfg.nodes; nid++)
		if (roster_listed(s, nid) && s->ident[nid] != RAFT_NONE)
		{
			ro->ids[ro->n] = s->ident[nid];
			ro->roles[ro->n++] = roles[s->roster[nid]];
		}
}

/* The nodes that node `nid' has not lost (itself included). */
void
roster_heard(const sim *s, int nid, host_heard *h)
{
	h->n = 0;
	for (int peer = 1; peer <= s->cfg.nodes; peer++)
		if (s->ident[peer] != RAFT_NONE && !s->nodes[nid].lost[peer])
			h->ids[h->n++] = s->ident[peer];
}

/* The seeded flaws that live in the host's rules. */
uint32_t
roster_flaws(const sim *s)
{
	return ((s->cfg.bugs & SIM_BUG_LONE_VOTER) ? HOST_FLAW_LONE_VOTER : 0) |
		((s->cfg.bugs & SIM_BUG_PROMOTE_UNHEARD) ? HOST_FLAW_PROMOTE_UNHEARD : 0) |
		((s->cfg.bugs & SIM_BUG_LATE_MEMBER) ? HOST_FLAW_LATE_MEMBER : 0) |
		((s->cfg.bugs & SIM_BUG_SILENT_QUORUM) ? HOST_FLAW_SILENT_QUORUM : 0);
}

/* Entry `index' of a group as its node holds it, running or down. */
static const raft_entry *
held_entry(const group *g, uint64_t index)
{
	const raft_entry *e;

	if (g->r != NULL)
		return raft_entry_at(g->r, index, &e) == 0 ? e : NULL;
	if (g->n_log == 0 || index < g->log[0].index || index > g->log[g->n_log - 1].index)
		return NULL;
	return &g->log[index - g->log[0].index];
}

/* Apply a configuration entry to `conf'; true if it changed it. */
static bool
conf_step(raft_conf *conf, const raft_entry *e)
{
	uint32_t	type;
	raft_id		id;

	return e != NULL && e->type == RAFT_ENTRY_CONF &&
		raft_conf_change_decode(e->data, e->len, &type, &id) &&
		raft_conf_apply(conf, type, id) == RAFT_OK;
}

/*
 * The configuration in force at `index' of a group's log as its node holds
 * it: its snapshot's configuration and every configuration entry up to
 * `index', as the runtime's kmd_storage_conf_at reads it.  At the commit
 * index, it is one that no leader can take back.
 */
void
roster_conf_at(const group *g, uint64_t index, raft_conf *conf)
{
	uint64_t	first = (g->r ? raft_snapshot(g->r)->index : g->snap.index) + 1;

	*conf = g->r ? raft_snapshot(g->r)->conf : g->snap.conf;
	for (uint64_t i = first; i <= index; i++)
		(void) conf_step(conf, held_entry(g, i));
}

static uint64_t
held_commit(const group *g)
{
	return g->r ? raft_commit_index(g->r) : g->hs.commit;
}

/* The members of a group's committed configuration as its node holds it. */
static void
held_members(const group *g, host_members *m)
{
	raft_conf	conf;

	roster_conf_at(g, held_commit(g), &conf);
	m->committed = true;
	m->n = conf.n;
	for (uint32_t i = 0; i < conf.n; i++)
		m->ids[i] = conf.members[i].id;
}

/* ------------------------------------------------------------------------
 * The operator: kmd_join, kmd_promote_node, kmd_remove_node
 * ------------------------------------------------------------------------
 */

/*
 * A server joins at a node: it takes a place in the roster as a learner,
 * and starts from nothing (kmd_join refuses a server that has an
 * identity), with the initial state and groups of empty configuration,
 * which their leaders fill in; it rebuilds the rest by applying the logs.
 * A server running there is stopped, and the new one comes up later.
 *
 * It gets a Raft id never used before.  The runtime gives it the roster's
 * highest id + 1, which is the id of the removed node that had the highest;
 * with --bug reuse-id it gets the id of the server it replaces here.  A new
 * server answering for an old one in a configuration that still names it,
 * or in one that a split replayed from the log brings back, votes with an
 * empty disk: a leader can win without entries committed before (leader
 * completeness), or two leaders the same term.
 */
static void
join(sim *s, int nid)
{
	node	   *n = &s->nodes[nid];
	raft_conf	empty;

	if (!(s->cfg.bugs & SIM_BUG_REUSE_ID))
		s->ident[nid] = s->next_ident++;

	if (n->up)
		node_crash(s, nid);
	for (int gi = 0; gi < s->cfg.groups; gi++)
	{
		group	   *g = &n->g[gi];

		for (size_t i = 0; i < g->n_log; i++)
			free((void *) g->log[i].data);
		g->n_log = 0;
		memset(&g->hs, 0, sizeof(g->hs));
		memset(&g->snap, 0, sizeof(g->snap));
		memset(&g->snap_kv, 0, sizeof(g->snap_kv));
		memset(&g->kv, 0, sizeof(g->kv));
		g->applied = 0;
		g->handed = 0;
		g->exists = false;
		g->image_wanted = false;
	}
	memset(&empty, 0, sizeof(empty));
	part_host_initial(s, nid, &empty);
	s->roster[nid] = ROSTER_LEARNER;
}

/*
 * May the node leave the roster, which makes the transport refuse it?
 * Only once no group can count it as a member any more: a group that did
 * would have a voter that never answers.  The runtime's kmd_remove_node
 * (wait_out_of_groups) looked at the latest configurations that the node
 * `op' running it holds, which may be empty (op joined and has not learned
 * them yet), stale (op has not seen the node added yet) or not committed
 * (and taken back), and so let a voter go too early (--bug leave-early).
 * Now it asks the leader of each group; here it is the committed
 * configuration of the member that has committed the most, with the same
 * rule the runtime's leaders answer with (host_lets_go); groups split
 * off later are covered by their parent, which lets a member go only
 * after them (splits_let_go).
 */
static bool
out_of_groups(sim *s, int op, int nid)
{
	raft_id		id = s->ident[nid];

	for (int gi = 0; gi < s->cfg.groups; gi++)
	{
		const group *best = NULL;
		host_members held;

		if (s->cfg.bugs & SIM_BUG_LEAVE_EARLY)
		{
			if (s->nodes[op].g[gi].exists &&
				raft_conf_role(raft_get_conf(s->nodes[op].g[gi].r), id) != 0)
				return false;
			continue;
		}
		for (int m = 1; m <= s->cfg.nodes; m++)
		{
			const group *g = &s->nodes[m].g[gi];

			if (roster_listed(s, m) && g->exists &&
				(best == NULL || held_commit(g) > held_commit(best)))
				best = g;
		}
		if (best == NULL)
			continue;
		held_members(best, &held);
		if (!host_lets_go(&held, id))
			return false;
	}
	return true;
}

/*
 * Change the roster a step, at a random node: a server joins there, a
 * learner is promoted (or removed), a voter is removed unless that leaves
 * fewer than two (as the membership nemesis of plain mode keeps them), and
 * a removed node leaves the roster once no group counts it as a member.
 */
void
roster_change(sim *s)
{
	int			nid = 1 + (int) prng_below(&s->rng, s->cfg.nodes);
	int			op = 1 + (int) prng_below(&s->rng, s->cfg.nodes);
	int			voters = 0;
	uint32_t	before = s->roster[nid];

	for (int i = 1; i <= s->cfg.nodes; i++)
		voters += s->roster[i] == ROSTER_VOTER;
	switch (s->roster[nid])
	{
		case ROSTER_ABSENT:
			join(s, nid);
			break;
		case ROSTER_LEARNER:
			s->roster[nid] = prng_chance(&s->rng, 750) ? ROSTER_VOTER : ROSTER_REMOVING;
			break;
		case ROSTER_VOTER:
			if (voters > 2)
				s->roster[nid] = ROSTER_REMOVING;
			break;
		case ROSTER_REMOVING:
			/* kmd_remove_node runs on a member, and waits on its view */
			if (s->nodes[op].up && roster_listed(s, op) && out_of_groups(s, op, nid))
				s->roster[nid] = ROSTER_ABSENT;
			break;
	}
	if (s->roster[nid] == before)
		return;
	s->roster_version++;
	s->roster_changes++;
	trace(s, EV_NEMESIS, nid, 0, 40 + before, s->roster[nid]);
}

/* ------------------------------------------------------------------------
 * The reconciler of a partition leader
 * ------------------------------------------------------------------------
 */

/*
 * Have the groups split off from group `gi' let `x' go, as node `nid' sees
 * them?  A split starts its new group with the configuration in force at
 * its index; a member removed from this group before it applied the split
 * never learns that the split committed, never hosts the new group, and
 * is a voter there that never answers: if that leaves the new group short
 * of a quorum, it never elects a leader to remove it.  So this node must
 * have applied every split in its log, and each new group must have
 * committed the removal of `x' already (its own leader waits the same way
 * for the groups split off from it): host_split_holds.  The runtime's
 * reconciler did not wait (--bug remove-early).
 */
static bool
split_lets_go(sim *s, int nid, int pid, raft_id x)
{
	const group *q = &s->nodes[nid].g[pid];
	host_members m;

	if (!q->exists)
		return true;			/* a split refused at apply, or merged away */
	if (q->image_wanted)
		return false;			/* known from an image: its configuration is not */
	held_members(q, &m);
	return !host_split_holds(0, 0, &m, x);
}

static bool
splits_let_go(sim *s, int nid, int gi, raft_id x)
{
	const group *g = &s->nodes[nid].g[gi];

	/* the splits compacted out of the log were applied; the image says which */
	for (int pid = 0; pid < s->cfg.groups; pid++)
		if ((g->kv.own_children & (1ULL << pid)) && !split_lets_go(s, nid, pid, x))
			return false;
	for (uint64_t i = raft_first_index(g->r); i <= raft_last_index(g->r); i++)
	{
		const raft_entry *e;
		kv_cmd		c;
		const group *q;
		host_members m;

		if (raft_entry_at(g->r, i, &e) != 0 || e->type != RAFT_ENTRY_NORMAL ||
			e->len != sizeof(kv_cmd))
			continue;
		memcpy(&c, e->data, sizeof(c));
		if (c.kind != CMD_SPLIT || c.other >= (uint32_t) s->cfg.groups)
			continue;
		q = &s->nodes[nid].g[c.other];
		/* known from an image: its configuration is not, it holds x */
		if (g->applied >= i && q->exists && q->image_wanted)
			return false;
		/* no group when the split was refused at apply */
		if (q->exists)
			held_members(q, &m);
		if (host_split_holds(i, g->applied, q->exists ? &m : NULL, x))
			return false;
	}
	return true;
}

/*
 * Is `x' a voter of the partition that takes group `gi' in when it merges,
 * as node `nid' has its map: the one whose range ends where this one's
 * begins, or already covers it?
 */
static bool
votes_in_merge_target(sim *s, int nid, int gi, raft_id x)
{
	uint32_t	lo = s->nodes[nid].g[gi].kv.lo;

	for (int pid = 0; pid < s->cfg.groups; pid++)
	{
		const group *q = &s->nodes[nid].g[pid];

		if (pid == gi || !q->exists || q->r == NULL ||
			(q->kv.pstate != PART_ACTIVE && q->kv.pstate != PART_FROZEN))
			continue;
		if (q->kv.lo < lo && q->kv.hi >= lo)
			return raft_conf_role(raft_get_conf(q->r), x) == RAFT_VOTER;
	}
	return false;
}

/*
 * May the leader of group `gi', node `nid', remove `x' once the group is
 * frozen for a merge?  Every member of the left partition must apply the
 * merge, which waits until the member has applied this group up to its
 * freeze (partition.c): a member removed here before it holds that much
 * never gets it and stops applying the left partition at the merge.  A
 * voter of the left partition that stops there is a voter that never
 * answers in every group split off the left partition after the merge,
 * and the left partition keeps it until those groups let it go
 * (splits_let_go), which they may not do without it.  So a voter of the
 * left partition stays here until it holds the log up to the last freeze
 * entry.  A learner stuck at the merge holds nothing up, and a learner
 * may never host this group (it may have been added just before it was to
 * leave): it is let go; so is a voter that has not answered this leader
 * (a match of 0): one that never hosts the group would otherwise hold it
 * for good, and with it the left partition, which waits for the groups
 * split off it (this one, when it was split off and merged back).  The
 * runtime's reconciler did not wait (--bug strand-merge).
 */
static bool
freeze_lets_go(sim *s, int nid, int gi, raft_id x)
{
	const group *g = &s->nodes[nid].g[gi];

	for (uint64_t i = raft_last_index(g->r); i >= raft_first_index(g->r); i--)
	{
		const raft_entry *e;
		kv_cmd		c;

		if (raft_entry_at(g->r, i, &e) != 0 || e->type != RAFT_ENTRY_NORMAL ||
			e->len != sizeof(kv_cmd))
			continue;
		memcpy(&c, e->data, sizeof(c));
		if (c.kind != CMD_FREEZE)
			continue;
		return !host_freeze_holds(g->r, x, i, votes_in_merge_target(s, nid, gi, x));
	}
	/* a freeze compacted out of the log was applied: the state says where */
	if (g->kv.pstate == PART_FROZEN)
		return !host_freeze_holds(g->r, x, g->kv.freeze_index,
								  votes_in_merge_target(s, nid, gi, x));
	return true;
}

/*
 * May the merge of partition `right' go into the log of partition `left',
 * which node `nid' leads?  Only when every member of the left partition's
 * configuration will get the right one's log up to its freeze: is one the
 * roster keeps (a leaving one is removed from the right partition at any
 * moment) and a member of the right partition's configuration, as this
 * node has it committed once it has applied the freeze.  Otherwise a
 * member that the right partition let go stops applying the left one at
 * the merge, never applies a split proposed after it, and is a voter of
 * the new group that never answers; the left partition holds its removal
 * until that group lets it go (splits_let_go), which it cannot do without
 * a quorum (host_merge_ready, which kmd_merge and the runtime's finishing
 * of a merge ask too; they did not wait: --bug strand-merge).  The left
 * configuration is its leader's latest, once committed.
 */
bool
roster_merge_ready(sim *s, int nid, int left, int right)
{
	const group *q = &s->nodes[nid].g[right];
	host_members lm;
	host_members rm;
	host_roster ro;

	if (s->cfg.bugs & SIM_BUG_STRAND_MERGE)
		return true;
	if (!q->exists || q->kv.pstate != PART_FROZEN)
		return false;
	host_members_of(s->nodes[nid].g[left].r, &lm);
	held_members(q, &rm);
	roster_view(s, &ro);
	return host_merge_ready(&lm, &rm, &ro);
}

/*
 * Must the leader of group `gi', node `nid', keep member `x' a while
 * longer?  The host's rules on what this node holds of the group's log,
 * unless a seeded flaw of the runtime skips them.
 */
typedef struct hold_ctx
{
	sim		   *s;
	int			nid;
	int			gi;
} hold_ctx;

static bool
holds(void *arg, raft_id x)
{
	hold_ctx   *h = arg;

	if (!(h->s->cfg.bugs & SIM_BUG_REMOVE_EARLY) && !splits_let_go(h->s, h->nid, h->gi, x))
		return true;
	if (!(h->s->cfg.bugs & SIM_BUG_STRAND_MERGE) && !freeze_lets_go(h->s, h->nid, h->gi, x))
		return true;
	return false;
}

/*
 * One step toward the roster in group `gi', which node `nid' leads: the
 * runtime's rule (host_reconcile_step), with the holds above, and its
 * step done here.  True when the configuration is in line with the
 * roster.  The old flaws of the runtime: a leader that must leave but has
 * no other voter the roster keeps waits for one, which never comes (--bug
 * lone-voter); a learner is promoted on its lag alone, which makes a
 * voter that never answers of one that does not host the group (--bug
 * promote-unheard).
 */
static bool
reconcile_step(sim *s, int nid, int gi)
{
	raft	   *r = s->nodes[nid].g[gi].r;
	host_roster ro;
	host_heard	heard;
	hold_ctx	h = {s, nid, gi};
	host_step	st;
	bool		in_line;
	int			what = 0;
	uint32_t	type = 0;

	roster_view(s, &ro);
	roster_heard(s, nid, &heard);
	in_line = host_reconcile_step(r, &ro, &heard, PROMOTE_MAX_LAG, holds, &h, roster_flaws(s),
								  RAFT_NONE, &st);
	switch (st.action)
	{
		case HOST_STEP_NONE:
			return in_line;
		case HOST_STEP_TRANSFER:
			if (raft_transfer_leader(r, st.id) == RAFT_OK)
				trace(s, EV_NEMESIS, nid, gi, 53, st.id);
			return false;
		case HOST_STEP_REMOVE:
			what = 52;
			type = RAFT_CC_REMOVE;
			break;
		case HOST_STEP_ADD_LEARNER:
			what = 50;
			type = RAFT_CC_ADD_LEARNER;
			break;
		case HOST_STEP_PROMOTE:
			what = 51;
			type = RAFT_CC_ADD_VOTER;
			break;
	}
	if (raft_propose_conf(r, type, st.id, NULL, NULL) == RAFT_OK)
		trace(s, EV_NEMESIS, nid, gi, what, st.id);
	return false;
}

/*
 * Called on every tick of a group: its leader reconciles when the host's
 * rule says (host_reconcile_due): on taking the lead, on a roster change,
 * and every election timeout while steps remain (the runtime: each
 * second, its election timeout).
 *
 * Taking the lead is told by the term, not by the role seen at a tick: a
 * leader can lose the lead and win it back between two ticks (a transfer
 * to it is that fast), and with it the uncommitted change that made its
 * configuration look in line.  The runtime looked at the role, and kept a
 * member the roster dropped until the roster changed again (--bug
 * stale-reconcile).
 */
void
roster_reconcile(sim *s, int nid, int gi)
{
	group	   *g = &s->nodes[nid].g[gi];
	raft_term	term = (s->cfg.bugs & SIM_BUG_STALE_RECONCILE) ? 0 : raft_get_term(g->r);

	if (!host_reconcile_due(&g->rec, g->r, term, s->roster_version, s->now,
							ELECTION_TICKS * TICK_MS))
		return;
	host_reconciled(&g->rec, reconcile_step(s, nid, gi), term, s->roster_version, s->now);
}

/*
 * Is the configuration of every group, as its leader has it and has
 * committed it, the roster's: its voters voters, its learners learners,
 * nobody else?  If not, `why' says where it differs.
 */
bool
roster_converged(sim *s, char *why, size_t len)
{
	static const char *const names[] = {"absent", "a learner", "a voter", "leaving"};

	for (int gi = 0; gi < s->cfg.groups; gi++)
	{
		raft_id		l = leader_of(s, gi);
		raft	   *r;
		const raft_conf *conf;

		if (l == 0 || (s->gone & (1ULL << gi)))
			continue;			/* not hosted anywhere: liveness covers the rest */
		r = s->nodes[l].g[gi].r;
		conf = raft_get_conf(r);
		for (int nid = 1; nid <= s->cfg.nodes; nid++)
		{
			uint32_t	role = raft_conf_role(conf, s->ident[nid]);
			uint32_t	want = s->roster[nid] == ROSTER_VOTER ? RAFT_VOTER : RAFT_LEARNER;

			if (roster_member(s, nid) && role != want)
			{
				snprintf(why, len, "group %d: node %d (id %u) is %s in its leader %u's configuration, %s in the roster",
						 gi, nid, (unsigned) s->ident[nid],
						 role == RAFT_VOTER ? "a voter" : role == RAFT_LEARNER ? "a learner" : "absent",
						 (unsigned) l, names[s->roster[nid]]);
				return false;
			}
		}
		for (uint32_t i = 0; i < conf->n; i++)
		{
			int			nid = roster_node(s, conf->members[i].id);

			if (!roster_member(s, nid))
			{
				snprintf(why, len, "group %d: id %u is in its leader %u's configuration, %s in the roster",
						 gi, (unsigned) conf->members[i].id, (unsigned) l, names[s->roster[nid]]);
				return false;
			}
		}
		if (raft_commit_index(r) < raft_last_index(r))
		{
			snprintf(why, len, "group %d: its leader %u has committed %llu of %llu", gi, (unsigned) l,
					 (unsigned long long) raft_commit_index(r),
					 (unsigned long long) raft_last_index(r));
			return false;
		}
	}
	return true;
}
