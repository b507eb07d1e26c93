/*-------------------------------------------------------------------------
 *
 * fixture.c
 *	  A deterministic cluster of Raft cores for the core unit tests.
 *
 * The state machine is the list of applied entries; its snapshot image is
 * the applied NORMAL entries' data joined by newlines.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/fixture.c
 *
 *-------------------------------------------------------------------------
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	assert(p != NULL);
	return p;
}

static void *
dupmem(const void *p, size_t n)
{
	void	   *q = xmalloc(n);

	if (n > 0)
		memcpy(q, p, n);
	return q;
}

static void
entry_copy(raft_entry *dst, const raft_entry *src)
{
	*dst = *src;
	dst->data = src->len ? dupmem(src->data, src->len) : NULL;
	dst->ref = NULL;
}

static void
entry_release(raft_entry *e)
{
	free((void *) e->data);
	e->data = NULL;
}

static void
node_start(fixture *f, raft_id id)
{
	fx_node    *n = &f->nodes[id];
	raft_durable d;

	memset(&d, 0, sizeof(d));
	d.hard_state = n->hs;
	d.snapshot = n->snap;
	d.entries = n->log;
	d.n_entries = n->n_log;
	n->r = raft_new(&n->opts, &d);
	assert(n->r != NULL);
	n->up = true;
	/* the state machine restarts from the snapshot image */
	n->applied_index = n->snap.index;
}

fixture *
fx_new(int n, int voters, void (*opts_fn) (raft_options *))
{
	fixture    *f = calloc(1, sizeof(fixture));
	raft_conf	conf;

	assert(n <= FX_MAX_NODES && voters <= n);
	f->n = n;
	memset(&conf, 0, sizeof(conf));
	for (int i = 1; i <= n; i++)
	{
		conf.members[conf.n].id = (raft_id) i;
		conf.members[conf.n].role = i <= voters ? RAFT_VOTER : RAFT_LEARNER;
		conf.n++;
	}
	for (int i = 1; i <= n; i++)
	{
		fx_node    *nd = &f->nodes[i];

		raft_options_init(&nd->opts, (raft_id) i, 1000 + (uint64_t) i);
		if (opts_fn)
			opts_fn(&nd->opts);
		nd->snap.conf = conf;
		node_start(f, (raft_id) i);
	}
	return f;
}

void
fx_add_empty_node(fixture *f, raft_id id)
{
	fx_node    *nd = &f->nodes[id];

	assert(id <= FX_MAX_NODES);
	if ((int) id > f->n)
		f->n = (int) id;
	raft_options_init(&nd->opts, id, 1000 + (uint64_t) id);
	node_start(f, id);
}

static void
msg_free(fx_msg *x)
{
	for (uint32_t i = 0; i < x->m.n_entries; i++)
		entry_release(&x->m.entries[i]);
	free(x->m.entries);
	free((void *) x->m.snapshot_data);
}

static void
node_free_disk(fx_node *n)
{
	for (size_t i = 0; i < n->n_log; i++)
		entry_release(&n->log[i]);
	free(n->log);
	n->log = NULL;
	n->n_log = 0;
}

void
fx_free(fixture *f)
{
	if (f == NULL)
		return;
	for (int i = 1; i <= f->n; i++)
	{
		fx_node    *n = &f->nodes[i];

		raft_free(n->r);
		node_free_disk(n);
		for (size_t j = 0; j < n->n_applied; j++)
			entry_release(&n->applied[j]);
		free(n->applied);
	}
	for (size_t i = 0; i < f->nq; i++)
		msg_free(&f->q[i]);
	free(f->q);
	free(f);
}

raft *
fx_raft(fixture *f, raft_id id)
{
	return f->nodes[id].r;
}

/* The snapshot image of a node's state machine up to `index'. */
static char *
image_of(fx_node *n, raft_index index, size_t *len)
{
	size_t		total = 0;
	char	   *buf;
	char	   *p;

	for (size_t i = 0; i < n->n_applied; i++)
		if (n->applied[i].index <= index && n->applied[i].type == RAFT_ENTRY_NORMAL)
			total += n->applied[i].len + 1;
	buf = xmalloc(total + 1);
	p = buf;
	for (size_t i = 0; i < n->n_applied; i++)
		if (n->applied[i].index <= index && n->applied[i].type == RAFT_ENTRY_NORMAL)
		{
			memcpy(p, n->applied[i].data, n->applied[i].len);
			p += n->applied[i].len;
			*p++ = '\n';
		}
	*len = total;
	return buf;
}

