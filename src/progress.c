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

#include "stats.h"
#include "worker.h"

#define PUBLISH_MS 100

static bool touched = true;

void
kmd_progress_touched(void)
{
	touched = true;
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

			for (uint32 i = 0; i < conf->n && n < KMD_MAX_NODES; i++)
			{
				raft_progress pr;

				if (conf->members[i].id == raft_self(g->r) ||
					raft_get_progress(g->r, conf->members[i].id, &pr) != RAFT_OK)
					continue;
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
