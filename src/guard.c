/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The K0010 guard on control tables: a control table changes only by
 *	  committed log entries, so a session's own INSERT, UPDATE, DELETE or
 *	  TRUNCATE (a statement trigger) and its own DDL on the table (a
 *	  ProcessUtility hook and an object access hook) fail with K0010.
 *
 * A control table is a table carrying the trigger kommander_guard that
 * calls kommander.control_table_guard(): kmd_register_table creates it.
 * The apply worker is let through (kmd_applying): it runs kmd_ddl and the
 * registrations at the same log position on every node.  So is
 * DROP EXTENSION kommander, which drops the guard triggers and leaves the
 * tables as ordinary ones.  What only changes how this node stores or plans
 * a table (SET TABLESPACE, storage parameters, statistics, CLUSTER ON),
 * COMMENT, GRANT, VACUUM, ANALYZE, REINDEX and LOCK stay allowed, and so
 * do publications, but for a row filter or a column list on a control
 * table (which can make its updates fail on this node alone).
 *
 * The ProcessUtility hook refuses statements that name a control table;
 * the object access hook refuses, however it is reached, the drop of a
 * control table, of one of its columns, or of something attached to it
 * (trigger, policy, rule, constraint, default, index) -- DROP SCHEMA ...
 * CASCADE, DROP OWNED, DROP TYPE ... CASCADE -- and a foreign key from
 * another table that references a control table, which would let this node
 * alone refuse a replicated change.  Row-level security is refused on a
 * control table even to the apply worker (0A000).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/objectaddress.h"
#include "catalog/partition.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_policy.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_rewrite.h"
#include "catalog/pg_trigger.h"
#include "commands/trigger.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_type.h"
#include "storage/lmgr.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "apply.h"
#include "command.h"
#include "errcodes.h"
#include "guard.h"
#include "keyrange.h"
#include "lease.h"
#include "owner_rights.h"
#include "rows.h"
#include "table_keys.h"

#define GUARD_TRIGGER "kommander_guard"
#define KEY_RANGE_TRIGGER "kommander_key_range"	/* keyrange.c's */

PG_FUNCTION_INFO_V1(kmd_control_table_guard);

static ProcessUtility_hook_type prev_process_utility = NULL;
static object_access_hook_type prev_object_access = NULL;

/* true while this backend runs DROP EXTENSION kommander */
static bool dropping_extension = false;

static char *
relation_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

Datum
kmd_control_table_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("kommander.control_table_guard() must be called as a trigger")));
	if (!kmd_applying)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_DIRECT_WRITE),
				 errmsg("control table %s is written through kommander",
						relation_name(RelationGetRelid(trigdata->tg_relation))),
				 errhint("Use kmd_propose().")));
	return PointerGetDatum(NULL);
}

/* ------------------------------------------------------------------------
 * Which relations are control tables
 * ------------------------------------------------------------------------
 */

bool
kmd_is_own_function(Oid fn, const char *name)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	bool		is;

	if (!HeapTupleIsValid(tup))
		return false;
	is = strcmp(NameStr(((Form_pg_proc) GETSTRUCT(tup))->proname), name) == 0 &&
		((Form_pg_proc) GETSTRUCT(tup))->pronamespace == get_namespace_oid("kommander", true);
	ReleaseSysCache(tup);
	return is;
}

/* Is `fn' kommander.control_table_guard()? */
static bool
is_guard_function(Oid fn)
{
	return kmd_is_own_function(fn, "control_table_guard");
}

/*
 * Does table `relid' carry the guard trigger?  Read from the relation's
 * cache entry, not from pg_trigger: applying a command asks this of
 * every table it writes.  The DDL checks may ask before the statement
 * locks the table, so the entry is brought up to date first: a session
 * whose transaction read the table before another session registered it
 * must see the trigger (t/194).
 */
static bool
has_guard(Oid relid)
{
	Relation	rel;
	Oid			fn = InvalidOid;

	if (!OidIsValid(relid))
		return false;
	AcceptInvalidationMessages();
	rel = RelationIdGetRelation(relid);
	if (rel == NULL)
		return false;
	if (rel->trigdesc != NULL)
		for (int i = 0; i < rel->trigdesc->numtriggers; i++)
			if (strcmp(rel->trigdesc->triggers[i].tgname, GUARD_TRIGGER) == 0)
			{
				fn = rel->trigdesc->triggers[i].tgfoid;
				break;
			}
	/* let go of the entry before the catalog lookups, which may rebuild it */
	RelationClose(rel);
	return OidIsValid(fn) && is_guard_function(fn);
}

bool
kmd_is_control_table(Oid relid)
{
	if (OidIsValid(relid) && get_rel_relispartition(relid))
	{
		/* none yet for a partition its own command is still attaching */
		List	   *ancestors = get_partition_ancestors(relid);

		if (ancestors != NIL)
			relid = llast_oid(ancestors);
	}
	return has_guard(relid);
}

/*
 * The control table that relation `relid' is or indexes; InvalidOid when
 * it is neither.
 */
static Oid
control_table_of(Oid relid)
{
	char		relkind = get_rel_relkind(relid);

	if (relkind == RELKIND_INDEX || relkind == RELKIND_PARTITIONED_INDEX)
		relid = IndexGetRelation(relid, true);
	else if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		return InvalidOid;
	return has_guard(relid) ? relid : InvalidOid;
}

