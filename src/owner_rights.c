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
 * applies (42501): its rows would differ.  So a session's statement that
 * may take a privilege is compared before and after, and refused when the
 * owners hold less; kmd_ddl runs it on every node at one log position.
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
#include "catalog/pg_namespace.h"
#include "catalog/pg_proc.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "errcodes.h"
#include "guard.h"
#include "owner_rights.h"

#define TABLE_RIGHTS (ACL_SELECT | ACL_INSERT | ACL_UPDATE | ACL_DELETE)

/* What `role' holds of what the apply worker uses on one object. */
typedef struct Held
{
	Oid			classid;		/* RelationRelationId, NamespaceRelationId,
								 * ProcedureRelationId */
	Oid			objid;
	Oid			role;
	AclMode		rights;
} Held;

bool
kmd_rights_may_change(Node *parsetree)
{
	switch (nodeTag(parsetree))
	{
		case T_GrantStmt:
		case T_GrantRoleStmt:
		case T_AlterRoleStmt:
		case T_DropOwnedStmt:
		case T_AlterOwnerStmt:
			return true;
		default:
			return false;
	}
}

static List *
add_held(List *held, Oid classid, Oid objid, Oid role, AclMode rights)
{
	Held	   *h = palloc(sizeof(Held));

	h->classid = classid;
	h->objid = objid;
	h->role = role;
	h->rights = rights;
	return lappend(held, h);
}

/* What the owner of control table `relid' holds, added to `held'. */
static List *
table_held(List *held, Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;
	Oid			nsp;

	if (!HeapTupleIsValid(tup))
		return held;
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	nsp = ((Form_pg_class) GETSTRUCT(tup))->relnamespace;
	ReleaseSysCache(tup);
	held = add_held(held, RelationRelationId, relid, owner,
					pg_class_aclmask(relid, owner, TABLE_RIGHTS, ACLMASK_ALL));
	return add_held(held, NamespaceRelationId, nsp, owner,
					pg_namespace_aclmask(nsp, owner, ACL_USAGE, ACLMASK_ALL));
}

/* What the owners of the registered appliers hold, added to `held'. */
static List *
appliers_held(List *held)
{
	Oid			nsp = get_namespace_oid("kommander", true);
	Oid			relid = OidIsValid(nsp) ? get_relname_relid("appliers", nsp) : InvalidOid;
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	Snapshot	snapshot;

	if (!OidIsValid(relid))
		return held;			/* kommander is being created or dropped */
	rel = table_open(relid, AccessShareLock);
	snapshot = RegisterSnapshot(GetLatestSnapshot());
	scan = systable_beginscan(rel, InvalidOid, false, snapshot, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan)))
	{
		bool		isnull;
		Oid			fn = DatumGetObjectId(heap_getattr(tup, 2, RelationGetDescr(rel), &isnull));
		HeapTuple	proc;
		Oid			owner;

		if (isnull || !HeapTupleIsValid(proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn))))
			continue;			/* dropped: a call fails alike on every node */
		owner = ((Form_pg_proc) GETSTRUCT(proc))->proowner;
		ReleaseSysCache(proc);
		held = add_held(held, ProcedureRelationId, fn, owner,
						pg_proc_aclmask(fn, owner, ACL_EXECUTE, ACLMASK_ALL));
	}
	systable_endscan(scan);
	UnregisterSnapshot(snapshot);
	table_close(rel, AccessShareLock);
	return held;
}

List *
kmd_rights_held(void)
{
	List	   *held = NIL;
	ListCell   *lc;

	foreach(lc, kmd_control_tables())
		held = table_held(held, lfirst_oid(lc));
	return appliers_held(held);
}

/* "INSERT, DELETE" */
static char *
rights_text(AclMode rights)
{
	static const struct
	{
		AclMode		bit;
		const char *name;
	}			names[] = {
		{ACL_SELECT, "SELECT"}, {ACL_INSERT, "INSERT"}, {ACL_UPDATE, "UPDATE"},
		{ACL_DELETE, "DELETE"}, {ACL_USAGE, "USAGE"}, {ACL_EXECUTE, "EXECUTE"},
	};
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < lengthof(names); i++)
		if (rights & names[i].bit)
			appendStringInfo(&buf, "%s%s", buf.len ? ", " : "", names[i].name);
	return buf.data;
}

/* What `role' holds now on the object of `h'; all it held if it is gone. */
static AclMode
held_now(const Held *h)
{
	switch (h->classid)
	{
		case RelationRelationId:
			if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(h->objid)))
				return h->rights;
			return pg_class_aclmask(h->objid, h->role, h->rights, ACLMASK_ALL);
		case NamespaceRelationId:
			if (!SearchSysCacheExists1(NAMESPACEOID, ObjectIdGetDatum(h->objid)))
				return h->rights;
			return pg_namespace_aclmask(h->objid, h->role, h->rights, ACLMASK_ALL);
		default:
			if (!SearchSysCacheExists1(PROCOID, ObjectIdGetDatum(h->objid)))
				return h->rights;
			return pg_proc_aclmask(h->objid, h->role, h->rights, ACLMASK_ALL);
	}
}

void
kmd_rights_check_kept(List *before)
{
	ListCell   *lc;

	/* what the statement changed, seen */
	CommandCounterIncrement();
	foreach(lc, before)
	{
		Held	   *h = lfirst(lc);
		AclMode		lost = h->rights & ~held_now(h);
		ObjectAddress addr;

		if (lost == 0)
			continue;
		ObjectAddressSet(addr, h->classid, h->objid);
		ereport(ERROR,
				(errcode(ERRCODE_KMD_DIRECT_WRITE),
				 errmsg("role %s would lose %s on %s on this node alone",
						GetUserNameFromId(h->role, false), rights_text(lost),
						getObjectDescription(&addr, false)),
				 errdetail("Commands are applied as the owners of control tables and appliers: this node would fail those needing the privilege, which every other node applies."),
				 errhint("Use kmd_ddl(), which runs the statement on every node at the same log position, or grant the role the privilege another way first.")));
	}
}
