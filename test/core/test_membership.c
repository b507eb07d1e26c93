/*-------------------------------------------------------------------------
 *
 * test_membership.c
 *	  Core tests of learners and of single-server membership changes:
 *	  learners never vote, campaign or count; each change takes effect when
 *	  appended, one at a time, and reverts when truncated; a removed leader
 *	  steps down; a node that joins empty learns its configuration.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/test_membership.c
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

static uint32_t
role_on(fixture *f, raft_id on, raft_id id)
{
	return raft_conf_role(raft_get_conf(fx_raft(f, on)), id);
}

/* Tick and deliver until a leader of a term above `term' appears. */
static raft_id
run_until_new_leader(fixture *f, raft_term term)
{
	for (int i = 0; i < 20 * ELECTION_TICKS; i++)
	{
		raft_id		l = fx_leader(f);

		if (l != RAFT_NONE && raft_get_term(fx_raft(f, l)) > term)
			return l;
		fx_run(f, 1);
	}
	return RAFT_NONE;
}

static raft_message
vote_resp(uint32_t type, raft_id from, raft_id to, raft_term term)
{
	raft_message m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.from = from;
	m.to = to;
	m.term = term;
	return m;
}

/* ------------------------------------------------------------------------
 * Learners
 * ------------------------------------------------------------------------
 */

/* A learner receives the log and applies it like any follower. */
static void
test_learner_receives_and_applies_the_log(void **state)
{
	fixture    *f = *state = fx_new(3, 2, NULL);
	raft_progress pr;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(fx_applied_normal(f, 3), 1);
	assert_string_equal(fx_applied_str(f, 3, f->nodes[3].n_applied - 1), "x");
	assert_int_equal(raft_get_progress(fx_raft(f, 1), 3, &pr), RAFT_OK);
	assert_int_equal(pr.match, raft_last_index(fx_raft(f, 1)));
}

/* A learner never campaigns, however long it goes without a leader. */
static void
test_learner_never_campaigns(void **state)
{
	fixture    *f = *state = fx_new(3, 2, NULL);
	raft	   *r3 = fx_raft(f, 3);
	raft_term	term;
	uint64_t	sent;
	raft_message m;

	assert_int_equal(fx_elect(f, 1), 1);
	term = raft_get_term(r3);
	fx_crash(f, 1);
	sent = f->sent_by_type[RAFT_MSG_PREVOTE] + f->sent_by_type[RAFT_MSG_VOTE];
	for (int i = 0; i < 20 * 2 * ELECTION_TICKS; i++)
	{
		fx_tick(f, 3, 1);
		assert_int_equal(raft_get_role(r3), RAFT_FOLLOWER);
	}
	assert_int_equal(raft_get_term(r3), term);

	/* not even when told to by a leader transfer */
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_TIMEOUT_NOW;
	m.from = 1;
	m.to = 3;
	m.term = term;
	assert_int_equal(fx_step(f, 3, &m), RAFT_OK);
	assert_int_equal(raft_get_role(r3), RAFT_FOLLOWER);
	assert_int_equal(raft_get_term(r3), term);
	assert_int_equal(f->sent_by_type[RAFT_MSG_PREVOTE] + f->sent_by_type[RAFT_MSG_VOTE], sent);
}

/*
 * Two voters and a learner, one voter down: the learner's grants do not
 * make a quorum, for a pre-vote or for a vote.
 */
static void
test_learner_prevote_grant_does_not_count(void **state)
{
	fixture    *f = *state = fx_new(3, 2, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_message m;

	fx_crash(f, 2);
	assert_false(fx_campaign(f, 1));
	assert_int_equal(raft_get_role(r1), RAFT_PRECANDIDATE);
	m = vote_resp(RAFT_MSG_PREVOTE_RESP, 3, 1, raft_get_term(r1) + 1);
	assert_int_equal(fx_step(f, 1, &m), RAFT_OK);
	assert_int_equal(raft_get_role(r1), RAFT_PRECANDIDATE);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_get_role(r1), RAFT_PRECANDIDATE);
}

