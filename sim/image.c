/*-------------------------------------------------------------------------
 *
 * image.c
 *	  Bounded logs and partition images in the simulator's partition mode,
 *	  as the runtime has them (src/compact.c, src/snapshot.c): each node
 *	  compacts each partition's log to --compact entries behind what it has
 *	  applied, and a node that needs entries its leader compacted (a node
 *	  that was down, one that joins) or a merge that waits for a partition
 *	  nobody serves any more parks the group and copies an image instead.
 *
 * An image is the rows of the partition's key range as of the sender's
 * applied index, its piece of the map (with what its log split off and
 * took in) and its Raft marker: that index, its term and the configuration
 * in force there.  The copy takes simulated time; a crash of either end or
 * a cut link meanwhile loses it, and the receiver tries again later, from
 * the next node of the roster.  It is installed in one step: the range's
 * rows, the marker, the applied index; the partitions it took in retire
 * here, and those it split off that this node does not know start with no
 * configuration and want an image of their own (or retire, if the sender
 * had them merged away).  An image that has not taken in a partition this
 * node has retired into it is behind this node's map: it is tried again.
 *
 * After every event, on the node it touched: no marker passes what is
 * applied ("compaction past applied"), and a log holds fewer than the
 * threshold and one batch of entries behind what is applied ("log
 * bound").  An installed image must be the state some node had after
 * applying its index, and must not go back ("image state").
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/image.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"

#define IMAGE_RETRY_MIN_MS 20
#define IMAGE_RETRY_MAX_MS 640

/* An image on its way: read at the sender, not installed yet */
typedef struct image_copy
{
	int			from;
	uint32_t	from_incarnation;
	raft_snapshot_meta meta;	/* index, term, configuration */
	kv_state	kv;				/* the range's rows and the map piece */
	uint64_t	gone;			/* partitions the sender knows merged away */
	uint32_t	gone_into[SIM_MAX_GROUPS];	/* and the partition each went into */
} image_copy;

/* trace codes of EV_IMAGE ("a"), next to the message types of an intercept */
#define IMG_ASKED 100
#define IMG_CUT 101
#define IMG_INSTALLED 102
#define IMG_WANTED 103
#define IMG_BEHIND 104

/* ------------------------------------------------------------------------
 * Compaction
 * ------------------------------------------------------------------------
 */

/*
 * Compact group `gi' of node `nid' to --compact entries behind what it
 * applied, once it holds a batch more than that (src/compact.c).  Never a
 * group parked or waiting for its image: its state is about to be
 * replaced.
 */
void
image_compact(sim *s, int nid, int gi)
{
	group	   *g = &s->nodes[nid].g[gi];
	uint64_t	keep = s->cfg.compact;
	uint64_t	upto;
	size_t		drop = 0;

	if (keep == 0 || !g->exists || g->r == NULL || g->pending || g->parked ||
		g->image_wanted || g->applied < g->snap.index + keep + COMPACT_BATCH)
		return;
	upto = g->applied - keep;
	if (upto > raft_stable_index(g->r) || raft_compact(g->r, upto) != RAFT_OK)
		return;
	while (drop < g->n_log && g->log[drop].index <= upto)
		free((void *) g->log[drop++].data);
	if (drop > 0)
		memmove(g->log, g->log + drop, (g->n_log - drop) * sizeof(raft_entry));
	g->n_log -= drop;
	g->snap = *raft_snapshot(g->r);
	s->res->compactions++;
}

/* The invariants of bounded logs on one node, after an event touched it. */
void
image_check(sim *s, int nid)
{
	for (int gi = 0; gi < s->cfg.groups && !s->failed; gi++)
	{
		const group *g = &s->nodes[nid].g[gi];

		if (!g->exists || g->r == NULL || g->pending)
			continue;
		if (g->snap.index > g->applied)
			violation(s, "compaction past applied",
					  "node %d: partition %d compacted up to %llu, applied %llu",
					  nid, gi, (unsigned long long) g->snap.index,
					  (unsigned long long) g->applied);
		/* the core hands entries out again after a restart: bound once it has */
		else if (s->cfg.compact > 0 && !g->parked && !g->image_wanted &&
				 g->applied >= g->snap.index + s->cfg.compact + COMPACT_BATCH &&
				 g->applied <= raft_stable_index(g->r) &&
				 g->applied <= raft_applied_index(g->r))
			violation(s, "log bound",
					  "node %d: partition %d keeps %llu entries behind applied %llu",
					  nid, gi, (unsigned long long) (g->applied - g->snap.index),
					  (unsigned long long) g->applied);
	}
}

