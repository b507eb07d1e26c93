/*-------------------------------------------------------------------------
 *
 * test_host_rules.c
 *	  Tests of the host's rules (src/host), which the runtime and the
 *	  simulator both run, on real groups of the core: the reconciler's
 *	  step and what holds a leaving member, who may leave the roster, when
 *	  a merge may go in or is finished, when a resting group wakes, and the
 *	  balancer's choice.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/test_host_rules.c
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
#include "host/host.h"

#define MAX_LAG 16

static void
quiescing(raft_options *o)
{
	o->quiesce = true;
}

/* A roster of `n' nodes 1..n with the roles given. */
static host_roster
roster(int n, const uint32_t *roles)
{
	host_roster ro;

	memset(&ro, 0, sizeof(ro));
	for (int i = 0; i < n; i++)
	{
		ro.ids[ro.n] = (raft_id) (i + 1);
		ro.roles[ro.n++] = roles[i];
	}
	return ro;
}

static host_members
members(bool committed, int n, const raft_id *ids)
{
	host_members m;

	memset(&m, 0, sizeof(m));
	m.committed = committed;
	for (int i = 0; i < n; i++)
		m.ids[m.n++] = ids[i];
	return m;
}

/* host_holds_fn: holds the member in *arg */
static bool
holds_one(void *arg, raft_id id)
{
	return id == *(raft_id *) arg;
}

/* ------------------------------------------------------------------------
 * The reconciler
 * ------------------------------------------------------------------------
 */

/* In line with the roster: no step; a roster not loaded is never in line. */
static void
test_in_line_takes_no_step(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	const uint32_t roles[] = {HOST_VOTER, HOST_VOTER, HOST_VOTER};
	host_roster ro = roster(3, roles);
	host_roster none;
	host_step	st;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_true(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_NONE);
	memset(&none, 0, sizeof(none));
	assert_false(host_reconcile_step(fx_raft(f, 1), &none, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_NONE);
}

/* A leaving member is removed, unless held; a held one holds nothing else. */
static void
test_leaving_member_removed_unless_held(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	const uint32_t roles[] = {HOST_VOTER, HOST_REMOVING, HOST_VOTER, HOST_LEARNER};
	host_roster ro = roster(3, roles);
	raft_id		held = 2;
	host_step	st;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_REMOVE);
	assert_int_equal(st.id, 2);

	/* held: not removed, not in line, and node 4 of the roster is added */
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, holds_one, &held, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_NONE);
	ro = roster(4, roles);
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, holds_one, &held, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_ADD_LEARNER);
	assert_int_equal(st.id, 4);
}

/*
 * A leaving voter is not removed while the voters left would hold no
 * majority that answers (the configuration counts from its append, and
 * would never commit): node 3 down, node 2 leaving stays; node 3 leaving
 * too goes first.
 */
static void
test_removal_keeps_an_answering_majority(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	const uint32_t one_leaving[] = {HOST_VOTER, HOST_REMOVING, HOST_VOTER};
	const uint32_t two_leaving[] = {HOST_VOTER, HOST_REMOVING, HOST_REMOVING};
	host_roster ro = roster(3, one_leaving);
	host_heard	heard = {2, {1, 2}};
	host_step	st;

	assert_int_equal(fx_elect(f, 1), 1);
	/* every node heard: node 2 goes */
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_REMOVE);
	assert_int_equal(st.id, 2);

	/* node 3 no longer heard: node 2 stays */
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, &heard, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_NONE);

	ro = roster(3, two_leaving);
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, &heard, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_REMOVE);
	assert_int_equal(st.id, 3);
}

/* A leaving leader hands over to a voter the roster keeps, never to
 * another leaving one. */
static void
test_leaving_leader_hands_over_to_a_kept_voter(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	const uint32_t roles[] = {HOST_REMOVING, HOST_REMOVING, HOST_VOTER};
	host_roster ro = roster(3, roles);
	host_step	st;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_TRANSFER);
	assert_int_equal(st.id, 3);
}

/*
 * A leaving leader hands over to a kept voter that answers: not to the
 * first of them while it is cut off (the transfer would time out, and the
 * next step name it again), unless none answers.
 */
