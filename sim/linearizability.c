/*-------------------------------------------------------------------------
 *
 * linearizability.c
 *	  WGL search for a linearization of each key's history (Lowe, "Testing
 *	  for linearizability", 2017), with a hash set of configurations
 *	  already explored, as in Porcupine.
 *
 * The completed operations of a key form a doubly linked list of call and
 * return events in time order, calls first at equal times.  The search
 * linearizes the first call in the list whose operation is legal in the
 * current state and whose configuration (operations linearized, state) is
 * new, lifts the call and its return out of the list and starts again from
 * the head.  At the first return of an operation not yet linearized, the
 * barrier, it tries the pending operations called before the barrier;
 * then it is a dead end and backtracks.  It succeeds once every completed
 * operation is linearized: pending ones may be left out.
 *
 * Pending operations (outcome unknown) are where plain WGL explodes: each
 * may take effect anywhere after its call, or never, and a violation late
 * in the history makes the search try every combination.  So the search
 * only looks for linearizations in a normal form that exists whenever any
 * linearization does (see step()), and prunes by dominance:
 *
 *	- Values nobody observes (no get read them, no CAS expected them) are
 *	  indistinguishable to every operation; the state maps them all to one
 *	  stand-in.
 *	- Pending writes with the same effect (kind, expected value, canonical
 *	  new value) form a class and are used in call order only.
 *	- A pending write goes in only right before an operation that needs
 *	  it: a get reading its value, a CAS swapping from it or failing
 *	  because of it, a pending CAS that is itself needed.  The candidates
 *	  come from an index of the classes by value written.
 *	- A configuration with the same completed operations and state as one
 *	  that failed, but more pending operations used, fails too: it is
 *	  pruned.  Completed operations are tried before pending ones, so the
 *	  configurations with fewer pending operations come first.
 *
 * The sets of operations and the cache of explored configurations are in
 * lin_cache.c.
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

#include "lin_cache.h"
#include "linearizability.h"

/* One operation of the key being checked. */
typedef struct kop
{
	const lin_op *op;
	uint32_t	kind;
	bool		pending;
	bool		swapped;		/* completed CAS: it swapped */
	uint64_t	arg;			/* GET: value read; CAS: value expected */
	uint64_t	post;			/* PUT, CAS: canonical value written */
	int			cls;			/* pending: its class, else -1 */
	int			rank;			/* pending: its place in the class */
	int			bit;			/* its bit in the completed or pending set */
} kop;

/* A call or return event of a completed operation, linked by index. */
typedef struct event
{
	int			op;				/* index into the key's kops; -1: sentinel */
	bool		is_call;
	uint64_t	time;
	int			match;			/* a call's return event */
	int			prev;
	int			next;
} event;

/* A linearized operation, to undo on backtracking. */
typedef struct frame
{
	int			op;				/* the operation */
	int			entry;			/* its call event, or -1 if pending */
	int			barrier;		/* the scan's barrier, or -1 */
	int			cpos;			/* pending: its place among candidates */
	int			ctop;			/* candidates in use by then */
	config		before;
	uint64_t	node;			/* its configuration's cache node */
} frame;

/* A pending operation's effect, to sort them into classes. */
typedef struct effect
{
	uint32_t	kind;
	uint64_t	arg;
	uint64_t	post;
	int			op;				/* kop index: call order */
} effect;

/* A class of pending writes, by value written, for the candidate index. */
typedef struct by_post
{
	uint64_t	post;
	int			cls;
} by_post;

/* Everything about one key's check. */
typedef struct keycheck
{
	int			n;
	kop		   *k;
	event	   *ev;				/* 2 per completed op, then head, tail */
	int			head;
	int			returns_left;	/* completed operations not linearized */
	int			nclasses;
	int		   *members;		/* pending ops by class, each in call order */
	int		   *start;			/* per class: its first member */
	int		   *size;			/* per class: its member count */
	int		   *used;			/* per class: members linearized */
	by_post    *index;			/* classes sorted by value written */
	uint64_t   *mark;			/* per class: last collection that saw it */
	uint64_t	stamp;
	uint64_t   *want;			/* values the calls before the barrier need */
	int		   *cand;			/* stack of pending candidates */
	size_t		ccap;
	frame	   *stack;
	int			depth;
	bitset		done;
	bitset		pend;
	cache		seen;
	uint64_t	steps;
} keycheck;