/* The control table a RangeVar names (or whose index it names), if any. */
static Oid
control_table_named(RangeVar *rv)
{
	Oid			relid;

	if (rv == NULL)
		return InvalidOid;
	relid = RangeVarGetRelid(rv, NoLock, true);
	return OidIsValid(relid) ? control_table_of(relid) : InvalidOid;
}

List *
kmd_control_tables(void)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key[1];
	HeapTuple	tup;
	List	   *found = NIL;

	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_trigger_tgname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(GUARD_TRIGGER));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		Form_pg_trigger trig = (Form_pg_trigger) GETSTRUCT(tup);

		if (is_guard_function(trig->tgfoid))
			found = lappend_oid(found, trig->tgrelid);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/*
 * A control table in schema `nspid' (InvalidOid: any) owned by `owner'
 * (InvalidOid: any), or InvalidOid.
 */
static Oid
find_control_table(Oid nspid, Oid owner)
{
	ListCell   *lc;

	foreach(lc, kmd_control_tables())
	{
		Oid			relid = lfirst_oid(lc);
		HeapTuple	class = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
		Form_pg_class form;
		bool		match;

		if (!HeapTupleIsValid(class))
			continue;
		form = (Form_pg_class) GETSTRUCT(class);
		match = (!OidIsValid(nspid) || form->relnamespace == nspid) &&
			(!OidIsValid(owner) || form->relowner == owner);
		ReleaseSysCache(class);
		if (match)
			return relid;
	}
	return InvalidOid;
}

/* ------------------------------------------------------------------------
 * Refusing
 * ------------------------------------------------------------------------
 */

static void
refuse(Oid relid, const char *detail_fmt, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_KMD_DIRECT_WRITE),
			 errmsg("control table %s is changed through kmd_ddl", relation_name(relid)),
			 errdetail(detail_fmt, what),
			 errhint("Use kmd_ddl(), which runs the statement on every node at the same log position.")));
}

static void
refuse_statement(Oid relid, Node *parsetree)
{
	refuse(relid, "%s on one node alone would leave the nodes with different tables.",
		   CreateCommandName(parsetree));
}

/*
 * Does an ALTER TABLE only change how this node stores or plans the table?
 * Those subcommands change no command's outcome, and may differ by node.
 * Not a column's storage or compression: with storage plain a row too big
 * for a page, or an index key too big for the index, fails on that node
 * alone (54000).
 */
static bool
alter_is_local(AlterTableStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->cmds)
	{
		switch (((AlterTableCmd *) lfirst(lc))->subtype)
		{
			case AT_SetStatistics:
			case AT_SetOptions:
			case AT_ResetOptions:
			case AT_ClusterOn:
			case AT_DropCluster:
			case AT_SetTableSpace:
			case AT_SetRelOptions:
			case AT_ResetRelOptions:
				break;
			default:
				return false;
		}
	}
	return true;
}

/*
 * The control table an ALTER TABLE subcommand ties to another table as its
 * parent (INHERIT) or its partition (ATTACH PARTITION); InvalidOid if none.
 */
static Oid
control_table_tied(AlterTableCmd *cmd)
{
	if (cmd->subtype == AT_AddInherit)
		return control_table_named((RangeVar *) cmd->def);
	if (cmd->subtype == AT_AttachPartition)
		return control_table_named(((PartitionCmd *) cmd->def)->name);
	return InvalidOid;
}

/* ALTER TABLE: on a control table, or making another table its child. */
static void
check_alter_table(AlterTableStmt *stmt, Node *parsetree)
{
	Oid			relid = control_table_named(stmt->relation);
	ListCell   *lc;

	if (OidIsValid(relid) && !alter_is_local(stmt))
		refuse_statement(relid, parsetree);
	foreach(lc, stmt->cmds)
	{
		relid = control_table_tied(lfirst(lc));
		if (OidIsValid(relid))
			refuse_statement(relid, parsetree);
	}
}

/*
 * A publication of this node that filters a control table's rows or lists
 * its columns: Postgres then refuses its updates and deletes where the
 * replica identity does not cover the filter or the columns, on this node
 * alone.  The control table, if any; InvalidOid otherwise.
 */
static Oid
control_table_filtered(List *pubobjects)
{
	ListCell   *lc;

	foreach(lc, pubobjects)
	{
		PublicationObjSpec *obj = lfirst(lc);
		Oid			relid;

		if (obj->pubobjtype != PUBLICATIONOBJ_TABLE || obj->pubtable == NULL ||
			(obj->pubtable->whereClause == NULL && obj->pubtable->columns == NIL))
			continue;
		relid = control_table_named(obj->pubtable->relation);
		if (OidIsValid(relid))
			return relid;
	}
	return InvalidOid;
}

static void
check_publication(List *pubobjects, Node *parsetree)
{
	Oid			relid = control_table_filtered(pubobjects);

	if (OidIsValid(relid))
		refuse(relid, "%s of a row filter or column list on one node alone can make its updates and deletes fail on that node only.",
			   CreateCommandName(parsetree));
}

