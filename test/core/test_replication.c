/*-------------------------------------------------------------------------
 *
 * test_replication.c
 *	  Core tests of log replication: batching, the pipeline of appends and
 *	  its flow control, fast back-off on rejection, the new leader's no-op,
 *	  the commit rule (the Raft paper's Figures 7 and 8), the leader's own
 *	  durability, commit news without answers, and the heartbeat period.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/test_replication.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

#define ELECTION_TICKS 10

static void
opts_three_per_msg(raft_options *o)
{
	o->max_msg_entries = 3;
}

static void
opts_ten_bytes_per_msg(raft_options *o)
{
	o->max_msg_bytes = 10;
}

static void
opts_small_window(raft_options *o)
{
	o->max_msg_entries = 1;
	o->max_inflight = 3;
}

/* The Raft paper's own setting: no pre-vote, no lease, one entry a message. */
static void
opts_paper(raft_options *o)
{
	o->pre_vote = false;
	o->check_quorum = false;
	o->max_msg_entries = 1;
}

static void
opts_heartbeat_every_3(raft_options *o)
{
	o->heartbeat_ticks = 3;
}

static void
propose_n(fixture *f, raft_id id, int n, const char *prefix)
{
	for (int i = 0; i < n; i++)
	{
		char		buf[32];

		snprintf(buf, sizeof(buf), "%s%d", prefix, i);
		assert_int_equal(raft_propose(fx_raft(f, id), buf, (uint32_t) strlen(buf),
									  NULL, NULL), RAFT_OK);
	}
}

/* Nodes `a' and `b' hold the same log, entry for entry. */
static void
assert_same_log(fixture *f, raft_id a, raft_id b)
{
	raft	   *ra = fx_raft(f, a);
	raft	   *rb = fx_raft(f, b);

	assert_int_equal(raft_last_index(ra), raft_last_index(rb));
	for (raft_index i = raft_first_index(ra); i <= raft_last_index(ra); i++)
	{
		const raft_entry *ea;
		const raft_entry *eb;

		assert_int_equal(raft_entry_at(ra, i, &ea), RAFT_OK);
		assert_int_equal(raft_entry_at(rb, i, &eb), RAFT_OK);
		assert_int_equal(ea->term, eb->term);
		assert_int_equal(ea->type, eb->type);
		assert_int_equal(ea->len, eb->len);
		if (ea->len > 0)
			assert_memory_equal(ea->data, eb->data, ea->len);
	}
}

/* State machine safety: no two nodes applied different entries at an index. */
static void
assert_applied_agree(fixture *f)
{
	for (int a = 1; a <= f->n; a++)
		for (int b = a + 1; b <= f->n; b++)
		{
			fx_node    *na = &f->nodes[a];
			fx_node    *nb = &f->nodes[b];

			for (size_t i = 0; i < na->n_applied; i++)
				for (size_t j = 0; j < nb->n_applied; j++)
					if (na->applied[i].index == nb->applied[j].index)
					{
						assert_int_equal(na->applied[i].term, nb->applied[j].term);
						assert_int_equal(na->applied[i].len, nb->applied[j].len);
					}
		}
}

static bool
applied_data(fixture *f, raft_id id, const char *s)
{
	fx_node    *n = &f->nodes[id];

	for (size_t i = 0; i < n->n_applied; i++)
		if (n->applied[i].len == strlen(s) &&
			memcmp(n->applied[i].data, s, n->applied[i].len) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------------------
 * Batching and the pipeline
 * ------------------------------------------------------------------------
 */

/* No append carries more than max_msg_entries entries. */
static void
test_appends_carry_at_most_max_msg_entries(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_three_per_msg);
	size_t		to2 = 0;

	assert_int_equal(fx_elect(f, 1), 1);
	propose_n(f, 1, 10, "e");
	fx_flush(f);
	for (size_t i = 0; i < f->nq; i++)
	{
		const raft_message *m = &f->q[i].m;

		if (m->type != RAFT_MSG_APPEND)
			continue;
		assert_in_range(m->n_entries, 1, 3);
		if (m->to == 2)
			to2 += m->n_entries;
	}
	assert_int_equal(to2, 10);
	assert_int_equal(fx_queued(f, RAFT_MSG_APPEND, 1, 2), 4);
	fx_deliver_all(f, 0);
	assert_int_equal(fx_applied_normal(f, 2), 10);
	assert_int_equal(fx_applied_normal(f, 3), 10);
}

/*
 * No append carries more than max_msg_bytes of entry data, except that an
 * entry bigger than that still goes, alone.
 */
static void
test_appends_respect_max_msg_bytes_but_carry_one_entry(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_ten_bytes_per_msg);
	char		big[51];
	bool		big_sent_alone = false;
	bool		batched = false;

	memset(big, 'x', 50);
	big[50] = '\0';
	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(raft_propose(fx_raft(f, 1), "aaaa", 4, NULL, NULL), RAFT_OK);
	assert_int_equal(raft_propose(fx_raft(f, 1), "bbbb", 4, NULL, NULL), RAFT_OK);
	assert_int_equal(raft_propose(fx_raft(f, 1), "cccc", 4, NULL, NULL), RAFT_OK);
	assert_int_equal(raft_propose(fx_raft(f, 1), big, 50, NULL, NULL), RAFT_OK);
	assert_int_equal(raft_propose(fx_raft(f, 1), "dd", 2, NULL, NULL), RAFT_OK);
	fx_flush(f);
	for (size_t i = 0; i < f->nq; i++)
	{
		const raft_message *m = &f->q[i].m;
		size_t		bytes = 0;

		if (m->type != RAFT_MSG_APPEND || m->to != 2)
			continue;
		for (uint32_t j = 0; j < m->n_entries; j++)
			bytes += m->entries[j].len;
		assert_true(m->n_entries >= 1);
		if (m->n_entries > 1)
		{
			assert_true(bytes <= 10);
			batched = true;
		}
		else if (bytes == 50)
			big_sent_alone = true;
	}
	assert_true(batched);
	assert_true(big_sent_alone);
	assert_int_equal(fx_queued(f, RAFT_MSG_APPEND, 1, 2), 4);
	fx_deliver_all(f, 0);
	assert_int_equal(fx_applied_normal(f, 3), 5);
	assert_string_equal(fx_applied_str(f, 3, f->nodes[3].n_applied - 1), "dd");
}

static raft_index deliver_index;

static bool
is_append_of_deliver_index(const raft_message *m, void *ctx)
{
	(void) ctx;
	return m->type == RAFT_MSG_APPEND && m->n_entries > 0 &&
		m->entries[0].index == deliver_index;
}

static bool
is_append_resp(const raft_message *m, void *ctx)
{
	(void) ctx;
	return m->type == RAFT_MSG_APPEND_RESP;
}

