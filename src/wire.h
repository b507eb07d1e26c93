/*-------------------------------------------------------------------------
 *
 * wire.h
 *	  Conversion between the Raft core's structs and the protobuf wire
 *	  format of proto/kommander.proto: batches between nodes and the
 *	  commands stored in log entries.
 *
 * All memory comes from CurrentMemoryContext (protobuf-c is given a palloc
 * allocator), so resetting the caller's context frees everything.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/wire.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_WIRE_H
#define KOMMANDER_WIRE_H

#include "raft/raft.h"
#include "kommander.pb-c.h"

#define KMD_WIRE_VERSION 1

/*
 * The largest batch a node takes: what one worker's inbox (8 MiB, shmem.c)
 * can hold with its length word.  A larger one could never be delivered;
 * it is refused before it is unpacked, which would allocate several times
 * its size.
 */
#define KMD_MAX_BATCH_BYTES (8 * 1024 * 1024 - 4)

/*
 * The peer stream: a Raft worker calls kommander.peer_stream() on each peer
 * once per connection, and the connection turns to COPY BOTH mode.  Each
 * CopyData message it sends is one of these kind bytes and a packed batch.
 * The peer answers a timed batch, and any batch for which an inbox had no
 * room, with KMD_STREAM_ANSWER and one byte of KMD_ANSWER_* flags, in the
 * order of the batches.  After the answer to a batch that an inbox had no
 * room for may come KMD_STREAM_RETURNED and a packed batch, from the peer
 * to the sender: the forwarded requests in it (without their commands),
 * and the answers to forwarded requests that still wait there, that no
 * worker there took, for the sender to send again.
 */
#define KMD_STREAM_BATCH 'B'
#define KMD_STREAM_TIMED 'T'	/* a batch the sender times to its answer */
#define KMD_STREAM_ANSWER 'a'
#define KMD_STREAM_RETURNED 'r'
#define KMD_ANSWER_TIMED 0x01	/* answers the timed batch */
#define KMD_ANSWER_REFUSED 0x02 /* an inbox had no room for the batch */

/* A batch under construction for one peer.  Entry data and snapshot images
 * are referenced, not copied: pack before the Raft ready is advanced. */
typedef struct KmdOutBatch
{
	int32		to_node;
	bool		keepalive;		/* send it even if empty */
	int			n_msgs;
	int			cap_msgs;
	Kommander__GroupMessage **msgs;
	int			n_forwards;
	int			cap_forwards;
	Kommander__Forward **forwards;
	int			n_results;
	int			cap_results;
	Kommander__ForwardResult **results;
	int			n_offline;		/* partitions offline on this node */
	int32	   *offline;
} KmdOutBatch;

extern void kmd_batch_init(KmdOutBatch *b, int32 to_node);
extern bool kmd_batch_is_empty(const KmdOutBatch *b);
extern void kmd_batch_add_raft(KmdOutBatch *b, int32 partition_id,
							   const raft_message *m);
extern void kmd_batch_add_forward(KmdOutBatch *b, int32 partition_id,
								  uint32 kind, int32 origin_slot,
								  uint32 origin_gen, int64 arg,
								  const char *command, uint32 command_len);
extern void kmd_batch_add_result(KmdOutBatch *b, int32 partition_id,
								 int32 origin_slot, uint32 origin_gen,
								 bool retry, bool not_hosted,
								 const char *sqlstate, const char *message,
								 uint64 index);
/*
 * Serialize with the envelope (version, cluster id, sender); NULL, nothing
 * packed, when it would take more than `max' bytes.
 */
extern char *kmd_batch_pack(KmdOutBatch *b, const uint8 *cluster_id,
							int32 from_node, size_t max, uint32 *len);

/* NULL when the bytes are not a batch, or more than KMD_MAX_BATCH_BYTES. */
extern Kommander__Batch *kmd_batch_unpack(const char *data, uint32 len);

/*
 * Convert a received Raft message.  Entries are palloc'd; their data and the
 * snapshot image point into `pb', which must outlive `out'.  False when the
 * message is malformed (bad type, an entry of unknown type, too many
 * members...).
 */
extern bool kmd_raft_message_from_pb(const Kommander__RaftMessage *pb,
									 raft_message *out,
									 raft_snapshot_meta *snap);

extern ProtobufCAllocator kmd_pb_allocator;

#endif							/* KOMMANDER_WIRE_H */
