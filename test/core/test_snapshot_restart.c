/*-------------------------------------------------------------------------
 *
 * test_snapshot_restart.c
 *	  Core tests of log compaction and snapshots (a follower that needs a
 *	  compacted entry is sent the leader's snapshot) and of restarting a
 *	  group from its durable state alone.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/test_snapshot_restart.c
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
opts_plain_raft(raft_options *o)
{
	o->pre_vote = false;
	o->check_quorum = false;
}

static void
propose_all(fixture *f, raft_id id, const char *const *s, int n)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(fx_propose(f, id, s[i]), RAFT_OK);
	fx_deliver_all(f, 0);
}

/* The NORMAL entries node `id' applied are exactly `s'. */
static void
assert_applied(fixture *f, raft_id id, const char *const *s, int n)
{
	fx_node    *nd = &f->nodes[id];
	int			k = 0;

	for (size_t i = 0; i < nd->n_applied; i++)
	{
		if (nd->applied[i].type != RAFT_ENTRY_NORMAL)
			continue;
		assert_true(k < n);
		assert_string_equal(fx_applied_str(f, id, i), s[k]);
		k++;
	}
	assert_int_equal(k, n);
}

/* ------------------------------------------------------------------------
 * Snapshots
 * ------------------------------------------------------------------------
 */
static raft_index snapshot_seen_index;
static uint32_t snapshot_seen_conf_n;
static size_t snapshot_seen_len;

static void
watch_snapshot(fixture *f, raft_id id, const raft_ready *rd, void *ctx)
{
	(void) f;
	(void) ctx;
	(void) id;
	if (rd->has_snapshot)
	{
		snapshot_seen_index = rd->snapshot.index;
		snapshot_seen_conf_n = rd->snapshot.conf.n;
		snapshot_seen_len = rd->snapshot_len;
	}
}

/*
 * After the leader compacts its log, a follower that missed the compacted
 * entries is sent a snapshot message with the marker and the image; it
 * installs it and carries on with the entries after it.
 */
static void
test_lagging_follower_installs_snapshot_and_continues(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	static const char *const before[] = {"a", "b", "c", "d"};
	static const char *const all[] = {"a", "b", "c", "d", "e"};
	raft	   *r1 = fx_raft(f, 1);
	raft	   *r3 = fx_raft(f, 3);
	raft_index	snap;
	raft_term	snap_term;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_crash(f, 3);
	propose_all(f, 1, before, 4);
	snap = raft_applied_index(r1);
	assert_int_equal(raft_term_at(r1, snap, &snap_term), RAFT_OK);
	assert_int_equal(fx_compact(f, 1, snap), RAFT_OK);
	assert_int_equal(raft_first_index(r1), snap + 1);
	assert_int_equal(raft_snapshot(r1)->index, snap);
	assert_int_equal(raft_snapshot(r1)->term, snap_term);
	assert_int_equal(raft_snapshot(r1)->conf.n, 3);

	snapshot_seen_index = 0;
	f->on_ready = watch_snapshot;
	fx_restart(f, 3);
	r3 = fx_raft(f, 3);
	fx_run(f, 2);
	assert_int_equal(f->sent_by_type[RAFT_MSG_SNAPSHOT], 1);
	assert_int_equal(snapshot_seen_index, snap);
	assert_int_equal(snapshot_seen_conf_n, 3);
	assert_int_equal(snapshot_seen_len, strlen("a\nb\nc\nd\n"));
	assert_int_equal(raft_snapshot(r3)->index, snap);
	assert_int_equal(raft_snapshot(r3)->term, snap_term);
	assert_int_equal(raft_first_index(r3), snap + 1);
	assert_int_equal(f->nodes[3].snap.index, snap);
	assert_applied(f, 3, before, 4);

	assert_int_equal(fx_propose(f, 1, "e"), RAFT_OK);
	fx_deliver_all(f, 0);
	assert_applied(f, 3, all, 5);
	assert_int_equal(raft_last_index(r3), raft_last_index(r1));
	assert_int_equal(raft_commit_index(r3), raft_commit_index(r1));
	assert_int_equal(f->sent_by_type[RAFT_MSG_SNAPSHOT], 1);
}

