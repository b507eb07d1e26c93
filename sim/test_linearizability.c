/*-------------------------------------------------------------------------
 *
 * test_linearizability.c
 *	  Unit tests of the linearizability checker on histories known to be
 *	  linearizable and known not to be; prints TAP.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/test_linearizability.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "linearizability.h"
#include "prng.h"

static int	n_tests = 0;
static int	n_failed = 0;

static void
expect(bool cond, const char *name)
{
	n_tests++;
	if (!cond)
		n_failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", n_tests, name);
}

#define P LIN_PENDING

static lin_op
put(uint32_t c, uint64_t k, uint64_t v, uint64_t call, uint64_t ret)
{
	return (lin_op) {c, k, LIN_PUT, v, 0, 0, call, ret};
}

static lin_op
get(uint32_t c, uint64_t k, uint64_t out, uint64_t call, uint64_t ret)
{
	return (lin_op) {c, k, LIN_GET, 0, 0, out, call, ret};
}

static lin_op
cas(uint32_t c, uint64_t k, uint64_t expect_, uint64_t v, uint64_t ok, uint64_t call, uint64_t ret)
{
	return (lin_op) {c, k, LIN_CAS, v, expect_, ok, call, ret};
}

static bool
linearizable(const lin_op *ops, size_t n)
{
	return lin_check(ops, n, 1000000).ok;
}

int
main(void)
{
	printf("1..22\n");

	{
		lin_op		h[] = {put(1, 1, 5, 0, 1), get(1, 1, 5, 2, 3), put(1, 1, 6, 4, 5), get(1, 1, 6, 6, 7)};

		expect(linearizable(h, 4), "a sequential history is linearizable");
	}
	{
		lin_op		h[] = {get(1, 1, 0, 0, 1)};

		expect(linearizable(h, 1), "reading an absent key gives 0");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 10), put(2, 1, 2, 0, 10), get(3, 1, 1, 11, 12), get(3, 1, 1, 13, 14)};

		expect(linearizable(h, 4), "concurrent puts may take effect in either order (1 last)");
		h[2].output = h[3].output = 2;
		expect(linearizable(h, 4), "concurrent puts may take effect in either order (2 last)");
		h[3].output = 1;
		expect(!linearizable(h, 4), "two later reads cannot see the two orders");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), get(2, 1, 0, 2, 3)};

		expect(!linearizable(h, 2), "a stale read after a completed write is not linearizable");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), get(2, 1, 7, 2, 3)};

		expect(!linearizable(h, 2), "reading a value never written is not linearizable");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 5), get(2, 1, 0, 1, 2), get(2, 1, 1, 3, 4)};

		expect(linearizable(h, 3), "reads during a write may see before, then after");
		h[1].output = 1;
		h[2].output = 0;
		expect(!linearizable(h, 3), "but not after, then before");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), cas(2, 1, 1, 2, 1, 2, 3), get(3, 1, 2, 4, 5)};

		expect(linearizable(h, 3), "a successful compare-and-set");
		h[1].output = 0;
		expect(!linearizable(h, 3), "a compare-and-set cannot fail while its condition holds");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), cas(2, 1, 9, 2, 1, 2, 3)};

		expect(!linearizable(h, 2), "a compare-and-set cannot succeed against a value that is not current");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, P), get(2, 1, 1, 5, 6)};

		expect(linearizable(h, 2), "a pending put may be seen");
		h[1].output = 0;
		expect(linearizable(h, 2), "a pending put may never take effect");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, P), get(2, 1, 1, 5, 6), get(2, 1, 0, 7, 8)};

		expect(!linearizable(h, 3), "a pending put seen once cannot be unseen");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), put(2, 1, 2, 2, 3), get(3, 1, 1, 4, 5)};

		expect(!linearizable(h, 3), "a lost acknowledged write is detected");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), get(2, 2, 0, 2, 3), put(1, 2, 3, 4, 5), get(2, 1, 1, 6, 7)};

		expect(linearizable(h, 4), "keys are independent");
		h[3].key = 2;
		expect(!linearizable(h, 4), "a read of the wrong key's value is caught");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), get(2, 1, 1, 1, 2)};

		expect(linearizable(h, 2), "an operation returning at t overlaps one called at t");
	}

	/* random histories from a real sequential execution stay linearizable */
	{
		prng		rng;
		lin_op	   *h = calloc(2000, sizeof(lin_op));
		uint64_t	value[20] = {0};
		uint64_t	t = 0;
		lin_result	r;
		int			corrupted = -1;

		prng_seed(&rng, 42);
		for (int i = 0; i < 2000; i++)
		{
			uint64_t	k = prng_below(&rng, 20);
			uint64_t	point = (t += 1 + prng_below(&rng, 3));
			uint64_t	call = point > 20 ? point - prng_below(&rng, 20) : 0;
			uint64_t	ret = point + prng_below(&rng, 20);

			switch (prng_below(&rng, 3))
			{
				case 0:
					h[i] = put(i % 8, k, i + 1, call, ret);
					value[k] = i + 1;
					break;
				case 1:
					h[i] = get(i % 8, k, value[k], call, ret);
					if (corrupted < 0 && i > 1000 && value[k] != 0)
						corrupted = i;
					break;
				default:
					{
						uint64_t	e = prng_below(&rng, 2) ? value[k] : 12345;

						h[i] = cas(i % 8, k, e, i + 1, value[k] == e, call, ret);
						if (value[k] == e)
							value[k] = i + 1;
					}
					break;
			}
		}
		r = lin_check(h, 2000, 10000000);
		expect(r.ok && !r.gave_up, "a random 2000-operation history from a sequential run is linearizable");
		h[corrupted].output = 999999;
		r = lin_check(h, 2000, 10000000);
		expect(!r.ok && r.bad_key == h[corrupted].key, "the same history with one corrupted read is not");
		r = lin_check(h, 2000, 5);
		expect(r.gave_up && r.ok, "a tiny budget gives up rather than accuse");
		free(h);
	}

	return n_failed == 0 ? 0 : 1;
}