static void
test_leaving_leader_hands_over_to_a_voter_that_answers(void **state)
{
	fixture    *f = *state = fx_new(5, 5, NULL);
	const uint32_t roles[] = {HOST_REMOVING, HOST_VOTER, HOST_VOTER, HOST_VOTER, HOST_VOTER};
	host_roster ro = roster(5, roles);
	host_step	st;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_isolate(f, 2);
	assert_int_equal(fx_propose(f, 1, "a"), RAFT_OK);
	/* past a check-quorum round: node 2 has not answered in it */
	fx_run(f, 3 * 10);
	assert_int_equal(fx_leader(f), 1);
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_TRANSFER);
	assert_int_not_equal(st.id, 2);

	/* nobody answers: the first kept voter, as before */
	fx_isolate(f, 1);
	fx_run(f, 3 * 10);
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_TRANSFER);
	assert_int_equal(st.id, 2);
}

/*
 * A hand-over that did not take (the voter answers and acknowledges, but
 * does not campaign: it waits for an image) goes to another voter next,
 * and back to the one tried only when no other is left.
 */
static void
test_leaving_leader_hands_over_past_a_voter_that_did_not_take(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	const uint32_t roles[] = {HOST_REMOVING, HOST_VOTER, HOST_VOTER};
	const uint32_t one_left[] = {HOST_REMOVING, HOST_VOTER, HOST_REMOVING};
	host_roster ro = roster(3, roles);
	host_step	st;
	raft_id		first;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(fx_propose(f, 1, "a"), RAFT_OK);
	fx_run(f, 10);
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_TRANSFER);
	first = st.id;
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, first, &st));
	assert_int_equal(st.action, HOST_STEP_TRANSFER);
	assert_int_not_equal(st.id, first);
	assert_true(st.id == 2 || st.id == 3);

	/* the only voter kept is the one tried: it again */
	ro = roster(3, one_left);
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, 2, &st));
	assert_int_equal(st.action, HOST_STEP_TRANSFER);
	assert_int_equal(st.id, 2);
}

/*
 * A leaving leader that is the only voter goes on to promote a learner to
 * hand over to; a learner is promoted only once it has answered.
 */
static void
test_lone_leaving_leader_promotes_an_answered_learner(void **state)
{
	fixture    *f = *state = fx_new(3, 1, NULL);
	const uint32_t roles[] = {HOST_REMOVING, HOST_VOTER, HOST_LEARNER};
	host_roster ro = roster(3, roles);
	host_step	st;

	fx_isolate(f, 2);
	assert_int_equal(fx_elect(f, 1), 1);
	/* node 2 never answered: a match of 0 is not caught up, however short the log */
	assert_false(host_caught_up(fx_raft(f, 1), 2, MAX_LAG));
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_NONE);

	fx_heal_all(f);
	fx_run(f, 5);
	assert_true(host_caught_up(fx_raft(f, 1), 2, MAX_LAG));
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_equal(st.action, HOST_STEP_PROMOTE);
	assert_int_equal(st.id, 2);
}

/* A step is due on taking the lead, on a roster change, in a new term, and
 * at the interval while not in line. */
static void
test_reconcile_due(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	host_reconcile_state st;
	raft	   *r;
	raft_term	term;

	memset(&st, 0, sizeof(st));
	assert_int_equal(fx_elect(f, 1), 1);
	r = fx_raft(f, 1);
	term = raft_get_term(r);
	assert_false(host_reconcile_due(&st, fx_raft(f, 2), term, 7, 0, 1000));
	assert_true(host_reconcile_due(&st, r, term, 7, 0, 1000));
	host_reconciled(&st, true, term, 7, 0);
	assert_false(host_reconcile_due(&st, r, term, 7, 5000, 1000));
	assert_true(host_reconcile_due(&st, r, term, 8, 0, 1000));
	assert_true(host_reconcile_due(&st, r, term + 1, 7, 0, 1000));
	host_reconciled(&st, false, term, 7, 0);
	assert_false(host_reconcile_due(&st, r, term, 7, 999, 1000));
	assert_true(host_reconcile_due(&st, r, term, 7, 1000, 1000));
}

/* ------------------------------------------------------------------------
 * What holds a leaving member, and who may leave the roster
 * ------------------------------------------------------------------------
 */

