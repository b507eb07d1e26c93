/*-------------------------------------------------------------------------
 *
 * raft.h
 *	  The kommander Raft core: one pure state machine per Raft group.
 *
 * The core does no I/O, reads no clock, keeps no global state and draws no
 * hidden randomness.  The host (the Postgres runtime, or the simulator) feeds
 * it ticks, received messages and proposals, and collects a ready batch:
 * what to persist, what to send, what to apply.  The host acknowledges the
 * batch with raft_advance() once the I/O is done.  This header is the
 * core's whole API and its documentation.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/raft.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_RAFT_H
#define KOMMANDER_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_term;
typedef uint64_t raft_index;
typedef uint32_t raft_id;		/* node id; 0 means "none" */

#define RAFT_NONE ((raft_id) 0)

/* Largest number of members (voters + learners) of one group. */
#define RAFT_MAX_MEMBERS 32

/* Return codes.  Every fallible call returns RAFT_OK or one of these. */
typedef enum raft_error
{
	RAFT_OK = 0,
	RAFT_ENOTLEADER,			/* only the leader may do this; see raft_leader() */
	RAFT_EBUSY,					/* a configuration change or leader transfer is
								 * under way, or the leader has not yet committed
								 * an entry of its own term */
	RAFT_EINVAL,				/* bad argument */
	RAFT_ECOMPACTED,			/* the index is below the first index kept */
	RAFT_EUNAVAILABLE			/* the index is beyond the last index */
} raft_error;

const char *raft_strerror(int rc);

typedef enum raft_role
{
	RAFT_FOLLOWER = 0,
	RAFT_PRECANDIDATE,
	RAFT_CANDIDATE,
	RAFT_LEADER
} raft_role;

const char *raft_role_name(raft_role role);

/* ------------------------------------------------------------------------
 * Log entries
 * ------------------------------------------------------------------------
 */
typedef enum raft_entry_type
{
	RAFT_ENTRY_NORMAL = 0,		/* a command of the host's; data is opaque */
	RAFT_ENTRY_NOOP = 1,		/* appended by a new leader (Raft §8); no data */
	RAFT_ENTRY_CONF = 2			/* a membership change; data encodes it */
} raft_entry_type;

/*
 * One log entry.  Entries handed out by the core (in a ready batch or a
 * message) point to core-owned memory that stays valid until the matching
 * raft_advance(); `ref' is the core's handle on that memory and must be left
 * alone.  Entries handed in by the host (raft_new, raft_step) are copied; the
 * host sets `ref' to NULL and keeps ownership of `data'.
 */
typedef struct raft_entry
{
	raft_index	index;
	raft_term	term;
	uint32_t	type;			/* raft_entry_type */
	uint32_t	len;
	const void *data;
	void	   *ref;
} raft_entry;

/* ------------------------------------------------------------------------
 * Membership
 *
 * A configuration lists voters and learners.  Learners receive the log but
 * never vote, never campaign and never count toward a quorum.  Changes are
 * single-server (Raft dissertation §4.1): one RAFT_ENTRY_CONF entry adds a
 * learner, adds or promotes a voter, or removes a member, and takes effect on
 * every node as soon as it is appended to that node's log, not when it
 * commits.  A truncated configuration entry reverts the configuration.
 * ------------------------------------------------------------------------
 */
typedef enum raft_member_role
{
	RAFT_VOTER = 1,
	RAFT_LEARNER = 2
} raft_member_role;

typedef struct raft_member
{
	raft_id		id;
	uint32_t	role;			/* raft_member_role */
} raft_member;

typedef struct raft_conf
{
	uint32_t	n;
	raft_member members[RAFT_MAX_MEMBERS];
} raft_conf;

typedef enum raft_conf_change_type
{
	RAFT_CC_ADD_LEARNER = 1,	/* new member, non-voting */
	RAFT_CC_ADD_VOTER = 2,		/* new voter, or promote a learner */
	RAFT_CC_REMOVE = 3			/* remove a voter or a learner */
} raft_conf_change_type;

/* Role of `id' in `conf': RAFT_VOTER, RAFT_LEARNER, or 0 when absent. */
uint32_t	raft_conf_role(const raft_conf *conf, raft_id id);
uint32_t	raft_conf_voters(const raft_conf *conf);

/*
 * Apply one change to a configuration.  RAFT_EINVAL if it is not a change
 * (adding a present member with the same role, removing an absent one,
 * demoting a voter to learner) or the configuration is full.
 */
int			raft_conf_apply(raft_conf *conf, uint32_t type, raft_id id);