/* ------------------------------------------------------------------------
 * The receiver: parking and asking
 * ------------------------------------------------------------------------
 */

/*
 * Does a leader's message ask for what only an image can give?  As the
 * runtime's needs_image: a snapshot message the core would not answer by
 * itself (its index neither committed nor held here), any marker past 0
 * for a node that joins (no configuration yet), and any marker at all for
 * a group that wants an image (its rows were never copied here).  Such a
 * group has no configuration, and the core answers its leader's appends
 * with a rejection until the leader sends its marker.
 */
static bool
needs_image(const group *g, const raft_message *m)
{
	raft_term	t;

	if (m->term < raft_get_term(g->r))
		return false;
	if (m->type != RAFT_MSG_SNAPSHOT || m->snapshot == NULL)
		return false;
	if (g->image_wanted)
		return true;
	if (m->snapshot->index == 0)
		return false;
	if (raft_get_conf(g->r)->n == 0)
		return true;
	if (m->snapshot->index <= raft_commit_index(g->r))
		return false;
	return !(raft_term_at(g->r, m->snapshot->index, &t) == RAFT_OK && t == m->snapshot->term);
}

/* Keep a snapshot message to answer once the image is in. */
static void
save_snapshot_msg(group *g, const raft_message *m)
{
	g->snap_msg = *m;
	g->snap_msg_meta = *m->snapshot;
	g->snap_msg.snapshot = &g->snap_msg_meta;
	g->snap_msg.entries = NULL;
	g->snap_msg.n_entries = 0;
	g->snap_msg.snapshot_data = NULL;
	g->snap_msg.snapshot_len = 0;
	g->has_snap_msg = true;
}

static uint64_t
transfer_arg(const sim *s, int nid, const group *g)
{
	return (uint64_t) s->nodes[nid].incarnation << 32 | g->image_serial;
}

/*
 * Park group `gi' of node `nid' and copy an image of its partition from
 * node `from', at `min_index' or later.  A group busy with a batch or
 * parked already is left as it is (the caller asks again).
 */
void
image_ask(sim *s, int nid, int gi, int from, uint64_t min_index)
{
	group	   *g = &s->nodes[nid].g[gi];

	if (!g->exists || g->r == NULL || g->pending || g->parked)
		return;
	g->parked = true;
	g->image_from = from;
	g->image_min = min_index;
	g->image_serial++;
	g->image_backoff = IMAGE_RETRY_MIN_MS;
	trace(s, EV_IMAGE, nid, gi, IMG_ASKED, (uint64_t) from);
	schedule(s, s->now + 1 + prng_below(&s->rng, 10), EV_IMAGE, nid, gi,
			 transfer_arg(s, nid, g), NULL);
}

/*
 * A message reaches group `gi' of node `nid'.  True when the group does
 * not take it: it is parked (a newer snapshot message is kept, and the
 * image then comes from its sender), or it is parked now.
 */
bool
image_intercept(sim *s, int nid, int gi, const raft_message *m)
{
	group	   *g = &s->nodes[nid].g[gi];

	if (g->parked)
	{
		if (m->type == RAFT_MSG_SNAPSHOT && m->snapshot != NULL &&
			(!g->has_snap_msg || m->term >= g->snap_msg.term))
		{
			save_snapshot_msg(g, m);
			g->image_from = roster_node(s, m->from);
			if (m->snapshot->index > g->image_min)
				g->image_min = m->snapshot->index;
		}
		return true;
	}
	if (!needs_image(g, m))
		return false;
	if (m->type == RAFT_MSG_SNAPSHOT)
		save_snapshot_msg(g, m);
	image_ask(s, nid, gi, roster_node(s, m->from),
			  m->type == RAFT_MSG_SNAPSHOT ? m->snapshot->index : 0);
	return true;
}

/* ------------------------------------------------------------------------
 * The transfer
 * ------------------------------------------------------------------------
 */

/* Can node `from' talk to node `to' (a connection both ways)? */
static bool
reachable(const sim *s, int from, int to)
{
	return s->nodes[from].up && s->now >= s->nodes[from].stalled_until &&
		!s->blocked[from][to] && !s->blocked[to][from] &&
		roster_listed(s, from) && roster_listed(s, to);
}

/*
 * Read the image that group `gi' of node `nid' asks for, at its source, in
 * one step (the runtime's one REPEATABLE READ transaction); NULL when the
 * source cannot serve it: down, cut off, not hosting the partition, or not
 * applied up to the index asked.
 */
