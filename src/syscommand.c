/*-------------------------------------------------------------------------
 *
 * syscommand.c
 *	  The system commands of the log, applied by the apply worker: DDL,
 *	  registration of tables and appliers, roster changes, and the steps of
 *	  a partition's life (id allocation, split, freeze, merge).
 *
 * Each runs inside the apply worker's subtransaction with SPI connected;
 * an error rolls the command back on every node alike.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/syscommand.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "command.h"
#include "errcodes.h"
#include "guard.h"
#include "guc.h"
#include "identity.h"
#include "keyrange.h"
#include "lease.h"
#include "raft/raft.h"
#include "storage.h"
#include "syscommand.h"
#include "table_keys.h"

static void guard_partitions(void);
static void unguard_detached(void);

/* Run one statement through SPI; `expect', unless 0, is the result code wanted. */
static void
exec_sql(const char *sql, int nargs, Oid *types, Datum *values, int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);

	if (rc < 0 || (expect != 0 && rc != expect))
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
}

static void
apply_register_table(const KmdCommand *cmd, uint64 index)
{
	Oid			types[2] = {TEXTOID, INT8OID};
	Datum		values[2];
	Oid			relid;
	bool		isnull;

	if (cmd->n_args < 1)
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("table registration names no table")));
	values[0] = CStringGetTextDatum(cmd->args[0]);
	values[1] = Int64GetDatum((int64) index);
	if (SPI_execute_with_args("SELECT $1::pg_catalog.regclass::pg_catalog.oid", 1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not resolve %s", cmd->args[0]);
	relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* again here: a kmd_ddl committed since the call may have changed it */
	kmd_check_registrable(relid);
	kmd_syscommand_guard_table(relid);
	values[0] = ObjectIdGetDatum(relid);
	types[0] = OIDOID;
	exec_sql("INSERT INTO kommander.tables VALUES ($1::pg_catalog.regclass, $2) ON CONFLICT (relid) DO NOTHING",
			 2, types, values, SPI_OK_INSERT);
}

/* The oids in the first column of what `sql' returns. */
static List *
query_oids(const char *sql)
{
	List	   *oids = NIL;

	exec_sql(sql, 0, NULL, NULL, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;

		oids = lappend_oid(oids, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
																SPI_tuptable->tupdesc, 1, &isnull)));
	}
	return oids;
}

/*
 * The control tables whose keys a kmd_ddl statement of an entry with
 * KMD_RULE_APPLY_CHECKS must keep lasting (guard.c): none in an image's
 * replay, which runs the statement as it passed where it was applied.
 */
static List *
keys_kept(void)
{
	if (kmd_keys_replaying || !(kmd_apply_range.rules & KMD_RULE_APPLY_CHECKS))
		return NIL;
	return query_oids("SELECT relid::pg_catalog.oid FROM kommander.tables");
}

