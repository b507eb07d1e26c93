/*-------------------------------------------------------------------------
 *
 * reconcile.c
 *	  The reconciler's rules: when a partition leader takes a step toward
 *	  the roster's membership, which single-server step, and what holds a
 *	  leaving member in a group a while longer (splits and a freeze in the
 *	  group's log, which other groups depend on); and when a leaving node
 *	  may leave the roster.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/host/reconcile.c
 *
 *-------------------------------------------------------------------------
 */
#include "host.h"

#ifdef RAFT_SIM_BUGS
#define FLAW(flaws, f) (((flaws) & (f)) != 0)
#else
#define FLAW(flaws, f) ((void) (flaws), false)
#endif

bool
host_reconcile_due(host_reconcile_state *st, const raft *r, raft_term term,
				   uint64_t roster, uint64_t now, uint64_t every)
{
	if (raft_get_role(r) != RAFT_LEADER)
	{
		st->roster = 0;
		return false;
	}
	return st->roster != roster || st->term != term ||
		(!st->in_line && now >= st->last + every);
}

void
host_reconciled(host_reconcile_state *st, bool in_line, raft_term term,
				uint64_t roster, uint64_t now)
{
	st->in_line = in_line;
	st->roster = roster;
	st->term = term;
	st->last = now;
}

/*
 * host_caught_up, or with the flaw on the lag alone.  A learner whose log
 * went back (lost: it answers below what it acknowledged) is caught up by
 * no match it once had.
 */
static bool
promotable(const raft *r, raft_id id, uint64_t max_lag, uint32_t flaws)
{
	raft_progress pr;

	return raft_get_progress(r, id, &pr) == RAFT_OK &&
		(pr.match > 0 || FLAW(flaws, HOST_FLAW_PROMOTE_UNHEARD)) && !pr.lost &&
		pr.match + max_lag >= raft_last_index(r);
}

bool
host_caught_up(const raft *r, raft_id id, uint64_t max_lag)
{
	return promotable(r, id, max_lag, 0);
}

/*
 * The voter the roster keeps that a leaving leader hands over to: of those
 * that answered lately and are caught up, the most caught up; else the
 * first kept voter (the transfer succeeds once it answers).  A transfer to
 * a node that is down or does not campaign times out; the voter it went to
 * (`tried') comes last then, so that the next step names another.
 */
static raft_id
handover_target(const raft *r, const host_roster *ro, uint64_t max_lag, raft_id tried)
{
	const raft_conf *conf = raft_get_conf(r);
	raft_id		first = RAFT_NONE;
	raft_id		best = RAFT_NONE;
	raft_index	best_match = 0;

	for (uint32_t k = 0; k < conf->n; k++)
	{
		raft_id		id = conf->members[k].id;
		raft_progress pr;

		if (id == raft_self(r) || conf->members[k].role != RAFT_VOTER ||
			!host_roster_keeps(ro, id) || id == tried)
			continue;
		if (first == RAFT_NONE)
			first = id;
		if (raft_get_progress(r, id, &pr) == RAFT_OK && pr.recent_active &&
			host_caught_up(r, id, max_lag) && (best == RAFT_NONE || pr.match > best_match))
		{
			best = id;
			best_match = pr.match;
		}
	}
	if (best != RAFT_NONE)
		return best;
	if (first != RAFT_NONE)
		return first;
	/* none but the one tried: it again */
	return tried != RAFT_NONE && raft_conf_role(conf, tried) == RAFT_VOTER &&
		host_roster_keeps(ro, tried) && tried != raft_self(r) ? tried : RAFT_NONE;
}

/*
 * Would the voters left once `id' is out hold a majority that answers:
 * nodes heard from lately (`heard', NULL: every node) whose member
 * answered this leader?  A configuration counts from its append: a
 * removal that leaves a majority silent (voters [A, B, C] with C down, B
 * removed) is never committed, and the group has no leader again until C
 * is back.  Such a removal waits; the silent member's own removal, or its
 * return, comes first.  Not the core's check-quorum marks, which a
 * resting leader does not renew.
 */
static bool
leaves_quorum(const raft *r, const raft_conf *conf, raft_id id, const host_heard *heard)
{
	uint32_t	voters = 0;
	uint32_t	answering = 0;

	for (uint32_t k = 0; k < conf->n; k++)
	{
		raft_id		other = conf->members[k].id;
		raft_progress pr;

		if (other == id || conf->members[k].role != RAFT_VOTER)
			continue;
		voters++;
		if (other == raft_self(r) ||
			((heard == NULL || host_heard_has(heard, other)) &&
			 raft_get_progress(r, other, &pr) == RAFT_OK && pr.match > 0))
			answering++;
	}
	return voters == 0 || answering * 2 > voters;
}

static bool
step(host_step *s, host_action action, raft_id id)
{
	s->action = action;
	s->id = id;
	return false;
}

bool
host_reconcile_step(const raft *r, const host_roster *ro, const host_heard *heard,
					uint64_t max_lag, host_holds_fn holds, void *arg, uint32_t flaws,
					raft_id tried, host_step *s)
{
	const raft_conf *conf = raft_get_conf(r);
	raft_id		self = raft_self(r);
	bool		in_line = true;

	s->action = HOST_STEP_NONE;
	s->id = RAFT_NONE;
	if (ro->n == 0)
		return false;

	/* members the roster no longer keeps leave; the leader hands over first */
	for (uint32_t i = 0; i < conf->n; i++)
	{
		raft_id		id = conf->members[i].id;

		if (host_roster_keeps(ro, id))
			continue;
		if (id == self)
		{
			raft_id		to = handover_target(r, ro, max_lag, tried);

			if (to != RAFT_NONE)
				return step(s, HOST_STEP_TRANSFER, to);
			/* no voter to stay: a learner must be promoted to hand over to */
			in_line = false;
			if (FLAW(flaws, HOST_FLAW_LONE_VOTER))
				return false;
			continue;
		}
		/* a removal held up must not hold up the rest */
		in_line = false;
		if (holds != NULL && holds(arg, id))
			continue;
		if (conf->members[i].role == RAFT_VOTER && !leaves_quorum(r, conf, id, heard) &&
			!FLAW(flaws, HOST_FLAW_SILENT_QUORUM))
			continue;
		return step(s, HOST_STEP_REMOVE, id);
	}

	for (uint32_t j = 0; j < ro->n; j++)
	{
		raft_id		id = ro->ids[j];
		uint32_t	role = raft_conf_role(conf, id);

		if (!host_roster_keeps(ro, id))
			continue;
		if (role == 0)
			return step(s, HOST_STEP_ADD_LEARNER, id);
		if (role == RAFT_LEARNER && ro->roles[j] == HOST_VOTER)
		{
			/* promoted once caught up; until then, look again later */
			in_line = false;
			if (promotable(r, id, max_lag, flaws))
				return step(s, HOST_STEP_PROMOTE, id);
		}
	}
	return in_line;
}

bool
host_split_holds(raft_index split_at, raft_index applied,
				 const host_members *child, raft_id x)
{
	if (applied < split_at)
		return true;
	return child != NULL &&
		(!child->committed || child->n == 0 || host_members_have(child, x));
}

bool
host_freeze_holds(const raft *r, raft_id x, raft_index frozen_at, bool votes_in_target)
{
	raft_progress pr;

	return votes_in_target && raft_get_progress(r, x, &pr) == RAFT_OK &&
		pr.match > 0 && pr.match < frozen_at;
}

bool
host_lets_go(const host_members *m, raft_id x)
{
	return m->committed && m->n > 0 && !host_members_have(m, x);
}