/*
 * A replicating follower gets several appends in flight, up to max_inflight;
 * then the leader pauses, and each acknowledgement frees room for one more.
 */
static void
test_pipeline_fills_the_window_then_pauses_until_acked(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_small_window);
	raft	   *r1;
	raft_progress pr;
	raft_index	first;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	first = raft_last_index(r1) + 1;
	assert_int_equal(raft_get_progress(r1, 2, &pr), RAFT_OK);
	assert_int_equal(pr.state, RAFT_PROGRESS_REPLICATE);
	assert_int_equal(pr.inflight, 0);

	propose_n(f, 1, 5, "p");
	fx_flush(f);
	/* three appends in flight at once, without waiting for answers */
	assert_int_equal(fx_queued(f, RAFT_MSG_APPEND, 1, 2), 3);
	assert_int_equal(raft_get_progress(r1, 2, &pr), RAFT_OK);
	assert_int_equal(pr.inflight, 3);
	assert_int_equal(pr.next, first + 3);

	/* the window is full: a new entry does not go out */
	propose_n(f, 1, 1, "q");
	fx_flush(f);
	assert_int_equal(fx_queued(f, RAFT_MSG_APPEND, 1, 2), 3);

	/* one acknowledgement frees one slot, which the next append takes */
	deliver_index = first;
	assert_int_equal(fx_deliver_if(f, is_append_of_deliver_index, NULL), 2);
	assert_int_equal(fx_deliver_if(f, is_append_resp, NULL), 2);
	assert_int_equal(raft_get_progress(r1, 2, &pr), RAFT_OK);
	assert_int_equal(pr.match, first);
	assert_int_equal(pr.inflight, 3);
	assert_int_equal(fx_queued(f, RAFT_MSG_APPEND, 1, 2), 3);

	fx_deliver_all(f, 0);
	assert_int_equal(fx_applied_normal(f, 2), 6);
	assert_int_equal(raft_get_progress(r1, 2, &pr), RAFT_OK);
	assert_int_equal(pr.inflight, 0);
	assert_int_equal(pr.match, raft_last_index(r1));
}

static bool
drop_and_count_appends_to_3(const raft_message *m, void *ctx)
{
	int		   *dropped = ctx;

	if (m->type == RAFT_MSG_APPEND && m->to == 3)
	{
		(*dropped)++;
		return true;
	}
	return false;
}

/*
 * Appends lost on the way leave a replicating follower behind without
 * anyone noticing until the next heartbeat: its answer shows the follower
 * behind, and the leader probes and resends.
 */
static void
test_lost_append_is_repaired_after_next_heartbeat(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	int			dropped = 0;
	raft_progress pr;

	assert_int_equal(fx_elect(f, 1), 1);
	f->drop = drop_and_count_appends_to_3;
	f->drop_ctx = &dropped;
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_true(dropped > 0);
	assert_int_equal(fx_applied_normal(f, 2), 1);
	assert_int_equal(fx_applied_normal(f, 3), 0);
	assert_int_equal(raft_get_progress(fx_raft(f, 1), 3, &pr), RAFT_OK);
	assert_int_equal(pr.state, RAFT_PROGRESS_REPLICATE);

	f->drop = NULL;
	fx_deliver_all(f, 0);
	assert_int_equal(fx_applied_normal(f, 3), 0);
	fx_tick(f, 1, 1);
	fx_deliver_all(f, 0);
	assert_int_equal(fx_applied_normal(f, 3), 1);
	assert_int_equal(raft_last_index(fx_raft(f, 3)), raft_last_index(fx_raft(f, 1)));
	/* behind for a lost message is not lost: its log never went back */
	assert_int_equal(raft_get_progress(fx_raft(f, 1), 3, &pr), RAFT_OK);
	assert_false(pr.lost);
}

/*
 * A follower whose log is behind still learns how far the group has
 * committed, from the heartbeat, which caps its own commit at what it
 * holds: raft_group_commit says there is more to apply before the entries
 * come (the host's reconciler waits for a roster it knows is current).
 * What was committed stays so: a new term keeps what the old leader told.
 */
static void
opts_no_prevote(raft_options *o)
{
	o->pre_vote = false;
}

static void
test_a_follower_behind_learns_the_group_commit(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_no_prevote);
	int			dropped = 0;
	raft_index	before;
	raft_index	commit;

	assert_int_equal(fx_elect(f, 1), 1);
	before = raft_commit_index(fx_raft(f, 3));
	assert_int_equal(raft_group_commit(fx_raft(f, 3)), before);
	f->drop = drop_and_count_appends_to_3;
	f->drop_ctx = &dropped;
	propose_n(f, 1, 3, "behind-");
	fx_flush(f);
	fx_deliver_all(f, 0);
	commit = raft_commit_index(fx_raft(f, 1));
	assert_int_equal(commit, before + 3);
	assert_int_equal(raft_group_commit(fx_raft(f, 1)), commit);
	/* node 3 holds none of them: only a heartbeat tells it */
	assert_int_equal(raft_commit_index(fx_raft(f, 3)), before);
	assert_int_equal(raft_group_commit(fx_raft(f, 3)), before);
	fx_tick(f, 1, 1);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(fx_raft(f, 3)), before);
	assert_int_equal(raft_group_commit(fx_raft(f, 3)), commit);

	/* once it has the entries, both agree */
	f->drop = NULL;
	fx_tick(f, 1, 1);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(fx_raft(f, 3)), commit);
	assert_int_equal(raft_group_commit(fx_raft(f, 3)), commit);

	/* a new term: what the old leader told still counts */
	f->drop = drop_and_count_appends_to_3;
	propose_n(f, 1, 2, "later-");
	fx_flush(f);
	fx_deliver_all(f, 0);
	fx_tick(f, 1, 1);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_group_commit(fx_raft(f, 3)), commit + 2);
	fx_isolate(f, 3);
	fx_tick(f, 3, 3 * ELECTION_TICKS);
	assert_int_equal(raft_get_role(fx_raft(f, 3)), RAFT_CANDIDATE);
	assert_int_equal(raft_commit_index(fx_raft(f, 3)), commit);
	assert_int_equal(raft_group_commit(fx_raft(f, 3)), commit + 2);
}

static int	rejects_from_3;

static void
count_rejects_from_3(fixture *f, raft_id id, const raft_ready *rd, void *ctx)
{
	(void) f;
	(void) ctx;
	for (size_t i = 0; i < rd->n_persist_messages; i++)
		if (id == 3 && rd->persist_messages[i].type == RAFT_MSG_APPEND_RESP &&
			rd->persist_messages[i].reject)
			rejects_from_3++;
}

/*
 * A follower with 100 uncommitted entries of a stale term is repaired in a
 * round trip or two, not one per divergent entry: its rejection says the
 * term it holds there, and the leader skips that whole term (§5.3).
 */
