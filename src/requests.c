/*-------------------------------------------------------------------------
 *
 * requests.c
 *	  Idempotent proposals.  A command of kmd_propose may carry a
 *	  top-level "request_id"; the apply worker remembers the outcome of
 *	  each such command in kommander.requests, keyed by the command's
 *	  routing key and the id, and a later entry with the same key and id
 *	  (a retry after K0003, a timeout or a failover, through any node) is
 *	  answered with that first outcome and changes nothing.
 *
 * The rows are state of the partition that owns the key: they are written
 * in the apply transaction of the entry, and a partition image carries
 * them (snapshot.c).  They are forgotten by later entries of the
 * partition, never by a node's clock: an entry proposed at time t, with a
 * retention r set by its proposer (kommander.request_retention, carried in
 * the entry), deletes the partition's rows of entries older than t - r.
 * Every node applies the same entries, so every node forgets the same
 * rows at the same index.  A partition whose log stops growing would keep
 * its rows for good, and every other partition's forgetting would pass
 * over them (the index is on time first): its leader proposes a lease
 * entry "forget" once the log has not grown for the retention
 * (lease_clock.c), which forgets as an entry with a request id does.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/requests.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "errcodes.h"
#include "lease.h"
#include "plans.h"
#include "requests.h"

/*
 * Entries without a request id forget old outcomes too, one in this many
 * (by index, so the same ones on every node), row commands' and leases'
 * entries (which carry a retention): a partition whose clients stopped
 * sending ids, or whose entries are now all leases' keepalives and
 * expiries, does not keep their rows for ever.
 */
#define PRUNE_EVERY 64

/*
 * The command's text as jsonb, or NULL when it cannot be read.  This runs
 * outside the subtransaction that applies the command, where an error
 * would stop the apply worker at this entry for good, on every node: a
 * command nested deeper than the apply worker's stack allows (its
 * proposer may have had a larger max_stack_depth) fails when it is
 * applied, as its outcome, and one that cannot be read has no request id.
 * A failure of this node is raised again: the entry is applied again
 * later, as after any such failure.
 */
static Jsonb *
parse_payload(const KmdCommand *cmd)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	Jsonb	   *volatile j = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		j = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(cmd->payload)));
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		/* a failure of this node (memory, a cancel) is not the command's */
		if (kmd_node_failure_code(edata->sqlerrcode))
			ReThrowError(edata);
		FreeErrorData(edata);
		j = NULL;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	return j;
}

/*
 * The command's request id, or NULL.  None for a key or an id too long
 * to be remembered (the proposer refuses them; the command then fails to
 * parse, alike on every node, and its outcome is not kept).
 */
static char *
request_id_of(const KmdCommand *cmd)
{
	Jsonb	   *j;
	JsonbValue *v;

	if (cmd->kind != KMD_CMD_ROWS || strstr(cmd->payload, "\"request_id\"") == NULL ||
		strlen(cmd->key) > KMD_REQUEST_KEY_MAX)
		return NULL;
	j = parse_payload(cmd);
	if (j == NULL || !JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j))
		return NULL;
	v = getKeyJsonValueFromContainer(&j->root, "request_id", strlen("request_id"), NULL);
	if (v == NULL || v->type != jbvString || v->val.string.len > KMD_REQUEST_ID_MAX)
		return NULL;
	return pnstrdup(v->val.string.val, v->val.string.len);
}

static bool
is_key(const JsonbValue *v, const char *name)
{
	return v->type == jbvString && v->val.string.len == strlen(name) &&
		memcmp(v->val.string.val, name, v->val.string.len) == 0;
}

/*
 * Push the command object `obj' without its "defaults", and, at the top
 * (`top'), each command of its "commands" without theirs.
 */
static JsonbValue *
push_without_defaults(JsonbParseState **st, JsonbContainer *obj, bool top)
{
	JsonbIterator *it = JsonbIteratorInit(obj);
	JsonbIteratorToken tok;
	JsonbValue	v;
	JsonbValue *res = NULL;
	bool		skip = false;
	bool		commands = false;

	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			skip = is_key(&v, "defaults");
			commands = top && is_key(&v, "commands");
			if (!skip)
				res = pushJsonbValue(st, tok, &v);
		}
		else if (tok == WJB_VALUE && skip)
			continue;
		else if (tok == WJB_VALUE && commands && v.type == jbvBinary &&
				 JsonContainerIsArray(v.val.binary.data))
		{
			JsonbIterator *elems = JsonbIteratorInit(v.val.binary.data);
			JsonbValue	e;
			JsonbIteratorToken etok;

			while ((etok = JsonbIteratorNext(&elems, &e, true)) != WJB_DONE)
			{
				if (etok == WJB_ELEM && e.type == jbvBinary &&
					JsonContainerIsObject(e.val.binary.data))
					res = push_without_defaults(st, e.val.binary.data, false);
				else
					res = pushJsonbValue(st, etok, etok == WJB_ELEM ? &e : NULL);
			}
		}
		else
			res = pushJsonbValue(st, tok, tok == WJB_KEY || tok == WJB_VALUE ||
								 tok == WJB_ELEM ? &v : NULL);
	}
	return res;
}

/*
 * The command as the id was first used with: its text, hashed, without
 * the "defaults" of its inserts and upserts.  The proposer decides the
 * values of defaults such as now() or nextval() anew for a retry, which
 * is the same request all the same.
 */
