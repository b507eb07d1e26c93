/*-------------------------------------------------------------------------
 *
 * lin_cache.h
 *	  The linearizability checker's sets of operations (compressed bit sets
 *	  with an incremental Zobrist hash) and its cache of explored
 *	  configurations; internal to sim/linearizability.c.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/lin_cache.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_LIN_CACHE_H
#define KOMMANDER_LIN_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NIL UINT64_MAX

/* What the search state holds beyond the sets of operations linearized. */
typedef struct config
{
	uint64_t	state;			/* canonical value of the key */
	uint64_t	raw;			/* the same, not canonical, for messages */
	bool		after_pw;		/* the last operation is a pending write */
	uint64_t	before_pw;		/* if so, the state before it */
} config;

/*
 * A set of operations as bits, stored compressed as its words [lo, hi):
 * those below lo are all ones, those from hi on all zero.  `zob' is the
 * XOR of the members' Zobrist keys, a hash kept in O(1).
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

/*
 * The configurations explored: a hash table keyed by (completed set,
 * state) whose keys each head a list of the pending sets seen with it.
 * Keys live in one arena as [list, state, lo, len, words...], list nodes
 * in another as [next, active, after_pw, before_pw, lo, len, words...];
 * `active' marks a configuration still on the search stack, not yet
 * failed.  The table holds each key's full hash (0: empty) and offset.
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

/* calloc that exits on failure; zero sizes allocate one byte. */
static inline void *
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
static inline void *
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
static inline uint64_t
mix64(uint64_t z)
{
	z += 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Sets of operations */
void		bitset_init(bitset *b, int n);
void		bitset_set(bitset *b, int i);
void		bitset_clear(bitset *b, int i);
void		bitset_free(bitset *b);

/*
 * Visit the configuration (done, pend, cf): returns its node, or NIL if it
 * was visited before (see lin_cache.c).  cache_fail() marks a node explored
 * to the end.  A zeroed cache is empty.
 */
uint64_t	cache_visit(cache *c, const bitset *done, const bitset *pend, const config *cf);
void		cache_fail(cache *c, uint64_t node);
void		cache_free(cache *c);

#endif							/* KOMMANDER_LIN_CACHE_H */
