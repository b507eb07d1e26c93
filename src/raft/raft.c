/*-------------------------------------------------------------------------
 *
 * raft.c
 *	  One Raft group's life cycle: creation from durable state, role
 *	  changes, ticks, the message dispatcher, and ready batches.
 *
 * The role changes happen in one place (raft_become_*), each asserting the
 * roles it may be reached from.  Terms are handled once, in raft_step,
 * before a message reaches its handler (Raft paper §5.1, with the pre-vote
 * and leader-lease rules of the dissertation §9.6 and §4.2.3).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/raft.c
 *
 *-------------------------------------------------------------------------
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

/* ------------------------------------------------------------------------
 * Memory
 * ------------------------------------------------------------------------
 */
static void *
default_alloc(void *ctx, size_t size)
{
	void	   *p = malloc(size ? size : 1);

	(void) ctx;
	if (p == NULL)
		abort();
	return p;
}

static void *
default_realloc(void *ctx, void *ptr, size_t size)
{
	void	   *p = realloc(ptr, size ? size : 1);

	(void) ctx;
	if (p == NULL)
		abort();
	return p;
}

static void
default_free(void *ctx, void *ptr)
{
	(void) ctx;
	free(ptr);
}

static const raft_allocator default_allocator = {
	default_alloc, default_realloc, default_free, NULL
};

void *
raft_malloc(raft *r, size_t size)
{
	return r->alloc.alloc(r->alloc.ctx, size);
}

void *
raft_mrealloc(raft *r, void *p, size_t size)
{
	if (p == NULL)
		return r->alloc.alloc(r->alloc.ctx, size);
	return r->alloc.realloc(r->alloc.ctx, p, size);
}

void
raft_mfree(raft *r, void *p)
{
	if (p != NULL)
		r->alloc.free(r->alloc.ctx, p);
}

/* ------------------------------------------------------------------------
 * Names
 * ------------------------------------------------------------------------
 */
const char *
raft_strerror(int rc)
{
	switch ((raft_error) rc)
	{
		case RAFT_OK:
			return "ok";
		case RAFT_ENOTLEADER:
			return "not the leader";
		case RAFT_EBUSY:
			return "busy";
		case RAFT_EINVAL:
			return "invalid argument";
		case RAFT_ECOMPACTED:
			return "index compacted";
		case RAFT_EUNAVAILABLE:
			return "index unavailable";
	}
	return "unknown error";
}

const char *
raft_role_name(raft_role role)
{
	switch (role)
	{
		case RAFT_FOLLOWER:
			return "follower";
		case RAFT_PRECANDIDATE:
			return "precandidate";
		case RAFT_CANDIDATE:
			return "candidate";
		case RAFT_LEADER:
			return "leader";
	}
	return "unknown";
}

const char *
raft_msg_type_name(uint32_t type)
{
	switch ((raft_msg_type) type)
	{
		case RAFT_MSG_APPEND:
			return "append";
		case RAFT_MSG_APPEND_RESP:
			return "append_resp";
		case RAFT_MSG_VOTE:
			return "vote";
		case RAFT_MSG_VOTE_RESP:
			return "vote_resp";
		case RAFT_MSG_PREVOTE:
			return "prevote";
		case RAFT_MSG_PREVOTE_RESP:
			return "prevote_resp";
		case RAFT_MSG_HEARTBEAT:
			return "heartbeat";
		case RAFT_MSG_HEARTBEAT_RESP:
			return "heartbeat_resp";
		case RAFT_MSG_SNAPSHOT:
			return "snapshot";
		case RAFT_MSG_TIMEOUT_NOW:
			return "timeout_now";
		case RAFT_MSG_READ_INDEX:
			return "read_index";
		case RAFT_MSG_READ_INDEX_RESP:
			return "read_index_resp";
	}
	return "unknown";
}

/* ------------------------------------------------------------------------
 * Creation
 * ------------------------------------------------------------------------
 */
void
raft_options_init(raft_options *opts, raft_id id, uint64_t seed)
{
	memset(opts, 0, sizeof(*opts));
	opts->id = id;
	opts->election_ticks = 10;
	opts->heartbeat_ticks = 1;
	opts->max_msg_entries = 64;
	opts->max_msg_bytes = 1024 * 1024;
	opts->max_inflight = 64;
	opts->pre_vote = true;
	opts->check_quorum = true;
	opts->seed = seed;
}

