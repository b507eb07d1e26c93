/*-------------------------------------------------------------------------
 *
 * lease.c
 *	  Leases: kmd_lease_grant, kmd_lease_keepalive, kmd_lease_revoke, the
 *	  rows attached to a lease ("lease": id in a row command), and their
 *	  expiry.
 *
 * A lease is state of the partition that owns its id (routed as the id's
 * text): kommander.lease_state holds it, kommander.lease_rows the rows
 * attached to it, each under the routing key of its row; partition images
 * carry both.  Grant, keepalive, revoke and expiry are entries of that
 * partition's log (KMD_CMD_LEASE), and the entry that ends a lease deletes
 * its rows, on every node at the same index.
 *
 * When a lease is due is decided by each node's countdown and the
 * leader's Raft worker (lease_clock.c); this file is the state machine
 * and the SQL functions.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/lease.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "command.h"
#include "errcodes.h"
#include "failure.h"
#include "guc.h"
#include "identity.h"
#include "keyrange.h"
#include "lease.h"
#include "plans.h"
#include "request.h"
#include "routing.h"
#include "rows_int.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kmd_lease_grant);
PG_FUNCTION_INFO_V1(kmd_lease_keepalive);
PG_FUNCTION_INFO_V1(kmd_lease_revoke);

/* the shortest and longest time to live of a lease */
#define LEASE_MIN_TTL_MS 1000
#define LEASE_MAX_TTL_MS (INT64CONST(30) * 24 * 3600 * 1000)

/* draws a grant without a key makes past ids of frozen partitions */
#define FROZEN_DRAWS 100

/* ------------------------------------------------------------------------
 * SQL functions
 * ------------------------------------------------------------------------
 */

static void
lease_not_found(int64 id)
{
	ereport(ERROR,
			(errcode(ERRCODE_KMD_LEASE_NOT_FOUND),
			 errmsg("lease " INT64_FORMAT " does not exist", id),
			 errdetail("It expired, was revoked, or was never granted."),
			 errhint("Grant a new lease with kmd_lease_grant().")));
}

/*
 * Propose lease command `op' for lease `id' to the partition that owns it,
 * with `arg' (a TTL in ms for a grant); returns the outcome, errors raised.
 */
static void
propose_lease(const char *op, int64 id, int64 arg, KmdOutcome *out)
{
	char	   *key = psprintf(INT64_FORMAT, id);
	uint64		generation;
	int32		state;
	int32		leader;
	int32		partition_id = kmd_route_key(key, strlen(key), &generation, &state, &leader);
	KmdCommand	cmd;

	if (state == KMD_PART_FROZEN)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partition %d is frozen", partition_id),
				 errdetail("A merge of the partition that owns lease " INT64_FORMAT " is under way.", id),
				 errhint("Retry once the merge is done.")));
	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = KMD_CMD_LEASE;
	cmd.generation = generation;
	cmd.sys_index = kmd_partition_applied(0);
	/* its entry forgets old request ids as a row command's does */
	cmd.request_retention = kmd_request_retention;
	cmd.key = key;
	cmd.n_args = 3;
	cmd.args[0] = (char *) op;
	cmd.args[1] = key;
	cmd.args[2] = psprintf(INT64_FORMAT, arg);
	kmd_propose_command(partition_id, &cmd, out);
}

static int64
lease_arg(FunctionCallInfo fcinfo)
{
	int64		id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("lease id must not be null")));
	id = PG_GETARG_INT64(0);
	if (id <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lease id must be positive"),
				 errhint("Use an id that kmd_lease_grant() returned.")));
	kmd_require_member();
	return id;
}

static Interval *
interval_of_ms(int64 ms)
{
	Interval   *span = palloc0(sizeof(Interval));

	span->time = ms * INT64CONST(1000);
	return span;
}

/*
 * kmd_lease_grant(ttl interval, key text DEFAULT NULL) RETURNS bigint: a
 * new lease, owned by a partition; with `key', by the partition that owns
 * that key, so that rows of that key can be attached to it.
 */
