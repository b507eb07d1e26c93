/*-------------------------------------------------------------------------
 *
 * linearizability.c
 *	  WGL search for a linearization of each key's history (Lowe, "Testing
 *	  for linearizability", 2017), with a hash set of (set of linearized
 *	  operations, register value) already explored, as in Porcupine.
 *
 * A key's history becomes a doubly linked list of call and return events
 * in time order, calls first at equal times.  The search linearizes the
 * first call in the list whose operation is legal in the current state and
 * whose (set, state) is new, lifting the call and its return out of the
 * list and starting again from the head; meeting the return of an
 * operation not yet linearized is a dead end, and it backtracks.  It
 * succeeds once every completed operation is linearized: pending ones may
 * be left out.
 *
 * Four reductions keep the search small without changing its answer:
 *
 *	- Values nobody observes (no get read them, no CAS expected them) are
 *	  indistinguishable to every operation, so the state maps them all to
 *	  one stand-in; concurrent writes of unread values then meet in the
 *	  cache.
 *	- A pending operation is never linearized where it would change
 *	  nothing: leaving it out is always at least as good.
 *	- Pending writes with the same effect (same kind, expected and
 *	  canonical new value) are interchangeable once called, so they are
 *	  used in call order only: a set of k of them is always the first k.
 *	- Having linearized fewer pending operations, with the same completed
 *	  ones and the same state, leaves every option open: a configuration
 *	  whose pending set contains that of a configuration already explored
 *	  to the end (and so failed) is pruned too.  The search tries completed
 *	  operations before pending ones, so the smaller pending sets come
 *	  first.  Without this, each timed-out write doubles the configurations
 *	  that a violation late in the history must exhaust.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/linearizability.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linearizability.h"

/* One operation of the key being checked, in call order. */
typedef struct kop
{
	const lin_op *op;
	uint32_t	kind;
	bool		pending;
	bool		swapped;		/* completed CAS: it swapped */
	uint64_t	arg;			/* GET: value read; CAS: value expected */
	uint64_t	post;			/* PUT, CAS: canonical value written */
	int			cls;			/* pending write: its class of
								 * interchangeable writes, else -1 */
	int			rank;			/* its place in the class, by call */
	int			bit;			/* its bit in the completed or pending set */
} kop;

/* A call or return event; the list links are indices into the array. */
typedef struct event
{
	int			op;				/* index into the key's kops */
	bool		is_call;
	uint64_t	time;
	int			match;			/* a call's return event, or -1 */
	int			prev;
	int			next;
} event;

/* A linearized operation, to undo on backtracking. */
typedef struct frame
{
	int			call;			/* its call event */
	bool		phase;			/* the scan was trying pending calls */
	uint64_t	state;			/* the state before it */
	uint64_t	raw;			/* the same, not canonical, for messages */
	uint64_t	node;			/* its configuration's cache node */
} frame;

/*
 * A set of operations, as bits: completed operations in call order in one
 * set, pending ones in another.  Stored compressed as the words [lo, hi),
 * since those below lo are all ones and those from hi on all zero.
 * `zob' is the XOR of the members' Zobrist keys, a hash kept in O(1).
 */
typedef struct bitset
{
	uint64_t   *w;
	size_t		nwords;
	size_t		lo;				/* first word that is not all ones */
	size_t		hi;				/* one past the last nonzero word */
	uint64_t	zob;
	uint64_t   *zkeys;			/* per bit */
} bitset;

#define NIL UINT64_MAX

/*
 * The configurations explored: a hash table keyed by (completed set,
 * state) whose entries each head a list of the pending sets seen with it.
 * Keys live in one arena as [list, state, lo, len, words...], list nodes
 * in another as [next, active, lo, len, words...]; `active' marks a node
 * whose configuration is still on the search stack, not yet failed.  The
 * table holds each key's full hash (0: empty slot) and arena offset.
 */
typedef struct cache
{
	uint64_t   *hash;
	uint64_t   *off;
	size_t		cap;			/* a power of two */
	size_t		n;
	uint64_t   *keys;
	size_t		klen;
	size_t		kcap;
	uint64_t   *nodes;
	size_t		nlen;
	size_t		ncap;
} cache;

/* What the deepest dead end of the search looked like, for the message. */
typedef struct stuck
{
	int			depth;			/* operations linearized; -1: none yet */
	int			op;				/* the operation that could not go next */
	uint64_t	raw;			/* the value then, not canonical */
} stuck;

