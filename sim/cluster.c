/*-------------------------------------------------------------------------
 *
 * cluster.c
 *	  The simulator's runtime for the Raft core: nodes hosting many groups,
 *	  a network of timed events that drops, duplicates, delays, reorders and
 *	  partitions, disks that lose what was not synced, clients of a
 *	  key-value state machine, and a nemesis that injects faults and
 *	  membership changes.  Invariants are checked after every event.
 *
 * Everything random comes from one PRNG seeded by the caller, so a seed
 * replays exactly; every event feeds a running digest.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/cluster.c
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"

/* Apply a client's command; returns its output (CAS: 1 if it swapped). */
uint64_t
kv_apply(kv_state *kv, const kv_cmd *c)
{
	uint64_t	out = 0;

	if (c->client >= MAX_CLIENTS || c->key >= PKEYS)
		return 0;
	if (c->seq <= kv->last_seq[c->client])
		return c->seq == kv->last_seq[c->client] ? kv->last_out[c->client] : 0;
	if (c->kind == LIN_PUT)
		kv->val[c->key] = c->value;
	else if (kv->val[c->key] == c->expect)
	{
		kv->val[c->key] = c->value;
		out = 1;
	}
	kv->last_seq[c->client] = c->seq;
	kv->last_out[c->client] = out;
	return out;
}

