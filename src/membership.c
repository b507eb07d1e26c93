/*-------------------------------------------------------------------------
 *
 * membership.c
 *	  Cluster life cycle: kmd_bootstrap, kmd_join, kmd_add_node,
 *	  kmd_promote_node, kmd_remove_node.
 *
 * The roster on the system partition is the truth.  A change of the
 * roster is a command committed there; every partition leader's reconciler
 * (reconcile.c) then changes its group's configuration to match.
 *
 * kmd_join runs in one transaction, yet the node's workers must start
 * before it can catch up: so it writes the new node's identity through a
 * connection to itself (kommander.join_local), which commits at once.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/membership.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

#include "apply.h"
#include "errcodes.h"
#include "guc.h"
#include "membership.h"
#include "remote.h"
#include "request.h"
#include "routing.h"
#include "shmem.h"
#include "storage.h"

PG_FUNCTION_INFO_V1(kmd_bootstrap);
PG_FUNCTION_INFO_V1(kmd_join);
PG_FUNCTION_INFO_V1(kmd_join_local);
PG_FUNCTION_INFO_V1(kmd_add_node);
PG_FUNCTION_INFO_V1(kmd_promote_node);
PG_FUNCTION_INFO_V1(kmd_remove_node);

static void require_reaches_self(const char *conninfo);

/* ------------------------------------------------------------------------
 * Argument checks
 * ------------------------------------------------------------------------
 */
static char *
node_name_arg(FunctionCallInfo fcinfo, int n)
{
	char	   *name;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("node_name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(n));
	if (name[0] == '\0' || strlen(name) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid node name \"%s\"", name),
				 errdetail("A node name has between 1 and %d bytes.", NAMEDATALEN - 1)));
	return name;
}

static char *
conninfo_arg(FunctionCallInfo fcinfo, int n, const char *what)
{
	char	   *conninfo;
	char	   *err = NULL;
	PQconninfoOption *opts;

	if (PG_ARGISNULL(n))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", what)));
	conninfo = text_to_cstring(PG_GETARG_TEXT_PP(n));
	if (conninfo[0] == '\0' || strlen(conninfo) >= KMD_CONNINFO_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s", what),
				 errdetail("A connection string has between 1 and %d bytes.",
						   KMD_CONNINFO_LEN - 1)));
	opts = PQconninfoParse(conninfo, &err);
	if (opts == NULL)
	{
		char	   *msg = err ? pstrdup(err) : pstrdup("out of memory");
		size_t		len = strlen(msg);

		PQfreemem(err);
		while (len > 0 && msg[len - 1] == '\n')
			msg[--len] = '\0';
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid %s", what),
				 errdetail_internal("%s", msg)));
	}
	PQconninfoFree(opts);
	return conninfo;
}

/* Argument `n', a peer role (NULL when null). */
static char *
peer_role_arg(FunctionCallInfo fcinfo, int n)
{
	char	   *role;

	if (PG_NARGS() <= n || PG_ARGISNULL(n))
		return NULL;
	role = text_to_cstring(PG_GETARG_TEXT_PP(n));
	if (role[0] == '\0' || strlen(role) >= NAMEDATALEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid peer role \"%s\"", role),
				 errdetail("A role name has between 1 and %d bytes.", NAMEDATALEN - 1)));
	return role;
}

/* The workers serve kommander.database only. */
static void
require_served_database(void)
{
	char	   *db = get_database_name(MyDatabaseId);

	if (kmd_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kommander is not loaded"),
				 errhint("Add kommander to shared_preload_libraries and restart the server.")));
	if (db == NULL || strcmp(db, kmd_database) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kommander serves database \"%s\", not \"%s\"", kmd_database,
						db ? db : "?"),
				 errhint("Set kommander.database in postgresql.conf and restart.")));
}

/*
 * Raise: this node already has an identity.  One refused as that node (its
 * data went back, catalog.c) cannot take another either: it is replaced.
 */
static void
already_belongs(void)
{
	if (kmd_shared->went_back_from != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this node already belongs to a kommander cluster"),
				 errdetail("Its data went back (it took its identity on WAL timeline %u and runs on "
						   "timeline %u), so it is refused as that node, and it keeps that identity.",
						   kmd_shared->went_back_from, GetWALInsertionTimeLine()),
				 errhint("Remove it with kmd_remove_node() on another member and join a "
						 "fresh server in its place.")));
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("this node already belongs to a kommander cluster"),
			 errhint("See kommander.nodes.")));
}

