/*-------------------------------------------------------------------------
 *
 * rows.c
 *	  The jsonb command language of kmd_propose: parsing and checking a
 *	  command, before it is replicated and again when it is applied (which
 *	  rows_apply.c does).
 *
 *	  {"op":"insert", "table":t, "row":{...}}
 *	  {"op":"upsert", "table":t, "row":{...}}
 *	  {"op":"update", "table":t, "key":{...}, "set":{...}, "if":{...}}
 *	  {"op":"delete", "table":t, "key":{...}, "if":{...}}
 *	  {"op":"call", "applier":name, "args":...}
 *	  {"op":"batch", "commands":[...]}
 *
 * A command that is not in a batch may carry "request_id" (requests.c).
 * "strict": true on an update, delete or batch makes an unmet "if" an error
 * (K0012).  A field the op does not take, and an empty key, are refused
 * (K0011), when proposed and when applied alike.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/rows.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "access/genam.h"
#include "access/table.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_inherits.h"
#include "catalog/namespace.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"
#include "utils/varlena.h"

#include "errcodes.h"
#include "identity.h"
#include "plans.h"
#include "requests.h"
#include "rows.h"
#include "rows_int.h"

#define MALFORMED(...) \
	ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND), errmsg(__VA_ARGS__)))

static JsonbValue *
field(JsonbContainer *obj, const char *name)
{
	return getKeyJsonValueFromContainer(obj, name, strlen(name), NULL);
}

bool
kmd_rows_names(Jsonb *obj, const char *name)
{
	return obj != NULL && field(&obj->root, name) != NULL;
}

bool
kmd_rows_is_pk(RowCommand *c, const char *name)
{
	ListCell   *lc;

	foreach(lc, c->pk)
		if (strcmp(lfirst(lc), name) == 0)
			return true;
	return false;
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

/*
 * An interval as every node reads it: with IntervalStyle pinned to postgres
 * (sql_standard reads the signs of "-1 2:00" otherwise), as the apply
 * worker pins it.  Bad text is K0011 naming the column; NULL never.
 */
static Interval *
read_interval(const char *text, const char *col)
{
	int			level = NewGUCNestLevel();
	MemoryContext cxt = CurrentMemoryContext;
	volatile Datum d;

	(void) set_config_option("intervalstyle", "postgres", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	PG_TRY();
	{
		d = DirectFunctionCall3(interval_in, CStringGetDatum(text),
								ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AtEOXact_GUC(false, level);
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"set\": \"now_plus\" of column \"%s\" is not an interval: \"%s\"", col, text),
				 errdetail("%s", edata->message),
				 errhint("Give an interval as text, such as \"30 s\" or \"5 minutes\".")));
	}
	PG_END_TRY();
	AtEOXact_GUC(true, level);
	return DatumGetIntervalP(d);
}

/*
 * In a PG_CATCH block: the error caught (by a function that raises nothing
 * but errors of its input, so that no subtransaction is needed) becomes
 * K0011 with the message given, its own message the detail.  `cxt' is the
 * memory context of before the PG_TRY; the arguments must not live in
 * the error's memory, which this frees.
 */
static void refuse_caught(MemoryContext cxt, const char *fmt,...) pg_attribute_printf(2, 3);

static void
refuse_caught(MemoryContext cxt, const char *fmt,...)
{
	ErrorData  *edata;
	StringInfoData msg;

	MemoryContextSwitchTo(cxt);
	edata = CopyErrorData();
	FlushErrorState();
	initStringInfo(&msg);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&msg, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&msg, needed);
	}
	ereport(ERROR,
			(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
			 errmsg_internal("%s", msg.data),
			 errdetail("%s", edata->message)));
}

/*
 * An interval that takes the time now out of a timestamp's range would
 * fail on every node when applied: K0011 where the command is proposed
 * instead.  Adding raises nothing but that range error.
 */
static void
check_now_plus(Interval *span, const char *col)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		(void) DirectFunctionCall2(timestamptz_pl_interval,
								   TimestampTzGetDatum(GetCurrentTimestamp()),
								   IntervalPGetDatum(span));
	}
	PG_CATCH();
	{
		refuse_caught(cxt, "\"set\": \"now_plus\" of column \"%s\" takes the time out of range", col);
	}
	PG_END_TRY();
}

/*
 * The operators of "set": a value that is an object, for a column that does
 * not hold json, is {"add": n} (the column plus n, for numbers) or
 * {"now_plus": interval} (the entry's time plus the interval, for
 * timestamps); any other is K0011.  They go from c->set to c->add and
 * c->now_plus.
 */
static void
split_set(RowCommand *c)
{
	JsonbParseState *values = NULL;
	JsonbParseState *adds = NULL;
	JsonbParseState *times = NULL;
	int			n_values = 0;
	int			n_adds = 0;
	int			n_times = 0;
	JsonbIterator *it = JsonbIteratorInit(&c->set->root);
	JsonbValue	v;
	JsonbValue	k = {0};
	JsonbIteratorToken tok;

	(void) pushJsonbValue(&values, WJB_BEGIN_OBJECT, NULL);
	(void) pushJsonbValue(&adds, WJB_BEGIN_OBJECT, NULL);
	(void) pushJsonbValue(&times, WJB_BEGIN_OBJECT, NULL);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			k = v;
		else if (tok == WJB_VALUE)
		{
			char	   *col = pnstrdup(k.val.string.val, k.val.string.len);
			/* a domain's operators are its base type's */
			Oid			type = getBaseType(get_atttype(c->relid, get_attnum(c->relid, col)));

			if (v.type == jbvBinary && JsonContainerIsObject(v.val.binary.data) &&
				type != JSONOID && type != JSONBOID)
			{
				JsonbValue *n = getKeyJsonValueFromContainer(v.val.binary.data, "add", 3, NULL);
				JsonbValue *t = getKeyJsonValueFromContainer(v.val.binary.data, "now_plus", 8, NULL);

				if (JsonContainerSize(v.val.binary.data) != 1 || (n == NULL && t == NULL))
					ereport(ERROR,
							(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
							 errmsg("\"set\": column \"%s\" takes a value, {\"add\": n} or {\"now_plus\": interval}, not another object", col),
							 errhint("An object given to a column that is not json or jsonb is an operator, and takes one field.")));
				if (n != NULL)
				{
					if (n->type != jbvNumeric)
						MALFORMED("\"set\": \"add\" of column \"%s\" must be a number", col);
					if (TypeCategory(type) != TYPCATEGORY_NUMERIC ||
						!OidIsValid(OpernameGetOprid(list_make2(makeString("pg_catalog"), makeString("+")),
													 type, type)))
						MALFORMED("\"set\": column \"%s\" is not a number: \"add\" does not apply", col);
					(void) pushJsonbValue(&adds, WJB_KEY, &k);
					(void) pushJsonbValue(&adds, WJB_VALUE, n);
					n_adds++;
					continue;
				}
				if (t->type != jbvString)
					MALFORMED("\"set\": \"now_plus\" of column \"%s\" must be an interval as a string", col);
				if (type != TIMESTAMPTZOID && type != TIMESTAMPOID)
					MALFORMED("\"set\": column \"%s\" is not a timestamp: \"now_plus\" does not apply", col);
				check_now_plus(read_interval(pnstrdup(t->val.string.val, t->val.string.len), col), col);
				(void) pushJsonbValue(&times, WJB_KEY, &k);
				(void) pushJsonbValue(&times, WJB_VALUE, t);
				n_times++;
			}
			else
			{
				(void) pushJsonbValue(&values, WJB_KEY, &k);
				(void) pushJsonbValue(&values, WJB_VALUE, &v);
				n_values++;
			}
		}
	}
	c->set = JsonbValueToJsonb(pushJsonbValue(&values, WJB_END_OBJECT, NULL));
	c->add = JsonbValueToJsonb(pushJsonbValue(&adds, WJB_END_OBJECT, NULL));
	c->now_plus = JsonbValueToJsonb(pushJsonbValue(&times, WJB_END_OBJECT, NULL));
	if (n_values == 0)
		c->set = NULL;
	if (n_adds == 0)
		c->add = NULL;
	if (n_times == 0)
		c->now_plus = NULL;
}

