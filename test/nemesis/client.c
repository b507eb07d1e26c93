/*-------------------------------------------------------------------------
 *
 * client.c
 *	  The clients of the nemesis test (t/180_nemesis.pl): N processes, each
 *	  on a node drawn at random, run operations against a cluster and record
 *	  every one as JSON lines (invoke, then ok, fail or info), with times
 *	  from the monotonic clock, while the test injects faults.
 *
 * Two workloads, half of the clients each, or three, a third each, when
 * --lease names a history for the third:
 *
 *	register	reads (kmd_read_barrier, then SELECT), writes (upsert) and
 *				compare-and-sets on a few keys of table nem_reg; the history
 *				is the format sim/kmd-lincheck reads (sim/history.h).
 *	append		calls of the applier nem_append, which appends the element
 *				to the list of its key (table nem_list), each with a request
 *				id and tried again after an unknown outcome, and reads of
 *				the lists (kmd_read_barrier, then SELECT); the history has f
 *				"append" (a line pair per try) and "read" and is checked by
 *				the test (KmdNemesis.pm).
 *	lease		leases of 2 to 4 s granted (with a key), a row of table
 *				nem_lease attached to each (its key is the lease's id, so
 *				that no split parts them), some kept alive every third of
 *				their TTL, some left to lapse, some revoked; keepalives,
 *				revokes and reads (kmd_read_barrier, then SELECT) of their
 *				rows through nodes drawn at random; and keepalives and reads
 *				of the --anchor lease the test granted for the whole run.
 *				The history has f grant, attach, keepalive (with the time
 *				left, "left", in ms), revoke and read, each naming its
 *				"lease"; KmdNemesis.pm checks it.
 *
 * An error whose SQLSTATE says the command was not applied (K0001, K0002,
 * K0004, K0005, K0007, K0011, K0012; and K0013, the lease is gone, in the
 * lease workload) is a "fail"; a lost connection, a
 * K0003 or no answer within the deadline is an "info" (outcome unknown),
 * after which the client drops the connection, takes a new process id and
 * a new node.  Any
 * other SQLSTATE is an "info" too and is counted as unexpected: the exit
 * status is 3 if there was one.  A client does not connect to node N while
 * the file skip-nodeN exists in the --skip-dir (the test is replacing it).
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/nemesis/client.c
 *
 *-------------------------------------------------------------------------
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "libpq-fe.h"

#define MAX_NODES 8
#define MAX_CLIENTS 64

static const char *conninfos[MAX_NODES];
static int	n_nodes;
static int	n_clients = 4;
static int	seconds = 60;
static uint64_t seed = 1;
static int	n_keys = 6;
static int	n_lists = 4;
static int	deadline_ms = 8000;
static const char *register_path;
static const char *append_path;
static const char *lease_path;
static long long anchor_lease;
static const char *stop_path;
static const char *skip_dir;

/* the leases a client of the lease workload holds at once */
#define LEASES_HELD 4

/* What becomes of a lease the lease workload granted. */
typedef enum lease_mode
{
	LEASE_KEEP,					/* kept alive a while, then left to lapse */
	LEASE_LAPSE,				/* never kept alive */
	LEASE_REVOKE				/* kept alive a while, then revoked */
} lease_mode;

/* A lease a client of the lease workload holds (and reads the row of). */
typedef struct held_lease
{
	long long	id;				/* 0: the slot is free */
	lease_mode	mode;
	uint64_t	next_keep;		/* when to keep it alive next (us) */
	uint64_t	keep_until;		/* no keepalive after this; then a revoke */
	uint64_t	forget_at;		/* the client stops reading it then */
	int			ttl_ms;
	bool		ended;			/* revoked, or K0013: only read from now on */
} held_lease;

/* One client's state. */
typedef struct client
{
	int			no;				/* 0 .. n_clients - 1 */
	long		process;		/* its process id in the history */
	int			fd;				/* its history file, O_APPEND */
	uint64_t	rng;
	PGconn	   *conn;
	long		next_value;		/* register: values this client writes */
	long		retry_e;		/* append: the element to try again, or 0 */
	int			retry_l;		/* append: its list */
	int			retries;		/* append: tries of it so far */
	long		last_seen[64];	/* register: the last value seen per key */
	long		unexpected;		/* errors with an unexpected SQLSTATE */
	bool		lease_codes;	/* K0013 is a "fail" (the lease workload) */
	held_lease	held[LEASES_HELD];	/* lease: the leases it holds */
	uint64_t	next_anchor;	/* lease: the next keepalive of the anchor */
	long		grants;			/* lease: grants invoked, for their keys */
} client;