/*
 * Encoding of a RAFT_ENTRY_CONF entry's data: RAFT_CONF_CHANGE_LEN bytes,
 * type then id in little-endian order.  Decoding fails on any other length
 * or an unknown type.
 */
#define RAFT_CONF_CHANGE_LEN 5
void		raft_conf_change_encode(uint8_t out[RAFT_CONF_CHANGE_LEN],
									uint32_t type, raft_id id);
bool		raft_conf_change_decode(const void *data, uint32_t len,
									uint32_t *type, raft_id *id);

/* ------------------------------------------------------------------------
 * Durable state
 * ------------------------------------------------------------------------
 */

/* Must be durable before any message of the same ready batch that needs it. */
typedef struct raft_hard_state
{
	raft_term	term;
	raft_id		vote;			/* whom this node voted for in `term' */
	raft_index	commit;
} raft_hard_state;

/*
 * The log before `index' + 1 has been replaced by the state machine as of
 * `index'.  `conf' is the configuration in force at `index'.  A brand-new
 * group starts from a snapshot marker at index 0, term 0 whose conf lists the
 * initial members (a node that is joining starts with an empty conf and
 * learns it from its leader).
 */
typedef struct raft_snapshot_meta
{
	raft_index	index;
	raft_term	term;
	raft_conf	conf;
} raft_snapshot_meta;

/* What a node reads back from its disk to restart a group. */
typedef struct raft_durable
{
	raft_hard_state hard_state;
	raft_snapshot_meta snapshot;
	const raft_entry *entries;	/* snapshot.index + 1 .. last, in order */
	size_t		n_entries;
} raft_durable;

/* ------------------------------------------------------------------------
 * Messages
 * ------------------------------------------------------------------------
 */
typedef enum raft_msg_type
{
	RAFT_MSG_APPEND = 1,		/* leader -> follower: entries after (index,
								 * log_term), and commit */
	RAFT_MSG_APPEND_RESP,		/* index: last index matched, or on reject the
								 * rejected prev index with reject_hint and
								 * log_term the follower's hint (§5.3
								 * optimisation) */
	RAFT_MSG_VOTE,				/* candidate -> voter: index/log_term its last
								 * entry; context 1 when forced by a leader
								 * transfer */
	RAFT_MSG_VOTE_RESP,
	RAFT_MSG_PREVOTE,			/* as VOTE, for term + 1, changing nobody's term
								 * (dissertation §9.6) */
	RAFT_MSG_PREVOTE_RESP,
	RAFT_MSG_HEARTBEAT,			/* leader -> follower: commit (never past the
								 * follower's match), context: read sequence */
	RAFT_MSG_HEARTBEAT_RESP,	/* context echoes the heartbeat's */
	RAFT_MSG_SNAPSHOT,			/* leader -> follower: *snapshot, and the
								 * host's snapshot_data */
	RAFT_MSG_TIMEOUT_NOW,		/* leader -> transferee: campaign now (§3.10) */
	RAFT_MSG_READ_INDEX,		/* follower -> leader: context is the host's
								 * read id */
	RAFT_MSG_READ_INDEX_RESP	/* leader -> follower: index to wait for, or
								 * reject */
} raft_msg_type;

#define RAFT_MSG_TYPE_MAX RAFT_MSG_READ_INDEX_RESP

const char *raft_msg_type_name(uint32_t type);

typedef struct raft_message
{
	uint32_t	type;			/* raft_msg_type */
	raft_id		from;
	raft_id		to;
	raft_term	term;
	raft_index	index;			/* HEARTBEAT: the leader's commit index,
								 * which `commit' caps at what the follower
								 * is known to hold */
	raft_term	log_term;
	raft_index	commit;
	raft_index	reject_hint;
	bool		reject;
	bool		quiesce;		/* HEARTBEAT: nothing left to do; stop the
								 * timers until something happens (echoed in
								 * the HEARTBEAT_RESP) */
	bool		commit_only;	/* APPEND: no entries, only a new commit
								 * index for a follower sent every entry up
								 * to `index'; answered only if rejected */
	uint64_t	context;
	raft_entry *entries;
	uint32_t	n_entries;
	const raft_snapshot_meta *snapshot; /* RAFT_MSG_SNAPSHOT only */

	/*
	 * The state machine image that goes with a snapshot message.  The core
	 * never fills these: the host attaches its image when it sends a
	 * RAFT_MSG_SNAPSHOT and hands it in with the message on the receiving
	 * side, where the core copies it into the ready batch.
	 */
	const void *snapshot_data;
	size_t		snapshot_len;
} raft_message;