static void
test_learner_vote_grant_does_not_count(void **state)
{
	fixture    *f = *state = fx_new(3, 2, opts_no_prevote);
	raft	   *r1 = fx_raft(f, 1);
	raft_message m;

	fx_crash(f, 2);
	assert_false(fx_campaign(f, 1));
	assert_int_equal(raft_get_role(r1), RAFT_CANDIDATE);
	m = vote_resp(RAFT_MSG_VOTE_RESP, 3, 1, raft_get_term(r1));
	assert_int_equal(fx_step(f, 1, &m), RAFT_OK);
	assert_int_equal(raft_get_role(r1), RAFT_CANDIDATE);
}

/* Two voters and a learner, one voter down: the learner's copy commits nothing. */
static void
test_learner_never_counts_toward_commit(void **state)
{
	fixture    *f = *state = fx_new(3, 2, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_index	commit;
	raft_progress pr;

	assert_int_equal(fx_elect(f, 1), 1);
	commit = raft_commit_index(r1);
	fx_crash(f, 2);
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_get_progress(r1, 3, &pr), RAFT_OK);
	assert_int_equal(pr.match, raft_last_index(r1));
	assert_int_equal(raft_commit_index(r1), commit);
	assert_int_equal(fx_applied_normal(f, 3), 0);

	fx_restart(f, 2);
	fx_run(f, 1);
	assert_int_equal(raft_commit_index(r1), raft_last_index(r1));
	assert_int_equal(fx_applied_normal(f, 3), 1);
}

/* ------------------------------------------------------------------------
 * Configuration changes
 * ------------------------------------------------------------------------
 */

/*
 * A change takes effect on each node as soon as it is appended there: on the
 * leader when proposed, on a follower when the append arrives, both before
 * it commits.
 */
static void
test_conf_change_takes_effect_when_appended(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft_index	index;
	raft_term	term;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(raft_propose_conf(fx_raft(f, 1), RAFT_CC_ADD_LEARNER, 4,
									   &index, &term), RAFT_OK);
	assert_int_equal(role_on(f, 1, 4), RAFT_LEARNER);
	assert_int_equal(role_on(f, 2, 4), 0);
	fx_flush(f);
	fx_deliver_once(f);			/* the appends, not yet the answers */
	assert_int_equal(raft_last_index(fx_raft(f, 2)), index);
	assert_true(raft_commit_index(fx_raft(f, 2)) < index);
	assert_true(raft_commit_index(fx_raft(f, 1)) < index);
	assert_int_equal(role_on(f, 2, 4), RAFT_LEARNER);
	assert_int_equal(role_on(f, 3, 4), RAFT_LEARNER);
	assert_int_equal(raft_conf_voters(raft_get_conf(fx_raft(f, 2))), 3);

	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(fx_raft(f, 1)), index);
}

/* A promoted learner is a voter: the quorum grows from 2 of 3 to 3 of 4. */
static void
test_promoted_learner_counts_toward_the_quorum(void **state)
{
	fixture    *f = *state = fx_new(4, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_index	commit;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(role_on(f, 4, 4), RAFT_LEARNER);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_VOTER, 4, NULL, NULL), RAFT_OK);
	fx_deliver_all(f, 0);
	for (raft_id id = 1; id <= 4; id++)
	{
		assert_int_equal(role_on(f, id, 4), RAFT_VOTER);
		assert_int_equal(raft_conf_voters(raft_get_conf(fx_raft(f, id))), 4);
	}

	fx_crash(f, 3);
	fx_crash(f, 4);
	commit = raft_commit_index(r1);
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(r1), commit);
	fx_restart(f, 4);
	fx_run(f, 1);
	assert_int_equal(raft_commit_index(r1), raft_last_index(r1));
}

/*
 * A new node added straight as a voter counts at once: the quorum is 3 of 4
 * as soon as the change is appended, so the change itself needs the new
 * node's answer once two of the others are down.
 */
