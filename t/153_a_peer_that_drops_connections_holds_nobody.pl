# 153_a_peer_that_drops_connections_holds_nobody.pl
#   A member whose address drops connection attempts unanswered (a host
#   gone behind a firewall) holds up no Raft worker: the others go on
#   committing while every worker keeps trying to connect to it, and a
#   node still stops at once.
#
# Copyright (c) 2026, kommander developers
#
# t/153_a_peer_that_drops_connections_holds_nobody.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3);
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
$n1->safe_psql('postgres', 'SELECT count(*) FROM kmd_create_partitions(4)');
KmdTest::wait_leaders($n1);

# a listener that never accepts, its queue filled: the kernel drops every
# further connection attempt without an answer, and a connect waits for
# minutes
my $hole = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Listen => 1,
	ReuseAddr => 1) or die "no listener: $!";
my $port = $hole->sockport;
my @filling = map {
	IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port, Blocking => 0)
} 1 .. 3;

$n1->safe_psql('postgres',
	"SELECT kmd_add_node('hole', 'host=127.0.0.1 port=$port dbname=postgres')");
ok($n1->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM kommander.nodes WHERE node_name = 'hole'"), 'a learner that cannot be reached');

# every node's workers try it, and every node goes on: proposals through
# each node commit, the first ones included
my $failed = 0;
for my $i (1 .. 30)
{
	my $node = $nodes[$i % 3];
	my ($rc, $out, $err) = $node->psql('postgres',
		"SELECT kmd_propose('k$i', '{\"op\":\"upsert\",\"table\":\"kv\",\"row\":{\"k\":\"k$i\",\"v\":\"x\"}}')");
	if ($rc != 0)
	{
		$failed++;
		diag "k$i through " . $node->name . ": $err";
	}
}
is($failed, 0, 'every proposal commits while the workers try the unreachable member');
# an attempt that gets no answer is given up, and made again
$n1->wait_for_log(qr/did not take the connection within \d+ ms/);
pass('a connection attempt without an answer is given up after a while');
ok(KmdTest::wait_converged(\@nodes), 'the three nodes apply everything');
KmdTest::same_state(\@nodes);

# a worker in the middle of connecting still stops when asked
$n2->stop('fast');
pass('a node stops while its workers connect to the unreachable member');

done_testing();