static bool
drop_first_snapshot(const raft_message *m, void *ctx)
{
	int		   *dropped = ctx;

	if (m->type == RAFT_MSG_SNAPSHOT && *dropped == 0)
	{
		(*dropped)++;
		return true;
	}
	return false;
}

/* A snapshot lost on the way is sent again, after a while. */
static void
test_lost_snapshot_is_sent_again(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	static const char *const s[] = {"a", "b"};
	int			dropped = 0;
	int			ticks = 0;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_crash(f, 3);
	propose_all(f, 1, s, 2);
	assert_int_equal(fx_compact(f, 1, raft_applied_index(fx_raft(f, 1))), RAFT_OK);
	f->drop = drop_first_snapshot;
	f->drop_ctx = &dropped;
	fx_restart(f, 3);
	while (fx_applied_normal(f, 3) < 2 && ticks++ < 5 * ELECTION_TICKS)
		fx_run(f, 1);
	assert_int_equal(dropped, 1);
	assert_int_equal(f->sent_by_type[RAFT_MSG_SNAPSHOT], 2);
	assert_applied(f, 3, s, 2);
}

/* A node that joins empty after compaction gets the configuration and the
 * state from the snapshot. */
static void
test_new_member_joins_from_snapshot(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	static const char *const s[] = {"a", "b", "c"};
	raft	   *r1 = fx_raft(f, 1);

	assert_int_equal(fx_elect(f, 1), 1);
	propose_all(f, 1, s, 3);
	assert_int_equal(fx_compact(f, 1, raft_applied_index(r1)), RAFT_OK);
	fx_add_empty_node(f, 4);
	assert_int_equal(raft_propose_conf(r1, RAFT_CC_ADD_LEARNER, 4, NULL, NULL), RAFT_OK);
	fx_run(f, 3);
	assert_int_equal(f->sent_by_type[RAFT_MSG_SNAPSHOT], 1);
	assert_int_equal(raft_get_conf(fx_raft(f, 4))->n, 4);
	assert_int_equal(raft_conf_role(raft_get_conf(fx_raft(f, 4)), 1), RAFT_VOTER);
	assert_int_equal(raft_conf_role(raft_get_conf(fx_raft(f, 4)), 4), RAFT_LEARNER);
	assert_applied(f, 4, s, 3);
	assert_int_equal(raft_last_index(fx_raft(f, 4)), raft_last_index(r1));
}

/* Compaction goes no further than what is applied (and durable). */
static void
test_compact_refuses_index_beyond_applied(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1 = fx_raft(f, 1);
	raft_index	applied;
	raft_term	t;
	const raft_entry *e;

	assert_int_equal(fx_elect(f, 1), 1);
	assert_int_equal(fx_propose(f, 1, "a"), RAFT_OK);
	fx_deliver_all(f, 0);
	fx_isolate(f, 1);
	assert_int_equal(fx_propose(f, 1, "b"), RAFT_OK);	/* durable, not applied */
	applied = raft_applied_index(r1);
	assert_true(raft_last_index(r1) > applied);

	assert_int_equal(raft_compact(r1, applied + 1), RAFT_EUNAVAILABLE);
	assert_int_equal(raft_compact(r1, raft_last_index(r1) + 5), RAFT_EUNAVAILABLE);
	assert_int_equal(raft_first_index(r1), 1);
	assert_int_equal(fx_compact(f, 1, applied), RAFT_OK);
	assert_int_equal(raft_first_index(r1), applied + 1);
	assert_int_equal(fx_compact(f, 1, applied - 1), RAFT_OK);	/* already done */
	assert_int_equal(raft_first_index(r1), applied + 1);
	assert_int_equal(raft_term_at(r1, applied - 1, &t), RAFT_ECOMPACTED);
	assert_int_equal(raft_term_at(r1, applied, &t), RAFT_OK);
	assert_int_equal(raft_entry_at(r1, applied, &e), RAFT_ECOMPACTED);
	assert_int_equal(raft_entry_at(r1, applied + 1, &e), RAFT_OK);
	assert_int_equal(raft_entry_at(r1, raft_last_index(r1) + 1, &e), RAFT_EUNAVAILABLE);
}

