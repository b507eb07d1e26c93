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
 * (wait_out_of_groups) looks at the latest configurations that the node
 * `op' running it holds, which may be empty (op joined and has not learned
 * them yet), stale (op has not seen the node added yet) or not committed
 * (and taken back), and so lets a voter go too early (--bug leave-early).
 * Here it is the committed configuration of the member that has committed
 * the most, what asking the members of each group would tell; groups split
 * off later are covered by their parent, which lets a member go only after
 * them (splits_let_go).
 */
static bool
out_of_groups(sim *s, int op, int nid)
{
	raft_id		id = s->ident[nid];

	for (int gi = 0; gi < s->cfg.groups; gi++)
	{
		const group *best = NULL;
		raft_conf	conf;

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
		roster_conf_at(best, held_commit(best), &conf);
		if (conf.n == 0 || raft_conf_role(&conf, id) != 0)
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
 * for the groups split off from it).  The runtime's reconciler does not
 * wait (--bug remove-early).
 */
static bool
split_lets_go(sim *s, int nid, int pid, raft_id x)
{
	const group *q = &s->nodes[nid].g[pid];
	raft_conf	conf;

	if (!q->exists)
		return true;			/* a split refused at apply, or merged away */
	if (q->image_wanted)
		return false;			/* known from an image: its configuration is not */
	roster_conf_at(q, held_commit(q), &conf);
	return raft_conf_role(&conf, x) == 0;
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

		if (raft_entry_at(g->r, i, &e) != 0 || e->type != RAFT_ENTRY_NORMAL ||
			e->len != sizeof(kv_cmd))
			continue;
		memcpy(&c, e->data, sizeof(c));
		if (c.kind != CMD_SPLIT || c.other >= (uint32_t) s->cfg.groups)
			continue;
		if (g->applied < i || !split_lets_go(s, nid, (int) c.other, x))
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
 * runtime's reconciler does not wait (--bug strand-merge).
 */
static bool
freeze_lets_go(sim *s, int nid, int gi, raft_id x)
{
	const group *g = &s->nodes[nid].g[gi];
	raft_progress pr;

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
		return raft_get_progress(g->r, x, &pr) != RAFT_OK || pr.match == 0 || pr.match >= i ||
			!votes_in_merge_target(s, nid, gi, x);
	}
	/* a freeze compacted out of the log was applied: the state says where */
	if (g->kv.pstate == PART_FROZEN)
		return raft_get_progress(g->r, x, &pr) != RAFT_OK || pr.match == 0 ||
			pr.match >= g->kv.freeze_index || !votes_in_merge_target(s, nid, gi, x);
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
 * a quorum.  The runtime's kmd_merge and its finishing of a merge do not
 * wait (--bug strand-merge).
 */
bool
roster_merge_ready(sim *s, int nid, int left, int right)
{
	const raft_conf *lconf = raft_get_conf(s->nodes[nid].g[left].r);
	const group *q = &s->nodes[nid].g[right];
	raft_conf	rconf;

	if (s->cfg.bugs & SIM_BUG_STRAND_MERGE)
		return true;
	if (!q->exists || q->kv.pstate != PART_FROZEN)
		return false;
	roster_conf_at(q, held_commit(q), &rconf);
	for (uint32_t i = 0; i < lconf->n; i++)
	{
		raft_id		id = lconf->members[i].id;

		if (!roster_member(s, roster_node(s, id)) || raft_conf_role(&rconf, id) == 0)
			return false;
	}
	return true;
}

/*
 * One step toward the roster in group `gi', which node `nid' leads, in the
 * order of the runtime's kmd_reconcile_group: first a member the roster no
 * longer names leaves (the leader, if it is that member, hands over to
 * another voter first), then a node the roster names is added as a
 * learner, then a learner the roster names a voter is promoted once it has
 * caught up.  True when the configuration is in line with the roster.  A
 * leader that is to leave hands over only to a voter the roster keeps, as
 * the runtime's does: two leaving voters would hand the lead back and
 * forth for ever.
 *
 * Unlike the runtime, a member leaves only once the groups split off from
 * this one have let it go (splits_let_go), and meanwhile the other steps
 * go on: one of those groups may need a learner added here to catch up.
 * And a leader that must leave but has no other voter the roster keeps
 * goes on to promote a learner, where the runtime's waits for a voter to
 * hand over to, which never comes (--bug lone-voter).  A learner has
 * caught up when it is within PROMOTE_MAX_LAG of the leader's log and has
 * answered this leader (its match is not 0): on a log shorter than the
 * lag, one that never answered (its node does not host the group: it has
 * not applied the split that made it, and may never) would become a voter
 * that never answers, and with one other voter the group could elect no
 * leader.  The runtime promotes on the lag alone (--bug promote-unheard).
 */
