/*-------------------------------------------------------------------------
 *
 * partition.c
 *	  Partitions in the simulator, as the runtime has them: groups own
 *	  ranges of one key-hash space; a split is an entry in the partition's
 *	  own log that starts the new group from that index on every node, with
 *	  the configuration in force there; a merge freezes the right partition,
 *	  then commits in the left one, whose apply waits until the right one is
 *	  applied up to its freeze, whatever the two configurations are; stale
 *	  generations and frozen partitions are fenced at apply.
 *
 * The nemesis plays the operator (kmd_split, kmd_merge, and the roster
 * changes of roster.c); partition leaders finish merges left half-way and
 * nodes balance leaders by the runtime's rules (src/host), as its workers
 * do.  After every event the node it touched must have
 * a map whose ranges tile the hash space, and a partition's range at a
 * given generation must be the same on every node.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/partition.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"

/* Where a key's hash falls: a bijection of 0 .. HASH_SPACE - 1, so that
 * neighbouring keys land far apart. */
uint32_t
part_hash(uint64_t key)
{
	return (uint32_t) ((key * 40503 + 7) % HASH_SPACE);
}

static bool
owns(const kv_state *kv, uint64_t key)
{
	uint32_t	h = part_hash(key);

	return kv->lo <= h && h < kv->hi;
}

/*
 * Record the range a partition has at a generation; the first node to show
 * a generation fixes it, and every other node must agree.
 */
static void
check_generation(sim *s, int nid, int pid, const kv_state *kv)
{
	uint64_t	range = ((uint64_t) kv->lo << 32 | kv->hi) + 1;

	if (kv->gen >= s->n_gens[pid])
	{
		size_t		n = s->n_gens[pid] ? s->n_gens[pid] : 8;

		while (n <= kv->gen)
			n *= 2;
		s->range_of_gen[pid] = realloc(s->range_of_gen[pid], n * sizeof(uint64_t));
		memset(s->range_of_gen[pid] + s->n_gens[pid], 0, (n - s->n_gens[pid]) * sizeof(uint64_t));
		s->n_gens[pid] = n;
	}
	if (s->range_of_gen[pid][kv->gen] == 0)
		s->range_of_gen[pid][kv->gen] = range;
	else if (s->range_of_gen[pid][kv->gen] != range)
		violation(s, "generation fencing",
				  "node %d: partition %d generation %llu owns [%u, %u), another node saw [%llu, %llu)",
				  nid, pid, (unsigned long long) kv->gen, kv->lo, kv->hi,
				  (unsigned long long) ((s->range_of_gen[pid][kv->gen] - 1) >> 32),
				  (unsigned long long) ((s->range_of_gen[pid][kv->gen] - 1) & 0xffffffffULL));
}

/* Has any node shown partition `pid' at generation `gen' yet? */
static bool
generation_seen(const sim *s, int pid, uint64_t gen)
{
	return gen < s->n_gens[pid] && s->range_of_gen[pid][gen] != 0;
}

/*
 * The state a node starts from, as the runtime's initial state: two
 * partitions owning halves of the space, with configuration `conf' (the
 * first members; empty on a node that joins later, which learns it from
 * the leaders, and rebuilds the map by applying the logs).
 */
void
part_host_initial(sim *s, int nid, const raft_conf *conf)
{
	for (int pid = 0; pid < 2; pid++)
	{
		group	   *g = &s->nodes[nid].g[pid];

		g->exists = true;
		g->snap.conf = *conf;
		memset(&g->snap_kv, 0, sizeof(kv_state));
		g->snap_kv.pstate = PART_ACTIVE;
		g->snap_kv.lo = pid == 0 ? 0 : HASH_SPACE / 2;
		g->snap_kv.hi = pid == 0 ? HASH_SPACE / 2 : HASH_SPACE;
		g->snap_kv.gen = 1;
		g->kv = g->snap_kv;
		g->applied = 0;
	}
}

/* The initial state on every member of the roster. */
void
part_init(sim *s, const raft_conf *conf)
{
	for (int nid = 1; nid <= s->cfg.nodes; nid++)
		if (roster_listed(s, nid))
			part_host_initial(s, nid, conf);
	s->next_partition = 2;
	s->merge_right = -1;
}

/*
 * The router of node `nid': the active partition owning `key' and its
 * generation, or -1 when the owner is frozen (or, wrongly, none).  Reads
 * are refused by a frozen partition too: once the merge commits, writes
 * to its keys go to the left partition, which this node may not have
 * applied yet.
 */