static void
test_conflict_hint_repairs_long_divergent_log_in_few_round_trips(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_term	good[51];
	raft_term	bad[101];

	good[0] = bad[0] = 1;
	for (int i = 1; i < 51; i++)
		good[i] = 3;
	for (int i = 1; i < 101; i++)
		bad[i] = 2;
	fx_set_disk(f, 1, 3, RAFT_NONE, 1, good, 51);
	fx_set_disk(f, 2, 3, RAFT_NONE, 1, good, 51);
	fx_set_disk(f, 3, 2, RAFT_NONE, 1, bad, 101);

	rejects_from_3 = 0;
	f->on_ready = count_rejects_from_3;
	assert_int_equal(fx_elect(f, 1), 1);
	assert_in_range(rejects_from_3, 1, 2);
	assert_same_log(f, 1, 3);
	assert_int_equal(raft_last_index(fx_raft(f, 3)), 52);
	assert_int_equal(raft_commit_index(fx_raft(f, 3)), 52);
}

/* A follower far behind says where its log ends: one rejection suffices. */
static void
test_short_follower_is_found_in_one_round_trip(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_term	terms[80];

	for (int i = 0; i < 80; i++)
		terms[i] = 1 + i / 40;
	fx_set_disk(f, 1, 2, RAFT_NONE, 1, terms, 80);
	fx_set_disk(f, 2, 2, RAFT_NONE, 1, terms, 80);
	fx_set_disk(f, 3, 2, RAFT_NONE, 1, terms, 5);

	rejects_from_3 = 0;
	f->on_ready = count_rejects_from_3;
	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(rejects_from_3, 1);
	assert_same_log(f, 1, 3);
}

/*
 * A follower whose storage goes back (started from an older copy of its
 * data) after it acknowledged entries is marked lost, with where its log
 * ends, once it answered two probes so; it is not sent the entries it lost
 * as if it were merely behind, and is probed at heartbeats, not at every
 * write.
 */
static void
test_follower_whose_log_went_back_is_marked_lost(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_term	terms[8];
	raft_progress pr;
	raft_index	match;

	for (int i = 0; i < 8; i++)
		terms[i] = 1;
	fx_set_disk(f, 1, 1, RAFT_NONE, 1, terms, 8);
	fx_set_disk(f, 2, 1, RAFT_NONE, 1, terms, 8);
	fx_set_disk(f, 3, 1, RAFT_NONE, 1, terms, 8);
	assert_int_equal(fx_elect(f, 1), 1);
	propose_n(f, 1, 5, "a");
	fx_deliver_all(f, 0);
	assert_int_equal(raft_get_progress(fx_raft(f, 1), 3, &pr), RAFT_OK);
	match = pr.match;
	assert_int_equal(match, 14);
	assert_false(pr.lost);

	/* node 3 comes back from a copy made when it held eight entries */
	fx_set_disk(f, 3, 1, RAFT_NONE, 1, terms, 8);
	propose_n(f, 1, 1, "b");
	fx_deliver_all(f, 0);
	fx_tick(f, 1, 1);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_get_progress(fx_raft(f, 1), 3, &pr), RAFT_OK);
	assert_true(pr.lost);
	assert_int_equal(pr.lost_end, 8);
	assert_int_equal(pr.match, match);
	assert_int_equal(pr.next, match + 1);
	assert_int_equal(raft_last_index(fx_raft(f, 3)), 8);
	/* the leader and node 2 still commit */
	assert_int_equal(raft_commit_index(fx_raft(f, 1)), 15);

	/* writes send it nothing: it is probed at heartbeats only */
	propose_n(f, 1, 3, "c");
	fx_flush(f);
	assert_int_equal(fx_queued(f, RAFT_MSG_APPEND, 1, 3), 0);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(fx_raft(f, 1)), 18);
	fx_tick(f, 1, 1);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_get_progress(fx_raft(f, 1), 3, &pr), RAFT_OK);
	assert_true(pr.lost);
	assert_int_equal(raft_last_index(fx_raft(f, 3)), 8);
}

/* ------------------------------------------------------------------------
 * The commit rule
 * ------------------------------------------------------------------------
 */

/* A new leader appends a no-op of its term, and committing it commits all. */
static void
test_new_leader_appends_and_commits_a_noop(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_term	terms[] = {1, 1, 2};
	const raft_entry *e;
	raft	   *r1;

	for (raft_id id = 1; id <= 3; id++)
		fx_set_disk(f, id, 2, RAFT_NONE, 1, terms, 3);
	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	assert_int_equal(raft_last_index(r1), 4);
	assert_int_equal(raft_entry_at(r1, 4, &e), RAFT_OK);
	assert_int_equal(e->type, RAFT_ENTRY_NOOP);
	assert_int_equal(e->term, raft_get_term(r1));
	assert_int_equal(e->len, 0);
	for (raft_id id = 1; id <= 3; id++)
	{
		fx_node    *n = &f->nodes[id];

		assert_int_equal(raft_commit_index(fx_raft(f, id)), 4);
		assert_int_equal(n->n_applied, 4);
		assert_int_equal(n->applied[3].type, RAFT_ENTRY_NOOP);
		assert_string_equal(fx_applied_str(f, id, 2), "3:2");
	}
}

static void
opts_prevote_only(raft_options *o)
{
	o->check_quorum = false;
}

/*
 * A leader cut off from the majority goes on accepting proposals it cannot
 * commit; when it is back, the new term reaches it, it steps down, and its
 * uncommitted entries are replaced by the new leader's log.
 */
static void
test_stale_leader_steps_down_and_loses_its_uncommitted_entries(void **state)
{
	fixture    *f = *state = fx_new(5, 5, opts_prevote_only);
	raft	   *r1 = fx_raft(f, 1);
	raft_index	index;
	raft_term	term;
	raft_id		leader = RAFT_NONE;
	const raft_entry *e;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_isolate(f, 1);
	assert_int_equal(raft_propose(r1, "lost", 4, &index, &term), RAFT_OK);
	fx_deliver_all(f, 0);
	for (int i = 0; i < 20 * ELECTION_TICKS && leader == RAFT_NONE; i++)
	{
		fx_run(f, 1);
		for (raft_id id = 2; id <= 5; id++)
			if (raft_get_role(fx_raft(f, id)) == RAFT_LEADER)
				leader = id;
	}
	assert_int_not_equal(leader, RAFT_NONE);
	assert_int_equal(raft_get_role(r1), RAFT_LEADER);
	assert_int_equal(fx_propose(f, leader, "kept"), RAFT_OK);
	fx_deliver_all(f, 0);

	fx_heal_all(f);
	fx_run(f, 2);
	assert_int_equal(raft_get_role(r1), RAFT_FOLLOWER);
	assert_int_equal(raft_leader(r1), leader);
	assert_int_equal(raft_entry_at(r1, index, &e), RAFT_OK);
	assert_int_not_equal(e->term, term);
	assert_false(applied_data(f, 1, "lost"));
	assert_true(applied_data(f, 1, "kept"));
	assert_same_log(f, 1, leader);
}