/*
 * The values c->now_plus gives, for the entry proposed at `at': each
 * column's interval added to it, as text in UTC, merged into c->set.  The
 * apply worker runs with TimeZone UTC, so a day or a month is added the
 * same way on every node.  An entry that carries no time fails.
 */
void
kmd_rows_fold_now_plus(RowCommand *c, int64 at)
{
	JsonbParseState *values = NULL;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbValue	k = {0};
	JsonbIteratorToken tok;

	if (c->now_plus == NULL)
		return;
	if (at == 0)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"now_plus\" needs the time of the entry, and this entry carries none"),
				 errdetail("It was proposed by a node that does not decide a time.")));
	(void) pushJsonbValue(&values, WJB_BEGIN_OBJECT, NULL);
	for (int pass = 0; pass < 2; pass++)
	{
		if (pass == 0 && c->set == NULL)
			continue;
		it = JsonbIteratorInit(pass == 0 ? &c->set->root : &c->now_plus->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			if (tok == WJB_KEY)
			{
				k = v;
				(void) pushJsonbValue(&values, WJB_KEY, &k);
			}
			else if (tok == WJB_VALUE && pass == 0)
				(void) pushJsonbValue(&values, WJB_VALUE, &v);
			else if (tok == WJB_VALUE)
			{
				char	   *col = pnstrdup(k.val.string.val, k.val.string.len);
				Interval   *span = read_interval(pnstrdup(v.val.string.val, v.val.string.len), col);
				Datum		ts = DirectFunctionCall2(timestamptz_pl_interval,
													 TimestampTzGetDatum((TimestampTz) at),
													 IntervalPGetDatum(span));
				JsonbValue	text;

				text.type = jbvString;
				text.val.string.val = DatumGetCString(DirectFunctionCall1(timestamptz_out, ts));
				text.val.string.len = strlen(text.val.string.val);
				(void) pushJsonbValue(&values, WJB_VALUE, &text);
			}
		}
	}
	c->set = JsonbValueToJsonb(pushJsonbValue(&values, WJB_END_OBJECT, NULL));
	c->now_plus = NULL;
}

/*
 * Tables this backend found registered, and what a command needs of each:
 * its quoted name, owner and primary key columns.  A registration never
 * ends while its table lives, and a table that is dropped or altered
 * (registering it adds the guard trigger; renaming it, changing its owner
 * or its primary key) sends a relcache invalidation, which forgets it
 * here, as renaming a schema forgets all: so a hit needs no lookup of
 * kommander.tables, and no opening of the table and its key.
 */
typedef struct TableInfo
{
	Oid			relid;			/* hash key */
	char	   *qualname;		/* quoted; NULL until a command named it */
	Oid			owner;
	List	   *pk;				/* names of primary key columns */
	bool		varying_known;	/* false: read `varying' again */
	List	   *varying;		/* of KmdVaryingDefault * */
} TableInfo;

static HTAB *registered_tables = NULL;
static uint64 tables_epoch = 0;	/* counts the invalidations seen */
static uint64 defaults_epoch = 0;	/* those of types and functions */

static void
forget(TableInfo *info)
{
	if (info->qualname != NULL)
		pfree(info->qualname);
	list_free_deep(info->pk);
	list_free_deep(info->varying);
	(void) hash_search(registered_tables, &info->relid, HASH_REMOVE, NULL);
}

static void
registered_forget(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS scan;
	TableInfo  *info;

	tables_epoch++;
	if (registered_tables == NULL)
		return;
	if (OidIsValid(relid))
	{
		info = hash_search(registered_tables, &relid, HASH_FIND, NULL);
		if (info != NULL)
			forget(info);
		return;
	}
	hash_seq_init(&scan, registered_tables);
	while ((info = hash_seq_search(&scan)) != NULL)
		forget(info);
}

/* a schema renamed */
static void
namespace_forget(Datum arg, int cacheid, uint32 hashvalue)
{
	registered_forget(arg, InvalidOid);
}

/*
 * A type (a domain's default) or a function (its volatility) changed:
 * which defaults vary may have changed with it, in any table.  That must
 * be known afresh when the apply worker applies a command after the DDL
 * that changed it, as on every node.
 */
static void
defaults_forget(Datum arg, int cacheid, uint32 hashvalue)
{
	HASH_SEQ_STATUS scan;
	TableInfo  *info;

	defaults_epoch++;
	if (registered_tables == NULL)
		return;
	hash_seq_init(&scan, registered_tables);
	while ((info = hash_seq_search(&scan)) != NULL)
	{
		list_free_deep(info->varying);
		info->varying = NIL;
		info->varying_known = false;
	}
}