/* ------------------------------------------------------------------------
 * Restart
 * ------------------------------------------------------------------------
 */

/* A restart brings back the term, vote, log, commit and configuration. */
static void
test_restart_keeps_term_vote_log_and_commit(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	static const char *const s[] = {"a", "b"};
	raft_hard_state hs;
	raft_index	last;
	raft_term	term;

	assert_int_equal(fx_elect(f, 1), 1);
	propose_all(f, 1, s, 2);
	fx_run(f, 1);
	hs = raft_get_hard_state(fx_raft(f, 2));
	last = raft_last_index(fx_raft(f, 2));
	assert_int_equal(hs.vote, 1);
	assert_int_equal(hs.commit, last);

	fx_crash(f, 2);
	fx_restart(f, 2);
	assert_int_equal(raft_get_term(fx_raft(f, 2)), hs.term);
	assert_int_equal(raft_get_hard_state(fx_raft(f, 2)).vote, 1);
	assert_int_equal(raft_commit_index(fx_raft(f, 2)), hs.commit);
	assert_int_equal(raft_last_index(fx_raft(f, 2)), last);
	assert_int_equal(raft_get_conf(fx_raft(f, 2))->n, 3);
	assert_int_equal(raft_term_at(fx_raft(f, 2), last, &term), RAFT_OK);
	assert_int_equal(term, hs.term);
	/* the committed entries are handed out again, to rebuild the state */
	fx_flush(f);
	assert_applied(f, 2, s, 2);
	assert_int_equal(raft_get_role(fx_raft(f, 2)), RAFT_FOLLOWER);
}

static const raft_message *
find_vote_resp(fixture *f, raft_id from, raft_id to)
{
	for (size_t i = 0; i < f->nq; i++)
		if (f->q[i].m.type == RAFT_MSG_VOTE_RESP && f->q[i].m.from == from &&
			f->q[i].m.to == to)
			return &f->q[i].m;
	return NULL;
}

/* A node that voted in a term does not vote for another there after a restart. */
static void
test_restarted_node_keeps_its_vote(void **state)
{
	fixture    *f = *state = fx_new(3, 3, opts_plain_raft);
	raft_message m;
	const raft_message *resp;

	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_VOTE;
	m.from = 3;
	m.to = 2;
	m.term = 1;
	assert_int_equal(fx_step(f, 2, &m), RAFT_OK);
	resp = find_vote_resp(f, 2, 3);
	assert_non_null(resp);
	assert_false(resp->reject);
	fx_drop_all(f);

	fx_crash(f, 2);
	fx_restart(f, 2);
	m.from = 1;
	assert_int_equal(fx_step(f, 2, &m), RAFT_OK);
	resp = find_vote_resp(f, 2, 1);
	assert_non_null(resp);
	assert_true(resp->reject);
	assert_int_equal(raft_get_hard_state(fx_raft(f, 2)).vote, 3);

	/* the same candidate asking again gets the same answer */
	m.from = 3;
	assert_int_equal(fx_step(f, 2, &m), RAFT_OK);
	resp = find_vote_resp(f, 2, 3);
	assert_non_null(resp);
	assert_false(resp->reject);
}

