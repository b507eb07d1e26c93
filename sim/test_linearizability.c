/*-------------------------------------------------------------------------
 *
 * test_linearizability.c
 *	  Unit tests of the linearizability checker: histories known to be
 *	  linearizable and known not to be, an exhaustive cross-check on small
 *	  random histories, large random histories from real executions with
 *	  and without a corrupted read, the budget, and speed.  Prints TAP.
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
#include <time.h>

#include "linearizability.h"
#include "prng.h"

#define P LIN_PENDING
#define BUDGET 2000000			/* what the simulator uses */
#define N_TESTS 56

static int	n_tests = 0;
static int	n_failed = 0;

/* Report one TAP test point. */
static void
expect(bool cond, const char *name)
{
	n_tests++;
	if (!cond)
		n_failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", n_tests, name);
}

/* A put by client c of v to key k, called at call, returning at ret. */
static lin_op
put(uint32_t c, uint64_t k, uint64_t v, uint64_t call, uint64_t ret)
{
	return (lin_op) {c, k, LIN_PUT, v, 0, 0, call, ret};
}

/* A get by client c of key k that read out. */
static lin_op
get(uint32_t c, uint64_t k, uint64_t out, uint64_t call, uint64_t ret)
{
	return (lin_op) {c, k, LIN_GET, 0, 0, out, call, ret};
}

/* A compare-and-set by client c of key k from expected to v. */
static lin_op
cas(uint32_t c, uint64_t k, uint64_t expected, uint64_t v, uint64_t swapped, uint64_t call, uint64_t ret)
{
	return (lin_op) {c, k, LIN_CAS, v, expected, swapped, call, ret};
}

#define NOPS(h) (sizeof(h) / sizeof((h)[0]))

/* Whether h is linearizable, with a budget that never runs out here. */
static bool
linearizable(const lin_op *h, size_t n)
{
	lin_result	r = lin_check(h, n, BUDGET);

	return r.ok && !r.gave_up;
}

/* Whether h is found not linearizable, with the bad key and a message. */
static bool
violates(const lin_op *h, size_t n, uint64_t key)
{
	lin_result	r = lin_check(h, n, BUDGET);
	char		prefix[40];

	snprintf(prefix, sizeof(prefix), "key %llu: ", (unsigned long long) key);
	return !r.ok && !r.gave_up && r.bad_key == key && strncmp(r.why, prefix, strlen(prefix)) == 0;
}

/* ------------------------------------------------------------------------
 * An exhaustive checker, straight from the definition, for small histories
 * ------------------------------------------------------------------------
 */

/*
 * Whether the ops not yet placed can follow, from `state': tries every op
 * all of whose real-time predecessors are placed; pending ops may be
 * placed or not; done when every completed op is placed.
 */
static bool
brute_rec(const lin_op *h, int n, bool *placed, uint64_t state, int completed_left)
{
	if (completed_left == 0)
		return true;
	for (int i = 0; i < n; i++)
	{
		bool		ready = !placed[i];
		bool		pending = h[i].ret == P;
		uint64_t	next = state;

		for (int j = 0; j < n && ready; j++)
			if (j != i && !placed[j] && h[j].ret != P && h[j].ret < h[i].call)
				ready = false;
		if (!ready)
			continue;
		switch (h[i].kind)
		{
			case LIN_PUT:
				next = h[i].value;
				break;
			case LIN_GET:
				if (!pending && h[i].output != state)
					continue;
				break;
			case LIN_CAS:
				if (pending)
					next = state == h[i].expect ? h[i].value : state;
				else if (h[i].output != 0)
				{
					if (state != h[i].expect)
						continue;
					next = h[i].value;
				}
				else if (state == h[i].expect)
					continue;
				break;
		}
		placed[i] = true;
		if (brute_rec(h, n, placed, next, completed_left - (pending ? 0 : 1)))
		{
			placed[i] = false;
			return true;
		}
		placed[i] = false;
	}
	return false;
}

/* The exhaustive answer for a one-key history. */
static bool
brute_linearizable(const lin_op *h, int n)
{
	bool		placed[16] = {false};
	int			completed = 0;

	for (int i = 0; i < n; i++)
		completed += h[i].ret != P;
	return brute_rec(h, n, placed, 0, completed);
}