/* `relid' if it is a registered table, else NULL.  Looked up once per table and backend. */
static TableInfo *
registered(Oid relid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		values[1];
	TableInfo  *info;
	bool		found;

	if (registered_tables == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(TableInfo);
		registered_tables = hash_create("kommander registered tables", 64, &ctl,
										HASH_ELEM | HASH_BLOBS);
		CacheRegisterRelcacheCallback(registered_forget, (Datum) 0);
		CacheRegisterSyscacheCallback(NAMESPACEOID, namespace_forget, (Datum) 0);
		CacheRegisterSyscacheCallback(TYPEOID, defaults_forget, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, defaults_forget, (Datum) 0);
	}
	info = hash_search(registered_tables, &relid, HASH_FIND, NULL);
	if (info != NULL)
		return info;

	values[0] = ObjectIdGetDatum(relid);
	SPI_connect();
	/* read-only: the apply advances the command id before each entry */
	if (kmd_plan_execute("SELECT 1 FROM kommander.tables WHERE relid OPERATOR(pg_catalog.=) $1",
						 1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.tables");
	found = SPI_processed > 0;
	SPI_finish();
	if (!found)
		return NULL;
	info = hash_search(registered_tables, &relid, HASH_ENTER, NULL);
	info->qualname = NULL;
	info->pk = NIL;
	info->varying_known = false;
	info->varying = NIL;
	return info;
}

/*
 * Is `type' a date or time type, or an array, range or domain of one; with
 * `wide' also a multirange or composite of one?  The proposer decides the
 * defaults of both, and says so (KMD_RULE_WIDE_DEFAULTS); the apply worker
 * insists (40001) on the wide ones only for a proposer that says so: an
 * entry of an older proposer leaves a wide one to each node, as it was.
 */
static bool
time_type_of(Oid type, bool wide)
{
	Oid			base = getBaseType(type);
	Oid			elem = get_element_type(base);
	TupleDesc	desc;
	bool		found = false;

	if (OidIsValid(elem))
		base = getBaseType(elem);
	if (wide && type_is_multirange(base))
		base = get_multirange_range(base);
	if (type_is_range(base))
		base = wide ? getBaseType(get_range_subtype(base)) : get_range_subtype(base);
	switch (base)
	{
		case DATEOID:
		case TIMEOID:
		case TIMETZOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			return true;
		default:
			break;
	}
	if (!wide || get_typtype(base) != TYPTYPE_COMPOSITE)
		return false;
	desc = lookup_rowtype_tupdesc(base, -1);
	for (int i = 0; i < desc->natts && !found; i++)
		found = !TupleDescAttr(desc, i)->attisdropped &&
			time_type_of(TupleDescAttr(desc, i)->atttypid, true);
	ReleaseTupleDesc(desc);
	return found;
}

static bool
time_constant_walker(Node *node, void *wide)
{
	if (node == NULL)
		return false;
	if (IsA(node, Const))
		return time_type_of(((Const *) node)->consttype, *(bool *) wide);
	return expression_tree_walker(node, time_constant_walker, wide);
}

/*
 * Does `expr', immutable, hold or give a date or time (`wide': as
 * time_type_of)?  A default such as 'now' or 'today' was read when its
 * DDL ran, on each node at its own time (also inside
 * ARRAY['now'::timestamptz], extract(epoch FROM 'now'::timestamp) or
 * '(x,now)'::a_composite), and two nodes' catalogs may hold two values:
 * the proposer decides.
 */
static bool
time_constant(Node *expr, bool wide)
{
	return time_type_of(exprType(expr), wide) || time_constant_walker(expr, &wide);
}

/* Does `node' hold a date or time constant other than a NULL? */
static bool
time_literal_walker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (IsA(node, Const))
		return !((Const *) node)->constisnull && time_type_of(((Const *) node)->consttype, true);
	return expression_tree_walker(node, time_literal_walker, context);
}

/*
 * Refuse generated column `attnum' of `relid' when its expression holds a
 * date or time constant: 'now' or 'today' was read when its DDL ran, on
 * each node at its own time, and unlike a default's no proposer decides
 * it.  The catalog rows are read as the current command left them (the
 * column may come from it).
 */
void
kmd_generated_check(Oid relid, AttrNumber attnum)
{
	Relation	catalog = table_open(AttributeRelationId, AccessShareLock);
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple	tup;
	char		generated = '\0';
	NameData	name;
	bool		found = false;

	ScanKeyInit(&key[0], Anum_pg_attribute_attrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&key[1], Anum_pg_attribute_attnum, BTEqualStrategyNumber, F_INT2EQ,
				Int16GetDatum(attnum));
	scan = systable_beginscan(catalog, AttributeRelidNumIndexId, true, SnapshotSelf, 2, key);
	if (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		generated = ((Form_pg_attribute) GETSTRUCT(tup))->attgenerated;
		namestrcpy(&name, NameStr(((Form_pg_attribute) GETSTRUCT(tup))->attname));
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
	if (generated == '\0')
		return;

	catalog = table_open(AttrDefaultRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_attrdef_adrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&key[1], Anum_pg_attrdef_adnum, BTEqualStrategyNumber, F_INT2EQ,
				Int16GetDatum(attnum));
	scan = systable_beginscan(catalog, AttrDefaultIndexId, true, SnapshotSelf, 2, key);
	while (!found && HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		adbin = heap_getattr(tup, Anum_pg_attrdef_adbin, RelationGetDescr(catalog), &isnull);

		found = !isnull && time_literal_walker(stringToNode(TextDatumGetCString(adbin)), NULL);
	}
	systable_endscan(scan);
	table_close(catalog, AccessShareLock);
	if (found)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("generated column \"%s\" of %s holds a date or time constant",
						NameStr(name), get_rel_name(relid)),
				 errdetail("A constant such as 'now' or 'today' is read when the DDL runs, on each node at its own time: the nodes would store different values."),
				 errhint("Compute the value in the command, or give the column a default, which the proposer decides; write a fixed date as make_date(2030, 1, 31).")));
}

void
kmd_generated_check_table(Oid relid)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, AccessShareLock, NULL))
	{
		Relation	rel = table_open(lfirst_oid(lc), AccessShareLock);

		for (int i = 0; i < rel->rd_att->natts; i++)
			if (TupleDescAttr(rel->rd_att, i)->attgenerated &&
				!TupleDescAttr(rel->rd_att, i)->attisdropped)
				kmd_generated_check(RelationGetRelid(rel), i + 1);
		table_close(rel, AccessShareLock);
	}
}

/*
 * The columns of `rel' whose value the proposer decides (KmdVaryingDefault),
 * in the current memory context.
 */
static List *
read_varying(Relation rel)
{
	List	   *varying = NIL;

	for (int i = 0; i < rel->rd_att->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(rel->rd_att, i);
		Node	   *expr;
		bool		required;
		KmdVaryingDefault *v;

		if (att->attisdropped || att->attgenerated)
			continue;
		/* its own default, its identity's next value, or its domain's default */
		expr = build_column_default(rel, i + 1);
		if (expr == NULL)
			continue;
		required = att->attidentity || contain_mutable_functions(expr) ||
			time_constant(expr, false);
		if (!required && !time_constant(expr, true))
			continue;
		v = palloc0(sizeof(KmdVaryingDefault));
		v->attnum = att->attnum;
		v->identity = att->attidentity;
		v->required = required;
		namestrcpy(&v->name, NameStr(att->attname));
		varying = lappend(varying, v);
	}
	return varying;
}

/*
 * The name is the command's text, which a retry with the same request id
 * through another node must repeat (requests.c).
 */
char *
kmd_rows_table_name(Relation rel)
{
	bool		save = quote_all_identifiers;
	char	   *volatile name = NULL;

	quote_all_identifiers = false;
	PG_TRY();
	{
		name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
										  RelationGetRelationName(rel));
	}
	PG_FINALLY();
	{
		quote_all_identifiers = save;
	}
	PG_END_TRY();
	return name;
}

/*
 * Read what a command needs of registered table `relid' into `out', in
 * the current memory context.  False when invalidations came in meanwhile
 * (opening the table takes them in; a schema's rename takes no lock of the
 * table): what was read may be stale, and must not be remembered.
 */
