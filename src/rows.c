/*-------------------------------------------------------------------------
 *
 * rows.c
 *	  The jsonb command language of kmd_propose: checking a command before
 *	  it is replicated, and applying it when committed.
 *
 *	  {"op":"insert", "table":t, "row":{...}}
 *	  {"op":"upsert", "table":t, "row":{...}}
 *	  {"op":"update", "table":t, "key":{...}, "set":{...}, "if":{...}}
 *	  {"op":"delete", "table":t, "key":{...}, "if":{...}}
 *	  {"op":"call", "applier":name, "args":...}
 *	  {"op":"batch", "commands":[...]}
 *
 * "strict": true on an update, delete or batch makes an unmet "if" an error
 * (K0012).  A field the op does not take, and an empty key, are refused
 * (K0011), when proposed and when applied alike.  Values reach SQL only as
 * parameters (jsonb_populate_record); identifiers are quoted.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/rows.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/xact.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/varlena.h"

#include "errcodes.h"
#include "rows.h"
#include "shmem.h"

/* a result and its framing fit in a proposal slot */
StaticAssertDecl(KMD_RESULT_LIMIT + 64 <= KMD_MAX_RESULT,
				 "KMD_RESULT_LIMIT leaves no room for the framing of a result");

typedef enum Op
{
	OP_INSERT,
	OP_UPSERT,
	OP_UPDATE,
	OP_DELETE,
	OP_CALL,
	OP_BATCH
} Op;

/* A command, checked and resolved. */
typedef struct Cmd
{
	Op			op;
	bool		strict;
	Oid			relid;			/* row ops */
	char	   *qualname;		/* quoted */
	Oid			owner;
	List	   *pk;				/* names of primary key columns */
	Jsonb	   *row;			/* insert/upsert */
	Jsonb	   *key;			/* update/delete */
	Jsonb	   *set;			/* update */
	Jsonb	   *cond;			/* update/delete "if" */
	Oid			fn;				/* call */
	Jsonb	   *args;
	List	   *batch;			/* of Cmd * */
} Cmd;

#define MALFORMED(...) \
	ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND), errmsg(__VA_ARGS__)))

static JsonbValue *
field(JsonbContainer *obj, const char *name)
{
	return getKeyJsonValueFromContainer(obj, name, strlen(name), NULL);
}

static char *
string_field(JsonbContainer *obj, const char *name, bool required)
{
	JsonbValue *v = field(obj, name);

	if (v == NULL)
	{
		if (required)
			MALFORMED("command has no \"%s\"", name);
		return NULL;
	}
	if (v->type != jbvString)
		MALFORMED("\"%s\" must be a string", name);
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static Jsonb *
object_field(JsonbContainer *obj, const char *name, bool required)
{
	JsonbValue *v = field(obj, name);
	Jsonb	   *j;

	if (v == NULL)
	{
		if (required)
			MALFORMED("command has no \"%s\"", name);
		return NULL;
	}
	if (v->type != jbvBinary || !JsonContainerIsObject(v->val.binary.data))
		MALFORMED("\"%s\" must be a JSON object", name);
	j = JsonbValueToJsonb(v);
	if (JsonContainerSize(&j->root) == 0)
		MALFORMED("\"%s\" must not be empty", name);
	return j;
}

/* The text of a scalar jsonb value, as the routing key compares it. */
static char *
scalar_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out,
													   NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			return NULL;
	}
}

