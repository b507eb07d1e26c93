/*-------------------------------------------------------------------------
 *
 * transport.c
 *	  Outgoing peer connections of a Raft worker: one non-blocking libpq
 *	  connection per peer node, which calls kommander.peer_stream() once
 *	  and then carries each batch as a CopyData message.
 *
 * Nothing here blocks the worker: connections are set up with
 * PQconnectPoll driven by socket readiness, output is flushed as the socket
 * accepts it, answers are read as they come.  A batch costs the peer no
 * statement: its backend reads the stream and fills the inboxes (deliver.c).
 * A batch for a peer that is not connected, or that has
 * kommander.max_inflight_batches batches not yet written to the socket, is
 * dropped: Raft retransmits, and the requests it forwarded and the
 * answers it carried go with a later batch (peers.c), as do those a peer
 * returns of a batch no inbox there had room for.  A broken
 * connection, or a stream the peer ends with an error, is closed and
 * opened again after a backoff that doubles from 100 ms to 1 s; a peer
 * that refuses this node as a member (it has not applied its addition
 * yet, or it removed it) after one that doubles from 100 ms to 30 s.
 *
 * A stream that answers neither its CALL nor its timed batch for ten
 * election timeouts (or a connection of deliver calls its timed call) is
 * closed and opened again: its backend there may be
 * stuck, or the connection half-open, which TCP alone can take many
 * minutes to notice.  So is a connection not made within as long (a peer
 * whose host drops connection attempts).
 *
 * A peer whose kommander has no kommander.peer_stream() (an older version,
 * during a rolling upgrade) is sent its batches the older way until the
 * connection next breaks: SELECT kommander.deliver($1) per batch, in
 * pipeline mode, at most kommander.max_inflight_batches unanswered.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/transport.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <poll.h>

#include "catalog/pg_type.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "resolve.h"
#include "stats.h"
#include "transport.h"
#include "wire.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000
#define BACKOFF_REFUSED_MS 30000	/* at most, while the peer says we are not a
									 * member */
#define ANSWER_TIMEOUTS 10		/* election timeouts a stream may not answer */

typedef enum PeerState
{
	PEER_IDLE,					/* not connected; retry at retry_at */
	PEER_CONNECTING,
	PEER_STARTING,				/* CALL kommander.peer_stream() sent */
	PEER_READY					/* the stream (or deliver calls) carry batches */
} PeerState;

struct KmdPeer
{
	int32		node_id;
	char		conninfo[KMD_CONNINFO_LEN];
	char		user[NAMEDATALEN];	/* this node's peer role, or "" */
	PGconn	   *conn;
	uint64		conn_id;		/* tells this connection from earlier ones */
	PeerState	state;
	PostgresPollingStatusType poll;	/* what PQconnectPoll waits for */
	int			unflushed;		/* batches queued since output was last all
								 * written to the socket */
	bool		by_deliver;		/* the peer has no stream: one
								 * kommander.deliver call per batch */
	bool		told_by_deliver;	/* logged that it has none */
	int			unanswered;		/* by_deliver: batches (and the prepare)
								 * whose sync is not yet answered */
	uint64		syncs_sent;		/* by_deliver: syncs sent, */
	uint64		syncs_done;		/* answered, */
	uint64		timed_sync;		/* and the timed batch's */
	bool		want_write;		/* output not yet flushed */
	TimestampTz retry_at;
	int			backoff_ms;
	int			refused_ms;		/* the backoff since the peer refused us, 0:
								 * it did not */
	bool		reported;		/* failure logged since the last success */
	/* one batch at a time is timed to its answer: kommander.latency */
	bool		timed;			/* a timed batch is unanswered */
	TimestampTz timed_at;		/* when it was sent, the CALL, or the connect */
	char	   *frame;			/* a kind byte and the batch being sent */
	uint32		frame_size;
};

/* numbers the connections this process makes */
static uint64 connections_made = 0;