int
part_route(sim *s, int nid, uint64_t key, bool read, uint64_t *gen)
{
	for (int pid = 0; pid < s->cfg.groups; pid++)
	{
		const group *g = &s->nodes[nid].g[pid];

		if (!g->exists || (g->kv.pstate != PART_ACTIVE && g->kv.pstate != PART_FROZEN) ||
			!owns(&g->kv, key))
			continue;
		*gen = g->kv.gen;
		if (read && (s->cfg.bugs & SIM_BUG_STALE_READ))
			return pid;
		return g->kv.pstate == PART_ACTIVE ? pid : -1;
	}
	return -1;
}

/*
 * May a read routed at generation `gen' be served from this partition's
 * state?  Only while it is active at that generation: a split or freeze
 * applied since means the key's writes may go elsewhere now.
 */
bool
part_readable(sim *s, const group *g, uint64_t key, uint64_t gen)
{
	if (s->cfg.bugs & SIM_BUG_STALE_READ)
		return true;
	return g->kv.pstate == PART_ACTIVE && (g->kv.gen & 0xffffffULL) == gen && owns(&g->kv, key);
}

/*
 * A split at `index' applies: the upper part of the range becomes a new
 * group here, whose configuration is the one in force at that index, read
 * from this node's log as the runtime's kmd_storage_conf_at does; the
 * index is committed, so it is the same on every node.
 */
static void
apply_split(sim *s, int nid, int pid, uint64_t index, const kv_cmd *c)
{
	kv_state   *kv = &s->nodes[nid].g[pid].kv;
	group	   *q;

	if (kv->pstate != PART_ACTIVE || c->gen != kv->gen || c->mid <= kv->lo ||
		c->mid >= kv->hi || c->other >= (uint32_t) s->cfg.groups)
		return;					/* stale: the map moved since it was asked */
	q = &s->nodes[nid].g[c->other];
	if (q->exists)
	{
		violation(s, "simulator", "node %d: split of partition %d into existing partition %u",
				  nid, pid, c->other);
		return;
	}

	/* the new group starts at this index: empty log, the rows already here */
	memset(&q->hs, 0, sizeof(q->hs));
	memset(&q->snap, 0, sizeof(q->snap));
	roster_conf_at(&s->nodes[nid].g[pid], index, &q->snap.conf);
	q->snap_kv = *kv;
	q->snap_kv.lo = c->mid;
	q->snap_kv.gen = kv->gen + 1;
	q->snap_kv.own_children = 0;
	q->snap_kv.children = 0;
	q->snap_kv.absorbed = 0;
	q->kv = q->snap_kv;
	q->applied = 0;
	q->n_log = 0;
	q->exists = true;
	q->image_wanted = false;
	/* what an image of this partition tells of the new one */
	kv->own_children |= 1ULL << c->other;
	kv->children |= 1ULL << c->other;
	kv->child_lo[c->other] = q->kv.lo;
	kv->child_hi[c->other] = q->kv.hi;
	kv->child_gen[c->other] = (uint32_t) q->kv.gen;
	if (!(s->cfg.bugs & SIM_BUG_SPLIT_OVERLAP))
		kv->hi = c->mid;
	kv->gen++;
	if (!generation_seen(s, pid, kv->gen))
		s->splits++;
	check_generation(s, nid, pid, kv);
	check_generation(s, nid, (int) c->other, &q->kv);
	trace(s, EV_NEMESIS, nid, pid, 30, c->other);
	group_start(s, nid, (int) c->other);
}

/*
 * A merge applies in the left partition.  Returns false while the right
 * partition is not applied up to its freeze here: the left one waits.  It
 * waits too for a right partition gone here into this very partition:
 * the tombstone came with the image of another partition, from a node
 * that had applied this merge, and the rows it takes in are gone with it;
 * only an image of this partition can bring them (merge_waits).
 */