Datum
kmd_lease_grant(PG_FUNCTION_ARGS)
{
	Interval   *ttl;
	int64		ttl_ms;
	int64		id = 0;
	int32		want = -1;
	KmdOutcome	out;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("ttl must not be null")));
	ttl = PG_GETARG_INTERVAL_P(0);
	if (ttl->month != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must not count months"),
				 errhint("Give it in days, hours, minutes or seconds.")));
	/* (no overflow: days are an int32, microseconds an int64) */
	ttl_ms = (int64) ttl->day * 86400000 + ttl->time / 1000;
	if (ttl_ms < LEASE_MIN_TTL_MS || ttl_ms > LEASE_MAX_TTL_MS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("ttl must be between 1 second and 30 days"),
				 errhint("A lease shorter than a few election timeouts may expire during a failover.")));
	if (!PG_ARGISNULL(1))
	{
		char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(1));
		uint64		generation;
		int32		state;
		int32		leader;

		if (key[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("key must not be empty")));
		kmd_require_member();
		want = kmd_route_key(key, strlen(key), &generation, &state, &leader);
	}
	kmd_require_member();

	/*
	 * The limit is checked here, by the proposing node, never when a grant
	 * is applied: how many leases a node holds at an entry of one partition
	 * depends on how far it applied the others.  Grants proposed at once
	 * through several nodes may pass it (lease_clock.c counts down twice
	 * as many, and the rest as room comes).
	 */
	if (kmd_lease_clock_held() >= kmd_max_leases)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many leases"),
				 errdetail("This node holds %d leases; kommander.max_leases is %d.",
						   kmd_lease_clock_held(), kmd_max_leases),
				 errhint("Revoke the leases no longer used, share one lease among the rows of a client, or raise kommander.max_leases on every node.")));

	/* a random id, one of the wanted partition's if a key was given */
	for (int tries = 0; id == 0; tries++)
	{
		uint64		r;
		char		text[32];
		uint64		generation;
		int32		state;
		int32		leader;

		CHECK_FOR_INTERRUPTS();
		if (tries >= 1000000)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("could not find a lease id for partition %d", want),
					 errdetail("A million random ids fell outside the partition's range of hashes."),
					 errhint("Grant the lease for a key of a wider partition, or merge partitions.")));
		if (!pg_strong_random(&r, sizeof(r)))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random lease id")));
		id = (int64) (r & PG_INT64_MAX);
		snprintf(text, sizeof(text), INT64_FORMAT, id);
		if (id == 0)
			continue;
		/* without a key, any partition but one a merge froze (K0004) */
		if (kmd_route_key(text, strlen(text), &generation, &state, &leader) != want && want >= 0)
			id = 0;
		else if (want < 0 && state == KMD_PART_FROZEN && tries < FROZEN_DRAWS)
			id = 0;
	}
	propose_lease("grant", id, ttl_ms, &out);
	PG_RETURN_INT64(id);
}

/* kmd_lease_keepalive(id bigint) RETURNS interval: the time left (the TTL) */
Datum
kmd_lease_keepalive(PG_FUNCTION_ARGS)
{
	int64		id = lease_arg(fcinfo);
	KmdOutcome	out;
	Jsonb	   *answer;
	JsonbValue *v;

	propose_lease("keepalive", id, 0, &out);
	if (out.result == NULL)
		elog(ERROR, "keepalive of lease " INT64_FORMAT " returned no time", id);
	answer = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(out.result)));
	v = getKeyJsonValueFromContainer(&answer->root, "result", 6, NULL);
	if (v == NULL || v->type != jbvNumeric)
		elog(ERROR, "keepalive of lease " INT64_FORMAT " returned no time", id);
	PG_RETURN_INTERVAL_P(interval_of_ms(DatumGetInt64(DirectFunctionCall1(numeric_int8,
																		  NumericGetDatum(v->val.numeric)))));
}

