/*-------------------------------------------------------------------------
 *
 * snapshot.c
 *	  Partition images: the state of one partition as of an applied index,
 *	  copied from a peer when this node cannot get there by its log (the
 *	  leader compacted what it needs, or a merge waits for a partition no
 *	  node serves any more).
 *
 * An image of a user partition is the rows of every control table whose
 * routing key hashes into the partition's range (and of the partition's
 * own state: kommander.requests, the outcomes of its recent request ids,
 * and its leases, kommander.lease_state and lease_rows, with the sender's
 * notes of the rows its ended leases left elsewhere, which the receiver
 * adds to its own, less those that stand for no row here), the
 * partition's row of the map, the map rows its log created (partitions it
 * split off) or retired (partitions merged into it, and what they split
 * off), and its Raft marker: index, term and configuration.  An image of
 * the system partition is the roster, the counters, the registered tables
 * and appliers, and every statement kmd_ddl ran (a node runs those it has
 * not).
 *
 * The sender answers kommander.image_manifest() and then the COPY of each
 * table's rows in one REPEATABLE READ transaction, so that all of it is one
 * MVCC snapshot; the receiver (the apply worker) pulls them through a libpq
 * connection to the peer's conninfo, as the role peers use, and installs
 * everything in one transaction: the range's rows replaced (streamed
 * through COPY, bounded memory on both sides), checked against the
 * sender's row count and checksum, the map, the marker and the applied
 * index.  An interrupted transfer changes nothing and is tried again; so
 * is an image behind this node's map (one that has not taken in a
 * partition gone here into it, or older than the generation known here),
 * from the next node.
 *
 * Text forms are the same on both sides: each pins the settings that
 * change them (DateStyle, TimeZone, IntervalStyle, extra_float_digits,
 * bytea_output, lc_monetary, search_path and quote_all_identifiers).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/snapshot.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_coerce.h"
#include "parser/parse_relation.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "apply.h"
#include "barrier.h"
#include "errcodes.h"
#include "events.h"
#include "failure.h"
#include "guc.h"
#include "identity.h"
#include "keyrange.h"
#include "lease.h"
#include "remote.h"
#include "shmem.h"
#include "snapshot.h"
#include "stats.h"
#include "storage.h"
#include "syscommand.h"
#include "table_keys.h"
#include "xact.h"

PG_FUNCTION_INFO_V1(kmd_image_manifest);

/* The settings whose values change the text form of stored values. */
static const char *const pinned[][2] = {
	{"datestyle", "ISO, MDY"},
	{"timezone", "UTC"},
	{"intervalstyle", "postgres"},
	{"extra_float_digits", "3"},
	{"bytea_output", "hex"},
	{"lc_monetary", "C"},
	/* the text of reg* values names what the search_path does not find */
	{"search_path", "public, pg_temp"},
	{"quote_all_identifiers", "off"},
};

/* set_config() of every pinned setting; `local': for the transaction only */
static char *
pin_settings_sql(bool local)
{
	StringInfoData sql;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int i = 0; i < lengthof(pinned); i++)
		appendStringInfo(&sql, "%spg_catalog.set_config('%s', '%s', %s)", i ? ", " : "",
						 pinned[i][0], pinned[i][1], local ? "true" : "false");
	return sql.data;
}

/*
 * The hash of the routing key of control table `relid' (the first column
 * of its primary key) as an SQL expression.  Its text is the type's
 * output, which the apply checks rows with (keyrange.c) and a proposer
 * routes.  A cast to text is that too, unless a function makes it (a
 * boolean's writes 'true' for 't', an inet's adds the netmask, and one of
 * a user's type is its owner's code): then format() calls the output
 * function, and no index can serve the expression.  Else the cast, which
 * an index on the expression serves (README, Bounded logs).
 */
static char *
routing_hash(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	Oid			pkidx = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;
	Form_pg_attribute att;
	const char *col;
	Oid			castfunc;
	bool		by_function;

	if (!OidIsValid(pkidx))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("control table %s has no primary key", RelationGetRelationName(rel))));
	idx = index_open(pkidx, AccessShareLock);
	att = TupleDescAttr(RelationGetDescr(rel), idx->rd_index->indkey.values[0] - 1);
	col = quote_identifier(NameStr(att->attname));
	by_function = find_coercion_pathway(TEXTOID, att->atttypid, COERCION_EXPLICIT,
										&castfunc) == COERCION_PATH_FUNC;
	index_close(idx, AccessShareLock);
	table_close(rel, AccessShareLock);
	if (by_function)
		return psprintf("kommander.key_hash(pg_catalog.format('%%s', %s))", col);
	return psprintf("kommander.key_hash((%s)::pg_catalog.text)", col);
}

/*
 * The rows of `relid' in the key-hash range [lo, hi) (hi NULL: unbounded):
 * a WHERE condition on its routing column.
 */
static char *
range_filter(Oid relid, int64 lo, bool hi_null, int64 hi)
{
	char	   *hash = routing_hash(relid);
	char	   *filter;

	filter = psprintf("%s >= " INT64_FORMAT, hash, lo);
	if (!hi_null)
		filter = psprintf("%s AND %s < " INT64_FORMAT, filter, hash, hi);
	return filter;
}

/*
 * The tables an image of a user partition carries, in the order of their
 * names: every registered control table and the partition's own state,
 * its remembered request ids (requests.c), its leases with their rows and
 * the sender's notes of the rows its ended leases left elsewhere (lease.c;
 * each table's rows are those whose first key column hashes into the
 * range, a note's its lease's id).  The notes are left out by a sender
 * whose peers may not read them (an installation from before they were
 * carried) and taken when they come (lease_notes).  SPI connected.
 */
