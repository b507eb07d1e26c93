# 207_a_proposal_to_a_partition_merged_away.pl
#   A proposal forwarded to a leader that never answers, whose partition
#   is then merged away by the others: once the node it was made through
#   has applied that partition to its freeze and the merge, nothing can
#   apply the proposal any more, and the call fails with K0004 (route
#   again) instead of waiting for kommander.propose_timeout and failing
#   with K0003 (outcome unknown).  The write is on no node afterwards.
#
# Copyright (c) 2026, kommander developers
#
# t/207_a_proposal_to_a_partition_merged_away.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

# node1 must forward the proposal to node3 before it stops waiting for
# node3 and elects another leader: a longer election timeout than psql
# takes to start on a busy machine
my @nodes = KmdTest::new_cluster(3,
	conf => "kommander.balance_interval = 0\nkommander.election_timeout = 3000\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::split_in_two(\@nodes);
KmdTest::lead($n3, 2);
KmdTest::lead($n2, 1);
my $key = KmdTest::key_in($n1, 2, 'away-');

# node3's Raft workers stop: its connections still take what is sent
my @workers = split /\n/, $n3->safe_psql('postgres',
	q{SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander raft worker'});
is(scalar @workers, 2, 'node3 runs two Raft workers');
kill 'STOP', @workers;

# node1 forwards the proposal to node3, which it takes for the leader
my $proposal = IPC::Run::start(
	[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
	  '-d', KmdTest::conninfo($n1),
	  '-c', "SET kommander.propose_timeout = '20s'",
	  '-c', qq{SELECT kmd_propose('$key', '{"op":"upsert","table":"kv","row":{"k":"$key","v":"lost"}}')} ],
	'>', \my $stdout, '2>', \my $stderr);
$n1->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'SELECT kmd_propose%' AND wait_event IS NOT NULL})
  or die 'the proposal through node1 did not start';

# node1 and node2 elect another leader of partition 2 and merge it away
ok($n2->poll_query_until('postgres',
	q{SELECT count(*) = 2 FROM kommander.partitions
	   WHERE partition_id IN (1, 2) AND leader_name IN ('node1', 'node2')}),
	'partitions 1 and 2 are led without node3');
is($n2->safe_psql('postgres', 'SELECT kmd_merge(1, 2)'), '1', 'node2 merges partition 2 into 1');
ok($n1->poll_query_until('postgres',
	q{SELECT count(*) = 0 FROM kommander.partitions WHERE partition_id = 2}),
	'node1 applied the merge');

$proposal->finish;
like($stderr, qr/K0004/, 'the proposal fails with K0004, not applied') or diag($stderr);
unlike($stderr, qr/K0003/, 'its outcome is not left unknown');

kill 'CONT', @workers;
KmdTest::wait_converged(\@nodes);
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k = '$key'"), '0',
		$node->name . ' has no row of the proposal');
}
KmdTest::same_state(\@nodes);
done_testing();
