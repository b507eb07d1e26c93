/*-------------------------------------------------------------------------
 *
 * resolve.c
 *	  The peers' host names, resolved by a process of their own.  libpq
 *	  resolves the host names of a conninfo with the blocking getaddrinfo()
 *	  as a connection starts: a Raft worker waiting there for a slow name
 *	  server would hold every partition it serves (no heartbeats, no
 *	  votes, no writes), and the launcher would start no stopped worker
 *	  again.  So the resolver, which may wait, resolves them and keeps the
 *	  addresses in shared memory; a Raft worker connects to those (libpq's
 *	  hostaddr: the host name still serves TLS and authentication), or
 *	  leaves the peer for a while when they are not there yet.  The
 *	  launcher starts the resolver the first time a Raft worker asks.
 *
 * A conninfo that gives hostaddr itself, or names sockets or numeric
 * addresses only, needs nothing.  A host name that resolves to several
 * addresses stands in the host list once per address (the first four),
 * tried in turn as libpq tries a name's; a name that does not resolve is
 * left out, and names that stop resolving keep the addresses last found.
 * A conninfo that may take addresses or ports from elsewhere (a service
 * file, PGHOSTADDR, PGSERVICE, a list in PGPORT) is left to libpq.
 *
 * Copyright (c) 2026, kommander developers
 *
 * src/resolve.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "libpq-fe.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "resolve.h"
#include "shmem.h"

/* how long an address is used before it is resolved again */
#define RESOLVE_EVERY_MS 10000

/* How many addresses of one name are tried, in the order DNS gives them */
#define ADDRESSES_PER_NAME 4

/* A host of a conninfo's host list that names a socket (or the default) */
static bool
socket_host(const char *host)
{
	return host[0] == '\0' || host[0] == '/' || host[0] == '@';
}

/* A host of a conninfo's host list that names a socket or an address. */
static bool
numeric_or_socket(const char *host)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return socket_host(host) ||
		inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* The entries of a comma-separated list, empty ones included. */
static List *
split_list(const char *list)
{
	List	   *entries = NIL;

	for (;;)
	{
		const char *end = strchr(list, ',');

		entries = lappend(entries, end ? pnstrdup(list, end - list) : pstrdup(list));
		if (end == NULL)
			return entries;
		list = end + 1;
	}
}

/*
 * The host and port lists of `conninfo' (palloc'd; *ports NULL when it
 * gives none), or false when it needs no resolving: it gives hostaddr,
 * names no host name, or does not parse (libpq then says why).  Nor is a
 * conninfo resolved whose addresses or ports may come from elsewhere (a
 * service file, PGHOSTADDR, a list in PGPORT): libpq takes it as it is.
 */
static bool
lists_to_resolve(const char *conninfo, char **hosts, char **ports)
{
	PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
	char	   *host = NULL;
	bool		hostaddr = false;
	bool		service = false;
	bool		wanted = false;

	*hosts = NULL;
	*ports = NULL;
	if (opts == NULL)
		return false;
	for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
	{
		if (o->val == NULL || o->val[0] == '\0')
			continue;
		if (strcmp(o->keyword, "host") == 0)
			host = pstrdup(o->val);
		else if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = true;
		else if (strcmp(o->keyword, "service") == 0)
			service = true;
		else if (strcmp(o->keyword, "port") == 0)
			*ports = pstrdup(o->val);
	}
	PQconninfoFree(opts);
	if (service || getenv("PGSERVICE") != NULL || getenv("PGHOSTADDR") != NULL ||
		(*ports == NULL && getenv("PGPORT") != NULL && strchr(getenv("PGPORT"), ',') != NULL))
		return false;
	if (host != NULL && !hostaddr)
	{
		ListCell   *lc;

		foreach(lc, split_list(host))
			wanted |= !numeric_or_socket(lfirst(lc));
	}
	*hosts = host;
	return wanted;
}

static void
append_entry(StringInfo list, bool first, const char *entry)
{
	if (!first)
		appendStringInfoChar(list, ',');
	appendStringInfoString(list, entry);
}

/*
 * `hosts' and `ports' (NULL: none) as libpq's host, hostaddr and port
 * lists into `out': a host name once per address it resolves to (the
 * first few), a numeric host with itself as address, a socket with
 * none; the port list only when `ports' is a list.  A name that does not
 * resolve is left out, with out->error saying why; false when no host
 * is left.  Waits for DNS.
 */
