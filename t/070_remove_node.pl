# 070_remove_node.pl
#   kmd_remove_node takes a node out of the roster and out of every
#   partition's group: after removing two of three nodes, the last one
#   commits alone even with the others stopped.  The last voter cannot be
#   removed.  A removed server that keeps calling is refused and backs off.
#   A node that joins afterwards gets a new id, never a removed node's, nor
#   a voter's asked for again with its name and conninfo, and one that
#   joins after a name was removed and added again has the same roster as
#   the others.  A 33rd node is refused.
#
# Copyright (c) 2026, kommander developers
#
# t/070_remove_node.pl

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
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(3)');
KmdTest::wait_converged(\@nodes);

# leadership of every partition on node1, so node1 removes the others
for my $id (split /\n/, $n1->safe_psql('postgres',
		"SELECT partition_id FROM kommander.partitions WHERE state = 'active'"))
{
	$n1->safe_psql('postgres', "SELECT kmd_transfer_leader($id, 'node1')");
}
$n1->safe_psql('postgres', "SELECT kmd_remove_node('node3')");
$n1->safe_psql('postgres', "SELECT kmd_remove_node('node2')");
is($n1->safe_psql('postgres', "SELECT string_agg(node_name, ',') FROM kommander.nodes"), 'node1',
	'the roster holds node1 alone');
my ($rc, $out, $err) = $n1->psql('postgres', "SELECT kmd_remove_node('node1')");
like($err, qr/cannot remove the last voter/, 'the last voter cannot be removed');

# the groups follow the roster
$n1->poll_query_until('postgres',
	"SELECT bool_and(voters = 1) FROM kommander.partitions WHERE state = 'active'")
  or die 'the groups still have other voters';
pass('every group has node1 as its only voter');

# a removed server still tries its old peers, which refuse it; it waits
# longer before each new try
ok($n3->wait_for_log(qr/node 1 refuses this node as a cluster member; next try in 0\.1 s/),
	'node3 learns that node1 refuses it, and backs off');
ok($n3->wait_for_log(qr/node 1 refuses this node as a cluster member; next try in 0\.4 s/),
	'and backs off longer each time');

# node1 commits alone once the others are gone
$n2->stop('immediate');
$n3->stop('immediate');
for my $i (1 .. 10)
{
	$n1->safe_psql('postgres',
		"SELECT kmd_propose('alone-$i', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"alone-$i\",\"v\":\"x\"}}')");
}
is($n1->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'alone-%'"), '10',
	'node1 commits with every other node removed and stopped');

# ids are not reused: node2 and node3 may still be named in some group's
# configuration, and a fresh server must not count as one of them
my $n4 = KmdTest::new_node('node4');
is($n4->safe_psql('postgres',
	"SELECT kmd_join('node4', " . KmdTest::quote(KmdTest::conninfo($n4)) . ', '
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ')'), '4', 'a node joining after two removals gets id 4');
KmdTest::wait_voters([ $n1, $n4 ], 2);
$n4->safe_psql('postgres',
	"SELECT kmd_propose('with-node4', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"with-node4\",\"v\":\"x\"}}')");
ok($n1->poll_query_until('postgres', "SELECT count(*) = 1 FROM kv WHERE k = 'with-node4'"),
	'node4 proposes and node1 applies');

# a voter's name and conninfo asked for again (a wiped server joining in
# its place) do not hand out its id: that server would vote as node4
# with none of its log
my $code;
($rc, $code, $err) = KmdTest::error_of($n1,
	"SELECT kmd_add_node('node4', " . KmdTest::quote(KmdTest::conninfo($n4)) . ')');
is($code, '42710', "a voter's id is not handed out again ($err)");

# a name removed and added again (a learner that never starts), then a join
my $ghost = 'host=127.0.0.1 port=1 dbname=postgres';
my $ghost_id = $n1->safe_psql('postgres', "SELECT kmd_add_node('ghost', '$ghost')");
is($n1->safe_psql('postgres', "SELECT kmd_add_node('ghost', '$ghost')"), $ghost_id,
	'a learner asked for again (a join tried again) keeps its id');
$n1->safe_psql('postgres', "SELECT kmd_remove_node('ghost')");
$n1->safe_psql('postgres', "SELECT kmd_add_node('ghost', '$ghost')");
my $n5 = KmdTest::new_node('node5');
$n5->safe_psql('postgres',
	"SELECT kmd_join('node5', " . KmdTest::quote(KmdTest::conninfo($n5)) . ', '
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ', false)');
my $roster = q{SELECT string_agg(node_id || ':' || node_name || ':' || role, ',' ORDER BY node_id)
	|| ' next ' || (SELECT value FROM kommander.counters WHERE name = 'next_node_id')
	FROM kommander.roster};
my $want = $n1->safe_psql('postgres', $roster);
like($want, qr/^1:node1:voter,4:node4:voter,6:ghost:learner,7:node5:learner next 8$/,
	'node1: the second ghost has a new id');
ok($n5->poll_query_until('postgres', $roster, $want), 'node5 has the same roster and node id counter');

# the roster holds 32 nodes at most, what a group's configuration names
$n1->safe_psql('postgres', q{
DO $$
BEGIN
  FOR i IN 1..28 LOOP
    PERFORM kmd_add_node('spare-' || i, 'host=127.0.0.1 port=1 dbname=spare' || i);
  END LOOP;
END $$});
($rc, $code, $err) = KmdTest::error_of($n5, "SELECT kmd_add_node('one-too-many', '$ghost')");
is($code, '54000', "a 33rd node is refused ($err)");
is($n1->safe_psql('postgres', 'SELECT count(*) FROM kommander.roster'), '32', 'the roster holds 32 nodes');
is($n1->safe_psql('postgres', "SELECT kmd_add_node('spare-28', 'host=127.0.0.1 port=1 dbname=spare28')"),
	$n1->safe_psql('postgres', "SELECT node_id FROM kommander.roster WHERE node_name = 'spare-28'"),
	'a learner asked for again still answers its id');

done_testing();