/* ------------------------------------------------------------------------
 * Creating a group
 * ------------------------------------------------------------------------
 */

/* Memory the core allocates.  alloc/realloc never return NULL: they either
 * succeed or do not return (the Postgres runtime throws). */
typedef struct raft_allocator
{
	void	   *(*alloc) (void *ctx, size_t size);
	void	   *(*realloc) (void *ctx, void *ptr, size_t size);
	void		(*free) (void *ctx, void *ptr);
	void	   *ctx;
} raft_allocator;

typedef struct raft_options
{
	raft_id		id;				/* this node; never RAFT_NONE */
	uint32_t	election_ticks; /* base election timeout; the randomized timeout
								 * is drawn from [election_ticks,
								 * 2*election_ticks) */
	uint32_t	heartbeat_ticks;	/* leader heartbeat period, < election_ticks */
	uint32_t	max_msg_entries;	/* per append message, >= 1 */
	uint32_t	max_msg_bytes;	/* per append message (at least one entry is
								 * always sent) */
	uint32_t	max_inflight;	/* append messages in flight per follower */
	bool		pre_vote;
	bool		check_quorum;
	bool		quiesce;		/* an idle group stops heartbeats and timers */
	uint64_t	seed;			/* seeds the election timeout draws */
	const raft_allocator *allocator;	/* NULL: malloc, aborting on failure */
	uint32_t	bugs;			/* RAFT_BUG_* (simulator builds only) */
} raft_options;

/* Defaults used by both runtimes: 10 election ticks, 1 heartbeat tick, 64
 * entries or 1 MiB per message, 64 messages in flight, pre-vote and
 * check-quorum on. */
void		raft_options_init(raft_options *opts, raft_id id, uint64_t seed);

/*
 * Deliberate defects, compiled in only with RAFT_SIM_BUGS (the simulator's
 * build), so the simulator can prove its checkers catch them.
 */
#define RAFT_BUG_COMMIT_OLD_TERM	0x01	/* commit entries of older terms by
											 * counting replicas (Figure 8) */
#define RAFT_BUG_FORGET_VOTE		0x02	/* vote never reaches hard state */
#define RAFT_BUG_NO_PREVOTE_TERM	0x04	/* pre-vote bumps the term */
#define RAFT_BUG_EARLY_APPLY		0x08	/* hand out entries past commit */
#define RAFT_BUG_DOUBLE_VOTE		0x10	/* vote again in a term, for another
											 * candidate */

typedef struct raft raft;

/*
 * Create a group from durable state (all zero, with snapshot.conf set, for a
 * new group).  Returns NULL when the options or the state are invalid
 * (entries not contiguous after the snapshot, commit past the last entry...).
 */
raft	   *raft_new(const raft_options *opts, const raft_durable *state);
void		raft_free(raft *r);

/* ------------------------------------------------------------------------
 * Driving a group
 *
 * All of these may be called in any order, except between raft_ready() and
 * raft_advance(), when the group must not be touched.
 * ------------------------------------------------------------------------
 */

/* One unit of logical time (the host decides its length). */
void		raft_tick(raft *r);

/*
 * Feed a received message.  Messages from a term long gone or out of place
 * are ignored; messages for another node and malformed messages (unknown
 * type, entries not contiguous, an undecodable configuration entry) return
 * RAFT_EINVAL and change nothing.
 *
 * A node whose configuration is empty (one that is joining) accepts no
 * append: it rejects even index 0, which makes the leader send it its
 * snapshot marker, possibly at index 0, carrying the configuration.
 */
int			raft_step(raft *r, const raft_message *m);

/*
 * Append a command to the leader's log.  On RAFT_OK, *index and *term say
 * where it went: the command is committed once an entry at *index with term
 * *term is handed out as committed (a different term there means it was
 * lost).  RAFT_ENOTLEADER on followers (the host forwards), RAFT_EBUSY during
 * a leader transfer.
 */
int			raft_propose(raft *r, const void *data, uint32_t len,
						 raft_index *index, raft_term *term);

/*
 * raft_propose() for a command whose outcome only node `waiter' waits for
 * (it applies the entry and answers its client).  Every follower learns of
 * a commit with its next append or heartbeat; raft_propose() tells them
 * all at once instead, with an empty append when they lack no entry, and
 * this tells only `waiter' so (nobody when it is this node); a follower
 * that cannot take a message then (its window is full, it is being
 * probed) is told as soon as it can.  An idle group's followers apply
 * such an entry up to a heartbeat interval later, a busy group's with the
 * next append.  The commit index a follower knows matters for what it
 * applies, never for what is committed.
 */
