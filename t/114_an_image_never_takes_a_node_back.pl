# 114_an_image_never_takes_a_node_back.pl
#   A node installs no image older than what it has applied itself.  node3
#   restarts with partition 1 marked as wanting an image (as after a crash
#   between an image of the system partition that brought DDL and the user
#   partitions' own images), while node1 and node2 have not applied the last
#   writes node3 made (row locks hold their apply workers back).  Installed,
#   either's image would take node3's rows and applied index back, and cut
#   the log it acknowledged at the image's index.  node3 refuses both and
#   takes an image once one of them has applied as far as it has.
#
# Copyright (c) 2026, kommander developers
#
# t/114_an_image_never_takes_a_node_back.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes);

my $key = KmdTest::key_in($n3, 1, 'held');
my $upsert = sub {
	qq{SELECT kmd_propose('$_[0]', '{"op":"upsert","table":"kv","row":{"k":"$_[0]","v":"$_[1]"}}')};
};
$n3->safe_psql('postgres', $upsert->($key, '0'));
for my $node ($n1, $n2)
{
	$node->poll_query_until('postgres', "SELECT count(*) = 1 FROM kv WHERE k = '$key'")
	  or die $node->name . ' did not apply the first write';
}

# node1's and node2's apply workers stop at the next update of the row
my @lockers;
for my $node ($n1, $n2)
{
	my $locker = $node->background_psql('postgres');
	$locker->query_safe('BEGIN');
	$locker->query_safe("SELECT * FROM kv WHERE k = '$key' FOR UPDATE");
	push @lockers, $locker;
}
$n3->safe_psql('postgres', $upsert->($key, '1'));
KmdTest::propose_routed($n3, 1, 'after', 20,
	q{jsonb_build_object('op', 'upsert', 'table', 'kv', 'row', jsonb_build_object('k', k, 'v', 'a'))});
for my $node ($n1, $n2)
{
	ok($node->poll_query_until('postgres',
		"SELECT stalled = 'retrying' FROM kommander.partitions WHERE partition_id = 1"),
		$node->name . ' is held back before the update');
}
my $applied = $n3->safe_psql('postgres',
	'SELECT applied_index FROM kommander.partitions WHERE partition_id = 1');
for my $node ($n1, $n2)
{
	cmp_ok($node->safe_psql('postgres',
		'SELECT applied_index FROM kommander.partitions WHERE partition_id = 1'),
		'<', $applied, $node->name . ' has applied less of partition 1 than node3');
}

# node3 starts again wanting an image of partition 1
$n3->safe_psql('postgres', 'UPDATE kommander.snapshot SET image_wanted = true WHERE partition_id = 1');
my $offset = -s $n3->logfile;
$n3->restart;
ok($n3->wait_for_log(
		qr/installed an image of partition 1 from node|has applied partition 1 to index \d+, this node has applied it to $applied\b/,
		$offset),
	'node3 installed or refused an image of partition 1');
unlike(slurp_file($n3->logfile, $offset), qr/installed an image of partition 1 from node/,
	'node3 refused an image older than what it applied');

# once node1 and node2 apply as far, node3 takes the image of one of them
$_->query_safe('COMMIT') for @lockers;
$_->quit for @lockers;
ok($n3->wait_for_log(qr/installed an image of partition 1 from node/, $offset),
	'node3 installed an image of partition 1');
my @installed = slurp_file($n3->logfile, $offset) =~ /installed an image of partition 1 from node \d+ at index (\d+)/g;
cmp_ok($_, '>=', $applied, "node3 installed an image at index $_, not before what it had applied")
  for @installed;
ok(KmdTest::wait_converged(\@nodes), 'every node converges');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) || ':' || min(v) FROM kv WHERE k LIKE 'after%' OR k = '$key'"),
		'21:1', $node->name . ' has every write');
}
KmdTest::same_state(\@nodes);

done_testing();