/* kmd_lease_revoke(id bigint): ends the lease and deletes its rows now */
Datum
kmd_lease_revoke(PG_FUNCTION_ARGS)
{
	int64		id = lease_arg(fcinfo);
	KmdOutcome	out;

	propose_lease("revoke", id, 0, &out);
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------------------
 * Applying
 * ------------------------------------------------------------------------
 */

static uint64
exec(const char *sql, int nargs, Oid *types, Datum *values, int expect)
{
	int			rc = kmd_plan_execute(sql, nargs, types, values, NULL, false, 0);

	if (rc != expect)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
	return SPI_processed;
}

/*
 * Delete the row of table `tbl' whose primary key is `pk_text' (jsonb), as
 * a row command deletes it: as the table's owner, whose triggers write
 * control tables only (keyrange.c), never as the apply worker's role.
 */
static void
delete_row(const char *tbl, const char *pk_text)
{
	Jsonb	   *pk = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(pk_text)));
	Oid			relid = DatumGetObjectId(DirectFunctionCall1(regclassin, CStringGetDatum(tbl)));
	Oid			types[1] = {JSONBOID};
	Datum		values[1] = {JsonbPGetDatum(pk)};
	char	   *sql = psprintf("DELETE FROM %s AS t USING %s WHERE %s", tbl,
							   kmd_rows_record(relid, pk, 1, "k"),
							   kmd_rows_columns_match(relid, pk, "k", false));
	KmdRoleSaved saved;
	volatile bool done = false;
	volatile bool save_user_command = kmd_apply_range.user_command;

	kmd_role_enter(&saved, kmd_rel_owner(relid));
	kmd_apply_range.user_command = true;
	PG_TRY();
	{
		(void) exec(sql, 1, types, values, SPI_OK_DELETE);
		/* a deferred constraint decides now, while the row can still stay */
		AfterTriggerFireDeferred();
		done = true;
	}
	PG_FINALLY();
	{
		kmd_apply_range.user_command = save_user_command;
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
}

/*
 * Delete rows `from' to `to' - 1 of those `tables' and `pks' list in one
 * subtransaction; -1 when they all went, else the number of the row that
 * refused to go, with the subtransaction rolled back (nothing deleted) and
 * the reason in *why.  A failure of this node is raised again: the entry
 * is applied again later.
 */
static int
delete_batch(List *tables, List *pks, int from, int to, char **why)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile int at = from;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		for (; at < to; at++)
			delete_row(list_nth(tables, at), list_nth(pks, at));
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;
		KmdFailure	failure;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (kmd_failure_of_node(edata, &failure))
			ReThrowError(edata);
		*why = pstrdup(edata->message);
		FreeErrorData(edata);
		return at;
	}
	PG_END_TRY();
	return -1;
}

/*
 * Delete rows `from' to `to' - 1 of lease `id' that `tables' and `pks'
 * list, in as few subtransactions as the rows allow, so that a lease with
 * many rows does not take the apply transaction past the subtransactions
 * a backend keeps cached (apply.c): all in one; when a row refuses to go,
 * the rows before it, that row alone and the rest, each as a range of
 * their own.  A row whose table refuses to let it go alone (a foreign
 * key, a trigger, deferred or not) is kept, no longer attached, rather
 * than keep the lease from ending.
 */
static void
delete_rows(List *tables, List *pks, int from, int to, int64 id)
{
	while (from < to)
	{
		char	   *why;
		int			refused = delete_batch(tables, pks, from, to, &why);

		if (refused < 0)
			return;
		if (to - from == 1)
		{
			ereport(LOG,
					(errmsg("kommander: lease " INT64_FORMAT " ended; its row %s of %s stays, no longer attached",
							id, (char *) list_nth(pks, from), (char *) list_nth(tables, from)),
					 errdetail("Deleting it failed: %s", why)));
			return;
		}
		delete_rows(tables, pks, from, refused, id);
		delete_rows(tables, pks, refused, refused + 1, id);
		from = refused + 1;
	}
}

/*
 * End lease `id': delete the rows attached to it in this partition's range
 * (a table dropped since is passed over), then the lease.
 */
static void
end_lease(int64 id)
{
	Oid			types[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3];
	List	   *tables = NIL;
	List	   *pks = NIL;

	values[0] = Int64GetDatum(id);
	values[1] = Int64GetDatum(kmd_apply_range.lo);
	values[2] = Int64GetDatum(kmd_apply_range.hi);
	(void) exec("SELECT tbl, pk::text FROM kommander.lease_rows WHERE lease = $1 "
				"AND kommander.key_hash(key) BETWEEN $2 AND $3 "
				"AND pg_catalog.to_regclass(tbl) IS NOT NULL ORDER BY key, tbl, pk",
				3, types, values, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		tables = lappend(tables, pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
		pks = lappend(pks, pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2)));
	}
	delete_rows(tables, pks, 0, list_length(tables), id);
	(void) exec("DELETE FROM kommander.lease_rows WHERE lease = $1 "
				"AND kommander.key_hash(key) BETWEEN $2 AND $3",
				3, types, values, SPI_OK_DELETE);
	(void) exec("DELETE FROM kommander.lease_state WHERE id = $1", 1, types, values, SPI_OK_DELETE);

	/*
	 * Rows a split put in other partitions: their leaders drop them.  The
	 * note is kept in a table too, which outlives a restart.
	 */
	(void) exec("INSERT INTO kommander.lease_orphans "
				"SELECT DISTINCT $1, kommander.key_hash(key) FROM kommander.lease_rows "
				"WHERE lease = $1 AND kommander.key_hash(key) NOT BETWEEN $2 AND $3 "
				"ON CONFLICT DO NOTHING RETURNING key_hash",
				3, types, values, SPI_OK_INSERT_RETURNING);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		kmd_lease_clock_orphan(id, DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)));
	}
}