void
kmd_transport_init(KmdTransport *t, int worker_no, KmdReturnedFn returned)
{
	memset(t, 0, sizeof(*t));
	t->worker_no = worker_no;
	t->returned = returned;
	t->roster_version = PG_UINT64_MAX;
	t->cxt = AllocSetContextCreate(TopMemoryContext, "kommander transport",
								   ALLOCSET_SMALL_SIZES);
}

static void
peer_close(KmdPeer *p, const char *why)
{
	if (p->conn != NULL)
	{
		if (why != NULL && !p->reported)
		{
			ereport(LOG,
					(errmsg("kommander: connection to node %d failed", p->node_id),
					 errdetail_internal("%s", why)));
			p->reported = true;
		}
		PQfinish(p->conn);
		p->conn = NULL;
	}
	p->state = PEER_IDLE;
	p->unflushed = 0;
	p->by_deliver = false;		/* the next connection tries the stream */
	p->unanswered = 0;
	p->syncs_sent = p->syncs_done = p->timed_sync = 0;
	p->timed = false;
	p->want_write = false;
	p->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), p->backoff_ms);
	p->backoff_ms = Min(p->backoff_ms * 2, BACKOFF_MAX_MS);
}

static void
peer_start(KmdTransport *t, KmdPeer *p)
{
	const char *keys[7] = {"dbname", "application_name"};
	const char *vals[7];
	char		appname[NAMEDATALEN];
	KmdAddress *addr = palloc(sizeof(KmdAddress));
	int			n = 2;

	snprintf(appname, sizeof(appname), "kommander worker %d", t->worker_no);
	vals[0] = p->conninfo;
	vals[1] = appname;
	/* this node's own login role, when the roster names one, over the conninfo's */
	if (p->user[0] != '\0')
	{
		keys[n] = "user";
		vals[n++] = p->user;
	}

	/* its host names resolved by the resolver: libpq would wait for DNS */
	switch (kmd_peer_address(p->node_id, p->conninfo, addr))
	{
		case KMD_ADDRESS_NOT_NEEDED:
			break;
		case KMD_ADDRESS_READY:
			keys[n] = "host";
			vals[n++] = addr->host;
			keys[n] = "hostaddr";
			vals[n++] = addr->hostaddr;
			if (addr->port[0] != '\0')
			{
				keys[n] = "port";
				vals[n++] = addr->port;
			}
			break;
		case KMD_ADDRESS_PENDING:
			pfree(addr);
			p->retry_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), BACKOFF_MIN_MS);
			return;
		case KMD_ADDRESS_FAILED:
			if (!p->reported)
				ereport(LOG,
						(errmsg("kommander: connection to node %d failed", p->node_id),
						 errdetail_internal("%s", addr->error)));
			p->reported = true;
			pfree(addr);
			peer_close(p, NULL);
			return;
	}
	keys[n] = NULL;
	vals[n] = NULL;
	p->conn = PQconnectStartParams(keys, vals, 1);
	pfree(addr);
	p->conn_id = ++connections_made;
	if (p->conn == NULL || PQstatus(p->conn) == CONNECTION_BAD)
	{
		peer_close(p, p->conn ? PQerrorMessage(p->conn) : "out of memory");
		return;
	}
	p->state = PEER_CONNECTING;
	p->poll = PGRES_POLLING_WRITING;
	p->timed_at = GetCurrentTimestamp();
}

/*
 * Is the socket of `p', connecting, ready for what PQconnectPoll asked for
 * last?  libpq must not be polled before: it takes a connect still under
 * way for one made, sends its startup packet, and waits for the socket
 * then, without a deadline (the connection is in blocking mode until it is
 * made), a peer that drops connection attempts holding the whole loop.
 * An error or hang-up counts as ready: libpq reports it.
 */
static bool
connect_ready(KmdPeer *p)
{
	struct pollfd pfd;

	pfd.fd = PQsocket(p->conn);
	if (pfd.fd == PGINVALID_SOCKET)
		return true;
	pfd.events = p->poll == PGRES_POLLING_READING ? POLLIN : POLLOUT;
	pfd.revents = 0;
	return poll(&pfd, 1, 0) > 0;
}