/* A random small one-key history over few values, often not linearizable. */
static int
small_history(prng *rng, lin_op *h)
{
	int			n = 1 + (int) prng_below(rng, 8);

	for (int i = 0; i < n; i++)
	{
		uint64_t	call = prng_below(rng, 12);
		uint64_t	ret = prng_chance(rng, 250) ? P : call + prng_below(rng, 6);
		uint32_t	c = (uint32_t) i;

		switch (prng_below(rng, 3))
		{
			case 0:
				/* values 4 and 5 are never read: unobserved writes */
				h[i] = put(c, 1, prng_below(rng, 6), call, ret);
				break;
			case 1:
				h[i] = get(c, 1, prng_below(rng, 4), call, ret);
				break;
			default:
				{
					/* one draw per statement: argument order is unspecified */
					uint64_t	e = prng_below(rng, 4);
					uint64_t	v = prng_below(rng, 6);
					uint64_t	swapped = prng_below(rng, 2);

					h[i] = cas(c, 1, e, v, swapped, call, ret);
				}
				break;
		}
	}
	return n;
}

/* ------------------------------------------------------------------------
 * Large histories from a real sequential execution
 * ------------------------------------------------------------------------
 */

/*
 * Fill h[0..n) with a history of nclients clients over nkeys keys: each
 * operation takes effect on a real map at a distinct instant inside its
 * [call, ret], and a client's operations do not overlap.  A fraction
 * pending/1000 of the writes become pending, half of them having taken
 * effect.  Values written are unique.
 */
static void
real_history(prng *rng, lin_op *h, int n, int nkeys, int nclients, uint32_t pending, uint64_t slack)
{
	uint64_t   *val = calloc((size_t) nkeys, sizeof(uint64_t));
	uint64_t	free_at[64] = {0};
	uint64_t	t = slack + 1;

	for (int i = 0; i < n; i++)
	{
		uint32_t	c = (uint32_t) prng_below(rng, (uint64_t) nclients);
		uint64_t	k = prng_below(rng, (uint64_t) nkeys);
		uint64_t	call;
		uint64_t	ret;
		bool		lost;

		/* the instant this op takes effect: after its client is free */
		t += 1 + prng_below(rng, 3);
		if (free_at[c] >= t)
			t = free_at[c] + 1;
		call = t - prng_below(rng, t - free_at[c] < slack ? t - free_at[c] : slack);
		ret = t + prng_below(rng, slack);
		free_at[c] = ret;
		lost = prng_chance(rng, pending);
		switch (prng_below(rng, 3))
		{
			case 0:
				h[i] = put(c, k, 1000 + (uint64_t) i, call, ret);
				if (!lost || prng_chance(rng, 500))
					val[k] = h[i].value;
				break;
			case 1:
				h[i] = get(c, k, val[k], call, ret);
				lost = false;
				break;
			default:
				{
					uint64_t	e = prng_chance(rng, 500) ? val[k] : prng_chance(rng, 500) ? 0 : 1000 + prng_below(rng, (uint64_t) i + 1);
					bool		swap = val[k] == e;

					h[i] = cas(c, k, e, 1000 + (uint64_t) i, swap, call, ret);
					if (swap && (!lost || prng_chance(rng, 500)))
						val[k] = h[i].value;
				}
				break;
		}
		if (lost)
		{
			h[i].ret = P;
			h[i].output = 0;
		}
	}
	free(val);
}

/*
 * Index of a completed get that can be made to read a value overwritten
 * before it began: a write w, then a write w2 called after w returned,
 * returning before the get's call.  -1 if none; *stale gets w's value.
 */
static int
find_stale_read(const lin_op *h, int n, uint64_t *stale)
{
	for (int g = n - 1; g >= 0; g--)
	{
		if (h[g].kind != LIN_GET || h[g].ret == P)
			continue;
		for (int w2 = 0; w2 < g; w2++)
		{
			bool		wrote2 = h[w2].kind == LIN_PUT || (h[w2].kind == LIN_CAS && h[w2].output);

			if (!wrote2 || h[w2].key != h[g].key || h[w2].ret == P || h[w2].ret >= h[g].call)
				continue;
			for (int w = 0; w < w2; w++)
			{
				bool		wrote = h[w].kind == LIN_PUT || (h[w].kind == LIN_CAS && h[w].output);

				if (wrote && h[w].key == h[g].key && h[w].ret != P && h[w].ret < h[w2].call &&
					h[w].value != h[g].output)
				{
					*stale = h[w].value;
					return g;
				}
			}
		}
	}
	return -1;
}

