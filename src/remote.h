/*-------------------------------------------------------------------------
 *
 * remote.h
 *	  libpq calls to another node that wait without blocking interrupts.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/remote.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_REMOTE_H
#define KOMMANDER_REMOTE_H

#include "libpq-fe.h"

/*
 * Connect to `conninfo'; raises (08001) naming `what' on failure.  The
 * connection is the caller's to PQfinish, also on error: wrap its use in
 * PG_TRY/PG_FINALLY.
 */
extern PGconn *kmd_remote_connect(const char *conninfo, const char *what);

/*
 * The same, as this node's peer role when the roster names one (the role
 * its Raft workers connect to peers as), over the conninfo's user, with
 * no statement, lock or idle timeout and the database's encoding, over
 * the conninfo's options and the peer's settings.
 */
extern PGconn *kmd_remote_connect_peer(const char *conninfo, const char *what);

/*
 * Run `sql' with text parameters and return its last result (tuples or
 * command OK); a remote error is raised as the remote node told it (its
 * SQLSTATE, message, detail and hint), the call in its context.  Waits
 * serving interrupts (a cancel, statement_timeout).
 */
extern PGresult *kmd_remote_exec(PGconn *conn, const char *sql, int nparams,
								 const char *const *params);

/*
 * The same, but a remote error comes back as its result (the caller
 * clears it); only a broken connection raises.
 */
extern PGresult *kmd_remote_try(PGconn *conn, const char *sql, int nparams,
								const char *const *params);

/*
 * Wait until `conn' can be read (or written): serves interrupts, and
 * raises (08006) once the wait lasts the limit kmd_remote_set_timeout set.
 */
extern void kmd_remote_wait(PGconn *conn, bool write);

/*
 * From now on in this process, a wait for a remote node that lasts `ms'
 * (0: without limit, the default) fails; returns the limit it replaces.
 */
extern int	kmd_remote_set_timeout(int ms);

#endif							/* KOMMANDER_REMOTE_H */