void
kmd_syscommand_ddl(uint64 index, const char *sql, const char *role, uint32 rules)
{
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	Oid			roleid = InvalidOid;
	KmdRoleSaved saved;
	volatile bool done = false;
	volatile int rc;
	List	   *leased = kmd_lease_tables_before();
	List	   *kept = keys_kept();
	/* tables an older version left without a lasting key: as they are */
	List	   *lacking = kmd_lost_keys_before(kept);

	if (role != NULL)
	{
		roleid = get_role_oid(role, true);

		if (!OidIsValid(roleid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("role \"%s\", which called kmd_ddl, does not exist on this node", role),
					 errdetail("kmd_ddl runs its statement as the role that called it."),
					 errhint("Create the roles that call kmd_ddl on every node, with the same privileges.")));
	}

	/*
	 * As the caller, with its privileges and no more; SET ROLE and SET
	 * SESSION AUTHORIZATION are refused in the statement, which would
	 * otherwise reach any role through the apply worker's superuser.  Its
	 * deferred triggers fire as the caller too, and what it set (SET
	 * search_path) is undone before the worker's own statements.
	 */
	kmd_role_enter(&saved, roleid);
	kmd_lease_tables_run(leased);
	PG_TRY();
	{
		rc = SPI_execute(sql, false, 0);
		if (rc >= 0)
			AfterTriggerFireDeferred();
		done = true;
	}
	PG_FINALLY();
	{
		kmd_lease_tables_ran();
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("kmd_ddl cannot run transaction control or COPY to or from the client"),
				 errdetail_internal("SPI returned %s.", SPI_result_code_string(rc))));
	guard_partitions();
	unguard_detached();
	kmd_lease_tables_follow(leased);
	kmd_refuse_lost_keys(keys_kept(), lacking);
	/* a registered table dropped: no image may name it (appliers stay) */
	exec_sql("DELETE FROM kommander.tables t WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
			 "WHERE c.oid OPERATOR(pg_catalog.=) t.relid::pg_catalog.oid)", 0, NULL, NULL, SPI_OK_DELETE);
	values[0] = Int64GetDatum((int64) index);
	values[1] = CStringGetTextDatum(sql);
	values[2] = role != NULL ? CStringGetTextDatum(role) : (Datum) 0;
	nulls[2] = role != NULL ? ' ' : 'n';
	values[3] = Int32GetDatum((int32) rules);
	if (SPI_execute_with_args("INSERT INTO kommander.ddl VALUES ($1, $2, $3, $4)",
							  4, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record kmd_ddl statement " UINT64_FORMAT, index);
}

/*
 * The guard of one table: a statement trigger, which fires for statements
 * that name this table only (not its parent's, nor its partitions').  It
 * fires ALWAYS, also in a session whose session_replication_role is
 * replica (logical replication's apply, a restore with triggers off),
 * which would otherwise write the table on this node alone; kommander's
 * own writes in that role are let through as applying.  A guard made
 * before it fired ALWAYS is switched over here.
 */
static void
guard_statements(Oid relid)
{
	char	   *qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													  get_rel_name(relid));
	Oid			t[1] = {OIDOID};
	Datum		v[1] = {ObjectIdGetDatum(relid)};
	bool		always = false;
	Relation	rel = table_open(relid, AccessShareLock);

	kmd_refuse_lookalike_triggers(rel);
	table_close(rel, AccessShareLock);
	exec_sql("SELECT tgenabled OPERATOR(pg_catalog.=) 'A' FROM pg_catalog.pg_trigger "
			 "WHERE tgrelid OPERATOR(pg_catalog.=) $1 AND tgname OPERATOR(pg_catalog.=) 'kommander_guard'",
			 1, t, v, SPI_OK_SELECT);
	if (SPI_processed == 0)
		exec_sql(psprintf("CREATE TRIGGER kommander_guard BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
						  "ON %s FOR EACH STATEMENT EXECUTE FUNCTION kommander.control_table_guard()",
						  qualname), 0, NULL, NULL, SPI_OK_UTILITY);
	else
	{
		bool		isnull;

		always = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (!always)
		exec_sql(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER kommander_guard", qualname),
				 0, NULL, NULL, SPI_OK_UTILITY);
}

/*
 * Start kommander's own DDL (guard triggers, grants): the user's event
 * triggers do not see it (but those enabled ALWAYS or REPLICA, which
 * nothing turns off), on a node that applies the registration from
 * the log as on one that takes it from an image, which registers tables
 * after all of the system partition's DDL instead of where they came in
 * the log (snapshot.c).  Returns the GUC nest level to end it with
 * AtEOXact_GUC(true, level).
 */
static int
own_ddl_begin(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("session_replication_role", "replica", PGC_SUSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

static void
guard_partitions_of(Oid relid)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
		if (lfirst_oid(lc) != relid)
			guard_statements(lfirst_oid(lc));
}

/*
 * Every partition of a partitioned control table gets the guard too: a
 * session's statement on a partition would otherwise write the control
 * table's rows on this node alone.  After a registration and after each
 * statement of kmd_ddl (which may have made or attached partitions), at
 * the same log position on every node.
 */
static void
guard_partitions(void)
{
	ListCell   *lc;
	int			nest = own_ddl_begin();

	foreach(lc, query_oids("SELECT t.relid FROM kommander.tables t JOIN pg_catalog.pg_class c "
						   "ON c.oid OPERATOR(pg_catalog.=) t.relid::pg_catalog.oid "
						   "WHERE c.relkind = 'p'"))
		guard_partitions_of(lfirst_oid(lc));
	AtEOXact_GUC(true, nest);
}

/*
 * A partition detached from a control table is a table of its own again:
 * its guard goes, after each statement of kmd_ddl, on every node alike.
 */
static void
unguard_detached(void)
{
	ListCell   *lc;

	/* not through DROP TRIGGER, which the guard refuses on a guarded table */
	foreach(lc, query_oids("SELECT tg.oid FROM pg_catalog.pg_trigger tg "
						   "WHERE tg.tgname = 'kommander_guard' "
						   "AND tg.tgfoid OPERATOR(pg_catalog.=) "
						   "    'kommander.control_table_guard()'::pg_catalog.regprocedure::pg_catalog.oid "
						   "AND NOT EXISTS (SELECT 1 FROM kommander.tables t "
						   "    WHERE t.relid::pg_catalog.oid OPERATOR(pg_catalog.=) tg.tgrelid) "
						   "AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_partition_ancestors(tg.tgrelid) a "
						   "    JOIN kommander.tables t "
						   "    ON t.relid::pg_catalog.oid OPERATOR(pg_catalog.=) a.relid::pg_catalog.oid)"))
	{
		ObjectAddress trigger;

		ObjectAddressSet(trigger, TriggerRelationId, lfirst_oid(lc));
		performDeletion(&trigger, DROP_RESTRICT, 0);
	}
	CommandCounterIncrement();
}

void
kmd_syscommand_guard_table(Oid relid)
{
	char	   *relname = get_rel_name(relid);
	char	   *qualname;
	Oid			t[1] = {OIDOID};
	Datum		v[1] = {ObjectIdGetDatum(relid)};
	int			nest;

	if (relname == NULL)
		elog(ERROR, "relation %u to guard does not exist", relid);
	qualname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), relname);
	nest = own_ddl_begin();
	guard_statements(relid);

	exec_sql("SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) $1 AND tgname OPERATOR(pg_catalog.=) 'kommander_key_range'",
			 1, t, v, SPI_OK_SELECT);
	if (SPI_processed == 0)
		exec_sql(psprintf("CREATE TRIGGER kommander_key_range AFTER INSERT OR UPDATE OR DELETE "
						  "ON %s FOR EACH ROW EXECUTE FUNCTION kommander.control_row_guard()",
						  qualname), 0, NULL, NULL, SPI_OK_UTILITY);

	/*
	 * The role peers connect as copies the table's rows out of this node
	 * when another node needs an image of a partition (snapshot.c).
	 */
	exec_sql(psprintf("GRANT USAGE ON SCHEMA %s TO kommander_peer",
					  quote_identifier(get_namespace_name(get_rel_namespace(relid)))),
			 0, NULL, NULL, SPI_OK_UTILITY);
	exec_sql(psprintf("GRANT SELECT ON %s TO kommander_peer", qualname),
			 0, NULL, NULL, SPI_OK_UTILITY);
	guard_partitions_of(relid);
	AtEOXact_GUC(true, nest);
}

