/*-------------------------------------------------------------------------
 *
 * decode.c
 *	  The logical decoding output plugin "kommander": the change feed.
 *	  One JSON object per row change of a control table that an applied
 *	  entry made, in the order this node committed them, with the
 *	  partition, index and term of that entry:
 *
 *	  {"partition":1,"index":42,"term":3,"table":"public.jobs","op":"insert",
 *	   "key":{"id":"job-1"},"row":{"id":"job-1","state":"new"},"lsn":"0/1A2B3C8"}
 *
 * The apply worker writes a mark (a transactional logical message, see
 * events.h) before the changes of each entry it applies, in transactions
 * of a replication origin of its own (a message of any other transaction
 * is not kommander's, whatever its prefix); a change is in
 * the feed only if a mark came before it in its transaction and its table
 * is a control table (it has the kommander_guard trigger, outside schema
 * kommander).  An image installed from a peer is marked too: one
 * {"op":"snapshot"} object, then its rows (deletes and inserts, marked
 * "snapshot": true).  Option "include-system" adds the node's events
 * (splits, merges, roster and leader changes) as {"op":"event"} objects.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/decode.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/partition.h"
#include "catalog/pg_type.h"
#include "catalog/pg_trigger.h"
#include "commands/defrem.h"
#include "commands/trigger.h"
#include "replication/logical.h"
#include "replication/origin.h"
#include "replication/output_plugin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"

#include "events.h"
#include "guard.h"

extern PGDLLEXPORT void _PG_output_plugin_init(OutputPluginCallbacks *cb);

typedef struct DecodeState
{
	MemoryContext cxt;			/* reset after each object */
	bool		include_system;

	/* the entry (or image) whose changes follow, in this transaction */
	bool		marked;
	bool		image;
	int32		partition_id;
	uint64		index;
	uint64		term;
} DecodeState;

static void
decode_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init)
{
	DecodeState *state = palloc0(sizeof(DecodeState));
	ListCell   *lc;

	state->cxt = AllocSetContextCreate(ctx->context, "kommander decoding",
									   ALLOCSET_DEFAULT_SIZES);
	foreach(lc, ctx->output_plugin_options)
	{
		DefElem    *elem = lfirst(lc);

		if (strcmp(elem->defname, "include-system") == 0)
		{
			if (elem->arg == NULL)
				state->include_system = true;
			else if (!parse_bool(strVal(elem->arg), &state->include_system))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("could not parse value \"%s\" for option \"%s\"",
								strVal(elem->arg), elem->defname),
						 errhint("Use true or false.")));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("option \"%s\" is unknown to the kommander output plugin",
							elem->defname),
					 errhint("The plugin takes one option, \"include-system\".")));
	}
	ctx->output_plugin_private = state;
	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	opt->receive_rewrites = false;
}

static void
decode_shutdown(LogicalDecodingContext *ctx)
{
	DecodeState *state = ctx->output_plugin_private;

	MemoryContextDelete(state->cxt);
}

static void
decode_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	DecodeState *state = ctx->output_plugin_private;

	state->marked = false;
}

static void
decode_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr commit_lsn)
{
}

/* ------------------------------------------------------------------------
 * Writing objects
 * ------------------------------------------------------------------------
 */
static void
append_lsn(StringInfo out, ReorderBufferTXN *txn)
{
	appendStringInfo(out, ",\"lsn\":\"%X/%X\"}", LSN_FORMAT_ARGS(txn->final_lsn));
}

/* "partition":P,"index":I,"term":T of the entry being decoded */
static void
append_position(StringInfo out, DecodeState *state)
{
	appendStringInfo(out, "\"partition\":%d,\"index\":" UINT64_FORMAT ",\"term\":" UINT64_FORMAT,
					 state->partition_id, state->index, state->term);
}

/* Is `s' (a number's text) a JSON number?  NaN and Infinity are not. */
static bool
json_number(const char *s)
{
	for (const char *p = s; *p; p++)
		if (!(isdigit((unsigned char) *p) || *p == '-' || *p == '+' || *p == '.' ||
			  *p == 'e' || *p == 'E'))
			return false;
	return s[0] != '\0';
}