/* Error if this node already has an identity; locks kommander.local. */
static void
require_no_identity(void)
{
	if (SPI_execute("LOCK TABLE kommander.local IN EXCLUSIVE MODE", false, 0) != SPI_OK_UTILITY ||
		SPI_execute("SELECT 1 FROM kommander.local", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.local");
	if (SPI_processed > 0)
		already_belongs();
}

static void
spi_exec(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls,
		 int expect)
{
	int			rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);

	if (rc != expect)
		elog(ERROR, "SPI_execute_with_args failed (%s): %s", SPI_result_code_string(rc), sql);
}

/*
 * Note the WAL timeline the node takes its identity on, in the row just
 * inserted into kommander.local (see kmd_catalog_refresh).
 */
static void
record_timeline(void)
{
	Oid			type = INT8OID;
	Datum		value = Int64GetDatum((int64) GetWALInsertionTimeLine());

	spi_exec("UPDATE kommander.local SET timeline = $1", 1, &type, &value, NULL,
			 SPI_OK_UPDATE);
}

/* ------------------------------------------------------------------------
 * kmd_bootstrap
 * ------------------------------------------------------------------------
 */

/*
 * The system partition's state before its first entry: the system partition
 * and one user partition covering every key.  Every node starts from it
 * and reaches the current map by applying the logs (splits are log
 * entries), so that old entries are fenced alike everywhere.
 */
static void
insert_initial_state(void)
{
	spi_exec("INSERT INTO kommander.partition_map VALUES "
			 "(0, NULL, NULL, 1, 'active'), "
			 "(1, -9223372036854775808, NULL, 1, 'active')",
			 0, NULL, NULL, NULL, SPI_OK_INSERT);
	spi_exec("INSERT INTO kommander.counters VALUES ('next_partition_id', 2), ('next_node_id', 2)",
			 0, NULL, NULL, NULL, SPI_OK_INSERT);
}
Datum
kmd_bootstrap(PG_FUNCTION_ARGS)
{
	char	   *name = node_name_arg(fcinfo, 0);
	char	   *conninfo = conninfo_arg(fcinfo, 1, "conninfo");
	char	   *peer_role = peer_role_arg(fcinfo, 2);
	raft_conf	conf;
	Datum		cluster_id;
	Datum		values[4];
	Oid			types[4] = {UUIDOID, TEXTOID, TEXTOID, TEXTOID};
	char		nulls[4] = {' ', ' ', ' ', ' '};

	require_served_database();
	/* the uuid is returned: made outside SPI, which frees its allocations */
	cluster_id = DirectFunctionCall1(gen_random_uuid, (Datum) 0);
	SPI_connect();
	require_no_identity();
	require_reaches_self(conninfo);

	values[0] = cluster_id;
	values[1] = CStringGetTextDatum(name);
	values[2] = CStringGetTextDatum(conninfo);
	values[3] = peer_role ? CStringGetTextDatum(peer_role) : (Datum) 0;
	nulls[3] = peer_role ? ' ' : 'n';
	spi_exec("INSERT INTO kommander.local (node_id, cluster_id) VALUES (1, $1)",
			 1, types, values, NULL, SPI_OK_INSERT);
	record_timeline();
	spi_exec("INSERT INTO kommander.roster VALUES (1, $2, $3, 'voter', $4)",
			 4, types, values, nulls, SPI_OK_INSERT);
	insert_initial_state();

	memset(&conf, 0, sizeof(conf));
	conf.n = 1;
	conf.members[0].id = 1;
	conf.members[0].role = RAFT_VOTER;
	kmd_storage_create_group(0, &conf);
	kmd_storage_create_group(1, &conf);
	SPI_finish();

	/* the launcher starts the workers once this commits */
	kmd_wake_launcher();
	PG_RETURN_DATUM(cluster_id);
}

/* ------------------------------------------------------------------------
 * kmd_join
 * ------------------------------------------------------------------------
 */

/*
 * Has this node applied the merge of `partition_id' into its left
 * neighbour?  Its log then ends here, wherever it stood, and the
 * neighbour's carries what it held.  Read with the latest snapshot, which
 * a REPEATABLE READ caller's own would not be.
 */
static bool
merged_here(int32 partition_id)
{
	Oid			type = INT4OID;
	Datum		value = Int32GetDatum(partition_id);
	SPIPlanPtr	plan;
	bool		gone;

	SPI_connect();
	plan = SPI_prepare("SELECT 1 FROM kommander.partition_map "
					   "WHERE partition_id = $1 AND state = 'gone'", 1, &type);
	if (plan == NULL ||
		SPI_execute_snapshot(plan, &value, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.partition_map");
	gone = SPI_processed > 0;
	SPI_finish();
	return gone;
}

/*
 * Wait until every partition has applied here what the seed had committed,
 * or was merged away here (looked for in a partition behind that stopped
 * moving: its log ended, while the others may go on).  Fails if no
 * partition behind moves for a whole kommander.propose_timeout.
 */
static void
wait_caught_up(PGresult *targets)
{
	int			n = PQntuples(targets);
	bool	   *merged = palloc0(sizeof(bool) * Max(n, 1));
	uint64	   *last_have = palloc0(sizeof(uint64) * Max(n, 1));
	TimestampTz last_progress = GetCurrentTimestamp();
	TimestampTz last_look = 0;

	ConditionVariablePrepareToSleep(&kmd_shared->applied_cv);
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();
		bool		done = true;
		bool		found = false;
		bool		look = TimestampDifferenceExceeds(last_look, now, 200);

		for (int i = 0; i < n; i++)
		{
			int32		pid = atoi(PQgetvalue(targets, i, 0));
			uint64		want = PQgetisnull(targets, i, 1) ? 0 :
				strtoull(PQgetvalue(targets, i, 1), NULL, 10);
			uint64		have = kmd_partition_applied(pid);

			if (have >= want || merged[i])
				continue;
			if (have != last_have[i])
				last_progress = now;
			else if (look && merged_here(pid))
			{
				merged[i] = found = true;
				continue;
			}
			last_have[i] = have;
			done = false;
		}
		if (look)
			last_look = now;
		if (done)
			break;
		if (!found && TimestampDifferenceExceeds(last_progress, now, kmd_propose_timeout))
		{
			ConditionVariableCancelSleep();
			ereport(ERROR,
					(errcode(ERRCODE_KMD_LEARNER_LAGGING),
					 errmsg("this node stopped catching up with the cluster"),
					 errdetail("No partition this node is behind in applied anything for kommander.propose_timeout (%d ms).",
							   kmd_propose_timeout),
					 errhint("Check that the cluster can reach this node at the conninfo given, then run kmd_join() again, or kmd_promote_node() on a member.")));
		}
		(void) ConditionVariableTimedSleep(&kmd_shared->applied_cv, 200, PG_WAIT_EXTENSION);
		CHECK_FOR_INTERRUPTS();
	}
	ConditionVariableCancelSleep();
	pfree(merged);
	pfree(last_have);
}

/*
 * How the database this node serves stores and compares text: its
 * encoding, LC_COLLATE, LC_CTYPE and locale provider (an ICU locale), as
 * one line, read alike at the seed and here.
 */
#define DATABASE_LIKE_SQL \
	"SELECT pg_catalog.format('encoding %s, LC_COLLATE %s, LC_CTYPE %s, locale provider %s%s', " \
	"pg_catalog.pg_encoding_to_char(encoding), datcollate, datctype, " \
	"CASE datlocprovider WHEN 'i' THEN 'icu' WHEN 'c' THEN 'libc' ELSE datlocprovider::text END, " \
	"CASE WHEN datlocprovider = 'i' THEN ' (' || daticulocale || ')' ELSE '' END) " \
	"FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database()"

/*
 * Refuse to join a cluster whose seed (on `conn') hashes routing keys
 * otherwise than this node: Postgres's hash of bytes, which places a key
 * in its partition, depends on the machine's byte order, and the nodes
 * would place rows in other partitions.
 */
static void
refuse_unlike_hash(PGconn *conn)
{
	static const char probe[] = "kommander";
	const char *params[1] = {probe};
	PGresult   *res = kmd_remote_exec(conn, "SELECT kommander.key_hash($1::pg_catalog.text)::pg_catalog.text",
									  1, params);
	char	   *seed = pstrdup(PQgetvalue(res, 0, 0));
	char		here[32];

	PQclear(res);
	snprintf(here, sizeof(here), INT64_FORMAT, kmd_hash_key(probe, strlen(probe)));
	if (strcmp(here, seed) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this node hashes routing keys otherwise than the cluster"),
				 errdetail("The key \"%s\" hashes to %s here and to %s on the seed.", probe, here, seed),
				 errhint("Run every node of a cluster on machines of the same byte order.")));
}

/*
 * Refuse to join a cluster whose database (the seed's, on `conn') stores
 * or compares text otherwise than this node's: a command would then store
 * other bytes here, or fail here alone (a character this encoding lacks),
 * and a condition, an applier or a constraint comparing text would decide
 * otherwise.
 */
static void
refuse_unlike_database(PGconn *conn)
{
	PGresult   *res = kmd_remote_exec(conn, DATABASE_LIKE_SQL, 0, NULL);
	char	   *seed = pstrdup(PQgetvalue(res, 0, 0));
	char	   *here;

	PQclear(res);
	SPI_connect();
	if (SPI_execute(DATABASE_LIKE_SQL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read this node's database");
	/* SPI's memory, until SPI_finish */
	here = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(here, seed) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this node's database does not store text as the cluster's does"),
				 errdetail("This node's database has %s; the seed's has %s.", here, seed),
				 errhint("Serve a database created with the seed's encoding and locale (CREATE DATABASE ... TEMPLATE template0 ENCODING ... LOCALE ...; kommander.database), then join.")));
	SPI_finish();
	refuse_unlike_hash(conn);
}

/*
 * A join tried again on a node that took its identity in an earlier try
 * (which then failed, was cancelled, or did not promote) goes on as that
 * node, if it is the node asked for: the same name, conninfo and peer role
 * in its own roster (SPI connected), not being removed.  Raises otherwise.
 */
static void
require_same_node(int32 node_id, const char *name, const char *conninfo,
				  const char *peer_role)
{
	Oid			type = INT4OID;
	Datum		value = Int32GetDatum(node_id);
	char	   *was = NULL;
	bool		same = false;
	bool		removing = false;

	if (SPI_execute_with_args("SELECT node_name, conninfo, coalesce(peer_role, ''), role "
							  "FROM kommander.roster WHERE node_id = $1",
							  1, &type, &value, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.roster");
	if (SPI_processed > 0)
	{
		HeapTuple	tup = SPI_tuptable->vals[0];
		TupleDesc	desc = SPI_tuptable->tupdesc;

		was = SPI_getvalue(tup, desc, 1);
		same = strcmp(was, name) == 0 &&
			strcmp(SPI_getvalue(tup, desc, 2), conninfo) == 0 &&
			strcmp(SPI_getvalue(tup, desc, 3), peer_role ? peer_role : "") == 0;
		removing = strcmp(SPI_getvalue(tup, desc, 4), "removing") == 0;
	}
	if (was == NULL)
		already_belongs();
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this node already belongs to a kommander cluster as node \"%s\"", was),
				 errdetail("A join tried again goes on only with the name, conninfo and peer role it started with."),
				 errhint("See kommander.nodes.")));
	if (removing)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("node \"%s\" is being removed from the cluster", name),
				 errhint("Join a fresh server under a new name once the removal completes.")));
}