static bool
read_table(Oid relid, TableInfo *out)
{
	uint64		seen = tables_epoch;
	uint64		defaults_seen = defaults_epoch;
	Relation	rel = table_open(relid, AccessShareLock);
	Oid			pkidx = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;

	out->relid = relid;
	out->qualname = kmd_rows_table_name(rel);
	out->owner = rel->rd_rel->relowner;
	out->pk = NIL;
	if (!OidIsValid(pkidx))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table %s has no primary key", out->qualname)));
	idx = index_open(pkidx, AccessShareLock);
	for (int i = 0; i < idx->rd_index->indnkeyatts; i++)
	{
		AttrNumber	att = idx->rd_index->indkey.values[i];

		out->pk = lappend(out->pk, pstrdup(NameStr(TupleDescAttr(rel->rd_att, att - 1)->attname)));
	}
	index_close(idx, AccessShareLock);
	out->varying = read_varying(rel);
	table_close(rel, AccessShareLock);
	out->varying_known = defaults_epoch == defaults_seen;
	return tables_epoch == seen;
}

static List *
copy_varying(List *varying)
{
	List	   *copy = NIL;
	ListCell   *lc;

	foreach(lc, varying)
	{
		KmdVaryingDefault *v = palloc(sizeof(KmdVaryingDefault));

		memcpy(v, lfirst(lc), sizeof(KmdVaryingDefault));
		copy = lappend(copy, v);
	}
	return copy;
}

/* Remember `read' of a registered table. */
static void
remember_table(const TableInfo *read)
{
	TableInfo  *info;
	bool		found;
	MemoryContext old;
	ListCell   *lc;

	info = hash_search(registered_tables, &read->relid, HASH_ENTER, &found);
	if (found && info->qualname != NULL)
	{
		pfree(info->qualname);
		list_free_deep(info->pk);
		list_free_deep(info->varying);
	}
	old = MemoryContextSwitchTo(TopMemoryContext);
	info->qualname = pstrdup(read->qualname);
	info->owner = read->owner;
	info->pk = NIL;
	foreach(lc, read->pk)
		info->pk = lappend(info->pk, pstrdup(lfirst(lc)));
	info->varying = copy_varying(read->varying);
	info->varying_known = read->varying_known;
	MemoryContextSwitchTo(old);
}

/*
 * The parts of the name "table" gives, as stringToQualifiedNameList
 * makes them, refused with K0011 like the rest of a command where that
 * and the lookup would raise errors of their own (an empty name, a
 * quote left open, four parts, another database's name).
 */
static List *
table_name_parts(const char *name)
{
	List	   *parts;

	if (!SplitIdentifierString(pstrdup(name), '.', &parts) || parts == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"table\": \"%s\" is not a table name", name)));
	if (list_length(parts) > 3 ||
		(list_length(parts) == 3 &&
		 strcmp(linitial(parts), get_database_name(MyDatabaseId)) != 0))
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"table\": \"%s\" is not a table of this database", name),
				 errhint("Name a table as table or schema.table.")));
	return stringToQualifiedNameList(name);
}

/*
 * The columns of registered table `relid' whose value the proposer
 * decides, in the current memory context: remembered in `info' when no
 * invalidation came in meanwhile.  The table is locked.
 */
static List *
varying_of(Oid relid, TableInfo *info)
{
	uint64		seen = defaults_epoch;
	Relation	rel;
	List	   *varying;
	MemoryContext old;

	if (info->varying_known)
		return copy_varying(info->varying);
	rel = table_open(relid, NoLock);
	varying = read_varying(rel);
	table_close(rel, NoLock);
	/* opening it may have taken in invalidations, which forget `info' */
	info = hash_search(registered_tables, &relid, HASH_FIND, NULL);
	if (defaults_epoch == seen && info != NULL && info->qualname != NULL)
	{
		old = MemoryContextSwitchTo(TopMemoryContext);
		list_free_deep(info->varying);
		info->varying = copy_varying(varying);
		info->varying_known = true;
		MemoryContextSwitchTo(old);
	}
	return varying;
}

/* Resolve the table of a row command: must exist and be registered. */
static void
resolve_table(RowCommand *c, const char *name)
{
	List	   *names;
	TableInfo  *info;
	ListCell   *lc;

	names = table_name_parts(name);
	c->relid = RangeVarGetRelid(makeRangeVarFromNameList(names), AccessShareLock, true);
	if (!OidIsValid(c->relid))
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"table\": relation \"%s\" does not exist", name),
				 errhint("A table kmd_ddl() created through another node exists on this one once "
						 "this node has applied it: call kmd_read_barrier() here first.")));

	info = registered(c->relid);
	if (info == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"table\": \"%s\" is not a control table", name),
				 errhint("Register it with kmd_register_table(); one registered through another node "
						 "is known on this one once this node has applied it (kmd_read_barrier()).")));
	if (info->qualname != NULL)
	{
		c->qualname = pstrdup(info->qualname);
		c->owner = info->owner;
		c->pk = NIL;
		foreach(lc, info->pk)
			c->pk = lappend(c->pk, pstrdup(lfirst(lc)));
		c->varying = varying_of(c->relid, info);
	}
	else
	{
		/* `info' may be forgotten meanwhile: not used below */
		TableInfo	read;
		bool		fresh = false;

		for (int tries = 0; tries < 3 && !fresh; tries++)
			fresh = read_table(c->relid, &read);
		if (fresh)
			remember_table(&read);
		c->qualname = read.qualname;
		c->owner = read.owner;
		c->pk = read.pk;
		c->varying = read.varying;
	}

	/*
	 * No lock is kept: a proposer waits for its entry to be applied, and
	 * the apply worker's DDL on this table must not wait for the proposer
	 * (both would wait until kommander.propose_timeout).  Applying checks
	 * the command again.
	 */
	UnlockRelationOid(c->relid, AccessShareLock);
}

/*
 * Every key of `obj' names a column of the table; not a system column
 * ("xmin", "ctid"), which no command writes.  Of `compared' columns (an
 * "if") the type must have an equality: without one (json, xml) the
 * command would fail when applied, on every node.
 */
static void
check_columns(RowCommand *c, Jsonb *obj, const char *what, bool compared)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	if (obj == NULL)
		return;
	it = JsonbIteratorInit(&obj->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *col;

		if (tok != WJB_KEY)
			continue;
		col = pnstrdup(v.val.string.val, v.val.string.len);
		if (get_attnum(c->relid, col) <= 0)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("\"%s\": column \"%s\" of %s does not exist", what, col,
							c->qualname)));
		if (compared && !kmd_rows_has_equality(c->relid, col))
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("\"%s\": column \"%s\" of %s cannot be compared", what, col, c->qualname),
					 errdetail("Its type %s has no equality operator.",
							   format_type_be(get_atttype(c->relid, get_attnum(c->relid, col))))));
	}
}

/* The routing key must be the first primary key column's value. */
static void
check_routing_key(RowCommand *c, Jsonb *obj, const char *what, const char *key, bool all_pk)
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

/*
 * An update keeps the row's primary key: its first column is the key the
 * row is routed by, and the key its lease and request ids are kept under.
 */