/*
 * One value as JSON: numbers, booleans and json/jsonb as themselves,
 * anything else as the string of its text form.
 */
static void
append_value(StringInfo out, Oid typid, Datum value)
{
	Oid			base = getBaseType(typid);
	Oid			outfn;
	bool		isvarlena;
	char	   *text;

	getTypeOutputInfo(typid, &outfn, &isvarlena);
	text = OidOutputFunctionCall(outfn, value);
	switch (base)
	{
		case INT2OID:
		case INT4OID:
		case INT8OID:
		case OIDOID:
		case FLOAT4OID:
		case FLOAT8OID:
		case NUMERICOID:
			if (json_number(text))
				appendStringInfoString(out, text);
			else
				escape_json(out, text);
			break;
		case BOOLOID:
			appendStringInfoString(out, text[0] == 't' ? "true" : "false");
			break;
		case JSONOID:
			/*
			 * As stored, but on one line: an object per line is the feed's
			 * framing.  A json value holds line breaks only as whitespace
			 * between its tokens (in its strings they are escaped).
			 */
			for (char *p = text; *p; p++)
				appendStringInfoChar(out, *p == '\n' || *p == '\r' ? ' ' : *p);
			break;
		case JSONBOID:
			appendStringInfoString(out, text);
			break;
		default:
			escape_json(out, text);
			break;
	}
}

/*
 * The columns of `tuple' as a JSON object: all of them, or only those of
 * `cols' (attribute numbers).  A large value that an update left unchanged
 * and stored out of line is not in the WAL: it is left out.
 */
static void
append_tuple(StringInfo out, TupleDesc desc, HeapTuple tuple,
			 const AttrNumber *cols, int n_cols)
{
	bool		first = true;
	int			n = cols != NULL ? n_cols : desc->natts;

	appendStringInfoChar(out, '{');
	for (int i = 0; i < n; i++)
	{
		AttrNumber	attnum = cols != NULL ? cols[i] : i + 1;
		Form_pg_attribute att;
		bool		isnull;
		Datum		value;

		if (attnum <= 0 || attnum > desc->natts)
			continue;
		att = TupleDescAttr(desc, attnum - 1);
		if (att->attisdropped)
			continue;
		value = heap_getattr(tuple, attnum, desc, &isnull);
		if (!isnull && att->attlen == -1 &&
			VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value)))
			continue;
		if (!first)
			appendStringInfoChar(out, ',');
		first = false;
		escape_json(out, NameStr(att->attname));
		appendStringInfoChar(out, ':');
		if (isnull)
			appendStringInfoString(out, "null");
		else
			append_value(out, att->atttypid, value);
	}
	appendStringInfoChar(out, '}');
}

/*
 * Did an update change the key?  A key column the update left as it was
 * and that is stored out of line is not in the new row's WAL: unchanged.
 */
static bool
key_changed(TupleDesc desc, HeapTuple oldtuple, HeapTuple newtuple,
			const AttrNumber *key, int n_key)
{
	for (int i = 0; i < n_key; i++)
	{
		AttrNumber	attnum = key[i];
		Form_pg_attribute att;
		bool		old_null;
		bool		new_null;
		Datum		old_value;
		Datum		new_value;
		Oid			outfn;
		bool		isvarlena;

		if (attnum <= 0 || attnum > desc->natts)
			continue;
		att = TupleDescAttr(desc, attnum - 1);
		old_value = heap_getattr(oldtuple, attnum, desc, &old_null);
		new_value = heap_getattr(newtuple, attnum, desc, &new_null);
		if (!new_null && att->attlen == -1 &&
			VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(new_value)))
			continue;
		if (old_null != new_null)
			return true;
		if (old_null)
			continue;
		getTypeOutputInfo(att->atttypid, &outfn, &isvarlena);
		if (strcmp(OidOutputFunctionCall(outfn, old_value),
				   OidOutputFunctionCall(outfn, new_value)) != 0)
			return true;
	}
	return false;
}

/*
 * `newtuple' with the key columns an update left unchanged and stored out
 * of line, which its WAL lacks, taken from `oldtuple': Postgres logs the
 * old key whole when a key column is stored so.  Palloc'd (or `newtuple'
 * itself when there is nothing to take).
 */
