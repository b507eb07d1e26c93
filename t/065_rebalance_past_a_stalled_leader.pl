# 065_rebalance_past_a_stalled_leader.pl
#   kmd_rebalance asks each overloaded leader to hand a partition over; when
#   a leader does not answer within kommander.propose_timeout (its Raft
#   workers are stopped with SIGSTOP, while its node still counts as heard
#   from), that transfer is skipped, the call goes on and returns how many
#   moved, instead of failing at the first one.
#
# Copyright (c) 2026, kommander developers
#
# t/065_rebalance_past_a_stalled_leader.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

# no automatic balancer
my @nodes = KmdTest::new_cluster(3, conf => "kommander.balance_interval = 0\n");
my ($n1, $n2, $n3) = @nodes;
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(6)');

# node2 leads the odd partitions, which its Raft worker 1 hosts (partition
# modulo kommander.workers, 2), more than its share; node1 the even ones
for my $id (1 .. 6)
{
	$n1->safe_psql('postgres', "SELECT kmd_transfer_leader($id, 'node" . ($id % 2 ? 2 : 1) . "')");
}
ok($n1->poll_query_until('postgres', q{
	SELECT bool_and(leader_name = CASE WHEN partition_id % 2 = 1 THEN 'node2' ELSE 'node1' END)
	  FROM kommander.partitions WHERE partition_id > 0 AND state = 'active'}),
	'node2 leads the odd partitions, node1 the even ones');
for my $node (@nodes)
{
	$node->poll_query_until('postgres',
		"SELECT bool_and(quiesced) FROM kommander.partitions WHERE state = 'active'")
	  or die $node->name . ' has partitions awake';
}

# node2's worker 1 stops; its worker 0 keeps node2 heard from, so the
# resting partitions stay with their leaders
my ($worker1) = slurp_file($n2->logfile) =~ /.*\[(\d+)\] LOG:  kommander worker 1 started/s;
ok(defined $worker1, 'node2 logged the pid of its worker 1');
kill 'STOP', $worker1;
my ($rc, $out, $err) = $n1->psql('postgres',
	"SET kommander.propose_timeout = '500ms'; SELECT kmd_rebalance()");
kill 'CONT', $worker1;
is($rc, 0, 'kmd_rebalance returns although node2 answered no transfer') or diag($err);
like($out, qr/^\d+$/, "and says how many moved ($out)");

# with node2 answering again, the same call spreads the leaders
ok($n1->poll_query_until('postgres', 'SELECT kmd_rebalance() >= 0 AND (' . q{
	SELECT max(c) - min(c) <= 1 FROM (
	  SELECT n.node_name, count(p.partition_id) AS c FROM kommander.nodes n
	    LEFT JOIN kommander.partitions p ON p.leader_name = n.node_name AND p.partition_id > 0 AND p.state = 'active'
	   GROUP BY n.node_name) s)}), 'kmd_rebalance spreads the leaders once node2 answers');

done_testing();
