/*-------------------------------------------------------------------------
 *
 * history.c
 *	  Register histories as JSON lines (the format is in history.h): a
 *	  parser for exactly that format, which turns each process's
 *	  invocation and completion into one operation of the linearizability
 *	  checker, and the writer of the simulator's histories.
 *
 * The parser reads one flat JSON object per line (json.c).  It knows the
 * fields of the format and skips any other field, whatever its value; it
 * refuses anything that is not JSON, and says at which line.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/history.c
 *
 *-------------------------------------------------------------------------
 */
#define _POSIX_C_SOURCE 200809L

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "json.h"
#include "lin_cache.h"

/* ------------------------------------------------------------------------
 * Names: each distinct key, value or process gets a number
 * ------------------------------------------------------------------------
 */
typedef struct names
{
	char	  **canon;			/* the value's kind and content, unescaped */
	size_t	   *canon_len;
	char	  **raw;			/* its JSON text as first seen */
	size_t		n;
	size_t		cap;
	size_t	   *slots;			/* open addressing: index + 1, 0 empty */
	size_t		n_slots;
} names;

static uint64_t
hash_bytes(const char *p, size_t len)
{
	uint64_t	h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++)
	{
		h ^= (unsigned char) p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static char *
copy_bytes(const char *p, size_t len)
{
	char	   *s = xcalloc(len + 1, 1);

	memcpy(s, p, len);
	return s;
}

/* The number of `canon' in `nm', added with its JSON text `raw' if new. */
static size_t
names_get(names *nm, const char *canon, size_t canon_len, const char *raw, size_t raw_len)
{
	size_t		i;

	if (2 * (nm->n + 1) > nm->n_slots)
	{
		size_t		n_slots = nm->n_slots ? 2 * nm->n_slots : 64;

		free(nm->slots);
		nm->slots = xcalloc(n_slots, sizeof(size_t));
		nm->n_slots = n_slots;
		for (size_t k = 0; k < nm->n; k++)
		{
			i = hash_bytes(nm->canon[k], nm->canon_len[k]) & (n_slots - 1);
			while (nm->slots[i] != 0)
				i = (i + 1) & (n_slots - 1);
			nm->slots[i] = k + 1;
		}
	}
	i = hash_bytes(canon, canon_len) & (nm->n_slots - 1);
	while (nm->slots[i] != 0)
	{
		size_t		k = nm->slots[i] - 1;

		if (nm->canon_len[k] == canon_len && memcmp(nm->canon[k], canon, canon_len) == 0)
			return k;
		i = (i + 1) & (nm->n_slots - 1);
	}
	if (nm->n == nm->cap)
	{
		nm->cap = nm->cap ? 2 * nm->cap : 64;
		nm->canon = xrealloc(nm->canon, nm->cap, sizeof(char *));
		nm->canon_len = xrealloc(nm->canon_len, nm->cap, sizeof(size_t));
		nm->raw = xrealloc(nm->raw, nm->cap, sizeof(char *));
	}
	nm->canon[nm->n] = copy_bytes(canon, canon_len);
	nm->canon_len[nm->n] = canon_len;
	nm->raw[nm->n] = copy_bytes(raw, raw_len);
	nm->slots[i] = nm->n + 1;
	return nm->n++;
}

/* Hand the JSON texts over to the caller and free the rest. */
static char **
names_release(names *nm, size_t *n)
{
	for (size_t k = 0; k < nm->n; k++)
		free(nm->canon[k]);
	free(nm->canon);
	free(nm->canon_len);
	free(nm->slots);
	*n = nm->n;
	return nm->raw;
}

/* ------------------------------------------------------------------------
 * Records
 * ------------------------------------------------------------------------
 */

/* The fields of one line that the format knows. */
typedef struct record
{
	jval		process;
	jval		type;
	jval		f;
	jval		key;
	jval		value;
	jval		time;
	jval		swapped;
} record;

static void
record_free(record *r)
{
	jval_free(&r->process);
	jval_free(&r->type);
	jval_free(&r->f);
	jval_free(&r->key);
	jval_free(&r->value);
	jval_free(&r->time);
	jval_free(&r->swapped);
}

/* Parse one line into *r; false (with c->err set) if it is not an object. */
static bool
parse_record(json_cursor *c, record *r)
{
	static const char *const fields[] = {"process", "type", "f", "key", "value", "time", "swapped"};
	jval	   *slots[] = {&r->process, &r->type, &r->f, &r->key, &r->value, &r->time, &r->swapped};

	memset(r, 0, sizeof(*r));
	if (!json_expect(c, '{'))
		return false;
	json_skip_ws(c);
	if (c->p < c->end && *c->p == '}')
		c->p++;
	else
		for (;;)
		{
			size_t		len;
			char	   *name = json_string(c, 0, &len);
			jval	   *slot = NULL;
			jval		v;

			if (name == NULL || !json_expect(c, ':'))
			{
				free(name);
				break;
			}
			for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
				if (strlen(fields[i]) == len && memcmp(fields[i], name, len) == 0)
					slot = slots[i];
			free(name);
			json_value(c, &v, slot == &r->value, slot == NULL);
			if (slot != NULL && slot->kind != 0)
				json_fail(c, "a field appears twice");
			if (slot != NULL && c->err[0] == '\0')
				*slot = v;
			else
				jval_free(&v);
			json_skip_ws(c);
			if (c->p < c->end && *c->p == ',')
			{
				c->p++;
				continue;
			}
			json_expect(c, '}');
			break;
		}
	json_skip_ws(c);
	if (c->err[0] == '\0' && c->p != c->end)
		json_fail(c, "text after the object");
	return c->err[0] == '\0';
}

/* A non-negative integer below LIN_PENDING - 1, into *out. */
static bool
get_time(const jval *v, uint64_t *out)
{
	uint64_t	t = 0;

	if (v->kind != J_NUM || v->raw_len == 0 || v->raw_len > 20)
		return false;
	for (size_t i = 0; i < v->raw_len; i++)
	{
		char		ch = v->raw[i];

		if (ch < '0' || ch > '9' || t > (UINT64_MAX - 9) / 10)
			return false;
		t = t * 10 + (uint64_t) (ch - '0');
	}
	*out = t;
	return t < LIN_PENDING - 1;
}

/* The state of the parse across lines. */
typedef struct parser
{
	history    *h;
	size_t		cap;
	names		keys;
	names		values;
	names		processes;
	size_t	   *open;			/* per process: its open op + 1, or 0 */
	uint64_t   *last_end;		/* per process: its last completion time */
	size_t		n_proc;
	char	   *err;
	size_t		errlen;
} parser;

/* The number of a value; null is 0 (names.values holds null first). */
static uint64_t
value_id(parser *ps, const jval *v)
{
	if (v->kind == J_NULL)
		return 0;
	return names_get(&ps->values, v->canon, v->canon_len, v->raw, v->raw_len);
}

static size_t
process_id(parser *ps, const jval *v)
{
	size_t		id = names_get(&ps->processes, v->canon, v->canon_len, v->raw, v->raw_len);

	if (id >= ps->n_proc)
	{
		size_t		n = ps->n_proc ? ps->n_proc : 16;

		while (n <= id)
			n *= 2;
		ps->open = xrealloc(ps->open, n, sizeof(size_t));
		ps->last_end = xrealloc(ps->last_end, n, sizeof(uint64_t));
		memset(ps->open + ps->n_proc, 0, (n - ps->n_proc) * sizeof(size_t));
		memset(ps->last_end + ps->n_proc, 0, (n - ps->n_proc) * sizeof(uint64_t));
		ps->n_proc = n;
	}
	return id;
}

/* An invocation: a new open operation of its process. */
static const char *
on_invoke(parser *ps, const record *r, size_t proc, uint64_t time, size_t line)
{
	history    *h = ps->h;
	lin_op		op;

	memset(&op, 0, sizeof(op));
	if (ps->open[proc] != 0)
		return "the process invokes an operation while its last one is open";
	if (time < ps->last_end[proc])
		return "invoked before the process's last operation completed";
	if (!jval_is_scalar(&r->key))
		return "the key must be a string or a number";
	if (jval_is_string(&r->f, "read"))
		op.kind = LIN_GET;
	else if (jval_is_string(&r->f, "write"))
	{
		if (!jval_is_scalar(&r->value))
			return "a write's value must be a scalar";
		op.kind = LIN_PUT;
		op.value = value_id(ps, &r->value);
	}
	else if (jval_is_string(&r->f, "cas"))
	{
		if (r->value.kind != J_ARRAY || r->value.n_elem != 2)
			return "a cas's value must be [expected, new]";
		op.kind = LIN_CAS;
		op.expect = value_id(ps, &r->value.elem[0]);
		op.value = value_id(ps, &r->value.elem[1]);
	}
	else
		return "f must be \"read\", \"write\" or \"cas\"";
	op.client = (uint32_t) proc;
	op.key = names_get(&ps->keys, r->key.canon, r->key.canon_len, r->key.raw, r->key.raw_len);
	op.call = time;
	op.ret = LIN_PENDING;
	if (h->n_ops == ps->cap)
	{
		ps->cap = ps->cap ? 2 * ps->cap : 1024;
		h->ops = xrealloc(h->ops, ps->cap, sizeof(lin_op));
		h->meta = xrealloc(h->meta, ps->cap, sizeof(hist_meta));
	}
	h->ops[h->n_ops] = op;
	h->meta[h->n_ops] = (hist_meta) {line, 0, HIST_OPEN};
	ps->open[proc] = ++h->n_ops;
	return NULL;
}

/* A completion of its process's open operation. */
static const char *
on_complete(parser *ps, const record *r, size_t proc, uint64_t time, size_t line)
{
	history    *h = ps->h;
	size_t		i;
	lin_op	   *op;

	if (ps->open[proc] == 0)
		return "a completion with no open operation of its process";
	i = ps->open[proc] - 1;
	op = &h->ops[i];
	if (time < op->call)
		return "completed before it was invoked";
	if (r->f.kind != 0 &&
		!jval_is_string(&r->f, op->kind == LIN_GET ? "read" : op->kind == LIN_PUT ? "write" : "cas"))
		return "f differs from the invocation's";
	if (r->key.kind != 0 &&
		(!jval_is_scalar(&r->key) ||
		 names_get(&ps->keys, r->key.canon, r->key.canon_len, r->key.raw, r->key.raw_len) != op->key))
		return "the key differs from the invocation's";
	ps->open[proc] = 0;
	ps->last_end[proc] = time;
	h->meta[i].end_line = line;
	if (jval_is_string(&r->type, "fail"))
	{
		/* no effect: left out once the file is read */
		h->meta[i].end = 0;
		h->n_failed++;
		return NULL;
	}
	if (jval_is_string(&r->type, "info"))
	{
		h->meta[i].end = HIST_INFO;
		return NULL;
	}
	h->meta[i].end = HIST_OK;
	op->ret = time;
	if (op->kind == LIN_GET)
	{
		if (!jval_is_scalar(&r->value))
			return "a read's ok must carry the value read";
		op->output = value_id(ps, &r->value);
	}
	else if (op->kind == LIN_CAS)
	{
		if (r->swapped.kind != 0 && r->swapped.kind != J_BOOL)
			return "swapped must be true or false";
		op->output = r->swapped.kind == 0 || r->swapped.raw[0] == 't';
	}
	return NULL;
}

/* One line; NULL or what is wrong with it. */
static const char *
on_line(parser *ps, const char *text, size_t len, size_t line, char *jerr, size_t jerrlen)
{
	json_cursor		c = {text, text + len, jerr, jerrlen};
	record		r;
	const char *what = NULL;
	uint64_t	time;
	size_t		proc;

	jerr[0] = '\0';
	json_skip_ws(&c);
	if (c.p == c.end)
		return NULL;			/* an empty line */
	if (!parse_record(&c, &r))
	{
		record_free(&r);
		return jerr;
	}
	if (!jval_is_scalar(&r.process) || r.process.kind == J_NULL)
		what = "process must be a number or a string";
	else if (!get_time(&r.time, &time))
		what = "time must be a non-negative integer";
	else
	{
		proc = process_id(ps, &r.process);
		if (jval_is_string(&r.type, "invoke"))
			what = on_invoke(ps, &r, proc, time, line);
		else if (jval_is_string(&r.type, "ok") || jval_is_string(&r.type, "fail") || jval_is_string(&r.type, "info"))
			what = on_complete(ps, &r, proc, time, line);
		else
			what = "type must be \"invoke\", \"ok\", \"fail\" or \"info\"";
	}
	record_free(&r);
	return what;
}

int
history_read(FILE *f, const char *name, history *h, char *err, size_t errlen)
{
	parser		ps;
	char	   *line = NULL;
	size_t		cap = 0;
	ssize_t		len;
	size_t		lineno = 0;
	char		jerr[128];
	const char *what = NULL;

	memset(h, 0, sizeof(*h));
	memset(&ps, 0, sizeof(ps));
	ps.h = h;
	(void) names_get(&ps.values, "z", 1, "null", 4);
	while ((len = getline(&line, &cap, f)) >= 0)
	{
		lineno++;
		if ((size_t) len != strlen(line))
			what = "a NUL byte in the line";
		else
			what = on_line(&ps, line, (size_t) len, lineno, jerr, sizeof(jerr));
		if (what != NULL)
			break;
	}
	if (what == NULL && ferror(f))
		what = "read error";
	if (what == NULL)
	{
		size_t		n = 0;

		for (size_t i = 0; i < h->n_ops; i++)
			if (h->meta[i].end != 0)
			{
				h->ops[n] = h->ops[i];
				h->meta[n++] = h->meta[i];
			}
		h->n_ops = n;
	}
	free(line);
	free(ps.open);
	free(ps.last_end);
	h->keys = names_release(&ps.keys, &h->n_keys);
	h->values = names_release(&ps.values, &h->n_values);
	h->processes = names_release(&ps.processes, &h->n_processes);
	if (what != NULL)
	{
		snprintf(err, errlen, "%s:%zu: %s", name, lineno, what);
		history_free(h);
		return -1;
	}
	return 0;
}

void
history_free(history *h)
{
	for (size_t i = 0; i < h->n_keys; i++)
		free(h->keys[i]);
	for (size_t i = 0; i < h->n_values; i++)
		free(h->values[i]);
	for (size_t i = 0; i < h->n_processes; i++)
		free(h->processes[i]);
	free(h->keys);
	free(h->values);
	free(h->processes);
	free(h->ops);
	free(h->meta);
	memset(h, 0, sizeof(*h));
}

/* ------------------------------------------------------------------------
 * Writing the simulator's histories
 * ------------------------------------------------------------------------
 */

/*
 * One event of the output: an invocation or a completion.  At one time,
 * completions of operations invoked earlier go first (their process may
 * invoke again at once), then invocations, then the completions of those.
 */
typedef struct event_rec
{
	uint64_t	time;
	int			rank;
	size_t		op;
	bool		invoke;
} event_rec;

static int
cmp_event_rec(const void *a, const void *b)
{
	const event_rec *x = a;
	const event_rec *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	if (x->rank != y->rank)
		return x->rank - y->rank;
	return x->op < y->op ? -1 : x->op > y->op;
}

static void
write_value(FILE *out, uint64_t v)
{
	if (v == 0)
		fputs("null", out);
	else
		fprintf(out, "%llu", (unsigned long long) v);
}

static void
write_event(FILE *out, const lin_op *op, bool invoke, bool unknown, uint64_t time)
{
	static const char *const f[] = {"", "write", "read", "cas"};

	fprintf(out, "{\"process\":%u,\"type\":\"%s\",\"f\":\"%s\",\"key\":%llu,\"value\":",
			op->client, invoke ? "invoke" : unknown ? "info" : "ok", f[op->kind],
			(unsigned long long) op->key);
	if (op->kind == LIN_CAS)
	{
		fputc('[', out);
		write_value(out, op->expect);
		fputc(',', out);
		write_value(out, op->value);
		fputc(']', out);
	}
	else if (op->kind == LIN_PUT)
		write_value(out, op->value);
	else
		write_value(out, invoke || unknown ? 0 : op->output);
	if (op->kind == LIN_CAS && !invoke && !unknown)
		fprintf(out, ",\"swapped\":%s", op->output ? "true" : "false");
	fprintf(out, ",\"time\":%llu}\n", (unsigned long long) time);
}

void
history_write(FILE *out, const lin_op *ops, size_t n, uint64_t end)
{
	event_rec  *ev = xcalloc(2 * n, sizeof(event_rec));
	size_t		n_ev = 0;

	for (size_t i = 0; i < n; i++)
	{
		uint64_t	done = ops[i].ret;

		if (done == LIN_PENDING)
		{
			/* its client gave up on it when it invoked the next one */
			done = end;
			for (size_t j = 0; j < n; j++)
				if (ops[j].client == ops[i].client && ops[j].call >= ops[i].call && j != i &&
					ops[j].call < done)
					done = ops[j].call;
		}
		ev[n_ev++] = (event_rec) {ops[i].call, 1, i, true};
		ev[n_ev++] = (event_rec) {done, done > ops[i].call ? 0 : 2, i, false};
	}
	qsort(ev, n_ev, sizeof(event_rec), cmp_event_rec);
	for (size_t k = 0; k < n_ev; k++)
		write_event(out, &ops[ev[k].op], ev[k].invoke, ops[ev[k].op].ret == LIN_PENDING, ev[k].time);
	free(ev);
}
