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
#include "storage/lwlock.h"
#include "utils/guc.h"
#include "utils/syscache.h"

#include "identity.h"
#include "shmem.h"

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
kmd_role_enter_restricted(KmdRoleSaved *saved, Oid role)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(role, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
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

void
kmd_check_peer_session(uint32 node_id, const char *what)
{
	const char *session = GetUserNameFromId(GetSessionUserId(), false);
	char		expected[NAMEDATALEN] = "";
	int32		owner = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
	{
		KmdNode    *node = &kmd_shared->nodes[i];

		if (node->node_id == 0)
			continue;
		if (node->node_id == (int32) node_id)
			strlcpy(expected, node->peer_role, sizeof(expected));
		else if (strcmp(node->peer_role, session) == 0)
			owner = node->node_id;
	}
	LWLockRelease(kmd_shared->lock);
	if ((expected[0] != '\0' && strcmp(expected, session) != 0) || owner != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("role \"%s\" may not %s node %u", session, what, node_id),
				 expected[0] != '\0' ?
				 errdetail("The roster names role \"%s\" as the one node %u connects as.",
						   expected, node_id) :
				 errdetail("The roster names role \"%s\" as the one node %d connects as.",
						   session, owner)));
}

int
kmd_stored_text_settings(void)
{
	static const char *const settings[][2] = {
		{"TimeZone", "UTC"},
		{"DateStyle", "ISO, MDY"},
		{"IntervalStyle", "postgres"},
		{"extra_float_digits", "3"},
		{"bytea_output", "hex"},
		{"lc_monetary", "C"},
	};
	int			nest = NewGUCNestLevel();

	for (int i = 0; i < lengthof(settings); i++)
		(void) set_config_option(settings[i][0], settings[i][1], PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

int
kmd_safe_search_path(void)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}
