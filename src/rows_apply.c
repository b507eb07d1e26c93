/*-------------------------------------------------------------------------
 *
 * rows_apply.c
 *	  Applying a committed command of kmd_propose (parsed by rows.c): its
 *	  row changes, as each table's owner, its appliers' calls, as each
 *	  function's owner, a batch all or nothing, and the result handed back
 *	  to the proposer.
 *
 * Values reach SQL only as parameters (jsonb_to_record);
 * identifiers are quoted; functions and operators are named with their
 * schemas, since the statements run as other roles than their proposers.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/rows_apply.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "command.h"
#include "errcodes.h"
#include "identity.h"
#include "lease.h"
#include "plans.h"
#include "rows.h"
#include "rows_int.h"
#include "shmem.h"
#include "stats.h"

/* a result and its framing fit in a proposal slot */
StaticAssertDecl(KMD_RESULT_LIMIT + 64 <= KMD_MAX_RESULT,
				 "KMD_RESULT_LIMIT leaves no room for the framing of a result");

/* "a, b" or "p.a, p.b" for the keys of a jsonb object */
static char *
column_list(Jsonb *obj, const char *prefix, const char *sep, const char *fmt)
{
	StringInfoData buf;
	JsonbIterator *it = JsonbIteratorInit(&obj->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	bool		first = true;

	initStringInfo(&buf);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		const char *col;

		if (tok != WJB_KEY)
			continue;
		col = quote_identifier(pnstrdup(v.val.string.val, v.val.string.len));
		if (!first)
			appendStringInfoString(&buf, sep);
		first = false;
		if (fmt)
			appendStringInfo(&buf, fmt, col, col);
		else
			appendStringInfo(&buf, "%s%s", prefix, col);
	}
	return buf.data;
}

static uint64
run(const char *sql, int nargs, Jsonb **args)
{
	Oid			types[4] = {JSONBOID, JSONBOID, JSONBOID, JSONBOID};
	Datum		values[4];
	int			rc;

	for (int i = 0; i < nargs; i++)
		values[i] = JsonbPGetDatum(args[i]);
	rc = kmd_plan_execute(sql, nargs, types, values, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* A condition did not hold under "strict"; `pos' >= 0 in a batch. */
static void
condition_failed(RowCommand *c, int pos)
{
	if (pos < 0)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_CONDITION_FAILED),
				 errmsg("condition did not hold for %s", c->qualname),
				 errdetail("The row does not exist or does not match \"if\"; \"strict\" makes this an error.")));
	ereport(ERROR,
			(errcode(ERRCODE_KMD_CONDITION_FAILED),
			 errmsg("condition did not hold for %s", c->qualname),
			 errdetail("The row of command \"commands\"[%d] of the batch does not exist or does not match \"if\"; \"strict\" makes this an error, and nothing of the batch was applied.",
					   pos)));
}

/* The equality operator of the type of column `col' of `relid', or none */
static Oid
equality_of(Oid relid, const char *col, Oid *type)
{
	Oid			eq;

	*type = get_atttype(relid, get_attnum(relid, col));
	if (!OidIsValid(*type))
		elog(ERROR, "column \"%s\" of relation \"%s\" does not exist", col, get_rel_name(relid));
	eq = lookup_type_cache(*type, TYPECACHE_EQ_OPR)->eq_opr;
	/* a type without a btree class may have an "=" of its own (box, circle) */
	if (!OidIsValid(eq))
		eq = OpernameGetOprid(list_make2(makeString("pg_catalog"), makeString("=")),
							  getBaseType(*type), getBaseType(*type));
	return eq;
}

bool
kmd_rows_has_equality(Oid relid, const char *col)
{
	Oid			type;

	return OidIsValid(equality_of(relid, col, &type));
}

char *
kmd_rows_equality(Oid relid, const char *col)
{
	Oid			type;
	Oid			eq = equality_of(relid, col, &type);
	HeapTuple	tup;
	Form_pg_operator opr;
	char	   *name;

	if (!OidIsValid(eq))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("could not identify an equality operator for type %s of column \"%s\"",
						format_type_be(type), col)));
	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(eq));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", eq);
	opr = (Form_pg_operator) GETSTRUCT(tup);
	name = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(opr->oprnamespace)),
					NameStr(opr->oprname));
	ReleaseSysCache(tup);
	return name;
}

