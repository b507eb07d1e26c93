/*-------------------------------------------------------------------------
 *
 * wire.c
 *	  Conversion between the Raft core's structs and protobuf: batches of
 *	  messages between nodes, and the commands in log entries.
 *
 * Decoders check everything the core or the runtime relies on and return
 * false (or NULL) on anything else: a malformed message never crashes a
 * worker.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/wire.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "command.h"
#include "wire.h"

static void *
pb_alloc(void *ctx, size_t size)
{
	return palloc(size);
}

static void
pb_free(void *ctx, void *ptr)
{
	if (ptr != NULL)
		pfree(ptr);
}

ProtobufCAllocator kmd_pb_allocator = {pb_alloc, pb_free, NULL};

/* ------------------------------------------------------------------------
 * Batches
 * ------------------------------------------------------------------------
 */
void
kmd_batch_init(KmdOutBatch *b, int32 to_node)
{
	memset(b, 0, sizeof(*b));
	b->to_node = to_node;
}

bool
kmd_batch_is_empty(const KmdOutBatch *b)
{
	return b->n_msgs == 0 && b->n_forwards == 0 && b->n_results == 0;
}

#define GROW(arr, n, cap) \
	do { \
		if ((n) == (cap)) \
		{ \
			(cap) = (cap) ? (cap) * 2 : 16; \
			(arr) = (arr) ? repalloc((arr), (cap) * sizeof(*(arr))) \
						  : palloc((cap) * sizeof(*(arr))); \
		} \
	} while (0)

static Kommander__Conf *
conf_to_pb(const raft_conf *conf)
{
	Kommander__Conf *pb = palloc(sizeof(Kommander__Conf));

	kommander__conf__init(pb);
	pb->n_members = conf->n;
	pb->members = palloc(sizeof(Kommander__Member *) * Max(conf->n, 1));
	for (uint32 i = 0; i < conf->n; i++)
	{
		Kommander__Member *m = palloc(sizeof(Kommander__Member));

		kommander__member__init(m);
		m->id = conf->members[i].id;
		m->role = conf->members[i].role;
		pb->members[i] = m;
	}
	return pb;
}

void
kmd_batch_add_raft(KmdOutBatch *b, int32 partition_id, const raft_message *m)
{
	Kommander__GroupMessage *gm = palloc(sizeof(Kommander__GroupMessage));
	Kommander__RaftMessage *pb = palloc(sizeof(Kommander__RaftMessage));

	kommander__group_message__init(gm);
	kommander__raft_message__init(pb);
	gm->partition_id = partition_id;
	gm->msg = pb;
	pb->type = m->type;
	pb->from = m->from;
	pb->to = m->to;
	pb->term = m->term;
	pb->index = m->index;
	pb->log_term = m->log_term;
	pb->commit = m->commit;
	pb->reject_hint = m->reject_hint;
	pb->reject = m->reject;
	pb->quiesce = m->quiesce;
	pb->commit_only = m->commit_only;
	pb->context = m->context;
	if (m->n_entries > 0)
	{
		pb->n_entries = m->n_entries;
		pb->entries = palloc(sizeof(Kommander__Entry *) * m->n_entries);
		for (uint32 i = 0; i < m->n_entries; i++)
		{
			Kommander__Entry *e = palloc(sizeof(Kommander__Entry));

			kommander__entry__init(e);
			e->index = m->entries[i].index;
			e->term = m->entries[i].term;
			e->type = m->entries[i].type;
			e->data.len = m->entries[i].len;
			e->data.data = (uint8_t *) m->entries[i].data;
			pb->entries[i] = e;
		}
	}
	if (m->snapshot != NULL)
	{
		Kommander__SnapshotMeta *s = palloc(sizeof(Kommander__SnapshotMeta));

		kommander__snapshot_meta__init(s);
		s->index = m->snapshot->index;
		s->term = m->snapshot->term;
		s->conf = conf_to_pb(&m->snapshot->conf);
		pb->snapshot = s;
	}
	pb->snapshot_data.len = m->snapshot_len;
	pb->snapshot_data.data = (uint8_t *) m->snapshot_data;

	GROW(b->msgs, b->n_msgs, b->cap_msgs);
	b->msgs[b->n_msgs++] = gm;
}

void
kmd_batch_add_forward(KmdOutBatch *b, int32 partition_id, uint32 kind,
					  int32 origin_slot, uint32 origin_gen, int64 arg,
					  const char *command, uint32 command_len)
{
	Kommander__Forward *f = palloc(sizeof(Kommander__Forward));

	kommander__forward__init(f);
	f->partition_id = partition_id;
	f->kind = kind;
	f->origin_slot = origin_slot;
	f->origin_gen = origin_gen;
	f->arg = arg;
	f->command.len = command_len;
	f->command.data = (uint8_t *) command;
	GROW(b->forwards, b->n_forwards, b->cap_forwards);
	b->forwards[b->n_forwards++] = f;
}

