/*-------------------------------------------------------------------------
 *
 * json.c
 *	  A small JSON reader for the objects of a history in JSON lines; see
 *	  json.h.  It follows JSON's grammar for what it reads and refuses
 *	  anything else, with a message saying what.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/json.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lin_cache.h"

/* Record the first error and stop reading the line. */
void
json_fail(json_cursor *c, const char *fmt,...)
{
	va_list		ap;

	if (c->err[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
	c->p = c->end;
}

/* Skip JSON white space. */
void
json_skip_ws(json_cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
		c->p++;
}

/* Consume `ch' after white space, or fail. */
bool
json_expect(json_cursor *c, char ch)
{
	json_skip_ws(c);
	if (c->p < c->end && *c->p == ch)
	{
		c->p++;
		return true;
	}
	json_fail(c, "expected '%c'", ch);
	return false;
}

/* Append a code point to `buf' as UTF-8. */
static size_t
put_utf8(char *buf, size_t at, unsigned cp)
{
	if (cp < 0x80)
		buf[at++] = (char) cp;
	else if (cp < 0x800)
	{
		buf[at++] = (char) (0xc0 | cp >> 6);
		buf[at++] = (char) (0x80 | (cp & 0x3f));
	}
	else if (cp < 0x10000)
	{
		buf[at++] = (char) (0xe0 | cp >> 12);
		buf[at++] = (char) (0x80 | (cp >> 6 & 0x3f));
		buf[at++] = (char) (0x80 | (cp & 0x3f));
	}
	else
	{
		buf[at++] = (char) (0xf0 | cp >> 18);
		buf[at++] = (char) (0x80 | (cp >> 12 & 0x3f));
		buf[at++] = (char) (0x80 | (cp >> 6 & 0x3f));
		buf[at++] = (char) (0x80 | (cp & 0x3f));
	}
	return at;
}

static int
hex4(json_cursor *c)
{
	int			v = 0;

	for (int i = 0; i < 4; i++)
	{
		char		ch = c->p < c->end ? *c->p++ : '\0';

		v <<= 4;
		if (ch >= '0' && ch <= '9')
			v |= ch - '0';
		else if (ch >= 'a' && ch <= 'f')
			v |= ch - 'a' + 10;
		else if (ch >= 'A' && ch <= 'F')
			v |= ch - 'A' + 10;
		else
		{
			json_fail(c, "bad \\u escape in a string");
			return -1;
		}
	}
	return v;
}

/*
 * A string at the json_cursor, unescaped into a new buffer after `lead' (the
 * kind letter, or 0 for none).  NULL on error.
 */
char *
json_string(json_cursor *c, char lead, size_t *len)
{
	/* unescaped, a string is never longer than its escaped text */
	char	   *buf = xcalloc((size_t) (c->end - c->p) + 2, 1);
	size_t		n = 0;

	if (lead)
		buf[n++] = lead;
	if (!json_expect(c, '"'))
	{
		free(buf);
		return NULL;
	}
	while (c->p < c->end && *c->p != '"')
	{
		unsigned char ch = (unsigned char) *c->p++;

		if (ch < 0x20)
		{
			json_fail(c, "control character in a string");
			break;
		}
		if (ch != '\\')
		{
			buf[n++] = (char) ch;
			continue;
		}
		ch = c->p < c->end ? (unsigned char) *c->p++ : '\0';
		switch (ch)
		{
			case '"':
			case '\\':
			case '/':
				buf[n++] = (char) ch;
				break;
			case 'b':
				buf[n++] = '\b';
				break;
			case 'f':
				buf[n++] = '\f';
				break;
			case 'n':
				buf[n++] = '\n';
				break;
			case 'r':
				buf[n++] = '\r';
				break;
			case 't':
				buf[n++] = '\t';
				break;
			case 'u':
				{
					int			cp = hex4(c);

					if (cp < 0)
						break;
					/* a surrogate pair is one code point */
					if (cp >= 0xd800 && cp < 0xdc00 && c->end - c->p >= 6 &&
						c->p[0] == '\\' && c->p[1] == 'u')
					{
						int			lo;

						c->p += 2;
						lo = hex4(c);
						if (lo >= 0xdc00 && lo < 0xe000)
							cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
						else
							json_fail(c, "bad surrogate pair in a string");
					}
					n = put_utf8(buf, n, (unsigned) cp);
				}
				break;
			default:
				json_fail(c, "bad escape in a string");
				break;
		}
	}
	if (c->err[0] == '\0' && !json_expect(c, '"'))
		json_fail(c, "unterminated string");
	if (c->err[0] != '\0')
	{
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

/* Does the text at the json_cursor start with the literal `word'? */
static bool
literal(json_cursor *c, const char *word)
{
	size_t		len = strlen(word);

	if ((size_t) (c->end - c->p) >= len && memcmp(c->p, word, len) == 0)
	{
		c->p += len;
		return true;
	}
	return false;
}

static bool
is_digit(const json_cursor *c)
{
	return c->p < c->end && *c->p >= '0' && *c->p <= '9';
}

/* A JSON number at the json_cursor, by JSON's grammar. */
static bool
parse_number(json_cursor *c)
{
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (!is_digit(c))
		return false;
	if (*c->p == '0')
		c->p++;
	else
		while (is_digit(c))
			c->p++;
	if (c->p < c->end && *c->p == '.')
	{
		c->p++;
		if (!is_digit(c))
			return false;
		while (is_digit(c))
			c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E'))
	{
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!is_digit(c))
			return false;
		while (is_digit(c))
			c->p++;
	}
	return true;
}

/*
 * A value at the json_cursor into *v.  Scalars always; an array of up to two
 * scalars when `arrays'; anything else is skipped when `skip' (v is then
 * left absent).
 */
void
json_value(json_cursor *c, jval *v, bool arrays, bool skip)
{
	const char *start;

	memset(v, 0, sizeof(*v));
	json_skip_ws(c);
	start = c->p;
	if (c->p >= c->end)
	{
		json_fail(c, "expected a value");
		return;
	}
	if (*c->p == '"')
	{
		v->canon = json_string(c, J_STR, &v->canon_len);
		if (v->canon == NULL)
			return;
		v->kind = J_STR;
	}
	else if (*c->p == '[' || *c->p == '{')
	{
		char		close = *c->p == '[' ? ']' : '}';
		bool		keep = close == ']' && arrays;

		c->p++;
		if (keep)
		{
			v->kind = J_ARRAY;
			v->elem = xcalloc(2, sizeof(jval));
		}
		json_skip_ws(c);
		if (c->p < c->end && *c->p == close)
			c->p++;
		else
			for (;;)
			{
				jval		e;

				if (close == '}')
				{
					size_t		len;
					char	   *name = json_string(c, 0, &len);

					free(name);
					if (name == NULL || !json_expect(c, ':'))
						break;
				}
				json_value(c, &e, false, !keep);
				if (keep && e.kind != 0 && v->n_elem < 2)
					v->elem[v->n_elem++] = e;
				else
				{
					if (keep)
						json_fail(c, e.kind == 0 ? "an array element must be a scalar" :
							 "an array of more than two values");
					jval_free(&e);
				}
				json_skip_ws(c);
				if (c->p < c->end && *c->p == ',')
				{
					c->p++;
					continue;
				}
				json_expect(c, close);
				break;
			}
		if (!keep)
			v->kind = 0;
		else if (c->err[0] != '\0')
			jval_free(v);
		if (!keep && !skip)
			json_fail(c, "expected a scalar value");
		return;
	}
	else if (literal(c, "null"))
		v->kind = J_NULL;
	else if (literal(c, "true") || literal(c, "false"))
		v->kind = J_BOOL;
	else if (parse_number(c))
		v->kind = J_NUM;
	else
	{
		json_fail(c, "not a JSON value");
		return;
	}
	v->raw = start;
	v->raw_len = (size_t) (c->p - start);
	if (v->kind != J_STR)
	{
		/* the kind letter, then the text */
		v->canon = xcalloc(v->raw_len + 2, 1);
		v->canon[0] = (char) v->kind;
		memcpy(v->canon + 1, start, v->raw_len);
		v->canon_len = v->raw_len + 1;
	}
}

/* Free what a value holds, and mark it absent. */
void
jval_free(jval *v)
{
	for (int i = 0; i < v->n_elem; i++)
		jval_free(&v->elem[i]);
	free(v->elem);
	free(v->canon);
	memset(v, 0, sizeof(*v));
}

/* Is v the string `s'? */
bool
jval_is_string(const jval *v, const char *s)
{
	return v->kind == J_STR && v->canon_len == strlen(s) + 1 && memcmp(v->canon + 1, s, v->canon_len - 1) == 0;
}

/* Is v null, a boolean, a number or a string? */
bool
jval_is_scalar(const jval *v)
{
	return v->kind == J_NULL || v->kind == J_BOOL || v->kind == J_NUM || v->kind == J_STR;
}

