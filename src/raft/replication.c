/*-------------------------------------------------------------------------
 *
 * replication.c
 *	  Log replication: the leader's appends, heartbeats and snapshots, the
 *	  follower's handling of them, and the commit rule.
 *
 * Raft paper §5.3 (log matching, with the conflict-term hint that skips a
 * whole term per round trip) and §5.4.2 (a leader commits by counting
 * replicas only entries of its own term).  Appends to a follower in
 * REPLICATE state are pipelined up to max_inflight messages; a follower in
 * PROBE state gets one message per round trip until its log is found.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/raft/replication.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdlib.h>
#include <string.h>

#include "raft_int.h"

/* ------------------------------------------------------------------------
 * Leader side
 * ------------------------------------------------------------------------
 */
static void
send_snapshot(raft *r, progress *pr)
{
	raft_message m = {0};
	raft_snapshot_meta *meta = raft_malloc(r, sizeof(raft_snapshot_meta));

	*meta = r->snap;
	m.type = RAFT_MSG_SNAPSHOT;
	m.to = pr->id;
	m.snapshot = meta;
	raft_send(r, &m);
	progress_become_snapshot(pr, r->snap.index);
}

/*
 * Send `pr' the entries it needs next, or a snapshot when they were
 * compacted away.  Nothing when its window is full or it is being probed;
 * an empty append (carrying the commit index) only if `send_empty'.
 * `commit_news': the empty append is sent only to tell a new commit index
 * (see below).  Returns whether a message went out.
 */
static bool
send_append(raft *r, progress *pr, bool send_empty, bool commit_news)
{
	raft_message m = {0};
	raft_index	last = log_last_index(r);
	raft_index	hi;
	uint64_t	bytes = 0;

	if (pr->id == r->opt.id || progress_paused(pr))
		return false;
	if (pr->next <= r->snap.index)
	{
		send_snapshot(r, pr);
		return true;
	}
	if (pr->next > last + 1)
		pr->next = last + 1;	/* never ask past our log */

	hi = pr->next - 1;
	while (hi < last && hi - (pr->next - 1) < r->opt.max_msg_entries)
	{
		const raft_entry *e = log_at(r, hi + 1);

		if (hi >= pr->next && bytes + e->len > r->opt.max_msg_bytes)
			break;
		bytes += e->len;
		hi++;
	}
	if (hi < pr->next && !send_empty)
		return false;

	m.type = RAFT_MSG_APPEND;
	m.to = pr->id;
	m.index = pr->next - 1;
	(void) log_term(r, m.index, &m.log_term);
	m.commit = r->commit;
	/* it takes the commit up to the last entry it is sent */
	if (pr->commit_sent < (m.commit < hi ? m.commit : hi))
		pr->commit_sent = m.commit < hi ? m.commit : hi;
	if (hi >= pr->next)
	{
		m.n_entries = (uint32_t) (hi - pr->next + 1);
		m.entries = raft_malloc(r, m.n_entries * sizeof(raft_entry));
		for (uint32_t i = 0; i < m.n_entries; i++)
		{
			m.entries[i] = *log_at(r, pr->next + i);
			entry_ref(&m.entries[i]);
		}
		if (pr->state == RAFT_PROGRESS_REPLICATE)
		{
			pr->next = hi + 1;
			progress_inflight_add(pr, hi);
		}
		else
			pr->probe_sent = true;
	}
	else if (pr->state == RAFT_PROGRESS_PROBE)
		pr->probe_sent = true;
	else if (commit_news && pr->state == RAFT_PROGRESS_REPLICATE)
	{
		/*
		 * Every entry up to m.index went out to this follower already, and
		 * each append that carried some gets its answer: one to this one
		 * would say nothing new, so the follower answers only if it
		 * rejects (it lacks an entry: one was lost).  If an answer to
		 * entries is lost instead, the next heartbeat's answer shows the
		 * follower behind, and the append that brings it up to date
		 * (send_empty without commit_news) is answered.  Heartbeat answers
		 * tell the follower is alive.  This saves a message and a wake-up
		 * of the leader per follower and commit.
		 */
		m.commit_only = true;
	}
	raft_send(r, &m);
	return true;
}