/* Index of the last completed get in h, or -1. */
static int
last_get(const lin_op *h, int n)
{
	for (int i = n - 1; i >= 0; i--)
		if (h[i].kind == LIN_GET && h[i].ret != P)
			return i;
	return -1;
}

/* Shuffle h in place. */
static void
shuffle(prng *rng, lin_op *h, int n)
{
	for (int i = n - 1; i > 0; i--)
	{
		int			j = (int) prng_below(rng, (uint64_t) i + 1);
		lin_op		t = h[i];

		h[i] = h[j];
		h[j] = t;
	}
}

/* CPU milliseconds for lin_check(h, n, BUDGET), and its result. */
static double
timed_check(const lin_op *h, int n, lin_result *r)
{
	clock_t		t0 = clock();

	*r = lin_check(h, (size_t) n, BUDGET);
	return (double) (clock() - t0) * 1000.0 / CLOCKS_PER_SEC;
}

/* ------------------------------------------------------------------------
 * The tests
 * ------------------------------------------------------------------------
 */

/* Histories that are linearizable, some only just. */
static void
test_known_good(void)
{
	{
		lin_op		h[] = {put(1, 1, 5, 0, 1), get(1, 1, 5, 2, 3), put(1, 1, 6, 4, 5), get(1, 1, 6, 6, 7)};

		expect(linearizable(h, NOPS(h)), "a sequential history is linearizable");
	}
	{
		lin_op		h[] = {get(1, 1, 0, 0, 1), cas(1, 1, 0, 4, 1, 2, 3), get(1, 1, 4, 4, 5)};

		expect(linearizable(h, NOPS(h)), "an absent key reads 0 and a CAS expecting 0 succeeds on it");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 10), put(2, 1, 2, 0, 10), get(3, 1, 1, 11, 12), get(3, 1, 1, 13, 14)};

		expect(linearizable(h, NOPS(h)), "overlapping puts may take effect in one order (1 last)");
		h[2].output = h[3].output = 2;
		expect(linearizable(h, NOPS(h)), "overlapping puts may take effect in the other order (2 last)");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 5), get(2, 1, 0, 1, 2), get(2, 1, 1, 3, 4)};

		expect(linearizable(h, NOPS(h)), "reads during a put may see before, then after");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), cas(2, 1, 1, 2, 1, 2, 3), get(3, 1, 2, 4, 5),
		cas(2, 1, 1, 3, 0, 6, 7), get(3, 1, 2, 8, 9)};

		expect(linearizable(h, NOPS(h)), "a CAS that swaps, then one that fails, each as it should");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), cas(2, 1, 1, 2, 1, 2, 10), cas(3, 1, 1, 3, 1, 2, 10),
		get(4, 1, 3, 11, 12)};

		expect(!linearizable(h, NOPS(h)), "two overlapping CASes from the same value cannot both swap");
		h[2].output = 0;
		h[3].output = 2;
		expect(linearizable(h, NOPS(h)), "two overlapping CASes from the same value: one swaps, one fails");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), get(2, 1, 1, 1, 2)};

		expect(linearizable(h, NOPS(h)), "equal times overlap: a read called when a put returns may see it...");
		h[1].output = 0;
		expect(linearizable(h, NOPS(h)), "...or miss it");
		h[1].call = 2;
		h[1].ret = 3;
		expect(!linearizable(h, NOPS(h)), "one time unit later the put precedes the read");
	}
}

