/*-------------------------------------------------------------------------
 *
 * lease_tables.c
 *	  The rows attached to leases follow their tables through a kmd_ddl
 *	  statement: a table renamed or moved keeps them, a dropped one loses
 *	  them, and a changed primary key notes them again under the new key.
 *
 * kommander.lease_rows names each row by its table's name and its
 * primary key, as an object of the key's columns; the lease's end deletes
 * the rows so named, and a row command detaches a row by the same name.
 * Both must keep meaning the row they meant before the statement, the
 * same on every node: the statement runs at one point of every
 * partition's log, so every node has the same rows to look at.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/lease_tables.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/relation.h"
#include "access/table.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "command.h"
#include "identity.h"
#include "keyrange.h"
#include "lease.h"
#include "rows_int.h"
#include "table_keys.h"

/* A column of a table's primary key */
typedef struct KeyColumn
{
	AttrNumber	attnum;
	char	   *name;
	Oid			type;
	int32		typmod;
} KeyColumn;

/* A table rows of leases are attached to, as kept and as found here */
typedef struct LeasedTable
{
	char	   *name;			/* kommander.lease_rows.tbl */
	Oid			relid;			/* InvalidOid: no such table */
	List	   *key;			/* of KeyColumn: its primary key before */
} LeasedTable;

/*
 * The tables kmd_lease_tables_before found, while the statement runs
 * (kmd_lease_tables_check_retype); NIL outside one.
 */
static List *running = NIL;

static void
exec_sql(const char *sql, int nargs, Oid *types, Datum *values, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);

	if (rc != expect)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
}

/*
 * The primary key of `relid' as it is now, NIL when it has none: read from
 * the catalogs, with no lock on the table, so that a session's lock on a
 * table leases hold rows of holds back no kmd_ddl.
 */
static List *
primary_key(Oid relid)
{
	Oid			pkidx = kmd_primary_key_index(relid);
	HeapTuple	index;
	Form_pg_index form;
	List	   *key = NIL;

	if (!OidIsValid(pkidx))
		return NIL;
	index = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pkidx));
	if (!HeapTupleIsValid(index))
		elog(ERROR, "cache lookup failed for index %u", pkidx);
	form = (Form_pg_index) GETSTRUCT(index);
	for (int i = 0; i < form->indnkeyatts; i++)
	{
		KeyColumn  *c = palloc(sizeof(KeyColumn));
		HeapTuple	att;

		c->attnum = form->indkey.values[i];
		att = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(c->attnum));
		if (!HeapTupleIsValid(att))
			elog(ERROR, "cache lookup failed for attribute %d of relation %u", c->attnum, relid);
		c->name = pstrdup(NameStr(((Form_pg_attribute) GETSTRUCT(att))->attname));
		c->type = ((Form_pg_attribute) GETSTRUCT(att))->atttypid;
		c->typmod = ((Form_pg_attribute) GETSTRUCT(att))->atttypmod;
		ReleaseSysCache(att);
		key = lappend(key, c);
	}
	ReleaseSysCache(index);
	return key;
}

static bool
same_key(List *a, List *b)
{
	ListCell   *la;
	ListCell   *lb;

	if (list_length(a) != list_length(b))
		return false;
	forboth(la, a, lb, b)
	{
		KeyColumn  *ca = lfirst(la);
		KeyColumn  *cb = lfirst(lb);

		if (ca->attnum != cb->attnum || ca->type != cb->type || ca->typmod != cb->typmod ||
			strcmp(ca->name, cb->name) != 0)
			return false;
	}
	return true;
}

List *
kmd_lease_tables_before(void)
{
	List	   *tables = NIL;

	exec_sql("SELECT tbl, pg_catalog.to_regclass(tbl) "
			 "FROM (SELECT DISTINCT tbl FROM kommander.lease_rows) t ORDER BY tbl",
			 0, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		LeasedTable *t = palloc0(sizeof(LeasedTable));
		bool		isnull;
		Datum		relid = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);

		t->name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		t->relid = isnull ? InvalidOid : DatumGetObjectId(relid);
		if (OidIsValid(t->relid))
			t->key = primary_key(t->relid);
		tables = lappend(tables, t);
	}
	return tables;
}

void
kmd_lease_tables_run(List *tables)
{
	running = tables;
}

void
kmd_lease_tables_ran(void)
{
	running = NIL;
}