static bool
apply_merge(sim *s, int nid, int pid, const kv_cmd *c)
{
	kv_state   *kv = &s->nodes[nid].g[pid].kv;
	group	   *r;
	kv_state   *rk;

	if (kv->pstate != PART_ACTIVE || c->gen != kv->gen ||
		c->other >= (uint32_t) s->cfg.groups || c->other == (uint32_t) pid)
		return true;			/* stale */
	r = &s->nodes[nid].g[c->other];
	if (!r->exists && r->kv.pstate == PART_MERGED && r->kv.merged_into != (uint32_t) pid)
		return true;			/* stale: merged elsewhere, and gone here */
	if (!r->exists || r->image_wanted ||
		(r->applied < c->other_index && !(s->cfg.bugs & SIM_BUG_EARLY_MERGE)))
		return false;
	rk = &r->kv;
	if (rk->pstate != PART_FROZEN || rk->freeze_index != c->other_index ||
		rk->gen != c->other_gen || rk->lo != kv->hi)
		return true;			/* stale */

	for (uint64_t k = 0; k < PKEYS; k++)
		if (owns(rk, k))
			kv->val[k] = rk->val[k];
	for (int ci = 0; ci < MAX_CLIENTS; ci++)
		if (rk->last_seq[ci] > kv->last_seq[ci])
		{
			kv->last_seq[ci] = rk->last_seq[ci];
			kv->last_out[ci] = rk->last_out[ci];
		}
	kv->hi = rk->hi;
	kv->gen++;
	/* what an image of this partition tells of the one it takes in */
	kv->absorbed |= (1ULL << c->other) | rk->absorbed;
	kv->children |= rk->children;
	for (int q = 0; q < SIM_MAX_GROUPS; q++)
		if (rk->children & (1ULL << q))
		{
			kv->child_lo[q] = rk->child_lo[q];
			kv->child_hi[q] = rk->child_hi[q];
			kv->child_gen[q] = rk->child_gen[q];
		}
	if (!generation_seen(s, pid, kv->gen))
		s->merges++;
	s->gone |= 1ULL << c->other;
	check_generation(s, nid, pid, kv);
	trace(s, EV_NEMESIS, nid, pid, 32, c->other);
	part_retire(s, nid, (int) c->other, pid);
	return true;
}

/*
 * The right partition of a merge stops here, as the runtime's does: its
 * group, log and marker go, and a tombstone stays (PART_MERGED, the range
 * and generation it had, the partition `into' that took it in) so that a
 * merge entry naming it again is stale.  Its clients are told to route
 * again.
 */
void
part_retire(sim *s, int nid, int pid, int into)
{
	group	   *g = &s->nodes[nid].g[pid];

	g->kv.pstate = PART_MERGED;
	g->kv.merged_into = (uint32_t) into;
	if (!g->exists)
		return;
	for (size_t i = 0; i < g->n_waiters; i++)
	{
		request		req = {0};

		req.client = g->waiters[i].client;
		req.seq = g->waiters[i].seq;
		req.group = pid;
		reply_client(s, nid, &req, 2, 0);
	}
	g->n_waiters = 0;
	raft_free(g->r);
	g->r = NULL;
	for (size_t i = 0; i < g->n_log; i++)
		free((void *) g->log[i].data);
	g->n_log = 0;
	memset(&g->hs, 0, sizeof(g->hs));
	memset(&g->snap, 0, sizeof(g->snap));
	g->exists = false;
	g->pending = false;
	g->parked = false;
	g->image_wanted = false;
	trace(s, EV_NEMESIS, nid, pid, 33, 0);
}

/*
 * Apply one command of partition `pid' at `index'; false when it must wait.
 * Client writes carry the generation their router saw and are fenced here,
 * the same way on every node, since it depends only on the log.
 */
static bool
apply_command(sim *s, int nid, int pid, uint64_t index, const kv_cmd *c, uint64_t *out)
{
	kv_state   *kv = &s->nodes[nid].g[pid].kv;

	*out = 0;
	switch (c->kind)
	{
		case LIN_PUT:
		case LIN_CAS:
			if ((kv->pstate != PART_ACTIVE || c->gen != kv->gen) &&
				!(s->cfg.bugs & SIM_BUG_NO_FENCING))
			{
				*out = KV_FENCED;
				return true;
			}
			if (!owns(kv, c->key))
				violation(s, "generation fencing",
						  "node %d: partition %d [%u, %u) generation %llu applies key %llu (hash %u)",
						  nid, pid, kv->lo, kv->hi, (unsigned long long) kv->gen,
						  (unsigned long long) c->key, part_hash(c->key));
			*out = kv_apply(kv, c);
			return true;
		case CMD_SPLIT:
			apply_split(s, nid, pid, index, c);
			return true;
		case CMD_FREEZE:
			if (kv->pstate == PART_ACTIVE && c->gen == kv->gen)
			{
				kv->pstate = PART_FROZEN;
				kv->freeze_index = index;
				trace(s, EV_NEMESIS, nid, pid, 31, index);
			}
			return true;
		case CMD_MERGE:
			return apply_merge(s, nid, pid, c);
	}
	return true;
}