/*
 * The seed (`conn') of a join tried again must be a member of this node's
 * cluster whose roster holds it.
 */
static void
require_seed_holds(PGconn *conn, int32 node_id, const char *cluster_id)
{
	char		id_text[16];
	const char *params[1] = {id_text};
	PGresult   *res;
	bool		same;

	res = kmd_remote_exec(conn, "SELECT cluster_id::text FROM kommander.local", 0, NULL);
	same = PQntuples(res) == 1 && strcmp(PQgetvalue(res, 0, 0), cluster_id) == 0;
	PQclear(res);
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this node already belongs to another kommander cluster"),
				 errdetail("It is node %d of cluster %s; the seed is not a member of it.",
						   node_id, cluster_id),
				 errhint("See kommander.nodes.")));
	snprintf(id_text, sizeof(id_text), "%d", node_id);
	res = kmd_remote_exec(conn, "SELECT 1 FROM kommander.roster WHERE node_id = $1::int", 1, params);
	same = PQntuples(res) == 1;
	PQclear(res);
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("this node already belongs to a kommander cluster, whose roster at the seed does not hold it"),
				 errdetail("It is node %d; the seed's roster has no such node (it was removed, or the seed has not applied its addition yet).",
						   node_id),
				 errhint("Join through another member, or remove this node and join a fresh server.")));
}

