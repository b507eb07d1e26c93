/*-------------------------------------------------------------------------
 *
 * test_quiesce.c
 *	  Core tests of quiescence: an idle group stops its heartbeats and
 *	  timers, anything that happens wakes it, a follower woken by its host
 *	  after losing its leader elects a new one, and a learner the resting
 *	  leader left behind on the commit index wakes it.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/test_quiesce.c
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

static void
quiescing(raft_options *o)
{
	o->quiesce = true;
}

/* A 3-node group with node 1 leading and one committed command. */
static fixture *
idle_group(void)
{
	fixture    *f = fx_new(3, 3, quiescing);

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_run(f, 5);
	return f;
}

/* An idle group quiesces: no more heartbeats, and terms stay put. */
static void
test_idle_group_quiesces_and_stops_heartbeats(void **state)
{
	fixture    *f = idle_group();
	uint64_t	hb;

	(void) state;
	for (raft_id id = 1; id <= 3; id++)
		assert_true(raft_quiesced(fx_raft(f, id)));
	hb = f->sent_by_type[RAFT_MSG_HEARTBEAT];
	fx_run(f, 200);				/* twenty election timeouts */
	assert_int_equal(f->sent_by_type[RAFT_MSG_HEARTBEAT], hb);
	assert_int_equal(fx_leader(f), 1);
	for (raft_id id = 1; id <= 3; id++)
		assert_int_equal(raft_get_term(fx_raft(f, id)), raft_get_term(fx_raft(f, 1)));
	fx_free(f);
}

/* A group without quiescence keeps heartbeating. */
static void
test_without_the_option_heartbeats_go_on(void **state)
{
	fixture    *f = fx_new(3, 3, NULL);
	uint64_t	hb;

	(void) state;
	assert_int_equal(fx_elect(f, 1), 1);
	fx_run(f, 5);
	hb = f->sent_by_type[RAFT_MSG_HEARTBEAT];
	fx_run(f, 20);
	assert_true(f->sent_by_type[RAFT_MSG_HEARTBEAT] > hb);
	assert_false(raft_quiesced(fx_raft(f, 1)));
	fx_free(f);
}

/* A proposal wakes the group, commits, and the group rests again. */
static void
test_proposal_wakes_the_group(void **state)
{
	fixture    *f = idle_group();

	(void) state;
	assert_int_equal(fx_propose(f, 1, "y"), RAFT_OK);
	assert_false(raft_quiesced(fx_raft(f, 1)));
	fx_run(f, 5);
	for (raft_id id = 1; id <= 3; id++)
	{
		assert_int_equal(fx_applied_normal(f, id), 2);
		assert_true(raft_quiesced(fx_raft(f, id)));
	}
	fx_free(f);
}

/*
 * A quiesced follower does not notice its leader is gone; once its host
 * wakes it, an election happens and the new leader commits.
 */
static void
test_woken_followers_replace_a_dead_leader(void **state)
{
	fixture    *f = idle_group();

	(void) state;
	fx_crash(f, 1);
	fx_run(f, 100);
	assert_int_equal(raft_get_role(fx_raft(f, 2)), RAFT_FOLLOWER);
	assert_true(raft_quiesced(fx_raft(f, 2)));

	raft_unquiesce(fx_raft(f, 2));
	raft_unquiesce(fx_raft(f, 3));
	fx_run(f, 60);
	assert_true(fx_leader(f) == 2 || fx_leader(f) == 3);
	assert_int_equal(fx_propose(f, fx_leader(f), "z"), RAFT_OK);
	fx_run(f, 5);
	assert_int_equal(fx_applied_normal(f, 2), 2);
	assert_int_equal(fx_applied_normal(f, 3), 2);
	fx_free(f);
}

/*
 * A member cut off for three election timeouts does not keep the leader
 * awake.  Back again, it is not caught up until its host wakes the leader;
 * then it is, and the group rests again.
 */