static image_copy *
image_read(sim *s, int nid, int gi)
{
	const group *g = &s->nodes[nid].g[gi];
	int			from = g->image_from;
	const group *sg;
	image_copy *c;
	uint64_t	index;

	if (from < 1 || from > s->cfg.nodes || from == nid || !reachable(s, from, nid))
		return NULL;
	sg = &s->nodes[from].g[gi];
	if (!sg->exists || sg->r == NULL || sg->parked || sg->image_wanted ||
		sg->kv.pstate == PART_MERGED || sg->applied < g->image_min)
		return NULL;

	/*
	 * The index is the applied index read with the rows.  With --bug
	 * image-index it is the one the snapshot message asked for (the
	 * leader's marker), while the rows are those of the later applied
	 * index.
	 */
	index = sg->applied;
	if ((s->cfg.bugs & SIM_BUG_IMAGE_INDEX) && g->image_min >= raft_first_index(sg->r) - 1)
		index = g->image_min;

	c = calloc(1, sizeof(image_copy));
	c->from = from;
	c->from_incarnation = s->nodes[from].incarnation;
	c->meta.index = index;
	if (index > 0 && raft_term_at(sg->r, index, &c->meta.term) != RAFT_OK)
		violation(s, "simulator", "node %d: partition %d has no term at its applied index %llu",
				  from, gi, (unsigned long long) index);
	roster_conf_at(sg, index, &c->meta.conf);
	c->kv = sg->kv;
	for (uint64_t k = 0; k < PKEYS; k++)
	{
		uint32_t	h = part_hash(k);

		if (h < c->kv.lo || h >= c->kv.hi)
			c->kv.val[k] = 0;	/* another partition's row */
	}
	for (int pid = 0; pid < s->cfg.groups; pid++)
		if (!s->nodes[from].g[pid].exists && s->nodes[from].g[pid].kv.pstate == PART_MERGED)
		{
			c->gone |= 1ULL << pid;
			c->gone_into[pid] = s->nodes[from].g[pid].kv.merged_into;
		}
	return c;
}

/*
 * The transfer was cut short (`why', IMG_CUT), or brought an image behind
 * this node's map (IMG_BEHIND): try again later, from the next node.
 */
static void
image_retry(sim *s, int nid, int gi, uint32_t why)
{
	group	   *g = &s->nodes[nid].g[gi];
	int			from = g->image_from;

	if (why == IMG_CUT)
		s->res->images_cut++;
	s->image_party[0] = s->image_party[1] = 0;
	trace(s, EV_IMAGE, nid, gi, why, (uint64_t) from);
	for (int i = 1; i <= s->cfg.nodes; i++)
	{
		int			next = (from + i - 1) % s->cfg.nodes + 1;

		if (next != nid && roster_listed(s, next))
		{
			g->image_from = next;
			break;
		}
	}
	g->image_backoff = g->image_backoff * 2 > IMAGE_RETRY_MAX_MS ? IMAGE_RETRY_MAX_MS :
		g->image_backoff * 2;
	schedule(s, s->now + g->image_backoff, EV_IMAGE, nid, gi, transfer_arg(s, nid, g), NULL);
}

/*
 * Partition `pid', split off by the partition whose image `c' is, is not
 * known here: it starts with its piece of the map as it was split off, no
 * configuration, and wants an image of its own (its leader adds this node,
 * and any message from it parks the group).
 */
static void
start_wanted(sim *s, int nid, int pid, const image_copy *c)
{
	group	   *q = &s->nodes[nid].g[pid];

	for (size_t i = 0; i < q->n_log; i++)
		free((void *) q->log[i].data);
	q->n_log = 0;
	memset(&q->hs, 0, sizeof(q->hs));
	memset(&q->snap, 0, sizeof(q->snap));
	memset(&q->kv, 0, sizeof(q->kv));
	q->kv.pstate = PART_ACTIVE;
	q->kv.lo = c->kv.child_lo[pid];
	q->kv.hi = c->kv.child_hi[pid];
	q->kv.gen = c->kv.child_gen[pid];
	q->snap_kv = q->kv;
	q->applied = 0;
	q->exists = true;
	q->image_wanted = true;
	trace(s, EV_IMAGE, nid, pid, IMG_WANTED, c->meta.index);
	group_start(s, nid, pid);
}

/*
 * Install image `c' in group `gi' of node `nid', in one step: the log up
 * to the image goes (all of it if the entry there is not the image's), the
 * marker, the rows and the applied index move to it, the commit index at
 * least there; the map as the image's log left it; then the group starts
 * again from there and answers its leader's snapshot message.
 */
