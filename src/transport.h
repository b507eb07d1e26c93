/*-------------------------------------------------------------------------
 *
 * transport.h
 *	  Peer connections of one Raft worker: one non-blocking libpq
 *	  connection per peer node, streaming batches to
 *	  CALL kommander.peer_stream() in COPY BOTH mode; reconnect with backoff.
 *
 * A peer that is down never blocks the caller: a batch for a peer that is
 * not connected, or has too many batches not yet written to its socket,
 * is dropped (Raft retransmits).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/transport.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_TRANSPORT_H
#define KOMMANDER_TRANSPORT_H

#include "storage/latch.h"

#include "shmem.h"

typedef struct KmdPeer KmdPeer;

/*
 * Called with what a peer returned of a batch it had no room for (wire.h,
 * KMD_STREAM_RETURNED): a packed batch, from node `node_id', valid only
 * during the call.
 */
typedef void (*KmdReturnedFn) (int32 node_id, const char *data, uint32 len);

typedef struct KmdTransport
{
	int			worker_no;
	KmdReturnedFn returned;
	int			n_peers;
	KmdPeer    *peers[KMD_MAX_NODES];
	uint64		roster_version;	/* of the roster the peers were built from */
	MemoryContext cxt;			/* lives as long as the worker */
} KmdTransport;

extern void kmd_transport_init(KmdTransport *t, int worker_no,
							   KmdReturnedFn returned);

/* Open, close or re-open connections to match the roster cache (every node
 * but this one). Cheap when the roster has not changed. */
extern void kmd_transport_sync(KmdTransport *t);

/* What became of a batch handed to kmd_transport_send. */
typedef enum KmdSendResult
{
	KMD_SEND_QUEUED,			/* on its way */
	KMD_SEND_DROPPED,			/* dropped before any of it was queued */
	KMD_SEND_LOST				/* the connection failed with it: part of it,
								 * or all, may have reached the peer */
} KmdSendResult;

/* Hand a packed batch to the connection to `to_node'. */
extern KmdSendResult kmd_transport_send(KmdTransport *t, int32 to_node,
							   const char *data, uint32 len);

/* What a connection's socket waits for */
typedef struct KmdPeerWait
{
	pgsocket	sock;
	uint32		events;			/* WL_SOCKET_* */
	uint64		conn_id;		/* the connection: a socket number is reused */
	bool		connecting;		/* libpq may still swap the socket */
} KmdPeerWait;

/* Fill `waits' (KMD_MAX_NODES entries, padding zeroed so that they compare
 * with memcmp) with every connection's socket and what it needs (read, and
 * write while output is pending); returns how many. */
extern int	kmd_transport_wait_events(KmdTransport *t, KmdPeerWait *waits);

/* Make progress on every connection without blocking: connection set-up,
 * flushing output, reading the peer's answers; a failed connection is
 * closed and retried later with exponential backoff. */
extern void kmd_transport_poll(KmdTransport *t);

/* Milliseconds until a connection wants to retry, or -1. */
extern long kmd_transport_next_timeout(KmdTransport *t);

extern bool kmd_transport_connected(KmdTransport *t, int32 node_id);

extern void kmd_transport_shutdown(KmdTransport *t);

#endif							/* KOMMANDER_TRANSPORT_H */