static void
apply_register_applier(const KmdCommand *cmd, uint64 index)
{
	Oid			types[3] = {TEXTOID, TEXTOID, INT8OID};
	Datum		values[3];

	if (cmd->n_args < 2)
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("applier registration is incomplete")));
	values[0] = CStringGetTextDatum(cmd->args[0]);
	values[1] = CStringGetTextDatum(cmd->args[1]);
	exec_sql("SELECT 1 FROM pg_catalog.pg_proc "
			 "WHERE oid OPERATOR(pg_catalog.=) $2::pg_catalog.regprocedure::pg_catalog.oid "
			 "AND pronargs = 2 "
			 "AND proargtypes[0] OPERATOR(pg_catalog.=) 'pg_catalog.jsonb'::pg_catalog.regtype::pg_catalog.oid "
			 "AND proargtypes[1] OPERATOR(pg_catalog.=) 'kommander.apply_context'::pg_catalog.regtype::pg_catalog.oid "
			 "AND prorettype OPERATOR(pg_catalog.=) 'pg_catalog.jsonb'::pg_catalog.regtype::pg_catalog.oid "
			 "AND NOT proretset",
			 2, types, values, SPI_OK_SELECT);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("applier function must be fn(jsonb, kommander.apply_context) returning jsonb")));
	/*
	 * The name goes to another owner's function only once the function it
	 * calls is gone: checked here too, where every node sees the same
	 * catalog, since a proposer's own check may have raced another
	 * registration of the name.
	 */
	exec_sql("SELECT 1 FROM kommander.appliers a JOIN pg_catalog.pg_proc old "
			 "ON old.oid OPERATOR(pg_catalog.=) a.fn::pg_catalog.oid "
			 "JOIN pg_catalog.pg_proc new "
			 "ON new.oid OPERATOR(pg_catalog.=) $2::pg_catalog.regprocedure::pg_catalog.oid "
			 "WHERE a.name OPERATOR(pg_catalog.=) $1 "
			 "AND old.proowner OPERATOR(pg_catalog.<>) new.proowner",
			 2, types, values, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("applier \"%s\" calls a function of another owner", cmd->args[0]),
				 errhint("Register the function under another name, or drop the function the name calls first.")));
	values[2] = Int64GetDatum((int64) index);
	exec_sql("INSERT INTO kommander.appliers VALUES ($1, $2::pg_catalog.regprocedure, $3) "
			 "ON CONFLICT (name) DO UPDATE SET fn = EXCLUDED.fn, registered = EXCLUDED.registered",
			 3, types, values, SPI_OK_INSERT);
}

