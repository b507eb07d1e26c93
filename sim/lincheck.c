/*-------------------------------------------------------------------------
 *
 * lincheck.c
 *	  kmd-lincheck: check a register history in JSON lines (history.h) for
 *	  linearizability, key by key, with the simulator's WGL checker
 *	  (linearizability.c), and on a violation print the smallest window of
 *	  the key's history that is not linearizable on its own.
 *
 *	  kmd-lincheck [--budget N] [FILE]		(standard input without FILE)
 *
 * The history has one JSON object per line, one line per event of an
 * operation, in the order they happened for each process:
 *
 *	{"process":2,"type":"invoke","f":"cas","key":"a","value":[3,4],"time":1100}
 *	{"process":2,"type":"ok","f":"cas","key":"a","value":[3,4],"time":1300}
 *
 * with "f" read, write or cas, "type" invoke, then ok, fail (no effect)
 * or info (outcome unknown), and monotonic integer times; history.h
 * documents every field.
 *
 * Exit status: 0 every key is linearizable; 1 a key is not; 2 bad usage,
 * a malformed history, or one with no completed operation (it would prove
 * nothing); 3 inconclusive (the search ran out of budget on some key and
 * found no violation elsewhere).
 *
 * The window [S, T] keeps the key's operations invoked at or before T and
 * not completed before S.  An operation still running at T, or already
 * running at S, counts as one of unknown outcome (a read of unknown
 * outcome tells nothing), and the value at S is unknown: any value will
 * do.  Each of these only allows more linearizations, so a window that is
 * not linearizable proves the whole history is not; and a window that
 * holds one that is not linearizable is not either, so the ends can be
 * searched for one at a time: the earliest T from the start of the
 * history, then the latest S.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/lincheck.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "lin_cache.h"
#include "linearizability.h"

#define DEFAULT_BUDGET 20000000
#define MAX_INITIAL 64			/* values tried for an unknown start */
#define NO_START UINT64_MAX		/* a window from the start of the history */
#define NO_END (UINT64_MAX - 1) /* a window to its end */

/* One key's operations, and how a window is checked. */
typedef struct keywin
{
	const history *h;
	uint64_t	budget;
	lin_op	   *ops;			/* the key's operations, by invocation */
	size_t	   *src;			/* their indexes in h->ops */
	size_t		n;
	uint64_t   *times;			/* distinct times of their events */
	size_t		n_times;
	lin_op	   *buf;			/* a window, and room for one more */
} keywin;

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t	x = *(const uint64_t *) a;
	uint64_t	y = *(const uint64_t *) b;

	return x < y ? -1 : x > y;
}

/* Is operation o in the window [start, end], and how does it count? */
static bool
in_window(const lin_op *o, uint64_t start, uint64_t end, lin_op *out)
{
	*out = *o;
	if (o->call > end || (start != NO_START && o->ret != LIN_PENDING && o->ret < start))
		return false;
	if ((start != NO_START && o->call < start) || (o->ret != LIN_PENDING && o->ret > end))
		out->ret = LIN_PENDING;
	/* one step later, to leave time 0 to the initial value */
	out->call++;
	if (out->ret != LIN_PENDING)
		out->ret++;
	return !(out->kind == LIN_GET && out->ret == LIN_PENDING);
}

/* The window [start, end] into kw->buf; its size. */
static size_t
window(keywin *kw, uint64_t start, uint64_t end)
{
	size_t		m = 0;

	for (size_t i = 0; i < kw->n; i++)
		if (in_window(&kw->ops[i], start, end, &kw->buf[m]))
			m++;
	return m;
}

/*
 * Is the window [start, end] not linearizable?  1 if proved not, 0 if it
 * is, -1 if the search gave up or too many values could start it.
 */
static int
violated(keywin *kw, uint64_t start, uint64_t end)
{
	size_t		m = window(kw, start, end);
	uint64_t   *init;
	size_t		n_init = 0;
	int			verdict = 1;

	if (start == NO_START)
	{
		lin_result	r = lin_check(kw->buf, m, kw->budget);

		return r.gave_up ? -1 : !r.ok;
	}

	/*
	 * The values that matter to start from: those the window observes, and
	 * one it does not (all others are alike to it).
	 */
	init = xcalloc(2 * m + 2, sizeof(uint64_t));
	init[n_init++] = 0;
	init[n_init++] = kw->h->n_values;
	for (size_t i = 0; i < m; i++)
		if (kw->buf[i].kind == LIN_GET)
			init[n_init++] = kw->buf[i].output;
		else if (kw->buf[i].kind == LIN_CAS)
			init[n_init++] = kw->buf[i].expect;
	qsort(init, n_init, sizeof(uint64_t), cmp_u64);
	{
		size_t		k = 0;

		for (size_t i = 0; i < n_init; i++)
			if (k == 0 || init[i] != init[k - 1])
				init[k++] = init[i];
		n_init = k;
	}
	if (n_init > MAX_INITIAL)
		verdict = -1;
	for (size_t i = 0; i < n_init && verdict == 1; i++)
	{
		lin_result	r;

		kw->buf[m] = (lin_op) {UINT32_MAX, kw->ops[0].key, LIN_PUT, init[i], 0, 0, 0, 0};
		r = lin_check(kw->buf, m + 1, kw->budget);
		if (r.gave_up)
			verdict = -1;
		else if (r.ok)
			verdict = 0;
	}
	free(init);
	return verdict;
}