/* The deepest dead end of the search, for the message. */
typedef struct stuck
{
	int			depth;			/* operations linearized; -1: none yet */
	int			op;				/* the one whose return was the barrier */
	uint64_t	raw;			/* the value then */
} stuck;

/* ------------------------------------------------------------------------
 * The model, and the normal form of linearizations searched
 * ------------------------------------------------------------------------
 */

/*
 * Whether `o' may go next from `cf', and the state after it.
 *
 * Beyond the model, the search only considers linearizations in a normal
 * form, which any linearization can be rewritten into:
 *
 *	- no pending operation takes effect where it changes nothing (drop it);
 *	- pending writes of a class take effect in call order (exchange them:
 *	  an earlier call allows everything a later one does);
 *	- right after a pending write comes an operation that needs it: not a
 *	  put, which would leave the write without effect (drop the write),
 *	  nor a failed CAS that would have failed before the write too (swap
 *	  the two; a pending write may always move later).
 */
static bool
step(const keycheck *kc, const kop *o, const config *cf, uint64_t *next)
{
	uint64_t	state = cf->state;

	if (o->pending && kc->used[o->cls] != o->rank)
		return false;
	if (cf->after_pw && (o->kind == LIN_PUT ||
						 (o->kind == LIN_CAS && !o->pending && !o->swapped && o->arg != cf->before_pw)))
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

/* ------------------------------------------------------------------------
 * Setting up one key
 * ------------------------------------------------------------------------
 */

/* Compare uint64 values, for qsort. */
static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

/* Whether v is in the sorted array vals[0..n). */
static bool
member(const uint64_t *vals, size_t n, uint64_t v)
{
	return bsearch(&v, vals, n, sizeof(uint64_t), cmp_u64) != NULL;
}

/* Order pending operations by effect, then call, for qsort. */
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

/* Order classes by the value they write, for the index. */
static int
cmp_by_post(const void *a, const void *b)
{
	const by_post *x = a;
	const by_post *y = b;

	if (x->post != y->post)
		return x->post < y->post ? -1 : 1;
	return x->cls - y->cls;
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

/*
 * Canonical values: the stand-in for every value no operation observes,
 * and each operation's arg and post.  Returns the canonical initial state.
 */
static uint64_t
canonicalize(keycheck *kc, const lin_op *const *ops)
{
	uint64_t   *obs = xcalloc((size_t) kc->n, sizeof(uint64_t));
	size_t		nobs = 0;
	uint64_t	unread = UINT64_MAX;
	uint64_t	init;

	for (int i = 0; i < kc->n; i++)
		if (ops[i]->kind == LIN_GET)
			obs[nobs++] = ops[i]->output;
		else if (ops[i]->kind == LIN_CAS)
			obs[nobs++] = ops[i]->expect;
	qsort(obs, nobs, sizeof(uint64_t), cmp_u64);
	/* at most nobs values are observed, so this ends */
	while (member(obs, nobs, unread))
		unread--;

	for (int i = 0; i < kc->n; i++)
	{
		const lin_op *op = ops[i];
		kop		   *o = &kc->k[i];

		o->op = op;
		o->kind = op->kind;
		o->pending = op->ret == LIN_PENDING;
		o->swapped = op->kind == LIN_CAS && op->output != 0;
		o->arg = op->kind == LIN_GET ? op->output : op->kind == LIN_CAS ? op->expect : 0;
		o->post = op->kind == LIN_GET || member(obs, nobs, op->value) ? op->value : unread;
		o->cls = -1;
	}
	init = member(obs, nobs, 0) ? 0 : unread;
	free(obs);
	return init;
}

/*
 * Sort the pending operations into classes of equal effect, members in
 * call order, with the index of classes by value written.
 */
static void
make_classes(keycheck *kc)
{
	effect	   *eff = xcalloc((size_t) kc->n, sizeof(effect));
	int		   *pend = xcalloc((size_t) kc->n, sizeof(int));
	int			npend = 0;

	for (int i = 0; i < kc->n; i++)
	{
		const kop  *o = &kc->k[i];

		if (!o->pending)
			continue;
		eff[npend++] = (effect) {o->kind, o->arg, o->post, i};
	}
	qsort(eff, (size_t) npend, sizeof(effect), cmp_effect);
	for (int j = 0; j < npend; j++)
		pend[j] = eff[j].op;

	kc->members = pend;
	kc->start = xcalloc((size_t) npend, sizeof(int));
	kc->size = xcalloc((size_t) npend, sizeof(int));
	kc->index = xcalloc((size_t) npend, sizeof(by_post));
	kc->nclasses = 0;
	for (int j = 0; j < npend; j++)
	{
		kop		   *o = &kc->k[pend[j]];
		const kop  *p = j > 0 ? &kc->k[pend[j - 1]] : NULL;
		int			c;

		if (p == NULL || p->kind != o->kind || p->arg != o->arg || p->post != o->post)
		{
			c = kc->nclasses++;
			kc->start[c] = j;
			kc->index[c] = (by_post) {o->post, c};
		}
		c = kc->nclasses - 1;
		o->cls = c;
		o->rank = kc->size[c]++;
		/* a class's bits are contiguous, so used members are a prefix */
		o->bit = j;
	}
	qsort(kc->index, (size_t) kc->nclasses, sizeof(by_post), cmp_by_post);
	kc->used = xcalloc((size_t) kc->nclasses, sizeof(int));
	kc->mark = xcalloc((size_t) kc->nclasses, sizeof(uint64_t));
	bitset_init(&kc->pend, npend);
	free(eff);
}

/* The list of completed operations' calls and returns, between sentinels. */
static void
make_events(keycheck *kc)
{
	int			nev = 0;
	int		   *ret_of = xcalloc((size_t) kc->n, sizeof(int));
	int			ndone = 0;

	kc->ev = xcalloc((size_t) 2 * kc->n + 2, sizeof(event));
	for (int i = 0; i < kc->n; i++)
		if (!kc->k[i].pending)
		{
			kc->k[i].bit = ndone++;
			kc->ev[nev++] = (event) {i, true, kc->k[i].op->call, -1, 0, 0};
			kc->ev[nev++] = (event) {i, false, kc->k[i].op->ret, -1, 0, 0};
		}
	qsort(kc->ev, (size_t) nev, sizeof(event), cmp_event);
	for (int e = 0; e < nev; e++)
		if (!kc->ev[e].is_call)
			ret_of[kc->ev[e].op] = e;
	for (int e = 0; e < nev; e++)
	{
		if (kc->ev[e].is_call)
			kc->ev[e].match = ret_of[kc->ev[e].op];
		kc->ev[e].prev = e == 0 ? nev : e - 1;
		kc->ev[e].next = e + 1 < nev ? e + 1 : nev + 1;
	}
	/* the head at nev, the tail at nev + 1: a return at the end of time */
	kc->head = nev;
	kc->ev[nev] = (event) {-1, false, 0, -1, -1, nev > 0 ? 0 : nev + 1};
	kc->ev[nev + 1] = (event) {-1, false, UINT64_MAX, -1, nev > 0 ? nev - 1 : nev, -1};
	kc->returns_left = ndone;
	bitset_init(&kc->done, ndone);
	free(ret_of);
}

/* Free everything of one key's check. */
static void
keycheck_free(keycheck *kc)
{
	free(kc->k);
	free(kc->ev);
	free(kc->members);
	free(kc->start);
	free(kc->size);
	free(kc->used);
	free(kc->index);
	free(kc->mark);
	free(kc->want);
	free(kc->cand);
	free(kc->stack);
	bitset_free(&kc->done);
	bitset_free(&kc->pend);
	cache_free(&kc->seen);
}

/* ------------------------------------------------------------------------
 * The search
 * ------------------------------------------------------------------------
 */

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

/* Class c's next member if it was called by `time', else -1. */
static inline int
next_member(const keycheck *kc, int c, uint64_t time)
{
	int			o;

	if (kc->used[c] == kc->size[c])
		return -1;
	o = kc->members[kc->start[c] + kc->used[c]];
	return kc->k[o].op->call <= time ? o : -1;
}

/* Push class c's next member as a candidate if it was called in time. */
static int
push_candidate(keycheck *kc, int c, uint64_t time, int ctop)
{
	int			o;

	if (kc->mark[c] == kc->stamp)
		return ctop;
	kc->mark[c] = kc->stamp;
	if ((o = next_member(kc, c, time)) < 0)
		return ctop;
	if ((size_t) ctop == kc->ccap)
	{
		kc->ccap = kc->ccap ? kc->ccap * 2 : 64;
		kc->cand = xrealloc(kc->cand, kc->ccap, sizeof(int));
	}
	kc->cand[ctop++] = o;
	kc->steps++;
	return ctop;
}

/*
 * Push the pending operations worth trying before the barrier, from
 * state: the next member of each class called before it whose value some
 * completed operation called before it needs (a get reading it, a CAS
 * swapping from it), or a pending CAS that is itself a candidate needs.
 * A failed CAS that cannot fail in this state would take any other value,
 * so then every class is a candidate.  Returns the new top of the
 * candidate stack.
 */
static int
collect_candidates(keycheck *kc, int barrier, uint64_t state, int ctop)
{
	uint64_t	time = kc->ev[barrier].time;
	bool		any = false;
	int			nwant = 0;

	for (int e = kc->ev[kc->head].next; e != barrier; e = kc->ev[e].next)
	{
		const kop  *o = &kc->k[kc->ev[e].op];

		kc->steps++;
		if (o->kind == LIN_GET || (o->kind == LIN_CAS && o->swapped))
		{
			if (o->arg != state)
				kc->want[nwant++] = o->arg;
		}
		else if (o->kind == LIN_CAS && o->arg == state)
			any = true;
	}

	kc->stamp++;
	if (any)
	{
		for (int c = 0; c < kc->nclasses; c++)
			ctop = push_candidate(kc, c, time, ctop);
		return ctop;
	}
	/* breadth first: a pending CAS candidate wants its expected value */
	for (int i = 0; i < nwant; i++)
	{
		/* the classes writing want[i]: binary search for the first */
		int			lo = 0;
		int			hi = kc->nclasses;

		while (lo < hi)
		{
			int			mid = lo + (hi - lo) / 2;

			if (kc->index[mid].post < kc->want[i])
				lo = mid + 1;
			else
				hi = mid;
		}
		for (; lo < kc->nclasses && kc->index[lo].post == kc->want[i]; lo++)
		{
			int			c = kc->index[lo].cls;
			int			o = next_member(kc, c, time);
			int			j = 0;

			ctop = push_candidate(kc, c, time, ctop);
			if (o < 0 || kc->k[o].kind != LIN_CAS || kc->k[o].arg == state)
				continue;
			while (j < nwant && kc->want[j] != kc->k[o].arg)
				j++;
			if (j == nwant)
				kc->want[nwant++] = kc->k[o].arg;
		}
	}
	return ctop;
}

/*
 * Linearize operation o next if it may go and its configuration is new.
 * `entry' is its call event (-1 if pending); the rest is saved to resume
 * the scan on backtracking.
 */
static bool
try_op(keycheck *kc, int op, int entry, int barrier, int cpos, int ctop, config *cf)
{
	const kop  *o = &kc->k[op];
	bitset	   *set = o->pending ? &kc->pend : &kc->done;
	config		after;
	uint64_t	node;

	if (!step(kc, o, cf, &after.state))
		return false;
	after.raw = o->kind == LIN_PUT || (o->kind == LIN_CAS && (o->swapped || o->pending)) ?
		o->op->value : cf->raw;
	after.after_pw = o->pending;
	after.before_pw = o->pending ? cf->state : 0;

	bitset_set(set, o->bit);
	node = cache_visit(&kc->seen, &kc->done, &kc->pend, &after);
	if (node == NIL)
	{
		bitset_clear(set, o->bit);
		return false;
	}
	kc->stack[kc->depth++] = (frame) {op, entry, barrier, cpos, ctop, *cf, node};
	*cf = after;
	if (o->pending)
		kc->used[o->cls]++;
	else
	{
		unlink_event(kc->ev, entry);
		unlink_event(kc->ev, kc->ev[entry].match);
		kc->returns_left--;
	}
	return true;
}

/* Undo the last linearized operation; returns its frame. */
static const frame *
undo(keycheck *kc)
{
	const frame *f = &kc->stack[--kc->depth];
	const kop  *o = &kc->k[f->op];

	cache_fail(&kc->seen, f->node);
	if (o->pending)
	{
		kc->used[o->cls]--;
		bitset_clear(&kc->pend, o->bit);
	}
	else
	{
		bitset_clear(&kc->done, o->bit);
		relink_event(kc->ev, kc->ev[f->entry].match);
		relink_event(kc->ev, f->entry);
		kc->returns_left++;
	}
	return f;
}

/*
 * Search for a linearization from the initial state.  Returns 1 if found,
 * 0 if there is none (*worst describes the deepest dead end), -1 if the
 * budget ran out.
 */
static int
search(keycheck *kc, uint64_t init, uint64_t budget, stuck *worst)
{
	config		cf = {init, 0, false, 0};
	int			entry = kc->ev[kc->head].next;
	int			barrier = -1;	/* -1 while scanning completed calls */
	int			cpos = 0;		/* the next candidate, past the barrier */
	int			ctop = 0;		/* the candidate stack's top */

	for (;;)
	{
		if (kc->returns_left == 0)
			return 1;
		if (++kc->steps > budget)
			return -1;
		if (barrier < 0)
		{
			const event *e = &kc->ev[entry];

			if (e->is_call)
			{
				if (try_op(kc, e->op, entry, -1, 0, ctop, &cf))
					entry = kc->ev[kc->head].next;
				else
					entry = e->next;
				continue;
			}
			/* the first return not linearized: pending candidates next */
			barrier = entry;
			cpos = ctop;
			ctop = collect_candidates(kc, barrier, cf.state, ctop);
			continue;
		}
		if (cpos < ctop)
		{
			if (try_op(kc, kc->cand[cpos], -1, barrier, cpos, ctop, &cf))
			{
				barrier = -1;
				entry = kc->ev[kc->head].next;
			}
			else
				cpos++;
			continue;
		}

		/* nothing can go before the barrier: backtrack */
		if (kc->depth > worst->depth)
		{
			worst->depth = kc->depth;
			worst->op = kc->ev[barrier].op;
			worst->raw = cf.raw;
		}
		if (kc->depth == 0)
			return 0;
		{
			const frame *f = undo(kc);

			cf = f->before;
			barrier = f->barrier;
			ctop = f->ctop;
			if (f->entry >= 0)
				entry = kc->ev[f->entry].next;
			else
				cpos = f->cpos + 1;
		}
	}
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

/*
 * Check one key's operations, sorted by call (pending gets left out).
 * Returns 1 if linearizable, 0 if not, -1 if the budget ran out; in the
 * last two cases a message in why.
 */
static int
check_key(const lin_op *const *ops, int n, uint64_t budget, char *why, size_t whylen)
{
	keycheck	kc;
	stuck		worst = {-1, -1, 0};
	uint64_t	init;
	int			result;

	memset(&kc, 0, sizeof(kc));
	kc.n = n;
	kc.k = xcalloc((size_t) n, sizeof(kop));
	kc.want = xcalloc((size_t) 2 * n, sizeof(uint64_t));
	kc.stack = xcalloc((size_t) n, sizeof(frame));
	init = canonicalize(&kc, ops);
	make_classes(&kc);
	make_events(&kc);

	result = search(&kc, init, budget, &worst);
	if (result == 0 && worst.op >= 0)
	{
		char		what[128];
		char		msg[512];

		describe(kc.k[worst.op].op, what, sizeof(what));
		snprintf(msg, sizeof(msg),
				 "key %llu: not linearizable: %s cannot take effect "
				 "(at best %d of %d operations linearized before it, leaving the value %llu)",
				 (unsigned long long) ops[0]->key, what, worst.depth, n,
				 (unsigned long long) worst.raw);
		/* cut to the caller's buffer */
		if (whylen < sizeof(msg))
			msg[whylen - 1] = '\0';
		memcpy(why, msg, strlen(msg) + 1);
	}
	else if (result < 0)
		snprintf(why, whylen, "key %llu: search gave up after %llu steps (%d operations)",
				 (unsigned long long) ops[0]->key, (unsigned long long) budget, n);
	keycheck_free(&kc);
	return result;
}

/* ------------------------------------------------------------------------
 * The entry point
 * ------------------------------------------------------------------------
 */

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

/* Check the whole history, key by key; see linearizability.h. */
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