/* calloc that exits on failure; zero sizes allocate one byte. */
static void *
xcalloc(size_t n, size_t size)
{
	void	   *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
	{
		fprintf(stderr, "linearizability: out of memory\n");
		exit(2);
	}
	return p;
}

/* realloc that exits on failure. */
static void *
xrealloc(void *p, size_t n, size_t size)
{
	void	   *q = realloc(p, (n ? n : 1) * size);

	if (q == NULL)
	{
		fprintf(stderr, "linearizability: out of memory\n");
		exit(2);
	}
	return q;
}

/* The splitmix64 finalizer: a bijective mix of 64 bits. */
static uint64_t
mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* ------------------------------------------------------------------------
 * The linearized set
 * ------------------------------------------------------------------------
 */

/* An empty set of n bits. */
static void
bitset_init(bitset *b, int n)
{
	b->nwords = ((size_t) n + 63) / 64;
	b->w = xcalloc(b->nwords, sizeof(uint64_t));
	b->lo = 0;
	b->hi = 0;
	b->zob = 0;
	b->zkeys = xcalloc((size_t) n, sizeof(uint64_t));
	for (int i = 0; i < n; i++)
		b->zkeys[i] = mix64(0x6c696e656172ULL + (uint64_t) i);
}

/* Add bit i, which must be absent. */
static void
bitset_set(bitset *b, int i)
{
	size_t		w = (size_t) i / 64;

	b->w[w] |= 1ULL << (i % 64);
	b->zob ^= b->zkeys[i];
	if (w + 1 > b->hi)
		b->hi = w + 1;
	while (b->lo < b->nwords && b->w[b->lo] == ~0ULL)
		b->lo++;
}

/* Remove bit i, which must be present. */
static void
bitset_clear(bitset *b, int i)
{
	size_t		w = (size_t) i / 64;

	b->w[w] &= ~(1ULL << (i % 64));
	b->zob ^= b->zkeys[i];
	if (w < b->lo)
		b->lo = w;
	while (b->hi > 0 && b->w[b->hi - 1] == 0)
		b->hi--;
}

static void
bitset_free(bitset *b)
{
	free(b->w);
	free(b->zkeys);
}

/* ------------------------------------------------------------------------
 * The cache of explored (set, state)
 * ------------------------------------------------------------------------
 */

/* Room for `more' words at the end of an arena. */
static uint64_t *
arena_reserve(uint64_t *arena, size_t len, size_t *cap, size_t more)
{
	if (len + more > *cap)
	{
		*cap = (len + more) * 2;
		arena = xrealloc(arena, *cap, sizeof(uint64_t));
	}
	return arena;
}

/* Append b's words [lo, hi) to an arena as [lo, len, words...]. */
static size_t
arena_put_bits(uint64_t *arena, size_t at, const bitset *b)
{
	size_t		len = b->hi > b->lo ? b->hi - b->lo : 0;

	arena[at++] = b->lo;
	arena[at++] = len;
	memcpy(arena + at, b->w + b->lo, len * sizeof(uint64_t));
	return at + len;
}

/* Whether the stored [lo, len, words...] at s equals b. */
static bool
bits_equal(const uint64_t *s, const bitset *b)
{
	size_t		len = b->hi > b->lo ? b->hi - b->lo : 0;

	return s[0] == b->lo && s[1] == len &&
		memcmp(s + 2, b->w + b->lo, len * sizeof(uint64_t)) == 0;
}

/* Word i of the stored [lo, len, words...] at s. */
static inline uint64_t
stored_word(const uint64_t *s, size_t i)
{
	if (i < s[0])
		return ~0ULL;
	if (i < s[0] + s[1])
		return s[2 + i - s[0]];
	return 0;
}

/*
 * Whether the stored set at s is a subset of b (if `sub') or a superset of
 * it (if not).  Only words where either set is neither all ones nor all
 * zeros can differ.
 */
static bool
bits_contained(const uint64_t *s, const bitset *b, bool sub)
{
	size_t		from = s[0] < b->lo ? s[0] : b->lo;
	size_t		to = s[0] + s[1] > b->hi ? s[0] + s[1] : b->hi;

	for (size_t i = from; i < to; i++)
	{
		uint64_t	x = stored_word(s, i);
		uint64_t	y = b->w[i];

		if (sub ? (x & ~y) != 0 : (y & ~x) != 0)
			return false;
	}
	return true;
}