/* Drop the appends that would give entry 3 to a node that holds entry 2. */
static bool
drop_entry3_to_holders_of_2(const raft_message *m, void *ctx)
{
	fixture    *f = ctx;

	if (m->type != RAFT_MSG_APPEND)
		return false;
	for (uint32_t i = 0; i < m->n_entries; i++)
		if (m->entries[i].index == 3 &&
			raft_last_index(fx_raft(f, m->to)) >= 2)
			return true;
	return false;
}

/* Tick `id' (and deliver) until it leads; fails after many timeouts. */
static void
tick_until_leader(fixture *f, raft_id id)
{
	for (int i = 0; i < 20 * ELECTION_TICKS && raft_get_role(fx_raft(f, id)) != RAFT_LEADER; i++)
	{
		fx_tick(f, id, 1);
		fx_deliver_all(f, 0);
	}
	assert_int_equal(raft_get_role(fx_raft(f, id)), RAFT_LEADER);
}

static void
assert_log_terms(fixture *f, raft_id id, const raft_term *terms, size_t n)
{
	raft	   *r = fx_raft(f, id);

	assert_int_equal(raft_last_index(r), n);
	for (size_t i = 0; i < n; i++)
	{
		raft_term	t;

		assert_int_equal(raft_term_at(r, i + 1, &t), RAFT_OK);
		assert_int_equal(t, terms[i]);
	}
}

static bool
drop_appends_to_3(const raft_message *m, void *ctx)
{
	(void) ctx;
	return m->type == RAFT_MSG_APPEND && m->to == 3;
}

/* A heartbeat never tells a follower to commit past what it is known to hold. */
static void
test_heartbeat_commit_never_passes_the_followers_match(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft_progress pr;
	const raft_message *hb2 = NULL;
	const raft_message *hb3 = NULL;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	f->drop = drop_appends_to_3;
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(r1), raft_last_index(r1));
	assert_int_equal(raft_get_progress(r1, 3, &pr), RAFT_OK);
	assert_true(pr.match < raft_commit_index(r1));

	fx_tick(f, 1, 1);
	for (size_t i = 0; i < f->nq; i++)
		if (f->q[i].m.type == RAFT_MSG_HEARTBEAT)
		{
			if (f->q[i].m.to == 2)
				hb2 = &f->q[i].m;
			else
				hb3 = &f->q[i].m;
		}
	assert_non_null(hb2);
	assert_non_null(hb3);
	assert_int_equal(hb2->commit, raft_commit_index(r1));
	assert_int_equal(hb3->commit, pr.match);
}

/*
 * An append proves the follower's log matches the leader's only up to its
 * last entry: stale entries after it are not committed, whatever the
 * leader's commit index (Raft paper, Figure 2: min(leaderCommit, index of
 * last new entry)).
 */
static void
test_append_commits_no_further_than_its_last_entry(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_term	stale[] = {1, 2, 2, 2};
	raft_entry	e;
	raft_message m;

	fx_set_disk(f, 3, 2, RAFT_NONE, 1, stale, 4);
	memset(&e, 0, sizeof(e));
	e.index = 2;
	e.term = 2;
	e.type = RAFT_ENTRY_NORMAL;
	e.data = "2:2";
	e.len = 3;
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND;
	m.from = 1;
	m.to = 3;
	m.term = 3;
	m.index = 1;
	m.log_term = 1;
	m.commit = 6;
	m.entries = &e;
	m.n_entries = 1;
	assert_int_equal(fx_step(f, 3, &m), RAFT_OK);
	assert_int_equal(raft_commit_index(fx_raft(f, 3)), 2);
	assert_int_equal(f->nodes[3].applied_index, 2);
	assert_int_equal(raft_last_index(fx_raft(f, 3)), 4);
}

/*
 * Figure 8 (a)-(b) as durable state: S1 led term 2 and wrote entry 2; S5
 * led term 3 and wrote its own entry 2; S3 and S4 voted for S5.  Then (c):
 * S5 is down and S1 wins term 4 (its no-op is entry 3, term 4).  S2's copy
 * of entry 2 reaches it in (c) rather than (a), because a leader learns that
 * a follower holds an entry only from that follower's answer in its term.
 */
static fixture *
figure8_to_c(void **state, bool lose_entry3)
{
	fixture    *f = *state = fx_new(5, 5, opts_paper);
	raft_term	s1[] = {1, 2};
	raft_term	s5[] = {1, 3};
	raft_term	s234[] = {1};
	raft_progress pr;

	fx_set_disk(f, 1, 2, 1, 1, s1, 2);
	fx_set_disk(f, 2, 2, 1, 1, s234, 1);
	fx_set_disk(f, 3, 3, 5, 1, s234, 1);
	fx_set_disk(f, 4, 3, 5, 1, s234, 1);
	fx_set_disk(f, 5, 3, 5, 1, s5, 2);
	fx_crash(f, 5);
	fx_cut(f, 1, 4);			/* S4 keeps its log of (b) */
	if (lose_entry3)
	{
		f->drop = drop_entry3_to_holders_of_2;
		f->drop_ctx = f;
	}
	tick_until_leader(f, 1);
	assert_int_equal(raft_get_term(fx_raft(f, 1)), 4);
	assert_int_equal(raft_get_progress(fx_raft(f, 1), 2, &pr), RAFT_OK);
	assert_int_equal(pr.match, lose_entry3 ? 2 : 3);
	assert_int_equal(raft_get_progress(fx_raft(f, 1), 3, &pr), RAFT_OK);
	assert_int_equal(pr.match, lose_entry3 ? 2 : 3);
	return f;
}

/*
 * Figure 8 (c)-(d): entry 2 of term 2 is on a majority (S1, S2, S3) and the
 * leader of term 4 knows it, yet it must not commit it (§5.4.2), since S5
 * can still win and overwrite it, which it then does.
 */
