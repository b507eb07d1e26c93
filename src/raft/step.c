/*-------------------------------------------------------------------------
 *
 * step.c
 *	  The message dispatcher: checks a received message, applies the term
 *	  rules, and hands it to the handler for this node's role.
 *
 * Terms are handled once, in raft_step, before a message reaches its handler
 * (Raft paper §5.1, with the pre-vote and leader-lease rules of the
 * dissertation §9.6 and §4.2.3).  The handlers live with their jobs, in
 * election.c, replication.c and readindex.c.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/step.c
 *
 *-------------------------------------------------------------------------
 */
#include <assert.h>

#include "raft_int.h"

static bool
message_valid(const raft *r, const raft_message *m)
{
	if (m->type < RAFT_MSG_APPEND || m->type > RAFT_MSG_TYPE_MAX)
		return false;
	if (m->to != r->opt.id || m->from == RAFT_NONE || m->from == r->opt.id)
		return false;
	if (m->n_entries > 0 && (m->type != RAFT_MSG_APPEND || m->entries == NULL))
		return false;
	for (uint32_t i = 0; i < m->n_entries; i++)
	{
		const raft_entry *e = &m->entries[i];
		uint32_t	type;
		raft_id		id;

		if (e->index != m->index + 1 + i || e->term > m->term ||
			e->term < (i > 0 ? m->entries[i - 1].term : m->log_term) ||
			(e->len > 0 && e->data == NULL))
			return false;
		if (e->type == RAFT_ENTRY_CONF &&
			!raft_conf_change_decode(e->data, e->len, &type, &id))
			return false;
		if (e->type > RAFT_ENTRY_CONF)
			return false;
	}
	if (m->type == RAFT_MSG_SNAPSHOT &&
		(m->snapshot == NULL || m->snapshot->conf.n > RAFT_MAX_MEMBERS ||
		 m->snapshot->term > m->term))
		return false;
	if (m->type == RAFT_MSG_APPEND && m->log_term > m->term)
		return false;
	return true;
}

static void
reply(raft *r, const raft_message *to, uint32_t type, raft_term term, bool reject)
{
	raft_message out = {0};

	out.type = type;
	out.to = to->from;
	out.term = term;
	out.reject = reject;
	raft_send(r, &out);
}

/*
 * Term rules.  Returns false when the message is to be dropped here.
 */
static bool
step_term(raft *r, const raft_message *m)
{
	if (m->term > r->term)
	{
		if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE)
		{
			bool		force = m->type == RAFT_MSG_VOTE && m->context == 1;
			bool		in_lease = r->opt.check_quorum && r->leader != RAFT_NONE &&
				r->election_elapsed < r->opt.election_ticks;

			/* a follower that hears from a live leader ignores votes */
			if (!force && in_lease)
				return false;
		}
		if (m->type == RAFT_MSG_PREVOTE)
			return true;		/* never changes our term */
		if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject)
			return true;		/* a grant for the term we may start */
		if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
			m->type == RAFT_MSG_SNAPSHOT)
			raft_become_follower(r, m->term, m->from);
		else
			raft_become_follower(r, m->term, RAFT_NONE);
		return true;
	}
	if (m->term < r->term)
	{
		if ((r->opt.check_quorum || r->opt.pre_vote) &&
			(m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_APPEND))
		{
			/* tell a stale leader about the new term, so it steps down */
			reply(r, m, RAFT_MSG_APPEND_RESP, r->term, false);
		}
		else if (m->type == RAFT_MSG_PREVOTE)
			reply(r, m, RAFT_MSG_PREVOTE_RESP, r->term, true);
		else if (m->type == RAFT_MSG_VOTE)
		{
			/* a stale candidate may have no other way to learn our term */
			reply(r, m, RAFT_MSG_VOTE_RESP, r->term, true);
		}
		return false;
	}
	return true;
}

static void
step_leader(raft *r, const raft_message *m)
{
	switch (m->type)
	{
		case RAFT_MSG_APPEND_RESP:
			repl_handle_append_resp(r, m);
			break;
		case RAFT_MSG_HEARTBEAT_RESP:
			repl_handle_heartbeat_resp(r, m);
			break;
		case RAFT_MSG_READ_INDEX:
			if (read_request(r, m->context, m->from) != RAFT_OK)
			{
				raft_message out = {0};

				out.type = RAFT_MSG_READ_INDEX_RESP;
				out.to = m->from;
				out.reject = true;
				out.context = m->context;
				raft_send(r, &out);
			}
			break;
		default:
			break;
	}
}

static void
step_candidate(raft *r, const raft_message *m)
{
	switch (m->type)
	{
		case RAFT_MSG_APPEND:
		case RAFT_MSG_HEARTBEAT:
		case RAFT_MSG_SNAPSHOT:
			/* someone won this term */
			raft_become_follower(r, m->term, m->from);
			if (m->type == RAFT_MSG_APPEND)
				repl_handle_append(r, m);
			else if (m->type == RAFT_MSG_HEARTBEAT)
				repl_handle_heartbeat(r, m);
			else
				repl_handle_snapshot(r, m);
			break;
		case RAFT_MSG_VOTE_RESP:
		case RAFT_MSG_PREVOTE_RESP:
			election_handle_vote_resp(r, m);
			break;
		default:
			break;
	}
}

static void
step_follower(raft *r, const raft_message *m)
{
	switch (m->type)
	{
		case RAFT_MSG_APPEND:
			r->election_elapsed = 0;
			r->leader = m->from;
			repl_handle_append(r, m);
			break;
		case RAFT_MSG_HEARTBEAT:
			r->election_elapsed = 0;
			r->leader = m->from;
			repl_handle_heartbeat(r, m);
			break;
		case RAFT_MSG_SNAPSHOT:
			r->election_elapsed = 0;
			r->leader = m->from;
			repl_handle_snapshot(r, m);
			break;
		case RAFT_MSG_TIMEOUT_NOW:
			/* §3.10: the leader hands over; skip pre-vote and the lease */
			if (raft_promotable(r) && !r->campaign_held)
				election_campaign(r, false, true);
			break;
		case RAFT_MSG_READ_INDEX_RESP:
			read_handle_resp(r, m);
			break;
		default:
			break;
	}
}

int
raft_step(raft *r, const raft_message *m)
{
	assert(!r->in_ready);
	if (!message_valid(r, m))
		return RAFT_EINVAL;
	/* anything but the quiesce heartbeat and its answers wakes the group */
	if (!((m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_HEARTBEAT_RESP) && m->quiesce))
		r->quiesced = false;
	if (!step_term(r, m))
		return RAFT_OK;

	if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE)
	{
		election_handle_vote(r, m);
		return RAFT_OK;
	}
	switch (r->role)
	{
		case RAFT_LEADER:
			step_leader(r, m);
			break;
		case RAFT_CANDIDATE:
		case RAFT_PRECANDIDATE:
			step_candidate(r, m);
			break;
		case RAFT_FOLLOWER:
			step_follower(r, m);
			break;
	}
	return RAFT_OK;
}