/* The type of column `attnum' of `relid', as kmd_rows_column_type */
static char *
attnum_type(Oid relid, AttrNumber attnum)
{
	Oid			typid;
	int32		typmod;
	Oid			collid;

	get_atttypetypmodcoll(relid, attnum, &typid, &typmod, &collid);
	return format_type_extended(typid, typmod,
								FORMAT_TYPE_TYPEMOD_GIVEN | FORMAT_TYPE_FORCE_QUALIFY);
}

char *
kmd_rows_column_type(Oid relid, const char *col)
{
	AttrNumber	attnum = get_attnum(relid, col);

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "column \"%s\" of relation \"%s\" does not exist", col, get_rel_name(relid));
	return attnum_type(relid, attnum);
}

static int
attnum_order(const ListCell *a, const ListCell *b)
{
	return lfirst_int(a) - lfirst_int(b);
}

char *
kmd_rows_record(Oid relid, Jsonb *obj, int param, const char *alias)
{
	StringInfoData buf;
	JsonbIterator *it = JsonbIteratorInit(&obj->root);
	JsonbValue	v;
	JsonbIteratorToken tok;
	List	   *attnums = NIL;
	ListCell   *lc;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *col;
		AttrNumber	attnum;

		if (tok != WJB_KEY)
			continue;
		col = pnstrdup(v.val.string.val, v.val.string.len);
		attnum = get_attnum(relid, col);
		if (attnum == InvalidAttrNumber)
			elog(ERROR, "column \"%s\" of relation \"%s\" does not exist", col, get_rel_name(relid));
		attnums = lappend_int(attnums, attnum);
	}

	/*
	 * In the table's order, as jsonb_populate_record reads a row of it and
	 * the direct write does (rows_direct.c): of two values that fail, the
	 * same one is told.
	 */
	list_sort(attnums, attnum_order);
	initStringInfo(&buf);
	appendStringInfo(&buf, "pg_catalog.jsonb_to_record($%d) AS %s (", param, alias);
	foreach(lc, attnums)
	{
		AttrNumber	attnum = lfirst_int(lc);

		appendStringInfo(&buf, "%s%s %s", lc == list_head(attnums) ? "" : ", ",
						 quote_identifier(get_attname(relid, attnum, false)),
						 attnum_type(relid, attnum));
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/* "t.a OPERATOR(pg_catalog.=) k.a AND ..." for the primary key of `c' */
static char *
key_match(RowCommand *c)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, c->pk)
	{
		const char *col = quote_identifier(lfirst(lc));

		appendStringInfo(&buf, "%st.%s %s k.%s", buf.len ? " AND " : "", col,
						 kmd_rows_equality(c->relid, lfirst(lc)), col);
	}
	return buf.data;
}

char *
kmd_rows_columns_match(Oid relid, Jsonb *columns, const char *alias, bool nulls_match)
{
	StringInfoData buf;
	JsonbIterator *it = JsonbIteratorInit(&columns->root);
	JsonbValue	v;
	JsonbIteratorToken tok;

	initStringInfo(&buf);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *name;
		const char *col;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(v.val.string.val, v.val.string.len);
		col = quote_identifier(name);
		if (buf.len > 0)
			appendStringInfoString(&buf, " AND ");
		/* num_nulls, as a composite of nulls IS NULL but is not NULL */
		if (nulls_match)
			appendStringInfo(&buf, "(pg_catalog.num_nulls(t.%s, %s.%s) OPERATOR(pg_catalog.=) 2 OR ",
							 col, alias, col);
		appendStringInfo(&buf, "t.%s %s %s.%s", col, kmd_rows_equality(relid, name), alias, col);
		if (nulls_match)
			appendStringInfoChar(&buf, ')');
	}
	return buf.data;
}

/*
 * The row `c' names as it is now, as JSON text, into `current' ("null"
 * when there is none, or when it is too large to come back whole).
 */