/* Resolve the table of a row command: must exist and be registered. */
static void
resolve_table(Cmd *c, const char *name)
{
	List	   *names;
	Relation	rel;
	Oid			pkidx;
	Relation	idx;
	bool		registered;
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];

	names = stringToQualifiedNameList(name);
	c->relid = RangeVarGetRelid(makeRangeVarFromNameList(names), AccessShareLock, true);
	if (!OidIsValid(c->relid))
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"table\": relation \"%s\" does not exist", name)));

	values[0] = ObjectIdGetDatum(c->relid);
	SPI_connect();
	if (SPI_execute_with_args("SELECT 1 FROM kommander.tables WHERE relid = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.tables");
	registered = SPI_processed > 0;
	SPI_finish();
	if (!registered)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"table\": \"%s\" is not a control table", name),
				 errhint("Register it with kmd_register_table().")));

	rel = table_open(c->relid, AccessShareLock);
	c->qualname = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											 RelationGetRelationName(rel));
	c->owner = rel->rd_rel->relowner;
	pkidx = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pkidx))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table %s has no primary key", c->qualname)));
	idx = index_open(pkidx, AccessShareLock);
	c->pk = NIL;
	for (int i = 0; i < idx->rd_index->indnkeyatts; i++)
	{
		AttrNumber	att = idx->rd_index->indkey.values[i];

		c->pk = lappend(c->pk, pstrdup(NameStr(TupleDescAttr(rel->rd_att, att - 1)->attname)));
	}
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
}

/* Every key of `obj' names a column of the table. */
static void
check_columns(Cmd *c, Jsonb *obj, const char *what)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (obj == NULL)
		return;
	it = JsonbIteratorInit(&obj->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			char	   *col = pnstrdup(v.val.string.val, v.val.string.len);

			if (get_attnum(c->relid, col) == InvalidAttrNumber)
				ereport(ERROR,
						(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						 errmsg("\"%s\": column \"%s\" of %s does not exist", what, col,
								c->qualname)));
		}
	}
}

/* The routing key must be the first primary key column's value. */
static void
check_routing_key(Cmd *c, Jsonb *obj, const char *what, const char *key, bool all_pk)
{
	ListCell   *lc;
	bool		first = true;

	foreach(lc, c->pk)
	{
		char	   *col = lfirst(lc);
		JsonbValue *v = field(&obj->root, col);
		char	   *text;

		if (v == NULL)
		{
			if (first || all_pk)
				MALFORMED("\"%s\" lacks primary key column \"%s\"", what, col);
			continue;
		}
		if (first)
		{
			text = scalar_text(v);
			if (text == NULL || strcmp(text, key) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						 errmsg("\"%s\": routing key \"%s\" is not the primary key \"%s\" it touches",
								what, key, text ? text : "(not a scalar)"),
						 errhint("A row command's key must equal the value of the table's first primary key column.")));
		}
		first = false;
	}
}

static Cmd *parse_command(JsonbContainer *obj, const char *key, bool nested);

/*
 * Each op and the fields it takes besides "op": anything else is refused,
 * so that a misspelt field ("iff") never runs as a command without it.
 */
static const struct
{
	const char *name;
	const char *fields[6];
}			op_specs[] = {
	[OP_INSERT] = {"insert", {"table", "row", NULL}},
	[OP_UPSERT] = {"upsert", {"table", "row", NULL}},
	[OP_UPDATE] = {"update", {"table", "key", "set", "if", "strict", NULL}},
	[OP_DELETE] = {"delete", {"table", "key", "if", "strict", NULL}},
	[OP_CALL] = {"call", {"applier", "args", NULL}},
	[OP_BATCH] = {"batch", {"commands", "strict", NULL}},
};

static Op
parse_op(const char *op)
{
	for (int i = 0; i < lengthof(op_specs); i++)
		if (strcmp(op, op_specs[i].name) == 0)
			return (Op) i;
	MALFORMED("\"op\": unknown operation \"%s\"", op);
	return OP_INSERT;			/* keep compiler quiet */
}

