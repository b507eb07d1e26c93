/*-------------------------------------------------------------------------
 *
 * test_bad_input.c
 *	  Core tests of malformed input: raft_step refuses bad messages with
 *	  RAFT_EINVAL and changes nothing; raft_new refuses invalid options and
 *	  inconsistent durable state.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/test_bad_input.c
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

/* What an observer can see of a group, to check that nothing changed. */
typedef struct seen
{
	raft_role	role;
	raft_term	term;
	raft_id		leader;
	raft_index	commit;
	raft_index	last;
	raft_index	stable;
	raft_hard_state hs;
	uint32_t	conf_n;
} seen;

static seen
look(raft *r)
{
	seen		s;

	memset(&s, 0, sizeof(s));
	s.role = raft_get_role(r);
	s.term = raft_get_term(r);
	s.leader = raft_leader(r);
	s.commit = raft_commit_index(r);
	s.last = raft_last_index(r);
	s.stable = raft_stable_index(r);
	s.hs = raft_get_hard_state(r);
	s.conf_n = raft_get_conf(r)->n;
	return s;
}

static void
assert_unchanged(raft *r, const seen *before)
{
	seen		now = look(r);

	assert_int_equal(now.role, before->role);
	assert_int_equal(now.term, before->term);
	assert_int_equal(now.leader, before->leader);
	assert_int_equal(now.commit, before->commit);
	assert_int_equal(now.last, before->last);
	assert_int_equal(now.stable, before->stable);
	assert_int_equal(now.hs.term, before->hs.term);
	assert_int_equal(now.hs.vote, before->hs.vote);
	assert_int_equal(now.hs.commit, before->hs.commit);
	assert_int_equal(now.conf_n, before->conf_n);
	assert_false(raft_has_ready(r));
}

static raft_entry
entry(raft_index index, raft_term term, uint32_t type, const void *data, uint32_t len)
{
	raft_entry	e;

	memset(&e, 0, sizeof(e));
	e.index = index;
	e.term = term;
	e.type = type;
	e.data = data;
	e.len = len;
	return e;
}

/* An append from the leader (node 1) to node 2, after index `prev'. */
static raft_message
append_to_2(raft *leader, raft_index prev, raft_entry *entries, uint32_t n)
{
	raft_message m;

	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND;
	m.from = 1;
	m.to = 2;
	m.term = raft_get_term(leader);
	m.index = prev;
	(void) raft_term_at(leader, prev, &m.log_term);
	m.commit = raft_commit_index(leader);
	m.entries = entries;
	m.n_entries = n;
	return m;
}

/*
 * Each malformed message is refused with RAFT_EINVAL and leaves the
 * follower exactly as it was, with nothing to do.
 */