static void
test_added_voter_counts_from_its_append(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_index	index;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_add_empty_node(f, 4);
	fx_crash(f, 3);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_VOTER, 4, &index, NULL), RAFT_OK);
	assert_int_equal(raft_conf_voters(raft_get_conf(r1)), 4);
	fx_isolate(f, 4);
	fx_run(f, 2);
	/* 1 and 2 hold it: a majority of the old three, not of the new four */
	assert_int_equal(raft_last_index(fx_raft(f, 2)), index);
	assert_true(raft_commit_index(r1) < index);

	fx_heal_all(f);
	fx_run(f, 3);
	assert_int_equal(raft_commit_index(r1), index);
	assert_int_equal(role_on(f, 4, 4), RAFT_VOTER);
	assert_int_equal(raft_get_conf(fx_raft(f, 4))->n, 4);
	assert_int_equal(raft_last_index(fx_raft(f, 4)), index);
}

/* A removed voter no longer counts, and leaves the others in peace. */
static void
test_removed_voter_no_longer_counts(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_term	term;
	raft_index	commit;
	raft_progress pr;

	assert_int_equal(fx_elect(f, 1), 1);
	term = raft_get_term(r1);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_REMOVE, 3, NULL, NULL), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_get_conf(r1)->n, 2);
	assert_int_equal(role_on(f, 2, 3), 0);
	assert_int_equal(raft_get_progress(r1, 3, &pr), RAFT_EINVAL);

	/* two voters now: both are needed */
	fx_crash(f, 2);
	commit = raft_commit_index(r1);
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(r1), commit);
	assert_int_equal(fx_applied_normal(f, 3), 0);
	fx_restart(f, 2);

	/* the removed node times out again and again, and changes nothing */
	fx_run(f, 10 * ELECTION_TICKS);
	assert_int_equal(fx_leader(f), 1);
	assert_int_equal(raft_get_term(r1), term);
	assert_int_equal(raft_commit_index(r1), raft_last_index(r1));
}

/* A removed learner gets nothing more. */
static void
test_removed_learner_gets_no_more_entries(void **state)
{
	fixture    *f = *state = fx_new(3, 2, NULL);
	raft	   *r1 = fx_raft(f, 1);

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_REMOVE, 3, NULL, NULL), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_get_conf(r1)->n, 2);
	assert_int_equal(raft_conf_voters(raft_get_conf(r1)), 2);
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_run(f, 3);
	assert_int_equal(fx_applied_normal(f, 2), 1);
	assert_int_equal(fx_applied_normal(f, 3), 0);
}

/* One change at a time: the next is refused until the last one commits. */
static void
test_conf_change_refused_while_another_is_uncommitted(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), RAFT_OK);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_LEARNER, 5, NULL, NULL), RAFT_EBUSY);
	fx_flush(f);
	fx_deliver_once(f);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_REMOVE, 3, NULL, NULL), RAFT_EBUSY);
	/* ordinary commands are not held up */
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_LEARNER, 5, NULL, NULL), RAFT_OK);
	assert_int_equal(role_on(f, 1, 5), RAFT_LEARNER);
}

/*
 * A new leader may not change the configuration before an entry of its own
 * term has committed: until then it may not know the latest committed one.
 */
static void
test_conf_change_refused_before_leader_commits_its_term(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);

	assert_true(fx_campaign(f, 1));
	assert_true(raft_commit_index(r1) < raft_last_index(r1));
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), RAFT_EBUSY);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(r1), raft_last_index(r1));
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), RAFT_OK);
}

/* Changes that change nothing, or leave no voter, are invalid. */
static void
test_noop_changes_and_removing_the_last_voter_are_invalid(void **state)
{
	fixture    *f = *state = fx_new(4, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_index	last;

	assert_int_equal(fx_elect(f, 1), 1);
	last = raft_last_index(r1);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_VOTER, 2, NULL, NULL), RAFT_EINVAL);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), RAFT_EINVAL);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_LEARNER, 2, NULL, NULL), RAFT_EINVAL);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_REMOVE, 7, NULL, NULL), RAFT_EINVAL);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_VOTER, RAFT_NONE, NULL, NULL), RAFT_EINVAL);
	assert_int_equal(raft_propose_conf(r1, 99, 5, NULL, NULL), RAFT_EINVAL);
	assert_int_equal(raft_propose_conf(fx_raft(f, 2), RAFT_CC_ADD_LEARNER, 5, NULL, NULL),
					 RAFT_ENOTLEADER);
	assert_int_equal(raft_last_index(r1), last);
	assert_false(raft_has_ready(r1));

	/* the last voter */
	fx_free(f);
	f = *state = fx_new(2, 1, NULL);
	r1 = fx_raft(f, 1);
	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_REMOVE, 1, NULL, NULL), RAFT_EINVAL);
	/* ... while the learner may go */
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_REMOVE, 2, NULL, NULL), RAFT_OK);
}

