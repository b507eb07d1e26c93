# 121_autovacuum_sees_what_the_workers_write.pl
#   The rows kommander's workers write, delete and update (the log the Raft
#   workers append to and compact, the tables the apply worker writes) are
#   counted in the statistics autovacuum reads, so autovacuum vacuums and
#   analyzes those tables on every node.  The workers once never reported
#   their counts: the log's table grew with every write although it held
#   a bounded number of rows, and a user table's dead rows and planner
#   statistics were never looked at.
#
# Copyright (c) 2026, kommander developers
#
# t/121_autovacuum_sees_what_the_workers_write.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3,
	conf => "kommander.snapshot_threshold = 100\nkommander.balance_interval = 0\n"
	  . "autovacuum_naptime = 1s\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);

# keys k1..k300 written five times over through node2: 300 inserts and
# 1,200 updates of kv, 1,500 entries of the log, most of them compacted
$n2->safe_psql('postgres', q{
DO $$
BEGIN
  FOR r IN 1..5 LOOP
    FOR i IN 1..300 LOOP
      PERFORM kmd_propose('k' || i, jsonb_build_object('op', 'upsert', 'table', 'kv',
        'row', jsonb_build_object('k', 'k' || i, 'v', r::text)));
    END LOOP;
  END LOOP;
END $$});
ok(KmdTest::wait_converged(\@nodes), 'every node applied the writes');

for my $node (@nodes)
{
	my $name = $node->name;

	ok( $node->poll_query_until('postgres', q{
			SELECT n_tup_ins >= 300 AND n_tup_upd >= 1200
			  FROM pg_stat_all_tables WHERE relid = 'public.kv'::regclass}),
		"$name: the apply worker's inserts and updates of kv are counted");
	ok( $node->poll_query_until('postgres', q{
			SELECT n_tup_ins >= 1500 AND n_tup_del > 0
			  FROM pg_stat_all_tables WHERE relid = 'kommander.log'::regclass}),
		"$name: the Raft workers' appends to the log and its compaction are counted");
	ok( $node->poll_query_until('postgres', q{
			SELECT autovacuum_count > 0 AND autoanalyze_count > 0
			  FROM pg_stat_all_tables WHERE relid = 'public.kv'::regclass}),
		"$name: autovacuum vacuumed and analyzed kv");
	ok( $node->poll_query_until('postgres', q{
			SELECT autovacuum_count > 0
			  FROM pg_stat_all_tables WHERE relid = 'kommander.log'::regclass}),
		"$name: autovacuum vacuumed the log");
}

done_testing();