static Oid *
image_tables(int *n, bool sending)
{
	Oid		   *relids;

	/* a table dropped since it was registered is left out */
	if (SPI_execute(psprintf("SELECT relid FROM (SELECT t.relid FROM kommander.tables t "
							 "WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
							 "  WHERE c.oid OPERATOR(pg_catalog.=) t.relid::pg_catalog.oid) UNION ALL "
							 "SELECT 'kommander.requests'::pg_catalog.regclass UNION ALL "
							 "SELECT 'kommander.lease_state'::pg_catalog.regclass UNION ALL "
							 "SELECT 'kommander.lease_rows'::pg_catalog.regclass UNION ALL "
							 "SELECT 'kommander.lease_orphans'::pg_catalog.regclass WHERE %s) t ORDER BY relid::text",
							 sending ? "pg_catalog.has_table_privilege('kommander_peer', "
							 "'kommander.lease_orphans', 'SELECT')" : "true"),
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.tables");
	*n = (int) SPI_processed;
	relids = palloc(sizeof(Oid) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		bool		isnull;

		relids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}
	return relids;
}

static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/*
 * Is it kommander.lease_orphans?  A node's notes are not a function of
 * the image's index (each node takes them from its own copies of the
 * other partitions when it applies a lease's end), so an image adds the
 * sender's to the receiver's instead of replacing them: a note too many
 * costs one drop entry that deletes nothing, one too few leaves rows
 * behind.
 */
static bool
lease_notes(Oid relid)
{
	return strcmp(qualified_name(relid), "kommander.lease_orphans") == 0;
}

/*
 * Row count and checksum of a table's rows under `filter', as text; with
 * `fresh', in a new snapshot that sees this transaction's own writes.
 * The sender (in kommander.image_manifest) and the receiver (the apply
 * worker) take it with the same search_path, which the text of a reg*
 * value depends on.
 */
static void
range_digest(Oid relid, const char *filter, bool fresh, int64 *count, char **sum)
{
	bool		isnull;
	KmdRoleSaved saved;
	volatile bool done = false;
	char	   *sql = psprintf("SELECT pg_catalog.count(*), coalesce(pg_catalog.sum(pg_catalog.hashtextextended(t::text, 0)), 0)::text "
							   "FROM %s t WHERE %s", qualified_name(relid), filter);

	/*
	 * As the table's owner: the casts to text may be the owner's (a cast
	 * from the table's row type, or from its key's type).
	 */
	kmd_role_enter_restricted(&saved, kmd_rel_owner(relid));
	PG_TRY();
	{
		int			nest = NewGUCNestLevel();

		(void) set_config_option("search_path", "pg_catalog", PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		if (SPI_execute(sql, !fresh, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read the rows of %s", qualified_name(relid));
		AtEOXact_GUC(true, nest);
		done = true;
	}
	PG_FINALLY();
	{
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
	*count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*sum = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
}

/* Columns a copy carries: every one but dropped and generated ones. */
static List *
copy_columns(Oid relid, StringInfo select_list)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *names = NIL;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated)
			continue;
		names = lappend(names, makeString(pstrdup(NameStr(att->attname))));
		appendStringInfo(select_list, "%s%s", select_list->len ? ", " : "",
						 quote_identifier(NameStr(att->attname)));
	}
	table_close(rel, AccessShareLock);
	return names;
}

/* ------------------------------------------------------------------------
 * The sending side
 * ------------------------------------------------------------------------
 */

static int64
int64_result(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

Datum
kmd_image_manifest(PG_FUNCTION_ARGS)
{
	int32		partition_id;
	int32		to_node;
	pg_uuid_t  *cluster;
	Oid			peer_role = get_role_oid("kommander_peer", false);
	uint64		index;
	uint64		term;
	int64		lo = 0;
	int64		hi = 0;
	bool		hi_null = true;
	raft_conf	conf;
	StringInfoData tables;
	Datum		values[5];
	Oid			types[5] = {INT4OID, INT8OID, INT8OID, BYTEAOID, TEXTOID};
	bool		isnull;
	Datum		manifest;
	int			n_tables;
	Oid		   *relids;

	/* a security definer: the caller's own role is the session's */
	if (!superuser_arg(GetSessionUserId()) &&
		!has_privs_of_role(GetSessionUserId(), peer_role))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to copy a kommander partition image"),
				 errhint("Grant the role kommander_peer to the role peers connect as.")));
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("arguments of kommander.image_manifest must not be null")));
	partition_id = PG_GETARG_INT32(0);
	cluster = PG_GETARG_UUID_P(1);
	to_node = PG_GETARG_INT32(2);
	if (kmd_shared == NULL || !kmd_shared->member)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_NOT_MEMBER),
				 errmsg("this node is not a member of a kommander cluster")));
	if (memcmp(cluster->data, kmd_shared->cluster_id, UUID_LEN) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("image asked for by another cluster")));
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	isnull = kmd_node_find(to_node) == NULL;
	LWLockRelease(kmd_shared->lock);
	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("image asked for by node %d, which is not a member of this cluster",
						to_node)));
	/* the manifest holds the roster's conninfo: only for that node's role */
	kmd_check_peer_session((uint32) to_node, "copy an image for");
	if (!IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("an image is copied in a REPEATABLE READ transaction"),
				 errdetail("The manifest and the rows that follow must come from one snapshot.")));

	SPI_connect();
	values[0] = Int32GetDatum(partition_id);
	if (SPI_execute_with_args("SELECT lo, hi, state FROM kommander.partition_map WHERE partition_id = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.partition_map");
	if (SPI_processed != 1 ||
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3), "gone") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partition %d is not served by this node", partition_id),
				 errdetail("It is gone (merged into its neighbour) or unknown here.")));
	lo = int64_result(0, 1);
	(void) SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &hi_null);
	hi = int64_result(0, 2);

	/*
	 * A partition that waits for an image here (a split's child this node
	 * learned of from an image, or one whose log a system image cut at
	 * another point than the other nodes') holds rows that no applied
	 * index describes: never an image.
	 */
	if (SPI_execute_with_args("SELECT 1 FROM kommander.snapshot WHERE partition_id = $1 AND image_wanted",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.snapshot");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("partition %d waits for an image on this node itself", partition_id),
				 errhint("Its image is copied from another node.")));

	if (SPI_execute_with_args("SELECT applied_index, applied_term FROM kommander.applied "
							  "WHERE partition_id = $1", 1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.applied");
	index = SPI_processed == 1 ? (uint64) int64_result(0, 1) : 0;
	term = SPI_processed == 1 ? (uint64) int64_result(0, 2) : 0;
	kmd_storage_conf_at(partition_id, index, &conf);

	/* every control table's rows in the range: how many, and their checksum */
	initStringInfo(&tables);
	appendStringInfoChar(&tables, '[');
	relids = image_tables(&n_tables, true);
	for (int i = 0; i < n_tables && partition_id != 0; i++)
	{
		int64		count;
		char	   *sum;

		range_digest(relids[i], range_filter(relids[i], lo, hi_null, hi), false, &count, &sum);
		appendStringInfo(&tables, "%s{\"table\": ", i ? ", " : "");
		escape_json(&tables, qualified_name(relids[i]));
		appendStringInfo(&tables, ", \"rows\": " INT64_FORMAT ", \"sum\": \"%s\"}", count, sum);
	}
	appendStringInfoChar(&tables, ']');

	values[1] = Int64GetDatum((int64) index);
	values[2] = Int64GetDatum((int64) term);
	values[3] = PointerGetDatum(kmd_conf_encode(&conf));
	values[4] = CStringGetTextDatum(tables.data);
	if (SPI_execute_with_args(
							  "WITH RECURSIVE absorbed(id) AS ("
							  "  SELECT $1 UNION SELECT m.partition_id FROM kommander.partition_map m "
							  "  JOIN absorbed a ON m.merged_into = a.id) "
							  "SELECT pg_catalog.jsonb_build_object("
							  " 'partition_id', $1, 'index', $2, 'term', $3, 'conf', pg_catalog.encode($4, 'hex'),"
							  " 'sys_index', coalesce((SELECT applied_index FROM kommander.applied WHERE partition_id = 0), 0),"
							  " 'barriers', " KMD_BARRIERS_APPLIED ","
							  " 'map', (SELECT pg_catalog.to_jsonb(m) FROM kommander.partition_map m WHERE m.partition_id = $1),"
							  " 'absorbed', coalesce((SELECT pg_catalog.jsonb_agg(m) FROM kommander.partition_map m "
							  "   WHERE m.partition_id IN (SELECT id FROM absorbed) AND m.partition_id <> $1), '[]'),"
							  " 'children', coalesce((SELECT pg_catalog.jsonb_agg(m) FROM kommander.partition_map m "
							  "   WHERE m.parent IN (SELECT id FROM absorbed)), '[]'),"
							  " 'tables', $5::jsonb,"
							  " 'system', CASE WHEN $1 = 0 THEN pg_catalog.jsonb_build_object("
							  "   'roster', (SELECT coalesce(pg_catalog.jsonb_agg(r ORDER BY node_id), '[]') FROM kommander.roster r),"
							  "   'counters', (SELECT coalesce(pg_catalog.jsonb_agg(c), '[]') FROM kommander.counters c),"
							  "   'tables', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('table', relid::text,"
							  "       'registered', registered) ORDER BY registered), '[]') FROM kommander.tables t"
							  "       WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c"
							  "         WHERE c.oid OPERATOR(pg_catalog.=) t.relid::pg_catalog.oid)),"
							  "   'appliers', (SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object('name', name,"
							  "       'fn', CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_proc p"
							  "         WHERE p.oid OPERATOR(pg_catalog.=) a.fn::pg_catalog.oid) THEN fn::text END,"
							  "       'registered', registered)), '[]') FROM kommander.appliers a),"
							  "   'ddl', (SELECT coalesce(pg_catalog.jsonb_agg(d ORDER BY idx), '[]') FROM kommander.ddl d)) END)",
							  5, types, values, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not describe the image of partition %d", partition_id);
	manifest = SPI_datumTransfer(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
								 false, -1);
	SPI_finish();
	kmd_stat_add(KMD_STAT_IMAGES_SENT, -1, 1);
	PG_RETURN_DATUM(manifest);
}

/* ------------------------------------------------------------------------
 * The receiving side: the apply worker
 * ------------------------------------------------------------------------
 */

/* The connection a COPY reads from, for copy_read() */
static PGconn *copy_conn = NULL;
static char *copy_buf = NULL;
static int	copy_len = 0;
static int	copy_pos = 0;
static bool copy_done = false;

/* COPY's data source: the peer's COPY TO STDOUT, as it arrives. */
static int
copy_read(void *outbuf, int minread, int maxread)
{
	int			n = 0;

	while (n < minread)
	{
		int			r;

		if (copy_pos < copy_len)
		{
			int			take = Min(maxread - n, copy_len - copy_pos);

			memcpy((char *) outbuf + n, copy_buf + copy_pos, take);
			n += take;
			copy_pos += take;
			continue;
		}
		if (copy_buf != NULL)
		{
			PQfreemem(copy_buf);
			copy_buf = NULL;
		}
		copy_len = copy_pos = 0;
		if (copy_done)
			break;
		r = PQgetCopyData(copy_conn, &copy_buf, 1);
		if (r > 0)
			copy_len = r;
		else if (r == 0)
		{
			kmd_remote_wait(copy_conn, false);
			if (!PQconsumeInput(copy_conn))
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("lost the connection while copying an image"),
						 errdetail_internal("%s", PQerrorMessage(copy_conn))));
		}
		else if (r == -1)
			copy_done = true;
		else
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not copy an image"),
					 errdetail_internal("%s", PQerrorMessage(copy_conn))));
	}
	return n;
}

