/*-------------------------------------------------------------------------
 *
 * plans.c
 *	  SPI statements run through plans kept by their text.
 *
 * Applying a row command builds its statement from the table and the
 * columns it names, and a proposal checks its tables with the same few
 * queries: parsing and planning them anew each time was the largest cost
 * of a write.  Plans are kept per process, keyed by the statement's text
 * and argument types, and dropped all at once when there are too many,
 * but never while one of them runs: a statement's trigger may run kept
 * statements of its own (the lease notes of a row deleted).
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/plans.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "plans.h"

#define MAX_PLANS	256
#define MAX_ARGS	16

typedef struct KeptPlan
{
	uint64		hash;			/* of the text and the argument types */
	char	   *sql;			/* in plans_cxt */
	int			nargs;
	Oid			types[MAX_ARGS];
	SPIPlanPtr	plan;
} KeptPlan;

static HTAB *plans = NULL;
static MemoryContext plans_cxt = NULL;
static int	running = 0;		/* kept plans executing, nested in each other */

static void
make_table(void)
{
	HASHCTL		ctl;

	if (plans_cxt == NULL)
		plans_cxt = AllocSetContextCreate(TopMemoryContext, "kommander kept plans",
										  ALLOCSET_SMALL_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(uint64);
	ctl.entrysize = sizeof(KeptPlan);
	ctl.hcxt = plans_cxt;
	plans = hash_create("kommander kept plans", MAX_PLANS, &ctl,
						HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* Too many: drop them all and start afresh. */
static void
forget_all(void)
{
	HASH_SEQ_STATUS seq;
	KeptPlan   *p;

	hash_seq_init(&seq, plans);
	while ((p = hash_seq_search(&seq)) != NULL)
		SPI_freeplan(p->plan);
	hash_destroy(plans);
	MemoryContextReset(plans_cxt);
	make_table();
}

int
kmd_plan_execute(const char *sql, int nargs, Oid *types, Datum *values,
				 const char *nulls, bool read_only, long count)
{
	uint64		hash;
	KeptPlan   *p;
	bool		found;
	int			rc;

	if (nargs > MAX_ARGS)
		return SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, count);
	if (plans == NULL)
		make_table();

	/* a statement without arguments may come without types (NULL) */
	hash = hash_bytes_extended((const unsigned char *) sql, strlen(sql), 0);
	if (nargs > 0)
		hash ^= hash_bytes_extended((const unsigned char *) types, sizeof(Oid) * nargs, nargs);
	p = hash_search(plans, &hash, HASH_FIND, NULL);
	if (p != NULL && (strcmp(p->sql, sql) != 0 || p->nargs != nargs ||
					  (nargs > 0 && memcmp(p->types, types, sizeof(Oid) * nargs) != 0)))
		return SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, count);
	/* full while a kept plan runs: freeing that one would pull it from under it */
	if (p == NULL && running > 0 && hash_get_num_entries(plans) >= MAX_PLANS)
		return SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, count);
	if (p == NULL)
	{
		SPIPlanPtr	plan;

		if (hash_get_num_entries(plans) >= MAX_PLANS)
			forget_all();
		plan = SPI_prepare(sql, nargs, types);
		if (plan == NULL)
			return SPI_result;
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		p = hash_search(plans, &hash, HASH_ENTER, &found);
		p->sql = MemoryContextStrdup(plans_cxt, sql);
		p->nargs = nargs;
		if (nargs > 0)
			memcpy(p->types, types, sizeof(Oid) * nargs);
		p->plan = plan;
	}
	running++;
	PG_TRY();
	{
		rc = SPI_execute_plan(p->plan, values, nulls, read_only, count);
	}
	PG_FINALLY();
	{
		running--;
	}
	PG_END_TRY();
	return rc;
}