/*
 * A follower that appended a configuration entry which a new leader then
 * overwrites goes back to the configuration before it.
 */
static void
test_truncated_conf_entry_reverts_the_followers_conf(void **state)
{
	fixture    *f = *state = fx_new(5, 5, NULL);
	raft	   *r2 = fx_raft(f, 2);
	raft_index	index;
	raft_term	term;
	raft_id		leader;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_cut(f, 1, 3);
	fx_cut(f, 1, 4);
	fx_cut(f, 1, 5);
	assert_int_equal(raft_propose_conf(fx_raft(f, 1), RAFT_CC_ADD_LEARNER, 6,
									   &index, &term), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_last_index(r2), index);
	assert_int_equal(role_on(f, 2, 6), RAFT_LEARNER);
	assert_true(raft_commit_index(r2) < index);

	fx_isolate(f, 1);
	fx_isolate(f, 2);
	leader = run_until_new_leader(f, term);
	assert_true(leader >= 3);

	fx_heal_all(f);
	fx_isolate(f, 1);
	fx_run(f, 2);
	assert_int_equal(raft_leader(r2), leader);
	assert_int_equal(role_on(f, 2, 6), 0);
	assert_int_equal(raft_get_conf(r2)->n, 5);
	assert_int_equal(raft_term_at(r2, index, &term), RAFT_OK);
	assert_int_equal(term, raft_get_term(fx_raft(f, leader)));
}

/*
 * A leader that removes itself leads until the removal commits (it is not
 * counted meanwhile), then steps down and never campaigns again.
 */
static void
test_removed_leader_steps_down_once_removal_commits(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_index	index;
	raft_term	term;
	raft_id		leader;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_REMOVE, 1, &index, &term), RAFT_OK);
	assert_int_equal(role_on(f, 1, 1), 0);
	assert_int_equal(raft_get_role(r1), RAFT_LEADER);
	fx_flush(f);
	fx_deliver_once(f);
	assert_int_equal(raft_get_role(r1), RAFT_LEADER);
	assert_true(raft_commit_index(r1) < index);

	fx_deliver_all(f, 0);
	assert_int_equal(raft_commit_index(r1), index);
	assert_int_equal(raft_get_role(r1), RAFT_FOLLOWER);

	leader = run_until_new_leader(f, term);
	assert_true(leader == 2 || leader == 3);
	fx_run(f, 10 * ELECTION_TICKS);
	assert_int_equal(fx_leader(f), leader);
	assert_int_equal(raft_get_role(r1), RAFT_FOLLOWER);
	assert_int_equal(fx_propose(f, leader, "after"), RAFT_OK);
	fx_run(f, 1);
	assert_int_equal(fx_applied_normal(f, 2), 1);
	assert_int_equal(fx_applied_normal(f, 3), 1);
}

/*
 * A leader that appended its own removal but lost its leadership before the
 * removal committed still holds the most up-to-date log, so the remaining
 * voter cannot win without it.  It must still campaign (dissertation
 * §4.2.2, Figure 4.4), without counting its own vote, lead until its
 * removal commits, and step down.
 */