void
kmd_transport_sync(KmdTransport *t)
{
	KmdPeer    *keep[KMD_MAX_NODES];
	int			n = 0;
	int32		ids[KMD_MAX_NODES];
	char	  (*conninfos)[KMD_CONNINFO_LEN];
	int			n_nodes = 0;
	char		user[NAMEDATALEN] = "";

	if (t->roster_version == kmd_shared->roster_version)
		return;

	conninfos = palloc(sizeof(*conninfos) * KMD_MAX_NODES);
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	t->roster_version = kmd_shared->roster_version;
	for (int i = 0; i < KMD_MAX_NODES; i++)
	{
		KmdNode    *node = &kmd_shared->nodes[i];

		if (node->node_id != 0 && node->node_id == kmd_shared->local_node_id)
			strlcpy(user, node->peer_role, sizeof(user));
		if (node->node_id == 0 || node->node_id == kmd_shared->local_node_id)
			continue;
		ids[n_nodes] = node->node_id;
		strlcpy(conninfos[n_nodes], node->conninfo, KMD_CONNINFO_LEN);
		n_nodes++;
	}
	LWLockRelease(kmd_shared->lock);

	/* close peers that left or moved */
	for (int i = 0; i < t->n_peers; i++)
	{
		KmdPeer    *p = t->peers[i];
		bool		stays = false;

		for (int j = 0; j < n_nodes; j++)
			if (ids[j] == p->node_id && strcmp(conninfos[j], p->conninfo) == 0 &&
				strcmp(user, p->user) == 0)
				stays = true;
		if (stays)
			keep[n++] = p;
		else
		{
			if (p->conn)
				PQfinish(p->conn);
			if (p->frame)
				pfree(p->frame);
			pfree(p);
		}
	}
	/* open the new ones */
	for (int j = 0; j < n_nodes; j++)
	{
		bool		known = false;

		for (int i = 0; i < n; i++)
			if (keep[i]->node_id == ids[j])
				known = true;
		if (!known)
		{
			KmdPeer    *p = MemoryContextAllocZero(t->cxt, sizeof(KmdPeer));

			p->node_id = ids[j];
			strlcpy(p->conninfo, conninfos[j], KMD_CONNINFO_LEN);
			strlcpy(p->user, user, NAMEDATALEN);
			p->state = PEER_IDLE;
			p->backoff_ms = BACKOFF_MIN_MS;
			p->retry_at = 0;
			keep[n++] = p;
		}
	}
	memcpy(t->peers, keep, sizeof(KmdPeer *) * n);
	t->n_peers = n;
	pfree(conninfos);
}

static KmdPeer *
peer_find(KmdTransport *t, int32 node_id)
{
	for (int i = 0; i < t->n_peers; i++)
		if (t->peers[i]->node_id == node_id)
			return t->peers[i];
	return NULL;
}

bool
kmd_transport_connected(KmdTransport *t, int32 node_id)
{
	KmdPeer    *p = peer_find(t, node_id);

	return p != NULL && p->state == PEER_READY;
}

/*
 * A batch for a peer without the stream: one kommander.deliver call, its
 * statement prepared when the connection opened.
 */
static KmdSendResult
send_by_deliver(KmdPeer *p, const char *data, uint32 len)
{
	const char *values[1] = {data};
	int			lengths[1] = {(int) len};
	int			formats[1] = {1};

	if (p->unanswered >= kmd_max_inflight_batches)
		return KMD_SEND_DROPPED;
	/* the call runs once its Execute is read, Sync or not */
	if (!PQsendQueryPrepared(p->conn, "kmd_deliver", 1, values, lengths, formats, 1) ||
		!PQpipelineSync(p->conn))
	{
		peer_close(p, PQerrorMessage(p->conn));
		return KMD_SEND_LOST;
	}
	p->unanswered++;
	p->unflushed++;
	p->want_write = true;
	p->syncs_sent++;
	if (!p->timed)
	{
		p->timed = true;
		p->timed_sync = p->syncs_sent;
		p->timed_at = GetCurrentTimestamp();
	}
	kmd_stat_add(KMD_STAT_BATCHES_SENT, -1, 1);
	kmd_stat_add(KMD_STAT_BYTES_SENT, -1, len);
	return KMD_SEND_QUEUED;
}