/* The manifest comes from a peer: any part of it may be malformed. */
static void
check_object(Jsonb *j, const char *name)
{
	if (!JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j))
		elog(ERROR, "malformed image manifest: no object to hold \"%s\"", name);
}

static const char *
text_field(Jsonb *j, const char *name)
{
	JsonbValue *v;

	check_object(j, name);
	v = getKeyJsonValueFromContainer(&j->root, name, strlen(name), NULL);

	if (v == NULL || v->type == jbvNull)
		return NULL;
	if (v->type == jbvString)
		return pnstrdup(v->val.string.val, v->val.string.len);
	if (v->type == jbvNumeric)
		return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
	elog(ERROR, "malformed image manifest: \"%s\"", name);
	return NULL;
}

/* A field that must be there, as text. */
static const char *
need_text(Jsonb *j, const char *name)
{
	const char *t = text_field(j, name);

	if (t == NULL)
		elog(ERROR, "malformed image manifest: no \"%s\"", name);
	return t;
}

static int64
int_field(Jsonb *j, const char *name)
{
	return DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(need_text(j, name))));
}

/*
 * A kommander.ddl row's rules: none from a node whose table has no such
 * column (its statements were applied without them), and none that this
 * node does not know, as decoding an entry refuses them.
 */
static uint32
rules_field(Jsonb *j)
{
	const char *t = text_field(j, "rules");
	int64		rules;

	if (t == NULL)
		return 0;
	rules = DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(t)));
	if (rules < 0 || (rules & ~(int64) KMD_RULES_KNOWN) != 0)
		elog(ERROR, "malformed image manifest: rules " INT64_FORMAT " of a kmd_ddl statement are not known here",
			 rules);
	return (uint32) rules;
}

/* A field of `j' as its own jsonb: an object or an array, never absent. */
static Jsonb *
sub_field(Jsonb *j, const char *name)
{
	JsonbValue *v;

	check_object(j, name);
	v = getKeyJsonValueFromContainer(&j->root, name, strlen(name), NULL);
	if (v == NULL || v->type != jbvBinary)
		elog(ERROR, "malformed image manifest: no object or array \"%s\"", name);
	return JsonbValueToJsonb(v);
}

/* A field of `j' that must be an array. */
static Jsonb *
sub_array(Jsonb *j, const char *name)
{
	Jsonb	   *a = sub_field(j, name);

	if (!JB_ROOT_IS_ARRAY(a) || JB_ROOT_IS_SCALAR(a))
		elog(ERROR, "malformed image manifest: \"%s\" is not an array", name);
	return a;
}

static void
exec_jsonb(const char *sql, Jsonb *arg, int expect)
{
	Oid			types[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(arg)};
	int			rc = SPI_execute_with_args(sql, 1, types, values, NULL, false, 0);

	if (rc != expect)
		elog(ERROR, "could not install an image: %s: %s", SPI_result_code_string(rc), sql);
}

/* The next result of the COPY of table `name', waited for interruptibly. */
static PGresult *
next_copy_result(PGconn *conn, const char *name)
{
	while (PQisBusy(conn))
	{
		kmd_remote_wait(conn, false);
		if (!PQconsumeInput(conn))
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not copy the rows of %s", name),
					 errdetail_internal("%s", PQerrorMessage(conn))));
	}
	return PQgetResult(conn);
}

/*
 * install_rows's part that runs the owner's code: the table's rows in the
 * range deleted, and the peer's copied in.
 */
static void
clear_and_copy(PGconn *conn, Oid relid, const char *name, const char *filter)
{
	StringInfoData cols;
	List	   *names;
	Relation	rel;
	ParseState *pstate;
	CopyFromState cstate;
	PGresult   *res;

	if (SPI_execute(psprintf("DELETE FROM %s WHERE %s", qualified_name(relid), filter),
					false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not clear the range of %s", name);

	initStringInfo(&cols);
	names = copy_columns(relid, &cols);
	if (!PQsendQuery(conn, psprintf("COPY (SELECT %s FROM %s WHERE %s) TO STDOUT",
									cols.data, qualified_name(relid), filter)))
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not copy the rows of %s", name),
				 errdetail_internal("%s", PQerrorMessage(conn))));
	res = next_copy_result(conn, name);
	if (PQresultStatus(res) != PGRES_COPY_OUT)
	{
		char	   *msg = pstrdup(PQresultErrorMessage(res));

		PQclear(res);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not copy the rows of %s", name),
				 errdetail_internal("%s", msg)));
	}
	PQclear(res);

	copy_conn = conn;
	/* a row left by a try that failed in the middle of its COPY */
	if (copy_buf != NULL)
		PQfreemem(copy_buf);
	copy_buf = NULL;
	copy_len = copy_pos = 0;
	copy_done = false;
	rel = table_open(relid, RowExclusiveLock);
	pstate = make_parsestate(NULL);
	(void) addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, NULL, false, false);
	/* the peer sends the database's encoding (remote.c), whatever ours says */
	cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, copy_read, names,
						   list_make1(makeDefElem("encoding",
												  (Node *) makeString(pstrdup(GetDatabaseEncodingName())),
												  -1)));
	(void) CopyFrom(cstate);
	EndCopyFrom(cstate);
	table_close(rel, NoLock);
	if (copy_buf != NULL)
		PQfreemem(copy_buf);
	copy_buf = NULL;
}

/*
 * Replace one control table's rows in the range by the peer's, streamed
 * through COPY, and check them against the manifest; the peer's notes of
 * ended leases are added to this node's instead (lease_notes).  Only the
 * tables of `relids' (image_tables), each once: `seen' marks them.
 */
static void
install_rows(PGconn *conn, Jsonb *table, int64 lo, bool hi_null, int64 hi,
			 Oid *relids, bool *seen, int n_tables)
{
	const char *name = need_text(table, "table");
	Oid			relid;
	int			t = 0;
	Datum		kept[2];		/* lease_notes: this node's, as arrays */
	bool		keep = false;
	char	   *volatile filter;
	KmdRoleSaved saved;
	volatile bool done = false;
	PGresult   *res;
	int64		count;
	char	   *sum;

	relid = DatumGetObjectId(DirectFunctionCall1(regclassin, CStringGetDatum(name)));
	while (t < n_tables && relids[t] != relid)
		t++;
	if (t == n_tables || seen[t])
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("malformed image manifest: it lists %s %s", name,
						t == n_tables ? "which is no control table here" : "twice")));
	seen[t] = true;
	filter = range_filter(relid, lo, hi_null, hi);
	if (lease_notes(relid))
	{
		bool		isnull;

		if (SPI_execute(psprintf("SELECT pg_catalog.array_agg(lease), pg_catalog.array_agg(key_hash) "
								 "FROM kommander.lease_orphans WHERE %s", filter),
						true, 0) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read kommander.lease_orphans");
		kept[0] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		kept[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!isnull)
		{
			kept[0] = datumCopy(kept[0], false, -1);
			kept[1] = datumCopy(kept[1], false, -1);
			keep = true;
		}
	}
	/*
	 * As the table's owner: what the delete and the copy run of the
	 * owner's (a trigger enabled ALWAYS, a domain's check) has its
	 * privileges, never the apply worker's, and leaves nothing behind.
	 */
	kmd_role_enter_restricted(&saved, kmd_rel_owner(relid));
	PG_TRY();
	{
		clear_and_copy(conn, relid, name, filter);
		/* and its deferred ones, as it */
		AfterTriggerFireDeferred();
		done = true;
	}
	PG_FINALLY();
	{
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();

	/* the COPY's own result, read without blocking interrupts */
	for (;;)
	{
		bool		ok;
		char	   *msg;

		if ((res = next_copy_result(conn, name)) == NULL)
			break;
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		msg = pstrdup(PQresultErrorMessage(res));
		PQclear(res);
		if (!ok)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not copy the rows of %s", name),
					 errdetail_internal("%s", msg)));
	}

	CommandCounterIncrement();
	range_digest(relid, filter, true, &count, &sum);
	if (count != int_field(table, "rows") || strcmp(sum, need_text(table, "sum")) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("the image of %s does not match its checksum", name),
				 errdetail("The peer has " INT64_FORMAT " rows with checksum %s; this node copied "
						   INT64_FORMAT " with checksum %s.",
						   int_field(table, "rows"), text_field(table, "sum"), count, sum)));
	if (keep)
	{
		Oid			types[2] = {INT8ARRAYOID, INT8ARRAYOID};

		if (SPI_execute_with_args("INSERT INTO kommander.lease_orphans "
								  "SELECT * FROM pg_catalog.unnest($1, $2) ON CONFLICT DO NOTHING",
								  2, types, kept, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "could not keep the notes of kommander.lease_orphans");
	}
}