static bool
reconcile_step(sim *s, int nid, int gi)
{
	raft	   *r = s->nodes[nid].g[gi].r;
	const raft_conf *conf = raft_get_conf(r);
	bool		in_line = true;

	for (uint32_t i = 0; i < conf->n; i++)
	{
		raft_id		id = conf->members[i].id;

		if (roster_member(s, roster_node(s, id)))
			continue;
		if (id == s->ident[nid])
		{
			for (uint32_t k = 0; k < conf->n; k++)
				if (conf->members[k].id != id && conf->members[k].role == RAFT_VOTER &&
					roster_member(s, roster_node(s, conf->members[k].id)))
				{
					if (raft_transfer_leader(r, conf->members[k].id) == RAFT_OK)
						trace(s, EV_NEMESIS, nid, gi, 53, conf->members[k].id);
					return false;
				}
			/* no voter to stay: a learner must be promoted to hand over to */
			in_line = false;
			if (s->cfg.bugs & SIM_BUG_LONE_VOTER)
				return false;
			continue;
		}
		/* a removal the new groups hold up must not hold up the rest */
		in_line = false;
		if (!(s->cfg.bugs & SIM_BUG_REMOVE_EARLY) && !splits_let_go(s, nid, gi, id))
			continue;
		if (!(s->cfg.bugs & SIM_BUG_STRAND_MERGE) && !freeze_lets_go(s, nid, gi, id))
			continue;
		if (raft_propose_conf(r, RAFT_CC_REMOVE, id, NULL, NULL) == RAFT_OK)
			trace(s, EV_NEMESIS, nid, gi, 52, id);
		return false;
	}

	for (int m = 1; m <= s->cfg.nodes; m++)
	{
		raft_id		id = s->ident[m];
		uint32_t	role = raft_conf_role(conf, id);
		raft_progress pr;

		if (!roster_member(s, m))
			continue;
		if (role == 0)
		{
			if (raft_propose_conf(r, RAFT_CC_ADD_LEARNER, id, NULL, NULL) == RAFT_OK)
				trace(s, EV_NEMESIS, nid, gi, 50, id);
			return false;
		}
		if (role == RAFT_LEARNER && s->roster[m] == ROSTER_VOTER)
		{
			in_line = false;
			if (raft_get_progress(r, id, &pr) == RAFT_OK &&
				(pr.match > 0 || (s->cfg.bugs & SIM_BUG_PROMOTE_UNHEARD)) &&
				pr.match + PROMOTE_MAX_LAG >= raft_last_index(r))
			{
				if (raft_propose_conf(r, RAFT_CC_ADD_VOTER, id, NULL, NULL) == RAFT_OK)
					trace(s, EV_NEMESIS, nid, gi, 51, id);
				return false;
			}
		}
	}
	return in_line;
}

/*
 * Called on every tick of a group: its leader reconciles on taking the
 * lead, on a roster change, and every election timeout while steps remain
 * (the runtime: each second, its election timeout).
 *
 * Taking the lead is told by the term, not by the role seen at a tick: a
 * leader can lose the lead and win it back between two ticks (a transfer
 * to it is that fast), and with it the uncommitted change that made its
 * configuration look in line.  The runtime looks at the role, and keeps a
 * member the roster dropped until the roster changes again (--bug
 * stale-reconcile).
 */
void
roster_reconcile(sim *s, int nid, int gi)
{
	group	   *g = &s->nodes[nid].g[gi];
	raft_term	term = (s->cfg.bugs & SIM_BUG_STALE_RECONCILE) ? 0 : raft_get_term(g->r);

	if (raft_get_role(g->r) != RAFT_LEADER)
	{
		g->reconciled_roster = 0;
		return;
	}
	if (g->reconciled_roster == s->roster_version && g->reconciled_term == term &&
		(g->in_line || s->now < g->last_reconcile + ELECTION_TICKS * TICK_MS))
		return;
	g->in_line = reconcile_step(s, nid, gi);
	g->reconciled_roster = s->roster_version;
	g->reconciled_term = term;
	g->last_reconcile = s->now;
}

/*
 * Does a member of this resting leader's group lack part of its log while
 * its host is heard from?  Then the member's group started there after the
 * leader went to rest without it (a node that joined, or that applied the
 * split creating the group late), and nothing in the group would wake the
 * leader: the member has no log to campaign with or to ask about.  Or a
 * one-way cut lost the heartbeat that would have caught it up while its
 * node's pings kept arriving.  The host then wakes the leader, as the
 * runtime's worker does (member_behind); with --bug late-member it wakes a
 * leader only when a node it had lost is heard from again.
 */
bool
roster_member_behind(sim *s, int nid, const group *g)
{
	const raft_conf *conf = raft_get_conf(g->r);

	if (s->cfg.bugs & SIM_BUG_LATE_MEMBER)
		return false;

	for (uint32_t i = 0; i < conf->n; i++)
	{
		raft_id		id = conf->members[i].id;
		raft_progress pr;

		if (id != s->ident[nid] && roster_node(s, id) != 0 &&
			!s->nodes[nid].lost[roster_node(s, id)] &&
			raft_get_progress(g->r, id, &pr) == RAFT_OK && pr.match < raft_last_index(g->r))
			return true;
	}
	return false;
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