/*
 * Is the roster change at system index `index' already in this node's copy
 * of the roster?  A joined node starts from a copy taken at some index and
 * replays the log from the start: the changes up to that index would apply
 * history on top of its outcome (a name removed and added again would get
 * other ids here than elsewhere).
 */
static bool
roster_has(uint64 index)
{
	bool		isnull;
	Datum		d;

	exec_sql("SELECT roster_index FROM kommander.local", 0, NULL, NULL, SPI_OK_SELECT);
	if (SPI_processed != 1)
		return false;
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull && index <= (uint64) DatumGetInt64(d);
}

/* A node that cannot be `what' because it is being removed; else nothing. */
static void
refuse_if_removing(const char *name, const char *what)
{
	Oid			types[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	exec_sql("SELECT 1 FROM kommander.roster WHERE node_name = $1 AND role = 'removing'",
			 1, types, values, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("node \"%s\" is being removed and cannot be %s", name, what),
				 errhint("Finish the removal with kmd_remove_node(), then join the server again under a new name.")));
}

/*
 * A roster change asked for node `name' as node `id' (its text): refused
 * (42704) when the name is another node's now, the node meant having left
 * the roster and another joined under its name.
 */
static void
refuse_name_taken(const char *name, const char *id, const char *change, const char *hint)
{
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2] = {CStringGetTextDatum(name), CStringGetTextDatum(id)};

	exec_sql("SELECT node_id FROM kommander.roster WHERE node_name = $1 "
			 "AND node_id::pg_catalog.text <> $2",
			 2, types, values, SPI_OK_SELECT);
	if (SPI_processed > 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("node \"%s\" is node %s now, not node %s", name,
						SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), id),
				 errdetail("The node of that name the %s was asked for left the roster, and another node joined under its name.",
						   change),
				 errhint("%s", hint)));
}

/*
 * Roster changes; the new node's id goes to `result'.  Returns what
 * changed: KMD_SYS_ROSTER, with KMD_SYS_MARKED when a node was marked for
 * removal, or 0: a change this node's copy of the roster holds already, a
 * learner added again, a voter promoted again or a removal's step taken
 * again changes nothing.
 */
