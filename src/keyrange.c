/*-------------------------------------------------------------------------
 *
 * keyrange.c
 *	  A command writes only rows of its own partition: a row trigger on
 *	  every control table checks, while an entry is applied, that each row
 *	  written or deleted has a routing key in the key range the entry's
 *	  partition owns at that point of its log.
 *
 * The rows of a partition are its state: an image of a partition carries
 * exactly the rows in its range, and two partitions order their commands
 * independently.  A write outside the range (an applier touching another
 * partition's key, a key whose stored text hashes elsewhere than the text
 * it was routed by, kmd_ddl writing control rows) would be ordered by the
 * wrong group, so it fails the command, the same way on every node (the
 * range at a log position is the same everywhere).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/keyrange.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "apply.h"
#include "errcodes.h"
#include "keyrange.h"
#include "routing.h"

KmdKeyRange kmd_apply_range = {-1, 0, 0};

PG_FUNCTION_INFO_V1(kmd_control_row_guard);

/* The text of a row's routing key: its first primary key column. */
static char *
routing_text(Relation rel, HeapTuple tuple)
{
	Oid			pkidx = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;
	AttrNumber	att;
	bool		isnull;
	Datum		d;
	Oid			typoutput;
	bool		varlena;

	if (!OidIsValid(pkidx))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("control table %s has no primary key", RelationGetRelationName(rel))));
	idx = index_open(pkidx, AccessShareLock);
	att = idx->rd_index->indkey.values[0];
	index_close(idx, AccessShareLock);
	d = heap_getattr(tuple, att, RelationGetDescr(rel), &isnull);
	if (isnull)
		return NULL;
	getTypeOutputInfo(TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid,
					  &typoutput, &varlena);
	return OidOutputFunctionCall(typoutput, d);
}

static void
check_row(Relation rel, HeapTuple tuple)
{
	char	   *key = routing_text(rel, tuple);
	int64		h;

	if (key == NULL)
		return;
	h = kmd_hash_key(key, strlen(key));
	if (kmd_apply_range.partition_id > 0 &&
		h >= kmd_apply_range.lo && h <= kmd_apply_range.hi)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
			 errmsg("row \"%s\" of %s is outside partition %d", key,
					quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											   RelationGetRelationName(rel)),
					kmd_apply_range.partition_id),
			 kmd_apply_range.partition_id == 0 ?
			 errdetail("Rows of control tables are written by commands of their own partition, not by kmd_ddl.") :
			 errdetail("Its routing key hashes to " INT64_FORMAT ", outside the partition's range; a command writes only rows of its own partition.", h),
			 errhint("Propose the write with the row's key, or keep keys that must change together under one routing key.")));
}

Datum
kmd_control_row_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("kommander.control_row_guard() must be called as an AFTER ROW trigger")));

	/* only entries being applied are checked: sessions are refused anyway */
	if (kmd_applying && kmd_apply_range.partition_id >= 0)
	{
		check_row(trigdata->tg_relation, trigdata->tg_trigtuple);
		if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
			check_row(trigdata->tg_relation, trigdata->tg_newtuple);
	}
	return PointerGetDatum(NULL);
}