static bool
resolve_lists(const char *hosts, const char *ports, KmdAddress *out)
{
	List	   *host_list = split_list(hosts);
	List	   *port_list = ports != NULL && strchr(ports, ',') != NULL ? split_list(ports) : NIL;
	StringInfoData host;
	StringInfoData addr;
	StringInfoData port;
	bool		first = true;

	out->error[0] = '\0';
	if (port_list != NIL && list_length(port_list) != list_length(host_list))
	{
		snprintf(out->error, sizeof(out->error), "could not match %d port numbers to %d hosts",
				 list_length(port_list), list_length(host_list));
		return false;
	}
	initStringInfo(&host);
	initStringInfo(&addr);
	initStringInfo(&port);
	for (int i = 0; i < list_length(host_list); i++)
	{
		const char *h = list_nth(host_list, i);
		const char *p = port_list != NIL ? list_nth(port_list, i) : "";

		if (numeric_or_socket(h))
		{
			append_entry(&host, first, h);
			append_entry(&addr, first, socket_host(h) ? "" : h);
			append_entry(&port, first, p);
			first = false;
		}
		else
		{
			struct addrinfo hints;
			struct addrinfo *res = NULL;
			int			rc;
			int			n = 0;

			memset(&hints, 0, sizeof(hints));
			hints.ai_family = AF_UNSPEC;
			hints.ai_socktype = SOCK_STREAM;
			rc = getaddrinfo(h, NULL, &hints, &res);
			for (struct addrinfo *a = rc == 0 ? res : NULL;
				 a != NULL && n < ADDRESSES_PER_NAME; a = a->ai_next)
			{
				char		text[NI_MAXHOST];

				if (getnameinfo(a->ai_addr, a->ai_addrlen, text, sizeof(text),
								NULL, 0, NI_NUMERICHOST) != 0)
					continue;
				append_entry(&host, first, h);
				append_entry(&addr, first, text);
				append_entry(&port, first, p);
				first = false;
				n++;
			}
			if (res != NULL)
				freeaddrinfo(res);
			/* left out, as libpq leaves out a host it cannot resolve */
			if (n == 0)
				snprintf(out->error, sizeof(out->error),
						 "could not translate host name \"%s\" to address: %s",
						 h, rc != 0 ? gai_strerror(rc) : "no address");
		}
	}
	if (first)
		return false;			/* no host left: the error says why */
	if (host.len >= KMD_CONNINFO_LEN || addr.len >= KMD_CONNINFO_LEN ||
		port.len >= KMD_CONNINFO_LEN)
	{
		snprintf(out->error, sizeof(out->error), "the addresses of \"%s\" are too many", hosts);
		return false;
	}
	strlcpy(out->host, host.data, KMD_CONNINFO_LEN);
	strlcpy(out->hostaddr, addr.data, KMD_CONNINFO_LEN);
	strlcpy(out->port, port_list != NIL ? port.data : "", KMD_CONNINFO_LEN);
	return true;
}

KmdAddressState
kmd_peer_address(int32 node_id, const char *conninfo, KmdAddress *out)
{
	KmdAddressState state = KMD_ADDRESS_PENDING;
	char	   *hosts;
	char	   *ports;

	if (!lists_to_resolve(conninfo, &hosts, &ports))
		return KMD_ADDRESS_NOT_NEEDED;
	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
	{
		KmdAddress *a = &kmd_shared->addresses[i];

		if (a->node_id != node_id || strcmp(a->conninfo, conninfo) != 0)
			continue;
		if (a->host[0] != '\0')
		{
			*out = *a;
			state = KMD_ADDRESS_READY;
		}
		else if (a->error[0] != '\0')
		{
			strlcpy(out->error, a->error, sizeof(out->error));
			state = KMD_ADDRESS_FAILED;
		}
		break;
	}
	LWLockRelease(kmd_shared->lock);
	if (state == KMD_ADDRESS_PENDING)
	{
		Latch	   *resolver = kmd_shared->resolver_latch;

		if (resolver != NULL)
			SetLatch(resolver);
		else if (!kmd_shared->resolver_wanted)
		{
			kmd_shared->resolver_wanted = true;
			kmd_wake_launcher();
		}
	}
	return state;
}

/*
 * Resolve what is due; the milliseconds until the next is due.
 */