static void
current_row(RowCommand *c, StringInfo current)
{
	Jsonb	   *args[1] = {c->key};
	char	   *sql = psprintf("SELECT pg_catalog.to_jsonb(t)::text FROM %s AS t, %s WHERE %s",
							   c->qualname, kmd_rows_record(c->relid, c->key, 1, "k"),
							   key_match(c));
	char	   *volatile text = NULL;
	KmdRoleSaved saved;
	volatile bool done = false;

	/*
	 * As the table's owner, as the command ran: reading the row may run the
	 * owner's code (a domain's check, an output function).  Its text in
	 * the apply worker's settings, not those a trigger of the command set.
	 */
	kmd_role_enter(&saved, c->owner);
	PG_TRY();
	{
		(void) kmd_stored_text_settings();
		if (run(sql, 1, args) == 1)
			text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		done = true;
	}
	PG_FINALLY();
	{
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
	resetStringInfo(current);
	appendStringInfoString(current, text != NULL && strlen(text) <= KMD_RESULT_LIMIT / 2 ?
						   text : "null");
}

/*
 * Check that the proposer decided the value of every column of an insert
 * that would take its node's own (rows.c, push_defaults).  One it did not
 * is a column or default added after it prepared the command, whose entry
 * came after the DDL in the log: the command fails (40001), as it does on
 * every node, since all apply it after the same DDL.  Sets *override when
 * a GENERATED ALWAYS identity column takes the proposer's value; the
 * statement's OVERRIDING SYSTEM VALUE would take the row's too, which
 * Postgres refuses (428C9), and so does this.  A default holding a time in
 * a composite or multirange value is insisted on only when the proposer
 * decided such defaults (`rules'): older proposers left them to each node.
 */
static void
check_defaults_decided(RowCommand *c, Jsonb *inserted, uint32 rules, bool *override)
{
	ListCell   *lc;

	*override = false;
	foreach(lc, c->varying)
	{
		KmdVaryingDefault *v = lfirst(lc);
		const char *name = NameStr(v->name);

		if (v->identity == ATTRIBUTE_IDENTITY_ALWAYS && kmd_rows_names(c->row, name))
			ereport(ERROR,
					(errcode(ERRCODE_GENERATED_ALWAYS),
					 errmsg("cannot insert a non-DEFAULT value into column \"%s\"", name),
					 errdetail("Column \"%s\" is an identity column defined as GENERATED ALWAYS.", name)));
		if (!kmd_rows_names(inserted, name) &&
			(v->required || (rules & KMD_RULE_WIDE_DEFAULTS)))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("column \"%s\" of %s has a default that the command's proposer did not decide",
							name, c->qualname),
					 errdetail("The column or its default was added after the command was proposed; every node would store a value of its own."),
					 errhint("Propose the command again.")));
		if (v->identity == ATTRIBUTE_IDENTITY_ALWAYS)
			*override = true;
	}
}

/*
 * Read the values of update or delete `c' as its table's types, in the
 * command's order (key, set, add, if) and each in the table's: a value its
 * column refuses fails the command whether or not the key's row exists.
 * The statement reads them lazily, the record of one only when the plan
 * gets to it, and plans differ between nodes (their settings, their
 * statistics): some would fail and others apply nothing.
 */
static void
read_values(RowCommand *c)
{
	Jsonb	   *objs[4] = {c->key, c->set, c->add, c->cond};
	Relation	rel = try_table_open(c->relid, RowExclusiveLock);
	TupleDesc	desc;
	Datum	   *v;
	bool	   *n;

	if (rel == NULL)
		return;					/* gone: the statement says so */
	desc = RelationGetDescr(rel);
	v = palloc(sizeof(Datum) * desc->natts);
	n = palloc(sizeof(bool) * desc->natts);
	for (int i = 0; i < lengthof(objs); i++)
		if (objs[i] != NULL)
			kmd_rows_read_values(rel, objs[i], v, n);
	table_close(rel, NoLock);
	pfree(v);
	pfree(n);
}

/*
 * Run one row command (SPI connected); false when its condition did not
 * hold, an error then if `strict' (`pos' >= 0: its place in a batch), else,
 * outside a batch, the row as it is goes to `current'.
 */