bool
repl_send_append(raft *r, progress *pr, bool send_empty)
{
	return send_append(r, pr, send_empty, false);
}

/*
 * Does `pr''s node wait for an entry whose commit it was not told, and is
 * there a newer commit index to tell it?  Only the highest such entry is
 * known, so every commit up to it is told.
 */
static bool
news_due(const raft *r, const progress *pr)
{
	raft_index	wanted = pr->news > r->news_all ? pr->news : r->news_all;

	return pr->id != r->opt.id && wanted > pr->commit_sent &&
		r->commit > pr->commit_sent;
}

/*
 * Send every member what it lacks.  A member whose node waits for an
 * entry it was not told committed (news_all, or its own `news') gets at
 * least the commit index, in an empty append if it lacks no entry.  The
 * others learn it with their next append or heartbeat: most entries are
 * waited for on the proposer's node only, and telling a follower that
 * waits for nothing costs it a wake-up and its node a call per commit.
 */
void
repl_bcast_append(raft *r)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
	{
		progress   *pr = &r->prs[i];
		bool		news = news_due(r, pr);

		if (!send_append(r, pr, news, news))
			continue;
		/* a replicating follower may take several messages' worth at once */
		while (pr->state == RAFT_PROGRESS_REPLICATE &&
			   pr->next <= log_last_index(r) &&
			   repl_send_append(r, pr, false))
			;
	}
}

/*
 * Member `to''s node waits until the entry at `index' is committed: tell
 * it the commit index now if there is news, or as soon as it can take a
 * message (its window opens, its probe succeeds).
 */
void
repl_want_commit(raft *r, raft_id to, raft_index index)
{
	progress   *pr = progress_get(r, to);

	if (pr == NULL)
		return;
	if (index > pr->news)
		pr->news = index;
	if (news_due(r, pr))
		(void) send_append(r, pr, true, true);
}

void
repl_bcast_heartbeat(raft *r, uint64_t context, bool quiesce)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
	{
		progress   *pr = &r->prs[i];
		raft_message m = {0};

		if (pr->id == r->opt.id)
			continue;
		m.type = RAFT_MSG_HEARTBEAT;
		m.to = pr->id;
		/* never past what the follower is known to hold */
		m.commit = pr->match < r->commit ? pr->match : r->commit;
		/* but how far the group has committed: it may be behind */
		m.index = r->commit;
		if (m.commit > pr->commit_sent)
			pr->commit_sent = m.commit;
		m.context = context;
		/* only a follower that holds the whole log may rest; one the leader
		 * rests without gets a plain heartbeat, whose answer wakes it again */
		m.quiesce = quiesce && pr->match == log_last_index(r);
		raft_send(r, &m);
	}
}

static int
cmp_index_desc(const void *a, const void *b)
{
	raft_index	x = *(const raft_index *) a;
	raft_index	y = *(const raft_index *) b;

	return x < y ? 1 : (x > y ? -1 : 0);
}

/*
 * Advance the commit index to the highest index a quorum of voters holds
 * durably, if that entry is of the current term (§5.4.2).  True if it moved.
 * A leader that a committed configuration removed then steps down.
 */
