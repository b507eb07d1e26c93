/*-------------------------------------------------------------------------
 *
 * propose.c
 *	  The SQL functions that write through Raft or read from it:
 *	  kmd_propose, kmd_propose_result, kmd_read_barrier, kmd_ddl,
 *	  kmd_register_table, kmd_register_applier, kmd_transfer_leader.
 *
 * Each validates its arguments first (bad input raises a SQLSTATE of
 * API.md), then hands a request to the Raft worker (request.c).  A proposal
 * returns once the local node has applied it, so the caller's next SELECT
 * sees it.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/propose.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/regproc.h"
#include "utils/relcache.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "errcodes.h"
#include "guard.h"
#include "guc.h"
#include "membership.h"
#include "request.h"
#include "routing.h"
#include "rows.h"
#include "shmem.h"
#include "stats.h"
#include "table_keys.h"

PG_FUNCTION_INFO_V1(kmd_propose);
PG_FUNCTION_INFO_V1(kmd_propose_result);
PG_FUNCTION_INFO_V1(kmd_read_barrier);
PG_FUNCTION_INFO_V1(kmd_ddl);
PG_FUNCTION_INFO_V1(kmd_register_table);
PG_FUNCTION_INFO_V1(kmd_register_applier);
PG_FUNCTION_INFO_V1(kmd_transfer_leader);

static void
require_arg(FunctionCallInfo fcinfo, int n, const char *name)
{
	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/* Route, fence, replicate and wait: the common part of kmd_propose*. */
static int32
propose_rows(FunctionCallInfo fcinfo, KmdOutcome *out, bool *reads)
{
	text	   *key_text;
	char	   *key;
	Jsonb	   *command;
	uint64		generation;
	int32		state;
	int32		leader;
	int32		partition_id;
	KmdCommand	cmd;

	require_arg(fcinfo, 0, "key");
	require_arg(fcinfo, 1, "command");
	kmd_require_member();
	key_text = PG_GETARG_TEXT_PP(0);
	command = PG_GETARG_JSONB_P(1);
	/* the key travels in the command: one longer than the limit cannot fit */
	if (VARSIZE_ANY_EXHDR(key_text) > KMD_MAX_COMMAND)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("command is too large"),
				 errdetail("The routing key has %zu bytes; an encoded command may have %d.",
						   (size_t) VARSIZE_ANY_EXHDR(key_text), KMD_MAX_COMMAND)));
	key = text_to_cstring(key_text);

	command = kmd_rows_prepare(command, key, reads);

	partition_id = kmd_route_key(key, strlen(key), &generation, &state, &leader);
	if (state == KMD_PART_FROZEN)
	{
		kmd_stat_add(KMD_STAT_REJECTED_FROZEN, partition_id, 1);
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partition %d is frozen", partition_id),
				 errdetail("A merge of the partition is under way."),
				 errhint("Re-route the key with kmd_route() and retry.")));
	}
	if (!PG_ARGISNULL(2) && PG_GETARG_INT64(2) != (int64) generation)
	{
		kmd_stat_add(KMD_STAT_REJECTED_FENCED, partition_id, 1);
		ereport(ERROR,
				(errcode(ERRCODE_KMD_STALE_GENERATION),
				 errmsg("stale partition generation"),
				 errdetail("The key belongs to partition %d at generation " UINT64_FORMAT
						   ", not " INT64_FORMAT ".",
						   partition_id, generation, PG_GETARG_INT64(2)),
				 errhint("Re-route the key with kmd_route() and retry.")));
	}

	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = KMD_CMD_ROWS;
	cmd.generation = generation;
	cmd.sys_index = kmd_partition_applied(0);
	cmd.key = key;
	cmd.payload = JsonbToCString(NULL, &command->root, VARSIZE(command));
	cmd.payload_len = strlen(cmd.payload);
	/* carried in the entry: every node forgets the same request ids */
	cmd.request_retention = kmd_request_retention;
	kmd_request(KMD_REQ_PROPOSE, partition_id, cmd.kind, &cmd, out);
	/*
	 * What the apply worker read as the tables' owner (a failing row in an
	 * error's detail, the "current" row) is for a caller that may read
	 * them (kmd_rows_prepare tells), decided before: nothing here fails
	 * once the command is applied.
	 */
	if (!*reads)
		out->errdetail = NULL;
	kmd_outcome_raise(out);
	return partition_id;
}