static bool
apply_row(RowCommand *c, const KmdApplyContext *ctx, bool strict, int pos, StringInfo current)
{
	StringInfoData sql;
	Jsonb	   *args[4];
	Jsonb	   *inserted;
	bool		override;
	int			nargs = 0;
	uint64		n;

	initStringInfo(&sql);
	switch (c->op)
	{
		case OP_INSERT:
		case OP_UPSERT:
			/* the proposer's defaults for the row it inserts, not its update */
			inserted = c->defaults == NULL ? c->row :
				DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(c->defaults),
												   JsonbPGetDatum(c->row)));
			check_defaults_decided(c, inserted, ctx->rules, &override);
			if (kmd_rows_write_direct(c, inserted))
			{
				kmd_stat_add(KMD_STAT_DIRECT_WRITES, -1, 1);
				return true;
			}
			appendStringInfo(&sql, "INSERT INTO %s (%s) %sSELECT %s FROM %s",
							 c->qualname, column_list(inserted, "", ", ", NULL),
							 override ? "OVERRIDING SYSTEM VALUE " : "",
							 column_list(inserted, "r.", ", ", NULL),
							 kmd_rows_record(c->relid, inserted, 1, "r"));
			if (c->op == OP_UPSERT)
			{
				StringInfoData set;
				JsonbIterator *it = JsonbIteratorInit(&c->row->root);
				JsonbValue	v;
				JsonbIteratorToken tok;
				ListCell   *lc;

				initStringInfo(&set);
				while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
				{
					char	   *col;

					if (tok != WJB_KEY)
						continue;
					col = pnstrdup(v.val.string.val, v.val.string.len);
					if (kmd_rows_is_pk(c, col))
						continue;
					appendStringInfo(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "",
									 quote_identifier(col), quote_identifier(col));
				}
				appendStringInfoString(&sql, " ON CONFLICT (");
				foreach(lc, c->pk)
					appendStringInfo(&sql, "%s%s", lc == list_head(c->pk) ? "" : ", ",
									 quote_identifier(lfirst(lc)));
				if (set.len > 0)
					appendStringInfo(&sql, ") DO UPDATE SET %s", set.data);
				else
					appendStringInfoString(&sql, ") DO NOTHING");
			}
			args[nargs++] = inserted;
			(void) run(sql.data, nargs, args);
			return true;
		case OP_UPDATE:
			read_values(c);
			{
				/* values from s, the column plus n from d ("add") */
				const char *values = c->set ? column_list(c->set, NULL, ", ", "%s = s.%s") : "";
				const char *adds = c->add ? column_list(c->add, NULL, ", ", "%1$s = t.%1$s OPERATOR(pg_catalog.+) d.%2$s") : "";

				appendStringInfo(&sql, "UPDATE %s AS t SET %s%s%s FROM %s",
								 c->qualname, values, values[0] && adds[0] ? ", " : "", adds,
								 kmd_rows_record(c->relid, c->key, nargs + 1, "k"));
				args[nargs++] = c->key;
				if (c->set)
				{
					appendStringInfo(&sql, ", %s", kmd_rows_record(c->relid, c->set, nargs + 1, "s"));
					args[nargs++] = c->set;
				}
				if (c->add)
				{
					appendStringInfo(&sql, ", %s", kmd_rows_record(c->relid, c->add, nargs + 1, "d"));
					args[nargs++] = c->add;
				}
			}
			break;
		case OP_DELETE:
			read_values(c);
			appendStringInfo(&sql, "DELETE FROM %s AS t USING %s",
							 c->qualname, kmd_rows_record(c->relid, c->key, 1, "k"));
			args[nargs++] = c->key;
			break;
		default:
			elog(ERROR, "not a row command");
	}
	if (c->cond)
	{
		appendStringInfo(&sql, ", %s", kmd_rows_record(c->relid, c->cond, nargs + 1, "w"));
		args[nargs++] = c->cond;
	}
	appendStringInfo(&sql, " WHERE %s", key_match(c));
	/* "if": each column IS NOT DISTINCT FROM its value */
	if (c->cond)
		appendStringInfo(&sql, " AND %s", kmd_rows_columns_match(c->relid, c->cond, "w", true));
	n = run(sql.data, nargs, args);
	if (n == 0 && strict)
		condition_failed(c, pos);
	if (n == 0 && pos < 0)
		current_row(c, current);
	return n > 0;
}

static Oid
function_owner(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn);
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	return owner;
}

/* A result of `len' bytes is refused beyond the limit; `fn': the applier. */
static void
result_limit(size_t len, Oid fn)
{
	if (len <= KMD_RESULT_LIMIT)
		return;
	if (OidIsValid(fn))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("result of applier %s is too large", format_procedure(fn)),
				 errdetail("It has %zu bytes as JSON text; a command's result may have at most %d. Nothing was applied.",
						   len, KMD_RESULT_LIMIT)));
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("results of the batch are too large"),
			 errdetail("They have %zu bytes as JSON text; a command's result may have at most %d. Nothing was applied.",
					   len, KMD_RESULT_LIMIT)));
}

