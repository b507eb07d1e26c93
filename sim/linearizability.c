/*-------------------------------------------------------------------------
 *
 * linearizability.c
 *	  WGL search for a linearization of each key's history, with a cache
 *	  of (set of linearized operations, register value) already explored.
 *
 * The history of one key becomes a doubly linked list of call and return
 * events in time order (calls first at equal times, so that an operation
 * returning at t overlaps one called at t).  The search repeatedly tries
 * to linearize the first call whose operation is legal in the current
 * state; reaching a return whose operation is not yet linearized means a
 * dead end, and it backtracks.  Pending operations have no return event:
 * they may be linearized or left out.
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

typedef struct event
{
	int			op;				/* index into the key's ops */
	bool		is_call;
	uint64_t	time;
	int			match;			/* the call's return event, or -1 */
	int			prev;
	int			next;
} event;

typedef struct frame
{
	int			call;			/* event lifted */
	uint64_t	state;			/* state before it */
} frame;

/* A hash set of (bitset, state) */
typedef struct cache
{
	uint64_t   *slots;			/* words per entry: nwords + 1 (state) + 1
								 * (used flag) */
	size_t		cap;
	size_t		n;
	size_t		nwords;
} cache;

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

static uint64_t
hash_entry(const uint64_t *bits, size_t nwords, uint64_t state)
{
	uint64_t	h = 1469598103934665603ULL ^ state;

	for (size_t i = 0; i < nwords; i++)
	{
		h ^= bits[i];
		h *= 1099511628211ULL;
		h ^= h >> 29;
	}
	return h;
}

static bool cache_insert(cache *c, const uint64_t *bits, uint64_t state);

static void
cache_grow(cache *c)
{
	cache		bigger;
	size_t		width = c->nwords + 2;

	bigger.cap = c->cap ? c->cap * 2 : 1024;
	bigger.n = 0;
	bigger.nwords = c->nwords;
	bigger.slots = xcalloc(bigger.cap * width, sizeof(uint64_t));
	for (size_t i = 0; i < c->cap; i++)
	{
		uint64_t   *e = c->slots + i * width;

		if (e[c->nwords + 1])
			(void) cache_insert(&bigger, e, e[c->nwords]);
	}
	free(c->slots);
	*c = bigger;
}

/* Add (bits, state); false if it was there already. */
static bool
cache_insert(cache *c, const uint64_t *bits, uint64_t state)
{
	size_t		width = c->nwords + 2;
	size_t		i;

	if ((c->n + 1) * 2 > c->cap)
		cache_grow(c);
	i = hash_entry(bits, c->nwords, state) & (c->cap - 1);
	for (;;)
	{
		uint64_t   *e = c->slots + i * width;

		if (!e[c->nwords + 1])
		{
			memcpy(e, bits, c->nwords * sizeof(uint64_t));
			e[c->nwords] = state;
			e[c->nwords + 1] = 1;
			c->n++;
			return true;
		}
		if (e[c->nwords] == state && memcmp(e, bits, c->nwords * sizeof(uint64_t)) == 0)
			return false;
		i = (i + 1) & (c->cap - 1);
	}
}

/* The register's next state after `op', or false if `op' cannot happen. */
static bool
step(const lin_op *op, uint64_t state, uint64_t *next)
{
	bool		pending = op->ret == LIN_PENDING;

	switch (op->kind)
	{
		case LIN_PUT:
			*next = op->value;
			return true;
		case LIN_GET:
			*next = state;
			return pending || op->output == state;
		case LIN_CAS:
			if (pending)
			{
				*next = state == op->expect ? op->value : state;
				return true;
			}
			if (op->output)
			{
				*next = op->value;
				return state == op->expect;
			}
			*next = state;
			return state != op->expect;
	}
	return false;
}

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

static const char *
kind_name(uint32_t kind)
{
	return kind == LIN_PUT ? "put" : kind == LIN_GET ? "get" : kind == LIN_CAS ? "cas" : "?";
}

