/*-------------------------------------------------------------------------
 *
 * kommander.c
 *	  Entry point of the kommander library: _PG_init defines the settings,
 *	  asks for shared memory, installs the guard on control tables' DDL and
 *	  registers the launcher.
 *
 * kommander must be loaded through shared_preload_libraries: its workers
 * and shared memory exist only then.  The same library is the output
 * plugin "kommander" (decode.c), which needs none of that: a walsender or
 * a backend that loads it for logical decoding on a server that does not
 * preload it gets the plugin only.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/kommander.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "replication/slot.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "storage/shmem.h"

#include "guard.h"
#include "guc.h"
#include "keyrange.h"
#include "launcher.h"
#include "lease.h"
#include "shmem.h"
#include "stats.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

static void
shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	kmd_shmem_request();
	RequestAddinShmemSpace(kmd_stats_shmem_size());
	kmd_lease_shmem_request();
}

static void
shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	kmd_shmem_startup();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	kmd_stats_shmem_startup();
	LWLockRelease(AddinShmemInitLock);
	kmd_lease_shmem_startup();
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
	{
		/* loaded as an output plugin: decoding needs no shared memory */
		if (am_walsender || MyReplicationSlot != NULL)
			return;
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kommander must be loaded via shared_preload_libraries"),
				 errhint("Add kommander to shared_preload_libraries in postgresql.conf and restart the server.")));
	}

	kmd_define_gucs();

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = shmem_startup;

	kmd_guard_install();
	kmd_keyrange_install();

	kmd_launcher_register();
}