static HeapTuple
with_old_key(TupleDesc desc, HeapTuple newtuple, HeapTuple oldtuple,
			 const AttrNumber *key, int n_key)
{
	Datum	   *values = NULL;
	bool	   *nulls = NULL;

	if (oldtuple == NULL)
		return newtuple;
	for (int i = 0; i < n_key; i++)
	{
		AttrNumber	attnum = key[i];
		Form_pg_attribute att;
		bool		isnull;
		Datum		value;

		if (attnum <= 0 || attnum > desc->natts)
			continue;
		att = TupleDescAttr(desc, attnum - 1);
		if (att->attlen != -1)
			continue;
		value = heap_getattr(newtuple, attnum, desc, &isnull);
		if (isnull || !VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value)))
			continue;
		value = heap_getattr(oldtuple, attnum, desc, &isnull);
		if (isnull || VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(value)))
			continue;
		if (values == NULL)
		{
			values = palloc(sizeof(Datum) * desc->natts);
			nulls = palloc(sizeof(bool) * desc->natts);
			heap_deform_tuple(newtuple, desc, values, nulls);
		}
		values[attnum - 1] = value;
	}
	return values != NULL ? heap_form_tuple(desc, values, nulls) : newtuple;
}

/*
 * Does `tuple', an old row as the replica identity logged it, hold the
 * key?  A primary key has no NULL: a NULL column was not logged (REPLICA
 * IDENTITY USING INDEX of another index logs that index's columns only).
 */
static bool
key_logged(TupleDesc desc, HeapTuple tuple, const AttrNumber *key, int n_key)
{
	if (tuple == NULL || n_key == 0)
		return false;
	for (int i = 0; i < n_key; i++)
	{
		bool		isnull;

		if (key[i] <= 0 || key[i] > desc->natts)
			return false;
		(void) heap_getattr(tuple, key[i], desc, &isnull);
		if (isnull)
			return false;
	}
	return true;
}

/* The primary key's columns; how many (0 when it has none). */
static int
primary_key(Relation rel, AttrNumber *cols)
{
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	Relation	index;
	int			n;

	if (!OidIsValid(pk))
		return 0;
	index = RelationIdGetRelation(pk);
	if (!RelationIsValid(index))
		return 0;
	n = Min(index->rd_index->indnkeyatts, INDEX_MAX_KEYS);
	for (int i = 0; i < n; i++)
		cols[i] = index->rd_index->indkey.values[i];
	RelationClose(index);
	return n;
}

/*
 * Is `t' the guard kmd_register_table puts on a control table?  Told by
 * its function too: any table may have a trigger of that name.
 */
static bool
is_guard(const Trigger *t)
{
	return strcmp(t->tgname, "kommander_guard") == 0 && !TRIGGER_FOR_ROW(t->tgtype) &&
		kmd_is_own_function(t->tgfoid, "control_table_guard");
}

/* A control table: the guard kmd_register_table puts on it, outside kommander. */
static bool
is_control_table(Relation rel)
{
	char	   *nsp;
	bool		ours;

	if (rel->trigdesc == NULL)
		return false;
	nsp = get_namespace_name(RelationGetNamespace(rel));
	ours = nsp != NULL && strcmp(nsp, "kommander") == 0;
	if (nsp != NULL)
		pfree(nsp);
	if (ours)
		return false;
	for (int i = 0; i < rel->trigdesc->numtriggers; i++)
		if (is_guard(&rel->trigdesc->triggers[i]))
			return true;
	return false;
}

/* Does relation `relid' carry the guard? */
static bool
guarded(Oid relid)
{
	Relation	rel = RelationIdGetRelation(relid);
	bool		found = false;

	if (!RelationIsValid(rel))
		return false;
	for (int i = 0; rel->trigdesc != NULL && i < rel->trigdesc->numtriggers && !found; i++)
		found = is_guard(&rel->trigdesc->triggers[i]);
	RelationClose(rel);
	return found;
}

/* The registered table of each partition seen, until the relcache says */
typedef struct PartitionRoot
{
	Oid			relid;			/* the hash key: a partition */
	Oid			root;
} PartitionRoot;