static void
check_pk_kept(RowCommand *c)
{
	ListCell   *lc;

	foreach(lc, c->pk)
	{
		if (field(&c->set->root, lfirst(lc)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("\"set\": an update cannot change primary key column \"%s\"",
							(char *) lfirst(lc)),
					 errhint("Delete the row and insert it under its new key.")));
	}
}

static RowCommand *parse_command(JsonbContainer *obj, const char *key, bool nested);

/*
 * Each op and the fields it takes besides "op": anything else is refused,
 * so that a misspelt field ("iff") never runs as a command without it.
 */
static const struct
{
	const char *name;
	const char *fields[7];
}			op_specs[] = {
	[OP_INSERT] = {"insert", {"table", "row", "lease", "defaults", NULL}},
	[OP_UPSERT] = {"upsert", {"table", "row", "lease", "defaults", NULL}},
	[OP_UPDATE] = {"update", {"table", "key", "set", "if", "strict", "lease", NULL}},
	[OP_DELETE] = {"delete", {"table", "key", "if", "strict", NULL}},
	[OP_CALL] = {"call", {"applier", "args", NULL}},
	[OP_BATCH] = {"batch", {"commands", "strict", NULL}},
};

static RowOp
parse_op(const char *op)
{
	for (int i = 0; i < lengthof(op_specs); i++)
		if (strcmp(op, op_specs[i].name) == 0)
			return (RowOp) i;
	MALFORMED("\"op\": unknown operation \"%s\"", op);
	return OP_INSERT;			/* keep compiler quiet */
}

/*
 * Refuse a field that `op' does not take, naming it and the ones it does;
 * a command that is not in a batch may also carry "request_id".
 */
static void
check_fields(JsonbContainer *obj, RowOp op, bool nested)
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
		known = strcmp(name, "op") == 0 ||
			(!nested && strcmp(name, "request_id") == 0);
		for (int i = 0; !known && op_specs[op].fields[i] != NULL; i++)
			known = strcmp(name, op_specs[op].fields[i]) == 0;
		if (known)
			continue;
		initStringInfo(&takes);
		appendStringInfoString(&takes, nested ? "\"op\"" : "\"op\", \"request_id\"");
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

bool
kmd_rows_applier_fn(const char *name, Oid *fn)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	bool		found;

	SPI_connect();
	/* qualified: the caller's search_path must not choose the applier */
	if (kmd_plan_execute("SELECT fn::pg_catalog.oid FROM kommander.appliers "
						 "WHERE name OPERATOR(pg_catalog.=) $1",
						 1, argtypes, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.appliers");
	found = SPI_processed > 0;
	*fn = found ?
		DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) :
		InvalidOid;
	SPI_finish();
	return found;
}

static void
resolve_applier(RowCommand *c, const char *name)
{
	if (!kmd_rows_applier_fn(name, &c->fn))
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"applier\": \"%s\" is not a registered applier", name),
				 errhint("Register it with kmd_register_applier().")));
	/* the registration stays when its function is dropped (0: by an image) */
	if (!OidIsValid(c->fn) || !SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(c->fn)))
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("\"applier\": the function of applier \"%s\" was dropped", name),
				 errhint("Register the applier again, with a function that exists, through kmd_register_applier().")));
}

/*
 * "lease": the id of a lease to attach the row to (kmd_lease_grant), or,
 * on an update, null to detach it.
 */
static void
parse_lease(RowCommand *c, JsonbValue *v)
{
	c->lease_named = true;
	if (v->type == jbvNull && c->op == OP_UPDATE)
		return;
	if (v->type == jbvNumeric)
	{
		Numeric		n = v->val.numeric;

		if (!numeric_is_nan(n) && !numeric_is_inf(n) &&
			DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(n),
											 DirectFunctionCall2(numeric_trunc, NumericGetDatum(n),
																 Int32GetDatum(0)))) &&
			DatumGetBool(DirectFunctionCall2(numeric_gt, NumericGetDatum(n),
											 DirectFunctionCall1(int8_numeric, Int64GetDatum(0)))) &&
			DatumGetBool(DirectFunctionCall2(numeric_le, NumericGetDatum(n),
											 DirectFunctionCall1(int8_numeric, Int64GetDatum(PG_INT64_MAX)))))
		{
			c->lease = DatumGetInt64(DirectFunctionCall1(numeric_int8, NumericGetDatum(n)));
			return;
		}
	}
	ereport(ERROR,
			(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
			 errmsg("\"lease\" must be the id of a lease%s", c->op == OP_UPDATE ? ", or null" : ""),
			 errhint("Use an id that kmd_lease_grant() returned.")));
}

static RowCommand *
parse_command(JsonbContainer *obj, const char *key, bool nested)
{
	RowCommand *c = palloc0(sizeof(RowCommand));
	JsonbValue *v;

	if (!JsonContainerIsObject(obj))
		MALFORMED("command must be a JSON object");
	c->op = parse_op(string_field(obj, "op", true));
	check_fields(obj, c->op, nested);
	v = field(obj, "request_id");
	if (v != NULL)
	{
		if (v->type != jbvString || v->val.string.len == 0)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("\"request_id\" must be a non-empty string"),
					 errhint("Give each logical request an id of its own, such as a UUID, and use it again for every retry.")));
		if (v->val.string.len > KMD_REQUEST_ID_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("\"request_id\" is too long"),
					 errdetail("It has %d bytes; a request id may have at most %d.",
							   v->val.string.len, KMD_REQUEST_ID_MAX)));
		if (strlen(key) > KMD_REQUEST_KEY_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("the key of a command with a \"request_id\" is too long"),
					 errdetail("It has %zu bytes; a command with a request id may have a key of at most %d.",
							   strlen(key), KMD_REQUEST_KEY_MAX),
					 errhint("Route by a shorter key, such as a hash of this one.")));
	}
	v = field(obj, "strict");
	if (v != NULL)
	{
		if (v->type != jbvBool)
			MALFORMED("\"strict\" must be a boolean");
		c->strict = v->val.boolean;
	}

	v = field(obj, "lease");
	if (v != NULL)
		parse_lease(c, v);

	switch (c->op)
	{
		case OP_INSERT:
		case OP_UPSERT:
			resolve_table(c, string_field(obj, "table", true));
			c->row = object_field(obj, "row", true);
			check_columns(c, c->row, "row", false);
			c->defaults = object_field(obj, "defaults", false);
			check_columns(c, c->defaults, "defaults", false);
			check_routing_key(c, c->row, "row", key, false);
			break;
		case OP_UPDATE:
		case OP_DELETE:
			resolve_table(c, string_field(obj, "table", true));
			c->key = object_field(obj, "key", true);
			check_columns(c, c->key, "key", false);
			check_routing_key(c, c->key, "key", key, true);
			if (c->op == OP_UPDATE)
			{
				c->set = object_field(obj, "set", true);
				check_columns(c, c->set, "set", false);
				check_pk_kept(c);
				split_set(c);
			}
			c->cond = object_field(obj, "if", false);
			check_columns(c, c->cond, "if", true);
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

/*
 * The caller's privileges for `c'; *reads is cleared unless the caller may
 * read every column of each table it writes (see kmd_rows_prepare).
 */
static void
check_privileges(RowCommand *c, bool *reads)
{
	AclMode		mode = 0;
	AclMode		held;
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
				check_privileges(lfirst(lc), reads);
			return;
	}
	/*
	 * An "if" or an "add" reads the row, as a WHERE or SET x = x + n does
	 * in SQL, and a condition that does not hold answers with the row
	 * ("current"): SELECT too.  A row attached to a lease is deleted when
	 * the lease ends (as the table's owner): DELETE too, or a role could
	 * attach someone else's row (an upsert of its key alone changes
	 * nothing else) and revoke the lease.
	 */
	if (c->cond != NULL || c->add != NULL)
		mode |= ACL_SELECT;
	if (c->lease > 0)
		mode |= ACL_DELETE;
	/* every privilege of `mode' (pg_class_aclcheck is content with any) */
	held = pg_class_aclmask(c->relid, GetUserId(), mode | ACL_SELECT, ACLMASK_ALL);
	if ((held & mode) != mode)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", c->qualname)));
	if (*reads && !(held & ACL_SELECT) &&
		pg_attribute_aclcheck_all(c->relid, GetUserId(), ACL_SELECT, ACLMASK_ALL) != ACLCHECK_OK)
		*reads = false;
}