static void
check_statement(Node *parsetree)
{
	Oid			relid = InvalidOid;
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			check_alter_table((AlterTableStmt *) parsetree, parsetree);
			return;
		case T_RenameStmt:
			{
				RenameStmt *stmt = (RenameStmt *) parsetree;

				if (stmt->renameType == OBJECT_SCHEMA)
				{
					Oid			nsp = get_namespace_oid(stmt->subname, true);

					if (OidIsValid(nsp) && OidIsValid(find_control_table(nsp, InvalidOid)))
						ereport(ERROR,
								(errcode(ERRCODE_KMD_DIRECT_WRITE),
								 errmsg("schema %s holds control tables, which are changed through kmd_ddl",
										quote_identifier(stmt->subname)),
								 errdetail("Renaming it on one node alone would leave the nodes with different tables."),
								 errhint("Use kmd_ddl(), which runs the statement on every node at the same log position.")));
					return;
				}
				relid = control_table_named(stmt->relation);
			}
			break;
		case T_AlterObjectSchemaStmt:
			relid = control_table_named(((AlterObjectSchemaStmt *) parsetree)->relation);
			break;
		case T_ReassignOwnedStmt:
			/* a control table's owner applies its commands on every node */
			foreach(lc, ((ReassignOwnedStmt *) parsetree)->roles)
			{
				{
					Oid			role = get_rolespec_oid(lfirst(lc), true);

					relid = OidIsValid(role) ? find_control_table(InvalidOid, role) : InvalidOid;
				}
				if (OidIsValid(relid))
					break;
			}
			break;
		case T_AlterObjectDependsStmt:
			relid = control_table_named(((AlterObjectDependsStmt *) parsetree)->relation);
			break;
		case T_CreateTrigStmt:
			relid = control_table_named(((CreateTrigStmt *) parsetree)->relation);
			break;
		case T_CreatePolicyStmt:
			relid = control_table_named(((CreatePolicyStmt *) parsetree)->table);
			break;
		case T_AlterPolicyStmt:
			relid = control_table_named(((AlterPolicyStmt *) parsetree)->table);
			break;
		case T_RuleStmt:
			relid = control_table_named(((RuleStmt *) parsetree)->relation);
			break;
		case T_IndexStmt:
			relid = control_table_named(((IndexStmt *) parsetree)->relation);
			break;
		case T_CreatePublicationStmt:
			check_publication(((CreatePublicationStmt *) parsetree)->pubobjects, parsetree);
			return;
		case T_AlterPublicationStmt:
			if (((AlterPublicationStmt *) parsetree)->action != AP_DropObjects)
				check_publication(((AlterPublicationStmt *) parsetree)->pubobjects, parsetree);
			return;
		case T_CreateStmt:
		case T_CreateForeignTableStmt:	/* a CreateStmt, and more */
			/* INHERITS or PARTITION OF a control table */
			foreach(lc, ((CreateStmt *) parsetree)->inhRelations)
			{
				relid = control_table_named(lfirst(lc));
				if (OidIsValid(relid))
					break;
			}
			break;
		default:
			return;
	}
	if (OidIsValid(relid))
		refuse_statement(relid, parsetree);
}

/* Is this DROP EXTENSION kommander? */
static bool
drops_kommander(Node *parsetree)
{
	ListCell   *lc;

	if (!IsA(parsetree, DropStmt) || ((DropStmt *) parsetree)->removeType != OBJECT_EXTENSION)
		return false;
	foreach(lc, ((DropStmt *) parsetree)->objects)
		if (strcmp(strVal(lfirst(lc)), "kommander") == 0)
			return true;
	return false;
}

/*
 * Row-level security is refused on a control table, through kmd_ddl too
 * (kmd_propose would check the proposer's privileges but not its row
 * policies).  Every node refuses it alike: all know the same control
 * tables at the same log position.
 */
static void
check_row_security(Node *parsetree)
{
	AlterTableStmt *stmt = (AlterTableStmt *) parsetree;
	Oid			relid;
	ListCell   *lc;

	if (!IsA(parsetree, AlterTableStmt))
		return;
	relid = control_table_named(stmt->relation);
	if (!OidIsValid(relid))
		return;
	foreach(lc, stmt->cmds)
	{
		AlterTableType t = ((AlterTableCmd *) lfirst(lc))->subtype;

		if (t == AT_EnableRowSecurity || t == AT_ForceRowSecurity)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("row-level security is not supported on control table %s",
							relation_name(relid)),
					 errdetail("kmd_propose checks the proposing role's privileges on a control table, not its row policies, and applies commands as the table's owner.")));
	}
}

/*
 * What keeps a control table one on every node holds through kmd_ddl too
 * (a session's own statements are refused by check_statement, K0010):
 * its guard trigger is neither dropped nor switched off (local writes
 * would pass), it becomes no other table's child nor gets children by
 * inheritance (a statement on the parent would reach its rows, or its
 * SELECTs another table's, without its guard), and it stays logged (a
 * crash would empty it on one node).  A partitioned control table takes
 * new partitions.
 */
static void
refuse_unguarding(Oid relid, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s is not supported on control table %s", what, relation_name(relid)),
			 errdetail("The control table would no longer hold the same rows on every node.")));
}

/*
 * A trigger of a control table that fires for replicas (ENABLE ALWAYS or
 * ENABLE REPLICA) would fire when an image is installed, whose rows come
 * with its effects already: it would write them twice, or where the image
 * was checked already.  Refused (0A000); kommander's own guard excepted.
 */
static void
refuse_replica_trigger(Oid relid, const char *trigger)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("trigger \"%s\" of %s cannot fire for replicas",
					trigger ? trigger : "", relation_name(relid)),
			 errdetail("A trigger enabled ALWAYS or REPLICA fires when a partition image is installed, whose rows hold its effects already."),
			 errhint("Enable it with ENABLE TRIGGER through kmd_ddl(): it fires when commands are applied, on every node.")));
}

