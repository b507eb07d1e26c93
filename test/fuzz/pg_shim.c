/*-------------------------------------------------------------------------
 *
 * pg_shim.c
 *	  Postgres's palloc, palloc0, pfree, repalloc, pstrdup and the elog
 *	  entry points on malloc, for src/wire.c outside a server (see
 *	  pg_shim.h).
 *
 * Every chunk is on one list, so pg_shim_reset() frees what a decode left
 * behind, as resetting the worker's memory context does.  An elog below
 * ERROR is ignored; at ERROR or above it prints the message and aborts.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/fuzz/pg_shim.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "utils/memutils.h"

#include "pg_shim.h"

/* A chunk's header, aligned for anything that follows it. */
typedef union chunk
{
	struct
	{
		union chunk *prev;
		union chunk *next;
		size_t		size;
	}			h;
	max_align_t align;
} chunk;

static chunk head = {{&head, &head, 0}};
static size_t held;
static size_t peak;

static int	err_level;
static char err_text[1024];

static void
link_chunk(chunk *c, size_t size)
{
	c->h.size = size;
	c->h.prev = head.h.prev;
	c->h.next = &head;
	head.h.prev->h.next = c;
	head.h.prev = c;
	held += size;
	if (held > peak)
		peak = held;
}

static void
unlink_chunk(chunk *c)
{
	c->h.prev->h.next = c->h.next;
	c->h.next->h.prev = c->h.prev;
	held -= c->h.size;
}

void *
palloc(Size size)
{
	chunk	   *c;

	if (!AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	c = malloc(sizeof(chunk) + size);
	if (c == NULL)
		elog(ERROR, "out of memory");
	link_chunk(c, size);
	return c + 1;
}

void *
palloc0(Size size)
{
	void	   *p = palloc(size);

	memset(p, 0, size);
	return p;
}

void
pfree(void *pointer)
{
	chunk	   *c = (chunk *) pointer - 1;

	unlink_chunk(c);
	free(c);
}

void *
repalloc(void *pointer, Size size)
{
	chunk	   *c = (chunk *) pointer - 1;
	chunk	   *n;

	if (!AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	unlink_chunk(c);
	n = realloc(c, sizeof(chunk) + size);
	if (n == NULL)
		elog(ERROR, "out of memory");
	link_chunk(n, size);
	return n + 1;
}

char *
pstrdup(const char *in)
{
	size_t		len = strlen(in);
	char	   *out = palloc(len + 1);

	memcpy(out, in, len + 1);
	return out;
}

char *
psprintf(const char *fmt,...)
{
	va_list		args;
	int			len;
	char	   *out;

	va_start(args, fmt);
	len = vsnprintf(NULL, 0, fmt, args);
	va_end(args);
	out = palloc(len + 1);
	va_start(args, fmt);
	vsnprintf(out, len + 1, fmt, args);
	va_end(args);
	return out;
}

void
pg_shim_reset(void)
{
	while (head.h.next != &head)
	{
		chunk	   *c = head.h.next;

		unlink_chunk(c);
		free(c);
	}
	peak = 0;
}

size_t
pg_shim_held(void)
{
	return held;
}

size_t
pg_shim_peak(void)
{
	return peak;
}

bool
errstart(int elevel, const char *domain)
{
	err_level = elevel;
	err_text[0] = '\0';
	return elevel >= ERROR;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

int
errmsg_internal(const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(err_text, sizeof(err_text), fmt, ap);
	va_end(ap);
	return 0;
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	fprintf(stderr, "ERROR raised at %s:%d (%s): %s\n", filename, lineno, funcname, err_text);
	abort();
}