/*
 * The smallest window found: the earliest end from the start of the
 * history, then the latest start, probing back from the end at doubling
 * distances, then halving the last gap.
 */
static void
smallest_window(keywin *kw, uint64_t *start, uint64_t *end)
{
	size_t		lo = 0;
	size_t		hi = kw->n_times;	/* n_times stands for the end */
	size_t		top;
	size_t		ok_k = SIZE_MAX;	/* a start known to fail, SIZE_MAX none */
	size_t		bad_k = SIZE_MAX;	/* a start known not to */

	while (lo < hi)
	{
		size_t		mid = lo + (hi - lo) / 2;

		if (violated(kw, NO_START, kw->times[mid]) == 1)
			hi = mid;
		else
			lo = mid + 1;
	}
	*end = lo < kw->n_times ? kw->times[lo] : NO_END;
	*start = NO_START;

	top = lo < kw->n_times ? lo : kw->n_times - 1;
	for (size_t d = 0;;)
	{
		size_t		k = top - d;

		if (violated(kw, kw->times[k], *end) == 1)
		{
			ok_k = k;
			break;
		}
		bad_k = k;
		if (k == 0)
			break;
		d = 2 * d + 1 < top ? 2 * d + 1 : top;
	}
	if (ok_k == SIZE_MAX)
		return;
	/* the latest start between the one that fails and the one that does not */
	while (bad_k != SIZE_MAX && ok_k + 1 < bad_k)
	{
		size_t		mid = ok_k + (bad_k - ok_k) / 2;

		if (violated(kw, kw->times[mid], *end) == 1)
			ok_k = mid;
		else
			bad_k = mid;
	}
	*start = kw->times[ok_k];
}

/* An operation of the key, by invocation time, for sorting. */
typedef struct by_call
{
	uint64_t	call;
	size_t		i;
} by_call;

