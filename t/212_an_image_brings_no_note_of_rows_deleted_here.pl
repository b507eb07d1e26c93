# 212_an_image_brings_no_note_of_rows_deleted_here.pl
#   A split parts a lease from some of its rows.  Those rows leave the
#   lease (deleted) on node3, which then goes down; the lease is revoked
#   while node2, which leads the lease's partition, cannot apply the
#   deletes yet, so it notes the rows as left behind.  node3 catches up
#   on the lease's partition by node2's image, which carries node2's
#   notes: node3 must not keep the note of rows it deleted already, as
#   nothing would ever drop it there (node1, which leads the rows'
#   partition, applied the deletes first and notes nothing).
#
# Copyright (c) 2026, kommander developers
#
# t/212_an_image_brings_no_note_of_rows_deleted_here.pl

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

my ($lease, $home, $away) = KmdTest::parted_lease(\@nodes);
my @parted = split /\n/, $n1->safe_psql('postgres',
	"SELECT c.job FROM claims c, LATERAL kmd_route(c.job) r WHERE r.partition_id = $away ORDER BY c.job");

# node1 leads the rows' partition, node2 the lease's and cannot apply the
# rows' partition
KmdTest::lead($n1, $away);
KmdTest::lead($n2, $home);
my ($locker) = KmdTest::hold_back($n1, $n2, [$away]);

# the parted rows leave the lease: node1 and node3 apply it, then node3
# stops (cleanly: what it applied stays applied)
$n1->safe_psql('postgres', join(";\n", map {
	qq{SELECT kmd_propose('$_', '{"op":"delete","table":"claims","key":{"job":"$_"}}')}
} @parted));
ok($n3->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM claims, LATERAL kmd_route(job) r WHERE r.partition_id = $away"),
	'node3 applied the deletes');
$n3->stop;

# the revoke: node2 notes the rows it still holds, node1 none
$n2->safe_psql('postgres', "SELECT kmd_lease_revoke($lease)");
my $revoked = $n2->safe_psql('postgres',
	"SELECT applied_index FROM kommander.partitions WHERE partition_id = $home");
ok($n2->poll_query_until('postgres', "SELECT count(*) > 0 FROM kommander.lease_orphans WHERE lease = $lease"),
	'node2 notes the rows the lease left in the other partition');
ok($n1->poll_query_until('postgres', "SELECT count(*) = 0 FROM kommander.leases WHERE id = $lease"),
	'node1 applied the revoke');
is($n1->safe_psql('postgres', 'SELECT count(*) FROM kommander.lease_orphans'), '0',
	'node1, which deleted the rows first, notes none');

# node2 compacts the lease's partition past the revoke: node3 takes its image
ok(KmdTest::compact_past($n2, $home, $revoked), "node2 compacted partition $home past the revoke");
my $offset = -s $n3->logfile;
$n3->start;
ok($n3->wait_for_log(qr/installed an image of partition $home from node 2/, $offset),
	"node3 caught up on partition $home by node2's image");
is($n3->safe_psql('postgres', "SELECT count(*) FROM kommander.leases WHERE id = $lease"), '0',
	'the image ends the lease on node3');
is($n3->safe_psql('postgres', 'SELECT count(*) FROM kommander.lease_orphans'), '0',
	'node3 keeps no note of the rows it deleted before the image');

# node2 applies the deletes once let go: no note is left anywhere
$locker->query_safe('ROLLBACK');
$locker->quit;
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres',
		'SELECT (SELECT count(*) FROM kommander.lease_rows) + (SELECT count(*) FROM kommander.lease_orphans) = 0'),
		$node->name . ': no attachment and no note is left');
	is($node->safe_psql('postgres', "SELECT count(*) FROM claims WHERE job LIKE 'job-%'"), '0',
		$node->name . ': every row of the lease is gone');
}
ok(KmdTest::wait_converged(\@nodes), 'the nodes converge');
KmdTest::same_state(\@nodes);

done_testing();