static uint64_t
next_rand(uint64_t *s)
{
	/* splitmix64: enough for drawing operations */
	uint64_t	z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int
pick(client *c, int n)
{
	return (int) (next_rand(&c->rng) % (uint64_t) n);
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Append one line to the client's history, in one write. */
static void
emit(client *c, const char *fmt,...)
{
	char	   *line;
	va_list		ap;
	int			len;

	/* a list read's line holds the whole list */
	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (len < 0 || (line = malloc(len + 2)) == NULL)
	{
		fprintf(stderr, "could not format a history line\n");
		exit(2);
	}
	va_start(ap, fmt);
	vsnprintf(line, len + 1, fmt, ap);
	va_end(ap);
	line[len++] = '\n';
	if (write(c->fd, line, len) != len)
	{
		perror("write history");
		exit(2);
	}
	free(line);
}

static bool
stopped(uint64_t end)
{
	struct stat st;

	if (now_us() >= end)
		return true;
	return stop_path != NULL && stat(stop_path, &st) == 0;
}

/* Connect to a node drawn at random; false (after a pause) if it failed. */
static bool
connect_some_node(client *c)
{
	char		ci[1024];
	int			node = pick(c, n_nodes);
	struct stat st;

	/* a node the test is replacing is left alone (skip-nodeN in skip_dir) */
	snprintf(ci, sizeof(ci), "%s/skip-node%d", skip_dir ? skip_dir : ".", node + 1);
	if (skip_dir != NULL && stat(ci, &st) == 0)
	{
		usleep(50 * 1000);
		return false;
	}
	snprintf(ci, sizeof(ci), "%s connect_timeout=3 application_name=nemesis_client_%d",
			 conninfos[node], c->no);
	c->conn = PQconnectdb(ci);
	if (PQstatus(c->conn) == CONNECTION_OK)
		return true;
	PQfinish(c->conn);
	c->conn = NULL;
	usleep(100 * 1000);
	return false;
}

typedef enum outcome
{
	OUT_OK,
	OUT_FAIL,
	OUT_INFO
} outcome;

/*
 * Run sql (one or more statements) and wait for all its results, at most
 * deadline_ms.  On OUT_OK, *last is the last result (the caller clears it);
 * *code gets the SQLSTATE of an error.
 */
static outcome
run(client *c, const char *sql, PGresult **last, char *code)
{
	uint64_t	until = now_us() + (uint64_t) deadline_ms * 1000;
	outcome		out = OUT_OK;

	*last = NULL;
	strcpy(code, "");
	if (!PQsendQuery(c->conn, sql))
	{
		strcpy(code, "08000");
		return OUT_INFO;
	}
	for (;;)
	{
		PGresult   *res;

		while (PQisBusy(c->conn))
		{
			struct pollfd pfd = {PQsocket(c->conn), POLLIN, 0};
			uint64_t	t = now_us();
			int			rc;

			if (t >= until)
			{
				strcpy(code, "timeout");
				if (*last)
					PQclear(*last);
				*last = NULL;
				return OUT_INFO;
			}
			rc = poll(&pfd, 1, (int) ((until - t) / 1000) + 1);
			if (rc < 0 && errno != EINTR)
				return OUT_INFO;
			if (!PQconsumeInput(c->conn))
			{
				strcpy(code, "08000");
				if (*last)
					PQclear(*last);
				*last = NULL;
				return OUT_INFO;
			}
		}
		res = PQgetResult(c->conn);
		if (res == NULL)
			break;
		if (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)
		{
			if (*last)
				PQclear(*last);
			*last = res;
			continue;
		}
		{
			const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);

			snprintf(code, 16, "%s", s ? s : "08000");
			if (s == NULL || strncmp(s, "08", 2) == 0 || strncmp(s, "57P", 3) == 0 ||
				strcmp(s, "K0003") == 0)
				out = OUT_INFO;
			else if (strcmp(s, "K0001") == 0 || strcmp(s, "K0002") == 0 ||
					 strcmp(s, "K0004") == 0 || strcmp(s, "K0005") == 0 ||
					 strcmp(s, "K0007") == 0 ||
					 strcmp(s, "K0011") == 0 ||
					 strcmp(s, "K0012") == 0 ||
					 (c->lease_codes && strcmp(s, "K0013") == 0))
				out = (out == OUT_INFO) ? OUT_INFO : OUT_FAIL;
			else
			{
				fprintf(stderr, "client %d: unexpected SQLSTATE %s: %s", c->no, s,
						PQresultErrorMessage(res));
				c->unexpected++;
				out = OUT_INFO;
			}
		}
		PQclear(res);
	}
	if (out != OUT_OK && *last)
	{
		PQclear(*last);
		*last = NULL;
	}
	if (out == OUT_OK && *last == NULL)
	{
		strcpy(code, "noresult");
		return OUT_INFO;
	}
	return out;
}

/* After an unknown outcome: a new process, a new connection. */
static void
retire(client *c)
{
	c->process += n_clients;
	PQfinish(c->conn);
	c->conn = NULL;
}

static const char *
type_of(outcome o)
{
	return o == OUT_OK ? "ok" : o == OUT_FAIL ? "fail" : "info";
}

static void
register_op(client *c)
{
	int			k = pick(c, n_keys);
	int			what = pick(c, 100);
	char		sql[512];
	char		code[16];
	PGresult   *res;
	outcome		o;
	uint64_t	t0;

	if (what < 40)
	{
		snprintf(sql, sizeof(sql),
				 "SELECT kmd_read_barrier('r%d'); SELECT v FROM nem_reg WHERE k = 'r%d'", k, k);
		t0 = now_us();
		emit(c, "{\"process\":%ld,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"r%d\",\"value\":null,\"time\":%llu}",
			 c->process, k, (unsigned long long) t0);
		o = run(c, sql, &res, code);
		if (o == OUT_OK)
		{
			const char *v = (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) ? "null" : PQgetvalue(res, 0, 0);

			emit(c, "{\"process\":%ld,\"type\":\"ok\",\"f\":\"read\",\"key\":\"r%d\",\"value\":%s,\"time\":%llu}",
				 c->process, k, v, (unsigned long long) now_us());
			if (strcmp(v, "null") != 0)
				c->last_seen[k] = atol(v);
			PQclear(res);
		}
		else
		{
			/* a read changes nothing: whatever became of it, it is left out */
			emit(c, "{\"process\":%ld,\"type\":\"fail\",\"f\":\"read\",\"key\":\"r%d\",\"error\":\"%s\",\"time\":%llu}",
				 c->process, k, code, (unsigned long long) now_us());
			if (o == OUT_INFO)
				retire(c);
		}
	}
	else if (what < 75 || c->last_seen[k] == 0)
	{
		long		v = c->next_value++;

		snprintf(sql, sizeof(sql),
				 "SELECT kmd_propose('r%d', '{\"op\":\"upsert\",\"table\":\"nem_reg\",\"row\":{\"k\":\"r%d\",\"v\":%ld}}')",
				 k, k, v);
		emit(c, "{\"process\":%ld,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"r%d\",\"value\":%ld,\"time\":%llu}",
			 c->process, k, v, (unsigned long long) now_us());
		o = run(c, sql, &res, code);
		emit(c, "{\"process\":%ld,\"type\":\"%s\",\"f\":\"write\",\"key\":\"r%d\",\"value\":%ld,\"error\":\"%s\",\"time\":%llu}",
			 c->process, type_of(o), k, v, code, (unsigned long long) now_us());
		if (res)
			PQclear(res);
		if (o == OUT_INFO)
			retire(c);
		else if (o == OUT_OK)
			c->last_seen[k] = v;
	}
	else
	{
		long		from = c->last_seen[k];
		long		to = c->next_value++;

		snprintf(sql, sizeof(sql),
				 "SELECT kmd_propose_result('r%d', '{\"op\":\"update\",\"table\":\"nem_reg\",\"key\":{\"k\":\"r%d\"},"
				 "\"set\":{\"v\":%ld},\"if\":{\"v\":%ld}}')->>'applied'",
				 k, k, to, from);
		emit(c, "{\"process\":%ld,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"r%d\",\"value\":[%ld,%ld],\"time\":%llu}",
			 c->process, k, from, to, (unsigned long long) now_us());
		o = run(c, sql, &res, code);
		if (o == OUT_OK)
		{
			bool		swapped = strcmp(PQgetvalue(res, 0, 0), "true") == 0;

			emit(c, "{\"process\":%ld,\"type\":\"ok\",\"f\":\"cas\",\"key\":\"r%d\",\"value\":[%ld,%ld],\"swapped\":%s,\"time\":%llu}",
				 c->process, k, from, to, swapped ? "true" : "false", (unsigned long long) now_us());
			if (swapped)
				c->last_seen[k] = to;
			PQclear(res);
		}
		else
		{
			emit(c, "{\"process\":%ld,\"type\":\"%s\",\"f\":\"cas\",\"key\":\"r%d\",\"value\":[%ld,%ld],\"error\":\"%s\",\"time\":%llu}",
				 c->process, type_of(o), k, from, to, code, (unsigned long long) now_us());
			if (o == OUT_INFO)
				retire(c);
		}
	}
}

/*
 * A read of list l (kmd_read_barrier, then SELECT): the test checks that
 * it is a prefix of the list's final value and holds every append
 * acknowledged before it began.  The history has the list's length and
 * the md5 of its text: lists grow to thousands of elements in a soak.
 */
static void
list_read(client *c, int l)
{
	char		sql[512];
	char		code[16];
	PGresult   *res;
	outcome		o;

	snprintf(sql, sizeof(sql),
			 "SELECT kmd_read_barrier('l%d'); "
			 "SELECT jsonb_array_length(v), md5(v::text) FROM nem_list WHERE k = 'l%d'", l, l);
	emit(c, "{\"process\":%ld,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"l%d\",\"value\":null,\"time\":%llu}",
		 c->process, l, (unsigned long long) now_us());
	o = run(c, sql, &res, code);
	if (o == OUT_OK)
	{
		bool		none = PQntuples(res) == 0;

		emit(c, "{\"process\":%ld,\"type\":\"ok\",\"f\":\"read\",\"key\":\"l%d\",\"value\":null,"
			 "\"length\":%s,\"md5\":\"%s\",\"time\":%llu}",
			 c->process, l, none ? "0" : PQgetvalue(res, 0, 0), none ? "" : PQgetvalue(res, 0, 1),
			 (unsigned long long) now_us());
		PQclear(res);
		return;
	}
	emit(c, "{\"process\":%ld,\"type\":\"fail\",\"f\":\"read\",\"key\":\"l%d\",\"error\":\"%s\",\"time\":%llu}",
		 c->process, l, code, (unsigned long long) now_us());
	if (o == OUT_INFO)
		retire(c);
}

/*
 * An append, or the retry of one whose outcome is unknown: the same
 * command with the same request id, through the new connection, up to
 * four times.  The partition must apply it once at most.
 */
static void
append_op(client *c)
{
	int			l;
	long		e;
	char		sql[512];
	char		code[16];
	PGresult   *res;
	outcome		o;

	if (c->retry_e != 0)
	{
		l = c->retry_l;
		e = c->retry_e;
	}
	else
	{
		l = pick(c, n_lists);
		if (pick(c, 100) < 25)
		{
			list_read(c, l);
			return;
		}
		e = c->next_value++;
		c->retries = 0;
	}
	snprintf(sql, sizeof(sql),
			 "SELECT kmd_propose('l%d', '{\"op\":\"call\",\"applier\":\"nem_append\",\"args\":{\"e\":%ld},"
			 "\"request_id\":\"a%ld\"}')",
			 l, e, e);
	emit(c, "{\"process\":%ld,\"type\":\"invoke\",\"f\":\"append\",\"key\":\"l%d\",\"value\":%ld,\"time\":%llu}",
		 c->process, l, e, (unsigned long long) now_us());
	o = run(c, sql, &res, code);
	emit(c, "{\"process\":%ld,\"type\":\"%s\",\"f\":\"append\",\"key\":\"l%d\",\"value\":%ld,\"error\":\"%s\",\"time\":%llu}",
		 c->process, type_of(o), l, e, code, (unsigned long long) now_us());
	if (res)
		PQclear(res);
	/* a retry is the same command: its id cannot be another's */
	if (c->retries > 0 && strcmp(code, "K0011") == 0)
	{
		fprintf(stderr, "client %d: the retry of append %ld was refused (K0011)\n", c->no, e);
		c->unexpected++;
	}
	c->retry_e = 0;
	if (o == OUT_INFO)
	{
		retire(c);
		if (++c->retries < 5)
		{
			c->retry_e = e;
			c->retry_l = l;
		}
	}
}

/* ------------------------------------------------------------------------
 * The lease workload
 * ------------------------------------------------------------------------
 */

/* The end of a lease operation's line: ok, or fail/info with the code. */
static void
emit_end(client *c, outcome o, const char *f, long long id, const char *extra,
		 const char *code)
{
	emit(c, "{\"process\":%ld,\"type\":\"%s\",\"f\":\"%s\",\"lease\":%lld%s,\"error\":\"%s\",\"time\":%llu}",
		 c->process, type_of(o), f, id, extra, code, (unsigned long long) now_us());
}

static void
emit_invoke(client *c, const char *f, long long id, const char *extra)
{
	emit(c, "{\"process\":%ld,\"type\":\"invoke\",\"f\":\"%s\",\"lease\":%lld%s,\"time\":%llu}",
		 c->process, f, id, extra, (unsigned long long) now_us());
}

/* A new lease of 2 to 4 s in slot h, kept, left to lapse or revoked. */
static void
lease_grant(client *c, held_lease *h)
{
	int			ttl_ms = 2000 + 1000 * pick(c, 3);
	int			what = pick(c, 100);
	char		key[64];
	char		sql[256];
	char		code[16];
	PGresult   *res;
	outcome		o;
	uint64_t	t;

	snprintf(key, sizeof(key), "g%d-%ld", c->no, ++c->grants);
	snprintf(sql, sizeof(sql), "SELECT kmd_lease_grant('%d milliseconds', '%s')", ttl_ms, key);
	emit(c, "{\"process\":%ld,\"type\":\"invoke\",\"f\":\"grant\",\"key\":\"%s\",\"ttl\":%d,\"time\":%llu}",
		 c->process, key, ttl_ms, (unsigned long long) now_us());
	o = run(c, sql, &res, code);
	if (o != OUT_OK)
	{
		emit(c, "{\"process\":%ld,\"type\":\"%s\",\"f\":\"grant\",\"key\":\"%s\",\"ttl\":%d,\"error\":\"%s\",\"time\":%llu}",
			 c->process, type_of(o), key, ttl_ms, code, (unsigned long long) now_us());
		if (o == OUT_INFO)
			retire(c);
		return;
	}
	memset(h, 0, sizeof(*h));
	h->id = atoll(PQgetvalue(res, 0, 0));
	PQclear(res);
	emit(c, "{\"process\":%ld,\"type\":\"ok\",\"f\":\"grant\",\"key\":\"%s\",\"ttl\":%d,\"lease\":%lld,\"time\":%llu}",
		 c->process, key, ttl_ms, h->id, (unsigned long long) now_us());
	t = now_us();
	h->ttl_ms = ttl_ms;
	h->mode = what < 45 ? LEASE_KEEP : what < 70 ? LEASE_LAPSE : LEASE_REVOKE;
	h->next_keep = t + (uint64_t) ttl_ms * 1000 / 3;
	h->keep_until = h->mode == LEASE_LAPSE ? t :
		t + (uint64_t) (2000 + pick(c, 4000)) * 1000;
	/* after its last keepalive, it is read until past its TTL */
	h->forget_at = h->keep_until + (uint64_t) (ttl_ms + 1500) * 1000;
}

/* Attach the lease's row (its key is the lease's id) to it. */
static void
lease_attach(client *c, held_lease *h)
{
	long		v = c->next_value++;
	char		sql[512];
	char		extra[64];
	char		code[16];
	PGresult   *res;
	outcome		o;

	snprintf(sql, sizeof(sql),
			 "SELECT kmd_propose('%lld', '{\"op\":\"upsert\",\"table\":\"nem_lease\","
			 "\"row\":{\"k\":\"%lld\",\"v\":%ld},\"lease\":%lld}')",
			 h->id, h->id, v, h->id);
	snprintf(extra, sizeof(extra), ",\"value\":%ld", v);
	emit_invoke(c, "attach", h->id, extra);
	o = run(c, sql, &res, code);
	emit_end(c, o, "attach", h->id, extra, code);
	if (res)
		PQclear(res);
	if (o == OUT_FAIL && strcmp(code, "K0013") == 0)
		h->ended = true;
	if (o == OUT_INFO)
		retire(c);
}

/* A keepalive of lease `id'; true if it answered K0013 (gone). */
static bool
lease_keepalive(client *c, long long id)
{
	char		sql[256];
	char		extra[64] = "";
	char		code[16];
	PGresult   *res;
	outcome		o;

	snprintf(sql, sizeof(sql),
			 "SELECT (extract(epoch FROM kmd_lease_keepalive(%lld)) * 1000)::bigint", id);
	emit_invoke(c, "keepalive", id, "");
	o = run(c, sql, &res, code);
	if (o == OUT_OK)
	{
		snprintf(extra, sizeof(extra), ",\"left\":%s", PQgetvalue(res, 0, 0));
		PQclear(res);
	}
	emit_end(c, o, "keepalive", id, extra, code);
	if (o == OUT_INFO)
		retire(c);
	return o == OUT_FAIL && strcmp(code, "K0013") == 0;
}

static void
lease_revoke(client *c, held_lease *h)
{
	char		sql[128];
	char		code[16];
	PGresult   *res;
	outcome		o;

	snprintf(sql, sizeof(sql), "SELECT kmd_lease_revoke(%lld)", h->id);
	emit_invoke(c, "revoke", h->id, "");
	o = run(c, sql, &res, code);
	emit_end(c, o, "revoke", h->id, "", code);
	if (res)
		PQclear(res);
	if (o == OUT_INFO)
		retire(c);
	/* whatever the answer, it is read a little longer, then forgotten */
	h->ended = true;
	h->forget_at = now_us() + 1500 * 1000;
}

/* A read of the row of lease `id', as the register workload reads. */
static void
lease_read(client *c, long long id)
{
	char		sql[256];
	char		code[16];
	PGresult   *res;
	outcome		o;

	snprintf(sql, sizeof(sql),
			 "SELECT kmd_read_barrier('%lld'); SELECT v FROM nem_lease WHERE k = '%lld'", id, id);
	emit_invoke(c, "read", id, "");
	o = run(c, sql, &res, code);
	if (o == OUT_OK)
	{
		char		extra[64];

		snprintf(extra, sizeof(extra), ",\"value\":%s",
				 (PQntuples(res) == 0 || PQgetisnull(res, 0, 0)) ? "null" : PQgetvalue(res, 0, 0));
		PQclear(res);
		emit_end(c, o, "read", id, extra, code);
		return;
	}
	/* a read changes nothing: whatever became of it, it is left out */
	emit_end(c, OUT_FAIL, "read", id, "", code);
	if (o == OUT_INFO)
		retire(c);
}

/*
 * One step of the lease workload: the keepalive (or the revoke) most
 * overdue among the leases held, else a grant, a keepalive of the anchor,
 * a read or an attach.  Keepalives and revokes go through a node drawn
 * anew one time in three.
 */
static void
lease_op(client *c)
{
	uint64_t	now = now_us();
	held_lease *due = NULL;
	held_lease *free_slot = NULL;
	held_lease *some[LEASES_HELD];
	int			n = 0;
	int			what = pick(c, 100);
	bool		moved = false;

	for (int i = 0; i < LEASES_HELD; i++)
	{
		held_lease *h = &c->held[i];

		if (h->id != 0 && now >= h->forget_at)
			h->id = 0;
		if (h->id == 0)
		{
			if (free_slot == NULL)
				free_slot = h;
			continue;
		}
		some[n++] = h;
		if (!h->ended && h->mode != LEASE_LAPSE && now >= h->next_keep &&
			(due == NULL || h->next_keep < due->next_keep))
			due = h;
	}

	if (due != NULL)
	{
		if (now >= due->keep_until && due->mode == LEASE_REVOKE)
			lease_revoke(c, due);
		else if (now >= due->keep_until)
			due->next_keep = UINT64_MAX;	/* left to lapse from now on */
		else
		{
			due->next_keep = now + (uint64_t) due->ttl_ms * 1000 / 3;
			if (lease_keepalive(c, due->id))
			{
				due->ended = true;
				uint64_t	soon = now_us() + 1500 * 1000;

				if (due->forget_at > soon)
					due->forget_at = soon;
			}
		}
		moved = true;
	}
	else if (free_slot != NULL && (n == 0 || what < 25))
		lease_grant(c, free_slot);
	else if (anchor_lease > 0 && now >= c->next_anchor)
	{
		c->next_anchor = now + (uint64_t) (1000 + pick(c, 4000)) * 1000;
		(void) lease_keepalive(c, anchor_lease);
		moved = true;
	}
	else if (n > 0)
	{
		held_lease *h = some[pick(c, n)];

		/* a lease known to be gone is attached to now and then only */
		if (what < 65 || (h->ended && what < 90))
			lease_read(c, (anchor_lease > 0 && what < 8) ? anchor_lease : h->id);
		else
			lease_attach(c, h);
	}
	if (moved && c->conn != NULL && pick(c, 3) == 0)
	{
		PQfinish(c->conn);
		c->conn = NULL;
	}
	/* leases need few operations: leave the cores to the others */
	usleep(5 * 1000);
}

static int
client_main(int no)
{
	client		c;
	int			workload = no % (lease_path != NULL ? 3 : 2);	/* 0 register, 1 append, 2 lease */
	bool		append = workload == 1;
	const char *path = workload == 0 ? register_path : workload == 1 ? append_path : lease_path;
	uint64_t	end = now_us() + (uint64_t) seconds * 1000000;

	memset(&c, 0, sizeof(c));
	c.no = no;
	c.process = no;
	c.rng = seed * 1000003 + (uint64_t) no;
	/* values are unique over clients: the client's number in the high digits */
	c.next_value = (long) (no + 1) * 100000000L + 1;
	c.lease_codes = workload == 2;
	c.fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (c.fd < 0)
	{
		perror("open history");
		return 2;
	}
	while (!stopped(end))
	{
		if (c.conn == NULL && !connect_some_node(&c))
			continue;
		if (workload == 2)
			lease_op(&c);
		else if (append)
			append_op(&c);
		else
			register_op(&c);
		/* now and then, a client moves to another node */
		if (c.conn != NULL && pick(&c, 50) == 0)
		{
			PQfinish(c.conn);
			c.conn = NULL;
		}
	}
	if (c.conn)
		PQfinish(c.conn);
	close(c.fd);
	return c.unexpected > 0 ? 3 : 0;
}

static void
usage(void)
{
	fprintf(stderr,
			"usage: kmd-nemesis-client --conninfo C [--conninfo C ...] --register FILE --append FILE\n"
			"       [--lease FILE [--anchor LEASE]] [--clients N] [--seconds S] [--seed N] [--keys K] [--lists L]\n"
			"       [--deadline-ms MS] [--stop-file FILE] [--skip-dir DIR]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	pid_t		pids[MAX_CLIENTS];
	int			rc = 0;

	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--conninfo") == 0 && n_nodes < MAX_NODES)
			conninfos[n_nodes++] = v;
		else if (strcmp(a, "--register") == 0)
			register_path = v;
		else if (strcmp(a, "--append") == 0)
			append_path = v;
		else if (strcmp(a, "--lease") == 0)
			lease_path = v;
		else if (strcmp(a, "--anchor") == 0)
			anchor_lease = atoll(v);
		else if (strcmp(a, "--clients") == 0)
			n_clients = atoi(v);
		else if (strcmp(a, "--seconds") == 0)
			seconds = atoi(v);
		else if (strcmp(a, "--seed") == 0)
			seed = strtoull(v, NULL, 10);
		else if (strcmp(a, "--keys") == 0)
			n_keys = atoi(v);
		else if (strcmp(a, "--lists") == 0)
			n_lists = atoi(v);
		else if (strcmp(a, "--deadline-ms") == 0)
			deadline_ms = atoi(v);
		else if (strcmp(a, "--stop-file") == 0)
			stop_path = v;
		else if (strcmp(a, "--skip-dir") == 0)
			skip_dir = v;
		else
			usage();
	}
	if (n_nodes == 0 || register_path == NULL || append_path == NULL ||
		n_clients < 1 || n_clients > MAX_CLIENTS || n_keys < 1 || n_keys > 64 || n_lists < 1)
		usage();

	for (int i = 0; i < n_clients; i++)
	{
		pids[i] = fork();
		if (pids[i] < 0)
		{
			perror("fork");
			return 2;
		}
		if (pids[i] == 0)
			_exit(client_main(i));
	}
	for (int i = 0; i < n_clients; i++)
	{
		int			status;

		if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status))
			rc = 2;
		else if (WEXITSTATUS(status) != 0 && rc == 0)
			rc = WEXITSTATUS(status);
	}
	return rc;
}
