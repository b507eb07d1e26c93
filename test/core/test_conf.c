/*-------------------------------------------------------------------------
 *
 * test_conf.c
 *	  Core tests of configurations: membership queries, single-server
 *	  changes, and the wire encoding of configuration-change entries.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/core/test_conf.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "raft.h"

/* The encoding is five bytes: the type, then the id in little-endian order. */
static void
test_conf_change_encoding_is_type_then_little_endian_id(void **state)
{
	uint8_t		buf[RAFT_CONF_CHANGE_LEN];
	uint32_t	type;
	raft_id		id;
	static const uint8_t expect[] = {RAFT_CC_REMOVE, 0x04, 0x03, 0x02, 0x01};

	(void) state;
	raft_conf_change_encode(buf, RAFT_CC_REMOVE, 0x01020304);
	assert_memory_equal(buf, expect, sizeof(expect));
	for (uint32_t t = RAFT_CC_ADD_LEARNER; t <= RAFT_CC_REMOVE; t++)
	{
		raft_conf_change_encode(buf, t, 0xfffffffe);
		assert_true(raft_conf_change_decode(buf, sizeof(buf), &type, &id));
		assert_int_equal(type, t);
		assert_int_equal(id, 0xfffffffe);
	}
}

/* Decoding refuses any other length, an unknown type and the id 0. */
static void
test_conf_change_decode_rejects_bad_lengths_and_types(void **state)
{
	uint8_t		buf[RAFT_CONF_CHANGE_LEN + 1];
	uint32_t	type;
	raft_id		id;

	(void) state;
	raft_conf_change_encode(buf, RAFT_CC_ADD_VOTER, 9);
	buf[RAFT_CONF_CHANGE_LEN] = 0;
	assert_false(raft_conf_change_decode(buf, 0, &type, &id));
	assert_false(raft_conf_change_decode(buf, RAFT_CONF_CHANGE_LEN - 1, &type, &id));
	assert_false(raft_conf_change_decode(buf, RAFT_CONF_CHANGE_LEN + 1, &type, &id));
	assert_false(raft_conf_change_decode(NULL, RAFT_CONF_CHANGE_LEN, &type, &id));
	buf[0] = 0;
	assert_false(raft_conf_change_decode(buf, RAFT_CONF_CHANGE_LEN, &type, &id));
	buf[0] = RAFT_CC_REMOVE + 1;
	assert_false(raft_conf_change_decode(buf, RAFT_CONF_CHANGE_LEN, &type, &id));
	buf[0] = 0xff;
	assert_false(raft_conf_change_decode(buf, RAFT_CONF_CHANGE_LEN, &type, &id));
	raft_conf_change_encode(buf, RAFT_CC_ADD_VOTER, RAFT_NONE);
	assert_false(raft_conf_change_decode(buf, RAFT_CONF_CHANGE_LEN, &type, &id));
	raft_conf_change_encode(buf, RAFT_CC_ADD_VOTER, 9);
	assert_true(raft_conf_change_decode(buf, RAFT_CONF_CHANGE_LEN, &type, &id));
}

/* Each kind of change, and its effect on roles and the voter count. */
static void
test_conf_apply_adds_promotes_and_removes(void **state)
{
	raft_conf	c;

	(void) state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_VOTER, 1), RAFT_OK);
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_LEARNER, 2), RAFT_OK);
	assert_int_equal(c.n, 2);
	assert_int_equal(raft_conf_role(&c, 1), RAFT_VOTER);
	assert_int_equal(raft_conf_role(&c, 2), RAFT_LEARNER);
	assert_int_equal(raft_conf_role(&c, 3), 0);
	assert_int_equal(raft_conf_voters(&c), 1);

	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_VOTER, 2), RAFT_OK);
	assert_int_equal(raft_conf_role(&c, 2), RAFT_VOTER);
	assert_int_equal(raft_conf_voters(&c), 2);
	assert_int_equal(c.n, 2);

	assert_int_equal(raft_conf_apply(&c, RAFT_CC_REMOVE, 1), RAFT_OK);
	assert_int_equal(raft_conf_role(&c, 1), 0);
	assert_int_equal(raft_conf_role(&c, 2), RAFT_VOTER);
	assert_int_equal(c.n, 1);
}

/* A change that changes nothing is refused and leaves the conf alone. */
static void
test_conf_apply_refuses_noop_changes(void **state)
{
	raft_conf	c;
	raft_conf	copy;

	(void) state;
	memset(&c, 0, sizeof(c));
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_VOTER, 1), RAFT_OK);
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_LEARNER, 2), RAFT_OK);
	copy = c;
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_VOTER, 1), RAFT_EINVAL);
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_LEARNER, 2), RAFT_EINVAL);
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_LEARNER, 1), RAFT_EINVAL);	/* demotion */
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_REMOVE, 3), RAFT_EINVAL);
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_VOTER, RAFT_NONE), RAFT_EINVAL);
	assert_int_equal(raft_conf_apply(&c, 0, 3), RAFT_EINVAL);
	assert_int_equal(raft_conf_apply(&c, 42, 3), RAFT_EINVAL);
	assert_memory_equal(&c, &copy, sizeof(c));
}

/* A full configuration takes no new member, but still takes a promotion. */
static void
test_conf_apply_refuses_members_past_the_maximum(void **state)
{
	raft_conf	c;

	(void) state;
	memset(&c, 0, sizeof(c));
	for (raft_id id = 1; id <= RAFT_MAX_MEMBERS; id++)
		assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_LEARNER, id), RAFT_OK);
	assert_int_equal(c.n, RAFT_MAX_MEMBERS);
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_LEARNER, 100), RAFT_EINVAL);
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_VOTER, 100), RAFT_EINVAL);
	assert_int_equal(raft_conf_apply(&c, RAFT_CC_ADD_VOTER, 5), RAFT_OK);
	assert_int_equal(c.n, RAFT_MAX_MEMBERS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_change_encoding_is_type_then_little_endian_id),
		cmocka_unit_test(test_conf_change_decode_rejects_bad_lengths_and_types),
		cmocka_unit_test(test_conf_apply_adds_promotes_and_removes),
		cmocka_unit_test(test_conf_apply_refuses_noop_changes),
		cmocka_unit_test(test_conf_apply_refuses_members_past_the_maximum),
	};

	return cmocka_run_group_tests_name("conf", tests, NULL, NULL);
}
