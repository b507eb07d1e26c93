/*-------------------------------------------------------------------------
 *
 * raft_int.h
 *	  Internal state of one Raft group, shared by the core's source files.
 *
 * Nothing outside src/raft includes this file: hosts see only raft.h.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/raft_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_RAFT_INT_H
#define KOMMANDER_RAFT_INT_H

#include "raft.h"

#ifdef RAFT_SIM_BUGS
#define BUG(r, b) (((r)->opt.bugs & (b)) != 0)
#else
#define BUG(r, b) false
#endif

/* Leader ticks after which a member that has not answered stops holding
 * quiescence up (raft.h, Quiescence) */
#define RAFT_SILENT_TICKS(r) (3 * (r)->opt.election_ticks)

/* Entry data, shared by the log and the messages that carry it. */
typedef struct rbuf
{
	uint32_t	refs;
	uint32_t	len;
	unsigned char data[];
} rbuf;

/*
 * Probes a member answers in a row with a log ending before its match
 * before the leader takes it for lost: one may be an old answer that
 * crossed an acknowledgement on the way.
 */
#define LOST_ANSWERS 2

/* The leader's bookkeeping for one member: how far it matches, what is in flight. */
typedef struct progress
{
	raft_id		id;
	raft_index	match;
	raft_index	next;
	uint32_t	state;			/* raft_progress_state */
	bool		probe_sent;		/* PROBE: an append is out, wait for its answer */
	bool		recent_active;	/* heard from since the last quorum check */
	uint32_t	silent_ticks;	/* leader ticks since it last answered */
	raft_index	pending_snapshot;	/* SNAPSHOT: index of the snapshot sent */
	uint32_t	snapshot_elapsed;	/* SNAPSHOT: ticks since it was sent */
	uint64_t	read_ack;		/* highest read sequence it acknowledged */
	raft_index	news;			/* its node waits for the commit of this
								 * entry: tell it the commit index at once */
	raft_index	commit_sent;	/* highest commit index sent to it */
	uint32_t	lost_answers;	/* probes answered in a row with a log
								 * ending before match: LOST_ANSWERS of them
								 * make it lost (raft_progress.lost) */
	raft_index	lost_end;		/* where the last said its log ends */

	/* last index of each append in flight, oldest first (a ring) */
	raft_index *inflight;
	uint32_t	in_start;
	uint32_t	in_count;
	uint32_t	in_cap;
} progress;

/* A read waiting for its heartbeat round (leader) */
typedef struct pending_read
{
	uint64_t	seq;
	uint64_t	context;
	raft_index	index;
	raft_id		from;			/* RAFT_NONE: asked locally */
} pending_read;

/* A growable array of messages. */
typedef struct msgvec
{
	raft_message *m;
	size_t		n;
	size_t		cap;
} msgvec;

struct raft
{
	raft_options opt;
	raft_allocator alloc;

	/* persistent state */
	raft_term	term;
	raft_id		vote;

	/* volatile state */
	raft_role	role;
	raft_id		leader;
	uint64_t	rng;
	uint32_t	election_elapsed;
	uint32_t	heartbeat_elapsed;
	uint32_t	randomized_timeout;
	bool		quiesced;		/* idle: no heartbeats, no election timer */
	uint64_t	prevotes;		/* pre-vote rounds started, ever */
	bool		campaign_held;	/* never campaigns (raft_hold_campaign) */

	/*
	 * The log: snap.index is the last compacted index; log[i] holds index
	 * snap.index + 1 + i.  stable: last index the host has made durable.
	 */
	raft_snapshot_meta snap;
	raft_entry *log;
	size_t		n_log;
	size_t		cap_log;
	raft_index	stable;
	raft_index	commit;
	raft_index	applied;
	/* the highest commit index a leader has told this node, in any term
	 * (what was committed stays so), which its log may not reach yet */
	raft_index	leader_commit;

	/* a snapshot received from the leader, to hand to the host */
	bool		snap_pending;
	void	   *snap_data;
	size_t		snap_len;

	/* configuration in force: the latest in the log, or the snapshot's */
	raft_conf	conf;
	raft_index	conf_index;

	/* elections: votes received, by member id */
	raft_id		votes_from[RAFT_MAX_MEMBERS];
	bool		votes_granted[RAFT_MAX_MEMBERS];
	uint32_t	n_votes;

	/* leader state */
	progress	prs[RAFT_MAX_MEMBERS];
	uint32_t	n_prs;
	raft_index	term_start;		/* index of this leader's first entry */
	raft_index	pending_conf_index;
	raft_id		transferee;
	bool		bcast_pending;	/* send appends at the next ready */
	raft_index	news_all;		/* every node waits for the commit of this
								 * entry: tell them all at once */