/*
 * After the image of user partition `partition_id': drop the notes of
 * kommander.lease_orphans that stand for no row here.  The image of a
 * lease's partition adds the sender's notes, some of rows this node has
 * deleted already (nothing here would drop those: only a detach or the
 * rows' leader, which need not hold the note, removes one); the image of
 * the rows' partition may take away rows this node's own notes stood for.
 * A note is dropped only where its key's partition here holds its own
 * rows: this image's partition, or one that waits for no image (one that
 * does may hold no rows yet, or rows cleared, that its image brings; its
 * own install prunes again).  A row cannot join a lease of another
 * partition, so a note with no row behind it stays useless.  Only the
 * notes the image touched are looked at: those of its leases and those
 * of its rows.  SPI connected.
 */
static void
prune_lease_notes(int32 partition_id)
{
	Datum	   *waiting = palloc(sizeof(Datum) * Max(kmd_shared->max_partitions, 1));
	int			n = 0;
	Oid			types[2] = {INT4OID, INT4ARRAYOID};
	Datum		values[2];

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];

		if (part->partition_id > 0 && part->image_state != KMD_IMAGE_NONE)
			waiting[n++] = Int32GetDatum(part->partition_id);
	}
	LWLockRelease(kmd_shared->lock);
	values[0] = Int32GetDatum(partition_id);
	values[1] = PointerGetDatum(construct_array(waiting, n, INT4OID, 4, true, TYPALIGN_INT));
	if (SPI_execute_with_args("DELETE FROM kommander.lease_orphans o "
							  "USING kommander.partition_map x WHERE x.partition_id = $1 "
							  "AND ((o.key_hash >= x.lo AND (x.hi IS NULL OR o.key_hash < x.hi)) "
							  "  OR (kommander.key_hash(o.lease::text) >= x.lo AND "
							  "      (x.hi IS NULL OR kommander.key_hash(o.lease::text) < x.hi))) "
							  "AND NOT EXISTS (SELECT 1 FROM kommander.lease_rows r "
							  "  WHERE r.lease = o.lease AND kommander.key_hash(r.key) = o.key_hash) "
							  "AND EXISTS (SELECT 1 FROM kommander.partition_map m "
							  "  JOIN kommander.snapshot s USING (partition_id) "
							  "  WHERE m.partition_id > 0 AND m.state = 'active' "
							  "  AND o.key_hash >= m.lo AND (m.hi IS NULL OR o.key_hash < m.hi) "
							  "  AND (m.partition_id = $1 OR "
							  "       (NOT s.image_wanted AND m.partition_id <> ALL ($2))))",
							  2, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not drop the notes of kommander.lease_orphans that stand for no row");
}

/*
 * Delete the rows of control table `relid' in [lo, hi], as its owner: its
 * triggers enabled ALWAYS run with the owner's privileges, restricted
 * (kmd_role_enter_restricted: a deferred one fails there).
 */
static void
clear_range(Oid relid, int64 lo, int64 hi)
{
	KmdRoleSaved saved;
	volatile bool done = false;
	char	   *sql = psprintf("DELETE FROM %s WHERE %s BETWEEN " INT64_FORMAT " AND " INT64_FORMAT,
							   qualified_name(relid), routing_hash(relid), lo, hi);

	kmd_role_enter_restricted(&saved, kmd_rel_owner(relid));
	PG_TRY();
	{
		if (SPI_execute(sql, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not clear rows of %s", qualified_name(relid));
		/* and its deferred ones, as it */
		AfterTriggerFireDeferred();
		done = true;
	}
	PG_FINALLY();
	{
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
}

/*
 * Delete the rows of every registered control table in the key ranges of
 * `partitions' (NIL: of every user partition here), which images are to
 * replace, and the notes of those attached to leases (kommander.lease_rows,
 * which the images replace too): a kmd_ddl statement that ran on the other
 * nodes must not fail here for rows this node kept from before it, which
 * are going anyway, nor for leases that held them (lease_tables.c).
 * As an image replaces rows: without triggers or foreign keys, and in the
 * change feed as an image of each partition that brings no row, until its
 * own comes.  Meanwhile this node reads none of those rows.  A partition
 * frozen for a merge that applied its log to the freeze keeps its rows:
 * they are final, and the merge takes them as they are, also from the log.
 * A statement per table and partition, each a scan of the table unless it
 * has an index on the key hash, as the image's own copy and install are.
 * In the caller's transaction, SPI connected.
 */
void
kmd_image_clear(List *partitions)
{
	int			nest = NewGUCNestLevel();
	int			n_tables;
	Oid		   *relids;
	int			n = 0;
	int32	   *ids;
	int64	   *lo;
	int64	   *hi;
	uint64	   *index;
	uint64	   *term;

	/*
	 * Not read-only: an image's install replays kmd_ddl statements before
	 * this in its one transaction, outside the apply loop that advances
	 * the snapshot's command id per entry, and one of them may have dropped
	 * or registered a table.
	 */
	if (SPI_execute("SELECT relid FROM (SELECT t.relid FROM kommander.tables t "
					"WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
					"WHERE c.oid OPERATOR(pg_catalog.=) t.relid::pg_catalog.oid) UNION ALL "
					"SELECT 'kommander.lease_rows'::pg_catalog.regclass) t ORDER BY relid::text",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.tables");
	n_tables = (int) SPI_processed;
	relids = palloc(sizeof(Oid) * Max(n_tables, 1));
	for (int i = 0; i < n_tables; i++)
	{
		bool		isnull;

		relids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	}

	ids = palloc(sizeof(int32) * kmd_shared->max_partitions);
	lo = palloc(sizeof(int64) * kmd_shared->max_partitions);
	hi = palloc(sizeof(int64) * kmd_shared->max_partitions);
	index = palloc(sizeof(uint64) * kmd_shared->max_partitions);
	term = palloc(sizeof(uint64) * kmd_shared->max_partitions);
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used && n < kmd_shared->max_partitions; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];
		uint64		applied = pg_atomic_read_u64(&part->applied_index);

		if (part->partition_id <= 0 || part->state == KMD_PART_GONE ||
			(part->state == KMD_PART_FROZEN && applied >= part->frozen_at) ||
			(partitions != NIL && !list_member_int(partitions, part->partition_id)))
			continue;
		ids[n] = part->partition_id;
		lo[n] = part->lo;
		hi[n] = part->hi;
		index[n] = applied;
		term[n++] = pg_atomic_read_u64(&part->applied_term);
	}
	LWLockRelease(kmd_shared->lock);

	(void) set_config_option("session_replication_role", "replica", PGC_SUSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	for (int p = 0; p < n; p++)
	{
		kmd_feed_mark_cleared(ids[p], index[p], term[p]);
		for (int i = 0; i < n_tables; i++)
			clear_range(relids[i], lo[p], hi[p]);
	}
	AtEOXact_GUC(true, nest);
}

/*
 * Run the kmd_ddl statement at system index `idx' as a command of the
 * system partition is applied, under the same checks (keyrange.c).
 * Unchecked, a statement that caught the refusal of a temporary object
 * would leave one here: a type named like a catalog type, which the
 * install's own statements, run as superuser, would find before
 * pg_catalog's.  The refusals its entry's `rules' asked for (a try of
 * an advisory lock) are made again: a statement that caught one would
 * otherwise take another branch here.  The rules on keys and triggers
 * (kmd_keys_replaying), which decide what every node accepts, are not
 * checked again: the statement passed them where it was applied.
 */
static void
replay_ddl(uint64 idx, const char *sql, const char *role, uint32 rules)
{
	KmdKeyRange saved = kmd_apply_range;

	kmd_apply_range.partition_id = 0;
	kmd_apply_range.lo = 1;
	kmd_apply_range.hi = 0;
	kmd_apply_range.user_command = false;
	kmd_apply_range.rules = rules;
	kmd_keys_replaying = true;
	PG_TRY();
	{
		kmd_syscommand_ddl(idx, sql, role, rules);
	}
	PG_FINALLY();
	{
		kmd_keys_replaying = false;
		kmd_apply_range = saved;
	}
	PG_END_TRY();
}

/*
 * Replay the kmd_ddl statement at system index `idx' that an image of the
 * system partition brought.  This node's rows are its own from before the
 * statement, which ran on the other nodes: when it fails on them, it runs
 * again without them (every user partition then takes an image) and
 * *cleared says so; a failure then fails the image.  A failure of this
 * node (a lock timeout, a cancel; failure.h), raised or caught by the
 * statement, is no failure on the rows: it fails the image, tried again
 * later with the rows kept.
 */
static void
install_ddl(uint64 idx, const char *sql, const char *role, uint32 rules, bool *cleared)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;
	ErrorContextCallback watch;
	KmdFailure	failure;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		kmd_failures_watch(&watch);
		replay_ddl(idx, sql, role, rules);
		kmd_failures_unwatch(&watch);
		if (kmd_failure_caught(&failure))
			ereport(ERROR,
					(errcode(failure.sqlerrcode),
					 errmsg("%s", failure.message)));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	if (edata == NULL)
		return;
	if (kmd_failure_of_node(edata, &failure))
		ReThrowError(edata);
	ereport(LOG,
			(errmsg("kommander: the kmd_ddl statement at system index " UINT64_FORMAT
					" failed on this node's rows; running it without them, which images replace", idx),
			 errdetail_internal("%s", edata->message ? edata->message : "")));
	FreeErrorData(edata);
	if (!*cleared)
		kmd_image_clear(NIL);
	*cleared = true;
	replay_ddl(idx, sql, role, rules);
}

/*
 * The system partition's tables; the statements of kmd_ddl not run here
 * (*cleared: the rows of control tables went for one, install_ddl).
 */
static void
install_system(Jsonb *system, uint64 index, bool *cleared)
{
	Oid			types[2] = {INT8OID, TEXTOID};
	Datum		values[2];
	Jsonb	   *ddl = sub_array(system, "ddl");
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;

	/*
	 * The roster only when the image is newer than the copy this node
	 * joined with: that copy names this node, an older image may not.
	 */
	values[0] = Int64GetDatum((int64) index);
	if (SPI_execute_with_args("SELECT 1 FROM kommander.local WHERE roster_index < $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.local");
	if (SPI_processed == 1)
	{
		if (SPI_execute("DELETE FROM kommander.roster", false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not replace the roster");
		exec_jsonb("INSERT INTO kommander.roster SELECT * FROM "
				   "pg_catalog.jsonb_populate_recordset(NULL::kommander.roster, $1)",
				   sub_field(system, "roster"), SPI_OK_INSERT);
		if (SPI_execute_with_args("UPDATE kommander.local SET roster_index = $1",
								  1, types, values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "could not update kommander.local");
	}
	/* counters only grow */
	exec_jsonb("INSERT INTO kommander.counters SELECT * FROM "
			   "pg_catalog.jsonb_populate_recordset(NULL::kommander.counters, $1) "
			   "ON CONFLICT (name) DO UPDATE SET value = greatest(kommander.counters.value, EXCLUDED.value)",
			   sub_field(system, "counters"), SPI_OK_INSERT);

	/* the statements of kmd_ddl, in order, that this node has not run */
	it = JsonbIteratorInit(&ddl->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		Jsonb	   *entry;
		uint64		idx;

		if (tok != WJB_ELEM)
			continue;
		entry = JsonbValueToJsonb(&v);
		idx = (uint64) int_field(entry, "idx");
		values[0] = Int64GetDatum((int64) idx);
		if (SPI_execute_with_args("SELECT 1 FROM kommander.ddl WHERE idx = $1",
								  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not read kommander.ddl");
		if (SPI_processed == 0)
			install_ddl(idx, need_text(entry, "command"), text_field(entry, "role"),
						rules_field(entry), cleared);
	}

	/* registrations: the tables, with their guard, and the appliers */
	{
		Jsonb	   *tables = sub_array(system, "tables");

		it = JsonbIteratorInit(&tables->root);
		while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		{
			Jsonb	   *entry;
			Oid			relid;

			if (tok != WJB_ELEM)
				continue;
			entry = JsonbValueToJsonb(&v);
			/* by name only: the text of an oid would name what it is here */
			relid = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(need_text(entry, "table"))),
									 NoLock, true);
			if (!OidIsValid(relid))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_TABLE),
						 errmsg("the image registers table %s, which this node does not have",
								need_text(entry, "table")),
						 errdetail("Its statements were replayed here before the registrations.")));
			values[0] = ObjectIdGetDatum(relid);
			values[1] = Int64GetDatum(int_field(entry, "registered"));
			types[0] = OIDOID;
			types[1] = INT8OID;
			if (SPI_execute_with_args("INSERT INTO kommander.tables VALUES ($1::pg_catalog.regclass, $2) "
									  "ON CONFLICT (relid) DO NOTHING",
									  2, types, values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not register %s", text_field(entry, "table"));
			kmd_syscommand_guard_table(relid);
		}
	}
	/*
	 * An applier whose function was dropped stays registered, calling no
	 * function (0); one named by signature calls it if it exists here.
	 */
	exec_jsonb("INSERT INTO kommander.appliers SELECT pg_catalog.jsonb_extract_path_text(a, 'name'), "
			   "coalesce(pg_catalog.to_regprocedure(pg_catalog.jsonb_extract_path_text(a, 'fn')), 0), "
			   "pg_catalog.jsonb_extract_path_text(a, 'registered')::bigint "
			   "FROM pg_catalog.jsonb_array_elements($1) a "
			   "ON CONFLICT (name) DO UPDATE SET fn = EXCLUDED.fn, registered = EXCLUDED.registered",
			   sub_field(system, "appliers"), SPI_OK_INSERT);
}

/*
 * The map as the image's log left it: the partition's own row, the
 * partitions merged into it retired, and those it split off created here
 * if this node does not know them (their state must come from images of
 * their own: their log would replay onto rows that are not its start).
 */
static void
install_map(Jsonb *manifest)
{
	raft_conf	empty;

	exec_jsonb("UPDATE kommander.partition_map m SET lo = r.lo, hi = r.hi, generation = r.generation, "
			   "state = r.state, frozen_at = r.frozen_at, parent = r.parent, merged_into = r.merged_into "
			   "FROM pg_catalog.jsonb_populate_record(NULL::kommander.partition_map, $1) r "
			   "WHERE m.partition_id = r.partition_id",
			   sub_field(manifest, "map"), SPI_OK_UPDATE);
	/*
	 * The leases of a partition merged in that this node had not seen go
	 * count from now for their whole TTL, as applying the merge would
	 * have them (kmd_lease_clock_merged): they could not be kept alive
	 * while it was frozen.  Shared memory only: a lease made longer here
	 * by an image that then fails is no harm.
	 */
	exec_jsonb("SELECT r.lo, r.hi FROM pg_catalog.jsonb_populate_recordset(NULL::kommander.partition_map, $1) r "
			   "LEFT JOIN kommander.partition_map m ON m.partition_id = r.partition_id "
			   "WHERE m.state IS DISTINCT FROM 'gone' AND r.lo IS NOT NULL",
			   sub_field(manifest, "absorbed"), SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bool		hi_null;
		int64		lo = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		int64		hi = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &hi_null));

		kmd_lease_clock_merged(lo, hi_null, hi);
	}
	exec_jsonb("INSERT INTO kommander.partition_map SELECT * FROM "
			   "pg_catalog.jsonb_populate_recordset(NULL::kommander.partition_map, $1) "
			   "ON CONFLICT (partition_id) DO UPDATE SET lo = EXCLUDED.lo, hi = EXCLUDED.hi, "
			   "generation = EXCLUDED.generation, state = 'gone', merged_into = EXCLUDED.merged_into",
			   sub_field(manifest, "absorbed"), SPI_OK_INSERT);
	exec_jsonb("INSERT INTO kommander.partition_map SELECT * FROM "
			   "pg_catalog.jsonb_populate_recordset(NULL::kommander.partition_map, $1) "
			   "ON CONFLICT (partition_id) DO NOTHING RETURNING partition_id, state",
			   sub_field(manifest, "children"), SPI_OK_INSERT_RETURNING);

	memset(&empty, 0, sizeof(empty));
	{
		uint64		n = SPI_processed;
		int32	   *ids = palloc(sizeof(int32) * Max(n, 1));
		int			n_live = 0;

		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			if (strcmp(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2), "gone") != 0)
				ids[n_live++] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
															SPI_tuptable->tupdesc, 1, &isnull));
		}
		for (int i = 0; i < n_live; i++)
		{
			Oid			types[1] = {INT4OID};
			Datum		values[1] = {Int32GetDatum(ids[i])};

			kmd_storage_create_group(ids[i], &empty);
			if (SPI_execute_with_args("UPDATE kommander.snapshot SET image_wanted = true "
									  "WHERE partition_id = $1", 1, types, values, NULL,
									  false, 0) != SPI_OK_UPDATE)
				elog(ERROR, "could not mark partition %d as wanting an image", ids[i]);
		}
	}
}

/*
 * The partition's Raft state: the log up to the image goes (all of it if
 * neither the entry there nor the compaction marker is the image's: what
 * follows was never committed), the marker and the applied index move to
 * the image, the commit index at least there.
 */
static void
install_raft_state(int32 partition_id, uint64 index, uint64 term, const char *conf_hex)
{
	Oid			types[4] = {INT4OID, INT8OID, INT8OID, TEXTOID};
	Datum		values[4];
	bytea	   *conf_bytes;
	raft_conf	conf;
	bool		voter = false;

	/*
	 * What the group restarts from once this commits: a marker it cannot
	 * read would take the partition offline for good, so the manifest's
	 * is checked first (an error fails this try only).
	 */
	conf_bytes = DatumGetByteaPP(DirectFunctionCall2(binary_decode, CStringGetTextDatum(conf_hex),
													 CStringGetTextDatum("hex")));
	if (!kmd_conf_decode(VARDATA_ANY(conf_bytes), VARSIZE_ANY_EXHDR(conf_bytes), &conf))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the image of partition %d has a malformed configuration", partition_id)));
	for (uint32 i = 0; i < conf.n; i++)
	{
		if (conf.members[i].id == 0 ||
			(conf.members[i].role != RAFT_VOTER && conf.members[i].role != RAFT_LEARNER))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("the image of partition %d names member %u with role %u",
							partition_id, conf.members[i].id, conf.members[i].role)));
		for (uint32 j = 0; j < i; j++)
			if (conf.members[j].id == conf.members[i].id)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("the image of partition %d names member %u twice",
								partition_id, conf.members[i].id)));
		voter |= conf.members[i].role == RAFT_VOTER;
	}
	if (!voter || (index > 0 && term == 0) || index > (uint64) PG_INT64_MAX ||
		term > (uint64) PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the image of partition %d has no voter, or index " UINT64_FORMAT " and term " UINT64_FORMAT " no log could have",
						partition_id, index, term)));

	values[0] = Int32GetDatum(partition_id);
	values[1] = Int64GetDatum((int64) index);
	values[2] = Int64GetDatum((int64) term);
	values[3] = CStringGetTextDatum(conf_hex);
	if (SPI_execute_with_args("DELETE FROM kommander.log WHERE partition_id = $1 AND "
							  "(idx <= $2 OR NOT EXISTS (SELECT 1 FROM kommander.log "
							  "  WHERE partition_id = $1 AND idx = $2 AND term = $3) "
							  " AND NOT EXISTS (SELECT 1 FROM kommander.snapshot "
							  "  WHERE partition_id = $1 AND idx = $2 AND term = $3))",
							  3, types, values, NULL, false, 0) != SPI_OK_DELETE ||
		SPI_execute_with_args("UPDATE kommander.snapshot SET idx = $2, term = $3, "
							  "conf = pg_catalog.decode($4, 'hex'), image_wanted = false WHERE partition_id = $1",
							  4, types, values, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_processed != 1 ||
		SPI_execute_with_args("UPDATE kommander.hard_state SET "
							  "commit_index = greatest($2, least(commit_index, "
							  "  coalesce((SELECT pg_catalog.max(idx) FROM kommander.log WHERE partition_id = $1), $2))), "
							  "term = greatest(term, $3), vote = CASE WHEN term < $3 THEN 0 ELSE vote END "
							  "WHERE partition_id = $1",
							  3, types, values, NULL, false, 0) != SPI_OK_UPDATE ||
		SPI_execute_with_args("INSERT INTO kommander.applied VALUES ($1, $2, $3) "
							  "ON CONFLICT (partition_id) DO UPDATE SET applied_index = $2, applied_term = $3",
							  3, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not install the Raft state of partition %d", partition_id);
}

/* The system index of the last barrier applied here (barrier.h); SPI connected */
static int64
barriers_applied(void)
{
	bool		isnull;

	if (SPI_execute("SELECT " KMD_BARRIERS_APPLIED, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read the DDL and registrations applied");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Raise if the image of `partition_id' from node `from' is behind this
 * node's map: the partition itself is gone here (merged into another,
 * whose image brought that), a partition is gone here into it and the
 * image has not taken it in, or its generation here is newer than the
 * image's.  This node
 * learns such things from the map rows of other images (the partitions an
 * image's log split off come with the sender's rows), while the partition
 * itself may still take its image from a node that has not applied that
 * far.  Installed, such an image would leave the merged partition's range
 * to nobody here, and the log replayed from it would meet, at generations
 * older than this node's, entries that the other nodes apply.  A node that
 * applied that far serves it: the caller tries the next one.  SPI connected.
 */
static void
refuse_if_behind_map(int32 partition_id, int32 from, Jsonb *manifest)
{
	Oid			types[2] = {INT4OID, JSONBOID};
	Datum		values[2] = {Int32GetDatum(partition_id), JsonbPGetDatum(manifest)};
	bool		isnull;
	int32		id;
	int64		generation;

	if (SPI_execute_with_args("SELECT merged_into FROM kommander.partition_map "
							  "WHERE partition_id = $1 AND state = 'gone'",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.partition_map");
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_LEARNER_LAGGING),
				 errmsg("partition %d was merged into partition %d here; node %d's image of it is from before",
						partition_id,
						DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
						from),
				 errdetail("Installed, it would bring the partition back, over rows of the one that took it in.")));
	if (SPI_execute_with_args("SELECT m.partition_id, m.generation FROM kommander.partition_map m "
							  "WHERE (m.state = 'gone' AND m.merged_into = $1 AND NOT EXISTS ("
							  "    SELECT 1 FROM pg_catalog.jsonb_array_elements(pg_catalog.jsonb_extract_path($2, 'absorbed')) a "
							  "    WHERE pg_catalog.jsonb_extract_path_text(a, 'partition_id')::int = m.partition_id)) "
							  "   OR (m.partition_id = $1 AND m.generation > "
							  "       pg_catalog.jsonb_extract_path_text($2, 'map', 'generation')::bigint) "
							  "ORDER BY m.partition_id = $1 LIMIT 1",
							  2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.partition_map");
	if (SPI_processed == 0)
		return;
	id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	generation = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (id != partition_id)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_LEARNER_LAGGING),
				 errmsg("partition %d was merged into partition %d here, and node %d's image of partition %d has not taken it in",
						id, partition_id, from, partition_id),
				 errdetail("Node %d has not applied that merge yet; the image is asked of another node.",
						   from)));
	ereport(ERROR,
			(errcode(ERRCODE_KMD_LEARNER_LAGGING),
			 errmsg("node %d's image of partition %d is at generation " INT64_FORMAT
					", this node knows generation " INT64_FORMAT,
					from, partition_id, int_field(sub_field(manifest, "map"), "generation"),
					generation),
			 errdetail("Node %d has not applied a split or merge of the partition yet; the image is asked of another node.",
					   from)));
}

/* An image of every live user partition, from `from' first. */
static void
ask_images_for_all(int32 from)
{
	int32	   *ids = palloc(sizeof(int32) * kmd_shared->max_partitions);
	uint64	   *applied = palloc(sizeof(uint64) * kmd_shared->max_partitions);
	int			n = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];

		if (part->partition_id > 0 && part->state != KMD_PART_GONE)
		{
			ids[n] = part->partition_id;
			applied[n++] = pg_atomic_read_u64(&part->applied_index);
		}
	}
	LWLockRelease(kmd_shared->lock);
	for (int i = 0; i < n; i++)
		kmd_image_ask(ids[i], from, applied[i]);
	ereport(LOG,
			(errmsg("kommander: the image of the system partition brought DDL or registrations; asking for images of %d partitions",
					n)));
}

