/*-------------------------------------------------------------------------
 *
 * heap.h
 *	  The simulator's event queue: a binary heap ordered by time, then by
 *	  the order events were scheduled, so that runs are deterministic.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/heap.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_HEAP_H
#define KOMMANDER_HEAP_H

#include <stdbool.h>
#include <stdint.h>

typedef struct heap_event
{
	uint64_t	time;
	uint64_t	seq;
	uint32_t	type;
	uint32_t	node;
	uint32_t	group;
	uint64_t	arg;
	void	   *payload;
} heap_event;

typedef struct heap
{
	heap_event *ev;
	size_t		n;
	size_t		cap;
	uint64_t	next_seq;
} heap;

void		heap_init(heap *h);
void		heap_free(heap *h);
void		heap_push(heap *h, uint64_t time, uint32_t type, uint32_t node,
					  uint32_t group, uint64_t arg, void *payload);
/* The earliest event; false when there is none. */
bool		heap_pop(heap *h, heap_event *out);

#endif							/* KOMMANDER_HEAP_H */
