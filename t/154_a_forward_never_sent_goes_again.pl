# 154_a_forward_never_sent_goes_again.pl
#   A follower forwards its clients' proposals to the leader in its batches;
#   a batch that finds no room on the connection (the leader's stream
#   backend stopped reading it, the socket full) is dropped, and Raft sends
#   its messages again.  The forwarded proposals in it never left the node:
#   they must go again with a later batch once there is room, not wait for
#   an answer that cannot come and end with an unknown outcome (K0003).
#
# Copyright (c) 2026, kommander developers
#
# t/154_a_forward_never_sent_goes_again.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use IPC::Run;
use KmdTest;

# a stopped stream is given up after ten election timeouts: longer than
# this test stops one
my $conf = "kommander.balance_interval = 0\nkommander.election_timeout = 2000\n";
my @nodes = map { KmdTest::new_node("node$_", conf => $conf) } (1 .. 3);
my ($n1, $n2, $n3) = @nodes;
for my $node (@nodes)
{
	$node->safe_psql('postgres', 'CREATE ROLE peer_node2 LOGIN IN ROLE kommander_peer');
}
$n1->safe_psql('postgres', "SELECT kmd_bootstrap('node1', " . KmdTest::quote(KmdTest::conninfo($n1)) . ')');
KmdTest::wait_leaders($n1);
for my $i (2, 3)
{
	$nodes[ $i - 1 ]->safe_psql('postgres', "SELECT kmd_join('node$i', "
		  . KmdTest::quote(KmdTest::conninfo($nodes[ $i - 1 ])) . ', '
		  . KmdTest::quote(KmdTest::conninfo($n1))
		  . ($i == 2 ? ", peer_role => 'peer_node2'" : '') . ')');
}
KmdTest::wait_voters(\@nodes, 3);
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', "SELECT kmd_transfer_leader(1, 'node1')");
ok($n2->poll_query_until('postgres',
	"SELECT leader_name = 'node1' FROM kommander.partitions WHERE partition_id = 1"),
	'node 2 follows node 1 in partition 1');

# node 2 drops a batch as soon as one waits to be written
$n2->append_conf('postgresql.conf', "kommander.max_inflight_batches = 1\n");
$n2->reload;
ok($n2->poll_query_until('postgres', "SELECT current_setting('kommander.max_inflight_batches') = '1'"),
	'node 2 holds one unwritten batch at most');

# node 1's backends that read node 2's streams stop reading
my @stopped = split /\n/, $n1->safe_psql('postgres', q{
	SELECT pid FROM pg_stat_activity
	 WHERE usename = 'peer_node2' AND application_name LIKE 'kommander worker%'});
ok(@stopped > 0, "node 2's streams into node 1 found");
kill 'STOP', @stopped;

# proposals through node 2 large enough to fill the socket
my $dropped = $n2->safe_psql('postgres',
	"SELECT value FROM kommander.stats WHERE name = 'batches_dropped' AND partition_id IS NULL");
my $n = 12;
my @clients;
for my $i (1 .. $n)
{
	my ($out, $err) = ('', '');
	push @clients, [ IPC::Run::start(
		[ 'psql', '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose',
		  '-d', $n2->connstr('postgres'), '-c',
		  "SELECT kmd_propose('big$i', jsonb_build_object('op', 'upsert', 'table', 'kv', "
			. "'row', jsonb_build_object('k', 'big$i', 'v', repeat('x', 60000))))" ],
		'>', \$out, '2>', \$err), \$out, \$err ];
}
ok($n2->poll_query_until('postgres',
	"SELECT value > $dropped FROM kommander.stats WHERE name = 'batches_dropped' AND partition_id IS NULL"),
	'node 2 dropped batches meanwhile');
kill 'CONT', @stopped;

my $ok = 0;
for my $c (@clients)
{
	my ($h, $out, $err) = @$c;
	$h->finish;
	if ($$out =~ /^\d+$/m) { $ok++ }
	else { diag("a proposal through node 2: $$err") }
}
is($ok, $n, 'every proposal through node 2 is applied and answered');
ok(KmdTest::wait_converged(\@nodes), 'every node applies them');
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'big%'"),
		$n, $node->name . ' holds every row');
}
KmdTest::same_state(\@nodes);

done_testing();
