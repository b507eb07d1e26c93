/*-------------------------------------------------------------------------
 *
 * owner_rights.c
 *	  The privileges the apply worker uses, kept by a session's GRANT and
 *	  REVOKE.
 *
 * The apply worker writes a control table's rows as the table's owner and
 * calls an applier as the function's owner, and Postgres checks their
 * privileges: the owner's SELECT, INSERT, UPDATE and DELETE on the table
 * and USAGE on its schema, the applier's owner's EXECUTE on it.
 * Privileges are each node's own (kmd_propose checks the caller's on the
 * node it runs on), but one of these taken on one node alone -- a REVOKE
 * from the owner, from PUBLIC on the schema it relied on, from a role it
 * inherited them from -- makes that node fail commands every other node
 * applies (42501): its rows would differ.  So what the owners hold is read
 * before and after each of a session's statements that may take a
 * privilege, and the transaction's commit fails if its statements took
 * one they did not give back (a REVOKE and the GRANT that gives it back
 * may come in one transaction, as pg_dump writes them); what other
 * transactions changed meanwhile (a kmd_ddl the transaction waited for,
 * say) is not counted.  kmd_ddl runs such statements on every node at one
 * log position.  Roles are the server's, but only this database's control
 * tables and appliers are seen: a role changed from another database is
 * not checked.  A session's drop of a registered applier's function is
 * refused as well (guard.c).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/owner_rights.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_class.h"
#include "catalog/pg_proc.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "errcodes.h"
#include "guard.h"
#include "owner_rights.h"

#define TABLE_RIGHTS (ACL_SELECT | ACL_INSERT | ACL_UPDATE | ACL_DELETE)

/*
 * What the owner of a control table (RelationRelationId: its rights on the
 * table, and ACL_USAGE for its schema) or of an applier's function
 * (ProcedureRelationId: ACL_EXECUTE) holds; the owner as it is when read.
 */
typedef struct Held
{
	Oid			classid;
	Oid			objid;
	AclMode		rights;
} Held;

/*
 * What the transaction's statements took from each owner and did not give
 * back (Held.rights: those privileges), in TopTransactionContext.
 */
static List *taken = NIL;
static bool callback_registered = false;

bool
kmd_rights_may_change(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_GrantStmt:
		case T_GrantRoleStmt:
		case T_AlterRoleStmt:
		case T_DropOwnedStmt:
		case T_ReassignOwnedStmt:
		case T_AlterOwnerStmt:
			return true;
		default:
			return false;
	}
}

/* What the owner of `classid'/`objid' holds; false if it is gone. */
static bool
rights_of(Oid classid, Oid objid, AclMode *rights, Oid *owner_out)
{
	HeapTuple	tup;
	Oid			owner;
	Oid			nsp;

	if (classid == ProcedureRelationId)
	{
		tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(objid));
		if (!HeapTupleIsValid(tup))
			return false;
		owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
		ReleaseSysCache(tup);
		*rights = pg_proc_aclmask(objid, owner, ACL_EXECUTE, ACLMASK_ALL);
		*owner_out = owner;
		return true;
	}
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(objid));
	if (!HeapTupleIsValid(tup))
		return false;
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	nsp = ((Form_pg_class) GETSTRUCT(tup))->relnamespace;
	ReleaseSysCache(tup);
	*rights = pg_class_aclmask(objid, owner, TABLE_RIGHTS, ACLMASK_ALL);
	if (pg_namespace_aclcheck(nsp, owner, ACL_USAGE) == ACLCHECK_OK)
		*rights |= ACL_USAGE;
	*owner_out = owner;
	return true;
}

static List *
add_held(List *held, Oid classid, Oid objid)
{
	AclMode		rights;
	Oid			owner;
	Held	   *h;

	if (!rights_of(classid, objid, &rights, &owner))
		return held;
	h = palloc(sizeof(Held));
	h->classid = classid;
	h->objid = objid;
	h->rights = rights;
	return lappend(held, h);
}

/*
 * The functions of the registered appliers (kommander.appliers), or NIL
 * when kommander is not created in this database.
 */