static int
cmp_by_call(const void *a, const void *b)
{
	const by_call *x = a;
	const by_call *y = b;

	if (x->call != y->call)
		return x->call < y->call ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Gather key `key''s operations into kw. */
static void
keywin_init(keywin *kw, const history *h, uint64_t key, uint64_t budget)
{
	memset(kw, 0, sizeof(*kw));
	kw->h = h;
	kw->budget = budget;
	{
		by_call    *order = xcalloc(h->n_ops, sizeof(by_call));

		for (size_t i = 0; i < h->n_ops; i++)
			if (h->ops[i].key == key)
				order[kw->n++] = (by_call) {h->ops[i].call, i};
		qsort(order, kw->n, sizeof(by_call), cmp_by_call);
		kw->src = xcalloc(kw->n, sizeof(size_t));
		for (size_t i = 0; i < kw->n; i++)
			kw->src[i] = order[i].i;
		free(order);
	}
	kw->ops = xcalloc(kw->n, sizeof(lin_op));
	kw->buf = xcalloc(kw->n + 1, sizeof(lin_op));
	kw->times = xcalloc(2 * kw->n, sizeof(uint64_t));
	for (size_t i = 0; i < kw->n; i++)
	{
		kw->ops[i] = h->ops[kw->src[i]];
		kw->times[kw->n_times++] = kw->ops[i].call;
		if (kw->ops[i].ret != LIN_PENDING)
			kw->times[kw->n_times++] = kw->ops[i].ret;
	}
	qsort(kw->times, kw->n_times, sizeof(uint64_t), cmp_u64);
	{
		size_t		k = 0;

		for (size_t i = 0; i < kw->n_times; i++)
			if (k == 0 || kw->times[i] != kw->times[k - 1])
				kw->times[k++] = kw->times[i];
		kw->n_times = k;
	}
}

static void
keywin_free(keywin *kw)
{
	free(kw->ops);
	free(kw->src);
	free(kw->buf);
	free(kw->times);
}

/* Is operation o shown in the window [start, end]? */
static bool
shown(const lin_op *o, uint64_t start, uint64_t end)
{
	return o->call <= end && !(start != NO_START && o->ret != LIN_PENDING && o->ret < start);
}

/* Print one operation of the window, as the file has it. */
static void
print_op(const history *h, size_t i, uint64_t start, uint64_t end)
{
	const lin_op *o = &h->ops[i];
	const hist_meta *m = &h->meta[i];
	char		lines[48];

	if (m->end_line)
		snprintf(lines, sizeof(lines), "lines %zu, %zu", m->invoke_line, m->end_line);
	else
		snprintf(lines, sizeof(lines), "line %zu", m->invoke_line);
	printf("  %-16s process %s: ", lines, h->processes[o->client]);
	if (o->kind == LIN_PUT)
		printf("write %s", h->values[o->value]);
	else if (o->kind == LIN_GET)
		printf("read %s", o->ret == LIN_PENDING ? "?" : h->values[o->output]);
	else
		printf("cas %s -> %s%s", h->values[o->expect], h->values[o->value],
			   o->ret == LIN_PENDING ? "" : o->output ? " (swapped)" : " (did not swap)");
	printf(", invoked %llu, ", (unsigned long long) o->call);
	if (o->ret != LIN_PENDING)
		printf("ok %llu", (unsigned long long) o->ret);
	else
		printf("%s", m->end == HIST_INFO ? "outcome unknown" : "never completed");
	if (o->ret != LIN_PENDING && ((start != NO_START && o->call < start) || o->ret > end))
		printf(" (across an edge: counted as unknown)");
	printf("\n");
}

/* Report the violation on `key' and its smallest window. */
static void
report(const history *h, uint64_t key, uint64_t budget)
{
	keywin		kw;
	uint64_t	start;
	uint64_t	end;
	size_t		n_shown = 0;

	keywin_init(&kw, h, key, budget);
	smallest_window(&kw, &start, &end);
	for (size_t i = 0; i < kw.n; i++)
		n_shown += shown(&kw.ops[i], start, end);
	printf("key %s: not linearizable\n", h->keys[key]);
	printf("smallest failing window found: %zu of the key's %zu operations, ", n_shown, kw.n);
	if (start == NO_START)
		printf("from the start of the history (the key empty)");
	else
		printf("from time %llu (the key's value then unknown)", (unsigned long long) start);
	if (end == NO_END)
		printf(" to its end:\n");
	else
		printf(" to time %llu:\n", (unsigned long long) end);
	for (size_t i = 0; i < kw.n; i++)
		if (shown(&kw.ops[i], start, end))
			print_op(h, kw.src[i], start, end);
	keywin_free(&kw);
}

static void
usage(void)
{
	fprintf(stderr, "usage: kmd-lincheck [--budget N] [FILE]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	uint64_t	budget = DEFAULT_BUDGET;
	FILE	   *f = stdin;
	history		h;
	char		err[256];
	lin_result	r;
	size_t		unknown = 0;

	for (int i = 1; i < argc; i++)
	{
		if (strcmp(argv[i], "--budget") == 0 && i + 1 < argc)
		{
			char	   *e;

			budget = strtoull(argv[++i], &e, 10);
			if (*argv[i] == '\0' || *e != '\0' || budget == 0)
				usage();
		}
		else if (argv[i][0] == '-' && argv[i][1] != '\0')
			usage();
		else if (path == NULL)
			path = argv[i];
		else
			usage();
	}
	if (path != NULL && strcmp(path, "-") != 0 && (f = fopen(path, "r")) == NULL)
	{
		perror(path);
		return 2;
	}
	if (history_read(f, path ? path : "stdin", &h, err, sizeof(err)) != 0)
	{
		fprintf(stderr, "kmd-lincheck: %s\n", err);
		return 2;
	}
	if (f != stdin)
		fclose(f);
	for (size_t i = 0; i < h.n_ops; i++)
		unknown += h.ops[i].ret == LIN_PENDING;
	if (h.n_ops == unknown)
	{
		fprintf(stderr, "kmd-lincheck: no completed operation: the history proves nothing\n");
		history_free(&h);
		return 2;
	}

	r = lin_check(h.ops, h.n_ops, budget);
	if (!r.ok)
	{
		report(&h, r.bad_key, budget);
		history_free(&h);
		return 1;
	}
	if (r.gave_up)
	{
		/* "key N: ..." names the key by its number */
		const char *rest = strchr(r.why, ':');
		uint64_t	key = strtoull(r.why + 4, NULL, 10);

		printf("inconclusive: key %s%s (try a larger --budget)\n",
			   key < h.n_keys ? h.keys[key] : "?", rest ? rest : "");
		history_free(&h);
		return 3;
	}
	printf("linearizable: %zu operations (%zu of unknown outcome, %zu failed) on %zu key%s\n",
		   h.n_ops, unknown, h.n_failed, h.n_keys, h.n_keys == 1 ? "" : "s");
	history_free(&h);
	return 0;
}
