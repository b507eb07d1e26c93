/*-------------------------------------------------------------------------
 *
 * merge.c
 *	  The rules of a merge's second half: when the merge may go into the
 *	  left partition's log, and when the left partition's leader commits a
 *	  merge whose caller went away after the freeze.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/host/merge.c
 *
 *-------------------------------------------------------------------------
 */
#include "host.h"

bool
host_merge_ready(const host_members *left, const host_members *right,
				 const host_roster *ro)
{
	if (!left->committed || !right->committed || left->n == 0)
		return false;
	for (uint32_t i = 0; i < left->n; i++)
		if (!host_roster_keeps(ro, left->ids[i]) || !host_members_have(right, left->ids[i]))
			return false;
	return true;
}

bool
host_merge_due(const raft *r, host_merge_watch *w, int32_t right,
			   uint64_t now, uint64_t wait, raft_index applied)
{
	if (right != w->right)
	{
		w->right = right;
		w->seen = now;
		return false;
	}
	if (right == 0 || now < w->seen + wait)
		return false;
	w->seen = now;

	/* the last try is still in the log, not applied yet: it may do */
	if (w->index > applied)
	{
		raft_term	term;

		if (raft_term_at(r, w->index, &term) == RAFT_OK && term == w->term)
			return false;
	}
	return true;
}