/*
 * Copy partition `partition_id' from node `from' and install it, in one
 * transaction of its own; the image must reach `min_index'.  Raises on
 * any failure, having changed nothing.  Returns the image's index and term.
 */
static void
install_image(int32 partition_id, int32 from, uint64 min_index, uint64 *index_out,
			  uint64 *term_out)
{
	char		conninfo[KMD_CONNINFO_LEN];
	char		args[3][64];
	const char *params[3];
	PGconn	   *volatile conn = NULL;
	volatile bool images_for_all = false;

	if (!kmd_node_conninfo(from, conninfo))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("node %d is not in the roster", from)));

	snprintf(args[0], sizeof(args[0]), "%d", partition_id);
	{
		pg_uuid_t	u;

		memcpy(u.data, kmd_shared->cluster_id, UUID_LEN);
		strlcpy(args[1], DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(&u))),
				sizeof(args[1]));
	}
	snprintf(args[2], sizeof(args[2]), "%d", kmd_shared->local_node_id);
	for (int i = 0; i < 3; i++)
		params[i] = args[i];

	PG_TRY();
	{
		PGresult   *res;
		char	   *text;
		Jsonb	   *manifest;
		Jsonb	   *map;
		uint64		index;
		uint64		term;
		uint64		applied_here;
		int64		barriers;
		MemoryContext cxt;

		conn = kmd_remote_connect_peer(conninfo, psprintf("node %d for an image", from));
		PQclear(kmd_remote_exec(conn, pin_settings_sql(false), 0, NULL));
		PQclear(kmd_remote_exec(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", 0, NULL));
		res = kmd_remote_exec(conn, "SELECT kommander.image_manifest($1::int, $2::uuid, $3::int)",
							  3, params);
		/* copied and cleared before anything may raise: libpq's, not ours */
		text = PQntuples(res) == 1 && PQnfields(res) == 1 && !PQgetisnull(res, 0, 0) ?
			pstrdup(PQgetvalue(res, 0, 0)) : NULL;
		PQclear(res);
		if (text == NULL)
			elog(ERROR, "node %d answered no image manifest", from);
		manifest = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(text)));
		if (int_field(manifest, "index") < 0 || int_field(manifest, "term") < 0)
			elog(ERROR, "malformed image manifest: a negative index or term");
		index = (uint64) int_field(manifest, "index");
		term = (uint64) int_field(manifest, "term");
		if (int_field(manifest, "partition_id") != partition_id)
			elog(ERROR, "node %d described another partition", from);

		/*
		 * Older than what this node applied (the apply worker, which
		 * installs, keeps that in shared memory): installed, it would take
		 * the partition's rows here back, and cut this node's log, which
		 * holds entries it acknowledged, at the image's index.
		 */
		applied_here = kmd_partition_applied(partition_id);
		if (index < applied_here)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_LEARNER_LAGGING),
					 errmsg("node %d has applied partition %d to index " UINT64_FORMAT
							", this node has applied it to " UINT64_FORMAT,
							from, partition_id, index, applied_here),
					 errdetail("Installed, it would take this node's rows back; the image is asked of another node.")));
		if (index < min_index)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_LEARNER_LAGGING),
					 errmsg("node %d has applied partition %d to index " UINT64_FORMAT
							", this node needs " UINT64_FORMAT, from, partition_id, index, min_index)));
		if (partition_id != 0 &&
			kmd_partition_applied(0) < (uint64) int_field(manifest, "sys_index"))
			ereport(ERROR,
					(errcode(ERRCODE_KMD_LEARNER_LAGGING),
					 errmsg("the image of partition %d needs the system partition applied to "
							INT64_FORMAT " here first", partition_id, int_field(manifest, "sys_index"))));

		cxt = kmd_xact_begin();
		barriers = barriers_applied();
		if (partition_id != 0 && barriers != int_field(manifest, "barriers"))
			ereport(ERROR,
					(errcode(ERRCODE_KMD_LEARNER_LAGGING),
					 errmsg("the image of partition %d was taken where the DDL and registrations up to system index "
							INT64_FORMAT " were applied, this node applied them up to " INT64_FORMAT,
							partition_id, int_field(manifest, "barriers"), barriers),
					 errdetail("Its rows are cut at another point of the partition's log than the DDL here.")));
		refuse_if_behind_map(partition_id, from, manifest);
		/*
		 * A partition's rows are copied as they are, without the triggers
		 * and foreign keys that made them; the system partition's DDL runs
		 * here as it ran on every node, its event triggers and cascades
		 * included.
		 */
		if (SPI_execute(pin_settings_sql(true), true, 0) != SPI_OK_SELECT ||
			(partition_id != 0 &&
			 SPI_execute("SELECT pg_catalog.set_config('session_replication_role', 'replica', true)",
						 true, 0) != SPI_OK_SELECT))
			elog(ERROR, "could not pin the settings of an image");
		/* an image's own statements: not a command's code */
		kmd_apply_range.user_command = false;
		kmd_apply_range.rules = 0;
		kmd_applying = true;
		/* the change feed: what follows replaces the partition's rows */
		kmd_feed_mark_image(partition_id, index, term);
		PG_TRY();
		{
			map = sub_field(manifest, "map");
			if (partition_id == 0)
			{
				bool		cleared = false;

				install_system(sub_field(manifest, "system"), index, &cleared);
				images_for_all = cleared || int_field(manifest, "barriers") > barriers;
				/* rows locked in partition order, as compaction takes them */
				if (images_for_all &&
					(SPI_execute("SELECT 1 FROM kommander.snapshot WHERE partition_id > 0 "
								 "ORDER BY partition_id FOR UPDATE", false, 0) != SPI_OK_SELECT ||
					 SPI_execute("UPDATE kommander.snapshot SET image_wanted = true WHERE partition_id > 0",
								 false, 0) != SPI_OK_UPDATE))
					elog(ERROR, "could not mark the user partitions as wanting images");
			}
			else
			{
				Jsonb	   *tables = sub_array(manifest, "tables");
				const char *hi = text_field(map, "hi");
				JsonbIterator *it = JsonbIteratorInit(&tables->root);
				JsonbValue	v;
				JsonbIteratorToken tok;
				int			n_tables;
				Oid		   *relids = image_tables(&n_tables, false);
				bool	   *seen = palloc0(sizeof(bool) * Max(n_tables, 1));

				while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
					if (tok == WJB_ELEM)
						install_rows(conn, JsonbValueToJsonb(&v), int_field(map, "lo"),
									 hi == NULL,
									 hi ? DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(hi))) : 0,
									 relids, seen, n_tables);

				/*
				 * The same registrations on both sides (the barriers
				 * above): a table left out would keep this node's rows.
				 */
				for (int i = 0; i < n_tables; i++)
					if (!seen[i] && !lease_notes(relids[i]))
						ereport(ERROR,
								(errcode(ERRCODE_PROTOCOL_VIOLATION),
								 errmsg("malformed image manifest: it leaves %s out",
										qualified_name(relids[i]))));
			}
			install_map(manifest);
			install_raft_state(partition_id, index, term, need_text(manifest, "conf"));
			if (partition_id != 0)
				prune_lease_notes(partition_id);
		}
		PG_FINALLY();
		{
			kmd_applying = false;
		}
		PG_END_TRY();
		kmd_xact_commit(cxt);

		/*
		 * On disk before the group starts again from it: the Raft worker
		 * then acknowledges the image's index to the leader, and the
		 * worker's commits are asynchronous.
		 */
		XLogFlush(XactLastCommitEnd);
		*index_out = index;
		*term_out = term;

		/*
		 * DDL or registrations came with the image of the system partition:
		 * the user partitions here are cut at other points of their logs
		 * than the nodes that applied them one by one, so their rows come
		 * from images too (durably asked for above, for a restart).
		 */
		if (images_for_all)
			ask_images_for_all(from);
	}
	PG_FINALLY();
	{
		if (conn != NULL)
			PQfinish(conn);
	}
	PG_END_TRY();
}

