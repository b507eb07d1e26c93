/*-------------------------------------------------------------------------
 *
 * convert.c
 *	  Role changes: follower, pre-candidate, candidate and leader.
 *
 * The role changes happen here and only here (raft_become_*), each asserting
 * the roles it may be reached from; a node may become a follower from any
 * role.  Each change draws a fresh election timeout from the host-seeded
 * generator, the core's only randomness.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/convert.c
 *
 *-------------------------------------------------------------------------
 */
#include <assert.h>

#include "raft_int.h"

/* splitmix64: the only source of randomness, seeded by the host */
static uint64_t
next_random(raft *r)
{
	uint64_t	z = (r->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
reset_randomized_timeout(raft *r)
{
	r->randomized_timeout = r->opt.election_ticks +
		(uint32_t) (next_random(r) % r->opt.election_ticks);
}

static void
reset(raft *r, raft_term term)
{
	if (r->term != term)
	{
		r->term = term;
		r->vote = RAFT_NONE;
	}
	r->leader = RAFT_NONE;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	reset_randomized_timeout(r);
	r->transferee = RAFT_NONE;
	r->n_votes = 0;
	r->bcast_pending = false;
	r->quiesced = false;
	read_fail_all(r);
}

void
raft_become_follower(raft *r, raft_term term, raft_id leader)
{
	reset(r, term);
	r->role = RAFT_FOLLOWER;
	r->leader = leader;
}

void
raft_become_precandidate(raft *r)
{
	assert(r->role != RAFT_LEADER);
	/* Pre-vote changes neither term nor vote (dissertation §9.6). */
	r->role = RAFT_PRECANDIDATE;
	r->leader = RAFT_NONE;
	r->n_votes = 0;
	r->prevotes++;
	r->election_elapsed = 0;
	reset_randomized_timeout(r);
	if (BUG(r, RAFT_BUG_NO_PREVOTE_TERM))
		r->term++;
}

void
raft_become_candidate(raft *r)
{
	assert(r->role != RAFT_LEADER);
	reset(r, r->term + 1);
	r->vote = r->opt.id;
	r->role = RAFT_CANDIDATE;
}

void
raft_become_leader(raft *r)
{
	assert(r->role == RAFT_CANDIDATE);
	reset(r, r->term);
	r->role = RAFT_LEADER;
	r->leader = r->opt.id;
	progress_reset_all(r);
	/* a configuration entry already in the log may still be uncommitted */
	r->pending_conf_index = log_last_index(r);
	/* Raft §8: commit an entry of the new term to learn what is committed */
	log_append_new(r, RAFT_ENTRY_NOOP, NULL, 0);
	r->term_start = log_last_index(r);
	r->bcast_pending = true;
	/* every member hears when that entry commits: it tells them the index */
	r->news_all = r->term_start;
	{
		progress   *self = progress_get(r, r->opt.id);

		if (self != NULL)
			progress_become_replicate(self);
	}
}
