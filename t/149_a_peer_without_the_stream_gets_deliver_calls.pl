# 149_a_peer_without_the_stream_gets_deliver_calls.pl
#   A peer whose kommander has no kommander.peer_stream() (an older
#   version, during a rolling upgrade; here the procedure is dropped on
#   node2) still gets its batches: the others' Raft workers, refused with
#   42883 when they open the stream, send them by kommander.deliver calls,
#   say so once in their log, and node2 applies what the others write.
#   Deliver calls that stop being answered (node2's backends stopped with
#   SIGSTOP) are given up after ten election timeouts as a stream is, and
#   node2 is served by new ones.
#
# Copyright (c) 2026, kommander developers
#
# t/149_a_peer_without_the_stream_gets_deliver_calls.pl

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

my $offset1 = -s $n1->logfile;
my $offset3 = -s $n3->logfile;
$n2->safe_psql('postgres', q{
	ALTER EXTENSION kommander DROP PROCEDURE kommander.peer_stream();
	DROP PROCEDURE kommander.peer_stream();
	SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'CALL kommander.peer_stream()';
});

for my $node ($n1, $n3)
{
	my $offset = $node == $n1 ? $offset1 : $offset3;
	ok($node->wait_for_log(qr/node 2 has no kommander.peer_stream\(\); batches go to it by kommander.deliver/,
			$offset), $node->name . ' says it sends to node2 by deliver calls');
}
# every Raft worker of node1 and node3 connects to node2
my $workers = $n1->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'kommander raft worker'");
ok($n2->poll_query_until('postgres', qq{
	SELECT count(*) FILTER (WHERE query LIKE 'SELECT kommander.deliver%') = 2 * $workers
	   AND count(*) FILTER (WHERE query = 'CALL kommander.peer_stream()') = 0
	  FROM pg_stat_activity}),
	'node2 serves the other two nodes\' workers by deliver calls, and by no stream');

KmdTest::upsert_kv($n1, map { "d$_" } 1 .. 20);
KmdTest::upsert_kv($n2, 'd21');
KmdTest::wait_converged(\@nodes);
for my $node (@nodes)
{
	is($node->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'd%'"), '21',
		$node->name . ' applied what node1 and node2 wrote');
}
# (a stream that reopens meanwhile is counted once it is back)
ok($n1->poll_query_until('postgres',
		q{SELECT count(*) FROM pg_stat_activity WHERE query = 'CALL kommander.peer_stream()'},
		2 * $workers),
	'node1 still takes streams from node2 and node3');

my @stuck = split /\n/, $n2->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT kommander.deliver%'");
END { kill 'CONT', @stuck if @stuck; }
$offset1 = -s $n1->logfile;
kill 'STOP', @stuck;
ok($n1->wait_for_log(qr/Node 2 did not answer for \d+ ms/, $offset1),
	'node1 gives up deliver calls node2 no longer answers');
KmdTest::upsert_kv($n1, map { "d$_" } 22 .. 31);
KmdTest::wait_converged(\@nodes);
is($n2->safe_psql('postgres', "SELECT count(*) FROM kv WHERE k LIKE 'd%'"), '31',
	'and node2, served by new deliver calls, applies what node1 wrote meanwhile');
kill 'CONT', @stuck;
@stuck = ();

done_testing();
