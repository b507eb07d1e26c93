# 050_split_merge_under_load.pl
#   Split and merge partitions while two nodes keep proposing: every
#   acknowledged write survives, every row lies in exactly one partition's
#   range, the ranges tile the hash space, tables are identical everywhere,
#   a stale generation is fenced with K0001, leaders spread after
#   kmd_rebalance, and a node that joins afterwards rebuilds the same
#   partitions by replaying the logs.
#
# Copyright (c) 2026, kommander developers
#
# t/050_split_merge_under_load.pl

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

my $dir = PostgreSQL::Test::Utils::tempdir();
my $stop = "$dir/stop";

sub start_load
{
	my ($node, $tag) = @_;
	return KmdTest::start_load($node, $dir, $tag, '{"op":"insert","table":"kv","row":{"k":"KEY","v":"x"}}');
}

sub acked
{
	my ($tag) = @_;
	return KmdTest::acked_keys($dir, $tag);
}

my $old_gen = $n1->safe_psql('postgres', 'SELECT generation FROM kommander.partitions WHERE partition_id = 1');
my $la = start_load($n2, 'a');
my $lb = start_load($n3, 'b');
$n1->poll_query_until('postgres', "SELECT count(*) >= 20 FROM kv") or die 'no load';

# split while the load goes on
my $new_id = $n1->safe_psql('postgres', 'SELECT kmd_split(1)');
is($new_id, '2', 'kmd_split(1) creates partition 2');
my @more = split /\n/, $n1->safe_psql('postgres', 'SELECT * FROM kmd_create_partitions(6)');
is(scalar(@more), 4, 'kmd_create_partitions(6) adds four partitions');
$n1->poll_query_until('postgres', "SELECT count(*) >= 60 FROM kv") or die 'load stalled after splits';

# a proposal that carries the generation partition 1 had before its split
my $key = KmdTest::key_in($n2, 1, 'probe-');
my ($rc, $out, $err) = $n2->psql('postgres',
	"SELECT kmd_propose('$key', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"$key\",\"v\":\"x\"}}', $old_gen)");
like($err, qr/stale partition generation/, 'a stale generation is fenced');

# merge two adjacent partitions, still under load
my ($left, $right) = split /\|/, $n1->safe_psql('postgres', q{
	SELECT l.partition_id, r.partition_id FROM kommander.partitions l
	  JOIN kommander.partitions r ON r.lo = l.hi
	 WHERE l.partition_id > 0 AND l.state = 'active' AND r.state = 'active'
	 ORDER BY l.lo LIMIT 1});
my $left_gen = $n1->safe_psql('postgres', "SELECT generation FROM kommander.partitions WHERE partition_id = $left");
is($n1->safe_psql('postgres', "SELECT kmd_merge($left, $right)"), $left, "kmd_merge($left, $right) keeps $left");
is($n1->safe_psql('postgres', "SELECT state FROM kommander.partition_map WHERE partition_id = $right"), 'gone',
	"partition $right is a tombstone in the map");
# every node stops the merged-away group and drops its state
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres', qq{
		SELECT NOT EXISTS (SELECT 1 FROM kommander.partitions WHERE partition_id = $right)
		   AND NOT EXISTS (SELECT 1 FROM kommander.log WHERE partition_id = $right)
		   AND NOT EXISTS (SELECT 1 FROM kommander.hard_state WHERE partition_id = $right)
		   AND NOT EXISTS (SELECT 1 FROM kommander.snapshot WHERE partition_id = $right)
		   AND NOT EXISTS (SELECT 1 FROM kommander.applied WHERE partition_id = $right)}),
		$node->name . ": partition $right and its log are gone");
}
ok($n1->safe_psql('postgres', "SELECT generation FROM kommander.partitions WHERE partition_id = $left") > $left_gen,
	"partition $left has a new generation");
