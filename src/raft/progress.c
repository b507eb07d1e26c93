/*-------------------------------------------------------------------------
 *
 * progress.c
 *	  The leader's view of each member's log: match and next index, the
 *	  probe / replicate / snapshot states and the window of appends in
 *	  flight that gives flow control.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/progress.c
 *
 *-------------------------------------------------------------------------
 */
#include <string.h>

#include "raft_int.h"

progress *
progress_get(raft *r, raft_id id)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

static void
progress_init(raft *r, progress *pr, raft_id id)
{
	raft_index *ring = pr->inflight;

	memset(pr, 0, sizeof(*pr));
	pr->id = id;
	pr->next = log_last_index(r) + 1;
	pr->state = RAFT_PROGRESS_PROBE;
	pr->in_cap = r->opt.max_inflight;
	pr->inflight = ring ? ring : raft_malloc(r, sizeof(raft_index) * pr->in_cap);
	if (id == r->opt.id)
		pr->match = r->stable;
}

/*
 * Make the progress table list exactly the members of the configuration in
 * force, keeping what is known of the members that stay.
 */
void
progress_sync(raft *r)
{
	uint32_t	i = 0;

	while (i < r->n_prs)
	{
		if (raft_conf_role(&r->conf, r->prs[i].id) == 0)
		{
			raft_mfree(r, r->prs[i].inflight);
			r->prs[i] = r->prs[r->n_prs - 1];
			r->n_prs--;
		}
		else
			i++;
	}
	for (i = 0; i < r->conf.n; i++)
	{
		raft_id		id = r->conf.members[i].id;

		if (progress_get(r, id) == NULL)
		{
			progress   *pr = &r->prs[r->n_prs++];

			pr->inflight = NULL;
			progress_init(r, pr, id);
			/* a new member is presumed alive until the next quorum check */
			pr->recent_active = true;
		}
	}
}

/* A new leader's view: everyone presumed to need log_last_index() + 1. */
void
progress_reset_all(raft *r)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
	{
		progress_init(r, &r->prs[i], r->prs[i].id);
		r->prs[i].recent_active = true;
	}
}

void
progress_free_all(raft *r)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
		raft_mfree(r, r->prs[i].inflight);
	r->n_prs = 0;
}

bool
progress_paused(const progress *pr)
{
	switch (pr->state)
	{
		case RAFT_PROGRESS_PROBE:
			return pr->probe_sent;
		case RAFT_PROGRESS_REPLICATE:
			return pr->in_count >= pr->in_cap;
		case RAFT_PROGRESS_SNAPSHOT:
			return true;
	}
	return true;
}

/* An acknowledgement up to `n' arrived; true if it told us something new. */
bool
progress_maybe_update(progress *pr, raft_index n)
{
	bool		updated = false;

	if (n >= pr->match)
		pr->lost_answers = 0;
	if (pr->match < n)
	{
		pr->match = n;
		updated = true;
		pr->probe_sent = false;
	}
	if (pr->next < n + 1)
		pr->next = n + 1;
	return updated;
}

/*
 * The follower rejected an append after `rejected', hinting that its log
 * matches up to `hint' at best.  False if the rejection is stale.  A follower
 * that refuses even index 0 joined with no configuration: next drops to 0,
 * below any snapshot marker, so that it is sent our snapshot.  One that
 * answers the probe with a log ending before `match' lost entries it had
 * acknowledged (its storage went back), or its answer is an old one that
 * crossed an acknowledgement on the way; twice in a row, it is lost.  It
 * is probed from match on still, not as if it were merely behind, and only
 * with the next heartbeat's answer: false, so that the two do not trade
 * probes and rejections as fast as they can.
 */
bool
progress_maybe_decr(progress *pr, raft_index rejected, raft_index hint)
{
	if (pr->state == RAFT_PROGRESS_REPLICATE)
	{
		if (rejected <= pr->match)
			return false;
		pr->next = pr->match + 1;
		return true;
	}
	if (pr->next - 1 != rejected)
		return false;
	if (rejected > 0 && hint < pr->match)
	{
		pr->lost_answers++;
		pr->lost_end = hint;
		pr->probe_sent = true;	/* until the next heartbeat's answer */
		return false;
	}
	pr->next = (rejected < hint + 1 ? rejected : hint + 1);
	if (pr->next < pr->match + 1 && rejected > 0)
		pr->next = pr->match + 1;
	pr->probe_sent = false;
	return true;
}

static void
progress_reset_state(progress *pr, uint32_t state)
{
	pr->state = state;
	pr->probe_sent = false;
	pr->pending_snapshot = 0;
	pr->snapshot_elapsed = 0;
	pr->in_start = 0;
	pr->in_count = 0;
}

void
progress_become_probe(progress *pr)
{
	raft_index	next = pr->match + 1;

	if (pr->state == RAFT_PROGRESS_SNAPSHOT && pr->pending_snapshot + 1 > next)
		next = pr->pending_snapshot + 1;
	progress_reset_state(pr, RAFT_PROGRESS_PROBE);
	pr->next = next;
}

void
progress_become_replicate(progress *pr)
{
	progress_reset_state(pr, RAFT_PROGRESS_REPLICATE);
	pr->next = pr->match + 1;
}

void
progress_become_snapshot(progress *pr, raft_index index)
{
	progress_reset_state(pr, RAFT_PROGRESS_SNAPSHOT);
	pr->pending_snapshot = index;
}

void
progress_inflight_add(progress *pr, raft_index last)
{
	if (pr->in_count >= pr->in_cap)
		return;
	pr->inflight[(pr->in_start + pr->in_count) % pr->in_cap] = last;
	pr->in_count++;
}

/* Appends up to `index' were acknowledged: free their window slots. */
void
progress_inflight_free_to(progress *pr, raft_index index)
{
	while (pr->in_count > 0 && pr->inflight[pr->in_start] <= index)
	{
		pr->in_start = (pr->in_start + 1) % pr->in_cap;
		pr->in_count--;
	}
	if (pr->in_count == 0)
		pr->in_start = 0;
}

/* Forget the oldest append in flight (it was probably lost). */
void
progress_inflight_free_first(progress *pr)
{
	if (pr->in_count == 0)
		return;
	pr->in_start = (pr->in_start + 1) % pr->in_cap;
	pr->in_count--;
}