static void
test_figure8_old_term_entry_on_majority_is_not_committed(void **state)
{
	fixture    *f = figure8_to_c(state, true);
	raft_term	c_s1[] = {1, 2, 4};
	raft_term	c_s23[] = {1, 2};
	raft_term	c_s4[] = {1};
	raft_term	d[] = {1, 3, 5};

	/* (c) exactly */
	assert_log_terms(f, 1, c_s1, 3);
	assert_log_terms(f, 2, c_s23, 2);
	assert_log_terms(f, 3, c_s23, 2);
	assert_log_terms(f, 4, c_s4, 1);
	assert_int_equal(raft_commit_index(fx_raft(f, 1)), 1);
	assert_int_equal(f->nodes[1].n_applied, 1);

	/* (d): S1 crashes, S5 comes back and wins with S2, S3 and S4 */
	fx_crash(f, 1);
	f->drop = NULL;
	fx_heal_all(f);
	fx_restart(f, 5);
	tick_until_leader(f, 5);
	assert_int_equal(raft_get_term(fx_raft(f, 5)), 5);
	for (raft_id id = 2; id <= 5; id++)
	{
		assert_log_terms(f, id, d, 3);
		assert_string_equal(fx_applied_str(f, id, 1), "2:3");
		assert_false(applied_data(f, id, "2:2"));
	}

	/* S1 comes back and gives up its entries 2 and 3 */
	fx_restart(f, 1);
	fx_run(f, 2);
	assert_log_terms(f, 1, d, 3);
	assert_applied_agree(f);
}

/*
 * Figure 8 (e): once S1 has replicated an entry of its own term to a
 * majority, that entry and entry 2 before it are committed, and S5 can no
 * longer be elected.
 */
static void
test_figure8_current_term_entry_commits_the_older_one(void **state)
{
	fixture    *f = figure8_to_c(state, false);

	assert_int_equal(raft_commit_index(fx_raft(f, 1)), 3);
	assert_string_equal(fx_applied_str(f, 1, 1), "2:2");

	fx_crash(f, 1);
	fx_heal_all(f);
	fx_restart(f, 5);
	for (int i = 0; i < 10 * ELECTION_TICKS; i++)
	{
		fx_tick(f, 5, 1);
		fx_deliver_all(f, 0);
		assert_int_not_equal(raft_get_role(fx_raft(f, 5)), RAFT_LEADER);
	}

	/* a leader from S2 or S3 brings everyone, S5 included, to S1's log */
	fx_restart(f, 1);
	fx_run(f, 10 * ELECTION_TICKS);
	assert_int_not_equal(fx_leader(f), RAFT_NONE);
	assert_int_not_equal(fx_leader(f), 5);
	for (raft_id id = 1; id <= 5; id++)
	{
		raft_term	t;

		assert_int_equal(raft_term_at(fx_raft(f, id), 2, &t), RAFT_OK);
		assert_int_equal(t, 2);
		assert_int_equal(raft_term_at(fx_raft(f, id), 3, &t), RAFT_OK);
		assert_int_equal(t, 4);
		assert_string_equal(fx_applied_str(f, id, 1), "2:2");
	}
	assert_applied_agree(f);
}

/*
 * Figure 7: the leader of term 8 and followers (a)-(f) with the logs of the
 * figure.  (c) and (d) refuse it their votes, yet the leader brings every
 * follower's log, theirs included, into agreement with its own.
 */