$n1->poll_query_until('postgres', "SELECT count(*) >= 100 FROM kv") or die 'load stalled after the merge';

# leaders spread over the voters
$n1->safe_psql('postgres', 'SELECT kmd_rebalance()');
ok($n1->poll_query_until('postgres', q{
	SELECT max(c) - min(c) <= 1 FROM (
	  SELECT n.node_name, count(p.partition_id) AS c FROM kommander.nodes n
	    LEFT JOIN kommander.partitions p ON p.leader_name = n.node_name AND p.partition_id > 0 AND p.state = 'active'
	   GROUP BY n.node_name) s}), 'kmd_rebalance spreads the leaders');

open(my $fh, '>', $stop); close $fh;
$la->finish;
$lb->finish;
KmdTest::wait_converged(\@nodes);

my @keys = (acked('a'), acked('b'));
is(join("\n", KmdTest::load_errors($dir, 'a'), KmdTest::load_errors($dir, 'b')), '',
	'the clients met no error but fencing, frozen partitions and timeouts');
my $first;
for my $node (@nodes)
{
	my $name = $node->name;
	$node->poll_query_until('postgres',
		"SELECT count(*) = 6 AND bool_and(leader_name IS NOT NULL) FROM kommander.partitions WHERE state = 'active'")
	  or die "partitions without a leader on $name";
	is(KmdTest::missing_keys($node, 'kv', \@keys), '0', "$name has every acknowledged write (" . scalar(@keys) . ')');
	is(KmdTest::misplaced_rows($node, 'kv'),
		'0', "$name: every row lies in exactly one partition");
	is(KmdTest::range_defects($node),
		'0', "$name: the ranges tile the hash space");
	my $digest = $node->safe_psql('postgres',
		"SELECT md5(string_agg(k, ',' ORDER BY k)) || ' ' || (SELECT string_agg(partition_id || ':' || lo || ':' || coalesce(hi::text, '') || ':' || generation, ',' ORDER BY partition_id) FROM kommander.partitions) FROM kv");
	$first //= $digest;
	is($digest, $first, "$name has the same rows and partition map");
}

# new partitions take writes, on their own leaders
for my $i (1 .. 20)
{
	$n3->safe_psql('postgres',
		"SELECT kmd_propose('late-$i', '{\"op\":\"insert\",\"table\":\"kv\",\"row\":{\"k\":\"late-$i\",\"v\":\"y\"}}')");
}
is($n3->safe_psql('postgres', "SELECT count(DISTINCT r.partition_id) > 1 FROM kv, LATERAL kmd_route(kv.k) r WHERE kv.k LIKE 'late-%'"),
	't', 'late writes spread over several partitions');

# a node that joins now replays the splits
my $n4 = KmdTest::new_node('node4');
is($n4->safe_psql('postgres',
	"SELECT kmd_join('node4', " . KmdTest::quote(KmdTest::conninfo($n4)) . ', '
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ')'), '4', 'node4 joins after the splits');
KmdTest::wait_converged([ @nodes, $n4 ]);
is($n4->safe_psql('postgres',
	"SELECT md5(string_agg(k, ',' ORDER BY k)) || ' ' || (SELECT string_agg(partition_id || ':' || lo || ':' || coalesce(hi::text, '') || ':' || generation, ',' ORDER BY partition_id) FROM kommander.partitions) FROM kv WHERE k NOT LIKE 'late-%'"),
	$n1->safe_psql('postgres',
	"SELECT md5(string_agg(k, ',' ORDER BY k)) || ' ' || (SELECT string_agg(partition_id || ':' || lo || ':' || coalesce(hi::text, '') || ':' || generation, ',' ORDER BY partition_id) FROM kommander.partitions) FROM kv WHERE k NOT LIKE 'late-%'"),
	'node4 rebuilt the same rows and partition map');

KmdTest::wait_converged(\@nodes);
KmdTest::same_state(\@nodes);

done_testing();
