/*-------------------------------------------------------------------------
 *
 * identity.h
 *	  Running user code (triggers, defaults, appliers, kmd_ddl statements)
 *	  from a worker whose own role is a superuser: as the role it belongs
 *	  to, with the settings it changes undone when it is done, so that
 *	  nothing of it carries over into what the worker runs as itself.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/identity.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_IDENTITY_H
#define KOMMANDER_IDENTITY_H

typedef struct KmdRoleSaved
{
	Oid			userid;
	int			sec_context;
	int			nest;			/* GUC nest level of the user code */
} KmdRoleSaved;

/* The owner of relation `relid'. */
extern Oid	kmd_rel_owner(Oid relid);

/* Become `role' (InvalidOid: stay) for user code; `saved' says who we were. */
extern void kmd_role_enter(KmdRoleSaved *saved, Oid role);

/*
 * As kmd_role_enter, for the code of `role' that a worker runs outside a
 * command (an image's copy of its rows, whose triggers and checks fire):
 * a security-restricted operation, as Postgres runs an owner's code in
 * maintenance, so that it leaves nothing in the session that a statement
 * of the worker's own would run or find (a temporary type, a cursor WITH
 * HOLD, which runs to its end at commit).
 */
extern void kmd_role_enter_restricted(KmdRoleSaved *saved, Oid role);

/*
 * Back to the role saved.  `done': the user code finished, and the settings
 * it changed (search_path, ...) are undone here; after an error, the
 * (sub)transaction's abort undoes them.
 */
extern void kmd_role_leave(const KmdRoleSaved *saved, bool done);

/*
 * Fire the deferred triggers queued so far as `role', as kmd_role_enter
 * does: user code, never the worker's superuser.
 */
extern void kmd_fire_deferred_as(Oid role);

/*
 * A peer's session may act for node `node_id' (28000 otherwise, the
 * message saying it may not `what' that node): when the roster names a
 * peer role for that node, only a session of that role may, and a session
 * of the role the roster names for another node may act for no other.
 */
extern void kmd_check_peer_session(uint32 node_id, const char *what);

/*
 * A search_path of pg_catalog and pg_temp only, for the worker's or a
 * superuser's own statements run in a session whose search_path the user
 * chose; returns the GUC nest level for AtEOXact_GUC(true, level).
 */
extern int	kmd_safe_search_path(void);

/*
 * The settings that change the text of a stored value (TimeZone,
 * DateStyle, IntervalStyle, extra_float_digits, bytea_output,
 * lc_monetary) at the apply worker's own values, whatever the session or
 * the user code around chose; returns the GUC nest level for
 * AtEOXact_GUC(true, level).
 */
extern int	kmd_stored_text_settings(void);

#endif							/* KOMMANDER_IDENTITY_H */