/*
 * "drop" of lease `id', in a partition other than the lease's: delete the
 * rows attached to it in this partition's range.  The lease ended in its
 * own partition, which is why this entry was proposed.
 */
static void
drop_orphans(int64 id)
{
	Oid			types[3] = {INT8OID, INT8OID, INT8OID};
	Datum		values[3];
	List	   *tables = NIL;
	List	   *pks = NIL;

	values[0] = Int64GetDatum(id);
	values[1] = Int64GetDatum(kmd_apply_range.lo);
	values[2] = Int64GetDatum(kmd_apply_range.hi);
	(void) exec("SELECT tbl, pk::text FROM kommander.lease_rows WHERE lease = $1 "
				"AND kommander.key_hash(key) BETWEEN $2 AND $3 "
				"AND pg_catalog.to_regclass(tbl) IS NOT NULL ORDER BY key, tbl, pk",
				3, types, values, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		tables = lappend(tables, pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)));
		pks = lappend(pks, pstrdup(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2)));
	}
	delete_rows(tables, pks, 0, list_length(tables), id);
	(void) exec("DELETE FROM kommander.lease_rows WHERE lease = $1 "
				"AND kommander.key_hash(key) BETWEEN $2 AND $3",
				3, types, values, SPI_OK_DELETE);
	(void) exec("DELETE FROM kommander.lease_orphans WHERE lease = $1 "
				"AND key_hash BETWEEN $2 AND $3",
				3, types, values, SPI_OK_DELETE);
	kmd_lease_clock_dropped(id, kmd_apply_range.lo, kmd_apply_range.hi);
}

void
kmd_lease_apply(const KmdCommand *cmd, const KmdApplyContext *ctx, bool *applied,
				StringInfo result)
{
	const char *op;
	int64		id;
	int64		arg;
	Oid			types[5] = {INT8OID, INT8OID, TIMESTAMPTZOID, INT8OID, INT8OID};
	Datum		values[5];
	bool		isnull;

	if (cmd->n_args != 3)
		elog(ERROR, "malformed lease command");
	op = cmd->args[0];
	id = DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(cmd->args[1])));
	arg = DatumGetInt64(DirectFunctionCall1(int8in, CStringGetDatum(cmd->args[2])));
	values[0] = Int64GetDatum(id);
	values[1] = Int64GetDatum(arg);
	values[2] = TimestampTzGetDatum((TimestampTz) ctx->proposed_at);
	values[3] = Int64GetDatum((int64) ctx->index);
	*applied = true;

	if (strcmp(op, "grant") == 0)
	{
		if (exec("INSERT INTO kommander.lease_state VALUES ($1, $2, $3, $3, $4) "
				 "ON CONFLICT (id) DO NOTHING", 4, types, values, SPI_OK_INSERT) == 0)
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("lease " INT64_FORMAT " exists already", id),
					 errhint("Grant again: the next id is drawn anew.")));
		kmd_lease_clock_renew(id, arg, ctx->index);
	}
	else if (strcmp(op, "keepalive") == 0)
	{
		int64		ttl_ms;

		uint64		renewed;

		/*
		 * The renewal an expiry names must tell this keepalive from every
		 * earlier one, also after a split or merge moved the lease into
		 * another partition's log, whose indexes may meet the old ones: so
		 * it is the entry's index, or one more than the last renewal's.
		 */
		if (exec("UPDATE kommander.lease_state SET renewed_at = $3, "
				 "renewed_idx = greatest(renewed_idx + 1, $4) "
				 "WHERE id = $1 AND $2 = $2 RETURNING ttl_ms, renewed_idx", 4, types, values,
				 SPI_OK_UPDATE_RETURNING) == 0)
			lease_not_found(id);
		ttl_ms = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		renewed = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		appendStringInfo(result, "{\"result\": " INT64_FORMAT "}", ttl_ms);
		kmd_lease_clock_renew(id, ttl_ms, renewed);
	}
	else if (strcmp(op, "revoke") == 0 || strcmp(op, "expire") == 0)
	{
		bool		expire = op[0] == 'e';

		if (exec("SELECT renewed_idx FROM kommander.lease_state WHERE id = $1",
				 1, types, values, SPI_OK_SELECT) == 0)
		{
			/* an expiry proposed twice, or after a revoke: nothing to do */
			if (expire)
			{
				*applied = false;
				kmd_lease_clock_forget(id);
				return;
			}
			lease_not_found(id);
		}

		/*
		 * An expiry decided before a keepalive that was committed first
		 * does nothing: the lease was renewed.
		 */
		if (expire &&
			DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) != arg)
		{
			*applied = false;
			return;
		}
		end_lease(id);
		kmd_lease_clock_forget(id);
	}
	else if (strcmp(op, "drop") == 0)
		drop_orphans(id);
	else if (strcmp(op, "forget") == 0)
		;						/* requests.c forgot, as it read the entry */
	else
		elog(ERROR, "unknown lease command \"%s\"", op);
}

