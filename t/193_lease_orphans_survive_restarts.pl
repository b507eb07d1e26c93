# 193_lease_orphans_survive_restarts.pl
#   A split parts a lease from some of its rows; the lease is revoked while
#   the node leading the rows' partition cannot apply the revoke yet; the
#   two nodes that applied it restart, and one of them takes the lead of
#   the rows' partition.  The rows must still go, on every node: each node
#   keeps its note of the rows a lease left elsewhere across a restart.
#   And when a lease leaves more rows behind than a node's memory has
#   notes for, the notes of a lease that ends next wait for room: the rows
#   of both go.
#
# Copyright (c) 2026, kommander developers
#
# t/193_lease_orphans_survive_restarts.pl

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

# The rows of claims matching $where, the lease attachments and the notes
# of rows left elsewhere are gone from every node, which agree
sub all_gone
{
	my ($where, $what) = @_;
	for my $node (@nodes)
	{
		ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM claims WHERE $where"),
			$node->name . ": $what");
		ok($node->poll_query_until('postgres',
			'SELECT (SELECT count(*) FROM kommander.lease_rows) + (SELECT count(*) FROM kommander.lease_orphans) = 0'),
			$node->name . ': and so are the attachments and the notes of them');
	}
	KmdTest::wait_converged(\@nodes) or die 'no convergence';
	KmdTest::same_state(\@nodes);
}

# a lease and twenty rows attached to it, all in partition 1; the split
# puts some of the rows in the other half
my ($lease, $home, $away) = KmdTest::parted_lease(\@nodes);

# node1 leads the rows' partition and cannot apply the lease's partition
KmdTest::lead($n1, $away);
my ($locker) = KmdTest::hold_back($n2, $n1, [$home]);

# the revoke: node2 and node3 apply it and note the rows left in $away;
# node1, the only one that would propose their drop, has not applied it
$n2->safe_psql('postgres', "SELECT kmd_lease_revoke($lease)");
ok($n3->poll_query_until('postgres', "SELECT count(*) = 0 FROM kommander.leases WHERE id = $lease"),
	'node3 applied the revoke');
is($n1->safe_psql('postgres', "SELECT count(*) FROM claims WHERE job LIKE 'job-%'"), '20',
	'node1 has applied nothing of it');

# node2 and node3 restart (a clean stop: the apply of the revoke is
# durable, and not done again), and node2 takes the lead of the rows'
# partition
for my $node ($n2, $n3)
{
	$node->stop('fast');
	$node->start;
}
KmdTest::wait_leaders($_) for @nodes;
KmdTest::lead($n2, $away);

# node1 applies the revoke, but no longer leads the partition of the rows
$locker->query_safe('ROLLBACK');
$locker->quit;

all_gone("job LIKE 'job-%'", 'every row of the revoked lease is gone, in both partitions');

# --- more rows left behind than a node's memory has notes for ---
# Partition 1 is split at $at below; leases $big and $small both lie under
# $at (drawn until they do), and their rows on both sides of it.
my $at = $n1->safe_psql('postgres',
	'SELECT ((lo::numeric + coalesce(hi::numeric, 9223372036854775807)) / 2)::bigint '
	  . 'FROM kommander.partitions WHERE partition_id = 1');
my $grant_key = KmdTest::key_in($n1, 1, 'lease-');
my @leases;
for my $i (1 .. 50)
{
	my $id = $n1->safe_psql('postgres', "SELECT kmd_lease_grant('10 min', '$grant_key')");
	if ($n1->safe_psql('postgres', "SELECT kommander.key_hash('$id') < $at") eq 't')
	{
		push @leases, $id;
		last if @leases == 2;
	}
	else
	{
		$n1->safe_psql('postgres', "SELECT kmd_lease_revoke($id)");
	}
}
is(scalar(@leases), 2, 'two leases of partition 1 below the split point');
my ($big, $small) = @leases;

# $big holds 700 rows, $small 20, all keys of partition 1
for ([ $big, 'big-', 700 ], [ $small, 'small-', 20 ])
{
	my ($lease, $prefix, $n) = @$_;
	KmdTest::propose_routed($n1, 1, $prefix, $n,
		"jsonb_build_object('op', 'insert', 'table', 'claims', "
		  . "'row', jsonb_build_object('job', k, 'owner', 'w'), 'lease', $lease)");
}
my $upper = $n1->safe_psql('postgres', "SELECT kmd_split(1, $at)");
my $left = $n1->safe_psql('postgres',
	"SELECT count(*) FROM claims WHERE job LIKE 'big-%' AND kommander.key_hash(job) >= $at");
ok($left > 256, "the split put $left of the big lease's rows in partition $upper, more than 256");
ok($n1->safe_psql('postgres',
	"SELECT count(*) FROM claims WHERE job LIKE 'small-%' AND kommander.key_hash(job) >= $at") > 0,
	"and some of the small lease's rows");
KmdTest::wait_leaders($_) for @nodes;
KmdTest::wait_converged(\@nodes);

# node1 leads the upper partition and cannot apply it: the big lease's
# notes fill its memory, and the small one's find no room
KmdTest::lead($n1, $upper);
($locker) = KmdTest::hold_back($n2, $n1, [$upper]);
$n2->safe_psql('postgres', "SELECT kmd_lease_revoke($big)");
$n2->safe_psql('postgres', "SELECT kmd_lease_revoke($small)");
ok($n1->poll_query_until('postgres', "SELECT count(*) = 0 FROM kommander.leases WHERE id IN ($big, $small)"),
	'node1 applied both revokes');
$locker->query_safe('ROLLBACK');
$locker->quit;

all_gone("job LIKE 'big-%' OR job LIKE 'small-%'", 'every row of both leases is gone');

done_testing();