/* Histories that are not, each for one reason, and the message. */
static void
test_known_bad(void)
{
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), get(2, 1, 0, 2, 3)};

		expect(violates(h, NOPS(h), 1), "a stale read after a completed put is not linearizable");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), get(2, 1, 7, 2, 3)};

		expect(violates(h, NOPS(h), 1), "reading a value never written is not linearizable");
	}
	{
		lin_op		h[] = {get(2, 1, 1, 0, 1), put(1, 1, 1, 2, 3)};

		expect(violates(h, NOPS(h), 1), "reading a value before its put began is not linearizable");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 5), get(2, 1, 1, 1, 2), get(2, 1, 0, 3, 4)};

		expect(violates(h, NOPS(h), 1), "reads during a put cannot see after, then before");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 10), put(2, 1, 2, 0, 10),
			get(3, 1, 1, 1, 2), get(3, 1, 2, 5, 6),
		get(4, 1, 2, 1, 2), get(4, 1, 1, 5, 6)};

		expect(violates(h, NOPS(h), 1), "two readers observing two puts in contradictory orders");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 10), put(2, 1, 2, 0, 10), get(3, 1, 1, 11, 12), get(3, 1, 2, 13, 14)};

		expect(violates(h, NOPS(h), 1), "two reads after two puts cannot see the value change");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), cas(2, 1, 9, 2, 1, 2, 3)};

		expect(violates(h, NOPS(h), 1), "a CAS cannot swap against a value that is not current");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), cas(2, 1, 1, 2, 0, 2, 3)};

		expect(violates(h, NOPS(h), 1), "a CAS cannot fail while its expected value is current");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), put(2, 1, 2, 2, 3), get(3, 1, 1, 4, 5)};

		expect(violates(h, NOPS(h), 1), "a lost acknowledged put is detected");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), cas(2, 1, 1, 2, 1, 2, 3), get(3, 1, 1, 4, 5)};

		expect(violates(h, NOPS(h), 1), "a lost acknowledged CAS is detected");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), put(2, 1, 2, 2, 3), get(3, 1, 1, 4, 5)};
		lin_result	r = lin_check(h, NOPS(h), BUDGET);

		printf("# why: %s\n", r.why);
		expect(!r.ok && strstr(r.why, "key 1: ") == r.why && strstr(r.why, "client 3 get -> 1 [4, 5]") != NULL &&
			   strstr(r.why, "leaving the value 2") != NULL,
			   "the message names the key and the read that could not take effect");
	}
}

/* Operations whose outcome is unknown: may or may not take effect. */
static void
test_pending(void)
{
	{
		lin_op		h[] = {put(1, 1, 1, 0, P), get(2, 1, 1, 5, 6)};

		expect(linearizable(h, NOPS(h)), "a pending put may be seen");
		h[1].output = 0;
		expect(linearizable(h, NOPS(h)), "a pending put may never be seen");
	}
	{
		lin_op		h[] = {get(2, 1, 1, 0, 1), put(1, 1, 1, 2, P)};

		expect(violates(h, NOPS(h), 1), "a pending put cannot be seen before its call");
	}
	{
		lin_op		h[] = {put(1, 1, 5, 0, 1), put(2, 1, 1, 2, P), get(3, 1, 1, 4, 5), get(3, 1, 5, 7, 8),
		put(4, 1, 5, 3, 6)};

		expect(linearizable(h, NOPS(h)), "a pending put seen, then overwritten by an overlapping put");
		h[4].call = 2;
		h[4].ret = 3;
		expect(violates(h, NOPS(h), 1), "a pending put seen, then unseen, with the only other put before it");
		h[4].call = 9;
		h[4].ret = 10;
		expect(violates(h, NOPS(h), 1), "a pending put seen, then unseen, with the only other put after");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), cas(2, 1, 1, 2, 0, 2, P), get(3, 1, 2, 4, 5)};

		expect(linearizable(h, NOPS(h)), "a pending CAS may be seen to have swapped");
		h[1].expect = 3;
		expect(violates(h, NOPS(h), 1), "a pending CAS cannot swap against a value that is not current");
	}
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), put(2, 1, 5, 2, P), cas(3, 1, 5, 6, 0, 2, P), get(4, 1, 6, 3, 4)};

		expect(linearizable(h, NOPS(h)), "a pending CAS may swap from the value of a pending put");
		h[1].call = 5;
		expect(violates(h, NOPS(h), 1), "but not from one called after the read that saw the swap");
	}
	{
		lin_op		h[] = {get(1, 1, 0, 0, P), put(2, 1, 1, 0, 1), get(1, 1, 0, 2, P)};

		expect(linearizable(h, NOPS(h)), "pending reads say nothing");
	}
	{
		/* the failed CAS needs some unread pending put to have happened */
		lin_op		h[] = {put(1, 1, 1, 0, 1), cas(2, 1, 1, 2, 0, 3, 4), put(1, 1, 3, 5, 6), get(3, 1, 3, 7, 8),
		put(4, 1, 7, 2, P)};

		expect(linearizable(h, NOPS(h)), "an unread pending put may explain a failed CAS");
		h[4].call = 5;
		expect(violates(h, NOPS(h), 1), "but not when it was called after the CAS returned");
	}
	{
		/* two failed CASes each need an unread pending put */
		lin_op		h[] = {put(1, 1, 1, 0, 1), cas(2, 1, 1, 2, 0, 3, 4), put(1, 1, 1, 5, 6), cas(2, 1, 1, 3, 0, 7, 8),
		put(4, 1, 8, 6, P), put(5, 1, 7, 2, P)};

		expect(linearizable(h, NOPS(h)), "two unread pending puts may explain two failed CASes");
		h[4].call = 9;
		expect(violates(h, NOPS(h), 1), "one unread pending put cannot explain two failed CASes");
	}
}

