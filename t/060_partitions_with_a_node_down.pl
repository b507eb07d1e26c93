# 060_partitions_with_a_node_down.pl
#   Leaders gathered on one node spread again by themselves (the automatic
#   balancer).  Split and merge while a node is down: the two others carry
#   on, their partitions rest without it, and the node that returns catches
#   up with the same partition map and rows.  Then 256 partitions on the
#   three nodes: everything still converges and rests, and stays at rest
#   while the nodes keep in touch; the CPU use while idle goes to the test
#   log.
#
# Copyright (c) 2026, kommander developers
#
# t/060_partitions_with_a_node_down.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use KmdTest;

# an election timeout long enough that a busy machine does not trip the
# idle window below (no election, no entry for five seconds)
my @nodes = KmdTest::new_cluster(3,
	conf => "kommander.max_partitions = 512\nkommander.balance_interval = 300\n"
	  . "kommander.election_timeout = 2000\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
sub put
{
	my ($node, $k) = @_;
	$node->safe_psql('postgres',
		"SELECT kmd_propose('$k', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"$k\",\"v\":\"x\"}}')");
}
put($n2, "before-$_") for 1 .. 20;
KmdTest::wait_converged(\@nodes);

# gather every leader on node1; the balancer spreads them again
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(6)');
for my $id (split /\n/, $n1->safe_psql('postgres',
		"SELECT partition_id FROM kommander.partitions WHERE partition_id > 0 AND state = 'active'"))
{
	$n1->safe_psql('postgres', "SELECT kmd_transfer_leader($id, 'node1')");
}
my $spread = q{
	SELECT max(c) - min(c) <= 1 FROM (
	  SELECT n.node_name, count(p.partition_id) AS c FROM kommander.nodes n
	    LEFT JOIN kommander.partitions p ON p.leader_name = n.node_name AND p.partition_id > 0 AND p.state = 'active'
	   GROUP BY n.node_name) s};
ok($n1->poll_query_until('postgres', $spread), 'leaders gathered on node1 spread again without kmd_rebalance');

my $map = q{SELECT string_agg(partition_id || ':' || coalesce(lo::text, '') || ':' || coalesce(hi::text, '') || ':' || generation || ':' || state, ',' ORDER BY partition_id) FROM kommander.partitions};
my $rows = q{SELECT md5(string_agg(k || '=' || v, ',' ORDER BY k)) FROM kv};

# node3 is down while the map changes
$n3->stop('immediate');
is($n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(9)'), '3',
	'three splits with a node down');
my ($l, $r) = split /\|/, $n1->safe_psql('postgres', q{
	SELECT l.partition_id, r.partition_id FROM kommander.partitions l
	  JOIN kommander.partitions r ON r.lo = l.hi
	 WHERE l.partition_id > 0 AND l.state = 'active' AND r.state = 'active' ORDER BY l.lo LIMIT 1});
is($n2->safe_psql('postgres', "SELECT kmd_merge($l, $r)"), $l, 'a merge with a node down');
put($n1, "during-$_") for 1 .. 20;

# the partitions rest even though node3 does not answer
for my $node ($n1, $n2)
{
	ok($node->poll_query_until('postgres',
		"SELECT bool_and(quiesced) FROM kommander.partitions WHERE state = 'active'"),
		$node->name . ': idle partitions quiesce while node3 is down');
}

$n3->start;
KmdTest::wait_converged(\@nodes);
$n3->poll_query_until('postgres', "SELECT ($map) = " . KmdTest::quote($n1->safe_psql('postgres', $map)))
  or die 'node3 did not rebuild the partition map';
pass('node3 rebuilt the partition map after returning');
is($n3->safe_psql('postgres', $rows), $n1->safe_psql('postgres', $rows), 'node3 has the same rows');
put($n3, "after-$_") for 1 .. 10;
KmdTest::wait_converged(\@nodes);
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'after-%'"), '10',
	'node3 proposes again');

# 256 partitions
my $t0 = time;
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(256)');
note sprintf('256 partitions created in %.1f s', time - $t0);
for my $node (@nodes)
{
	$node->poll_query_until('postgres',
		"SELECT count(*) = 256 AND bool_and(leader_name IS NOT NULL) FROM kommander.partitions WHERE partition_id > 0 AND state = 'active'")
	  or die 'partitions without a leader on ' . $node->name;
}
pass('256 partitions, each with a leader, on every node');
put($nodes[$_ % 3], "many-$_") for 1 .. 60;
KmdTest::wait_converged(\@nodes);
my $digest = $n1->safe_psql('postgres', $rows);
is($_->safe_psql('postgres', $rows), $digest, $_->name . ' has the same rows with 256 partitions') for ($n2, $n3);

