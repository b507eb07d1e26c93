/*-------------------------------------------------------------------------
 *
 * owner_rights.h
 *	  The privileges the apply worker uses, kept by a session's GRANT and
 *	  REVOKE.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/owner_rights.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_OWNER_RIGHTS_H
#define KOMMANDER_OWNER_RIGHTS_H

#include "nodes/nodes.h"
#include "nodes/pg_list.h"

/*
 * Can statement `parsetree' take a privilege from a role: GRANT and
 * REVOKE of privileges or of role membership, ALTER ROLE, DROP OWNED,
 * ALTER ... OWNER TO?
 */
extern bool kmd_rights_may_change(Node *parsetree);

/*
 * The privileges the apply worker uses as the owners of control tables
 * and of appliers, as they are now: what kmd_rights_check_kept compares.
 */
extern List *kmd_rights_held(void);

/*
 * Refuse (K0010) the statement just run when the owners have lost one of
 * the privileges `before' (from kmd_rights_held) lists.
 */
extern void kmd_rights_check_kept(List *before);

#endif							/* KOMMANDER_OWNER_RIGHTS_H */