/* Double the table. */
static void
cache_grow(cache *c)
{
	size_t		cap = c->cap ? c->cap * 2 : 1024;
	uint64_t   *hash = xcalloc(cap, sizeof(uint64_t));
	uint64_t   *off = xcalloc(cap, sizeof(uint64_t));

	for (size_t i = 0; i < c->cap; i++)
		if (c->hash[i] != 0)
		{
			size_t		j = c->hash[i] & (cap - 1);

			while (hash[j] != 0)
				j = (j + 1) & (cap - 1);
			hash[j] = c->hash[i];
			off[j] = c->off[i];
		}
	free(c->hash);
	free(c->off);
	c->hash = hash;
	c->off = off;
	c->cap = cap;
}

/* The key (done, state), added if new; returns its arena offset. */
static size_t
cache_key(cache *c, const bitset *done, uint64_t state)
{
	uint64_t	h = mix64(done->zob ^ mix64(state ^ 0x7374617465ULL));
	size_t		len = done->hi > done->lo ? done->hi - done->lo : 0;
	size_t		i;

	if (h == 0)
		h = 1;
	if ((c->n + 1) * 2 > c->cap)
		cache_grow(c);
	for (i = h & (c->cap - 1); c->hash[i] != 0; i = (i + 1) & (c->cap - 1))
		if (c->hash[i] == h && c->keys[c->off[i] + 1] == state &&
			bits_equal(c->keys + c->off[i] + 2, done))
			return c->off[i];

	c->keys = arena_reserve(c->keys, c->klen, &c->kcap, 4 + len);
	c->hash[i] = h;
	c->off[i] = c->klen;
	c->n++;
	c->keys[c->klen] = NIL;
	c->keys[c->klen + 1] = state;
	c->klen = arena_put_bits(c->keys, c->klen + 2, done);
	return c->off[i];
}

/*
 * Visit the configuration (done, pend, state).  Returns NIL if it was
 * visited before, or is dominated by a failed one (same key, a subset of
 * its pending operations); else records it, active, and returns its node.
 * Failed nodes it dominates in turn are dropped from the list.
 */
static uint64_t
cache_visit(cache *c, const bitset *done, const bitset *pend, uint64_t state)
{
	size_t		key = cache_key(c, done, state);
	uint64_t   *link = &c->keys[key];
	size_t		len = pend->hi > pend->lo ? pend->hi - pend->lo : 0;
	uint64_t	node;

	while (*link != NIL)
	{
		uint64_t   *nd = c->nodes + *link;
		bool		active = nd[1] != 0;

		if (bits_equal(nd + 2, pend) || (!active && bits_contained(nd + 2, pend, true)))
			return NIL;
		if (!active && bits_contained(nd + 2, pend, false))
			*link = nd[0];
		else
			link = &nd[0];
	}

	c->nodes = arena_reserve(c->nodes, c->nlen, &c->ncap, 4 + len);
	node = c->nlen;
	c->nodes[node] = c->keys[key];
	c->nodes[node + 1] = 1;
	c->nlen = arena_put_bits(c->nodes, node + 2, pend);
	c->keys[key] = node;
	return node;
}

/* Mark a node's configuration failed: explored to the end. */
static inline void
cache_fail(cache *c, uint64_t node)
{
	c->nodes[node + 1] = 0;
}

static void
cache_free(cache *c)
{
	free(c->hash);
	free(c->off);
	free(c->keys);
	free(c->nodes);
}

/* ------------------------------------------------------------------------
 * The model
 * ------------------------------------------------------------------------
 */

/*
 * Whether `o' may take effect in `state', and the state after it.  A
 * pending operation may not where it would change nothing, nor out of its
 * class's call order.
 */
static bool
step(const kop *o, const int *used, uint64_t state, uint64_t *next)
{
	if (o->pending && used[o->cls] != o->rank)
		return false;
	switch (o->kind)
	{
		case LIN_PUT:
			*next = o->post;
			return !o->pending || o->post != state;
		case LIN_GET:
			*next = state;
			return o->arg == state;
		case LIN_CAS:
			if (o->pending)
			{
				*next = o->post;
				return state == o->arg && o->post != state;
			}
			if (o->swapped)
			{
				*next = o->post;
				return state == o->arg;
			}
			*next = state;
			return state != o->arg;
	}
	return false;
}

/* Compare uint64 values, for qsort. */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

/* Whether v is in the sorted array obs[0..n). */
static bool
observed(const uint64_t *obs, size_t n, uint64_t v)
{
	return bsearch(&v, obs, n, sizeof(uint64_t), cmp_u64) != NULL;
}