Datum
kmd_propose(PG_FUNCTION_ARGS)
{
	KmdOutcome	out;
	bool		reads;

	(void) propose_rows(fcinfo, &out, &reads);
	PG_RETURN_INT64((int64) out.index);
}

/*
 * The answer is built from the outcome and what the apply worker added to
 * it (rows.h: "result", and "failed" for a batch), which it checked
 * against KMD_RESULT_LIMIT: nothing here can fail once the command is
 * applied.
 */
Datum
kmd_propose_result(PG_FUNCTION_ARGS)
{
	KmdOutcome	out;
	bool		reads;
	int32		partition_id = propose_rows(fcinfo, &out, &reads);
	StringInfoData buf;
	Datum		answer;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"index\": " UINT64_FORMAT ", \"term\": " UINT64_FORMAT
					 ", \"partition\": %d, \"applied\": %s, \"result\": null}",
					 out.index, out.term,
					 out.index_partition != 0 ? out.index_partition : partition_id,
					 out.applied ? "true" : "false");
	answer = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	if (out.result != NULL)
		answer = DirectFunctionCall2(jsonb_concat, answer,
									 DirectFunctionCall1(jsonb_in, CStringGetDatum(out.result)));
	/* the row as applied, read as its table's owner: see propose_rows */
	if (!reads)
		answer = DirectFunctionCall2(jsonb_concat, answer,
									 DirectFunctionCall1(jsonb_in, CStringGetDatum("{\"current\": null}")));
	PG_RETURN_DATUM(answer);
}

/*
 * The barrier for every partition, and then for every partition that
 * appeared here while doing so: one split off before the call may be
 * created only when this node applies the split.  Returns the highest
 * read index.
 */
static uint64
all_barrier(TimestampTz deadline)
{
	int32	   *done = palloc0(sizeof(int32) * kmd_shared->max_partitions);
	int32	   *ids = palloc(sizeof(int32) * kmd_shared->max_partitions);
	uint64		index = 0;
	int			n;

	do
	{
		n = 0;
		LWLockAcquire(kmd_shared->lock, LW_SHARED);
		for (int i = 0; i < kmd_shared->partitions_used; i++)
			if (kmd_shared->partitions[i].partition_id >= 0 &&
				kmd_shared->partitions[i].state != KMD_PART_GONE &&
				done[i] != kmd_shared->partitions[i].partition_id + 1)
			{
				done[i] = kmd_shared->partitions[i].partition_id + 1;
				ids[n++] = kmd_shared->partitions[i].partition_id;
			}
		LWLockRelease(kmd_shared->lock);
		for (int i = 0; i < n; i++)
			index = Max(index, kmd_partition_barrier(ids[i], deadline));
	} while (n > 0);
	pfree(done);
	pfree(ids);
	return index;
}

/*
 * The barrier for one key.  The key is routed again after each barrier
 * until its partition stays put: a split or merge committed before the call
 * may not be applied here when the key is first routed.  A frozen
 * partition's keys may already be written through the partition its merge
 * goes into: its left neighbour as this node knows it, or one this node
 * has yet to learn of (that neighbour split since, here not yet applied),
 * or one further left (the neighbour frozen too, merged on): every
 * partition gets a barrier then, as kmd_read_barrier() without a key.
 */
static uint64
key_barrier(const char *key, TimestampTz deadline)
{
	int64		h = kmd_hash_key(key, strlen(key));
	uint64		generation;
	int32		state;
	int32		leader;
	int64		lo;
	int32		partition_id = kmd_route_hash(h, &generation, &state, &leader, &lo);

	for (;;)
	{
		uint64		index;
		uint64		generation_now;
		int32		state_now;
		int32		partition_now;

		if (state == KMD_PART_FROZEN)
			index = all_barrier(deadline);
		else
			index = kmd_partition_barrier(partition_id, deadline);
		partition_now = kmd_route_hash(h, &generation_now, &state_now, &leader, &lo);
		if (partition_now == partition_id && generation_now == generation &&
			state_now == state)
			return index;
		partition_id = partition_now;
		generation = generation_now;
		state = state_now;
		CHECK_FOR_INTERRUPTS();
	}
}