void
kmd_refuse_replica_triggers(Relation rel)
{
	for (int i = 0; rel->trigdesc != NULL && i < rel->trigdesc->numtriggers; i++)
	{
		Trigger    *t = &rel->trigdesc->triggers[i];

		if ((t->tgenabled == TRIGGER_FIRES_ALWAYS || t->tgenabled == TRIGGER_FIRES_ON_REPLICA) &&
			!kmd_is_own_function(t->tgfoid, "control_table_guard"))
			refuse_replica_trigger(RelationGetRelid(rel), t->tgname);
	}
}

/*
 * A control table, and each partition of one, keeps a primary key and a
 * replica identity that lasts: the key (DEFAULT) or FULL.  Any session of
 * a node may publish the table, and Postgres refuses the updates and
 * deletes of a published table that has none (NOTHING, DEFAULT without a
 * key, or USING INDEX once that index is dropped): they would fail on
 * that node alone.  What relation `relid' lacks, or NULL (also when it
 * is gone).
 *
 * Read from the catalogs, with no lock on the table: a session that holds
 * one (VACUUM FULL, SET TABLESPACE) holds back no kmd_ddl, and nothing a
 * session may do to a control table changes its key or replica identity.
 */
static const char *
lost_keys(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	const char *lost = NULL;
	Form_pg_class form;

	if (!HeapTupleIsValid(tuple))
		return NULL;
	form = (Form_pg_class) GETSTRUCT(tuple);
	if (form->relkind != RELKIND_PARTITIONED_TABLE &&
		!OidIsValid(kmd_primary_key_index(relid)))
		lost = "a primary key";
	else if (form->relreplident == REPLICA_IDENTITY_NOTHING)
		lost = "REPLICA IDENTITY NOTHING";
	else if (form->relreplident == REPLICA_IDENTITY_INDEX)
		lost = "REPLICA IDENTITY USING INDEX";
	ReleaseSysCache(tuple);
	return lost;
}

static void
refuse_lost_keys(Oid relid, Oid rel, const char *lost)
{
	const char *part = rel == relid ? NULL : relation_name(rel);

	if (lost[0] == 'a')
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("kmd_ddl cannot leave control table %s without a primary key",
						relation_name(relid)),
				 part ? errdetail("Its partition %s has none.", part) : 0,
				 errhint("A control table's first primary-key column routes its rows: drop a key and add the new one in one kmd_ddl call.")));
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("control table %s cannot have %s%s%s", relation_name(relid), lost,
					part ? " on its partition " : "", part ? part : ""),
			 errdetail("A publication made on one node alone would make the table's updates and deletes fail on that node only%s.",
					   strcmp(lost, "REPLICA IDENTITY USING INDEX") == 0 ? ", once the index is dropped" : ""),
			 errhint("Keep REPLICA IDENTITY DEFAULT, or use FULL.")));
}

/*
 * The relations of control table `relid' (itself and its partitions) that
 * lack a lasting key (lost_keys), appended to `lacking'; the first one
 * not in `known' is refused when `refuse'.
 */
static List *
lost_keys_tree(Oid relid, List *known, bool refuse, List *lacking)
{
	ListCell   *lc;

	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return lacking;
	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		Oid			rel = lfirst_oid(lc);
		const char *lost = lost_keys(rel);

		if (lost != NULL && refuse && !list_member_oid(known, rel))
			refuse_lost_keys(relid, rel, lost);
		if (lost != NULL)
			lacking = lappend_oid(lacking, rel);
	}
	return lacking;
}

List *
kmd_lost_keys_before(List *relids)
{
	List	   *lacking = NIL;
	ListCell   *lc;

	foreach(lc, relids)
		lacking = lost_keys_tree(lfirst_oid(lc), NIL, false, lacking);
	return lacking;
}

void
kmd_refuse_lost_keys(List *relids, List *before)
{
	ListCell   *lc;

	foreach(lc, relids)
		(void) lost_keys_tree(lfirst_oid(lc), before, true, NIL);
}

/* Does ALTER or DROP of `trigger' (NULL: every one) touch one of kommander's? */
static bool
names_guard(const char *trigger)
{
	return trigger == NULL || strcmp(trigger, GUARD_TRIGGER) == 0 ||
		strcmp(trigger, KEY_RANGE_TRIGGER) == 0;
}

