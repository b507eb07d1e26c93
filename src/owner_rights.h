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
 * REASSIGN OWNED, ALTER ... OWNER TO?
 */
extern bool kmd_rights_may_change(Node *parsetree);

/*
 * Before a session's statement `parsetree': if it may take a privilege,
 * what the owners of the control tables and appliers hold (else NIL), for
 * kmd_rights_after once the statement ran.
 */
extern List *kmd_rights_before(Node *parsetree);

/*
 * After it: note what the statement took from the owners and what it gave
 * back; the transaction's commit fails (K0010) if it took one it did not
 * give back.
 */
extern void kmd_rights_after(List *before);

/* Is `fn' the function of a registered applier? */
extern bool kmd_rights_is_applier(Oid fn);

#endif							/* KOMMANDER_OWNER_RIGHTS_H */
