/*-------------------------------------------------------------------------
 *
 * resolve.h
 *	  The peers' host names, resolved for the Raft workers by a process of
 *	  their own.
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
 * address not resolved yet is asked of the resolver (and the resolver of
 * the launcher, when it is not running).
 */
extern KmdAddressState kmd_peer_address(int32 node_id, const char *conninfo,
										KmdAddress *out);

/*
 * The resolver, a background worker the launcher starts once a Raft worker
 * needs it: it resolves the host names of the roster's conninfos (new,
 * changed, or resolved a while ago), waiting for DNS as long as it takes.
 */
extern PGDLLEXPORT void kmd_resolver_main(Datum arg);

#endif							/* KOMMANDER_RESOLVE_H */