static void
test_figure7_leader_brings_every_follower_into_agreement(void **state)
{
	fixture    *f = *state = fx_new(7, 7, NULL);
	static const raft_term leader[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
	static const raft_term a[] = {1, 1, 1, 4, 4, 5, 5, 6, 6};
	static const raft_term b[] = {1, 1, 1, 4};
	static const raft_term c[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6};
	static const raft_term d[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7};
	static const raft_term e[] = {1, 1, 1, 4, 4, 4, 4};
	static const raft_term ff[] = {1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3};
	raft_term	final[11];

	fx_set_disk(f, 1, 7, RAFT_NONE, 3, leader, 10);
	fx_set_disk(f, 2, 6, RAFT_NONE, 3, a, 9);
	fx_set_disk(f, 3, 4, RAFT_NONE, 3, b, 4);
	fx_set_disk(f, 4, 6, RAFT_NONE, 3, c, 11);
	fx_set_disk(f, 5, 7, RAFT_NONE, 3, d, 12);
	fx_set_disk(f, 6, 4, RAFT_NONE, 3, e, 7);
	fx_set_disk(f, 7, 3, RAFT_NONE, 3, ff, 11);

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(raft_get_term(fx_raft(f, 1)), 8);
	memcpy(final, leader, sizeof(leader));
	final[10] = 8;
	for (raft_id id = 1; id <= 7; id++)
	{
		assert_log_terms(f, id, final, 11);
		assert_same_log(f, 1, id);
		assert_int_equal(raft_commit_index(fx_raft(f, id)), 11);
		assert_int_equal(f->nodes[id].applied_index, 11);
	}
	assert_applied_agree(f);
}

/* ------------------------------------------------------------------------
 * The leader's own durability
 * ------------------------------------------------------------------------
 */
static raft_index watched_index;
static bool append_in_messages;
static bool append_in_persist_messages;
static bool entry_in_same_ready;

static void
watch_leader_ready(fixture *f, raft_id id, const raft_ready *rd, void *ctx)
{
	(void) f;
	(void) ctx;
	if (id != 1)
		return;
	for (size_t i = 0; i < rd->n_messages; i++)
	{
		const raft_message *m = &rd->messages[i];

		if (m->type == RAFT_MSG_APPEND && m->n_entries > 0 &&
			m->entries[m->n_entries - 1].index == watched_index)
		{
			append_in_messages = true;
			entry_in_same_ready = rd->n_entries > 0 &&
				rd->entries[rd->n_entries - 1].index == watched_index;
		}
	}
	for (size_t i = 0; i < rd->n_persist_messages; i++)
		if (rd->persist_messages[i].type == RAFT_MSG_APPEND)
			append_in_persist_messages = true;
}

/*
 * §10.2.1 of the dissertation: the leader's appends go in the ready's
 * messages, which may leave before the entries they carry are written, in
 * the very batch that asks for those entries to be written.
 */
static void
test_leader_sends_appends_before_its_own_write(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_term	term;

	assert_int_equal(fx_elect(f, 1), 1);
	append_in_messages = append_in_persist_messages = entry_in_same_ready = false;
	f->on_ready = watch_leader_ready;
	assert_int_equal(raft_propose(fx_raft(f, 1), "x", 1, &watched_index, &term),
					 RAFT_OK);
	fx_flush(f);
	assert_true(append_in_messages);
	assert_true(entry_in_same_ready);
	assert_false(append_in_persist_messages);
}

/*
 * The leader counts its own log only once raft_advance() says it is
 * durable: with one follower's answer and its own write outstanding,
 * nothing commits; the commit comes with the leader's raft_advance().
 */
static void
test_leader_counts_itself_only_once_durable(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft_index	commit;
	raft_index	index;
	raft_term	term;
	raft_progress pr;
	raft_message ack;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	fx_isolate(f, 3);
	commit = raft_commit_index(r1);

	assert_int_equal(raft_propose(r1, "x", 1, &index, &term), RAFT_OK);
	assert_true(raft_stable_index(r1) < index);
	assert_int_equal(raft_get_progress(r1, 1, &pr), RAFT_OK);
	assert_true(pr.match < index);

	/* node 2's answer (a fast network, a slow disk on the leader) */
	memset(&ack, 0, sizeof(ack));
	ack.type = RAFT_MSG_APPEND_RESP;
	ack.from = 2;
	ack.to = 1;
	ack.term = term;
	ack.index = index;
	assert_int_equal(raft_step(r1, &ack), RAFT_OK);
	assert_int_equal(raft_commit_index(r1), commit);

	/* the leader's write completes */
	fx_flush(f);
	assert_int_equal(raft_stable_index(r1), index);
	assert_int_equal(raft_commit_index(r1), index);
	assert_int_equal(raft_get_progress(r1, 1, &pr), RAFT_OK);
	assert_int_equal(pr.match, index);
}

/* The only voter commits on its own write, and only once it is durable. */
static void
test_single_voter_commits_on_its_own_write(void **state)
{
	fixture    *f = *state = fx_new(2, 1, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_index	index;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_isolate(f, 1);
	assert_int_equal(raft_propose(r1, "solo", 4, &index, NULL), RAFT_OK);
	assert_true(raft_commit_index(r1) < index);
	fx_flush(f);
	assert_int_equal(raft_commit_index(r1), index);
	assert_true(applied_data(f, 1, "solo"));
}

/* Its own durable copy alone is no quorum: lost answers, no commit. */
static void
test_no_commit_when_every_follower_answer_is_lost(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft_index	commit;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	commit = raft_commit_index(r1);
	fx_cut(f, 2, 1);
	fx_cut(f, 3, 1);
	f->cut[1][2] = f->cut[1][3] = false;	/* only the answers are lost */
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_stable_index(r1), raft_last_index(r1));
	assert_int_equal(raft_last_index(fx_raft(f, 2)), raft_last_index(r1));
	assert_int_equal(raft_commit_index(r1), commit);

	fx_heal_all(f);
	fx_run(f, 1);
	assert_int_equal(raft_commit_index(r1), raft_last_index(r1));
}

/* ------------------------------------------------------------------------
 * Commit news
 * ------------------------------------------------------------------------
 */

static bool
is_append(const raft_message *m, void *ctx)
{
	(void) ctx;
	return m->type == RAFT_MSG_APPEND;
}

static bool
is_answer_from(const raft_message *m, void *ctx)
{
	return m->type == RAFT_MSG_APPEND_RESP && m->from == *(raft_id *) ctx;
}

/* The first append carrying entries to 3 is lost (ctx: how many were). */
static bool
drop_first_entries_to_3(const raft_message *m, void *ctx)
{
	int		   *dropped = ctx;

	if (*dropped > 0 || m->type != RAFT_MSG_APPEND || m->to != 3 || m->n_entries == 0)
		return false;
	(*dropped)++;
	return true;
}

/* 3's answers are lost. */
static bool
drop_answers_of_3(const raft_message *m, void *ctx)
{
	(void) ctx;
	return m->type == RAFT_MSG_APPEND_RESP && m->from == 3;
}

/* The leader's appends queued for `to' that carry no entry, all commit-only. */
static size_t
commit_only_appends_to(fixture *f, raft_id to)
{
	size_t		n = 0;

	for (size_t i = 0; i < f->nq; i++)
	{
		const raft_message *m = &f->q[i].m;

		if (m->type != RAFT_MSG_APPEND || m->to != to)
			continue;
		assert_int_equal(m->n_entries, 0);
		assert_true(m->commit_only);
		n++;
	}
	return n;
}

/*
 * Once a commit moves, the leader tells it to each follower that was sent
 * every entry, in an append without entries that the follower does not
 * answer: the answers to the entries' appends said all there was to say.
 * The follower that has not answered yet is told as well.
 */
static void
test_commit_news_goes_unanswered(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft_id		two = 2;
	raft_progress pr;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	assert_int_equal(fx_deliver_if(f, is_append, NULL), 2);
	assert_int_equal(fx_deliver_if(f, is_answer_from, &two), 1);
	assert_int_equal(raft_commit_index(r1), raft_last_index(r1));

	assert_int_equal(commit_only_appends_to(f, 2), 1);
	assert_int_equal(commit_only_appends_to(f, 3), 1);
	assert_int_equal(fx_deliver_if(f, is_append, NULL), 2);
	assert_true(applied_data(f, 2, "x"));
	assert_true(applied_data(f, 3, "x"));
	assert_int_equal(raft_commit_index(fx_raft(f, 3)), raft_commit_index(r1));
	assert_int_equal(fx_queued(f, RAFT_MSG_APPEND_RESP, 2, 1), 0);
	/* 3's answer is the one to its entries */
	assert_int_equal(fx_queued(f, RAFT_MSG_APPEND_RESP, 3, 1), 1);
	fx_deliver_all(f, 0);
	assert_int_equal(f->nq, 0);
	assert_int_equal(raft_get_progress(r1, 3, &pr), RAFT_OK);
	assert_int_equal(pr.match, raft_last_index(r1));
}

/*
 * A follower that lost the entries rejects the commit news, and its
 * rejection gets it the entries.
 */
static void
test_commit_news_to_a_follower_missing_entries_is_rejected(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	int			dropped = 0;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	f->drop = drop_first_entries_to_3;
	f->drop_ctx = &dropped;
	rejects_from_3 = 0;
	f->on_ready = count_rejects_from_3;
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(dropped, 1);
	assert_int_equal(rejects_from_3, 1);
	assert_int_equal(raft_commit_index(r1), raft_last_index(r1));
	assert_true(applied_data(f, 3, "x"));
	assert_int_equal(raft_last_index(fx_raft(f, 3)), raft_last_index(r1));
}

/*
 * A follower whose answer to the entries was lost takes the commit news
 * without a word; the next heartbeat's answer shows the leader it is
 * behind, and the append that follows is answered.
 */
static void
test_lost_answer_behind_silent_commit_news_is_repaired_by_heartbeat(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft_progress pr;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	f->drop = drop_answers_of_3;
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_true(applied_data(f, 3, "x"));
	assert_int_equal(raft_get_progress(r1, 3, &pr), RAFT_OK);
	assert_true(pr.match < raft_last_index(r1));

	f->drop = NULL;
	fx_tick(f, 1, 1);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_get_progress(r1, 3, &pr), RAFT_OK);
	assert_int_equal(pr.match, raft_last_index(r1));
}

/* Propose `s' at leader `id' for a command only node `waiter' waits for. */
static int
propose_for(fixture *f, raft_id id, raft_id waiter, const char *s)
{
	int			rc = raft_propose_for(fx_raft(f, id), waiter, s,
									  (uint32_t) strlen(s), NULL, NULL);

	fx_flush(f);
	return rc;
}

