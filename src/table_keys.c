/*-------------------------------------------------------------------------
 *
 * table_keys.c
 *	  The keys a control table may have: those whose check comes out the
 *	  same on every node.  A unique index, a primary key or an exclusion
 *	  constraint that does not hold the routing column, and a foreign key
 *	  between a control table and a table that is not one, or between two
 *	  control tables whose tied rows may live in different partitions, are
 *	  refused.
 *
 * Each node applies the partitions in its own order: two rows of
 * different partitions are checked against each other in an order that
 * differs by node.  A unique key that holds the routing column (the first
 * primary-key column) compares only rows of one routing key, so of one
 * partition whatever splits and merges come; one that does not (a unique
 * email of users keyed by id) lets whichever row a node applied first win
 * there.  The same goes for a foreign key: one that ties the referencing
 * table's routing column to the referenced table's keeps both rows under
 * one routing key.  Both hold provided equal values are equal text, as
 * keys are routed by their text: their type's btree says so (its "equal
 * image" support function: numeric 1.0 and 1.00 are equal but route
 * apart; so may text under a nondeterministic collation).  And the rows
 * of a table that is not a control table are each node's own, so a check
 * against them (or an action on them) can refuse a replicated change on
 * one node only.
 *
 * Checked for the keys that kmd_ddl creates, when applied (the same on
 * every node: which tables are control tables is replicated), and for
 * those a table has when kmd_register_table is called, where it is
 * called.  A session's own DDL on a control table is the guard's
 * (guard.c, K0010).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/table_keys.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_opclass.h"
#include "commands/defrem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "guard.h"
#include "table_keys.h"

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

bool		kmd_keys_replaying = false;

static void check_exclusion(Relation constraints, HeapTuple tup, Oid registering);

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
 * key), with the btree operator family, its input type and the collation
 * its key compares with; InvalidAttrNumber when it has no primary key.
 */
static AttrNumber
routing_column(Oid relid, Oid *opfamily, Oid *intype, Oid *collation)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	AttrNumber	att = InvalidAttrNumber;

	if (OidIsValid(pk))
	{
		Relation	index = index_open(pk, AccessShareLock);

		att = index->rd_index->indkey.values[0];
		*opfamily = index->rd_opfamily[0];
		*intype = index->rd_opcintype[0];
		*collation = index->rd_indcollation[0];
		index_close(index, AccessShareLock);
	}
	table_close(rel, AccessShareLock);
	return att;
}

/*
 * Are two equal values by `opfamily' (for its input type `type') and
 * `collation' the same text?
 */
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
	Oid			intype;
	Oid			collation;
	Oid			ref_opfamily;
	Oid			ref_intype;
	Oid			ref_collation;
	AttrNumber	key = routing_column(fk->relid, &opfamily, &intype, &collation);
	AttrNumber	refkey = routing_column(fk->refid, &ref_opfamily, &ref_intype, &ref_collation);
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
			equal_is_same(ref_intype, ref_opfamily, ref_collation) &&
			equal_is_same(intype, opfamily, collation);
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
kmd_constraint_check(Oid conoid)
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
	{
		if (((Form_pg_constraint) GETSTRUCT(tup))->contype == CONSTRAINT_EXCLUSION)
			check_exclusion(catalog, tup, InvalidOid);
		else
			found = read_foreign_key(catalog, tup, &fk);
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
	if (found)
		check_foreign_key(&fk, InvalidOid);
}

/*
 * Refuse unique or exclusion index `index' (named `name') of table `relid'
 * unless one of its key columns is the routing column compared by an
 * equality whose equal values are equal text: its key columns `keys' (of
 * `n'), each with its operator class and collation, and for an exclusion
 * constraint its operators (NULL for a unique index).
 */
