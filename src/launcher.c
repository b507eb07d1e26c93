/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The kommander launcher: a static background worker that waits until
 *	  the extension exists in kommander.database and this node belongs to
 *	  a cluster, then starts the Raft workers and the apply worker (and
 *	  the resolver of the peers' host names, once a Raft worker needs it),
 *	  and starts again any of them that stops.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/launcher.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>

#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

#include "apply.h"
#include "guc.h"
#include "launcher.h"
#include "shmem.h"
#include "xact.h"

/*
 * A worker that stops is started again after a delay that doubles from
 * RESTART_MIN_MS up to RESTART_MAX_MS while it keeps stopping, and starts
 * over once it has run for RESTART_RESET_MS: a worker that crashes at once
 * is not started every second for ever.
 */
#define RESTART_MIN_MS 1000
#define RESTART_MAX_MS 60000
#define RESTART_RESET_MS 60000

typedef struct Child
{
	const char *function;
	const char *name;			/* in the log */
	const char *bgw_name;		/* its process's name and type */
	const char *bgw_type;
	int			arg;
	bool		on_demand;		/* started once resolver_wanted */
	BackgroundWorkerHandle *handle;
	TimestampTz started_at;
	TimestampTz stopped_at;
	int			delay_ms;		/* before the next start */
} Child;

void
kmd_launcher_register(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 5;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "kommander");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "kmd_launcher_main");
	snprintf(bgw.bgw_name, BGW_MAXLEN, "kommander launcher");
	snprintf(bgw.bgw_type, BGW_MAXLEN, "kommander launcher");
	RegisterBackgroundWorker(&bgw);
}

static bool
start_child(Child *c)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	/* the resolver reads shared memory only */
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS;
	if (!c->on_demand)
		bgw.bgw_flags |= BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(bgw.bgw_library_name, BGW_MAXLEN, "kommander");
	snprintf(bgw.bgw_function_name, BGW_MAXLEN, "%s", c->function);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "%s", c->bgw_name);
	snprintf(bgw.bgw_type, BGW_MAXLEN, "%s", c->bgw_type);
	bgw.bgw_main_arg = Int32GetDatum(c->arg);
	bgw.bgw_notify_pid = MyProcPid;
	if (!RegisterDynamicBackgroundWorker(&bgw, &c->handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start %s", bgw.bgw_name),
				 errhint("Raise max_worker_processes: kommander needs kommander.workers + 3 background workers.")));
		c->handle = NULL;
		return false;
	}
	return true;
}

/* Is the extension installed here, and does this node belong to a cluster? */
static bool
ready_to_serve(void)
{
	static bool warned = false;
	bool		ready = false;
	MemoryContext cxt = kmd_xact_begin();

	if (SPI_execute("SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'kommander'",
					true, 1) == SPI_OK_SELECT && SPI_processed == 1)
	{
		kmd_catalog_refresh();
		ready = kmd_shared->member;
	}
	kmd_xact_commit(cxt);
	if (kmd_shared->went_back_from != 0 && !warned)
	{
		kmd_report_went_back(WARNING);
		warned = true;
	}
	return ready;
}

static void
launcher_exit(int code, Datum arg)
{
	if (kmd_shared->launcher_latch == MyLatch)
		kmd_shared->launcher_latch = NULL;
}

/*
 * Stop the workers a launcher before this one left running (it was
 * terminated, or failed): nobody would start them again when they stop,
 * and this launcher starts its own.  Waits until they have exited.
 */
static void
stop_orphans(void)
{
	bool		logged = false;

	for (;;)
	{
		pid_t		pids[KMD_MAX_WORKERS + 1];
		pid_t		resolver;
		int			n = 0;
		int			alive = 0;

		LWLockAcquire(kmd_shared->lock, LW_SHARED);
		for (int w = 0; w < kmd_shared->n_workers; w++)
			pids[n++] = kmd_shared->workers[w].pid;
		pids[n++] = kmd_shared->apply_pid;
		resolver = kmd_shared->resolver_pid;
		LWLockRelease(kmd_shared->lock);

		for (int i = 0; i < n; i++)
			if (pids[i] != 0 && kill(pids[i], SIGTERM) == 0)
				alive++;

		/*
		 * Not waited for: it may wait for a name server, and a resolver of
		 * this launcher's stops at once while it runs (kmd_claim_process).
		 */
		if (resolver != 0)
			(void) kill(resolver, SIGTERM);
		if (alive == 0)
			return;
		if (!logged)
			ereport(LOG,
					(errmsg("kommander launcher stops %d workers an earlier launcher left running",
							alive)));
		logged = true;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

void
kmd_launcher_main(Datum arg)
{
	Child	   *children;
	int			n_children = kmd_n_workers + 2;
	bool		started = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(kmd_database, NULL, 0);
	/* a search_path of the database's owner would choose its operators */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	kmd_shared->launcher_latch = MyLatch;
	before_shmem_exit(launcher_exit, 0);
	stop_orphans();

	children = palloc0(sizeof(Child) * n_children);
	children[0].function = "kmd_apply_main";
	children[0].name = "apply worker";
	children[0].bgw_name = children[0].bgw_type = "kommander apply";
	for (int i = 0; i < kmd_n_workers; i++)
	{
		Child	   *c = &children[i + 1];

		c->function = "kmd_worker_main";
		c->name = psprintf("raft worker %d", i);
		c->bgw_name = psprintf("kommander raft worker %d", i);
		c->bgw_type = "kommander raft worker";
		c->arg = i;
	}
	children[n_children - 1].function = "kmd_resolver_main";
	children[n_children - 1].name = "resolver";
	children[n_children - 1].bgw_name = children[n_children - 1].bgw_type = "kommander resolver";
	children[n_children - 1].on_demand = true;

	for (;;)
	{
		long		timeout = started ? 5000 : 1000;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}

		if (!started)
			started = ready_to_serve();
		if (started)
		{
			TimestampTz now = GetCurrentTimestamp();

			for (int i = 0; i < n_children; i++)
			{
				Child	   *c = &children[i];
				pid_t		pid;

				if (c->handle != NULL &&
					GetBackgroundWorkerPid(c->handle, &pid) == BGWH_STOPPED)
				{
					pfree(c->handle);
					c->handle = NULL;
					c->stopped_at = now;
					if (c->delay_ms == 0 ||
						TimestampDifferenceExceeds(c->started_at, now, RESTART_RESET_MS))
						c->delay_ms = RESTART_MIN_MS;
					else
						c->delay_ms = Min(c->delay_ms * 2, RESTART_MAX_MS);
					ereport(LOG,
							(errmsg("kommander %s stopped; starting it again in %d ms",
									c->name, c->delay_ms)));
				}
				if (c->handle == NULL && c->on_demand && c->started_at == 0 &&
					!kmd_shared->resolver_wanted)
					continue;
				if (c->handle == NULL)
				{
					long		wait = c->stopped_at == 0 ? 0 :
						c->delay_ms - TimestampDifferenceMilliseconds(c->stopped_at, now);

					if (wait > 0)
					{
						timeout = Min(timeout, wait);
						continue;
					}
					if (start_child(c))
						c->started_at = now;
					else
						timeout = Min(timeout, RESTART_MIN_MS);
				}
			}
		}

		kmd_xact_report_stats();
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
