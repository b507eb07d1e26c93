/*-------------------------------------------------------------------------
 *
 * events.h
 *	  What a node tells those who watch it: NOTIFY kommander_events on a
 *	  leader change, a partition map change or a roster change, and the
 *	  marks in the WAL that the output plugin (decode.c) reads to know
 *	  which entry of which partition produced the row changes that follow.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/events.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_EVENTS_H
#define KOMMANDER_EVENTS_H

#include "lib/stringinfo.h"

#include "command.h"

#define KMD_EVENTS_CHANNEL "kommander_events"

/*
 * The prefix of the transactional logical messages kommander writes (only
 * with wal_level = logical).  The first byte of a message says what it is:
 *   E<partition> <index> <term>   the changes that follow are this entry's
 *   I<partition> <index> <term>   those that follow install an image of
 *                                 the partition as of that index
 *   V<json>                       an event, as NOTIFY sends it
 */
#define KMD_FEED_PREFIX "kommander"

/*
 * Anyone may write a logical message (pg_logical_emit_message), so the
 * output plugin believes kommander's messages only in transactions of a
 * replication origin named with this prefix, which the apply worker and
 * the Raft workers take (only a superuser can).
 */
#define KMD_FEED_ORIGIN_PREFIX "kommander "

/*
 * Sign this process's transactions with replication origin `name' (which
 * starts with KMD_FEED_ORIGIN_PREFIX), creating it if need be; outside a
 * transaction.  Nothing unless wal_level is logical and the node has
 * replication slots; a WARNING when no origin can be had (no slot for its
 * state): the feed then leaves this process's marks and events out.
 */
extern void kmd_feed_origin_setup(const char *name);

/*
 * In a transaction: NOTIFY kommander_events with the event `json' (an
 * object), and put it in the WAL for the change feed.  Sent at commit;
 * forgotten with the (sub)transaction if it aborts.
 */
extern void kmd_event(const char *json);

/*
 * The apply worker, in the subtransaction of a system command it applied
 * at `index' of `partition_id' (result: the command's result text;
 * changed: what kmd_syscommand_apply returned): the event of a split,
 * freeze, merge, roster change or kmd_ddl statement.
 */
extern void kmd_events_syscommand(const KmdCommand *cmd, int32 partition_id,
								  uint64 index, const char *result, int changed);

/* The change feed's marks (no-ops unless wal_level is logical). */
extern void kmd_feed_mark_entry(int32 partition_id, uint64 index, uint64 term);
extern void kmd_feed_mark_image(int32 partition_id, uint64 index, uint64 term);

/*
 * The rows of `partition_id' (applied here to `index', of `term') deleted
 * ahead of its image (kmd_image_clear): in the feed as an image that
 * brings no row, which the image, when it comes, follows.  No event.
 */
extern void kmd_feed_mark_cleared(int32 partition_id, uint64 index, uint64 term);

/*
 * A Raft worker saw the leader of a partition change: the event is kept
 * until kmd_events_flush(), which sends what was kept in a transaction of
 * its own (called in the worker's loop, outside any transaction).
 */
extern void kmd_events_leader(int32 partition_id, uint64 term, int32 leader);
extern void kmd_events_flush(void);

#endif							/* KOMMANDER_EVENTS_H */
