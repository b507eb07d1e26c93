/*-------------------------------------------------------------------------
 *
 * storage.c
 *	  Durable Raft state in tables: reading a group back at start, and
 *	  writing each ready batch (entries, truncations, hard state, snapshot
 *	  marker) inside the Raft worker's per-iteration transaction.
 *
 * Entries are inserted into the log table, and hard states updated, with
 * the executor's routines for a row, without a statement (planning and
 * starting one cost more than the writes).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/storage.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "utils/snapmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "storage.h"

/* A row of kommander.log on its way in */
typedef struct KmdLogRow
{
	int32		partition_id;
	int64		index;
	int64		term;
	int16		kind;
	bytea	   *data;
} KmdLogRow;

/* Plans kept for the life of the process. */
static SPIPlanPtr plan_truncate = NULL;

/* Planned once, for any arguments. */
static SPIPlanPtr
keep_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

bytea *
kmd_conf_encode(const raft_conf *conf)
{
	int			len = conf->n * 8;
	bytea	   *b = palloc(VARHDRSZ + len);
	unsigned char *p = (unsigned char *) VARDATA(b);

	SET_VARSIZE(b, VARHDRSZ + len);
	for (uint32 i = 0; i < conf->n; i++)
	{
		uint32		v[2] = {conf->members[i].id, conf->members[i].role};

		for (int k = 0; k < 2; k++)
		{
			p[0] = v[k] & 0xff;
			p[1] = (v[k] >> 8) & 0xff;
			p[2] = (v[k] >> 16) & 0xff;
			p[3] = (v[k] >> 24) & 0xff;
			p += 4;
		}
	}
	return b;
}

bool
kmd_conf_decode(const char *data, int len, raft_conf *conf)
{
	const unsigned char *p = (const unsigned char *) data;

	memset(conf, 0, sizeof(*conf));
	if (len % 8 != 0 || len / 8 > RAFT_MAX_MEMBERS)
		return false;
	conf->n = len / 8;
	for (uint32 i = 0; i < conf->n; i++)
	{
		uint32		v[2];

		for (int k = 0; k < 2; k++)
		{
			v[k] = (uint32) p[0] | ((uint32) p[1] << 8) |
				((uint32) p[2] << 16) | ((uint32) p[3] << 24);
			p += 4;
		}
		conf->members[i].id = v[0];
		conf->members[i].role = v[1];
	}
	return true;
}