bool
repl_maybe_commit(raft *r)
{
	raft_index	matches[RAFT_MAX_MEMBERS];
	uint32_t	n = 0;
	uint32_t	q = raft_quorum(r);
	raft_index	mci;
	raft_term	t;

	for (uint32_t i = 0; i < r->n_prs; i++)
		if (raft_conf_role(&r->conf, r->prs[i].id) == RAFT_VOTER)
			matches[n++] = r->prs[i].match;
	if (n == 0 || n < q)
		return false;
	qsort(matches, n, sizeof(raft_index), cmp_index_desc);
	mci = matches[q - 1];
	if (mci <= r->commit || !log_term(r, mci, &t))
		return false;
	if (t != r->term && !BUG(r, RAFT_BUG_COMMIT_OLD_TERM))
		return false;
	r->commit = mci;

	if (raft_conf_role(&r->conf, r->opt.id) != RAFT_VOTER &&
		r->conf_index <= r->commit)
	{
		/* §4.2.2: the leader of a configuration that excludes it steps down */
		raft_become_follower(r, r->term, RAFT_NONE);
	}
	return true;
}

/* Append one of our own entries and schedule its replication. */
void
repl_leader_append(raft *r, uint32_t type, const void *data, uint32_t len)
{
	log_append_new(r, type, data, len);
	r->bcast_pending = true;
}

void
repl_handle_append_resp(raft *r, const raft_message *m)
{
	progress   *pr = progress_get(r, m->from);

	if (pr == NULL)
		return;
	pr->recent_active = true;
	pr->silent_ticks = 0;

	if (m->reject)
	{
		raft_index	hint = m->reject_hint;

		if (m->log_term > 0)
			hint = log_conflict_by_term(r, m->reject_hint, m->log_term);
		if (progress_maybe_decr(pr, m->index, hint))
		{
			if (pr->state == RAFT_PROGRESS_REPLICATE)
				progress_become_probe(pr);
			repl_send_append(r, pr, true);
		}
		return;
	}

	{
		bool		was_paused = progress_paused(pr);

		/* a snapshot at index 0 is acknowledged without match moving */
		if (!progress_maybe_update(pr, m->index) &&
			pr->state != RAFT_PROGRESS_SNAPSHOT)
			return;
		switch (pr->state)
		{
			case RAFT_PROGRESS_PROBE:
				progress_become_replicate(pr);
				break;
			case RAFT_PROGRESS_SNAPSHOT:
				if (pr->match >= pr->pending_snapshot)
				{
					progress_become_probe(pr);
					progress_become_replicate(pr);
				}
				break;
			case RAFT_PROGRESS_REPLICATE:
				progress_inflight_free_to(pr, m->index);
				break;
		}
		if (repl_maybe_commit(r))
		{
			if (r->role != RAFT_LEADER)
				return;
			r->bcast_pending = true;
		}
		else if (was_paused)
			repl_send_append(r, pr, false);
		while (pr->state == RAFT_PROGRESS_REPLICATE &&
			   pr->next <= log_last_index(r) && repl_send_append(r, pr, false))
			;
		/* news it could not take while paused, or of this very commit */
		if (news_due(r, pr))
			(void) send_append(r, pr, true, true);

		if (m->from == r->transferee && pr->match == log_last_index(r))
		{
			raft_message out = {0};

			out.type = RAFT_MSG_TIMEOUT_NOW;
			out.to = m->from;
			raft_send(r, &out);
		}
	}
}

void
repl_handle_heartbeat_resp(raft *r, const raft_message *m)
{
	progress   *pr = progress_get(r, m->from);

	if (pr == NULL)
		return;
	pr->recent_active = true;
	pr->silent_ticks = 0;
	pr->probe_sent = false;
	/* a full window may hide a lost append: make room to find out */
	if (pr->state == RAFT_PROGRESS_REPLICATE && pr->in_count == pr->in_cap)
		progress_inflight_free_first(pr);
	/*
	 * A follower behind gets an append even if there is nothing new to send:
	 * if it lost an append, it rejects this one and is probed again.
	 */
	if (pr->match < log_last_index(r))
		repl_send_append(r, pr, true);
	if (m->context > pr->read_ack)
	{
		pr->read_ack = m->context;
		read_ack(r);
	}
}

/* ------------------------------------------------------------------------
 * Follower side
 * ------------------------------------------------------------------------
 */
