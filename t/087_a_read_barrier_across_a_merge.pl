# 087_a_read_barrier_across_a_merge.pl
#   kmd_read_barrier(key) through a node that has not applied a merge of
#   the key's partition yet, while the nodes that applied it have stopped
#   that partition's group: no leader answers its read index any more.
#   Once the node applies the merge, the barrier goes on with the
#   partition the key went into, and sees a write made there, instead of
#   asking the stopped group until its timeout.
#
# Copyright (c) 2026, kommander developers
#
# t/087_a_read_barrier_across_a_merge.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::split_in_two(\@nodes);

# node1 applies nothing more of partition 2, the right one
my ($locker) = KmdTest::hold_back($n2, $n1, [2]);
is($n2->safe_psql('postgres', 'SELECT kmd_merge(1, 2)'), '1', 'node2 merges partition 2 into 1');
for my $node ($n2, $n3)
{
	ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM kommander.partitions WHERE partition_id = 2}),
		$node->name . ' applied the merge');
}
my $key = KmdTest::key_in($n1, 2, 'was2-');
is($n1->safe_psql('postgres', "SELECT partition_id FROM kmd_route('$key')"), '2',
	"node1 still routes $key to partition 2");
KmdTest::upsert_kv($n2, $key);

# the barrier through node1 waits while node1 is held; then goes on
my $barrier = IPC::Run::start(
	[ 'psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', KmdTest::conninfo($n1),
	  '-c', "SET kommander.propose_timeout = '60s'",
	  '-c', "SELECT kmd_read_barrier('$key') > 0 AS past",
	  '-c', "SELECT v FROM kv WHERE k = '$key'" ],
	'>', \my $stdout, '2>', \my $stderr);
$n1->poll_query_until('postgres',
	q{SELECT count(*) > 0 FROM pg_stat_activity WHERE query LIKE 'SELECT kmd_read_barrier%' AND wait_event IS NOT NULL})
  or die 'the barrier through node1 did not start';
$locker->query_safe('ROLLBACK');
$locker->quit;
ok($barrier->finish, 'the barrier through node1 completes') or diag($stderr);
is($stdout, "t\nx\n", 'past the merge, and sees the write made through the partition the key went into');
KmdTest::wait_converged(\@nodes);
KmdTest::same_state(\@nodes);
done_testing();
