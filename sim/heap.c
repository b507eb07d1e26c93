/*-------------------------------------------------------------------------
 *
 * heap.c
 *	  A binary min-heap of simulator events keyed by (time, sequence).
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/heap.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "heap.h"

static bool
before(const heap_event *a, const heap_event *b)
{
	return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

void
heap_init(heap *h)
{
	memset(h, 0, sizeof(*h));
}

void
heap_free(heap *h)
{
	free(h->ev);
	memset(h, 0, sizeof(*h));
}

void
heap_push(heap *h, uint64_t time, uint32_t type, uint32_t node, uint32_t group,
		  uint64_t arg, void *payload)
{
	size_t		i;

	if (h->n == h->cap)
	{
		h->cap = h->cap ? h->cap * 2 : 1024;
		h->ev = realloc(h->ev, h->cap * sizeof(heap_event));
		if (h->ev == NULL)
		{
			fprintf(stderr, "kmd-sim: out of memory\n");
			exit(2);
		}
	}
	i = h->n++;
	h->ev[i] = (heap_event) {time, h->next_seq++, type, node, group, arg, payload};
	while (i > 0)
	{
		size_t		parent = (i - 1) / 2;
		heap_event	tmp;

		if (!before(&h->ev[i], &h->ev[parent]))
			break;
		tmp = h->ev[i];
		h->ev[i] = h->ev[parent];
		h->ev[parent] = tmp;
		i = parent;
	}
}

bool
heap_pop(heap *h, heap_event *out)
{
	size_t		i = 0;

	if (h->n == 0)
		return false;
	*out = h->ev[0];
	h->ev[0] = h->ev[--h->n];
	for (;;)
	{
		size_t		l = 2 * i + 1;
		size_t		r = l + 1;
		size_t		m = i;
		heap_event	tmp;

		if (l < h->n && before(&h->ev[l], &h->ev[m]))
			m = l;
		if (r < h->n && before(&h->ev[r], &h->ev[m]))
			m = r;
		if (m == i)
			break;
		tmp = h->ev[i];
		h->ev[i] = h->ev[m];
		h->ev[m] = tmp;
		i = m;
	}
	return true;
}