static void
test_split_holds(void **state)
{
	const raft_id with[] = {1, 2, 3};
	const raft_id without[] = {1, 3};
	host_members child;

	(void) state;
	/* not applied here yet */
	assert_true(host_split_holds(10, 9, NULL, 2));
	/* applied, and no group came of it */
	assert_false(host_split_holds(10, 10, NULL, 2));
	child = members(true, 3, with);
	assert_true(host_split_holds(10, 12, &child, 2));
	child = members(false, 2, without);
	assert_true(host_split_holds(10, 12, &child, 2));
	child = members(true, 0, without);
	assert_true(host_split_holds(10, 12, &child, 2));
	child = members(true, 2, without);
	assert_false(host_split_holds(10, 12, &child, 2));
}

/* A voter of the merge target that answered stays until it holds the log
 * up to the freeze; a learner there, or one that never answered, goes. */
static void
test_freeze_holds(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r;
	raft_index	freeze;

	fx_isolate(f, 3);
	assert_int_equal(fx_elect(f, 1), 1);
	r = fx_raft(f, 1);
	assert_int_equal(fx_propose(f, 1, "freeze"), RAFT_OK);
	fx_run(f, 3);
	freeze = raft_last_index(r);
	/* node 3 never answered this leader */
	assert_false(host_freeze_holds(r, 3, freeze, true));
	/* node 2 holds the whole log */
	assert_false(host_freeze_holds(r, 2, freeze, true));
	assert_true(host_freeze_holds(r, 2, freeze + 1, true));
	assert_false(host_freeze_holds(r, 2, freeze + 1, false));
}

/* kmd_remove_node's question to a leader */
static void
test_lets_go(void **state)
{
	const raft_id with[] = {1, 2, 3};
	const raft_id without[] = {1, 3};
	host_members m;

	(void) state;
	m = members(true, 2, without);
	assert_true(host_lets_go(&m, 2));
	m = members(false, 2, without);
	assert_false(host_lets_go(&m, 2));
	m = members(true, 3, with);
	assert_false(host_lets_go(&m, 2));
	m = members(true, 0, with);
	assert_false(host_lets_go(&m, 2));
}

/* A leader's configuration is committed only once its change is. */
static void
test_members_of_a_leader(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	host_members m;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_isolate(f, 1);
	assert_int_equal(raft_propose_conf(fx_raft(f, 1), RAFT_CC_REMOVE, 2, NULL, NULL), RAFT_OK);
	fx_flush(f);
	host_members_of(fx_raft(f, 1), &m);
	assert_false(m.committed);
	assert_false(host_lets_go(&m, 2));
	fx_heal_all(f);
	fx_run(f, 5);
	host_members_of(fx_raft(f, 1), &m);
	assert_true(m.committed);
	assert_true(host_lets_go(&m, 2));
}

/* ------------------------------------------------------------------------
 * Merges
 * ------------------------------------------------------------------------
 */

static void
test_merge_ready(void **state)
{
	const uint32_t roles[] = {HOST_VOTER, HOST_VOTER, HOST_REMOVING};
	host_roster ro = roster(3, roles);
	const raft_id two[] = {1, 2};
	const raft_id three[] = {1, 2, 3};
	host_members l;
	host_members r;

	(void) state;
	l = members(true, 2, two);
	r = members(true, 3, three);
	assert_true(host_merge_ready(&l, &r, &ro));
	r.committed = false;
	assert_false(host_merge_ready(&l, &r, &ro));
	/* a member of the left partition outside the right one */
	r = members(true, 2, two);
	l = members(true, 3, three);
	assert_false(host_merge_ready(&l, &r, &ro));
	/* a leaving member of the left partition */
	r = members(true, 3, three);
	assert_false(host_merge_ready(&l, &r, &ro));
	l = members(true, 0, two);
	assert_false(host_merge_ready(&l, &r, &ro));
}

/* The left leader finishes a merge after the wait, not while its last
 * try is still on its way. */