static const char *
ev_name(uint32_t type)
{
	static const char *names[] = {"?", "msg", "tick", "fsync", "client", "request",
	"reply", "nemesis", "restart", "heal", "ping", "resend"};

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

/* ------------------------------------------------------------------------
 * Tracing, digest and violations
 * ------------------------------------------------------------------------
 */
static void
print_trace_rec(sim *s, const trace_rec *t)
{
	fprintf(s->out, "t=%llu %s node=%u group=%u a=%llu b=%llu\n",
			(unsigned long long) t->time, ev_name(t->type), t->node, t->group,
			(unsigned long long) t->a, (unsigned long long) t->b);
}

void
trace(sim *s, uint32_t type, uint32_t node_id, uint32_t grp, uint64_t a, uint64_t b)
{
	trace_rec  *t = &s->ring[s->n_trace++ % TRACE_RING];
	uint64_t	h = s->res->digest;
	uint64_t	f[6] = {s->now, type, node_id, grp, a, b};

	t->time = s->now;
	t->type = type;
	t->node = node_id;
	t->group = grp;
	t->a = a;
	t->b = b;
	for (int i = 0; i < 6; i++)
	{
		h ^= f[i];
		h *= 1099511628211ULL;
	}
	s->res->digest = h;
	if (s->cfg.trace)
		print_trace_rec(s, t);
}

void
violation(sim *s, const char *invariant, const char *fmt,...)
{
	va_list		ap;

	if (s->failed)
		return;
	s->failed = true;
	s->res->ok = false;
	s->res->violation_step = s->step;
	snprintf(s->res->invariant, sizeof(s->res->invariant), "%s", invariant);
	va_start(ap, fmt);
	vsnprintf(s->res->detail, sizeof(s->res->detail), fmt, ap);
	va_end(ap);

	fprintf(s->out, "violation: seed %llu step %llu time %llu ms: %s: %s\n",
			(unsigned long long) s->cfg.seed, (unsigned long long) s->step,
			(unsigned long long) s->now, s->res->invariant, s->res->detail);
	fprintf(s->out, "state:\n");
	for (int nid = 1; nid <= s->cfg.nodes; nid++)
		for (int gi = 0; gi < s->cfg.groups && gi < 4; gi++)
		{
			raft	   *r = s->nodes[nid].g[gi].r;
			const raft_conf *c;

			if (!s->nodes[nid].up || r == NULL)
			{
				fprintf(s->out, "  node %d group %d: down\n", nid, gi);
				continue;
			}
			c = raft_get_conf(r);
			fprintf(s->out, "  node %d group %d: %s term %llu commit %llu conf", nid, gi,
					raft_role_name(raft_get_role(r)), (unsigned long long) raft_get_term(r),
					(unsigned long long) raft_commit_index(r));
			for (uint32_t i = 0; i < c->n; i++)
				fprintf(s->out, " %u%s", c->members[i].id, c->members[i].role == RAFT_LEARNER ? "L" : "");
			fprintf(s->out, " log");
			for (uint64_t i = raft_first_index(r); i <= raft_last_index(r); i++)
			{
				const raft_entry *e;

				if (raft_entry_at(r, i, &e) == 0)
					fprintf(s->out, " %llu:%llu%s", (unsigned long long) i, (unsigned long long) e->term,
							e->type == RAFT_ENTRY_CONF ? "c" : "");
			}
			fprintf(s->out, "\n");
		}
	fprintf(s->out, "last events:\n");
	{
		uint64_t	first = s->n_trace > TRACE_RING ? s->n_trace - TRACE_RING : 0;

		for (uint64_t i = first; i < s->n_trace; i++)
		{
			fprintf(s->out, "  ");
			print_trace_rec(s, &s->ring[i % TRACE_RING]);
		}
	}
}

/* ------------------------------------------------------------------------
 * Events
 * ------------------------------------------------------------------------
 */
void
schedule(sim *s, uint64_t at, uint32_t type, uint32_t node_id, uint32_t grp,
		 uint64_t arg, void *payload)
{
	heap_push(&s->events, at, type, node_id, grp, arg, payload);
}

static uint64_t
net_delay(sim *s)
{
	return 1 + prng_below(&s->rng, s->max_delay);
}

/* ------------------------------------------------------------------------
 * Checkers
 * ------------------------------------------------------------------------
 */
static uint64_t
hash_data(const void *data, uint32_t len, uint32_t type)
{
	const unsigned char *p = data;
	uint64_t	h = 1469598103934665603ULL ^ type;

	for (uint32_t i = 0; i < len; i++)
	{
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static void
truth_grow(group_truth *t, size_t index)
{
	size_t		old_cap = t->cap;

	if (index <= t->cap)
		return;
	while (t->cap < index)
		t->cap = t->cap ? t->cap * 2 : 256;
	t->term = realloc(t->term, (t->cap + 1) * sizeof(uint64_t));
	t->hash = realloc(t->hash, (t->cap + 1) * sizeof(uint64_t));
	t->commit_term = realloc(t->commit_term, (t->cap + 1) * sizeof(uint64_t));
	t->acked = realloc(t->acked, (t->cap + 1) * sizeof(bool));
	t->state_hash = realloc(t->state_hash, (t->cap + 1) * sizeof(uint64_t));
	memset(t->state_hash + old_cap + 1, 0, (t->cap - old_cap) * sizeof(uint64_t));
}

/*
 * State machine safety and log matching of committed prefixes: the entry
 * at a committed index is the same on every node.
 */
static void
check_committed_entry(sim *s, int node_id, int gi, const raft_entry *e, const char *what)
{
	group_truth *t = &s->truth[gi];
	uint64_t	h = hash_data(e->data, e->len, e->type);
	uint64_t	term = raft_get_term(s->nodes[node_id].g[gi].r);

	if (e->index <= t->len)
	{
		if (term < t->commit_term[e->index])
			t->commit_term[e->index] = term;
		if (t->term[e->index] != e->term || t->hash[e->index] != h)
			violation(s, t->acked[e->index] ? "acknowledged write lost" : "state machine safety",
					  "group %d index %llu: node %d %s term %llu, but term %llu was committed there",
					  gi, (unsigned long long) e->index, node_id, what,
					  (unsigned long long) e->term, (unsigned long long) t->term[e->index]);
		return;
	}
	if (e->index != t->len + 1)
		return;					/* a gap (compaction elsewhere): learn it later */
	truth_grow(t, e->index);
	t->term[e->index] = e->term;
	t->hash[e->index] = h;
	t->commit_term[e->index] = term;
	t->acked[e->index] = false;
	t->len = e->index;
}

/* Checks after an event touched group `gi' of node `nid'. */
static void
check_group(sim *s, int nid, int gi, raft_term term_before, int role_before)
{
	group	   *g = &s->nodes[nid].g[gi];
	group_truth *t = &s->truth[gi];
	raft_role	role = raft_get_role(g->r);
	raft_term	term = raft_get_term(g->r);
	uint64_t	commit = raft_commit_index(g->r);

	/* pre-vote never changes the term */
	if (role == RAFT_PRECANDIDATE && role_before != RAFT_PRECANDIDATE && term != term_before)
		violation(s, "pre-vote changed the term",
				  "group %d node %d became pre-candidate and moved from term %llu to %llu",
				  gi, nid, (unsigned long long) term_before, (unsigned long long) term);

	/* election safety: one leader per term */
	if (role == RAFT_LEADER)
	{
		if (term >= t->n_terms)
		{
			size_t		n = t->n_terms ? t->n_terms : 16;

			while (n <= term)
				n *= 2;
			t->leader_of_term = realloc(t->leader_of_term, n * sizeof(uint32_t));
			memset(t->leader_of_term + t->n_terms, 0, (n - t->n_terms) * sizeof(uint32_t));
			t->n_terms = n;
		}
		if (t->leader_of_term[term] == 0)
			t->leader_of_term[term] = (uint32_t) nid;
		else if (t->leader_of_term[term] != (uint32_t) nid)
			violation(s, "election safety", "group %d term %llu has leaders %u and %d",
					  gi, (unsigned long long) term, t->leader_of_term[term], nid);

		/*
		 * leader completeness: a new leader holds every entry committed in
		 * an earlier term (a stale node may still lead an old term)
		 */
		if (role_before != RAFT_LEADER)
		{
			raft_index	first = raft_first_index(g->r);

			for (uint64_t i = first; i <= t->len && !s->failed; i++)
			{
				raft_term	et;

				if (t->commit_term[i] >= term)
					continue;
				if (raft_term_at(g->r, i, &et) != 0 || et != t->term[i])
					violation(s, "leader completeness",
							  "group %d node %d leads term %llu without committed index %llu",
							  gi, nid, (unsigned long long) term, (unsigned long long) i);
			}
		}
	}

	/* the commit index never goes back; committed prefixes agree */
	if (commit < g->max_commit)
		violation(s, "commit index went back", "group %d node %d: %llu after %llu",
				  gi, nid, (unsigned long long) commit, (unsigned long long) g->max_commit);
	else if (commit > g->max_commit)
	{
		uint64_t	from = g->max_commit + 1;

		if (from < raft_first_index(g->r))
			from = raft_first_index(g->r);
		for (uint64_t i = from; i <= commit && !s->failed; i++)
		{
			const raft_entry *e;

			if (raft_entry_at(g->r, i, &e) == 0)
				check_committed_entry(s, nid, gi, e, "has committed");
		}
		g->max_commit = commit;
	}

	/* nothing is applied past the commit index */
	if (g->applied > commit && g->applied > g->snap.index)
		violation(s, "applied past commit", "group %d node %d applied %llu with commit %llu",
				  gi, nid, (unsigned long long) g->applied, (unsigned long long) commit);
	g->last_role = role;
}

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

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------
 */
static void
send_raft(sim *s, int from, int gi, const raft_message *m)
{
	msg_blob   *b;
	size_t		size = sizeof(msg_blob) + m->n_entries * sizeof(raft_entry);
	int			copies = 1;
	char	   *p;

	if (m->to < 1 || m->to > (raft_id) s->cfg.nodes)
		return;
	if (s->blocked[from][m->to])
		return;
	if (s->drop_pm && prng_chance(&s->rng, s->drop_pm))
		return;
	if (s->dup_pm && prng_chance(&s->rng, s->dup_pm))
		copies = 2;
	for (uint32_t i = 0; i < m->n_entries; i++)
		size += m->entries[i].len;

	for (int c = 0; c < copies; c++)
	{
		b = malloc(size);
		b->group = gi;
		b->m = *m;
		b->m.entries = m->n_entries ? (raft_entry *) (b + 1) : NULL;
		p = (char *) (b + 1) + m->n_entries * sizeof(raft_entry);
		for (uint32_t i = 0; i < m->n_entries; i++)
		{
			b->m.entries[i] = m->entries[i];
			b->m.entries[i].ref = NULL;
			memcpy(p, m->entries[i].data, m->entries[i].len);
			b->m.entries[i].data = m->entries[i].len ? p : NULL;
			p += m->entries[i].len;
		}
		b->m.snapshot = NULL;
		b->m.snapshot_data = NULL;
		b->m.snapshot_len = 0;
		if (m->type == RAFT_MSG_SNAPSHOT)
		{
			group	   *g = &s->nodes[from].g[gi];

			b->snap = *m->snapshot;
			b->m.snapshot = &b->snap;
			if (g->snap.index != m->snapshot->index)
				violation(s, "simulator", "node %d sends snapshot %llu but holds %llu",
						  from, (unsigned long long) m->snapshot->index,
						  (unsigned long long) g->snap.index);
			b->image = g->snap_kv;
			b->m.snapshot_data = &b->image;
			b->m.snapshot_len = sizeof(kv_state);
		}
		schedule(s, s->now + net_delay(s), EV_MSG, m->to, gi, 0, b);
	}
}

static void
reply_client(sim *s, int nid, request *req, int status, uint64_t output)
{
	request    *r = malloc(sizeof(request));

	*r = *req;
	r->status = status;
	r->output = output;
	r->hint = 0;
	if (status == 1 && req->group >= 0 && s->nodes[nid].g[req->group].r != NULL)
		r->hint = (int) raft_leader(s->nodes[nid].g[req->group].r);
	schedule(s, s->now + net_delay(s), EV_REPLY, 0, req->group, req->client, r);
}

/* ------------------------------------------------------------------------
 * The host loop of one group: ready, persist, send, apply, advance
 * ------------------------------------------------------------------------
 */
static void
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

static void
disk_write(group *g, const raft_ready *rd)
{
	if (rd->has_snapshot)
	{
		for (size_t i = 0; i < g->n_log; i++)
			free((void *) g->log[i].data);
		g->n_log = 0;
		g->snap = rd->snapshot;
		memcpy(&g->snap_kv, rd->snapshot_data, sizeof(kv_state));
	}
	if (rd->n_entries > 0)
	{
		uint64_t	first = rd->entries[0].index;

		while (g->n_log > 0 && g->log[g->n_log - 1].index >= first)
			free((void *) g->log[--g->n_log].data);
		if (g->n_log + rd->n_entries > g->cap_log)
		{
			while (g->n_log + rd->n_entries > g->cap_log)
				g->cap_log = g->cap_log ? g->cap_log * 2 : 64;
			g->log = realloc(g->log, g->cap_log * sizeof(raft_entry));
		}
		for (size_t i = 0; i < rd->n_entries; i++)
		{
			raft_entry *e = &g->log[g->n_log++];

			*e = rd->entries[i];
			e->ref = NULL;
			if (e->len)
			{
				void	   *d = malloc(e->len);

				memcpy(d, rd->entries[i].data, e->len);
				e->data = d;
			}
			else
				e->data = NULL;
		}
	}
	if (rd->has_hard_state)
		g->hs = rd->hard_state;
}

/* The ready batch is durable: finish it. */
static void
group_complete(sim *s, int nid, int gi)
{
	group	   *g = &s->nodes[nid].g[gi];
	raft_ready *rd = &g->rd;

	disk_write(g, rd);
	for (size_t i = 0; i < rd->n_persist_messages; i++)
		send_raft(s, nid, gi, &rd->persist_messages[i]);

	if (rd->has_snapshot)
	{
		g->kv = g->snap_kv;
		g->applied = rd->snapshot.index;
		answer_waiters(s, nid, gi, NULL, 0);
	}
	for (size_t i = 0; i < rd->n_committed && s->cfg.partitions; i++)
	{
		/* applied from the log in order, waiting where a merge must */
		check_committed_entry(s, nid, gi, &rd->committed[i], "applies");
		g->handed = rd->committed[i].index;
	}
	if (s->cfg.partitions)
		part_apply_committed(s, nid, gi);
	for (size_t i = 0; i < rd->n_committed && !s->cfg.partitions; i++)
	{
		const raft_entry *e = &rd->committed[i];
		uint64_t	out = 0;

		if (e->index != g->applied + 1)
			violation(s, "simulator", "group %d node %d applies %llu after %llu", gi, nid,
					  (unsigned long long) e->index, (unsigned long long) g->applied);
		check_committed_entry(s, nid, gi, e, "applies");
		if (e->type == RAFT_ENTRY_NORMAL && e->len == sizeof(kv_cmd))
		{
			kv_cmd		c;

			memcpy(&c, e->data, sizeof(c));
			out = kv_apply(&g->kv, &c);
		}
		g->applied = e->index;
		answer_waiters(s, nid, gi, e, out);
	}
	for (size_t i = 0; i < rd->n_reads; i++)
	{
		const raft_read_state *rs = &rd->reads[i];
		request		req = {0};

		/* context: client, routed generation (partition mode), seq */
		req.client = (uint32_t) (rs->context >> 56);
		req.seq = rs->context & 0xffffffffULL;
		req.group = gi;
		if (rs->index == 0)
			reply_client(s, nid, &req, 1, 0);
		else
		{
			waiter		w = {rs->index, 0, req.client, req.seq, true, 0, 0};

			if (req.client >= MAX_CLIENTS || s->clients[req.client].seq != req.seq)
				continue;		/* the client moved on */
			/* the key is the one of the client's current operation */
			w.key = s->hist[s->clients[req.client].hist].key % (s->cfg.partitions ? PKEYS : KEYS);
			w.gen = (rs->context >> 32) & 0xffffffULL;
			waiter_add(g, &w);
		}
	}
	answer_waiters(s, nid, gi, NULL, 0);

	g->pending = false;
	raft_advance(g->r, rd);

	/*
	 * Compact now and then: the state machine is the snapshot image.  Not
	 * in partition mode, which keeps whole logs as the runtime does, so
	 * that a split is always replayed from the log that made it.
	 */
	if (!s->cfg.partitions && g->applied >= g->snap.index + COMPACT_EVERY &&
		g->applied <= raft_stable_index(g->r) &&
		raft_compact(g->r, g->applied) == 0)
	{
		uint64_t	upto = g->applied;
		size_t		drop = 0;

		while (drop < g->n_log && g->log[drop].index <= upto)
			free((void *) g->log[drop++].data);
		memmove(g->log, g->log + drop, (g->n_log - drop) * sizeof(raft_entry));
		g->n_log -= drop;
		g->snap = *raft_snapshot(g->r);
		g->snap_kv = g->kv;
	}
}

/* Collect and start handling a ready batch, if any and none is pending. */
void
group_process(sim *s, int nid, int gi)
{
	node	   *n = &s->nodes[nid];
	group	   *g = &n->g[gi];

	while (n->up && !g->pending && raft_has_ready(g->r) && !s->failed)
	{
		raft_ready_get(g->r, &g->rd);
		g->pending = true;
		for (size_t i = 0; i < g->rd.n_messages; i++)
			send_raft(s, nid, gi, &g->rd.messages[i]);
		if (s->now < n->slow_fsync_until &&
			(g->rd.n_entries > 0 || g->rd.has_hard_state || g->rd.has_snapshot))
		{
			schedule(s, s->now + 1 + prng_below(&s->rng, 40), EV_FSYNC, nid, gi,
					 n->incarnation, NULL);
			return;
		}
		group_complete(s, nid, gi);
	}
}

/* ------------------------------------------------------------------------
 * Node life cycle
 * ------------------------------------------------------------------------
 */
/*
 * Start the Raft group of a partition hosted here from its durable state.
 * In plain mode the state machine is rebuilt from the snapshot and the
 * log; in partition mode it is durable and kept.
 */
void
group_start(sim *s, int nid, int gi)
{
	group	   *g = &s->nodes[nid].g[gi];
	raft_options o;
	raft_durable d;

	raft_options_init(&o, (raft_id) nid, prng_next(&s->rng));
	o.election_ticks = ELECTION_TICKS;
	o.heartbeat_ticks = 1;
	/* small messages let a leader commit part of its log (Figure 8) */
	o.max_msg_entries = s->chaos ? 1 : 16;
	o.max_inflight = 8;
	o.bugs = s->cfg.bugs & 0xff;
	o.quiesce = s->quiesce;
	memset(&d, 0, sizeof(d));
	d.hard_state = g->hs;
	d.snapshot = g->snap;
	d.entries = g->log;
	d.n_entries = g->n_log;
	g->r = raft_new(&o, &d);
	if (g->r == NULL)
	{
		violation(s, "restart", "group %d node %d: durable state refused", gi, nid);
		s->nodes[nid].up = false;
		return;
	}
	if (!s->cfg.partitions)
	{
		g->kv = g->snap_kv;
		g->applied = g->snap.index;
	}
	g->handed = g->applied;
	g->pending = false;
	g->n_waiters = 0;
	g->max_commit = raft_commit_index(g->r);
	g->last_role = RAFT_FOLLOWER;
}

static void
node_start(sim *s, int nid)
{
	node	   *n = &s->nodes[nid];

	n->up = true;
	n->incarnation++;
	for (int gi = 0; gi < s->cfg.groups && n->up; gi++)
		if (n->g[gi].exists)
			group_start(s, nid, gi);
	if (!n->up)
		return;
	if (s->cfg.partitions)
		part_check_map(s, nid);
	schedule(s, s->now + 1 + prng_below(&s->rng, TICK_MS), EV_TICK, nid, 0, n->incarnation, NULL);
}

static void
node_crash(sim *s, int nid)
{
	node	   *n = &s->nodes[nid];

	n->up = false;
	for (int gi = 0; gi < s->cfg.groups; gi++)
	{
		group	   *g = &n->g[gi];

		if (!g->exists)
			continue;
		/* a ready not yet synced is lost with the process */
		raft_free(g->r);
		g->r = NULL;
		g->pending = false;
		g->n_waiters = 0;
	}
	trace(s, EV_RESTART, nid, 0, 0, 0);
	schedule(s, s->now + 50 + prng_below(&s->rng, s->chaos ? 400 : 2000), EV_RESTART, nid, 0, 0, NULL);
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

static void
client_send(sim *s, int ci)
{
	client	   *c = &s->clients[ci];
	lin_op	   *op = &s->hist[c->hist];
	request    *r = malloc(sizeof(request));
	int			to = c->hint > 0 && prng_chance(&s->rng, 800) ? c->hint : random_up_node(s);

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
	uint64_t	k = prng_below(&s->rng, s->cfg.partitions ? PKEYS : KEYS);

	/* in partition mode the node that takes the request routes it */
	c->group = s->cfg.partitions ? 0 : (int) prng_below(&s->rng, s->cfg.groups);
	c->seq++;
	c->busy = true;
	c->hint = 0;
	c->deadline = s->now + CLIENT_TIMEOUT_MS;
	op.client = ci;
	op.key = s->cfg.partitions ? k : (uint64_t) c->group * KEYS + k;
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
	schedule(s, c->deadline, EV_CLIENT, 0, 0, ci, (void *) (uintptr_t) c->seq);
}

static void
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
		if (raft_propose(g->r, &c, sizeof(c), &idx, &term) != 0)
			reply_client(s, nid, r, 1, 0);
		else
		{
			waiter		w = {idx, term, r->client, r->seq, false, r->key, 0};

			waiter_add(g, &w);
		}
	}
	group_process(s, nid, r->group);
}

static void
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
	if (r->status == 2 && s->now + 30 < c->deadline)
	{
		/* the map moved or the partition is frozen: route again in a while */
		schedule(s, s->now + 5 + prng_below(&s->rng, 25), EV_RESEND, 0, 0, r->client,
				 (void *) (uintptr_t) c->seq);
		return;
	}
	if (r->status == 1 && s->now + 5 < c->deadline)
		client_send(s, (int) r->client);
}

/* ------------------------------------------------------------------------
 * The nemesis
 * ------------------------------------------------------------------------
 */
raft_id
leader_of(sim *s, int gi)
{
	raft_id		best = 0;
	raft_term	best_term = 0;

	for (int nid = 1; nid <= s->cfg.nodes; nid++)
	{
		node	   *n = &s->nodes[nid];

		if (n->up && n->g[gi].exists && raft_get_role(n->g[gi].r) == RAFT_LEADER &&
			raft_get_term(n->g[gi].r) >= best_term)
		{
			best = nid;
			best_term = raft_get_term(n->g[gi].r);
		}
	}
	return best;
}

static void
heal_network(sim *s)
{
	memset(s->blocked, 0, sizeof(s->blocked));
	s->drop_pm = s->cfg.faults & SIM_F_DROP ? (s->chaos ? 30 : 10) : 0;
	s->dup_pm = s->cfg.faults & SIM_F_DUP ? 10 : 0;
	s->max_delay = s->cfg.faults & SIM_F_REORDER ? 8 : 3;
}

static void
membership_change(sim *s)
{
	int			gi = (int) prng_below(&s->rng, s->cfg.groups);
	raft_id		l = leader_of(s, gi);
	group	   *g;
	const raft_conf *conf;
	int			voters;
	raft_id		absent = 0;
	raft_id		learner = 0;
	raft_id		removable = 0;

	if (l == 0 || s->nodes[l].g[gi].pending)
		return;
	g = &s->nodes[l].g[gi];
	conf = raft_get_conf(g->r);
	voters = (int) raft_conf_voters(conf);
	for (int nid = 1; nid <= s->cfg.nodes; nid++)
	{
		uint32_t	role = raft_conf_role(conf, (raft_id) nid);

		if (role == 0)
			absent = nid;
		else if (role == RAFT_LEARNER)
			learner = nid;
		else if ((raft_id) nid != l && prng_chance(&s->rng, 500))
			removable = nid;
	}
	/* partitions keep the members of the roster: only leaders move */
	switch (s->cfg.partitions ? 3 : prng_below(&s->rng, 4))
	{
		case 0:
			if (absent)
			{
				(void) raft_propose_conf(g->r, RAFT_CC_ADD_LEARNER, absent, NULL, NULL);
				trace(s, EV_NEMESIS, l, gi, 10, absent);
			}
			break;
		case 1:
			if (learner)
			{
				(void) raft_propose_conf(g->r, RAFT_CC_ADD_VOTER, learner, NULL, NULL);
				trace(s, EV_NEMESIS, l, gi, 11, learner);
			}
			break;
		case 2:
			if (removable && voters > 2)
			{
				(void) raft_propose_conf(g->r, RAFT_CC_REMOVE, removable, NULL, NULL);
				trace(s, EV_NEMESIS, l, gi, 12, removable);
			}
			break;
		default:
			{
				raft_id		to = 1 + (raft_id) prng_below(&s->rng, s->cfg.nodes);

				if (to != l && raft_conf_role(conf, to) == RAFT_VOTER)
				{
					(void) raft_transfer_leader(g->r, to);
					trace(s, EV_NEMESIS, l, gi, 13, to);
				}
			}
			break;
	}
	group_process(s, l, gi);
}

static void
nemesis(sim *s)
{
	uint32_t	f = s->cfg.faults;
	int			nid = 1 + (int) prng_below(&s->rng, s->cfg.nodes);
	uint64_t	dur = 100 + prng_below(&s->rng, s->chaos ? 600 : 2000);
	/* the chaos profile mostly isolates and crashes leaders */
	int			pick = s->chaos ? (int) prng_below(&s->rng, 5) : (int) prng_below(&s->rng, 9);

	if (!s->faults_on)
		return;
	if (s->cfg.partitions && prng_chance(&s->rng, 250))
	{
		part_nemesis(s);
		return;
	}
	switch (pick)
	{
		case 0:
		case 1:
			if (f & SIM_F_PARTITION)
			{
				int			mode = (int) prng_below(&s->rng, 4);

				memset(s->blocked, 0, sizeof(s->blocked));
				if (s->chaos && mode > 1)
					mode = 0;
				if (mode == 0)
				{
					/* isolate the leader of group 0 */
					raft_id		l = leader_of(s, 0);

					nid = l ? (int) l : nid;
				}
				for (int a = 1; a <= s->cfg.nodes; a++)
					for (int b = 1; b <= s->cfg.nodes; b++)
					{
						bool		side_a = mode <= 1 ? a == nid : prng_chance(&s->rng, 500);

						if (a == b)
							continue;
						if (mode <= 1 && (a == nid || b == nid))
							s->blocked[a][b] = true;
						else if (mode == 2 && side_a != (b % 2 == 0))
							s->blocked[a][b] = true;
						else if (mode == 3 && prng_chance(&s->rng, 300))
							s->blocked[a][b] = true;	/* asymmetric */
					}
				trace(s, EV_NEMESIS, nid, 0, 1, mode);
				schedule(s, s->now + dur, EV_HEAL, 0, 0, 0, NULL);
			}
			break;
		case 2:
		case 3:
			if ((f & SIM_F_CRASH) && s->nodes[nid].up)
			{
				/* the chaos profile prefers to crash leaders */
				if (s->chaos && prng_chance(&s->rng, 600))
				{
					raft_id		l = leader_of(s, (int) prng_below(&s->rng, s->cfg.groups));

					if (l)
						nid = (int) l;
				}
				node_crash(s, nid);
			}
			break;
		case 4:
			if (f & SIM_F_FSYNC)
			{
				s->nodes[nid].slow_fsync_until = s->now + dur;
				trace(s, EV_NEMESIS, nid, 0, 2, dur);
			}
			break;
		case 5:
			if (f & SIM_F_STALL)
			{
				s->nodes[nid].stalled_until = s->now + dur / 2;
				trace(s, EV_NEMESIS, nid, 0, 3, dur / 2);
			}
			break;
		case 6:
			if (f & SIM_F_DELAY)
			{
				s->max_delay = 40;
				trace(s, EV_NEMESIS, 0, 0, 4, dur);
				schedule(s, s->now + dur, EV_HEAL, 0, 0, 0, NULL);
			}
			break;
		default:
			if (s->cfg.membership)
				membership_change(s);
			break;
	}
}

/* ------------------------------------------------------------------------
 * The event loop
 * ------------------------------------------------------------------------
 */
static void
dispatch(sim *s, const heap_event *ev)
{
	node	   *n = ev->node ? &s->nodes[ev->node] : NULL;

	/* a stalled node handles nothing until it wakes */
	if (n && n->up && s->now < n->stalled_until &&
		(ev->type == EV_MSG || ev->type == EV_TICK || ev->type == EV_REQUEST || ev->type == EV_FSYNC))
	{
		heap_push(&s->events, n->stalled_until + prng_below(&s->rng, 3), ev->type,
				  ev->node, ev->group, ev->arg, ev->payload);
		return;
	}

	switch (ev->type)
	{
		case EV_MSG:
			{
				msg_blob   *b = ev->payload;

				if (n->up && !n->g[b->group].exists)
					n->last_heard[b->m.from] = s->now;	/* a group not here yet */
				else if (n->up)
				{
					group	   *g = &n->g[b->group];

					n->last_heard[b->m.from] = s->now;
					raft_term	term = raft_get_term(g->r);
					int			role = raft_get_role(g->r);

					if (!g->pending)
					{
						trace(s, EV_MSG, ev->node, b->group, b->m.type, b->m.from);
						(void) raft_step(g->r, &b->m);
						s->res->messages++;
						group_process(s, ev->node, b->group);
						check_group(s, ev->node, b->group, term, role);
					}
					else
					{
						/* busy with a slow fsync: the message waits its turn */
						heap_push(&s->events, s->now + 1, EV_MSG, ev->node, ev->group, 0, b);
						return;
					}
				}
				free(b);
			}
			break;
		case EV_TICK:
			if (n->up && ev->arg == n->incarnation)
			{
				bool		regained = false;

				/*
				 * Hosts watch each other once per node, not per group: a
				 * ping every few ticks; quiesced followers wake when their
				 * leader's host falls silent, and quiesced leaders when a
				 * silent host is heard from again (they rested without it).
				 */
				for (int peer = 1; peer <= s->cfg.nodes && s->quiesce; peer++)
				{
					bool		lost = peer != (int) ev->node &&
						s->now > n->last_heard[peer] + 2 * ELECTION_TICKS * TICK_MS;

					regained |= n->lost[peer] && !lost;
					n->lost[peer] = lost;
				}
				if (s->quiesce && n->ticks++ % 3 == 0)
					for (int peer = 1; peer <= s->cfg.nodes; peer++)
						if (peer != (int) ev->node && !s->blocked[ev->node][peer] &&
							!(s->drop_pm && prng_chance(&s->rng, s->drop_pm)))
							schedule(s, s->now + net_delay(s), EV_PING, peer, 0, ev->node, NULL);
				for (int gi = 0; gi < s->cfg.groups && !s->failed; gi++)
				{
					group	   *g = &n->g[gi];
					raft_term	term;
					int			role;

					if (g->pending || !g->exists)
						continue;
					term = raft_get_term(g->r);
					role = raft_get_role(g->r);
					if (raft_quiesced(g->r) && raft_get_role(g->r) == RAFT_FOLLOWER &&
						s->now > n->last_heard[raft_leader(g->r)] + 2 * ELECTION_TICKS * TICK_MS)
						raft_unquiesce(g->r);
					if (regained && raft_quiesced(g->r) && raft_get_role(g->r) == RAFT_LEADER)
						raft_unquiesce(g->r);
					raft_tick(g->r);
					/* a merge waiting for its right partition may go on */
					if (s->cfg.partitions)
						part_apply_committed(s, ev->node, gi);
					group_process(s, ev->node, gi);
					check_group(s, ev->node, gi, term, role);
				}
				schedule(s, s->now + TICK_MS, EV_TICK, ev->node, 0, n->incarnation, NULL);
			}
			break;
		case EV_FSYNC:
			if (n->up && ev->arg == n->incarnation && n->g[ev->group].pending)
			{
				group	   *g = &n->g[ev->group];
				raft_term	term = raft_get_term(g->r);
				int			role = raft_get_role(g->r);

				trace(s, EV_FSYNC, ev->node, ev->group, 0, 0);
				group_complete(s, ev->node, ev->group);
				group_process(s, ev->node, ev->group);
				check_group(s, ev->node, ev->group, term, role);
			}
			break;
		case EV_CLIENT:
			{
				client	   *c = &s->clients[ev->arg];

				if (c->busy && ev->payload != NULL && (uint64_t) (uintptr_t) ev->payload == c->seq &&
					s->now >= c->deadline)
				{
					/* give up: the outcome stays unknown */
					c->busy = false;
					s->res->pending_ops++;
					trace(s, EV_CLIENT, 0, c->group, ev->arg, 0);
				}
				if (!c->busy && s->faults_on)
					client_start(s, (int) ev->arg);
			}
			break;
		case EV_REQUEST:
			if (n->up && s->cfg.partitions)
			{
				request    *r = ev->payload;

				r->group = part_route(s, ev->node, r->key, r->kind == LIN_GET, &r->gen);
			}
			if (n->up && ((request *) ev->payload)->group >= 0 &&
				n->g[((request *) ev->payload)->group].pending)
			{
				/* busy with a slow fsync: the request waits its turn */
				heap_push(&s->events, s->now + 1, EV_REQUEST, ev->node, ev->group, ev->arg, ev->payload);
				return;
			}
			trace(s, EV_REQUEST, ev->node, ev->group, ev->arg, 0);
			on_request(s, ev->node, ev->payload);
			free(ev->payload);
			break;
		case EV_REPLY:
			trace(s, EV_REPLY, 0, ev->group, ev->arg, ((request *) ev->payload)->status);
			on_reply(s, ev->payload);
			free(ev->payload);
			break;
		case EV_NEMESIS:
			nemesis(s);
			if (s->faults_on)
				schedule(s, s->now + 20 + prng_below(&s->rng, s->chaos ? 150 : 400), EV_NEMESIS, 0, 0, 0, NULL);
			break;
		case EV_RESTART:
			if (!n->up)
			{
				trace(s, EV_RESTART, ev->node, 0, 1, 0);
				node_start(s, ev->node);
			}
			break;
		case EV_HEAL:
			heal_network(s);
			trace(s, EV_HEAL, 0, 0, 0, 0);
			break;
		case EV_PING:
			if (n->up)
				n->last_heard[ev->arg] = s->now;
			break;
		case EV_RESEND:
			{
				client	   *c = &s->clients[ev->arg];

				if (c->busy && (uint64_t) (uintptr_t) ev->payload == c->seq)
					client_send(s, (int) ev->arg);
			}
			break;
	}
}

/* Is every group led by a live node that committed an entry of its term? */
static bool
all_groups_live(sim *s)
{
	for (int gi = 0; gi < s->cfg.groups; gi++)
	{
		raft_id		l = leader_of(s, gi);
		raft	   *r;
		raft_term	t;
		bool		hosted = false;

		for (int nid = 1; nid <= s->cfg.nodes; nid++)
			hosted |= s->nodes[nid].g[gi].exists;
		if (!hosted)
			continue;			/* a partition id not allocated */
		if (l == 0)
			return false;
		r = s->nodes[l].g[gi].r;
		if (raft_term_at(r, raft_commit_index(r), &t) != 0 || t != raft_get_term(r))
			return false;
	}
	return true;
}

/*
 * Has every member of every group (as its leader's configuration says) the
 * leader's commit index and applied it?  If not, `why' says who lags.
 */
static bool
members_caught_up(sim *s, char *why, size_t len)
{
	for (int gi = 0; gi < s->cfg.groups; gi++)
	{
		raft_id		l = leader_of(s, gi);
		const raft_conf *conf;
		raft_index	commit;

		if (l == 0)
			continue;			/* not hosted anywhere: liveness covers the rest */
		conf = raft_get_conf(s->nodes[l].g[gi].r);
		commit = raft_commit_index(s->nodes[l].g[gi].r);
		for (uint32_t i = 0; i < conf->n; i++)
		{
			int			nid = (int) conf->members[i].id;
			group	   *g = &s->nodes[nid].g[gi];

			if (!s->nodes[nid].up || !g->exists || raft_commit_index(g->r) < commit ||
				g->applied < commit)
			{
				snprintf(why, len, "group %d: node %d has applied %llu of the %llu its leader %u committed",
						 gi, nid, (unsigned long long) (g->exists ? g->applied : 0),
						 (unsigned long long) commit, (unsigned) l);
				return false;
			}
		}
	}
	return true;
}

static bool
run_one_event(sim *s)
{
	heap_event	ev;

	if (!heap_pop(&s->events, &ev))
		return false;
	s->now = ev.time;
	s->step++;
	dispatch(s, &ev);
	/* the range-coverage invariant, on the node the event touched */
	if (s->cfg.partitions && ev.node != 0 && s->nodes[ev.node].up && !s->failed)
		part_check_map(s, (int) ev.node);
	return true;
}

void
sim_run(const sim_config *cfg, sim_result *res, FILE *out)
{
	sim		   *s = calloc(1, sizeof(sim));
	raft_conf	conf;
	int			initial_voters;
	uint64_t	heal_at = 0;

	memset(res, 0, sizeof(*res));
	res->ok = true;
	res->digest = 1469598103934665603ULL;
	s->cfg = *cfg;
	s->res = res;
	s->out = out;
	prng_seed(&s->rng, cfg->seed);
	heap_init(&s->events);
	s->chaos = prng_chance(&s->rng, 400);
	/* odd seeds quiesce; drawn from the seed, not the PRNG, so even seeds
	 * replay exactly as they did before quiescence existed */
	s->quiesce = (cfg->seed & 1) == 1;
	s->faults_on = true;
	heal_network(s);

	/* with membership changes one node starts outside the groups */
	memset(&conf, 0, sizeof(conf));
	initial_voters = cfg->membership && !cfg->partitions && cfg->nodes > 3 ?
		cfg->nodes - 1 : cfg->nodes;
	for (int i = 1; i <= initial_voters; i++)
	{
		conf.members[conf.n].id = (raft_id) i;
		conf.members[conf.n].role = RAFT_VOTER;
		conf.n++;
	}
	if (cfg->partitions)
		part_init(s, &conf);
	else
		for (int nid = 1; nid <= cfg->nodes; nid++)
			for (int gi = 0; gi < cfg->groups; gi++)
			{
				s->nodes[nid].g[gi].snap.conf = conf;
				s->nodes[nid].g[gi].exists = true;
			}
	for (int nid = 1; nid <= cfg->nodes; nid++)
		node_start(s, nid);
	for (int ci = 0; ci < cfg->clients && ci < MAX_CLIENTS; ci++)
		schedule(s, 1 + prng_below(&s->rng, 100), EV_CLIENT, 0, 0, ci, NULL);
	schedule(s, 200, EV_NEMESIS, 0, 0, 0, NULL);

	/* the faulty phase */
	while (!s->failed && s->step < cfg->steps && run_one_event(s))
		;

	/* heal everything and expect every group to recover */
	if (!s->failed)
	{
		s->faults_on = false;
		heal_network(s);
		for (int nid = 1; nid <= cfg->nodes; nid++)
		{
			s->nodes[nid].stalled_until = 0;
			s->nodes[nid].slow_fsync_until = 0;
			if (!s->nodes[nid].up)
				node_start(s, nid);
		}
		heal_at = s->now;
		trace(s, EV_HEAL, 0, 0, 1, 0);
		while (!s->failed && !all_groups_live(s) && s->now < heal_at + LIVENESS_BOUND_MS &&
			   run_one_event(s))
			;
		if (!s->failed && !all_groups_live(s))
			violation(s, "liveness", "some group has no leader committing in its term %llu ms after healing",
					  (unsigned long long) LIVENESS_BOUND_MS);
		res->liveness_ms = s->now - heal_at;
		/* let clients in flight finish or time out */
		while (!s->failed && s->now < heal_at + res->liveness_ms + CLIENT_TIMEOUT_MS + 100 &&
			   run_one_event(s))
			;
	}

	/* every member catches up, quiesced or not */
	if (!s->failed)
	{
		uint64_t	until = s->now + LIVENESS_BOUND_MS;
		char		why[160];

		while (!s->failed && !members_caught_up(s, why, sizeof(why)) && s->now < until &&
			   run_one_event(s))
			;
		if (!s->failed && !members_caught_up(s, why, sizeof(why)))
			violation(s, "catch-up", "%s %llu ms after healing", why,
					  (unsigned long long) (s->now - heal_at));
	}

	/* in the end every node has applied every partition and has one map */
	if (!s->failed && cfg->partitions)
	{
		uint64_t	until = s->now + LIVENESS_BOUND_MS;
		char		why[128];

		while (!s->failed && !part_converged(s, why, sizeof(why)) && s->now < until &&
			   run_one_event(s))
			;
		if (!s->failed && !part_converged(s, why, sizeof(why)))
			violation(s, "partition convergence", "%s %llu ms after healing", why,
					  (unsigned long long) (s->now - heal_at));
	}

	/* the client history must be linearizable */
	if (!s->failed)
	{
		lin_result	lr = lin_check(s->hist, s->n_hist, 2000000);

		res->lin_gave_up = lr.gave_up;
		if (!lr.ok)
			violation(s, "linearizability", "%s", lr.why);
	}

	res->steps = s->step;
	res->sim_ms = s->now;
	res->splits = s->splits;
	res->merges = s->merges;
	{
		heap_event	ev;

		while (heap_pop(&s->events, &ev))
			free(ev.payload && (ev.type == EV_MSG || ev.type == EV_REQUEST || ev.type == EV_REPLY) ? ev.payload : NULL);
	}
	heap_free(&s->events);
	for (int nid = 1; nid <= cfg->nodes; nid++)
		for (int gi = 0; gi < cfg->groups; gi++)
		{
			group	   *g = &s->nodes[nid].g[gi];

			raft_free(g->r);
			for (size_t i = 0; i < g->n_log; i++)
				free((void *) g->log[i].data);
			free(g->log);
			free(g->waiters);
		}
	for (int gi = 0; gi < SIM_MAX_GROUPS; gi++)
	{
		free(s->truth[gi].term);
		free(s->truth[gi].hash);
		free(s->truth[gi].commit_term);
		free(s->truth[gi].acked);
		free(s->truth[gi].state_hash);
		free(s->truth[gi].leader_of_term);
		free(s->range_of_gen[gi]);
	}
	free(s->hist);
	free(s);
}

int
sim_parse_faults(const char *list, uint32_t *faults)
{
	static const struct
	{
		const char *name;
		uint32_t	bit;
	}			names[] = {
		{"drop", SIM_F_DROP}, {"dup", SIM_F_DUP}, {"reorder", SIM_F_REORDER},
		{"delay", SIM_F_DELAY}, {"partition", SIM_F_PARTITION}, {"crash", SIM_F_CRASH},
		{"fsync", SIM_F_FSYNC}, {"stall", SIM_F_STALL}, {"all", SIM_F_ALL}, {"none", 0}
	};
	char		buf[256];
	char	   *tok;
	char	   *save = NULL;

	*faults = 0;
	snprintf(buf, sizeof(buf), "%s", list);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
	{
		bool		found = false;

		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strcmp(tok, names[i].name) == 0)
			{
				*faults |= names[i].bit;
				found = true;
			}
		if (!found)
			return -1;
	}
	return 0;
}

uint32_t
sim_parse_bug(const char *name)
{
	if (strcmp(name, "commit-old-term") == 0)
		return RAFT_BUG_COMMIT_OLD_TERM;
	if (strcmp(name, "forget-vote") == 0)
		return RAFT_BUG_FORGET_VOTE;
	if (strcmp(name, "no-prevote-term") == 0)
		return RAFT_BUG_NO_PREVOTE_TERM;
	if (strcmp(name, "early-apply") == 0)
		return RAFT_BUG_EARLY_APPLY;
	if (strcmp(name, "no-fencing") == 0)
		return SIM_BUG_NO_FENCING;
	if (strcmp(name, "early-merge") == 0)
		return SIM_BUG_EARLY_MERGE;
	if (strcmp(name, "stale-read") == 0)
		return SIM_BUG_STALE_READ;
	if (strcmp(name, "split-overlap") == 0)
		return SIM_BUG_SPLIT_OVERLAP;
	return 0;
}