/*
 * The query that finds, as the table's owner, the rows that the old keys
 * `$1' (jsonb[]) name: their number in `$1', their new key and its first
 * column (the routing column).  The old
 * key's values are read as the types they had, and cast to those their
 * columns have now, as ALTER COLUMN TYPE without USING converted the
 * rows (one with USING is refused while rows are held: see
 * kmd_lease_tables_check_retype); a type gone since is read as the new.
 */
static char *
rekey_query(const char *tbl, Oid relid, List *before, List *now)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "SELECT o.i, pg_catalog.jsonb_build_object(");
	foreach(lc, now)
	{
		KeyColumn  *c = lfirst(lc);

		appendStringInfo(&buf, "%s%s, t.%s", lc == list_head(now) ? "" : ", ",
						 quote_literal_cstr(c->name), quote_identifier(c->name));
	}
	appendStringInfo(&buf, "), t.%s", quote_identifier(((KeyColumn *) linitial(now))->name));
	appendStringInfoString(&buf, " FROM pg_catalog.unnest($1) WITH ORDINALITY AS o (pk, i), "
						   "LATERAL pg_catalog.jsonb_to_record(pg_catalog.jsonb_build_object(");
	foreach(lc, before)
	{
		KeyColumn  *c = lfirst(lc);

		appendStringInfo(&buf, "%s%s, o.pk OPERATOR(pg_catalog.->) %s",
						 lc == list_head(before) ? "" : ", ",
						 quote_literal_cstr(get_attname(relid, c->attnum, false)),
						 quote_literal_cstr(c->name));
	}
	appendStringInfoString(&buf, ")) AS k (");
	foreach(lc, before)
	{
		KeyColumn  *c = lfirst(lc);
		char	   *name = get_attname(relid, c->attnum, false);

		appendStringInfo(&buf, "%s%s %s", lc == list_head(before) ? "" : ", ",
						 quote_identifier(name),
						 SearchSysCacheExists1(TYPEOID, ObjectIdGetDatum(c->type)) ?
						 format_type_extended(c->type, c->typmod,
											  FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY) :
						 kmd_rows_column_type(relid, name));
	}
	appendStringInfo(&buf, ") JOIN %s AS t ON ", tbl);
	foreach(lc, before)
	{
		KeyColumn  *c = lfirst(lc);
		char	   *name = get_attname(relid, c->attnum, false);

		appendStringInfo(&buf, "%st.%s %s (k.%s)::%s", lc == list_head(before) ? "" : " AND ",
						 quote_identifier(name), kmd_rows_equality(relid, name),
						 quote_identifier(name), kmd_rows_column_type(relid, name));
	}
	appendStringInfoString(&buf, " ORDER BY o.i");
	return buf.data;
}

/*
 * Run rekey_query for the old keys `old_pks' of table `t', named `tbl'
 * now, as the table's owner: its types' and operators' code runs, the
 * output function of the routing column's type too, which makes the text
 * of each row's routing key (returned, one per row found).
 */
static char **
find_rows(LeasedTable *t, const char *tbl, List *now, ArrayType *old_pks)
{
	Oid			types[1] = {JSONBARRAYOID};
	Datum		values[1] = {PointerGetDatum(old_pks)};
	KmdRoleSaved saved;
	volatile bool done = false;
	char	  **volatile routing = NULL;

	kmd_role_enter(&saved, kmd_rel_owner(t->relid));
	PG_TRY();
	{
		Oid			output;
		bool		varlena;

		exec_sql(rekey_query(tbl, t->relid, t->key, now), 1, types, values, SPI_OK_SELECT);
		routing = palloc(sizeof(char *) * Max(SPI_processed, 1));
		getTypeOutputInfo(TupleDescAttr(SPI_tuptable->tupdesc, 2)->atttypid, &output, &varlena);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			bool		isnull;
			Datum		v = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 3, &isnull);

			/* a primary-key column: never null */
			routing[r] = isnull ? NULL : OidOutputFunctionCall(output, v);
		}
		done = true;
	}
	PG_FINALLY();
	{
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
	return routing;
}