static void
install_image(fx_node *n, const raft_snapshot_meta *meta, const char *img, size_t len)
{
	const char *p = img;
	const char *end = len > 0 ? img + len : img;	/* img may be NULL */

	for (size_t j = 0; j < n->n_applied; j++)
		entry_release(&n->applied[j]);
	n->n_applied = 0;
	n->applied = realloc(n->applied, sizeof(raft_entry) * (len + 1));
	while (p < end)
	{
		const char *nl = memchr(p, '\n', (size_t) (end - p));
		raft_entry *e = &n->applied[n->n_applied++];

		memset(e, 0, sizeof(*e));
		e->type = RAFT_ENTRY_NORMAL;
		e->index = meta->index;
		e->len = (uint32_t) (nl - p);
		e->data = dupmem(p, e->len);
		p = nl + 1;
	}
	n->applied_index = meta->index;
}

static void
enqueue(fixture *f, const raft_message *m, fx_node *sender)
{
	fx_msg	   *x;

	if (f->nq == f->capq)
	{
		f->capq = f->capq ? f->capq * 2 : 64;
		f->q = realloc(f->q, f->capq * sizeof(fx_msg));
	}
	x = &f->q[f->nq++];
	x->m = *m;
	f->sent_by_type[m->type]++;
	if (m->n_entries > 0)
	{
		x->m.entries = xmalloc(m->n_entries * sizeof(raft_entry));
		for (uint32_t i = 0; i < m->n_entries; i++)
			entry_copy(&x->m.entries[i], &m->entries[i]);
	}
	else
		x->m.entries = NULL;
	x->m.snapshot_data = NULL;
	x->m.snapshot_len = 0;
	if (m->type == RAFT_MSG_SNAPSHOT)
	{
		size_t		len;

		x->snap = *m->snapshot;
		x->m.snapshot_data = image_of(sender, m->snapshot->index, &len);
		x->m.snapshot_len = len;
	}
}

static void
node_flush(fixture *f, fx_node *n)
{
	raft_ready	rd;

	if (!n->up || !raft_has_ready(n->r))
		return;
	raft_ready_get(n->r, &rd);
	if (f->on_ready)
		f->on_ready(f, n->opts.id, &rd, f->on_ready_ctx);

	for (size_t i = 0; i < rd.n_messages; i++)
		enqueue(f, &rd.messages[i], n);

	if (rd.has_snapshot)
	{
		node_free_disk(n);
		n->snap = rd.snapshot;
		install_image(n, &rd.snapshot, rd.snapshot_data, rd.snapshot_len);
	}
	if (rd.n_entries > 0)
	{
		raft_index	first = rd.entries[0].index;

		while (n->n_log > 0 && n->log[n->n_log - 1].index >= first)
			entry_release(&n->log[--n->n_log]);
		n->log = realloc(n->log, (n->n_log + rd.n_entries) * sizeof(raft_entry));
		for (size_t i = 0; i < rd.n_entries; i++)
			entry_copy(&n->log[n->n_log++], &rd.entries[i]);
	}
	if (rd.has_hard_state)
		n->hs = rd.hard_state;

	for (size_t i = 0; i < rd.n_persist_messages; i++)
		enqueue(f, &rd.persist_messages[i], n);

	for (size_t i = 0; i < rd.n_committed; i++)
	{
		assert(rd.committed[i].index == n->applied_index + 1);
		n->applied = realloc(n->applied, (n->n_applied + 1) * sizeof(raft_entry));
		entry_copy(&n->applied[n->n_applied++], &rd.committed[i]);
		n->applied_index = rd.committed[i].index;
	}
	for (size_t i = 0; i < rd.n_reads && n->n_reads < 64; i++)
		n->reads[n->n_reads++] = rd.reads[i];

	raft_advance(n->r, &rd);
}

void
fx_flush(fixture *f)
{
	bool		again = true;

	/* advancing may produce more (a leader's commit after its own write) */
	for (int round = 0; again && round < 16; round++)
	{
		again = false;
		for (int i = 1; i <= f->n; i++)
		{
			fx_node    *n = &f->nodes[i];

			if (n->up && raft_has_ready(n->r))
			{
				node_flush(f, n);
				again = true;
			}
		}
	}
}