int			raft_propose_for(raft *r, raft_id waiter, const void *data,
							 uint32_t len, raft_index *index, raft_term *term);

/*
 * Propose a membership change.  RAFT_EBUSY while another change is
 * uncommitted or before the leader has committed an entry of its own term;
 * RAFT_EINVAL if it would not change the configuration or would remove the
 * last voter.
 */
int			raft_propose_conf(raft *r, uint32_t type, raft_id id,
							  raft_index *index, raft_term *term);

/*
 * Transfer leadership to voter `to' (dissertation §3.10): proposals are
 * refused while it is under way; `to' is brought up to date and then told to
 * campaign at once.  Given up after an election timeout.
 */
int			raft_transfer_leader(raft *r, raft_id to);

/*
 * Ask for a linearizable read point (dissertation §6.4, ReadIndex).  The
 * answer comes back in a later ready batch as a raft_read_state with the same
 * `context': once the host has applied up to its index, a read of local state
 * is linearizable.  On the leader it is confirmed by a heartbeat round; on a
 * follower it is forwarded to the leader, which tells the follower its
 * commit index before the answer (or as soon as the follower can take a
 * message, when its window is full or it is being probed).
 * RAFT_ENOTLEADER when there is no known leader; RAFT_EBUSY before the
 * leader has committed an entry of its term.  An answer with index 0 means
 * the read failed (leadership was lost).
 */
int			raft_read_index(raft *r, uint64_t context);

typedef struct raft_read_state
{
	uint64_t	context;
	raft_index	index;
} raft_read_state;

/*
 * Compact the log: the host has a snapshot of its state machine as of
 * `index' (<= the applied index).  Entries up to `index' are dropped and the
 * snapshot marker moves there; read it back with raft_snapshot().  The host
 * persists the marker and may then delete those entries from its disk.
 */
int			raft_compact(raft *r, raft_index index);

/* ------------------------------------------------------------------------
 * Ready batches
 *
 * Durability order: the host must
 *   1. send `messages' (they may go before or during the writes: they are
 *      the leader's appends, §10.2.1 of the dissertation, in a term already
 *      durable; those of a term the batch's hard state brings are in
 *      `persist_messages'),
 *   2. make durable, in this order: the snapshot marker and image (after
 *      deleting its whole log), the entries (after deleting every entry at or
 *      after the first one's index), the hard state,
 *   3. send `persist_messages' (votes, acknowledgements),
 *   4. apply `committed' in order (and install nothing else),
 *   5. wait for `reads' to be applied before serving them,
 * and then call raft_advance().  The leader counts its own log toward a
 * quorum only after raft_advance() says it is durable.
 * ------------------------------------------------------------------------
 */
typedef struct raft_ready
{
	bool		has_hard_state;
	raft_hard_state hard_state;

	bool		has_snapshot;
	raft_snapshot_meta snapshot;
	const void *snapshot_data;
	size_t		snapshot_len;

	const raft_entry *entries;
	size_t		n_entries;

	raft_message *messages;
	size_t		n_messages;
	raft_message *persist_messages;
	size_t		n_persist_messages;

	const raft_entry *committed;
	size_t		n_committed;

	const raft_read_state *reads;
	size_t		n_reads;

	/* soft state, for the host's information */
	raft_role	role;
	raft_id		leader;
	raft_term	term;
} raft_ready;

bool		raft_has_ready(const raft *r);
void		raft_ready_get(raft *r, raft_ready *rd);
void		raft_advance(raft *r, const raft_ready *rd);

/* ------------------------------------------------------------------------
 * Observing a group
 * ------------------------------------------------------------------------
 */
raft_id		raft_self(const raft *r);
raft_role	raft_get_role(const raft *r);
raft_term	raft_get_term(const raft *r);
raft_id		raft_leader(const raft *r);
raft_index	raft_commit_index(const raft *r);

/*
 * How far the group has committed, as far as this node knows: its own
 * commit index, or the higher one a leader told it (in an append, or a
 * heartbeat's `index'), which its log may not reach yet.  A node behind
 * in its log learns there is more to apply before it has the entries; a
 * new leader, before its first entry commits, still knows what its
 * predecessor told.
 */
raft_index	raft_group_commit(const raft *r);
raft_index	raft_applied_index(const raft *r);
raft_index	raft_first_index(const raft *r);
raft_index	raft_last_index(const raft *r);
raft_index	raft_stable_index(const raft *r);
const raft_conf *raft_get_conf(const raft *r);

