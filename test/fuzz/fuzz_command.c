/*-------------------------------------------------------------------------
 *
 * fuzz_command.c
 *	  libFuzzer target: the data of a log entry, as the apply worker
 *	  (apply.c) decodes a NORMAL entry's command, and as the Raft core
 *	  decodes a CONF entry's membership change.
 *
 * Log entries come from the leader, which took the command from a backend
 * or a peer's forward; an entry that does not decode is skipped with a
 * warning.  An input must never crash or raise an ERROR (pg_shim.c aborts
 * on one), and a decoded command must hold NUL-terminated strings of the
 * lengths it says, within the limits command.h sets.
 *
 * Copyright (c) 2026, kommander developers
 *
 * test/fuzz/fuzz_command.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <stdio.h>
#include <stdlib.h>

#include "command.h"
#include "pg_shim.h"
#include "raft/raft.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* what the target reads goes here, so that it is read */
static volatile size_t sink;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	KmdCommand	cmd;
	uint32_t	type;
	raft_id		id;
	size_t		touched = 0;

	if (size > PG_UINT32_MAX)
		return 0;
	if (kmd_command_decode((const char *) data, (uint32) size, &cmd))
	{
		if (cmd.kind < KMD_CMD_ROWS || cmd.kind > KMD_CMD_MAX ||
			cmd.n_args < 0 || cmd.n_args > KMD_CMD_MAX_ARGS ||
			cmd.key == NULL || cmd.payload == NULL || cmd.payload[cmd.payload_len] != '\0')
			abort();
		touched += strlen(cmd.key);
		for (uint32 i = 0; i < cmd.payload_len; i++)
			touched += (unsigned char) cmd.payload[i];
		for (int i = 0; i < cmd.n_args; i++)
			touched += strlen(cmd.args[i]);
	}
	if (raft_conf_change_decode(data, (uint32_t) size, &type, &id) &&
		(type < RAFT_CC_ADD_LEARNER || type > RAFT_CC_REMOVE))
		abort();
	sink = touched;
	pg_shim_reset();
	return 0;
}
