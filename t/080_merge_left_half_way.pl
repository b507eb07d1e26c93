# 080_merge_left_half_way.pl
#   A merge whose caller goes away after the freeze is finished by the
#   cluster: node 1's apply is held back so that kmd_merge times out after
#   freezing the right partition; once the freeze is everywhere, the leader
#   of the left partition commits the merge by itself.  Rows survive, the
#   ranges tile the hash space, and the merged keys take writes again.
#   Leases granted without a key meanwhile avoid the frozen partition.
#
# Copyright (c) 2026, kommander developers
#
# t/080_merge_left_half_way.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
is($n1->safe_psql('postgres', 'SELECT kmd_split(1)'), '2', 'partition 1 split into 1 and 2');
KmdTest::wait_converged(\@nodes);

# a key of each partition, written before the merge
my $left_key = KmdTest::key_in($n1, 1, 'k');
my $right_key = KmdTest::key_in($n1, 2, 'k');
for my $k ($left_key, $right_key)
{
	$n2->safe_psql('postgres',
		"SELECT kmd_propose('$k', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$k\",\"v\":\"before\"}}')");
}
KmdTest::wait_converged(\@nodes);

# Hold node 1's apply worker: the freeze updates the partition map, which a
# SHARE lock blocks.  The freeze still commits on the other two nodes, but
# kmd_merge on node 1 waits for its local apply and gives up.
my $locker = $n1->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.partition_map IN SHARE MODE');
my ($rc, $out, $err) = $n1->psql('postgres',
	"SET kommander.propose_timeout = '2s'; SELECT kmd_merge(1, 2)");
isnt($rc, 0, 'kmd_merge gives up while its node cannot apply');
ok($n2->poll_query_until('postgres',
	"SELECT state = 'frozen' FROM kommander.partitions WHERE partition_id = 2"),
	'the freeze committed: partition 2 is frozen on node 2');
is($n2->safe_psql('postgres', 'SELECT state FROM kommander.partitions WHERE partition_id = 1'),
	'active', 'the merge itself did not commit');
# a lease granted without a key meanwhile goes to the partition not frozen
# (it failed with K0004 whenever its random id fell in the frozen one)
my $grants = $n2->safe_psql('postgres',
	q{SELECT string_agg(DISTINCT p.partition_id::text, ',')
	    FROM (SELECT kmd_lease_grant('1 min') AS g FROM generate_series(1, 20)) s,
	         LATERAL kmd_route(s.g::text) p});
is($grants, '1', 'twenty leases granted without a key, all in partition 1');
$locker->query_safe('COMMIT');
$locker->quit;

# the leader of partition 1 finishes the merge after a propose timeout
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres',
		"SELECT state = 'gone' FROM kommander.partition_map WHERE partition_id = 2"),
		$node->name . ': partition 2 is merged away');
}
KmdTest::wait_converged(\@nodes);
for my $node (@nodes)
{
	is($node->safe_psql('postgres', q{
		SELECT count(*) FROM kommander.partitions WHERE partition_id > 0 AND state <> 'gone'}),
		'1', $node->name . ': one user partition left');
	is($node->safe_psql('postgres', "SELECT string_agg(k || '=' || v, ',' ORDER BY k) FROM kv"),
		join(',', map { "$_=before" } sort ($left_key, $right_key)),
		$node->name . ': the rows of both partitions are there');
}
is($n3->safe_psql('postgres', "SELECT partition_id FROM kmd_route('$right_key')"), '1',
	'the right partition\'s keys route to the left one');
$n3->safe_psql('postgres',
	"SELECT kmd_propose('$right_key', '{\"op\":\"update\",\"table\":\"kv\",\"key\":{\"k\":\"$right_key\"},\"set\":{\"v\":\"after\"}}')");
is($n3->safe_psql('postgres', "SELECT v FROM kv WHERE k = '$right_key'"), 'after',
	'a merged key takes writes again');
my $finished = grep { slurp_file($_->logfile) =~ /finishing the merge of partition 2 into partition 1/ } @nodes;
is($finished >= 1, 1, 'a node logged that it finished the merge');

done_testing();