/* A node that cannot host every partition of the seed's could not catch up. */
static void
require_room(PGconn *conn)
{
	PGresult   *res;
	int			live;

	res = kmd_remote_exec(conn, "SELECT count(*) FROM kommander.partition_map WHERE state <> 'gone'",
						  0, NULL);
	live = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	if (live > kmd_shared->max_partitions)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg_plural("the cluster has %d partition, this node has room for %d",
							   "the cluster has %d partitions, this node has room for %d",
							   live, live, kmd_shared->max_partitions),
				 errhint("Raise kommander.max_partitions on this node and restart it, then join.")));
}

/*
 * Does `self', opened with the conninfo this node bootstraps or joins
 * with, reach this very server and database?  The others will reach it
 * there.  For a join, also writable, as a role that may write the node's
 * identity: the node is added to the roster only once its identity can be
 * written here.  Raises if not.
 */
static void
require_self(PGconn *self, const char *conninfo, bool joining)
{
	const char *caller = joining ? "kmd_join" : "kmd_bootstrap";
	PGresult   *res;
	char		sysid[32];
	char		started[32];
	char	   *values[6];
	bool		same;

	/* the server, by its system identifier and start (a copy has another) */
	snprintf(sysid, sizeof(sysid), INT64_FORMAT, (int64) GetSystemIdentifier());
	snprintf(started, sizeof(started), INT64_FORMAT,
			 (int64) PgStartTime +
			 (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC);
	res = kmd_remote_exec(self,
						  "SELECT s.system_identifier::text, "
						  "(extract(epoch FROM pg_catalog.pg_postmaster_start_time()) OPERATOR(pg_catalog.*) 1000000)::bigint::text, "
						  "pg_catalog.current_database(), pg_catalog.pg_is_in_recovery(), "
						  "pg_catalog.current_setting('transaction_read_only')::bool, "
						  "coalesce(pg_catalog.has_function_privilege("
						  "pg_catalog.to_regprocedure('kommander.join_local(int, uuid, jsonb, bigint, bigint)'), 'EXECUTE'), false) "
						  "FROM pg_catalog.pg_control_system() s", 0, NULL);
	for (int i = 0; i < 6; i++)
		values[i] = pstrdup(PQgetvalue(res, 0, i));
	PQclear(res);
	same = strcmp(values[0], sysid) == 0 && strcmp(values[1], started) == 0;
	if (!same || strcmp(values[2], get_database_name(MyDatabaseId)) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("conninfo does not reach this node"),
				 errdetail("It reaches database \"%s\" of %s, where %s runs in database \"%s\".",
						   values[2], same ? "this server" : "another server", caller,
						   get_database_name(MyDatabaseId)),
				 errhint("Give %s the conninfo the other nodes reach this node's database with: \"%s\" is that of nothing here.",
						 caller, conninfo)));
	if (!joining)
		return;
	if (strcmp(values[3], "t") == 0 || strcmp(values[4], "t") == 0 || strcmp(values[5], "t") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("conninfo reaches this node %s",
						strcmp(values[3], "t") == 0 ? "in recovery" :
						strcmp(values[4], "t") == 0 ? "in read-only transactions" :
						"as a role that may not write its identity"),
				 errhint("The role of kmd_join's conninfo must be a superuser that may write, on a server that is not a standby.")));
}