/*
 * The rows of leases in table `t' (named `tbl' now) noted again under its
 * primary key `now', from the key they were noted under: each row the old
 * key still finds is noted under its new key, one it no longer finds (the
 * statement deleted it) is no longer attached.  Refused when the table
 * has no primary key left, when a column of the old key is gone, when
 * an old key finds two rows (which of them a lease holds would be a
 * guess), or when a row's routing key changes: the lease and the notes of
 * its rows are its partition's, and its end, applied there, could not
 * delete a row that another partition holds now.
 */
static void
rekey(LeasedTable *t, const char *tbl, List *now)
{
	Relation	rel;
	ListCell   *lc;
	Oid			types[4] = {TEXTOID, JSONBARRAYOID, TEXTARRAYOID, INT8ARRAYOID};
	Datum		values[4];
	int			n;
	Datum	   *keys;
	Datum	   *old_pks;
	Datum	   *leases;
	Datum	   *new_pks;
	bool	   *found;
	int			kept = 0;
	char	  **routing;

	if (now == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("kmd_ddl cannot leave control table %s without a primary key while leases hold rows of it", tbl),
				 errdetail("A lease notes the rows it holds under their primary key."),
				 errhint("Drop the primary key and add the new one in one kmd_ddl call.")));
	rel = relation_open(t->relid, AccessShareLock);
	foreach(lc, t->key)
	{
		KeyColumn  *c = lfirst(lc);

		if (c->attnum > RelationGetNumberOfAttributes(rel) ||
			TupleDescAttr(RelationGetDescr(rel), c->attnum - 1)->attisdropped)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("kmd_ddl cannot drop column \"%s\" of control table %s while leases hold rows of it under a primary key that has it",
							c->name, tbl),
					 errdetail("A lease notes the rows it holds under their primary key."),
					 errhint("Give the table its new primary key in an earlier kmd_ddl call than the one that drops the column.")));
	}
	relation_close(rel, AccessShareLock);

	values[0] = CStringGetTextDatum(tbl);
	exec_sql("SELECT key, pk, lease FROM kommander.lease_rows WHERE tbl OPERATOR(pg_catalog.=) $1 "
			 "ORDER BY key, pk", 1, types, values, SPI_OK_SELECT);
	n = (int) SPI_processed;
	keys = palloc(sizeof(Datum) * n);
	old_pks = palloc(sizeof(Datum) * n);
	leases = palloc(sizeof(Datum) * n);
	new_pks = palloc(sizeof(Datum) * n);
	found = palloc0(sizeof(bool) * n);
	for (int i = 0; i < n; i++)
	{
		HeapTuple	row = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;

		keys[i] = datumCopy(SPI_getbinval(row, desc, 1, &isnull), false, -1);
		old_pks[i] = datumCopy(SPI_getbinval(row, desc, 2, &isnull), false, -1);
		leases[i] = SPI_getbinval(row, desc, 3, &isnull);
	}

	routing = find_rows(t, tbl, now, construct_array(old_pks, n, JSONBOID, -1, false, TYPALIGN_INT));
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		bool		isnull;
		int			i = (int) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &isnull)) - 1;

		if (found[i])
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("kmd_ddl cannot change the primary key of control table %s: the old key %s of a row a lease holds finds more than one row",
							tbl, JsonbToCString(NULL, &DatumGetJsonbP(old_pks[i])->root, 0)),
					 errdetail("A lease notes the rows it holds under their primary key."),
					 errhint("End the leases holding rows of %s first.", tbl)));
		/* (an entry of an older version: applied as it was) */
		if ((kmd_apply_range.rules & KMD_RULE_APPLY_CHECKS) &&
			(routing[r] == NULL || strcmp(routing[r], TextDatumGetCString(keys[i])) != 0))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("kmd_ddl cannot change the routing key of rows of control table %s that leases hold",
							tbl),
					 errdetail("The row a lease holds under key \"%s\" would have the routing key \"%s\"; a lease holds rows of its own partition.",
							   TextDatumGetCString(keys[i]), routing[r] ? routing[r] : ""),
					 errhint("End the leases holding rows of %s first.", tbl)));
		found[i] = true;
		new_pks[i] = datumCopy(SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 2, &isnull),
							   false, -1);
	}

	/* all at once: a row's new key may be another's old one */
	for (int i = 0; i < n; i++)
	{
		if (!found[i])
			continue;
		keys[kept] = keys[i];
		new_pks[kept] = new_pks[i];
		leases[kept] = leases[i];
		kept++;
	}
	exec_sql("DELETE FROM kommander.lease_rows WHERE tbl OPERATOR(pg_catalog.=) $1",
			 1, types, values, SPI_OK_DELETE);
	if (kept == 0)
		return;
	values[1] = PointerGetDatum(construct_array(new_pks, kept, JSONBOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_array(keys, kept, TEXTOID, -1, false, TYPALIGN_INT));
	values[3] = PointerGetDatum(construct_array(leases, kept, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	exec_sql("INSERT INTO kommander.lease_rows SELECT u.key, $1, u.pk, u.lease "
			 "FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($2), pg_catalog.unnest($4)) "
			 "AS u (key, pk, lease) ON CONFLICT DO NOTHING", 4, types, values, SPI_OK_INSERT);
	if (SPI_processed < (uint64) kept)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("kmd_ddl cannot change the primary key of control table %s: two rows leases hold would have the same new key",
						tbl),
				 errdetail("A lease notes the rows it holds under their primary key."),
				 errhint("End the leases holding rows of %s first.", tbl)));
}

