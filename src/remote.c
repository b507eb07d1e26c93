/*-------------------------------------------------------------------------
 *
 * remote.c
 *	  libpq calls from inside a backend or a background worker to another
 *	  node: connect and run a query without blocking interrupts, so that a
 *	  cancel, statement_timeout or a shutdown ends the wait at any point.
 *
 * Used by kmd_join (to the seed and to the node itself) and by the apply
 * worker fetching a partition image (snapshot.c).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/remote.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/timestamp.h"

#include "remote.h"
#include "shmem.h"

/* a wait longer than this fails, in ms; 0: none does */
static int	silence_limit_ms = 0;

int
kmd_remote_set_timeout(int ms)
{
	int			before = silence_limit_ms;

	silence_limit_ms = Max(ms, 0);
	return before;
}

/*
 * Wait until `conn' can be read (or written, if `write'), serving
 * interrupts: a cancel or statement_timeout ends kmd_join at any point.
 * Wake-ups of the latch do not end the wait, nor restart its limit.
 */
void
kmd_remote_wait(PGconn *conn, bool write)
{
	TimestampTz start = GetCurrentTimestamp();

	for (;;)
	{
		long		timeout = -1L;
		int			rc;

		if (silence_limit_ms > 0)
		{
			timeout = silence_limit_ms -
				TimestampDifferenceMilliseconds(start, GetCurrentTimestamp());
			if (timeout <= 0)
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("the remote node did not answer for %d ms", silence_limit_ms)));
		}
		rc = WaitLatchOrSocket(MyLatch,
							   WL_EXIT_ON_PM_DEATH | WL_LATCH_SET |
							   (timeout >= 0 ? WL_TIMEOUT : 0) |
							   (write ? WL_SOCKET_WRITEABLE : WL_SOCKET_READABLE),
							   PQsocket(conn), timeout, PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (rc & (WL_SOCKET_READABLE | WL_SOCKET_WRITEABLE))
			return;
	}
}

PGresult *
kmd_remote_try(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *volatile res = NULL;
	PGresult   *next;

	if (!PQsendQueryParams(conn, sql, nparams, NULL, params, NULL, NULL, 0))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("remote call failed: %s", sql),
				 errdetail_internal("%s", PQerrorMessage(conn))));
	/* the last result is the one that counts; an error wins */
	PG_TRY();
	{
		for (;;)
		{
			while (PQisBusy(conn))
			{
				kmd_remote_wait(conn, false);
				if (!PQconsumeInput(conn))
					ereport(ERROR,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("remote call failed: %s", sql),
							 errdetail_internal("%s", PQerrorMessage(conn))));
			}
			next = PQgetResult(conn);
			if (next == NULL)
				break;
			if (res != NULL && PQresultStatus(res) == PGRES_FATAL_ERROR)
				PQclear(next);
			else
			{
				PQclear(res);
				res = next;
			}
		}
	}
	PG_CATCH();
	{
		/* libpq's memory, which no error frees: a result kept meanwhile */
		PQclear(res);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return res;
}

PGresult *
kmd_remote_exec(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
	PGresult   *res = kmd_remote_try(conn, sql, nparams, params);

	if (PQresultStatus(res) != PGRES_TUPLES_OK && PQresultStatus(res) != PGRES_COMMAND_OK)
	{
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		const char *primary = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		const char *hint = PQresultErrorField(res, PG_DIAG_MESSAGE_HINT);
		char	   *msg = pstrdup(primary ? primary : PQerrorMessage(conn));
		char	   *det = detail ? pstrdup(detail) : NULL;
		char	   *hin = hint ? pstrdup(hint) : NULL;
		int			code = ERRCODE_CONNECTION_FAILURE;

		if (state != NULL && strlen(state) == 5)
			code = MAKE_SQLSTATE(state[0], state[1], state[2], state[3], state[4]);
		PQclear(res);
		/* the remote node's error as it told it, and where it came from */
		ereport(ERROR,
				(errcode(code),
				 errmsg_internal("%s", msg),
				 det ? errdetail_internal("%s", det) : 0,
				 hin ? errhint("%s", hin) : 0,
				 errcontext("remote call: %s", sql)));
	}
	return res;
}

/*
 * The session settings of a peer connection (`pinned'), over whatever the
 * peer's configuration, database or role sets: a timeout there would end
 * every try of a long transfer alike, and the rows travel in the
 * database's own encoding.
 */
#define PINNED_OPTIONS "-c statement_timeout=0 -c lock_timeout=0 " \
	"-c idle_in_transaction_session_timeout=0"

/*
 * Connect to a node without blocking interrupts, as `user' when not NULL
 * (over the conninfo's), with the settings above when `pinned' (over the
 * conninfo's options); raises on failure.
 */
static PGconn *
connect_as(const char *conninfo, const char *user, const char *what, bool pinned)
{
	const char *keys[5] = {"dbname", NULL, NULL, NULL, NULL};
	const char *vals[5] = {conninfo, NULL, NULL, NULL, NULL};
	int			n = 1;
	PGconn	   *conn;
	volatile PostgresPollingStatusType status = PGRES_POLLING_WRITING;

	if (user != NULL)
	{
		keys[n] = "user";
		vals[n++] = user;
	}
	if (pinned)
	{
		keys[n] = "options";
		vals[n++] = PINNED_OPTIONS;
		keys[n] = "client_encoding";
		vals[n++] = GetDatabaseEncodingName();
	}
	conn = PQconnectStartParams(keys, vals, 1);

	while (conn != NULL && PQstatus(conn) != CONNECTION_BAD &&
		   status != PGRES_POLLING_OK && status != PGRES_POLLING_FAILED)
	{
		PG_TRY();
		{
			kmd_remote_wait(conn, status == PGRES_POLLING_WRITING);
		}
		PG_CATCH();
		{
			PQfinish(conn);
			PG_RE_THROW();
		}
		PG_END_TRY();
		status = PQconnectPoll(conn);
	}
	if (conn == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		char	   *msg = pstrdup(PQerrorMessage(conn));

		PQfinish(conn);
		ereport(ERROR,
				(errcode(ERRCODE_SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION),
				 errmsg("could not connect to %s", what),
				 errdetail_internal("%s", msg)));
	}

	/*
	 * What this node sends there finds pg_catalog's operators, functions
	 * and types first, whatever search_path the database has: its owner
	 * sets that, and need not be a superuser, while the connection's role
	 * often is one.  (The call itself names its schema.)
	 */
	PG_TRY();
	{
		PQclear(kmd_remote_exec(conn, "SELECT pg_catalog.set_config('search_path', "
								"'pg_catalog, pg_temp', false)", 0, NULL));
	}
	PG_CATCH();
	{
		PQfinish(conn);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return conn;
}

PGconn *
kmd_remote_connect(const char *conninfo, const char *what)
{
	return connect_as(conninfo, NULL, what, false);
}

PGconn *
kmd_remote_connect_peer(const char *conninfo, const char *what)
{
	char		user[NAMEDATALEN] = "";

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
		if (kmd_shared->nodes[i].node_id != 0 &&
			kmd_shared->nodes[i].node_id == kmd_shared->local_node_id)
			strlcpy(user, kmd_shared->nodes[i].peer_role, sizeof(user));
	LWLockRelease(kmd_shared->lock);
	return connect_as(conninfo, user[0] != '\0' ? user : NULL, what, true);
}
