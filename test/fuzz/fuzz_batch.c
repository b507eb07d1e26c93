/*-------------------------------------------------------------------------
 *
 * fuzz_batch.c
 *	  libFuzzer target: the bytes a peer sends to kommander.deliver(), as
 *	  deliver() and then the Raft worker (peers.c) decode them, and every
 *	  Raft message in them stepped into a Raft core group, whose checks of
 *	  what it is given are the last line of defence.
 *
 * An input must never crash, raise an ERROR (pg_shim.c aborts on one), or
 * make the decoders hold more than a bounded multiple of its size.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/fuzz/fuzz_batch.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "pg_shim.h"
#include "wire.h"

/*
 * protobuf-c allocates each message it unpacks: a repeated field of empty
 * messages costs two bytes of input and some hundred bytes of memory.
 */
#define MAX_BYTES_PER_INPUT_BYTE 256

/* Step one decoded message into a fresh group of its addressee. */
static void
step_into_core(const raft_message *m)
{
	raft_options o;
	raft_durable d;
	raft	   *r;
	raft_ready	rd;

	raft_options_init(&o, m->to != RAFT_NONE ? m->to : 1, 42);
	memset(&d, 0, sizeof(d));
	d.snapshot.conf.n = 3;
	for (uint32_t i = 0; i < 3; i++)
	{
		d.snapshot.conf.members[i].id = i + 1;
		d.snapshot.conf.members[i].role = RAFT_VOTER;
	}
	if (o.id > 3)
	{
		d.snapshot.conf.members[3].id = o.id;
		d.snapshot.conf.members[3].role = RAFT_LEARNER;
		d.snapshot.conf.n = 4;
	}
	r = raft_new(&o, &d);
	if (r == NULL)
		abort();				/* a valid state refused: not the input's fault */
	(void) raft_step(r, m);
	for (int i = 0; i < 4 && raft_has_ready(r); i++)
	{
		raft_ready_get(r, &rd);
		raft_advance(r, &rd);
	}
	raft_free(r);
}

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* what the target reads goes here, so that it is read */
static volatile size_t sink;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Kommander__Batch *b;
	size_t		touched = 0;

	if (size > PG_UINT32_MAX)
		return 0;
	b = kmd_batch_unpack((const char *) data, (uint32) size);
	if (b != NULL)
	{
		/* deliver() routes by partition; the worker steps the messages */
		for (size_t i = 0; i < b->n_messages; i++)
		{
			Kommander__GroupMessage *gm = b->messages[i];
			raft_message m;
			raft_snapshot_meta snap;

			if (gm == NULL)
				continue;
			touched += (uint32) gm->partition_id;
			if (!kmd_raft_message_from_pb(gm->msg, &m, &snap))
				continue;
			step_into_core(&m);
		}
		for (size_t i = 0; i < b->n_forwards; i++)
		{
			const Kommander__Forward *f = b->forwards[i];

			if (f == NULL)
				continue;
			for (size_t k = 0; k < f->command.len; k++)
				touched += f->command.data[k];
		}
		for (size_t i = 0; i < b->n_results; i++)
		{
			const Kommander__ForwardResult *res = b->results[i];

			if (res == NULL)
				continue;
			touched += strlen(res->sqlstate ? res->sqlstate : "");
			touched += strlen(res->message ? res->message : "");
		}
	}
	sink = touched;
	if (pg_shim_peak() > 4096 + MAX_BYTES_PER_INPUT_BYTE * size)
	{
		fprintf(stderr, "decoding %zu bytes held %zu bytes\n", size, pg_shim_peak());
		abort();
	}
	pg_shim_reset();
	return 0;
}
