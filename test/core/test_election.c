/*-------------------------------------------------------------------------
 *
 * test_election.c
 *	  Core tests of leader election: randomized timeouts, one leader per
 *	  term, pre-vote, check-quorum and the leader lease, the voting
 *	  restriction (Raft §5.4.1), durable votes, and determinism.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/test_election.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

#define ELECTION_TICKS 10

static void
opts_no_prevote(raft_options *o)
{
	o->pre_vote = false;
}

static void
opts_plain_raft(raft_options *o)
{
	o->pre_vote = false;
	o->check_quorum = false;
}

/* A vote request from `from' for `term', with a log ending at (index, log_term). */
static raft_message
vote_msg(uint32_t type, raft_id from, raft_id to, raft_term term,
		 raft_index index, raft_term log_term)
{
	raft_message m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.from = from;
	m.to = to;
	m.term = term;
	m.index = index;
	m.log_term = log_term;
	return m;
}

/* The first queued message of `type' from `from' to `to', or NULL. */
static const raft_message *
queued_msg(fixture *f, uint32_t type, raft_id from, raft_id to)
{
	for (size_t i = 0; i < f->nq; i++)
		if (f->q[i].m.type == type && f->q[i].m.from == from && f->q[i].m.to == to)
			return &f->q[i].m;
	return NULL;
}

/*
 * Each node draws its own timeout from [election_ticks, 2 * election_ticks):
 * isolated nodes ticked in lock step campaign at different ticks.
 */
static void
test_election_timeouts_differ_between_nodes(void **state)
{
	fixture    *f = *state = fx_new(5, 5, NULL);
	int			first[6] = {0};
	int			distinct = 0;

	for (raft_id id = 1; id <= 5; id++)
		fx_isolate(f, id);
	for (int t = 1; t <= 2 * ELECTION_TICKS; t++)
	{
		fx_tick_all(f);
		fx_drop_all(f);
		for (raft_id id = 1; id <= 5; id++)
			if (first[id] == 0 && raft_get_role(fx_raft(f, id)) != RAFT_FOLLOWER)
				first[id] = t;
	}
	for (raft_id id = 1; id <= 5; id++)
	{
		assert_in_range(first[id], ELECTION_TICKS, 2 * ELECTION_TICKS - 1);
		distinct += first[id] != first[1];
	}
	assert_true(distinct > 0);
}

/*
 * With every node ticking, the node whose timeout expires first wins, and
 * through a long run of partitions and heals no term ever has two leaders.
 */
static void
test_first_to_time_out_wins_and_terms_have_one_leader(void **state)
{
	fixture    *f = *state = fx_new(5, 5, NULL);
	raft_id		leader_of[256] = {0};
	uint64_t	lcg = 42;
	int			elections = 0;
	raft_id		first_leader = RAFT_NONE;
	raft_id		first_candidate = RAFT_NONE;

	for (int t = 0; t < 2 * ELECTION_TICKS && first_leader == RAFT_NONE; t++)
	{
		fx_tick_all(f);
		for (raft_id id = 1; id <= 5 && first_candidate == RAFT_NONE; id++)
			if (raft_get_role(fx_raft(f, id)) != RAFT_FOLLOWER)
				first_candidate = id;
		fx_deliver_all(f, 0);
		first_leader = fx_leader(f);
	}
	assert_int_not_equal(first_candidate, RAFT_NONE);
	assert_int_equal(first_leader, first_candidate);

	for (int t = 0; t < 3000; t++)
	{
		if (t % 40 == 0)
		{
			/* a new random partition: each node isolated with p = 1/4 */
			fx_heal_all(f);
			for (raft_id id = 1; id <= 5; id++)
			{
				lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
				if ((lcg >> 33) % 4 == 0)
					fx_isolate(f, id);
			}
		}
		fx_run(f, 1);
		for (raft_id id = 1; id <= 5; id++)
		{
			raft	   *r = fx_raft(f, id);
			raft_term	term = raft_get_term(r);

			if (raft_get_role(r) != RAFT_LEADER)
				continue;
			assert_true(term < 256);
			if (leader_of[term] == RAFT_NONE)
			{
				leader_of[term] = id;
				elections++;
			}
			assert_int_equal(leader_of[term], id);
		}
	}
	/* the partitions did force new elections */
	assert_true(elections > 3);
}

