/*-------------------------------------------------------------------------
 *
 * rows_direct.c
 *	  Writing the row of an insert or upsert with the executor's routines
 *	  for one row (those logical replication applies changes with) instead
 *	  of planning and running an SQL statement, whose set-up costs more
 *	  than the write itself on every node.
 *
 * It must store what the statement of rows_apply.c stores: the values of
 * the columns the command names are read as the statement reads them, a
 * column it does not name gets its default (only immutable ones are left
 * to the nodes: the proposer decided the others) or a NULL its domain
 * checks, constraints and row triggers run as the statement runs them,
 * and an upsert that finds its row sets the row's columns but its primary
 * key.  A table this cannot write exactly so (a trigger,
 * rule or policy of its own, generated or identity columns, privileges its
 * owner lacks, ...) is written by the statement.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/rows_direct.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "nodes/makefuncs.h"
#include "parser/parse_coerce.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "guard.h"
#include "rows_int.h"

/*
 * Does `rel' carry no trigger but kommander's own: the statement guard,
 * which lets the apply worker through, and the key range's AFTER ROW
 * trigger, which runs here as in a statement?  Told by their functions
 * too: a table may have had a trigger of the guard's name before it was
 * registered.
 */
static bool
only_own_triggers(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;

	for (int i = 0; td != NULL && i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];

		if (strcmp(t->tgname, "kommander_guard") == 0 && !TRIGGER_FOR_ROW(t->tgtype) &&
			kmd_is_own_function(t->tgfoid, "control_table_guard"))
			continue;
		if (strcmp(t->tgname, "kommander_key_range") == 0 && TRIGGER_FOR_ROW(t->tgtype) &&
			TRIGGER_FOR_AFTER(t->tgtype) && kmd_is_own_function(t->tgfoid, "control_row_guard"))
			continue;
		return false;
	}
	return true;
}

/* Does upsert `c' set a column besides its primary key? */
static bool
sets_columns(RowCommand *c)
{
	JsonbIterator *it = JsonbIteratorInit(&c->row->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_KEY && !kmd_rows_is_pk(c, pnstrdup(v.val.string.val, v.val.string.len)))
			return true;
	return false;
}

/*
 * Does a unique index of `rel' other than its primary key hold the key's
 * columns and no other?  ON CONFLICT on those columns takes every such
 * index for an arbiter, whatever its collations and operator classes (a
 * case-insensitive one finds a row the key's does not), where the direct
 * upsert looks through the primary key alone.
 */
static bool
other_arbiter(Relation rel)
{
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	List	   *indexes = RelationGetIndexList(rel);
	Relation	pkrel;
	Bitmapset  *pkcols = NULL;
	bool		other = false;
	ListCell   *lc;

	/* the key's index alone, as most control tables have: nothing to open */
	if (list_length(indexes) <= 1)
		return false;
	pkrel = index_open(pk, AccessShareLock);
	for (int i = 0; i < pkrel->rd_index->indnkeyatts; i++)
		pkcols = bms_add_member(pkcols, pkrel->rd_index->indkey.values[i]);
	index_close(pkrel, AccessShareLock);
	foreach(lc, indexes)
	{
		Relation	irel;
		Bitmapset  *cols = NULL;

		if (lfirst_oid(lc) == pk)
			continue;
		irel = index_open(lfirst_oid(lc), AccessShareLock);
		/* ON CONFLICT without a WHERE takes no partial or expression index */
		if (irel->rd_index->indisunique && irel->rd_index->indisvalid &&
			heap_attisnull(irel->rd_indextuple, Anum_pg_index_indexprs, NULL) &&
			heap_attisnull(irel->rd_indextuple, Anum_pg_index_indpred, NULL))
		{
			for (int i = 0; i < irel->rd_index->indnkeyatts; i++)
				cols = bms_add_member(cols, irel->rd_index->indkey.values[i]);
			other = bms_equal(cols, pkcols);
		}
		index_close(irel, AccessShareLock);
		if (other)
			break;
	}
	return other;
}

/*
 * Can the row of `c' go to `rel' here?  (Its keys name columns of the
 * table, not system columns: parsing checked.)
 */
