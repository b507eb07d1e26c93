# 077_a_removal_keeps_a_majority_that_answers.pl
#   A voter's removal waits while the voters left would hold no majority
#   that answers.  node3 is down; kmd_remove_node('node2') does not take
#   node2 out of any group (which would leave node1 and the silent node3:
#   no leader until node3 came back), fails with K0002, and every
#   partition still takes writes; no lead moves to node2 meanwhile.
#   node3 back, the removal run again completes.
#
# Copyright (c) 2026, kommander developers
#
# t/077_a_removal_keeps_a_majority_that_answers.pl

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
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(2)');
KmdTest::wait_converged(\@nodes);
my $active = q{SELECT partition_id FROM kommander.partitions WHERE state = 'active'};
my @partitions = split /\n/, $n1->safe_psql('postgres', $active);
KmdTest::lead($n1, $_) for @partitions;

$n3->stop('immediate');
# node1 no longer hears node3 (an election timeout: 500 ms here)
$n1->poll_query_until('postgres',
	"SELECT NOT reachable FROM kommander.nodes WHERE node_name = 'node3'")
  or die 'node1 still hears node3';
my ($rc, $out, $err) = $n1->psql('postgres',
	"SET kommander.propose_timeout = '3s'; SELECT kmd_remove_node('node2')");
isnt($rc, 0, 'removing node2 while node3 is down does not complete');
like($err, qr/node "node2" is still a member of some partitions/, 'it fails (K0002), to be run again');
is($n1->safe_psql('postgres',
	"SELECT count(*) FROM kommander.partitions WHERE state = 'active' AND voters = 3"),
	scalar(@partitions), 'every group keeps its three voters');
# node2, being removed, takes no lead it would hand on again
($rc, $out, $err) = $n1->psql('postgres', "SELECT kmd_transfer_leader($partitions[0], 'node2')");
like($err, qr/node "node2" is being removed from the cluster/,
	'leadership is not moved to node2 meanwhile');

# every partition still has a leader and takes writes
my @keys = map { KmdTest::key_in($n1, $_, 'w') } grep { $_ > 0 } @partitions;
KmdTest::upsert_kv($n1, @keys);
# (node2 applies them with the next heartbeat: the write returned once
# node1 applied it)
ok($n2->poll_query_until('postgres', 'SELECT count(*) = ' . scalar(@keys) . ' FROM kv WHERE k IN ('
	  . join(',', map { "'$_'" } @keys) . ')'),
	'a write to each partition commits with node1 and node2');

# node3 back: the removal completes
$n3->start;
$n1->safe_psql('postgres', "SET kommander.propose_timeout = '60s'; SELECT kmd_remove_node('node2')");
is($n1->safe_psql('postgres', 'SELECT string_agg(node_name, \',\' ORDER BY node_name) FROM kommander.nodes'),
	'node1,node3', 'node2 is removed once node3 is back');
ok($n1->poll_query_until('postgres',
	"SELECT bool_and(voters = 2) FROM kommander.partitions WHERE state = 'active'"),
	'every group has the two voters left');
KmdTest::upsert_kv($n1, map { "after-$_" } 1 .. 5);
KmdTest::wait_converged([ $n1, $n3 ]);
KmdTest::same_state([ $n1, $n3 ]);

done_testing();