static HTAB *partition_roots = NULL;

static void
forget_roots(Datum arg, Oid relid)
{
	if (partition_roots == NULL)
		return;
	if (OidIsValid(relid))
		(void) hash_search(partition_roots, &relid, HASH_REMOVE, NULL);
	else
	{
		HASH_SEQ_STATUS seq;
		PartitionRoot *r;

		hash_seq_init(&seq, partition_roots);
		while ((r = hash_seq_search(&seq)) != NULL)
			(void) hash_search(partition_roots, &r->relid, HASH_REMOVE, NULL);
	}
}

/*
 * The table a change is of, as registered: a partition of a partitioned
 * control table (which carries the guard too) is named by its topmost
 * guarded ancestor, the table that was registered.
 */
static void
append_table(StringInfo out, Relation rel)
{
	Oid			relid = RelationGetRelid(rel);

	if (rel->rd_rel->relispartition)
	{
		PartitionRoot *r;

		if (partition_roots == NULL)
		{
			HASHCTL		ctl;

			ctl.keysize = sizeof(Oid);
			ctl.entrysize = sizeof(PartitionRoot);
			ctl.hcxt = CacheMemoryContext;
			partition_roots = hash_create("kommander partition roots", 64, &ctl,
										  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
			CacheRegisterRelcacheCallback(forget_roots, (Datum) 0);
		}
		r = hash_search(partition_roots, &relid, HASH_FIND, NULL);
		if (r == NULL)
		{
			Oid			root = relid;
			ListCell   *lc;

			foreach(lc, get_partition_ancestors(relid))
				if (guarded(lfirst_oid(lc)))
					root = lfirst_oid(lc);
			r = hash_search(partition_roots, &relid, HASH_ENTER, NULL);
			r->root = root;
		}
		relid = r->root;
	}
	appendStringInfoString(out, ",\"table\":");
	escape_json(out, quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
												get_rel_name(relid)));
}

static void
decode_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			  Relation rel, ReorderBufferChange *change)
{
	DecodeState *state = ctx->output_plugin_private;
	MemoryContext old;
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	key[INDEX_MAX_KEYS];
	int			n_key;
	HeapTuple	newtuple = change->data.tp.newtuple ? &change->data.tp.newtuple->tuple : NULL;
	HeapTuple	oldtuple = change->data.tp.oldtuple ? &change->data.tp.oldtuple->tuple : NULL;
	const char *op;

	if (!state->marked)
		return;
	switch (change->action)
	{
		case REORDER_BUFFER_CHANGE_INSERT:
			op = "insert";
			break;
		case REORDER_BUFFER_CHANGE_UPDATE:
			op = "update";
			break;
		case REORDER_BUFFER_CHANGE_DELETE:
			op = "delete";
			break;
		default:
			return;
	}
	old = MemoryContextSwitchTo(state->cxt);
	if (!is_control_table(rel))
	{
		MemoryContextSwitchTo(old);
		MemoryContextReset(state->cxt);
		return;
	}
	n_key = primary_key(rel, key);
	if (change->action == REORDER_BUFFER_CHANGE_UPDATE && newtuple != NULL)
		newtuple = with_old_key(desc, newtuple, oldtuple, key, n_key);

	OutputPluginPrepareWrite(ctx, true);
	appendStringInfoChar(ctx->out, '{');
	append_position(ctx->out, state);
	append_table(ctx->out, rel);
	appendStringInfo(ctx->out, ",\"op\":\"%s\",\"key\":", op);
	if (change->action == REORDER_BUFFER_CHANGE_DELETE)
	{
		/* the old row's key: what the replica identity logged of it */
		if (key_logged(desc, oldtuple, key, n_key))
			append_tuple(ctx->out, desc, oldtuple, key, n_key);
		else
			appendStringInfoString(ctx->out, "null");
		appendStringInfoString(ctx->out, ",\"row\":null");
	}
	else
	{
		if (newtuple != NULL && n_key > 0)
			append_tuple(ctx->out, desc, newtuple, key, n_key);
		else
			appendStringInfoString(ctx->out, "null");
		appendStringInfoString(ctx->out, ",\"row\":");
		if (newtuple != NULL)
			append_tuple(ctx->out, desc, newtuple, NULL, 0);
		else
			appendStringInfoString(ctx->out, "null");
		/*
		 * An update that changed the key logs the old one; with REPLICA
		 * IDENTITY FULL every update does, and the old key is told only
		 * when it differs.
		 */
		if (change->action == REORDER_BUFFER_CHANGE_UPDATE && key_logged(desc, oldtuple, key, n_key) &&
			(newtuple == NULL || key_changed(desc, oldtuple, newtuple, key, n_key)))
		{
			appendStringInfoString(ctx->out, ",\"old_key\":");
			append_tuple(ctx->out, desc, oldtuple, key, n_key);
		}
	}
	if (state->image)
		appendStringInfoString(ctx->out, ",\"snapshot\":true");
	append_lsn(ctx->out, txn);
	OutputPluginWrite(ctx, true);

	MemoryContextSwitchTo(old);
	MemoryContextReset(state->cxt);
}

