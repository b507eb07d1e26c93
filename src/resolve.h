/*-------------------------------------------------------------------------
 *
 * resolve.h
 *	  The peers' host names, resolved by the launcher for the Raft workers.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/resolve.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_RESOLVE_H
#define KOMMANDER_RESOLVE_H

#include "shmem.h"

typedef enum KmdAddressState
{
	KMD_ADDRESS_NOT_NEEDED,		/* no host name to resolve: connect as is */
	KMD_ADDRESS_READY,			/* connect with the hostaddr given */
	KMD_ADDRESS_PENDING,		/* the launcher was asked: try again soon */
	KMD_ADDRESS_FAILED			/* it could not be resolved: the error given */
} KmdAddressState;

/*
 * The addresses a Raft worker connects to node `node_id' by, for its
 * roster conninfo `conninfo', into `out': its host, hostaddr and port
 * lists (libpq's, over the conninfo's), or the error.  Never waits: an
 * address not resolved yet is asked of the launcher.
 */
extern KmdAddressState kmd_peer_address(int32 node_id, const char *conninfo,
										KmdAddress *out);

/*
 * The launcher: resolve the host names of the roster's conninfos that
 * need it (first, changed, or resolved a while ago), which may wait for
 * DNS.  Returns the milliseconds until the next is due.
 */
extern long kmd_resolve_peers(void);

#endif							/* KOMMANDER_RESOLVE_H */