/*
 * ALTER COLUMN `column' TYPE ... USING, of control table `relid', in a
 * kmd_ddl statement: refused (0A000) when leases held rows of the table
 * as the statement began, noted under a primary key that has the column
 * (an earlier part of the statement may have renamed the table or the
 * column, or replaced the key: the rows are found by their old key
 * after it all).  The expression may give a row the old key of another.
 */
void
kmd_lease_tables_check_retype(Oid relid, const char *column)
{
	AttrNumber	attnum = get_attnum(relid, column);
	ListCell   *lc;

	if (attnum == InvalidAttrNumber)
		return;
	foreach(lc, running)
	{
		LeasedTable *t = lfirst(lc);
		ListCell   *kc;

		if (t->relid != relid)
			continue;
		foreach(kc, t->key)
			if (((KeyColumn *) lfirst(kc))->attnum == attnum)
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("kmd_ddl cannot change the type of primary key column \"%s\" of control table %s with USING while leases hold rows of it",
								column, t->name),
						 errdetail("A lease notes the rows it holds under their primary key, and finds them again by it."),
						 errhint("Change the type without USING, or end the leases holding rows of %s first.",
								 t->name)));
	}
}

/*
 * Does a value of type `outer' hold one of type `inner': is it that type,
 * a domain over one that does, an array, range or multirange of one, or a
 * composite with an attribute that does?  Read from the catalogs, with no
 * lock; `seen' holds the types already looked into.
 */
static bool
type_holds(Oid outer, Oid inner, List **seen)
{
	Oid			relid;
	Oid			sub;
	HeapTuple	rel;
	int			natts;

	check_stack_depth();
	if (outer == inner)
		return true;
	if (list_member_oid(*seen, outer))
		return false;
	*seen = lappend_oid(*seen, outer);
	if (get_typtype(outer) == TYPTYPE_DOMAIN)
		return type_holds(getBaseType(outer), inner, seen);
	if (OidIsValid(sub = get_element_type(outer)) ||
		OidIsValid(sub = get_range_subtype(outer)) ||
		OidIsValid(sub = get_multirange_range(outer)))
		return type_holds(sub, inner, seen);
	relid = get_typ_typrelid(outer);
	if (!OidIsValid(relid) ||
		!HeapTupleIsValid(rel = SearchSysCache1(RELOID, ObjectIdGetDatum(relid))))
		return false;
	natts = ((Form_pg_class) GETSTRUCT(rel))->relnatts;
	ReleaseSysCache(rel);
	for (AttrNumber attnum = 1; attnum <= natts; attnum++)
	{
		HeapTuple	att = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid),
										  Int16GetDatum(attnum));
		bool		holds;

		if (!HeapTupleIsValid(att))
			continue;
		holds = !((Form_pg_attribute) GETSTRUCT(att))->attisdropped &&
			type_holds(((Form_pg_attribute) GETSTRUCT(att))->atttypid, inner, seen);
		ReleaseSysCache(att);
		if (holds)
			return true;
	}
	return false;
}

/*
 * A kmd_ddl statement that changes how values of type `typid' are written
 * (an enum's value renamed, a composite's attributes or a table's columns
 * added, dropped, renamed or retyped): refused (0A000) when leases held
 * rows of a control table as the statement began whose primary key has
 * values of the type.  The rows are noted under their key as JSON and
 * routed by its first column's text: neither would find the row again,
 * or the row could move to a partition other than its lease's.
 */
