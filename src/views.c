/*-------------------------------------------------------------------------
 *
 * views.c
 *	  The functions behind the views kommander.nodes and
 *	  kommander.partitions: what shared memory knows of each node and of
 *	  each partition's Raft group on this node, and a node's conninfo as
 *	  the caller may see it (its passwords masked but for superusers).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/views.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "guc.h"
#include "raft/raft.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kmd_node_status);
PG_FUNCTION_INFO_V1(kmd_partition_status);
PG_FUNCTION_INFO_V1(kmd_visible_conninfo);

#define MASK "********"

Datum
kmd_node_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();

	InitMaterializedSRF(fcinfo, 0);
	if (kmd_shared == NULL)
		return (Datum) 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
	{
		KmdNode    *node = &kmd_shared->nodes[i];
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		TimestampTz last;
		bool		local;

		if (node->node_id == 0)
			continue;
		local = node->node_id == kmd_shared->local_node_id;
		last = (TimestampTz) pg_atomic_read_u64(&node->last_contact);
		values[0] = Int32GetDatum(node->node_id);
		values[1] = BoolGetDatum(local);
		/* reachable: heard from within two election timeouts */
		values[2] = BoolGetDatum(kmd_node_heard(node, now, 2 * kmd_election_timeout));
		if (last != 0)
			values[3] = TimestampTzGetDatum(last);
		else
			nulls[3] = true;
		values[4] = Int64GetDatum((int64) pg_atomic_read_u64(&node->batches_dropped));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	LWLockRelease(kmd_shared->lock);
	return (Datum) 0;
}

static const char *
role_text(const KmdPartition *part)
{
	switch (part->role)
	{
		case RAFT_LEADER:
			return "leader";
		case RAFT_CANDIDATE:
		case RAFT_PRECANDIDATE:
			return "candidate";
		case RAFT_FOLLOWER:
			return part->is_learner ? "learner" : "follower";
	}
	return NULL;
}

/* What kommander.partitions.stalled says, NULL when the partition moves on */
static const char *
stall_text(const KmdPartition *part)
{
	if (part->offline)
		return "offline";
	if (part->image_state != KMD_IMAGE_NONE)
		return "image";
	switch (part->apply_stall)
	{
		case KMD_STALL_RETRYING:
			return "retrying";
		case KMD_STALL_STOPPED:
			return "stopped";
	}
	return NULL;
}

/* kommander.partitions.stall_error of a partition waiting for an image */
static const char *
image_text(const KmdPartition *part)
{
	switch (part->image_state)
	{
		case KMD_IMAGE_ASKED:
			return psprintf("an image of the partition at index " UINT64_FORMAT
							" or later is asked of node %d", part->image_min, part->image_from);
		case KMD_IMAGE_READY:
			return psprintf("an image of the partition at index " UINT64_FORMAT
							" or later is being copied from node %d",
							part->image_min, part->image_from);
		case KMD_IMAGE_WAITING:
			return psprintf("an image of the partition at index " UINT64_FORMAT
							" or later could not be installed (the server log says why); "
							"the next try asks node %d", part->image_min, part->image_from);
	}
	return "";
}

/* A row of kommander.partitions, copied out of shared memory */
typedef struct PartitionRow
{
	int32		partition_id;
	const char *role;
	uint64		term;
	int32		leader;
	uint64		commit_index;
	uint64		applied_index;
	uint64		last_index;
	uint64		snapshot_index;
	int32		voters;
	bool		quiesced;
	const char *stalled;		/* NULL when it moves on */
	char	   *stall_error;
	TimestampTz stalled_since;
} PartitionRow;

/*
 * The rows are copied under the lock and put in the result after: the
 * Raft workers take the lock exclusive for every append, and a result
 * that spills to disk must not hold them.
 */