static int
apply_roster(const KmdCommand *cmd, uint64 index, StringInfo result)
{
	Oid			types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', 'n', 'n'};
	bool		isnull;
	/* a node added: its join token, if it gave one (kmd_join does) */
	char	   *token = NULL;

	if (cmd->n_args < (cmd->kind == KMD_CMD_NODE_ADD ? 2 : 1))
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("roster change is incomplete")));
	values[0] = CStringGetTextDatum(cmd->args[0]);
	values[1] = CStringGetTextDatum(cmd->n_args > 1 ? cmd->args[1] : "");
	values[2] = (Datum) 0;
	values[3] = (Datum) 0;
	if (cmd->kind == KMD_CMD_NODE_ADD && cmd->n_args > 2 && cmd->args[2][0] != '\0')
	{
		values[2] = CStringGetTextDatum(cmd->args[2]);
		nulls[2] = ' ';
	}
	if (cmd->kind == KMD_CMD_NODE_ADD && cmd->n_args > 3 && cmd->args[3][0] != '\0')
	{
		token = cmd->args[3];
		values[3] = CStringGetTextDatum(token);
		nulls[3] = ' ';
	}
	if (roster_has(index))
		return 0;
	switch (cmd->kind)
	{
		case KMD_CMD_NODE_ADD:
			/*
			 * Read-only reads, here and below: they see the entries applied
			 * before this one in the same transaction (a node catching up
			 * applies a removal of the name and this addition in one), as
			 * apply_partition advances the snapshot's command id.
			 */
			if (SPI_execute_with_args("SELECT node_id, conninfo = $2 AND peer_role IS NOT DISTINCT FROM $3, role, "
									  "join_token::text FROM kommander.roster WHERE node_name = $1",
									  3, types, values, nulls, true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read kommander.roster");
			if (SPI_processed > 0)
			{
				int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
				bool		same = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
				char	   *role = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
				char	   *taken_by = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4);

				if (!same)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_OBJECT),
							 errmsg("a node named \"%s\" is already in the roster", cmd->args[0])));

				/*
				 * The same learner again: a join tried again before it was
				 * promoted.  A voter's (or a node's being removed) would go
				 * to a server that took its place with an empty log, and
				 * vote as that node: never.
				 */
				if (strcmp(role, "learner") != 0)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_OBJECT),
							 errmsg("node \"%s\" is already a %s of the cluster", cmd->args[0],
									strcmp(role, "voter") == 0 ? "voter" : "member being removed"),
							 errdetail("A server joining in its place would take node %d's votes with none of its log.", id),
							 errhint("Remove the node with kmd_remove_node() and join the new server under a new name.")));

				/*
				 * A learner answers and acknowledges as soon as its server
				 * has its identity: one that joins with another token (its
				 * disk wiped, or another server at that address) would be
				 * counted as having what the first acknowledged, and
				 * promoted on it.  A learner added without a token takes
				 * the first one that asks for it.
				 */
				if (token != NULL && taken_by != NULL && strcmp(token, taken_by) != 0)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_OBJECT),
							 errmsg("learner \"%s\" was added for another server", cmd->args[0]),
							 errdetail("Node %d may have acknowledged entries that this server does not have: as that node it would be counted as holding them.", id),
							 errhint("Remove the node with kmd_remove_node(), then join again: the server gets a new id.")));
				appendStringInfo(result, "%d", id);
				if (token != NULL && taken_by == NULL)
				{
					if (SPI_execute_with_args("UPDATE kommander.roster SET join_token = $4::pg_catalog.uuid "
											  "WHERE node_name = $1", 4, types, values, nulls,
											  false, 0) != SPI_OK_UPDATE)
						elog(ERROR, "could not update kommander.roster");
					return KMD_SYS_ROSTER;
				}
				return 0;
			}
			/*
			 * A role that speaks for another node already: every node would
			 * refuse both nodes' batches (deliver.c, check_sender).
			 */
			if (nulls[2] != 'n')
			{
				if (SPI_execute_with_args("SELECT node_name FROM kommander.roster WHERE peer_role = $3",
										  3, types, values, nulls, true, 1) != SPI_OK_SELECT)
					elog(ERROR, "could not read kommander.roster");
				if (SPI_processed > 0)
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_OBJECT),
							 errmsg("role \"%s\" is already the peer role of node \"%s\"", cmd->args[2],
									SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1)),
							 errdetail("Peers take a node's batches only from its own role, and that role's for no other node."),
							 errhint("Give each node a login role of its own.")));
			}

			/*
			 * A group's configuration names at most RAFT_MAX_MEMBERS nodes,
			 * and a node keeps that many of the roster in memory: one more
			 * would be a member nothing runs with.  Nodes being removed
			 * count until they are gone.
			 */
			if (SPI_execute("SELECT count(*) FROM kommander.roster", true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read kommander.roster");
			if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
											&isnull)) >= RAFT_MAX_MEMBERS)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("the roster holds %d nodes, the most a cluster has", RAFT_MAX_MEMBERS),
						 errhint("Remove a node with kmd_remove_node() first.")));

			/*
			 * A new id, never one of a removed node: a configuration that
			 * still names that node, or a split replaying one, would count a
			 * fresh server with an empty log as the old voter.
			 */
			if (SPI_execute_with_args("INSERT INTO kommander.roster "
									  "SELECT value::int, $1, $2, 'learner', $3, $4::pg_catalog.uuid "
									  "FROM kommander.counters WHERE name = 'next_node_id' RETURNING node_id",
									  4, types, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
				elog(ERROR, "could not add node \"%s\" to the roster", cmd->args[0]);
			if (SPI_processed != 1)
				elog(ERROR, "kommander.counters has no next_node_id");
			appendStringInfo(result, "%d",
							 DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)));
			exec_sql("UPDATE kommander.counters SET value = value + 1 WHERE name = 'next_node_id'",
					 0, NULL, NULL, SPI_OK_UPDATE);
			return KMD_SYS_ROSTER;
		case KMD_CMD_NODE_PROMOTE:
			/*
			 * The node whose lag the call checked, by its id: the learner
			 * may have been removed since and a new one joined under its
			 * name, which nothing checked.
			 */
			if (cmd->n_args > 1 && (kmd_apply_range.rules & KMD_RULE_APPLY_CHECKS))
				refuse_name_taken(cmd->args[0], cmd->args[1], "promotion",
								  "To promote the node of that name now, run kmd_promote_node() again.");
			/* a learner, or a voter already; never a node being removed */
			exec_sql("UPDATE kommander.roster SET role = 'voter' "
					 "WHERE node_name = $1 AND role = 'learner'",
					 1, types, values, SPI_OK_UPDATE);
			if (SPI_processed > 0)
				return KMD_SYS_ROSTER;
			exec_sql("SELECT 1 FROM kommander.roster WHERE node_name = $1 AND role = 'voter'",
					 1, types, values, SPI_OK_SELECT);
			if (SPI_processed > 0)
				return 0;
			refuse_if_removing(cmd->args[0], "promoted");
			break;
		case KMD_CMD_NODE_REMOVE:
			/*
			 * The node the call meant, by the id its node saw: a node that
			 * lags may still name by it a node removed since, whose name a
			 * new node took (waiting for the old one's groups, the call
			 * would drop the new one from the roster while they count it).
			 */
			if (cmd->n_args > 2)
				refuse_name_taken(cmd->args[0], cmd->args[2], "removal",
								  "The node the call meant is gone; to remove the node of that name now, run kmd_remove_node() again.");
			if (cmd->n_args > 1 && strcmp(cmd->args[1], KMD_REMOVE_MARK) == 0)
			{
				/*
				 * Never the last voter: the proposer checked its own view
				 * of the roster, and two removals proposed at once through
				 * two nodes both passed it.
				 */
				exec_sql("SELECT 1 FROM kommander.roster WHERE node_name = $1 AND role = 'voter' "
						 "AND NOT EXISTS (SELECT 1 FROM kommander.roster o "
						 "    WHERE o.role = 'voter' AND o.node_name <> $1)",
						 1, types, values, SPI_OK_SELECT);
				if (SPI_processed > 0)
					ereport(ERROR,
							(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
							 errmsg("cannot remove the last voter \"%s\"", cmd->args[0]),
							 errdetail("Another removal came first in the roster's log.")));
				/* step 1: 'removing', the groups let it go; again: nothing */
				exec_sql("UPDATE kommander.roster SET role = 'removing' "
						 "WHERE node_name = $1 AND role <> 'removing'",
						 1, types, values, SPI_OK_UPDATE);
				if (SPI_processed > 0)
					return KMD_SYS_ROSTER | KMD_SYS_MARKED;
				exec_sql("SELECT 1 FROM kommander.roster WHERE node_name = $1",
						 1, types, values, SPI_OK_SELECT);
				if (SPI_processed > 0)
					return 0;
			}
			else if (cmd->n_args > 1 && strcmp(cmd->args[1], KMD_REMOVE_DROP) == 0)
			{
				/* step 2: out of the roster, only once marked; again: nothing */
				exec_sql("DELETE FROM kommander.roster WHERE node_name = $1 AND role = 'removing'",
						 1, types, values, SPI_OK_DELETE);
				if (SPI_processed == 0)
				{
					exec_sql("SELECT 1 FROM kommander.roster WHERE node_name = $1",
							 1, types, values, SPI_OK_SELECT);
					if (SPI_processed > 0)
						ereport(ERROR,
								(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
								 errmsg("node \"%s\" is not being removed", cmd->args[0]),
								 errhint("kmd_remove_node() marks it first.")));
					return 0;
				}
				return KMD_SYS_ROSTER;
			}
			else
			{
				/* an entry of an older version: the step from the roster */
				exec_sql("DELETE FROM kommander.roster WHERE node_name = $1 AND role = 'removing'",
						 1, types, values, SPI_OK_DELETE);
				if (SPI_processed > 0)
					return KMD_SYS_ROSTER;
				exec_sql("UPDATE kommander.roster SET role = 'removing' WHERE node_name = $1",
						 1, types, values, SPI_OK_UPDATE);
				if (SPI_processed > 0)
					return KMD_SYS_ROSTER | KMD_SYS_MARKED;
			}
			break;
	}
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("node \"%s\" is not in the roster", cmd->args[0])));
	return 0;
}

