# 112_an_image_behind_a_known_merge_is_refused.pl
#   A node learns from one image that a partition was merged away, then
#   needs the image of the partition that took it in from a node that has
#   not applied that merge yet.  While node3 is down, partition 1 splits
#   off 2 and then 3 (just below 2), and 2 is merged into 3; row locks hold
#   node2's apply of partition 3 back before the merge, and its apply of
#   partition 1 back before node1's compaction point; node2 leads
#   partition 3.  node3 comes back behind node1's compacted log of
#   partition 1: its image (from node1: node2 is behind) brings 2 as gone
#   into 3 and 3 as wanting an image of its own, which node3 asks of
#   node2.  That image is behind node3's map (it has not taken 2 in):
#   installed, 2's range would belong to nobody on node3, and the merge,
#   replayed there, would find 2 gone.  node3 refuses it and takes the
#   image from node1; every node ends with the same map, tiling the hash
#   space, and the same rows.
#
# Copyright (c) 2026, kommander developers
#
# t/112_an_image_behind_a_known_merge_is_refused.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

# node2 must keep leading the partition under test until node3 is back:
# a longer election timeout keeps a busy machine from moving it, and
# node2, whose apply of it is held back below, from handing it on (after
# four election timeouts of the stall)
my $conf = "kommander.snapshot_threshold = 10\nkommander.balance_interval = 0\n"
  . "kommander.election_timeout = 4000\n";
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes);

# node3 is down from here until its logs are behind node1's
my $n3_applied = $n3->safe_psql('postgres',
	'SELECT applied_index FROM kommander.partitions WHERE partition_id = 1');
$n3->stop('immediate');

# 1 = [min, -2^62), 3 = [-2^62, 0), 2 = [0, max): 3 sits just below 2
my $low = '-4611686018427387904';
is($n1->safe_psql('postgres', 'SELECT kmd_split(1, 0)'), '2', 'partition 1 split off 2 at 0');
is($n1->safe_psql('postgres', "SELECT kmd_split(1, $low)"), '3', 'partition 1 split off 3 below 2');
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node1'), kmd_transfer_leader(3, 'node2')");
ok($n1->poll_query_until('postgres',
	"SELECT string_agg(partition_id || '=' || leader_name, ',' ORDER BY partition_id) = '1=node1,3=node2' "
	  . 'FROM kommander.partitions WHERE partition_id IN (1, 3)'),
	'node1 leads partition 1, node2 partition 3');

# node2 cannot apply an update of a row of partition 3 (its apply of 3
# stops before the merge), nor one of partition 1 (so that node3's image of
# partition 1, from past node1's compaction, cannot come from node2)
my ($locker, $key, $pkey) = KmdTest::hold_back($n1, $n2, [3, 1]);

# the merge: node1 applies it, node2 has it in its log of 3 but not applied
is($n1->safe_psql('postgres', 'SELECT kmd_merge(3, 2)'), '3', 'partition 2 merged into 3 on node1');
is($n1->safe_psql('postgres', 'SELECT state || coalesce(merged_into::text, \'\') FROM kommander.partition_map WHERE partition_id = 2'),
	'gone3', 'node1 has partition 2 gone into 3');
is($n2->safe_psql('postgres', 'SELECT hi FROM kommander.partitions WHERE partition_id = 3'),
	'0', 'node2 has not applied the merge');

# partition 1's log on node1 moves past what node3 and node2 applied
my $n2_applied = $n2->safe_psql('postgres',
	'SELECT applied_index FROM kommander.partitions WHERE partition_id = 1');
ok(KmdTest::compact_past($n1, 1, $n3_applied > $n2_applied ? $n3_applied : $n2_applied),
	'node1 compacted partition 1 past what node3 and node2 applied');

# node3 comes back: partition 1 from node1, then partition 3 from elsewhere
is(KmdTest::leader_of($n1, 3), 'node2', 'node2 still leads partition 3, and sends node3 its snapshot');
my $offset = -s $n3->logfile;
$n3->start;
ok($n3->wait_for_log(qr/installed an image of partition 1 from node 1/, $offset),
	'node3 installed an image of partition 1 from node1');
ok($n3->wait_for_log(qr/installed an image of partition 3 from node/, $offset),
	'node3 installed an image of partition 3');
my $log = slurp_file($n3->logfile, $offset);
unlike($log, qr/installed an image of partition 3 from node 2/,
	'node3 did not install node2\'s image of partition 3, from before the merge');
like($log, qr/could not install an image of partition 3 from node 2.*\n.*merged into partition 3/,
	'node3 refused it: partition 2 went into 3 on node3 and not in the image');

# node2 applies the merge once the lock goes; then every node agrees
$locker->query_safe('COMMIT');
$locker->quit;
ok(KmdTest::wait_converged(\@nodes), 'every node converges');
for my $node (@nodes)
{
	is(KmdTest::range_defects($node), '0', $node->name . ': the active partitions tile the hash space');
	is($node->safe_psql('postgres',
		"SELECT state || ':' || coalesce(merged_into::text, '') FROM kommander.partition_map WHERE partition_id = 2"),
		'gone:3', $node->name . ': partition 2 is gone into 3');
	is($node->safe_psql('postgres',
		"SELECT lo || ':' || coalesce(hi::text, '') FROM kommander.partitions WHERE partition_id = 3"),
		"$low:", $node->name . ': partition 3 took 2\'s range in');
	is($node->safe_psql('postgres', "SELECT string_agg(v, ',' ORDER BY k) FROM kv WHERE k IN ('$key', '$pkey')"),
		'1,1', $node->name . ': the updates held back on node2 are there');
}
KmdTest::same_state(\@nodes);
is(KmdTest::misplaced_rows($n3, 'kv'), '0', 'node3: every row lies in one partition');

done_testing();
