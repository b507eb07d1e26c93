/*-------------------------------------------------------------------------
 *
 * members.c
 *	  What a node knows, as the host's rules read it: the roster, the
 *	  nodes heard from, and the members of a group's configuration.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/host/members.c
 *
 *-------------------------------------------------------------------------
 */
#include "host.h"

uint32_t
host_roster_role(const host_roster *ro, raft_id id)
{
	for (uint32_t i = 0; i < ro->n; i++)
		if (ro->ids[i] == id && id != RAFT_NONE)
			return ro->roles[i];
	return HOST_ABSENT;
}

bool
host_roster_keeps(const host_roster *ro, raft_id id)
{
	uint32_t	role = host_roster_role(ro, id);

	return role == HOST_LEARNER || role == HOST_VOTER;
}

bool
host_heard_has(const host_heard *h, raft_id id)
{
	for (uint32_t i = 0; i < h->n; i++)
		if (h->ids[i] == id && id != RAFT_NONE)
			return true;
	return false;
}

bool
host_members_have(const host_members *m, raft_id id)
{
	for (uint32_t i = 0; i < m->n; i++)
		if (m->ids[i] == id)
			return true;
	return false;
}

void
host_members_of(const raft *r, host_members *m)
{
	const raft_conf *conf = raft_get_conf(r);

	m->committed = raft_conf_index(r) <= raft_commit_index(r);
	m->n = 0;
	for (uint32_t i = 0; i < conf->n && i < RAFT_MAX_MEMBERS; i++)
		m->ids[m->n++] = conf->members[i].id;
}