static void
test_merge_due(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	host_merge_watch w;
	raft	   *r;

	memset(&w, 0, sizeof(w));
	assert_int_equal(fx_elect(f, 1), 1);
	r = fx_raft(f, 1);
	assert_false(host_merge_due(r, &w, 0, 0, 100, 0));
	assert_false(host_merge_due(r, &w, 5, 1000, 100, 0));	/* seen now */
	assert_false(host_merge_due(r, &w, 5, 1099, 100, 0));
	assert_true(host_merge_due(r, &w, 5, 1100, 100, 0));
	assert_int_equal(raft_propose(r, "merge", 5, &w.index, &w.term), RAFT_OK);
	/* the try is in the log, not applied: it may do */
	assert_false(host_merge_due(r, &w, 5, 1200, 100, w.index - 1));
	/* applied, and the neighbour still frozen: try again */
	assert_true(host_merge_due(r, &w, 5, 1300, 100, w.index));
	/* another neighbour starts the wait again */
	assert_false(host_merge_due(r, &w, 6, 5000, 100, w.index));
}

/* ------------------------------------------------------------------------
 * Waking resting groups
 * ------------------------------------------------------------------------
 */

/*
 * A leader that rested without a member wakes when it hears that member's
 * node, at most every `behind_every' ms; a follower wakes when its
 * leader's node falls silent.
 */
static void
test_wakes(void **state)
{
	fixture    *f = *state = fx_new(3, 3, quiescing);
	host_heard	all = {3, {1, 2, 3}};
	host_heard	two = {2, {1, 2}};
	host_heard	no_leader = {2, {2, 3}};
	uint64_t	woken = 0;
	raft	   *r;

	fx_isolate(f, 3);
	assert_int_equal(fx_elect(f, 1), 1);
	r = fx_raft(f, 1);
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_run(f, 60);				/* node 3 stops holding the rest up */
	assert_true(raft_quiesced(r));
	assert_true(host_member_behind(r, &all));
	assert_false(host_member_behind(r, &two));

	assert_false(host_leader_wakes(r, &two, false, 1000, &woken, 500, 0));
	assert_true(host_leader_wakes(r, &two, true, 1000, &woken, 500, 0));
	assert_true(host_leader_wakes(r, &all, false, 1000, &woken, 500, 0));
	assert_int_equal(woken, 1000);
	assert_false(host_leader_wakes(r, &all, false, 1499, &woken, 500, 0));
	assert_true(host_leader_wakes(r, &all, false, 1500, &woken, 500, 0));

	assert_true(raft_quiesced(fx_raft(f, 2)));
	assert_false(host_follower_wakes(fx_raft(f, 2), &all));
	assert_true(host_follower_wakes(fx_raft(f, 2), &no_leader));
	assert_false(host_follower_wakes(r, &no_leader));
}

/*
 * A learner whose log went back after it answered (its disk wiped or
 * restored) is caught up by no match it once had: the reconciler does not
 * promote it, nor does kmd_promote_node's check pass, until it has the
 * entries again.
 */