/* The same check for kmd_bootstrap, through a connection of its own. */
static void
require_reaches_self(const char *conninfo)
{
	PGconn	   *self = kmd_remote_connect(conninfo, "this node through its own conninfo");

	PG_TRY();
	{
		require_self(self, conninfo, false);
	}
	PG_FINALLY();
	{
		PQfinish(self);
	}
	PG_END_TRY();
}

/*
 * `call', a call of one of kommander's functions with its arguments'
 * types given, as an SQL statement for the node of `conn', the function
 * named with the extension's schema there: that node's search_path (a
 * schema named for the conninfo's role, first in the default one) must
 * not choose what runs as that superuser.
 */
static char *
remote_call(PGconn *conn, const char *call)
{
	PGresult   *res = kmd_remote_exec(conn,
									  "SELECT pg_catalog.quote_ident(n.nspname) "
									  "FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n "
									  "ON n.oid OPERATOR(pg_catalog.=) e.extnamespace "
									  "WHERE e.extname OPERATOR(pg_catalog.=) 'kommander'", 0, NULL);
	char	   *sql;

	if (PQntuples(res) != 1)
	{
		PQclear(res);
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("extension \"kommander\" is not installed on the seed node"),
				 errhint("Join through a member of the cluster.")));
	}
	sql = psprintf("SELECT %s.%s", PQgetvalue(res, 0, 0), call);
	PQclear(res);
	return sql;
}

/*
 * Add this node to the roster through the seed (`conn') and write its
 * identity here, with the seed's roster; returns its node id.
 */
static int32
take_identity(PGconn *conn, const char *name, const char *conninfo, const char *peer_role)
{
	const char *params[5];
	PGresult   *res;
	PGconn	   *self;
	char		id_text[16];
	volatile int32 node_id = 0;

	/* first the way to ourselves, which the others will take */
	self = kmd_remote_connect(conninfo, "this node through its own conninfo");
	PG_TRY();
	{
		char	   *cluster_id;
		char	   *roster;
		char	   *roster_index;
		char	   *next_node_id;
		char	   *token;

		require_self(self, conninfo, true);

		/* this data directory's join token, committed before it is given */
		res = kmd_remote_exec(self, "INSERT INTO kommander.join_token "
							  "VALUES (true, pg_catalog.gen_random_uuid()) "
							  "ON CONFLICT (singleton) DO NOTHING", 0, NULL);
		PQclear(res);
		res = kmd_remote_exec(self, "SELECT token::text FROM kommander.join_token", 0, NULL);
		token = pstrdup(PQgetvalue(res, 0, 0));
		PQclear(res);

		params[0] = name;
		params[1] = conninfo;
		params[2] = peer_role;
		params[3] = token;
		res = kmd_remote_exec(conn, remote_call(conn, "kmd_add_node($1::pg_catalog.text, $2::pg_catalog.text, "
												"$3::pg_catalog.text, $4::pg_catalog.uuid)"),
							  4, params);
		node_id = atoi(PQgetvalue(res, 0, 0));
		PQclear(res);

		res = kmd_remote_exec(conn, "SELECT cluster_id::text FROM kommander.local", 0, NULL);
		cluster_id = pstrdup(PQgetvalue(res, 0, 0));
		PQclear(res);
		/* one statement, one snapshot: the roster as of a system index */
		res = kmd_remote_exec(conn, "SELECT coalesce(pg_catalog.json_agg(r), '[]')::text, "
							  "(SELECT applied_index FROM kommander.applied WHERE partition_id = 0), "
							  "(SELECT value FROM kommander.counters WHERE name = 'next_node_id') "
							  "FROM kommander.roster r", 0, NULL);
		roster = pstrdup(PQgetvalue(res, 0, 0));
		roster_index = pstrdup(PQgetisnull(res, 0, 1) ? "0" : PQgetvalue(res, 0, 1));
		next_node_id = pstrdup(PQgetisnull(res, 0, 2) ? "2" : PQgetvalue(res, 0, 2));
		PQclear(res);

		/* our identity, committed at once through that session */
		snprintf(id_text, sizeof(id_text), "%d", node_id);
		params[0] = id_text;
		params[1] = cluster_id;
		params[2] = roster;
		params[3] = roster_index;
		params[4] = next_node_id;
		res = kmd_remote_exec(self, "SELECT kommander.join_local($1::int, $2::uuid, $3::jsonb, $4::bigint, $5::bigint)",
							  5, params);
		PQclear(res);
	}
	PG_FINALLY();
	{
		PQfinish(self);
	}
	PG_END_TRY();
	kmd_wake_launcher();
	return node_id;
}