/*
 * When an image may be tried again, for each partition whose last try
 * failed (the apply worker's; an entry goes when its image is installed,
 * or, once there are as many as partitions, when its partition no longer
 * waits for one).
 */
typedef struct Retry
{
	int32		partition_id;	/* the hash key */
	TimestampTz at;
	int			delay_ms;
} Retry;

static HTAB *retries = NULL;

/* When the image of `partition_id' may be tried: at once unless it failed */
static TimestampTz
retry_at(int32 partition_id)
{
	Retry	   *retry;

	if (retries == NULL)
		return 0;
	retry = hash_search(retries, &partition_id, HASH_FIND, NULL);
	return retry != NULL ? retry->at : 0;
}

/* The entry of a partition whose try failed */
static Retry *
retry_failed(int32 partition_id)
{
	Retry	   *retry;
	bool		found;

	if (retries == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(Retry);
		ctl.hcxt = TopMemoryContext;
		retries = hash_create("kommander image retries", 64, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (hash_get_num_entries(retries) >= kmd_shared->max_partitions)
	{
		HASH_SEQ_STATUS seq;

		hash_seq_init(&seq, retries);
		LWLockAcquire(kmd_shared->lock, LW_SHARED);
		while ((retry = hash_seq_search(&seq)) != NULL)
		{
			KmdPartition *part = kmd_partition_find(retry->partition_id);

			if (part == NULL || part->image_state == KMD_IMAGE_NONE)
				hash_search(retries, &retry->partition_id, HASH_REMOVE, NULL);
		}
		LWLockRelease(kmd_shared->lock);
	}
	retry = hash_search(retries, &partition_id, HASH_ENTER, &found);
	if (!found)
		retry->delay_ms = 0;
	return retry;
}

/*
 * install_image() for the apply worker's loop: false, with the failure
 * logged and the next try scheduled, when it raised.
 */
static bool
try_install(int32 partition_id, int32 from, uint64 min_index, uint64 *index,
			uint64 *term)
{
	MemoryContext cxt = CurrentMemoryContext;
	/* a node that went silent (paused, cut off) must not hold every partition */
	int			limit_before = kmd_remote_set_timeout(kmd_image_timeout);

	PG_TRY();
	{
		install_image(partition_id, from, min_index, index, term);
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		Retry	   *retry;

		(void) kmd_remote_set_timeout(limit_before);
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		kmd_applying = false;

		/* tried again later, less often while it keeps failing */
		retry = retry_failed(partition_id);
		retry->delay_ms = Min(Max(retry->delay_ms * 2, 200), 5000);
		retry->at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), retry->delay_ms);
		kmd_stat_add(KMD_STAT_IMAGES_FAILED, partition_id, 1);
		ereport(LOG,
				(errmsg("kommander: could not install an image of partition %d from node %d; next try in %d ms",
						partition_id, from, retry->delay_ms),
				 edata->detail ? errdetail_internal("%s %s", edata->message, edata->detail) :
				 errdetail_internal("%s", edata->message)));
		FreeErrorData(edata);
		return false;
	}
	PG_END_TRY();
	(void) kmd_remote_set_timeout(limit_before);
	if (retries != NULL)
		hash_search(retries, &partition_id, HASH_REMOVE, NULL);
	kmd_stat_add(KMD_STAT_IMAGES_INSTALLED, partition_id, 1);
	return true;
}

