/*-------------------------------------------------------------------------
 *
 * routing.h
 *	  Which partition owns a key: the 64-bit key hash and the range map
 *	  cached in shared memory.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/routing.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_ROUTING_H
#define KOMMANDER_ROUTING_H

/* The hash of kmd_key_hash(): stable across versions and platforms. */
extern int64 kmd_hash_key(const char *key, int len);

/*
 * The user partition owning `key': its id, generation, state and leader
 * (node id, 0 if unknown).  Raises K0004 if no partition covers the hash.
 */
extern int32 kmd_route_key(const char *key, int len, uint64 *generation,
						   int32 *state, int32 *leader);

/* The same for a hash; `lo' receives the first hash of the range. */
extern int32 kmd_route_hash(int64 h, uint64 *generation, int32 *state,
							int32 *leader, int64 *lo);

#endif							/* KOMMANDER_ROUTING_H */