/* A pre-candidate asks for term + 1 without taking it (dissertation §9.6). */
static void
test_precandidate_keeps_its_term(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_id		leader = fx_elect(f, 1);
	raft_term	term = raft_get_term(fx_raft(f, 3));
	uint64_t	votes = f->sent_by_type[RAFT_MSG_VOTE];
	uint64_t	prevotes = f->sent_by_type[RAFT_MSG_PREVOTE];

	assert_int_equal(leader, 1);
	fx_isolate(f, 3);
	for (int i = 0; i < 5 * 2 * ELECTION_TICKS; i++)
	{
		fx_tick(f, 3, 1);
		fx_deliver_all(f, 0);
		assert_int_equal(raft_get_term(fx_raft(f, 3)), term);
		assert_int_equal(f->nodes[3].hs.term, term);
	}
	assert_int_equal(raft_get_role(fx_raft(f, 3)), RAFT_PRECANDIDATE);
	assert_true(f->sent_by_type[RAFT_MSG_PREVOTE] > prevotes);
	assert_int_equal(f->sent_by_type[RAFT_MSG_VOTE], votes);
}

/*
 * A node cut off for many election timeouts comes back without disturbing
 * anyone: its term never moved, the leader keeps leading in the same term,
 * and the node follows it again.
 */
