/*-------------------------------------------------------------------------
 *
 * raft.c
 *	  One Raft group's life cycle and its entry points: creation from
 *	  durable state, client requests (proposals, membership changes, leader
 *	  transfer, reads, compaction) and the accessors, with the allocator and
 *	  the outgoing message queue the other files share.
 *
 * The rest of the group's life has a file per job: role changes in
 * convert.c, ticks in tick.c, the message dispatcher in step.c and ready
 * batches in ready.c.
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

void
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
 * ready batch is durable, in a term that is; everything else waits for it
 * (see raft.h).
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
			/*
			 * Not in a term this node has not made durable yet: a lone
			 * voter wins its election without a vote request (whose
			 * ready batch makes the term durable first), and if it then
			 * crashed before its write, it would win that term again
			 * and send other entries under the same index and term.
			 */
			v = m->term > r->prev_hs.term ? &r->persist_msgs : &r->msgs;
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
 * Quorum
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

/* ------------------------------------------------------------------------
 * Client requests
 * ------------------------------------------------------------------------
 */
int
raft_propose(raft *r, const void *data, uint32_t len, raft_index *index,
			 raft_term *term)
{
	return raft_propose_for(r, RAFT_NONE, data, len, index, term);
}

int
raft_propose_for(raft *r, raft_id waiter, const void *data, uint32_t len,
				 raft_index *index, raft_term *term)
{
	progress   *pr;

	assert(!r->in_ready);
	r->quiesced = false;
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (r->transferee != RAFT_NONE)
		return RAFT_EBUSY;
	if (len > 0 && data == NULL)
		return RAFT_EINVAL;
	repl_leader_append(r, RAFT_ENTRY_NORMAL, data, len);
	pr = waiter == RAFT_NONE ? NULL : progress_get(r, waiter);
	if (waiter == r->opt.id)
		;						/* only this node waits: it knows the commit */
	else if (pr != NULL)
		pr->news = log_last_index(r);
	else
		r->news_all = log_last_index(r);
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
	/* a member added or removed learns of it as soon as it commits */
	r->news_all = log_last_index(r);
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
	/*
	 * The transfer is given up at the next quorum check, an election
	 * timeout from now; not later for a new target while one is on, which
	 * would put off the check itself for as long as targets change.
	 */
	if (r->transferee == RAFT_NONE)
		r->election_elapsed = 0;
	r->transferee = to;
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
raft_group_commit(const raft *r)
{
	return r->leader_commit > r->commit ? r->leader_commit : r->commit;
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

raft_index
raft_conf_index(const raft *r)
{
	return r->conf_index;
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
	out->lost = pr->lost_answers >= LOST_ANSWERS;
	out->lost_end = pr->lost_end;
	return RAFT_OK;
}

raft_id
raft_transferee(const raft *r)
{
	return r->transferee;
}

uint64_t
raft_prevotes_started(const raft *r)
{
	return r->prevotes;
}