/* Refuse a field that `op' does not take, naming it and the ones it does. */
static void
check_fields(JsonbContainer *obj, Op op)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	v;
	JsonbIteratorToken tok;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *name;
		bool		known;
		StringInfoData takes;

		if (tok != WJB_KEY)
			continue;
		name = pnstrdup(v.val.string.val, v.val.string.len);
		known = strcmp(name, "op") == 0;
		for (int i = 0; !known && op_specs[op].fields[i] != NULL; i++)
			known = strcmp(name, op_specs[op].fields[i]) == 0;
		if (known)
			continue;
		initStringInfo(&takes);
		appendStringInfoString(&takes, "\"op\"");
		for (int i = 0; op_specs[op].fields[i] != NULL; i++)
			appendStringInfo(&takes, "%s\"%s\"",
							 op_specs[op].fields[i + 1] == NULL ? " and " : ", ",
							 op_specs[op].fields[i]);
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"%s\": unknown field for op \"%s\"", name, op_specs[op].name),
				 errhint("Op \"%s\" takes %s.", op_specs[op].name, takes.data)));
	}
}

/* Says which command of a batch an error is about. */
static void
batch_element_context(void *arg)
{
	errcontext("command \"commands\"[%d] of the batch", *(int *) arg);
}

static void
resolve_applier(Cmd *c, const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;

	SPI_connect();
	if (SPI_execute_with_args("SELECT fn::oid FROM kommander.appliers WHERE name = $1",
							  1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.appliers");
	c->fn = SPI_processed > 0 ?
		DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) :
		InvalidOid;
	SPI_finish();
	if (!OidIsValid(c->fn))
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"applier\": \"%s\" is not a registered applier", name),
				 errhint("Register it with kmd_register_applier().")));
}

static Cmd *
parse_command(JsonbContainer *obj, const char *key, bool nested)
{
	Cmd		   *c = palloc0(sizeof(Cmd));
	JsonbValue *v;

	if (!JsonContainerIsObject(obj))
		MALFORMED("command must be a JSON object");
	c->op = parse_op(string_field(obj, "op", true));
	check_fields(obj, c->op);
	v = field(obj, "strict");
	if (v != NULL)
	{
		if (v->type != jbvBool)
			MALFORMED("\"strict\" must be a boolean");
		c->strict = v->val.boolean;
	}

	switch (c->op)
	{
		case OP_INSERT:
		case OP_UPSERT:
			resolve_table(c, string_field(obj, "table", true));
			c->row = object_field(obj, "row", true);
			check_columns(c, c->row, "row");
			check_routing_key(c, c->row, "row", key, false);
			break;
		case OP_UPDATE:
		case OP_DELETE:
			resolve_table(c, string_field(obj, "table", true));
			c->key = object_field(obj, "key", true);
			check_columns(c, c->key, "key");
			check_routing_key(c, c->key, "key", key, true);
			if (c->op == OP_UPDATE)
			{
				c->set = object_field(obj, "set", true);
				check_columns(c, c->set, "set");
			}
			c->cond = object_field(obj, "if", false);
			check_columns(c, c->cond, "if");
			break;
		case OP_CALL:
			resolve_applier(c, string_field(obj, "applier", true));
			v = field(obj, "args");
			c->args = v ? JsonbValueToJsonb(v) :
				DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
			break;
		case OP_BATCH:
			{
				JsonbIterator *it;
				JsonbValue	elem;
				JsonbIteratorToken tok;
				int			pos = 0;
				ErrorContextCallback errcb;

				if (nested)
					MALFORMED("\"commands\": a batch cannot contain a batch");
				v = field(obj, "commands");
				if (v == NULL)
					MALFORMED("command has no \"commands\"");
				if (v->type != jbvBinary || !JsonContainerIsArray(v->val.binary.data))
					MALFORMED("\"commands\" must be a JSON array");
				if (JsonContainerSize(v->val.binary.data) == 0)
					MALFORMED("\"commands\" must not be empty");
				errcb.callback = batch_element_context;
				errcb.arg = &pos;
				errcb.previous = error_context_stack;
				error_context_stack = &errcb;
				it = JsonbIteratorInit(v->val.binary.data);
				while ((tok = JsonbIteratorNext(&it, &elem, true)) != WJB_DONE)
				{
					if (tok != WJB_ELEM)
						continue;
					if (elem.type != jbvBinary || !JsonContainerIsObject(elem.val.binary.data))
						MALFORMED("\"commands\": every element must be a JSON object");
					c->batch = lappend(c->batch, parse_command(elem.val.binary.data, key, true));
					pos++;
				}
				error_context_stack = errcb.previous;
			}
			break;
	}
	return c;
}