/* The leader's queued appends to `to' that carry no entry. */
static size_t
empty_appends_to(fixture *f, raft_id to)
{
	size_t		n = 0;

	for (size_t i = 0; i < f->nq; i++)
		if (f->q[i].m.type == RAFT_MSG_APPEND && f->q[i].m.to == to &&
			f->q[i].m.n_entries == 0)
			n++;
	return n;
}

/*
 * A command only the leader's node waits for commits without news to the
 * followers: they learn of it with the next append, or the next heartbeat
 * when none comes, and apply it then.
 */
static void
test_commit_of_a_local_proposal_is_told_with_the_next_append(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft_index	x;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	assert_int_equal(propose_for(f, 1, 1, "x"), RAFT_OK);
	x = raft_last_index(r1);
	assert_int_equal(fx_deliver_if(f, is_append, NULL), 2);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(r1), x);
	assert_true(applied_data(f, 1, "x"));
	assert_true(raft_commit_index(fx_raft(f, 2)) < x);
	assert_false(applied_data(f, 2, "x"));
	assert_int_equal(f->nq, 0);

	/* the next command's appends carry the commit */
	assert_int_equal(propose_for(f, 1, 1, "y"), RAFT_OK);
	assert_int_equal(empty_appends_to(f, 2) + empty_appends_to(f, 3), 0);
	assert_int_equal(fx_deliver_if(f, is_append, NULL), 2);
	assert_int_equal(raft_commit_index(fx_raft(f, 2)), x);
	assert_true(applied_data(f, 2, "x"));
	assert_true(applied_data(f, 3, "x"));
	fx_deliver_all(f, 0);
	assert_false(applied_data(f, 3, "y"));

	/* and the heartbeat when nothing follows */
	fx_tick(f, 1, 1);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(fx_raft(f, 3)), x + 1);
	assert_true(applied_data(f, 2, "y"));
	assert_true(applied_data(f, 3, "y"));
}

/*
 * A command forwarded by a follower's node, which waits to apply it: that
 * follower hears of the commit at once, the other one later.  raft_propose
 * tells every follower.
 */
static void
test_commit_is_told_at_once_to_the_node_that_waits(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft_id		two = 2;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	assert_int_equal(propose_for(f, 1, 3, "x"), RAFT_OK);
	assert_int_equal(fx_deliver_if(f, is_append, NULL), 2);
	assert_int_equal(fx_deliver_if(f, is_answer_from, &two), 1);
	assert_int_equal(raft_commit_index(r1), raft_last_index(r1));
	assert_int_equal(empty_appends_to(f, 2), 0);
	assert_int_equal(commit_only_appends_to(f, 3), 1);
	fx_deliver_all(f, 0);
	assert_true(applied_data(f, 3, "x"));
	assert_false(applied_data(f, 2, "x"));

	assert_int_equal(fx_propose(f, 1, "z"), RAFT_OK);
	assert_int_equal(fx_deliver_if(f, is_append, NULL), 2);
	assert_int_equal(fx_deliver_if(f, is_answer_from, &two), 1);
	assert_int_equal(commit_only_appends_to(f, 2), 1);
	assert_int_equal(commit_only_appends_to(f, 3), 1);
	fx_deliver_all(f, 0);
	assert_true(applied_data(f, 2, "z"));
	assert_true(applied_data(f, 3, "z"));
}

static void
opts_one_inflight(raft_options *o)
{
	o->max_inflight = 1;
}

static bool
is_append_to_2(const raft_message *m, void *ctx)
{
	(void) ctx;
	return m->type == RAFT_MSG_APPEND && m->to == 2;
}

static bool
is_to_or_from_3(const raft_message *m, void *ctx)
{
	(void) ctx;
	return m->to == 3 || m->from == 3;
}

/*
 * The node that waits cannot take the news when the entry commits (its
 * window is full with that very entry): it gets it as soon as it answers,
 * not at the next heartbeat.
 */
static void
test_a_waiting_follower_with_a_full_window_is_told_once_it_answers(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_one_inflight);
	raft	   *r1;
	raft_id		two = 2;
	raft_index	x;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	assert_int_equal(propose_for(f, 1, 3, "x"), RAFT_OK);
	x = raft_last_index(r1);
	assert_int_equal(fx_deliver_if(f, is_append_to_2, NULL), 1);
	assert_int_equal(fx_deliver_if(f, is_answer_from, &two), 1);
	assert_int_equal(raft_commit_index(r1), x);
	assert_int_equal(empty_appends_to(f, 3), 0);

	while (fx_deliver_if(f, is_to_or_from_3, NULL) > 0)
		;
	assert_int_equal(raft_commit_index(fx_raft(f, 3)), x);
	assert_true(applied_data(f, 3, "x"));
}

/* Everything but appends to 3 that do not say they only bring the commit. */
static bool
all_but_plain_appends_to_3(const raft_message *m, void *ctx)
{
	(void) ctx;
	return !(m->type == RAFT_MSG_APPEND && m->to == 3 && !m->commit_only);
}

/*
 * A follower's read gets the commit index before its answer, so that it
 * apply up to the read's index at once, even when the heartbeat that
 * confirmed the read could not tell it (the leader had not heard that the
 * follower holds the last entry: that heartbeat's answer gets it an
 * append, but only after the read's answer).
 */
static void
test_follower_read_is_told_the_commit_before_its_index(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft	   *r3;
	raft_index	x;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	r3 = fx_raft(f, 3);
	f->drop = drop_answers_of_3;
	assert_int_equal(propose_for(f, 1, 1, "x"), RAFT_OK);
	x = raft_last_index(r1);
	fx_deliver_all(f, 0);
	f->drop = NULL;
	assert_int_equal(raft_commit_index(r1), x);
	assert_int_equal(raft_last_index(r3), x);
	assert_true(raft_commit_index(r3) < x);

	assert_int_equal(raft_read_index(r3, 42), RAFT_OK);
	fx_flush(f);
	/* the append that the heartbeat's answer gets it is held back */
	while (f->nodes[3].n_reads == 0 &&
		   fx_deliver_if(f, all_but_plain_appends_to_3, NULL) > 0)
		;
	assert_int_equal(f->nodes[3].n_reads, 1);
	assert_int_equal(f->nodes[3].reads[0].context, 42);
	assert_int_equal(f->nodes[3].reads[0].index, x);
	/* when the answer arrives, the entry is known committed and applied */
	assert_int_equal(raft_commit_index(r3), x);
	assert_true(applied_data(f, 3, "x"));
}

/* ------------------------------------------------------------------------
 * Heartbeats
 * ------------------------------------------------------------------------
 */