static void
check_unique(Oid relid, const char *name, int n, const int16 *keys, const Oid *opclasses,
			 const Oid *collations, const Oid *operators)
{
	Oid			pk_opfamily;
	Oid			pk_intype;
	Oid			pk_collation;
	AttrNumber	routing = routing_column(relid, &pk_opfamily, &pk_intype, &pk_collation);

	if (routing == InvalidAttrNumber)
		return;
	for (int i = 0; i < n; i++)
	{
		Oid			opclass = opclasses[i];

		if (keys[i] != routing)
			continue;
		/* an exclusion: the routing column must be compared by its btree = */
		if (operators != NULL)
			opclass = GetDefaultOpClass(getBaseType(get_atttype(relid, routing)), BTREE_AM_OID);
		if (!OidIsValid(opclass))
			continue;
		if (operators != NULL &&
			operators[i] != get_opfamily_member(get_opclass_family(opclass),
												get_opclass_input_type(opclass),
												get_opclass_input_type(opclass),
												BTEqualStrategyNumber))
			continue;
		if (equal_is_same(get_opclass_input_type(opclass), get_opclass_family(opclass),
						  collations[i]))
			return;
	}
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s of %s may compare rows of different partitions", name, relation_name(relid)),
			 errdetail("Each node applies the partitions in its own order, so which of two such rows is kept could differ by node."),
			 errhint("A unique key of a control table must hold its routing column (the first primary-key column, compared with = of a type whose equal values are equal text).")));
}

