/*-------------------------------------------------------------------------
 *
 * test_wire.c
 *	  Tests of src/wire.c built outside the server (with pg_shim.c), next
 *	  to its fuzz targets: a batch and a command survive encoding and
 *	  decoding, a batch larger than a node takes is refused before it is
 *	  unpacked, an entry of unknown type is refused, and so are commands
 *	  of another version, of an unknown kind or with too many arguments.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/fuzz/test_wire.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "command.h"
#include "pg_shim.h"
#include "wire.h"

static const uint8 cluster_id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

/* An append from 1 to 2 with entries of the given types. */
static raft_message
append(raft_entry *entries, const uint32 *types, int n)
{
	raft_message m;

	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_APPEND;
	m.from = 1;
	m.to = 2;
	m.term = 3;
	m.index = 10;
	m.log_term = 2;
	m.commit = 9;
	m.context = 77;
	for (int i = 0; i < n; i++)
	{
		entries[i].index = 11 + i;
		entries[i].term = 3;
		entries[i].type = types[i];
		entries[i].data = "abc";
		entries[i].len = 3;
		entries[i].ref = NULL;
	}
	m.entries = entries;
	m.n_entries = n;
	return m;
}

/* Pack one message in a batch and unpack it again. */
static Kommander__Batch *
round_trip(const raft_message *m, uint32 *len)
{
	KmdOutBatch b;
	char	   *data;

	kmd_batch_init(&b, 2);
	kmd_batch_add_raft(&b, 5, m);
	data = kmd_batch_pack(&b, cluster_id, 1, SIZE_MAX, len);
	return kmd_batch_unpack(data, *len);
}

static void
batch_round_trip(void **state)
{
	raft_entry	entries[3];
	const uint32 types[3] = {RAFT_ENTRY_NORMAL, RAFT_ENTRY_NOOP, RAFT_ENTRY_NORMAL};
	raft_message m = append(entries, types, 3);
	raft_message out;
	raft_snapshot_meta snap;
	uint32		len;
	Kommander__Batch *b = round_trip(&m, &len);

	assert_non_null(b);
	assert_int_equal(b->version, KMD_WIRE_VERSION);
	assert_int_equal(b->from_node, 1);
	assert_int_equal(b->to_node, 2);
	assert_int_equal(b->cluster_id.len, 16);
	assert_memory_equal(b->cluster_id.data, cluster_id, 16);
	assert_int_equal(b->n_messages, 1);
	assert_int_equal(b->messages[0]->partition_id, 5);
	assert_true(kmd_raft_message_from_pb(b->messages[0]->msg, &out, &snap));
	assert_int_equal(out.type, RAFT_MSG_APPEND);
	assert_int_equal(out.term, 3);
	assert_int_equal(out.index, 10);
	assert_int_equal(out.log_term, 2);
	assert_int_equal(out.commit, 9);
	assert_int_equal(out.context, 77);
	assert_int_equal(out.n_entries, 3);
	assert_int_equal(out.entries[1].type, RAFT_ENTRY_NOOP);
	assert_int_equal(out.entries[2].index, 13);
	assert_int_equal(out.entries[2].len, 3);
	assert_memory_equal(out.entries[2].data, "abc", 3);
	pg_shim_reset();
}

static void
unknown_entry_type_refused(void **state)
{
	raft_entry	entries[2];
	const uint32 types[2] = {RAFT_ENTRY_NORMAL, RAFT_ENTRY_CONF + 1};
	raft_message m = append(entries, types, 2);
	raft_message out;
	raft_snapshot_meta snap;
	uint32		len;
	Kommander__Batch *b = round_trip(&m, &len);

	assert_non_null(b);
	assert_false(kmd_raft_message_from_pb(b->messages[0]->msg, &out, &snap));
	/* the largest known type still passes */
	entries[1].type = RAFT_ENTRY_CONF;
	b = round_trip(&m, &len);
	assert_true(kmd_raft_message_from_pb(b->messages[0]->msg, &out, &snap));
	pg_shim_reset();
}

/* A batch of one snapshot message whose image makes it `want' bytes. */
static char *
packed_of_size(uint32 want, uint32 *len)
{
	raft_message m;
	raft_snapshot_meta meta;
	uint32		image_len = want - 64;

	memset(&m, 0, sizeof(m));
	memset(&meta, 0, sizeof(meta));
	m.type = RAFT_MSG_SNAPSHOT;
	m.from = 1;
	m.to = 2;
	m.term = 1;
	meta.conf.n = 1;
	meta.conf.members[0].id = 1;
	meta.conf.members[0].role = RAFT_VOTER;
	m.snapshot = &meta;
	/* grow the image until the batch has exactly the size wanted */
	for (;;)
	{
		KmdOutBatch b;
		char	   *data;

		m.snapshot_data = palloc0(image_len);
		m.snapshot_len = image_len;
		kmd_batch_init(&b, 2);
		kmd_batch_add_raft(&b, 1, &m);
		data = kmd_batch_pack(&b, cluster_id, 1, SIZE_MAX, len);
		if (*len == want)
			return data;
		image_len += want - *len;
	}
}

