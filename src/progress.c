/*-------------------------------------------------------------------------
 *
 * progress.c
 *	  The Raft worker publishes, for each partition it leads, its view of
 *	  every other member of the group (match and next index, messages in
 *	  flight, probe, replicate or snapshot) for kommander.peers.
 *
 * At most every PUBLISH_MS, and only after the loop touched its groups
 * (an idle worker publishes nothing); a partition's entry is written only
 * when what it shows changed (stats.c compares), so a busy leader does not
 * write shared memory for every append.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/progress.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/hsearch.h"
#include "utils/timestamp.h"

#include "shmem.h"
#include "stats.h"
#include "worker.h"

#define PUBLISH_MS 100
#define LOST_WARN_MS 60000

static bool touched = true;

void
kmd_progress_touched(void)
{
	touched = true;
}

/*
 * A member of a group this node leads says its log ends before entries it
 * acknowledged (raft_progress.lost): its data went back.
 */
static void
warn_lost(KmdGroup *g, raft_id member, const raft_progress *pr)
{
	char		name[NAMEDATALEN] = "";
	KmdNode    *node;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	node = kmd_node_find((int32) member);
	if (node != NULL)
		strlcpy(name, node->name, sizeof(name));
	LWLockRelease(kmd_shared->lock);
	ereport(WARNING,
			(errmsg("node %d (%s) lost entries of partition %d that it had acknowledged",
					(int) member, name, g->partition_id),
			 errdetail("It acknowledged the log up to index " UINT64_FORMAT
					   " and now holds it up to index " UINT64_FORMAT " at most: "
					   "its data went back (it was started from an older copy). "
					   "It is not sent what it lost as if it were merely behind.",
					   (uint64) pr->match, (uint64) pr->lost_end),
			 errhint("Remove it with kmd_remove_node() and join a fresh server in its place.")));
}

void
kmd_progress_publish(void)
{
	static TimestampTz last = 0;
	TimestampTz now;
	HASH_SEQ_STATUS seq;
	KmdGroup   *g;

	if (!touched)
		return;
	now = GetCurrentTimestamp();
	if (!TimestampDifferenceExceeds(last, now, PUBLISH_MS))
		return;
	last = now;
	touched = false;
	hash_seq_init(&seq, kmd_worker_groups());
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		KmdPeerProgress peers[KMD_MAX_NODES];
		int			n = 0;

		memset(peers, 0, sizeof(peers));
		if (raft_get_role(g->r) == RAFT_LEADER && !g->parked)
		{
			const raft_conf *conf = raft_get_conf(g->r);

			/* every lost member of the group, once a minute while it lasts */
			bool		warn = g->lost_warned_at == 0 ||
				TimestampDifferenceExceeds(g->lost_warned_at, now, LOST_WARN_MS);

			for (uint32 i = 0; i < conf->n && n < KMD_MAX_NODES; i++)
			{
				raft_progress pr;

				if (conf->members[i].id == raft_self(g->r) ||
					raft_get_progress(g->r, conf->members[i].id, &pr) != RAFT_OK)
					continue;
				if (pr.lost && warn)
				{
					warn_lost(g, conf->members[i].id, &pr);
					g->lost_warned_at = now;
				}
				peers[n].node_id = (int32) conf->members[i].id;
				peers[n].state = pr.state;
				peers[n].inflight = pr.inflight;
				peers[n].match = pr.match;
				peers[n].next = pr.next;
				n++;
			}
		}
		(void) kmd_stats_publish_peers(g->part, g->partition_id, peers, n);
	}
}