void
kmd_storage_create_group(int32 partition_id, const raft_conf *conf)
{
	Datum		values[2];
	Oid			types[2] = {INT4OID, BYTEAOID};

	values[0] = Int32GetDatum(partition_id);
	values[1] = PointerGetDatum(kmd_conf_encode(conf));
	if (SPI_execute_with_args("INSERT INTO kommander.hard_state VALUES ($1, 0, 0, 0)",
							  1, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not create the hard state of partition %d", partition_id);
	if (SPI_execute_with_args("INSERT INTO kommander.snapshot VALUES ($1, 0, 0, $2)",
							  2, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not create the snapshot marker of partition %d", partition_id);
	if (SPI_execute_with_args("INSERT INTO kommander.applied VALUES ($1, 0, 0) "
							  "ON CONFLICT (partition_id) DO NOTHING",
							  1, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not create the applied index of partition %d", partition_id);
}

bool
kmd_storage_group_exists(int32 partition_id)
{
	Datum		values[1] = {Int32GetDatum(partition_id)};
	Oid			types[1] = {INT4OID};

	if (SPI_execute_with_args("SELECT 1 FROM kommander.hard_state h "
							  "JOIN kommander.snapshot s USING (partition_id) "
							  "WHERE partition_id = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the state of partition %d", partition_id);
	return SPI_processed > 0;
}

static int64
get_int64(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	if (isnull)
		return 0;
	return SPI_gettypeid(desc, col) == INT2OID ? DatumGetInt16(d) :
		SPI_gettypeid(desc, col) == INT4OID ? DatumGetInt32(d) : DatumGetInt64(d);
}

void
kmd_storage_load(int32 partition_id, raft_durable *out, bool *image_wanted)
{
	Datum		values[2];
	Oid			types[2] = {INT4OID, INT8OID};
	raft_entry *entries;

	memset(out, 0, sizeof(*out));
	values[0] = Int32GetDatum(partition_id);

	if (SPI_execute_with_args("SELECT term, vote, commit_index FROM kommander.hard_state "
							  "WHERE partition_id = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "partition %d has no hard state", partition_id);
	out->hard_state.term = get_int64(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	out->hard_state.vote = get_int64(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	out->hard_state.commit = get_int64(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

	if (SPI_execute_with_args("SELECT idx, term, conf, image_wanted FROM kommander.snapshot "
							  "WHERE partition_id = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "partition %d has no snapshot marker", partition_id);
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		bytea	   *conf;

		out->snapshot.index = get_int64(tup, desc, 1);
		out->snapshot.term = get_int64(tup, desc, 2);
		conf = DatumGetByteaPP(SPI_getbinval(tup, desc, 3, &isnull));
		if (isnull || !kmd_conf_decode(VARDATA_ANY(conf), VARSIZE_ANY_EXHDR(conf),
									   &out->snapshot.conf))
			elog(ERROR, "partition %d has a malformed snapshot marker", partition_id);
		*image_wanted = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	}

	values[1] = Int64GetDatum((int64) out->snapshot.index);
	if (SPI_execute_with_args("SELECT idx, term, kind, data FROM kommander.log "
							  "WHERE partition_id = $1 AND idx > $2 ORDER BY idx",
							  2, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the log of partition %d", partition_id);
	entries = palloc0(sizeof(raft_entry) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		d;

		entries[i].index = get_int64(tup, desc, 1);
		entries[i].term = get_int64(tup, desc, 2);
		entries[i].type = get_int64(tup, desc, 3);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		if (!isnull)
		{
			bytea	   *b = DatumGetByteaPCopy(d);

			entries[i].len = VARSIZE_ANY_EXHDR(b);
			entries[i].data = VARDATA_ANY(b);
		}
	}
	out->entries = entries;
	out->n_entries = SPI_processed;
}

/* Open kommander.`relname', which must have `natts' columns. */
static Relation
open_own_table(const char *relname, int natts)
{
	Relation	rel = table_open(get_relname_relid(relname, get_namespace_oid("kommander", false)),
								 RowExclusiveLock);

	if (RelationGetDescr(rel)->natts != natts)
		elog(ERROR, "kommander.%s has %d columns, not %d",
			 relname, RelationGetDescr(rel)->natts, natts);
	return rel;
}

/*
 * Insert `rows' into kommander.log and its primary key, as an INSERT
 * would (there is no trigger, rule or constraint but the key and NOT NULL,
 * which every row meets; a duplicate key is an error all the same).
 */
static void
insert_log_rows(List *rows)
{
	Relation	rel = open_own_table("log", 5);
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	ListCell   *lc;

	/* the statements before, a truncation among them, are seen */
	CommandCounterIncrement();
	InitResultRelInfo(rri, rel, 0, NULL, 0);
	ExecOpenIndices(rri, false);
	foreach(lc, rows)
	{
		KmdLogRow  *row = lfirst(lc);

		ExecClearTuple(slot);
		memset(slot->tts_isnull, 0, sizeof(bool) * 5);
		slot->tts_values[0] = Int32GetDatum(row->partition_id);
		slot->tts_values[1] = Int64GetDatum(row->index);
		slot->tts_values[2] = Int64GetDatum(row->term);
		slot->tts_values[3] = Int16GetDatum(row->kind);
		slot->tts_values[4] = PointerGetDatum(row->data);
		ExecStoreVirtualTuple(slot);
		simple_table_tuple_insert(rel, slot);
		list_free(ExecInsertIndexTuples(rri, slot, estate, false, false, NULL, NIL));
		ResetPerTupleExprContext(estate);
	}
	ExecCloseIndices(rri);
	ExecDropSingleTupleTableSlot(slot);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	CommandCounterIncrement();
}

/*
 * Update rows of kommander.`relname' found by their primary key, as an
 * UPDATE naming each by its key would: a row is locked first, waiting for
 * a transaction that writes it, and the latest version is updated.
 * `rows' holds `n' rows of `natts' values, none null, every column.
 * found[i] says whether row i was there; with `found' NULL a missing row
 * is an error.  There must be no trigger, rule or generated column (the
 * tables are kommander's own).
 */
void
kmd_storage_update_by_key(const char *relname, int natts, int n,
						  const Datum *rows, bool *found)
{
	Relation	rel = open_own_table(relname, natts);
	EState	   *estate = CreateExecutorState();
	ResultRelInfo *rri = makeNode(ResultRelInfo);
	TupleTableSlot *row = table_slot_create(rel, &estate->es_tupleTable);
	TupleTableSlot *old = table_slot_create(rel, &estate->es_tupleTable);
	EPQState	epq;

	InitResultRelInfo(rri, rel, 0, NULL, 0);
	estate->es_output_cid = GetCurrentCommandId(true);
	estate->es_snapshot = GetActiveSnapshot();
	EvalPlanQualInit(&epq, estate, NULL, NIL, -1);
	ExecOpenIndices(rri, false);
	for (int i = 0; i < n; i++)
	{
		bool		there;

		/* the writes before, a row updated twice among them, are seen */
		CommandCounterIncrement();
		ExecClearTuple(row);
		memcpy(row->tts_values, &rows[i * natts], sizeof(Datum) * natts);
		memset(row->tts_isnull, 0, sizeof(bool) * natts);
		ExecStoreVirtualTuple(row);
		there = RelationFindReplTupleByIndex(rel, RelationGetPrimaryKeyIndex(rel),
											 LockTupleNoKeyExclusive, row, old);
		if (there)
			ExecSimpleRelationUpdate(rri, estate, &epq, old, row);
		else if (found == NULL)
			elog(ERROR, "kommander.%s has no row for key %d",
				 relname, DatumGetInt32(rows[i * natts]));
		if (found != NULL)
			found[i] = there;
		ResetPerTupleExprContext(estate);
	}
	ExecCloseIndices(rri);
	EvalPlanQualEnd(&epq);
	ExecResetTupleTable(estate->es_tupleTable, false);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	CommandCounterIncrement();
}

void
kmd_storage_flush(KmdStorageBatch *b)
{
	if (b->n_entries > 0)
	{
		insert_log_rows(b->entries);
		b->entries = NIL;
		b->n_entries = 0;
	}
	if (b->n_hard > 0)
	{
		kmd_storage_update_by_key("hard_state", 4, b->n_hard, b->hard, NULL);
		b->n_hard = 0;
	}
}

static void
truncate_from(int32 partition_id, uint64 index)
{
	Datum		values[2] = {Int32GetDatum(partition_id), Int64GetDatum((int64) index)};

	if (plan_truncate == NULL)
	{
		Oid			types[2] = {INT4OID, INT8OID};

		plan_truncate = keep_plan("DELETE FROM kommander.log WHERE partition_id = $1 AND idx >= $2",
								  2, types);
	}
	if (SPI_execute_plan(plan_truncate, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not truncate the log of partition %d", partition_id);
}

static void
save_snapshot(int32 partition_id, const raft_snapshot_meta *meta)
{
	Datum		values[4];
	Oid			types[4] = {INT4OID, INT8OID, INT8OID, BYTEAOID};

	values[0] = Int32GetDatum(partition_id);
	values[1] = Int64GetDatum((int64) meta->index);
	values[2] = Int64GetDatum((int64) meta->term);
	values[3] = PointerGetDatum(kmd_conf_encode(&meta->conf));
	truncate_from(partition_id, 0);
	if (SPI_execute_with_args("UPDATE kommander.snapshot SET idx = $2, term = $3, conf = $4 "
							  "WHERE partition_id = $1",
							  4, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not save the snapshot marker of partition %d", partition_id);
}

void
kmd_storage_save(KmdStorageBatch *b, int32 partition_id, const raft_ready *rd,
				 uint64 *durable_last)
{
	if (rd->has_snapshot)
	{
		save_snapshot(partition_id, &rd->snapshot);
		*durable_last = rd->snapshot.index;
	}
	if (rd->n_entries > 0)
	{
		uint64		first = rd->entries[0].index;

		/* a conflicting suffix is replaced (Raft §5.3) */
		if (first <= *durable_last)
			truncate_from(partition_id, first);
		for (size_t i = 0; i < rd->n_entries; i++)
		{
			const raft_entry *e = &rd->entries[i];
			KmdLogRow  *row = palloc(sizeof(KmdLogRow));

			row->partition_id = partition_id;
			row->index = (int64) e->index;
			row->term = (int64) e->term;
			row->kind = (int16) e->type;
			row->data = palloc(VARHDRSZ + e->len);
			SET_VARSIZE(row->data, VARHDRSZ + e->len);
			if (e->len > 0)
				memcpy(VARDATA(row->data), e->data, e->len);
			b->entries = lappend(b->entries, row);
			b->n_entries++;
		}
		*durable_last = rd->entries[rd->n_entries - 1].index;
	}
}

void
kmd_storage_save_hard_state(KmdStorageBatch *b, int32 partition_id,
							const raft_hard_state *hs)
{
	Datum	   *row;

	if (b->n_hard == b->max_hard)
	{
		b->max_hard = Max(16, 2 * b->max_hard);
		b->hard = b->hard == NULL ? palloc(sizeof(Datum) * 4 * b->max_hard) :
			repalloc(b->hard, sizeof(Datum) * 4 * b->max_hard);
	}
	row = &b->hard[4 * b->n_hard++];
	row[0] = Int32GetDatum(partition_id);
	row[1] = Int64GetDatum((int64) hs->term);
	row[2] = Int32GetDatum((int32) hs->vote);
	row[3] = Int64GetDatum((int64) hs->commit);
}

void
kmd_storage_conf_at(int32 partition_id, uint64 index, raft_conf *conf)
{
	Datum		values[2];
	Oid			types[2] = {INT4OID, INT8OID};
	uint64		snap_index;
	bool		isnull;
	bytea	   *b;

	values[0] = Int32GetDatum(partition_id);
	if (SPI_execute_with_args("SELECT idx, conf FROM kommander.snapshot WHERE partition_id = $1",
							  1, types, values, NULL, true, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "partition %d has no snapshot marker", partition_id);
	snap_index = get_int64(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	if (isnull || !kmd_conf_decode(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), conf))
		elog(ERROR, "partition %d has a malformed snapshot marker", partition_id);
	if (index < snap_index)
		elog(ERROR, "configuration of partition %d at " UINT64_FORMAT " was compacted away",
			 partition_id, index);

	values[1] = Int64GetDatum((int64) index);
	if (SPI_execute_with_args("SELECT data FROM kommander.log WHERE partition_id = $1 "
							  "AND idx > (SELECT idx FROM kommander.snapshot WHERE partition_id = $1) "
							  "AND idx <= $2 AND kind = 2 ORDER BY idx",
							  2, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the log of partition %d", partition_id);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		uint32		type;
		raft_id		id;

		b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		if (!isnull && raft_conf_change_decode(VARDATA_ANY(b), VARSIZE_ANY_EXHDR(b), &type, &id))
			(void) raft_conf_apply(conf, type, id);
	}
}

void
kmd_storage_compact(int32 partition_id, uint64 from, const raft_snapshot_meta *meta)
{
	Datum		values[5];
	Oid			types[5] = {INT4OID, INT8OID, INT8OID, BYTEAOID, INT8OID};

	values[0] = Int32GetDatum(partition_id);
	values[1] = Int64GetDatum((int64) meta->index);
	values[2] = Int64GetDatum((int64) meta->term);
	values[3] = PointerGetDatum(kmd_conf_encode(&meta->conf));
	values[4] = Int64GetDatum((int64) from);
	if (SPI_execute_with_args("UPDATE kommander.snapshot SET idx = $2, term = $3, conf = $4 "
							  "WHERE partition_id = $1 AND idx < $2",
							  4, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not move the snapshot marker of partition %d", partition_id);
	/*
	 * From `from' on: the index entries of rows deleted before are still
	 * there until a vacuum, and a scan from the start would visit them all.
	 */
	if (SPI_execute_with_args("DELETE FROM kommander.log WHERE partition_id = $1 "
							  "AND idx > $5 AND idx <= $2",
							  5, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not compact the log of partition %d", partition_id);
}

void
kmd_storage_drop_group(int32 partition_id)
{
	static const char *const tables[] = {
		"kommander.log", "kommander.hard_state", "kommander.snapshot", "kommander.applied"
	};
	Datum		values[1] = {Int32GetDatum(partition_id)};
	Oid			types[1] = {INT4OID};

	for (int i = 0; i < lengthof(tables); i++)
		if (SPI_execute_with_args(psprintf("DELETE FROM %s WHERE partition_id = $1", tables[i]),
								  1, types, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not drop the state of partition %d from %s",
				 partition_id, tables[i]);
}