RowCommand *
kmd_rows_parse(Jsonb *command, const char *key)
{
	if (key == NULL || key[0] == '\0')
		MALFORMED("key must not be empty");
	if (!JB_ROOT_IS_OBJECT(command) || JB_ROOT_IS_SCALAR(command))
		MALFORMED("command must be a JSON object");
	return parse_command(&command->root, key, false);
}

/*
 * An update's or delete's "key" names the primary key columns and nothing
 * else: a column more would be a condition the command does not check.
 * Checked where the command is proposed only: entries committed before
 * this check apply as they did, ignoring such a column, on every node.
 */
static void
check_key_is_pk(RowCommand *c)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	ListCell   *lc;

	if (c->op != OP_UPDATE && c->op != OP_DELETE)
		return;
	it = JsonbIteratorInit(&c->key->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *col;
		bool		in_pk = false;

		if (tok != WJB_KEY)
			continue;
		col = pnstrdup(v.val.string.val, v.val.string.len);
		foreach(lc, c->pk)
			in_pk |= strcmp(lfirst(lc), col) == 0;
		if (!in_pk)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("\"key\": column \"%s\" is not in the primary key of %s",
							col, c->qualname),
					 errhint("A condition on other columns goes in \"if\".")));
	}
}

/*
 * The words a date or time input reads as the moment it runs: in a
 * command's value, each node would read its own moment when it applies.
 */
static const char *const clock_words[] = {"now", "today", "tomorrow", "yesterday"};

/* The first clock word of `s' (`len' bytes) taken as words, or NULL. */
static const char *
clock_word(const char *s, int len)
{
	int			i = 0;

	while (i < len)
	{
		int			start;

		while (i < len && !isalpha((unsigned char) s[i]))
			i++;
		start = i;
		while (i < len && isalpha((unsigned char) s[i]))
			i++;
		for (int w = 0; w < lengthof(clock_words); w++)
			if (i - start == strlen(clock_words[w]) &&
				pg_strncasecmp(s + start, clock_words[w], i - start) == 0)
				return clock_words[w];
	}
	return NULL;
}

/*
 * The clock word in value `v' for a column of type `type', or NULL: a
 * string the type's input reads, an array's elements, a composite's
 * fields given as a JSON object (by their own types).
 */
static const char *
value_clock_word(Oid type, JsonbValue *v)
{
	Oid			base = getBaseType(type);
	JsonbIterator *it;
	JsonbValue	inner;
	JsonbIteratorToken tok;
	const char *word = NULL;
	TupleDesc	desc;
	char	   *field = NULL;

	if (v->type == jbvString)
		return time_type_of(base, true) ? clock_word(v->val.string.val, v->val.string.len) : NULL;
	if (v->type != jbvBinary || !time_type_of(base, true))
		return NULL;
	it = JsonbIteratorInit(v->val.binary.data);
	if (OidIsValid(get_element_type(base)))
	{
		/* an element, or an inner array of a multidimensional one */
		while (word == NULL && (tok = JsonbIteratorNext(&it, &inner, true)) != WJB_DONE)
			if (tok == WJB_ELEM)
				word = value_clock_word(inner.type == jbvBinary &&
										JsonContainerIsArray(inner.val.binary.data) ?
										type : get_element_type(base), &inner);
		return word;
	}
	if (get_typtype(base) != TYPTYPE_COMPOSITE)
		return NULL;
	desc = lookup_rowtype_tupdesc_copy(base, -1);
	while (word == NULL && (tok = JsonbIteratorNext(&it, &inner, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			field = pnstrdup(inner.val.string.val, inner.val.string.len);
		else if (tok == WJB_VALUE && field != NULL)
			for (int i = 0; i < desc->natts; i++)
				if (!TupleDescAttr(desc, i)->attisdropped &&
					strcmp(NameStr(TupleDescAttr(desc, i)->attname), field) == 0)
					word = value_clock_word(TupleDescAttr(desc, i)->atttypid, &inner);
	}
	return word;
}

/* Does any string of value `v', however deep, hold a clock word? */
static bool
any_clock_word(JsonbValue *v)
{
	JsonbIterator *it;
	JsonbValue	inner;
	JsonbIteratorToken tok;

	if (v->type == jbvString)
		return clock_word(v->val.string.val, v->val.string.len) != NULL;
	if (v->type != jbvBinary)
		return false;
	it = JsonbIteratorInit(v->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &inner, false)) != WJB_DONE)
		if ((tok == WJB_VALUE || tok == WJB_ELEM) && inner.type == jbvString &&
			clock_word(inner.val.string.val, inner.val.string.len) != NULL)
			return true;
	return false;
}

/*
 * No value of `obj' (the command's `what') for a time column names a clock
 * word.  The column's type is looked up only for a value that holds one.
 */
static void
check_clock_words_of(RowCommand *c, Jsonb *obj, const char *what)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *col = NULL;

	if (obj == NULL)
		return;
	it = JsonbIteratorInit(&obj->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		const char *word;

		if (tok == WJB_KEY)
			col = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && col != NULL && any_clock_word(&v) &&
				 (word = value_clock_word(get_atttype(c->relid, get_attnum(c->relid, col)), &v)) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("\"%s\": column \"%s\" is given \"%s\", which every node would read as the moment it applies the command",
							what, col, word),
					 errhint("Give the time itself, as the proposing statement computes it (now(), current_date); in an update's \"set\", {\"now_plus\": \"0 s\"} gives the time of the entry.")));
	}
}

/*
 * A date or time column's value is read by each node when it applies the
 * command: "now" and the other clock words would give each node its own
 * time (and rows that differ, or a condition that holds on some only).
 * Checked where the command is proposed only, as check_key_is_pk.
 */