static void
check_privileges(Cmd *c)
{
	AclMode		mode = 0;
	ListCell   *lc;

	switch (c->op)
	{
		case OP_INSERT:
			mode = ACL_INSERT;
			break;
		case OP_UPSERT:
			mode = ACL_INSERT | ACL_UPDATE;
			break;
		case OP_UPDATE:
			mode = ACL_UPDATE;
			break;
		case OP_DELETE:
			mode = ACL_DELETE;
			break;
		case OP_CALL:
			if (pg_proc_aclcheck(c->fn, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied for applier function %s",
								format_procedure(c->fn))));
			return;
		case OP_BATCH:
			foreach(lc, c->batch)
				check_privileges(lfirst(lc));
			return;
	}
	if (pg_class_aclcheck(c->relid, GetUserId(), mode) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", c->qualname)));
}

/* The checks of a whole command, at propose time and at apply time alike. */
static Cmd *
parse_top(Jsonb *command, const char *key)
{
	if (key == NULL || key[0] == '\0')
		MALFORMED("key must not be empty");
	if (!JB_ROOT_IS_OBJECT(command) || JB_ROOT_IS_SCALAR(command))
		MALFORMED("command must be a JSON object");
	return parse_command(&command->root, key, false);
}

void
kmd_rows_validate(Jsonb *command, const char *key)
{
	Cmd		   *c = parse_top(command, key);

	check_privileges(c);
}

/* ------------------------------------------------------------------------
 * Applying
 * ------------------------------------------------------------------------
 */

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
	Oid			types[3] = {JSONBOID, JSONBOID, JSONBOID};
	Datum		values[3];
	int			rc;

	for (int i = 0; i < nargs; i++)
		values[i] = JsonbPGetDatum(args[i]);
	rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	return SPI_processed;
}

/* A condition did not hold under "strict"; `pos' >= 0 in a batch. */
static void
condition_failed(Cmd *c, int pos)
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

static char *
key_match(Cmd *c)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, c->pk)
	{
		const char *col = quote_identifier(lfirst(lc));

		appendStringInfo(&buf, "%st.%s = k.%s", buf.len ? " AND " : "", col, col);
	}
	return buf.data;
}

/*
 * Run one row command (SPI connected); false when its condition did not
 * hold, an error then if `strict' (`pos' >= 0: its place in a batch).
 */