static List *
applier_functions(void)
{
	Oid			nsp;
	Oid			relid;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snapshot;
	AttrNumber	attnum;
	List	   *fns = NIL;

	if (!OidIsValid(get_extension_oid("kommander", true)) ||
		!OidIsValid(nsp = get_namespace_oid("kommander", true)) ||
		!OidIsValid(relid = get_relname_relid("appliers", nsp)) ||
		(attnum = get_attnum(relid, "fn")) == InvalidAttrNumber)
		return NIL;
	rel = table_open(relid, AccessShareLock);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(rel, InvalidOid, false, snapshot, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Datum		fn = heap_getattr(tup, attnum, RelationGetDescr(rel), &isnull);

		if (!isnull && OidIsValid(DatumGetObjectId(fn)))
			fns = lappend_oid(fns, DatumGetObjectId(fn));
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return fns;
}

bool
kmd_rights_is_applier(Oid fn)
{
	return list_member_oid(applier_functions(), fn);
}

/*
 * What the owners of the control tables (not their partitions: commands
 * write those through the table) and of the appliers' functions hold.
 */
static List *
rights_held(void)
{
	List	   *held = NIL;
	ListCell   *lc;

	if (!OidIsValid(get_extension_oid("kommander", true)))
		return NIL;
	foreach(lc, kmd_control_tables())
		if (!get_rel_relispartition(lfirst_oid(lc)))
			held = add_held(held, RelationRelationId, lfirst_oid(lc));
	foreach(lc, applier_functions())
		held = add_held(held, ProcedureRelationId, lfirst_oid(lc));
	return held;
}

/* "INSERT, UPDATE" on the object of `h', "USAGE on schema s" */
static char *
lost_text(const Held *h, AclMode lost)
{
	static const struct
	{
		AclMode		bit;
		const char *name;
	}			names[] = {
		{ACL_SELECT, "SELECT"}, {ACL_INSERT, "INSERT"}, {ACL_UPDATE, "UPDATE"},
		{ACL_DELETE, "DELETE"}, {ACL_EXECUTE, "EXECUTE"},
	};
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(names); i++)
		if (lost & names[i].bit)
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", names[i].name);
	if (lost & ACL_USAGE)
		appendStringInfo(&buf, "%sUSAGE on schema %s", buf.len ? " on it, " : "",
						 quote_identifier(get_namespace_name(get_rel_namespace(h->objid))));
	return buf.data;
}

static Held *
taken_of(Oid classid, Oid objid)
{
	ListCell   *lc;
	Held	   *h;
	MemoryContext old;

	foreach(lc, taken)
	{
		h = lfirst(lc);
		if (h->classid == classid && h->objid == objid)
			return h;
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	h = palloc0(sizeof(Held));
	h->classid = classid;
	h->objid = objid;
	taken = lappend(taken, h);
	MemoryContextSwitchTo(old);
	return h;
}

/* At commit: refuse what the transaction's statements took. */
static void
check_taken(void)
{
	ListCell   *lc;

	foreach(lc, taken)
	{
		Held	   *h = lfirst(lc);
		AclMode		now;
		Oid			owner;
		AclMode		lost;
		ObjectAddress addr;

		/* given back, rolled back with a savepoint, or dropped through kmd_ddl */
		if (!rights_of(h->classid, h->objid, &now, &owner) || (lost = h->rights & ~now) == 0)
			continue;
		ObjectAddressSet(addr, h->classid, h->objid);
		ereport(ERROR,
				(errcode(ERRCODE_KMD_DIRECT_WRITE),
				 errmsg("role %s, the owner of %s, would lose %s on this node alone",
						GetUserNameFromId(owner, false), getObjectDescription(&addr, false),
						lost_text(h, lost)),
				 errdetail("Commands are applied as the owners of control tables and appliers: this node would fail those needing the privilege, which every other node applies."),
				 errhint("Use kmd_ddl(), which runs the statement on every node at the same log position, or grant the owner the privilege another way in the same transaction.")));
	}
}

static void
xact_callback(XactEvent event, void *arg)
{
	List	   *check = taken;

	/* the list is the transaction's, going now either way */
	taken = NIL;
	if (event == XACT_EVENT_PRE_COMMIT || event == XACT_EVENT_PARALLEL_PRE_COMMIT ||
		event == XACT_EVENT_PRE_PREPARE)
	{
		taken = check;
		check_taken();
		taken = NIL;
	}
}

List *
kmd_rights_before(Node *parsetree)
{
	if (!kmd_rights_may_change(parsetree))
		return NIL;
	if (!callback_registered)
	{
		RegisterXactCallback(xact_callback, NULL);
		callback_registered = true;
	}
	return rights_held();
}

void
kmd_rights_after(List *before)
{
	ListCell   *lc;

	/* what the statement changed, seen */
	CommandCounterIncrement();
	foreach(lc, before)
	{
		Held	   *h = lfirst(lc);
		AclMode		now;
		Oid			owner;
		AclMode		lost;
		AclMode		gained;

		if (!rights_of(h->classid, h->objid, &now, &owner))
			continue;
		lost = h->rights & ~now;
		gained = now & ~h->rights;
		if (lost != 0 || gained != 0)
		{
			Held	   *t = taken_of(h->classid, h->objid);

			t->rights = (t->rights | lost) & ~gained;
		}
	}
	list_free_deep(before);
}