Datum
kmd_read_barrier(PG_FUNCTION_ARGS)
{
	TimestampTz deadline;
	uint64		index = 0;

	kmd_require_member();
#ifdef KMD_BROKEN_READ_BARRIER
	/* a deliberate defect (scripts/nemesis.sh --broken read): no barrier */
	PG_RETURN_INT64(0);
#endif
	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kmd_propose_timeout);
	if (!PG_ARGISNULL(0))
		index = key_barrier(text_to_cstring(PG_GETARG_TEXT_PP(0)), deadline);
	else
		index = all_barrier(deadline);
	PG_RETURN_INT64((int64) index);
}

/* Propose a command to the system partition; returns its index. */
static uint64
propose_system(KmdCommand *cmd, KmdOutcome *out)
{
	cmd->generation = 0;
	cmd->sys_index = kmd_partition_applied(0);
	kmd_propose_command(0, cmd, out);
	return out->index;
}

/* A syntax error's position, within the statement given to kmd_ddl. */
static void
ddl_parse_context(void *arg)
{
	int			pos = geterrposition();

	if (pos > 0)
	{
		errposition(0);
		internalerrposition(pos);
		internalerrquery((const char *) arg);
	}
}

/*
 * Parse `sql' as the apply worker will read it (standard_conforming_strings
 * and backslash_quote on, as apply.c pins them): a statement that does not
 * parse, only comments, or what the apply cannot run fails here, instead
 * of taking an entry of the system partition's log that fails, or does
 * nothing, on every node.
 */
/*
 * What of `stmt', if anything, Postgres runs only outside a transaction
 * block: the apply runs each kmd_ddl statement in its entry's apply
 * transaction, where it would fail on every node, after a barrier across
 * every partition.
 */
static const char *
runs_alone(Node *stmt)
{
	ListCell   *lc;

	switch (nodeTag(stmt))
	{
		case T_VacuumStmt:
			return ((VacuumStmt *) stmt)->is_vacuumcmd ? "VACUUM" : NULL;
		case T_IndexStmt:
			return ((IndexStmt *) stmt)->concurrent ? "CREATE INDEX CONCURRENTLY" : NULL;
		case T_ReindexStmt:
			foreach(lc, ((ReindexStmt *) stmt)->params)
			{
				DefElem    *opt = lfirst_node(DefElem, lc);

				if (strcmp(opt->defname, "concurrently") == 0 && defGetBoolean(opt))
					return "REINDEX CONCURRENTLY";
			}
			return NULL;
		case T_DropStmt:
			return ((DropStmt *) stmt)->concurrent ? "DROP INDEX CONCURRENTLY" : NULL;
		case T_AlterTableStmt:
			foreach(lc, ((AlterTableStmt *) stmt)->cmds)
			{
				AlterTableCmd *cmd = lfirst(lc);

				if (cmd->subtype == AT_DetachPartition &&
					((PartitionCmd *) cmd->def)->concurrent)
					return "DETACH PARTITION CONCURRENTLY";
			}
			return NULL;
		case T_ClusterStmt:
			return ((ClusterStmt *) stmt)->relation == NULL ? "CLUSTER of every table" : NULL;
		case T_CreatedbStmt:
			return "CREATE DATABASE";
		case T_DropdbStmt:
			return "DROP DATABASE";
		case T_CreateTableSpaceStmt:
			return "CREATE TABLESPACE";
		case T_DropTableSpaceStmt:
			return "DROP TABLESPACE";
		case T_AlterSystemStmt:
			return "ALTER SYSTEM";
		default:
			return NULL;
	}
}

static void
check_ddl_parses(const char *sql)
{
	ErrorContextCallback context;
	List	   *stmts;
	ListCell   *lc;
	int			nest = NewGUCNestLevel();

	(void) set_config_option("standard_conforming_strings", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* as apply.c pins it: safe_encoding's refusal depends on client_encoding */
	(void) set_config_option("backslash_quote", "on", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	context.callback = ddl_parse_context;
	context.arg = (void *) sql;
	context.previous = error_context_stack;
	error_context_stack = &context;
	stmts = raw_parser(sql, RAW_PARSE_DEFAULT);
	error_context_stack = context.previous;
	AtEOXact_GUC(true, nest);

	if (stmts == NIL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("command must not be empty"),
				 errdetail("It holds no statement, only white space, semicolons or comments.")));
	foreach(lc, stmts)
	{
		Node	   *stmt = lfirst_node(RawStmt, lc)->stmt;

		if (IsA(stmt, TransactionStmt) ||
			(IsA(stmt, CopyStmt) && ((CopyStmt *) stmt)->filename == NULL))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("kmd_ddl cannot run transaction control or COPY to or from the client"),
					 errdetail("Every statement given to kmd_ddl runs in the apply transaction of its entry.")));
		if (runs_alone(stmt) != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
					 errmsg("kmd_ddl cannot run %s", runs_alone(stmt)),
					 errdetail("Every statement given to kmd_ddl runs in the apply transaction of its entry, and this one cannot run inside a transaction block."),
					 errhint("Run maintenance on each node by itself; give kmd_ddl an index without CONCURRENTLY.")));
	}
}