static void
test_malformed_messages_are_refused_and_change_nothing(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft	   *r2;
	raft_index	last;
	raft_term	term;
	raft_entry	es[3];
	uint8_t		cc[RAFT_CONF_CHANGE_LEN];
	raft_message m;
	seen		before;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	r2 = fx_raft(f, 2);
	last = raft_last_index(r1);
	term = raft_get_term(r1);
	before = look(r2);

	/* unknown types */
	m = append_to_2(r1, last, NULL, 0);
	m.type = 0;
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
	m.type = RAFT_MSG_TYPE_MAX + 1;
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
	m.type = 1000;
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

	/* for someone else, from nobody, from itself */
	m = append_to_2(r1, last, NULL, 0);
	m.to = 3;
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
	m.to = 2;
	m.from = RAFT_NONE;
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
	m.from = 2;
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

	/* entries not following the previous index, or with gaps */
	es[0] = entry(last + 2, term, RAFT_ENTRY_NORMAL, "x", 1);
	m = append_to_2(r1, last, es, 1);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
	es[0] = entry(last + 1, term, RAFT_ENTRY_NORMAL, "x", 1);
	es[1] = entry(last + 3, term, RAFT_ENTRY_NORMAL, "y", 1);
	m = append_to_2(r1, last, es, 2);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

	/* an entry of a term above the message's */
	es[0] = entry(last + 1, term + 1, RAFT_ENTRY_NORMAL, "x", 1);
	m = append_to_2(r1, last, es, 1);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

	/* terms going down along the entries, or below the previous entry's */
	es[0] = entry(last + 1, term, RAFT_ENTRY_NORMAL, "x", 1);
	es[1] = entry(last + 2, term - 1, RAFT_ENTRY_NORMAL, "y", 1);
	m = append_to_2(r1, last, es, 2);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
	es[0] = entry(last + 1, 0, RAFT_ENTRY_NORMAL, "x", 1);
	m = append_to_2(r1, last, es, 1);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

	/* a previous entry of a term above the message's */
	m = append_to_2(r1, last, NULL, 0);
	m.log_term = term + 1;
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

	/* configuration entries that do not decode */
	es[0] = entry(last + 1, term, RAFT_ENTRY_CONF, "abc", 3);
	m = append_to_2(r1, last, es, 1);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
	raft_conf_change_encode(cc, RAFT_CC_ADD_LEARNER, 4);
	cc[0] = 9;
	es[0] = entry(last + 1, term, RAFT_ENTRY_CONF, cc, sizeof(cc));
	m = append_to_2(r1, last, es, 1);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
	es[0] = entry(last + 1, term, RAFT_ENTRY_CONF, NULL, 0);
	m = append_to_2(r1, last, es, 1);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

	/* an unknown entry type; data missing */
	es[0] = entry(last + 1, term, 7, "x", 1);
	m = append_to_2(r1, last, es, 1);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
	es[0] = entry(last + 1, term, RAFT_ENTRY_NORMAL, NULL, 4);
	m = append_to_2(r1, last, es, 1);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

	/* entries where none belong, or a count without entries */
	es[0] = entry(last + 1, term, RAFT_ENTRY_NORMAL, "x", 1);
	m = append_to_2(r1, last, es, 1);
	m.type = RAFT_MSG_HEARTBEAT;
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);
	m = append_to_2(r1, last, NULL, 1);
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

	/* a snapshot message without its marker */
	m = append_to_2(r1, last, NULL, 0);
	m.type = RAFT_MSG_SNAPSHOT;
	assert_int_equal(raft_step(r2, &m), RAFT_EINVAL);

	assert_unchanged(r2, &before);

	/* and the same append, well formed, is taken */
	es[0] = entry(last + 1, term, RAFT_ENTRY_NORMAL, "x", 1);
	m = append_to_2(r1, last, es, 1);
	assert_int_equal(raft_step(r2, &m), RAFT_OK);
	assert_int_equal(raft_last_index(r2), last + 1);
}

/* A malformed message to the leader changes nothing there either. */
static void
test_malformed_message_to_leader_changes_nothing(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft_entry	e;
	raft_message m;
	seen		before;

	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	before = look(r1);
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND_RESP;
	m.from = 2;
	m.to = 1;
	m.term = raft_get_term(r1) + 5;
	e = entry(1, 1, RAFT_ENTRY_NORMAL, "x", 1);
	m.entries = &e;
	m.n_entries = 1;
	assert_int_equal(raft_step(r1, &m), RAFT_EINVAL);
	m.n_entries = 0;
	m.entries = NULL;
	m.type = 77;
	assert_int_equal(raft_step(r1, &m), RAFT_EINVAL);
	assert_unchanged(r1, &before);
	assert_int_equal(raft_get_role(r1), RAFT_LEADER);
}

/* Bad arguments to the client calls. */
static void
test_bad_proposals_are_refused(void **state)
{
	fixture    *f = *state = fx_new(3, 3, NULL);
	raft	   *r1;
	raft_index	last;

	assert_int_equal(raft_propose(fx_raft(f, 1), "x", 1, NULL, NULL), RAFT_ENOTLEADER);
	assert_int_equal(fx_elect(f, 1), 1);
	r1 = fx_raft(f, 1);
	last = raft_last_index(r1);
	assert_int_equal(raft_propose(r1, NULL, 3, NULL, NULL), RAFT_EINVAL);
	assert_int_equal(raft_propose(fx_raft(f, 2), "x", 1, NULL, NULL), RAFT_ENOTLEADER);
	assert_int_equal(raft_last_index(r1), last);
	assert_false(raft_has_ready(r1));
	/* an empty command is a command */
	assert_int_equal(raft_propose(r1, NULL, 0, NULL, NULL), RAFT_OK);
}

static raft_options
good_opts(void)
{
	raft_options o;

	raft_options_init(&o, 1, 7);
	return o;
}

