/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The statement trigger on every control table: a control table is
 *	  written only by committed log entries, so a session's own INSERT,
 *	  UPDATE, DELETE or TRUNCATE fails with K0010.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "commands/trigger.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "apply.h"
#include "errcodes.h"

PG_FUNCTION_INFO_V1(kmd_control_table_guard);

Datum
kmd_control_table_guard(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("kommander.control_table_guard() must be called as a trigger")));
	if (!kmd_applying)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_DIRECT_WRITE),
				 errmsg("control table %s is written through kommander",
						quote_qualified_identifier(get_namespace_name(RelationGetNamespace(trigdata->tg_relation)),
												   RelationGetRelationName(trigdata->tg_relation))),
				 errhint("Use kmd_propose().")));
	return PointerGetDatum(NULL);
}