/*
 * kmd_join(node_name, conninfo, seed_conninfo, promote, peer_role): add
 * this node to the seed's cluster, catch up, and promote it.  Run again on
 * a node that took its identity in an earlier try, it goes on from there.
 */
Datum
kmd_join(PG_FUNCTION_ARGS)
{
	char	   *name = node_name_arg(fcinfo, 0);
	char	   *conninfo = conninfo_arg(fcinfo, 1, "conninfo");
	char	   *seed = conninfo_arg(fcinfo, 2, "seed_conninfo");
	bool		promote;
	char	   *peer_role = peer_role_arg(fcinfo, 4);
	PGconn	   *volatile conn = NULL;
	int32		node_id = 0;
	char	   *own_cluster = NULL;
	MemoryContext caller = CurrentMemoryContext;

	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("promote must not be null")));
	promote = PG_GETARG_BOOL(3);
	/* through sessions of its own, but a write all the same, as a proposal */
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot join in a read-only transaction"),
				 errdetail("kmd_join writes this node's identity and adds the node to the cluster's roster.")));
	require_served_database();
	SPI_connect();
	if (SPI_execute("SELECT node_id, cluster_id::text FROM kommander.local", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.local");
	if (SPI_processed > 0)
	{
		bool		isnull;

		/* refused as the node it was: it cannot go on as that node either */
		if (kmd_shared->went_back_from != 0)
			already_belongs();
		node_id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		own_cluster = MemoryContextStrdup(caller,
										  SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
		require_same_node(node_id, name, conninfo, peer_role);
	}
	SPI_finish();

	PG_TRY();
	{
		const char *params[1];
		PGresult   *targets;

		conn = kmd_remote_connect(seed, "the seed node");
		refuse_unlike_database(conn);
		if (own_cluster != NULL)
		{
			require_seed_holds(conn, node_id, own_cluster);
			require_room(conn);
		}
		else
		{
			require_room(conn);
			node_id = take_identity(conn, name, conninfo, peer_role);
		}

		/* catch up with what the seed has committed, then promote */
		targets = kmd_remote_exec(conn, "SELECT partition_id, commit_index FROM kommander.partitions "
							  "WHERE state <> 'gone'", 0, NULL);
		wait_caught_up(targets);
		PQclear(targets);

		if (promote)
		{
			TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															   kmd_propose_timeout);
			char	   *promote_sql = remote_call(conn, "kmd_promote_node($1::pg_catalog.text)");

			params[0] = name;
			for (;;)
			{
				PGresult   *pres = kmd_remote_try(conn, promote_sql, 1, params);
				const char *state = PQresultErrorField(pres, PG_DIAG_SQLSTATE);
				bool		lagging = state != NULL && strcmp(state, "K0006") == 0;

				if (PQresultStatus(pres) == PGRES_TUPLES_OK)
				{
					PQclear(pres);
					break;
				}
				PQclear(pres);
				if (!lagging || GetCurrentTimestamp() >= deadline)
					(void) kmd_remote_exec(conn, promote_sql, 1, params);
				(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 100, PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
		}
	}
	PG_FINALLY();
	{
		if (conn != NULL)
			PQfinish(conn);
	}
	PG_END_TRY();

	PG_RETURN_INT32(node_id);
}

/*
 * kommander.join_local(node_id, cluster_id, roster, roster_index,
 * next_node_id): write a joining node's identity, its copy of the roster
 * (the addresses of its peers) as of system partition index roster_index
 * with the node id counter of then, the initial state of the rest of the
 * system partition, and empty Raft groups that will learn their
 * configuration from their leaders.  Replaying the system partition's log
 * then skips the roster changes up to roster_index.  Called by kmd_join
 * through a connection to this very node.
 */
Datum
kmd_join_local(PG_FUNCTION_ARGS)
{
	Datum		values[5];
	Oid			types[5] = {INT4OID, UUIDOID, JSONBOID, INT8OID, INT8OID};
	raft_conf	empty;

	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("arguments of kommander.join_local must not be null")));
	if (PG_GETARG_INT32(0) <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("node id %d is not positive", PG_GETARG_INT32(0)),
				 errdetail("The cluster numbers its nodes from 1.")));
	require_served_database();
	for (int i = 0; i < 5; i++)
		values[i] = PG_GETARG_DATUM(i);

	SPI_connect();
	require_no_identity();
	spi_exec("INSERT INTO kommander.local (node_id, cluster_id, roster_index) VALUES ($1, $2, $4)",
			 4, types, values, NULL, SPI_OK_INSERT);
	record_timeline();
	spi_exec("INSERT INTO kommander.roster "
			 "SELECT * FROM pg_catalog.jsonb_populate_recordset(NULL::kommander.roster, $3) "
			 "ON CONFLICT (node_id) DO UPDATE SET node_name = EXCLUDED.node_name, "
			 "conninfo = EXCLUDED.conninfo, role = EXCLUDED.role, peer_role = EXCLUDED.peer_role, "
			 "join_token = EXCLUDED.join_token",
			 3, types, values, NULL, SPI_OK_INSERT);
	/* the map is not copied: applying the logs rebuilds it */
	insert_initial_state();
	spi_exec("UPDATE kommander.counters SET value = $5 WHERE name = 'next_node_id'",
			 5, types, values, NULL, SPI_OK_UPDATE);

	memset(&empty, 0, sizeof(empty));
	/* not read-only: it must see the rows inserted just above */
	if (SPI_execute("SELECT partition_id FROM kommander.partition_map WHERE state <> 'gone'",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read kommander.partition_map");
	{
		uint64		n = SPI_processed;
		int32	   *ids = palloc(sizeof(int32) * Max(n, 1));

		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			ids[i] = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[i],
												 SPI_tuptable->tupdesc, 1, &isnull));
		}
		for (uint64 i = 0; i < n; i++)
			kmd_storage_create_group(ids[i], &empty);
	}
	SPI_finish();
	PG_RETURN_VOID();
}