Datum
kmd_ddl(PG_FUNCTION_ARGS)
{
	KmdCommand	cmd;
	KmdOutcome	out;
	char	   *sql;

	require_arg(fcinfo, 0, "command");
	kmd_require_member();
	sql = text_to_cstring(PG_GETARG_TEXT_PP(0));
	check_ddl_parses(sql);
	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = KMD_CMD_DDL;
	cmd.payload = sql;
	cmd.payload_len = strlen(sql);
	/* every node runs it as the caller: it can do no more than the caller */
	cmd.n_args = 1;
	cmd.args[0] = GetUserNameFromId(GetUserId(), false);
	PG_RETURN_INT64((int64) propose_system(&cmd, &out));
}

/*
 * Refuse (0A000) to register a table of kommander's own (its schema holds
 * the log, the roster and the other state the workers write) or a system
 * catalog.  Checked here only: where a registration is applied, an entry
 * committed before this check keeps its outcome.
 */
static void
refuse_not_own(Oid relid)
{
	Oid			nsp = get_rel_namespace(relid);
	bool		ours = nsp == get_namespace_oid("kommander", true);

	if (ours || IsCatalogRelationOid(relid) || IsToastNamespace(nsp) || IsCatalogNamespace(nsp))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" belongs to %s", get_rel_name(relid),
						ours ? "kommander" : "the system"),
				 errdetail("Only tables of your own become control tables."),
				 errhint("Create a table of your own through kmd_ddl(), then register it.")));
}

Datum
kmd_register_table(PG_FUNCTION_ARGS)
{
	Oid			relid;
	Relation	rel;
	KmdCommand	cmd;
	KmdOutcome	out;
	char	   *name;

	require_arg(fcinfo, 0, "tbl");
	kmd_require_member();
	relid = PG_GETARG_OID(0);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	refuse_not_own(relid);
	/* registering makes a table read-only to sessions: its owner's choice */
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)),
					   get_rel_name(relid));
	kmd_check_registrable(relid);
	rel = table_open(relid, AccessShareLock);
	name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
									  RelationGetRelationName(rel));
	table_close(rel, AccessShareLock);

	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = KMD_CMD_REGISTER_TABLE;
	cmd.n_args = 1;
	cmd.args[0] = name;
	(void) propose_system(&cmd, &out);
	PG_RETURN_VOID();
}

Datum
kmd_register_applier(PG_FUNCTION_ARGS)
{
	char	   *name;
	Oid			fn;
	HeapTuple	tup;
	Form_pg_proc proc;
	KmdCommand	cmd;
	KmdOutcome	out;
	Oid			ctx_type;
	Oid			registered_fn;

	require_arg(fcinfo, 0, "name");
	require_arg(fcinfo, 1, "fn");
	kmd_require_member();
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("applier name must not be empty")));
	/* as long as a Postgres name: a longer one failed every node's apply */
	if (strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("applier name \"%s...\" is too long",
						pnstrdup(name, pg_mbcliplen(name, strlen(name), 20))),
				 errdetail("An applier's name has at most %d bytes.", NAMEDATALEN - 1)));
	fn = PG_GETARG_OID(1);

	ctx_type = DatumGetObjectId(DirectFunctionCall1(regtypein,
													CStringGetDatum("kommander.apply_context")));
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("function with OID %u does not exist", fn)));
	proc = (Form_pg_proc) GETSTRUCT(tup);
	if (proc->pronargs != 2 || proc->proargtypes.values[0] != JSONBOID ||
		proc->proargtypes.values[1] != ctx_type || proc->prorettype != JSONBOID ||
		proc->proretset || proc->prokind != PROKIND_FUNCTION)
	{
		ReleaseSysCache(tup);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("applier function must be fn(jsonb, kommander.apply_context) returning jsonb")));
	}
	ReleaseSysCache(tup);
	/* an applier runs as its function's owner, who must be the caller */
	if (!pg_proc_ownercheck(fn, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, OBJECT_FUNCTION, get_func_name(fn));
	/* and so must the one of the function the name calls now, if any */
	if (kmd_rows_applier_fn(name, &registered_fn) && OidIsValid(registered_fn) &&
		SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(registered_fn)) &&
		!pg_proc_ownercheck(registered_fn, GetUserId()))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("applier \"%s\" calls a function of another owner", name),
				 errdetail("Function %s is registered under that name.",
						   format_procedure(registered_fn)),
				 errhint("Register the function under another name, or drop the function the name calls first.")));

	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = KMD_CMD_REGISTER_APPLIER;
	cmd.n_args = 2;
	cmd.args[0] = name;
	cmd.args[1] = format_procedure_qualified(fn);
	(void) propose_system(&cmd, &out);
	PG_RETURN_VOID();
}

