/*-------------------------------------------------------------------------
 *
 * nemesis.c
 *	  The simulator's nemesis: network partitions, drops, delays, crashes,
 *	  slow disks, stalls, membership changes, leader transfers, chases that
 *	  cut off each new leader and nodes kept away, drawn from the seeded
 *	  PRNG; and the parsing of --faults and --bug.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/nemesis.c
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"

#define CHASE_MS 50				/* a chased leader is cut off within this */
#define CHASE_LONGER 500		/* a chase or a node away lasts this much
								 * longer than other cuts */

/* ------------------------------------------------------------------------
 * The nemesis
 * ------------------------------------------------------------------------
 */
raft_id
leader_of(sim *s, int gi)
{
	raft_id		best = 0;
	raft_term	best_term = 0;

	for (int nid = 1; nid <= s->cfg.nodes; nid++)
	{
		node	   *n = &s->nodes[nid];

		if (n->up && n->g[gi].exists && !n->g[gi].parked &&
			raft_get_role(n->g[gi].r) == RAFT_LEADER &&
			raft_get_term(n->g[gi].r) >= best_term)
		{
			best = nid;
			best_term = raft_get_term(n->g[gi].r);
		}
	}
	return best;
}

/* Cut node `nid' off from every other node, in both directions. */
static void
isolate(sim *s, int nid)
{
	memset(s->blocked, 0, sizeof(s->blocked));
	for (int other = 1; other <= s->cfg.nodes; other++)
		if (other != nid)
			s->blocked[nid][other] = s->blocked[other][nid] = true;
}

void
heal_network(sim *s)
{
	memset(s->blocked, 0, sizeof(s->blocked));
	s->drop_pm = s->cfg.faults & SIM_F_DROP ? (s->chaos ? 30 : 10) : 0;
	s->dup_pm = s->cfg.faults & SIM_F_DUP ? 10 : 0;
	s->max_delay = s->cfg.faults & SIM_F_REORDER ? 8 : 3;
}

static void
membership_change(sim *s)
{
	int			gi = (int) prng_below(&s->rng, s->cfg.groups);
	raft_id		l = leader_of(s, gi);
	group	   *g;
	const raft_conf *conf;
	int			voters;
	raft_id		absent = 0;
	raft_id		learner = 0;
	raft_id		removable = 0;

	if (l == 0 || s->nodes[l].g[gi].pending)
		return;
	g = &s->nodes[l].g[gi];
	conf = raft_get_conf(g->r);
	voters = (int) raft_conf_voters(conf);
	for (int nid = 1; nid <= s->cfg.nodes; nid++)
	{
		uint32_t	role = raft_conf_role(conf, (raft_id) nid);

		if (role == 0)
			absent = nid;
		else if (role == RAFT_LEARNER)
			learner = nid;
		else if ((raft_id) nid != l && prng_chance(&s->rng, 500))
			removable = nid;
	}
	/* partitions keep the members of the roster: only leaders move */
	switch (s->cfg.partitions ? 3 : prng_below(&s->rng, 4))
	{
		case 0:
			if (absent)
			{
				(void) raft_propose_conf(g->r, RAFT_CC_ADD_LEARNER, absent, NULL, NULL);
				trace(s, EV_NEMESIS, l, gi, 10, absent);
			}
			break;
		case 1:
			if (learner)
			{
				(void) raft_propose_conf(g->r, RAFT_CC_ADD_VOTER, learner, NULL, NULL);
				trace(s, EV_NEMESIS, l, gi, 11, learner);
			}
			break;
		case 2:
			if (removable && voters > 2)
			{
				(void) raft_propose_conf(g->r, RAFT_CC_REMOVE, removable, NULL, NULL);
				trace(s, EV_NEMESIS, l, gi, 12, removable);
			}
			break;
		default:
			{
				raft_id		to = s->ident[1 + prng_below(&s->rng, s->cfg.nodes)];

				if (to != s->ident[l] && raft_conf_role(conf, to) == RAFT_VOTER)
				{
					(void) raft_transfer_leader(g->r, to);
					trace(s, EV_NEMESIS, l, gi, 13, to);
				}
			}
			break;
	}
	group_process(s, l, gi);
}

/*
 * Cut the network in one of six ways for `dur' ms, a chase or a node away
 * longer: 0 isolates the leader of group 0, 1 node `nid'; 2 and 3 cut links
 * at random; 4 starts a chase (see nemesis_new_leader) at the leader of a
 * group; 5 keeps node `nid' away, cut off with no other cut to end it, so
 * that it comes back far behind.
 */