void
kmd_batch_add_result(KmdOutBatch *b, int32 partition_id, int32 origin_slot,
					 uint32 origin_gen, bool retry, bool not_hosted,
					 const char *sqlstate, const char *message, uint64 index)
{
	Kommander__ForwardResult *r = palloc(sizeof(Kommander__ForwardResult));

	kommander__forward_result__init(r);
	r->partition_id = partition_id;
	r->origin_slot = origin_slot;
	r->origin_gen = origin_gen;
	r->retry = retry;
	r->not_hosted = not_hosted;
	r->sqlstate = pstrdup(sqlstate ? sqlstate : "00000");
	r->message = pstrdup(message ? message : "");
	r->index = index;
	GROW(b->results, b->n_results, b->cap_results);
	b->results[b->n_results++] = r;
}

char *
kmd_batch_pack(KmdOutBatch *b, const uint8 *cluster_id, int32 from_node,
			   size_t max, uint32 *len)
{
	Kommander__Batch pb;
	size_t		size;
	char	   *buf;

	kommander__batch__init(&pb);
	pb.version = KMD_WIRE_VERSION;
	pb.cluster_id.len = 16;
	pb.cluster_id.data = (uint8_t *) cluster_id;
	pb.from_node = from_node;
	pb.to_node = b->to_node;
	pb.n_messages = b->n_msgs;
	pb.messages = b->msgs;
	pb.n_forwards = b->n_forwards;
	pb.forwards = b->forwards;
	pb.n_results = b->n_results;
	pb.results = b->results;
	pb.n_offline = b->n_offline;
	pb.offline = b->offline;
	size = kommander__batch__get_packed_size(&pb);
	if (size > max)
		return NULL;
	if (size > MaxAllocSize - 1)
		elog(ERROR, "kommander batch too large: %zu bytes", size);
	buf = palloc(size + 1);
	kommander__batch__pack(&pb, (uint8_t *) buf);
	*len = (uint32) size;
	return buf;
}

Kommander__Batch *
kmd_batch_unpack(const char *data, uint32 len)
{
	if (len > KMD_MAX_BATCH_BYTES)
		return NULL;
	return kommander__batch__unpack(&kmd_pb_allocator, len, (const uint8_t *) data);
}

bool
kmd_raft_message_from_pb(const Kommander__RaftMessage *pb, raft_message *out,
						 raft_snapshot_meta *snap)
{
	memset(out, 0, sizeof(*out));
	if (pb == NULL || pb->type < RAFT_MSG_APPEND || pb->type > RAFT_MSG_TYPE_MAX)
		return false;
	out->type = pb->type;
	out->from = pb->from;
	out->to = pb->to;
	out->term = pb->term;
	out->index = pb->index;
	out->log_term = pb->log_term;
	out->commit = pb->commit;
	out->reject_hint = pb->reject_hint;
	out->reject = pb->reject;
	out->quiesce = pb->quiesce;
	out->commit_only = pb->commit_only;
	out->context = pb->context;
	if (pb->n_entries > 0)
	{
		if (pb->n_entries > PG_UINT32_MAX / sizeof(raft_entry))
			return false;
		out->n_entries = (uint32) pb->n_entries;
		out->entries = palloc(sizeof(raft_entry) * pb->n_entries);
		for (size_t i = 0; i < pb->n_entries; i++)
		{
			const Kommander__Entry *e = pb->entries[i];

			if (e == NULL || e->data.len > PG_UINT32_MAX || e->type > RAFT_ENTRY_CONF)
				return false;
			out->entries[i].index = e->index;
			out->entries[i].term = e->term;
			out->entries[i].type = e->type;
			out->entries[i].len = (uint32) e->data.len;
			out->entries[i].data = e->data.data;
			out->entries[i].ref = NULL;
		}
	}
	if (pb->type == RAFT_MSG_SNAPSHOT)
	{
		const Kommander__SnapshotMeta *s = pb->snapshot;

		if (s == NULL || s->conf == NULL || s->conf->n_members > RAFT_MAX_MEMBERS)
			return false;
		memset(snap, 0, sizeof(*snap));
		snap->index = s->index;
		snap->term = s->term;
		snap->conf.n = (uint32) s->conf->n_members;
		for (size_t i = 0; i < s->conf->n_members; i++)
		{
			if (s->conf->members[i] == NULL)
				return false;
			snap->conf.members[i].id = s->conf->members[i]->id;
			snap->conf.members[i].role = s->conf->members[i]->role;
		}
		out->snapshot = snap;
		out->snapshot_data = pb->snapshot_data.data;
		out->snapshot_len = pb->snapshot_data.len;
	}
	return true;
}