static void
check_guard_kept(Node *parsetree)
{
	ListCell   *lc;
	Oid			relid;

	if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;

		relid = control_table_named(stmt->relation);
		foreach(lc, stmt->cmds)
		{
			AlterTableCmd *cmd = lfirst(lc);

			if (!OidIsValid(relid))
			{
				/* another table: not as a control table's parent or child */
				Oid			tied = control_table_tied(cmd);

				if (OidIsValid(tied))
					refuse_unguarding(tied, cmd->subtype == AT_AddInherit ? "INHERIT" :
									  "ATTACH PARTITION");
				continue;
			}
			switch (cmd->subtype)
			{
				case AT_DisableTrig:
					if (names_guard(cmd->name))
						refuse_unguarding(relid, "switching its guard trigger off");
					break;
				case AT_EnableReplicaTrig:
					if (names_guard(cmd->name))
						refuse_unguarding(relid, "switching its guard trigger off");
					/* an image replays its log as it passed, unchecked */
					if (!kmd_keys_replaying)
						refuse_replica_trigger(relid, cmd->name);
					break;
				case AT_EnableAlwaysTrig:
					if (!kmd_keys_replaying &&
						(cmd->name == NULL || strcmp(cmd->name, GUARD_TRIGGER) != 0))
						refuse_replica_trigger(relid, cmd->name);
					break;
				case AT_DisableTrigAll:
				case AT_DisableTrigUser:
					refuse_unguarding(relid, "switching its triggers off");
					break;
				case AT_EnableTrig:
					/* the guard fires ALWAYS: for origin only, replicas would pass */
					if (cmd->name != NULL && strcmp(cmd->name, GUARD_TRIGGER) == 0)
						refuse_unguarding(relid, "switching its guard trigger off for replicas");
					break;
				case AT_EnableTrigAll:
				case AT_EnableTrigUser:
					refuse_unguarding(relid, "switching its guard trigger off for replicas");
					break;
				case AT_AddInherit:
					refuse_unguarding(relid, "INHERIT");
					break;
				case AT_AlterColumnType:
					/* rows of leases are found again by their old key */
					if (((ColumnDef *) cmd->def)->raw_default != NULL)
						kmd_lease_tables_check_retype(relid, cmd->name);
					break;
				case AT_AttachPartition:
					/* a partition's own keys become the control table's */
					if (!kmd_keys_replaying)
					{
						Oid			partition = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name,
																 NoLock, true);

						if (OidIsValid(partition))
						{
							Relation	prel = table_open(partition, AccessShareLock);

							kmd_refuse_replica_triggers(prel);
							table_close(prel, AccessShareLock);
							kmd_keys_check_table(partition);
							kmd_generated_check_table(partition);
						}
					}
					break;
				case AT_SetUnLogged:
					refuse_unguarding(relid, "SET UNLOGGED");
					break;
				case AT_AddOf:
					/* its type's ALTER TYPE on one node would alter it there */
					refuse_unguarding(relid, "OF a type");
					break;
				default:
					break;
			}
		}
	}
	else if (IsA(parsetree, DropStmt) &&
			 ((DropStmt *) parsetree)->removeType == OBJECT_TRIGGER)
	{
		foreach(lc, ((DropStmt *) parsetree)->objects)
		{
			List	   *names = lfirst(lc);

			if (list_length(names) < 2 || !names_guard(strVal(llast(names))))
				continue;
			relid = control_table_named(makeRangeVarFromNameList(list_truncate(list_copy(names),
																			   list_length(names) - 1)));
			if (OidIsValid(relid))
				refuse_unguarding(relid, "dropping its guard trigger");
		}
	}
	else if (IsA(parsetree, RenameStmt) &&
			 ((RenameStmt *) parsetree)->renameType == OBJECT_TRIGGER &&
			 ((RenameStmt *) parsetree)->subname != NULL &&
			 names_guard(((RenameStmt *) parsetree)->subname))
	{
		/* renamed, it is no longer found: the table no longer a control table */
		relid = control_table_named(((RenameStmt *) parsetree)->relation);
		if (OidIsValid(relid))
			refuse_unguarding(relid, "renaming its guard trigger");
	}
	else if ((IsA(parsetree, CreateStmt) || IsA(parsetree, CreateForeignTableStmt)) &&
			 ((CreateStmt *) parsetree)->partbound == NULL)
	{
		/* a partition of a partitioned control table is one itself */
		foreach(lc, ((CreateStmt *) parsetree)->inhRelations)
		{
			relid = control_table_named(lfirst(lc));
			if (OidIsValid(relid))
				refuse_unguarding(relid, "a child table (INHERITS)");
		}
	}
}

/*
 * ALTER TYPE ... RENAME VALUE of an enum in a statement of kmd_ddl: the
 * values of the type are written otherwise, without a table that has them
 * touched.  Leased rows keyed by them are refused the change
 * (kmd_lease_tables_check_type); the columns of a row type are
 * object_access's.
 */
static void
check_enum_renamed(Node *parsetree)
{
	Oid			typid;

	if (!IsA(parsetree, AlterEnumStmt) || ((AlterEnumStmt *) parsetree)->oldVal == NULL)
		return;
	typid = LookupTypeNameOid(NULL,
							  makeTypeNameFromNameList(((AlterEnumStmt *) parsetree)->typeName),
							  true);
	if (OidIsValid(typid))
		kmd_lease_tables_check_type(typid);
}

static void
process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				ProcessUtilityContext context, ParamListInfo params,
				QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *parsetree = pstmt->utilityStmt;
	bool		save_dropping = dropping_extension;
	/* what a session's statement may take from the owners, before it */
	List	   *const rights = !kmd_applying && !dropping_extension ?
		kmd_rights_before(parsetree) : NIL;

	if (!dropping_extension)
		check_row_security(parsetree);
	if (!kmd_applying && !dropping_extension)
		check_statement(parsetree);
	if (kmd_applying && !dropping_extension)
	{
		check_guard_kept(parsetree);
		check_enum_renamed(parsetree);
	}
	if (drops_kommander(parsetree))
		dropping_extension = true;
	PG_TRY();
	{
		if (prev_process_utility)
			prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
								 queryEnv, dest, qc);
		else
			standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
									queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		dropping_extension = save_dropping;
	}
	PG_END_TRY();
	if (rights != NIL)
		kmd_rights_after(rights);
}