static void
test_partitioned_node_returns_without_disrupting_the_leader(void **state)
{
	fixture    *f = *state = fx_new(5, 5, NULL);
	raft_id		leader = fx_elect(f, 1);
	raft_term	term = raft_get_term(fx_raft(f, 1));

	assert_int_equal(leader, 1);
	fx_isolate(f, 5);
	fx_run(f, 10 * ELECTION_TICKS);
	assert_int_equal(fx_leader(f), 1);
	assert_int_equal(raft_get_term(fx_raft(f, 5)), term);
	assert_int_not_equal(raft_get_role(fx_raft(f, 5)), RAFT_FOLLOWER);

	fx_heal_all(f);
	for (int i = 0; i < 10 * ELECTION_TICKS; i++)
	{
		fx_run(f, 1);
		assert_int_equal(raft_get_role(fx_raft(f, 1)), RAFT_LEADER);
		for (raft_id id = 1; id <= 5; id++)
			assert_int_equal(raft_get_term(fx_raft(f, id)), term);
	}
	assert_int_equal(raft_get_role(fx_raft(f, 5)), RAFT_FOLLOWER);
	assert_int_equal(raft_leader(fx_raft(f, 5)), 1);

	assert_int_equal(fx_propose(f, 1, "after"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(fx_applied_normal(f, 5), 1);
	assert_string_equal(fx_applied_str(f, 5, f->nodes[5].n_applied - 1), "after");
}

/*
 * Check-quorum (dissertation §6.2): a leader that has not heard from a
 * quorum within an election timeout steps down; the majority elects another.
 */
static void
test_leader_cut_off_from_quorum_steps_down(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_id		leader = fx_elect(f, 1);
	raft_term	term = raft_get_term(fx_raft(f, 1));
	int			ticks = 0;

	assert_int_equal(leader, 1);
	fx_isolate(f, 1);
	while (raft_get_role(fx_raft(f, 1)) == RAFT_LEADER && ticks < 10 * ELECTION_TICKS)
	{
		fx_tick(f, 1, 1);
		fx_drop_all(f);
		ticks++;
	}
	/* the first check may still see the answers of before the cut */
	assert_in_range(ticks, ELECTION_TICKS, 2 * ELECTION_TICKS);
	assert_int_equal(raft_get_role(fx_raft(f, 1)), RAFT_FOLLOWER);
	assert_int_equal(raft_get_term(fx_raft(f, 1)), term);

	fx_run(f, 4 * ELECTION_TICKS);
	leader = fx_leader(f);
	assert_true(leader == 2 || leader == 3);
	assert_true(raft_get_term(fx_raft(f, leader)) > term);
}

/* A leader that hears from a quorum (not from all) keeps leading. */
static void
test_leader_hearing_from_a_quorum_keeps_leading(void **state)
{
	fixture    *f = *state = fx_new(5, 5, NULL);
	raft_id		leader = fx_elect(f, 1);
	raft_term	term = raft_get_term(fx_raft(f, 1));

	assert_int_equal(leader, 1);
	fx_crash(f, 4);
	fx_crash(f, 5);
	for (int i = 0; i < 10 * ELECTION_TICKS; i++)
	{
		fx_run(f, 1);
		assert_int_equal(raft_get_role(fx_raft(f, 1)), RAFT_LEADER);
	}
	assert_int_equal(raft_get_term(fx_raft(f, 1)), term);
}

/*
 * Without pre-vote, a node cut off for a while comes back at a higher term
 * that the others, within their lease, ignore.  The leader's heartbeats
 * then get an answer at that term, which makes it step down, so that the
 * cluster moves to a term where the node is a follower again.
 */
static void
test_node_stuck_at_higher_term_is_brought_back(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_no_prevote);
	raft	   *r3 = fx_raft(f, 3);
	raft_term	term;
	raft_id		leader;

	assert_int_equal(fx_elect(f, 1), 1);
	term = raft_get_term(r3);
	fx_isolate(f, 3);
	fx_run(f, 6 * ELECTION_TICKS);
	assert_true(raft_get_term(r3) > term + 1);
	assert_int_equal(raft_get_role(r3), RAFT_CANDIDATE);

	fx_heal_all(f);
	for (int i = 0; i < 20 * ELECTION_TICKS; i++)
	{
		fx_run(f, 1);
		leader = fx_leader(f);
		if (leader != RAFT_NONE && raft_get_role(r3) == RAFT_FOLLOWER)
			break;
	}
	leader = fx_leader(f);
	assert_int_not_equal(leader, RAFT_NONE);
	assert_int_equal(raft_leader(r3), leader);
	assert_int_equal(raft_get_term(r3), raft_get_term(fx_raft(f, leader)));
	assert_int_equal(fx_propose(f, leader, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(fx_applied_normal(f, 3), 1);
}

/*
 * A vote request of a stale term is refused with the voter's term (Raft
 * paper, Figure 2), so the candidate moves to that term at once.  Otherwise
 * a candidate that needs the vote of a node whose term is higher, and which
 * does not know the candidate (its configuration is stale), would never
 * learn that term: it climbs one term per timeout and may never get there.
 */
static void
test_stale_vote_request_is_refused_with_the_current_term(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_no_prevote);
	raft	   *r1 = fx_raft(f, 1);

	fx_set_disk(f, 2, 7, RAFT_NONE, 0, NULL, 0);
	fx_cut(f, 1, 3);
	assert_false(fx_campaign(f, 1));
	assert_int_equal(raft_get_term(r1), 7);
	assert_int_equal(raft_get_role(r1), RAFT_FOLLOWER);
	assert_int_equal(raft_get_term(fx_raft(f, 2)), 7);

	assert_true(fx_campaign(f, 1));
	assert_int_equal(raft_get_term(r1), 8);
}

/*
 * The leader lease: a follower that heard from its leader within the
 * election timeout ignores vote and pre-vote requests of a higher term,
 * unless the request is forced by a leader transfer.
 */
static void
test_follower_in_lease_ignores_higher_term_votes(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_id		leader = fx_elect(f, 1);
	raft	   *r2 = fx_raft(f, 2);
	raft_term	term = raft_get_term(r2);
	raft_index	last = raft_last_index(r2);
	raft_term	last_term;
	raft_message m;

	assert_int_equal(leader, 1);
	fx_run(f, 1);
	assert_int_equal(raft_term_at(r2, last, &last_term), RAFT_OK);

	m = vote_msg(RAFT_MSG_PREVOTE, 3, 2, term + 1, last, last_term);
	assert_int_equal(fx_step(f, 2, &m), RAFT_OK);
	assert_null(queued_msg(f, RAFT_MSG_PREVOTE_RESP, 2, 3));

	m = vote_msg(RAFT_MSG_VOTE, 3, 2, term + 1, last, last_term);
	assert_int_equal(fx_step(f, 2, &m), RAFT_OK);
	assert_null(queued_msg(f, RAFT_MSG_VOTE_RESP, 2, 3));
	assert_int_equal(raft_get_term(r2), term);
	assert_int_equal(raft_get_hard_state(r2).vote, f->nodes[2].hs.vote);
	assert_int_equal(raft_leader(r2), 1);

	/* a transfer's forced vote goes through the lease */
	m = vote_msg(RAFT_MSG_VOTE, 3, 2, term + 1, last, last_term);
	m.context = 1;
	assert_int_equal(fx_step(f, 2, &m), RAFT_OK);
	assert_non_null(queued_msg(f, RAFT_MSG_VOTE_RESP, 2, 3));
	assert_false(queued_msg(f, RAFT_MSG_VOTE_RESP, 2, 3)->reject);
	assert_int_equal(raft_get_term(r2), term + 1);
	assert_int_equal(f->nodes[2].hs.vote, 3);
}

/*
 * Raft §5.4.1: a voter refuses a candidate whose log is less up to date than
 * its own, so a node that missed committed entries cannot become leader.
 */
static void
test_candidate_with_stale_log_loses(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_plain_raft);
	raft_term	term;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_cut(f, 1, 3);
	assert_int_equal(fx_propose(f, 1, "committed"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(fx_applied_normal(f, 2), 1);
	assert_int_equal(fx_applied_normal(f, 3), 0);
	fx_crash(f, 1);
	fx_heal_all(f);

	assert_false(fx_campaign(f, 3));
	term = raft_get_term(fx_raft(f, 3));
	assert_int_equal(raft_get_term(fx_raft(f, 2)), term);
	assert_int_not_equal(f->nodes[2].hs.vote, 3);

	/* whatever the timing, only node 2 can win */
	for (int i = 0; i < 10 * ELECTION_TICKS && fx_leader(f) == RAFT_NONE; i++)
	{
		fx_run(f, 1);
		assert_int_not_equal(raft_get_role(fx_raft(f, 3)), RAFT_LEADER);
	}
	assert_int_equal(fx_leader(f), 2);
}

/* With pre-vote, the stale candidate does not even get to a real election. */
static void
test_prevote_refused_to_a_stale_log(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_term	term;
	uint64_t	votes;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_cut(f, 1, 3);
	assert_int_equal(fx_propose(f, 1, "committed"), RAFT_OK);
	fx_deliver_all(f, 0);
	fx_crash(f, 1);
	fx_heal_all(f);
	term = raft_get_term(fx_raft(f, 3));
	votes = f->sent_by_type[RAFT_MSG_VOTE];

	/* a restarted node 2 knows no leader, so it answers pre-votes */
	fx_crash(f, 2);
	fx_restart(f, 2);
	assert_false(fx_campaign(f, 3));
	assert_int_equal(raft_get_role(fx_raft(f, 3)), RAFT_PRECANDIDATE);
	assert_int_equal(raft_get_term(fx_raft(f, 3)), term);
	assert_int_equal(raft_get_term(fx_raft(f, 2)), term);
	assert_int_equal(f->sent_by_type[RAFT_MSG_VOTE], votes);
}

static bool vote_resp_in_messages;
static bool vote_resp_with_vote_persisted;

static void
watch_vote_resp(fixture *f, raft_id id, const raft_ready *rd, void *ctx)
{
	(void) f;
	(void) ctx;
	for (size_t i = 0; i < rd->n_messages; i++)
		if (rd->messages[i].type == RAFT_MSG_VOTE_RESP)
			vote_resp_in_messages = true;
	for (size_t i = 0; i < rd->n_persist_messages; i++)
	{
		const raft_message *m = &rd->persist_messages[i];

		if (m->type == RAFT_MSG_VOTE_RESP && !m->reject && id == 2)
			vote_resp_with_vote_persisted = rd->has_hard_state &&
				rd->hard_state.vote == m->to && rd->hard_state.term == m->term;
	}
}

/*
 * A vote is made durable before it is answered: the grant travels in the
 * ready's persist_messages, in the same batch as a hard state holding it.
 */
static void
test_vote_is_persisted_before_the_grant_is_sent(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_no_prevote);

	vote_resp_in_messages = false;
	vote_resp_with_vote_persisted = false;
	f->on_ready = watch_vote_resp;
	assert_int_equal(fx_elect(f, 1), 1);
	assert_false(vote_resp_in_messages);
	assert_true(vote_resp_with_vote_persisted);
	assert_int_equal(f->nodes[2].hs.vote, 1);
	assert_int_equal(f->nodes[2].hs.term, raft_get_term(fx_raft(f, 1)));
}

static void
run_scripted(fixture *f)
{
	for (int t = 0; t < 5 * ELECTION_TICKS && fx_leader(f) == RAFT_NONE; t++)
		fx_run(f, 1);
	if (fx_leader(f) != RAFT_NONE)
	{
		assert_int_equal(fx_propose(f, fx_leader(f), "a"), RAFT_OK);
		assert_int_equal(fx_propose(f, fx_leader(f), "b"), RAFT_OK);
	}
	fx_isolate(f, fx_leader(f));
	fx_run(f, 6 * ELECTION_TICKS);
	fx_heal_all(f);
	fx_run(f, 3 * ELECTION_TICKS);
}

/* Same seeds, same script: same leaders, terms and message counts. */
static void
test_same_seeds_give_the_same_run(void **state)
{
	fixture    *a = *state = fx_new(5, 5, NULL);
	fixture    *b = fx_new(5, 5, NULL);

	run_scripted(a);
	run_scripted(b);
	assert_int_not_equal(fx_leader(a), RAFT_NONE);
	assert_int_equal(fx_leader(a), fx_leader(b));
	assert_int_equal(raft_get_term(fx_raft(a, 1)), raft_get_term(fx_raft(b, 1)));
	assert_int_equal(a->delivered, b->delivered);
	assert_memory_equal(a->sent_by_type, b->sent_by_type, sizeof(a->sent_by_type));
	for (raft_id id = 1; id <= 5; id++)
	{
		assert_int_equal(raft_get_term(fx_raft(a, id)), raft_get_term(fx_raft(b, id)));
		assert_int_equal(raft_last_index(fx_raft(a, id)), raft_last_index(fx_raft(b, id)));
	}
	fx_free(b);
}

/*
 * A voter holding its campaigns (its state machine waits for a snapshot)
 * keeps the others' majority: with one of three nodes down it still
 * acknowledges, so the leader commits; it votes, so another node wins when
 * the leader goes; but it never campaigns, not even when a leader hands
 * over to it or when it alone may lead, and a pre-candidate that starts
 * holding goes back to following in its term.  Released, it leads again.
 */
static void
test_held_voter_votes_and_acknowledges_but_never_leads(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r3;
	raft_term	term;

	assert_int_equal(fx_elect(f, 1), 1);
	r3 = fx_raft(f, 3);

	/* isolated, node3 becomes a pre-candidate; held, it follows again */
	fx_isolate(f, 3);
	for (int i = 0; i < 3 * ELECTION_TICKS && raft_get_role(r3) != RAFT_PRECANDIDATE; i++)
		fx_tick(f, 3, 1);
	assert_int_equal(raft_get_role(r3), RAFT_PRECANDIDATE);
	term = raft_get_term(r3);
	raft_hold_campaign(r3, true);
	assert_true(raft_campaign_held(r3));
	assert_int_equal(raft_get_role(r3), RAFT_FOLLOWER);
	assert_int_equal(raft_get_term(r3), term);
	fx_drop_all(f);
	fx_heal_all(f);

	/* node2 down: node1 commits with node3's acknowledgement */
	fx_crash(f, 2);
	assert_int_equal(fx_propose(f, 1, "a"), RAFT_OK);
	fx_run(f, 2 * ELECTION_TICKS);
	assert_int_equal(fx_applied_normal(f, 1), 1);
	assert_int_equal(fx_leader(f), 1);

	/* a transfer to node3 is ignored by it; node1 leads again */
	assert_int_equal(raft_transfer_leader(fx_raft(f, 1), 3), RAFT_OK);
	fx_run(f, 4 * ELECTION_TICKS);
	assert_int_not_equal(raft_get_role(r3), RAFT_LEADER);
	assert_int_equal(fx_leader(f), 1);

	/* node2 comes back and catches up; node1 goes: node2 wins with node3's vote */
	fx_restart(f, 2);
	fx_run(f, 2 * ELECTION_TICKS);
	assert_int_equal(fx_applied_normal(f, 2), 1);
	fx_crash(f, 1);
	for (int i = 0; i < 10 * ELECTION_TICKS; i++)
	{
		fx_run(f, 1);
		assert_int_not_equal(raft_get_role(r3), RAFT_LEADER);
		assert_int_not_equal(raft_get_role(r3), RAFT_CANDIDATE);
		assert_int_not_equal(raft_get_role(r3), RAFT_PRECANDIDATE);
	}
	assert_int_equal(fx_leader(f), 2);
	assert_int_equal(fx_propose(f, 2, "b"), RAFT_OK);
	fx_run(f, 2 * ELECTION_TICKS);
	assert_int_equal(fx_applied_normal(f, 2), 2);

	/*
	 * node2 goes and node1 comes back without "b": only node3 may lead
	 * (§5.4.1), and it does once released
	 */
	fx_restart(f, 1);
	fx_crash(f, 2);
	fx_run(f, 10 * ELECTION_TICKS);
	assert_int_equal(fx_leader(f), RAFT_NONE);
	raft_hold_campaign(r3, false);
	fx_run(f, 10 * ELECTION_TICKS);
	assert_int_equal(fx_leader(f), 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_election_timeouts_differ_between_nodes, fx_teardown),
		cmocka_unit_test_teardown(test_first_to_time_out_wins_and_terms_have_one_leader, fx_teardown),
		cmocka_unit_test_teardown(test_precandidate_keeps_its_term, fx_teardown),
		cmocka_unit_test_teardown(test_partitioned_node_returns_without_disrupting_the_leader, fx_teardown),
		cmocka_unit_test_teardown(test_leader_cut_off_from_quorum_steps_down, fx_teardown),
		cmocka_unit_test_teardown(test_leader_hearing_from_a_quorum_keeps_leading, fx_teardown),
		cmocka_unit_test_teardown(test_node_stuck_at_higher_term_is_brought_back, fx_teardown),
		cmocka_unit_test_teardown(test_stale_vote_request_is_refused_with_the_current_term, fx_teardown),
		cmocka_unit_test_teardown(test_follower_in_lease_ignores_higher_term_votes, fx_teardown),
		cmocka_unit_test_teardown(test_candidate_with_stale_log_loses, fx_teardown),
		cmocka_unit_test_teardown(test_prevote_refused_to_a_stale_log, fx_teardown),
		cmocka_unit_test_teardown(test_vote_is_persisted_before_the_grant_is_sent, fx_teardown),
		cmocka_unit_test_teardown(test_same_seeds_give_the_same_run, fx_teardown),
		cmocka_unit_test_teardown(test_held_voter_votes_and_acknowledges_but_never_leads, fx_teardown),
	};

	return cmocka_run_group_tests_name("election", tests, NULL, NULL);
}
