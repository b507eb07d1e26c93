/*-------------------------------------------------------------------------
 *
 * guc.c
 *	  Definition of kommander's settings.
 *
 * Settings that size shared memory or processes need a restart; timing and
 * batching settings can be changed with a reload (SIGHUP), and the workers
 * pick them up at their next loop iteration.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/guc.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sched.h>
#include <unistd.h>

#include "utils/guc.h"

#include "guc.h"
#include "shmem.h"

char	   *kmd_database = NULL;
int			kmd_workers = 0;
int			kmd_n_workers = 1;
int			kmd_max_partitions = 1024;
int			kmd_max_leases = 4096;
int			kmd_election_timeout = 1000;
int			kmd_heartbeat_interval = 100;
int			kmd_propose_timeout = 10000;
int			kmd_max_batch_entries = 64;
int			kmd_max_batch_bytes = 1024 * 1024;
int			kmd_max_inflight_batches = 64;
int			kmd_snapshot_threshold = 10000;
int			kmd_promote_max_lag = 1000;
int			kmd_balance_interval = 10000;
int			kmd_max_queued_proposals = 128;
int			kmd_request_retention = 600000;
int			kmd_image_timeout = 60000;

/*
 * kommander.workers = 0: one Raft worker per three cores this process may
 * run on, from one to four.  Under load a node's Raft worker does about a
 * third of the node's work (the log's writes and flushes; the backends,
 * the peers' stream backends and the apply worker do the rest), so one keeps
 * up with three busy cores; and each worker flushes the log on its own, so
 * fewer workers make fewer, larger flushes.  Four, with the launcher, the
 * apply worker and the resolver, stay within the default
 * max_worker_processes; more
 * were never measured.  The setting keeps what was written (a reload then
 * finds it unchanged); kmd_n_workers holds the number in use, which SHOW
 * tells.
 */
static void
choose_workers(void)
{
	cpu_set_t	cpus;
	long		cores;

	if (kmd_workers != 0)
	{
		kmd_n_workers = kmd_workers;
		return;
	}
	if (sched_getaffinity(0, sizeof(cpus), &cpus) == 0)
		cores = CPU_COUNT(&cpus);
	else
		cores = sysconf(_SC_NPROCESSORS_ONLN);
	kmd_n_workers = (int) Min(Max(cores / 3, 1), 4);
}

static const char *
show_workers(void)
{
	static char buf[16];

	snprintf(buf, sizeof(buf), "%d", kmd_n_workers);
	return buf;
}

void
kmd_define_gucs(void)
{
	DefineCustomStringVariable("kommander.database",
							   "Database whose kommander schema the workers serve.",
							   NULL, &kmd_database, "postgres",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.workers",
							"Number of Raft worker processes.",
							"0 chooses one per three CPU cores, from one to four.",
							&kmd_workers, 0, 0, KMD_MAX_WORKERS,
							PGC_POSTMASTER, 0, NULL, NULL, show_workers);
	DefineCustomIntVariable("kommander.max_partitions",
							"Largest number of partitions this node can hold.",
							NULL, &kmd_max_partitions, 1024, 2, 65536,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.max_leases",
							"Most leases a node holds when it grants another.",
							"Checked by the node that proposes a grant; every node counts down up to twice as many at once.",
							&kmd_max_leases, 4096, 1, 65536,
							PGC_POSTMASTER, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.election_timeout",
							"Base Raft election timeout.",
							"A follower that hears nothing from its leader for between one and two election timeouts starts an election.",
							&kmd_election_timeout, 1000, 50, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.heartbeat_interval",
							"Interval of leader heartbeats, and the Raft tick.",
							NULL, &kmd_heartbeat_interval, 100, 5, 60000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.propose_timeout",
							"How long kmd_propose and friends wait for an outcome.",
							NULL, &kmd_propose_timeout, 10000, 10, 3600000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.max_batch_entries",
							"Most log entries in one append message.",
							NULL, &kmd_max_batch_entries, 64, 1, 65536,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.max_batch_bytes",
							"Most bytes of entries in one append message.",
							NULL, &kmd_max_batch_bytes, 1024 * 1024, 1024, 64 * 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_BYTE, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.max_inflight_batches",
							"Most append messages in flight per follower and partition, and batches not yet written to a peer connection.",
							NULL, &kmd_max_inflight_batches, 64, 1, 4096,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.snapshot_threshold",
							"Log entries kept after the applied index before the log is truncated.",
							NULL, &kmd_snapshot_threshold, 10000, 10, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.promote_max_lag",
							"Most entries a learner may lag behind and still be promoted.",
							NULL, &kmd_promote_max_lag, 1000, 0, INT_MAX,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.balance_interval",
							"How often a node that leads more than its share of partitions hands one over.",
							"0 turns the automatic balancer off; kmd_rebalance() still works.",
							&kmd_balance_interval, 10000, 0, 3600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.max_queued_proposals",
							"Most proposals of this node that may wait for one partition.",
							"A proposal beyond it fails at once with SQLSTATE K0007.",
							&kmd_max_queued_proposals, 128, 1, KMD_NUM_SLOTS,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.request_retention",
							"How long the outcome of a command with a request_id is kept for its retries.",
							"Carried in each entry this node proposes; applying it forgets, on every node, the outcomes of the partition's entries proposed longer ago than this before it.",
							&kmd_request_retention, 600000, 1000, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	DefineCustomIntVariable("kommander.image_timeout",
							"How long the apply worker waits for a word from a node sending it an image before it asks another node.",
							"Each wait counts: the connection, the manifest (which counts the partition's rows of every control table first), each part of a table's rows.  0 waits without limit.",
							&kmd_image_timeout, 60000, 0, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);
	MarkGUCPrefixReserved("kommander");
	choose_workers();
}
