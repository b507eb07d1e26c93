# 100_thousand_partitions.pl
#   A thousand partitions on three nodes: kmd_create_partitions(1000)
#   succeeds, every node hosts and routes all of them, a node restarted
#   afterwards serves them all again, and writes to partitions spread over
#   the key space reach every node.  (The catalog refresh once read the
#   partition map after SPI had freed it: with this many rows the nodes
#   crashed in a loop.)
#
# Copyright (c) 2026, kommander developers
#
# t/100_thousand_partitions.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "kommander.max_partitions = 2048\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);

is($n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(1000)'), '999',
	'kmd_create_partitions(1000) adds 999 partitions');

# every node hosts every partition, with a leader, and the ranges tile
my $hosted = q{SELECT count(*) = 1000 FROM kommander.partitions
	WHERE partition_id > 0 AND state = 'active' AND role IS NOT NULL AND leader_name IS NOT NULL};
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres', $hosted),
		$node->name . ' hosts 1000 partitions, each with a leader');
	is(KmdTest::range_defects($node), '0', $node->name . ': the ranges tile the hash space');
}

# writes spread over the key space, through every node
for my $i (1 .. 60)
{
	my $node = $nodes[$i % 3];
	$node->safe_psql('postgres',
		"SELECT kmd_propose('k$i', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"k$i\",\"v\":\"$i\"}}')");
}
is($n1->safe_psql('postgres', q{SELECT count(DISTINCT r.partition_id) > 40 FROM kv, LATERAL kmd_route(kv.k) r}),
	't', 'the writes went to many partitions');

# a restarted node reads the whole map back and serves it
$n2->restart;
ok($n2->poll_query_until('postgres', $hosted), 'node2 hosts 1000 partitions after a restart');
$n2->safe_psql('postgres',
	q{SELECT kmd_propose('after', '{"op":"upsert","table":"kv","row":{"k":"after","v":"x"}}')});

ok(KmdTest::wait_converged(\@nodes), 'every node applies every partition');
my $rows = q{SELECT md5(string_agg(k || '=' || v, ',' ORDER BY k)) FROM kv};
my $want = $n1->safe_psql('postgres', $rows);
is($_->safe_psql('postgres', $rows), $want, $_->name . ' holds the same rows') for ($n2, $n3);
is($n1->safe_psql('postgres', 'SELECT count(*) FROM kv'), '61', 'every write is there');

done_testing();
