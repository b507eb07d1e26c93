/*-------------------------------------------------------------------------
 *
 * peers.h
 *	  A Raft worker's traffic with the other nodes: the transport, one
 *	  batch per peer and iteration, keepalives, the inbox.
 *
 * Used only inside a Raft worker process (worker.c, serve.c).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/peers.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_PEERS_H
#define KOMMANDER_PEERS_H

#include "storage/latch.h"

#include "raft/raft.h"
#include "transport.h"

struct KmdOutBatch;

/* Open (and close, at exit) this worker's connections to its peers. */
extern void kmd_peers_start(int worker_no);
extern void kmd_peers_stop(void);

/*
 * Read and write what the connections can without blocking; with `sync',
 * first connect to or drop peers as the roster now says.
 */
extern void kmd_peers_poll(bool sync);

/*
 * The connections' sockets and what each waits for (KMD_MAX_NODES
 * entries; see kmd_transport_wait_events); returns how many, and in
 * *retry in how many milliseconds a connection attempt is due, or -1 when
 * none is.
 */
extern int	kmd_peers_wait_events(KmdPeerWait *waits, long *retry);

/* Is this worker's connection to `node_id' up? */
extern bool kmd_peer_connected(int32 node_id);

/*
 * The batch to `node_id' being built in this iteration, created on first
 * use; NULL when there are already batches for KMD_MAX_NODES peers.
 */
extern struct KmdOutBatch *kmd_batch_for(int32 node_id);

/* Put a group's message into the batch to its recipient. */
extern void kmd_peers_queue(int32 partition_id, const raft_message *m);

/* Send every non-empty batch (or keepalive) and start afresh. */
extern void kmd_peers_flush(void);

/*
 * Whether the batches queued since the last flush may wait for the next
 * iteration: something is queued and none of it points into a group's
 * log (entries, snapshots), which the next iteration may change.
 */
extern bool kmd_peers_may_hold(void);

/*
 * Node-level liveness, once per peer rather than per partition: mark a
 * keepalive in the batch to each peer this worker sent nothing for
 * `interval' ms.  A peer counts any batch from any worker of this node, so
 * worker 0 alone calls it.
 */
extern void kmd_peers_keepalives(int interval);

/*
 * Tell every peer, every `interval' ms while there are any, which
 * partitions this node cannot run (offline): a peer's copy that takes
 * this node for its leader would otherwise rest until a request reaches
 * it.  Worker 0 alone calls it, for the whole node.
 */
extern void kmd_peers_tell_offline(int interval);

/*
 * Step every batch waiting in this worker's inbox: Raft messages into the
 * groups, forwarded requests and their results to serve.c.
 */
extern void kmd_peers_receive(void);

#endif							/* KOMMANDER_PEERS_H */