KmdSendResult
kmd_transport_send(KmdTransport *t, int32 to_node, const char *data, uint32 len)
{
	KmdPeer    *p = peer_find(t, to_node);
	bool		timed;

	if (p == NULL || p->state != PEER_READY || p->unflushed >= kmd_max_inflight_batches)
		return KMD_SEND_DROPPED;
	if (p->by_deliver)
		return send_by_deliver(p, data, len);
	if (p->frame_size < len + 1)
	{
		if (p->frame)
			pfree(p->frame);
		p->frame_size = Max(len + 1, 8192);
		p->frame = MemoryContextAlloc(t->cxt, p->frame_size);
	}
	timed = !p->timed;
	p->frame[0] = timed ? KMD_STREAM_TIMED : KMD_STREAM_BATCH;
	memcpy(p->frame + 1, data, len);
	switch (PQputCopyData(p->conn, p->frame, (int) len + 1))
	{
		case 1:
			break;
		case 0:					/* libpq found no memory to queue it */
			return KMD_SEND_DROPPED;
		default:
			peer_close(p, PQerrorMessage(p->conn));
			return KMD_SEND_LOST;
	}
	p->unflushed++;
	p->want_write = true;
	if (timed)
	{
		p->timed = true;
		p->timed_at = GetCurrentTimestamp();
	}
	kmd_stat_add(KMD_STAT_BATCHES_SENT, -1, 1);
	kmd_stat_add(KMD_STAT_BYTES_SENT, -1, len);
	return KMD_SEND_QUEUED;
}

/*
 * The peer ended the call with an error (or the connection broke): log it
 * and close the connection.
 */
static void
peer_failed(KmdPeer *p, PGresult *res)
{
	char	   *msg = pstrdup(res ? PQresultErrorMessage(res) : PQerrorMessage(p->conn));
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	/* no kommander.peer_stream() there (42883): deliver calls, at once */
	if (p->state == PEER_STARTING && state != NULL && strcmp(state, "42883") == 0)
	{
		if (!p->told_by_deliver)
			ereport(LOG,
					(errmsg("kommander: node %d has no kommander.peer_stream(); batches go to it by kommander.deliver",
							p->node_id),
					 errhint("Its kommander is older than this node's: update it.")));
		p->told_by_deliver = true;
		peer_close(p, NULL);
		p->by_deliver = true;
		p->retry_at = 0;
		pfree(msg);
		return;
	}

	/*
	 * A peer that does not count this node as a member is asked again
	 * after a backoff that doubles up to 30 s: a peer that has not applied
	 * this node's addition yet soon does, one that removed it never will.
	 */
	if (state != NULL && strcmp(state, "28000") == 0)
	{
		p->refused_ms = p->refused_ms > 0 ? Min(p->refused_ms * 2, BACKOFF_REFUSED_MS) :
			BACKOFF_MIN_MS;
		ereport(LOG,
				(errmsg("kommander: node %d refuses this node as a cluster member; next try in %.1f s",
						p->node_id, p->refused_ms / 1000.0),
				 errdetail_internal("%s", msg)));
		p->reported = true;
		p->backoff_ms = p->refused_ms;
	}
	if (res != NULL && p->state == PEER_READY)
		kmd_stat_add(KMD_STAT_BATCHES_REFUSED, -1, 1);
	peer_close(p, msg);
	pfree(msg);
}

/*
 * Read the results of deliver calls that have arrived, without blocking;
 * false if the connection was closed.  In pipeline mode each call yields
 * its result, a NULL that ends it, and the PGRES_PIPELINE_SYNC of its
 * sync.
 */