static void
test_lost_learner_not_promoted(void **state)
{
	fixture    *f = *state = fx_new(3, 2, NULL);
	const uint32_t roles[] = {HOST_VOTER, HOST_VOTER, HOST_VOTER};
	host_roster ro = roster(3, roles);
	raft_term	terms[8];
	raft_progress pr;
	host_step	st;

	for (int i = 0; i < 8; i++)
		terms[i] = 1;
	for (raft_id id = 1; id <= 3; id++)
		fx_set_disk(f, id, 1, RAFT_NONE, 1, terms, 8);
	assert_int_equal(fx_elect(f, 1), 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(fx_propose(f, 1, "a"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_true(host_caught_up(fx_raft(f, 1), 3, MAX_LAG));

	/* node 3 comes back from a copy made when it held eight entries */
	fx_set_disk(f, 3, 1, RAFT_NONE, 1, terms, 8);
	assert_int_equal(fx_propose(f, 1, "b"), RAFT_OK);
	fx_deliver_all(f, 0);
	fx_tick(f, 1, 1);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_get_progress(fx_raft(f, 1), 3, &pr), RAFT_OK);
	assert_true(pr.lost);
	assert_true(pr.match + MAX_LAG >= raft_last_index(fx_raft(f, 1)));
	assert_false(host_caught_up(fx_raft(f, 1), 3, MAX_LAG));
	assert_false(host_reconcile_step(fx_raft(f, 1), &ro, NULL, MAX_LAG, NULL, NULL, 0, RAFT_NONE, &st));
	assert_int_not_equal(st.action, HOST_STEP_PROMOTE);
}

/* ------------------------------------------------------------------------
 * The balancer
 * ------------------------------------------------------------------------
 */

static void
test_balance_to(void **state)
{
	host_load	l;

	(void) state;
	host_load_init(&l);
	host_load_voter(&l, 1);
	host_load_voter(&l, 2);
	host_load_voter(&l, 3);
	for (int i = 0; i < 5; i++)
		host_load_partition(&l, 1);
	host_load_partition(&l, 2);
	host_load_partition(&l, 9); /* led by a node not heard from */
	host_load_done(&l);
	assert_int_equal(l.partitions, 7);
	assert_int_equal(l.target, 3);
	assert_int_equal(host_balance_to(&l, 1), host_load_index(&l, 3));
	assert_int_equal(host_balance_to(&l, 2), -1);
	assert_int_equal(host_balance_to(&l, 9), -1);

	/* as even as it gets: nobody leads more than the target, nobody moves */
	host_load_init(&l);
	host_load_voter(&l, 1);
	host_load_voter(&l, 2);
	host_load_partition(&l, 1);
	host_load_partition(&l, 2);
	host_load_partition(&l, 1);
	host_load_done(&l);
	assert_int_equal(l.target, 2);
	assert_int_equal(host_least_loaded(&l), host_load_index(&l, 2));
	assert_int_equal(host_balance_to(&l, 1), -1);
}

static int
teardown(void **state)
{
	if (*state != NULL)
		fx_free(*state);
	return 0;
}

/*
 * A leader that cannot apply hands its group to the voter with the
 * longest log among those heard, never to itself, a learner or a node
 * not heard; none when no other voter is heard.
 */
static void
test_handoff_to(void **state)
{
	fixture    *f = *state = fx_new(4, 3, NULL);
	host_heard	all = {4, {1, 2, 3, 4}};
	host_heard	not_2 = {3, {1, 3, 4}};
	host_heard	alone = {2, {1, 4}};

	assert_int_equal(fx_elect(f, 1), 1);
	fx_isolate(f, 3);
	assert_int_equal(fx_propose(f, 1, "a"), RAFT_OK);
	fx_run(f, 5);
	/* node 2 has the entry, node 3 not, node 4 is a learner */
	assert_int_equal(host_handoff_to(fx_raft(f, 1), &all), 2);
	assert_int_equal(host_handoff_to(fx_raft(f, 1), NULL), 2);
	assert_int_equal(host_handoff_to(fx_raft(f, 1), &not_2), 3);
	assert_int_equal(host_handoff_to(fx_raft(f, 1), &alone), RAFT_NONE);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_in_line_takes_no_step, teardown),
		cmocka_unit_test_teardown(test_leaving_member_removed_unless_held, teardown),
		cmocka_unit_test_teardown(test_removal_keeps_an_answering_majority, teardown),
		cmocka_unit_test_teardown(test_leaving_leader_hands_over_to_a_kept_voter, teardown),
		cmocka_unit_test_teardown(test_leaving_leader_hands_over_to_a_voter_that_answers, teardown),
		cmocka_unit_test_teardown(test_leaving_leader_hands_over_past_a_voter_that_did_not_take, teardown),
		cmocka_unit_test_teardown(test_lone_leaving_leader_promotes_an_answered_learner, teardown),
		cmocka_unit_test_teardown(test_reconcile_due, teardown),
		cmocka_unit_test_teardown(test_split_holds, teardown),
		cmocka_unit_test_teardown(test_freeze_holds, teardown),
		cmocka_unit_test_teardown(test_lets_go, teardown),
		cmocka_unit_test_teardown(test_members_of_a_leader, teardown),
		cmocka_unit_test_teardown(test_merge_ready, teardown),
		cmocka_unit_test_teardown(test_merge_due, teardown),
		cmocka_unit_test_teardown(test_wakes, teardown),
		cmocka_unit_test_teardown(test_lost_learner_not_promoted, teardown),
		cmocka_unit_test_teardown(test_balance_to, teardown),
		cmocka_unit_test_teardown(test_handoff_to, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
