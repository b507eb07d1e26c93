/*-------------------------------------------------------------------------
 *
 * election.c
 *	  Leader election: campaigns with optional pre-vote, granting votes,
 *	  and counting them.
 *
 * Raft paper §5.2 and §5.4.1 (the voting restriction); dissertation §9.6
 * (pre-vote: a would-be candidate first asks whether it could win, without
 * changing anyone's term) and §3.10 (a transfer target campaigns at once).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/election.c
 *
 *-------------------------------------------------------------------------
 */
#include "raft_int.h"

/* Record a vote; only voters of the configuration in force count. */
static void
record_vote(raft *r, raft_id from, bool granted)
{
	for (uint32_t i = 0; i < r->n_votes; i++)
		if (r->votes_from[i] == from)
			return;				/* the first answer counts */
	if (raft_conf_role(&r->conf, from) != RAFT_VOTER ||
		r->n_votes == RAFT_MAX_MEMBERS)
		return;
	r->votes_from[r->n_votes] = from;
	r->votes_granted[r->n_votes] = granted;
	r->n_votes++;
}

static void
tally(const raft *r, uint32_t *granted, uint32_t *rejected)
{
	*granted = 0;
	*rejected = 0;
	for (uint32_t i = 0; i < r->n_votes; i++)
	{
		if (r->votes_granted[i])
			(*granted)++;
		else
			(*rejected)++;
	}
}

/* The election (or pre-election) is won: move on to the next role. */
static void
won(raft *r, bool transfer)
{
	if (r->role == RAFT_PRECANDIDATE)
		election_campaign(r, false, transfer);
	else
		raft_become_leader(r);
}

/*
 * Start a campaign: a pre-vote round if `pre_vote', else a real election.
 * `transfer' marks an election forced by the leader (TIMEOUT_NOW), which
 * voters must not refuse for having heard from that leader recently.
 */
void
election_campaign(raft *r, bool pre_vote, bool transfer)
{
	uint32_t	granted;
	uint32_t	rejected;
	raft_term	term;

	if (!raft_promotable(r) || r->campaign_held)
		return;
	if (pre_vote)
	{
		raft_become_precandidate(r);
		term = r->term + 1;
	}
	else
	{
		raft_become_candidate(r);
		term = r->term;
	}

	record_vote(r, r->opt.id, true);
	tally(r, &granted, &rejected);
	if (granted >= raft_quorum(r))
	{
		won(r, transfer);
		return;
	}

	for (uint32_t i = 0; i < r->conf.n; i++)
	{
		raft_message m = {0};

		if (r->conf.members[i].role != RAFT_VOTER ||
			r->conf.members[i].id == r->opt.id)
			continue;
		m.type = pre_vote ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE;
		m.to = r->conf.members[i].id;
		m.term = term;
		m.index = log_last_index(r);
		m.log_term = log_last_term(r);
		m.context = transfer ? 1 : 0;
		raft_send(r, &m);
	}
}

/*
 * A (pre-)vote request whose term passed the term rules.  Grant when we have
 * not voted for someone else in this term (for a pre-vote: when it is for a
 * later term, or we know no leader) and the candidate's log is at least as
 * up to date as ours (§5.4.1).
 */
void
election_handle_vote(raft *r, const raft_message *m)
{
	bool		pre = m->type == RAFT_MSG_PREVOTE;
	bool		can_vote;
	raft_message out = {0};

	can_vote = r->vote == m->from ||
		(r->vote == RAFT_NONE && r->leader == RAFT_NONE) ||
		(pre && m->term > r->term) ||
		(!pre && r->leader == RAFT_NONE && BUG(r, RAFT_BUG_DOUBLE_VOTE));

	out.type = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;
	out.to = m->from;
	if (can_vote && log_up_to_date(r, m->index, m->log_term))
	{
		/* answer in the term asked about: a pre-vote grant is for term + 1 */
		out.term = m->term;
		out.reject = false;
		if (!pre)
		{
			r->election_elapsed = 0;
			r->vote = m->from;
		}
	}
	else
	{
		out.term = r->term;
		out.reject = true;
	}
	raft_send(r, &out);
}

/* An answer to our campaign. */
void
election_handle_vote_resp(raft *r, const raft_message *m)
{
	uint32_t	granted;
	uint32_t	rejected;

	if ((r->role == RAFT_PRECANDIDATE) != (m->type == RAFT_MSG_PREVOTE_RESP))
		return;					/* an answer to an earlier round */
	record_vote(r, m->from, !m->reject);
	tally(r, &granted, &rejected);
	if (granted >= raft_quorum(r))
		won(r, false);
	else if (rejected >= raft_quorum(r))
		raft_become_follower(r, r->term, RAFT_NONE);
}
