/*-------------------------------------------------------------------------
 *
 * prng.h
 *	  The simulator's only source of randomness: xoshiro256** seeded by
 *	  splitmix64 from one 64-bit seed.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/prng.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_PRNG_H
#define KOMMANDER_PRNG_H

#include <stdint.h>

typedef struct prng
{
	uint64_t	s[4];
} prng;

static inline uint64_t
prng_splitmix(uint64_t *x)
{
	uint64_t	z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline void
prng_seed(prng *p, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		p->s[i] = prng_splitmix(&seed);
}

static inline uint64_t
prng_next(prng *p)
{
	uint64_t   *s = p->s;
	uint64_t	r = s[1] * 5;
	uint64_t	t = s[1] << 17;

	r = ((r << 7) | (r >> 57)) * 9;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = (s[3] << 45) | (s[3] >> 19);
	return r;
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t
prng_below(prng *p, uint64_t n)
{
	return prng_next(p) % n;
}

/* True with probability per_mille / 1000. */
static inline int
prng_chance(prng *p, uint32_t per_mille)
{
	return prng_below(p, 1000) < per_mille;
}

#endif							/* KOMMANDER_PRNG_H */