/* ------------------------------------------------------------------------
 * Commands
 * ------------------------------------------------------------------------
 */
char *
kmd_command_encode(const KmdCommand *cmd, uint32 *len)
{
	Kommander__Command pb;
	size_t		size;
	char	   *buf;

	kommander__command__init(&pb);
	pb.version = KMD_COMMAND_VERSION;
	pb.kind = cmd->kind;
	pb.origin_node = cmd->origin_node;
	pb.origin_slot = cmd->origin_slot;
	pb.origin_gen = cmd->origin_gen;
	pb.origin_boot = cmd->origin_boot;
	pb.proposed_at = cmd->proposed_at;
	pb.request_retention = cmd->request_retention;
	pb.rules = cmd->rules;
	pb.generation = cmd->generation;
	pb.sys_index = cmd->sys_index;
	pb.key = cmd->key ? cmd->key : "";
	pb.payload.len = cmd->payload ? cmd->payload_len : 0;
	pb.payload.data = (uint8_t *) cmd->payload;
	pb.n_args = cmd->n_args;
	pb.args = (char **) cmd->args;
	size = kommander__command__get_packed_size(&pb);
	buf = palloc(size + 1);
	kommander__command__pack(&pb, (uint8_t *) buf);
	*len = (uint32) size;
	return buf;
}

bool
kmd_command_decode(const char *data, uint32 len, KmdCommand *cmd)
{
	Kommander__Command *pb;

	memset(cmd, 0, sizeof(*cmd));
	pb = kommander__command__unpack(&kmd_pb_allocator, len, (const uint8_t *) data);
	if (pb == NULL)
		return false;
	if (pb->version != KMD_COMMAND_VERSION || pb->kind < KMD_CMD_ROWS ||
		pb->kind > KMD_CMD_MAX || pb->n_args > KMD_CMD_MAX_ARGS ||
		(pb->rules & ~KMD_RULES_KNOWN) != 0)
		return false;
	cmd->kind = pb->kind;
	cmd->origin_node = pb->origin_node;
	cmd->origin_slot = pb->origin_slot;
	cmd->origin_gen = pb->origin_gen;
	cmd->origin_boot = pb->origin_boot;
	cmd->proposed_at = pb->proposed_at;
	cmd->request_retention = pb->request_retention;
	cmd->rules = pb->rules;
	cmd->generation = pb->generation;
	cmd->sys_index = pb->sys_index;
	cmd->key = pstrdup(pb->key ? pb->key : "");
	cmd->payload = palloc(pb->payload.len + 1);
	if (pb->payload.len > 0)
		memcpy(cmd->payload, pb->payload.data, pb->payload.len);
	cmd->payload[pb->payload.len] = '\0';
	cmd->payload_len = (uint32) pb->payload.len;
	cmd->n_args = (int) pb->n_args;
	for (size_t i = 0; i < pb->n_args; i++)
		cmd->args[i] = pstrdup(pb->args[i] ? pb->args[i] : "");
	return true;
}

char *
kmd_command_problem(const char *data, uint32 len)
{
	Kommander__Command *pb;
	char	   *why;

	pb = kommander__command__unpack(&kmd_pb_allocator, len, (const uint8_t *) data);
	if (pb == NULL)
		return psprintf("its %u bytes are not a kommander command", len);
	if (pb->version != KMD_COMMAND_VERSION)
		why = psprintf("its command version %u is unknown to this node, which reads version %d",
					   pb->version, KMD_COMMAND_VERSION);
	else if (pb->kind < KMD_CMD_ROWS || pb->kind > KMD_CMD_MAX)
		why = psprintf("its command kind %u is unknown to this node", pb->kind);
	else if (pb->n_args > KMD_CMD_MAX_ARGS)
		why = psprintf("its command has %zu arguments, more than %d",
					   pb->n_args, KMD_CMD_MAX_ARGS);
	else if ((pb->rules & ~KMD_RULES_KNOWN) != 0)
		why = psprintf("its command asks for rules 0x%x, unknown to this node",
					   pb->rules & ~KMD_RULES_KNOWN);
	else
		why = NULL;
	kommander__command__free_unpacked(pb, &kmd_pb_allocator);
	return why;
}
