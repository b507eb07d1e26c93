/*-------------------------------------------------------------------------
 *
 * foreign_keys.c
 *	  Which foreign keys a control table may take part in: those whose
 *	  check comes out the same on every node.  A foreign key between a
 *	  control table and a table that is not one, or between two control
 *	  tables whose tied rows may live in different partitions, is refused.
 *
 * The rows of a table that is not a control table are each node's own,
 * so a check against them (or an action on them) can refuse a replicated
 * change on one node only.  Two control tables' rows are ordered by their
 * partitions' logs, and each node applies the partitions in its own
 * order: a row referencing one in another partition could be checked
 * before its referenced row arrived on one node and after on another.  A
 * key that ties the referencing table's routing column (its first
 * primary-key column) to the referenced table's keeps both rows under
 * one routing key, so in one partition whatever splits and merges come:
 * provided equal values are equal text, which their type's btree says
 * (its "equal image" support function: numeric 1.0 and 1.00 are equal
 * but route apart; so may text under a nondeterministic collation).
 *
 * Checked for the foreign keys that kmd_ddl creates, when applied (the
 * same on every node: which tables are control tables is replicated), and
 * for those a table has when kmd_register_table is called, where it is
 * called.  A session's own foreign key referencing a control table is
 * the guard's (guard.c, K0010).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/foreign_keys.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_constraint.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "foreign_keys.h"
#include "guard.h"

typedef struct ForeignKey
{
	Oid			conoid;
	char	   *name;
	Oid			relid;			/* the referencing table */
	Oid			refid;			/* the referenced table */
	int			nkeys;
	int16	   *keys;			/* referencing columns */
	int16	   *refkeys;		/* the columns they reference, in order */
} ForeignKey;

static char *
relation_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* A foreign key's catalog row read into *fk; false for another constraint. */
static bool
read_foreign_key(Relation catalog, HeapTuple tup, ForeignKey *fk)
{
	Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
	bool		isnull;
	ArrayType  *keys;
	ArrayType  *refkeys;

	if (con->contype != CONSTRAINT_FOREIGN)
		return false;
	fk->conoid = con->oid;
	fk->name = pstrdup(NameStr(con->conname));
	fk->relid = con->conrelid;
	fk->refid = con->confrelid;
	keys = DatumGetArrayTypePCopy(heap_getattr(tup, Anum_pg_constraint_conkey,
											   RelationGetDescr(catalog), &isnull));
	Assert(!isnull);
	refkeys = DatumGetArrayTypePCopy(heap_getattr(tup, Anum_pg_constraint_confkey,
												  RelationGetDescr(catalog), &isnull));
	Assert(!isnull);
	if (ARR_NDIM(keys) != 1 || ARR_HASNULL(keys) || ARR_ELEMTYPE(keys) != INT2OID ||
		ARR_NDIM(refkeys) != 1 || ARR_HASNULL(refkeys) || ARR_ELEMTYPE(refkeys) != INT2OID ||
		ARR_DIMS(keys)[0] != ARR_DIMS(refkeys)[0])
		elog(ERROR, "foreign key \"%s\" has malformed columns", fk->name);
	fk->nkeys = ARR_DIMS(keys)[0];
	fk->keys = (int16 *) ARR_DATA_PTR(keys);
	fk->refkeys = (int16 *) ARR_DATA_PTR(refkeys);
	return true;
}

/*
 * The routing column of table `relid' (the first column of its primary
 * key), with the btree operator family and collation its key compares
 * with; InvalidAttrNumber when it has no primary key.
 */
static AttrNumber
routing_column(Oid relid, Oid *opfamily, Oid *collation)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	AttrNumber	att = InvalidAttrNumber;

	if (OidIsValid(pk))
	{
		Relation	index = index_open(pk, AccessShareLock);

		att = index->rd_index->indkey.values[0];
		*opfamily = index->rd_opfamily[0];
		*collation = index->rd_indcollation[0];
		index_close(index, AccessShareLock);
	}
	table_close(rel, AccessShareLock);
	return att;
}

/* Are two equal values of `type' by `opfamily' and `collation' the same text? */
static bool
equal_is_same(Oid type, Oid opfamily, Oid collation)
{
	Oid			proc = get_opfamily_proc(opfamily, type, type, BTEQUALIMAGE_PROC);

	return OidIsValid(proc) &&
		DatumGetBool(OidFunctionCall1Coll(proc, collation, ObjectIdGetDatum(type)));
}