/*
 * Is `txn' one of kommander's workers' (events.h)?  Only they can take a
 * replication origin of that name; a message of anyone else's prefixed
 * "kommander" is anyone's.  Looked up each time: an origin dropped frees
 * its id for the next one created.
 */
static bool
from_kommander(ReorderBufferTXN *txn)
{
	char	   *name;
	bool		ours;

	if (txn->origin_id == InvalidRepOriginId || txn->origin_id == DoNotReplicateId)
		return false;
	if (!replorigin_by_oid(txn->origin_id, true, &name))
		return false;
	ours = strncmp(name, KMD_FEED_ORIGIN_PREFIX, strlen(KMD_FEED_ORIGIN_PREFIX)) == 0;
	pfree(name);
	return ours;
}

/*
 * kommander's own messages: the marks of entries and images, and events.
 * A mark that does not parse ends what the changes after it are taken for.
 */
static void
decode_message(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			   XLogRecPtr message_lsn, bool transactional, const char *prefix,
			   Size message_size, const char *message)
{
	DecodeState *state = ctx->output_plugin_private;
	char		text[64];
	int32		partition_id;
	uint64		index;
	uint64		term;

	if (!transactional || strcmp(prefix, KMD_FEED_PREFIX) != 0 || message_size < 1 ||
		!from_kommander(txn))
		return;
	switch (message[0])
	{
		case 'E':
		case 'I':
			state->marked = false;
			if (message_size >= sizeof(text))
				return;
			memcpy(text, message + 1, message_size - 1);
			text[message_size - 1] = '\0';
			if (sscanf(text, "%d " UINT64_FORMAT " " UINT64_FORMAT,
					   &partition_id, &index, &term) != 3)
				return;
			state->marked = true;
			state->image = message[0] == 'I';
			state->partition_id = partition_id;
			state->index = index;
			state->term = term;
			if (state->image)
			{
				OutputPluginPrepareWrite(ctx, true);
				appendStringInfoString(ctx->out, "{\"op\":\"snapshot\",");
				append_position(ctx->out, state);
				append_lsn(ctx->out, txn);
				OutputPluginWrite(ctx, true);
			}
			break;
		case '-':
			/* what follows a mark, to keep it apart from the next change */
			break;
		case 'V':
			/* an event: {"event":...} becomes {"op":"event","event":...,"lsn":...} */
			if (!state->include_system || message_size < 3 || message[1] != '{' ||
				message[message_size - 1] != '}')
				return;
			OutputPluginPrepareWrite(ctx, true);
			appendStringInfoString(ctx->out, "{\"op\":\"event\",");
			appendBinaryStringInfo(ctx->out, message + 2, message_size - 3);
			append_lsn(ctx->out, txn);
			OutputPluginWrite(ctx, true);
			break;
	}
}

void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	AssertVariableIsOfType(&_PG_output_plugin_init, LogicalOutputPluginInit);

	cb->startup_cb = decode_startup;
	cb->begin_cb = decode_begin;
	cb->change_cb = decode_change;
	cb->commit_cb = decode_commit;
	cb->message_cb = decode_message;
	cb->shutdown_cb = decode_shutdown;
}