Datum
kmd_partition_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	PartitionRow *rows;
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);
	if (kmd_shared == NULL)
		return (Datum) 0;

	rows = palloc(sizeof(PartitionRow) * Max(kmd_shared->max_partitions, 1));
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used && n < kmd_shared->max_partitions; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];
		PartitionRow *r = &rows[n];

		if (part->partition_id < 0)
			continue;
		n++;
		r->partition_id = part->partition_id;
		r->role = role_text(part);
		r->term = part->term;
		r->leader = part->leader;
		r->commit_index = pg_atomic_read_u64(&part->commit_index);
		r->applied_index = pg_atomic_read_u64(&part->applied_index);
		r->last_index = part->last_index;
		r->snapshot_index = part->snapshot_index;
		r->voters = part->voters;
		r->quiesced = part->quiesced;
		r->stalled = stall_text(part);
		r->stall_error = NULL;
		r->stalled_since = 0;
		if (r->stalled == NULL)
			continue;
		/* the Raft worker's offline comes first: nothing applies then */
		if (part->offline)
		{
			r->stall_error = pstrdup(part->offline_error);
			r->stalled_since = part->offline_since;
		}
		else if (part->image_state != KMD_IMAGE_NONE)
		{
			r->stall_error = pstrdup(image_text(part));
			r->stalled_since = part->image_since;
		}
		else
		{
			r->stall_error = pstrdup(part->apply_error);
			r->stalled_since = part->apply_stalled_since;
		}
	}
	LWLockRelease(kmd_shared->lock);

	for (int i = 0; i < n; i++)
	{
		PartitionRow *r = &rows[i];
		Datum		values[13];
		bool		nulls[13] = {false};

		values[0] = Int32GetDatum(r->partition_id);
		if (r->role)
			values[1] = CStringGetTextDatum(r->role);
		else
			nulls[1] = true;
		values[2] = Int64GetDatum((int64) r->term);
		if (r->leader != 0)
			values[3] = Int32GetDatum(r->leader);
		else
			nulls[3] = true;
		values[4] = Int64GetDatum((int64) r->commit_index);
		values[5] = Int64GetDatum((int64) r->applied_index);
		values[6] = Int64GetDatum((int64) r->last_index);
		values[7] = Int64GetDatum((int64) r->snapshot_index);
		values[8] = Int32GetDatum(r->voters);
		values[9] = BoolGetDatum(r->quiesced);
		nulls[10] = nulls[11] = nulls[12] = r->stalled == NULL;
		if (r->stalled != NULL)
		{
			values[10] = CStringGetTextDatum(r->stalled);
			values[11] = CStringGetTextDatum(r->stall_error);
			values[12] = TimestampTzGetDatum(r->stalled_since);
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* Append a conninfo value, quoted when it must be. */
static void
append_value(StringInfo buf, const char *val)
{
	if (val[0] != '\0' && strpbrk(val, " \t\n\r\f\v'\\") == NULL)
	{
		appendStringInfoString(buf, val);
		return;
	}
	appendStringInfoChar(buf, '\'');
	for (const char *p = val; *p; p++)
	{
		if (*p == '\'' || *p == '\\')
			appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, *p);
	}
	appendStringInfoChar(buf, '\'');
}

/*
 * `conninfo' as "keyword=value ..." with its secrets masked: password,
 * sslpassword, and those of a dbname that is itself a conninfo (libpq
 * expands one, once: `nested' for its own).  A dbname of that one that
 * looks like a conninfo again is masked whole rather than read: libpq
 * takes it as a name, and reading it would let a caller nest conninfos
 * as deep as its text allows.  *masked says whether there was any; NULL
 * when `conninfo' does not parse.
 */
static char *
mask_conninfo(const char *conninfo, bool nested, bool *masked)
{
	char	   *err = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
	StringInfoData buf;

	*masked = false;
	if (opts == NULL)
	{
		if (err != NULL)
			PQfreemem(err);
		return NULL;
	}
	initStringInfo(&buf);
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
	{
		const char *val = o->val;

		if (val == NULL)
			continue;
		if (strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0)
		{
			val = MASK;
			*masked = true;
		}
		else if (strcmp(o->keyword, "dbname") == 0 &&
				 (strchr(val, '=') != NULL || strncmp(val, "postgres://", 11) == 0 ||
				  strncmp(val, "postgresql://", 13) == 0))
		{
			bool		inner_masked;
			char	   *inner = nested ? NULL : mask_conninfo(val, true, &inner_masked);

			if (inner == NULL || inner_masked)
			{
				val = inner != NULL ? inner : MASK;
				*masked = true;
			}
		}
		appendStringInfo(&buf, "%s%s=", buf.len > 0 ? " " : "", o->keyword);
		append_value(&buf, val);
	}
	PQconninfoFree(opts);
	return buf.data;
}

/*
 * kommander.visible_conninfo(conninfo text): the conninfo itself for a
 * superuser; for anyone else, with password=******** (rewritten as
 * "keyword=value ..." when it has one), or NULL if it does not parse.
 */
Datum
kmd_visible_conninfo(PG_FUNCTION_ARGS)
{
	text	   *conninfo = PG_GETARG_TEXT_PP(0);
	char	   *shown;
	bool		masked;

	if (superuser())
		PG_RETURN_TEXT_P(conninfo);
	shown = mask_conninfo(text_to_cstring(conninfo), false, &masked);
	if (shown == NULL)
		PG_RETURN_NULL();
	if (!masked)
		PG_RETURN_TEXT_P(conninfo);
	PG_RETURN_TEXT_P(cstring_to_text(shown));
}