static bool
apply_row(Cmd *c, bool strict, int pos)
{
	StringInfoData sql;
	Jsonb	   *args[3];
	int			nargs = 0;
	uint64		n;

	initStringInfo(&sql);
	switch (c->op)
	{
		case OP_INSERT:
		case OP_UPSERT:
			appendStringInfo(&sql, "INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_record(NULL::%s, $1) AS r",
							 c->qualname, column_list(c->row, "", ", ", NULL),
							 column_list(c->row, "r.", ", ", NULL), c->qualname);
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
					bool		is_pk = false;

					if (tok != WJB_KEY)
						continue;
					col = pnstrdup(v.val.string.val, v.val.string.len);
					foreach(lc, c->pk)
						if (strcmp(lfirst(lc), col) == 0)
							is_pk = true;
					if (is_pk)
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
			args[nargs++] = c->row;
			(void) run(sql.data, nargs, args);
			return true;
		case OP_UPDATE:
			appendStringInfo(&sql, "UPDATE %s AS t SET %s FROM jsonb_populate_record(NULL::%s, $1) AS s, "
							 "jsonb_populate_record(NULL::%s, $2) AS k",
							 c->qualname, column_list(c->set, NULL, ", ", "%s = s.%s"),
							 c->qualname, c->qualname);
			args[nargs++] = c->set;
			args[nargs++] = c->key;
			break;
		case OP_DELETE:
			appendStringInfo(&sql, "DELETE FROM %s AS t USING jsonb_populate_record(NULL::%s, $1) AS k",
							 c->qualname, c->qualname);
			args[nargs++] = c->key;
			break;
		default:
			elog(ERROR, "not a row command");
	}
	if (c->cond)
	{
		appendStringInfo(&sql, ", jsonb_populate_record(NULL::%s, $%d) AS w", c->qualname, nargs + 1);
		args[nargs++] = c->cond;
	}
	appendStringInfo(&sql, " WHERE %s", key_match(c));
	if (c->cond)
		appendStringInfo(&sql, " AND %s",
						 column_list(c->cond, NULL, " AND ", "t.%s IS NOT DISTINCT FROM w.%s"));
	n = run(sql.data, nargs, args);
	if (n == 0 && strict)
		condition_failed(c, pos);
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
 * Call an applier (SPI connected); its result, as JSON text, goes to
 * `result' (left empty for NULL).  A result larger than KMD_RESULT_LIMIT is
 * an error: it fails the command on every node alike, rather than reach
 * the proposer cut short or not at all.
 */
static void
apply_call(Cmd *c, const KmdApplyContext *ctx, StringInfo result)
{
	Oid			types[6] = {JSONBOID, INT4OID, INT8OID, INT8OID, TEXTOID, INT4OID};
	Datum		values[6];
	char	   *sql;
	bool		isnull;

	sql = psprintf("SELECT %s($1, ROW($2, $3, $4, $5, $6)::kommander.apply_context)",
				   quote_qualified_identifier(get_namespace_name(get_func_namespace(c->fn)),
											  get_func_name(c->fn)));
	values[0] = JsonbPGetDatum(c->args);
	values[1] = Int32GetDatum(ctx->partition_id);
	values[2] = Int64GetDatum((int64) ctx->index);
	values[3] = Int64GetDatum((int64) ctx->term);
	values[4] = CStringGetTextDatum(ctx->key ? ctx->key : "");
	values[5] = Int32GetDatum(ctx->origin_node);
	if (SPI_execute_with_args(sql, 6, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not call applier %s", format_procedure(c->fn));
	if (SPI_processed > 0)
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
		{
			Jsonb	   *j = DatumGetJsonbP(d);
			char	   *text = JsonbToCString(NULL, &j->root, VARSIZE(j));

			result_limit(strlen(text), c->fn);
			appendStringInfoString(result, text);
		}
	}
}

/*
 * Run one command, not a batch, with the privileges of the table's owner
 * (an applier's function's owner); see apply_row and apply_call.
 */
static bool
apply_one(Cmd *c, const KmdApplyContext *ctx, bool strict, int pos, StringInfo result)
{
	Oid			save_userid;
	int			save_sec;
	volatile bool applied = true;

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(c->op == OP_CALL ? function_owner(c->fn) : c->owner,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		SPI_connect();
		if (c->op == OP_CALL)
			apply_call(c, ctx, result);
		else
			applied = apply_row(c, strict, pos);
		SPI_finish();
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	return applied;
}

/*
 * Apply a batch, all or nothing, in a subtransaction of its own: when a
 * condition does not hold, what the commands before it did is rolled back
 * and *failed says which command it was.  An error rolls it back and is
 * raised again.  `results' gets each command's result.
 */
static bool
apply_batch(Cmd *c, const KmdApplyContext *ctx, int *failed, StringInfo results)
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
			Cmd		   *one = lfirst(lc);

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
	Cmd		   *c = parse_top(command, key);
	StringInfoData one;

	initStringInfo(&one);
	if (c->op != OP_BATCH)
	{
		*applied = apply_one(c, ctx, c->strict, -1, &one);
		if (c->op == OP_CALL)
			appendStringInfo(result, "{\"result\": %s}", one.len > 0 ? one.data : "null");
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
			appendStringInfo(result, "{\"result\": null, \"failed\": %d}", failed);
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
