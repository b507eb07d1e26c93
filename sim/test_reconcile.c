/*-------------------------------------------------------------------------
 *
 * test_reconcile.c
 *	  A scripted scenario for the reconciler of sim/roster.c: a leader
 *	  loses its lead and wins it back between two of its ticks, and with
 *	  it the removal it had proposed.  It must reconcile again in its new
 *	  term; with --bug stale-reconcile (the runtime's old rule) it trusts
 *	  its last reconcile and keeps the member for good.  Random runs no
 *	  longer reach this (the lead moves back that fast only in a hand-over
 *	  within a few milliseconds), so the flaw is caught here.  Prints TAP.
 *
 * Three nodes run group 0 of partition mode with the real core; the test
 * moves the messages itself and calls the reconciler where the simulator's
 * tick would.
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/test_reconcile.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"

static int	n_tests = 0;
static int	n_failed = 0;

/* Report one TAP test point. */
static void
expect(bool cond, const char *name)
{
	n_tests++;
	if (!cond)
		n_failed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", n_tests, name);
}

/* Links that lose what is sent on them, from, to. */
static bool cut[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1];

static raft *
core(sim *s, int nid)
{
	return s->nodes[nid].g[0].r;
}

/* Hand every ready batch of group 0 over, until none is left. */
static void
pump(sim *s)
{
	bool		more = true;

	for (int rounds = 0; more && rounds < 1000; rounds++)
	{
		more = false;
		for (int nid = 1; nid <= s->cfg.nodes; nid++)
		{
			raft_ready	rd;

			if (!raft_has_ready(core(s, nid)))
				continue;
			more = true;
			raft_ready_get(core(s, nid), &rd);
			for (int pass = 0; pass < 2; pass++)
			{
				raft_message *m = pass ? rd.persist_messages : rd.messages;
				size_t		n = pass ? rd.n_persist_messages : rd.n_messages;

				for (size_t i = 0; i < n; i++)
					if (!cut[nid][m[i].to])
						(void) raft_step(core(s, (int) m[i].to), &m[i]);
			}
			raft_advance(core(s, nid), &rd);
		}
	}
}

/* Tick node `nid''s group `times' times, handing everything over each time. */
static void
tick(sim *s, int nid, int times)
{
	for (int i = 0; i < times; i++)
	{
		raft_tick(core(s, nid));
		pump(s);
	}
}

static void
isolate(int nid, bool on)
{
	for (int peer = 1; peer <= SIM_MAX_NODES; peer++)
		cut[nid][peer] = cut[peer][nid] = on;
}

/*
 * Three voters running group 0 of partition mode, with `bugs', reporting
 * into `res'; node 1 leads and has committed in its term, which `setup'
 * says.  free_sim ends it.
 */
static sim *
three_voters(uint32_t bugs, sim_result *res, bool *setup)
{
	sim		   *s = calloc(1, sizeof(sim));
	raft_conf	conf;

	memset(res, 0, sizeof(*res));
	memset(cut, 0, sizeof(cut));
	s->res = res;
	s->out = stdout;
	s->cfg.seed = 1;
	s->cfg.nodes = 3;
	s->cfg.groups = 2;
	s->cfg.partitions = true;
	s->cfg.membership = true;
	s->cfg.bugs = bugs;
	prng_seed(&s->rng, 1);
	memset(&conf, 0, sizeof(conf));
	for (int nid = 1; nid <= 3; nid++)
	{
		s->ident[nid] = (raft_id) nid;
		conf.members[conf.n].id = (raft_id) nid;
		conf.members[conf.n++].role = RAFT_VOTER;
	}
	s->next_ident = 4;
	roster_init(s, 3);
	part_init(s, &conf);
	for (int nid = 1; nid <= 3; nid++)
		group_start(s, nid, 0);
	tick(s, 1, 2 * ELECTION_TICKS);
	*setup = raft_get_role(core(s, 1)) == RAFT_LEADER;
	return s;
}

static void
free_sim(sim *s)
{
	for (int nid = 1; nid <= 3; nid++)
		for (int gi = 0; gi < 2; gi++)
			raft_free(s->nodes[nid].g[gi].r);
	free(s);
}

/*
 * The scenario, with or without the bug.  Returns whether node 1, leading
 * again, removed node 2 in the end; `setup' says whether the scenario went
 * as scripted.
 */