/*
 * After a failure, the next try goes to the next node of the roster: any
 * node that has applied the partition far enough can serve the image (the
 * one that sent the snapshot may be down, or behind this node).  Until
 * then the partition waits, and its group runs (shmem.h).
 */
static void
wait_for_next_try(int32 partition_id, int32 failed)
{
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	{
		KmdPartition *part = kmd_partition_find(partition_id);
		int32		next = 0;
		int32		lowest = 0;

		for (int i = 0; i < KMD_MAX_NODES; i++)
		{
			int32		id = kmd_shared->nodes[i].node_id;

			if (id == 0 || id == kmd_shared->local_node_id)
				continue;
			if (id > failed && (next == 0 || id < next))
				next = id;
			if (lowest == 0 || id < lowest)
				lowest = id;
		}
		if (part != NULL && part->image_state == KMD_IMAGE_READY)
		{
			part->image_failed_from = failed;
			if (part->image_from == failed)
				part->image_from = next != 0 ? next : lowest;
			part->image_state = KMD_IMAGE_WAITING;
		}
	}
	LWLockRelease(kmd_shared->lock);
	pg_atomic_fetch_add_u64(&kmd_shared->image_events, 1);
	kmd_wake_worker(kmd_worker_for_partition(partition_id));
}

/*
 * Ask again for the image of a partition waiting since a failure: its Raft
 * worker parks its group, and the image is tried once it is.
 */