static raft_durable
durable(const raft_entry *entries, size_t n, raft_term term, raft_index commit)
{
	raft_durable d;

	memset(&d, 0, sizeof(d));
	d.hard_state.term = term;
	d.hard_state.commit = commit;
	d.snapshot.conf.n = 1;
	d.snapshot.conf.members[0].id = 1;
	d.snapshot.conf.members[0].role = RAFT_VOTER;
	d.entries = entries;
	d.n_entries = n;
	return d;
}

static void
assert_new_fails(const raft_options *o, const raft_durable *d)
{
	raft	   *r = raft_new(o, d);

	if (r != NULL)
		raft_free(r);
	assert_null(r);
}

/* Options out of range are refused. */
static void
test_raft_new_rejects_bad_options(void **state)
{
	raft_durable d = durable(NULL, 0, 0, 0);
	raft_options o;
	raft	   *r;

	(void) state;
	o = good_opts();
	r = raft_new(&o, &d);
	assert_non_null(r);
	raft_free(r);

	o = good_opts();
	o.id = RAFT_NONE;
	assert_new_fails(&o, &d);
	o = good_opts();
	o.election_ticks = 1;
	assert_new_fails(&o, &d);
	o = good_opts();
	o.heartbeat_ticks = 0;
	assert_new_fails(&o, &d);
	o = good_opts();
	o.heartbeat_ticks = o.election_ticks;
	assert_new_fails(&o, &d);
	o = good_opts();
	o.max_msg_entries = 0;
	assert_new_fails(&o, &d);
	o = good_opts();
	o.max_inflight = 0;
	assert_new_fails(&o, &d);
}

/* Durable state that cannot have been written by the core is refused. */
static void
test_raft_new_rejects_inconsistent_durable_state(void **state)
{
	raft_options o = good_opts();
	raft_entry	es[3];
	raft_durable d;
	raft	   *r;

	(void) state;
	es[0] = entry(1, 1, RAFT_ENTRY_NORMAL, "a", 1);
	es[1] = entry(2, 1, RAFT_ENTRY_NOOP, NULL, 0);
	es[2] = entry(3, 2, RAFT_ENTRY_NORMAL, "c", 1);
	d = durable(es, 3, 2, 3);
	r = raft_new(&o, &d);
	assert_non_null(r);
	assert_int_equal(raft_last_index(r), 3);
	assert_int_equal(raft_commit_index(r), 3);
	raft_free(r);

	/* commit past the last entry */
	d = durable(es, 3, 2, 4);
	assert_new_fails(&o, &d);
	/* not starting right after the snapshot */
	d = durable(es + 1, 2, 2, 0);
	assert_new_fails(&o, &d);
	d = durable(es, 3, 2, 0);
	d.snapshot.index = 1;
	d.snapshot.term = 1;
	assert_new_fails(&o, &d);
	/* a gap */
	es[1].index = 5;
	d = durable(es, 3, 2, 0);
	assert_new_fails(&o, &d);
	es[1].index = 2;
	/* terms going down, or below the snapshot's */
	es[1].term = 3;
	d = durable(es, 3, 3, 0);
	assert_new_fails(&o, &d);
	es[1].term = 1;
	d = durable(es, 3, 2, 0);
	d.snapshot.term = 2;
	assert_new_fails(&o, &d);
	/* an unknown entry type; data missing */
	es[0].type = 9;
	d = durable(es, 3, 2, 0);
	assert_new_fails(&o, &d);
	es[0].type = RAFT_ENTRY_NORMAL;
	es[0].data = NULL;
	assert_new_fails(&o, &d);
	es[0].data = "a";
	/* more members than a configuration holds */
	d = durable(es, 3, 2, 0);
	d.snapshot.conf.n = RAFT_MAX_MEMBERS + 1;
	assert_new_fails(&o, &d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_malformed_messages_are_refused_and_change_nothing, fx_teardown),
		cmocka_unit_test_teardown(test_malformed_message_to_leader_changes_nothing, fx_teardown),
		cmocka_unit_test_teardown(test_bad_proposals_are_refused, fx_teardown),
		cmocka_unit_test(test_raft_new_rejects_bad_options),
		cmocka_unit_test(test_raft_new_rejects_inconsistent_durable_state),
	};

	return cmocka_run_group_tests_name("bad_input", tests, NULL, NULL);
}
