# 090_split_merge_survive_crashes.pl
#   Splits and merges interrupted by crashes (pg_ctl -m immediate) while two
#   clients keep proposing: the whole cluster crashing while a split runs,
#   and after a merge froze its right partition; the leader of the partition
#   being split crashing; a node crashing with a split committed but not yet
#   applied there.  After each restart the nodes finish the step from the
#   logs: the ranges tile the hash space, every node has the same map, and
#   at the end every acknowledged write is on every node, in exactly one
#   partition, and a node joining after a restart of the whole cluster
#   replays every log, merged-away partitions' included.
#
# Copyright (c) 2026, kommander developers
#
# t/090_split_merge_survive_crashes.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

# a merge left half-way is finished after a propose timeout
my @nodes = KmdTest::new_cluster(3, conf => "kommander.propose_timeout = 5000\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
is($n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(4)'), '3',
	'four user partitions');
KmdTest::wait_converged(\@nodes);

my $dir = PostgreSQL::Test::Utils::tempdir();
my $cmd = '{"op":"insert","table":"kv","row":{"k":"KEY","v":"x"}}';
my @loads = (KmdTest::start_load($n2, $dir, 'a', $cmd), KmdTest::start_load($n3, $dir, 'b', $cmd));
$n1->poll_query_until('postgres', 'SELECT count(*) >= 20 FROM kv') or die 'no load';

my $map = q{SELECT string_agg(partition_id || ':' || coalesce(lo::text, '') || ':'
	|| coalesce(hi::text, '') || ':' || generation || ':' || state, ',' ORDER BY partition_id)
	FROM kommander.partitions};
# Every node has a leader for each partition, the ranges tile the hash space,
# and, once every node applied what any has committed, all have one map.
sub check_map
{
	my ($label) = @_;
	KmdTest::wait_leaders($_) for @nodes;
	KmdTest::wait_converged(\@nodes) or die "$label: the nodes do not converge";
	my $want = $n1->safe_psql('postgres', $map);
	for my $node (@nodes)
	{
		is(KmdTest::range_defects($node), '0',
			"$label: the ranges tile the hash space on " . $node->name);
		ok($node->poll_query_until('postgres', "SELECT ($map) = " . KmdTest::quote($want)),
			"$label: " . $node->name . ' has the same partition map');
	}
}

sub crash_all
{
	$_->stop('immediate') for @nodes;
	$_->start for @nodes;
}

# kmd_* on $node in a psql of its own, to be cut off by a crash
sub start_call
{
	my ($node, $sql) = @_;
	my ($out, $err) = ('', '');
	my $h = IPC::Run::start(
		[ 'psql', '-X', '-q', '-t', '-A', '-d', KmdTest::conninfo($node), '-c', $sql ],
		'>', \$out, '2>', \$err);
	return ($h, \$out, \$err);
}

sub next_partition_id
{
	my ($node) = @_;
	return $node->safe_psql('postgres',
		"SELECT value FROM kommander.counters WHERE name = 'next_partition_id'");
}

sub active_partitions
{
	return $n1->safe_psql('postgres',
		"SELECT count(*) FROM kommander.partitions WHERE partition_id > 0 AND state = 'active'");
}

# 1. The whole cluster crashes while a split runs: the new partition id is
# allocated, the split itself may or may not have committed.
my $next = next_partition_id($n2);
my $parts = active_partitions();
my ($h) = start_call($n1, 'SELECT kmd_split(1)');
$n2->poll_query_until('postgres',
	"SELECT value > $next FROM kommander.counters WHERE name = 'next_partition_id'")
  or die 'the split allocated no partition id';
crash_all();
$h->finish;
check_map('a cluster crash during a split');
my $after = active_partitions();
ok($after == $parts || $after == $parts + 1, "the split happened once or not at all ($parts -> $after)");
isnt($n1->safe_psql('postgres', 'SELECT kmd_split(1)'), '', 'partition 1 splits again after the crash');
check_map('a split after the crash');

# 2. The whole cluster crashes after a merge froze its right partition and
# before the merge committed (node 1, where kmd_merge runs, cannot apply the
# freeze: its partition map is locked).  The leader of the left partition
# finishes the merge after the restart.
my ($left, $right) = split /\|/, $n1->safe_psql('postgres', q{
	SELECT l.partition_id, r.partition_id FROM kommander.partitions l
	  JOIN kommander.partitions r ON r.lo = l.hi
	 WHERE l.partition_id > 0 AND l.state = 'active' AND r.state = 'active' ORDER BY l.lo LIMIT 1});
my $left_gen = $n2->safe_psql('postgres',
	"SELECT generation FROM kommander.partitions WHERE partition_id = $left");
my $locker = $n1->background_psql('postgres', on_error_die => 0, on_error_stop => 0);
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.partition_map IN SHARE MODE');
($h) = start_call($n1, "SELECT kmd_merge($left, $right)");
$n2->poll_query_until('postgres',
	"SELECT state = 'frozen' FROM kommander.partitions WHERE partition_id = $right")
  or die "partition $right did not freeze";
for my $node ($n2, $n3)
{
	ok($node->poll_query_until('postgres',
		"SELECT generation || ' ' || (SELECT state FROM kommander.partitions WHERE partition_id = $right) "
		  . "FROM kommander.partitions WHERE partition_id = $left", "$left_gen frozen"),
		$node->name . ': the crash comes between the freeze and the merge');
}
crash_all();
$h->finish;
eval { $locker->quit };
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres',
		"SELECT state = 'gone' FROM kommander.partition_map WHERE partition_id = $right"),
		$node->name . ": the merge of $right into $left is finished after the crash");
}
check_map('a cluster crash in the middle of a merge');

