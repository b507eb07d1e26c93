# 198_an_image_carries_the_notes_of_ended_leases.pl
#   A split parts a lease from some of its rows, and the lease is revoked
#   while one node is down and the node leading the rows' partition
#   cannot apply the revoke yet, so that nobody drops the rows left
#   behind.  The node that was down catches up on the lease's partition
#   by an image; the image carries the sender's notes of the rows that
#   lease left elsewhere, so once that node leads the rows' partition it
#   drops them, on every node.
#
# Copyright (c) 2026, kommander developers
#
# t/198_an_image_carries_the_notes_of_ended_leases.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

# the leaders chosen below must stay where they are put
my $conf = "kommander.balance_interval = 0\nkommander.election_timeout = 2000\n"
  . "kommander.snapshot_threshold = 20\n";
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);

# a lease and twenty rows attached to it, all in partition 1; the split
# puts some of the rows in the other half
my ($lease, $home, $away) = KmdTest::parted_lease(\@nodes);

# node1 leads the rows' partition and cannot apply the lease's; node2
# leads the lease's partition; node3 is down
KmdTest::lead($n1, $away);
KmdTest::lead($n2, $home);
my ($locker) = KmdTest::hold_back($n2, $n1, [$home]);
$n3->stop('immediate');

# the revoke: only node2 applies it and notes the rows left in $away;
# node1, which leads $away, has not applied it
$n2->safe_psql('postgres', "SELECT kmd_lease_revoke($lease)");
my $revoked = $n2->safe_psql('postgres',
	"SELECT applied_index FROM kommander.partitions WHERE partition_id = $home");
ok($n2->poll_query_until('postgres', "SELECT count(*) > 0 FROM kommander.lease_orphans WHERE lease = $lease"),
	'node2 notes the rows the lease left in the other partition');
is($n1->safe_psql('postgres', "SELECT count(*) FROM claims WHERE job LIKE 'job-%'"), '20',
	'node1 has applied nothing of it');

# node2 compacts the lease's partition past the revoke: node3 takes an image
ok(KmdTest::compact_past($n2, $home, $revoked), "node2 compacted partition $home past the revoke");
my $offset = -s $n3->logfile;
$n3->start;
ok($n3->wait_for_log(qr/installed an image of partition $home from node/, $offset),
	"node3 caught up on partition $home by an image");
is($n3->safe_psql('postgres', "SELECT count(*) FROM kommander.leases WHERE id = $lease"), '0',
	'the image ends the lease on node3');
is($n3->safe_psql('postgres', "SELECT string_agg(lease || ':' || key_hash, ',' ORDER BY key_hash) FROM kommander.lease_orphans"),
	$n2->safe_psql('postgres', "SELECT string_agg(lease || ':' || key_hash, ',' ORDER BY key_hash) FROM kommander.lease_orphans"),
	"and carries node2's notes of the rows it left in partition $away");

# node3, which knows of the revoke from the image only, leads the rows'
# partition: it drops the rows there, on every node
KmdTest::lead($n3, $away);
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM claims c, LATERAL kmd_route(c.job) r WHERE c.job LIKE 'job-%' AND r.partition_id = $away"),
		$node->name . ": the rows the lease left in partition $away are gone");
}

# node1 applies the revoke once let go: nothing is left anywhere
$locker->query_safe('ROLLBACK');
$locker->quit;
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM claims WHERE job LIKE 'job-%'"),
		$node->name . ': every row of the revoked lease is gone');
	ok($node->poll_query_until('postgres',
		'SELECT (SELECT count(*) FROM kommander.lease_rows) + (SELECT count(*) FROM kommander.lease_orphans) = 0'),
		$node->name . ': and so are the attachments and the notes of them');
}
KmdTest::wait_converged(\@nodes) or die 'no convergence';
KmdTest::same_state(\@nodes);

done_testing();