static void
deliver(fixture *f, fx_msg *x)
{
	raft_message m = x->m;
	fx_node    *to;

	if (m.type == RAFT_MSG_SNAPSHOT)
		m.snapshot = &x->snap;
	if (m.to == 0 || m.to > FX_MAX_NODES)
		return;
	to = &f->nodes[m.to];
	if (!to->up || to->r == NULL || f->cut[m.from][m.to])
		return;
	if (f->drop && f->drop(&m, f->drop_ctx))
		return;
	f->delivered++;
	(void) raft_step(to->r, &m);
}

size_t
fx_deliver_once(fixture *f)
{
	fx_msg	   *batch = f->q;
	size_t		n = f->nq;

	f->q = NULL;
	f->nq = 0;
	f->capq = 0;
	for (size_t i = 0; i < n; i++)
	{
		deliver(f, &batch[i]);
		msg_free(&batch[i]);
	}
	free(batch);
	fx_flush(f);
	return n;
}

size_t
fx_deliver_all(fixture *f, size_t max)
{
	size_t		total = 0;

	fx_flush(f);
	while (f->nq > 0 && (max == 0 || total < max))
		total += fx_deliver_once(f);
	return total;
}

void
fx_drop_all(fixture *f)
{
	for (size_t i = 0; i < f->nq; i++)
		msg_free(&f->q[i]);
	f->nq = 0;
}

void
fx_tick(fixture *f, raft_id id, int times)
{
	for (int i = 0; i < times; i++)
	{
		if (f->nodes[id].up)
			raft_tick(f->nodes[id].r);
		fx_flush(f);
	}
}

void
fx_tick_all(fixture *f)
{
	for (int i = 1; i <= f->n; i++)
		if (f->nodes[i].up)
			raft_tick(f->nodes[i].r);
	fx_flush(f);
}

raft_id
fx_elect(fixture *f, raft_id id)
{
	raft	   *r = f->nodes[id].r;

	for (int i = 0; i < 1000 && raft_get_role(r) == RAFT_FOLLOWER; i++)
	{
		raft_tick(r);
		fx_flush(f);
	}
	fx_deliver_all(f, 0);
	return fx_leader(f);
}

raft_id
fx_leader(fixture *f)
{
	raft_id		best = RAFT_NONE;
	raft_term	best_term = 0;

	for (int i = 1; i <= f->n; i++)
	{
		fx_node    *n = &f->nodes[i];

		if (n->up && raft_get_role(n->r) == RAFT_LEADER &&
			raft_get_term(n->r) >= best_term)
		{
			best = (raft_id) i;
			best_term = raft_get_term(n->r);
		}
	}
	return best;
}

int
fx_propose(fixture *f, raft_id id, const char *s)
{
	int			rc = raft_propose(f->nodes[id].r, s, (uint32_t) strlen(s), NULL, NULL);

	fx_flush(f);
	return rc;
}

void
fx_cut(fixture *f, raft_id a, raft_id b)
{
	f->cut[a][b] = f->cut[b][a] = true;
}

void
fx_heal(fixture *f, raft_id a, raft_id b)
{
	f->cut[a][b] = f->cut[b][a] = false;
}

void
fx_isolate(fixture *f, raft_id id)
{
	for (int i = 1; i <= FX_MAX_NODES; i++)
		if ((raft_id) i != id)
			fx_cut(f, id, (raft_id) i);
}

void
fx_heal_all(fixture *f)
{
	memset(f->cut, 0, sizeof(f->cut));
}

void
fx_crash(fixture *f, raft_id id)
{
	fx_node    *n = &f->nodes[id];

	raft_free(n->r);
	n->r = NULL;
	n->up = false;
}

void
fx_restart(fixture *f, raft_id id)
{
	fx_node    *n = &f->nodes[id];
	size_t		len;
	char	   *img;

	assert(!n->up);
	/* the state machine comes back as of the snapshot */
	img = image_of(n, n->snap.index, &len);
	install_image(n, &n->snap, img, len);
	free(img);
	node_start(f, id);
}

const char *
fx_applied_str(fixture *f, raft_id id, size_t i)
{
	static char buf[256];
	fx_node    *n = &f->nodes[id];
	size_t		len;

	if (i >= n->n_applied)
		return NULL;
	len = n->applied[i].len < sizeof(buf) - 1 ? n->applied[i].len : sizeof(buf) - 1;
	memcpy(buf, n->applied[i].data, len);
	buf[len] = '\0';
	return buf;
}