/*
 * The relation an object of a table belongs to (a trigger, policy, rule,
 * constraint or default), read at `snapshot' (NULL: the catalog snapshot;
 * SnapshotSelf sees an object created by the current command); for a
 * constraint also the table its foreign key references, in *referenced.
 */
static Oid
owning_relation(Oid classId, Oid objectId, Snapshot snapshot, Oid *referenced)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key[1];
	HeapTuple	tup;
	Oid			indexId;
	Oid			relid = InvalidOid;

	*referenced = InvalidOid;
	switch (classId)
	{
		case TriggerRelationId:
			indexId = TriggerOidIndexId;
			break;
		case PolicyRelationId:
			indexId = PolicyOidIndexId;
			break;
		case RewriteRelationId:
			indexId = RewriteOidIndexId;
			break;
		case AttrDefaultRelationId:
			indexId = AttrDefaultOidIndexId;
			break;
		case ConstraintRelationId:
			indexId = ConstraintOidIndexId;
			break;
		default:
			return InvalidOid;
	}
	rel = table_open(classId, AccessShareLock);
	/* the oid column is the first of each of these catalogs */
	ScanKeyInit(&key[0], 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(objectId));
	scan = systable_beginscan(rel, indexId, true, snapshot, 1, key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		switch (classId)
		{
			case TriggerRelationId:
				relid = ((Form_pg_trigger) GETSTRUCT(tup))->tgrelid;
				break;
			case PolicyRelationId:
				relid = ((Form_pg_policy) GETSTRUCT(tup))->polrelid;
				break;
			case RewriteRelationId:
				relid = ((Form_pg_rewrite) GETSTRUCT(tup))->ev_class;
				break;
			case AttrDefaultRelationId:
				relid = ((Form_pg_attrdef) GETSTRUCT(tup))->adrelid;
				break;
			case ConstraintRelationId:
				relid = ((Form_pg_constraint) GETSTRUCT(tup))->conrelid;
				*referenced = ((Form_pg_constraint) GETSTRUCT(tup))->confrelid;
				break;
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return relid;
}

/* A drop that reaches a control table, or something of it. */
static void
check_drop(Oid classId, Oid objectId, int subId)
{
	ObjectAddress object;
	Oid			relid;
	Oid			referenced;

	if (classId == ProcedureRelationId && subId == 0 && kmd_rights_is_applier(objectId))
	{
		ObjectAddressSet(object, classId, objectId);
		ereport(ERROR,
				(errcode(ERRCODE_KMD_DIRECT_WRITE),
				 errmsg("%s is a registered applier's function, dropped through kmd_ddl",
						getObjectDescription(&object, false)),
				 errdetail("Dropped on one node alone, that node would fail the calls every other node applies."),
				 errhint("Use kmd_ddl(), which runs the statement on every node at the same log position.")));
	}
	if (classId == RelationRelationId)
		relid = control_table_of(objectId);
	else
	{
		relid = owning_relation(classId, objectId, NULL, &referenced);
		relid = OidIsValid(relid) ? control_table_of(relid) : InvalidOid;
		if (!OidIsValid(relid) && OidIsValid(referenced))
			relid = control_table_of(referenced);
	}
	if (!OidIsValid(relid))
		return;
	ObjectAddressSubSet(object, classId, objectId, subId);
	refuse(relid, "Dropping %s on one node alone would leave the nodes with different tables.",
		   getObjectDescription(&object, false));
}

/*
 * Something new on a control table that no statement named: a column (a
 * typed table's, through ALTER TYPE), a trigger, or a constraint -- above
 * all a foreign key of another table that references it.
 */
static void
check_create(Oid classId, Oid objectId, int subId)
{
	Oid			relid = InvalidOid;
	Oid			referenced = InvalidOid;

	if (classId == RelationRelationId && subId != 0)
		relid = control_table_of(objectId);
	else if (classId == TriggerRelationId || classId == ConstraintRelationId)
	{
		Oid			owner = owning_relation(classId, objectId, SnapshotSelf, &referenced);

		relid = OidIsValid(owner) ? control_table_of(owner) : InvalidOid;
		if (OidIsValid(referenced) && OidIsValid(control_table_of(referenced)))
		{
			ereport(ERROR,
					(errcode(ERRCODE_KMD_DIRECT_WRITE),
					 errmsg("control table %s is changed through kmd_ddl", relation_name(referenced)),
					 errdetail("A foreign key referencing it from %s would let this node alone refuse its changes.",
							   OidIsValid(owner) ? relation_name(owner) : "another table"),
					 errhint("Use kmd_ddl(), which runs the statement on every node at the same log position.")));
		}
	}
	if (OidIsValid(relid))
	{
		ObjectAddress object;

		ObjectAddressSubSet(object, classId, objectId, subId);
		refuse(relid, "Adding %s on one node alone would leave the nodes with different tables.",
			   getObjectDescription(&object, false));
	}
}

/*
 * A trigger of the name kmd_register_table gives its guard or its key
 * range check, but not theirs (another function, another timing): the
 * registration (or the guarding of a partition attached to a control
 * table) would take it for its own and create none, and the table would
 * be a control table with no guard, or no check of its rows' keys.
 */
void
kmd_refuse_lookalike_triggers(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;

	for (int i = 0; td != NULL && i < td->numtriggers; i++)
	{
		Trigger    *t = &td->triggers[i];
		bool		lookalike = false;

		if (strcmp(t->tgname, "kommander_guard") == 0)
			lookalike = TRIGGER_FOR_ROW(t->tgtype) ||
				!kmd_is_own_function(t->tgfoid, "control_table_guard");
		else if (strcmp(t->tgname, KEY_RANGE_TRIGGER) == 0)
			lookalike = !TRIGGER_FOR_ROW(t->tgtype) || !TRIGGER_FOR_AFTER(t->tgtype) ||
				!kmd_is_own_function(t->tgfoid, "control_row_guard");
		if (lookalike)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("table \"%s\" has a trigger named %s that is not kommander's",
							RelationGetRelationName(rel), t->tgname),
					 errdetail("kmd_register_table names its own triggers so, and would take this one for its own."),
					 errhint("Drop or rename the trigger through kmd_ddl(), then register the table (a partition: detach it, through kmd_ddl(), first).")));
	}
}

