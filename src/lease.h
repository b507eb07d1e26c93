/*-------------------------------------------------------------------------
 *
 * lease.h
 *	  Leases with a time to live: granted, kept alive and revoked through
 *	  the log of the partition that owns them, expired by that partition's
 *	  leader, and the rows attached to them deleted by the committed entry
 *	  that ends them (lease.c).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/lease.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_LEASE_H
#define KOMMANDER_LEASE_H

#include "access/htup.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"

#include "command.h"
#include "rows.h"

struct KmdGroup;
struct RowCommand;

/* The key-hash of lease `id': the partition that owns it. */
extern int64 kmd_lease_hash(int64 id);

/*
 * This node's countdown (lease_clock.c), as the apply worker applies
 * entries: a grant or keepalive at log index `index' restarts it for the
 * whole TTL; a lease that ended is forgotten; at the end of the
 * transaction, leases that found no room take the room freed (SPI
 * connected); rows of an ended lease left
 * where `hash' routes are noted, and forgotten once dropped in [lo, hi]
 * or, once a command deleted notes of the table, taken again from it at
 * the end of the transaction.
 */
extern void kmd_lease_clock_renew(int64 id, int64 ttl_ms, uint64 index);
extern void kmd_lease_clock_merged(int64 lo, bool hi_null, int64 hi);
extern void kmd_lease_clock_forget(int64 id);
extern void kmd_lease_clock_settle(void);
extern int	kmd_lease_clock_held(void);
extern void kmd_lease_clock_orphan(int64 id, int64 hash);
extern void kmd_lease_clock_dropped(int64 id, int64 lo, int64 hi);
extern void kmd_lease_clock_notes_changed(void);

/*
 * The apply worker, between iterations: when notes of ended leases were
 * left out of memory and no drop made room for ten election timeouts,
 * memory takes them again from the table, those of partitions led here
 * first.  Runs its own transaction; true if it did.
 */
extern bool kmd_lease_orphans_rotate(void);

/* shmem_request_hook and shmem_startup_hook parts (kommander.c) */
extern void kmd_lease_shmem_request(void);
extern void kmd_lease_shmem_startup(void);

/*
 * Apply a committed KMD_CMD_LEASE entry (SPI connected, in the command's
 * subtransaction): grant, keepalive, revoke, expire, drop (rows of an
 * ended lease left in another partition) or forget (nothing: see
 * kmd_lease_forgets).  Errors are the command's outcome.  `result' gets
 * {"result": ...} for a keepalive.
 */
extern void kmd_lease_apply(const KmdCommand *cmd, const KmdApplyContext *ctx,
							bool *applied, StringInfo result);

/*
 * Is `cmd' the "forget" a leader proposes in a partition whose log has
 * not grown for kommander.request_retention (lease_clock.c), which
 * forgets the outcomes of old request ids there (requests.c)?
 */
extern bool kmd_lease_forgets(const KmdCommand *cmd);

/*
 * After a row command was applied (not as the table's owner): the row
 * leaves the lease it was attached to (insert, upsert, delete, and an
 * update that names "lease"), and joins the one it names, which must be
 * alive in the same partition (K0013 otherwise).
 */
extern void kmd_lease_track(struct RowCommand *c, const char *key);

/*
 * A row of control table `rel' was deleted (`new' NULL), or updated to
 * `new', while a command was applied (the row trigger, keyrange.c):
 * deleted, or under another primary key, it leaves its lease, whatever
 * wrote it (an applier, a trigger, a cascade, the command itself).
 */
extern void kmd_lease_row_left(Relation rel, HeapTuple old, HeapTuple new);

/*
 * Around a kmd_ddl statement (SPI connected): what the tables that rows of
 * leases are attached to were before it, that it runs and that it ran
 * (or failed), and, after it, the rows follow
 * their tables renamed, moved, dropped or given a new primary key
 * (lease_tables.c).  The statement fails (0A000) when a changed key no
 * longer tells the rows apart, and so does an ALTER COLUMN TYPE ... USING
 * of a primary key column while leases hold rows of its table (checked
 * before it runs).
 */
extern List *kmd_lease_tables_before(void);
extern void kmd_lease_tables_run(List *tables);
extern void kmd_lease_tables_ran(void);
extern void kmd_lease_tables_follow(List *tables);
extern void kmd_lease_tables_check_retype(Oid relid, const char *column);
extern void kmd_lease_tables_check_type(Oid typid);

/*
 * kommander.lease_rows changed behind kmd_lease_track's back (an image):
 * it looks again before it skips a detach.
 */
extern void kmd_lease_rows_forget(void);

/*
 * The apply worker's view of the leases in shared memory, from
 * kommander.lease_state (SPI connected, in a transaction): at its start
 * and after an image.  A lease this node counted down from the same
 * renewal keeps its countdown; every other gets its whole time to live.
 */
extern void kmd_leases_load(void);

/*
 * Called by the Raft worker on each tick with the `n' user partitions it
 * leads: a lease of one of them whose time is up on this node's clock
 * gets an expiry entry proposed, and rows an ended lease left in one of
 * them a drop entry.  A new term first gives every lease of its
 * partition at least one election timeout.  True if it proposed.
 */
extern bool kmd_lease_tick(struct KmdGroup **groups, int n, TimestampTz now);

/*
 * Called by the Raft worker on each tick with each user partition it
 * leads: one whose log has not grown for kommander.request_retention gets
 * a lease entry "forget", which forgets the outcomes of its commands with
 * request ids (requests.c), as each of its entries with a request id
 * does: they are forgotten by the partition's own entries only, and the
 * forgetting of every other partition passes over them
 * (kommander.requests is indexed by time first).  Once per idle spell:
 * not again before another entry comes.  True if it proposed.
 */
extern bool kmd_lease_forget_if_idle(struct KmdGroup *g, TimestampTz now);

/* Forget what kmd_lease_tick kept of a group this worker stops. */
extern void kmd_lease_tick_forget(int32 partition_id);

#endif							/* KOMMANDER_LEASE_H */