/* A pending write's effect and call order, for sorting into classes. */
typedef struct effect
{
	uint32_t	kind;
	uint64_t	arg;
	uint64_t	post;
	int			op;				/* index in call order */
} effect;

/* Order pending writes by effect, then by call, for qsort. */
static int
cmp_effect(const void *a, const void *b)
{
	const effect *x = a;
	const effect *y = b;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if (x->arg != y->arg)
		return x->arg < y->arg ? -1 : 1;
	if (x->post != y->post)
		return x->post < y->post ? -1 : 1;
	return x->op - y->op;
}

/*
 * Fill k[0..n) from one key's operations (sorted by call, pending gets
 * already dropped): canonical values, classes, bits.  Returns the
 * canonical initial state and sets *nclasses and *npending.
 */
static uint64_t
prepare(const lin_op *const *ops, int n, kop *k, int *nclasses, int *npending)
{
	uint64_t   *obs = xcalloc((size_t) n, sizeof(uint64_t));
	size_t		nobs = 0;
	effect	   *eff = xcalloc((size_t) n, sizeof(effect));
	int			npend = 0;
	int			ndone = 0;
	uint64_t	unread = UINT64_MAX;	/* stands for every unobserved value */
	uint64_t	init;

	for (int i = 0; i < n; i++)
	{
		if (ops[i]->kind == LIN_GET)
			obs[nobs++] = ops[i]->output;
		else if (ops[i]->kind == LIN_CAS)
			obs[nobs++] = ops[i]->expect;
	}
	qsort(obs, nobs, sizeof(uint64_t), cmp_u64);
	/* the stand-in must itself be unobserved; at most nobs values are */
	while (observed(obs, nobs, unread))
		unread--;

	for (int i = 0; i < n; i++)
	{
		const lin_op *op = ops[i];
		kop		   *o = &k[i];

		o->op = op;
		o->kind = op->kind;
		o->pending = op->ret == LIN_PENDING;
		o->swapped = op->kind == LIN_CAS && op->output != 0;
		o->arg = op->kind == LIN_GET ? op->output : op->kind == LIN_CAS ? op->expect : 0;
		o->post = op->kind == LIN_GET || observed(obs, nobs, op->value) ? op->value : unread;
		o->cls = -1;
		o->rank = 0;
		if (o->pending)
			eff[npend++] = (effect) {o->kind, o->arg, o->post, i};
		else
			o->bit = ndone++;
	}

	for (int j = 0; j < npend; j++)
		k[eff[j].op].bit = j;
	*npending = npend;
	/* a class is a run of equal effects; ranks follow call order */
	qsort(eff, (size_t) npend, sizeof(effect), cmp_effect);
	*nclasses = 0;
	for (int j = 0; j < npend; j++)
	{
		kop		   *o = &k[eff[j].op];
		bool		same = j > 0 && eff[j].kind == eff[j - 1].kind &&
			eff[j].arg == eff[j - 1].arg && eff[j].post == eff[j - 1].post;

		o->cls = same ? k[eff[j - 1].op].cls : (*nclasses)++;
		o->rank = same ? k[eff[j - 1].op].rank + 1 : 0;
	}
	init = observed(obs, nobs, 0) ? 0 : unread;
	free(obs);
	free(eff);
	return init;
}

/* Order events by time, calls before returns, then by operation. */
static int
cmp_event(const void *a, const void *b)
{
	const event *x = a;
	const event *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->is_call != y->is_call)
		return x->is_call ? -1 : 1;
	return x->op - y->op;
}

/* Describe an operation in a few words, into buf. */
static void
describe(const lin_op *op, char *buf, size_t len)
{
	char		ret[32];

	if (op->ret == LIN_PENDING)
		snprintf(ret, sizeof(ret), "pending");
	else
		snprintf(ret, sizeof(ret), "%llu", (unsigned long long) op->ret);
	switch (op->kind)
	{
		case LIN_PUT:
			snprintf(buf, len, "client %u put %llu [%llu, %s]", op->client,
					 (unsigned long long) op->value, (unsigned long long) op->call, ret);
			break;
		case LIN_GET:
			snprintf(buf, len, "client %u get -> %llu [%llu, %s]", op->client,
					 (unsigned long long) op->output, (unsigned long long) op->call, ret);
			break;
		case LIN_CAS:
			snprintf(buf, len, "client %u cas %llu -> %llu %s [%llu, %s]", op->client,
					 (unsigned long long) op->expect, (unsigned long long) op->value,
					 op->ret == LIN_PENDING ? "?" : op->output ? "swapped" : "failed",
					 (unsigned long long) op->call, ret);
			break;
		default:
			snprintf(buf, len, "client %u kind %u", op->client, op->kind);
			break;
	}
}