# idle partitions rest: no heartbeats, no timers
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres',
		"SELECT bool_and(quiesced) FROM kommander.partitions WHERE state = 'active'"),
		$node->name . ': every idle partition quiesces');
}

# a write wakes its partition, which rests again once everyone has it
put($n2, 'wake-up');
my $woken = $n1->safe_psql('postgres', "SELECT partition_id FROM kmd_route('wake-up')");
KmdTest::wait_converged(\@nodes);
ok($n1->poll_query_until('postgres',
	"SELECT quiesced FROM kommander.partitions WHERE partition_id = $woken"),
	'the partition that took a write quiesces again');

# CPU while idle, for the log (not asserted): the kommander processes
# (launcher, Raft workers, apply), and the backends of the peer channel that
# stream the other nodes' keepalives (kommander.peer_stream)
# (scheduler time in nanoseconds, from /proc/<pid>/schedstat: exact, unlike
# the clock ticks of /proc/<pid>/stat)
sub cpu_time
{
	my ($node) = @_;
	my %total = (kommander => 0, peers => 0);
	for my $row (split /\n/, $node->safe_psql('postgres', q{
			SELECT pid, CASE WHEN backend_type LIKE 'kommander%' THEN 'kommander' ELSE 'peers' END
			  FROM pg_stat_activity
			 WHERE backend_type LIKE 'kommander%' OR query LIKE '%kommander.peer_stream%'}))
	{
		my ($pid, $kind) = split /\|/, $row;
		open(my $fh, '<', "/proc/$pid/schedstat") or next;
		my @f = split / /, <$fh>;
		close $fh;
		$total{$kind} += $f[0];
	}
	return \%total;
}
# Resting partitions stay at rest while node-level keepalives keep every peer
# reachable: over a window of several keepalive rounds no group elects, no
# entry is written, no partition wakes.  The window is also where the CPU is
# measured.
# no voter leads more than its share (the balancer's rule), so no transfer
# is due
my $share = q{
	SELECT max(c) <= ceil(sum(c)::numeric / count(*)) FROM (
	  SELECT n.node_name, count(p.partition_id) AS c FROM kommander.nodes n
	    LEFT JOIN kommander.partitions p ON p.leader_name = n.node_name AND p.partition_id > 0 AND p.state = 'active'
	   GROUP BY n.node_name) s};
ok($n1->poll_query_until('postgres', $share), 'no node leads more than its share of 256 partitions');
# a lease exists, as in a cluster that uses them: its leader's clock looks
# at it every tick
$n1->safe_psql('postgres', "SELECT kmd_lease_grant('30 days', 'idle')");
for my $node (@nodes)
{
	$node->poll_query_until('postgres',
		"SELECT bool_and(quiesced) FROM kommander.partitions WHERE state = 'active'")
	  or die $node->name . ' has partitions awake';
}
my $state = q{SELECT sum(term) || '/' || sum(commit_index) || '/' || bool_and(quiesced)
	FROM kommander.partitions WHERE state = 'active'};
my %rest = map { $_->name => $_->safe_psql('postgres', $state) } @nodes;
my %before = map { $_->name => cpu_time($_) } @nodes;
my $w0 = time;
my $until = $n1->safe_psql('postgres', "SELECT clock_timestamp() + interval '5 s'");
for my $node (@nodes)
{
	$node->poll_query_until('postgres',
		"SELECT bool_and(reachable AND last_contact > '$until') FROM kommander.nodes WHERE NOT is_local")
	  or die $node->name . ' stopped hearing from its peers';
}
my $secs = time - $w0;
for my $node (@nodes)
{
	my $after = cpu_time($node);
	my $b = $before{ $node->name };
	note sprintf('%s: while idle with 256 partitions, kommander processes used %.2f%% '
		  . 'of a core, peer-channel backends %.2f%%',
		$node->name, ($after->{kommander} - $b->{kommander}) / 1e7 / $secs,
		($after->{peers} - $b->{peers}) / 1e7 / $secs);
	like($rest{ $node->name }, qr{/true$}, $node->name . ': every partition rested at the start of the window');
	is($node->safe_psql('postgres', $state), $rest{ $node->name },
		$node->name . ': no election, no entry, no partition woke while peers kept in touch');
}

done_testing();
