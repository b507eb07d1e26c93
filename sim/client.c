/*-------------------------------------------------------------------------
 *
 * client.c
 *	  The simulator's clients: puts, compare-and-sets and ReadIndex reads
 *	  sent to any node, retried with the same sequence number when refused
 *	  (a read also when met with silence), answered once applied; their
 *	  history goes to the linearizability checker.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/client.c
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"

/* ------------------------------------------------------------------------
 * History
 * ------------------------------------------------------------------------
 */
static size_t
hist_add(sim *s, const lin_op *op)
{
	if (s->n_hist == s->cap_hist)
	{
		s->cap_hist = s->cap_hist ? s->cap_hist * 2 : 1024;
		s->hist = realloc(s->hist, s->cap_hist * sizeof(lin_op));
	}
	s->hist[s->n_hist] = *op;
	return s->n_hist++;
}

void
reply_client(sim *s, int nid, request *req, int status, uint64_t output)
{
	request    *r = malloc(sizeof(request));

	*r = *req;
	r->status = status;
	r->output = output;
	r->hint = 0;
	if (status == 1 && req->group >= 0 && s->nodes[nid].g[req->group].r != NULL)
		r->hint = roster_node(s, raft_leader(s->nodes[nid].g[req->group].r));
	schedule(s, s->now + net_delay(s), EV_REPLY, 0, req->group, req->client, r);
}

/* ------------------------------------------------------------------------
 * Clients waiting on a group
 * ------------------------------------------------------------------------
 */
void
waiter_add(group *g, const waiter *w)
{
	if (g->n_waiters == g->cap_waiters)
	{
		g->cap_waiters = g->cap_waiters ? g->cap_waiters * 2 : 8;
		g->waiters = realloc(g->waiters, g->cap_waiters * sizeof(waiter));
	}
	g->waiters[g->n_waiters++] = *w;
}

/* Answer the clients whose proposal or read this group can now answer. */
void
answer_waiters(sim *s, int nid, int gi, const raft_entry *applied_entry, uint64_t output)
{
	group	   *g = &s->nodes[nid].g[gi];
	size_t		i = 0;

	while (i < g->n_waiters)
	{
		waiter	   *w = &g->waiters[i];
		request		req = {0};
		bool		done = false;

		req.client = w->client;
		req.seq = w->seq;
		req.group = gi;
		if (!w->is_read && applied_entry && w->index == applied_entry->index)
		{
			if (applied_entry->term == w->term && output == KV_FENCED)
				reply_client(s, nid, &req, 2, 0);	/* stale generation, or
													 * frozen: route again */
			else if (applied_entry->term == w->term)
			{
				reply_client(s, nid, &req, 0, output);
				s->truth[gi].acked[w->index] = true;
			}
			else
				reply_client(s, nid, &req, 1, 0);	/* lost: retry */
			done = true;
		}
		else if (w->is_read && g->applied >= w->index)
		{
			if (s->cfg.partitions && !part_readable(s, g, w->key, w->gen))
				reply_client(s, nid, &req, 2, 0);
			else
				reply_client(s, nid, &req, 0, g->kv.val[w->key]);
			done = true;
		}
		else if (!w->is_read && g->applied >= w->index && !applied_entry)
		{
			/* passed by a snapshot: outcome unknown here, let it retry */
			reply_client(s, nid, &req, 1, 0);
			done = true;
		}
		if (done)
			g->waiters[i] = g->waiters[--g->n_waiters];
		else
			i++;
	}
}


/* ------------------------------------------------------------------------
 * Clients
 * ------------------------------------------------------------------------
 */
static int
random_up_node(sim *s)
{
	for (int tries = 0; tries < 16; tries++)
	{
		int			nid = 1 + (int) prng_below(&s->rng, s->cfg.nodes);

		if (s->nodes[nid].up)
			return nid;
	}
	return 1 + (int) prng_below(&s->rng, s->cfg.nodes);
}

void
client_send(sim *s, int ci)
{
	client	   *c = &s->clients[ci];
	lin_op	   *op = &s->hist[c->hist];
	request    *r = malloc(sizeof(request));
	int			to = c->hint > 0 && prng_chance(&s->rng, 800) ? c->hint : random_up_node(s);

	c->sent = s->now;
	memset(r, 0, sizeof(*r));
	r->client = ci;
	r->seq = c->seq;
	r->kind = op->kind;
	r->group = c->group;
	r->key = s->cfg.partitions ? op->key : op->key % KEYS;
	r->value = op->value;
	r->expect = op->expect;
	schedule(s, s->now + net_delay(s), EV_REQUEST, to, c->group, ci, r);
}