/* Lift event e out of the list. */
static inline void
unlink_event(event *ev, int e)
{
	ev[ev[e].prev].next = ev[e].next;
	ev[ev[e].next].prev = ev[e].prev;
}

/* Put event e back where it was; undo lifts in reverse order. */
static inline void
relink_event(event *ev, int e)
{
	ev[ev[e].prev].next = e;
	ev[ev[e].next].prev = e;
}

/*
 * Check one key's operations, sorted by call.  Returns 1 if linearizable,
 * 0 if not (with a message in why), -1 if the budget ran out (likewise).
 */
static int
check_key(const lin_op *const *ops, int n, uint64_t budget, char *why, size_t whylen)
{
	kop		   *k = xcalloc((size_t) n, sizeof(kop));
	event	   *ev = xcalloc((size_t) 2 * n + 2, sizeof(event));
	frame	   *stack = xcalloc((size_t) n, sizeof(frame));
	int		   *used;
	int			nclasses;
	int			npending;
	int			nev = 0;
	int			head;
	int			tail;
	int			depth = 0;
	int			returns_left = 0;
	int			entry;
	bool		phase = false;	/* false: try completed calls; true:
								 * pending ones */
	uint64_t	state;
	uint64_t	raw = 0;		/* the state, not canonical */
	uint64_t	steps = 0;
	int			result;
	bitset		done;
	bitset		pend;
	cache		seen;
	stuck		worst = {-1, -1, 0};

	state = prepare(ops, n, k, &nclasses, &npending);
	used = xcalloc((size_t) nclasses, sizeof(int));

	for (int i = 0; i < n; i++)
	{
		ev[nev++] = (event) {i, true, ops[i]->call, -1, 0, 0};
		if (!k[i].pending)
		{
			ev[nev++] = (event) {i, false, ops[i]->ret, -1, 0, 0};
			returns_left++;
		}
	}
	qsort(ev, (size_t) nev, sizeof(event), cmp_event);
	{
		int		   *ret_of = xcalloc((size_t) n, sizeof(int));

		for (int i = 0; i < nev; i++)
			if (!ev[i].is_call)
				ret_of[ev[i].op] = i;
		for (int i = 0; i < nev; i++)
			if (ev[i].is_call && !k[ev[i].op].pending)
				ev[i].match = ret_of[ev[i].op];
		free(ret_of);
	}
	/* sentinels at both ends */
	head = nev;
	tail = nev + 1;
	for (int i = 0; i < nev; i++)
	{
		ev[i].prev = i == 0 ? head : i - 1;
		ev[i].next = i + 1 < nev ? i + 1 : tail;
	}
	ev[head].next = nev > 0 ? 0 : tail;
	ev[tail].prev = nev > 0 ? nev - 1 : head;

	bitset_init(&done, returns_left);
	bitset_init(&pend, npending);
	memset(&seen, 0, sizeof(seen));

	entry = ev[head].next;
	for (;;)
	{
		if (returns_left == 0)
		{
			result = 1;
			break;
		}
		if (++steps > budget)
		{
			result = -1;
			break;
		}
		if (entry != tail && ev[entry].is_call)
		{
			const kop  *o = &k[ev[entry].op];
			bitset	   *set = o->pending ? &pend : &done;
			uint64_t	next;

			if (o->pending == phase && step(o, used, state, &next))
			{
				uint64_t	node;

				bitset_set(set, o->bit);
				node = cache_visit(&seen, &done, &pend, next);
				if (node != NIL)
				{
					stack[depth] = (frame) {entry, phase, state, raw, node};
					depth++;
					if (o->kind == LIN_PUT || (o->kind == LIN_CAS && (o->swapped || o->pending)))
						raw = o->op->value;
					state = next;
					if (o->pending)
						used[o->cls]++;
					unlink_event(ev, entry);
					if (ev[entry].match >= 0)
					{
						unlink_event(ev, ev[entry].match);
						returns_left--;
					}
					entry = ev[head].next;
					phase = false;
					continue;
				}
				bitset_clear(set, o->bit);
			}
			entry = ev[entry].next;
			continue;
		}

		/*
		 * The return of an operation not linearized yet (the tail cannot be
		 * reached while a return is left): no later call can go next.  Try
		 * the pending calls before it, then backtrack.
		 */
		if (!phase && npending > 0)
		{
			phase = true;
			entry = ev[head].next;
			continue;
		}
		if (depth > worst.depth && entry != tail)
		{
			worst.depth = depth;
			worst.op = ev[entry].op;
			worst.raw = raw;
		}
		if (depth == 0)
		{
			result = 0;
			break;
		}
		{
			const frame *f = &stack[--depth];
			const kop  *o = &k[ev[f->call].op];

			cache_fail(&seen, f->node);
			bitset_clear(o->pending ? &pend : &done, o->bit);
			if (o->pending)
				used[o->cls]--;
			if (ev[f->call].match >= 0)
			{
				relink_event(ev, ev[f->call].match);
				returns_left++;
			}
			relink_event(ev, f->call);
			state = f->state;
			raw = f->raw;
			phase = f->phase;
			entry = ev[f->call].next;
		}
	}

	if (result == 0 && worst.op >= 0)
	{
		char		what[128];
		char		msg[512];

		describe(k[worst.op].op, what, sizeof(what));
		snprintf(msg, sizeof(msg),
				 "key %llu: not linearizable: %s cannot take effect "
				 "(at best %d of %d operations linearized before it, leaving the value %llu)",
				 (unsigned long long) k[worst.op].op->key, what, worst.depth, n,
				 (unsigned long long) worst.raw);
		/* cut to the caller's buffer */
		if (whylen < sizeof(msg))
			msg[whylen - 1] = '\0';
		memcpy(why, msg, strlen(msg) + 1);
	}
	else if (result < 0)
		snprintf(why, whylen, "key %llu: search gave up after %llu steps (%d operations)",
				 (unsigned long long) ops[0]->key, (unsigned long long) budget, n);

	bitset_free(&done);
	bitset_free(&pend);
	cache_free(&seen);
	free(used);
	free(stack);
	free(ev);
	free(k);
	return result;
}