void
kmd_lease_tables_check_type(Oid typid)
{
	ListCell   *lc;

	/*
	 * (an entry of an older version: applied as it was; a statement an
	 * image replays: it ran, and the notes are the image's to bring)
	 */
	if (!(kmd_apply_range.rules & KMD_RULE_APPLY_CHECKS) || kmd_keys_replaying)
		return;
	foreach(lc, running)
	{
		LeasedTable *t = lfirst(lc);
		ListCell   *kc;

		foreach(kc, t->key)
		{
			KeyColumn  *c = lfirst(kc);
			List	   *seen = NIL;

			if (SearchSysCacheExists1(TYPEOID, ObjectIdGetDatum(c->type)) &&
				type_holds(c->type, typid, &seen))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("kmd_ddl cannot change type %s while leases hold rows of control table %s, whose primary key column \"%s\" has values of it",
								format_type_be(typid), t->name, c->name),
						 errdetail("A lease notes the rows it holds under their primary key, as written, and routes them by it."),
						 errhint("End the leases holding rows of %s first.", t->name)));
		}
	}
}

/*
 * After a kmd_ddl statement, the rows attached to leases follow their
 * table renamed or moved to another schema, and go with one dropped: a
 * table created later under its name holds none of them.  The whole
 * mapping is made first and applied as a whole, the drops first, so that
 * names a statement passed from one table to another (a drop and a rename
 * into its name, a swap) move each row once, on every node alike,
 * whatever order the tables were listed in.  Then the rows of a table
 * whose primary key changed are noted under the new one.
 */
void
kmd_lease_tables_follow(List *tables)
{
	ListCell   *lc;
	List	   *gone = NIL;
	List	   *from = NIL;
	List	   *to = NIL;
	Oid			types[2] = {TEXTARRAYOID, TEXTARRAYOID};
	Datum		values[2];

	foreach(lc, tables)
	{
		LeasedTable *t = lfirst(lc);
		char	   *name;

		/* a name that meant no table already holds nothing a lease can end */
		if (!OidIsValid(t->relid) ||
			!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(t->relid)))
		{
			gone = lappend(gone, t->name);
			t->relid = InvalidOid;
			continue;
		}
		name = quote_qualified_identifier(get_namespace_name(get_rel_namespace(t->relid)),
										  get_rel_name(t->relid));
		if (strcmp(name, t->name) == 0)
			continue;
		from = lappend(from, t->name);
		to = lappend(to, name);
	}
	if (gone != NIL)
	{
		values[0] = PointerGetDatum(strlist_to_textarray(gone));
		exec_sql("DELETE FROM kommander.lease_rows WHERE tbl OPERATOR(pg_catalog.=) ANY ($1)",
				 1, types, values, SPI_OK_DELETE);
	}

	/*
	 * Through names no table has (a quoted qualified name never starts with
	 * a space): the key (key, tbl, pk) is checked row by row, and two
	 * tables that trade names would meet halfway, in an order of rows that
	 * differs by node.
	 */
	if (from != NIL)
	{
		values[0] = PointerGetDatum(strlist_to_textarray(from));
		values[1] = PointerGetDatum(strlist_to_textarray(to));
		exec_sql("UPDATE kommander.lease_rows r SET tbl = ' ' OPERATOR(pg_catalog.||) m.new "
				 "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2)) AS m (old, new) "
				 "WHERE r.tbl OPERATOR(pg_catalog.=) m.old",
				 2, types, values, SPI_OK_UPDATE);
		exec_sql("UPDATE kommander.lease_rows SET tbl = pg_catalog.substr(tbl, 2) "
				 "WHERE pg_catalog.left(tbl, 1) OPERATOR(pg_catalog.=) ' '",
				 0, NULL, NULL, SPI_OK_UPDATE);
	}

	/* a table that had no key noted its rows under none this can follow */
	foreach(lc, tables)
	{
		LeasedTable *t = lfirst(lc);
		List	   *now;

		if (!OidIsValid(t->relid) || t->key == NIL)
			continue;
		now = primary_key(t->relid);
		if (!same_key(t->key, now))
			rekey(t, quote_qualified_identifier(get_namespace_name(get_rel_namespace(t->relid)),
												get_rel_name(t->relid)), now);
	}
}