static long
resolve_round(void)
{
	int32		ids[KMD_MAX_NODES];
	char	  (*conninfos)[KMD_CONNINFO_LEN] = palloc(sizeof(*conninfos) * KMD_MAX_NODES);
	TimestampTz resolved_at[KMD_MAX_NODES];
	int			n = 0;
	TimestampTz now = GetCurrentTimestamp();
	long		next = RESOLVE_EVERY_MS;

	LWLockAcquire(kmd_shared->lock, LW_SHARED);
	for (int i = 0; i < KMD_MAX_NODES; i++)
	{
		KmdNode    *node = &kmd_shared->nodes[i];

		if (node->node_id == 0 || node->node_id == kmd_shared->local_node_id)
			continue;
		ids[n] = node->node_id;
		strlcpy(conninfos[n], node->conninfo, KMD_CONNINFO_LEN);
		resolved_at[n] = 0;
		for (int j = 0; j < KMD_MAX_NODES; j++)
			if (kmd_shared->addresses[j].node_id == ids[n] &&
				strcmp(kmd_shared->addresses[j].conninfo, conninfos[n]) == 0)
				resolved_at[n] = kmd_shared->addresses[j].resolved_at;
		n++;
	}
	LWLockRelease(kmd_shared->lock);

	for (int i = 0; i < n; i++)
	{
		char	   *hosts;
		char	   *ports;
		KmdAddress *found;
		long		due;
		KmdAddress *slot = NULL;
		bool		news = true;	/* an error not logged yet */

		if (!lists_to_resolve(conninfos[i], &hosts, &ports))
			continue;
		due = RESOLVE_EVERY_MS - TimestampDifferenceMilliseconds(resolved_at[i], now);
		if (resolved_at[i] != 0 && due > 0)
		{
			next = Min(next, due);
			continue;
		}
		CHECK_FOR_INTERRUPTS();
		found = palloc0(sizeof(KmdAddress));
		if (!resolve_lists(hosts, ports, found))
			found->host[0] = '\0';

		LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
		for (int j = 0; j < KMD_MAX_NODES && slot == NULL; j++)
			if (kmd_shared->addresses[j].node_id == ids[i])
				slot = &kmd_shared->addresses[j];
		for (int j = 0; j < KMD_MAX_NODES && slot == NULL; j++)
			if (kmd_shared->addresses[j].node_id == 0)
				slot = &kmd_shared->addresses[j];
		if (slot != NULL)
		{
			bool		same = slot->node_id == ids[i] &&
				strcmp(slot->conninfo, conninfos[i]) == 0;

			news = !same || strcmp(slot->error, found->error) != 0;

			/* names that stop resolving keep their last addresses */
			if (found->host[0] != '\0' || !same)
			{
				strlcpy(slot->host, found->host, KMD_CONNINFO_LEN);
				strlcpy(slot->hostaddr, found->hostaddr, KMD_CONNINFO_LEN);
				strlcpy(slot->port, found->port, KMD_CONNINFO_LEN);
			}
			slot->node_id = ids[i];
			strlcpy(slot->conninfo, conninfos[i], KMD_CONNINFO_LEN);
			strlcpy(slot->error, found->error, sizeof(slot->error));
			slot->resolved_at = GetCurrentTimestamp();
		}
		LWLockRelease(kmd_shared->lock);
		if (found->error[0] != '\0' && news)
			ereport(LOG,
					(errmsg("kommander: could not resolve the address of node %d", ids[i]),
					 errdetail_internal("%s", found->error)));
		pfree(found);
	}

	/* nodes that left the roster */
	LWLockAcquire(kmd_shared->lock, LW_EXCLUSIVE);
	for (int j = 0; j < KMD_MAX_NODES; j++)
	{
		bool		kept = false;

		for (int i = 0; i < n && !kept; i++)
			kept = kmd_shared->addresses[j].node_id == ids[i];
		if (!kept)
			kmd_shared->addresses[j].node_id = 0;
	}
	LWLockRelease(kmd_shared->lock);
	pfree(conninfos);
	return next;
}

/* The resolver stopped (the launcher starts it again) */
static void
resolver_exit(int code, Datum arg)
{
	if (kmd_shared->resolver_latch == MyLatch)
		kmd_shared->resolver_latch = NULL;
}

void
kmd_resolver_main(Datum arg)
{
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	kmd_claim_process(&kmd_shared->resolver_pid, "resolver");
	cxt = AllocSetContextCreate(TopMemoryContext, "kommander resolve",
								ALLOCSET_SMALL_SIZES);
	kmd_shared->resolver_latch = MyLatch;
	before_shmem_exit(resolver_exit, 0);
	for (;;)
	{
		MemoryContext old;
		long		next;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		/* a round allocates what it needs and leaves nothing */
		old = MemoryContextSwitchTo(cxt);
		next = resolve_round();
		MemoryContextSwitchTo(old);
		MemoryContextReset(cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 next, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
