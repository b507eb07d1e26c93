/*-------------------------------------------------------------------------
 *
 * json.h
 *	  A small JSON reader for the flat objects of a history in JSON lines
 *	  (history.h): scalars, arrays of up to two scalars where the caller
 *	  allows them, and any other value skipped where the caller ignores
 *	  it.  Plain C99, libc only.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/json.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_JSON_H
#define KOMMANDER_JSON_H

#include <stdbool.h>
#include <stddef.h>

/* Kinds of values; each is also the first byte of a value's canon. */
enum
{
	J_NULL = 'z', J_BOOL = 'b', J_NUM = 'n', J_STR = 's', J_ARRAY = 'a'
};

/* A scalar, or an array of at most two scalars (a cas's value). */
typedef struct jval
{
	int			kind;			/* J_*, 0 when absent */
	char	   *canon;			/* kind letter, then the content */
	size_t		canon_len;
	const char *raw;			/* its text in the line */
	size_t		raw_len;
	struct jval *elem;			/* J_ARRAY: its elements */
	int			n_elem;
} jval;

/* Where the reader is in a line, and its first error. */
typedef struct json_cursor
{
	const char *p;
	const char *end;
	char	   *err;			/* the first error, "" until then */
	size_t		errlen;
} json_cursor;


/* Record the first error (printf-style) and stop reading the line. */
void		json_fail(json_cursor *c, const char *fmt,...);

void		json_skip_ws(json_cursor *c);

/* Consume `ch' after white space, or fail. */
bool		json_expect(json_cursor *c, char ch);

/*
 * A string at the cursor, unescaped (UTF-8) into a new buffer after `lead'
 * (a kind letter, or 0 for none), its length in *len.  NULL on error.
 */
char	   *json_string(json_cursor *c, char lead, size_t *len);

/*
 * A value at the cursor into *v: a scalar always; an array of up to two
 * scalars when `arrays'; anything else is skipped when `skip' (v is then
 * left absent, kind 0) and an error otherwise.
 */
void		json_value(json_cursor *c, jval *v, bool arrays, bool skip);
void		jval_free(jval *v);

/* Is v the string `s'?  Is it a scalar (null, a boolean, number, string)? */
bool		jval_is_string(const jval *v, const char *s);
bool		jval_is_scalar(const jval *v);

#endif							/* KOMMANDER_JSON_H */