/* The system partition hands out partition ids; the new id goes to `result'. */
static void
apply_alloc_partition(StringInfo result)
{
	bool		isnull;

	exec_sql("UPDATE kommander.counters SET value = value + 1 "
			 "WHERE name = 'next_partition_id' RETURNING value - 1",
			 0, NULL, NULL, SPI_OK_UPDATE_RETURNING);
	if (SPI_processed != 1)
		elog(ERROR, "kommander.counters has no next_partition_id");
	appendStringInfo(result, INT64_FORMAT,
					 DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)));
}

/*
 * A split, applied at the same index of the partition's log on every node:
 * the partition keeps [lo, at), a new partition takes [at, hi), both at the
 * next generation; the new partition's group starts empty with the
 * configuration in force at this index.  No row moves.
 */
static void
apply_split(const KmdCommand *cmd, int32 partition_id, uint64 index, StringInfo result)
{
	Oid			types[5] = {INT4OID, INT8OID, INT8OID, INT4OID, INT4OID};
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	int64		new_id;
	int64		at;
	int64		lo;
	bool		hi_null;
	int64		hi = 0;
	bool		isnull;
	raft_conf	conf;
	char	   *end;

	if (cmd->n_args < 2 || partition_id == 0)
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("malformed split command")));
	new_id = strtoll(cmd->args[0], &end, 10);
	at = strtoll(cmd->args[1], &end, 10);
	if (new_id <= 0 || new_id > PG_INT32_MAX)
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("invalid new partition id in split command")));

	values[0] = Int32GetDatum(partition_id);
	exec_sql("SELECT lo, hi FROM kommander.partition_map WHERE partition_id = $1 AND state = 'active'",
			 1, types, values, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR, (errcode(ERRCODE_KMD_PARTITION_FROZEN),
						errmsg("partition %d is not active", partition_id)));
	lo = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &hi_null);

		if (!hi_null)
			hi = DatumGetInt64(d);
	}
	if (at <= lo || (!hi_null && at >= hi))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("split point " INT64_FORMAT " is not inside partition %d", at, partition_id)));

	/*
	 * A node without room for the new partition stops here (a failure of
	 * this node, tried again) rather than go on without hosting it.
	 */
	exec_sql("SELECT count(*) FROM kommander.partition_map WHERE state <> 'gone'",
			 0, NULL, NULL, SPI_OK_SELECT);
	if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) >=
		kmd_max_partitions)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("no room for partition " INT64_FORMAT " on this node", new_id),
				 errdetail("kommander.max_partitions is %d on this node.", kmd_max_partitions),
				 errhint("Raise kommander.max_partitions on this node and restart it.")));

	kmd_storage_conf_at(partition_id, index, &conf);

	values[0] = Int32GetDatum(partition_id);
	values[1] = Int64GetDatum(at);
	values[2] = Int64GetDatum((int64) cmd->generation + 1);
	exec_sql("UPDATE kommander.partition_map SET hi = $2, generation = $3 WHERE partition_id = $1",
			 3, types, values, SPI_OK_UPDATE);
	values[0] = Int32GetDatum((int32) new_id);
	values[1] = Int64GetDatum(at);
	values[2] = Int64GetDatum(hi);
	nulls[2] = hi_null ? 'n' : ' ';
	values[3] = Int64GetDatum((int64) cmd->generation + 1);
	types[3] = INT8OID;
	values[4] = Int32GetDatum(partition_id);
	types[4] = INT4OID;
	if (SPI_execute_with_args("INSERT INTO kommander.partition_map (partition_id, lo, hi, generation, state, parent) "
							  "VALUES ($1, $2, $3, $4, 'active', $5)",
							  5, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record partition " INT64_FORMAT, new_id);
	kmd_storage_create_group((int32) new_id, &conf);
	appendStringInfo(result, INT64_FORMAT, new_id);
}

/* The first step of a merge: the right partition takes no more commands. */
static void
apply_freeze(int32 partition_id, uint64 index, StringInfo result)
{
	Oid			types[2] = {INT4OID, INT8OID};
	Datum		values[2];

	values[0] = Int32GetDatum(partition_id);
	values[1] = Int64GetDatum((int64) index);
	exec_sql("UPDATE kommander.partition_map SET state = 'frozen', frozen_at = $2 "
			 "WHERE partition_id = $1 AND partition_id > 0 AND state = 'active'",
			 2, types, values, SPI_OK_UPDATE);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partition %d is not an active user partition", partition_id)));
	appendStringInfo(result, UINT64_FORMAT, index);
}

bool
kmd_merge_args(const KmdCommand *cmd, int32 *right, uint64 *frozen_at)
{
	char	   *end;
	long long	r;
	unsigned long long f;

	if (cmd->n_args < 2)
		return false;
	r = strtoll(cmd->args[0], &end, 10);
	if (*end != '\0' || r <= 0 || r > PG_INT32_MAX)
		return false;
	f = strtoull(cmd->args[1], &end, 10);
	if (*end != '\0')
		return false;
	*right = (int32) r;
	*frozen_at = f;
	return true;
}

/*
 * The last step of a merge, in the left partition's log once every node
 * has applied the right partition up to its freeze: the left partition takes
 * the right one's range at a new generation, the right one is gone.
 */
static void
apply_merge(const KmdCommand *cmd, int32 left, StringInfo result)
{
	Oid			types[4] = {INT4OID, INT4OID, INT8OID, INT8OID};
	Datum		values[4];
	int32		right;
	uint64		frozen_at;

	if (!kmd_merge_args(cmd, &right, &frozen_at))
		ereport(ERROR, (errcode(ERRCODE_KMD_MALFORMED_COMMAND),
						errmsg("malformed merge command")));
	values[0] = Int32GetDatum(left);
	values[1] = Int32GetDatum(right);
	values[2] = Int64GetDatum((int64) frozen_at);
	values[3] = Int64GetDatum((int64) cmd->generation + 1);
	exec_sql("SELECT 1 FROM kommander.partition_map l, kommander.partition_map r "
			 "WHERE l.partition_id = $1 AND r.partition_id = $2 AND l.state = 'active' "
			 "AND r.state = 'frozen' AND r.frozen_at = $3 AND l.hi = r.lo",
			 3, types, values, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("partitions %d and %d cannot be merged", left, right),
				 errdetail("The left one must be active, the right one frozen for this merge and adjacent above it.")));
	exec_sql("SELECT lo, hi FROM kommander.partition_map WHERE partition_id = $2",
			 2, types, values, SPI_OK_SELECT);
	{
		bool		lo_null;
		bool		hi_null;
		int64		lo = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &lo_null));
		int64		hi = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &hi_null));

		/* shared memory only: it lengthens leases, whatever comes of this */
		if (!lo_null)
			kmd_lease_clock_merged(lo, hi_null, hi);
	}
	exec_sql("UPDATE kommander.partition_map SET hi = (SELECT hi FROM kommander.partition_map WHERE partition_id = $2), "
			 "generation = $4 WHERE partition_id = $1",
			 4, types, values, SPI_OK_UPDATE);
	exec_sql("UPDATE kommander.partition_map SET state = 'gone', merged_into = $1 WHERE partition_id = $2",
			 2, types, values, SPI_OK_UPDATE);
	appendStringInfo(result, "%d", left);
}