static void
oversized_batch_refused(void **state)
{
	uint32		len;
	char	   *data;
	size_t		before;

	data = packed_of_size(KMD_MAX_BATCH_BYTES, &len);
	assert_int_equal(len, KMD_MAX_BATCH_BYTES);
	assert_non_null(kmd_batch_unpack(data, len));
	pg_shim_reset();
	data = packed_of_size(KMD_MAX_BATCH_BYTES + 1, &len);
	before = pg_shim_held();
	assert_null(kmd_batch_unpack(data, len));
	/* refused before unpacking: nothing was allocated for it */
	assert_int_equal(pg_shim_held(), before);
	pg_shim_reset();
}

static KmdCommand
a_command(void)
{
	KmdCommand	cmd;

	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = KMD_CMD_MERGE;
	cmd.origin_node = 3;
	cmd.origin_slot = -1;
	cmd.origin_gen = 9;
	cmd.origin_boot = 123456789;
	cmd.generation = 4;
	cmd.sys_index = 12;
	cmd.key = "k";
	cmd.payload = "{\"a\": 1}";
	cmd.payload_len = 8;
	cmd.n_args = 2;
	cmd.args[0] = "5";
	cmd.args[1] = "118";
	return cmd;
}

static void
command_round_trip(void **state)
{
	KmdCommand	cmd = a_command();
	KmdCommand	out;
	uint32		len;
	char	   *data = kmd_command_encode(&cmd, &len);

	assert_true(kmd_command_decode(data, len, &out));
	assert_int_equal(out.kind, KMD_CMD_MERGE);
	assert_int_equal(out.origin_node, 3);
	assert_int_equal(out.origin_slot, -1);
	assert_int_equal(out.origin_gen, 9);
	assert_int_equal(out.origin_boot, 123456789);
	assert_int_equal(out.generation, 4);
	assert_int_equal(out.sys_index, 12);
	assert_string_equal(out.key, "k");
	assert_int_equal(out.payload_len, 8);
	assert_string_equal(out.payload, "{\"a\": 1}");
	assert_int_equal(out.n_args, 2);
	assert_string_equal(out.args[1], "118");
	pg_shim_reset();
}

static void
bad_commands_refused(void **state)
{
	KmdCommand	cmd;
	KmdCommand	out;
	Kommander__Command pb;
	uint32		len;
	char	   *data;
	char	   *args[KMD_CMD_MAX_ARGS + 1] = {"a", "b", "c", "d", "e"};
	uint8		buf[256];
	size_t		n;

	cmd = a_command();
	cmd.kind = KMD_CMD_MAX + 1;
	data = kmd_command_encode(&cmd, &len);
	assert_false(kmd_command_decode(data, len, &out));
	cmd.kind = 0;
	data = kmd_command_encode(&cmd, &len);
	assert_false(kmd_command_decode(data, len, &out));

	/* another version, and too many arguments: made by hand */
	kommander__command__init(&pb);
	pb.version = KMD_COMMAND_VERSION + 1;
	pb.kind = KMD_CMD_ROWS;
	n = kommander__command__pack(&pb, buf);
	assert_false(kmd_command_decode((char *) buf, (uint32) n, &out));
	pb.version = KMD_COMMAND_VERSION;
	pb.n_args = KMD_CMD_MAX_ARGS + 1;
	pb.args = args;
	n = kommander__command__pack(&pb, buf);
	assert_false(kmd_command_decode((char *) buf, (uint32) n, &out));
	pb.n_args = KMD_CMD_MAX_ARGS;
	n = kommander__command__pack(&pb, buf);
	assert_true(kmd_command_decode((char *) buf, (uint32) n, &out));

	/* not a command at all */
	assert_false(kmd_command_decode("\xff\xff\xff", 3, &out));
	pg_shim_reset();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(batch_round_trip),
		cmocka_unit_test(unknown_entry_type_refused),
		cmocka_unit_test(oversized_batch_refused),
		cmocka_unit_test(command_round_trip),
		cmocka_unit_test(bad_commands_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
