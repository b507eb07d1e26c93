/*-------------------------------------------------------------------------
 *
 * make_corpus.c
 *	  Writes the fuzz targets' seed corpus from real messages: a cluster of
 *	  Raft cores (the core tests' fixture) elects a leader, replicates
 *	  kommander commands of every kind, adds a member that gets a snapshot,
 *	  serves a read and hands its lead over; every message it sends is
 *	  packed as the Raft worker packs it (src/wire.c), and every command
 *	  encoded as backends encode them.
 *
 *	  make_corpus DIR		writes DIR/batch/gen-* and DIR/command/gen-*
 *
 * The output is the same on every run, so the committed corpus can be
 * checked against it; inputs the fuzzers found are kept beside it under
 * other names.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/fuzz/make_corpus.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "command.h"
#include "fixture.h"
#include "pg_shim.h"
#include "wire.h"

#define PER_KIND 2				/* batches kept per kind of message */

/*
 * Kinds of messages: each type, and appends carrying several entries or a
 * configuration change, which come later than the first appends.
 */
#define KIND_MANY (RAFT_MSG_TYPE_MAX + 1)
#define KIND_CONF (RAFT_MSG_TYPE_MAX + 2)

static const char *dir;
static int	kept[KIND_CONF + 1];
static const uint8 cluster_id[16] = {0x6b, 0x6d, 0x64, 0x2d, 0x66, 0x75, 0x7a, 0x7a,
0x2d, 0x63, 0x6f, 0x72, 0x70, 0x75, 0x73, 0x21};

static void
write_file(const char *sub, const char *name, const char *data, uint32 len)
{
	char		path[512];
	FILE	   *f;

	snprintf(path, sizeof(path), "%s/%s/gen-%s", dir, sub, name);
	f = fopen(path, "wb");
	if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0)
	{
		perror(path);
		exit(1);
	}
}

/* Pack a batch from node `from' as the Raft worker does, and keep it. */
static void
write_batch(const char *name, KmdOutBatch *b, int32 from)
{
	uint32		len;
	char	   *data = kmd_batch_pack(b, cluster_id, from, SIZE_MAX, &len);

	write_file("batch", name, data, len);
}

/* Each message a node sends, the first PER_TYPE of each type. */
static void
capture(fixture *f, raft_id id, const raft_ready *rd, void *ctx)
{
	for (int pass = 0; pass < 2; pass++)
	{
		const raft_message *msgs = pass ? rd->persist_messages : rd->messages;
		size_t		n = pass ? rd->n_persist_messages : rd->n_messages;

		for (size_t i = 0; i < n; i++)
		{
			const raft_message *m = &msgs[i];
			int			kind = m->type;
			KmdOutBatch b;
			char		name[64];

			for (uint32 k = 0; k < m->n_entries; k++)
				if (m->entries[k].type == RAFT_ENTRY_CONF)
					kind = KIND_CONF;
			if (kind == RAFT_MSG_APPEND && m->n_entries > 1)
				kind = KIND_MANY;
			if (kept[kind] >= PER_KIND)
				continue;
			snprintf(name, sizeof(name), "%s%s-%d", raft_msg_type_name(m->type),
					 kind == KIND_CONF ? "_conf" : kind == KIND_MANY ? "_entries" : "",
					 kept[kind]);
			kmd_batch_init(&b, (int32) m->to);
			kmd_batch_add_raft(&b, 1 + kept[kind]++, m);
			write_batch(name, &b, (int32) id);
		}
	}
}

/* A command as a backend encodes it; written out and returned. */
static char *
command(const char *name, uint32 kind, const char *key, const char *payload,
		int n_args, const char *a0, const char *a1, uint32 *len)
{
	KmdCommand	cmd;
	char	   *data;

	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = kind;
	cmd.origin_node = 2;
	cmd.origin_slot = 7;
	cmd.origin_gen = 3;
	cmd.origin_boot = 1767225600000000ULL;
	cmd.generation = 4;
	cmd.sys_index = 12;
	cmd.key = (char *) key;
	cmd.payload = (char *) payload;
	cmd.payload_len = payload ? (uint32) strlen(payload) : 0;
	cmd.n_args = n_args;
	cmd.args[0] = (char *) a0;
	cmd.args[1] = (char *) a1;
	data = kmd_command_encode(&cmd, len);
	write_file("command", name, data, *len);
	return data;
}

