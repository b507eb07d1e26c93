/*-------------------------------------------------------------------------
 *
 * keyrange.c
 *	  What a command may write while it is applied: rows of control tables
 *	  in its own partition's key range.  A row trigger on every control
 *	  table checks that each row written or deleted has a routing key in
 *	  the key range the entry's partition owns at that point of its log; an
 *	  executor hook and a utility hook refuse writes to any other table.
 *
 * The rows of a partition are its state: an image of a partition carries
 * exactly the rows in its range, and two partitions order their commands
 * independently.  A write outside the range (an applier touching another
 * partition's key, a key whose stored text hashes elsewhere than the text
 * it was routed by, kmd_ddl writing control rows) would be ordered by the
 * wrong group, so it fails the command, the same way on every node (the
 * range at a log position is the same everywhere).  The same trigger
 * lets a row deleted, or given another key, leave its lease (lease.c).
 *
 * A table that is not a control table is no partition's state: no image
 * carries it, and the nodes apply the partitions in different orders, so
 * a command of kmd_propose (a row command, an applier, their triggers)
 * that writes one fails (K0011, naming it): INSERT, UPDATE, DELETE, MERGE,
 * TRUNCATE, COPY FROM, CREATE TABLE AS, REFRESH MATERIALIZED VIEW.  So
 * does TRUNCATE of a control table, which would skip the row trigger and
 * empty every partition.  kmd_ddl, whose statements every node runs in
 * the system partition's order and every image of it replays, may write
 * other tables but not control tables' rows.  No command writes a
 * temporary table: it would live in one node's apply worker only, and a
 * command of kmd_propose runs no DDL, which only kmd_ddl runs.  The
 * hooks cost nothing outside the apply worker (kmd_applying).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/keyrange.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "catalog/namespace.h"
#include "executor/executor.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "apply.h"
#include "command.h"
#include "errcodes.h"
#include "guard.h"
#include "identity.h"
#include "keyrange.h"
#include "lease.h"
#include "routing.h"

KmdKeyRange kmd_apply_range = {-1, 0, 0, false};

static ExecutorStart_hook_type prev_executor_start = NULL;
static ProcessUtility_hook_type prev_process_utility = NULL;

PG_FUNCTION_INFO_V1(kmd_control_row_guard);

/*
 * The text of a row's routing key: its first primary key column, as the
 * apply worker's settings write it (the user code around may have set
 * others: the same value would hash elsewhere).
 */
static char *
routing_text(Relation rel, HeapTuple tuple)
{
	Oid			pkidx = RelationGetPrimaryKeyIndex(rel);
	Relation	idx;
	AttrNumber	att;
	bool		isnull;
	Datum		d;
	Oid			typoutput;
	bool		varlena;
	int			nest;
	char	   *text;

	if (!OidIsValid(pkidx))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("control table %s has no primary key", RelationGetRelationName(rel))));
	idx = index_open(pkidx, AccessShareLock);
	att = idx->rd_index->indkey.values[0];
	index_close(idx, AccessShareLock);
	d = heap_getattr(tuple, att, RelationGetDescr(rel), &isnull);
	if (isnull)
		return NULL;
	getTypeOutputInfo(TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid,
					  &typoutput, &varlena);
	nest = kmd_stored_text_settings();
	text = OidOutputFunctionCall(typoutput, d);
	AtEOXact_GUC(true, nest);
	return text;
}

static void
check_row(Relation rel, HeapTuple tuple)
{
	char	   *key = routing_text(rel, tuple);
	int64		h;

	if (key == NULL)
		return;
	h = kmd_hash_key(key, strlen(key));
	if (kmd_apply_range.partition_id > 0 &&
		h >= kmd_apply_range.lo && h <= kmd_apply_range.hi)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
			 errmsg("row \"%s\" of %s is outside partition %d", key,
					quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
											   RelationGetRelationName(rel)),
					kmd_apply_range.partition_id),
			 kmd_apply_range.partition_id == 0 ?
			 errdetail("Rows of control tables are written by commands of their own partition, not by kmd_ddl.") :
			 errdetail("Its routing key hashes to " INT64_FORMAT ", outside the partition's range; a command writes only rows of its own partition.", h),
			 errhint("Propose the write with the row's key, or keep keys that must change together under one routing key.")));
}