void
repl_commit_to(raft *r, raft_index index)
{
	if (index > log_last_index(r))
		index = log_last_index(r);
	if (index > r->commit)
		r->commit = index;
}

static void
append_resp(raft *r, const raft_message *m, raft_index index)
{
	raft_message out = {0};

	out.type = RAFT_MSG_APPEND_RESP;
	out.to = m->from;
	out.index = index;
	raft_send(r, &out);
}

void
repl_handle_append(raft *r, const raft_message *m)
{
	raft_index	last_new = m->index + m->n_entries;
	uint32_t	i;

	if (m->commit > r->leader_commit)
		r->leader_commit = m->commit;
	if (m->index < r->commit)
	{
		/* everything up to our commit is settled: say how far we are */
		append_resp(r, m, r->commit);
		return;
	}
	/*
	 * A node that joined with no configuration cannot know the one the
	 * leader's log builds on: it matches nothing, not even index 0, until a
	 * snapshot gives it one.
	 */
	if (r->conf.n == 0 || !log_matches(r, m->index, m->log_term))
	{
		raft_message out = {0};
		raft_index	hint = m->index < log_last_index(r) ? m->index : log_last_index(r);

		hint = log_conflict_by_term(r, hint, m->log_term);
		out.type = RAFT_MSG_APPEND_RESP;
		out.to = m->from;
		out.index = m->index;
		out.reject = true;
		out.reject_hint = hint;
		(void) log_term(r, hint, &out.log_term);
		raft_send(r, &out);
		return;
	}

	/* skip what we already hold; cut our log at the first conflict */
	for (i = 0; i < m->n_entries; i++)
	{
		const raft_entry *e = &m->entries[i];

		if (!log_matches(r, e->index, e->term))
		{
			if (e->index <= log_last_index(r))
			{
				if (e->index <= r->commit)
					return;		/* cannot happen in a correct cluster */
				log_truncate_from(r, e->index);
			}
			break;
		}
	}
	for (; i < m->n_entries; i++)
		(void) log_append_copy(r, &m->entries[i]);

	repl_commit_to(r, m->commit < last_new ? m->commit : last_new);
	if (!m->commit_only || m->n_entries > 0)
		append_resp(r, m, last_new);
}

void
repl_handle_heartbeat(raft *r, const raft_message *m)
{
	raft_message out = {0};

	if (m->index > r->leader_commit)
		r->leader_commit = m->index;
	repl_commit_to(r, m->commit);
	if (m->quiesce && r->commit == log_last_index(r))
	{
		r->quiesced = true;
		r->election_elapsed = 0;
	}
	out.type = RAFT_MSG_HEARTBEAT_RESP;
	out.to = m->from;
	out.context = m->context;
	out.quiesce = m->quiesce;	/* answering it does not wake the leader */
	raft_send(r, &out);
}

void
repl_handle_snapshot(raft *r, const raft_message *m)
{
	const raft_snapshot_meta *meta = m->snapshot;
	bool		joining = r->conf.n == 0;

	/* a node with no configuration takes any snapshot, even one at index 0 */
	if (meta->index <= r->commit && !joining)
	{
		append_resp(r, m, r->commit);
		return;
	}
	if (log_matches(r, meta->index, meta->term) && !joining)
	{
		/* we hold the entries: only the commit index was behind */
		repl_commit_to(r, meta->index);
		append_resp(r, m, r->commit);
		return;
	}

	/* replace our whole state by the leader's image */
	log_reset_to_snapshot(r, meta);
	raft_mfree(r, r->snap_data);
	r->snap_data = NULL;
	r->snap_len = m->snapshot_len;
	if (m->snapshot_len > 0)
	{
		r->snap_data = raft_malloc(r, m->snapshot_len);
		memcpy(r->snap_data, m->snapshot_data, m->snapshot_len);
	}
	r->snap_pending = true;
	append_resp(r, m, meta->index);
}
