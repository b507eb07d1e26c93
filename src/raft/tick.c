/*-------------------------------------------------------------------------
 *
 * tick.c
 *	  Logical time: the election and heartbeat timers, the leader's quorum
 *	  check (dissertation §6.2), and quiescence of an idle group (raft.h,
 *	  Quiescence).  The host decides how long a tick is.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/tick.c
 *
 *-------------------------------------------------------------------------
 */
#include <assert.h>

#include "raft_int.h"

static bool
quorum_active(raft *r)
{
	uint32_t	active = 0;

	for (uint32_t i = 0; i < r->n_prs; i++)
	{
		progress   *pr = &r->prs[i];

		if (raft_conf_role(&r->conf, pr->id) != RAFT_VOTER)
			continue;
		if (pr->id == r->opt.id || pr->recent_active)
			active++;
	}
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->opt.id)
			r->prs[i].recent_active = false;
	return active >= raft_quorum(r);
}

/*
 * May the leader rest?  Only when every member that answers holds its whole
 * log, all of it committed in its term and durable here, with no read,
 * transfer or broadcast pending.  A member silent for three election
 * timeouts (its node is down or cut off) does not hold the leader up: the
 * host, which notices a silent node sooner, wakes the group when that node
 * is heard from again.
 */
static bool
can_quiesce(raft *r)
{
	raft_index	last = log_last_index(r);

	if (r->transferee != RAFT_NONE || r->n_reads_pending > 0 || r->bcast_pending ||
		r->commit != last || r->stable != last || log_last_term(r) != r->term)
		return false;
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->opt.id &&
			r->prs[i].silent_ticks < RAFT_SILENT_TICKS(r) &&
			(r->prs[i].match != last || r->prs[i].state != RAFT_PROGRESS_REPLICATE))
			return false;
	return true;
}

/* A voter whose campaigns are not held (raft_hold_campaign) */
static bool
may_campaign(const raft *r)
{
	return raft_promotable(r) && !r->campaign_held;
}

/*
 * A learner (or a voter holding its campaigns) holding entries it does not
 * know to be committed, and that has heard nothing for an election
 * timeout, answers as to a heartbeat.  A voter in its place would
 * campaign, and the campaign would wake the group; a learner never
 * campaigns, so when the leader rested without telling it the commit
 * index (the last heartbeat was lost, or this node restarted since)
 * nothing else would.  The answer wakes the leader, or, when this node
 * knows none, every voter, the leader among them.
 */
static void
learner_wake(raft *r)
{
	for (uint32_t i = 0; i < r->conf.n; i++)
	{
		raft_message m = {0};
		raft_id		to = r->conf.members[i].id;

		if (to == r->opt.id || r->conf.members[i].role != RAFT_VOTER ||
			(r->leader != RAFT_NONE && to != r->leader))
			continue;
		m.type = RAFT_MSG_HEARTBEAT_RESP;
		m.to = to;
		raft_send(r, &m);
	}
}

static void
tick_leader(raft *r)
{
	r->heartbeat_elapsed++;
	r->election_elapsed++;

	for (uint32_t i = 0; i < r->n_prs; i++)
	{
		progress   *pr = &r->prs[i];

		if (pr->id != r->opt.id && pr->silent_ticks < UINT32_MAX)
			pr->silent_ticks++;
		/* a snapshot that got no answer is retried */
		if (pr->state == RAFT_PROGRESS_SNAPSHOT &&
			++pr->snapshot_elapsed >= 2 * r->opt.election_ticks)
		{
			progress_become_probe(pr);
			pr->next = pr->match + 1;
		}
	}

	if (r->election_elapsed >= r->opt.election_ticks)
	{
		r->election_elapsed = 0;
		if (r->opt.check_quorum && !quorum_active(r))
		{
			/* §6.2: a leader cut off from a quorum steps down */
			raft_become_follower(r, r->term, RAFT_NONE);
			return;
		}
		/* a leader transfer that has not happened by now is given up */
		r->transferee = RAFT_NONE;
	}
	if (r->heartbeat_elapsed >= r->opt.heartbeat_ticks)
	{
		r->heartbeat_elapsed = 0;
		if (r->opt.quiesce && can_quiesce(r))
		{
			/* the last heartbeat for now tells the followers to rest too */
			repl_bcast_heartbeat(r, r->read_seq, true);
			r->quiesced = true;
			return;
		}
		repl_bcast_heartbeat(r, r->read_seq, false);
	}
}

void
raft_tick(raft *r)
{
	assert(!r->in_ready);
	if (r->quiesced)
		return;
	if (r->role == RAFT_LEADER)
	{
		tick_leader(r);
		return;
	}
	r->election_elapsed++;
	if (may_campaign(r) && r->election_elapsed >= r->randomized_timeout)
	{
		r->election_elapsed = 0;
		election_campaign(r, r->opt.pre_vote, false);
	}
	/* the timer goes on: a learner that hears nobody has no lease to keep */
	else if (!may_campaign(r) && r->commit < log_last_index(r) &&
			 r->election_elapsed % r->randomized_timeout == 0)
		learner_wake(r);
}

void
raft_hold_campaign(raft *r, bool hold)
{
	assert(!r->in_ready);
	r->campaign_held = hold;
	if (hold && (r->role == RAFT_CANDIDATE || r->role == RAFT_PRECANDIDATE))
		raft_become_follower(r, r->term, RAFT_NONE);
}

bool
raft_campaign_held(const raft *r)
{
	return r->campaign_held;
}

/* ------------------------------------------------------------------------
 * Quiescence
 * ------------------------------------------------------------------------
 */
bool
raft_quiesced(const raft *r)
{
	return r->quiesced;
}

void
raft_unquiesce(raft *r)
{
	assert(!r->in_ready);
	if (!r->quiesced)
		return;
	r->quiesced = false;
	/* a follower starts its election timer from zero */
	r->election_elapsed = 0;
	/* a leader gives every member a whole election timeout to answer */
	for (uint32_t i = 0; i < r->n_prs; i++)
		r->prs[i].silent_ticks = 0;
}