/* Keys are checked apart, and the bad one is named. */
static void
test_keys(void)
{
	{
		lin_op		h[] = {put(1, 1, 1, 0, 1), get(2, 2, 0, 2, 3), put(1, 2, 3, 4, 5), get(2, 1, 1, 6, 7),
		get(2, 0, 0, 8, 9), put(1, UINT64_MAX, 4, 8, 9), get(2, UINT64_MAX, 4, 10, 11)};

		expect(linearizable(h, NOPS(h)), "keys are independent: a put on one key is not seen on another");
		h[3].output = 3;
		expect(violates(h, NOPS(h), 1), "a read of another key's value is caught, on the right key");
	}
	{
		lin_op		h[] = {put(1, 5, 1, 0, 1), put(1, 6, 1, 0, 1), get(2, 5, 1, 2, 3), get(2, 6, 0, 2, 3),
		put(1, 7, 1, 0, 1), get(2, 7, 9, 2, 3)};

		expect(violates(h, NOPS(h), 6), "the first bad key is reported, not a later one");
	}
}

/* Input that is not a history at all. */
static void
test_malformed(void)
{
	lin_op		h[] = {put(1, 1, 1, 5, 4)};

	expect(!lin_check(h, 1, BUDGET).ok, "an operation returning before its call is rejected");
	h[0] = put(1, 1, 1, 0, 1);
	h[0].kind = 9;
	expect(!lin_check(h, 1, BUDGET).ok, "an unknown kind is rejected");
	expect(lin_check(NULL, 0, BUDGET).ok, "an empty history is linearizable");
}

/* Agreement with the exhaustive checker on small random histories. */
static void
test_exhaustive(void)
{
	prng		rng;
	lin_op		h[16];
	int			agree = 0;
	int			yes = 0;
	int			no = 0;
	int			total = 20000;
	bool		first_reported = false;

	prng_seed(&rng, 7);
	for (int i = 0; i < total; i++)
	{
		int			n = small_history(&rng, h);
		bool		want = brute_linearizable(h, n);
		bool		got = linearizable(h, (size_t) n);

		if (want == got)
			agree++;
		else if (!first_reported)
		{
			first_reported = true;
			printf("# disagreement on history %d: exhaustive %d, checker %d\n", i, want, got);
			for (int j = 0; j < n; j++)
				printf("#   kind %u value %llu expect %llu output %llu [%llu, %lld]\n", h[j].kind,
					   (unsigned long long) h[j].value, (unsigned long long) h[j].expect,
					   (unsigned long long) h[j].output, (unsigned long long) h[j].call,
					   h[j].ret == P ? -1LL : (long long) h[j].ret);
		}
		if (want)
			yes++;
		else
			no++;
	}
	printf("# %d small histories: %d linearizable, %d not\n", total, yes, no);
	expect(agree == total && yes > total / 10 && no > total / 10,
		   "the checker agrees with exhaustive search on 20000 small random histories");
}