Datum
kmd_control_row_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) ||
		!TRIGGER_FIRED_AFTER(trigdata->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("kommander.control_row_guard() must be called as an AFTER ROW trigger")));

	/* only entries being applied are checked: sessions are refused anyway */
	if (kmd_applying && kmd_apply_range.partition_id >= 0)
	{
		check_row(trigdata->tg_relation, trigdata->tg_trigtuple);
		if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
			check_row(trigdata->tg_relation, trigdata->tg_newtuple);
		/* a row deleted, or given another key, leaves its lease */
		if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
			kmd_lease_row_left(trigdata->tg_relation, trigdata->tg_trigtuple, NULL);
		else if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
			kmd_lease_row_left(trigdata->tg_relation, trigdata->tg_trigtuple,
							   trigdata->tg_newtuple);
	}
	return PointerGetDatum(NULL);
}

/* ------------------------------------------------------------------------
 * Tables that are not control tables
 * ------------------------------------------------------------------------
 */

/* Is a command being applied, whose writes these hooks check? */
static bool
checking(void)
{
	return kmd_applying && kmd_apply_range.partition_id >= 0;
}

static char *
table_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* A command writes relation `relid' (`how': the statement, for the message). */
static void
check_write(Oid relid, const char *how)
{
	if (!OidIsValid(relid))
		return;
	if (get_rel_persistence(relid) == RELPERSISTENCE_TEMP)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("command writes temporary table %s", table_name(relid)),
				 errdetail("A temporary table lives in one node's apply worker only; %s changes it on this node alone.", how)));
	if (kmd_apply_range.user_command && !kmd_is_control_table(relid))
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("command writes table %s, which is not a control table", table_name(relid)),
				 errdetail("A command of kmd_propose writes only rows of control tables in its own partition; %s of another table would not be the same on every node.", how),
				 errhint("Register the table with kmd_register_table(), or change it through kmd_ddl().")));
}

/* TRUNCATE of `relid' while a command is applied */
static void
check_truncate(Oid relid)
{
	if (!OidIsValid(relid))
		return;
	check_write(relid, "TRUNCATE");
	if (kmd_is_control_table(relid))
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("command truncates control table %s", table_name(relid)),
				 errdetail("TRUNCATE empties the rows of every partition; a command writes only rows of its own."),
				 errhint("Delete the rows of the command's own key instead.")));
}

static void
executor_start(QueryDesc *queryDesc, int eflags)
{
	if (checking() && !(eflags & EXEC_FLAG_EXPLAIN_ONLY))
	{
		PlannedStmt *stmt = queryDesc->plannedstmt;
		ListCell   *lc;

		foreach(lc, stmt->resultRelations)
			check_write(rt_fetch(lfirst_int(lc), stmt->rtable)->relid,
						stmt->commandType == CMD_SELECT ? "a data-modifying WITH" :
						GetCommandTagName(CreateCommandTag((Node *) stmt)));
	}
	if (prev_executor_start)
		prev_executor_start(queryDesc, eflags);
	else
		standard_ExecutorStart(queryDesc, eflags);
}

/* The relation `rv' names, if it exists (the statement reports it if not). */
static Oid
relation_of(RangeVar *rv)
{
	return rv != NULL ? RangeVarGetRelid(rv, NoLock, true) : InvalidOid;
}

/* The name a statement gives a new relation, quoted as written. */
static const char *
rangevar_text(const RangeVar *rv)
{
	return rv->schemaname != NULL ? quote_qualified_identifier(rv->schemaname, rv->relname) :
		quote_identifier(rv->relname);
}

/* The utility statements code run by a command of kmd_propose may run. */
static bool
row_command_may_run(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_VariableSetStmt:	/* undone at the command's end (apply.c) */
		case T_VariableShowStmt:
		case T_NotifyStmt:
		case T_DoStmt:			/* what it runs is checked statement by statement */
		case T_CallStmt:
		case T_ExplainStmt:
		case T_LockStmt:
		case T_CopyStmt:		/* COPY FROM: refused by check_utility */
		case T_FetchStmt:
		case T_ClosePortalStmt:
			return true;
		default:
			return false;
	}
}

