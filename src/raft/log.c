/*-------------------------------------------------------------------------
 *
 * log.c
 *	  The in-memory Raft log of one group: entries after the snapshot
 *	  marker, appends, truncation of conflicting suffixes and compaction.
 *
 * Entry data lives in reference-counted buffers so that messages can carry
 * entries without copying them and stay valid when the log moves on.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/log.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_int.h"

raft_index
log_last_index(const raft *r)
{
	return r->snap.index + r->n_log;
}

raft_term
log_last_term(const raft *r)
{
	return r->n_log > 0 ? r->log[r->n_log - 1].term : r->snap.term;
}

/* Term of the entry at `index'; false if compacted away or not there. */
bool
log_term(const raft *r, raft_index index, raft_term *term)
{
	if (index == r->snap.index)
	{
		*term = r->snap.term;
		return true;
	}
	if (index < r->snap.index || index > log_last_index(r))
		return false;
	*term = r->log[index - r->snap.index - 1].term;
	return true;
}

/* The entry at `index', or NULL if it is not in the in-memory log. */
raft_entry *
log_at(const raft *r, raft_index index)
{
	if (index <= r->snap.index || index > log_last_index(r))
		return NULL;
	return &r->log[index - r->snap.index - 1];
}

/* Does the log hold an entry at `index' with `term' (§5.3 consistency)? */
bool
log_matches(const raft *r, raft_index index, raft_term term)
{
	raft_term	t;

	return log_term(r, index, &t) && t == term;
}

/* Is a log ending at (index, term) at least as up to date as ours (§5.4.1)? */
bool
log_up_to_date(const raft *r, raft_index index, raft_term term)
{
	raft_term	last = log_last_term(r);

	return term > last || (term == last && index >= log_last_index(r));
}

/*
 * The largest index <= `index' whose term is <= `term', used to skip a whole
 * term of conflicting entries per round trip.  Stops at the snapshot.
 */
raft_index
log_conflict_by_term(const raft *r, raft_index index, raft_term term)
{
	raft_term	t;

	if (index > log_last_index(r))
		index = log_last_index(r);
	while (index > r->snap.index)
	{
		if (log_term(r, index, &t) && t <= term)
			break;
		index--;
	}
	return index;
}

void
entry_ref(const raft_entry *e)
{
	if (e->ref != NULL)
		((rbuf *) e->ref)->refs++;
}

void
entry_unref(raft *r, raft_entry *e)
{
	rbuf	   *b = e->ref;

	if (b != NULL && --b->refs == 0)
		raft_mfree(r, b);
	e->ref = NULL;
	e->data = NULL;
}

static raft_entry *
log_push(raft *r)
{
	if (r->n_log == r->cap_log)
	{
		r->cap_log = r->cap_log ? r->cap_log * 2 : 64;
		r->log = raft_mrealloc(r, r->log, r->cap_log * sizeof(raft_entry));
	}
	return &r->log[r->n_log++];
}

/* A configuration entry was appended: it takes effect now (§4.1). */
static void
log_note_conf(raft *r, const raft_entry *e)
{
	uint32_t	type;
	raft_id		id;

	if (e->type != RAFT_ENTRY_CONF)
		return;
	r->conf_index = e->index;
	if (raft_conf_change_decode(e->data, e->len, &type, &id))
		(void) raft_conf_apply(&r->conf, type, id);
	progress_sync(r);
}

static void
log_append_data(raft *r, raft_index index, raft_term term, uint32_t type,
				const void *data, uint32_t len)
{
	raft_entry *e = log_push(r);
	rbuf	   *b = raft_malloc(r, sizeof(rbuf) + len);

	b->refs = 1;
	b->len = len;
	if (len > 0)
		memcpy(b->data, data, len);
	e->index = index;
	e->term = term;
	e->type = type;
	e->len = len;
	e->data = b->data;
	e->ref = b;
	log_note_conf(r, e);
}

/*
 * Append a copy of a received entry; it must follow the last one.  False
 * (and nothing appended) if it does not.
 */
bool
log_append_copy(raft *r, const raft_entry *e)
{
	if (e->index != log_last_index(r) + 1)
		return false;
	log_append_data(r, e->index, e->term, e->type, e->data, e->len);
	return true;
}

/* Append a new entry of the current term (the leader's own). */
void
log_append_new(raft *r, uint32_t type, const void *data, uint32_t len)
{
	log_append_data(r, log_last_index(r) + 1, r->term, type, data, len);
}

/*
 * Drop the entries at and after `index' (a conflicting suffix, §5.3).  The
 * host learns of it from the next ready batch, whose entries start at or
 * before `index'.
 */
void
log_truncate_from(raft *r, raft_index index)
{
	bool		conf_gone = r->conf_index >= index;

	while (log_last_index(r) >= index && r->n_log > 0)
		entry_unref(r, &r->log[--r->n_log]);
	if (r->stable >= index)
		r->stable = index - 1;
	if (conf_gone)
		conf_rebuild(r);
}

/* Drop the entries up to `index' into the snapshot marker. */
void
log_compact_to(raft *r, raft_index index)
{
	size_t		drop = index - r->snap.index;
	raft_term	t = 0;

	(void) log_term(r, index, &t);
	r->snap.conf = conf_at(r, index);
	for (size_t i = 0; i < drop; i++)
		entry_unref(r, &r->log[i]);
	memmove(r->log, r->log + drop, (r->n_log - drop) * sizeof(raft_entry));
	r->n_log -= drop;
	r->snap.index = index;
	r->snap.term = t;
}

/* Replace the whole log by a snapshot received from the leader. */
void
log_reset_to_snapshot(raft *r, const raft_snapshot_meta *meta)
{
	while (r->n_log > 0)
		entry_unref(r, &r->log[--r->n_log]);
	r->snap = *meta;
	r->stable = meta->index;
	r->commit = meta->index;
	r->applied = meta->index;
	r->conf = meta->conf;
	r->conf_index = 0;
	progress_sync(r);
}

void
log_free(raft *r)
{
	while (r->n_log > 0)
		entry_unref(r, &r->log[--r->n_log]);
	raft_mfree(r, r->log);
	r->log = NULL;
	r->cap_log = 0;
}