static bool
writable(Relation rel, RowCommand *c)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AclMode		need = ACL_INSERT | (c->op == OP_UPSERT ? ACL_UPDATE | ACL_SELECT : 0);

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->rd_rel->relpersistence == RELPERSISTENCE_TEMP ||
		rel->rd_rel->relrowsecurity || rel->rd_rules != NULL || !only_own_triggers(rel))
		return false;
	if (c->op == OP_UPSERT)
	{
		/* an upsert of the key alone does nothing to a row it finds */
		if (!sets_columns(c))
			return false;
		/* an update checks it, a statement's upsert does not */
		if (rel->rd_rel->relreplident != REPLICA_IDENTITY_FULL &&
			!OidIsValid(RelationGetReplicaIndex(rel)))
			return false;
	}
	if (!OidIsValid(RelationGetPrimaryKeyIndex(rel)))
		return false;
	if (c->op == OP_UPSERT && other_arbiter(rel))
		return false;
	/* the statement would fail with the owner's missing privilege */
	if (pg_class_aclmask(RelationGetRelid(rel), c->owner, need, ACLMASK_ALL) != need ||
		pg_namespace_aclcheck(RelationGetNamespace(rel), c->owner, ACL_USAGE) != ACLCHECK_OK)
		return false;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && (att->attidentity || att->attgenerated))
			return false;
	}
	return true;
}

/*
 * `values' as a row of `rel', deformed into `v' and `n': the columns it
 * names read as the statement's jsonb_to_record reads them, in the
 * table's order, the others NULL and not read at all
 * (jsonb_populate_record leaves the columns of its first argument's row
 * that `values' does not name as they are).
 */
void
kmd_rows_read_values(Relation rel, Jsonb *values, Datum *v, bool *n)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			rowtype = rel->rd_rel->reltype;
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 2);
	Datum		d;
	HeapTupleHeader th;
	HeapTupleData tuple;

	for (int i = 0; i < desc->natts; i++)
	{
		v[i] = (Datum) 0;
		n[i] = true;
	}

	/* the function learns the row type from its first argument's */
	fmgr_info(F_JSONB_POPULATE_RECORD, &flinfo);
	fmgr_info_set_expr((Node *) makeFuncExpr(F_JSONB_POPULATE_RECORD, rowtype,
											 list_make2(makeNullConst(rowtype, -1, InvalidOid),
														makeNullConst(JSONBOID, -1, InvalidOid)),
											 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL),
					   &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = heap_copy_tuple_as_datum(heap_form_tuple(desc, v, n), desc);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = JsonbPGetDatum(values);
	fcinfo->args[1].isnull = false;
	d = FunctionCallInvoke(fcinfo);
	if (fcinfo->isnull)
		elog(ERROR, "jsonb_populate_record returned NULL");
	th = DatumGetHeapTupleHeader(d);
	tuple.t_len = HeapTupleHeaderGetDatumLength(th);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = th;
	heap_deform_tuple(&tuple, desc, v, n);
}

/*
 * Fill `slot' with the row to insert: the values of the columns the
 * command names (`named', as in a range table entry), the default of the
 * others, or a NULL that their domain's checks see, as the planner makes
 * a column an INSERT leaves out.
 */
static void
new_row(Relation rel, EState *estate, Bitmapset *named, Datum *v, bool *n,
		TupleTableSlot *slot)
{
	TupleDesc	desc = RelationGetDescr(rel);

	ExecClearTuple(slot);
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		Node	   *expr;

		slot->tts_values[i] = v[i];
		slot->tts_isnull[i] = n[i];
		if (att->attisdropped ||
			bms_is_member(i + 1 - FirstLowInvalidHeapAttributeNumber, named))
			continue;
		slot->tts_values[i] = (Datum) 0;
		slot->tts_isnull[i] = true;
		expr = build_column_default(rel, i + 1);
		if (expr == NULL && get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
			expr = coerce_to_domain((Node *) makeNullConst(att->atttypid, -1, att->attcollation),
									InvalidOid, -1, att->atttypid,
									COERCION_IMPLICIT, COERCE_IMPLICIT_CAST, -1, false);
		if (expr != NULL)
			slot->tts_values[i] =
				ExecEvalExprSwitchContext(ExecPrepareExpr((Expr *) expr, estate),
										  GetPerTupleExprContext(estate),
										  &slot->tts_isnull[i]);
	}
	ExecStoreVirtualTuple(slot);
}