bool
kmd_lease_forgets(const KmdCommand *cmd)
{
	return cmd->kind == KMD_CMD_LEASE && (cmd->rules & KMD_RULE_IDLE_FORGET) &&
		cmd->n_args == 3 && strcmp(cmd->args[0], "forget") == 0;
}

/* jsonb_build_object('a', r.a, ...) of the primary key columns */
static char *
pk_object(RowCommand *c)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	appendStringInfoString(&buf, "pg_catalog.jsonb_build_object(");
	foreach(lc, c->pk)
	{
		const char *col = lfirst(lc);

		if (lc != list_head(c->pk))
			appendStringInfoString(&buf, ", ");
		appendStringInfo(&buf, "%s, r.%s", quote_literal_cstr(col), quote_identifier(col));
	}
	appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * The primary key columns with their types, for jsonb_to_record: the key
 * is read alone, so a column it leaves out is not checked (a domain NOT
 * NULL), and the statement names its types, not the table's row type (a
 * kept plan depends on no table: one that named the row type was not
 * planned again when kmd_ddl changed a column's type).
 */
static char *
pk_columns(RowCommand *c)
{
	StringInfoData buf;
	ListCell   *lc;

	initStringInfo(&buf);
	foreach(lc, c->pk)
	{
		const char *col = lfirst(lc);

		if (lc != list_head(c->pk))
			appendStringInfoString(&buf, ", ");
		appendStringInfo(&buf, "%s %s", quote_identifier(col), kmd_rows_column_type(c->relid, col));
	}
	return buf.data;
}

/*
 * Whether kommander.lease_rows may hold a row, as the apply worker, its
 * only writer, knows it.  While the table is empty a row command has
 * nothing to detach, and its DELETE is skipped.  An attach makes it
 * "maybe", and so does the commit of a transaction that attached (the
 * next one looks again, so that leases that ended give the fast path
 * back); an aborted (sub)transaction or an installed image makes it
 * unknown.
 */
typedef enum
{
	LEASE_ROWS_UNKNOWN,
	LEASE_ROWS_NONE,
	LEASE_ROWS_MAYBE
} LeaseRowsState;

static LeaseRowsState lease_rows_state = LEASE_ROWS_UNKNOWN;
static bool lease_rows_callbacks = false;

static void
lease_rows_xact(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT ||
		(event == XACT_EVENT_COMMIT && lease_rows_state == LEASE_ROWS_MAYBE))
		lease_rows_state = LEASE_ROWS_UNKNOWN;
}

static void
lease_rows_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent,
				   void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
		lease_rows_state = LEASE_ROWS_UNKNOWN;
}

void
kmd_lease_rows_forget(void)
{
	lease_rows_state = LEASE_ROWS_UNKNOWN;
}

