/*-------------------------------------------------------------------------
 *
 * check.c
 *	  The simulator's checkers: the trace ring and digest, violations, the
 *	  Raft safety invariants checked after every event, and the liveness
 *	  and catch-up conditions checked after healing.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/check.c
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
 * Tracing, digest and violations
 * ------------------------------------------------------------------------
 */
static const char *
ev_name(uint32_t type)
{
	static const char *names[] = {"?", "msg", "tick", "fsync", "client", "request",
	"reply", "nemesis", "restart", "heal", "ping", "resend", "chase", "image"};

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

	if (s->failed || (s->cfg.ignore != NULL && strcmp(invariant, s->cfg.ignore) == 0))
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
void
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
void
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

	/* what a leader told a node of its commit index had been committed */
	if (raft_group_commit(g->r) > t->len)
		violation(s, "group commit past the committed log",
				  "group %d node %d: told %llu, committed up to %llu",
				  gi, nid, (unsigned long long) raft_group_commit(g->r),
				  (unsigned long long) t->len);

	/* nothing is applied past the commit index */
	if (g->applied > commit && g->applied > g->snap.index)
		violation(s, "applied past commit", "group %d node %d applied %llu with commit %llu",
				  gi, nid, (unsigned long long) g->applied, (unsigned long long) commit);
	g->last_role = role;
}

/* Is every group led by a live node that committed an entry of its term? */
bool
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
		if (!hosted || (s->gone & (1ULL << gi)))
			continue;			/* a partition id not allocated, or merged away */
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
bool
members_caught_up(sim *s, char *why, size_t len)
{
	for (int gi = 0; gi < s->cfg.groups; gi++)
	{
		raft_id		l = leader_of(s, gi);
		const raft_conf *conf;
		raft_index	commit;

		if (l == 0 || (s->gone & (1ULL << gi)))
			continue;			/* not hosted anywhere: liveness covers the rest */
		conf = raft_get_conf(s->nodes[l].g[gi].r);
		commit = raft_commit_index(s->nodes[l].g[gi].r);
		for (uint32_t i = 0; i < conf->n; i++)
		{
			int			nid = roster_node(s, conf->members[i].id);
			group	   *g = &s->nodes[nid].g[gi];

			if (nid == 0 || !s->nodes[nid].up || !g->exists ||
				raft_commit_index(g->r) < commit || g->applied < commit)
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