/*
 * State machine determinism: after applying the same index, a partition's
 * state is the same on every node (`invariant' names the check: an image
 * installed must hold the state any node had at its index too).  The
 * state is the rows of the keys in the partition's range, the dedup
 * tables and the piece of the map; rows outside the range belong to other
 * partitions.  Being marked merged comes from the left partition's log,
 * at a moment of its own, so it counts as frozen.
 */
void
part_check_state(sim *s, int nid, int pid, const char *invariant)
{
	group	   *g = &s->nodes[nid].g[pid];
	group_truth *t = &s->truth[pid];
	kv_state	kv = g->kv;
	const unsigned char *p = (const unsigned char *) &kv;
	uint64_t	h = 1469598103934665603ULL;

	if (kv.pstate == PART_MERGED)
		kv.pstate = PART_FROZEN;
	for (uint64_t k = 0; k < PKEYS; k++)
		if (!owns(&kv, k))
			kv.val[k] = 0;
	for (size_t i = 0; i < sizeof(kv); i++)
	{
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	h |= 1;						/* never 0, which means unknown */
	if (g->applied == 0 || g->applied > t->len)
		return;					/* the start, or not seen committed: nothing
								 * to compare */
	if (t->state_hash[g->applied] == 0)
		t->state_hash[g->applied] = h;
	else if (t->state_hash[g->applied] != h)
		violation(s, invariant,
				  "node %d: partition %d after applying %llu differs from another node's",
				  nid, pid, (unsigned long long) g->applied);
}

static const raft_entry *
log_entry(const group *g, uint64_t index)
{
	if (g->n_log == 0 || index < g->log[0].index || index > g->log[g->n_log - 1].index)
		return NULL;
	return &g->log[index - g->log[0].index];
}

/*
 * A merge at `index' of partition `pid' waits here for partition `right'
 * to be applied up to its freeze.  If that makes no progress for a while
 * (nobody serves the right partition any more: the nodes that applied the
 * merge retired it), take an image of the left partition at the merge or
 * later, as the runtime's apply worker does: from its leader, or another
 * node.  The wait is shorter when the right partition has no leader here.
 */
static void
merge_waits(sim *s, int nid, int pid, uint64_t index, int right)
{
	group	   *g = &s->nodes[nid].g[pid];
	const group *r = &s->nodes[nid].g[right];
	uint64_t	applied = r->exists ? r->applied : 0;
	bool		leaderless = !r->exists || r->r == NULL || raft_leader(r->r) == RAFT_NONE;
	int			from;

	if (g->merge_wait_index != index || g->merge_wait_applied != applied)
	{
		g->merge_wait_index = index;
		g->merge_wait_applied = applied;
		g->merge_wait_since = s->now;
		return;
	}
	if (s->now < g->merge_wait_since +
		(leaderless ? 3 * ELECTION_TICKS * TICK_MS : CLIENT_TIMEOUT_MS))
		return;
	g->merge_wait_since = s->now;
	from = roster_node(s, raft_leader(g->r));
	if (from == nid || from == 0)
		from = nid % s->cfg.nodes + 1;
	trace(s, EV_IMAGE, nid, pid, 1, (uint64_t) right);
	image_ask(s, nid, pid, from, index);
}

/*
 * Apply what the core handed over and is not applied yet, in order, from
 * the log; stop at a merge that must wait for its right partition.  The
 * state machine is durable, as the runtime's tables are: nothing is
 * applied twice across a crash.
 */
void
part_apply_committed(sim *s, int nid, int pid)
{
	group	   *g = &s->nodes[nid].g[pid];

	while (g->applied < g->handed && !s->failed)
	{
		const raft_entry *e = log_entry(g, g->applied + 1);
		uint64_t	out = 0;

		if (e == NULL)
		{
			violation(s, "simulator", "node %d partition %d: committed entry %llu not on disk",
					  nid, pid, (unsigned long long) g->applied + 1);
			return;
		}
		if (e->type == RAFT_ENTRY_NORMAL && e->len == sizeof(kv_cmd))
		{
			kv_cmd		c;

			memcpy(&c, e->data, sizeof(c));
			if (!apply_command(s, nid, pid, e->index, &c, &out))
			{
				merge_waits(s, nid, pid, e->index, (int) c.other);
				return;
			}
		}
		g->applied = e->index;
		part_check_state(s, nid, pid, "state machine determinism");
		answer_waiters(s, nid, pid, e, out);
	}
}

static int
cmp_range(const void *a, const void *b)
{
	const kv_state *x = *(const kv_state *const *) a;
	const kv_state *y = *(const kv_state *const *) b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/*
 * The range-coverage invariant on one node: the ranges of its active and
 * frozen partitions never overlap and leave no hole.  A hole is allowed
 * while the node waits for the image of a partition it knows from another
 * one's image: that image told what it split off, not what those split off
 * or where they went when merged away; the waiting partition's own image
 * will (and part_converged wants no partition waiting at the end).
 */
void
part_check_map(sim *s, int nid)
{
	const kv_state *r[SIM_MAX_GROUPS];
	int			n = 0;
	uint32_t	at = 0;
	bool		wanting = false;

	for (int pid = 0; pid < s->cfg.groups; pid++)
	{
		const group *g = &s->nodes[nid].g[pid];

		if (g->exists && (g->kv.pstate == PART_ACTIVE || g->kv.pstate == PART_FROZEN))
		{
			r[n++] = &g->kv;
			check_generation(s, nid, pid, &g->kv);
		}
		wanting |= g->exists && g->image_wanted;
	}
	if (n == 0 && !roster_listed(s, nid))
		return;					/* a server that never joined has no map */
	qsort(r, n, sizeof(r[0]), cmp_range);
	for (int i = 0; i < n && !s->failed; i++)
	{
		if (r[i]->lo < at || r[i]->hi <= r[i]->lo || (r[i]->lo > at && !wanting))
			violation(s, "range coverage", "node %d: [%u, %u) follows a map covering up to %u (%s)",
					  nid, r[i]->lo, r[i]->hi, at, r[i]->lo < at ? "overlap" :
					  r[i]->lo > at ? "hole" : "empty range");
		at = r[i]->hi;
	}
	if (!s->failed && at != HASH_SPACE && !wanting)
		violation(s, "range coverage", "node %d: the map covers up to %u of %u",
				  nid, at, (unsigned) HASH_SPACE);
}

/*
 * Have all members of the roster applied every partition's log to the end
 * and do their maps agree?  If not, `why' says where they differ.  A node
 * outside the roster (or leaving it) gets nothing more and is not asked.
 */
bool
part_converged(sim *s, char *why, size_t len)
{
	int			ref = 1;

	while (ref < s->cfg.nodes && !roster_member(s, ref))
		ref++;
	for (int pid = 0; pid < s->cfg.groups; pid++)
	{
		const group *first = &s->nodes[ref].g[pid];
		uint64_t	commit = 0;

		/* a partition merged away runs nowhere */
		for (int nid = 1; nid <= s->cfg.nodes && (s->gone & (1ULL << pid)); nid++)
			if (roster_member(s, nid) && s->nodes[nid].g[pid].exists)
			{
				snprintf(why, len, "partition %d, merged away, still runs on node %d", pid, nid);
				return false;
			}

		for (int nid = 1; nid <= s->cfg.nodes; nid++)
		{
			const group *g = &s->nodes[nid].g[pid];

			if (!roster_member(s, nid))
				continue;
			if (g->exists != first->exists)
			{
				snprintf(why, len, "partition %d exists on node %d but not on node %d", pid,
						 g->exists ? nid : ref, g->exists ? ref : nid);
				return false;
			}
			if (g->exists && raft_commit_index(g->r) > commit)
				commit = raft_commit_index(g->r);
		}
		for (int nid = 1; first->exists && nid <= s->cfg.nodes; nid++)
		{
			const group *g = &s->nodes[nid].g[pid];

			if (!roster_member(s, nid))
				continue;
			if (g->applied != commit || g->image_wanted)
			{
				snprintf(why, len, "node %d applied partition %d up to %llu of %llu", nid, pid,
						 (unsigned long long) g->applied, (unsigned long long) commit);
				return false;
			}
			if (g->kv.pstate != first->kv.pstate || g->kv.gen != first->kv.gen ||
				g->kv.lo != first->kv.lo || g->kv.hi != first->kv.hi)
			{
				snprintf(why, len, "nodes %d and %d disagree on partition %d", ref, nid, pid);
				return false;
			}
		}
	}
	return true;
}

/* ------------------------------------------------------------------------
 * The operator: splits and merges, asked of partition leaders
 * ------------------------------------------------------------------------
 */

/* Propose a partition command at the leader of `pid'; false if none. */
static bool
propose_at_leader(sim *s, int pid, const kv_cmd *c, uint32_t what)
{
	raft_id		l = leader_of(s, pid);
	group	   *g;

	if (l == 0 || s->nodes[l].g[pid].pending)
		return false;
	g = &s->nodes[l].g[pid];
	if (raft_propose(g->r, c, sizeof(*c), NULL, NULL) != 0)
		return false;
	trace(s, EV_NEMESIS, l, pid, what, c->other);
	group_process(s, (int) l, pid);
	return true;
}

/* Split a random active partition in two, at its leader's view. */
static void
split_one(sim *s)
{
	int			pid = (int) prng_below(&s->rng, s->next_partition);
	raft_id		l = leader_of(s, pid);
	const kv_state *kv;
	kv_cmd		c;

	if (l == 0 || s->next_partition >= s->cfg.groups)
		return;
	kv = &s->nodes[l].g[pid].kv;
	if (kv->pstate != PART_ACTIVE || kv->hi - kv->lo < 2)
		return;
	memset(&c, 0, sizeof(c));
	c.kind = CMD_SPLIT;
	c.gen = kv->gen;
	c.other = (uint32_t) s->next_partition;
	c.mid = kv->lo + (kv->hi - kv->lo) / 2;
	/* an id is used once, whether or not this proposal commits */
	if (propose_at_leader(s, pid, &c, 20))
		s->next_partition++;
}

/*
 * Drive a merge a step: freeze a right partition, then, once the left
 * partition's leader has it frozen, commit the merge in the left one.
 */
static void
merge_step(sim *s)
{
	int			right = s->merge_right;
	raft_id		l;
	const kv_state *rk;
	kv_cmd		c;

	if (right < 0)
	{
		/* a random adjacent pair, both active, at the leader of the left */
		int			left = (int) prng_below(&s->rng, s->next_partition);
		const group *lg;

		l = leader_of(s, left);
		if (l == 0)
			return;
		lg = &s->nodes[l].g[left];
		if (lg->kv.pstate != PART_ACTIVE || lg->kv.hi == HASH_SPACE)
			return;
		for (int pid = 0; pid < s->next_partition; pid++)
		{
			const group *rg = &s->nodes[l].g[pid];

			if (rg->exists && rg->kv.pstate == PART_ACTIVE && rg->kv.lo == lg->kv.hi)
				right = pid;
		}
		if (right < 0)
			return;
		s->merge_right = right;
	}

	/* merged: done (the nodes that applied it retired the right partition) */
	if (s->gone & (1ULL << right))
	{
		s->merge_right = -1;
		return;
	}

	/* where the right partition is, as its leader sees it */
	l = leader_of(s, right);
	if (l == 0)
		return;
	rk = &s->nodes[l].g[right].kv;
	memset(&c, 0, sizeof(c));
	c.other = (uint32_t) right;
	if (rk->pstate == PART_MERGED)
	{
		s->merge_right = -1;	/* done */
		return;
	}
	if (rk->pstate == PART_ACTIVE)
	{
		c.kind = CMD_FREEZE;
		c.gen = rk->gen;
		(void) propose_at_leader(s, right, &c, 21);
		return;
	}

	/* frozen: the merge goes to whichever partition is its left neighbour */
	for (int pid = 0; pid < s->next_partition; pid++)
	{
		const group *lg = &s->nodes[l].g[pid];

		if (lg->exists && lg->kv.pstate == PART_ACTIVE && lg->kv.hi == rk->lo)
		{
			raft_id		ll = leader_of(s, pid);

			if (ll == 0 || !roster_merge_ready(s, (int) ll, pid, right))
				return;
			c.kind = CMD_MERGE;
			c.gen = s->nodes[ll].g[pid].kv.gen;
			c.other_gen = rk->gen;
			c.other_index = rk->freeze_index;
			(void) propose_at_leader(s, pid, &c, 22);
			return;
		}
	}
}

/* ------------------------------------------------------------------------
 * The host's own moves on a tick, by the runtime's rules (src/host)
 * ------------------------------------------------------------------------
 */

/* How long a right partition stays frozen before its left neighbour's
 * leader merges it itself (kommander.propose_timeout, ten election
 * timeouts), and how often a node balances leaders
 * (kommander.balance_interval, as many). */
#define MERGE_WAIT_MS (10 * ELECTION_TICKS * TICK_MS)
#define BALANCE_MS (10 * ELECTION_TICKS * TICK_MS)

/*
 * Called on a tick of group `gi' at node `nid': if it leads an active
 * partition whose right neighbour has stayed frozen here for a while (the
 * operator's merge went away after the freeze), it proposes the merge, as
 * the runtime's kmd_finish_merge does (host_merge_due, host_merge_ready).
 */
void
part_finish_merge(sim *s, int nid, int gi)
{
	group	   *g = &s->nodes[nid].g[gi];
	int			right = -1;
	kv_cmd		c;

	if (raft_get_role(g->r) != RAFT_LEADER)
		return;
	if (g->kv.pstate == PART_ACTIVE && g->kv.hi != HASH_SPACE)
		for (int pid = 0; pid < s->cfg.groups; pid++)
		{
			const group *q = &s->nodes[nid].g[pid];

			if (pid != gi && q->exists && q->kv.pstate == PART_FROZEN && q->kv.lo == g->kv.hi)
				right = pid;
		}
	/* the watch names partitions from 1, 0 for none */
	if (!host_merge_due(g->r, &g->merge, right + 1, s->now, MERGE_WAIT_MS, g->applied) ||
		!roster_merge_ready(s, nid, gi, right))
		return;
	memset(&c, 0, sizeof(c));
	c.kind = CMD_MERGE;
	c.gen = g->kv.gen;
	c.other = (uint32_t) right;
	c.other_gen = s->nodes[nid].g[right].kv.gen;
	c.other_index = s->nodes[nid].g[right].kv.freeze_index;
	if (raft_propose(g->r, &c, sizeof(c), &g->merge.index, &g->merge.term) == RAFT_OK)
		trace(s, EV_NEMESIS, nid, gi, 23, (uint64_t) right);
}

/*
 * Called on a tick of node `nid', every BALANCE_MS: if it leads more than
 * its share of the active partitions, as it sees them, it hands one to
 * the least loaded voter it hears from, as the runtime's workers do
 * (host_balance_to).
 */
void
part_balance(sim *s, int nid)
{
	node	   *n = &s->nodes[nid];
	host_heard	heard;
	host_load	l;
	int			to;

	if (s->now < n->balanced + BALANCE_MS)
		return;
	n->balanced = s->now;
	roster_heard(s, nid, &heard);
	host_load_init(&l);
	for (int m = 1; m <= s->cfg.nodes; m++)
		if (s->roster[m] == ROSTER_VOTER && host_heard_has(&heard, s->ident[m]))
			host_load_voter(&l, s->ident[m]);
	for (int gi = 0; gi < s->cfg.groups; gi++)
	{
		const group *g = &n->g[gi];

		if (g->exists && !g->pending && g->kv.pstate == PART_ACTIVE &&
			raft_leader(g->r) != RAFT_NONE)
			host_load_partition(&l, raft_leader(g->r));
	}
	host_load_done(&l);
	to = host_balance_to(&l, s->ident[nid]);
	for (int gi = 0; gi < s->cfg.groups && to >= 0; gi++)
	{
		group	   *g = &n->g[gi];

		if (g->exists && !g->pending && g->kv.pstate == PART_ACTIVE &&
			raft_get_role(g->r) == RAFT_LEADER &&
			raft_conf_role(raft_get_conf(g->r), l.voters[to]) == RAFT_VOTER &&
			raft_transfer_leader(g->r, l.voters[to]) == RAFT_OK)
		{
			trace(s, EV_NEMESIS, nid, gi, 54, l.voters[to]);
			group_process(s, nid, gi);
			return;
		}
	}
}

/* The operator's next move: a split, a merge step, or a roster change. */
void
part_nemesis(sim *s)
{
	if (s->cfg.membership && prng_chance(&s->rng, 250))
		roster_change(s);
	else if (s->merge_right < 0 && prng_chance(&s->rng, 500))
		split_one(s);
	else
		merge_step(s);
}