/*
 * Refuse table `relid' as a control table: made where kmd_register_table
 * is called, and again where the registration is applied, on the catalog
 * every node has at that point of the system partition's log (a kmd_ddl
 * committed through another node between the call and the registration,
 * SET UNLOGGED say, is there only).
 */
void
kmd_check_registrable(Oid relid)
{
	Relation	rel = table_open(relid, AccessShareLock);

	if (rel->rd_rel->relkind != RELKIND_RELATION &&
		rel->rd_rel->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", RelationGetRelationName(rel))));
	if (!OidIsValid(RelationGetPrimaryKeyIndex(rel)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TABLE_DEFINITION),
				 errmsg("table \"%s\" has no primary key", RelationGetRelationName(rel)),
				 errhint("A control table needs a primary key: its first column routes rows to partitions.")));
	if (rel->rd_rel->relpersistence != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is not logged", RelationGetRelationName(rel)),
				 errdetail("A crash would empty it on one node while the others keep its rows."),
				 errhint("Make it logged through kmd_ddl(), then register it.")));
	if (rel->rd_rel->relispartition || has_superclass(relid) ||
		(rel->rd_rel->relkind == RELKIND_RELATION && rel->rd_rel->relhassubclass))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" has a parent or children by inheritance", RelationGetRelationName(rel)),
				 errdetail("A statement on a parent reaches its children's rows without their guard."),
				 errhint("Register a table that inherits from nothing, or a partitioned table as a whole.")));
	if (OidIsValid(rel->rd_rel->reloftype))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" is of type %s", RelationGetRelationName(rel),
						format_type_be(rel->rd_rel->reloftype)),
				 errdetail("ALTER TYPE of its type on one node alone would change its columns there."),
				 errhint("Make it a table of its own through kmd_ddl() (ALTER TABLE ... NOT OF), then register it.")));
	if (rel->rd_rel->relrowsecurity || rel->rd_rel->relforcerowsecurity)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" has row-level security enabled", RelationGetRelationName(rel)),
				 errdetail("kmd_propose checks the proposing role's privileges on a control table, not its row policies, and applies commands as the table's owner."),
				 errhint("Disable row-level security on the table (and NO FORCE it) through kmd_ddl(), then register it.")));
	kmd_refuse_replica_triggers(rel);
	kmd_refuse_lookalike_triggers(rel);
	/* where it is applied, only for entries that ask (older ones as before) */
	if (!kmd_applying || (kmd_apply_range.rules & KMD_RULE_APPLY_CHECKS))
		(void) lost_keys_tree(relid, NIL, true, NIL);
	/* registered again (a guard made before switched over): as it is */
	if (!kmd_is_control_table(relid))
	{
		kmd_keys_check_table(relid);
		kmd_generated_check_table(relid);
	}
	table_close(rel, AccessShareLock);
}

/*
 * The change feed takes a logical message prefixed "kommander" in an apply
 * transaction for the apply worker's own mark of an entry (decode.c): one
 * that user code run there wrote (an applier, a trigger, a kmd_ddl
 * statement) would pass for a mark, or an event, and could tell consumers
 * to drop a partition's rows.  Such code may not write logical messages at
 * all; the hook sees which function runs, not its arguments.
 */
static void
refuse_feed_message(Oid funcid)
{
	if (funcid != F_PG_LOGICAL_EMIT_MESSAGE_BOOL_TEXT_TEXT &&
		funcid != F_PG_LOGICAL_EMIT_MESSAGE_BOOL_TEXT_BYTEA)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("code applied by kommander cannot write logical decoding messages"),
			 errdetail("The change feed reads the messages of an apply transaction as the apply worker's marks of its entries."),
			 errhint("Write the message from a session of a client.")));
}

/*
 * An advisory lock is one node's: another session of that node may hold
 * it (a try answers otherwise there, a wait runs out there alone), and a
 * session-level one outlives the statement in the apply worker, held on
 * the nodes whose worker did not restart since.  Code a command of
 * kmd_propose runs takes none; kmd_ddl's statements, which every node
 * runs at the same point of every partition's log, may wait for
 * transaction-level ones (released at the apply transaction's end), and
 * neither try one nor take one for the session.
 */