static void
check_clock_words(RowCommand *c)
{
	if (c->op == OP_CALL)
		return;
	check_clock_words_of(c, c->row, "row");
	check_clock_words_of(c, c->defaults, "defaults");
	check_clock_words_of(c, c->key, "key");
	check_clock_words_of(c, c->set, "set");
	check_clock_words_of(c, c->cond, "if");
}

/* errcontext of a domain's checks run on the number of an "add" */
static void
operand_context(void *arg)
{
	errcontext("checking \"add\" of column \"%s\" as a value of its domain", (char *) arg);
}

/*
 * Can column `col' of `relid' hold `text', the number of an "add"?  Read
 * as the apply reads it: by its base type's input with the column's
 * typmod (numeric(3,0) holds no 1000), then through its domain's checks.
 */
static void
check_operand(Oid relid, const char *col, const char *text)
{
	MemoryContext cxt = CurrentMemoryContext;
	Oid			type;
	int32		typmod;
	Oid			collation;
	Oid			base;
	char	   *type_name;
	Oid			input;
	Oid			ioparam;
	Datum		value = (Datum) 0;

	get_atttypetypmodcoll(relid, get_attnum(relid, col), &type, &typmod, &collation);
	base = getBaseTypeAndTypmod(type, &typmod);
	type_name = format_type_with_typemod(base, typmod);
	getTypeInputInfo(base, &input, &ioparam);
	PG_TRY();
	{
		value = OidInputFunctionCall(input, (char *) text, ioparam, typmod);
	}
	PG_CATCH();
	{
		refuse_caught(cxt, "\"set\": \"add\" of column \"%s\" is not a value of its type %s: %s",
					  col, type_name, text);
	}
	PG_END_TRY();
	if (base != type)
	{
		ErrorContextCallback context;

		/* its checks may run any function: their errors are the proposer's */
		context.callback = operand_context;
		context.arg = (void *) col;
		context.previous = error_context_stack;
		error_context_stack = &context;
		domain_check(value, false, type, NULL, NULL);
		error_context_stack = context.previous;
	}
}

/*
 * The number of an "add" is read as a value of the column's type when
 * applied: one it cannot hold (1.5 for an integer, 40000 for a smallint,
 * 1000 for a numeric(3,0), -1 for a domain of positive numbers) would
 * fail there on every node.  An error where the command is proposed
 * instead, and only there (as check_key_is_pk): K0011 naming the column
 * for the type, the domain's own error for its checks.  A base type's
 * input function raises no error but of its input, so none needs a
 * subtransaction to be caught; a domain's checks are not caught.
 */
static void
check_operands(RowCommand *c)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *col = NULL;

	if (c->add == NULL)
		return;
	it = JsonbIteratorInit(&c->add->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			col = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && v.type == jbvNumeric)
			check_operand(c->relid, col,
						  DatumGetCString(DirectFunctionCall1(numeric_out,
															  NumericGetDatum(v.val.numeric))));
	}
}

/*
 * The routing key `key' of a row command of `c' must be its first primary
 * key column's value as that column's type writes it (under the stored
 * text settings): a row's partition is the hash of that text, which the
 * apply checks (keyrange.c).  '01' for an integer key names the row 1,
 * whose partition may be another, and a boolean's 'true' the row t.  A
 * key the type cannot read fails here, with the type's error: the
 * command's value is the same text (check_routing_key), which every node
 * would fail to read.
 */
static void
check_key_canonical(RowCommand *c, const char *key)
{
	const char *col = linitial(c->pk);
	Oid			type;
	int32		typmod;
	Oid			collation;
	Oid			infunc;
	Oid			ioparam;
	Oid			outfunc;
	bool		varlena;
	int			nest;
	char	   *written;

	/* a domain's base type: its checks are the command's to run */
	get_atttypetypmodcoll(c->relid, get_attnum(c->relid, col), &type, &typmod, &collation);
	type = getBaseTypeAndTypmod(type, &typmod);
	/* these read and write any text as it is (a varchar(n) drops spaces) */
	if (type == TEXTOID || (type == VARCHAROID && typmod < 0))
		return;
	getTypeInputInfo(type, &infunc, &ioparam);
	getTypeOutputInfo(type, &outfunc, &varlena);
	nest = kmd_stored_text_settings();
	written = OidOutputFunctionCall(outfunc, OidInputFunctionCall(infunc, (char *) key, ioparam, typmod));
	AtEOXact_GUC(true, nest);
	if (strcmp(written, key) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("routing key \"%s\" is not written as column \"%s\" of %s writes it: \"%s\"",
						key, col, c->qualname, written),
				 errdetail("A row's partition is the hash of its key's text as its type writes it."),
				 errhint("Propose the command with the key \"%s\", and the same value in it.", written)));
}

/*
 * The checks of each command of `c' (each of a batch) made where it is
 * proposed only: an entry committed before one of them was added applies
 * as it did, on every node, whatever version applies it.
 */
static void
check_proposed(RowCommand *c, const char *key)
{
	ListCell   *lc;

	if (c->op == OP_BATCH)
	{
		foreach(lc, c->batch)
			check_proposed(lfirst(lc), key);
		return;
	}
	if (c->op != OP_CALL)
		check_key_canonical(c, key);
	check_key_is_pk(c);
	check_clock_words(c);
	check_operands(c);
}

void
kmd_rows_validate(Jsonb *command, const char *key)
{
	RowCommand *c = kmd_rows_parse(command, key);
	bool		reads = true;

	check_proposed(c, key);
	check_privileges(c, &reads);
}

/* ------------------------------------------------------------------------
 * The command as it travels
 * ------------------------------------------------------------------------
 */

static void
push_string(JsonbParseState **st, JsonbIteratorToken tok, const char *s)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) s;
	v.val.string.len = strlen(s);
	(void) pushJsonbValue(st, tok, &v);
}

/*
 * Default value `d' of a column of type `type', as a value of "defaults":
 * text that the column's input reads, but a json or jsonb value (or one of
 * a domain over them) as itself, since a JSON string would be stored as
 * a JSON string.
 */
static void
push_default(JsonbParseState **st, Oid type, Datum d)
{
	Oid			base = getBaseType(type);
	Oid			out;
	bool		isvarlena;
	Jsonb	   *j;
	JsonbValue	v;

	if (base != JSONOID && base != JSONBOID)
	{
		getTypeOutputInfo(type, &out, &isvarlena);
		push_string(st, WJB_VALUE, OidOutputFunctionCall(out, d));
		return;
	}
	if (base == JSONBOID)
		j = DatumGetJsonbP(d);
	else
		j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in,
											   CStringGetDatum(TextDatumGetCString(d))));
	if (JB_ROOT_IS_SCALAR(j))
		(void) JsonbExtractScalar(&j->root, &v);
	else
	{
		v.type = jbvBinary;
		v.val.binary.data = &j->root;
		v.val.binary.len = VARSIZE(j) - VARHDRSZ;
	}
	(void) pushJsonbValue(st, WJB_VALUE, &v);
}