/*
 * Index of the entry that set the configuration in force, 0 when it came
 * with the snapshot (committed by definition): the configuration is
 * committed once the commit index reaches it.
 */
raft_index	raft_conf_index(const raft *r);
const raft_snapshot_meta *raft_snapshot(const raft *r);
raft_hard_state raft_get_hard_state(const raft *r);

/* Term of the entry at `index' (the snapshot's term at its index). */
int			raft_term_at(const raft *r, raft_index index, raft_term *term);

/* The entry at `index', valid until the log next changes. */
int			raft_entry_at(const raft *r, raft_index index, const raft_entry **e);

typedef enum raft_progress_state
{
	RAFT_PROGRESS_PROBE = 0,
	RAFT_PROGRESS_REPLICATE,
	RAFT_PROGRESS_SNAPSHOT
} raft_progress_state;

/*
 * The leader's view of one member.  `lost': the member, having
 * acknowledged entries up to `match', answered two probes in a row saying
 * that its log matches this leader's up to `lost_end' at most, below
 * match: it lost entries it had acknowledged, its storage went back
 * (started from an older copy of its data).  Raft's safety rests on that
 * never happening (Figure 2: persistent state is updated on stable storage
 * before responding to RPCs).  The leader goes on probing it from match,
 * at heartbeats only, never sending it the entries it lost as if it were
 * merely behind; once the leader's log is compacted past them it is sent
 * the snapshot, and an acknowledgement of match or beyond clears `lost'.
 * Only a leader that saw the member acknowledge can tell: a new leader's
 * progress starts from zero.  A host should take the member out.
 */
typedef struct raft_progress
{
	raft_index	match;
	raft_index	next;
	uint32_t	state;			/* raft_progress_state */
	uint32_t	inflight;		/* append messages not yet acknowledged */
	bool		recent_active;
	bool		lost;
	raft_index	lost_end;
} raft_progress;

/* RAFT_ENOTLEADER on non-leaders, RAFT_EINVAL for a non-member. */
int			raft_get_progress(const raft *r, raft_id id, raft_progress *out);

/* The transfer target while a leader transfer is under way, else RAFT_NONE. */
raft_id		raft_transferee(const raft *r);

/*
 * How many pre-vote rounds this node has started since raft_new() (one
 * per election timeout while it cannot reach a majority, §9.6): for the
 * host's statistics.
 */
uint64_t	raft_prevotes_started(const raft *r);

/* ------------------------------------------------------------------------
 * Quiescence
 *
 * With opts.quiesce, a leader whose followers all hold its whole log, all
 * committed, with nothing pending, sends one last heartbeat marked
 * `quiesce' and stops sending heartbeats; followers receiving it stop
 * their election timers.  A follower that has not answered for three
 * election timeouts does not hold the leader up (it gets a plain heartbeat
 * instead, whose answer wakes the leader).  A follower that missed the
 * last heartbeat does not know that the entries it holds are committed: a
 * voter campaigns after its election timeout, a learner answers as to a
 * heartbeat instead (to its leader, or to every voter when it knows none),
 * and either wakes the group.  Anything that happens (a message, a
 * proposal, a read) wakes the group.  The host watches liveness
 * once per node rather than per group, takes a node for lost when it has
 * been silent for less than three election timeouts, and calls
 * raft_unquiesce():
 *   - on a quiesced follower whose leader's node it lost contact with (the
 *     follower cannot notice that its leader died);
 *   - on a quiesced leader when a node it had lost contact with is heard
 *     from again (the leader may have rested without it).
 * raft_unquiesce() gives a leader's members a fresh three election timeouts
 * to answer.
 * Quiescence changes only timers, never safety.
 * ------------------------------------------------------------------------
 */
bool		raft_quiesced(const raft *r);
void		raft_unquiesce(raft *r);

/* ------------------------------------------------------------------------
 * Holding campaigns
 *
 * A host whose state machine cannot follow this server's log for a while
 * (its state must first come from a snapshot it waits for) holds its
 * campaigns: the server then never campaigns (its election timeout passes
 * as a learner's does, a leader's TIMEOUT_NOW is ignored, and a candidate
 * or pre-candidate goes back to follower in its term), but it still votes,
 * takes and acknowledges entries and counts toward quorums, so that the
 * others keep their majority.  Its leader's transfers to it time out.  A
 * leader is unaffected: the host transfers leadership first.  Holding
 * changes only who may lead, never safety.  A server starts unheld.
 * ------------------------------------------------------------------------
 */
void		raft_hold_campaign(raft *r, bool hold);
bool		raft_campaign_held(const raft *r);

#endif							/* KOMMANDER_RAFT_H */