/* May kommander.lease_rows hold a row?  SPI connected. */
static bool
lease_rows_maybe(void)
{
	if (!lease_rows_callbacks)
	{
		RegisterXactCallback(lease_rows_xact, NULL);
		RegisterSubXactCallback(lease_rows_subxact, NULL);
		lease_rows_callbacks = true;
	}
	if (lease_rows_state == LEASE_ROWS_UNKNOWN)
		lease_rows_state = exec("SELECT 1 FROM kommander.lease_rows LIMIT 1",
								0, NULL, NULL, SPI_OK_SELECT) > 0 ?
			LEASE_ROWS_MAYBE : LEASE_ROWS_NONE;
	return lease_rows_state == LEASE_ROWS_MAYBE;
}

/*
 * A row of key `key' left lease `id'.  When a split put the row in
 * another partition than the lease's, the lease may have ended here
 * already, noting the row's key as one to drop; the note goes with the
 * last row it stood for.  Else the note would stay on the nodes that
 * applied the lease's end before the row left it, while the one leading
 * this partition, which applied them the other way round, proposes no
 * drop: notes nobody drops, which fill the room the others wait for.
 */
static void
detached(int64 id, const char *key)
{
	Oid			types[2] = {INT8OID, INT8OID};
	Datum		values[2];
	int64		h = kmd_lease_hash(id);
	int64		hash;

	if (h >= kmd_apply_range.lo && h <= kmd_apply_range.hi)
		return;
	hash = kmd_hash_key(key, strlen(key));
	values[0] = Int64GetDatum(id);
	values[1] = Int64GetDatum(hash);
	if (exec("DELETE FROM kommander.lease_orphans WHERE lease = $1 AND key_hash = $2 "
			 "AND NOT EXISTS (SELECT 1 FROM kommander.lease_rows r WHERE r.lease = $1 "
			 "AND kommander.key_hash(r.key) = $2)",
			 2, types, values, SPI_OK_DELETE) > 0)
		kmd_lease_clock_notes_changed();
}

/*
 * The primary key of `tuple', a row of `rel', as kommander.lease_rows
 * keeps it: jsonb_build_object of its columns' values, typed as the
 * table's, in the text the apply worker's settings give them (those of
 * the user code around may differ).  SPI connected.
 */
