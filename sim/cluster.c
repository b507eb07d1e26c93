/*-------------------------------------------------------------------------
 *
 * cluster.c
 *	  The simulator's runtime for the Raft core: nodes hosting many groups,
 *	  a network of timed events that drops, duplicates, delays, reorders and
 *	  partitions, disks that lose what was not synced, the host loop of each
 *	  group, node life cycles, and the event loop that checks invariants
 *	  after every event.  Clients (client.c), the nemesis (nemesis.c), the
 *	  checkers (check.c), partitions (partition.c), their roster
 *	  (roster.c) and their images (image.c) live beside it.
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

#include "history.h"
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

uint64_t
net_delay(sim *s)
{
	return 1 + prng_below(&s->rng, s->max_delay);
}

/* ------------------------------------------------------------------------
 * Sending
 * ------------------------------------------------------------------------
 */
/*
 * What a message says of its sender is on the sender's disk already
 * (raft.h's durability order): it is of no term later than the one saved
 * (but a pre-vote's, for a term to come), a vote it grants is the vote saved, and the entries
 * an append's acknowledgement counts are in the log saved.  A reply sent
 * ahead of its write would be counted by a leader, then lost with a crash.
 */
static void
check_durable(sim *s, int from, int gi, const raft_message *m)
{
	group	   *g = &s->nodes[from].g[gi];
	uint64_t	saved_last = g->n_log ? g->log[g->n_log - 1].index : g->snap.index;

	if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_PREVOTE_RESP)
		return;
	if (m->term > g->hs.term)
		violation(s, "durability", "node %d group %d sends a message of type %u in term %llu, its saved term is %llu",
				  from, gi, m->type, (unsigned long long) m->term, (unsigned long long) g->hs.term);
	if (m->type == RAFT_MSG_VOTE_RESP && !m->reject && g->hs.vote != m->to)
		violation(s, "durability", "node %d group %d grants its vote to %llu, its saved vote is %llu",
				  from, gi, (unsigned long long) m->to, (unsigned long long) g->hs.vote);
	if (m->type == RAFT_MSG_APPEND_RESP && !m->reject && m->index > saved_last)
		violation(s, "durability", "node %d group %d acknowledges index %llu, its saved log ends at %llu",
				  from, gi, (unsigned long long) m->index, (unsigned long long) saved_last);
}

static void
send_raft(sim *s, int from, int gi, const raft_message *m)
{
	msg_blob   *b;
	size_t		size = sizeof(msg_blob) + m->n_entries * sizeof(raft_entry);
	int			copies = 1;
	char	   *p;
	int			to = roster_node(s, m->to);

	check_durable(s, from, gi, m);
	if (to == 0)
		return;
	if (s->blocked[from][to])
		return;
	/* the transport knows the roster's nodes only, and refuses the others */
	if (s->cfg.partitions && (!roster_listed(s, from) || !roster_listed(s, to)))
		return;
	if (s->drop_pm && prng_chance(&s->rng, s->drop_pm))
		return;
	if (s->dup_pm && prng_chance(&s->rng, s->dup_pm))
		copies = 2;
	for (uint32_t i = 0; i < m->n_entries; i++)
		size += m->entries[i].len;
	/*
	 * plain mode sends the state machine with a snapshot; partition mode
	 * sends the marker alone, and the receiver copies an image (image.c)
	 */
	if (m->type == RAFT_MSG_SNAPSHOT && !s->cfg.partitions)
		size += sizeof(kv_state);

	for (int c = 0; c < copies; c++)
	{
		b = malloc(size);
		b->group = gi;
		b->from = from;
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
			if (!s->cfg.partitions)
			{
				memcpy(b + 1, &g->snap_kv, sizeof(kv_state));
				b->m.snapshot_data = b + 1;
				b->m.snapshot_len = sizeof(kv_state);
			}
		}
		schedule(s, s->now + net_delay(s), EV_MSG, to, gi, 0, b);
	}
}

/* ------------------------------------------------------------------------
 * The host loop of one group: ready, persist, send, apply, advance
 * ------------------------------------------------------------------------
 */