static void
partition(sim *s, int nid, uint64_t dur)
{
	int			mode = (int) prng_below(&s->rng, 6);
	int			gi = 0;

	memset(s->blocked, 0, sizeof(s->blocked));
	if (s->chaos && (mode == 2 || mode == 3))
		mode = 0;
	if (mode == 4)
	{
		/* a group that exists (partition mode allocates ids) */
		gi = (int) prng_below(&s->rng, s->cfg.partitions ?
							  (uint64_t) s->next_partition : (uint64_t) s->cfg.groups);
	}
	if (mode >= 4)
	{
		s->chase_group = mode == 4 ? gi : -1;
		dur += CHASE_LONGER;
		s->chase_until = s->now + dur;
	}
	if (mode == 0 || mode == 4)
	{
		raft_id		l = leader_of(s, gi);

		nid = l ? (int) l : nid;
	}
	if (mode <= 1 || mode >= 4)
		isolate(s, nid);
	for (int a = 1; a <= s->cfg.nodes && mode > 1 && mode < 4; a++)
		for (int b = 1; b <= s->cfg.nodes; b++)
		{
			bool		side_a = prng_chance(&s->rng, 500);

			if (a == b)
				continue;
			if (mode == 2 && side_a != (b % 2 == 0))
				s->blocked[a][b] = true;
			else if (mode == 3 && prng_chance(&s->rng, 300))
				s->blocked[a][b] = true;	/* asymmetric */
		}
	trace(s, EV_NEMESIS, nid, gi, 1, mode);
	schedule(s, s->now + dur, EV_HEAL, 0, 0, 0, NULL);
}

void
nemesis(sim *s)
{
	uint32_t	f = s->cfg.faults;
	int			nid = 1 + (int) prng_below(&s->rng, s->cfg.nodes);
	uint64_t	dur = 100 + prng_below(&s->rng, s->chaos ? 600 : 2000);
	/* the chaos profile mostly isolates and crashes leaders */
	int			pick = s->chaos ? (int) prng_below(&s->rng, 5) : (int) prng_below(&s->rng, 9);

	if (!s->faults_on)
		return;
	/* the operator splits and merges during a chase too */
	if (s->cfg.partitions && prng_chance(&s->rng, 250))
	{
		part_nemesis(s);
		return;
	}
	/* other faults wait: a chase has the nodes and the network to itself */
	if (s->now < s->chase_until && s->chase_group >= 0)
		return;
	switch (pick)
	{
		case 0:
		case 1:
			/* a node away stays away */
			if ((f & SIM_F_PARTITION) && s->now >= s->chase_until)
				partition(s, nid, dur);
			break;
		case 2:
		case 3:
			if ((f & SIM_F_CRASH) && s->nodes[nid].up)
			{
				/* the chaos profile prefers to crash leaders */
				if (s->chaos && prng_chance(&s->rng, 600))
				{
					raft_id		l = leader_of(s, (int) prng_below(&s->rng, s->cfg.groups));

					if (l)
						nid = (int) l;
				}
				/* and any profile the two ends of an image transfer */
				else if (s->image_party[0] != 0 && prng_chance(&s->rng, 500))
					nid = s->image_party[prng_below(&s->rng, 2)];
				node_crash(s, nid);
			}
			break;
		case 4:
			if (f & SIM_F_FSYNC)
			{
				s->nodes[nid].slow_fsync_until = s->now + dur;
				trace(s, EV_NEMESIS, nid, 0, 2, dur);
			}
			break;
		case 5:
			if (f & SIM_F_STALL)
			{
				s->nodes[nid].stalled_until = s->now + dur / 2;
				trace(s, EV_NEMESIS, nid, 0, 3, dur / 2);
			}
			break;
		case 6:
			if (f & SIM_F_DELAY)
			{
				s->max_delay = 40;
				trace(s, EV_NEMESIS, 0, 0, 4, dur);
				schedule(s, s->now + dur, EV_HEAL, 0, 0, 0, NULL);
			}
			break;
		default:
			if (s->cfg.membership)
				membership_change(s);
			break;
	}
}

/*
 * A group has a new leader.  While a chase lasts, every new leader of the
 * chased group is cut off a few milliseconds after its election: often
 * before its first entry reaches anyone (a cut link loses what is on it),
 * sometimes while it brings a follower's log up to date.  Leaders then come
 * and go, each leaving entries of its term on few nodes, and the next one
 * finds followers whose logs end in other terms: the histories of the Raft
 * paper's Figure 8, where committing an older term's entry by counting its
 * replicas loses it.  The old leader, reconnected, rejoins as a follower
 * lagging behind, still taking requests.
 */