static void
check_utility(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_TruncateStmt:
			foreach(lc, ((TruncateStmt *) parsetree)->relations)
				check_truncate(relation_of(lfirst(lc)));
			break;
		case T_CopyStmt:
			if (((CopyStmt *) parsetree)->is_from)
			{
				check_write(relation_of(((CopyStmt *) parsetree)->relation), "COPY FROM");
				/* a file or a program of one node */
				if (kmd_apply_range.user_command && (kmd_apply_range.rules & KMD_RULE_CONTAINED_CODE))
					ereport(ERROR,
							(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
							 errmsg("command runs COPY FROM"),
							 errdetail("What it reads is one node's: each node would store its own rows.")));
			}
			break;
		case T_ExplainStmt:
			{
				/* EXPLAIN ANALYZE runs its statement: CREATE TABLE AS too */
				Query	   *q = (Query *) ((ExplainStmt *) parsetree)->query;

				if (IsA(q, Query) && q->commandType == CMD_UTILITY && q->utilityStmt != NULL)
					check_utility(q->utilityStmt);
			}
			break;
		case T_CreateTableAsStmt:
			{
				IntoClause *into = ((CreateTableAsStmt *) parsetree)->into;

				if (into->rel->relpersistence == RELPERSISTENCE_TEMP ||
					kmd_apply_range.user_command)
					ereport(ERROR,
							(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
							 errmsg("command creates and writes table %s", rangevar_text(into->rel)),
							 errdetail("A command of kmd_propose writes only rows of control tables, and no command writes a temporary table.")));
			}
			break;
		case T_CreateStmt:
			if (((CreateStmt *) parsetree)->relation->relpersistence == RELPERSISTENCE_TEMP)
				ereport(ERROR,
						(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						 errmsg("command creates temporary table %s",
								rangevar_text(((CreateStmt *) parsetree)->relation)),
						 errdetail("A temporary table would live in one node's apply worker only.")));
			break;
		case T_RefreshMatViewStmt:
			check_write(relation_of(((RefreshMatViewStmt *) parsetree)->relation),
						"REFRESH MATERIALIZED VIEW");
			break;
		case T_PrepareStmt:
		case T_DeclareCursorStmt:
		case T_ListenStmt:
		case T_LoadStmt:
			/*
			 * State of the apply worker's session, which outlives the
			 * command: a later command would find it on a node that
			 * applied both in one transaction, or whose worker did not
			 * restart meanwhile, and not on the others.
			 */
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("command runs %s", CreateCommandName(parsetree)),
					 errdetail("It would leave state in one node's apply worker past the command.")));
			break;
		case T_ConstraintsSetStmt:
			/*
			 * A committed subtransaction keeps the mode for the rest of the
			 * apply transaction, whose commands differ from node to node.
			 */
			ereport(ERROR,
					(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
					 errmsg("command sets constraint modes"),
					 errdetail("SET CONSTRAINTS would last past the command, into others that a node applies in the same transaction."),
					 errhint("Declare the constraint DEFERRABLE INITIALLY DEFERRED instead.")));
			break;
		default:
			break;
	}

	/*
	 * A command of kmd_propose changes rows; its code runs no DDL (ALTER,
	 * CREATE, DROP, GRANT, ...): the statement would run at the command's
	 * point of its own partition's log, which the nodes reach in different
	 * orders with the other partitions', where kmd_ddl's run at the same
	 * point of every partition's; and no image would carry it to a node
	 * that catches up (kommander.ddl records kmd_ddl's only).
	 */
	if (kmd_apply_range.user_command && (kmd_apply_range.rules & KMD_RULE_CONTAINED_CODE) &&
		!row_command_may_run(parsetree))
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("command runs %s", CreateCommandName(parsetree)),
				 errdetail("A command of kmd_propose changes rows of control tables; only kmd_ddl runs such statements, at the same point of every partition's log on every node."),
				 errhint("Run the statement with kmd_ddl().")));
}

/*
 * No statement a command runs leaves an object in the apply worker's
 * temporary schema: not only a TEMP table (check_utility) but anything
 * put there by name (CREATE VIEW pg_temp.v, CREATE FUNCTION pg_temp.f).
 * It would outlive the command on one node only, and the temporary schema
 * is searched first for relations and types, so an unqualified name of a
 * catalog read later in the worker, as its superuser, would find it.  A
 * schema made in the failed command's subtransaction goes with it.
 */
bool
kmd_temp_schema_in_use(void)
{
	Oid			temp;
	Oid			toast;

	GetTempNamespaceState(&temp, &toast);
	return OidIsValid(temp);
}

static void
check_no_temp_schema(void)
{
	if (kmd_temp_schema_in_use())
		ereport(ERROR,
				(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
				 errmsg("command creates a temporary object"),
				 errdetail("A temporary object would live in one node's apply worker only.")));
}

static void
process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	bool		check = checking();

	if (check)
		check_utility(pstmt->utilityStmt);
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
	if (check)
		check_no_temp_schema();
}

void
kmd_keyrange_install(void)
{
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = executor_start;
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
}
