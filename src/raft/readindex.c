/*-------------------------------------------------------------------------
 *
 * readindex.c
 *	  Linearizable reads without log writes (dissertation §6.4, ReadIndex).
 *
 * The leader records its commit index as the read's index, gives the read a
 * sequence number and sends a heartbeat carrying it; once a quorum answered
 * a heartbeat carrying that sequence or a later one, the leader knows it was
 * still the leader when the read arrived, and the read is released.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/readindex.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_int.h"

/* Release a read to the host (index 0: it failed). */
void
read_push_done(raft *r, uint64_t context, raft_index index)
{
	if (r->n_reads_done == r->cap_reads_done)
	{
		r->cap_reads_done = r->cap_reads_done ? r->cap_reads_done * 2 : 8;
		r->reads_done = raft_mrealloc(r, r->reads_done,
									  r->cap_reads_done * sizeof(raft_read_state));
	}
	r->reads_done[r->n_reads_done].context = context;
	r->reads_done[r->n_reads_done].index = index;
	r->n_reads_done++;
}

static void
release(raft *r, const pending_read *p, bool ok)
{
	if (p->from == RAFT_NONE)
		read_push_done(r, p->context, ok ? p->index : 0);
	else
	{
		raft_message m = {0};

		/*
		 * The follower waits until it has applied the read's index: the
		 * commit index goes first, as the last commits may have been told
		 * to nobody yet (repl_bcast_append).
		 */
		if (ok)
			repl_want_commit(r, p->from, p->index);
		m.type = RAFT_MSG_READ_INDEX_RESP;
		m.to = p->from;
		m.index = ok ? p->index : 0;
		m.reject = !ok;
		m.context = p->context;
		raft_send(r, &m);
	}
}

/*
 * A read asked of the leader, locally (from == RAFT_NONE) or forwarded by a
 * follower.
 */
int
read_request(raft *r, uint64_t context, raft_id from)
{
	pending_read *p;

	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	/* until an entry of this term commits, our commit index may be behind */
	if (r->commit < r->term_start)
		return RAFT_EBUSY;

	if (r->n_reads_pending == r->cap_reads_pending)
	{
		r->cap_reads_pending = r->cap_reads_pending ? r->cap_reads_pending * 2 : 8;
		r->reads_pending = raft_mrealloc(r, r->reads_pending,
										 r->cap_reads_pending * sizeof(pending_read));
	}
	p = &r->reads_pending[r->n_reads_pending++];
	p->seq = ++r->read_seq;
	p->context = context;
	p->index = r->commit;
	p->from = from;

	if (raft_quorum(r) <= 1)
		read_ack(r);
	else
		repl_bcast_heartbeat(r, r->read_seq, false);
	return RAFT_OK;
}

/* Release every read that a quorum has confirmed, oldest first. */
void
read_ack(raft *r)
{
	size_t		done = 0;

	while (done < r->n_reads_pending)
	{
		pending_read *p = &r->reads_pending[done];
		uint32_t	acks = 0;

		for (uint32_t i = 0; i < r->n_prs; i++)
		{
			progress   *pr = &r->prs[i];

			if (raft_conf_role(&r->conf, pr->id) != RAFT_VOTER)
				continue;
			if (pr->id == r->opt.id || pr->read_ack >= p->seq)
				acks++;
		}
		if (acks < raft_quorum(r))
			break;
		release(r, p, true);
		done++;
	}
	if (done > 0)
	{
		memmove(r->reads_pending, r->reads_pending + done,
				(r->n_reads_pending - done) * sizeof(pending_read));
		r->n_reads_pending -= done;
	}
}

/* Leadership is lost: every pending read fails. */
void
read_fail_all(raft *r)
{
	for (size_t i = 0; i < r->n_reads_pending; i++)
		release(r, &r->reads_pending[i], false);
	r->n_reads_pending = 0;
	for (uint32_t i = 0; i < r->n_prs; i++)
		r->prs[i].read_ack = 0;
}

/* A follower gets the answer to a read it forwarded. */
void
read_handle_resp(raft *r, const raft_message *m)
{
	read_push_done(r, m->context, m->reject ? 0 : m->index);
}