void
nemesis_new_leader(sim *s, int nid, int gi)
{
	uint64_t	after;

	if (!s->faults_on || gi != s->chase_group || s->now >= s->chase_until)
		return;
	/* skewed towards now: within a round trip, or later in the catch-up */
	after = prng_below(&s->rng, 1 + prng_below(&s->rng, CHASE_MS));
	schedule(s, s->now + after, EV_CHASE, nid, gi, raft_get_term(s->nodes[nid].g[gi].r),
			 (void *) (uintptr_t) s->nodes[nid].incarnation);
}

/* The chased leader elected in `term' is cut off, if it still leads. */
void
nemesis_chase(sim *s, int nid, int gi, raft_term term, uint32_t incarnation)
{
	node	   *n = &s->nodes[nid];

	if (!s->faults_on || s->now >= s->chase_until || !n->up ||
		n->incarnation != incarnation || !n->g[gi].exists ||
		raft_get_role(n->g[gi].r) != RAFT_LEADER || raft_get_term(n->g[gi].r) != term)
		return;
	/* a fifth of the cuts are crashes: crashes go on during a chase */
	if ((s->cfg.faults & SIM_F_CRASH) && prng_chance(&s->rng, 200))
	{
		node_crash(s, nid);
		return;
	}
	isolate(s, nid);
	trace(s, EV_NEMESIS, nid, gi, 5, term);
}


int
sim_parse_faults(const char *list, uint32_t *faults)
{
	static const struct
	{
		const char *name;
		uint32_t	bit;
	}			names[] = {
		{"drop", SIM_F_DROP}, {"dup", SIM_F_DUP}, {"reorder", SIM_F_REORDER},
		{"delay", SIM_F_DELAY}, {"partition", SIM_F_PARTITION}, {"crash", SIM_F_CRASH},
		{"fsync", SIM_F_FSYNC}, {"stall", SIM_F_STALL}, {"all", SIM_F_ALL}, {"none", 0}
	};
	char		buf[256];
	char	   *tok;
	char	   *save = NULL;

	*faults = 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		bool		found = false;

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(tok, names[i].name) == 0)
			{
				*faults |= names[i].bit;
				found = true;
			}
		if (!found)
			return -1;
	}
	return 0;
}

/* One bug's flag, 0 when unknown. */
static uint32_t
parse_one_bug(const char *name)
{
	if (strcmp(name, "commit-old-term") == 0)
		return RAFT_BUG_COMMIT_OLD_TERM;
	if (strcmp(name, "forget-vote") == 0)
		return RAFT_BUG_FORGET_VOTE;
	if (strcmp(name, "no-prevote-term") == 0)
		return RAFT_BUG_NO_PREVOTE_TERM;
	if (strcmp(name, "double-vote") == 0)
		return RAFT_BUG_DOUBLE_VOTE;
	if (strcmp(name, "early-apply") == 0)
		return RAFT_BUG_EARLY_APPLY;
	if (strcmp(name, "no-fencing") == 0)
		return SIM_BUG_NO_FENCING;
	if (strcmp(name, "early-merge") == 0)
		return SIM_BUG_EARLY_MERGE;
	if (strcmp(name, "stale-read") == 0)
		return SIM_BUG_STALE_READ;
	if (strcmp(name, "split-overlap") == 0)
		return SIM_BUG_SPLIT_OVERLAP;
	if (strcmp(name, "reuse-id") == 0)
		return SIM_BUG_REUSE_ID;
	if (strcmp(name, "remove-early") == 0)
		return SIM_BUG_REMOVE_EARLY;
	if (strcmp(name, "late-member") == 0)
		return SIM_BUG_LATE_MEMBER;
	if (strcmp(name, "leave-early") == 0)
		return SIM_BUG_LEAVE_EARLY;
	if (strcmp(name, "lone-voter") == 0)
		return SIM_BUG_LONE_VOTER;
	if (strcmp(name, "stale-reconcile") == 0)
		return SIM_BUG_STALE_RECONCILE;
	if (strcmp(name, "strand-merge") == 0)
		return SIM_BUG_STRAND_MERGE;
	if (strcmp(name, "promote-unheard") == 0)
		return SIM_BUG_PROMOTE_UNHEARD;
	if (strcmp(name, "image-index") == 0)
		return SIM_BUG_IMAGE_INDEX;
	if (strcmp(name, "silent-quorum") == 0)
		return SIM_BUG_SILENT_QUORUM;
	return 0;
}

uint32_t
sim_parse_bug(const char *list)
{
	char		buf[256];
	char	   *tok;
	char	   *save = NULL;
	uint32_t	bugs = 0;

	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		uint32_t	b = parse_one_bug(tok);

		if (b == 0)
			return 0;
		bugs |= b;
	}
	return bugs;
}