static bool
read_deliver_results(KmdPeer *p)
{
	while (p->unanswered > 0 && !PQisBusy(p->conn))
	{
		PGresult   *res = PQgetResult(p->conn);

		if (res == NULL)
			continue;			/* end of one call's results */
		switch (PQresultStatus(res))
		{
			case PGRES_PIPELINE_SYNC:
				p->unanswered--;
				p->syncs_done++;
				if (p->timed && p->syncs_done >= p->timed_sync)
				{
					kmd_latency_since(KMD_LAT_PEER_ROUND_TRIP, -1, p->timed_at);
					p->timed = false;
				}
				break;
			case PGRES_TUPLES_OK:
				p->reported = false;
				p->backoff_ms = BACKOFF_MIN_MS;
				p->refused_ms = 0;
				/* false (binary: a zero byte): an inbox there had no room */
				if (PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 1 &&
					PQgetvalue(res, 0, 0)[0] == 0)
					kmd_stat_add(KMD_STAT_BATCHES_REFUSED, -1, 1);
				break;
			case PGRES_COMMAND_OK:	/* the statement prepared */
			case PGRES_PIPELINE_ABORTED:
				break;
			default:
				peer_failed(p, res);
				PQclear(res);
				return false;
		}
		PQclear(res);
	}
	return true;
}

/*
 * Read what the peer has sent, without blocking; false if the connection
 * was closed.  Before the stream starts that is the CALL's result, then
 * the answers to timed and refused batches and what the peer returned of
 * the refused ones (handed to t->returned), and an error ends it.
 */
static bool
peer_read(KmdTransport *t, KmdPeer *p)
{
	if (!PQconsumeInput(p->conn))
	{
		peer_failed(p, NULL);
		return false;
	}
	if (p->by_deliver)
		return read_deliver_results(p);
	if (p->state == PEER_STARTING)
	{
		PGresult   *res;

		if (PQisBusy(p->conn))
			return true;
		res = PQgetResult(p->conn);
		if (res == NULL || PQresultStatus(res) != PGRES_COPY_BOTH)
		{
			peer_failed(p, res);
			PQclear(res);
			return false;
		}
		PQclear(res);
		p->state = PEER_READY;
	}
	for (;;)
	{
		char	   *buf;
		int			n = PQgetCopyData(p->conn, &buf, 1);

		if (n == 0)
			return true;
		if (n < 0)
		{
			/*
			 * The stream ended: its result says why.  Only once it has
			 * arrived whole, as PQgetResult would wait for it.
			 */
			PGresult   *res = n == -1 && !PQisBusy(p->conn) ? PQgetResult(p->conn) : NULL;

			peer_failed(p, res);
			PQclear(res);
			return false;
		}
		if (n == 2 && buf[0] == KMD_STREAM_ANSWER)
		{
			if (buf[1] & KMD_ANSWER_TIMED)
			{
				kmd_latency_since(KMD_LAT_PEER_ROUND_TRIP, -1, p->timed_at);
				p->timed = false;
				p->reported = false;
				p->backoff_ms = BACKOFF_MIN_MS;
				p->refused_ms = 0;
			}
			if (buf[1] & KMD_ANSWER_REFUSED)
				kmd_stat_add(KMD_STAT_BATCHES_REFUSED, -1, 1);
		}
		else if (n > 1 && buf[0] == KMD_STREAM_RETURNED && t->returned != NULL)
			t->returned(p->node_id, buf + 1, (uint32) (n - 1));
		PQfreemem(buf);
	}
}