static void
test_leader_rests_without_a_silent_member(void **state)
{
	fixture    *f = idle_group();
	uint64_t	hb;

	(void) state;
	fx_isolate(f, 3);
	assert_int_equal(fx_propose(f, 1, "y"), RAFT_OK);
	fx_run(f, 40);
	assert_int_equal(fx_applied_normal(f, 2), 2);
	assert_true(raft_quiesced(fx_raft(f, 1)));
	hb = f->sent_by_type[RAFT_MSG_HEARTBEAT];
	fx_run(f, 100);
	assert_int_equal(f->sent_by_type[RAFT_MSG_HEARTBEAT], hb);

	fx_heal_all(f);
	fx_run(f, 100);
	assert_int_equal(fx_applied_normal(f, 3), 1);	/* resting, behind */

	raft_unquiesce(fx_raft(f, 1));	/* its host heard from node 3 again */
	fx_run(f, 10);
	for (raft_id id = 1; id <= 3; id++)
	{
		assert_int_equal(fx_applied_normal(f, id), 2);
		assert_true(raft_quiesced(fx_raft(f, id)));
	}
	assert_int_equal(fx_leader(f), 1);
	fx_free(f);
}

/* What would bring node 4 a commit index and nothing else. */
static bool
commit_to_learner(const raft_message *m, void *ctx)
{
	(void) ctx;
	return m->to == 4 && (m->type == RAFT_MSG_HEARTBEAT ||
						  (m->type == RAFT_MSG_APPEND && m->n_entries == 0));
}

/*
 * Three voters and learner 4, all resting; then a command whose commit
 * index no heartbeat brings to the learner before the leader rests again:
 * it holds the entry but does not know it is committed.
 */
static fixture *
learner_left_behind(void)
{
	fixture    *f = fx_new(4, 3, quiescing);

	assert_int_equal(fx_elect(f, 1), 1);
	fx_run(f, 5);
	f->drop = commit_to_learner;
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_run(f, 5);
	assert_true(raft_quiesced(fx_raft(f, 1)));
	assert_int_equal(raft_last_index(fx_raft(f, 4)), raft_last_index(fx_raft(f, 1)));
	assert_true(raft_commit_index(fx_raft(f, 4)) < raft_last_index(fx_raft(f, 4)));
	f->drop = NULL;
	return f;
}

/*
 * A learner never campaigns, so nothing in the group would tell it: it
 * wakes the leader itself, learns the commit index, and the group rests.
 */
static void
test_learner_behind_on_commit_wakes_the_leader(void **state)
{
	fixture    *f = learner_left_behind();

	(void) state;
	fx_run(f, 30);				/* three election timeouts */
	assert_int_equal(fx_applied_normal(f, 4), 1);
	for (raft_id id = 1; id <= 4; id++)
		assert_true(raft_quiesced(fx_raft(f, id)));
	fx_free(f);
}

/* The same after a restart, when the learner knows no leader to wake. */
static void
test_restarted_learner_behind_on_commit_wakes_the_leader(void **state)
{
	fixture    *f = learner_left_behind();

	(void) state;
	fx_crash(f, 4);
	fx_restart(f, 4);
	assert_int_equal(raft_leader(fx_raft(f, 4)), RAFT_NONE);
	fx_run(f, 30);
	assert_int_equal(fx_applied_normal(f, 4), 1);
	assert_int_equal(fx_leader(f), 1);
	fx_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_idle_group_quiesces_and_stops_heartbeats),
		cmocka_unit_test(test_without_the_option_heartbeats_go_on),
		cmocka_unit_test(test_proposal_wakes_the_group),
		cmocka_unit_test(test_woken_followers_replace_a_dead_leader),
		cmocka_unit_test(test_leader_rests_without_a_silent_member),
		cmocka_unit_test(test_learner_behind_on_commit_wakes_the_leader),
		cmocka_unit_test(test_restarted_learner_behind_on_commit_wakes_the_leader),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