/* splitmix64: the only source of randomness, seeded by the host */
static uint64_t
next_random(raft *r)
{
	uint64_t	z = (r->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
reset_randomized_timeout(raft *r)
{
	r->randomized_timeout = r->opt.election_ticks +
		(uint32_t) (next_random(r) % r->opt.election_ticks);
}

raft *
raft_new(const raft_options *opts, const raft_durable *state)
{
	const raft_allocator *a = opts->allocator ? opts->allocator : &default_allocator;
	raft	   *r;
	raft_index	last;

	if (opts->id == RAFT_NONE || opts->election_ticks < 2 ||
		opts->heartbeat_ticks < 1 ||
		opts->heartbeat_ticks >= opts->election_ticks ||
		opts->max_msg_entries < 1 || opts->max_inflight < 1)
		return NULL;

	/* the durable state must be self-consistent */
	for (size_t i = 0; i < state->n_entries; i++)
	{
		const raft_entry *e = &state->entries[i];

		if (e->index != state->snapshot.index + 1 + i ||
			e->term < (i > 0 ? state->entries[i - 1].term : state->snapshot.term) ||
			e->type > RAFT_ENTRY_CONF || (e->len > 0 && e->data == NULL))
			return NULL;
	}
	last = state->snapshot.index + state->n_entries;
	if (state->hard_state.commit > last || state->snapshot.conf.n > RAFT_MAX_MEMBERS)
		return NULL;

	r = a->alloc(a->ctx, sizeof(raft));
	memset(r, 0, sizeof(*r));
	r->opt = *opts;
	r->alloc = *a;
	r->rng = opts->seed ^ ((uint64_t) opts->id << 32);

	r->term = state->hard_state.term;
	r->vote = state->hard_state.vote;
	r->snap = state->snapshot;
	r->conf = state->snapshot.conf;
	r->stable = r->snap.index;
	for (size_t i = 0; i < state->n_entries; i++)
		(void) log_append_copy(r, &state->entries[i]);
	r->stable = last;
	r->commit = state->hard_state.commit > r->snap.index ?
		state->hard_state.commit : r->snap.index;
	r->applied = r->snap.index;
	conf_rebuild(r);

	r->prev_hs = raft_get_hard_state(r);
	raft_become_follower(r, r->term, RAFT_NONE);
	return r;
}

static void
msgvec_clear(raft *r, msgvec *v)
{
	for (size_t i = 0; i < v->n; i++)
	{
		raft_message *m = &v->m[i];

		for (uint32_t j = 0; j < m->n_entries; j++)
			entry_unref(r, &m->entries[j]);
		raft_mfree(r, m->entries);
		raft_mfree(r, (void *) m->snapshot);
	}
	v->n = 0;
}

static void
msgvec_free(raft *r, msgvec *v)
{
	msgvec_clear(r, v);
	raft_mfree(r, v->m);
	v->m = NULL;
	v->cap = 0;
}

void
raft_free(raft *r)
{
	if (r == NULL)
		return;
	msgvec_free(r, &r->msgs);
	msgvec_free(r, &r->persist_msgs);
	msgvec_free(r, &r->out_msgs);
	msgvec_free(r, &r->out_persist_msgs);
	log_free(r);
	progress_free_all(r);
	raft_mfree(r, r->snap_data);
	raft_mfree(r, r->reads_pending);
	raft_mfree(r, r->reads_done);
	raft_mfree(r, r->out_reads);
	r->alloc.free(r->alloc.ctx, r);
}

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------
 */

/*
 * Queue a message.  Takes over m->entries (already referenced) and
 * m->snapshot.  Messages the leader sends to replicate may leave before the
 * ready batch is durable; everything else waits for it (see raft.h).
 */
void
raft_send(raft *r, raft_message *m)
{
	msgvec	   *v;

	m->from = r->opt.id;
	if (m->term == 0)
		m->term = r->term;
	switch (m->type)
	{
		case RAFT_MSG_APPEND:
		case RAFT_MSG_HEARTBEAT:
		case RAFT_MSG_SNAPSHOT:
		case RAFT_MSG_TIMEOUT_NOW:
		case RAFT_MSG_READ_INDEX:
		case RAFT_MSG_READ_INDEX_RESP:
			v = &r->msgs;
			break;
		default:
			v = &r->persist_msgs;
			break;
	}
	if (v->n == v->cap)
	{
		v->cap = v->cap ? v->cap * 2 : 16;
		v->m = raft_mrealloc(r, v->m, v->cap * sizeof(raft_message));
	}
	v->m[v->n++] = *m;
}

/* ------------------------------------------------------------------------
 * Roles
 * ------------------------------------------------------------------------
 */
uint32_t
raft_quorum(const raft *r)
{
	return raft_conf_voters(&r->conf) / 2 + 1;
}

/*
 * May this node campaign?  Voters of the configuration in force may, and so
 * may a voter that an uncommitted entry removes: it may still be needed to
 * commit that entry (dissertation §4.2.2, Figure 4.4).  Its own vote counts
 * only where it is a voter (see election.c).
 */
bool
raft_promotable(const raft *r)
{
	raft_conf	committed;

	if (raft_conf_role(&r->conf, r->opt.id) == RAFT_VOTER)
		return true;
	if (r->conf_index <= r->commit)
		return false;
	committed = conf_at(r, r->commit);
	return raft_conf_role(&committed, r->opt.id) == RAFT_VOTER;
}

static void
reset(raft *r, raft_term term)
{
	if (r->term != term)
	{
		r->term = term;
		r->vote = RAFT_NONE;
	}
	r->leader = RAFT_NONE;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	reset_randomized_timeout(r);
	r->transferee = RAFT_NONE;
	r->n_votes = 0;
	r->bcast_pending = false;
	r->bcast_commit = false;
	r->quiesced = false;
	read_fail_all(r);
}

void
raft_become_follower(raft *r, raft_term term, raft_id leader)
{
	reset(r, term);
	r->role = RAFT_FOLLOWER;
	r->leader = leader;
}

void
raft_become_precandidate(raft *r)
{
	assert(r->role != RAFT_LEADER);
	/* Pre-vote changes neither term nor vote (dissertation §9.6). */
	r->role = RAFT_PRECANDIDATE;
	r->leader = RAFT_NONE;
	r->n_votes = 0;
	r->election_elapsed = 0;
	reset_randomized_timeout(r);
	if (BUG(r, RAFT_BUG_NO_PREVOTE_TERM))
		r->term++;
}

void
raft_become_candidate(raft *r)
{
	assert(r->role != RAFT_LEADER);
	reset(r, r->term + 1);
	r->vote = r->opt.id;
	r->role = RAFT_CANDIDATE;
}

void
raft_become_leader(raft *r)
{
	assert(r->role == RAFT_CANDIDATE);
	reset(r, r->term);
	r->role = RAFT_LEADER;
	r->leader = r->opt.id;
	progress_reset_all(r);
	/* a configuration entry already in the log may still be uncommitted */
	r->pending_conf_index = log_last_index(r);
	/* Raft §8: commit an entry of the new term to learn what is committed */
	log_append_new(r, RAFT_ENTRY_NOOP, NULL, 0);
	r->term_start = log_last_index(r);
	r->bcast_pending = true;
	r->bcast_commit = true;
	{
		progress   *self = progress_get(r, r->opt.id);

		if (self != NULL)
			progress_become_replicate(self);
	}
}

/* ------------------------------------------------------------------------
 * Ticks
 * ------------------------------------------------------------------------
 */
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
	if (raft_promotable(r) && r->election_elapsed >= r->randomized_timeout)
	{
		r->election_elapsed = 0;
		election_campaign(r, r->opt.pre_vote, false);
	}
}

/* ------------------------------------------------------------------------
 * Stepping
 * ------------------------------------------------------------------------
 */
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
			if (raft_promotable(r))
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

/* ------------------------------------------------------------------------
 * Client requests
 * ------------------------------------------------------------------------
 */
int
raft_propose(raft *r, const void *data, uint32_t len, raft_index *index,
			 raft_term *term)
{
	assert(!r->in_ready);
	r->quiesced = false;
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (r->transferee != RAFT_NONE)
		return RAFT_EBUSY;
	if (len > 0 && data == NULL)
		return RAFT_EINVAL;
	repl_leader_append(r, RAFT_ENTRY_NORMAL, data, len);
	if (index)
		*index = log_last_index(r);
	if (term)
		*term = r->term;
	return RAFT_OK;
}

int
raft_propose_conf(raft *r, uint32_t type, raft_id id, raft_index *index,
				  raft_term *term)
{
	raft_conf	next = r->conf;
	uint8_t		buf[RAFT_CONF_CHANGE_LEN];

	assert(!r->in_ready);
	r->quiesced = false;
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (r->transferee != RAFT_NONE || r->pending_conf_index > r->commit ||
		r->commit < r->term_start)
		return RAFT_EBUSY;
	if (raft_conf_apply(&next, type, id) != RAFT_OK || raft_conf_voters(&next) == 0)
		return RAFT_EINVAL;
	raft_conf_change_encode(buf, type, id);
	repl_leader_append(r, RAFT_ENTRY_CONF, buf, sizeof(buf));
	r->pending_conf_index = log_last_index(r);
	if (index)
		*index = log_last_index(r);
	if (term)
		*term = r->term;
	return RAFT_OK;
}

int
raft_transfer_leader(raft *r, raft_id to)
{
	progress   *pr;

	assert(!r->in_ready);
	r->quiesced = false;
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (to == r->opt.id || raft_conf_role(&r->conf, to) != RAFT_VOTER)
		return RAFT_EINVAL;
	if (r->transferee == to)
		return RAFT_OK;
	pr = progress_get(r, to);
	r->transferee = to;
	/* the transfer is given up at the next quorum check */
	r->election_elapsed = 0;
	if (pr->match == log_last_index(r))
	{
		raft_message m = {0};

		m.type = RAFT_MSG_TIMEOUT_NOW;
		m.to = to;
		raft_send(r, &m);
	}
	else
		repl_send_append(r, pr, false);
	return RAFT_OK;
}

int
raft_read_index(raft *r, uint64_t context)
{
	assert(!r->in_ready);
	r->quiesced = false;
	if (r->role == RAFT_LEADER)
		return read_request(r, context, RAFT_NONE);
	if (r->leader == RAFT_NONE || r->role != RAFT_FOLLOWER)
		return RAFT_ENOTLEADER;
	{
		raft_message m = {0};

		m.type = RAFT_MSG_READ_INDEX;
		m.to = r->leader;
		m.context = context;
		raft_send(r, &m);
	}
	return RAFT_OK;
}

int
raft_compact(raft *r, raft_index index)
{
	assert(!r->in_ready);
	if (index <= r->snap.index)
		return RAFT_OK;
	if (index > r->applied || index > r->stable)
		return RAFT_EUNAVAILABLE;
	log_compact_to(r, index);
	return RAFT_OK;
}

/* ------------------------------------------------------------------------
 * Ready batches
 * ------------------------------------------------------------------------
 */
static raft_index
committed_hi(const raft *r)
{
	raft_index	hi = r->commit;

	if (BUG(r, RAFT_BUG_EARLY_APPLY))
		hi = log_last_index(r);
	if (hi > log_last_index(r))
		hi = log_last_index(r);
	return hi;
}

raft_hard_state
raft_get_hard_state(const raft *r)
{
	raft_hard_state hs;

	hs.term = r->term;
	hs.vote = BUG(r, RAFT_BUG_FORGET_VOTE) ? RAFT_NONE : r->vote;
	hs.commit = r->commit;
	return hs;
}

static bool
hard_state_changed(const raft *r)
{
	raft_hard_state hs = raft_get_hard_state(r);

	return hs.term != r->prev_hs.term || hs.vote != r->prev_hs.vote ||
		hs.commit != r->prev_hs.commit;
}

bool
raft_has_ready(const raft *r)
{
	return r->msgs.n > 0 || r->persist_msgs.n > 0 || r->n_reads_done > 0 ||
		r->bcast_pending || r->snap_pending || hard_state_changed(r) ||
		r->stable < log_last_index(r) || r->applied < committed_hi(r);
}

void
raft_ready_get(raft *r, raft_ready *rd)
{
	msgvec		tmp;
	raft_index	hi;

	assert(!r->in_ready);
	if (r->bcast_pending && r->role == RAFT_LEADER)
		repl_bcast_append(r, r->bcast_commit);
	r->bcast_pending = false;
	r->bcast_commit = false;

	memset(rd, 0, sizeof(*rd));
	if (hard_state_changed(r))
	{
		rd->has_hard_state = true;
		rd->hard_state = raft_get_hard_state(r);
	}
	if (r->snap_pending)
	{
		rd->has_snapshot = true;
		rd->snapshot = r->snap;
		rd->snapshot_data = r->snap_data;
		rd->snapshot_len = r->snap_len;
	}
	if (r->stable < log_last_index(r))
	{
		rd->entries = log_at(r, r->stable + 1);
		rd->n_entries = log_last_index(r) - r->stable;
	}
	hi = committed_hi(r);
	if (r->applied < hi)
	{
		rd->committed = log_at(r, r->applied + 1);
		rd->n_committed = hi - r->applied;
	}

	/* hand the queued messages and reads over until raft_advance() */
	tmp = r->out_msgs;
	r->out_msgs = r->msgs;
	r->msgs = tmp;
	tmp = r->out_persist_msgs;
	r->out_persist_msgs = r->persist_msgs;
	r->persist_msgs = tmp;
	rd->messages = r->out_msgs.m;
	rd->n_messages = r->out_msgs.n;
	rd->persist_messages = r->out_persist_msgs.m;
	rd->n_persist_messages = r->out_persist_msgs.n;

	{
		raft_read_state *t = r->out_reads;
		size_t		cap = r->cap_out_reads;

		r->out_reads = r->reads_done;
		r->n_out_reads = r->n_reads_done;
		r->cap_out_reads = r->cap_reads_done;
		r->reads_done = t;
		r->cap_reads_done = cap;
		r->n_reads_done = 0;
	}
	rd->reads = r->out_reads;
	rd->n_reads = r->n_out_reads;

	rd->role = r->role;
	rd->leader = r->leader;
	rd->term = r->term;
	r->in_ready = true;
}

void
raft_advance(raft *r, const raft_ready *rd)
{
	assert(r->in_ready);
	r->in_ready = false;

	if (rd->has_snapshot)
	{
		r->snap_pending = false;
		raft_mfree(r, r->snap_data);
		r->snap_data = NULL;
		r->snap_len = 0;
	}
	if (rd->n_entries > 0)
	{
		const raft_entry *last = &rd->entries[rd->n_entries - 1];

		if (log_matches(r, last->index, last->term) && last->index > r->stable)
			r->stable = last->index;
	}
	if (rd->n_committed > 0)
		r->applied = rd->committed[rd->n_committed - 1].index;
	if (rd->has_hard_state)
		r->prev_hs = rd->hard_state;

	msgvec_clear(r, &r->out_msgs);
	msgvec_clear(r, &r->out_persist_msgs);
	r->n_out_reads = 0;

	if (r->role == RAFT_LEADER)
	{
		progress   *self = progress_get(r, r->opt.id);

		/* our own log now counts toward the quorum up to what is durable */
		if (self != NULL && progress_maybe_update(self, r->stable) &&
			repl_maybe_commit(r))
		{
			r->bcast_pending = true;
			r->bcast_commit = true;
		}
	}
}

/* ------------------------------------------------------------------------
 * Observing
 * ------------------------------------------------------------------------
 */
raft_id
raft_self(const raft *r)
{
	return r->opt.id;
}

raft_role
raft_get_role(const raft *r)
{
	return r->role;
}

raft_term
raft_get_term(const raft *r)
{
	return r->term;
}

raft_id
raft_leader(const raft *r)
{
	return r->leader;
}

raft_index
raft_commit_index(const raft *r)
{
	return r->commit;
}

raft_index
raft_applied_index(const raft *r)
{
	return r->applied;
}

raft_index
raft_first_index(const raft *r)
{
	return r->snap.index + 1;
}

raft_index
raft_last_index(const raft *r)
{
	return log_last_index(r);
}

raft_index
raft_stable_index(const raft *r)
{
	return r->stable;
}

const raft_conf *
raft_get_conf(const raft *r)
{
	return &r->conf;
}

const raft_snapshot_meta *
raft_snapshot(const raft *r)
{
	return &r->snap;
}

int
raft_term_at(const raft *r, raft_index index, raft_term *term)
{
	if (index < r->snap.index)
		return RAFT_ECOMPACTED;
	if (index > log_last_index(r))
		return RAFT_EUNAVAILABLE;
	(void) log_term(r, index, term);
	return RAFT_OK;
}

int
raft_entry_at(const raft *r, raft_index index, const raft_entry **e)
{
	if (index <= r->snap.index)
		return RAFT_ECOMPACTED;
	if (index > log_last_index(r))
		return RAFT_EUNAVAILABLE;
	*e = log_at(r, index);
	return RAFT_OK;
}

int
raft_get_progress(const raft *r, raft_id id, raft_progress *out)
{
	progress   *pr;

	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	pr = progress_get((raft *) r, id);
	if (pr == NULL)
		return RAFT_EINVAL;
	out->match = pr->match;
	out->next = pr->next;
	out->state = pr->state;
	out->inflight = pr->in_count;
	out->recent_active = pr->recent_active;
	return RAFT_OK;
}

raft_id
raft_transferee(const raft *r)
{
	return r->transferee;
}

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
