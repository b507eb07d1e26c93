# 210_a_note_of_rows_that_left_their_lease_goes_with_them.pl
#   A split parts a lease from some of its rows; those rows leave the
#   lease (deleted) and then the lease is revoked, while one node cannot
#   apply the rows' partition yet.  That node applies the revoke first and
#   notes the rows as left behind; the node leading the rows' partition,
#   which applied the deletes first, notes nothing and proposes no drop.
#   The note must go on that node when it applies the deletes, or it would
#   stay for good, in the room of notes that other leases wait for.
#
# Copyright (c) 2026, kommander developers
#
# t/210_a_note_of_rows_that_left_their_lease_goes_with_them.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

# the leaders chosen below must stay where they are put
my $conf = "kommander.balance_interval = 0\nkommander.election_timeout = 2000\n";
my @nodes = KmdTest::new_cluster(3, conf => $conf);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);

my ($lease, $home, $away) = KmdTest::parted_lease(\@nodes);
my @parted = split /\n/, $n1->safe_psql('postgres',
	"SELECT c.job FROM claims c, LATERAL kmd_route(c.job) r WHERE r.partition_id = $away ORDER BY c.job");

# node1 leads the rows' partition; node3 cannot apply it
KmdTest::lead($n1, $away);
my ($locker) = KmdTest::hold_back($n1, $n3, [$away]);

# the parted rows leave the lease, then the lease ends: node3 applies the
# end first and notes them
$n1->safe_psql('postgres', join(";\n", map {
	qq{SELECT kmd_propose('$_', '{"op":"delete","table":"claims","key":{"job":"$_"}}')}
} @parted));
ok($n2->poll_query_until('postgres',
	"SELECT count(*) = 0 FROM claims, LATERAL kmd_route(job) r WHERE r.partition_id = $away"),
	'node2 applied the deletes');
$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($lease)");
ok($n3->poll_query_until('postgres', "SELECT count(*) = 0 FROM kommander.leases WHERE id = $lease"),
	'node3 applied the revoke');
is($n3->safe_psql('postgres', "SELECT count(*) > 0 FROM kommander.lease_orphans WHERE lease = $lease"),
	't', 'node3 notes rows the lease left behind');
is($n1->safe_psql('postgres', 'SELECT count(*) FROM kommander.lease_orphans'), '0',
	'node1, which leads their partition, notes none');

# node3 applies the deletes: its notes go with the rows
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