/* Check one key's operations; 1 ok, 0 not linearizable, -1 gave up. */
static int
check_key(const lin_op *const *ops, int n, uint64_t budget, char *why, size_t whylen)
{
	event	   *ev = xcalloc((size_t) 2 * n + 1, sizeof(event));
	int			nev = 0;
	int			head;
	int		   *pos;
	frame	   *stack = xcalloc((size_t) n + 1, sizeof(frame));
	int			depth = 0;
	cache		seen = {0};
	uint64_t   *bits;
	uint64_t	state = 0;
	int			returns_left = 0;
	int			entry;
	uint64_t	steps = 0;
	int			result = 1;
	int			worst = 0;

	for (int i = 0; i < n; i++)
	{
		ev[nev++] = (event) {i, true, ops[i]->call, -1, 0, 0};
		if (ops[i]->ret != LIN_PENDING)
		{
			ev[nev++] = (event) {i, false, ops[i]->ret, -1, 0, 0};
			returns_left++;
		}
	}
	qsort(ev, nev, sizeof(event), cmp_event);

	/* link calls to their returns; a sentinel head at index nev */
	pos = xcalloc((size_t) n, sizeof(int));
	for (int i = 0; i < n; i++)
		pos[i] = -1;
	for (int i = 0; i < nev; i++)
		if (!ev[i].is_call)
			pos[ev[i].op] = i;
	for (int i = 0; i < nev; i++)
		if (ev[i].is_call)
			ev[i].match = pos[ev[i].op];
	head = nev;
	ev[head].prev = -1;
	ev[head].next = nev > 0 ? 0 : -1;
	for (int i = 0; i < nev; i++)
	{
		ev[i].prev = i == 0 ? head : i - 1;
		ev[i].next = i + 1 < nev ? i + 1 : -1;
	}

	seen.nwords = ((size_t) n + 63) / 64;
	bits = xcalloc(seen.nwords ? seen.nwords : 1, sizeof(uint64_t));

	entry = ev[head].next;
	while (returns_left > 0)
	{
		if (++steps > budget)
		{
			result = -1;
			break;
		}
		if (entry == -1)
		{
			/* only pending calls are left to try here: a dead end */
			entry = -2;
		}
		if (entry >= 0 && ev[entry].is_call)
		{
			const lin_op *op = ops[ev[entry].op];
			uint64_t	next;

			if (step(op, state, &next))
			{
				int			o = ev[entry].op;

				bits[o / 64] |= 1ULL << (o % 64);
				if (cache_insert(&seen, bits, next))
				{
					int			m = ev[entry].match;

					stack[depth].call = entry;
					stack[depth].state = state;
					depth++;
					if (depth > worst)
						worst = depth;
					state = next;
					/* lift the call and its return out of the list */
					ev[ev[entry].prev].next = ev[entry].next;
					if (ev[entry].next >= 0)
						ev[ev[entry].next].prev = ev[entry].prev;
					if (m >= 0)
					{
						ev[ev[m].prev].next = ev[m].next;
						if (ev[m].next >= 0)
							ev[ev[m].next].prev = ev[m].prev;
						returns_left--;
					}
					entry = ev[head].next;
					continue;
				}
				bits[o / 64] &= ~(1ULL << (o % 64));
			}
			entry = ev[entry].next;
			continue;
		}

		/* a return whose operation is not linearized, or the end: backtrack */
		if (depth == 0)
		{
			result = 0;
			break;
		}
		depth--;
		{
			int			call = stack[depth].call;
			int			m = ev[call].match;
			int			o = ev[call].op;

			state = stack[depth].state;
			bits[o / 64] &= ~(1ULL << (o % 64));
			if (m >= 0)
			{
				ev[ev[m].prev].next = m;
				if (ev[m].next >= 0)
					ev[ev[m].next].prev = m;
				returns_left++;
			}
			ev[ev[call].prev].next = call;
			if (ev[call].next >= 0)
				ev[ev[call].next].prev = call;
			entry = ev[call].next;
		}
	}

	if (result == 0)
	{
		/* name the first operation the deepest attempt could not place */
		int			first_ret = -1;

		for (int i = 0; i < nev; i++)
			if (!ev[i].is_call)
			{
				first_ret = ev[i].op;
				break;
			}
		if (first_ret >= 0)
		{
			const lin_op *op = ops[first_ret];

			snprintf(why, whylen,
					 "key %llu: no linearization (%d of %d operations placed at best); "
					 "e.g. client %u %s value=%llu expect=%llu output=%llu [%llu, %llu]",
					 (unsigned long long) op->key, worst, n, op->client, kind_name(op->kind),
					 (unsigned long long) op->value, (unsigned long long) op->expect,
					 (unsigned long long) op->output, (unsigned long long) op->call,
					 (unsigned long long) op->ret);
		}
	}
	free(ev);
	free(pos);
	free(stack);
	free(bits);
	free(seen.slots);
	return result;
}

static int
cmp_by_key(const void *a, const void *b)
{
	const lin_op *x = *(const lin_op *const *) a;
	const lin_op *y = *(const lin_op *const *) b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->call < y->call ? -1 : (x->call > y->call ? 1 : 0);
}

lin_result
lin_check(const lin_op *ops, size_t n, uint64_t budget)
{
	lin_result	res;
	const lin_op **sorted = xcalloc(n, sizeof(lin_op *));
	size_t		m = 0;

	memset(&res, 0, sizeof(res));
	res.ok = true;
	/* a get whose answer never came has no effect: leave it out */
	for (size_t i = 0; i < n; i++)
		if (!(ops[i].kind == LIN_GET && ops[i].ret == LIN_PENDING))
			sorted[m++] = &ops[i];
	qsort(sorted, m, sizeof(lin_op *), cmp_by_key);

	for (size_t i = 0; i < m;)
	{
		size_t		j = i;
		int			r;

		while (j < m && sorted[j]->key == sorted[i]->key)
			j++;
		r = check_key(sorted + i, (int) (j - i), budget, res.why, sizeof(res.why));
		if (r == 0)
		{
			res.ok = false;
			res.bad_key = sorted[i]->key;
			break;
		}
		if (r < 0)
			res.gave_up = true;
		i = j;
	}
	free(sorted);
	return res;
}