/*
 * The entry's kommander.apply_context, as the composite datum an applier
 * takes.
 */
static Datum
context_datum(const KmdApplyContext *ctx)
{
	Oid			type = GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
									   CStringGetDatum("apply_context"),
									   ObjectIdGetDatum(get_namespace_oid("kommander", false)));
	static const Oid types[6] = {INT4OID, INT8OID, INT8OID, TEXTOID, INT4OID, TIMESTAMPTZOID};
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};
	HeapTuple	tuple;

	if (!OidIsValid(type))
		elog(ERROR, "type kommander.apply_context does not exist");
	values[0] = Int32GetDatum(ctx->partition_id);
	values[1] = Int64GetDatum((int64) ctx->index);
	values[2] = Int64GetDatum((int64) ctx->term);
	values[3] = CStringGetTextDatum(ctx->key ? ctx->key : "");
	values[4] = Int32GetDatum(ctx->origin_node);
	/* an entry of a proposer that did not decide a time has none */
	values[5] = TimestampTzGetDatum((TimestampTz) ctx->proposed_at);
	nulls[5] = ctx->proposed_at == 0;
	desc = lookup_rowtype_tupdesc(type, -1);
	if (desc->natts != lengthof(types))
		elog(ERROR, "type kommander.apply_context has %d attributes, not %d",
			 desc->natts, (int) lengthof(types));
	for (int i = 0; i < desc->natts; i++)
		if (TupleDescAttr(desc, i)->attisdropped || TupleDescAttr(desc, i)->atttypid != types[i])
			elog(ERROR, "attribute %d of type kommander.apply_context is not of type %s",
				 i + 1, format_type_be(types[i]));
	tuple = heap_form_tuple(desc, values, nulls);
	ReleaseTupleDesc(desc);
	return HeapTupleGetDatum(tuple);
}

/*
 * Call an applier (SPI connected); its result, as JSON text, goes to
 * `result' (left empty for NULL).  The function registered is called by
 * its oid, as a trigger is: a call by name would find another function
 * of that name that a role that may create in its schema added (an
 * overload with an argument more that has a default makes the name
 * ambiguous), on the nodes that have it.  A result larger than
 * KMD_RESULT_LIMIT is an error: it fails the command on every node alike,
 * rather than reach the proposer cut short or not at all.
 */
