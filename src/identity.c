/*-------------------------------------------------------------------------
 *
 * identity.c
 *	  Running user code as the role it belongs to (identity.h).
 *
 * The apply worker runs as a superuser.  A command's rows are written as
 * the table's owner, an applier as its function's owner, a kmd_ddl
 * statement as the role that called kmd_ddl: what they run (triggers,
 * defaults, domain checks) has that role's privileges.  Two things would
 * outlive the switch back: the deferred triggers the code queued, which
 * Postgres fires as whoever is the current user when they fire, and the
 * settings the code changed (a search_path naming a schema of the user's
 * ahead of pg_catalog would hand the user's operators to the worker's own
 * statements).  The first fire while the role is still current; the
 * second are undone when the code is done.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/identity.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "identity.h"

Oid
kmd_rel_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

void
kmd_role_enter(KmdRoleSaved *saved, Oid role)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	if (OidIsValid(role))
		SetUserIdAndSecContext(role, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE);
	saved->nest = NewGUCNestLevel();
}

void
kmd_role_leave(const KmdRoleSaved *saved, bool done)
{
	if (done)
		AtEOXact_GUC(false, saved->nest);
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

void
kmd_fire_deferred_as(Oid role)
{
	KmdRoleSaved saved;
	volatile bool done = false;

	kmd_role_enter(&saved, role);
	PG_TRY();
	{
		AfterTriggerFireDeferred();
		done = true;
	}
	PG_FINALLY();
	{
		kmd_role_leave(&saved, done);
	}
	PG_END_TRY();
}

int
kmd_safe_search_path(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}