void
kmd_transport_poll(KmdTransport *t)
{
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < t->n_peers; i++)
	{
		KmdPeer    *p = t->peers[i];

		switch (p->state)
		{
			case PEER_IDLE:
				if (now >= p->retry_at)
					peer_start(t, p);
				break;
			case PEER_CONNECTING:
				if (!connect_ready(p))
				{
					if (TimestampDifferenceExceeds(p->timed_at, now, ANSWER_TIMEOUTS * kmd_election_timeout))
					{
						char	   *why = psprintf("Node %d did not take the connection within %d ms; it is tried again.",
												   p->node_id, ANSWER_TIMEOUTS * kmd_election_timeout);

						peer_close(p, why);
						pfree(why);
					}
					break;
				}
				p->poll = PQconnectPoll(p->conn);
				if (p->poll == PGRES_POLLING_FAILED)
					peer_close(p, PQerrorMessage(p->conn));
				else if (p->poll == PGRES_POLLING_OK && p->by_deliver)
				{
					Oid			types[1] = {BYTEAOID};

					if (PQsetnonblocking(p->conn, 1) != 0 ||
						!PQenterPipelineMode(p->conn) ||
						!PQsendPrepare(p->conn, "kmd_deliver", "SELECT kommander.deliver($1)",
									   1, types) ||
						!PQpipelineSync(p->conn))
						peer_close(p, PQerrorMessage(p->conn));
					else
					{
						p->state = PEER_READY;
						p->unanswered = 1;	/* the prepare's sync */
						p->syncs_sent = 1;
						p->want_write = true;
					}
				}
				else if (p->poll == PGRES_POLLING_OK)
				{
					if (PQsetnonblocking(p->conn, 1) != 0 ||
						!PQsendQuery(p->conn, "CALL kommander.peer_stream()"))
						peer_close(p, PQerrorMessage(p->conn));
					else
					{
						p->state = PEER_STARTING;
						p->want_write = true;
						p->timed_at = GetCurrentTimestamp();
					}
				}
				break;
			case PEER_STARTING:
			case PEER_READY:
				if (PQstatus(p->conn) != CONNECTION_OK)
				{
					peer_close(p, PQerrorMessage(p->conn));
					break;
				}
				if (p->want_write)
				{
					int			rc = PQflush(p->conn);

					if (rc < 0)
					{
						peer_close(p, PQerrorMessage(p->conn));
						break;
					}
					p->want_write = rc > 0;
					if (rc == 0)
						p->unflushed = 0;
				}
				if (!peer_read(t, p))
					break;
				/* after reading: an answer waiting in the socket is no silence */
				if ((p->state == PEER_STARTING || p->timed) &&
					TimestampDifferenceExceeds(p->timed_at, now, ANSWER_TIMEOUTS * kmd_election_timeout))
				{
					char	   *why = psprintf("Node %d did not answer for %d ms; the connection is opened again.",
											   p->node_id, ANSWER_TIMEOUTS * kmd_election_timeout);

					p->reported = false;	/* say so, even after an earlier failure */
					peer_close(p, why);
					pfree(why);
				}
				break;
		}
	}
}

int
kmd_transport_wait_events(KmdTransport *t, KmdPeerWait *waits)
{
	int			n = 0;

	for (int i = 0; i < t->n_peers; i++)
	{
		KmdPeer    *p = t->peers[i];
		uint32		events = 0;
		pgsocket	sock;

		if (p->conn == NULL || p->state == PEER_IDLE)
			continue;
		sock = PQsocket(p->conn);
		if (sock == PGINVALID_SOCKET)
			continue;
		if (p->state == PEER_CONNECTING)
			events = p->poll == PGRES_POLLING_READING ? WL_SOCKET_READABLE : WL_SOCKET_WRITEABLE;
		else
			events = WL_SOCKET_READABLE | (p->want_write ? WL_SOCKET_WRITEABLE : 0);
		memset(&waits[n], 0, sizeof(KmdPeerWait));
		waits[n].sock = sock;
		waits[n].events = events;
		waits[n].conn_id = p->conn_id;
		waits[n].connecting = p->state == PEER_CONNECTING;
		n++;
	}
	return n;
}

long
kmd_transport_next_timeout(KmdTransport *t)
{
	long		best = -1;
	TimestampTz now = GetCurrentTimestamp();

	for (int i = 0; i < t->n_peers; i++)
	{
		KmdPeer    *p = t->peers[i];
		long		ms;

		if (p->state != PEER_IDLE)
			continue;
		ms = TimestampDifferenceMilliseconds(now, p->retry_at);
		if (best < 0 || ms < best)
			best = ms;
	}
	return best;
}

void
kmd_transport_shutdown(KmdTransport *t)
{
	for (int i = 0; i < t->n_peers; i++)
		if (t->peers[i]->conn != NULL)
		{
			PQfinish(t->peers[i]->conn);
			t->peers[i]->conn = NULL;
		}
	t->n_peers = 0;
}
