/*-------------------------------------------------------------------------
 *
 * test_transfer_read.c
 *	  Core tests of leader transfer (TimeoutNow, dissertation §3.10) and of
 *	  linearizable reads through ReadIndex (dissertation §6.4).
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/test_transfer_read.c
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

/* ------------------------------------------------------------------------
 * Leader transfer
 * ------------------------------------------------------------------------
 */

/*
 * An up-to-date transferee is told to campaign at once and wins the next
 * term, though every voter has heard from the leader within its lease.
 */
static void
test_transfer_to_up_to_date_voter_wins_next_term_at_once(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_term	term;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_run(f, 1);
	term = raft_get_term(r1);
	assert_int_equal(raft_transfer_leader(r1, 2), RAFT_OK);
	assert_int_equal(raft_transferee(r1), 2);
	fx_flush(f);
	assert_int_equal(fx_queued(f, RAFT_MSG_TIMEOUT_NOW, 1, 2), 1);
	fx_deliver_all(f, 0);
	assert_int_equal(fx_leader(f), 2);
	assert_int_equal(raft_get_term(fx_raft(f, 2)), term + 1);
	assert_int_equal(raft_get_role(r1), RAFT_FOLLOWER);
	assert_int_equal(raft_leader(r1), 2);
	assert_int_equal(raft_leader(fx_raft(f, 3)), 2);
}

static bool timeout_now_before_caught_up;
static bool timeout_now_sent;

static void
watch_timeout_now(fixture *f, raft_id id, const raft_ready *rd, void *ctx)
{
	(void) ctx;
	for (size_t i = 0; i < rd->n_messages; i++)
		if (rd->messages[i].type == RAFT_MSG_TIMEOUT_NOW)
		{
			timeout_now_sent = true;
			if (raft_last_index(fx_raft(f, rd->messages[i].to)) != raft_last_index(fx_raft(f, id)))
				timeout_now_before_caught_up = true;
		}
}

/* A lagging transferee is first brought up to date, then told to campaign. */
static void
test_transfer_to_lagging_voter_catches_it_up_first(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft	   *r2 = fx_raft(f, 2);
	raft_term	term;
	int			ticks = 0;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_cut(f, 1, 2);
	for (int i = 0; i < 5; i++)
		assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	fx_heal_all(f);
	assert_true(raft_last_index(r2) < raft_last_index(r1));
	term = raft_get_term(r1);

	timeout_now_before_caught_up = timeout_now_sent = false;
	f->on_ready = watch_timeout_now;
	assert_int_equal(raft_transfer_leader(r1, 2), RAFT_OK);
	fx_flush(f);
	assert_int_equal(fx_queued(f, RAFT_MSG_TIMEOUT_NOW, 1, 2), 0);
	while (fx_leader(f) != 2 && ticks++ < ELECTION_TICKS)
	{
		fx_deliver_all(f, 0);
		if (fx_leader(f) != 2)
			fx_tick(f, 1, 1);
	}
	assert_true(timeout_now_sent);
	assert_false(timeout_now_before_caught_up);
	assert_int_equal(fx_leader(f), 2);
	assert_int_equal(raft_get_term(r2), term + 1);
	assert_int_equal(fx_applied_normal(f, 2), 5);
}

/* Proposals and configuration changes are refused while a transfer is on. */
static void
test_proposals_refused_during_transfer(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_index	last;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_isolate(f, 2);
	assert_int_equal(raft_transfer_leader(r1, 2), RAFT_OK);
	last = raft_last_index(r1);
	assert_int_equal(raft_propose(r1, "x", 1, NULL, NULL), RAFT_EBUSY);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), RAFT_EBUSY);
	assert_int_equal(raft_last_index(r1), last);
}