/* ------------------------------------------------------------------------
 * Roster changes
 * ------------------------------------------------------------------------
 */
static KmdOutcome
propose_roster(uint32 kind, int n_args, char *a0, char *a1, char *a2, char *a3)
{
	KmdCommand	cmd;
	KmdOutcome	out;

	memset(&cmd, 0, sizeof(cmd));
	cmd.kind = kind;
	cmd.sys_index = kmd_partition_applied(0);
	cmd.n_args = n_args;
	cmd.args[0] = a0;
	cmd.args[1] = a1;
	cmd.args[2] = a2;
	cmd.args[3] = a3;
	kmd_propose_command(0, &cmd, &out);
	return out;
}

/*
 * kmd_add_node(node_name, conninfo, peer_role, join_token): the node's
 * arguments (an empty peer role for none), then its join token if any.
 */
Datum
kmd_add_node(PG_FUNCTION_ARGS)
{
	char	   *name = node_name_arg(fcinfo, 0);
	char	   *conninfo = conninfo_arg(fcinfo, 1, "conninfo");
	char	   *peer_role = peer_role_arg(fcinfo, 2);
	char	   *token = NULL;
	KmdOutcome	out;

	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
		token = DatumGetCString(DirectFunctionCall1(uuid_out, PG_GETARG_DATUM(3)));
	kmd_require_member();
	out = propose_roster(KMD_CMD_NODE_ADD, token ? 4 : peer_role ? 3 : 2, name, conninfo,
						 peer_role ? peer_role : "", token);
	if (out.result == NULL)
		elog(ERROR, "adding node \"%s\" returned no node id", name);
	PG_RETURN_INT32(atoi(out.result));
}

/* Role of a roster member in the cache, by id (0 if absent). */
static int
roster_role(int32 node_id)
{
	KmdNode    *node;
	int			role = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	node = kmd_node_find(node_id);
	if (node != NULL)
		role = node->role;
	LWLockRelease(kmd_shared->lock);
	return role;
}

Datum
kmd_promote_node(PG_FUNCTION_ARGS)
{
	char	   *name = node_name_arg(fcinfo, 0);
	int32		node_id;
	KmdOutcome	out;

	kmd_require_member();
	node_id = kmd_node_id_by_name(name);
	if (roster_role(node_id) == KMD_NODE_VOTER)
		PG_RETURN_VOID();
	if (roster_role(node_id) == KMD_NODE_REMOVING)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("node \"%s\" is being removed and cannot be promoted", name),
				 errhint("Finish the removal with kmd_remove_node(), then join the server again under a new name.")));

	kmd_request(KMD_REQ_PROMOTE_CHECK, 0, node_id, NULL, &out);
	if (strcmp(out.sqlstate, "K0006") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_KMD_LEARNER_LAGGING),
				 errmsg("node \"%s\" has not caught up yet", name),
				 errdetail("It lags the system partition's leader by more than kommander.promote_max_lag (%d) entries.",
						   kmd_promote_max_lag),
				 errhint("Wait and retry.")));
	kmd_outcome_raise(&out);
	(void) propose_roster(KMD_CMD_NODE_PROMOTE, 2, name, psprintf("%d", node_id), NULL, NULL);
	PG_RETURN_VOID();
}

