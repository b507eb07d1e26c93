/*-------------------------------------------------------------------------
 *
 * membership.h
 *	  Cluster membership: the roster and the SQL functions that change it.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/membership.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_MEMBERSHIP_H
#define KOMMANDER_MEMBERSHIP_H

/* The node id of a roster member, by name; error if unknown. */
extern int32 kmd_node_id_by_name(const char *name);

#endif							/* KOMMANDER_MEMBERSHIP_H */