/* The name of relation `relid', made by the current command perhaps. */
static char *
name_now(Oid relid)
{
	Relation	catalog = table_open(RelationRelationId, AccessShareLock);
	ScanKeyData key[1];
	SysScanDesc scan;
	HeapTuple	tup;
	char	   *name = NULL;

	ScanKeyInit(&key[0], Anum_pg_class_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(catalog, ClassOidIndexId, true, SnapshotSelf, 1, key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		name = pstrdup(NameStr(((Form_pg_class) GETSTRUCT(tup))->relname));
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
	return name ? name : psprintf("%u", relid);
}

/* check_unique for the index of `indexoid', from its pg_index row `tup'. */
static void
check_index_row(Relation catalog, HeapTuple tup, const Oid *operators)
{
	Form_pg_index index = (Form_pg_index) GETSTRUCT(tup);
	bool		isnull;
	oidvector  *classes = (oidvector *) DatumGetPointer(heap_getattr(tup, Anum_pg_index_indclass,
																	 RelationGetDescr(catalog), &isnull));
	oidvector  *collations = (oidvector *) DatumGetPointer(heap_getattr(tup, Anum_pg_index_indcollation,
																		RelationGetDescr(catalog), &isnull));
	int			n = index->indnkeyatts;
	char	   *name;

	name = psprintf("%s %s", index->indisprimary ? "primary key" :
					operators != NULL ? "exclusion constraint" : "unique index",
					quote_identifier(name_now(index->indexrelid)));
	check_unique(index->indrelid, name, n, index->indkey.values, classes->values,
				 collations->values, operators);
}

/* The pg_index row of `indexoid' as the current command sees it, copied. */
static HeapTuple
index_row(Relation catalog, Oid indexoid)
{
	ScanKeyData key[1];
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&key[0], Anum_pg_index_indexrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(indexoid));
	scan = systable_beginscan(catalog, IndexRelidIndexId, true, SnapshotSelf, 1, key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		tup = heap_copytuple(tup);
	systable_endscan(scan);
	return tup;
}

/* The operators of exclusion constraint row `tup' of pg_constraint. */
static Oid *
exclusion_operators(Relation catalog, HeapTuple tup)
{
	bool		isnull;
	Datum		d = heap_getattr(tup, Anum_pg_constraint_conexclop, RelationGetDescr(catalog), &isnull);
	ArrayType  *arr;

	if (isnull)
		elog(ERROR, "exclusion constraint without operators");
	arr = DatumGetArrayTypePCopy(d);
	if (ARR_NDIM(arr) != 1 || ARR_HASNULL(arr) || ARR_ELEMTYPE(arr) != OIDOID)
		elog(ERROR, "exclusion constraint operators are not a one-dimensional oid array");
	return (Oid *) ARR_DATA_PTR(arr);
}

void
kmd_index_check(Oid indexoid)
{
	Relation	catalog = table_open(IndexRelationId, AccessShareLock);
	HeapTuple	tup = index_row(catalog, indexoid);

	/* an exclusion constraint's index is checked with its constraint */
	if (HeapTupleIsValid(tup) && ((Form_pg_index) GETSTRUCT(tup))->indisunique &&
		kmd_is_control_table(((Form_pg_index) GETSTRUCT(tup))->indrelid))
		check_index_row(catalog, tup, NULL);
	table_close(catalog, AccessShareLock);
}

/*
 * An exclusion constraint's row `tup' of pg_constraint, for check_unique;
 * `registering' is a table to count as a control table already.
 */
static void
check_exclusion(Relation constraints, HeapTuple tup, Oid registering)
{
	Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);
	Oid		   *operators;
	Relation	catalog;
	HeapTuple	index;

	if (con->conrelid != registering && !kmd_is_control_table(con->conrelid))
		return;
	operators = exclusion_operators(constraints, tup);
	catalog = table_open(IndexRelationId, AccessShareLock);
	index = index_row(catalog, con->conindid);
	if (HeapTupleIsValid(index))
		check_index_row(catalog, index, operators);
	table_close(catalog, AccessShareLock);
}

/* kmd_keys_check_table for one table of the tree, itself counted as control */
static void
check_table(Oid relid)
{
	Relation	catalog = table_open(ConstraintRelationId, AccessShareLock);
	Relation	rel;
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

			if (OidIsValid(((Form_pg_constraint) GETSTRUCT(tup))->conparentid))
				continue;
			if (!referencing &&
				((Form_pg_constraint) GETSTRUCT(tup))->contype == CONSTRAINT_EXCLUSION)
				check_exclusion(catalog, tup, relid);
			else if (read_foreign_key(catalog, tup, fk))
				keys = lappend(keys, fk);
		}
		systable_endscan(scan);
	}
	table_close(catalog, AccessShareLock);
	foreach(lc, keys)
		check_foreign_key(lfirst(lc), relid);

	/* its unique indexes, its primary key's among them */
	rel = table_open(relid, AccessShareLock);
	catalog = table_open(IndexRelationId, AccessShareLock);
	foreach(lc, RelationGetIndexList(rel))
	{
		HeapTuple	tup = index_row(catalog, lfirst_oid(lc));

		if (HeapTupleIsValid(tup) && ((Form_pg_index) GETSTRUCT(tup))->indisunique)
			check_index_row(catalog, tup, NULL);
	}
	table_close(catalog, AccessShareLock);
	table_close(rel, AccessShareLock);
}

void
kmd_keys_check_table(Oid relid)
{
	ListCell   *lc;

	/* a partitioned table's partitions, whose keys are its own */
	foreach(lc, find_all_inheritors(relid, AccessShareLock, NULL))
		check_table(lfirst_oid(lc));
}

Oid
kmd_primary_key_index(Oid relid)
{
	Relation	indexes = table_open(IndexRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tuple;
	Oid			found = InvalidOid;

	ScanKeyInit(&key, Anum_pg_index_indrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(indexes, IndexIndrelidIndexId, true, NULL, 1, &key);
	while (!OidIsValid(found) && HeapTupleIsValid(tuple = systable_getnext(scan)))
	{
		Form_pg_index index = (Form_pg_index) GETSTRUCT(tuple);

		/* as the relcache takes it: a deferrable key is none */
		if (index->indisprimary && index->indisvalid && index->indimmediate &&
			index->indislive)
			found = index->indexrelid;
	}
	systable_endscan(scan);
	table_close(indexes, AccessShareLock);
	return found;
}
