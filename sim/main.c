/*-------------------------------------------------------------------------
 *
 * main.c
 *	  kmd-sim: run the deterministic simulator for one seed or many.
 *
 *	  kmd-sim --seed S [--seeds K] [--nodes N] [--groups M] [--steps T]
 *	          [--faults list] [--bug NAME[,NAME...]] [--expect INVARIANT]
 *	          [--ignore INVARIANT]
 *	          [--clients C] [--no-membership] [--partitions] [--compact N]
 *	          [--no-host-moves] [--trace] [--history FILE]
 *
 * The same arguments print the same output, ending in "digest: <hex>".
 * Exit status 1 if any seed violated an invariant or left its history
 * unchecked (the linearizability search gave up), 2 on bad usage.  With
 * --expect, the seeds run until one violates that invariant, and the exit
 * status is 0 if one did, 1 if none did: a deliberate bug must be caught
 * by the invariant meant to catch it, not by another.  --ignore leaves
 * one invariant unchecked, so that a bug it would catch first reaches
 * the one behind it (a second vote in a term, then two leaders).
 *
 * Copyright (c) 2026, kommander developers
 *
 * sim/main.c
 *
 *-------------------------------------------------------------------------
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

static void
usage(void)
{
	fprintf(stderr,
			"usage: kmd-sim --seed S [--seeds K] [--nodes N(3..7)] [--groups M(1..64)]\n"
			"               [--steps T] [--faults drop,dup,reorder,delay,partition,crash,fsync,stall|all|none]\n"
			"               [--bug commit-old-term|forget-vote|double-vote|no-prevote-term|early-apply|\n"
			"                      no-fencing|early-merge|stale-read|split-overlap|\n"
			"                      reuse-id|remove-early|leave-early|late-member|lone-voter|\n"
			"                      stale-reconcile|strand-merge|promote-unheard|image-index|\n"
			"                      silent-quorum,\n"
			"                      or several joined by commas]\n"
			"               [--expect INVARIANT] [--ignore INVARIANT]\n"
			"               [--clients C(1..8)] [--no-membership]\n"
			"               [--partitions] [--compact N (default 8, 0 never)]\n"
			"               [--no-host-moves] [--trace]\n"
			"               [--history FILE (one seed)]\n");
	exit(2);
}

static uint64_t
num(const char *s)
{
	char	   *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*s == '\0' || *end != '\0')
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	sim_config	cfg;
	uint64_t	seeds = 1;
	uint64_t	violations = 0;
	uint64_t	give_ups = 0;
	uint64_t	ran = 0;
	bool		caught = false;
	uint64_t	first_bad = 0;
	uint64_t	steps = 0;
	uint64_t	msgs = 0;
	uint64_t	ops = 0;
	uint64_t	splits = 0;
	uint64_t	merges = 0;
	uint64_t	roster = 0;
	uint64_t	compactions = 0;
	uint64_t	images = 0;
	uint64_t	images_cut = 0;
	uint64_t	liveness_max = 0;
	uint64_t	digest = 1469598103934665603ULL;
	clock_t		t0;
	double		cpu;
	const char *faults_arg = NULL;
	const char *bug_arg = NULL;
	const char *expect = NULL;
	const char *history = NULL;
	char		compact_arg[32];

	memset(&cfg, 0, sizeof(cfg));
	cfg.nodes = 3;
	cfg.groups = 1;
	cfg.steps = 20000;
	cfg.faults = SIM_F_ALL;
	cfg.membership = true;
	cfg.clients = 4;
	cfg.compact = 8;

	for (int i = 1; i < argc; i++)
	{
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--trace") == 0)
			cfg.trace = true;
		else if (strcmp(a, "--no-membership") == 0)
			cfg.membership = false;
		else if (strcmp(a, "--partitions") == 0)
			cfg.partitions = true;
		else if (strcmp(a, "--no-host-moves") == 0)
			cfg.no_host_moves = true;
		else if (v == NULL)
			usage();
		else if (strcmp(a, "--seed") == 0)
			cfg.seed = num(v), i++;
		else if (strcmp(a, "--seeds") == 0)
			seeds = num(v), i++;
		else if (strcmp(a, "--nodes") == 0)
			cfg.nodes = (int) num(v), i++;
		else if (strcmp(a, "--groups") == 0)
			cfg.groups = (int) num(v), i++;
		else if (strcmp(a, "--steps") == 0)
			cfg.steps = num(v), i++;
		else if (strcmp(a, "--expect") == 0)
			expect = v, i++;
		else if (strcmp(a, "--ignore") == 0)
			cfg.ignore = v, i++;
		else if (strcmp(a, "--history") == 0)
			history = v, i++;
		else if (strcmp(a, "--clients") == 0)
			cfg.clients = (int) num(v), i++;
		else if (strcmp(a, "--compact") == 0)
			cfg.compact = (uint32_t) num(v), i++;
		else if (strcmp(a, "--faults") == 0)
		{
			if (sim_parse_faults(v, &cfg.faults) != 0)
				usage();
			faults_arg = v;
			i++;
		}
		else if (strcmp(a, "--bug") == 0)
		{
			cfg.bugs = sim_parse_bug(v);
			if (cfg.bugs == 0)
				usage();
			bug_arg = v;
			i++;
		}
		else
			usage();
	}
	if (cfg.nodes < 3 || cfg.nodes > SIM_MAX_NODES || cfg.groups < 1 ||
		cfg.groups > SIM_MAX_GROUPS || cfg.clients < 1 || cfg.clients > 8 || seeds < 1 ||
		(cfg.partitions && cfg.groups < 2) || (history != NULL && seeds != 1))
		usage();
	snprintf(compact_arg, sizeof(compact_arg), " --compact %u", cfg.compact);
	if (history != NULL && (cfg.history = fopen(history, "w")) == NULL)
	{
		perror(history);
		return 2;
	}

	t0 = clock();
	for (uint64_t k = 0; k < seeds && !caught; k++)
	{
		sim_config	c = cfg;
		sim_result	r;

		c.seed = cfg.seed + k;
		sim_run(&c, &r, stdout);
		ran++;
		steps += r.steps;
		msgs += r.messages;
		ops += r.ops;
		splits += r.splits;
		merges += r.merges;
		roster += r.roster_changes;
		compactions += r.compactions;
		images += r.images;
		images_cut += r.images_cut;
		if (r.liveness_ms > liveness_max)
			liveness_max = r.liveness_ms;
		digest ^= r.digest;
		digest *= 1099511628211ULL;
		if (!r.ok || r.lin_gave_up)
		{
			if (!r.ok && violations == 0)
				first_bad = c.seed;
			violations += !r.ok;
			give_ups += r.lin_gave_up;
			caught = expect != NULL && !r.ok && strcmp(r.invariant, expect) == 0;
			printf("replay: kmd-sim --seed %llu --nodes %d --groups %d --steps %llu --clients %d%s%s%s%s%s%s%s\n",
				   (unsigned long long) c.seed, c.nodes, c.groups,
				   (unsigned long long) c.steps, c.clients,
				   c.membership ? "" : " --no-membership",
				   c.partitions ? " --partitions" : "",
				   c.partitions ? compact_arg : "",
				   faults_arg ? " --faults " : "", faults_arg ? faults_arg : "",
				   bug_arg ? " --bug " : "", bug_arg ? bug_arg : "");
		}
		else if (seeds == 1)
			printf("seed %llu: ok, %llu steps, %llu messages, %llu ops (%llu unknown), "
				   "%llu ms simulated, recovered %llu ms after healing\n",
				   (unsigned long long) c.seed, (unsigned long long) r.steps,
				   (unsigned long long) r.messages, (unsigned long long) r.ops,
				   (unsigned long long) r.pending_ops, (unsigned long long) r.sim_ms,
				   (unsigned long long) r.liveness_ms);
	}
	cpu = (double) (clock() - t0) / CLOCKS_PER_SEC;

	printf("seeds: %llu ok: %llu violations: %llu give-ups: %llu", (unsigned long long) ran,
		   (unsigned long long) (ran - violations - give_ups), (unsigned long long) violations,
		   (unsigned long long) give_ups);
	if (violations)
		printf(" first: %llu", (unsigned long long) first_bad);
	printf(" steps: %llu messages: %llu ops: %llu max-recovery-ms: %llu",
		   (unsigned long long) steps, (unsigned long long) msgs,
		   (unsigned long long) ops, (unsigned long long) liveness_max);
	if (cfg.partitions)
		printf(" splits: %llu merges: %llu roster: %llu compactions: %llu images: %llu cut: %llu",
			   (unsigned long long) splits, (unsigned long long) merges,
			   (unsigned long long) roster, (unsigned long long) compactions,
			   (unsigned long long) images, (unsigned long long) images_cut);
	printf("\n");
	/* speed goes to stderr: it is not deterministic */
	fprintf(stderr, "cpu: %.2f s, %.0f messages/s, %.0f steps/s\n", cpu,
			cpu > 0 ? msgs / cpu : 0.0, cpu > 0 ? steps / cpu : 0.0);
	printf("digest: %016llx\n", (unsigned long long) digest);
	if (cfg.history != NULL && fclose(cfg.history) != 0)
	{
		perror(history);
		return 2;
	}
	if (expect != NULL)
	{
		if (caught)
			printf("caught: seed %llu: %s\n", (unsigned long long) (cfg.seed + ran - 1), expect);
		else
			printf("not caught: no seed violated %s\n", expect);
		return caught ? 0 : 1;
	}
	return violations || give_ups ? 1 : 0;
}