static void
refuse_advisory_lock(Oid funcid, bool row_command)
{
	bool		session;
	bool		try = false;

	switch (funcid)
	{
		case F_PG_ADVISORY_LOCK_INT8:
		case F_PG_ADVISORY_LOCK_INT4_INT4:
		case F_PG_ADVISORY_LOCK_SHARED_INT8:
		case F_PG_ADVISORY_LOCK_SHARED_INT4_INT4:
		case F_PG_TRY_ADVISORY_LOCK_INT8:
		case F_PG_TRY_ADVISORY_LOCK_INT4_INT4:
		case F_PG_TRY_ADVISORY_LOCK_SHARED_INT8:
		case F_PG_TRY_ADVISORY_LOCK_SHARED_INT4_INT4:
		case F_PG_ADVISORY_UNLOCK_INT8:
		case F_PG_ADVISORY_UNLOCK_INT4_INT4:
		case F_PG_ADVISORY_UNLOCK_SHARED_INT8:
		case F_PG_ADVISORY_UNLOCK_SHARED_INT4_INT4:
		case F_PG_ADVISORY_UNLOCK_ALL:
			session = true;
			break;
		case F_PG_TRY_ADVISORY_XACT_LOCK_INT8:
		case F_PG_TRY_ADVISORY_XACT_LOCK_INT4_INT4:
		case F_PG_TRY_ADVISORY_XACT_LOCK_SHARED_INT8:
		case F_PG_TRY_ADVISORY_XACT_LOCK_SHARED_INT4_INT4:
			try = true;
			/* FALLTHROUGH */
		case F_PG_ADVISORY_XACT_LOCK_INT8:
		case F_PG_ADVISORY_XACT_LOCK_INT4_INT4:
		case F_PG_ADVISORY_XACT_LOCK_SHARED_INT8:
		case F_PG_ADVISORY_XACT_LOCK_SHARED_INT4_INT4:
			session = false;
			break;
		default:
			return;
	}
	if (session || try || row_command)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("code applied by kommander cannot use %s advisory locks",
						session ? "session-level" : "transaction-level"),
				 errdetail("An advisory lock is one node's: another session there may hold it%s.",
						   session ? ", and one taken for the session would stay with one node's apply worker" : ""),
				 errhint("Keep the state in a row of a control table (a compare-and-set), or take the lock in a client's session.")));
}

/*
 * A value that no two nodes share: each would store its own.  Code that a
 * command of kmd_propose runs (an applier, a trigger, a check, a default
 * an applier's insert leaves out) calls none of these.  Not kmd_ddl's
 * statements: a column added with such a default gives the rows already
 * there each node's own value, as documented.  now() and its kin are left
 * to the docs, the proposer deciding such defaults of the rows its
 * commands insert.
 */
static void
refuse_node_value(Oid funcid)
{
	switch (funcid)
	{
		case F_RANDOM:
		case F_SETSEED:
		case F_GEN_RANDOM_UUID:
		case F_CLOCK_TIMESTAMP:
		case F_TIMEOFDAY:
		case F_TXID_CURRENT:
		case F_TXID_CURRENT_IF_ASSIGNED:
		case F_PG_CURRENT_XACT_ID:
		case F_PG_CURRENT_XACT_ID_IF_ASSIGNED:
		case F_PG_BACKEND_PID:
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("code applied by kommander cannot call %s()", get_func_name(funcid)),
					 errdetail("Its value is one node's: each node would store its own."),
					 errhint("Use the context's \"at\" for the time, and values the proposer puts in the command for anything random.")));
			break;
		default:
			break;
	}
}

static void
object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
	if (dropping_extension || !IsTransactionState())
		return;
	if (kmd_applying)
	{
		if (access == OAT_FUNCTION_EXECUTE)
		{
			refuse_feed_message(objectId);
			/* entries from before these refusals apply as they did */
			if (kmd_apply_range.rules & KMD_RULE_CONTAINED_CODE)
			{
				refuse_advisory_lock(objectId, kmd_apply_range.user_command);
				if (kmd_apply_range.user_command)
					refuse_node_value(objectId);
			}
			return;
		}
		/* kmd_ddl's keys, on every node alike */
		if (kmd_keys_replaying)
			return;

		/*
		 * A column of a relation added, dropped, renamed or altered,
		 * however the statement got there (ALTER TYPE or ALTER TABLE on it
		 * or on a parent, a DROP ... CASCADE of a type it has): the values
		 * of its row type are written otherwise, and leased rows keyed by
		 * them are refused the change (kmd_lease_tables_check_type).
		 */
		if (classId == RelationRelationId && subId > 0 &&
			(access == OAT_POST_CREATE || access == OAT_DROP || access == OAT_POST_ALTER) &&
			OidIsValid(get_rel_type_id(objectId)))
			kmd_lease_tables_check_type(get_rel_type_id(objectId));
		if (access == OAT_POST_CREATE && classId == ConstraintRelationId)
			kmd_constraint_check(objectId);
		else if (access == OAT_POST_CREATE && classId == RelationRelationId && subId == 0)
			kmd_index_check(objectId);
		/* a column's default or generation expression: objectId its table */
		else if (access == OAT_POST_CREATE && classId == AttrDefaultRelationId &&
				 kmd_is_control_table(objectId))
			kmd_generated_check(objectId, subId);
		return;
	}
	if (access == OAT_DROP)
		check_drop(classId, objectId, subId);
	else if (access == OAT_POST_CREATE)
		check_create(classId, objectId, subId);
}

void
kmd_guard_install(void)
{
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = process_utility;
	prev_object_access = object_access_hook;
	object_access_hook = object_access;
}
