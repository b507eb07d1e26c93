/*-------------------------------------------------------------------------
 *
 * routing.c
 *	  Routing keys to partitions: kmd_key_hash(), kmd_route() and the
 *	  lookup kmd_propose uses, over the partition map cached in shared
 *	  memory.
 *
 * The hash is Postgres's hash_bytes_extended() with seed 0: its value for a
 * given byte string does not depend on the platform.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/routing.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "errcodes.h"
#include "request.h"
#include "routing.h"
#include "shmem.h"

PG_FUNCTION_INFO_V1(kmd_key_hash);
PG_FUNCTION_INFO_V1(kmd_route);

int64
kmd_hash_key(const char *key, int len)
{
	return (int64) hash_bytes_extended((const unsigned char *) key, len, 0);
}

int32
kmd_route_key(const char *key, int len, uint64 *generation, int32 *state,
			  int32 *leader)
{
	int64		lo;

	return kmd_route_hash(kmd_hash_key(key, len), generation, state, leader, &lo);
}

int32
kmd_route_hash(int64 h, uint64 *generation, int32 *state, int32 *leader,
			   int64 *lo)
{
	int32		found = -1;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < kmd_shared->partitions_used; i++)
	{
		KmdPartition *part = &kmd_shared->partitions[i];

		if (part->partition_id <= 0 || part->state == KMD_PART_GONE)
			continue;
		if (h >= part->lo && h <= part->hi)
		{
			found = part->partition_id;
			*generation = part->generation;
			*state = part->state;
			*leader = part->leader;
			*lo = part->lo;
			break;
		}
	}
	LWLockRelease(kmd_shared->lock);
	if (found < 0)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_PARTITION_FROZEN),
				 errmsg("no partition owns key hash " INT64_FORMAT, h),
				 errhint("Retry: the partition map may be changing.")));
	return found;
}

Datum
kmd_key_hash(PG_FUNCTION_ARGS)
{
	text	   *key = PG_GETARG_TEXT_PP(0);

	PG_RETURN_INT64(kmd_hash_key(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)));
}

Datum
kmd_route(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	text	   *key;
	uint64		generation;
	int32		state;
	int32		leader;
	int32		partition_id;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	char	   *leader_name = NULL;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("key must not be null")));
	kmd_require_member();
	key = PG_GETARG_TEXT_PP(0);
	partition_id = kmd_route_key(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key),
								 &generation, &state, &leader);

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	{
		KmdNode    *node = leader ? kmd_node_find(leader) : NULL;

		if (node != NULL)
			leader_name = pstrdup(node->name);
	}
	LWLockRelease(kmd_shared->lock);

	InitMaterializedSRF(fcinfo, 0);
	values[0] = Int32GetDatum(partition_id);
	values[1] = Int64GetDatum((int64) generation);
	if (leader_name)
		values[2] = CStringGetTextDatum(leader_name);
	else
		nulls[2] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}
