# 213_an_image_takes_the_notes_of_rows_it_takes_away.pl
#   A split parts a lease from some of its rows.  The lease is revoked
#   while node1, which leads the rows' partition, cannot apply the revoke
#   yet: node2 and node3 note the rows as left behind.  node3 goes down;
#   the rows leave the lease (deleted), which drops node2's note, and node1
#   applies the revoke after them, noting nothing.  node3 catches up on
#   the rows' partition by an image, which takes the rows away: their
#   note must go with them, as nothing would ever drop it there.
#
# Copyright (c) 2026, kommander developers
#
# t/213_an_image_takes_the_notes_of_rows_it_takes_away.pl

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

# node1 leads the rows' partition and cannot apply the lease's
KmdTest::lead($n1, $away);
KmdTest::lead($n2, $home);
my ($locker) = KmdTest::hold_back($n2, $n1, [$home]);

# the revoke: node2 and node3 note the rows left in the other partition;
# node3 stops (cleanly: what it applied stays applied)
$n2->safe_psql('postgres', "SELECT kmd_lease_revoke($lease)");
for my $node ($n2, $n3)
{
	ok($node->poll_query_until('postgres', "SELECT count(*) > 0 FROM kommander.lease_orphans WHERE lease = $lease"),
		$node->name . ' notes the rows the lease left in the other partition');
}
$n3->stop;

# the rows leave the lease; node2's note goes with them, and node1, let go,
# applies the revoke after them and notes nothing
$n1->safe_psql('postgres', join(";\n", map {
	qq{SELECT kmd_propose('$_', '{"op":"delete","table":"claims","key":{"job":"$_"}}')}
} @parted));
my $deleted = $n1->safe_psql('postgres',
	"SELECT applied_index FROM kommander.partitions WHERE partition_id = $away");
ok($n2->poll_query_until('postgres', 'SELECT count(*) = 0 FROM kommander.lease_orphans'),
	'node2 drops its note with the rows');
$locker->query_safe('ROLLBACK');
$locker->quit;
ok($n1->poll_query_until('postgres', "SELECT count(*) = 0 FROM kommander.leases WHERE id = $lease"),
	'node1 applied the revoke');
is($n1->safe_psql('postgres', 'SELECT count(*) FROM kommander.lease_orphans'), '0',
	'node1, which deleted the rows first, notes none');

# node1 compacts the rows' partition past the deletes: node3 takes its image
ok(KmdTest::compact_past($n1, $away, $deleted), "node1 compacted partition $away past the deletes");
my $offset = -s $n3->logfile;
$n3->start;
ok($n3->wait_for_log(qr/installed an image of partition $away from node/, $offset),
	"node3 caught up on partition $away by an image");
is($n3->safe_psql('postgres',
	"SELECT count(*) FROM claims c, LATERAL kmd_route(c.job) r WHERE c.job LIKE 'job-%' AND r.partition_id = $away"),
	'0', 'the image takes the rows away on node3');
is($n3->safe_psql('postgres', 'SELECT count(*) FROM kommander.lease_orphans'), '0',
	'and the note of them');

for my $node (@nodes)
{
	is($node->safe_psql('postgres',
		'SELECT (SELECT count(*) FROM kommander.lease_rows) + (SELECT count(*) FROM kommander.lease_orphans)'),
		'0', $node->name . ': no attachment and no note is left');
	ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM claims WHERE job LIKE 'job-%'"),
		$node->name . ': every row of the lease is gone');
}
ok(KmdTest::wait_converged(\@nodes), 'the nodes converge');
KmdTest::same_state(\@nodes);

done_testing();