static bool
scenario(uint32_t bugs, bool *setup)
{
	sim_result	res;
	sim		   *s = three_voters(bugs, &res, setup);
	bool		removed;

	/* node 2 is to leave; node 1 proposes its removal, which no one gets */
	s->roster[2] = ROSTER_REMOVING;
	s->roster_version++;
	isolate(1, true);
	s->now = 1000;
	roster_reconcile(s, 1, 0);
	pump(s);
	s->now += 2 * ELECTION_TICKS * TICK_MS;
	roster_reconcile(s, 1, 0);
	*setup &= raft_conf_role(raft_get_conf(core(s, 1)), 2) == 0 && s->nodes[1].g[0].rec.in_line;

	/*
	 * Node 1 does not tick now.  Nodes 2 and 3 lose it: node 2 is elected
	 * without the removal, and, leaving, hands the lead back to node 1 at
	 * once, which truncates the removal.
	 */
	tick(s, 3, ELECTION_TICKS);
	for (int i = 0; i < 4 * ELECTION_TICKS && raft_get_role(core(s, 2)) != RAFT_LEADER; i++)
		tick(s, 2, 1);
	*setup &= raft_get_role(core(s, 2)) == RAFT_LEADER;
	isolate(1, false);
	tick(s, 2, 1);
	s->now += TICK_MS;
	roster_reconcile(s, 2, 0);
	pump(s);
	*setup &= raft_get_role(core(s, 1)) == RAFT_LEADER &&
		raft_conf_role(raft_get_conf(core(s, 1)), 2) == RAFT_VOTER;

	/* node 1's ticks from here on, for a while */
	for (int i = 0; i < 50; i++)
	{
		s->now += TICK_MS;
		tick(s, 1, 1);
		roster_reconcile(s, 1, 0);
		pump(s);
	}
	removed = raft_get_role(core(s, 1)) == RAFT_LEADER &&
		raft_conf_role(raft_get_conf(core(s, 1)), 2) == 0 &&
		raft_commit_index(core(s, 1)) == raft_last_index(core(s, 1));

	free_sim(s);
	return removed;
}

/*
 * Three voters, node 3 down, node 2 to leave.  Removing node 2 first
 * would leave voters 1 and 3, no majority of which answers: that
 * configuration, in force from its append, never commits, and the group
 * has no leader until node 3 is back.  Returns whether, while node 3 is
 * down, node 1 keeps leading with everything committed and node 2 still a
 * voter; *after says whether, node 3 back, node 2 is removed and
 * committed.
 */
static bool
silent_scenario(uint32_t bugs, bool *setup, bool *after)
{
	sim_result	res;
	sim		   *s = three_voters(bugs, &res, setup);
	bool		kept;

	/* node 3 goes down, and node 1's host no longer hears it */
	isolate(3, true);
	s->nodes[1].lost[3] = true;
	for (int i = 0; i < 2 * ELECTION_TICKS; i++)
	{
		tick(s, 1, 1);
		tick(s, 2, 1);
	}
	*setup &= raft_get_role(core(s, 1)) == RAFT_LEADER;

	/* node 2 is to leave */
	s->roster[2] = ROSTER_REMOVING;
	s->roster_version++;
	s->now = 1000;
	for (int i = 0; i < 4 * ELECTION_TICKS; i++)
	{
		s->now += TICK_MS;
		tick(s, 1, 1);
		tick(s, 2, 1);
		roster_reconcile(s, 1, 0);
		pump(s);
	}
	kept = raft_get_role(core(s, 1)) == RAFT_LEADER &&
		raft_conf_role(raft_get_conf(core(s, 1)), 2) == RAFT_VOTER &&
		raft_commit_index(core(s, 1)) == raft_last_index(core(s, 1));

	/* node 3 is back */
	isolate(3, false);
	s->nodes[1].lost[3] = false;
	for (int i = 0; i < 8 * ELECTION_TICKS; i++)
	{
		s->now += TICK_MS;
		for (int nid = 1; nid <= 3; nid++)
			tick(s, nid, 1);
		for (int nid = 1; nid <= 3; nid++)
			if (raft_get_role(core(s, nid)) == RAFT_LEADER)
				roster_reconcile(s, nid, 0);
		pump(s);
	}
	*after = false;
	for (int nid = 1; nid <= 3; nid++)
		if (raft_get_role(core(s, nid)) == RAFT_LEADER)
			*after = raft_conf_role(raft_get_conf(core(s, nid)), 2) == 0 &&
				raft_commit_index(core(s, nid)) == raft_last_index(core(s, nid));

	free_sim(s);
	return kept;
}

int
main(void)
{
	bool		setup;
	bool		removed;
	bool		kept;
	bool		after;

	printf("1..9\n");
	removed = scenario(0, &setup);
	expect(setup, "the lead is lost and won back between two ticks, the removal truncated");
	expect(removed, "the leader reconciles again in its new term and removes the leaving member");
	removed = scenario(SIM_BUG_STALE_RECONCILE, &setup);
	expect(setup, "with --bug stale-reconcile the scenario goes the same way");
	expect(!removed, "with --bug stale-reconcile the leader trusts its last reconcile and keeps the member");

	kept = silent_scenario(0, &setup, &after);
	expect(setup, "node 1 leads three voters");
	expect(kept, "with node 3 down, node 1 keeps node 2, its lead and every entry committed");
	expect(after, "node 3 back, node 2 is removed and the removal committed");
	kept = silent_scenario(SIM_BUG_SILENT_QUORUM, &setup, &after);
	expect(setup, "with --bug silent-quorum node 1 leads three voters");
	expect(!kept, "with --bug silent-quorum node 2 is removed first and the group stalls");
	return n_failed ? 1 : 0;
}
