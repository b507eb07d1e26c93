/*-------------------------------------------------------------------------
 *
 * lin_cache.c
 *	  The linearizability checker's sets of operations and its cache of
 *	  explored configurations (sim/lin_cache.h).
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/lin_cache.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "lin_cache.h"

/* ------------------------------------------------------------------------
 * Sets of operations
 * ------------------------------------------------------------------------
 */

/* An empty set of n bits. */
void
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
void
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
void
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

/* Free a set. */
void
bitset_free(bitset *b)
{
	free(b->w);
	free(b->zkeys);
}

/* ------------------------------------------------------------------------
 * The cache of explored configurations
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

/* Store b at arena[at] as [lo, len, words...]; returns the end. */
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
 * Whether the stored set at s is a subset of b (if `sub') or a superset
 * (if not).  Below both lo's both sets are all ones, from both hi's on
 * all zeros.
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
 * Visit the configuration (done, pend, cf).  Returns NIL if it was visited
 * before, or is dominated by one that failed: same key, a subset of its
 * pending operations, and no restriction on the next operation (after_pw
 * unset) or the same one.  Else records it, active, and returns its node;
 * failed nodes that it dominates in turn are dropped.
 */
uint64_t
cache_visit(cache *c, const bitset *done, const bitset *pend, const config *cf)
{
	size_t		key = cache_key(c, done, cf->state);
	uint64_t   *link = &c->keys[key];
	size_t		len = pend->hi > pend->lo ? pend->hi - pend->lo : 0;
	uint64_t	node;

	while (*link != NIL)
	{
		uint64_t   *nd = c->nodes + *link;
		bool		active = nd[1] != 0;
		bool		pw = nd[2] != 0;
		bool		same = pw == cf->after_pw && (!pw || nd[3] == cf->before_pw);

		if ((same && bits_equal(nd + 4, pend)) ||
			(!active && (!pw || same) && bits_contained(nd + 4, pend, true)))
			return NIL;
		if (!active && (!cf->after_pw || same) && bits_contained(nd + 4, pend, false))
			*link = nd[0];
		else
			link = &nd[0];
	}

	c->nodes = arena_reserve(c->nodes, c->nlen, &c->ncap, 6 + len);
	node = c->nlen;
	c->nodes[node] = c->keys[key];
	c->nodes[node + 1] = 1;
	c->nodes[node + 2] = cf->after_pw;
	c->nodes[node + 3] = cf->after_pw ? cf->before_pw : 0;
	c->nlen = arena_put_bits(c->nodes, node + 4, pend);
	c->keys[key] = node;
	return node;
}

/* Mark a node's configuration failed: explored to the end. */
void
cache_fail(cache *c, uint64_t node)
{
	c->nodes[node + 1] = 0;
}

/* Free the cache. */
void
cache_free(cache *c)
{
	free(c->hash);
	free(c->off);
	free(c->keys);
	free(c->nodes);
}