static void
client_start(sim *s, int ci)
{
	client	   *c = &s->clients[ci];
	lin_op		op = {0};

	/*
	 * Half the time a client stays on the key of its last operation, so
	 * that a write is often read back at once, through any node.  In
	 * partition mode the node that takes the request routes it.
	 */
	if (c->seq == 0 || prng_chance(&s->rng, 500))
	{
		c->group = s->cfg.partitions ? 0 : (int) prng_below(&s->rng, s->cfg.groups);
		c->key = prng_below(&s->rng, s->cfg.partitions ? PKEYS : KEYS);
	}
	c->seq++;
	c->busy = true;
	c->hint = 0;
	c->deadline = s->now + CLIENT_TIMEOUT_MS;
	op.client = ci;
	op.key = s->cfg.partitions ? c->key : (uint64_t) c->group * KEYS + c->key;
	op.call = s->now;
	op.ret = LIN_PENDING;
	switch (prng_below(&s->rng, 3))
	{
		case 0:
			op.kind = LIN_PUT;
			op.value = ((uint64_t) ci << 32) | c->seq;
			break;
		case 1:
			op.kind = LIN_GET;
			break;
		default:
			op.kind = LIN_CAS;
			op.expect = prng_chance(&s->rng, 500) ? 0 : (((uint64_t) prng_below(&s->rng, MAX_CLIENTS) << 32) | prng_below(&s->rng, c->seq + 1));
			op.value = ((uint64_t) ci << 32) | c->seq;
			break;
	}
	c->hist = hist_add(s, &op);
	client_send(s, ci);
	schedule(s, op.kind == LIN_GET ? s->now + CLIENT_SILENCE_MS : c->deadline, EV_CLIENT, 0, 0,
			 ci, (void *) (uintptr_t) c->seq);
}

/*
 * A client's timer.  Without an operation (`seq' 0) the client starts one.
 * For its operation `seq' it gives up at the deadline, the outcome
 * unknown, and starts the next one; before that it resends a read met
 * with silence (lost, or stuck at a node cut off) to any node.  A write
 * waits for its deadline: resending writes too would double the log
 * traffic, and the operator, who gives up on a leader busy with an fsync,
 * would split and merge less.
 */
void
client_timer(sim *s, int ci, uint64_t seq)
{
	client	   *c = &s->clients[ci];
	bool		read;

	if (seq != 0 && (!c->busy || seq != c->seq))
		return;					/* answered already */
	read = seq != 0 && s->hist[c->hist].kind == LIN_GET;
	if (read && s->now < c->deadline && s->now >= c->sent + CLIENT_SILENCE_MS)
	{
		c->hint = 0;
		client_send(s, ci);
	}
	if (seq != 0 && s->now < c->deadline)
	{
		uint64_t	next = read ? c->sent + CLIENT_SILENCE_MS : c->deadline;

		schedule(s, next < c->deadline ? next : c->deadline, EV_CLIENT, 0, 0, ci,
				 (void *) (uintptr_t) seq);
		return;
	}
	if (seq != 0)
	{
		c->busy = false;
		s->res->pending_ops++;
		trace(s, EV_CLIENT, 0, c->group, ci, 0);
	}
	if (!c->busy && s->faults_on)
		client_start(s, ci);
}

void
on_request(sim *s, int nid, request *r)
{
	node	   *n = &s->nodes[nid];
	group	   *g;

	if (!n->up || s->clients[r->client].seq != r->seq)
		return;					/* lost, or the client gave up */
	if (r->group < 0)
	{
		reply_client(s, nid, r, 2, 0);	/* no active partition owns the key */
		return;
	}
	g = &n->g[r->group];
	if (r->kind == LIN_GET)
	{
		uint64_t	ctx = ((uint64_t) r->client << 56) | ((r->gen & 0xffffffULL) << 32) |
			(r->seq & 0xffffffffULL);

		if (raft_read_index(g->r, ctx) != 0)
			reply_client(s, nid, r, 1, 0);
	}
	else
	{
		kv_cmd		c;
		raft_index	idx;
		raft_term	term;

		memset(&c, 0, sizeof(c));
		c.kind = r->kind;
		c.client = r->client;
		c.seq = r->seq;
		c.key = r->key;
		c.value = r->value;
		c.expect = r->expect;
		c.gen = r->gen;
		/* the client waits here only: the followers hear of it later */
		if (raft_propose_for(g->r, raft_self(g->r), &c, sizeof(c), &idx, &term) != 0)
			reply_client(s, nid, r, 1, 0);
		else
		{
			waiter		w = {idx, term, r->client, r->seq, false, r->key, 0};

			waiter_add(g, &w);
		}
	}
	group_process(s, nid, r->group);
}

void
on_reply(sim *s, request *r)
{
	client	   *c = &s->clients[r->client];
	lin_op	   *op;

	if (!c->busy || c->seq != r->seq)
		return;
	op = &s->hist[c->hist];
	if (r->status == 0)
	{
		op->ret = s->now;
		op->output = r->output;
		c->busy = false;
		s->res->ops++;
		schedule(s, s->now + 1 + prng_below(&s->rng, 20), EV_CLIENT, 0, 0, r->client, NULL);
		return;
	}
	/* not the leader, or lost: try again (the same seq is applied once) */
	c->hint = r->hint;
	if ((r->status == 2 || r->hint == 0) && s->now + 30 < c->deadline)
	{
		/*
		 * The map moved, the partition is frozen, or no leader is known:
		 * try again in a while
		 */
		schedule(s, s->now + 5 + prng_below(&s->rng, 25), EV_RESEND, 0, 0, r->client,
				 (void *) (uintptr_t) c->seq);
		return;
	}
	if (r->status == 1 && s->now + 5 < c->deadline)
		client_send(s, (int) r->client);
}