static void
image_install(sim *s, int nid, int gi, const image_copy *c)
{
	node	   *n = &s->nodes[nid];
	group	   *g = &n->g[gi];
	uint64_t	index = c->meta.index;
	raft_term	t;
	bool		keep_tail;
	size_t		drop = 0;
	size_t		n_waiters = g->n_waiters;
	bool		answer = g->has_snap_msg;
	raft_message m = g->snap_msg;
	raft_snapshot_meta meta = g->snap_msg_meta;

	if (index < g->applied)
	{
		violation(s, "image state", "node %d: partition %d applied up to %llu takes an image at %llu",
				  nid, gi, (unsigned long long) g->applied, (unsigned long long) index);
		return;
	}
	keep_tail = raft_term_at(g->r, index, &t) == RAFT_OK && t == c->meta.term;
	raft_free(g->r);
	g->r = NULL;
	while (drop < g->n_log && (!keep_tail || g->log[drop].index <= index))
		free((void *) g->log[drop++].data);
	if (drop > 0)
		memmove(g->log, g->log + drop, (g->n_log - drop) * sizeof(raft_entry));
	g->n_log -= drop;
	g->snap = c->meta;
	if (g->hs.commit < index)
		g->hs.commit = index;
	g->kv = c->kv;
	g->snap_kv = c->kv;
	g->applied = index;
	g->image_wanted = false;
	s->res->images++;
	s->image_party[0] = s->image_party[1] = 0;
	trace(s, EV_IMAGE, nid, gi, IMG_INSTALLED, index);

	/* the partitions it took in retire; those it split off are known */
	for (int pid = 0; pid < s->cfg.groups; pid++)
	{
		uint64_t	bit = 1ULL << pid;

		if (c->kv.absorbed & bit)
			part_retire(s, nid, pid, (c->gone & bit) ? (int) c->gone_into[pid] : gi);
		else if ((c->kv.children & bit) && pid != gi && !n->g[pid].exists &&
				 n->g[pid].kv.pstate != PART_MERGED)
		{
			if (c->gone & bit)
			{
				n->g[pid].kv.pstate = PART_MERGED;
				n->g[pid].kv.merged_into = c->gone_into[pid];
			}
			else
				start_wanted(s, nid, pid, c);
		}
	}

	group_start(s, nid, gi);
	if (!n->up)
		return;
	g->n_waiters = n_waiters;	/* clients waiting here are answered below */
	part_check_state(s, nid, gi, "image state");
	answer_waiters(s, nid, gi, NULL, 0);
	if (answer)
	{
		m.snapshot = &meta;
		(void) raft_step(g->r, &m);
	}
	group_process(s, nid, gi);
}

/*
 * Is image `c' of partition `gi' behind what node `nid' knows of it?  When
 * a partition is gone here, merged into `gi' (known from the image of
 * another partition, whose sender had applied that merge), and the image
 * has not taken it in: installed, it would leave that partition's range
 * to nobody here, and the merge, when `gi' came to apply it here, would
 * find the rows it takes in gone.  A node that applied the merge, as one
 * of a majority of `gi' did, will serve it.
 */
static bool
image_behind(const sim *s, int nid, int gi, const image_copy *c)
{
	for (int pid = 0; pid < s->cfg.groups; pid++)
	{
		const group *q = &s->nodes[nid].g[pid];

		if (!q->exists && q->kv.pstate == PART_MERGED &&
			q->kv.merged_into == (uint32_t) gi && !(c->kv.absorbed & (1ULL << pid)))
			return true;
	}
	return false;
}

/*
 * A transfer of group `gi' of node `nid' moves on: without `payload' it
 * starts (the image is read at the source), with it the image arrives.
 * A transfer that no longer matters (the receiver crashed, or installed
 * another) is dropped; one whose source crashed or was cut off meanwhile
 * is tried again.
 */
void
image_event(sim *s, int nid, int gi, uint64_t arg, void *payload)
{
	node	   *n = &s->nodes[nid];
	group	   *g = &n->g[gi];
	image_copy *c = payload;

	if (!n->up || !g->exists || !g->parked || arg != transfer_arg(s, nid, g))
	{
		free(c);
		return;
	}
	if (c == NULL)
	{
		c = image_read(s, nid, gi);
		if (c == NULL)
		{
			image_retry(s, nid, gi, IMG_CUT);
			return;
		}
		s->image_party[0] = c->from;
		s->image_party[1] = nid;
		schedule(s, s->now + 2 + prng_below(&s->rng, 40), EV_IMAGE, nid, gi, arg, c);
		return;
	}
	if (s->nodes[c->from].incarnation != c->from_incarnation || !reachable(s, c->from, nid))
		image_retry(s, nid, gi, IMG_CUT);
	else if (image_behind(s, nid, gi, c))
		image_retry(s, nid, gi, IMG_BEHIND);
	else
		image_install(s, nid, gi, c);
	free(c);
}