/* Durable entries that never committed survive a crash, leader or follower. */
static void
test_uncommitted_durable_entries_survive_restart(void **state)
{
	fixture    *f = *state = fx_new(5, 5, NULL);
	raft_index	commit;
	raft_index	last;
	const raft_entry *e;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_isolate(f, 1);
	fx_heal(f, 1, 2);
	commit = raft_commit_index(fx_raft(f, 1));
	assert_int_equal(fx_propose(f, 1, "pending"), RAFT_OK);
	fx_deliver_all(f, 0);
	last = raft_last_index(fx_raft(f, 1));
	assert_int_equal(raft_last_index(fx_raft(f, 2)), last);
	assert_int_equal(raft_commit_index(fx_raft(f, 1)), commit);

	for (raft_id id = 1; id <= 2; id++)
	{
		fx_crash(f, id);
		fx_restart(f, id);
		assert_int_equal(raft_last_index(fx_raft(f, id)), last);
		assert_int_equal(raft_commit_index(fx_raft(f, id)), commit);
		assert_int_equal(raft_entry_at(fx_raft(f, id), last, &e), RAFT_OK);
		assert_int_equal(e->len, 7);
		assert_memory_equal(e->data, "pending", 7);
	}
}

/* A follower and a leader that crash catch up after their restart. */
static void
test_restarted_nodes_catch_up(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	static const char *const s[] = {"a", "b", "c", "d"};
	raft_id		leader;

	assert_int_equal(fx_elect(f, 1), 1);
	fx_crash(f, 3);
	propose_all(f, 1, s, 2);
	fx_restart(f, 3);
	fx_run(f, 2);
	assert_applied(f, 3, s, 2);

	fx_crash(f, 1);
	for (int i = 0; i < 10 * ELECTION_TICKS && fx_leader(f) == RAFT_NONE; i++)
		fx_run(f, 1);
	leader = fx_leader(f);
	assert_true(leader == 2 || leader == 3);
	propose_all(f, leader, s + 2, 2);
	fx_restart(f, 1);
	fx_run(f, 2);
	assert_applied(f, 1, s, 4);
	assert_int_equal(raft_leader(fx_raft(f, 1)), leader);
	assert_int_equal(raft_last_index(fx_raft(f, 1)), raft_last_index(fx_raft(f, leader)));
}

/* A restart after compaction starts from the marker, with the image. */
static void
test_restart_after_compaction_starts_from_the_marker(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	static const char *const s[] = {"a", "b", "c"};
	raft_index	snap;
	raft_index	last;

	assert_int_equal(fx_elect(f, 1), 1);
	propose_all(f, 1, s, 2);
	fx_run(f, 1);
	snap = raft_applied_index(fx_raft(f, 2));
	assert_int_equal(fx_compact(f, 2, snap), RAFT_OK);
	propose_all(f, 1, s + 2, 1);
	fx_run(f, 1);
	last = raft_last_index(fx_raft(f, 2));

	fx_crash(f, 2);
	fx_restart(f, 2);
	assert_int_equal(raft_snapshot(fx_raft(f, 2))->index, snap);
	assert_int_equal(raft_first_index(fx_raft(f, 2)), snap + 1);
	assert_int_equal(raft_last_index(fx_raft(f, 2)), last);
	assert_int_equal(raft_get_conf(fx_raft(f, 2))->n, 3);
	fx_flush(f);
	assert_applied(f, 2, s, 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_lagging_follower_installs_snapshot_and_continues, fx_teardown),
		cmocka_unit_test_teardown(test_lost_snapshot_is_sent_again, fx_teardown),
		cmocka_unit_test_teardown(test_new_member_joins_from_snapshot, fx_teardown),
		cmocka_unit_test_teardown(test_compact_refuses_index_beyond_applied, fx_teardown),
		cmocka_unit_test_teardown(test_restart_keeps_term_vote_log_and_commit, fx_teardown),
		cmocka_unit_test_teardown(test_restarted_node_keeps_its_vote, fx_teardown),
		cmocka_unit_test_teardown(test_uncommitted_durable_entries_survive_restart, fx_teardown),
		cmocka_unit_test_teardown(test_restarted_nodes_catch_up, fx_teardown),
		cmocka_unit_test_teardown(test_restart_after_compaction_starts_from_the_marker, fx_teardown),
	};

	return cmocka_run_group_tests_name("snapshot_restart", tests, NULL, NULL);
}