static void
test_node_removed_by_uncommitted_entry_still_campaigns(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft	   *r2 = fx_raft(f, 2);
	raft_index	index;
	raft_term	term;
	raft_id		leader = RAFT_NONE;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_REMOVE, 3, NULL, NULL), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_conf_voters(raft_get_conf(r2)), 2);

	/* node 1 removes itself, but the entry reaches nobody */
	fx_isolate(f, 1);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_REMOVE, 1, &index, &term), RAFT_OK);
	fx_run(f, 3 * ELECTION_TICKS);
	assert_int_not_equal(raft_get_role(r1), RAFT_LEADER);
	assert_true(raft_last_index(r2) < index);

	fx_heal_all(f);
	for (int i = 0; i < 20 * ELECTION_TICKS; i++)
	{
		fx_run(f, 1);
		if (raft_get_role(r2) == RAFT_LEADER)
		{
			leader = 2;
			break;
		}
	}
	assert_int_equal(leader, 2);
	assert_int_equal(raft_get_conf(r2)->n, 1);
	assert_int_equal(role_on(f, 2, 2), RAFT_VOTER);
	assert_true(raft_commit_index(r2) >= index);
	fx_run(f, 10 * ELECTION_TICKS);
	assert_int_equal(fx_leader(f), 2);
	assert_int_equal(raft_get_role(r1), RAFT_FOLLOWER);
}

/*
 * A node created with an empty configuration is added as a learner: it
 * learns the whole configuration from the leader, catches up, and can be
 * promoted.
 */
static void
test_empty_node_learns_the_conf_and_catches_up(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	const raft_conf *c1;
	const raft_conf *c4;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(fx_propose(f, 1, "a"), RAFT_OK);
	assert_int_equal(fx_propose(f, 1, "b"), RAFT_OK);
	fx_deliver_all(f, 0);

	fx_add_empty_node(f, 4);
	assert_int_equal(raft_get_conf(fx_raft(f, 4))->n, 0);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), RAFT_OK);
	fx_run(f, 3);

	c1 = raft_get_conf(r1);
	c4 = raft_get_conf(fx_raft(f, 4));
	assert_int_equal(c4->n, c1->n);
	for (raft_id id = 1; id <= 4; id++)
		assert_int_equal(raft_conf_role(c4, id), raft_conf_role(c1, id));
	assert_int_equal(raft_last_index(fx_raft(f, 4)), raft_last_index(r1));
	assert_int_equal(fx_applied_normal(f, 4), 2);
	assert_int_equal(raft_leader(fx_raft(f, 4)), 1);

	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_VOTER, 4, NULL, NULL), RAFT_OK);
	fx_run(f, 1);
	assert_int_equal(role_on(f, 4, 4), RAFT_VOTER);
	assert_int_equal(raft_conf_voters(raft_get_conf(fx_raft(f, 4))), 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_learner_receives_and_applies_the_log, fx_teardown),
		cmocka_unit_test_teardown(test_learner_never_campaigns, fx_teardown),
		cmocka_unit_test_teardown(test_learner_prevote_grant_does_not_count, fx_teardown),
		cmocka_unit_test_teardown(test_learner_vote_grant_does_not_count, fx_teardown),
		cmocka_unit_test_teardown(test_learner_never_counts_toward_commit, fx_teardown),
		cmocka_unit_test_teardown(test_conf_change_takes_effect_when_appended, fx_teardown),
		cmocka_unit_test_teardown(test_promoted_learner_counts_toward_the_quorum, fx_teardown),
		cmocka_unit_test_teardown(test_added_voter_counts_from_its_append, fx_teardown),
		cmocka_unit_test_teardown(test_removed_voter_no_longer_counts, fx_teardown),
		cmocka_unit_test_teardown(test_removed_learner_gets_no_more_entries, fx_teardown),
		cmocka_unit_test_teardown(test_conf_change_refused_while_another_is_uncommitted, fx_teardown),
		cmocka_unit_test_teardown(test_conf_change_refused_before_leader_commits_its_term, fx_teardown),
		cmocka_unit_test_teardown(test_noop_changes_and_removing_the_last_voter_are_invalid, fx_teardown),
		cmocka_unit_test_teardown(test_truncated_conf_entry_reverts_the_followers_conf, fx_teardown),
		cmocka_unit_test_teardown(test_removed_leader_steps_down_once_removal_commits, fx_teardown),
		cmocka_unit_test_teardown(test_node_removed_by_uncommitted_entry_still_campaigns, fx_teardown),
		cmocka_unit_test_teardown(test_empty_node_learns_the_conf_and_catches_up, fx_teardown),
	};

	return cmocka_run_group_tests_name("membership", tests, NULL, NULL);
}
