# 076_a_leaving_leader_behind_on_the_roster.pl
#   A node being removed hands over the groups it leads once it has
#   applied its own removal, so the system partition must keep it until
#   then.  Node 3 leads partition 1 while its copy of the system partition
#   is offline (its durable state cannot be loaded), and node 3 is removed
#   through node 1, which leads the system partition: the removal cannot
#   finish meanwhile (K0002), and node 1 must not drop node 3 from the
#   system partition first, or node 3 would never learn that it is
#   leaving and never let partition 1 go.  Once its copy is back, the
#   removal finishes when asked again.
#
# Copyright (c) 2026, kommander developers
#
# t/076_a_leaving_leader_behind_on_the_roster.pl

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
KmdTest::wait_converged(\@nodes);
KmdTest::lead($n1, 0);

# node 3's copy of the system partition goes offline
my $conf = $n3->safe_psql('postgres', 'SELECT conf FROM kommander.snapshot WHERE partition_id = 0');
$n3->safe_psql('postgres',
	q{SET default_transaction_read_only = off; UPDATE kommander.snapshot SET conf = '\x0102' WHERE partition_id = 0});
$n3->restart;
ok($n3->poll_query_until('postgres',
	"SELECT stalled = 'offline' FROM kommander.partitions WHERE partition_id = 0"),
	'the system partition is offline on node 3');
KmdTest::lead($n3, 1);

my ($rc, $out, $err) = $n1->psql('postgres',
	"SET kommander.propose_timeout = '3s'; SELECT kmd_remove_node('node3')");
isnt($rc, 0, 'the removal does not finish while node 3 has not applied it');
like($err, qr/still a member/, 'node 3 is still a member of a partition');
is(KmdTest::leader_of($n1, 1), 'node3', 'node 3 still leads partition 1');
is($n1->safe_psql('postgres', 'SELECT count(*) FROM kommander.peers WHERE partition_id = 0 AND node_id = 3'),
	'1', 'node 1 keeps node 3 in the system partition meanwhile');

# repaired, node 3's copy comes back at its next try, learns the removal
# and hands partition 1 over
$n3->safe_psql('postgres',
	"SET default_transaction_read_only = off; UPDATE kommander.snapshot SET conf = '$conf' WHERE partition_id = 0");
ok($n3->poll_query_until('postgres',
	"SELECT stalled IS NULL AND role IS NOT NULL FROM kommander.partitions WHERE partition_id = 0"),
	'the system partition is back on node 3');
my $removed = 0;
for my $try (1 .. 20)
{
	($rc, $out, $err) = $n1->psql('postgres',
		"SET kommander.propose_timeout = '3s'; SELECT kmd_remove_node('node3')");
	if ($rc == 0)
	{
		$removed = 1;
		last;
	}
	die "kmd_remove_node: $err" if $err !~ /still a member/;
}
ok($removed, 'asked again, the removal finishes');
for my $node ($n1, $n2)
{
	ok($node->poll_query_until('postgres', "SELECT count(*) = 0 FROM kommander.roster WHERE node_name = 'node3'"),
		$node->name . ': node 3 is out of the roster');
	ok($node->poll_query_until('postgres', 'SELECT count(*) = 0 FROM kommander.peers WHERE node_id = 3'),
		$node->name . ': no group holds node 3');
}
KmdTest::upsert_kv($n2, 'after');
ok(KmdTest::wait_converged([ $n1, $n2 ]), 'nodes 1 and 2 apply every partition');
KmdTest::same_state([ $n1, $n2 ]);

done_testing();