static int64
command_hash(const KmdCommand *cmd)
{
	Jsonb	   *j;
	JsonbParseState *st = NULL;
	char	   *text;

	if (strstr(cmd->payload, "\"defaults\"") == NULL)
		return (int64) hash_bytes_extended((const unsigned char *) cmd->payload,
										   (int) cmd->payload_len, 0);
	j = parse_payload(cmd);
	if (j == NULL || !JB_ROOT_IS_OBJECT(j) || JB_ROOT_IS_SCALAR(j))
		return (int64) hash_bytes_extended((const unsigned char *) cmd->payload,
										   (int) cmd->payload_len, 0);
	j = JsonbValueToJsonb(push_without_defaults(&st, &j->root, true));
	text = JsonbToCString(NULL, &j->root, VARSIZE(j));
	return (int64) hash_bytes_extended((const unsigned char *) text, (int) strlen(text), 0);
}

static void
prune(const KmdCommand *cmd, const KmdApplyContext *ctx, int64 lo, int64 hi)
{
	Oid			types[3] = {TIMESTAMPTZOID, INT8OID, INT8OID};
	Datum		values[3];

	values[0] = TimestampTzGetDatum((TimestampTz) ctx->proposed_at -
									cmd->request_retention * INT64CONST(1000));
	values[1] = Int64GetDatum(lo);
	values[2] = Int64GetDatum(hi);
	if (kmd_plan_execute("DELETE FROM kommander.requests WHERE at < $1 "
						 "AND kommander.key_hash(key) BETWEEN $2 AND $3",
						 3, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not forget old request ids");
}

static char *
text_or_null(int col)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col);

	return v ? pstrdup(v) : NULL;
}

bool
kmd_requests_replay(const KmdCommand *cmd, const KmdApplyContext *ctx,
					int64 lo, int64 hi, KmdRequestOutcome *out)
{
	char	   *id = cmd->kind == KMD_CMD_ROWS ? request_id_of(cmd) : NULL;
	Oid			types[2] = {TEXTOID, TEXTOID};
	Datum		values[2];
	bool		isnull;
	int64		hash;
	uint64		first;
	int32		first_partition;

	/*
	 * A lease's entries too; not a freeze, which a merge asked again may
	 * put in the log after the first, applied only by the nodes that have
	 * not applied the merge yet.
	 */
	if ((cmd->kind == KMD_CMD_ROWS || cmd->kind == KMD_CMD_LEASE) &&
		ctx->proposed_at != 0 && cmd->request_retention > 0 &&
		(id != NULL || ctx->index % PRUNE_EVERY == 0 || kmd_lease_forgets(cmd)))
		prune(cmd, ctx, lo, hi);
	if (id == NULL)
		return false;

	/* not read-only: an entry of this transaction may have used the id */
	values[0] = CStringGetTextDatum(cmd->key);
	values[1] = CStringGetTextDatum(id);
	if (kmd_plan_execute("SELECT command_hash, idx, term, applied, sqlstate, message, "
						 "detail, result, partition_id FROM kommander.requests "
						 "WHERE key = $1 AND request_id = $2",
						 2, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.requests");
	if (SPI_processed == 0)
		return false;

	memset(out, 0, sizeof(*out));
	hash = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	first = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	first_partition = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 9, &isnull));
	if (hash != command_hash(cmd))
	{
		/* the same on every node: the id and its first command are state */
		strcpy(out->sqlstate, "K0011");
		out->errmsg = psprintf("request_id \"%s\" was used with another command", id);
		out->errdetail = psprintf("Its first command, for the same key, is entry " UINT64_FORMAT
								  " of partition %d; nothing was applied.",
								  first, first_partition);
		out->index = ctx->index;
		out->term = ctx->term;
		return true;
	}
	out->index = first;
	out->partition_id = first_partition;
	out->term = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	out->applied = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	strlcpy(out->sqlstate, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5),
			sizeof(out->sqlstate));
	out->errmsg = text_or_null(6);
	out->errdetail = text_or_null(7);
	out->result = text_or_null(8);
	return true;
}

void
kmd_requests_remember(const KmdCommand *cmd, const KmdApplyContext *ctx,
					  const KmdRequestOutcome *out)
{
	char	   *id = request_id_of(cmd);
	Oid			types[12] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, INT8OID, INT8OID, INT8OID,
	BOOLOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID};
	Datum		values[12];
	char		nulls[12];

	if (id == NULL)
		return;
#ifdef KMD_BROKEN_REQUEST_ID
	/* a deliberate defect (scripts/nemesis.sh --broken request): forgets */
	return;
#endif
	memset(nulls, ' ', sizeof(nulls));
	values[0] = CStringGetTextDatum(cmd->key);
	values[1] = CStringGetTextDatum(id);
	values[2] = TimestampTzGetDatum((TimestampTz) ctx->proposed_at);
	values[3] = Int64GetDatum(command_hash(cmd));
	values[4] = Int64GetDatum((int64) out->index);
	values[5] = Int64GetDatum((int64) out->term);
	values[6] = BoolGetDatum(out->applied);
	values[7] = CStringGetTextDatum(out->sqlstate);
	values[8] = out->errmsg ? CStringGetTextDatum(out->errmsg) : (Datum) 0;
	values[9] = out->errdetail ? CStringGetTextDatum(out->errdetail) : (Datum) 0;
	values[10] = out->result ? CStringGetTextDatum(out->result) : (Datum) 0;
	nulls[8] = out->errmsg ? ' ' : 'n';
	nulls[9] = out->errdetail ? ' ' : 'n';
	nulls[10] = out->result ? ' ' : 'n';
	values[11] = Int32GetDatum(out->partition_id);
	if (kmd_plan_execute("INSERT INTO kommander.requests (key, request_id, at, command_hash, "
						 "idx, term, applied, sqlstate, message, detail, result, partition_id) "
						 "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
						 12, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not remember request id \"%s\"", id);
}