int
main(int argc, char **argv)
{
	fixture    *f;
	raft_id		leader;
	uint32		len;
	char	   *rows;
	uint32		rows_len;
	KmdOutBatch b;
	const char *const cmds[][5] = {
		{"rows", "job-1", "{\"op\": \"insert\", \"row\": {\"id\": \"job-1\", \"state\": \"new\"}, \"table\": \"jobs\"}"},
		{"ddl", "", "CREATE TABLE public.jobs (id text PRIMARY KEY, state text NOT NULL)"},
		{"register-table", "", NULL, "public.jobs"},
		{"register-applier", "", NULL, "bump", "public.bump(jsonb,kommander.apply_context)"},
		{"node-add", "", NULL, "n4", "host=10.0.0.4 port=5432 dbname=app user=kommander"},
		{"node-promote", "", NULL, "n4"},
		{"node-remove", "", NULL, "n2"},
		{"alloc-partition", "", NULL},
		{"split", "", NULL, "5", "32768"},
		{"freeze", "", NULL},
		{"merge", "", NULL, "5", "118"},
	};

	if (argc != 2)
	{
		fprintf(stderr, "usage: make_corpus DIR\n");
		return 2;
	}
	dir = argv[1];

	/* commands of every kind, each also proposed below */
	for (uint32 k = 0; k < lengthof(cmds); k++)
	{
		int			n_args = cmds[k][3] ? (cmds[k][4] ? 2 : 1) : 0;

		(void) command(cmds[k][0], KMD_CMD_ROWS + k, cmds[k][1], cmds[k][2], n_args,
					   cmds[k][3], cmds[k][4], &len);
	}
	for (uint32 t = RAFT_CC_ADD_LEARNER; t <= RAFT_CC_REMOVE; t++)
	{
		uint8_t		cc[RAFT_CONF_CHANGE_LEN];
		char		name[32];

		raft_conf_change_encode(cc, t, 4);
		snprintf(name, sizeof(name), "conf-change-%u", t);
		write_file("command", name, (const char *) cc, sizeof(cc));
	}

	/* a cluster, and the messages of its life */
	f = fx_new(3, 3, NULL);
	f->on_ready = capture;
	leader = fx_elect(f, 1);
	if (leader != 1)
	{
		fprintf(stderr, "make_corpus: no leader\n");
		return 1;
	}
	for (uint32 k = 0; k < lengthof(cmds); k++)
	{
		int			n_args = cmds[k][3] ? (cmds[k][4] ? 2 : 1) : 0;
		char	   *data = command(cmds[k][0], KMD_CMD_ROWS + k, cmds[k][1], cmds[k][2], n_args,
								   cmds[k][3], cmds[k][4], &len);

		if (raft_propose(fx_raft(f, leader), data, len, NULL, NULL) != RAFT_OK)
			return 1;
		if (k == 0)
			fx_flush(f);		/* one append of one, then one of the rest */
	}
	fx_flush(f);
	fx_deliver_all(f, 0);
	/* a learner with an empty configuration: a snapshot marker, then the log */
	if (raft_propose_conf(fx_raft(f, leader), RAFT_CC_ADD_LEARNER, 4, NULL, NULL) != RAFT_OK)
		return 1;
	fx_add_empty_node(f, 4);
	fx_flush(f);
	fx_run(f, 3);
	/* a read on a follower, forwarded to the leader */
	if (raft_read_index(fx_raft(f, 2), 99) != RAFT_OK)
		return 1;
	fx_flush(f);
	fx_run(f, 2);
	/* the lead handed over */
	if (raft_transfer_leader(fx_raft(f, leader), 2) != RAFT_OK)
		return 1;
	fx_flush(f);
	fx_run(f, 3);
	fx_free(f);

	/* what else goes between nodes: keepalives, forwards and their results */
	kmd_batch_init(&b, 2);
	write_batch("keepalive", &b, 1);
	{
		int32		offline[] = {3, 0};

		kmd_batch_init(&b, 2);
		b.offline = offline;
		b.n_offline = 2;
		write_batch("keepalive-offline", &b, 1);
	}
	rows = command("rows-upsert", KMD_CMD_ROWS, "job-2", "{\"op\": \"upsert\", \"row\": {\"id\": \"job-2\"}, \"table\": \"jobs\"}",
				   0, NULL, NULL, &rows_len);
	kmd_batch_init(&b, 1);
	kmd_batch_add_forward(&b, 3, 1, 17, 5, KMD_CMD_ROWS, rows, rows_len);
	kmd_batch_add_result(&b, 4, 9, 2, false, false, "K0001", "partition generation changed", 0);
	kmd_batch_add_result(&b, 4, 10, 2, true, true, NULL, NULL, 0);
	kmd_batch_add_result(&b, 0, 11, 6, false, false, NULL, NULL, 57);
	write_batch("forwards-results", &b, 2);

	for (int k = RAFT_MSG_APPEND; k <= KIND_CONF; k++)
		if (kept[k] == 0)
		{
			fprintf(stderr, "make_corpus: no message of kind %d was sent\n", k);
			return 1;
		}
	pg_shim_reset();
	return 0;
}