# 3. The leader of the partition being split crashes while kmd_split,
# called on another node, waits for it.
my $victim_name = KmdTest::leader_of($n1, 1);
my ($victim) = grep { $_->name eq $victim_name } @nodes;
my ($caller) = grep { $_->name ne $victim_name } @nodes;
$parts = active_partitions();
my ($out, $err);
($h, $out, $err) = start_call($caller, 'SELECT kmd_split(1)');
$victim->stop('immediate');
$h->finish;
note 'kmd_split while its leader crashed: ' . ($$out ne '' ? "created partition $$out" : "failed: $$err");
$victim->start;
check_map('a crash of the leader during a split');
$after = active_partitions();
ok($after == $parts || $after == $parts + 1, "that split happened once or not at all ($parts -> $after)");

# 4. A split commits while node 3 cannot apply it, then node 3 crashes: on
# restart it applies the split from its log.
$locker = $n3->background_psql('postgres', on_error_die => 0, on_error_stop => 0);
$locker->query_safe('BEGIN');
$locker->query_safe('LOCK TABLE kommander.partition_map IN SHARE MODE');
my $victim_part = $n1->safe_psql('postgres',
	"SELECT max(partition_id) FROM kommander.partitions WHERE state = 'active'");
my $new = $n1->safe_psql('postgres', "SELECT kmd_split($victim_part)");
ok($new > 0, "partition $victim_part split into $new while node3 could not apply");
is($n3->safe_psql('postgres', "SELECT count(*) FROM kommander.partitions WHERE partition_id = $new"),
	'0', 'node3 has not applied the split');
$n3->stop('immediate');
eval { $locker->quit };
$n3->start;
ok($n3->poll_query_until('postgres',
	"SELECT state = 'active' FROM kommander.partitions WHERE partition_id = $new"),
	"node3 applied the split from its log after the crash");
check_map('a crash before applying a split');

# the writes
open(my $fh, '>', "$dir/stop");
close $fh;
$_->finish for @loads;
KmdTest::wait_converged(\@nodes);
my @keys = (KmdTest::acked_keys($dir, 'a'), KmdTest::acked_keys($dir, 'b'));
is(join("\n", KmdTest::load_errors($dir, 'a'), KmdTest::load_errors($dir, 'b')), '',
	'the clients met no error but fencing, frozen partitions, timeouts and lost connections');
my $rows = $n1->safe_psql('postgres', "SELECT md5(string_agg(k, ',' ORDER BY k)) FROM kv");
for my $node (@nodes)
{
	my $name = $node->name;
	is(KmdTest::missing_keys($node, 'kv', \@keys), '0', "$name has every acknowledged write (" . scalar(@keys) . ')');
	is(KmdTest::misplaced_rows($node, 'kv'),
		'0', "$name: every row lies in exactly one partition");
	is($node->safe_psql('postgres', "SELECT md5(string_agg(k, ',' ORDER BY k)) FROM kv"), $rows,
		"$name has the same rows");
}

# 5. After a restart of the whole cluster, a node joins: it replays every
# log, the merged-away partition's included (its group runs again on every
# node), so it gets past the merge and has the same rows and map.
crash_all();
KmdTest::wait_leaders($_) for @nodes;
my $n4 = KmdTest::new_node('node4');
is($n4->safe_psql('postgres',
	"SELECT kmd_join('node4', " . KmdTest::quote(KmdTest::conninfo($n4)) . ', '
	  . KmdTest::quote(KmdTest::conninfo($n1)) . ')'), '4', 'node4 joins after a merge and a restart');
KmdTest::wait_converged([ @nodes, $n4 ]) or die 'node4 does not converge';
is($n4->safe_psql('postgres', "SELECT md5(string_agg(k, ',' ORDER BY k)) FROM kv"), $rows,
	'node4 has the same rows');
is($n4->safe_psql('postgres', $map), $n1->safe_psql('postgres', $map), 'node4 has the same partition map');

KmdTest::wait_converged(\@nodes);
KmdTest::same_state(\@nodes);

done_testing();
