# 224_two_nodes_remove_each_other.pl
#   node1 removes node2 while node2 removes node1, at once.  Each call
#   answers, done or with an error that says to run it again; once both
#   have answered and the removals are run again through node3 until
#   they are done, the roster is node3 and node4 on both, every
#   partition's group has them as its two voters, a write commits, and
#   both nodes hold the same state.
#
# Copyright (c) 2026, kommander developers
#
# t/224_two_nodes_remove_each_other.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(4);
my ($n1, $n2, $n3, $n4) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(3)');
KmdTest::wait_converged(\@nodes);

my @calls = map {
	my ($node, $other) = @$_;
	my ($h, $err) = KmdTest::start_sql($node,
		"SET kommander.propose_timeout = 8000; SELECT kmd_remove_node('$other')");
	{ h => $h, err => $err, what => $node->name . " removing $other" }
} ([ $n1, 'node2' ], [ $n2, 'node1' ]);
for my $c (@calls)
{
	$c->{h}->finish;
	my ($code) = ${ $c->{err} } =~ /ERROR:\s+([0-9A-Z]{5})/;
	$code //= 'ok';
	# done, or K0002/K0003 (run it again), or 42704 (done by the other)
	like($code, qr/^(ok|K0002|K0003|42704|K0005)$/, "$c->{what} answered ($code)")
	  or diag(${ $c->{err} });
}

# the operator runs each removal again through node3 until it is done
my $gone = sub {
	my ($name) = @_;
	return $n3->safe_psql('postgres',
		"SELECT count(*) = 0 FROM kommander.roster WHERE node_name = '$name'") eq 't';
};
for my $name ('node1', 'node2')
{
	for my $try (1 .. 10)
	{
		last if $gone->($name);
		my ($rc, $code, $msg) = KmdTest::error_of($n3,
			"SET kommander.propose_timeout = 8000; SELECT kmd_remove_node('$name')");
		note("kmd_remove_node('$name') through node3: " . ($rc == 0 ? 'done' : "$code $msg"));
	}
	ok($gone->($name), "$name is out of node3's roster");
}

for my $node ($n3, $n4)
{
	$node->poll_query_until('postgres',
		q{SELECT string_agg(node_name, ',' ORDER BY node_name) = 'node3,node4' FROM kommander.roster})
	  or diag($node->name . ' has ' . $node->safe_psql('postgres',
		  q{SELECT string_agg(node_name || ' ' || role, ',' ORDER BY node_name) FROM kommander.roster}));
	is($node->safe_psql('postgres',
			q{SELECT string_agg(node_name, ',' ORDER BY node_name) FROM kommander.roster}),
		'node3,node4', $node->name . "'s roster is node3 and node4");
	ok($node->poll_query_until('postgres',
			"SELECT bool_and(voters = 2 AND leader_name IS NOT NULL) FROM kommander.partitions WHERE state = 'active'"),
		'every partition has two voters and a leader, seen from ' . $node->name);
}
$n3->safe_psql('postgres',
	q{SELECT kmd_propose('after', '{"op":"upsert","table":"kv","row":{"k":"after","v":"1"}}')});
KmdTest::wait_converged([ $n3, $n4 ]) or die 'no convergence';
is($n4->safe_psql('postgres', "SELECT v FROM kv WHERE k = 'after'"), '1',
	'a write through node3 is applied on node4');
KmdTest::same_state([ $n3, $n4 ]);

done_testing();