/* Write the row of `c' (insert or upsert) to `rel'; see kmd_rows_write_direct. */
static void
write_row(Relation rel, RowCommand *c, Jsonb *inserted)
{
	TupleDesc	desc = RelationGetDescr(rel);
	EState	   *estate;
	RangeTblEntry *rte;
	ResultRelInfo *rri;
	EPQState	epq;
	TupleTableSlot *row;
	TupleTableSlot *found;
	Datum	   *v = palloc(sizeof(Datum) * desc->natts);
	bool	   *n = palloc(sizeof(bool) * desc->natts);

	/* see what the commands before this one wrote; they see this one */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());

	estate = CreateExecutorState();
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = RelationGetRelid(rel);
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		/* the statement's columns (they decide what an error shows) */
		if (kmd_rows_names(inserted, NameStr(att->attname)))
			rte->insertedCols = bms_add_member(rte->insertedCols,
											   att->attnum - FirstLowInvalidHeapAttributeNumber);
		/* the columns an upsert sets; they decide how its row is locked */
		if (c->op == OP_UPSERT && kmd_rows_names(c->row, NameStr(att->attname)) &&
			!kmd_rows_is_pk(c, NameStr(att->attname)))
			rte->updatedCols = bms_add_member(rte->updatedCols,
											  att->attnum - FirstLowInvalidHeapAttributeNumber);
	}
	ExecInitRangeTable(estate, list_make1(rte));
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	/* where the AFTER triggers look for the relation they fire on */
	estate->es_opened_result_relations = list_make1(rri);
	estate->es_output_cid = GetCurrentCommandId(true);
	estate->es_snapshot = GetActiveSnapshot();
	EvalPlanQualInit(&epq, estate, NULL, NIL, -1);
	ExecOpenIndices(rri, false);
	AfterTriggerBeginQuery();

	kmd_rows_read_values(rel, inserted, v, n);
	row = table_slot_create(rel, &estate->es_tupleTable);
	new_row(rel, estate, rte->insertedCols, v, n, row);

	found = table_slot_create(rel, &estate->es_tupleTable);
	if (c->op == OP_UPSERT &&
		RelationFindReplTupleByIndex(rel, RelationGetPrimaryKeyIndex(rel),
									 ExecUpdateLockMode(estate, rri), row, found))
	{
		/* ON CONFLICT DO UPDATE SET each column of the row = EXCLUDED's */
		TupleTableSlot *updated = table_slot_create(rel, &estate->es_tupleTable);

		/*
		 * The row to insert is checked whole first, as the statement
		 * checks it before it looks for a conflict (a row not found is
		 * checked by its insert, once, as there).
		 */
		if (rel->rd_att->constr != NULL)
			ExecConstraints(rri, row, estate);

		slot_getallattrs(found);
		ExecClearTuple(updated);
		for (int i = 0; i < desc->natts; i++)
		{
			bool		set = bms_is_member(i + 1 - FirstLowInvalidHeapAttributeNumber,
											rte->updatedCols);

			updated->tts_values[i] = set ? row->tts_values[i] : found->tts_values[i];
			updated->tts_isnull[i] = set ? row->tts_isnull[i] : found->tts_isnull[i];
		}
		ExecStoreVirtualTuple(updated);
		ExecSimpleRelationUpdate(rri, estate, &epq, found, updated);
	}
	else
		ExecSimpleRelationInsert(rri, estate, row);

	AfterTriggerEndQuery(estate);
	EvalPlanQualEnd(&epq);
	ExecCloseResultRelations(estate);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	PopActiveSnapshot();
	CommandCounterIncrement();
}

/*
 * Write the row of insert or upsert `c' (`inserted': the row with the
 * proposer's defaults under it) without an SQL statement, as the table's
 * owner (the caller's user).  False, having written nothing, when the
 * table is one the statement must write.
 */
bool
kmd_rows_write_direct(RowCommand *c, Jsonb *inserted)
{
	Relation	rel;
	bool		done = false;

	Assert(c->op == OP_INSERT || c->op == OP_UPSERT);
	rel = try_table_open(c->relid, RowExclusiveLock);
	if (rel == NULL)
		return false;			/* gone: the statement says so */
	if (writable(rel, c))
	{
		write_row(rel, c, inserted);
		done = true;
	}
	table_close(rel, NoLock);
	return done;
}
