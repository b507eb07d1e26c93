/*-------------------------------------------------------------------------
 *
 * rows_int.h
 *	  What the two halves of the command language share: a command as
 *	  rows.c parses it and rows_apply.c applies it.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/rows_int.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KOMMANDER_ROWS_INT_H
#define KOMMANDER_ROWS_INT_H

#include "catalog/pg_attribute.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/relcache.h"

typedef enum RowOp
{
	OP_INSERT,
	OP_UPSERT,
	OP_UPDATE,
	OP_DELETE,
	OP_CALL,
	OP_BATCH
} RowOp;

/*
 * A column that, given no value, would take one of its node's own: its
 * default (its own, or its domain's) is not immutable, or holds a date or
 * time read when its DDL ran, or it is an identity column.  The proposer
 * decides its value.
 */
typedef struct KmdVaryingDefault
{
	AttrNumber	attnum;
	char		identity;		/* attidentity: '\0', ATTRIBUTE_IDENTITY_ALWAYS
								 * or ATTRIBUTE_IDENTITY_BY_DEFAULT */
	bool		required;		/* an insert without its value fails (40001);
								 * false: a composite or multirange holding a
								 * time, which older proposers left to each
								 * node (only one that decided them, with
								 * KMD_RULE_WIDE_DEFAULTS, fails without it) */
	NameData	name;
} KmdVaryingDefault;

/* A command, checked and resolved. */
typedef struct RowCommand
{
	RowOp		op;
	bool		strict;
	Oid			relid;			/* row ops */
	char	   *qualname;		/* quoted */
	Oid			owner;
	List	   *pk;				/* names of primary key columns */
	List	   *varying;		/* of KmdVaryingDefault *: the table's */
	Jsonb	   *row;			/* insert/upsert */
	Jsonb	   *defaults;		/* insert/upsert: values decided by the
								 * proposer, for an inserted row only */
	Jsonb	   *key;			/* update/delete */
	Jsonb	   *set;			/* update: values (NULL when only operators) */
	Jsonb	   *add;			/* update: {"add": n} operators, column -> n */
	Jsonb	   *now_plus;		/* update: {"now_plus": i}, column -> interval */
	Jsonb	   *cond;			/* update/delete "if" */
	int64		lease;			/* insert/upsert/update: lease to attach to, 0:
								 * none */
	bool		lease_named;	/* "lease" given (null: detach an update's row) */
	Oid			fn;				/* call */
	Jsonb	   *args;
	List	   *batch;			/* of RowCommand * */
} RowCommand;

/*
 * Parse and resolve a whole command routed by `key', with every check but
 * privileges (K0011 naming the field); the same when proposed and when
 * applied.
 */
extern RowCommand *kmd_rows_parse(Jsonb *command, const char *key);

/*
 * Turn the {"now_plus": interval} operators of an update into values of
 * its "set": the entry's time `at' (a TimestampTz; 0 fails) plus each
 * interval.  The apply worker calls it, with its settings pinned.
 */
extern void kmd_rows_fold_now_plus(RowCommand *c, int64 at);

/* Is `name' a key of `obj' (NULL: none)?  A primary key column of `c'? */
extern bool kmd_rows_names(Jsonb *obj, const char *name);

/*
 * Does an insert or upsert of `c' that attaches its row to a lease name
 * every primary key column?  K0011 otherwise: checked where it is
 * proposed, and again where it is `applied' (rows.c).
 */
extern void kmd_rows_check_lease_key(RowCommand *c, bool applied);
extern bool kmd_rows_is_pk(RowCommand *c, const char *name);

/*
 * "OPERATOR(schema.=)", the equality of the default btree class of the type
 * of column `col' of `relid' (42883 when it has none): the operator of the
 * table's key, named whatever the search_path, where an "=" found through
 * it could be anyone's and run as the table's owner.
 */
extern char *kmd_rows_equality(Oid relid, const char *col);

/* Has the type of column `col' of `relid' an equality kmd_rows_equality finds? */
extern bool kmd_rows_has_equality(Oid relid, const char *col);

/*
 * "t.a OPERATOR(s.=) <alias>.a AND ..." for the keys of `columns' (a jsonb object),
 * columns of `relid', each with kmd_rows_equality; `nulls_match': as IS
 * NOT DISTINCT FROM.
 */
extern char *kmd_rows_columns_match(Oid relid, Jsonb *columns, const char *alias,
									bool nulls_match);

/*
 * The type of column `col' of `relid' as SQL text that names it whatever
 * the search_path, with its type modifier ("pg_catalog.varchar(8)").
 */
extern char *kmd_rows_column_type(Oid relid, const char *col);

/*
 * "pg_catalog.jsonb_to_record($<param>) AS <alias> (a type, ...)": the
 * values of the columns `obj' (a jsonb object) names, each read as its
 * column's type.  Only those: a column the object leaves out is not read
 * as a NULL of its type, which a NOT NULL domain would refuse.
 */
extern char *kmd_rows_record(Oid relid, Jsonb *obj, int param, const char *alias);

/* rows_direct.c */
extern bool kmd_rows_write_direct(RowCommand *c, Jsonb *inserted);

/*
 * The values of the columns `values' (a jsonb object) names, read as a
 * row of `rel' into `v' and `n' (the others NULL): as kmd_rows_record's
 * statement reads them, in the table's order.
 */
extern void kmd_rows_read_values(Relation rel, Jsonb *values, Datum *v, bool *n);

#endif							/* KOMMANDER_ROWS_INT_H */