static void
apply_call(RowCommand *c, const KmdApplyContext *ctx, StringInfo result)
{
	FmgrInfo	flinfo;
	LOCAL_FCINFO(fcinfo, 2);
	PgStat_FunctionCallUsage usage;
	Datum		d;

	/* what a statement calling it would check, as the function's owner */
	if (get_func_prokind(c->fn) != PROKIND_FUNCTION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("applier %s is not a function", format_procedure(c->fn)),
				 errhint("Register a plain function fn(jsonb, kommander.apply_context) returning jsonb.")));
	if (pg_proc_aclcheck(c->fn, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, get_func_name(c->fn));
	InvokeFunctionExecuteHook(c->fn);
	fmgr_info(c->fn, &flinfo);
	InitFunctionCallInfoData(*fcinfo, &flinfo, 2, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = JsonbPGetDatum(c->args);
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = context_datum(ctx);
	fcinfo->args[1].isnull = false;

	/* as SPI runs a statement that may write: its writes seen, and seen by it */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_init_function_usage(fcinfo, &usage);
	d = FunctionCallInvoke(fcinfo);
	pgstat_end_function_usage(&usage, true);
	PopActiveSnapshot();
	CommandCounterIncrement();
	if (!fcinfo->isnull)
	{
		Jsonb	   *j = DatumGetJsonbP(d);
		char	   *text = JsonbToCString(NULL, &j->root, VARSIZE(j));

		result_limit(strlen(text), c->fn);
		appendStringInfoString(result, text);
	}
}

/*
 * The role whose commands queued the deferred triggers not yet fired: they
 * fire as that role when a command of another one comes, or when the entry
 * ends (kmd_rows_fire_deferred).  So the commands of a batch whose tables
 * have one owner check their deferred constraints together at its end, as
 * in one transaction, and no trigger fires as the apply worker's
 * superuser.
 */
static Oid	deferred_role = InvalidOid;

void
kmd_rows_fire_deferred(void)
{
	Oid			role = deferred_role;

	deferred_role = InvalidOid;
	if (OidIsValid(role))
		kmd_fire_deferred_as(role);
}

void
kmd_rows_forget_deferred(void)
{
	deferred_role = InvalidOid;
}

/*
 * Run one command, not a batch, with the privileges of the table's owner
 * (an applier's function's owner); see apply_row and apply_call.  `result'
 * gets a call's result, or the row as it is when a condition did not hold.
 */
static bool
apply_one(RowCommand *c, const KmdApplyContext *ctx, bool strict, int pos, StringInfo result)
{
	volatile Oid role = c->op == OP_CALL ? function_owner(c->fn) : c->owner;
	KmdRoleSaved saved;
	volatile bool applied = true;
	volatile bool done = false;

	/* the entry's time, decided by its proposer: the same on every node */
	if (c->op == OP_UPDATE)
		kmd_rows_fold_now_plus(c, ctx->proposed_at);
	if (deferred_role != role)
		kmd_rows_fire_deferred();
	kmd_role_enter(&saved, role);
	PG_TRY();
	{
		SPI_connect();
		if (c->op == OP_CALL)
			apply_call(c, ctx, result);
		else
			applied = apply_row(c, ctx, strict, pos, result);
		SPI_finish();
		deferred_role = role;
		done = true;
	}
	PG_FINALLY();
	{
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
	/* which lease holds the row (as the apply worker's role: its tables) */
	if (applied && c->op != OP_CALL)
		kmd_lease_track(c, ctx->key);
	return applied;
}

/*
 * Apply a batch, all or nothing, in a subtransaction of its own: when a
 * condition does not hold, what the commands before it did is rolled back
 * and *failed says which command it was.  An error rolls it back and is
 * raised again.  `results' gets each command's result.
 */
static bool
apply_batch(RowCommand *c, const KmdApplyContext *ctx, int *failed, StringInfo results)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	volatile int pos = 0;

	*failed = -1;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		ListCell   *lc;

		foreach(lc, c->batch)
		{
			RowCommand *one = lfirst(lc);

			if (!apply_one(one, ctx, c->strict || one->strict, pos, &results[pos]))
			{
				*failed = pos;
				break;
			}
			pos++;
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		ReThrowError(edata);
	}
	PG_END_TRY();
	if (*failed >= 0)
		RollbackAndReleaseCurrentSubTransaction();
	else
		ReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(oldcontext);
	CurrentResourceOwner = oldowner;
	return *failed < 0;
}

void
kmd_rows_apply(Jsonb *command, const char *key, const KmdApplyContext *ctx,
			   bool *applied, StringInfo result)
{
	RowCommand *c = kmd_rows_parse(command, key);
	StringInfoData one;

	initStringInfo(&one);
	if (c->op != OP_BATCH)
	{
		*applied = apply_one(c, ctx, c->strict, -1, &one);
		if (c->op == OP_CALL)
			appendStringInfo(result, "{\"result\": %s}", one.len > 0 ? one.data : "null");
		else if (!*applied)
			appendStringInfo(result, "{\"current\": %s}", one.len > 0 ? one.data : "null");
	}
	else
	{
		int			n = list_length(c->batch);
		StringInfo	results = palloc(sizeof(StringInfoData) * n);
		int			failed;

		for (int i = 0; i < n; i++)
			initStringInfo(&results[i]);
		*applied = apply_batch(c, ctx, &failed, results);
		if (!*applied)
		{
			/* the row as applied: read once the batch is rolled back */
			current_row(list_nth(c->batch, failed), &one);
			appendStringInfo(result, "{\"result\": null, \"failed\": %d, \"current\": %s}",
							 failed, one.data);
			return;
		}
		appendStringInfoChar(&one, '[');
		for (int i = 0; i < n; i++)
			appendStringInfo(&one, "%s%s", i > 0 ? ", " : "",
							 results[i].len > 0 ? results[i].data : "null");
		appendStringInfoChar(&one, ']');
		result_limit(one.len, InvalidOid);
		appendStringInfo(result, "{\"result\": %s, \"failed\": null}", one.data);
	}
}
