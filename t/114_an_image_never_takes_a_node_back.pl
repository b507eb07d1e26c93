# 114_an_image_never_takes_a_node_back.pl
#   A node installs no image older than what it has applied itself.  node3
#   restarts with partition 1 marked as wanting an image (as after a crash
#   between an image of the system partition that brought DDL and the user
#   partitions' own images), while node1 and node2 have not applied the last
#   writes node3 made (row locks hold their apply workers back).  Installed,
#   either's image would take node3's rows and applied index back, and cut
#   the log it acknowledged at the image's index.  node3 refuses both and
#   takes an image once one of them has applied as far as it has.
#   Meanwhile its group runs without leading: with node2 down too, node1
#   still leads partition 1 and commits with node3's acknowledgements (a
#   parked group would have cost the partition its majority), while node3
#   takes no proposal of its own (K0002, nothing committed).
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

# node1 leads partition 1 throughout: a longer election timeout keeps a
# busy machine from moving it, and node1, whose apply of it is held back
# below, from handing it on (after four election timeouts of the stall)
my @nodes = KmdTest::new_cluster(3,
	conf => "kommander.balance_interval = 0\nkommander.election_timeout = 4000\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node1')");
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

# node2 goes down: node1 and the waiting node3 keep partition 1's majority
is(KmdTest::leader_of($n1, 1), 'node1', 'node1 leads partition 1');
$n2->stop('immediate');
eval { $lockers[1]->quit };
my $commit = $n1->safe_psql('postgres', 'SELECT commit_index FROM kommander.partitions WHERE partition_id = 1');
my $late = KmdTest::key_in($n1, 1, 'late');
# committed, but not applied on node1 (its apply waits for the lock): K0003
my ($rc, $out, $err) = $n1->psql('postgres',
	"SET kommander.propose_timeout = '2s'; " . $upsert->($late, 'l'));
ok($n1->poll_query_until('postgres',
		"SELECT commit_index > $commit AND leader_name = 'node1' FROM kommander.partitions WHERE partition_id = 1"),
	'node1 leads partition 1 and commits with node2 down and node3 waiting for its image');
ok($n3->poll_query_until('postgres',
		"SELECT leader_name = 'node1' FROM kommander.partitions WHERE partition_id = 1"),
	'node3 follows node1');
# node3 takes no proposal meanwhile: it would commit, and wait for an
# apply that cannot come before the image
my $early = KmdTest::key_in($n3, 1, 'early');
($rc, $out, $err) = $n3->psql('postgres',
	"SET kommander.propose_timeout = '2s'; " . $upsert->($early, 'e'));
like($err, qr/no leader of partition 1 took the request/,
	'a proposal at node3 while it waits is not taken');
unlike(slurp_file($n3->logfile, $offset), qr/installed an image of partition 1 from node/,
	'node3 still waits for an image');
like($n3->safe_psql('postgres',
		"SELECT stalled || ': ' || stall_error || ' ' || (stalled_since IS NOT NULL) "
		  . 'FROM kommander.partitions WHERE partition_id = 1'),
	qr/^image: an image of the partition .*node \d.* true$/,
	'kommander.partitions on node3 says that partition 1 waits for an image');

# once node1 applies as far, node3 takes its image; node2 comes back
$lockers[0]->query_safe('COMMIT');
$lockers[0]->quit;
ok($n3->wait_for_log(qr/installed an image of partition 1 from node 1/, $offset),
	'node3 installed an image of partition 1 from node1');
$n2->start;
my @installed = slurp_file($n3->logfile, $offset) =~ /installed an image of partition 1 from node \d+ at index (\d+)/g;
cmp_ok($_, '>=', $applied, "node3 installed an image at index $_, not before what it had applied")
  for @installed;
ok(KmdTest::wait_converged(\@nodes), 'every node converges');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) || ':' || min(v) FROM kv WHERE k LIKE 'after%' OR k = '$key'"),
		'21:1', $node->name . ' has every write');
	is($node->safe_psql('postgres', "SELECT v FROM kv WHERE k = '$late'"),
		'l', $node->name . ' has the write committed while node2 was down');
	is($node->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k = '$early'"),
		'0', $node->name . ' has nothing of the proposal node3 did not take');
}
is($n3->safe_psql('postgres', 'SELECT stalled IS NULL FROM kommander.partitions WHERE partition_id = 1'),
	't', 'and no longer once it is in');
KmdTest::same_state(\@nodes);

done_testing();