Datum
kmd_transfer_leader(PG_FUNCTION_ARGS)
{
	int32		partition_id;
	int32		node_id;
	KmdOutcome	out;
	TimestampTz deadline;
	TimestampTz asked;
	bool		exists;
	bool		leaving;

	require_arg(fcinfo, 0, "partition_id");
	require_arg(fcinfo, 1, "node_name");
	kmd_require_member();
	partition_id = PG_GETARG_INT32(0);
	node_id = kmd_node_id_by_name(text_to_cstring(PG_GETARG_TEXT_PP(1)));

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	{
		KmdPartition *part = kmd_partition_find(partition_id);
		KmdNode    *node = kmd_node_find(node_id);

		exists = part != NULL && part->state != KMD_PART_GONE;
		leaving = node != NULL && node->role == KMD_NODE_REMOVING;
	}
	LWLockRelease(kmd_shared->lock);
	if (!exists)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partition %d does not exist", partition_id)));
	/* it would hand the lead on again once it applied its removal */
	if (leaving)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("node \"%s\" is being removed from the cluster",
						text_to_cstring(PG_GETARG_TEXT_PP(1))),
				 errhint("Move the leadership to a node that stays.")));

	deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), kmd_propose_timeout);
	kmd_request(KMD_REQ_TRANSFER, partition_id, node_id, NULL, &out);
	kmd_outcome_raise(&out);
	asked = GetCurrentTimestamp();

	/* wait until this node sees the new leader */
	ConditionVariablePrepareToSleep(&kmd_shared->leader_cv);
	for (;;)
	{
		int32		leader;
		long		remaining;

		KmdPartition *part;

		LWLockAcquire(kmd_shared->lock, LW_SHARED);
		part = kmd_partition_find(partition_id);
		if (part != NULL && part->state == KMD_PART_GONE)
			part = NULL;
		leader = part != NULL ? part->leader : 0;
		LWLockRelease(kmd_shared->lock);
		if (part == NULL)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_KMD_PARTITION_FROZEN),
					 errmsg("partition %d is gone", partition_id),
					 errdetail("It was merged into its neighbour while its leadership moved.")));
		}
		if (leader == node_id)
			break;
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
		if (remaining <= 0)
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_KMD_NO_QUORUM),
					 errmsg("leadership of partition %d did not move in time", partition_id),
					 errhint("The target may be lagging or unreachable; retry later.")));
		}

		/*
		 * A leader gives a transfer up after an election timeout (its
		 * target not caught up, or not connected yet, as after a
		 * restart): the leader this node knows is asked again, until the
		 * deadline.  A refusal stands; no answer is asked again later.
		 */
		if (leader != 0 &&
			TimestampDifferenceExceeds(asked, GetCurrentTimestamp(), kmd_election_timeout))
		{
			ConditionVariableCancelSleep();
			kmd_request_outcome(KMD_REQ_TRANSFER, partition_id, node_id, NULL, &out);
			asked = GetCurrentTimestamp();
			if (out.sqlstate[0] != 'K')
				kmd_outcome_raise(&out);
			ConditionVariablePrepareToSleep(&kmd_shared->leader_cv);
		}
		(void) ConditionVariableTimedSleep(&kmd_shared->leader_cv, Min(remaining, 100),
										   PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
	ConditionVariableCancelSleep();
	PG_RETURN_VOID();
}