/*
 * An idle leader sends each follower one heartbeat per heartbeat_ticks
 * ticks and nothing else: the host can coalesce the heartbeats of many
 * groups, and no group needs a message per tick.
 */
static void
test_idle_leader_sends_one_heartbeat_per_period(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_heartbeat_every_3);
	uint64_t	before[RAFT_MSG_TYPE_MAX + 1];

	assert_int_equal(fx_elect(f, 1), 1);
	memcpy(before, f->sent_by_type, sizeof(before));
	fx_run(f, 30);
	assert_int_equal(f->sent_by_type[RAFT_MSG_HEARTBEAT] - before[RAFT_MSG_HEARTBEAT],
					 2 * 30 / 3);
	assert_int_equal(f->sent_by_type[RAFT_MSG_HEARTBEAT_RESP] - before[RAFT_MSG_HEARTBEAT_RESP],
					 2 * 30 / 3);
	assert_int_equal(f->sent_by_type[RAFT_MSG_APPEND] - before[RAFT_MSG_APPEND], 0);
	assert_int_equal(f->sent_by_type[RAFT_MSG_PREVOTE] - before[RAFT_MSG_PREVOTE], 0);
	assert_int_equal(fx_leader(f), 1);
}

/*
 * A lone voter wins its election within one tick, with no vote request
 * that makes its new term durable first: its appends to a learner wait
 * for the batch that writes the term.  Were they sent before, a crash
 * before that write would let it win the same term again and send the
 * learner other entries under the same index and term.  Once the term
 * is durable, appends go before the write again.
 */
static void
test_appends_of_a_term_not_yet_durable_wait_for_it(void **state)
{
	fixture    *f = *state = fx_new(2, 1, NULL);
	raft	   *r = fx_raft(f, 1);
	raft_ready	rd;
	raft_message ack;
	raft_index	index;
	raft_term	term;
	size_t		early = 0;
	size_t		after = 0;

	for (int i = 0; i < 4 * ELECTION_TICKS && raft_get_role(r) != RAFT_LEADER; i++)
		raft_tick(r);
	assert_int_equal(raft_get_role(r), RAFT_LEADER);
	raft_ready_get(r, &rd);
	assert_true(rd.has_hard_state);
	assert_int_equal(rd.hard_state.term, raft_get_term(r));
	for (size_t i = 0; i < rd.n_messages; i++)
		early += rd.messages[i].type == RAFT_MSG_APPEND;
	for (size_t i = 0; i < rd.n_persist_messages; i++)
		after += rd.persist_messages[i].type == RAFT_MSG_APPEND &&
			rd.persist_messages[i].to == 2;
	assert_int_equal(early, 0);
	assert_int_equal(after, 1);
	raft_advance(r, &rd);

	/* the learner holds the no-op; the next entry's append goes early */
	memset(&ack, 0, sizeof(ack));
	ack.type = RAFT_MSG_APPEND_RESP;
	ack.from = 2;
	ack.to = 1;
	ack.term = raft_get_term(r);
	ack.index = raft_last_index(r);
	assert_int_equal(raft_step(r, &ack), RAFT_OK);
	assert_int_equal(raft_propose(r, "x", 1, &index, &term), RAFT_OK);
	raft_ready_get(r, &rd);
	early = 0;
	for (size_t i = 0; i < rd.n_messages; i++)
		early += rd.messages[i].type == RAFT_MSG_APPEND && rd.messages[i].to == 2;
	assert_true(early > 0);
	raft_advance(r, &rd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_appends_carry_at_most_max_msg_entries, fx_teardown),
		cmocka_unit_test_teardown(test_appends_respect_max_msg_bytes_but_carry_one_entry, fx_teardown),
		cmocka_unit_test_teardown(test_pipeline_fills_the_window_then_pauses_until_acked, fx_teardown),
		cmocka_unit_test_teardown(test_lost_append_is_repaired_after_next_heartbeat, fx_teardown),
		cmocka_unit_test_teardown(test_a_follower_behind_learns_the_group_commit, fx_teardown),
		cmocka_unit_test_teardown(test_conflict_hint_repairs_long_divergent_log_in_few_round_trips, fx_teardown),
		cmocka_unit_test_teardown(test_short_follower_is_found_in_one_round_trip, fx_teardown),
		cmocka_unit_test_teardown(test_follower_whose_log_went_back_is_marked_lost, fx_teardown),
		cmocka_unit_test_teardown(test_new_leader_appends_and_commits_a_noop, fx_teardown),
		cmocka_unit_test_teardown(test_heartbeat_commit_never_passes_the_followers_match, fx_teardown),
		cmocka_unit_test_teardown(test_append_commits_no_further_than_its_last_entry, fx_teardown),
		cmocka_unit_test_teardown(test_stale_leader_steps_down_and_loses_its_uncommitted_entries, fx_teardown),
		cmocka_unit_test_teardown(test_figure8_old_term_entry_on_majority_is_not_committed, fx_teardown),
		cmocka_unit_test_teardown(test_figure8_current_term_entry_commits_the_older_one, fx_teardown),
		cmocka_unit_test_teardown(test_figure7_leader_brings_every_follower_into_agreement, fx_teardown),
		cmocka_unit_test_teardown(test_leader_sends_appends_before_its_own_write, fx_teardown),
		cmocka_unit_test_teardown(test_leader_counts_itself_only_once_durable, fx_teardown),
		cmocka_unit_test_teardown(test_single_voter_commits_on_its_own_write, fx_teardown),
		cmocka_unit_test_teardown(test_no_commit_when_every_follower_answer_is_lost, fx_teardown),
		cmocka_unit_test_teardown(test_commit_news_goes_unanswered, fx_teardown),
		cmocka_unit_test_teardown(test_commit_news_to_a_follower_missing_entries_is_rejected, fx_teardown),
		cmocka_unit_test_teardown(test_lost_answer_behind_silent_commit_news_is_repaired_by_heartbeat, fx_teardown),
		cmocka_unit_test_teardown(test_commit_of_a_local_proposal_is_told_with_the_next_append, fx_teardown),
		cmocka_unit_test_teardown(test_commit_is_told_at_once_to_the_node_that_waits, fx_teardown),
		cmocka_unit_test_teardown(test_follower_read_is_told_the_commit_before_its_index, fx_teardown),
		cmocka_unit_test_teardown(test_a_waiting_follower_with_a_full_window_is_told_once_it_answers, fx_teardown),
		cmocka_unit_test_teardown(test_idle_leader_sends_one_heartbeat_per_period, fx_teardown),
		cmocka_unit_test_teardown(test_appends_of_a_term_not_yet_durable_wait_for_it, fx_teardown),
	};

	return cmocka_run_group_tests_name("replication", tests, NULL, NULL);
}
