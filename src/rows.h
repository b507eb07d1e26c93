/*-------------------------------------------------------------------------
 *
 * rows.h
 *	  The jsonb command language of kmd_propose (insert, upsert, update,
 *	  delete, call, batch): validation and application.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/rows.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_ROWS_H
#define KOMMANDER_ROWS_H

#include "lib/stringinfo.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"

/* What an applied entry tells the command it carries. */
typedef struct KmdApplyContext
{
	int32		partition_id;
	uint64		index;
	uint64		term;
	int32		origin_node;
	const char *key;
	int64		proposed_at;	/* TimestampTz the proposer decided; 0: none */
	uint32		rules;			/* KMD_RULE_* its proposer followed */
} KmdApplyContext;

/*
 * Check a command before it is replicated: its shape (K0011, naming the
 * field: a field missing, of the wrong type or that its op does not take;
 * an empty key), its tables (registered control tables), that `key' is the primary
 * key it touches (K0011), and the caller's privileges on the tables and
 * appliers it uses.
 */
extern void kmd_rows_validate(Jsonb *command, const char *key);

/*
 * kmd_rows_validate, then the command as it travels: each table named as
 * this session resolves it (schema-qualified), and the values of the
 * column defaults that are not immutable that an insert or upsert leaves
 * out, decided here once.  *reads tells whether the calling role may read
 * (SELECT, every column) each table the command writes: what the apply
 * worker read as a table's owner (a row in an error's detail, the row of
 * a condition that did not hold) reaches the caller only then, as
 * Postgres shows a failing row only to a role that may read it (an
 * applier's call counts as readable: what it returns or raises is its
 * owner's choice).
 */
extern Jsonb *kmd_rows_prepare(Jsonb *command, const char *key, bool *reads);

/*
 * Is `name' a registered applier?  *fn: the function it calls, which may
 * have been dropped since (InvalidOid: dropped before an image brought the
 * registration here).
 */
extern bool kmd_rows_applier_fn(const char *name, Oid *fn);

/*
 * The schema-qualified name of `rel', quoted as every node quotes it,
 * whatever this session's quote_all_identifiers (the name commands carry
 * and kommander.lease_rows keeps).
 */
extern char *kmd_rows_table_name(Relation rel);

/*
 * Refuse a generated column of a control table whose expression holds a
 * date or time constant (0A000): column `attnum' of `relid', or every
 * generated column of table `relid' and of its partitions.
 */
extern void kmd_generated_check(Oid relid, AttrNumber attnum);
extern void kmd_generated_check_table(Oid relid);

/*
 * The most bytes of JSON text a command's result may have: an applier's,
 * or the array of a batch's.  A larger one fails the command (54000).
 */
#define KMD_RESULT_LIMIT 16000

/*
 * Apply a committed command: the same checks as kmd_rows_validate but
 * privileges, then the row changes, through SPI with parameters, as each
 * table's owner (an applier as its function's owner).  Errors are raised;
 * the caller runs this in a subtransaction.  *applied is false when a
 * condition did not hold; a batch is then rolled back as a whole.
 *
 * What kmd_propose_result adds to its answer is appended to `result', as
 * the text of a JSON object: {"result": r} for a call, {"result": [r, ...],
 * "failed": null} for a batch applied, {"result": null, "failed": n} for a
 * batch whose command n (from 0) met a condition that did not hold; nothing
 * for a row command.
 */
extern void kmd_rows_apply(Jsonb *command, const char *key,
						   const KmdApplyContext *ctx, bool *applied,
						   StringInfo result);

/*
 * The deferred triggers the row commands of an entry queued fire as the
 * role that ran them (the table's owner), never as the apply worker:
 * call kmd_rows_fire_deferred when the entry's commands are done, and
 * kmd_rows_forget_deferred before an entry begins.
 */
extern void kmd_rows_fire_deferred(void);
extern void kmd_rows_forget_deferred(void);

#endif							/* KOMMANDER_ROWS_H */