/*
 * Does `fk' tie its tables' routing columns, so that the rows it ties
 * share their routing key?
 */
static bool
ties_routing_keys(const ForeignKey *fk)
{
	Oid			opfamily;
	Oid			collation;
	Oid			ref_opfamily;
	Oid			ref_collation;
	AttrNumber	key = routing_column(fk->relid, &opfamily, &collation);
	AttrNumber	refkey = routing_column(fk->refid, &ref_opfamily, &ref_collation);
	Oid			type;

	if (key == InvalidAttrNumber || refkey == InvalidAttrNumber)
		return false;
	for (int i = 0; i < fk->nkeys; i++)
	{
		if (fk->refkeys[i] != refkey)
			continue;
		if (fk->keys[i] != key)
			return false;
		type = getBaseType(get_atttype(fk->refid, refkey));
		return getBaseType(get_atttype(fk->relid, key)) == type &&
			equal_is_same(type, ref_opfamily, ref_collation) &&
			equal_is_same(type, opfamily, collation);
	}
	return false;
}

/*
 * Refuse `fk' unless its check comes out the same on every node;
 * `registering' is a table to count as a control table already.
 */
static void
check_foreign_key(const ForeignKey *fk, Oid registering)
{
	bool		from = fk->relid == registering || kmd_is_control_table(fk->relid);
	bool		to = fk->refid == registering || kmd_is_control_table(fk->refid);

	if (!from && !to)
		return;
	if (from != to)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("foreign key \"%s\" of %s references %s, which is %s control table",
						fk->name, relation_name(fk->relid), relation_name(fk->refid),
						from ? "no" : "a"),
				 errdetail("The rows of %s are each node's own: its check could refuse a replicated change on some nodes only.",
						   relation_name(from ? fk->refid : fk->relid)),
				 errhint("Register both tables, then add the foreign key through kmd_ddl().")));
	if (!ties_routing_keys(fk))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("foreign key \"%s\" of %s may tie rows of different partitions",
						fk->name, relation_name(fk->relid)),
				 errdetail("Each node applies the partitions in its own order, so its check could pass on some nodes and fail on others."),
				 errhint("Between control tables, a foreign key must reference the routing column (the first primary-key column) of %s from that of %s, of the same type, whose equal values are equal text.",
						 relation_name(fk->refid), relation_name(fk->relid))));
}

void
kmd_foreign_key_check(Oid conoid)
{
	Relation	catalog = table_open(ConstraintRelationId, AccessShareLock);
	ScanKeyData key[1];
	SysScanDesc scan;
	HeapTuple	tup;
	ForeignKey	fk;
	bool		found = false;

	ScanKeyInit(&key[0], Anum_pg_constraint_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(conoid));
	/* SnapshotSelf: the constraint comes from the current command */
	scan = systable_beginscan(catalog, ConstraintOidIndexId, true, SnapshotSelf, 1, key);
	tup = systable_getnext(scan);
	/* a clone on a partition was checked as its parent's constraint */
	if (HeapTupleIsValid(tup) &&
		!OidIsValid(((Form_pg_constraint) GETSTRUCT(tup))->conparentid))
		found = read_foreign_key(catalog, tup, &fk);
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
	if (found)
		check_foreign_key(&fk, InvalidOid);
}

void
kmd_foreign_keys_check_table(Oid relid)
{
	Relation	catalog = table_open(ConstraintRelationId, AccessShareLock);
	List	   *keys = NIL;
	ListCell   *lc;

	/* those of the table (by its index) and those referencing it (a scan) */
	for (int referencing = 0; referencing < 2; referencing++)
	{
		ScanKeyData key[1];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&key[0],
					referencing ? Anum_pg_constraint_confrelid : Anum_pg_constraint_conrelid,
					BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
		scan = systable_beginscan(catalog, referencing ? InvalidOid : ConstraintRelidTypidNameIndexId,
								  !referencing, NULL, 1, key);
		while (HeapTupleIsValid(tup = systable_getnext(scan)))
		{
			ForeignKey *fk = palloc(sizeof(ForeignKey));

			if (!OidIsValid(((Form_pg_constraint) GETSTRUCT(tup))->conparentid) &&
				read_foreign_key(catalog, tup, fk))
				keys = lappend(keys, fk);
		}
		systable_endscan(scan);
	}
	table_close(catalog, AccessShareLock);
	foreach(lc, keys)
		check_foreign_key(lfirst(lc), relid);
}
