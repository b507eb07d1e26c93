/*-------------------------------------------------------------------------
 *
 * ready.c
 *	  Ready batches: what the host must persist, send and apply, handed out
 *	  by raft_ready_get() and acknowledged by raft_advance().
 *
 * The order in which the host makes a batch durable and sends its messages
 * is documented in raft.h (Ready batches).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/ready.c
 *
 *-------------------------------------------------------------------------
 */
#include <assert.h>
#include <string.h>

#include "raft_int.h"

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
		repl_bcast_append(r);
	r->bcast_pending = false;

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
		}
	}
}