static void
disk_write(group *g, const raft_ready *rd)
{
	if (rd->has_snapshot)
	{
		for (size_t i = 0; i < g->n_log; i++)
			free((void *) g->log[i].data);
		g->n_log = 0;
		g->snap = rd->snapshot;
		if (rd->snapshot_len == sizeof(kv_state))
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

/*
 * A hard state about to be saved over `g''s: its term never goes back, and
 * a vote once saved stays for its term (a node votes once per term, even
 * across restarts; §5.2).  A vote sent that is not the saved one is
 * check_durable's.
 */
static void
check_saved_vote(sim *s, int nid, int gi, const raft_hard_state *hs)
{
	const raft_hard_state *old = &s->nodes[nid].g[gi].hs;

	if (hs->term < old->term)
		violation(s, "durability", "node %d group %d saves term %llu over term %llu",
				  nid, gi, (unsigned long long) hs->term, (unsigned long long) old->term);
	else if (hs->term == old->term && old->vote != RAFT_NONE && hs->vote != old->vote)
		violation(s, "vote once", "node %d group %d saves vote %llu in term %llu, having voted for %llu",
				  nid, gi, (unsigned long long) hs->vote, (unsigned long long) hs->term,
				  (unsigned long long) old->vote);
}

/* The ready batch is durable: finish it. */
static void
group_complete(sim *s, int nid, int gi)
{
	group	   *g = &s->nodes[nid].g[gi];
	raft_ready *rd = &g->rd;

	if (rd->has_hard_state)
		check_saved_vote(s, nid, gi, &rd->hard_state);
	disk_write(g, rd);
	for (size_t i = 0; i < rd->n_persist_messages; i++)
		send_raft(s, nid, gi, &rd->persist_messages[i]);

	if (rd->has_snapshot && !s->cfg.partitions)
	{
		g->kv = g->snap_kv;
		g->applied = rd->snapshot.index;
		answer_waiters(s, nid, gi, NULL, 0);
	}
	else if (rd->has_snapshot && rd->snapshot.index > g->applied)
		violation(s, "simulator", "group %d node %d: the core installs marker %llu past applied %llu",
				  gi, nid, (unsigned long long) rd->snapshot.index,
				  (unsigned long long) g->applied);
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
	 * Compact now and then: the state machine is the snapshot image.
	 * Partition mode compacts as the runtime does (image.c).
	 */
	if (s->cfg.partitions)
		image_compact(s, nid, gi);
	else if (g->applied >= g->snap.index + COMPACT_EVERY &&
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
			g->fsync_at = s->now + 1 + prng_below(&s->rng, 40);
			schedule(s, g->fsync_at, EV_FSYNC, nid, gi, n->incarnation, NULL);
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

	raft_options_init(&o, s->ident[nid], prng_next(&s->rng));
	o.election_ticks = ELECTION_TICKS;
	o.heartbeat_ticks = 1;
	/*
	 * 1 to 16 entries a message, drawn at each start: small messages let a
	 * leader commit part of its log (Figure 8), large ones batch
	 */
	o.max_msg_entries = s->chaos ? 1 : 1u << prng_below(&s->rng, 5);
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
	g->parked = false;
	g->has_snap_msg = false;
	g->merge_wait_index = 0;
	g->n_waiters = 0;
	g->max_commit = raft_commit_index(g->r);
	g->last_role = RAFT_FOLLOWER;
	memset(&g->rec, 0, sizeof(g->rec));
	memset(&g->merge, 0, sizeof(g->merge));
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

void
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
		g->parked = false;		/* a transfer under way is lost */
		g->n_waiters = 0;
	}
	trace(s, EV_RESTART, nid, 0, 0, 0);
	schedule(s, s->now + 50 + prng_below(&s->rng, s->chaos ? 400 : 2000), EV_RESTART, nid, 0, 0, NULL);
}
/* ------------------------------------------------------------------------
 * The event loop
 * ------------------------------------------------------------------------
 */

/*
 * When an event that found `g' busy with a slow fsync may try again: just
 * after the fsync completes (events of one time go in the order they were
 * scheduled), not every millisecond until then.
 */
static uint64_t
after_fsync(sim *s, const group *g)
{
	return g->fsync_at > s->now ? g->fsync_at : s->now + 1;
}

/* An event touched a group: check it, and tell the nemesis of a new leader. */
static void
group_touched(sim *s, int nid, int gi, raft_term term_before, int role_before)
{
	check_group(s, nid, gi, term_before, role_before);
	if (role_before != RAFT_LEADER && !s->failed &&
		raft_get_role(s->nodes[nid].g[gi].r) == RAFT_LEADER)
		nemesis_new_leader(s, nid, gi);
}

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

				/* a link cut while a message is on it loses the message */
				bool		arrives = n->up && !s->blocked[b->from][ev->node];

				if (arrives && !n->g[b->group].exists)
					n->last_heard[b->from] = s->now;	/* a group not here yet */
				else if (arrives)
				{
					group	   *g = &n->g[b->group];

					n->last_heard[b->from] = s->now;
					raft_term	term = raft_get_term(g->r);
					int			role = raft_get_role(g->r);

					if (!g->pending && s->cfg.partitions &&
						image_intercept(s, ev->node, b->group, &b->m))
						trace(s, EV_IMAGE, ev->node, b->group, b->m.type, b->m.from);
					else if (!g->pending)
					{
						trace(s, EV_MSG, ev->node, b->group, b->m.type, b->m.from);
						(void) raft_step(g->r, &b->m);
						s->res->messages++;
						group_process(s, ev->node, b->group);
						group_touched(s, ev->node, b->group, term, role);
					}
					else
					{
						/* busy with a slow fsync: the message waits its turn */
						heap_push(&s->events, after_fsync(s, g), EV_MSG, ev->node, ev->group, 0, b);
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
				host_heard	heard;

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
							(!s->cfg.partitions || (roster_listed(s, peer) && roster_listed(s, ev->node))) &&
							!(s->drop_pm && prng_chance(&s->rng, s->drop_pm)))
							schedule(s, s->now + net_delay(s), EV_PING, peer, 0, ev->node, NULL);
				/* the runtime's rules of waking (src/host/wake.c), unlimited */
				roster_heard(s, ev->node, &heard);
				for (int gi = 0; gi < s->cfg.groups && !s->failed; gi++)
				{
					group	   *g = &n->g[gi];
					raft_term	term;
					int			role;
					uint64_t	woken = 0;

					if (g->pending || !g->exists || g->parked)
						continue;
					term = raft_get_term(g->r);
					role = raft_get_role(g->r);
					if (host_follower_wakes(g->r, &heard) ||
						host_leader_wakes(g->r, &heard, regained, s->now, &woken, 0,
										  roster_flaws(s)))
						raft_unquiesce(g->r);
					raft_tick(g->r);
					/* a merge waiting for its right partition may go on */
					if (s->cfg.partitions)
					{
						part_apply_committed(s, ev->node, gi);
						if (!g->exists || g->parked)
							continue;	/* waits for an image now */
						image_compact(s, ev->node, gi);
						roster_reconcile(s, ev->node, gi);
						if (!s->cfg.no_host_moves)
							part_finish_merge(s, ev->node, gi);
					}
					group_process(s, ev->node, gi);
					group_touched(s, ev->node, gi, term, role);
				}
				if (s->cfg.partitions && !s->cfg.no_host_moves && !s->failed)
					part_balance(s, ev->node);
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
				group_touched(s, ev->node, ev->group, term, role);
			}
			break;
		case EV_CLIENT:
			client_timer(s, (int) ev->arg, (uint64_t) (uintptr_t) ev->payload);
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
				heap_push(&s->events, after_fsync(s, &n->g[((request *) ev->payload)->group]),
						  EV_REQUEST, ev->node, ev->group, ev->arg, ev->payload);
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
			if (s->now < s->chase_until)
				break;			/* a chase or a node away heals when it ends */
			heal_network(s);
			trace(s, EV_HEAL, 0, 0, 0, 0);
			break;
		case EV_PING:
			if (n->up && !s->blocked[ev->arg][ev->node])
				n->last_heard[ev->arg] = s->now;
			break;
		case EV_CHASE:
			nemesis_chase(s, (int) ev->node, (int) ev->group, ev->arg,
						  (uint32_t) (uintptr_t) ev->payload);
			break;
		case EV_IMAGE:
			image_event(s, (int) ev->node, (int) ev->group, ev->arg, ev->payload);
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
	{
		part_check_map(s, (int) ev.node);
		image_check(s, (int) ev.node);
	}
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
	for (int nid = 1; nid <= cfg->nodes; nid++)
		s->ident[nid] = (raft_id) nid;
	s->next_ident = (raft_id) cfg->nodes + 1;

	/*
	 * with membership changes one node starts outside the groups (in
	 * partition mode, outside the roster)
	 */
	memset(&conf, 0, sizeof(conf));
	initial_voters = cfg->membership && cfg->nodes > 3 ? cfg->nodes - 1 : cfg->nodes;
	for (int i = 1; i <= initial_voters; i++)
	{
		conf.members[conf.n].id = (raft_id) i;
		conf.members[conf.n].role = RAFT_VOTER;
		conf.n++;
	}
	if (cfg->partitions)
	{
		roster_init(s, initial_voters);
		part_init(s, &conf);
	}
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

	/* every group's configuration comes in line with the roster */
	if (!s->failed && cfg->partitions)
	{
		uint64_t	until = s->now + LIVENESS_BOUND_MS;
		char		why[160];

		while (!s->failed && !roster_converged(s, why, sizeof(why)) && s->now < until &&
			   run_one_event(s))
			;
		if (!s->failed && !roster_converged(s, why, sizeof(why)))
			violation(s, "membership convergence", "%s %llu ms after healing", why,
					  (unsigned long long) (s->now - heal_at));
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

	/*
	 * the client history must be linearizable, and must hold something to
	 * check: a run in which no operation completed proves nothing
	 */
	if (!s->failed && res->ops == 0)
		violation(s, "no operations", "no client operation completed in %llu ms",
				  (unsigned long long) s->now);
	if (!s->failed)
	{
		lin_result	lr = lin_check(s->hist, s->n_hist, LIN_BUDGET);

		if (!lr.ok)
			violation(s, "linearizability", "%s", lr.why);
		else if (lr.gave_up)
		{
			/* inconclusive, not linearizable: the caller counts it a failure */
			res->lin_gave_up = true;
			fprintf(s->out, "inconclusive: seed %llu: %s\n", (unsigned long long) s->cfg.seed, lr.why);
		}
	}

	if (cfg->history != NULL)
		history_write(cfg->history, s->hist, s->n_hist, s->now);
	res->steps = s->step;
	res->sim_ms = s->now;
	res->splits = s->splits;
	res->merges = s->merges;
	res->roster_changes = s->roster_changes;
	{
		heap_event	ev;

		while (heap_pop(&s->events, &ev))
			free(ev.payload && (ev.type == EV_MSG || ev.type == EV_REQUEST || ev.type == EV_REPLY ||
								ev.type == EV_IMAGE) ? ev.payload : NULL);
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