/*
 * The "defaults" of an insert or upsert: those the command gave, and the
 * value of every column default that is not immutable (now(),
 * gen_random_uuid(), nextval(), random(), an identity column's next
 * value) of a column that neither they nor the row name, decided here
 * once: each node evaluating it would store a value of its own.  The
 * command may not give one of a GENERATED ALWAYS identity column, which
 * the row may not either (K0011).  They go apart from the row, so that an upsert's
 * update sets only the row's columns.  Values are written as text under
 * the settings the apply worker reads them with, whatever this session's.
 * Pushes nothing when there are none.
 */
static void
push_defaults(JsonbParseState **st, RowCommand *c)
{
	Relation	rel;
	TupleDesc	desc;
	int			nest = -1;		/* the settings are pinned at the first value */
	bool		open = false;
	JsonbValue	v;
	ListCell   *lc;

	if (c->defaults != NULL)
	{
		JsonbIterator *it = JsonbIteratorInit(&c->defaults->root);
		JsonbIteratorToken tok;

		push_string(st, WJB_KEY, "defaults");
		open = true;
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
			if (tok != WJB_END_OBJECT)
				(void) pushJsonbValue(st, tok, tok == WJB_BEGIN_OBJECT ? NULL : &v);
	}
	rel = table_open(c->relid, AccessShareLock);
	desc = RelationGetDescr(rel);
	foreach(lc, c->varying)
	{
		KmdVaryingDefault *var = lfirst(lc);
		Form_pg_attribute att;
		const char *name;
		Node	   *expr;
		EState	   *estate;
		ExprState  *es;
		Datum		d;
		bool		isnull;

		/* changed since it was read: applying checks the command again */
		if (var->attnum > desc->natts || TupleDescAttr(desc, var->attnum - 1)->attisdropped)
			continue;
		att = TupleDescAttr(desc, var->attnum - 1);
		name = NameStr(att->attname);

		if (att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS &&
			c->defaults != NULL && field(&c->defaults->root, name) != NULL)
			MALFORMED("\"defaults\": column \"%s\" is an identity column GENERATED ALWAYS", name);
		if (field(&c->row->root, name) != NULL ||
			(c->defaults != NULL && field(&c->defaults->root, name) != NULL))
			continue;
		expr = build_column_default(rel, var->attnum);
		if (expr == NULL)
			continue;
		if (!open)
		{
			push_string(st, WJB_KEY, "defaults");
			(void) pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
			open = true;
		}
		if (nest < 0)
			nest = kmd_stored_text_settings();
		estate = CreateExecutorState();
		es = ExecPrepareExpr((Expr *) expr, estate);
		d = ExecEvalExprSwitchContext(es, GetPerTupleExprContext(estate), &isnull);
		push_string(st, WJB_KEY, name);
		if (isnull)
		{
			v.type = jbvNull;
			(void) pushJsonbValue(st, WJB_VALUE, &v);
		}
		else
			push_default(st, att->atttypid, d);
		FreeExecutorState(estate);
	}
	if (nest >= 0)
		AtEOXact_GUC(true, nest);
	table_close(rel, AccessShareLock);
	if (open)
		(void) pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

/* `obj', parsed into `c', as it travels (see kmd_rows_prepare) */
static JsonbValue *
push_command(JsonbParseState **st, JsonbContainer *obj, RowCommand *c)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbValue	k;
	JsonbValue	v;
	ListCell   *next = list_head(c->batch);

	(void) pushJsonbValue(st, WJB_BEGIN_OBJECT, NULL);
	(void) JsonbIteratorNext(&it, &k, true);
	while (JsonbIteratorNext(&it, &k, true) == WJB_KEY)
	{
		char	   *name = pnstrdup(k.val.string.val, k.val.string.len);

		(void) JsonbIteratorNext(&it, &v, true);
		if (strcmp(name, "defaults") == 0)
			continue;			/* with the decided ones, below */
		(void) pushJsonbValue(st, WJB_KEY, &k);
		if (strcmp(name, "table") == 0 && c->qualname != NULL)
			push_string(st, WJB_VALUE, c->qualname);
		else if (strcmp(name, "commands") == 0 && c->op == OP_BATCH)
		{
			JsonbIterator *elems = JsonbIteratorInit(v.val.binary.data);
			JsonbValue	elem;
			JsonbIteratorToken tok;

			(void) pushJsonbValue(st, WJB_BEGIN_ARRAY, NULL);
			while ((tok = JsonbIteratorNext(&elems, &elem, true)) != WJB_DONE)
				if (tok == WJB_ELEM)
				{
					(void) push_command(st, elem.val.binary.data, lfirst(next));
					next = lnext(c->batch, next);
				}
			(void) pushJsonbValue(st, WJB_END_ARRAY, NULL);
		}
		else
			(void) pushJsonbValue(st, WJB_VALUE, &v);
	}
	if (c->op == OP_INSERT || c->op == OP_UPSERT)
		push_defaults(st, c);
	return pushJsonbValue(st, WJB_END_OBJECT, NULL);
}

/*
 * A row an insert or upsert attaches to a lease is noted under the
 * primary key the command gives (its "row", its "defaults", and those
 * decided here): a key column a default the proposer does not decide
 * would fill (a constant) must be named, or the note would never find
 * the row and the lease's end leave it for good.  Where the command is
 * applied (`applied'), against the table as it is at the command's point
 * of the log: the proposer's defaults are in "defaults" then, and a
 * kmd_ddl may have widened the key since.
 */
void
kmd_rows_check_lease_key(RowCommand *c, bool applied)
{
	ListCell   *lc;

	if (c->op == OP_BATCH)
	{
		foreach(lc, c->batch)
			kmd_rows_check_lease_key(lfirst(lc), applied);
		return;
	}
	if ((c->op != OP_INSERT && c->op != OP_UPSERT) || c->lease <= 0)
		return;
	foreach(lc, c->pk)
	{
		char	   *col = lfirst(lc);
		bool		decided = false;
		ListCell   *v;

		if (field(&c->row->root, col) != NULL ||
			(c->defaults != NULL && field(&c->defaults->root, col) != NULL))
			continue;
		foreach(v, applied ? NIL : c->varying)
			decided |= strcmp(NameStr(((KmdVaryingDefault *) lfirst(v))->name), col) == 0;
		if (!decided)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("\"row\" attached to a lease lacks primary key column \"%s\"", col),
					 applied ? errdetail("The table's primary key changed after the command was proposed.") : 0,
					 errhint("A row attached to a lease is noted under its whole primary key: name the column in \"row\" or \"defaults\".")));
	}
}

Jsonb *
kmd_rows_prepare(Jsonb *command, const char *key, bool *reads)
{
	RowCommand *c = kmd_rows_parse(command, key);
	JsonbParseState *st = NULL;

	check_proposed(c, key);
	*reads = true;
	check_privileges(c, reads);
	kmd_rows_check_lease_key(c, false);
	return JsonbValueToJsonb(push_command(&st, &command->root, c));
}