/* Large histories from real executions, clean and corrupted. */
static void
test_random(void)
{
	prng		rng;
	int			n = 2000;
	lin_op	   *h = calloc((size_t) n, sizeof(lin_op));
	lin_op	   *copy = calloc((size_t) n, sizeof(lin_op));
	lin_result	r;
	lin_result	r2;
	int			g;
	int			caught;
	int			tried;
	double		ms;

	/* sequential executions with overlapping intervals stay linearizable */
	prng_seed(&rng, 42);
	real_history(&rng, h, n, 20, 8, 0, 20);
	r = lin_check(h, (size_t) n, BUDGET);
	expect(r.ok && !r.gave_up, "a random 2000-operation history from a real execution is linearizable");

	/* corrupt the last read: a value never written */
	g = last_get(h, n);
	memcpy(copy, h, (size_t) n * sizeof(lin_op));
	copy[g].output = 999999999;
	r = lin_check(copy, (size_t) n, BUDGET);
	expect(!r.ok && r.bad_key == copy[g].key, "...and not with its last read changed to a value never written");

	/* corrupt one read: a value overwritten before it began */
	memcpy(copy, h, (size_t) n * sizeof(lin_op));
	{
		uint64_t	stale = 0;

		g = find_stale_read(copy, n, &stale);
		copy[g].output = stale;
	}
	r = lin_check(copy, (size_t) n, BUDGET);
	printf("# why: %s\n", r.why);
	expect(g >= 0 && !r.ok && r.bad_key == copy[g].key, "...and not with one read changed to a stale value");

	/* the result does not depend on the order of the operations */
	shuffle(&rng, copy, n);
	r2 = lin_check(copy, (size_t) n, BUDGET);
	expect(!r2.ok && r2.bad_key == r.bad_key && strcmp(r.why, r2.why) == 0,
		   "shuffling the history changes neither the verdict nor the message");

	/* many seeds, with pending writes, at high concurrency */
	caught = 0;
	tried = 0;
	{
		int			good = 0;

		for (uint64_t seed = 1; seed <= 30; seed++)
		{
			uint64_t	stale = 0;

			prng_seed(&rng, seed);
			real_history(&rng, h, 500, 3, 8, 100, 30);
			r = lin_check(h, 500, BUDGET);
			good += r.ok && !r.gave_up;
			g = find_stale_read(h, 500, &stale);
			if (g < 0)
				continue;
			tried++;
			h[g].output = stale;
			r = lin_check(h, 500, BUDGET);
			caught += !r.ok && r.bad_key == h[g].key;
		}
		expect(good == 30, "30 seeds of 500 operations on 3 keys, 10% of writes pending, are linearizable");
		expect(tried >= 25 && caught == tried, "and a stale read planted in each is caught");
	}

	/* a violation late in a history full of timeouts: found, not given up */
	{
		int			found = 0;

		for (uint64_t seed = 1; seed <= 5; seed++)
		{
			prng_seed(&rng, seed);
			real_history(&rng, h, n, 1, 8, 300, 60);
			h[last_get(h, n)].output = 999999999;
			r = lin_check(h, (size_t) n, BUDGET);
			found += !r.ok && !r.gave_up;
		}
		expect(found == 5, "a bad read at the end of 2000 operations on one key, 30% of writes pending, is found");
	}

	/* the simulator's shape: 4 keys, 8 clients, many timeouts */
	prng_seed(&rng, 5);
	real_history(&rng, h, n, 4, 8, 300, 40);
	ms = timed_check(h, n, &r);
	printf("# 2000 ops, 4 keys, 8 clients, 30%% of writes pending: %.1f ms\n", ms);
	expect(r.ok && !r.gave_up, "2000 operations on 4 keys with 30% of writes pending are linearizable within budget");

	/* 2000 operations over 20 keys, 8 clients; the time is reported, not asserted */
	prng_seed(&rng, 6);
	real_history(&rng, h, n, 20, 8, 50, 20);
	ms = timed_check(h, n, &r);
	printf("# 2000 ops, 20 keys, 8 clients: %.1f ms\n", ms);
	expect(r.ok && !r.gave_up, "2000 operations over 20 keys are linearizable within budget");

	free(h);
	free(copy);
}

/* Running out of budget is inconclusive, never an accusation. */
static void
test_budget(void)
{
	prng		rng;
	int			n = 2000;
	lin_op	   *h = calloc((size_t) n, sizeof(lin_op));
	lin_result	r;
	int			g;

	prng_seed(&rng, 42);
	real_history(&rng, h, n, 1, 8, 0, 20);
	r = lin_check(h, (size_t) n, 100);
	expect(r.ok && r.gave_up && strstr(r.why, "key 0: ") == r.why,
		   "a budget too small gives up, naming the key, and counts as linearizable");
	g = last_get(h, n);
	h[g].output = 999999999;
	r = lin_check(h, (size_t) n, 100);
	expect(r.ok && r.gave_up, "a budget too small gives up rather than accuse a violation it has not reached");
	r = lin_check(h, (size_t) n, BUDGET);
	expect(!r.ok && !r.gave_up, "with enough budget the same violation is found");
	free(h);
}

/* Run every test; exit status 1 if any failed. */
int
main(void)
{
	printf("1..%d\n", N_TESTS);
	test_known_good();
	test_known_bad();
	test_pending();
	test_keys();
	test_malformed();
	test_exhaustive();
	test_random();
	test_budget();
	if (n_tests != N_TESTS)
	{
		printf("# planned %d tests, ran %d\n", N_TESTS, n_tests);
		return 1;
	}
	return n_failed == 0 ? 0 : 1;
}
