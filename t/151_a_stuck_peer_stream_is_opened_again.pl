# 151_a_stuck_peer_stream_is_opened_again.pl
#   A peer stream whose backend stops answering (here stopped with SIGSTOP,
#   as a stuck process or a half-open connection would look) is closed by
#   the sending Raft worker after ten election timeouts without an answer
#   and opened again, with a line in its log: the node behind it gets the
#   others' batches again and applies their writes while the stuck backends
#   still hang.  A sender that goes silent without closing its
#   connections has its streams ended by the receiving backends after as
#   long; an idle one keeps them, every worker sending keepalives.
#
# Copyright (c) 2026, kommander developers
#
# t/151_a_stuck_peer_stream_is_opened_again.pl

use strict;
use warnings;
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use KmdTest;

my @nodes = KmdTest::new_cluster(3, conf => "kommander.election_timeout = 500\n");
my ($n1, $n2, $n3) = @nodes;
KmdTest::create_kv($n1);
KmdTest::wait_converged(\@nodes);

# an idle cluster keeps its streams: every Raft worker, its groups at
# rest, keeps its own heard, so none goes ten election timeouts silent
my $workers = $n2->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kommander raft worker'");
for my $node (@nodes)
{
	ok($node->poll_query_until('postgres',
		"SELECT count(*) = (SELECT count(*) FROM kommander.nodes) * $workers - $workers"
		  . " FROM pg_stat_activity WHERE query = 'CALL kommander.peer_stream()'"
		  . " AND backend_start < now() - interval '6 s'"),
		$node->name . ' keeps every stream of the other nodes past ten election timeouts');
}

my @stuck = split /\n/, $n2->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE query = 'CALL kommander.peer_stream()'");
ok(@stuck >= 2, 'node2 serves streams of the other nodes');

# whatever happens below, the stopped backends run again before the end
END { kill 'CONT', @stuck if @stuck; }

my $offset1 = -s $n1->logfile;
my $offset3 = -s $n3->logfile;
kill 'STOP', @stuck;

ok($n1->wait_for_log(qr/Node 2 did not answer for 5000 ms/, $offset1),
	'node1 closes its stream to node2 when it stops answering');
ok($n3->wait_for_log(qr/Node 2 did not answer for 5000 ms/, $offset3),
	'so does node3');

KmdTest::upsert_kv($n1, map { "s$_" } 1 .. 10);
KmdTest::wait_converged(\@nodes);
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 's%'"), '10',
	'node2 applies what node1 wrote, over new streams');
ok($n2->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL kommander.peer_stream()' AND pid NOT IN ("
	  . join(',', @stuck) . ")") > 0,
	'new streams run beside the stuck ones (a worker with nothing to send keeps its own)');

kill 'CONT', @stuck;
@stuck = ();
ok($n2->poll_query_until('postgres',
	"SELECT count(*) = " . (scalar(@nodes) - 1) . " * (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kommander raft worker')"
	  . " FROM pg_stat_activity WHERE query = 'CALL kommander.peer_stream()'"),
	'the stuck backends, let go, find their connections closed and end');

# The other way round: a sender that goes silent without closing its
# connections (its Raft workers stopped, as a host that went down or a cut
# network would look).  node2's streams of node1 end after ten election
# timeouts, freeing their connection slots, where the kernel would notice
# nothing for hours; node1's workers, let go, open new ones.
my $streams = q{SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL kommander.peer_stream()'};
my $before = $n2->safe_psql('postgres', $streams);
my @silent = split /\n/, $n1->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'kommander raft worker'");
END { kill 'CONT', @silent if @silent; }
my $offset2 = -s $n2->logfile;
kill 'STOP', @silent;
ok($n2->wait_for_log(qr/the peer stream of node 1 heard nothing for 5000 ms; it ends/, $offset2),
	"node2 ends its streams of node1 when node1 goes silent");
ok($n2->poll_query_until('postgres', "SELECT ($streams) = $before - " . scalar(@silent)),
	'one for each of its Raft workers');
kill 'CONT', @silent;
@silent = ();
KmdTest::upsert_kv($n1, map { "q$_" } 1 .. 10);
KmdTest::wait_converged(\@nodes);
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'q%'"), '10',
	'node2 applies what node1 wrote once it runs again');
ok($n2->poll_query_until('postgres', "SELECT ($streams) = $before"),
	"node1's workers opened their streams to node2 again");
KmdTest::same_state(\@nodes);

done_testing();
