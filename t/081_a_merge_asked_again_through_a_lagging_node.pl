# 081_a_merge_asked_again_through_a_lagging_node.pl
#   kmd_merge gives up once it froze the right partition but its node
#   cannot apply the freeze yet (here a lock on the map holds node1's
#   apply).  Run again through that node before it applied the freeze, it
#   must not freeze the partition a second time, which fails: it waits
#   for the freeze to be applied there and completes the merge.  Nor,
#   through a node that applied the freeze but not the merge another
#   node's kmd_merge committed, propose the merge again: it waits for it.
#
# Copyright (c) 2026, kommander developers
#
# t/081_a_merge_asked_again_through_a_lagging_node.pl

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
KmdTest::upsert_kv($n1, KmdTest::key_in($n1, 2, 'r'));

# node1's apply of the map is held: kmd_merge gives up once the freeze committed
my $locker = $n1->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.partition_map IN SHARE MODE');
my ($rc, $out, $err) = $n1->psql('postgres', "SET kommander.propose_timeout = '2s'; SELECT kmd_merge(1, 2)");
isnt($rc, 0, 'kmd_merge gives up while node1 cannot apply');
ok($n2->poll_query_until('postgres',
	"SELECT state = 'frozen' FROM kommander.partitions WHERE partition_id = 2"),
	'partition 2 is frozen on node2');
is($n1->safe_psql('postgres', 'SELECT state FROM kommander.partitions WHERE partition_id = 2'),
	'active', 'node1 has not applied the freeze');

# kmd_merge(1, $right) through node1 in the background, once it waits
my ($stdout, $stderr);
sub merge_through_node1
{
	my ($right) = @_;
	my $run = IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', KmdTest::conninfo($n1),
		  '-c', "SET kommander.propose_timeout = '30s'", '-c', "SELECT kmd_merge(1, $right)" ],
		'>', \$stdout, '2>', \$stderr);
	$n1->poll_query_until('postgres',
		"SELECT count(*) > 0 FROM pg_stat_activity WHERE query = 'SELECT kmd_merge(1, $right)' "
		  . 'AND wait_event IS NOT NULL')
	  or die 'the kmd_merge through node1 did not start';
	return $run;
}

# the same merge again through node1, which lets go of its map meanwhile
my $again = merge_through_node1(2);
$locker->query_safe('COMMIT');
$locker->quit;
ok($again->finish, 'kmd_merge asked again completes')
  or diag($stderr);
like($stdout, qr/^1$/m, 'and answers the surviving partition');
unlike($stderr, qr/not an active user partition/, 'it did not freeze partition 2 again');
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM kommander.partitions WHERE partition_id > 0}),
		$node->name . ' has one user partition');
}
KmdTest::wait_converged(\@nodes);
KmdTest::same_state(\@nodes);

# Asked again through a node that applied the freeze but not the merge
# (another node's kmd_merge completed it): it must not propose the merge
# again at the left partition's old generation (K0001), but wait for it.
my $right = $n1->safe_psql('postgres', 'SELECT kmd_split(1)');
for my $node (@nodes)
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 2 FROM kommander.partitions WHERE partition_id > 0 AND leader_name IS NOT NULL")
	  or die 'the split did not reach ' . $node->name;
}
($locker) = KmdTest::hold_back($n2, $n1, [1]);
is($n2->safe_psql('postgres', "SELECT kmd_merge(1, $right)"), '1', 'node2 merges the two partitions');
ok($n1->poll_query_until('postgres',
	"SELECT state = 'frozen' FROM kommander.partitions WHERE partition_id = $right"),
	"node1 applied the freeze of partition $right");
is($n1->safe_psql('postgres', 'SELECT stalled FROM kommander.partitions WHERE partition_id = 1'),
	'retrying', 'but not the merge');
$again = merge_through_node1($right);
$locker->query_safe('ROLLBACK');
$locker->quit;
ok($again->finish, 'kmd_merge through node1 completes once it applied the merge')
  or diag($stderr);
like($stdout, qr/^1$/m, 'and answers the surviving partition');
KmdTest::wait_converged(\@nodes);
KmdTest::same_state(\@nodes);
done_testing();
