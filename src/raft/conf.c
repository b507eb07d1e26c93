/*-------------------------------------------------------------------------
 *
 * conf.c
 *	  Group configurations: membership queries, single-server changes and
 *	  the encoding of configuration-change entries.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/conf.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_int.h"

uint32_t
raft_conf_role(const raft_conf *conf, raft_id id)
{
	for (uint32_t i = 0; i < conf->n; i++)
		if (conf->members[i].id == id)
			return conf->members[i].role;
	return 0;
}

uint32_t
raft_conf_voters(const raft_conf *conf)
{
	uint32_t	n = 0;

	for (uint32_t i = 0; i < conf->n; i++)
		if (conf->members[i].role == RAFT_VOTER)
			n++;
	return n;
}

int
raft_conf_apply(raft_conf *conf, uint32_t type, raft_id id)
{
	uint32_t	i;

	if (id == RAFT_NONE)
		return RAFT_EINVAL;
	for (i = 0; i < conf->n; i++)
		if (conf->members[i].id == id)
			break;

	switch (type)
	{
		case RAFT_CC_ADD_LEARNER:
			if (i < conf->n)
				return RAFT_EINVAL; /* present already: no demotion */
			if (conf->n == RAFT_MAX_MEMBERS)
				return RAFT_EINVAL;
			conf->members[conf->n].id = id;
			conf->members[conf->n].role = RAFT_LEARNER;
			conf->n++;
			return RAFT_OK;
		case RAFT_CC_ADD_VOTER:
			if (i < conf->n)
			{
				if (conf->members[i].role == RAFT_VOTER)
					return RAFT_EINVAL;
				conf->members[i].role = RAFT_VOTER;
				return RAFT_OK;
			}
			if (conf->n == RAFT_MAX_MEMBERS)
				return RAFT_EINVAL;
			conf->members[conf->n].id = id;
			conf->members[conf->n].role = RAFT_VOTER;
			conf->n++;
			return RAFT_OK;
		case RAFT_CC_REMOVE:
			if (i == conf->n)
				return RAFT_EINVAL;
			memmove(&conf->members[i], &conf->members[i + 1],
					(conf->n - i - 1) * sizeof(raft_member));
			conf->n--;
			return RAFT_OK;
	}
	return RAFT_EINVAL;
}

void
raft_conf_change_encode(uint8_t out[RAFT_CONF_CHANGE_LEN], uint32_t type,
						raft_id id)
{
	out[0] = (uint8_t) type;
	out[1] = (uint8_t) (id & 0xff);
	out[2] = (uint8_t) ((id >> 8) & 0xff);
	out[3] = (uint8_t) ((id >> 16) & 0xff);
	out[4] = (uint8_t) ((id >> 24) & 0xff);
}

bool
raft_conf_change_decode(const void *data, uint32_t len, uint32_t *type,
						raft_id *id)
{
	const uint8_t *p = data;

	if (len != RAFT_CONF_CHANGE_LEN || p == NULL)
		return false;
	if (p[0] < RAFT_CC_ADD_LEARNER || p[0] > RAFT_CC_REMOVE)
		return false;
	*type = p[0];
	*id = (raft_id) p[1] | ((raft_id) p[2] << 8) | ((raft_id) p[3] << 16) |
		((raft_id) p[4] << 24);
	return *id != RAFT_NONE;
}

/*
 * The configuration in force at `index': the snapshot's, changed by every
 * configuration entry of the log up to `index'.  An entry that is not a
 * valid change of the configuration it meets changes nothing, identically
 * on every node.
 */
raft_conf
conf_at(const raft *r, raft_index index)
{
	raft_conf	c = r->snap.conf;

	for (size_t i = 0; i < r->n_log && r->log[i].index <= index; i++)
	{
		const raft_entry *e = &r->log[i];
		uint32_t	type;
		raft_id		id;

		if (e->type == RAFT_ENTRY_CONF &&
			raft_conf_change_decode(e->data, e->len, &type, &id))
			(void) raft_conf_apply(&c, type, id);
	}
	return c;
}

/*
 * Recompute the configuration in force from the snapshot and the whole log
 * (after a truncation or a restart), and bring the leader's progress in line.
 */
void
conf_rebuild(raft *r)
{
	r->conf = conf_at(r, log_last_index(r));
	r->conf_index = 0;
	for (size_t i = r->n_log; i > 0; i--)
		if (r->log[i - 1].type == RAFT_ENTRY_CONF)
		{
			r->conf_index = r->log[i - 1].index;
			break;
		}
	progress_sync(r);
}