/* Order operations by key, then call, then the rest of their content. */
static int
cmp_op(const void *a, const void *b)
{
	const lin_op *x = *(const lin_op *const *) a;
	const lin_op *y = *(const lin_op *const *) b;
	const uint64_t xs[] = {x->key, x->call, x->ret, x->kind, x->value, x->expect, x->output, x->client};
	const uint64_t ys[] = {y->key, y->call, y->ret, y->kind, y->value, y->expect, y->output, y->client};

	for (size_t i = 0; i < sizeof(xs) / sizeof(xs[0]); i++)
		if (xs[i] != ys[i])
			return xs[i] < ys[i] ? -1 : 1;
	return 0;
}

lin_result
lin_check(const lin_op *ops, size_t n, uint64_t budget)
{
	lin_result	res;
	const lin_op **sorted = xcalloc(n, sizeof(lin_op *));
	size_t		m = 0;

	memset(&res, 0, sizeof(res));
	res.ok = true;
	for (size_t i = 0; i < n; i++)
	{
		const lin_op *op = &ops[i];

		if ((op->kind != LIN_PUT && op->kind != LIN_GET && op->kind != LIN_CAS) ||
			(op->ret != LIN_PENDING && op->ret < op->call))
		{
			char		what[128];

			describe(op, what, sizeof(what));
			res.ok = false;
			res.bad_key = op->key;
			snprintf(res.why, sizeof(res.why), "key %llu: malformed operation: %s",
					 (unsigned long long) op->key, what);
			free(sorted);
			return res;
		}
		/* a get whose answer never came has no effect: leave it out */
		if (!(op->kind == LIN_GET && op->ret == LIN_PENDING))
			sorted[m++] = op;
	}
	qsort(sorted, m, sizeof(lin_op *), cmp_op);

	for (size_t i = 0; i < m;)
	{
		size_t		j = i;
		int			r;
		char		why[sizeof(res.why)];

		while (j < m && sorted[j]->key == sorted[i]->key)
			j++;
		r = check_key(sorted + i, (int) (j - i), budget, why, sizeof(why));
		if (r == 0)
		{
			res.ok = false;
			res.bad_key = sorted[i]->key;
			memcpy(res.why, why, sizeof(why));
			break;
		}
		if (r < 0 && !res.gave_up)
		{
			res.gave_up = true;
			memcpy(res.why, why, sizeof(why));
		}
		i = j;
	}
	free(sorted);
	return res;
}