/* A transfer that does not happen within an election timeout is given up. */
static void
test_transfer_abandoned_after_election_timeout(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_term	term;
	int			ticks = 0;

	assert_int_equal(fx_elect(f, 1), 1);
	term = raft_get_term(r1);
	fx_isolate(f, 2);
	assert_int_equal(raft_transfer_leader(r1, 2), RAFT_OK);
	while (raft_transferee(r1) != RAFT_NONE && ticks < 3 * ELECTION_TICKS)
	{
		fx_run(f, 1);
		ticks++;
	}
	assert_int_equal(ticks, ELECTION_TICKS);
	assert_int_equal(raft_get_role(r1), RAFT_LEADER);
	assert_int_equal(raft_get_term(r1), term);
	assert_int_equal(fx_propose(f, 1, "x"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(fx_applied_normal(f, 3), 1);
}

/*
 * A leader cut off from its quorum steps down at a quorum check as it
 * would without a transfer (the first may still count what it heard in
 * the timeout before), however often the target of a transfer changes
 * meanwhile: a new target does not restart the timer the check shares
 * with the transfer.
 */
static void
test_changing_transfer_target_keeps_the_quorum_check(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	int			ticks = 0;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_isolate(f, 1);
	while (raft_get_role(r1) == RAFT_LEADER && ticks < 4 * ELECTION_TICKS)
	{
		assert_int_equal(raft_transfer_leader(r1, ticks % 2 == 0 ? 2 : 3), RAFT_OK);
		fx_tick(f, 1, 1);
		ticks++;
	}
	assert_int_not_equal(raft_get_role(r1), RAFT_LEADER);
	assert_true(ticks <= 2 * ELECTION_TICKS);
}

/* Only a voter other than the leader can be the target. */
static void
test_transfer_to_learner_or_non_member_is_invalid(void **state)
{
	fixture    *f = *state = fx_new(3, 2, NULL);
	raft	   *r1 = fx_raft(f, 1);

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(raft_transfer_leader(r1, 3), RAFT_EINVAL);
	assert_int_equal(raft_transfer_leader(r1, 7), RAFT_EINVAL);
	assert_int_equal(raft_transfer_leader(r1, 1), RAFT_EINVAL);
	assert_int_equal(raft_transfer_leader(fx_raft(f, 2), 1), RAFT_ENOTLEADER);
	assert_int_equal(raft_transferee(r1), RAFT_NONE);
	assert_false(raft_has_ready(r1));
}

/* ------------------------------------------------------------------------
 * ReadIndex
 * ------------------------------------------------------------------------
 */

static bool
is_type(const raft_message *m, void *ctx)
{
	return m->type == (uint32_t) (uintptr_t) ctx;
}

/*
 * A read on the leader is released only once a quorum answered a heartbeat
 * sent after the request, and at the commit index of the time of the
 * request, even if more commits meanwhile.
 */
static void
test_leader_read_waits_for_quorum_heartbeat(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_index	commit;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(fx_propose(f, 1, "a"), RAFT_OK);
	fx_deliver_all(f, 0);
	commit = raft_commit_index(r1);

	assert_int_equal(raft_read_index(r1, 77), RAFT_OK);
	assert_int_equal(fx_propose(f, 1, "b"), RAFT_OK);
	assert_int_equal(fx_queued(f, RAFT_MSG_HEARTBEAT, 1, 0), 2);
	assert_int_equal(f->nodes[1].n_reads, 0);

	/* "b" commits first */
	fx_deliver_if(f, is_type, (void *) (uintptr_t) RAFT_MSG_APPEND);
	fx_deliver_if(f, is_type, (void *) (uintptr_t) RAFT_MSG_APPEND_RESP);
	assert_int_equal(raft_commit_index(r1), commit + 1);
	assert_int_equal(f->nodes[1].n_reads, 0);

	/* then the heartbeat round completes */
	fx_deliver_if(f, is_type, (void *) (uintptr_t) RAFT_MSG_HEARTBEAT);
	assert_int_equal(f->nodes[1].n_reads, 0);
	fx_deliver_if(f, is_type, (void *) (uintptr_t) RAFT_MSG_HEARTBEAT_RESP);
	assert_int_equal(f->nodes[1].n_reads, 1);
	assert_int_equal(f->nodes[1].reads[0].context, 77);
	assert_int_equal(f->nodes[1].reads[0].index, commit);
}

/* One answer of the two needed is not enough. */
static void
test_leader_read_needs_a_quorum_not_one_answer(void **state)
{
	fixture    *f = *state = fx_new(5, 5, NULL);
	raft	   *r1 = fx_raft(f, 1);

	assert_int_equal(fx_elect(f, 1), 1);
	fx_cut(f, 1, 3);
	fx_cut(f, 1, 4);
	fx_cut(f, 1, 5);
	assert_int_equal(raft_read_index(r1, 5), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(f->nodes[1].n_reads, 0);
	fx_heal(f, 1, 3);
	fx_tick(f, 1, 1);			/* the next heartbeat carries the read too */
	fx_deliver_all(f, 0);
	assert_int_equal(f->nodes[1].n_reads, 1);
	assert_int_equal(f->nodes[1].reads[0].index, raft_commit_index(r1));
}

/*
 * A leader cut off from everyone never releases a read; when check-quorum
 * makes it step down, the read fails (index 0).
 */
static void
test_partitioned_leader_never_releases_a_read(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);

	assert_int_equal(fx_elect(f, 1), 1);
	fx_isolate(f, 1);
	assert_int_equal(raft_read_index(r1, 11), RAFT_OK);
	while (raft_get_role(r1) == RAFT_LEADER)
	{
		fx_run(f, 1);
		if (raft_get_role(r1) == RAFT_LEADER)
			assert_int_equal(f->nodes[1].n_reads, 0);
	}
	assert_int_equal(f->nodes[1].n_reads, 1);
	assert_int_equal(f->nodes[1].reads[0].context, 11);
	assert_int_equal(f->nodes[1].reads[0].index, 0);
}

/* Until the leader commits an entry of its term, its commit index may lag. */
static void
test_read_refused_before_leader_commits_its_term(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);

	assert_true(fx_campaign(f, 1));
	assert_int_equal(raft_read_index(r1, 1), RAFT_EBUSY);
	fx_deliver_all(f, 0);
	assert_int_equal(raft_read_index(r1, 1), RAFT_OK);
}

/*
 * A read asked of a follower goes to the leader, which confirms it and
 * answers with its index; the read is released on the follower.
 */
static void
test_follower_read_is_forwarded_and_released_there(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r2 = fx_raft(f, 2);
	raft_index	commit;

	assert_int_equal(raft_read_index(r2, 3), RAFT_ENOTLEADER);
	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(fx_propose(f, 1, "a"), RAFT_OK);
	fx_deliver_all(f, 0);
	commit = raft_commit_index(fx_raft(f, 1));

	assert_int_equal(raft_read_index(r2, 55), RAFT_OK);
	fx_flush(f);
	assert_int_equal(fx_queued(f, RAFT_MSG_READ_INDEX, 2, 1), 1);
	fx_deliver_once(f);			/* the request reaches the leader */
	assert_int_equal(fx_queued(f, RAFT_MSG_READ_INDEX_RESP, 1, 2), 0);
	fx_deliver_all(f, 0);
	assert_int_equal(f->nodes[1].n_reads, 0);
	assert_int_equal(f->nodes[2].n_reads, 1);
	assert_int_equal(f->nodes[2].reads[0].context, 55);
	assert_int_equal(f->nodes[2].reads[0].index, commit);
}

/* A leader that is the only voter needs no heartbeat round. */
static void
test_single_voter_leader_releases_read_at_once(void **state)
{
	fixture    *f = *state = fx_new(2, 1, NULL);
	raft	   *r1 = fx_raft(f, 1);
	uint64_t	heartbeats;

	assert_int_equal(fx_elect(f, 1), 1);
	heartbeats = f->sent_by_type[RAFT_MSG_HEARTBEAT];
	assert_int_equal(raft_read_index(r1, 9), RAFT_OK);
	fx_flush(f);
	assert_int_equal(f->nodes[1].n_reads, 1);
	assert_int_equal(f->nodes[1].reads[0].context, 9);
	assert_int_equal(f->nodes[1].reads[0].index, raft_commit_index(r1));
	assert_int_equal(f->sent_by_type[RAFT_MSG_HEARTBEAT], heartbeats);
}

/*
 * A leader that learns of a higher term fails its pending reads, its own
 * (released with index 0) and those forwarded to it (answered with a
 * rejection, which the follower releases with index 0).
 */
static void
test_lost_leadership_fails_pending_reads(void **state)
{
	fixture    *f = *state = fx_new(5, 5, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_message m;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_isolate(f, 1);
	fx_heal(f, 1, 3);
	assert_int_equal(raft_read_index(r1, 21), RAFT_OK);
	assert_int_equal(raft_read_index(fx_raft(f, 3), 22), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_int_equal(f->nodes[1].n_reads, 0);
	assert_int_equal(f->nodes[3].n_reads, 0);

	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_HEARTBEAT;
	m.from = 2;
	m.to = 1;
	m.term = raft_get_term(r1) + 1;
	assert_int_equal(fx_step(f, 1, &m), RAFT_OK);
	assert_int_equal(raft_get_role(r1), RAFT_FOLLOWER);
	assert_int_equal(f->nodes[1].n_reads, 1);
	assert_int_equal(f->nodes[1].reads[0].context, 21);
	assert_int_equal(f->nodes[1].reads[0].index, 0);
	fx_deliver_all(f, 0);
	assert_int_equal(f->nodes[3].n_reads, 1);
	assert_int_equal(f->nodes[3].reads[0].context, 22);
	assert_int_equal(f->nodes[3].reads[0].index, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_transfer_to_up_to_date_voter_wins_next_term_at_once, fx_teardown),
		cmocka_unit_test_teardown(test_transfer_to_lagging_voter_catches_it_up_first, fx_teardown),
		cmocka_unit_test_teardown(test_proposals_refused_during_transfer, fx_teardown),
		cmocka_unit_test_teardown(test_transfer_abandoned_after_election_timeout, fx_teardown),
		cmocka_unit_test_teardown(test_changing_transfer_target_keeps_the_quorum_check, fx_teardown),
		cmocka_unit_test_teardown(test_transfer_to_learner_or_non_member_is_invalid, fx_teardown),
		cmocka_unit_test_teardown(test_leader_read_waits_for_quorum_heartbeat, fx_teardown),
		cmocka_unit_test_teardown(test_leader_read_needs_a_quorum_not_one_answer, fx_teardown),
		cmocka_unit_test_teardown(test_partitioned_leader_never_releases_a_read, fx_teardown),
		cmocka_unit_test_teardown(test_read_refused_before_leader_commits_its_term, fx_teardown),
		cmocka_unit_test_teardown(test_follower_read_is_forwarded_and_released_there, fx_teardown),
		cmocka_unit_test_teardown(test_single_voter_leader_releases_read_at_once, fx_teardown),
		cmocka_unit_test_teardown(test_lost_leadership_fails_pending_reads, fx_teardown),
	};

	return cmocka_run_group_tests_name("transfer_read", tests, NULL, NULL);
}