size_t
fx_applied_normal(fixture *f, raft_id id)
{
	fx_node    *n = &f->nodes[id];
	size_t		c = 0;

	for (size_t i = 0; i < n->n_applied; i++)
		if (n->applied[i].type == RAFT_ENTRY_NORMAL)
			c++;
	return c;
}

int
fx_teardown(void **state)
{
	fx_free(*state);
	*state = NULL;
	return 0;
}

void
fx_set_disk(fixture *f, raft_id id, raft_term term, raft_id vote,
			raft_index commit, const raft_term *terms, size_t n)
{
	fx_node    *nd = &f->nodes[id];

	if (nd->up)
		fx_crash(f, id);
	node_free_disk(nd);
	for (size_t j = 0; j < nd->n_applied; j++)
		entry_release(&nd->applied[j]);
	nd->n_applied = 0;
	nd->snap.index = 0;
	nd->snap.term = 0;
	nd->hs.term = term;
	nd->hs.vote = vote;
	nd->hs.commit = commit;
	nd->log = xmalloc(n * sizeof(raft_entry));
	for (size_t i = 0; i < n; i++)
	{
		char		buf[64];
		raft_entry	e;

		memset(&e, 0, sizeof(e));
		e.index = i + 1;
		e.term = terms[i];
		e.type = RAFT_ENTRY_NORMAL;
		e.len = (uint32_t) snprintf(buf, sizeof(buf), "%zu:%llu", i + 1,
									(unsigned long long) terms[i]);
		e.data = buf;
		entry_copy(&nd->log[i], &e);
	}
	nd->n_log = n;
	fx_restart(f, id);
}

int
fx_compact(fixture *f, raft_id id, raft_index index)
{
	fx_node    *n = &f->nodes[id];
	int			rc = raft_compact(n->r, index);
	size_t		drop = 0;

	if (rc != RAFT_OK)
		return rc;
	n->snap = *raft_snapshot(n->r);
	while (drop < n->n_log && n->log[drop].index <= n->snap.index)
		entry_release(&n->log[drop++]);
	if (drop > 0)
		memmove(n->log, n->log + drop, (n->n_log - drop) * sizeof(raft_entry));
	n->n_log -= drop;
	return RAFT_OK;
}

int
fx_step(fixture *f, raft_id id, const raft_message *m)
{
	int			rc = raft_step(f->nodes[id].r, m);

	fx_flush(f);
	return rc;
}

void
fx_run(fixture *f, int ticks)
{
	for (int i = 0; i < ticks; i++)
	{
		fx_tick_all(f);
		fx_deliver_all(f, 100000);
	}
}

bool
fx_campaign(fixture *f, raft_id id)
{
	raft	   *r = f->nodes[id].r;

	for (int i = 0; i < 1000 && raft_get_role(r) == RAFT_FOLLOWER; i++)
	{
		raft_tick(r);
		fx_flush(f);
	}
	while (f->nq > 0 && raft_get_role(r) != RAFT_LEADER)
		fx_deliver_once(f);
	return raft_get_role(r) == RAFT_LEADER;
}

size_t
fx_deliver_if(fixture *f, fx_msg_pred pred, void *ctx)
{
	fx_msg	   *batch = f->q;
	size_t		n = f->nq;
	size_t		done = 0;

	f->q = NULL;
	f->nq = 0;
	f->capq = 0;
	for (size_t i = 0; i < n; i++)
	{
		if (pred(&batch[i].m, ctx))
		{
			deliver(f, &batch[i]);
			msg_free(&batch[i]);
			done++;
		}
		else
		{
			/* keep it, behind nothing it was not already behind */
			if (f->nq == f->capq)
			{
				f->capq = f->capq ? f->capq * 2 : 64;
				f->q = realloc(f->q, f->capq * sizeof(fx_msg));
			}
			f->q[f->nq++] = batch[i];
		}
	}
	free(batch);
	fx_flush(f);
	return done;
}

size_t
fx_queued(fixture *f, uint32_t type, raft_id from, raft_id to)
{
	size_t		c = 0;

	for (size_t i = 0; i < f->nq; i++)
	{
		const raft_message *m = &f->q[i].m;

		if ((type == 0 || m->type == type) && (from == 0 || m->from == from) &&
			(to == 0 || m->to == to))
			c++;
	}
	return c;
}