/*
 * Apply a system command (any kind but KMD_CMD_ROWS) committed at `index'
 * of `partition_id'.  Its result text, if any, goes to `result'.
 */
int
kmd_syscommand_apply(const KmdCommand *cmd, int32 partition_id, uint64 index,
					 StringInfo result)
{
	switch (cmd->kind)
	{
		case KMD_CMD_ROWS:
			elog(ERROR, "a row command is not a system command");
			break;
		case KMD_CMD_DDL:
			kmd_syscommand_ddl(index, cmd->payload, cmd->n_args > 0 ? cmd->args[0] : NULL,
							   cmd->rules);
			return 0;
		case KMD_CMD_REGISTER_TABLE:
			apply_register_table(cmd, index);
			return 0;
		case KMD_CMD_REGISTER_APPLIER:
			apply_register_applier(cmd, index);
			return 0;
		case KMD_CMD_NODE_ADD:
		case KMD_CMD_NODE_PROMOTE:
		case KMD_CMD_NODE_REMOVE:
			return KMD_SYS_CATALOG | apply_roster(cmd, index, result);
		case KMD_CMD_ALLOC_PARTITION:
			apply_alloc_partition(result);
			return 0;
		case KMD_CMD_SPLIT:
			apply_split(cmd, partition_id, index, result);
			return KMD_SYS_CATALOG | KMD_SYS_MAP;
		case KMD_CMD_FREEZE:
			apply_freeze(partition_id, index, result);
			return KMD_SYS_CATALOG | KMD_SYS_MAP;
		case KMD_CMD_MERGE:
			apply_merge(cmd, partition_id, result);
			return KMD_SYS_CATALOG | KMD_SYS_MAP;
		case KMD_CMD_BARRIER:
			/* crossed by apply.c; it changes nothing */
			return 0;
	}
	ereport(ERROR,
			(errcode(ERRCODE_KMD_MALFORMED_COMMAND),
			 errmsg("unknown command kind %d", (int) cmd->kind)));
	return 0;
}