	/* reads */
	uint64_t	read_seq;
	pending_read *reads_pending;
	size_t		n_reads_pending;
	size_t		cap_reads_pending;
	raft_read_state *reads_done;
	size_t		n_reads_done;
	size_t		cap_reads_done;

	/* output, and what the current ready batch handed out */
	msgvec		msgs;
	msgvec		persist_msgs;
	msgvec		out_msgs;
	msgvec		out_persist_msgs;
	raft_read_state *out_reads;
	size_t		n_out_reads;
	size_t		cap_out_reads;
	raft_hard_state prev_hs;
	bool		in_ready;
};

/* raft.c */
void	   *raft_malloc(raft *r, size_t size);
void	   *raft_mrealloc(raft *r, void *p, size_t size);
void		raft_mfree(raft *r, void *p);
void		msgvec_clear(raft *r, msgvec *v);
void		raft_send(raft *r, raft_message *m);
uint32_t	raft_quorum(const raft *r);
bool		raft_promotable(const raft *r);

/* convert.c */
void		raft_become_follower(raft *r, raft_term term, raft_id leader);
void		raft_become_precandidate(raft *r);
void		raft_become_candidate(raft *r);
void		raft_become_leader(raft *r);

/* log.c */
raft_index	log_last_index(const raft *r);
raft_term	log_last_term(const raft *r);
bool		log_term(const raft *r, raft_index index, raft_term *term);
raft_entry *log_at(const raft *r, raft_index index);
bool		log_matches(const raft *r, raft_index index, raft_term term);
bool		log_up_to_date(const raft *r, raft_index index, raft_term term);
raft_index	log_conflict_by_term(const raft *r, raft_index index, raft_term term);
bool		log_append_copy(raft *r, const raft_entry *e);
void		log_append_new(raft *r, uint32_t type, const void *data, uint32_t len);
void		log_truncate_from(raft *r, raft_index index);
void		log_compact_to(raft *r, raft_index index);
void		log_reset_to_snapshot(raft *r, const raft_snapshot_meta *meta);
void		log_free(raft *r);
void		entry_ref(const raft_entry *e);
void		entry_unref(raft *r, raft_entry *e);
void		conf_rebuild(raft *r);
raft_conf	conf_at(const raft *r, raft_index index);

/* progress.c */
progress   *progress_get(raft *r, raft_id id);
void		progress_sync(raft *r);
void		progress_reset_all(raft *r);
void		progress_free_all(raft *r);
bool		progress_paused(const progress *pr);
bool		progress_maybe_update(progress *pr, raft_index n);
bool		progress_maybe_decr(progress *pr, raft_index rejected, raft_index hint);
void		progress_become_probe(progress *pr);
void		progress_become_replicate(progress *pr);
void		progress_become_snapshot(progress *pr, raft_index index);
void		progress_inflight_add(progress *pr, raft_index last);
void		progress_inflight_free_to(progress *pr, raft_index index);
void		progress_inflight_free_first(progress *pr);

/* election.c */
void		election_campaign(raft *r, bool pre_vote, bool transfer);
void		election_handle_vote(raft *r, const raft_message *m);
void		election_handle_vote_resp(raft *r, const raft_message *m);

/* replication.c */
bool		repl_send_append(raft *r, progress *pr, bool send_empty);
void		repl_bcast_append(raft *r);
void		repl_want_commit(raft *r, raft_id to, raft_index index);
void		repl_bcast_heartbeat(raft *r, uint64_t context, bool quiesce);
bool		repl_maybe_commit(raft *r);
void		repl_commit_to(raft *r, raft_index index);
void		repl_handle_append(raft *r, const raft_message *m);
void		repl_handle_heartbeat(raft *r, const raft_message *m);
void		repl_handle_snapshot(raft *r, const raft_message *m);
void		repl_handle_append_resp(raft *r, const raft_message *m);
void		repl_handle_heartbeat_resp(raft *r, const raft_message *m);
void		repl_leader_append(raft *r, uint32_t type, const void *data, uint32_t len);

/* readindex.c */
int			read_request(raft *r, uint64_t context, raft_id from);
void		read_ack(raft *r);
void		read_fail_all(raft *r);
void		read_push_done(raft *r, uint64_t context, raft_index index);
void		read_handle_resp(raft *r, const raft_message *m);

#endif							/* KOMMANDER_RAFT_INT_H */