/*
 * Wait until the leader of every partition this node knows answers that
 * its committed configuration does not count `node_id' (host_lets_go), or
 * kommander.propose_timeout passes (K0002).  This node's own view proves
 * nothing: it may be empty (a node still joining), stale (the node was
 * added since) or not committed.  A partition that answered is not asked
 * again; one split off later is (its parent let the node go only after
 * it).
 */
static void
wait_out_of_groups(int32 node_id, const char *name)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   kmd_propose_timeout);
	int32	   *let_go = palloc0(sizeof(int32) * kmd_shared->max_partitions);
	int			n_let_go = 0;
	int32	   *ids = palloc(sizeof(int32) * kmd_shared->max_partitions);

	for (;;)
	{
		int			n = 0;
		bool		member = false;

		LWLockAcquire(kmd_shared->lock, LW_SHARED);
		for (int i = 0; i < kmd_shared->partitions_used; i++)
		{
			KmdPartition *part = &kmd_shared->partitions[i];

			/* a merged-away partition has no group any more */
			if (part->partition_id >= 0 && part->state != KMD_PART_GONE)
				ids[n++] = part->partition_id;
		}
		LWLockRelease(kmd_shared->lock);

		for (int i = 0; i < n; i++)
		{
			KmdOutcome	out;
			bool		asked = false;

			for (int j = 0; j < n_let_go && !asked; j++)
				asked = let_go[j] == ids[i];
			if (asked)
				continue;
			/* each question may wait a propose_timeout: none past the deadline */
			if (GetCurrentTimestamp() >= deadline)
			{
				member = true;
				break;
			}
			kmd_request_outcome(KMD_REQ_MEMBER_CHECK, ids[i], node_id, NULL, &out);
			if (strcmp(out.sqlstate, "00000") == 0 && n_let_go < kmd_shared->max_partitions)
				let_go[n_let_go++] = ids[i];
			else
				member = true;
		}
		if (!member)
			break;
		if (GetCurrentTimestamp() >= deadline)
			ereport(ERROR,
					(errcode(ERRCODE_KMD_NO_QUORUM),
					 errmsg("node \"%s\" is still a member of some partitions", name),
					 errdetail("The roster marks it 'removing'; the partition leaders take it out of their groups one change at a time, and every partition's leader must answer that its committed configuration is without it."),
					 errhint("Run kmd_remove_node() again later to finish.")));
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 100, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

Datum
kmd_remove_node(PG_FUNCTION_ARGS)
{
	char	   *name = node_name_arg(fcinfo, 0);
	int32		node_id;
	int			voters = 0;
	char		id_text[16];

	kmd_require_member();
	node_id = kmd_node_id_by_name(name);
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
		if (kmd_shared->nodes[i].node_id != 0 &&
			kmd_shared->nodes[i].role == KMD_NODE_VOTER)
			voters++;
	LWLockRelease(kmd_shared->lock);
	if (roster_role(node_id) == KMD_NODE_VOTER && voters <= 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot remove the last voter \"%s\"", name),
				 errhint("Join another node and let it be promoted first.")));

	/*
	 * Not from itself: the last step is proposed from outside the groups
	 * it has left, and its own apply of it, which the call waits for,
	 * never comes.
	 */
	if (node_id == kmd_shared->local_node_id)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("node \"%s\" cannot remove itself", name),
				 errhint("Run kmd_remove_node() on another member.")));

	/*
	 * 1. 'removing': leaders hand over and every group lets the node go.
	 * Each step names itself: a step 1 proposed twice (a retry after
	 * K0003, two sessions at once) must not be taken for step 2.
	 */
	snprintf(id_text, sizeof(id_text), "%d", node_id);
	if (roster_role(node_id) != KMD_NODE_REMOVING)
		(void) propose_roster(KMD_CMD_NODE_REMOVE, 3, name, KMD_REMOVE_MARK, id_text, NULL);
	wait_out_of_groups(node_id, name);
	/* 2. out of the roster: its messages are refused from now on */
	(void) propose_roster(KMD_CMD_NODE_REMOVE, 3, name, KMD_REMOVE_DROP, id_text, NULL);
	PG_RETURN_VOID();
}

int32
kmd_node_id_by_name(const char *name)
{
	int32		id = 0;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
		if (kmd_shared->nodes[i].node_id != 0 &&
			strcmp(kmd_shared->nodes[i].name, name) == 0)
			id = kmd_shared->nodes[i].node_id;
	LWLockRelease(kmd_shared->lock);
	if (id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("node \"%s\" is not in the roster", name),
				 errhint("See kommander.nodes for the members of the cluster.")));
	return id;
}