static void
ask_again(int32 partition_id)
{
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	{
		KmdPartition *part = kmd_partition_find(partition_id);

		if (part != NULL && part->image_state == KMD_IMAGE_WAITING)
			part->image_state = KMD_IMAGE_ASKED;
	}
	LWLockRelease(kmd_shared->lock);
	pg_atomic_fetch_add_u64(&kmd_shared->image_events, 1);
	kmd_wake_worker(kmd_worker_for_partition(partition_id));
}

/*
 * The images committed here whose groups have not been told yet
 * (image_untold): read the map and the leases again (the map may have
 * moved), then let each group start again from its image.  That may fail
 * (a cancel, a lock): the images stay installed, and the next call of
 * kmd_images_install, of this apply worker or the next, tells them.
 * Returns whether there were any.
 */
static bool
tell_installed(void)
{
	MemoryContext cxt;
	bool		any = false;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used && !any; i++)
		any = kmd_shared->partitions[i].image_untold;
	LWLockRelease(kmd_shared->lock);
	if (!any)
		return false;

	cxt = kmd_xact_begin();
	kmd_catalog_refresh();
	kmd_leases_load();
	kmd_xact_commit(cxt);
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];

		if (part->image_untold)
		{
			part->image_untold = false;
			pg_atomic_fetch_add_u64(&part->images, 1);
		}
	}
	LWLockRelease(kmd_shared->lock);
	pg_atomic_fetch_add_u64(&kmd_shared->image_events, 1);
	for (int w = 0; w < kmd_shared->n_workers; w++)
		kmd_wake_worker(w);
	ConditionVariableBroadcast(&kmd_shared->applied_cv);
	return true;
}

bool
kmd_images_install(void)
{
	int32		partition_id = -1;
	int32		from = 0;
	uint64		min_index = 0;
	TimestampTz now = GetCurrentTimestamp();
	uint64		index = 0;
	uint64		term = 0;
	int32		due = -1;
	bool		any_ready = false;

	if (tell_installed())
		return true;

	/*
	 * A partition ready (its group parked) is tried; a waiting one is asked
	 * again only while none is ready, one at a time, so that few groups
	 * are parked (voting and acknowledging nothing) at once.
	 */
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];

		/* one merged away here (an image of the other took it in) takes none */
		if (part->partition_id < 0 || part->state == KMD_PART_GONE)
			continue;
		if (part->image_state == KMD_IMAGE_READY)
			any_ready = true;
		if (retry_at(part->partition_id) > now)
			continue;
		if (part->image_state == KMD_IMAGE_WAITING && due < 0)
			due = part->partition_id;
		else if (part->image_state == KMD_IMAGE_READY && partition_id < 0)
		{
			partition_id = part->partition_id;
			from = part->image_from;
			min_index = part->image_min;
		}
	}
	LWLockRelease(kmd_shared->lock);
	if (due >= 0 && !any_ready)
		ask_again(due);
	if (partition_id < 0)
		return false;

	if (!try_install(partition_id, from, min_index, &index, &term))
	{
		wait_for_next_try(partition_id, from);
		return false;
	}

	/*
	 * Committed: it is no longer wanted, whatever fails from here on (it
	 * would be installed again: its rows twice in the change feed).  Its
	 * group is told once the map is read again (tell_installed).
	 */
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	{
		KmdPartition *part = kmd_partition_find(partition_id);

		if (part != NULL)
		{
			pg_atomic_write_u64(&part->applied_term, term);
			pg_atomic_write_u64(&part->applied_index, index);
			part->image_installed_at = GetCurrentTimestamp();
			part->image_state = KMD_IMAGE_NONE;
			part->image_failed_from = 0;
			part->image_untold = true;
			/* the entry it stopped or retried at is the image's now */
			part->apply_stall = KMD_STALL_NONE;
			part->apply_tries = 0;
			part->apply_error[0] = '\0';
		}
	}
	LWLockRelease(kmd_shared->lock);
	ereport(LOG,
			(errmsg("kommander: installed an image of partition %d from node %d at index " UINT64_FORMAT,
					partition_id, from, index)));
	(void) tell_installed();
	return true;
}

void
kmd_image_ask(int32 partition_id, int32 from, uint64 min_index)
{
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	{
		KmdPartition *part = kmd_partition_find(partition_id);

		if (part != NULL && part->image_state == KMD_IMAGE_NONE)
		{
			part->image_state = KMD_IMAGE_ASKED;
			part->image_failed_from = 0;
			part->image_from = from;
			part->image_min = min_index;
			part->image_since = GetCurrentTimestamp();
		}
	}
	LWLockRelease(kmd_shared->lock);
	pg_atomic_fetch_add_u64(&kmd_shared->image_events, 1);
	kmd_wake_worker(kmd_worker_for_partition(partition_id));
}

void
kmd_image_ask_any(int32 partition_id)
{
	int32		from;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	from = kmd_other_node();
	LWLockRelease(kmd_shared->lock);
	if (from != 0)
		kmd_image_ask(partition_id, from, 0);
}