static Datum
row_pk(Relation rel, HeapTuple tuple)
{
	Relation	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	int			n = idx->rd_index->indnkeyatts;
	TupleDesc	desc = RelationGetDescr(rel);
	Oid		   *types = palloc(sizeof(Oid) * n);
	Datum	   *values = palloc(sizeof(Datum) * n);
	char	   *nulls = palloc(n);
	StringInfoData sql;
	bool		isnull;
	int			nest;
	Datum		pk;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT pg_catalog.jsonb_build_object(");
	for (int i = 0; i < n; i++)
	{
		AttrNumber	att = idx->rd_index->indkey.values[i];
		Form_pg_attribute a = TupleDescAttr(desc, att - 1);

		appendStringInfo(&sql, "%s%s, $%d", i > 0 ? ", " : "",
						 quote_literal_cstr(NameStr(a->attname)), i + 1);
		types[i] = a->atttypid;
		values[i] = heap_getattr(tuple, att, desc, &isnull);
		nulls[i] = isnull ? 'n' : ' ';
	}
	appendStringInfoChar(&sql, ')');
	index_close(idx, AccessShareLock);
	nest = kmd_stored_text_settings();
	if (kmd_plan_execute(sql.data, n, types, values, nulls, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "could not read the primary key of a row of %s", RelationGetRelationName(rel));
	pk = datumCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
				   false, -1);
	AtEOXact_GUC(true, nest);
	return pk;
}

/* Do `a' and `b', rows of `rel', hold the same bytes in its primary key? */
static bool
same_key(Relation rel, HeapTuple a, HeapTuple b)
{
	Relation	idx = index_open(RelationGetPrimaryKeyIndex(rel), AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	bool		same = true;

	for (int i = 0; same && i < idx->rd_index->indnkeyatts; i++)
	{
		AttrNumber	att = idx->rd_index->indkey.values[i];
		Form_pg_attribute attr = TupleDescAttr(desc, att - 1);
		bool		a_null;
		bool		b_null;
		Datum		va = heap_getattr(a, att, desc, &a_null);
		Datum		vb = heap_getattr(b, att, desc, &b_null);

		same = a_null == b_null &&
			(a_null || datumIsEqual(va, vb, attr->attbyval, attr->attlen));
	}
	index_close(idx, AccessShareLock);
	return same;
}

/*
 * Detach the row of registered table `relid' whose primary key was `pk'
 * (deleted, or given another key) from its lease, if any: as the apply
 * worker's role, kommander's own tables.  Only attachments noted under a
 * key of the command's partition: another partition's are its own state.
 * SPI connected.
 */
static void
detach_row(Oid relid, Datum pk)
{
	Oid			types[4] = {TEXTOID, JSONBOID, INT8OID, INT8OID};
	Datum		values[4];
	Relation	rel = table_open(relid, AccessShareLock);
	KmdRoleSaved saved;
	volatile bool done = false;
	bool		save = kmd_apply_range.user_command;

	values[0] = CStringGetTextDatum(kmd_rows_table_name(rel));
	table_close(rel, AccessShareLock);
	values[1] = pk;
	values[2] = Int64GetDatum(kmd_apply_range.lo);
	values[3] = Int64GetDatum(kmd_apply_range.hi);

	/*
	 * kommander's own table, as the apply worker's role, with a search_path
	 * of its own: the user code around chose the session's
	 */
	kmd_role_enter(&saved, GetAuthenticatedUserId());
	kmd_apply_range.user_command = false;
	PG_TRY();
	{
		uint64		n;
		int64	   *leases;
		char	  **keys;

		(void) kmd_safe_search_path();
		n = exec("DELETE FROM kommander.lease_rows WHERE tbl = $1 AND pk = $2 "
				 "AND kommander.key_hash(key) BETWEEN $3 AND $4 RETURNING lease, key",
				 4, types, values, SPI_OK_DELETE_RETURNING);
		leases = palloc(sizeof(int64) * Max(n, 1));
		keys = palloc(sizeof(char *) * Max(n, 1));
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			leases[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			keys[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		}
		/* detached() runs statements of its own */
		for (uint64 i = 0; i < n; i++)
			detached(leases[i], keys[i]);
		done = true;
	}
	PG_FINALLY();
	{
		kmd_apply_range.user_command = save;
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
}

/*
 * The primary keys of `old' and `new' (NULL: none), rows of `rel', as
 * row_pk writes them, as `owner' (kmd_lease_track's too): a cast of one
 * of the owner's types to json is the owner's code.
 */
static void
row_pks_as(Oid owner, Relation rel, HeapTuple old, HeapTuple new,
		   Datum *old_pk, Datum *new_pk)
{
	KmdRoleSaved saved;
	volatile bool done = false;

	kmd_role_enter(&saved, owner);
	PG_TRY();
	{
		(void) kmd_safe_search_path();
		*old_pk = row_pk(rel, old);
		if (new != NULL)
			*new_pk = row_pk(rel, new);
		done = true;
	}
	PG_FINALLY();
	{
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
}

/*
 * lease_rows_maybe, from user code: kommander's own table is read as the
 * apply worker's role.  SPI connected.
 */
static bool
lease_rows_maybe_as_worker(void)
{
	KmdRoleSaved saved;
	volatile bool done = false;
	volatile bool maybe = false;

	if (lease_rows_state != LEASE_ROWS_UNKNOWN)
		return lease_rows_state == LEASE_ROWS_MAYBE;
	kmd_role_enter(&saved, GetAuthenticatedUserId());
	PG_TRY();
	{
		(void) kmd_safe_search_path();
		maybe = lease_rows_maybe();
		done = true;
	}
	PG_FINALLY();
	{
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
	return maybe;
}

void
kmd_lease_row_left(Relation rel, HeapTuple old, HeapTuple new)
{
	Oid			root = RelationGetRelid(rel);
	Datum		old_pk;
	Datum		new_pk = (Datum) 0;

	/* the usual updates, and every write while no row is attached */
	if (lease_rows_state == LEASE_ROWS_NONE || (new != NULL && same_key(rel, old, new)))
		return;
	SPI_connect();
	/* no key is written (the owner's code) while no row is attached */
	if (!lease_rows_maybe_as_worker())
	{
		SPI_finish();
		return;
	}
	/* a partition's row is noted under the registered table, its root */
	if (rel->rd_rel->relispartition)
		root = llast_oid(get_partition_ancestors(root));
	row_pks_as(kmd_rel_owner(root), rel, old, new, &old_pk, &new_pk);
	if (new == NULL || !DatumGetBool(DirectFunctionCall2(jsonb_eq, old_pk, new_pk)))
		detach_row(root, old_pk);
	SPI_finish();
}

void
kmd_lease_track(RowCommand *c, const char *key)
{
	bool		attach = c->lease > 0 && c->op != OP_DELETE;
	/* a deleted row left its lease in the row trigger (kmd_lease_row_left) */
	bool		detach = (c->op != OP_UPDATE && c->op != OP_DELETE) || c->lease_named;
	Oid			types[4] = {JSONBOID, TEXTOID, TEXTOID, INT8OID};
	Datum		values[4];
	volatile bool save = kmd_apply_range.user_command;
	KmdRoleSaved saved;
	volatile bool done = false;
	bool		isnull;

	if (!attach && !detach)
		return;

	/* the key the note is made of, whole (not for an older version's entry) */
	if (attach && (kmd_apply_range.rules & KMD_RULE_APPLY_CHECKS))
		kmd_rows_check_lease_key(c, true);
	SPI_connect();
	/* nothing to attach, and no row attached to any lease: nothing to detach */
	if (!attach && !lease_rows_maybe())
	{
		SPI_finish();
		return;
	}

	/* an inserted row's key may come from the defaults its proposer decided */
	if (c->op != OP_INSERT && c->op != OP_UPSERT)
		values[0] = JsonbPGetDatum(c->key);
	else if (c->defaults != NULL)
		values[0] = DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(c->defaults),
										JsonbPGetDatum(c->row));
	else
		values[0] = JsonbPGetDatum(c->row);
	values[1] = CStringGetTextDatum(key);
	values[2] = CStringGetTextDatum(c->qualname);
	values[3] = Int64GetDatum(c->lease);

	/*
	 * The row's primary key as an object, made as the table's owner: the
	 * record its columns are read into may run the owner's code (a
	 * domain's check).  The command wrote the row with these values
	 * already, so reading them cannot fail where the command did not.
	 */
	kmd_role_enter(&saved, c->owner);
	PG_TRY();
	{
		(void) exec(psprintf("SELECT %s FROM pg_catalog.jsonb_to_record($1) AS r (%s)",
							 pk_object(c), pk_columns(c)),
					1, types, values, SPI_OK_SELECT);
		values[0] = datumCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull),
							  false, -1);
		done = true;
	}
	PG_FINALLY();
	{
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();

	/* kommander's own tables, written as the apply worker's role */
	kmd_apply_range.user_command = false;
	PG_TRY();
	{
		if (attach)
		{
			int64		h = kmd_lease_hash(c->lease);

			/*
			 * The partition first: whether another partition's lease
			 * exists here depends on how far this node applied that one.
			 */
			if (h < kmd_apply_range.lo || h > kmd_apply_range.hi)
				ereport(ERROR,
						(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						 errmsg("\"lease\": lease " INT64_FORMAT " belongs to another partition than key \"%s\"",
								c->lease, key),
						 errhint("Grant the lease with kmd_lease_grant(ttl, key) for a key of the rows it will hold.")));
			if (exec("SELECT 1 FROM kommander.lease_state WHERE id = $4 AND $1 IS NOT NULL "
					 "AND $2 IS NOT NULL AND $3 IS NOT NULL",
					 4, types, values, SPI_OK_SELECT) == 0)
				lease_not_found(c->lease);
		}
		if (lease_rows_maybe() &&
			exec("DELETE FROM kommander.lease_rows "
				 "WHERE key = $2 AND tbl = $3 AND pk = $1 RETURNING lease",
				 3, types, values, SPI_OK_DELETE_RETURNING) > 0)
			detached(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)),
					 key);
		if (attach)
		{
			lease_rows_state = LEASE_ROWS_MAYBE;
			(void) exec("INSERT INTO kommander.lease_rows VALUES ($2, $3, $1, $4)",
						4, types, values, SPI_OK_INSERT);
		}
	}
	PG_FINALLY();
	{
		kmd_apply_range.user_command = save;
	}
	PG_END_TRY();
	SPI_finish();
}

